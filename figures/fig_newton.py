"""Seed 002: Adam's second moment v against the Hessian diagonal (is Adam a diagonal Newton?).

Thin layer: the numbers come from `quadlab.studies.newton.newton_study`; this module only draws
them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab.studies.newton import NewtonResult

from .style import RC, save

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
