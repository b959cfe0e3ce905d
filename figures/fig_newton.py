"""Seed 002: Adam's second moment v against the Hessian diagonal (is Adam a diagonal Newton?).

The numbers come from `quadlab.studies.newton.newton_study`; this module draws them and owns
the report entry ``SPEC``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from labkit.tables import format_table
from quadlab.studies.newton import NewtonResult, newton_study
from quadlab.studies.settings import SETTINGS

from .registry import FigureSpec, Finding
from .style import RC, save
from .verdict import Part, combine

NOISE_LABELS = {"none": "exact gradients", "least-squares": "least-squares minibatch",
                "isotropic": "isotropic Gaussian"}


def plot(result: NewtonResult, out_dir: Path, *, optimizer: str = "adam") -> list[Path]:
    """v̄_i / v̄ normalised against H_ii on log axes, one panel per problem, one series per noise.

    Uses the largest β2 of the study. Dashed guides: slope 2 (the seed's diagonal Newton,
    √v ∝ |H|) and slope 1 (Gauss–Newton noise, v ∝ H).
    """
    beta2 = max(r.beta2 for r in result.rows)
    problems = list(dict.fromkeys(r.problem for r in result.rows))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(problems), figsize=(5.0 * len(problems), 3.9),
                                 squeeze=False)
        for ax, prob in zip(axes.flat, problems, strict=True):
            for row in result.rows:
                if (row.problem, row.optimizer, row.beta2) != (prob, optimizer, beta2):
                    continue
                h = np.array(row.diag_h)
                v = np.array(row.v_mean)
                ax.loglog(h, v / np.exp(np.mean(np.log(v))), "o",
                          label=f"{NOISE_LABELS.get(row.noise, row.noise)} (p = {row.p:.2f})")
            h = np.geomspace(min(min(r.diag_h) for r in result.rows if r.problem == prob),
                             max(max(r.diag_h) for r in result.rows if r.problem == prob), 50)
            mid = np.exp(np.mean(np.log(h)))
            ax.loglog(h, (h / mid) ** 2, "--", color="0.4", lw=1, label="slope 2: √v ∝ H")
            ax.loglog(h, h / mid, ":", color="0.4", lw=1, label="slope 1: v ∝ H")
            ax.set_title(prob)
            ax.set_xlabel("H_ii")
            ax.set_ylabel("v̄_i (normalised by its geometric mean)")
            ax.legend(loc="upper left")
        fig.suptitle(f"{optimizer}, β2 = {beta2:g}: second moment near the optimum "
                     f"(η = {result.lr:g})")
        fig.tight_layout()
        return save(fig, out_dir, "fig_newton")


#: |p − 2| within this counts as the seed's exponent 2 (v̄ ∝ σ²·diag(H²)).
P_TOLERANCE = 0.25


def findings(res: NewtonResult) -> Finding:
    """One part per configuration: the fitted exponent p of v̄ ∝ H_iiᵖ is within
    `P_TOLERANCE` of the seed's 2. (The fit's own uncertainty is not reported by the study, so
    the tolerance is fixed, not measured.)"""
    parts = [Part(f"{r.problem}/{r.noise}/{r.optimizer} β2={r.beta2:g}: p ≈ 2",
                  "holds" if abs(r.p - 2.0) <= P_TOLERANCE else "fails",
                  f"p = {r.p:.2f}, tolerance ±{P_TOLERANCE}") for r in res.rows]
    held = [p.name.split(":")[0] for p in parts if p.outcome == "holds"]
    measured = (f"v̄ ∝ H_ii^p fitted on {len(res.rows)} configurations; p within "
                f"{P_TOLERANCE} of the seed's 2 in {len(held)}: " + (", ".join(held) or "none")
                + ".")
    rows = [{"problem": r.problem, "noise": r.noise, "optimizer": r.optimizer, "beta2": r.beta2,
             "p": r.p, "err_gn": r.err_gn} for r in res.rows]
    return Finding(measured, combine(parts), format_table(rows, [
        ("problem", "problem", ""), ("noise", "noise", ""), ("optimizer", "optimizer", ""),
        ("beta2", "β2", "g"), ("p", "p (seed: 2)", ".2f"), ("err_gn", "err g gᵀ = σ²H", ".2g")],
        markdown=True), tuple(parts))


SPEC = FigureSpec(
    name="fig_newton",
    title="Adam's second moment as a diagonal Newton estimate (Su, 2024)",
    claim=("Near the optimum the moving average of g⊙g approximates σ²·diag(H²), so √v tracks "
           "|H| and Adam acts like a diagonal Newton method; the instantaneous g gᵀ "
           "approximates σ²·H for least squares (Gauss–Newton)."),
    caption="Fitted exponent of v̄ ∝ H_ii^p and the comparison with the two predictions.",
    settings={"tiny": {"problems": ("hetero-diagonal",), "optimizers": ("adam",),
                       "beta2s": (0.9,), "steps": 2000, "trajectories": 4},
              "quick": SETTINGS["newton"]["quick"], "full": SETTINGS["newton"]["full"]},
    packages=("quadlab",),
    compute=newton_study,
    draw=plot,
    findings=findings,
)
