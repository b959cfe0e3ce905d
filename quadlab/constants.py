"""The constants of Theorem 1: C_{l,1}, C_{l,2}, r and κ_Adam,l.

As printed in the paper (§3.2): with λ_{l,1} the largest eigenvalue of H_l and g0 = ∇L(w0),

    C_{l,1} = min_i |g0_{l,i}| / λ_{l,1},     C_{l,2} = max_i |g0_{l,i}| / λ_{l,1},
    r = max_l C_{l,2}² / min_l C_{l,1}²,      κ_Adam,l = r κ_l,

and Theorem 1 bounds simplified Adam's complexity by Õ(r · max_l κ_l).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problem import Problem, check_problem, error_gradient
from .validation import as_float_array, check_count, check_memory


@dataclass(frozen=True)
class AdamConstants:
    """Theorem 1's constants for one initial point.

    Attributes:
        C1: C_{l,1} per block, shape (L,).
        C2: C_{l,2} per block, shape (L,).
        r: max_l C_{l,2}² / min_l C_{l,1}² (inf if a gradient coordinate is exactly zero).
        kappa_blocks: κ_l per block, shape (L,).
        kappa_adam: κ_Adam,l = r κ_l per block, shape (L,).
        grad0: ∇L(w0) = H(w0 − w*) (the gradient `quadlab.run` uses), shape (d,).
    """

    C1: np.ndarray
    C2: np.ndarray
    r: float
    kappa_blocks: np.ndarray
    kappa_adam: np.ndarray
    grad0: np.ndarray


def _block_extremes(problem: Problem, abs_grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """min_i and max_i of |g| within each block; abs_grad of shape (n, d) → two (n, L) arrays."""
    mins = np.stack([abs_grad[:, sl].min(axis=1) for sl in problem.block_slices], axis=1)
    maxs = np.stack([abs_grad[:, sl].max(axis=1) for sl in problem.block_slices], axis=1)
    return mins, maxs


def _r_from_grads(problem: Problem, grads: np.ndarray) -> tuple[np.ndarray, ...]:
    lam1 = problem.lambda_max_blocks
    mins, maxs = _block_extremes(problem, np.abs(grads))
    c1, c2 = mins / lam1, maxs / lam1
    lo = np.min(c1, axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # a zero gradient coordinate (also w0 = w*, where every one is) makes r infinite:
        # Theorem 1's bound is then vacuous, as its docstring says
        r = np.where(lo > 0, np.max(c2, axis=1) ** 2 / np.where(lo > 0, lo, 1.0) ** 2, np.inf)
    return c1, c2, r


def adam_constants(problem: Problem, w0: np.ndarray) -> AdamConstants:
    """Theorem 1's C_{l,1}, C_{l,2}, r, κ_l and κ_Adam,l at the initial point `w0`.

    C_{l,1} = min_i |g0_{l,i}| / λ_{l,1}, C_{l,2} = max_i |g0_{l,i}| / λ_{l,1},
    r = max_l C_{l,2}² / min_l C_{l,1}² (+inf when a coordinate of g0 = ∇L(w0) is exactly 0,
    e.g. at w0 = w*), κ_Adam,l = r κ_l.

    Args:
        problem: the quadratic.
        w0: the initial point, shape (d,).

    Returns:
        The constants (`AdamConstants`).

    Raises:
        TypeError: problem not a `Problem`, w0 not real numeric.
        ValueError: w0 of the wrong shape or not finite.
    """
    check_problem(problem)
    w0 = as_float_array(w0, name="w0", ndim=1)
    if w0.shape != (problem.d,):
        raise ValueError(f"w0 must have shape ({problem.d},), got {w0.shape}")
    g0 = error_gradient(problem, w0)[1]  # = Hw0 − h, without its cancellation near w*
    c1, c2, r = _r_from_grads(problem, g0[None, :])
    kappa_blocks = problem.kappa_blocks
    return AdamConstants(C1=c1[0], C2=c2[0], r=float(r[0]), kappa_blocks=kappa_blocks,
                         kappa_adam=float(r[0]) * kappa_blocks, grad0=g0)


def estimate_r(problem: Problem, trials: int, seed: int | np.random.Generator = 0, *,
               std: float = 1.0) -> np.ndarray:
    """Monte-Carlo sample of r over initial points w0 ~ N(0, std² I).

    Args:
        problem: the quadratic.
        trials: number of initial points.
        seed: int or `numpy.random.Generator` for the initial points.
        std: standard deviation of each coordinate of w0 (the paper: standard Gaussian).

    Returns:
        r for each trial, shape (trials,).

    Raises:
        TypeError, ValueError: bad problem, trials (an integer >= 1), seed or std.
    """
    check_problem(problem)
    trials = check_count(trials, name="trials")
    check_memory(8 * trials * problem.d * 3, what=f"estimate_r with {trials} trials",
                 fix="use fewer trials")
    w0 = problem.initial_points(int(trials), seed=seed, std=std)
    return _r_from_grads(problem, problem.matvec(w0 - problem.w_star))[2]
