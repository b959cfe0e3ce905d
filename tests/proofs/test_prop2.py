"""Proposition 2: the cycle, its stability, the exact counterexample, log-space arithmetic."""

import math
from fractions import Fraction

import numpy as np
import pytest

import quadlab
from proofs import cycle_multipliers, exact_run, search_prop2, simulate_log
from proofs.prop2 import mpmath_log_losses, numerical_jacobian


@pytest.mark.parametrize("beta2", [0.5, 0.9, 0.999])
def test_cycle_is_a_fixed_point(beta2):
    eta = 0.3
    res = simulate_log(np.array([eta / 2]), eta, beta2, 1000, tail=100)
    assert res.distance[0] < 1e-12 and res.tail_sign_flips[0] == 100
    np.testing.assert_allclose(np.exp(res.min_log_loss_tail[0]), eta**2 / 8, rtol=1e-12)


def test_cycle_in_exact_arithmetic():
    gaps = exact_run(Fraction(1, 2), Fraction(1), Fraction(9, 10), 10)
    assert all(g == Fraction(1, 8) for g in gaps)


def test_exact_counterexample_w0_equals_eta():
    gaps = exact_run(Fraction(3, 7), Fraction(3, 7), Fraction(99, 100), 30)
    assert gaps[0] > 0 and all(g == 0 for g in gaps[1:])


@pytest.mark.parametrize("beta2", [0.05, 0.2, 0.5, 0.9, 0.999])
def test_multipliers(beta2):
    mu = cycle_multipliers(beta2)
    np.testing.assert_allclose(np.prod(mu).real, beta2, rtol=1e-12)
    assert np.max(np.abs(mu)) < 1
    if beta2 > 1 / 9:
        np.testing.assert_allclose(np.abs(mu), math.sqrt(beta2), rtol=1e-10)
    np.testing.assert_allclose(np.sort(np.abs(np.linalg.eigvals(numerical_jacobian(beta2)))),
                               np.sort(np.abs(mu)), atol=1e-6)


def test_logspace_matches_mpmath_through_underflow():
    ref = mpmath_log_losses(1.0, 0.9, 0.999, 2500)
    mine = simulate_log(np.array([1.0]), 0.9, 0.999, 2500, record=2501).log_loss[0]
    assert ref.min() < math.log(1e-308) * 3  # far below float64's range
    np.testing.assert_allclose(mine, ref, rtol=1e-10)


def test_logspace_matches_quadlab_without_underflow():
    w0 = np.array([0.3, -2.0])
    mine = simulate_log(w0, 0.5, 0.9, 300, record=301).log_loss
    ref = quadlab.run(quadlab.Problem.from_blocks([np.eye(1)]), "adam", lr=0.5, w0=w0[:, None],
                      steps=300, beta2=0.9)
    np.testing.assert_allclose(mine, np.log(ref), atol=1e-10)


def test_quadlab_follows_the_underflowing_trajectory():
    """In plain float64, Adam (β2 < 1) on w²/2 from w0 = 1 shrinks w below 1e-308 while the
    exact trajectory returns to the cycle (gap η²/8): quadlab's extended range follows it, its
    log gap matching the log-space simulator, and never reports a gap of 0."""
    eta = 0.9
    res = quadlab.run(quadlab.Problem.from_blocks([np.eye(1)]), "adam", lr=eta,
                      w0=np.array([1.0]), steps=20000, beta2=0.999, log_gap=True)
    ref = simulate_log(np.array([1.0]), eta, 0.999, 20000, record=20001).log_loss[0]
    assert ref.min() < -1000 * math.log(10)
    np.testing.assert_allclose(res.log10_gap * math.log(10), ref, rtol=1e-6, atol=1e-6)
    assert not (res.gap == 0).any() and np.isnan(res.gap).any()
    np.testing.assert_allclose(res.gap[-1], np.exp(ref[-1]), rtol=1e-5)  # back near η²/8
    assert res.gap[-1] > 0.5 * eta**2 / 8


def test_bad_inputs():
    with pytest.raises(ValueError, match="nonzero"):
        simulate_log(np.array([0.0]), 1.0, 0.9, 10)
    with pytest.raises(ValueError, match="beta2"):
        simulate_log(np.array([1.0]), 1.0, 1.0, 10)
    with pytest.raises(ValueError, match="eta"):
        simulate_log(np.array([1.0]), -1.0, 0.5, 10)


def test_search_verdicts():
    printed, corrected = search_prop2(effort="test")
    assert printed.verdict == "violated"
    assert corrected.verdict == "holds"
    assert corrected.evidence["stability_checks_pass"]


def test_overstated_liminf_is_violated():
    # the derived liminf is η²/8; claiming η²/4 must fail, η²/16 must hold
    assert search_prop2(effort="test", liminf_factor=0.25)[1].verdict == "violated"
    assert search_prop2(effort="test", liminf_factor=1 / 16)[1].verdict == "holds"
