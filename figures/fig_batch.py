"""Seed 004: optimal step size against batch size for SGD, sign descent and Adam with several ε.

The numbers come from `quadlab.studies.batch`; this module draws them and owns the report
entry ``SPEC``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from labkit.tables import format_table
from quadlab.studies.batch import BatchResult, batch_studies
from quadlab.studies.settings import SETTINGS

from .registry import FigureSpec, Finding
from .style import RC, save
from .verdict import Part, combine, explain


def plot(results: dict[str, BatchResult], out_dir: Path) -> list[Path]:
    """η*(B) / max_B η*(B) on log axes, one panel per criterion, one curve per optimizer."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.9),
                                 squeeze=False)
        for ax, (crit, res) in zip(axes.flat, results.items(), strict=True):
            for c in res.curves:
                b = np.array(c.batch_sizes)
                ax.loglog(b, c.lr_star / np.nanmax(c.lr_star), "o-",
                          label=f"{c.label} ({c.shape})")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size B")
            ax.set_ylabel("η*(B) / max η*")
            extra = f", {res.steps} steps" if crit == "budget" else ""
            ax.set_title(f"{crit}: {res.case}, noise {res.noise}{extra}")
            ax.legend(loc="lower right")
        fig.suptitle("Optimal step size against batch size (ε relative to the noise scale)")
        fig.tight_layout()
        return save(fig, out_dir, "fig_batch")


def criterion_parts(criterion: str, res: BatchResult) -> list[Part]:
    """(a) SGD's η*(B) grows with B (shape "increasing"); (b) a sign-like update (sign descent
    or Adam with its smallest ε) shows a surge; (c) the surge fades as ε grows: Adam with the
    largest ε shows none ("inconclusive" when no curve surged, there being nothing to fade)."""
    curves = {c.label: c for c in res.curves}
    parts = []
    sgd = curves.get("sgd")
    parts.append(Part(f"{criterion}: SGD's η* grows with B",
                      "not measurable" if sgd is None else
                      "holds" if sgd.shape == "increasing" else "fails",
                      "" if sgd is None else f"shape {sgd.shape}"))
    adams = sorted((c for c in res.curves if c.eps is not None), key=lambda c: c.eps)
    sign_like = [c for c in (curves.get("sign"), adams[0] if adams else None) if c is not None]
    surged = [c.label for c in sign_like if c.surge]
    parts.append(Part(f"{criterion}: a sign-like update shows the surge",
                      "not measurable" if not sign_like else "holds" if surged else "fails",
                      ", ".join(f"{c.label}: {c.shape}" for c in sign_like)))
    if len(adams) < 2:
        parts.append(Part(f"{criterion}: the surge fades as ε grows", "not measurable",
                          "fewer than two ε values"))
    elif not any(c.surge for c in (*sign_like, *adams)):
        parts.append(Part(f"{criterion}: the surge fades as ε grows", "inconclusive",
                          "no curve surged"))
    else:
        parts.append(Part(f"{criterion}: the surge fades as ε grows",
                          "fails" if adams[-1].surge else "holds",
                          f"{adams[-1].label}: {adams[-1].shape}"))
    return parts


def findings(results: dict) -> Finding:
    """The parts of `criterion_parts` under each criterion."""
    parts, rows = [], []
    for crit, res in results.items():
        parts += criterion_parts(crit, res)
        rows += [{"criterion": crit, "optimizer": c.label, "shape": c.shape,
                  "peak": int(c.peak_batch)} for c in res.curves]
    return Finding("Shape of the optimal step size against batch size. " + explain(parts),
                   combine(parts), format_table(rows, [
                       ("criterion", "criterion", ""), ("optimizer", "optimizer", ""),
                       ("shape", "η*(B) shape", ""), ("peak", "B at max η*", "d")],
                       markdown=True), tuple(parts))


def compute(*, batch_sizes, criteria, progress=None) -> dict:
    """The batch study under each criterion (see `quadlab.studies.batch.batch_studies`)."""
    return batch_studies(batch_sizes=batch_sizes, criteria=criteria, progress=progress)


def _settings(profile: str) -> dict:
    kw = SETTINGS["batch"][profile]
    return {"batch_sizes": kw["batch_sizes"],
            "criteria": {c: kw[c] for c in ("one-step", "budget")}}


SPEC = FigureSpec(
    name="fig_batch",
    title="Optimal step size against batch size: the surge (Su, 2024)",
    claim=("The optimal learning rate grows with batch size and saturates for SGD; for sign-like "
           "updates it can rise and then fall (the surge), which disappears as ε grows."),
    caption="Optimal step size η*(B) for SGD, sign descent and Adam with several ε.",
    settings={"tiny": {"batch_sizes": (1, 8),
                       "criteria": {"one-step": {"repeats": 64, "optimizers": ("sgd", "adam ε=1")},
                                    "budget": {"steps": 100, "repeats": 8,
                                               "optimizers": ("sgd", "adam ε=1")}}},
              "quick": _settings("quick"), "full": _settings("full")},
    packages=("quadlab",),
    compute=compute,
    draw=plot,
    findings=findings,
)
