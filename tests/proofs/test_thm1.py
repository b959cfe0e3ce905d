"""Theorem 1: printed step (diverges), corrected step (holds), known-answer instances."""

import numpy as np
import pytest
from hypothesis import given

import quadlab
from proofs import THM1_CORRECTED, THM1_PRINTED, THM1_SHARP, check_thm1, search_thm1
from proofs.strategies import problems_with_start
from proofs.thm1 import Thm1Statement

DELTA = 1e-3


def known_instance():
    """H = I₂ (one block, κ_l = 1), g0 = (1, δ): r = 1/δ², η = δ, ην = (δ, 1): sup ratio
    (1 − δ)² = (1 − 1/(√r κ))² exactly (the sharp form is attained)."""
    return quadlab.Problem.from_blocks([np.eye(2)]), np.array([1.0, DELTA])


def test_known_instance_constants():
    c = quadlab.adam_constants(*known_instance())
    np.testing.assert_allclose(c.r, 1 / DELTA**2, rtol=1e-12)
    res = check_thm1(*known_instance(), statement=THM1_SHARP, steps=50)
    assert res.holds
    np.testing.assert_allclose(np.exp(res.log_sup_ratio), (1 - DELTA) ** 2, rtol=1e-12)


def test_tightened_sharp_bound_is_violated():
    tighter = Thm1Statement("corrected", THM1_SHARP.step,
                            lambda c: 2 * np.log1p(-1.01 / (np.sqrt(c.r) * c.kappa_blocks.max())),
                            "sharp with 1.01")
    assert not check_thm1(*known_instance(), statement=tighter, steps=50).holds


def test_dropping_r_is_violated():
    no_r = Thm1Statement("corrected", THM1_CORRECTED.step,
                         lambda c: float(np.log1p(-0.5 / c.kappa_blocks.max())), "no r")
    assert not check_thm1(*known_instance(), statement=no_r).holds
    assert check_thm1(*known_instance(), statement=THM1_CORRECTED).holds


def test_printed_step_diverges_on_the_paper_case():
    p = quadlab.make_problem("hetero", seed=0)
    w0 = p.initial_points(seed=3)
    res = check_thm1(p, w0, statement=THM1_PRINTED, steps=100)
    assert not res.holds and res.eta_nu_max > 2 and res.max_run_ratio == np.inf
    assert check_thm1(p, w0, statement=THM1_CORRECTED, steps=100).holds


@given(problems_with_start(adversarial=True))
def test_corrected_holds_on_adversarial_instances(case):
    problem, w0 = case
    if np.any(problem.grad(w0) == 0):
        return
    res = check_thm1(problem, w0, statement=THM1_CORRECTED, steps=30)
    assert res.holds
    assert 0 < res.eta_nu_max <= 1 + 1e-12  # the proof's key step: ην ∈ (0, 1]
    assert check_thm1(problem, w0, statement=THM1_SHARP).holds


def test_zero_gradient_coordinate_is_rejected():
    p = quadlab.Problem.from_blocks([np.eye(2)])
    with pytest.raises(ValueError, match="zero coordinate"):
        check_thm1(p, np.array([1.0, 0.0]))


def test_search_verdicts():
    printed, corrected = search_thm1(effort="test")
    assert (printed.verdict, corrected.verdict) == ("violated", "holds")
    assert corrected.evidence["instances_tried"] >= 100
    assert printed.evidence["instances_violating"] > 0
