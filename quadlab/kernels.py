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
* Extended range (Adam, AdaBelief with β2 < 1): with ε = 0 these updates are scale-free — the step η
  m̂/√v̂ does not change when (m, √v) are scaled together — so a coordinate can dip far below
  float64's range and come back (Proposition 2: w dips to ~1e-1014 and returns to the cycle ±η/2).
  With ε > 0 they dip the same way while √v̂ ≫ ε (v remembers the start), then follow GD with rate ≈
  η/ε, which may climb back: not scale-free, but still exact in the extended range when ε enters the
  denominator on √v̂'s scale (`ext_factors`). Each (block, trajectory) keeps its error e as a
  float64 mantissa times 2^ke (one exponent per block: g = He mixes the block's coordinates), and
  each coordinate keeps m and v as mantissas times 2^km and 2^kv (kv even). The update runs on
  mantissas with power-of-two cross-scale factors (`ext_factors`), exact products, so while every
  exponent is 0 the arithmetic is bit for bit the plain float64 one. When a mantissa leaves its safe
  range (`EXT_E`, `EXT_M`, `EXT_V`) `ext_renormalize` moves a power of two into the exponent
  (exact).
  Blocks do not interact, so nothing else changes. The loss gap ½ Σ_l 4^{ke_l} êᵀĤê is then exact to
  rounding at any scale: reported as float64 where it is a normal number, NaN where it is below
  float64's range (never a plain 0.0), and always as log10 on request.
* Underflow (Adam, AdaBelief in plain float64: with noise, or the extended range forced off):
  where √v̂ > ε the update is still close to scale-free, so a coordinate below UNDERFLOW
  (absolute, just above the subnormal range) stops the lane, recorded in `underflow`, its gaps
  NaN from that step on — never reported as convergence. Where the update is a linear
  contraction (β2 = 1, or ε-dominated) small coordinates are flushed as for GD. Sign descent
  moves by ±η per coordinate and neither flushes nor underflows.

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
#: extended range: block max |ê|, |m̂| and v̂ are kept within [1/X, X] for these X
EXT_E = 2.0**64
EXT_M = 2.0**128
EXT_V = 2.0**256
#: extended range: the cross-scale factors stay below 2^EXT_B after a renormalization
EXT_B = 64
#: smallest positive normal float64: a gap below it is reported NaN (log-gap beside it)
TINY = 2.2250738585072014e-308
#: |2 ke| above this sends a lane's gap through the exponent-aware sum (`ext_gaps`)
EXT_GAP_EXP = 400
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
                 underflow, ext, c_off, work):
    """One optimizer step on the (d, n) state, in place: e ← e − Δ(g, m, v), then the extended
    range's renormalization.

    GD:   Δ = lr·s_c·g.   Sign: Δ = lr·s_c·sign(g).
    Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², Δ = lr·m̂/(√v̂ + ε), where m̂ = m, v̂ = v
          unless bias correction divides them by (1 − β1^{t+1}) and (1 − β2^{t+1}); a
          coordinate with m̂ = 0 does not move.
    AdaBelief: as Adam with v ← β2 v + (1−β2) (g − m)², m the *updated* first moment.
    Entries of e below flush[k] are set to zero (GD; Adam/AdaBelief where the update is a
    linear contraction: β2 = 1, or √v̂ <= ε). Where Adam/AdaBelief is scale-free (β2 < 1,
    √v̂ > ε) a nonzero coordinate below UNDERFLOW instead marks lane k as underflowed at step
    t+1 (underflow[k]).
    With the extended range on (`ext_state`; Adam/AdaBelief, β2 < 1) e, m, v are mantissas and
    the cross-scale factors of `ext` carry the exponents (ε enters on the denominator's scale,
    `ext_factors`).
    Adam/AdaBelief go block by block: one pass updates e, m, v — `adam_rows_ext` on mantissas
    if some lane of the block has a cross-scale factor ≠ 1 or fes ≠ ε, else `adam_rows`
    (`ext_factors`' `plain` flags; multiplying by 1 is exact, so skipping the factors is bit
    for bit the same) — and counts the entries that may need attention: |e| below its lane's
    flush threshold or, in the extended range, |ê|, |m̂|, v̂ outside their safe ranges. Only if
    some entry counts does `block_attention` run the exact per-lane checks (flush/underflow,
    then the renormalization of `ext_normalize`), so there is no second pass over the state.
    `work` is `update_work(n)`.
    """
    d, n = e.shape
    if code == GD or code == SIGN:
        for c in range(d):
            if code == GD:
                for k in range(n):
                    e[c, k] -= lr[k] * scale[c] * g[c, k]
                for k in range(n):  # rarely true: kept out of the update loop (vectorises)
                    if abs(e[c, k]) < flush[k]:  # a linear contraction: flush it
                        e[c, k] = 0.0
            else:
                for k in range(n):
                    gk = g[c, k]
                    s = 1.0 if gk > 0 else (-1.0 if gk < 0 else 0.0)
                    e[c, k] -= lr[k] * scale[c] * s
        return
    c1 = 1.0
    c2 = 1.0
    if bias_correction:
        c1 = 1.0 / (1.0 - beta1 ** (t + 1))
        c2 = 1.0 / (1.0 - beta2 ** (t + 1))
    belief = code == ADABELIEF
    ext_on = ext[0].shape[0] > 0
    plain = ext[12]
    # the safe ranges of the extended range (empty conditions when it is off)
    e_lo, e_hi, m_lo, m_hi, v_lo, v_hi = 0.0, np.inf, 0.0, np.inf, 0.0, np.inf
    if ext_on:
        e_lo, e_hi, m_lo, m_hi, v_lo, v_hi = 1.0 / EXT_E, EXT_E, 1.0 / EXT_M, EXT_M, \
            1.0 / EXT_V, EXT_V
    for b in range(c_off.size - 1):
        c0, c1_ = c_off[b], c_off[b + 1]
        every_plain = True
        if ext_on:
            for k in range(n):
                every_plain = every_plain and plain[b, k]
        if every_plain:
            count = adam_rows(belief, e, g, m, v, lr, scale, c0, c1_, beta1, beta2, eps, c1, c2,
                              flush, e_lo, e_hi, m_lo, m_hi, v_lo, v_hi)
        else:
            count = adam_rows_ext(belief, e, g, m, v, lr, scale, c0, c1_, beta1, beta2, c1, c2,
                                  flush, ext[3], ext[4], ext[5], ext[6], ext[9], ext[10])
        if count > 0:
            block_attention(belief, e, m, v, lr, scale, t, beta2, eps, c2, flush, underflow, ext,
                            b, c0, c1_, work)


@nb.njit(**_NB)
def update_work(n):
    """Per-lane work arrays of `block_attention`: (max |ê|, range flag) of a block."""
    return np.empty(n), np.empty(n, dtype=np.bool_)


@nb.njit(**_NB)
def adam_rows(belief, e, g, m, v, lr, scale, c0, c1_, beta1, beta2, eps, c1, c2, flush, e_lo,
              e_hi, m_lo, m_hi, v_lo, v_hi):
    """The plain Adam/AdaBelief update of rows c0..c1_−1 (formulas in `update_lanes`); returns
    the number of entries with |e| < flush[k], |e| ∉ [e_lo, e_hi], |m| ∉ [m_lo, m_hi] or
    v ∉ [v_lo, v_hi] (zeros excepted)."""
    n = e.shape[1]
    count = 0
    for c in range(c0, c1_):
        sc = scale[c]
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
            ek = e[c, k] - (lr[k] * sc * mh / den if mh != 0.0 else 0.0)
            e[c, k] = ek
            a = abs(ek)
            am = abs(mk)
            count += (a < flush[k]) | (a > e_hi) | ((a < e_lo) & (a > 0.0)) \
                | (am > m_hi) | ((am < m_lo) & (am > 0.0)) \
                | (vk > v_hi) | ((vk < v_lo) & (vk > 0.0))
    return count


@nb.njit(**_NB)
def adam_rows_ext(belief, e, g, m, v, lr, scale, c0, c1_, beta1, beta2, c1, c2, flush, fgm, fgv,
                  fde, fmv, fvs, fes):
    """`adam_rows` on mantissas with the cross-scale factors of `ext_factors` (extended range):
    g·fgm is g on m's scale, ·fgv on √v's, fde takes m/√v onto e's, fmv m onto √v's, and fvs,
    fes put √v and ε on the denominator's scale 2^s. Counts as `adam_rows` with the safe
    ranges of the extended range."""
    n = e.shape[1]
    count = 0
    for c in range(c0, c1_):
        sc = scale[c]
        for k in range(n):
            gk = g[c, k] * fgm[c, k]
            mk = beta1 * m[c, k] + (1.0 - beta1) * gk
            dk = (gk - mk) * fmv[c, k] if belief else g[c, k] * fgv[c, k]
            vk = beta2 * v[c, k] + (1.0 - beta2) * dk * dk
            m[c, k] = mk
            v[c, k] = vk
            mh = mk * c1
            den = math.sqrt(vk * c2) * fvs[c, k] + fes[c, k]
            ek = e[c, k] - (lr[k] * sc * mh / den * fde[c, k] if mh != 0.0 else 0.0)
            e[c, k] = ek
            a = abs(ek)
            am = abs(mk)
            count += (a < flush[k]) | (a > EXT_E) | ((a < 1.0 / EXT_E) & (a > 0.0)) \
                | (am > EXT_M) | ((am < 1.0 / EXT_M) & (am > 0.0)) \
                | (vk > EXT_V) | ((vk < 1.0 / EXT_V) & (vk > 0.0))
    return count


@nb.njit(**_NB)
def block_attention(belief, e, m, v, lr, scale, t, beta2, eps, c2, flush, underflow, ext, b,
                    c0, c1_, work):
    """The exact per-lane checks of block b after its update (`update_lanes`):

    1. |e| below flush[k]: where the update is scale-free (β2 < 1, √v̂ > ε) a nonzero coordinate
       below UNDERFLOW marks lane k underflowed at step t+1; elsewhere (β2 = 1 or ε-dominated: a
       linear contraction) the coordinate is flushed to zero.
    2. Extended range: lanes whose block max |ê| or some |m̂|, v̂ left the safe range are
       renormalized (`ext_renormalize`), as `ext_normalize` does.
    """
    n = e.shape[1]
    mx, need = work
    for c in range(c0, c1_):
        for k in range(n):
            a = abs(e[c, k])
            if a < flush[k]:
                if beta2 < 1.0 and math.sqrt(v[c, k] * c2) > eps:
                    # scale-free update: the coordinate could grow back; float64 cannot follow
                    if 0.0 < a < UNDERFLOW and underflow[k] < 0:
                        underflow[k] = t + 1
                else:  # β2 = 1 or ε-dominated: a linear contraction, flush it
                    e[c, k] = 0.0
    if ext[0].shape[0] == 0:
        return
    ext_normalize_block(belief, e, m, v, ext, b, c0, c1_, lr, scale, mx, need)


@nb.njit(**_NB)
def ext_normalize_block(belief, e, m, v, ext, b, c0, c1_, lr, scale, mx, need):
    """Renormalize the lanes of block b (coordinates c0..c1_−1) whose block max |ê| or some
    |m̂|, v̂ left the safe range [1/EXT_E, EXT_E], [1/EXT_M, EXT_M], [1/EXT_V, EXT_V] (zeros
    excepted), with the block's largest step multiplier lr[k]·max s_c (`ext_renormalize`).
    mx, need: (n,) work arrays."""
    n = e.shape[1]
    for k in range(n):
        mx[k] = 0.0
        need[k] = False
    for c in range(c0, c1_):
        for k in range(n):
            mx[k] = max(mx[k], abs(e[c, k]))
            am = abs(m[c, k])
            av = v[c, k]
            need[k] = need[k] | (am > EXT_M) | ((am < 1.0 / EXT_M) & (am > 0.0)) \
                | (av > EXT_V) | ((av < 1.0 / EXT_V) & (av > 0.0))
    for k in range(n):
        if need[k] or mx[k] > EXT_E or 0.0 < mx[k] < 1.0 / EXT_E:
            top = 0.0
            for c in range(c0, c1_):
                top = max(top, scale[c])
            ext_renormalize(belief, e, m, v, ext, b, c0, c1_, k, lr[k] * top)


@nb.njit(**_NB)
def ext_state(on, n_blocks, d, n, eps):
    """The extended-range state of `update_lanes` for a (d, n) state with n_blocks blocks:
    (ke (L, n), km (d, n), kv (d, n), fgm, fgv, fde, fmv (d, n), wgap (L, n), slow (n,),
    fvs, fes (d, n), epsv (1,), plain (L, n)).

    All exponents 0, factors 1, fes = ε and plain True (the plain float64 arithmetic).
    `on=False` gives zero-size arrays: the extended range is off.
    """
    rows_l = n_blocks if on else 0
    rows_d = d if on else 0
    ke = np.zeros((rows_l, n), dtype=np.int64)
    km = np.zeros((rows_d, n), dtype=np.int64)
    kv = np.zeros((rows_d, n), dtype=np.int64)
    fgm = np.ones((rows_d, n))
    fgv = np.ones((rows_d, n))
    fde = np.ones((rows_d, n))
    fmv = np.ones((rows_d, n))
    wgap = np.ones((rows_l, n))
    slow = np.zeros(n if on else 0, dtype=np.bool_)
    fvs = np.ones((rows_d, n))
    fes = np.full((rows_d, n), eps)
    epsv = np.full(1, eps)
    plain = np.ones((rows_l, n), dtype=np.bool_)
    return ke, km, kv, fgm, fgv, fde, fmv, wgap, slow, fvs, fes, epsv, plain


@nb.njit(**_NB)
def _pow2(k):
    """2^k as a float64 (0 or inf beyond the range; k clamped so ldexp never sees huge ints)."""
    return math.ldexp(1.0, max(-1100, min(1100, k)))


@nb.njit(**_NB)
def ext_factors(ext, b, c0, c1, k):
    """Cross-scale factors of block b (coordinates c0..c1−1), lane k, from the exponents:
    fgm = 2^{ke−km} (g onto m's scale), fgv = 2^{ke−kv/2} (g onto √v's), fde = 2^{km−kv/2−ke}
    (m/√v onto e's), fmv = 2^{km−kv/2} (m onto √v's, AdaBelief), wgap = 4^{ke} (the gap), and
    the lane's `slow` flag (some |2 ke| > EXT_GAP_EXP), and `plain` (every factor of the block
    is 1 and fes = ε: `update_lanes` may skip them).

    ε > 0 (not scale-free): the denominator √v̂ + ε = 2^s (√v̂_mant·fvs + fes) on a scale 2^s,
    s = kv/2 (fvs = 1, fes = ε 2^{−s}: bitwise the plain arithmetic at exponent 0) unless ε
    exceeds √v's scale by more than 2^1000, where s = the exponent of ε (fvs = 2^{kv/2−s}, then
    negligible); fde is then 2^{km−s−ke}."""
    ke, km, kv, fgm, fgv, fde, fmv, wgap, slow, fvs, fes, epsv, plain = ext
    eps = epsv[0]
    le = math.frexp(eps)[1] if eps > 0.0 else 0
    kb = ke[b, k]
    one = True
    for c in range(c0, c1):
        h = kv[c, k] // 2
        s = h
        if eps > 0.0 and le - h > 1000:
            s = le
        fgm[c, k] = _pow2(kb - km[c, k])
        fgv[c, k] = _pow2(kb - h)
        fde[c, k] = _pow2(km[c, k] - s - kb)
        fmv[c, k] = _pow2(km[c, k] - h)
        fvs[c, k] = _pow2(h - s)
        fes[c, k] = math.ldexp(eps, max(-1100, min(1100, -s)))
        one = one and fgm[c, k] == 1.0 and fgv[c, k] == 1.0 and fde[c, k] == 1.0 \
            and fmv[c, k] == 1.0 and fvs[c, k] == 1.0 and fes[c, k] == eps
    plain[b, k] = one
    wgap[b, k] = _pow2(2 * kb)
    far = False
    for bb in range(ke.shape[0]):
        far = far or abs(2 * ke[bb, k]) > EXT_GAP_EXP
    slow[k] = far


@nb.njit(**_NB)
def ext_renormalize(belief, e, m, v, ext, b, c0, c1, k, step):
    """Move powers of two between the mantissas and exponents of block b, lane k (exact up to
    the rounding of quantities 2^EXT_B below the terms they are added to).

    e: block max |ê| → [½, 1), but ke no lower than log2(step) + max_c(km − D_c) − EXT_B,
    step = η·s_c the largest step multiplier of the block, 2^D_c a lower bound of the
    denominator √v̂ + ε (D_c = max(kv/2, exponent of ε − 1)): the update η m/(√v + ε) may
    then exceed e by at most 2^EXT_B. m, v: each coordinate normalized, then kept no
    lower than 2^−EXT_B times the scale of the g (and, AdaBelief, m) added into them, so every
    factor of `ext_factors` is at most 2^EXT_B. Non-finite mantissas are left alone (the gap
    reports them as a divergence).
    """
    ke, km, kv = ext[0], ext[1], ext[2]
    mx = 0.0
    for c in range(c0, c1):
        a = abs(e[c, k])
        if not (a <= 1e308) or not (abs(m[c, k]) <= 1e308) or not (v[c, k] <= 1e308):
            return
        mx = max(mx, a)
    for c in range(c0, c1):
        if m[c, k] != 0.0:
            fr, ex = math.frexp(m[c, k])
            m[c, k] = fr
            km[c, k] += ex
        if v[c, k] != 0.0:
            fr, ex = math.frexp(v[c, k])
            if ex % 2 != 0:
                fr *= 2.0
                ex -= 1
            v[c, k] = fr
            kv[c, k] += ex
    old = ke[b, k]
    top = old
    if mx > 0.0:
        top = old + math.frexp(mx)[1]
    lr_exp = math.frexp(step)[1] if step > 0.0 else 0
    eps = ext[11][0]
    le = math.frexp(eps)[1] if eps > 0.0 else -(1 << 40)
    for c in range(c0, c1):
        if m[c, k] != 0.0 and (v[c, k] != 0.0 or eps > 0.0):
            # the update η m/(√v + ε) is at most η m / 2^max(kv/2, exponent of ε − 1)
            den = max(kv[c, k] // 2 if v[c, k] != 0.0 else -(1 << 40), le - 1)
            top = max(top, lr_exp + km[c, k] - den - EXT_B)
    for c in range(c0, c1):
        e[c, k] = math.ldexp(e[c, k], max(-1100, old - top))
    ke[b, k] = top
    for c in range(c0, c1):
        if m[c, k] == 0.0:
            km[c, k] = top
        elif km[c, k] < top - EXT_B:
            m[c, k] = math.ldexp(m[c, k], max(-1100, km[c, k] - (top - EXT_B)))
            km[c, k] = top - EXT_B
        low = top - EXT_B
        if belief:
            low = max(low, km[c, k] - EXT_B)
        if v[c, k] == 0.0:
            kv[c, k] = 2 * (low + EXT_B)
        elif kv[c, k] // 2 < low:
            v[c, k] = math.ldexp(v[c, k], max(-1100, kv[c, k] - 2 * low))
            kv[c, k] = 2 * low
    ext_factors(ext, b, c0, c1, k)


@nb.njit(**_NB)
def ext_normalize(code, e, m, v, ext, c_off, lr, scale):
    """Renormalize every (block, lane) whose block max |ê| or some |m̂|, v̂ left the safe range
    [1/EXT_E, EXT_E], [1/EXT_M, EXT_M], [1/EXT_V, EXT_V] (zeros excepted). A no-op when the
    extended range is off. Used on the initial state; after each step `update_lanes` makes the
    same checks in its update pass."""
    if ext[0].shape[0] == 0:
        return
    n = e.shape[1]
    mx = np.empty(n)
    need = np.empty(n, dtype=np.bool_)
    belief = code == ADABELIEF
    for b in range(c_off.size - 1):
        ext_normalize_block(belief, e, m, v, ext, b, c_off[b], c_off[b + 1], lr, scale, mx,
                            need)


@nb.njit(**_NB)
def ext_reset(ext, k):
    """Exponents of lane k back to 0 and factors to 1 (a stopped lane is parked at zero)."""
    ke, km, kv, fgm, fgv, fde, fmv, wgap, slow, fvs, fes, epsv, plain = ext
    for b in range(ke.shape[0]):
        ke[b, k] = 0
        wgap[b, k] = 1.0
        plain[b, k] = True
    for c in range(km.shape[0]):
        km[c, k] = 0
        kv[c, k] = 0
        fgm[c, k] = 1.0
        fgv[c, k] = 1.0
        fde[c, k] = 1.0
        fmv[c, k] = 1.0
        fvs[c, k] = 1.0
        fes[c, k] = epsv[0]
    if slow.size:
        slow[k] = False


_LOG10_2 = math.log10(2.0)


@nb.njit(**_NB)
def _log10(x):
    """log10 of a gap: −inf for 0, NaN for NaN or a negative value, +inf for +inf."""
    if x > 0.0:
        return math.log10(x)
    return -np.inf if x == 0.0 else np.nan


@nb.njit(**_NB)
def gaps_and_logs(e, g, ext, c_off, gaps, logs, tiny):
    """gaps[k] = L(w_t) − L* of every lane; with the extended range on, from the mantissas.

    Extended range: gap = ½ Σ_l 4^{ke_l} Σ_{c∈l} ê_c ĝ_c. Lanes whose exponents are all small
    sum with the float weights 4^{ke_l} (bitwise the plain sum when they are 0); the others
    through frexp/ldexp with one common exponent. A positive gap below `TINY` sets tiny[k] and
    gaps[k] = NaN. If logs has entries, logs[k] = log10(gap) (−inf for an exact 0; NaN or inf
    where the gap is NaN or inf).
    """
    n = e.shape[1]
    want_log = logs.shape[0] > 0
    for k in range(n):
        tiny[k] = False
    if ext[0].shape[0] == 0:
        half_column_dots(e, g, gaps)
        if want_log:
            for k in range(n):
                logs[k] = _log10(gaps[k])
        return
    ke, wgap, slow = ext[0], ext[7], ext[8]
    for k in range(n):
        gaps[k] = 0.0
    for b in range(c_off.size - 1):
        for c in range(c_off[b], c_off[b + 1]):
            for k in range(n):
                gaps[k] += e[c, k] * g[c, k] * wgap[b, k]
    for k in range(n):
        gaps[k] *= 0.5
        if slow[k]:
            # exact: Σ_l s_l 2^{2 ke_l} with a common exponent K
            big = -(1 << 40)
            for b in range(c_off.size - 1):
                s = 0.0
                for c in range(c_off[b], c_off[b + 1]):
                    s += e[c, k] * g[c, k]
                if s != 0.0:
                    big = max(big, 2 * ke[b, k] + math.frexp(s)[1])
            total = 0.0
            if big > -(1 << 40):
                for b in range(c_off.size - 1):
                    s = 0.0
                    for c in range(c_off[b], c_off[b + 1]):
                        s += e[c, k] * g[c, k]
                    total += math.ldexp(s, max(-1100, 2 * ke[b, k] - big))
            total *= 0.5
            if not (abs(total) < np.inf):
                gaps[k] = total
                if want_log:
                    logs[k] = _log10(total)
            elif total > 0.0:
                val = math.ldexp(total, max(-1100, min(1100, big)))
                if val < TINY:
                    tiny[k] = True
                    val = np.nan
                gaps[k] = val
                if want_log:
                    logs[k] = math.log10(total) + big * _LOG10_2
            else:
                gaps[k] = total
                if want_log:
                    logs[k] = _log10(total)
            continue
        gk = gaps[k]
        if 0.0 < gk < TINY:
            tiny[k] = True
            gaps[k] = np.nan
            if want_log:
                logs[k] = math.log10(gk * 2.0**600) - 600 * _LOG10_2
        elif want_log:
            logs[k] = _log10(gk)


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
def record_common(e, g, wgap, slow, c_off, gaps, limit, diverged, underflow, out, col, log_out):
    """The common case of `record_step`, in three vectorisable passes: gaps[k] = ½ Σ_l w_l
    Σ_{c∈l} e_c g_c (w_l = wgap[l, k] = 4^{ke_l} in the extended range, no weight without it —
    the sums of `gaps_and_logs`, in the same order); if every lane is running (not stopped, not
    `slow`) with a normal gap in [TINY, limit[k]], write them (and their log10) into column col
    and return True. Otherwise return False and write nothing: `record_step` does the general
    per-lane bookkeeping."""
    d, n = e.shape
    for k in range(n):
        gaps[k] = 0.0
    if wgap.shape[0] > 0:
        for b in range(c_off.size - 1):
            for c in range(c_off[b], c_off[b + 1]):
                for k in range(n):
                    gaps[k] += e[c, k] * g[c, k] * wgap[b, k]
    else:
        for c in range(d):
            for k in range(n):
                gaps[k] += e[c, k] * g[c, k]
    bad = 0
    for k in range(n):
        gk = gaps[k] * 0.5
        gaps[k] = gk
        bad += (underflow[k] >= 0) | (diverged[k] >= 0) | (not (TINY <= gk <= limit[k]))
    for k in range(slow.size):
        bad += slow[k]
    if bad > 0:
        return False
    for k in range(n):
        out[k, col] = gaps[k]
    if log_out.shape[0] > 0:
        for k in range(n):
            log_out[k, col] = math.log10(gaps[k])
    return True


@nb.njit(**_NB)
def record_step(e, g, m, v, gaps, limit, diverged, underflow, out, t, col, ext, c_off, logs,
                log_out, tiny):
    """Gaps of step t+1 into out[:, col] (and, if log_out has rows, log10 gaps into
    log_out[:, col]); lanes whose gap is non-finite or above `limit` are marked diverged at t+1
    and get +inf from now on; lanes that underflowed get NaN from their underflow step on.
    With the extended range a gap below float64's range is NaN in `out` (tiny, not stopped)
    and exact in `log_out`. Stopped lanes are parked at zero (finite and cheap). Callers try
    `record_common` first: the common case, every lane running with a normal gap."""
    d, n = e.shape
    gaps_and_logs(e, g, ext, c_off, gaps, logs, tiny)
    want_log = log_out.shape[0] > 0
    ext_on = ext[0].shape[0] > 0
    for k in range(n):
        if underflow[k] >= 0:
            out[k, col] = np.nan
            if want_log:
                log_out[k, col] = np.nan
            if underflow[k] == t + 1:
                for c in range(d):
                    e[c, k] = 0.0
                    g[c, k] = 0.0
                    m[c, k] = 0.0
                    v[c, k] = 1.0
        elif diverged[k] >= 0:
            out[k, col] = np.inf
            if want_log:
                log_out[k, col] = np.inf
        elif tiny[k] or gaps[k] <= limit[k]:  # False for NaN too
            out[k, col] = gaps[k]
            if want_log:
                log_out[k, col] = logs[k]
        else:
            diverged[k] = t + 1
            out[k, col] = np.inf
            if want_log:
                log_out[k, col] = np.inf
            for c in range(d):
                e[c, k] = 0.0
                g[c, k] = 0.0
                m[c, k] = 0.0
                v[c, k] = 1.0
            if ext_on:
                ext_reset(ext, k)


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
               state, stats_from, stats, extended, log_out):
    """All steps for one chunk: e (d, n) in place, gaps into out (n, steps+1).

    With noise, the optimizer steps on g̃ (`noisy_gradient`, lane k's generator state[k]);
    from step `stats_from` on (if stats has rows) `accumulate_stats` adds into stats (S, n).
    `extended`: run in the extended range (`ext_state`); log_out (n, steps+1) receives the
    log10 gaps if it has rows.
    """
    n = e.shape[1]
    flush = flush_thresholds(code, e)
    ext = ext_state(extended, c_off.size - 1, e.shape[0], n, eps)
    # a start outside the safe range (e.g. e0 ~ 1e-200) gets its exponents before anything
    # is computed from it (the moments start from g0, which would underflow)
    ext_normalize(code, e, np.zeros_like(e), np.zeros_like(e), ext, c_off, lr, scale)
    want_log = log_out.shape[0] > 0
    g = np.empty_like(e)
    block_matmul(h_flat, h_off, c_off, e, g)
    gaps = np.empty(n)
    logs = np.empty(n if want_log else 0)
    tiny = np.empty(n, dtype=np.bool_)
    gaps_and_logs(e, g, ext, c_off, gaps, logs, tiny)
    limit = np.empty(n)
    for k in range(n):
        out[k, 0] = gaps[k]
        if want_log:
            log_out[k, 0] = logs[k]
        # a start below float64's range (NaN gap, tiny) counts as 1e-300
        limit[k] = diverge_factor * (1e-300 if tiny[k] else max(gaps[k], 1e-300))
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
    work = update_work(n)
    wgap, slow = ext[7], ext[8]
    buf = np.empty((n, GAP_BUFFER))
    lbuf = np.empty((n if want_log else 0, GAP_BUFFER))
    col = 0
    for t in range(steps):
        if noisy and t > 0:
            noisy_gradient(noise, e, g, gn, z, state, idx)
        if stats.shape[0] > 0 and t >= stats_from:
            accumulate_stats(e, g, gn, v, c_off, h_off, stats)
        update_lanes(code, e, gn, m, v, lr, scale, t, beta1, beta2, eps, bias_correction, flush,
                     underflow, ext, c_off, work)
        block_matmul(h_flat, h_off, c_off, e, g)
        if not record_common(e, g, wgap, slow, c_off, gaps, limit, diverged, underflow, buf,
                             col, lbuf):
            record_step(e, g, m, v, gaps, limit, diverged, underflow, buf, t, col, ext, c_off,
                        logs, lbuf, tiny)
        col += 1
        if col == GAP_BUFFER or t == steps - 1:
            first = t + 2 - col
            for k in range(n):
                for j in range(col):
                    out[k, first + j] = buf[k, j]
                if want_log:
                    for j in range(col):
                        log_out[k, first + j] = lbuf[k, j]
            col = 0


@nb.njit(parallel=True, **_NB)
def simulate_fused(h_flat, h_off, c_off, e0t, lr, scale, steps, code, beta1, beta2, eps,
                   bias_correction, paper_init, diverge_factor, out, diverged, underflow, threads,
                   noise, state, stats_from, stats, extended, log_out):
    """Simulate the trajectories e0t[:, k] (shape (d, n)) in chunks, chunks in parallel.

    Chunks hold up to MAX_LANES trajectories but are made small enough to feed `threads`.
    `state` (n,) holds each lane's generator counter; `stats` is (n, S) (S = 0: no statistics);
    `extended` and `log_out` as in `_run_chunk` (log_out (0, 0): no log gaps).
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
                   underflow[lo:hi], noise, st, stats_from, acc, extended,
                   log_out[lo:hi])
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
