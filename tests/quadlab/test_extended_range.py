"""The extended range of Adam/AdaBelief (β2 < 1; scale-free with ε = 0, and with ε > 0 too):
exact through dips far below float64's range, bit for bit float64 where nothing leaves it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import quadlab
from quadlab import simulate as sim
from quadlab.optimizers import make_optimizer


def _mpmath_log10_gaps(w0: float, eta: float, beta2: float, steps: int,
                      eps: float = 0.0) -> np.ndarray:
    """Reference: Eq. (3) on L = w²/2 (v0 = w0²) at 40 digits, unbounded exponent:
    v ← β2 v + (1 − β2) w², w ← w − η w/(√v + ε)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(40):
        w, v = mpmath.mpf(w0), mpmath.mpf(w0) ** 2
        b2, e, ep = mpmath.mpf(beta2), mpmath.mpf(eta), mpmath.mpf(eps)
        out = [float(mpmath.log10(w * w / 2))]
        for _ in range(steps):
            v = b2 * v + (1 - b2) * w * w
            w = w - e * w / (mpmath.sqrt(v) + ep)
            out.append(float(mpmath.log10(w * w / 2)))
    return np.array(out)


def test_issue_trajectory_matches_mpmath_through_a_dip_to_1e_minus_2028():
    """H = [[1]], w0 = 1, η = 0.9, β2 = 0.999: the gap dips to ~1e-2028 and is back on the
    cycle (η²/8) by step 30,000."""
    steps = 30000
    ref = _mpmath_log10_gaps(1.0, 0.9, 0.999, steps)
    res = quadlab.run(quadlab.Problem.from_blocks([np.eye(1)]), "adam", lr=0.9, w0=[1.0],
                      steps=steps, beta2=0.999, log_gap=True)
    assert ref.min() < -2000 and res.log10_gap.min() < -2000
    # relative to the size of the log: the dip is a long product of contractions
    np.testing.assert_allclose(res.log10_gap, ref, rtol=1e-9, atol=1e-9)
    below = ref < math.log10(np.finfo(float).tiny) - 1e-6
    assert np.isnan(res.gap[below]).all() and not (res.gap == 0.0).any()
    np.testing.assert_allclose(res.gap[-1], 0.9**2 / 8, rtol=1e-3)


@pytest.mark.parametrize("eta,beta2,eps,steps,dip", [
    # √v̂ ≫ ε through the dip (v remembers the start), then ε takes over: the run climbs back
    # up through float64's range (GD with rate η/ε is expansive at these scales)
    (0.9, 0.999, 1e-3, 6000, -2035),
    # ε-dominated from the start: GD with rate ≈ η/ε, a geometric dip to 1e-1804 that stays
    # there; √v̂ ends 2^1000 and more below ε (the denominator's scale is then ε's)
    (0.5, 0.5, 1.0, 3000, -1804),
])
def test_adam_with_eps_follows_dips_below_float64s_range(eta, beta2, eps, steps, dip):
    """ε > 0 is not scale-free, but the blocks still do not interact: the extended range is
    exact when ε enters the denominator on √v̂'s scale (`kernels.ext_factors`). Checked
    against mpmath through dips far below float64's range: no underflow stop, no 0.0 gap."""
    ref = _mpmath_log10_gaps(1.0, eta, beta2, steps, eps=eps)
    with warnings.catch_warnings():
        warnings.simplefilter("error", quadlab.UnderflowWarning)
        res = quadlab.run(quadlab.Problem.from_blocks([np.eye(1)]), "adam", lr=eta, w0=[1.0],
                          steps=steps, beta2=beta2, eps=eps, log_gap=True)
    assert ref.min() < dip and res.log10_gap.min() < dip
    np.testing.assert_allclose(res.log10_gap, ref, rtol=1e-8, atol=1e-9)
    below = ref < math.log10(np.finfo(float).tiny) - 1e-6
    assert below.any() and np.isnan(res.gap[below]).all() and not (res.gap == 0.0).any()
    np.testing.assert_allclose(res.gap[~below], 10.0 ** ref[~below], rtol=1e-7)


@pytest.mark.parametrize("optimizer,hyper", [
    ("adam", {"beta2": 0.99}),
    ("adam", {"beta1": 0.9, "beta2": 0.99, "bias_correction": True}),
    ("adabelief", {"beta1": 0.9, "beta2": 0.99, "eps": 0.0}),
    ("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "bias_correction": True}),
    ("adabelief", {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}),
])
def test_bitwise_float64_while_in_range(optimizer, hyper):
    """Without dips the extended range changes no bit: compare with the plain kernel run on
    the same state (the extended range forced off)."""
    problem = quadlab.make_problem("hetero")
    w0 = problem.initial_points(4, seed=1)
    spec = make_optimizer(optimizer, **hyper)
    e0 = np.ascontiguousarray(w0 - problem.w_star)
    lr = np.full(4, 1e-3)
    ext, _ = sim.simulate_fused(problem, spec, lr, e0, 200)
    plain, _ = sim.simulate_fused(problem, spec, lr, e0, 200, extended=False)
    assert np.isfinite(plain).all() and (plain > 1e-200).all()
    np.testing.assert_array_equal(ext, plain)


def test_fused_and_blocked_agree_in_extended_range():
    """The BLAS-per-block path and the fused path follow the same dips (the same mantissas
    and exponents; BLAS may round the matmul differently)."""
    problem = quadlab.Problem.from_blocks([np.eye(1), np.eye(2)])
    spec = make_optimizer("adam", beta2=0.999)
    # every coordinate follows the issue's w²/2 trajectory (from ±1, η = 0.9): a joint dip
    e0 = np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]])
    lr = np.array([0.9, 0.9])
    la, lb = np.empty((2, 4001)), np.empty((2, 4001))
    sim.simulate_fused(problem, spec, lr, e0, 4000, log_out=la)
    sim.simulate_blocked(problem, spec, lr, e0, 4000, log_out=lb)
    assert la.min() < -400  # below float64's range
    np.testing.assert_allclose(la, lb, rtol=1e-8)


def test_log_gap_of_linear_runs_is_log10_of_the_gap():
    problem = quadlab.make_problem("hetero")
    w0 = problem.initial_points(seed=0)
    res = quadlab.run(problem, "gd", lr=1e-4, w0=w0, steps=100, log_gap=True)
    np.testing.assert_allclose(res.log10_gap, np.log10(res.gap), rtol=1e-14)
    with pytest.raises(TypeError, match="log_gap"):
        quadlab.run(problem, "gd", lr=1e-4, w0=w0, steps=10, log_gap="yes")


def test_noise_runs_in_plain_float64():
    """Noise is added in absolute units, so noisy scale-free runs use plain float64 (an
    underflow would be reported, not followed); asking for both is refused."""
    problem = quadlab.make_problem("hetero")
    spec = make_optimizer("adam", beta2=0.99)
    e0 = np.ascontiguousarray(problem.initial_points(2, seed=0) - problem.w_star)
    noise = quadlab.noise.kernel_noise(problem, quadlab.GaussianNoise(scale=0.0), 1)
    with pytest.raises(ValueError, match="without gradient noise"):
        sim.simulate_fused(problem, spec, np.full(2, 1e-3), e0, 5, noise=noise, extended=True)
    a, _ = sim.simulate_fused(problem, spec, np.full(2, 1e-3), e0, 50, noise=noise)
    b, _ = sim.simulate_fused(problem, spec, np.full(2, 1e-3), e0, 50)
    np.testing.assert_array_equal(a, b)  # zero noise: the same numbers either way


def test_a_start_below_float64s_range_is_followed_not_called_diverged():
    """w0 − w* = 1e-200 (step 1e-202): the initial gap 5e-401 is below float64's range (NaN,
    exact log) and the run stays there: followed, not stopped or called diverged."""
    res = quadlab.run(quadlab.Problem.from_blocks([np.eye(1)]), "adam", lr=1e-202,
                      w0=[1e-200], steps=200, beta2=0.9, log_gap=True)
    np.testing.assert_allclose(res.log10_gap[0], math.log10(0.5) - 400, rtol=1e-14)
    assert np.isnan(res.gap[0]) and quadlab.divergence_steps(res.gap) == -1
    assert np.isfinite(res.log10_gap).all()


@pytest.mark.parametrize("optimizer,hyper", [
    ("adam", {"beta2": 0.999}),
    ("adam", {"beta1": 0.9, "beta2": 0.99, "bias_correction": True}),
    ("adabelief", {"beta1": 0.9, "beta2": 0.99, "eps": 0.0}),
])
@pytest.mark.parametrize("power", [-300, -900])
def test_scale_invariance_far_below_float64s_range(optimizer, hyper, power):
    """With ε = 0 the iteration is homogeneous: (η, w0 − w*) → (sη, s(w0 − w*)) scales every
    gap by s². With s = 2^power the scaled run lives far below float64's range (gaps ~1e-540
    for power −900) and must reproduce the unscaled one, shifted by 2 log10 s, to rounding."""
    problem = quadlab.make_problem("hetero", h_scale=0.0)  # w* = 0
    w0 = problem.initial_points(3, seed=2)
    lr = np.array([1e-3, 1e-2, 1e-1])
    s = 2.0**power
    ref = quadlab.run(problem, optimizer, lr=lr, w0=w0, steps=3000, log_gap=True,
                      on_divergence="ignore", **hyper).log10_gap
    low = quadlab.run(problem, optimizer, lr=lr * s, w0=w0 * s, steps=3000, log_gap=True,
                      on_divergence="ignore", **hyper).log10_gap
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(low - 2 * power * math.log10(2.0), ref, rtol=1e-9, atol=1e-9)
