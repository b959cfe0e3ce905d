"""Figure 8: tuned GD vs Adam on the four quadratic Hessian cases (κ = 5000).

Thin layer: the numbers come from `quadlab.run_study`; this module only draws them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab import StudyResult

from .style import RC, save

TITLES = {"hetero": "simplified heterogeneous", "homo": "simplified homogeneous",
          "transformer": "Transformer-like", "cnn": "CNN-like"}


def plot(result: StudyResult, out_dir: Path, *, seed: int | None = None) -> list[Path]:
    """Relative loss gap against iterations, one panel per case, one curve per optimizer.

    Args:
        result: output of `quadlab.run_study`.
        out_dir: folder for fig8_quadratic.png/.pdf.
        seed: which seed's curves to draw (default: the first).
    """
    seed = result.seeds[0] if seed is None else seed
    with plt.rc_context(RC):
        ncols = 2 if len(result.cases) > 1 else 1
        nrows = int(np.ceil(len(result.cases) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.4 * nrows), squeeze=False)
        for ax, case in zip(axes.flat, result.cases, strict=False):
            for opt in result.optimizers:
                gaps = result.curve(case, opt, seed)
                rel = gaps / gaps[0]
                finite = np.isfinite(rel) & (rel > 0)
                stride = max(1, rel.size // 4000)
                t = np.arange(rel.size)[::stride]
                iters = np.median(result.iterations(case, opt))
                label = f"{opt} ({'never' if not np.isfinite(iters) else f'{iters:.0f}'} it.)"
                ax.semilogy(t, np.where(finite, rel, np.nan)[::stride], label=label)
            ax.axhline(result.tol, color="0.5", lw=0.8, ls="--")
            ax.set_title(TITLES.get(case, case))
            ax.set_xlabel("iteration")
            ax.set_ylabel("(L(w_t) − L*) / (L(w_0) − L*)")
            ax.set_ylim(1e-12, 10)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      title=f"median iterations\nto stay below {result.tol:g}")
        for ax in list(axes.flat)[len(result.cases):]:
            ax.set_visible(False)
        fig.suptitle(f"Quadratics with κ = 5000: tuned step sizes (seed {seed})")
        fig.tight_layout()
        return save(fig, out_dir, "fig8_quadratic")
