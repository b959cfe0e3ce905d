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
    assert 0.0 <= doc["js0"] <= 1.0
    assert doc["verdict"] in ("likely", "unclear", "unlikely")
