import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import strategies as qs


def test_adam_constants_by_hand_on_a_diagonal_problem():
    # blocks diag(1, 2) and diag(10); h = 0 so ∇L(w0) = H w0
    problem = quadlab.Problem.from_blocks([np.diag([1.0, 2.0]), np.array([[10.0]])])
    w0 = np.array([3.0, -0.5, 0.2])  # gradient (3, -1, 2)
    c = quadlab.adam_constants(problem, w0)
    np.testing.assert_allclose(c.C1, [1 / 2, 2 / 10])
    np.testing.assert_allclose(c.C2, [3 / 2, 2 / 10])
    assert c.r == pytest.approx((3 / 2) ** 2 / (2 / 10) ** 2)
    np.testing.assert_allclose(c.kappa_blocks, [2.0, 1.0])
    np.testing.assert_allclose(c.kappa_adam, c.r * np.array([2.0, 1.0]))
    np.testing.assert_allclose(c.grad0, [3.0, -1.0, 2.0])


@given(qs.problems_with_start(), st.floats(1e-3, 1e3))
def test_r_is_invariant_to_scaling_the_problem(case, scale):
    """C_{l,i} are ratios |g|/λ: scaling H and h by c leaves them (and r) unchanged."""
    problem, w0 = case
    scaled = quadlab.Problem.from_spectra([scale * lam for lam in problem.eigenvalues],
                                          problem.eigenvectors, scale * problem.h)
    a, b = quadlab.adam_constants(problem, w0), quadlab.adam_constants(scaled, w0)
    assert b.r == pytest.approx(a.r, rel=1e-9)
    assert a.r >= 1.0  # max C2² >= min C1² always
    np.testing.assert_allclose(b.C1, a.C1, rtol=1e-9)


def test_estimate_r_matches_adam_constants_and_is_seeded():
    problem = quadlab.make_problem("homo")
    r = quadlab.estimate_r(problem, 50, seed=11)
    np.testing.assert_array_equal(r, quadlab.estimate_r(problem, 50, seed=11))
    w0s = problem.initial_points(50, seed=11)
    np.testing.assert_allclose(r, [quadlab.adam_constants(problem, w).r for w in w0s], rtol=1e-12)


def test_probability_r_below_1000_on_hetero_is_about_two_thirds():
    """The paper: P(r <= 1000) ≈ 2/3 with standard Gaussian init on the heterogeneous case.
    Measured (40,000 draws): 0.64; binomial s.e. 0.0024."""
    r = quadlab.estimate_r(quadlab.make_problem("hetero"), 40_000, seed=0)
    assert 0.60 < np.mean(r <= 1000) < 0.70


def test_estimate_r_rejects_bad_trials():
    p = quadlab.make_problem("hetero")
    for bad in (0, -3, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="trials"):
            quadlab.estimate_r(p, bad)
    with pytest.raises(ValueError, match="w0"):
        quadlab.adam_constants(p, np.ones(4))
