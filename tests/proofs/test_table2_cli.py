"""Table 2 and the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from proofs.table2 import gd_iterations, hetero_family, search_table2
from proofs.verdict import FORMS, IDS, VERDICTS


def test_gd_iterations_scale_with_kappa():
    rng = np.random.default_rng(0)
    its = []
    for kappa in (1e2, 1e4):
        p = hetero_family(kappa, rng)
        its.append(gd_iterations(p, rng.standard_normal(p.d))[1])
    assert 30 < its[1] / its[0] < 300  # ~κ ratio 100


def test_family_rejects_small_kappa():
    with pytest.raises(ValueError, match="kappa"):
        hetero_family(2.0, np.random.default_rng(0))


def test_search_verdicts():
    printed, corrected = search_table2(effort="test")
    assert printed.verdict == "violated" and printed.evidence["adam_diverged"] > 0
    assert corrected.verdict == "holds"
    assert abs(corrected.evidence["gd_exponent_vs_kappa"] - 1) < 0.15
    assert corrected.evidence["adam_beta2_lt_1_all_stalled"]


def test_cli_json_end_to_end():
    out = subprocess.run([sys.executable, "-m", "proofs", "--json", "--effort", "test"],
                         capture_output=True, text=True, check=True, timeout=120)
    data = json.loads(out.stdout)
    assert {(d["id"], d["form"]) for d in data} == {(i, f) for i in IDS for f in FORMS}
    for d in data:
        assert set(d) == {"id", "form", "statement", "verdict", "evidence"}
        assert d["verdict"] in VERDICTS and d["statement"] and d["evidence"]["instances_tried"]


def test_cli_table_and_bad_effort():
    out = subprocess.run([sys.executable, "-m", "proofs", "--effort", "test", "--only", "prop1"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert "prop1" in out.stdout and "violated" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "proofs", "--effort", "huge"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "effort" in bad.stderr


def test_wrong_gd_exponent_is_violated():
    assert search_table2(effort="test", gd_exponent=2.0)[1].verdict == "violated"
