"""The worked examples under ``examples/`` run."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_hf_gpt2_advise_runs(monkeypatch, capsys):
    pytest.importorskip("transformers")
    path = EXAMPLES / "hf_gpt2_advise.py"
    monkeypatch.setattr(sys, "argv", [str(path), "--json", "--device", "cpu"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(path), run_name="__main__")
    assert done.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    # the ladder predictor's advice (nets.studies.advise_ladder.LadderAdvice)
    assert doc["call"] in ("lag", "no lag")
    assert doc["reliability"] in ("validated", "inconclusive")
    assert doc["low"] <= doc["value"] <= doc["high"]
    if doc["candidate"].startswith("js0"):
        assert 0.0 <= doc["value"] <= 1.0
    assert doc["blocks"] >= 2 and doc["message"]
