"""Seed 004: the Adam-over-GD speed-up as a function of ε, and the SoftSign map.

Thin layer: the numbers come from `quadlab.studies.eps`; this module only draws them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab.studies.eps import EPS_VARIANTS, EpsResult, softsign

from .style import RC, save


def plot(result: EpsResult, out_dir: Path) -> list[Path]:
    """Speed-up (GD iterations / Adam iterations, median over seeds) against ε/G per case, and
    the SoftSign direction g/(|g| + ε) for the same ε/G values."""
    cases = result.cases
    rel = np.array(result.rel_eps)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(cases) + 1, figsize=(4.6 * (len(cases) + 1), 3.8),
                                 squeeze=False)
        for ax, case in zip(axes.flat, cases, strict=False):
            for variant in EPS_VARIANTS:
                sp = result.median_speedup(case, variant)
                ax.loglog(rel, np.where(np.isfinite(sp) & (sp > 0), sp, np.nan), "o-",
                          label=variant)
            gd = np.median([r.gd_iterations for r in result.rows if r.case == case])
            sign = np.median(result.sign_iterations[case])
            ax.axhline(1.0, color="0.4", lw=0.8, ls="--", label="GD (ε → ∞)")
            ax.axhline(gd / sign, color="0.4", lw=0.8, ls=":", label="sign descent (ε → 0)")
            ax.set_xlabel("ε / median |∇L(w0)|")
            ax.set_ylabel("speed-up over tuned GD")
            ax.set_title(case)
            ax.legend(loc="best")
        ax = axes.flat[-1]
        g = np.linspace(-3, 3, 401)
        for re in rel[::2]:
            ax.plot(g, softsign(g, re), label=f"ε/G = {re:g}")
        ax.set_xlabel("g / G")
        ax.set_ylabel("g / (|g| + ε)")
        ax.set_title("SoftSign direction (Adam, β1 = β2 = 0)")
        ax.legend(loc="upper left")
        fig.suptitle(f"Adam's ε moves it from sign descent to GD (tol {result.tol:g}, "
                     f"budget {result.steps})")
        fig.tight_layout()
        return save(fig, out_dir, "fig_eps")
