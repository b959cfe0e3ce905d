"""Three ways to compute trajectories of an optimizer on a `Problem`, on validated inputs.

`closed_form` (linear iterations), `simulate_fused` (small blocks) and `simulate_blocked`
(large blocks). All take the errors e0 = w0 − w* of shape (n, d), step sizes lr of shape (n,),
and return `(gaps, diverged)` with gaps of shape (n, steps+1) and diverged of shape (n,)
(first step whose gap was non-finite or above `DIVERGENCE_FACTOR` × the initial gap, −1 if none).
"""

from __future__ import annotations

import numba
import numpy as np

from . import kernels
from .optimizers import OptimizerSpec
from .problem import Problem

#: A trajectory whose gap exceeds this multiple of its initial gap is declared diverged.
DIVERGENCE_FACTOR = 1e30
#: Blocks up to this size use the fused per-trajectory kernel; larger ones BLAS per block.
FUSED_MAX_BLOCK = 12


def packed_blocks(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h_flat, h_off, c_off): the blocks row-major one after another, and their offsets."""
    sizes = np.array(problem.block_sizes, dtype=np.int64)
    h_off = np.concatenate([[0], np.cumsum(sizes * sizes)]).astype(np.int64)
    c_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    h_flat = np.concatenate([b.ravel() for b in problem.blocks])
    return h_flat, h_off, c_off


def _kernel_args(spec: OptimizerSpec) -> tuple:
    return (spec.code, spec.beta1, spec.beta2, spec.eps, spec.bias_correction,
            not spec.bias_correction)


def simulate(problem: Problem, spec: OptimizerSpec, lr: np.ndarray, e0: np.ndarray,
             steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate step by step, choosing the fused or the blocked kernel by block size."""
    if max(problem.block_sizes) <= FUSED_MAX_BLOCK:
        return simulate_fused(problem, spec, lr, e0, steps)
    return simulate_blocked(problem, spec, lr, e0, steps)


def simulate_fused(problem, spec, lr, e0, steps):
    """Chunks of trajectories run all their steps in one compiled loop; chunks in parallel."""
    n = e0.shape[0]
    out = np.empty((n, steps + 1))
    diverged = np.empty(n, dtype=np.int64)
    h_flat, h_off, c_off = packed_blocks(problem)
    code, b1, b2, eps, bias, paper = _kernel_args(spec)
    kernels.simulate_fused(h_flat, h_off, c_off, np.ascontiguousarray(e0.T),
                           np.ascontiguousarray(lr), spec.coordinate_scale(problem), steps, code,
                           b1, b2, eps, bias, paper, DIVERGENCE_FACTOR, out, diverged,
                           numba.get_num_threads())
    return out, diverged


def simulate_blocked(problem, spec, lr, e0, steps):
    """Gradients of all trajectories at once, one BLAS matmul per block; compiled updates.

    The state is stored transposed, (d, n), so each block's rows are contiguous and
    G[block] = H_l @ E[block] writes in place.
    """
    n = e0.shape[0]
    code, b1, b2, eps, bias, paper = _kernel_args(spec)
    scale = spec.coordinate_scale(problem)
    e = np.ascontiguousarray(e0.T)
    g = np.empty_like(e)
    slices, blocks = problem.block_slices, problem.blocks

    def gradient():
        for sl, b in zip(slices, blocks, strict=True):
            np.matmul(b, e[sl], out=g[sl])

    gradient()
    m, v = kernels.initial_moments(code, g, paper)
    out = np.empty((n, steps + 1))
    diverged = np.full(n, -1, dtype=np.int64)
    gaps = np.empty(n)
    kernels.half_column_dots(e, g, gaps)
    out[:, 0] = gaps
    limit = DIVERGENCE_FACTOR * np.maximum(gaps, 1e-300)
    lr = np.ascontiguousarray(lr)
    flush = kernels.FLUSH * np.max(np.abs(e), axis=0)
    for t in range(steps):
        kernels.update_lanes(code, e, g, m, v, lr, scale, t, b1, b2, eps, bias, flush)
        gradient()
        kernels.record_step(e, g, m, v, gaps, limit, diverged, out, t)
    return out, diverged


def linear_modes(problem: Problem, spec: OptimizerSpec, e0: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rates ν and weights a of the linear iteration e ← (I − η P H) e, per trajectory.

    With M = P^{1/2} H P^{1/2} = U diag(ν) Uᵀ (P without η) and c = Uᵀ P^{-1/2} e0:
    L(w_t) − L* = ½ Σ_j a_j (1 − η ν_j)^{2t} with a_j = ν_j c_j² (see `kernels.closed_form_linear`).

    * GD / blockwise GD: P_l = s_l I, so ν = s_l λ(H_l) and U = Q_l — one eigendecomposition
      for all trajectories.
    * simplified Adam (β1 = 0, β2 = 1): P = diag(|g0| + ε)⁻¹, one eigendecomposition of the
      symmetric D^{-1/2} H_l D^{-1/2} per block and trajectory (D = |g0| + ε).

    Returns:
        (nu, a), both of shape (n, d).
    """
    n = e0.shape[0]
    nu = np.empty((n, problem.d))
    a = np.empty((n, problem.d))
    if spec.name in ("gd", "blockwise-gd"):
        scale = spec.coordinate_scale(problem)
        for sl, lam, q in zip(problem.block_slices, problem.eigenvalues, problem.eigenvectors,
                              strict=True):
            c = e0[:, sl] @ q
            nu[:, sl] = scale[sl] * lam
            a[:, sl] = lam * c * c
        return nu, a
    g0 = problem.matvec(e0)
    dsq = np.sqrt(np.abs(g0) + spec.eps)  # D^{1/2}
    for sl, b in zip(problem.block_slices, problem.blocks, strict=True):
        inv = 1.0 / dsq[:, sl]
        mat = inv[:, :, None] * b[None, :, :] * inv[:, None, :]
        mu, u = np.linalg.eigh(mat)
        c = np.einsum("nij,ni->nj", u, dsq[:, sl] * e0[:, sl])
        nu[:, sl] = mu
        a[:, sl] = mu * c * c
    return nu, a


def closed_form(problem, spec, lr, e0, steps):
    """Exact trajectories of a linear iteration from its eigen-modes (no step-by-step loop)."""
    # a step-size sweep from one w0 repeats rows: decompose each distinct row once
    uniq, inverse = np.unique(e0, axis=0, return_inverse=True)
    nu, a = linear_modes(problem, spec, uniq)
    nu, a = np.ascontiguousarray(nu[inverse.ravel()]), np.ascontiguousarray(a[inverse.ravel()])
    n = e0.shape[0]
    out = np.empty((n, steps + 1))
    diverged = np.empty(n, dtype=np.int64)
    kernels.closed_form_linear(nu, a, np.ascontiguousarray(lr), steps, DIVERGENCE_FACTOR, out,
                               diverged)
    return out, diverged
