"""Proposition 1: printed (false), corrected (true, tight), deliberately wrong constants."""

import numpy as np
import pytest
from hypothesis import given

from proofs import PROP1_CORRECTED, PROP1_PRINTED, check_prop1, search_prop1, tight_construction
from proofs.prop1 import Prop1Statement, equal_loading
from proofs.strategies import problems_with_start, tight_prop1


@pytest.mark.parametrize("kappa", [2.0, 10.0, 5000.0, 1e6])
def test_printed_is_violated_at_the_optimal_step(kappa):
    res = check_prop1(*tight_construction(kappa), statement=PROP1_PRINTED, n_eta=200, steps=20)
    assert not res.holds
    rho = (kappa - 1) / (kappa + 1)
    # the violation is the textbook one: ratio ρ² at η = 2/(κ+1), bound ρ
    np.testing.assert_allclose(res.ratio_at_eta_opt, rho**2, rtol=1e-10)


@pytest.mark.parametrize("kappa", [2.0, 10.0, 5000.0, 1e6])
def test_corrected_holds_and_is_tight(kappa):
    res = check_prop1(*tight_construction(kappa), statement=PROP1_CORRECTED, n_eta=500,
                      steps=50)
    assert res.holds
    np.testing.assert_allclose(res.worst_ratio / res.bound, 1.0, rtol=1e-9)


@pytest.mark.parametrize("kappa", [10.0, 1e4])
def test_tightened_constant_is_violated(kappa):
    tighter = Prop1Statement("corrected", lambda k: ((k - 1) / (k + 1)) ** 2 * (1 + 1e-6), "t")
    assert not check_prop1(*tight_construction(kappa), statement=tighter, n_eta=200,
                           steps=10).holds


def test_loosened_printed_constant_holds():
    looser = Prop1Statement("as-printed", lambda k: ((k - 1) / (k + 1)) ** 2 * (1 - 1e-6), "l")
    assert check_prop1(*tight_construction(100.0), statement=looser, n_eta=300, steps=30).holds


def test_equal_loading_fails_the_corrected_bound_at_step_zero():
    res = check_prop1(*equal_loading(1e3), statement=PROP1_CORRECTED, n_eta=300, steps=5)
    assert not res.holds and res.worst_t == 0


@given(tight_prop1(max_log10_kappa=7.0))
def test_corrected_holds_on_random_kappa(case):
    assert check_prop1(*case, statement=PROP1_CORRECTED, n_eta=100, steps=20).holds


@given(problems_with_start(max_blocks=3, max_size=3))
def test_printed_fails_on_every_construction(case):
    problem, w0 = case
    if problem.kappa < 1 + 1e-6 or problem.gap(w0) == 0:
        return
    res = check_prop1(problem, w0, statement=PROP1_PRINTED, n_eta=20, steps=3)
    assert not res.holds
    assert res.ratio_at_eta_opt <= PROP1_CORRECTED.factor(res.kappa) * (1 + 1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="kappa"):
        tight_construction(1.0)
    with pytest.raises(ValueError, match="steps"):
        check_prop1(*tight_construction(3.0), steps=0)


def test_search_verdicts():
    printed, corrected = search_prop1(effort="test")
    assert (printed.verdict, corrected.verdict) == ("violated", "holds")
    assert printed.evidence["counterexample"]["worst_t"] == 0
