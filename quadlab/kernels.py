"""numba kernels of the lab. Private: call them through `quadlab.run`, which validates inputs.

Conventions:
* All kernels iterate on the error e = w − w* rather than on w: the gradient is g = He exactly
  (∇L(w) = Hw − h = H(w − w*)), and the loss gap is ½ eᵀg, so neither suffers the cancellation
  of Hw − h near the optimum.
* State arrays are stored "lanes last": shape (d, n), one column per trajectory, so every
  elementwise loop runs over contiguous trajectories and vectorises (SIMD across trajectories).
* Divergence: a trajectory whose gap is non-finite or exceeds `diverge_factor` × its initial gap
  is stopped; its gaps are +inf from that step on and the step is recorded in `diverged`
  (−1 = did not diverge).
* Subnormal numbers: a coordinate of e whose magnitude falls below FLUSH × ‖e0‖_∞ is set to
  zero. Its share of the gap is then below FLUSH² ≈ 1e-280 of the initial gap — invisible in
  float64 — while subnormal arithmetic would make the fast modes of a converged block
  ~100× slower on x86.

Two simulation strategies share the update rule `update_lanes`:
* `simulate_fused` — chunks of up to `MAX_LANES` trajectories run all their steps in one
  compiled loop (state in L1 cache), chunks in parallel: best for small blocks.
* `simulate.simulate_blocked` — the gradient of all trajectories by one BLAS matmul per block,
  then `update_lanes` on the whole state: best for larger blocks.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# optimizer codes (see optimizers.py)
GD = 0  # also blockwise GD: the per-coordinate `scale` carries the block step sizes
SIGN = 1
ADAM = 2

#: relative magnitude under which a coordinate of the error e is flushed to zero
FLUSH = 1e-140
#: largest number of trajectories per chunk of the fused kernel (SIMD runs across a chunk)
MAX_LANES = 64

_NB = {"cache": True, "nogil": True, "error_model": "numpy"}


@nb.njit(**_NB)
def update_lanes(code, e, g, m, v, lr, scale, t, beta1, beta2, eps, bias_correction, flush):
    """One optimizer step on the (d, n) state, in place: e ← e − Δ(g, m, v).

    GD:   Δ = lr·s_c·g.   Sign: Δ = lr·s_c·sign(g).
    Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², Δ = lr·m̂/(√v̂ + ε), where m̂ = m, v̂ = v
          unless bias correction divides them by (1 − β1^{t+1}) and (1 − β2^{t+1}); a
          coordinate with m̂ = 0 does not move.
    Entries of e below flush[k] are set to zero afterwards.
    """
    d, n = e.shape
    c1 = 1.0
    c2 = 1.0
    if bias_correction:
        c1 = 1.0 / (1.0 - beta1 ** (t + 1))
        c2 = 1.0 / (1.0 - beta2 ** (t + 1))
    for c in range(d):
        if code == GD:
            for k in range(n):
                e[c, k] -= lr[k] * scale[c] * g[c, k]
        elif code == SIGN:
            for k in range(n):
                gk = g[c, k]
                s = 1.0 if gk > 0 else (-1.0 if gk < 0 else 0.0)
                e[c, k] -= lr[k] * scale[c] * s
        else:
            for k in range(n):
                gk = g[c, k]
                mk = beta1 * m[c, k] + (1.0 - beta1) * gk
                vk = beta2 * v[c, k] + (1.0 - beta2) * gk * gk
                m[c, k] = mk
                v[c, k] = vk
                mh = mk * c1
                step = 0.0
                if mh != 0.0:
                    step = lr[k] * scale[c] * mh / (math.sqrt(vk * c2) + eps)
                e[c, k] -= step
        for k in range(n):
            if abs(e[c, k]) < flush[k]:
                e[c, k] = 0.0


@nb.njit(fastmath={"reassoc", "contract"}, **_NB)
def block_matmul(h_flat, h_off, c_off, e, g):
    """g = H e for block-diagonal H (blocks row-major one after another in `h_flat`), (d, n)."""
    n = e.shape[1]
    for b in range(c_off.size - 1):
        c0 = c_off[b]
        size = c_off[b + 1] - c0
        base = h_off[b]
        for i in range(size):
            for k in range(n):
                g[c0 + i, k] = 0.0
            for j in range(size):
                hij = h_flat[base + i * size + j]
                for k in range(n):
                    g[c0 + i, k] += hij * e[c0 + j, k]


@nb.njit(**_NB)
def half_column_dots(e, g, out):
    """out[k] = ½ Σ_c e[c, k] g[c, k] (the loss gap of each trajectory)."""
    d, n = e.shape
    for k in range(n):
        out[k] = 0.0
    for c in range(d):
        for k in range(n):
            out[k] += e[c, k] * g[c, k]
    for k in range(n):
        out[k] *= 0.5


@nb.njit(**_NB)
def record_step(e, g, m, v, gaps, limit, diverged, out, t):
    """Gaps of step t+1 into out[:, t+1]; lanes whose gap is non-finite or above `limit` are
    marked diverged at t+1, get +inf from now on, and are parked at zero (finite and cheap)."""
    d, n = e.shape
    half_column_dots(e, g, gaps)
    for k in range(n):
        if diverged[k] >= 0:
            out[k, t + 1] = np.inf
        elif gaps[k] <= limit[k]:  # False for NaN too
            out[k, t + 1] = gaps[k]
        else:
            diverged[k] = t + 1
            out[k, t + 1] = np.inf
            for c in range(d):
                e[c, k] = 0.0
                g[c, k] = 0.0
                m[c, k] = 0.0
                v[c, k] = 1.0


@nb.njit(**_NB)
def initial_moments(code, g, paper_init):
    """Moments *before* step 0: the paper's convention starts them at g0 and g0⊙g0 (so β2 = 1
    keeps v = g0² for ever); `paper_init=False` starts them at zero (PyTorch)."""
    m = np.zeros_like(g)
    v = np.zeros_like(g)
    if paper_init and code == ADAM:
        m[:] = g
        v[:] = g * g
    return m, v


@nb.njit(**_NB)
def _run_chunk(h_flat, h_off, c_off, e, lr, scale, steps, code, beta1, beta2, eps,
               bias_correction, paper_init, diverge_factor, out, diverged):
    """All steps for one chunk: e (d, n) in place, gaps into out (n, steps+1)."""
    d, n = e.shape
    flush = np.empty(n)
    for k in range(n):
        mx = 0.0
        for c in range(d):
            mx = max(mx, abs(e[c, k]))
        flush[k] = FLUSH * mx
    g = np.empty_like(e)
    block_matmul(h_flat, h_off, c_off, e, g)
    gaps = np.empty(n)
    half_column_dots(e, g, gaps)
    limit = np.empty(n)
    for k in range(n):
        out[k, 0] = gaps[k]
        limit[k] = diverge_factor * max(gaps[k], 1e-300)
        diverged[k] = -1
    m, v = initial_moments(code, g, paper_init)
    for t in range(steps):
        update_lanes(code, e, g, m, v, lr, scale, t, beta1, beta2, eps, bias_correction, flush)
        block_matmul(h_flat, h_off, c_off, e, g)
        record_step(e, g, m, v, gaps, limit, diverged, out, t)


@nb.njit(parallel=True, **_NB)
def simulate_fused(h_flat, h_off, c_off, e0t, lr, scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out, diverged, threads):
    """Simulate the trajectories e0t[:, k] (shape (d, n)) in chunks, chunks in parallel.

    Chunks hold up to MAX_LANES trajectories but are made small enough to feed `threads`.
    """
    n = e0t.shape[1]
    lanes = min(MAX_LANES, max(8, (n + threads - 1) // threads))
    n_chunks = (n + lanes - 1) // lanes
    for ch in nb.prange(n_chunks):
        lo = ch * lanes
        hi = min(n, lo + lanes)
        e = np.ascontiguousarray(e0t[:, lo:hi])
        _run_chunk(h_flat, h_off, c_off, e, lr[lo:hi], scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out[lo:hi], diverged[lo:hi])


@nb.njit(parallel=True, **_NB)
def closed_form_linear(nu, a, lr, steps, diverge_factor, out, diverged):
    """Loss gaps of the linear iteration e ← (I − lr·P H) e in its eigenbasis.

    With M = P^{1/2} H P^{1/2} = U diag(ν) Uᵀ and c = Uᵀ P^{-1/2} e0, the gap is
        L(w_t) − L* = ½ Σ_j a_j (1 − lr·ν_j)^{2t},   a_j = ν_j c_j²,
    (for P = I: ν = λ(H), a_j = λ_j (Qᵀe0)_j²). Row i uses nu[i], a[i], lr[i].
    Terms below 1e-300 are dropped (they cannot change a float64 sum and would be subnormal).
    """
    n, d = nu.shape
    for i in nb.prange(n):
        for s in range(steps + 1):
            out[i, s] = 0.0
        for j in range(d):
            rho = 1.0 - lr[i] * nu[i, j]
            rho *= rho
            val = 0.5 * a[i, j]
            for s in range(steps + 1):
                if val < 1e-300:
                    break
                out[i, s] += val
                val *= rho
        gap0 = out[i, 0]
        limit = diverge_factor * max(gap0, 1e-300)
        diverged[i] = -1
        for s in range(1, steps + 1):
            if not (out[i, s] <= limit):
                diverged[i] = s
                for k in range(s, steps + 1):
                    out[i, k] = np.inf
                break
