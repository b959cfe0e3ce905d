"""Step-size tuning on a log grid, as the paper does for its quadratic figure.

Criterion: the fewest iterations to bring the gap below `tol` × its initial value *and keep it
there* until the end of the budget (see `iterations_to_tolerance`); step sizes that never do are
ranked after all that do, by their final gap; diverged step sizes are excluded. A best step
at an end of the grid is flagged (`TuneResult.at_edge`), since the grid may then be too narrow.

Default grids are centred on a reference step that makes the grid dimensionless:
    gd           1/λ_max(H)
    blockwise-gd 1 (the block scales already hold each block's optimal step)
    adam         1/λ_max(D^{-1/2} H D^{-1/2}), D = |∇L(w0)| + ε (the simplified-Adam curvature)
    sign-gd      ‖w0 − w*‖_∞ / √T
and span 10⁻³ … 10¹ × reference with `DEFAULT_POINTS` points (ratio ≈ 1.26 between neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .optimizers import make_optimizer
from .problem import Problem, check_problem, error_gradient
from .run import divergence_steps, run
from .validation import ArrayLike, as_float_array, check_positive, check_steps

DEFAULT_POINTS = 41
DEFAULT_SPAN = (1e-3, 1e1)


def iterations_to_tolerance(gaps: ArrayLike, tol: float, *, stay: bool = True,
                            log: bool = False) -> np.ndarray:
    """Iterations needed to bring the gap below tol · gap_0, per trajectory (+inf if never).

    Args:
        gaps: output of `quadlab.run`, shape (T+1,) or (n, T+1); with `log=True` its log10
            gaps (`run(..., log_gap=True).log10_gap`), the criterion then being
            log10 gap_t <= log10 tol + log10 gap_0 (exact also below float64's range, where
            the float gaps are NaN).
        tol: relative tolerance.
        stay: if True (default), the first t from which gap_s <= tol · gap_0 for every
            s = t..T — a trajectory that dips below the tolerance and leaves it again (Adam with
            β2 < 1, Proposition 2) has not converged; if False, the first t with
            gap_t <= tol · gap_0.
        log: whether `gaps` holds log10 gaps.

    Returns:
        The first qualifying step t as a float (+inf where none), shape () or (n,).

    Raises:
        ValueError: tol not finite and > 0, or gaps not numeric.
    """
    tol = check_positive(tol, name="tol")
    gaps = as_float_array(gaps, name="gaps", finite=False)
    if gaps.ndim not in (1, 2) or gaps.shape[-1] == 0:
        raise ValueError(f"gaps must have shape (T+1,) or (n, T+1), got {gaps.shape}")
    with np.errstate(invalid="ignore"):
        below = (gaps <= np.log10(tol) + gaps[..., :1]) if log else gaps <= tol * gaps[..., :1]
    if stay:
        # below from t on  <=>  the reversed cumulative AND is true at t
        below = np.flip(np.logical_and.accumulate(np.flip(below, axis=-1), axis=-1), axis=-1)
    first = np.argmax(below, axis=-1).astype(np.float64)
    return np.where(below.any(axis=-1), first, np.inf)


def reference_step(problem: Problem, optimizer: str, *, w0, steps: int, **hyper) -> float:
    """The optimizer's natural step-size scale at `w0` (see the module docstring)."""
    spec = make_optimizer(optimizer, **hyper)
    w0 = as_float_array(w0, name="w0", ndim=1)
    if spec.name == "gd":
        return float(1.0 / problem.all_eigenvalues[-1])
    if spec.name == "blockwise-gd":
        return 1.0
    if spec.name == "sign-gd":
        return float(np.max(np.abs(w0 - problem.w_star)) / np.sqrt(max(steps, 1)))
    dsq = np.sqrt(np.abs(problem.grad(w0)) + spec.eps)
    top = max(float(np.linalg.eigvalsh(b / np.outer(dsq[sl], dsq[sl]))[-1])
              for sl, b in zip(problem.block_slices, problem.blocks, strict=True))
    return 1.0 / top


def default_grid(problem: Problem, optimizer: str, *, w0, steps: int, **hyper) -> np.ndarray:
    """`DEFAULT_POINTS` log-spaced steps spanning `DEFAULT_SPAN` × the reference step."""
    ref = reference_step(problem, optimizer, w0=w0, steps=steps, **hyper)
    return ref * np.geomspace(*DEFAULT_SPAN, DEFAULT_POINTS)


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a step-size search.

    Attributes:
        lr: the best step size.
        grid: the step sizes tried, shape (k,).
        iterations: iterations to reach tol × initial gap per step size (+inf if never), (k,).
        final_gap: gap after the last step per step size (+inf if diverged, NaN if below
            float64's range), (k,).
        diverged: divergence step per step size (−1 if none), (k,).
        gaps: the loss-gap trajectory of the best step size, shape (T+1,) (NaN where below
            float64's range: see `log10_gaps`).
        tol: the relative tolerance used.
        at_edge: True if the best step is the first or last of the grid.
        log10_gaps: log10 of `gaps`, exact at every scale, shape (T+1,).
    """

    lr: float
    grid: np.ndarray
    iterations: np.ndarray
    final_gap: np.ndarray
    diverged: np.ndarray
    gaps: np.ndarray
    tol: float
    at_edge: bool
    log10_gaps: np.ndarray | None = None

    @property
    def best_iterations(self) -> float:
        """Iterations of the best step size to reach the tolerance (+inf if it never did)."""
        return float(self.iterations[int(np.argmin(np.abs(self.grid - self.lr)))])


def tune_lr(problem: Problem, optimizer: str, *, w0: ArrayLike, steps: int, tol: float = 1e-6,
            grid: ArrayLike | None = None, max_rise: float | None = None,
            **hyper: float | bool | None) -> TuneResult:
    """Pick the best step size from a log grid (all step sizes run in parallel).

    Args:
        problem: the quadratic.
        optimizer: optimizer name (see `quadlab.run`).
        w0: one initial point, shape (d,).
        steps: iteration budget T.
        tol: relative gap to reach (the paper's figure: 1e-6 of the initial gap).
        grid: step sizes to try; default `default_grid`.
        max_rise: if given, step sizes whose gap ever exceeds max_rise × the initial gap are
            excluded like diverged ones (a transient blow-up can inflate Adam's v and then
            converge fast; this keeps such runs out of the choice). Default: no limit.
        **hyper: the optimizer's hyper-parameters.

    Raises:
        ValueError: bad arguments, or every step size on the grid diverged.
    """
    check_problem(problem)
    steps = check_steps(steps)
    tol = check_positive(tol, name="tol")
    w0 = as_float_array(w0, name="w0", ndim=1)
    if w0.shape != (problem.d,):
        raise ValueError(f"w0 must have shape ({problem.d},), got {w0.shape}")
    error_gradient(problem, w0)
    if grid is None:
        grid = default_grid(problem, optimizer, w0=w0, steps=steps, **hyper)
    grid = as_float_array(grid, name="grid", ndim=1)
    if grid.size == 0:
        raise ValueError("grid must hold at least one step size")
    if np.any(grid <= 0):
        raise ValueError(f"grid must hold step sizes > 0, got min {grid.min():g}")
    gaps, logs = run(problem, optimizer, lr=grid, w0=w0, steps=steps, on_divergence="ignore",
                     log_gap=True, **hyper)
    diverged = divergence_steps(gaps)
    iters = iterations_to_tolerance(logs, tol, log=True)
    final = gaps[:, -1]
    ok = diverged < 0
    if max_rise is not None:
        max_rise = check_positive(max_rise, name="max_rise")
        with np.errstate(invalid="ignore"):
            ok &= np.max(logs, axis=1) <= np.log10(max_rise) + logs[:, 0]
    if not ok.any():
        raise ValueError(f"every step size in the grid [{grid.min():.3g}, {grid.max():.3g}] "
                         f"diverged (or rose above max_rise) for {optimizer}; try smaller steps")
    # rank: reached (fewest iterations) < not reached (smallest final gap) < diverged
    key_iters = np.where(ok, iters, np.inf)
    key_final = np.where(ok, logs[:, -1], np.inf)  # log: exact below float64's range too
    best = int(np.lexsort((key_final, key_iters))[0])
    return TuneResult(lr=float(grid[best]), grid=grid, iterations=iters, final_gap=final,
                      diverged=diverged, gaps=gaps[best], tol=tol,
                      at_edge=best in (0, grid.size - 1), log10_gaps=logs[best])
