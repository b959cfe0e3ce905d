"""numba kernels of the lab. Private: call them through `quadlab.run`, which validates inputs.

All kernels iterate on the error e = w − w* rather than on w: the gradient is g = He exactly
(∇L(w) = Hw − h = H(w − w*)), and the loss gap is ½ eᵀg, so neither suffers the cancellation of
Hw − h near the optimum. Divergence: a trajectory whose gap is non-finite or exceeds
`diverge_factor` × its initial gap is stopped; its gaps are +inf from that step on and the step is
recorded in `diverged` (−1 = did not diverge).

Two simulation strategies share one update rule (`_update_coord`):
* `simulate_fused` — everything per trajectory in one compiled loop, trajectories in parallel:
  best for small blocks (the 9-dimensional simplified cases).
* `simulate_blocked` (in `simulate.py`) — the gradient of all trajectories by one BLAS matmul per
  block, the elementwise update by `update_columns`: best for larger blocks.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# optimizer codes (see optimizers.py)
GD = 0  # also blockwise GD: the per-coordinate `scale` carries the block step sizes
SIGN = 1
ADAM = 2
ADABELIEF = 3

_NB = {"cache": True, "nogil": True, "error_model": "numpy"}


@nb.njit(**_NB)
def _update_coord(code, gi, mi, vi, t, lr_i, beta1, beta2, eps, bias_correction):
    """Update of one coordinate at step t (0-based). Returns (Δ, m_new, v_new), Δ to subtract.

    GD:   Δ = lr·g.   Sign: Δ = lr·sign(g).
    Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², Δ = lr·m̂/(√v̂ + ε), where m̂ = m, v̂ = v
          unless bias correction divides by (1 − β^{t+1}).
    AdaBelief: as Adam with v ← β2 v + (1−β2)(g − m)² (m the new first moment).
    """
    if code == GD:
        return lr_i * gi, mi, vi
    if code == SIGN:
        s = 0.0
        if gi > 0:
            s = 1.0
        elif gi < 0:
            s = -1.0
        return lr_i * s, mi, vi
    m_new = beta1 * mi + (1.0 - beta1) * gi
    if code == ADAM:
        v_new = beta2 * vi + (1.0 - beta2) * gi * gi
    else:
        dev = gi - m_new
        v_new = beta2 * vi + (1.0 - beta2) * dev * dev
    mh = m_new
    vh = v_new
    if bias_correction:
        mh = m_new / (1.0 - beta1 ** (t + 1))
        vh = v_new / (1.0 - beta2 ** (t + 1))
    den = math.sqrt(vh) + eps
    if mh == 0.0:
        return 0.0, m_new, v_new
    return lr_i * mh / den, m_new, v_new


@nb.njit(**_NB)
def _initial_moments(code, g0, paper_init):
    """First/second moments *before* step 0: the paper's convention starts them at g0 and g0⊙g0
    (so β2 = 1 keeps v = g0² forever); `paper_init=False` starts them at zero (PyTorch)."""
    d = g0.size
    m = np.zeros(d)
    v = np.zeros(d)
    if paper_init:
        for c in range(d):
            m[c] = g0[c]
            if code == ADAM:
                v[c] = g0[c] * g0[c]
            # AdaBelief's v tracks (g − m)²; with m starting at g0 its natural start is 0.
    return m, v


@nb.njit(**_NB)
def _block_matvec(h_flat, h_off, c_off, x, out):
    """out = H x for block-diagonal H stored block after block (row-major) in `h_flat`."""
    for b in range(c_off.size - 1):
        c0 = c_off[b]
        n = c_off[b + 1] - c0
        base = h_off[b]
        for i in range(n):
            acc = 0.0
            row = base + i * n
            for j in range(n):
                acc += h_flat[row + j] * x[c0 + j]
            out[c0 + i] = acc


@nb.njit(parallel=True, **_NB)
def simulate_fused(h_flat, h_off, c_off, e0, lr, scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out, diverged):
    """Simulate n trajectories (rows of e0) for `steps` steps; gaps into out (n, steps+1)."""
    n, d = e0.shape
    for i in nb.prange(n):
        e = e0[i].copy()
        g = np.empty(d)
        _block_matvec(h_flat, h_off, c_off, e, g)
        gap0 = 0.0
        for c in range(d):
            gap0 += e[c] * g[c]
        gap0 *= 0.5
        out[i, 0] = gap0
        limit = diverge_factor * max(gap0, 1e-300)
        m, v = _initial_moments(code, g, paper_init)
        diverged[i] = -1
        for t in range(steps):
            for c in range(d):
                delta, mc, vc = _update_coord(code, g[c], m[c], v[c], t, lr[i] * scale[c],
                                              beta1, beta2, eps, bias_correction)
                m[c] = mc
                v[c] = vc
                e[c] -= delta
            _block_matvec(h_flat, h_off, c_off, e, g)
            gap = 0.0
            for c in range(d):
                gap += e[c] * g[c]
            gap *= 0.5
            if not (gap <= limit):  # catches NaN too
                diverged[i] = t + 1
                for s in range(t + 1, steps + 1):
                    out[i, s] = np.inf
                break
            out[i, t + 1] = gap


@nb.njit(parallel=True, **_NB)
def update_columns(e, g, m, v, lr, scale, t, code, beta1, beta2, eps, bias_correction, alive):
    """One update of every live column of the (d, n) state arrays, in place."""
    d, n = e.shape
    for i in nb.prange(n):
        if not alive[i]:
            continue
        for c in range(d):
            delta, mc, vc = _update_coord(code, g[c, i], m[c, i], v[c, i], t,
                                          lr[i] * scale[c], beta1, beta2, eps, bias_correction)
            m[c, i] = mc
            v[c, i] = vc
            e[c, i] -= delta


@nb.njit(parallel=True, **_NB)
def half_column_dots(e, g, out):
    """out[i] = ½ Σ_c e[c, i] g[c, i] (the loss gap of each column)."""
    d, n = e.shape
    for i in nb.prange(n):
        acc = 0.0
        for c in range(d):
            acc += e[c, i] * g[c, i]
        out[i] = 0.5 * acc


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
