"""Report entries for the noisy-gradient studies (seeds 002 and 004): settings and verdicts.

The studies live in quadlab (`newton_study`, `eps_study`, `batch_studies`, with the command
lines' settings in `quadlab.studies.settings.SETTINGS`); the drawings in fig_newton, fig_eps and
fig_batch.
"""

from __future__ import annotations

import numpy as np

from labkit.tables import format_table
from quadlab.studies.batch import batch_studies
from quadlab.studies.eps import EPS_VARIANTS, EpsResult, eps_study
from quadlab.studies.newton import NewtonResult, newton_study
from quadlab.studies.settings import SETTINGS

from . import fig_batch, fig_eps, fig_newton
from .registry import FigureSpec, Finding


def _verdict(flags: list[bool]) -> str:
    return "agrees" if flags and all(flags) else ("partly" if any(flags) else "disagrees")


# ------------------------------------------------------------------ seed 002: Adam ≈ Newton
def newton_findings(res: NewtonResult) -> Finding:
    """Seed 002: v̄ ∝ σ²·diag(H²), i.e. a fitted exponent p ≈ 2 in v̄ ∝ H_iiᵖ (|p − 2| ≤ 0.25)."""
    holds = [abs(r.p - 2.0) <= 0.25 for r in res.rows]
    where = sorted({f"{r.problem}/{r.noise}" for r, ok in zip(res.rows, holds, strict=True) if ok})
    measured = (f"v̄ ∝ H_ii^p fitted on {len(res.rows)} configurations; p within 0.25 of the "
                f"seed's 2 in {sum(holds)}: " + (", ".join(where) or "none") + ".")
    rows = [{"problem": r.problem, "noise": r.noise, "optimizer": r.optimizer, "beta2": r.beta2,
             "p": r.p, "err_gn": r.err_gn} for r in res.rows]
    return Finding(measured, _verdict(holds), format_table(rows, [
        ("problem", "problem", ""), ("noise", "noise", ""), ("optimizer", "optimizer", ""),
        ("beta2", "β2", "g"), ("p", "p (seed: 2)", ".2f"), ("err_gn", "err g gᵀ = σ²H", ".2g")],
        markdown=True))


NEWTON = FigureSpec(
    name="fig_newton",
    title="Seed 002 — Adam's second moment as a diagonal Newton estimate",
    claim=("Near the optimum the moving average of g⊙g approximates σ²·diag(H²), so √v tracks "
           "|H| and Adam acts like a diagonal Newton method; the instantaneous g gᵀ "
           "approximates σ²·H for least squares (Gauss–Newton)."),
    caption="Fitted exponent of v̄ ∝ H_ii^p and the comparison with the two predictions.",
    settings={"tiny": {"problems": ("hetero-diagonal",), "optimizers": ("adam",),
                       "beta2s": (0.9,), "steps": 2000, "trajectories": 4},
              "quick": SETTINGS["newton"]["quick"], "full": SETTINGS["newton"]["full"]},
    packages=("quadlab",),
    compute=newton_study,
    draw=fig_newton.plot,
    findings=newton_findings,
)


# ------------------------------------------------------------------ seed 004: ε
def eps_findings(res: EpsResult) -> Finding:
    """Seed 004: large ε makes Adam SGD-like (speed-up over GD within [0.5, 2]), small ε keeps
    it away from GD (speed-up outside that band)."""
    flags, parts = [], []
    for case in res.cases:
        for v in EPS_VARIANTS:
            s = res.median_speedup(case, v)
            if s.size < 2 or not np.all(np.isfinite(s[[0, -1]])):
                continue
            gd_like = 0.5 <= s[-1] <= 2.0
            distinct = not 0.5 <= s[0] <= 2.0
            flags.append(gd_like and distinct)
            parts.append(f"{case}/{v}: {s[0]:.3g}× at ε/G = {res.rel_eps[0]:g}, "
                         f"{s[-1]:.3g}× at {res.rel_eps[-1]:g}")
    return Finding("Median speed-up over tuned GD: " + "; ".join(parts) + ".", _verdict(flags))


EPS = FigureSpec(
    name="fig_eps",
    title="Seed 004 — ε interpolates between sign descent and SGD",
    claim=("Adam with ε → 0 behaves like sign descent and with large ε like SGD (SoftSign "
           "view), so its advantage over GD on heterogeneous blocks fades as ε grows past the "
           "gradient scale."),
    caption="Speed-up over tuned GD against ε relative to the median gradient magnitude G.",
    settings={"tiny": {"cases": ("hetero",), "rel_eps": (1e-2, 1e2), "steps": 5000},
              "quick": SETTINGS["eps"]["quick"], "full": SETTINGS["eps"]["full"]},
    packages=("quadlab",),
    compute=eps_study,
    draw=fig_eps.plot,
    findings=eps_findings,
)


# ------------------------------------------------------------------ seed 004: batch size
def batch_findings(results: dict) -> Finding:
    """Seed 004: a non-monotone η*(B) ("surge") for sign-like updates that fades as ε grows."""
    rows, surges = [], []
    for crit, res in results.items():
        for c in res.curves:
            rows.append({"criterion": crit, "optimizer": c.label, "shape": c.shape,
                         "peak": int(c.peak_batch)})
            surges.append(bool(c.surge))
    verdict = "partly" if any(surges) else "disagrees"
    measured = (f"Shape of the optimal step size against batch size for {len(rows)} curves: "
                f"{sum(surges)} show a surge (rise then fall)."
                + ("" if any(surges) else " The surge did not appear in these measurements."))
    return Finding(measured, verdict, format_table(rows, [
        ("criterion", "criterion", ""), ("optimizer", "optimizer", ""),
        ("shape", "η*(B) shape", ""), ("peak", "B at max η*", "d")], markdown=True))


def batch_compute(*, batch_sizes, criteria, progress=None) -> dict:
    """The batch study under each criterion (see `quadlab.studies.batch.batch_studies`)."""
    return batch_studies(batch_sizes=batch_sizes, criteria=criteria, progress=progress)


def _batch_settings(profile: str) -> dict:
    kw = SETTINGS["batch"][profile]
    return {"batch_sizes": kw["batch_sizes"],
            "criteria": {c: kw[c] for c in ("one-step", "budget")}}


BATCH = FigureSpec(
    name="fig_batch",
    title="Seed 004 — optimal step size against batch size (the surge)",
    claim=("The optimal learning rate grows with batch size and saturates for SGD; for sign-like "
           "updates it can rise and then fall (the surge), which disappears as ε grows."),
    caption="Optimal step size η*(B) for SGD, sign descent and Adam with several ε.",
    settings={"tiny": {"batch_sizes": (1, 8),
                       "criteria": {"one-step": {"repeats": 64, "optimizers": ("sgd", "adam ε=1")},
                                    "budget": {"steps": 100, "repeats": 8,
                                               "optimizers": ("sgd", "adam ε=1")}}},
              "quick": _batch_settings("quick"), "full": _batch_settings("full")},
    packages=("quadlab",),
    compute=batch_compute,
    draw=fig_batch.plot,
    findings=batch_findings,
)
