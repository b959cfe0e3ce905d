"""The worked examples under ``examples/`` run."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
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


def test_hf_llama_heads_runs(monkeypatch, capsys, tmp_path):
    """Per-head blocks of a grouped-query Llama: 4 Q heads and 2 K heads per layer, each block
    one head's rows (64 = 4 rows of width 16), every spectrum finite."""
    pytest.importorskip("transformers")
    path = EXAMPLES / "hf_llama_heads.py"
    monkeypatch.setattr(sys, "argv", [str(path), "--json", "--device", "cpu", "--steps", "4",
                                      "--probes", "1", "--quiet", "--out",
                                      str(tmp_path / "llama.json")])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(path), run_name="__main__")
    assert done.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["blocks"] if isinstance(doc, dict) else doc
    names = [r["block"] for r in rows]
    for layer in (0, 1):
        attn = f"model.layers.{layer}.self_attn"
        assert [n for n in names if n.startswith(f"{attn}.q_proj")] == [
            f"{attn}.q_proj.weight.head{h}" for h in range(4)]
        assert [n for n in names if n.startswith(f"{attn}.k_proj")] == [
            f"{attn}.k_proj.weight.head{h}" for h in range(2)]
    assert all(r["dim"] == 64 for r in rows if ".head" in r["block"])
    assert all(np.isfinite(r["lambda_max"]) for r in rows)
