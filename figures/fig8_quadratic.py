"""Figure 8: tuned GD vs Adam on the four quadratic Hessian cases (κ = 5000).

The numbers come from `quadlab.run_study`; `plot` only draws them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from quadlab import StudyResult, run_study

from .registry import FigureSpec, Finding, markdown_table
from .style import RC, save

TITLES = {"hetero": "simplified heterogeneous", "homo": "simplified homogeneous",
          "transformer": "Transformer-like", "cnn": "CNN-like"}
CASES = ("hetero", "homo", "transformer", "cnn")


def compute(*, seeds: int, steps: int, progress=None) -> StudyResult:
    """The study behind the figure: every case, `seeds` seeds, tuned step sizes."""
    return run_study(cases=CASES, seeds=tuple(range(seeds)), steps=steps, progress=progress)


def plot(result: StudyResult, out_dir: Path, *, seed: int | None = None) -> list[Path]:
    """Relative loss gap against iterations, one panel per case, one curve per optimizer."""
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
                label = f"{opt} ({'never' if not np.isfinite(iters) else f'{iters:.0f}'})"
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


def findings(result: StudyResult) -> Finding:
    """Adam far ahead on the heterogeneous cases and about level on the homogeneous ones?"""
    speed = {c: result.speedup(c) for c in result.cases}
    hetero_ok = all(speed[c] > 2 for c in ("hetero", "transformer") if c in speed)
    level = {c: 0.5 <= speed[c] <= 2 for c in ("homo", "cnn") if c in speed}
    verdict = ("agrees" if hetero_ok and all(level.values())
               else "partly" if hetero_ok else "disagrees")
    parts = [f"{c}: GD/Adam = {speed[c]:.3g}×" if speed[c] > 0
             else f"{c}: Adam never reached the tolerance, GD did" for c in result.cases]
    measured = ("Median iterations of GD divided by those of simplified Adam (β1 = 0, β2 = 1), "
                "step sizes tuned per run: " + "; ".join(parts) + ". "
                + ("" if all(level.values()) else
                   "On the homogeneous case(s) " + ", ".join(c for c, ok in level.items() if not ok)
                   + " Adam is not level with GD but slower (Theorem 1's r is large there)."))
    return Finding(measured=measured, verdict=verdict, table=markdown_table(result.table(), [
        ("case", "case", ""), ("optimizer", "optimizer", ""),
        ("median_iterations", "median iterations", ".0f"), ("reached", "seeds reaching", "d"),
        ("median_lr", "median tuned lr", ".3g")]))


SPEC = FigureSpec(
    name="fig8_quadratic",
    title="Figure 8 — quadratics: GD vs Adam on heterogeneous and homogeneous Hessians",
    claim=("On block-diagonal quadratics with κ = 5000, GD lags Adam far behind when the blocks "
           "are heterogeneous (Transformer-type, simplified heterogeneous) and is about level with "
           "it when they are homogeneous (CNN-type, simplified homogeneous)."),
    caption=("Relative loss gap against iterations for tuned GD, simplified Adam (β1 = 0, β2 = 1), "
             "blockwise GD and Adam with β2 = 0.999, one panel per Hessian case (seed 0); legend: "
             "median iterations over seeds to bring the gap below 1e-6 and keep it there."),
    settings={"tiny": {"seeds": 1, "steps": 2_000}, "quick": {"seeds": 3, "steps": 60_000},
              "full": {"seeds": 10, "steps": 100_000}},
    packages=("quadlab",),
    compute=compute,
    draw=plot,
    findings=findings,
)
