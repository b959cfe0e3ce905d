"""Seed 004: optimal step size against batch size for SGD, sign descent and Adam with several ε.

Thin layer: the numbers come from `quadlab.studies.batch`; this module only draws them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab.studies.batch import BatchResult

from .style import RC, save


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
