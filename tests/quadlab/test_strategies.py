import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import quadlab
from quadlab import strategies as qs


@given(qs.problems(max_log10_kappa=3.0, max_blocks=3))
def test_generated_problems_are_valid_and_respect_kappa(problem):
    assert isinstance(problem, quadlab.Problem)
    assert 1.0 <= problem.kappa <= 1e3 * (1 + 1e-12)
    for b in problem.blocks:
        np.testing.assert_allclose(b, b.T)


@given(qs.problems_with_start(adversarial=True))
def test_adversarial_starts_are_finite(case):
    problem, w0 = case
    assert w0.shape == (problem.d,) and np.isfinite(w0).all()


@given(qs.problems_with_start(), st.data())
def test_adversarial_start_shrinks_exactly_the_chosen_gradient_coordinates(case, data):
    """The adversarial construction: ∇L at the new point is the old gradient with the chosen
    coordinates multiplied by the shrink factor (to rounding: κ·ε relative to |∇L|)."""
    problem, w0 = case
    g = problem.grad(w0)
    idx = np.array(sorted(data.draw(st.sets(st.integers(0, problem.d - 1), min_size=1))))
    shrink = 10.0 ** -data.draw(st.floats(1.0, 6.0))
    g1 = problem.grad(qs.with_shrunk_gradient(problem, w0, idx, shrink))
    want = g.copy()
    want[idx] *= shrink
    tol = 1e3 * problem.kappa * np.finfo(float).eps * np.abs(g).max()
    np.testing.assert_allclose(g1, want, rtol=0, atol=tol)
    others = np.setdiff1d(np.arange(problem.d), idx)
    assert np.all(np.abs(g1[idx]) <= shrink * np.abs(g[idx]) + tol)
    np.testing.assert_allclose(g1[others], g[others], rtol=0, atol=tol)
