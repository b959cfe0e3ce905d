"""Figure 8: tuned GD vs Adam on the four quadratic Hessian cases (κ = 5000).

The numbers come from `quadlab.studies.run_study`; `plot` only draws them. With
``spectra=("synthetic", "measured")`` the Transformer-like and CNN-like cases are run a second
time with block spectra measured by `nets` on the zoo's GPT and ResNet (as the paper built its
cases from measured spectra; `quadlab.make_problem(..., spectra="measured")`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from labkit.tables import format_table
from quadlab.studies import StudyResult, run_study

from .registry import FigureSpec, Finding
from .style import RC, save

TITLES = {"hetero": "simplified heterogeneous", "homo": "simplified homogeneous",
          "transformer": "Transformer-like", "cnn": "CNN-like"}
CASES = ("hetero", "homo", "transformer", "cnn")


MEASURED_CASES = ("transformer", "cnn")


def compute(*, seeds: int, steps: int, spectra: tuple[str, ...] = ("synthetic",),
            progress=None) -> dict[str, StudyResult]:
    """The studies behind the figure, tuned step sizes: every case with synthetic spectra, and
    the Transformer-like and CNN-like cases with measured ones (if "measured" is in `spectra`)."""
    return {s: run_study(cases=CASES if s == "synthetic" else MEASURED_CASES,
                         seeds=tuple(range(seeds)), steps=steps, spectra=s, progress=progress)
            for s in spectra}


def _panels(results: dict[str, StudyResult]) -> list[tuple[str, str, StudyResult]]:
    """(title, case, study) of each panel: the synthetic cases, then the measured ones."""
    return [(TITLES.get(c, c) + ("" if s == "synthetic" else " — measured spectra"), c, r)
            for s, r in results.items() for c in r.cases]


def plot(results: dict[str, StudyResult], out_dir: Path, *, seed: int | None = None
         ) -> list[Path]:
    """Relative loss gap against iterations, one panel per case, one curve per optimizer."""
    panels = _panels(results)
    first = next(iter(results.values()))
    seed = first.seeds[0] if seed is None else seed
    with plt.rc_context(RC):
        ncols = 2 if len(panels) > 1 else 1
        nrows = int(np.ceil(len(panels) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.4 * nrows), squeeze=False)
        for ax, (title, case, result) in zip(axes.flat, panels, strict=False):
            for opt in result.optimizers:
                gaps = result.curve(case, opt, seed)
                rel = gaps / gaps[0]
                finite = np.isfinite(rel) & (rel > 0)
                stride = max(1, rel.size // 4000)
                t = np.arange(rel.size)[::stride]
                iters = np.median(result.iterations(case, opt))
                label = f"{opt} ({'never' if not np.isfinite(iters) else f'{iters:.0f}'})"
                ax.semilogy(t, np.where(finite, rel, np.nan)[::stride], label=label)
            ax.axhline(result.tol, color="0.5", lw=0.8, ls="--")
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.set_ylabel("(L(w_t) − L*) / (L(w_0) − L*)")
            ax.set_ylim(1e-12, 10)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      title=f"median iterations\nto stay below {result.tol:g}")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"Quadratics with κ = 5000: tuned step sizes (seed {seed})")
        fig.tight_layout()
        return save(fig, out_dir, "fig8_quadratic")


def findings(results: dict[str, StudyResult]) -> Finding:
    """Adam far ahead on the heterogeneous cases and about level on the homogeneous ones?"""
    speed = {(s, c): r.speedup(c) for s, r in results.items() for c in r.cases}
    hetero_ok = all(v > 2 for (_, c), v in speed.items() if c in ("hetero", "transformer"))
    level = {(s, c): 0.5 <= v <= 2 for (s, c), v in speed.items() if c in ("homo", "cnn")}
    verdict = ("agrees" if hetero_ok and all(level.values())
               else "partly" if hetero_ok else "disagrees")

    def name(s: str, c: str) -> str:
        return c if s == "synthetic" else f"{c} (measured spectra)"

    def ratio(v: float) -> str:
        if np.isnan(v):
            return "neither GD nor Adam reached the tolerance"
        if v == 0:
            return "Adam never reached the tolerance, GD did"
        return "GD never reached the tolerance, Adam did" if np.isinf(v) else f"GD/Adam = {v:.3g}×"

    parts = [f"{name(s, c)}: {ratio(v)}" for (s, c), v in speed.items()]
    slower = [name(*k) for k, ok in level.items() if not ok and speed[k] < 0.5]
    faster = [name(*k) for k, ok in level.items() if not ok and speed[k] > 2]
    measured = ("Median iterations of GD divided by those of simplified Adam (β1 = 0, β2 = 1), "
                "step sizes tuned per run: " + "; ".join(parts) + "."
                + ("" if not slower else " On the homogeneous case(s) " + ", ".join(slower)
                   + " Adam is not level with GD but slower (Theorem 1's r is large there).")
                + ("" if not faster else " On the homogeneous case(s) " + ", ".join(faster)
                   + " Adam is not level with GD but faster."))
    rows = [{**row, "case": name(s, row["case"])} for s, r in results.items()
            for row in r.table()]
    return Finding(measured=measured, verdict=verdict, table=format_table(rows, [
        ("case", "case", ""), ("optimizer", "optimizer", ""),
        ("median_iterations", "median iterations", ".0f"), ("reached", "seeds reaching", "d"),
        ("median_lr", "median tuned lr", ".3g")], markdown=True))


SPEC = FigureSpec(
    name="fig8_quadratic",
    title="Figure 8 — quadratics: GD vs Adam on heterogeneous and homogeneous Hessians",
    claim=("On block-diagonal quadratics with κ = 5000, GD lags Adam far behind when the blocks "
           "are heterogeneous (Transformer-type, simplified heterogeneous) and is about level with "
           "it when they are homogeneous (CNN-type, simplified homogeneous)."),
    caption=("Relative loss gap against iterations for tuned GD, simplified Adam (β1 = 0, β2 = 1), "
             "blockwise GD and Adam with β2 = 0.999, one panel per Hessian case (seed 0); legend: "
             "median iterations over seeds to bring the gap below 1e-6 and keep it there. Last "
             "row: the Transformer-like and CNN-like cases built from blockwise spectra measured "
             "by nets on the zoo's GPT and ResNet."),
    settings={"tiny": {"seeds": 1, "steps": 2_000, "spectra": ("synthetic", "measured")},
              "quick": {"seeds": 3, "steps": 60_000, "spectra": ("synthetic", "measured")},
              "full": {"seeds": 10, "steps": 100_000, "spectra": ("synthetic", "measured")}},
    packages=("quadlab",),
    compute=compute,
    draw=plot,
    findings=findings,
)
