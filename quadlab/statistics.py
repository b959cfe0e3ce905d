"""Time-averaged statistics along trajectories: what Adam's second moment actually estimates.

`trajectory_statistics` runs the same kernels as `quadlab.run` and, from step `average_from`
on, accumulates per trajectory (`quadlab.kernels.accumulate_stats`): the optimizer's
second-moment state v (Adam: EMA of g̃⊙g̃; AdaBelief: EMA of (g̃ − m)⊙(g̃ − m)), g̃⊙g̃ (the
stochastic gradient), g⊙g (the true gradient He), e⊙e, and per Hessian block the outer
products g̃ g̃ᵀ, g gᵀ and e eᵀ. Only these running sums are kept, never the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import simulate as _sim
from .noise import NoiseModel
from .problem import Problem
from .run import prepare, report_divergence
from .validation import ArrayLike, SeedLike


@dataclass(frozen=True)
class TrajectoryStatistics:
    """Averages over steps average_from..steps−1, per trajectory and over kept trajectories.

    Attributes:
        v: per trajectory, time average of the second-moment state (before each step's update;
            bias-corrected v̂ is *not* applied), shape (n, d).
        g2_noisy: per trajectory, time average of g̃⊙g̃, shape (n, d).
        g2_true: per trajectory, time average of (He)⊙(He), shape (n, d).
        e2: per trajectory, time average of e⊙e, shape (n, d).
        gg_noisy: per block, E[g̃ g̃ᵀ] averaged over time and kept trajectories.
        gg_true: per block, E[(He)(He)ᵀ], same averaging.
        ee: per block, E[e eᵀ], same averaging.
        kept: mask of trajectories that did not diverge, shape (n,).
        window: number of steps averaged.
        gaps: loss gaps of every trajectory, shape (n, steps+1).
    """

    v: np.ndarray = field(repr=False)
    g2_noisy: np.ndarray = field(repr=False)
    g2_true: np.ndarray = field(repr=False)
    e2: np.ndarray = field(repr=False)
    gg_noisy: tuple[np.ndarray, ...] = field(repr=False)
    gg_true: tuple[np.ndarray, ...] = field(repr=False)
    ee: tuple[np.ndarray, ...] = field(repr=False)
    kept: np.ndarray = field(repr=False)
    window: int
    gaps: np.ndarray = field(repr=False)

    def mean(self, name: str) -> np.ndarray:
        """Average of a per-trajectory field ("v", "g2_noisy", "g2_true", "e2") over kept rows.

        Args:
            name: the field.
        """
        return getattr(self, name)[self.kept].mean(axis=0)


def trajectory_statistics(problem: Problem, optimizer: str, *, lr: ArrayLike, w0: ArrayLike,
                          steps: int, average_from: int, noise: NoiseModel | None = None,
                          batch_size: int = 1, seed: SeedLike = 0, on_divergence: str = "warn",
                          **hyper: float | bool | None) -> TrajectoryStatistics:
    """Run trajectories (as `quadlab.run`, always simulated) and average their statistics.

    Args:
        problem: as in `quadlab.run`.
        optimizer: as in `quadlab.run`.
        lr: as in `quadlab.run`.
        w0: as in `quadlab.run`.
        steps: as in `quadlab.run`.
        average_from: first step of the averaging window (0 <= average_from < steps);
            average_from = steps − 1 gives a snapshot of the last step.
        noise: as in `quadlab.run`.
        batch_size: as in `quadlab.run`.
        seed: as in `quadlab.run`.
        on_divergence: as in `quadlab.run`.
        **hyper: as in `quadlab.run`.

    Raises:
        ValueError: bad inputs (as `quadlab.run`), a window outside 0..steps−1, or every
            trajectory diverged.
    """
    prep = prepare(problem, optimizer, lr=lr, w0=w0, steps=steps, noise=noise,
                   batch_size=batch_size, seed=seed, **hyper)
    if isinstance(average_from, bool) or not isinstance(average_from, int | np.integer) \
            or not 0 <= average_from < steps:
        raise ValueError(f"average_from must be an integer in [0, steps) = [0, {steps}), "
                         f"got {average_from!r}")
    n, d = prep.e0.shape
    stats = np.zeros((n, _sim.stats_size(problem)))
    gaps, diverged = _sim.simulate(problem, prep.spec, prep.lrs, prep.e0, steps,
                                   noise=prep.noise, state=prep.state, extended=False,
                                   stats_from=int(average_from), stats=stats)
    report_divergence(gaps, diverged, on_divergence)
    kept = diverged < 0
    if not kept.any():
        raise ValueError("every trajectory diverged; no statistics to average (try a smaller lr)")
    window = steps - int(average_from)
    stats /= window
    per = [stats[:, i * d:(i + 1) * d] for i in range(4)]
    mats = stats[kept, 4 * d:].mean(axis=0)
    p_total = sum(s * s for s in problem.block_sizes)

    def blocks(q):
        out, off = [], q * p_total
        for s in problem.block_sizes:
            out.append(mats[off:off + s * s].reshape(s, s))
            off += s * s
        return tuple(out)

    return TrajectoryStatistics(v=per[0], g2_noisy=per[1], g2_true=per[2], e2=per[3],
                                gg_noisy=blocks(0), gg_true=blocks(1), ee=blocks(2), kept=kept,
                                window=window, gaps=gaps)
