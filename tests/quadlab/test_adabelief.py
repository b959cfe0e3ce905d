"""AdaBelief against a plain-numpy transcription of its update (seed 002's formula)."""

import numpy as np
import pytest

import quadlab


def adabelief_reference(problem, lr, w0, steps, *, beta1=0.9, beta2=0.999, eps=1e-8):
    """m ← β1 m + (1−β1) g; s ← β2 s + (1−β2)(g − m)²; w ← w − η m̂/(√ŝ + ε), zero start."""
    w = np.array(w0, dtype=float)
    m = np.zeros_like(w)
    s = np.zeros_like(w)
    gaps = [problem.gap(w)]
    for t in range(1, steps + 1):
        g = problem.grad(w)
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * (g - m) ** 2
        mh, sh = m / (1 - beta1**t), s / (1 - beta2**t)
        w = w - lr * mh / (np.sqrt(sh) + eps)
        gaps.append(problem.gap(w))
    return np.array(gaps)


@pytest.mark.parametrize("case", ["hetero", "transformer"])  # fused and blocked kernels
@pytest.mark.parametrize("hyper", [{}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
                                   {"beta1": 0.99, "beta2": 0.0, "eps": 0.0}])
def test_adabelief_matches_numpy_reference(case, hyper):
    problem = quadlab.make_problem(case, seed=1)
    w0 = problem.initial_points(seed=2)
    got = quadlab.run(problem, "adabelief", lr=1e-3, w0=w0, steps=60, **hyper)
    want = adabelief_reference(problem, 1e-3, w0, 60, **hyper)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want[0])


def test_adabelief_label_and_defaults():
    spec = quadlab.make_optimizer("adabelief")
    assert (spec.beta1, spec.beta2, spec.eps) == (0.9, 0.999, 1e-8)
    assert spec.label() == "adabelief(β1=0.9, β2=0.999, ε=1e-08)"
    assert not spec.is_linear
