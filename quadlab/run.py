"""`quadlab.run`: loss-gap trajectories of an optimizer on a quadratic, many at once."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from . import simulate as _sim
from .optimizers import make_optimizer
from .problem import Problem
from .validation import as_float_array, check_choice, check_steps

METHODS = ("auto", "closed-form", "simulate")


class DivergenceWarning(UserWarning):
    """Some trajectories diverged; their gaps are +inf from the reported step on."""


class DivergenceError(FloatingPointError):
    """Raised by `run(..., on_divergence="raise")`.

    Attributes:
        rows: indices of the diverged trajectories.
        steps: the step at which each of them diverged.
    """

    def __init__(self, message: str, rows: np.ndarray, steps: np.ndarray):
        super().__init__(message)
        self.rows = rows
        self.steps = steps


def divergence_steps(gaps: np.ndarray) -> np.ndarray:
    """First step at which each trajectory's gap is +inf (−1 where it never is).

    Works on the output of `run`: shape (steps+1,) gives a scalar array, (n, steps+1) gives (n,).
    """
    gaps = np.asarray(gaps)
    bad = ~np.isfinite(gaps)
    first = np.argmax(bad, axis=-1)
    return np.where(bad.any(axis=-1), first, -1)


def _describe(rows: np.ndarray, steps: np.ndarray, n: int, limit: int = 8) -> str:
    items = ", ".join(f"row {r} at step {s}" for r, s in zip(rows[:limit], steps[:limit],
                                                              strict=True))
    more = f", … ({len(rows) - limit} more)" if len(rows) > limit else ""
    return (f"{len(rows)} of {n} trajectories diverged ({items}{more}); gap non-finite or above "
            f"{_sim.DIVERGENCE_FACTOR:g} × its initial value. Their gaps are +inf from that step "
            "on.")


def run(problem: Problem, optimizer: str, *, lr, w0, steps: int,
        method: Literal["auto", "closed-form", "simulate"] = "auto",
        on_divergence: Literal["warn", "raise", "ignore"] = "warn", **hyper) -> np.ndarray:
    """Run an optimizer on L(w) = ½ wᵀHw − hᵀw and return the loss gaps L(w_t) − L*.

    Broadcasting: `lr` (scalar or shape (n,)) and `w0` (shape (d,) or (n, d)) broadcast to n
    trajectories, computed in parallel; the result has shape (steps+1,) when both are single,
    else (n, steps+1), row i being trajectory i.

    Computation: linear iterations (GD, blockwise GD, Adam with β1 = 0, β2 = 1) use the closed
    form L(w_t) − L* = ½ Σ_j a_j (1 − η ν_j)^{2t} of their eigen-modes when `method="auto"`;
    everything else is simulated in float64 by numba kernels, on the error e = w − w* (so the
    gradient He has no cancellation near the optimum).

    Args:
        problem: the quadratic.
        optimizer: "gd", "blockwise-gd", "sign-gd" or "adam" (see `quadlab.optimizers`).
        lr: step size(s) η > 0.
        w0: initial point(s).
        steps: number of iterations T; the result holds t = 0..T.
        method: "auto", "closed-form" (linear iterations only) or "simulate".
        on_divergence: what to do when a trajectory diverges (gap non-finite or above
            `DIVERGENCE_FACTOR` × its start): "warn" (a `DivergenceWarning` naming rows and
            steps), "raise" (`DivergenceError`) or "ignore". Diverged gaps are +inf from the
            step of divergence on, in every case.
        **hyper: the optimizer's hyper-parameters (beta1, beta2, eps, bias_correction for Adam;
            block_scales for blockwise GD).

    Returns:
        Loss gaps, shape (steps+1,) or (n, steps+1).

    Raises:
        ValueError: bad problem, optimizer, hyper-parameter, shape, step size or method; or
            simplified Adam (β2 = 1, ε = 0) from a point whose gradient has a zero coordinate
            (its preconditioner diag(|∇L(w0)|)⁻¹ would not exist).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a quadlab.Problem, got {type(problem).__name__}")
    spec = make_optimizer(optimizer, **hyper)
    check_choice(method, METHODS, what="method")
    check_choice(on_divergence, ("warn", "raise", "ignore"), what="on_divergence")
    steps = check_steps(steps)
    lr_arr = as_float_array(lr, name="lr")
    if lr_arr.ndim > 1:
        raise ValueError(f"lr must be a scalar or 1-D, got shape {lr_arr.shape}")
    if np.any(lr_arr <= 0):
        raise ValueError(f"lr must be > 0, got min {lr_arr.min():g}")
    w0_arr = as_float_array(w0, name="w0")
    if w0_arr.ndim not in (1, 2) or w0_arr.shape[-1] != problem.d:
        raise ValueError(f"w0 must have shape ({problem.d},) or (n, {problem.d}), "
                         f"got {w0_arr.shape}")
    single = lr_arr.ndim == 0 and w0_arr.ndim == 1
    n_lr = 1 if lr_arr.ndim == 0 else lr_arr.shape[0]
    n_w = 1 if w0_arr.ndim == 1 else w0_arr.shape[0]
    if n_lr != n_w and 1 not in (n_lr, n_w):
        raise ValueError(f"lr has {n_lr} entries but w0 has {n_w} rows; they must match or one "
                         "must be single")
    n = max(n_lr, n_w)
    lrs = np.broadcast_to(lr_arr.reshape(-1), (n,)).copy()
    e0 = np.broadcast_to(w0_arr.reshape(-1, problem.d), (n, problem.d)) - problem.w_star

    if spec.name == "adam" and spec.beta2 == 1.0 and spec.eps == 0.0:
        zero_rows = np.flatnonzero(np.any(problem.matvec(e0) == 0.0, axis=1))
        if zero_rows.size:
            raise ValueError(
                f"the gradient at w0 has an exactly zero coordinate (row {zero_rows[0]}), so the "
                "simplified-Adam preconditioner diag(|∇L(w0)|)⁻¹ does not exist; pass eps > 0")

    if method == "closed-form" and not spec.is_linear:
        raise ValueError(f"method='closed-form' needs a linear iteration (gd, blockwise-gd, or "
                         f"adam with beta1=0, beta2=1, no bias correction); got {spec.label()}")
    use_closed = spec.is_linear and method != "simulate"
    compute = _sim.closed_form if use_closed else _sim.simulate
    gaps, diverged = compute(problem, spec, lrs, e0, steps)

    rows = np.flatnonzero(diverged >= 0)
    if rows.size and on_divergence != "ignore":
        message = _describe(rows, diverged[rows], n)
        if on_divergence == "raise":
            raise DivergenceError(message, rows, diverged[rows])
        warnings.warn(message, DivergenceWarning, stacklevel=2)
    return gaps[0] if single else gaps
