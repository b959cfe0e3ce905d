"""`quadlab.run`: loss-gap trajectories of an optimizer on a quadratic, many at once."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from . import simulate as _sim
from .noise import NoiseModel, kernel_noise
from .optimizers import OptimizerSpec, make_optimizer
from .problem import Problem, check_problem, error_gradient
from .rng import lane_states
from .validation import (
    ArrayLike,
    SeedLike,
    as_float_array,
    check_choice,
    check_memory,
    check_steps,
)

METHODS = ("auto", "closed-form", "simulate")


class DivergenceWarning(UserWarning):
    """Some trajectories diverged; their gaps are +inf from the reported step on."""


class TrajectoryError(FloatingPointError):
    """Base of the errors raised by `run(..., on_divergence="raise")`.

    Attributes:
        rows: indices of the stopped trajectories.
        steps: the step at which each of them stopped.
    """

    def __init__(self, message: str, rows: np.ndarray, steps: np.ndarray):
        super().__init__(message)
        self.rows = rows
        self.steps = steps


class DivergenceError(TrajectoryError):
    """Raised by `run(..., on_divergence="raise")` for diverged trajectories."""


class UnderflowWarning(UserWarning):
    """Some trajectories left float64's range towards zero (Adam, AdaBelief in plain float64:
    with gradient noise); their gaps are NaN from the reported step on: float64 cannot tell what
    happens next (see `quadlab.kernels`)."""


class UnderflowError(TrajectoryError):
    """Raised by `run(..., on_divergence="raise")` for underflowed trajectories."""


class RunGaps(NamedTuple):
    """Loss gaps of `run(..., log_gap=True)`, both of shape (steps+1,) or (n, steps+1).

    Attributes:
        gap: L(w_t) − L* in float64; NaN where it is below float64's normal range (Adam and
            AdaBelief with ε = 0, β2 < 1 follow such dips exactly: see `log10_gap`) or where an
            ε > 0 run underflowed and stopped; +inf from a divergence on.
        log10_gap: log10(L(w_t) − L*) at every step, exact to rounding at any scale in the
            extended range (−inf for an exact 0, +inf after a divergence, NaN after an
            underflow stop).
    """

    gap: np.ndarray
    log10_gap: np.ndarray


def _first(mask: np.ndarray) -> np.ndarray:
    return np.where(mask.any(axis=-1), np.argmax(mask, axis=-1), -1)


def _gaps(gaps: np.ndarray) -> np.ndarray:
    arr = as_float_array(gaps, name="gaps", finite=False)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise ValueError(f"gaps must have shape (steps+1,) or (n, steps+1), got {arr.shape}")
    return arr


def divergence_steps(gaps: np.ndarray) -> np.ndarray:
    """First step at which each trajectory's gap is +inf (−1 where it never is).

    Works on the output of `run`: shape (steps+1,) gives a scalar array, (n, steps+1) gives (n,).

    Args:
        gaps: loss gaps from `run`, shape (T+1,) or (n, T+1).

    Raises:
        TypeError, ValueError: gaps not a real array of shape (T+1,) or (n, T+1).
    """
    return _first(np.isposinf(_gaps(gaps)))


def underflow_steps(gaps: np.ndarray) -> np.ndarray:
    """First step at which each trajectory's gap is NaN (−1 where it never is).

    NaN means the gap is not a float64 number: a noisy Adam/AdaBelief run that underflowed and
    stopped, or (β2 < 1, extended range) a gap below float64's range whose exact value is in
    `run(..., log_gap=True).log10_gap`.

    Args:
        gaps: loss gaps from `run`, shape (T+1,) or (n, T+1).

    Raises:
        TypeError, ValueError: gaps not a real array of shape (T+1,) or (n, T+1).
    """
    return _first(np.isnan(_gaps(gaps)))


_WHAT = {
    "diverged": (f"gap non-finite or above {_sim.DIVERGENCE_FACTOR:g} × its initial value. Their "
                 "gaps are +inf from that step on.", DivergenceWarning, DivergenceError),
    "underflowed": ("a coordinate of w − w* fell below 1e-290, outside float64's range; Adam-type "
                    "updates are scale-free and would grow it back, so the run cannot be "
                    "followed in float64. Their gaps are NaN from that step on (not converged).",
                    UnderflowWarning, UnderflowError),
}


def _describe(kind: str, rows: np.ndarray, steps: np.ndarray, n: int, limit: int = 8) -> str:
    items = ", ".join(f"row {r} at step {s}" for r, s in zip(rows[:limit], steps[:limit],
                                                              strict=True))
    more = f", … ({len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{len(rows)} of {n} trajectories {kind} ({items}{more}); {_WHAT[kind][0]}"


@dataclass(frozen=True)
class Prepared:
    """Validated inputs of a run: spec, step sizes (n,), errors e0 (n, d), noise tuple, lanes."""

    spec: OptimizerSpec
    lrs: np.ndarray
    e0: np.ndarray
    single: bool
    noise: tuple
    state: np.ndarray
    noisy: bool


def prepare(problem: Problem, optimizer: str, *, lr, w0, steps: int, noise, batch_size, seed,
            **hyper) -> Prepared:
    """Check and broadcast the inputs of `run` (shared with `quadlab.statistics`)."""
    check_problem(problem)
    spec = make_optimizer(optimizer, **hyper)
    check_steps(steps)
    lr_arr = as_float_array(lr, name="lr")
    if lr_arr.ndim > 1:
        raise ValueError(f"lr must be a scalar or 1-D, got shape {lr_arr.shape}")
    if lr_arr.size == 0:
        raise ValueError("lr is empty; pass a step size or a non-empty 1-D array of them")
    if np.any(lr_arr <= 0):
        raise ValueError(f"lr must be > 0, got min {lr_arr.min():g}")
    w0_arr = as_float_array(w0, name="w0")
    if w0_arr.ndim not in (1, 2) or w0_arr.shape[-1] != problem.d:
        raise ValueError(f"w0 must have shape ({problem.d},) or (n, {problem.d}), "
                         f"got {w0_arr.shape}")
    if w0_arr.size == 0:
        raise ValueError(f"w0 is empty (shape {w0_arr.shape}); pass at least one initial point")
    single = lr_arr.ndim == 0 and w0_arr.ndim == 1
    n_lr = 1 if lr_arr.ndim == 0 else lr_arr.shape[0]
    n_w = 1 if w0_arr.ndim == 1 else w0_arr.shape[0]
    if n_lr != n_w and 1 not in (n_lr, n_w):
        raise ValueError(f"lr has {n_lr} entries but w0 has {n_w} rows; they must match or one "
                         "must be single")
    n = max(n_lr, n_w)
    if noise is not None and isinstance(seed, list | tuple | np.ndarray):
        if len(seed) != n and n != 1:
            raise ValueError(f"seed has {len(seed)} entries but there are {n} trajectories")
        n = len(seed)  # one row per seed
        single = False
    # results: gaps (n, steps+1) and, in `run(log_gap=True)` and tuning, as many log gaps
    check_memory(2 * 8 * n * (steps + 1) + 8 * 8 * n * problem.d,
                 what=f"a run of {n} trajectories × {steps + 1} steps",
                 fix="use fewer steps or trajectories, or split them into several runs")
    lrs = np.broadcast_to(lr_arr.reshape(-1), (n,)).copy()
    error_gradient(problem, w0_arr)  # refuses points whose gap overflows
    e0 = np.broadcast_to(w0_arr.reshape(-1, problem.d), (n, problem.d)) - problem.w_star
    kernel = kernel_noise(problem, noise, batch_size)
    state = lane_states(seed, n) if noise is not None else np.zeros(n, dtype=np.uint64)

    if spec.name == "adam" and spec.beta2 == 1.0 and spec.eps == 0.0 and noise is None:
        zero_rows = np.flatnonzero(np.any(problem.matvec(e0) == 0.0, axis=1))
        if zero_rows.size:
            raise ValueError(
                f"the gradient at w0 has an exactly zero coordinate (row {zero_rows[0]}), so the "
                "simplified-Adam preconditioner diag(|∇L(w0)|)⁻¹ does not exist; pass eps > 0")
    return Prepared(spec, lrs, np.ascontiguousarray(e0), single, kernel, state,
                    noise is not None)


def report_divergence(gaps: np.ndarray, stopped: np.ndarray, on_divergence: str) -> None:
    """Warn or raise about diverged (+inf) and underflowed (NaN) rows (see `run`)."""
    if on_divergence == "ignore" or not (stopped >= 0).any():
        return
    rows = np.flatnonzero(stopped >= 0)
    nan = np.isnan(gaps[rows, stopped[rows]])
    for kind, sel in (("diverged", rows[~nan]), ("underflowed", rows[nan])):
        if sel.size:
            message = _describe(kind, sel, stopped[sel], stopped.size)
            _, warning, error = _WHAT[kind]
            if on_divergence == "raise":
                raise error(message, sel, stopped[sel])
            warnings.warn(message, warning, stacklevel=3)


def run(problem: Problem, optimizer: str, *, lr: ArrayLike, w0: ArrayLike, steps: int,
        method: Literal["auto", "closed-form", "simulate"] = "auto",
        on_divergence: Literal["warn", "raise", "ignore"] = "warn",
        noise: NoiseModel | None = None, batch_size: int = 1, seed: SeedLike = 0,
        log_gap: bool = False, **hyper: float | bool | Sequence[float] | None
        ) -> np.ndarray | RunGaps:
    """Run an optimizer on L(w) = ½ wᵀHw − hᵀw and return the loss gaps L(w_t) − L*.

    Broadcasting: `lr` (scalar or shape (n,)) and `w0` (shape (d,) or (n, d)) broadcast to n
    trajectories, computed in parallel; the result has shape (steps+1,) when both are single,
    else (n, steps+1), row i being trajectory i. With noise, a sequence of n seeds also makes
    n rows (row i uses seed[i]).

    Computation: linear iterations (GD, blockwise GD, Adam with β1 = 0, β2 = 1) use the closed
    form L(w_t) − L* = ½ Σ_j a_j (1 − η ν_j)^{2t} of their eigen-modes when `method="auto"`
    and there is no noise; everything else is simulated in float64 by numba kernels, on the
    error e = w − w* (so the gradient He has no cancellation near the optimum).

    Range: Adam and AdaBelief with β2 < 1 can dip far below float64's range and come back
    (Proposition 2; with ε > 0 while √v̂ ≫ ε, and back up once ε takes over). Without noise
    they run in an extended range (a float64 mantissa and a separate power-of-two exponent per
    block and moment, ε entering on √v̂'s scale; `quadlab.kernels`), exact since blocks do not
    interact and bit for bit float64 while nothing is out of range, so they never stop for
    underflow; a gap below float64's normal range is NaN in the float result (never 0.0)
    and exact in the log-gap (`log_gap=True`). With noise (added in absolute units) they run in
    plain float64, which stops a trajectory that underflows (NaN gaps and an `UnderflowWarning`).

    Noise (`quadlab.noise`): the optimizer sees a stochastic gradient g̃ with E[g̃] = He and
    covariance given by the model and `batch_size` (Gaussian: scale² Σ / B; least squares: the
    minibatch of B data rows); the result is still the true gap L(w_t) − L*. Each trajectory has
    its own random stream (`quadlab.rng`), so results do not depend on threads or chunking and
    row i of a batch equals a single run with the same per-row seed. Zero noise reproduces the
    deterministic simulation: `GaussianNoise(scale=0)` bitwise, `LeastSquaresNoise` with
    B = N rows drawn without replacement to round-off (the gradient is summed over rows).

    Args:
        problem: the quadratic.
        optimizer: "gd", "blockwise-gd", "sign-gd", "adam" or "adabelief"
            (see `quadlab.optimizers`).
        lr: step size(s) η > 0.
        w0: initial point(s).
        steps: number of iterations T; the result holds t = 0..T.
        method: "auto", "closed-form" (linear iterations without noise only) or "simulate".
        on_divergence: what to do when a trajectory diverges (gap non-finite or above
            `DIVERGENCE_FACTOR` × its start): "warn" (a `DivergenceWarning` naming rows and
            steps), "raise" (`DivergenceError`) or "ignore". Diverged gaps are +inf from the
            step of divergence on, in every case.
        noise: None (exact gradients), a `GaussianNoise` or a `LeastSquaresNoise`.
        batch_size: B >= 1 (<= N for least squares); only with a noise model.
        seed: the noise seed: an int >= 0 or SeedSequence (row i uses its i-th child stream), or
            one int per row (see `quadlab.rng.lane_states`). Ignored without noise.
        log_gap: also return log10 of the gaps (a `RunGaps`), exact at any scale in the
            extended range.
        **hyper: the optimizer's hyper-parameters (beta1, beta2, eps, bias_correction for Adam;
            beta1, beta2, eps for AdaBelief; block_scales for blockwise GD).

    Returns:
        Loss gaps, shape (steps+1,) or (n, steps+1); with `log_gap=True` a `RunGaps` of two
        such arrays.

    Raises:
        ValueError: bad problem, optimizer, hyper-parameter, shape, step size, method, noise
            model, batch size or seed; or simplified Adam (β2 = 1, ε = 0, no noise) from a
            point whose gradient has a zero coordinate (its preconditioner diag(|∇L(w0)|)⁻¹
            would not exist).
    """
    check_choice(method, METHODS, what="method")
    check_choice(on_divergence, ("warn", "raise", "ignore"), what="on_divergence")
    if not isinstance(log_gap, bool | np.bool_):
        raise TypeError(f"log_gap must be True or False, got {log_gap!r}")
    prep = prepare(problem, optimizer, lr=lr, w0=w0, steps=steps, noise=noise,
                   batch_size=batch_size, seed=seed, **hyper)
    spec = prep.spec
    if method == "closed-form" and (not spec.is_linear or prep.noisy):
        raise ValueError(f"method='closed-form' needs a linear iteration (gd, blockwise-gd, or "
                         f"adam with beta1=0, beta2=1, no bias correction) and no noise; got "
                         f"{spec.label()}" + (" with noise" if prep.noisy else ""))
    logs = None
    if prep.noisy or not (spec.is_linear and method != "simulate"):
        logs = np.empty((prep.lrs.size, steps + 1)) if log_gap else None
        gaps, diverged = _sim.simulate(problem, spec, prep.lrs, prep.e0, steps,
                                       noise=prep.noise, state=prep.state, log_out=logs)
    else:
        gaps, diverged = _sim.closed_form(problem, spec, prep.lrs, prep.e0, steps)
        if log_gap:
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log10(gaps)
    report_divergence(gaps, diverged, on_divergence)
    if log_gap:
        return RunGaps(gaps[0], logs[0]) if prep.single else RunGaps(gaps, logs)
    return gaps[0] if prep.single else gaps
