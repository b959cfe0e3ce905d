import numpy as np
from hypothesis import given

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
