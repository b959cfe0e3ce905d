"""Input classes that used to slip through (issue 15): each refused with a message naming the
argument and the fix, or handled correctly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import quadlab
from quadlab import Problem
from quadlab.studies import run_study
from quadlab.validation import check_memory


@pytest.fixture
def hetero():
    return quadlab.make_problem("hetero")


def test_complex_hermitian_block_is_refused_not_truncated():
    """[[2, i], [−i, 2]] (eigenvalues 1, 3) used to become 2·I with a ComplexWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="block 0 is complex"):
            Problem.from_blocks([np.array([[2, 1j], [-1j, 2]])])
        with pytest.raises(TypeError, match="block 0 is complex"):
            Problem.from_blocks([[[2, 1j], [-1j, 2]]])


def test_complex_h_and_w0_are_refused(hetero):
    with pytest.raises(TypeError, match="h is complex"):
        Problem.from_blocks([np.eye(2)], h=np.array([1.0, 1j]))
    with pytest.raises(TypeError, match="w0 is complex"):
        quadlab.run(hetero, "gd", lr=1e-4, w0=np.ones(9) + 0j, steps=3)
    with pytest.raises(TypeError, match="w0 is complex"):
        quadlab.adam_constants(hetero, [1j] * 9)


@pytest.mark.parametrize("big", [1e300, 1.7e308])
def test_entries_near_overflow_are_refused(big):
    """Symmetrising 1e308 entries used to overflow to NaN eigenvalues that passed the PD check."""
    with pytest.raises(ValueError, match=r"block 0 has an entry of magnitude .* rescale"):
        Problem.from_blocks([np.array([[big, 0.0], [0.0, big]])])


def test_large_but_safe_block_symmetrises_without_overflow():
    p = Problem.from_blocks([np.array([[1e150, 1e149], [1e149, 1e150]])])
    np.testing.assert_allclose(p.eigenvalues[0], [9e149, 1.1e150], rtol=1e-12)


def test_from_spectra_refuses_an_empty_block():
    with pytest.raises(ValueError, match="eigenvalues of block 0 is empty"):
        Problem.from_spectra([np.array([])], [np.zeros((0, 0))])
    with pytest.raises(TypeError, match="eigenvalues must be a sequence"):
        Problem.from_spectra(3.0, [np.eye(1)])


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"std": np.nan}, ValueError, "std must be finite and > 0"),
    ({"std": -1.0}, ValueError, "std must be finite and > 0"),
    ({"std": "1"}, TypeError, "std must be a real number"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
    ({"n": 0}, ValueError, "n must be None or an integer >= 1"),
    ({"n": 2.5}, TypeError, "n must be None or an integer"),
])
def test_initial_points_checks(hetero, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        hetero.initial_points(**kwargs)


@pytest.mark.parametrize(("options", "exc", "match"), [
    ({"block_size": 2.7}, TypeError, "block_size must be an integer >= 2, got 2.7"),
    ({"block_size": 1}, ValueError, "block_size must be an integer >= 2"),
    ({"n_blocks": True}, TypeError, "n_blocks must be an integer"),
    ({"h_scale": "x"}, TypeError, "h_scale must be a real number"),
])
def test_make_problem_options(options, exc, match):
    with pytest.raises(exc, match=match):
        quadlab.make_problem("transformer", **options)


def test_make_problem_negative_seed_is_named():
    with pytest.raises(ValueError, match="seed must be >= 0, got -3"):
        quadlab.make_problem("hetero", seed=-3)


def test_adam_constants_at_the_optimum_is_inf_as_documented(hetero):
    c = quadlab.adam_constants(hetero, hetero.w_star)
    assert c.r == np.inf and np.all(np.isinf(c.kappa_adam))
    w0 = hetero.w_star.copy()
    w0[0] += 1.0  # one block moved: other blocks still have zero gradient coordinates
    assert quadlab.adam_constants(hetero, w0).r == np.inf
    r = quadlab.adam_constants(hetero, hetero.initial_points(seed=0)).r
    assert np.isfinite(r) and r >= 1.0


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"lr": None}, TypeError, "lr must be a number or an array of numbers, got None"),
    ({"w0": None}, TypeError, "w0 must be a number or an array of numbers, got None"),
    ({"lr": []}, ValueError, "lr is empty"),
    ({"w0": np.zeros((0, 9))}, ValueError, "w0 is empty"),
    ({"lr": "0.1"}, TypeError, "lr must be numeric"),
    ({"w0": [[1.0] * 9, [1.0] * 8]}, TypeError, "w0 must be numeric"),
    ({"steps": 10**12}, ValueError, "needs about .* GiB, more than"),
    ({"log_gap": 1}, TypeError, "log_gap must be True or False"),
])
def test_run_bad_inputs_name_the_argument(hetero, kwargs, exc, match):
    args = {"lr": 1e-4, "w0": hetero.initial_points(seed=0), "steps": 5, **kwargs}
    with pytest.raises(exc, match=match):
        quadlab.run(hetero, "gd", **args)


def test_run_refuses_a_non_problem():
    with pytest.raises(TypeError, match=r"problem must be a quadlab\.Problem"):
        quadlab.run(np.eye(2), "gd", lr=0.1, w0=np.ones(2), steps=3)


def test_tuning_memory_and_tol(hetero):
    w0 = hetero.initial_points(seed=0)
    with pytest.raises(ValueError, match=r"41 trajectories .* GiB"):
        quadlab.tune_lr(hetero, "gd", w0=w0, steps=10**10)
    with pytest.raises(ValueError, match="tol must be finite and > 0"):
        quadlab.iterations_to_tolerance(np.ones(4), -1.0)


def test_check_memory_message_carries_the_estimate():
    expected = r"x needs about 1\.72e\+10 GiB, more than 50% of the .* GiB available; do less"
    with pytest.raises(ValueError, match=expected):
        check_memory(2**64, what="x", fix="do less")
    check_memory(1024, what="x", fix="do less")  # small: accepted


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seeds": []}, "seeds is empty"),
    ({"seeds": 3}, "seeds must be a list or tuple"),
    ({"seeds": [-1]}, "seed must be >= 0, got -1"),
    ({"cases": []}, "cases is empty"),
    ({"cases": ["nope"]}, "unknown case"),
    ({"tol": 0.0}, "tol must be finite and > 0"),
])
def test_run_study_bad_inputs(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        run_study(**{"cases": ["hetero"], "seeds": [0], "steps": 10, **kwargs})
