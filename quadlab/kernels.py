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
* Subnormal numbers (GD only): a coordinate of e whose magnitude falls below FLUSH × ‖e0‖_∞ is
  set to zero. GD is linear, so its share of the gap stays below FLUSH² ≈ 1e-280 of the initial
  gap — invisible in float64 — while subnormal arithmetic would make the fast modes of a
  converged block ~100× slower on x86.
* Underflow (Adam, AdaBelief): with β2 < 1 and √v̂ > ε these updates are scale-free, so a
  coordinate that shrinks towards 0 can grow back (Proposition 2: w dips to 1e-1000 and returns
  to the cycle ±η/2). float64 cannot follow that: when such a coordinate falls below UNDERFLOW
  (absolute, just above the subnormal range) the lane is stopped, recorded in `underflow`, and
  its gaps are NaN from that step on — never reported as convergence. Where the update is a
  linear contraction (β2 = 1, or ε-dominated) small coordinates are flushed as for GD. Sign
  descent moves by ±η per coordinate and neither flushes nor underflows.

Gradient noise (`quadlab.noise`): the optimizer may see a stochastic gradient g̃ instead of
g = He (`noisy_gradient`, one counter-based random stream per trajectory, seeded by
`quadlab.rng`, so a trajectory does not depend on chunking or threads); the recorded gap stays
½ eᵀHe. Without noise g̃ *is* g (the same array), so the deterministic runs are unchanged. The
generator lives in this file so that numba's cache sees its changes (it tracks one file).

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
ADABELIEF = 3

# noise codes (see noise.py)
NOISE_NONE = 0
NOISE_GAUSSIAN = 1
NOISE_LEAST_SQUARES = 2

#: relative magnitude under which a coordinate of the error e is flushed to zero (GD)
FLUSH = 1e-140
#: absolute magnitude under which a coordinate of e has underflowed (Adam, AdaBelief)
UNDERFLOW = 1e-290
#: largest number of trajectories per chunk of the fused kernel (SIMD runs across a chunk)
MAX_LANES = 64
#: steps of gaps a fused chunk keeps in L1 before writing them to its rows of `out`
GAP_BUFFER = 32

_NB = {"cache": True, "nogil": True, "error_model": "numpy"}


# ------------------------------------------------------------------ random numbers (quadlab.rng)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 2.0**-53


@nb.njit(**_NB)
def next_u64(state, k):
    """Advance lane k's counter and return the splitmix64 output (uint64)."""
    s = state[k] + _GAMMA
    state[k] = s
    z = (s ^ (s >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(**_NB)
def uniform(state, k):
    """A uniform double in [0, 1) with 53 random bits, from lane k."""
    return float(next_u64(state, k) >> _S11) * _TWO_M53


@nb.njit(**_NB)
def fill_normals(state, z):
    """z[c, k] ← independent N(0, 1) draws, column k from lane k (pairs along c).

    Marsaglia's polar method: u, v uniform on (−1, 1), rejected unless 0 < s = u² + v² < 1,
    then u·f and v·f with f = √(−2 ln s / s) are two independent standard normals. It needs one
    log and one square root per pair and no trigonometry (~1.8× faster than Box–Muller here,
    where numba has no vector math library). The outer loop runs over coordinate pairs and the
    inner loop over lanes (the lanes-last layout of the kernels); each lane consumes only its
    own counter, so the draws do not depend on the other lanes.
    """
    d, n = z.shape
    for c in range(0, d, 2):
        for k in range(n):
            while True:
                u = float(next_u64(state, k) >> _S11) * (2.0 * _TWO_M53) - 1.0
                v = float(next_u64(state, k) >> _S11) * (2.0 * _TWO_M53) - 1.0
                s = u * u + v * v
                if 0.0 < s < 1.0:
                    break
            f = math.sqrt(-2.0 * math.log(s) / s)
            z[c, k] = u * f
            if c + 1 < d:
                z[c + 1, k] = v * f


@nb.njit(**_NB)
def update_lanes(code, e, g, m, v, lr, scale, t, beta1, beta2, eps, bias_correction, flush,
                 underflow):
    """One optimizer step on the (d, n) state, in place: e ← e − Δ(g, m, v).

    GD:   Δ = lr·s_c·g.   Sign: Δ = lr·s_c·sign(g).
    Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², Δ = lr·m̂/(√v̂ + ε), where m̂ = m, v̂ = v
          unless bias correction divides them by (1 − β1^{t+1}) and (1 − β2^{t+1}); a
          coordinate with m̂ = 0 does not move.
    AdaBelief: as Adam with v ← β2 v + (1−β2) (g − m)², m the *updated* first moment.
    Entries of e below flush[k] are set to zero (GD; Adam/AdaBelief where the update is a
    linear contraction: β2 = 1, or √v̂ <= ε). Where Adam/AdaBelief is scale-free (β2 < 1,
    √v̂ > ε) a nonzero coordinate below UNDERFLOW instead marks lane k as underflowed at step
    t+1 (underflow[k]).
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
        else:  # ADAM or ADABELIEF: same step, different second moment
            sc = scale[c]
            belief = code == ADABELIEF
            for k in range(n):
                gk = g[c, k]
                mk = beta1 * m[c, k] + (1.0 - beta1) * gk
                dk = gk - mk if belief else gk
                vk = beta2 * v[c, k] + (1.0 - beta2) * dk * dk
                m[c, k] = mk
                v[c, k] = vk
                mh = mk * c1
                den = math.sqrt(vk * c2) + eps
                # a coordinate with m̂ = 0 does not move (also when den = 0)
                e[c, k] -= lr[k] * sc * mh / den if mh != 0.0 else 0.0
        if code == SIGN:
            continue
        for k in range(n):  # rarely true: kept out of the update loops so they vectorise
            a = abs(e[c, k])
            if a < flush[k]:
                if code != GD and beta2 < 1.0 and math.sqrt(v[c, k] * c2) > eps:
                    # scale-free update: the coordinate could grow back; float64 cannot follow
                    if 0.0 < a < UNDERFLOW and underflow[k] < 0:
                        underflow[k] = t + 1
                else:  # GD, β2 = 1 or ε-dominated: a linear contraction, flush it
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
def record_step(e, g, m, v, gaps, limit, diverged, underflow, out, t, col):
    """Gaps of step t+1 into out[:, col]; lanes whose gap is non-finite or above `limit` are
    marked diverged at t+1 and get +inf from now on; lanes that underflowed get NaN from their
    underflow step on. Stopped lanes are parked at zero (finite and cheap)."""
    d, n = e.shape
    half_column_dots(e, g, gaps)
    for k in range(n):
        if underflow[k] >= 0:
            out[k, col] = np.nan
            if underflow[k] == t + 1:
                for c in range(d):
                    e[c, k] = 0.0
                    g[c, k] = 0.0
                    m[c, k] = 0.0
                    v[c, k] = 1.0
        elif diverged[k] >= 0:
            out[k, col] = np.inf
        elif gaps[k] <= limit[k]:  # False for NaN too
            out[k, col] = gaps[k]
        else:
            diverged[k] = t + 1
            out[k, col] = np.inf
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


@nb.njit(fastmath={"reassoc", "contract"}, **_NB)
def noisy_gradient(noise, e, g, gn, z, state, idx):
    """The stochastic gradient g̃ of every lane into gn (d, n), from e and g = He.

    `noise` is the tuple of `quadlab.noise.kernel_noise`:
    (code, amp, f_flat, f_off, fc_off, x, r, batch, replace).

    * Gaussian: g̃ = g + amp · F z, z ~ N(0, I) from each lane's stream, F block-diagonal
      (packed like H) with F Fᵀ = Σ and amp = scale/√B; amp = 0 gives g̃ = g bitwise.
    * Least squares: g̃ = (1/B) Σ_{i∈batch} x_i (x_iᵀ e − r_i), B rows per lane drawn uniformly
      with replacement, or without (a partial Fisher–Yates shuffle of the lane's index column
      idx[:, k], which stays a permutation of 0..N−1 between steps).
    * None: nothing to do (the caller passes gn = g).
    """
    code, amp, f_flat, f_off, fc_off, x, r, batch, replace = noise
    d, n = e.shape
    if code == NOISE_GAUSSIAN:
        fill_normals(state, z)
        block_matmul(f_flat, f_off, fc_off, z, gn)
        for c in range(d):
            for k in range(n):
                gn[c, k] = g[c, k] + amp * gn[c, k]
    elif code == NOISE_LEAST_SQUARES:
        n_rows = x.shape[0]
        inv_b = 1.0 / batch
        for k in range(n):
            for c in range(d):
                gn[c, k] = 0.0
            for b in range(batch):
                if replace:
                    i = min(int(uniform(state, k) * n_rows), n_rows - 1)
                else:
                    j = b + min(int(uniform(state, k) * (n_rows - b)), n_rows - b - 1)
                    i = idx[j, k]
                    idx[j, k] = idx[b, k]
                    idx[b, k] = i
                res = -r[i]
                for c in range(d):
                    res += x[i, c] * e[c, k]
                for c in range(d):
                    gn[c, k] += res * x[i, c]
            for c in range(d):
                gn[c, k] *= inv_b


@nb.njit(**_NB)
def accumulate_stats(e, g, gn, v, c_off, h_off, stats):
    """Add this step's statistics to `stats` (S, n), S = 4d + 3P, P = Σ_l d_l².

    Rows: [v, g̃², g², e²] per coordinate (v is the second-moment state *before* this step's
    update), then the per-block outer products g̃ g̃ᵀ, g gᵀ and e eᵀ, each packed row-major per
    block like H (offsets h_off).
    """
    d, n = e.shape
    p_total = h_off[h_off.size - 1]
    for c in range(d):
        for k in range(n):
            stats[c, k] += v[c, k]
            stats[d + c, k] += gn[c, k] * gn[c, k]
            stats[2 * d + c, k] += g[c, k] * g[c, k]
            stats[3 * d + c, k] += e[c, k] * e[c, k]
    for q in range(3):
        a = gn if q == 0 else (g if q == 1 else e)
        base0 = 4 * d + q * p_total
        for b in range(c_off.size - 1):
            c0 = c_off[b]
            size = c_off[b + 1] - c0
            base = base0 + h_off[b]
            for i in range(size):
                for j in range(size):
                    row = base + i * size + j
                    for k in range(n):
                        stats[row, k] += a[c0 + i, k] * a[c0 + j, k]


@nb.njit(**_NB)
def noise_buffers(noise, e):
    """Work arrays of the noise: (gn, z, idx) for a (d, n) state (idx: identity permutations)."""
    d, n = e.shape
    x = noise[5]
    z = np.empty((d if noise[0] == NOISE_GAUSSIAN else 0, n))
    n_rows = x.shape[0] if noise[0] == NOISE_LEAST_SQUARES and not noise[8] else 0
    idx = np.empty((n_rows, n), dtype=np.int64)
    for i in range(n_rows):
        for k in range(n):
            idx[i, k] = i
    gn = np.empty_like(e)
    return gn, z, idx


@nb.njit(**_NB)
def flush_thresholds(code, e):
    """Per-lane flush threshold of `update_lanes`: FLUSH × ‖e0‖_∞, or 0 (never) for sign
    descent."""
    d, n = e.shape
    out = np.zeros(n)
    if code == SIGN:
        return out
    for k in range(n):
        mx = 0.0
        for c in range(d):
            mx = max(mx, abs(e[c, k]))
        out[k] = FLUSH * mx
    return out


@nb.njit(**_NB)
def _run_chunk(h_flat, h_off, c_off, e, lr, scale, steps, code, beta1, beta2, eps,
               bias_correction, paper_init, diverge_factor, out, diverged, underflow, noise,
               state, stats_from, stats):
    """All steps for one chunk: e (d, n) in place, gaps into out (n, steps+1).

    With noise, the optimizer steps on g̃ (`noisy_gradient`, lane k's generator state[k]);
    from step `stats_from` on (if stats has rows) `accumulate_stats` adds into stats (S, n).
    """
    n = e.shape[1]
    flush = flush_thresholds(code, e)
    g = np.empty_like(e)
    block_matmul(h_flat, h_off, c_off, e, g)
    gaps = np.empty(n)
    half_column_dots(e, g, gaps)
    limit = np.empty(n)
    for k in range(n):
        out[k, 0] = gaps[k]
        limit[k] = diverge_factor * max(gaps[k], 1e-300)
        diverged[k] = -1
        underflow[k] = -1
    noisy = noise[0] != NOISE_NONE
    gn, z, idx = noise_buffers(noise, e)
    if not noisy:
        gn = g
    else:
        noisy_gradient(noise, e, g, gn, z, state, idx)
    m, v = initial_moments(code, gn, paper_init)
    # gaps go through a small (n, GAP_BUFFER) buffer: writing out[k, t+1] directly touches n
    # rows `steps` apart at every step
    buf = np.empty((n, GAP_BUFFER))
    col = 0
    for t in range(steps):
        if noisy and t > 0:
            noisy_gradient(noise, e, g, gn, z, state, idx)
        if stats.shape[0] > 0 and t >= stats_from:
            accumulate_stats(e, g, gn, v, c_off, h_off, stats)
        update_lanes(code, e, gn, m, v, lr, scale, t, beta1, beta2, eps, bias_correction, flush,
                     underflow)
        block_matmul(h_flat, h_off, c_off, e, g)
        record_step(e, g, m, v, gaps, limit, diverged, underflow, buf, t, col)
        col += 1
        if col == GAP_BUFFER or t == steps - 1:
            first = t + 2 - col
            for k in range(n):
                for j in range(col):
                    out[k, first + j] = buf[k, j]
            col = 0


@nb.njit(parallel=True, **_NB)
def simulate_fused(h_flat, h_off, c_off, e0t, lr, scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out, diverged, underflow, threads,
                   noise, state, stats_from, stats):
    """Simulate the trajectories e0t[:, k] (shape (d, n)) in chunks, chunks in parallel.

    Chunks hold up to MAX_LANES trajectories but are made small enough to feed `threads`.
    `state` (n,) holds each lane's generator counter; `stats` is (n, S) (S = 0: no statistics).
    """
    n = e0t.shape[1]
    lanes = min(MAX_LANES, max(8, (n + threads - 1) // threads))
    n_chunks = (n + lanes - 1) // lanes
    n_stats = stats.shape[1]
    for ch in nb.prange(n_chunks):
        lo = ch * lanes
        hi = min(n, lo + lanes)
        e = np.ascontiguousarray(e0t[:, lo:hi])
        st = state[lo:hi].copy()
        acc = np.zeros((n_stats, hi - lo))
        _run_chunk(h_flat, h_off, c_off, e, lr[lo:hi], scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out[lo:hi], diverged[lo:hi],
                   underflow[lo:hi], noise, st, stats_from, acc)
        for k in range(hi - lo):
            for s in range(n_stats):
                stats[lo + k, s] = acc[s, k]


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
