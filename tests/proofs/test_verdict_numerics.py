"""Verdict record and the log-space exact gaps (against quadlab.run)."""

import json
import warnings

import numpy as np
import pytest

import quadlab
from labkit.jsonio import to_jsonable as jsonable
from proofs import Verdict
from proofs._numerics import adam_modes, gd_modes, log_gaps, steps_to_reach
from proofs.verdict import decide


def test_verdict_json_has_the_keys_and_plain_values():
    v = Verdict(id="thm1", form="corrected", statement="s", verdict="holds",
                evidence={"x": np.float64(np.inf), "n": np.int64(3), "a": np.arange(2)})
    d = json.loads(v.to_json())
    assert set(d) == {"id", "form", "statement", "verdict", "evidence"}
    assert d["evidence"] == {"x": "inf", "n": 3, "a": [0, 1]}


@pytest.mark.parametrize("field,value", [("id", "prop3"), ("form", "printed"),
                                         ("verdict", "true")])
def test_verdict_rejects_unknown_values(field, value):
    kwargs = {"id": "prop1", "form": "as-printed", "statement": "s", "verdict": "holds",
              field: value}
    with pytest.raises(ValueError, match=field if field != "id" else "claim id"):
        Verdict(**kwargs)


def test_decide_counts():
    assert decide(1, 5) == "violated"
    assert decide(0, 1) == "inconclusive"
    assert decide(0, 0) == "holds"
    assert jsonable(float("nan")) == "nan"


@pytest.mark.parametrize("case", ["hetero", "transformer"])
def test_log_gaps_match_quadlab_for_gd_and_adam(case):
    p = quadlab.make_problem(case, seed=1)
    w0 = p.initial_points(seed=2)
    lam_max = p.all_eigenvalues[-1]
    ref = quadlab.run(p, "gd", lr=1.0 / lam_max, w0=w0, steps=200)
    mine = np.exp(log_gaps(*gd_modes(p, w0), 1.0 / lam_max, 200))
    np.testing.assert_allclose(mine, ref, rtol=1e-9)
    nu, a = adam_modes(p, w0)
    eta = 1.0 / nu.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quadlab.run(p, "adam", lr=eta, w0=w0, steps=200)
    ok = ref > 1e-250
    np.testing.assert_allclose(np.exp(log_gaps(nu, a, eta, 200))[ok], ref[ok], rtol=1e-8)


def test_log_gaps_do_not_underflow():
    nu, a = np.array([1.0]), np.array([2.0])  # gap_t = (1 − η)^{2t}
    lg = log_gaps(nu, a, 0.99, 1000)  # 1e-4000 at the end
    np.testing.assert_allclose(lg[-1], 2000 * np.log(0.01), rtol=1e-12)


def test_steps_to_reach_known_answer():
    nu, a = np.array([1.0]), np.array([2.0])  # gap_t = 0.25^t at η = 0.5
    assert steps_to_reach(nu, a, 0.5, 1e-6) == np.ceil(np.log(1e-6) / np.log(0.25))
    assert steps_to_reach(nu, a, 2.5, 1e-6) == np.inf  # |1 − ην| > 1
    with pytest.raises(ValueError, match="reduction"):
        steps_to_reach(nu, a, 0.5, 2.0)


def test_adam_modes_rejects_zero_gradient_coordinate():
    p = quadlab.Problem.from_blocks([np.eye(2)])
    with pytest.raises(ValueError, match="zero coordinate"):
        adam_modes(p, np.array([1.0, 0.0]))
