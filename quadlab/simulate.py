"""Three ways to compute trajectories of an optimizer on a `Problem`, on validated inputs.

`closed_form` (linear iterations), `simulate_fused` (small blocks) and `simulate_blocked`
(large blocks). All take the errors e0 = w0 − w* of shape (n, d), step sizes lr of shape (n,),
and return `(gaps, stopped)` with gaps of shape (n, steps+1) and stopped of shape (n,)
(first step whose gap was non-finite or above `DIVERGENCE_FACTOR` × the initial gap — gaps +inf
from there — or whose state underflowed — gaps NaN from there; −1 if neither).
"""

from __future__ import annotations

import numba
import numpy as np

from . import kernels
from .noise import kernel_noise
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


def extended_range(spec: OptimizerSpec) -> bool:
    """True for the updates simulated in the extended range (`quadlab.kernels`): Adam or
    AdaBelief with β2 < 1 (scale-free with ε = 0; with ε > 0 the state can still dip below
    float64's range while √v̂ ≫ ε, and come back once ε takes over)."""
    return spec.code in (kernels.ADAM, kernels.ADABELIEF) and spec.beta2 < 1.0


def _extended(spec: OptimizerSpec, noise: tuple | None, extended: bool | None) -> bool:
    """Whether to run in the extended range: by default for the scale-free optimizers without
    gradient noise (noise is added in absolute units, the extended state is in mantissas)."""
    noisy = noise is not None and noise[0] != kernels.NOISE_NONE
    if extended is None:
        return extended_range(spec) and not noisy
    if extended and noisy:
        raise ValueError("the extended range runs without gradient noise only")
    return bool(extended)


def _log_out(log_out: np.ndarray | None) -> np.ndarray:
    return np.zeros((0, 0)) if log_out is None else log_out


def _kernel_args(spec: OptimizerSpec) -> tuple:
    return (spec.code, spec.beta1, spec.beta2, spec.eps, spec.bias_correction,
            not spec.bias_correction)


def simulate(problem: Problem, spec: OptimizerSpec, lr: np.ndarray, e0: np.ndarray,
             steps: int, **noise_options) -> tuple[np.ndarray, np.ndarray]:
    """Simulate step by step, choosing the fused or the blocked kernel by block size.

    `noise_options` (see `simulate_fused`): noise, state, stats_from, stats, log_out,
    extended.
    """
    if max(problem.block_sizes) <= FUSED_MAX_BLOCK:
        return simulate_fused(problem, spec, lr, e0, steps, **noise_options)
    return simulate_blocked(problem, spec, lr, e0, steps, **noise_options)


def _noise_args(problem, n, noise, state, stats):
    """Defaults: no noise (kernel tuple), dummy generator states, no statistics (n, 0)."""
    if noise is None:
        noise = kernel_noise(problem, None, 1)
    if state is None:
        state = np.zeros(n, dtype=np.uint64)
    if stats is None:
        stats = np.zeros((n, 0))
    return noise, np.ascontiguousarray(state, dtype=np.uint64), stats


def stats_size(problem: Problem) -> int:
    """S = 4d + 3 Σ_l d_l², the number of statistics `kernels.accumulate_stats` keeps per lane."""
    return 4 * problem.d + 3 * sum(s * s for s in problem.block_sizes)


def simulate_fused(problem, spec, lr, e0, steps, *, noise=None, state=None, stats_from=0,
                   stats=None, log_out=None, extended=None):
    """Chunks of trajectories run all their steps in one compiled loop; chunks in parallel.

    Args:
        noise: the kernel tuple of `quadlab.noise.kernel_noise` (default: no noise).
        state: per-trajectory generator counters, shape (n,) uint64 (`quadlab.rng.lane_states`).
        stats_from: first step whose statistics are accumulated.
        stats: output (n, `stats_size`) array, filled with the sums of `kernels.accumulate_stats`
            over steps stats_from..steps−1; None for no statistics.
        log_out: None, or an (n, steps+1) array that receives log10 of the gaps (exact in the
            extended range, where the gaps themselves may be below float64's range).
        extended: run in the extended range; None (default): for the scale-free optimizers
            (`extended_range`) without noise. False is the plain float64 arithmetic, which
            stops a lane on underflow (`trajectory_statistics`, whose sums need plain values).
    """
    n = e0.shape[0]
    out = np.empty((n, steps + 1))
    diverged = np.empty(n, dtype=np.int64)
    underflow = np.empty(n, dtype=np.int64)
    h_flat, h_off, c_off = packed_blocks(problem)
    code, b1, b2, eps, bias, paper = _kernel_args(spec)
    extended = _extended(spec, noise, extended)
    noise, state, acc = _noise_args(problem, n, noise, state, stats)
    kernels.simulate_fused(h_flat, h_off, c_off, np.ascontiguousarray(e0.T),
                           np.ascontiguousarray(lr), spec.coordinate_scale(problem), steps, code,
                           b1, b2, eps, bias, paper, DIVERGENCE_FACTOR, out, diverged, underflow,
                           numba.get_num_threads(), noise, state, stats_from, acc,
                           extended, _log_out(log_out))
    return out, _failures(diverged, underflow)


def _failures(diverged: np.ndarray, underflow: np.ndarray) -> np.ndarray:
    """One step per trajectory at which it stopped (−1: ran to the end); the gaps tell the kind:
    +inf from a divergence, NaN from an underflow."""
    return np.where(underflow >= 0, underflow, diverged)


def simulate_blocked(problem, spec, lr, e0, steps, *, noise=None, state=None, stats_from=0,
                     stats=None, log_out=None, extended=None):
    """Gradients of all trajectories at once, one BLAS matmul per block; compiled updates.

    The state is stored transposed, (d, n), so each block's rows are contiguous and
    G[block] = H_l @ E[block] writes in place. Noise, statistics and log gaps as in
    `simulate_fused`.
    """
    n = e0.shape[0]
    code, b1, b2, eps, bias, paper = _kernel_args(spec)
    scale = spec.coordinate_scale(problem)
    extended = _extended(spec, noise, extended)
    noise, state, out_stats = _noise_args(problem, n, noise, state, stats)
    state = state.copy()
    e = np.ascontiguousarray(e0.T)
    g = np.empty_like(e)
    slices, blocks = problem.block_slices, problem.blocks
    _, h_off, c_off = packed_blocks(problem)
    ext = kernels.ext_state(extended, problem.n_blocks, problem.d, n, eps)
    lr = np.ascontiguousarray(lr)
    kernels.ext_normalize(code, e, np.zeros_like(e), np.zeros_like(e), ext, c_off, lr, scale)
    acc = np.zeros((out_stats.shape[1], n))

    def gradient():
        for sl, b in zip(slices, blocks, strict=True):
            np.matmul(b, e[sl], out=g[sl])

    gradient()
    noisy = noise[0] != kernels.NOISE_NONE
    gn, z, idx = kernels.noise_buffers(noise, e)
    if noisy:
        kernels.noisy_gradient(noise, e, g, gn, z, state, idx)
    else:
        gn = g
    m, v = kernels.initial_moments(code, gn, paper)
    out = np.empty((n, steps + 1))
    log_out = _log_out(log_out)
    diverged = np.full(n, -1, dtype=np.int64)
    underflow = np.full(n, -1, dtype=np.int64)
    gaps = np.empty(n)
    logs = np.empty(n if log_out.shape[0] else 0)
    tiny = np.empty(n, dtype=np.bool_)
    kernels.gaps_and_logs(e, g, ext, c_off, gaps, logs, tiny)
    out[:, 0] = gaps
    if log_out.shape[0]:
        log_out[:, 0] = logs
    limit = DIVERGENCE_FACTOR * np.where(tiny, 1e-300, np.maximum(gaps, 1e-300))
    lr = np.ascontiguousarray(lr)
    flush = kernels.flush_thresholds(code, e)
    work = kernels.update_work(n)
    for t in range(steps):
        if noisy and t > 0:
            kernels.noisy_gradient(noise, e, g, gn, z, state, idx)
        if acc.shape[0] and t >= stats_from:
            kernels.accumulate_stats(e, g, gn, v, c_off, h_off, acc)
        kernels.update_lanes(code, e, gn, m, v, lr, scale, t, b1, b2, eps, bias, flush,
                             underflow, ext, c_off, work)
        gradient()
        if not kernels.record_common(e, g, ext[7], ext[8], c_off, gaps, limit, diverged,
                                     underflow, out, t + 1, log_out):
            kernels.record_step(e, g, m, v, gaps, limit, diverged, underflow, out, t, t + 1, ext,
                                c_off, logs, log_out, tiny)
    out_stats[:] = acc.T
    return out, _failures(diverged, underflow)


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
