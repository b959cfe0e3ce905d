"""`nets advise`: a user factory module, the verdict and its evidence, and bad input."""

import json
import textwrap
from pathlib import Path

import pytest

import nets.cli.app as cli
from nets.engine.density import RECIPES
from nets.studies.advise import advise, evidence_recipe, load_evidence, write_evidence
from nets.studies.advise_ladder import MIN_HELD_OUT, advise_ladder
from nets.studies.predictor import load_ladder_evidence, write_ladder_evidence
from nets.zoo.factory import load_factory

USER_MODULE = textwrap.dedent('''
    import torch

    def _data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 4, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        return [(x[:8], y[:8]), (x[8:], y[8:])]

    def _mlp():
        g = torch.Generator().manual_seed(1)
        m = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        return m

    def make_model():
        return _mlp(), torch.nn.functional.cross_entropy, _data()

    class _OnceOnly(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.tanh()

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (1 - x.tanh() ** 2)

    class _Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 5), torch.nn.Linear(5, 3)

        def forward(self, x):
            return self.b(_OnceOnly.apply(self.a(x)))

    def make_once_differentiable():
        return _Net(), torch.nn.functional.cross_entropy, _data()

    def make_flat():
        def loss(out, y):
            return torch.nn.functional.cross_entropy(out.detach(), y) + 0 * out.sum()
        return _mlp(), loss, _data()

    def make_bad_targets():  # one-hot rows of the wrong width for cross-entropy
        return _mlp(), torch.nn.functional.cross_entropy, [(x, torch.zeros(len(x), 2))
                                                            for x, _ in _data()]

    def make_broadcast_targets():  # MSE would broadcast (8, 1) targets against (8, 3) outputs
        return _mlp(), torch.nn.functional.mse_loss, [(x, torch.zeros(len(x), 1))
                                                      for x, _ in _data()]

    def make_broken():
        raise RuntimeError("no data on this machine")

    NOT_CALLABLE = 3
''')


def _evidence(tmp_path, rhos=(0.9, 0.2), intervals=((0.3, 1.0), (-0.6, 0.9))):
    rows = [{"task": t, "js0": js, "gap_b8": g8, "gap_b64": g64}
            for t, js, g8, g64 in (("cnn", 0.1, 0.0, 0.05), ("mix", 0.3, 0.2, 0.3),
                                   ("tf", 0.6, 0.8, 1.5), ("tf2", 0.7, 0.9, 2.0))]
    doc = {"profile": "test", "js_settings": {"steps": 4, "probes": 2, "recipe": "log"},
           "rows": rows,
           "spearman": {b: {"rho": r, "pvalue": 0.1, "n": 4, "interval95_bootstrap": list(ci),
                            "interval95_fisher": list(ci)}
                        for b, r, ci in zip(("64", "8"), rhos, intervals, strict=True)}}
    p = tmp_path / "ev.json"
    write_evidence(doc, p)
    return p


@pytest.fixture
def user_module(tmp_path):
    p = tmp_path / "mymodels.py"
    p.write_text(USER_MODULE)
    return p


def test_advise_cli_on_user_module(tmp_path, user_module, capsys, monkeypatch):
    ev = _evidence(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["advise", "--model", "mymodels:make_model", "--evidence", str(ev),
                     "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0 <= doc["js0"] <= 1 and doc["blocks"] == 4
    assert doc["verdict"] in ("likely", "unclear", "unlikely")
    assert doc["batch_size"] == 64 and len(doc["neighbours"]) == 3
    assert "JS0 =" in doc["message"]
    # the table form shows the evidence and the user's model among it
    assert cli.main(["advise", "--model", f"{user_module}:make_model", "--evidence",
                     str(ev), "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "YOUR MODEL" in out and "tf2" in out and "gap B=64" in out
    assert "contains 0" in out  # the weak evidence at B=8 is flagged


def test_verdict_follows_nearest_evidence(tmp_path, user_module):
    model, loss, data = load_factory(f"{user_module}:make_model")()
    ev = load_evidence(_evidence(tmp_path))
    a = advise(model, loss, data, evidence=ev, k=1)
    nearest = min(ev["rows"], key=lambda r: abs(r["js0"] - a.js0))
    assert a.neighbours == (nearest["task"],)
    assert a.predicted_gap == nearest["gap_b64"]
    expect = ("likely" if a.predicted_gap > 0.405 else
              "unlikely" if a.predicted_gap < 0.0954 else "unclear")
    assert a.verdict == expect


def test_bad_factories(tmp_path, user_module, capsys, monkeypatch):
    ev = str(_evidence(tmp_path))
    for spec, msg in (("no_such_module_xyz:make", "cannot import"),
                      (f"{user_module}:missing", "no attribute"),
                      (f"{user_module}:make_broken", "raised RuntimeError"),
                      (f"{user_module}:NOT_CALLABLE", "not callable"),
                      ("nocolon", "module:function"),
                      (f"{user_module}:make_once_differentiable", "not twice differentiable"),
                      (f"{user_module}:make_flat", "identically zero"),
                      (f"{user_module}:make_bad_targets", "targets must match"),
                      (f"{user_module}:make_broadcast_targets", "targets must match")):
        assert cli.main(["advise", "--model", spec, "--evidence", ev]) == 2, spec
        assert msg in capsys.readouterr().err, spec
    with pytest.raises(ValueError, match="no evidence file"):
        load_evidence(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=r"no checksum.*--write-evidence"):
        load_evidence(bad)
    write_evidence({"rows": []}, bad)  # sealed, but not an evidence file
    with pytest.raises(ValueError, match="not an evidence file"):
        load_evidence(bad)
    for content, match in ((b"\xff\xfe\x00garbage", "not JSON"), (b"[1, 2]", "not a JSON obj"),
                           (b"3", "not a JSON object"), (b"", "not JSON"),
                           (b'{"rows": NaN}', "not JSON")):
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            load_evidence(bad)
    # an edited number is caught by the checksum, and the message says how to get a good file
    good = Path(ev).read_text()
    assert '"js0": 0.7' in good
    bad.write_text(good.replace('"js0": 0.7', '"js0": 0.07'))
    with pytest.raises(ValueError, match=r"bad.json: checksum mismatch.*nets table1"):
        load_evidence(bad)
    assert load_evidence(ev)["code"].startswith(load_evidence(ev)["code"].split("+")[0] + "+")


def test_documented_example_runs(monkeypatch):
    """`nets advise --model examples/my_models.py:make_cnn` (the README's command) runs on the
    shipped example and prints the advice that `advise` gives in-process on the same model."""
    import subprocess
    import sys
    from pathlib import Path

    import torch

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "nets", "advise", "--model",
                          "examples/my_models.py:make_cnn", "--json", "--threads", "1"],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    factory = load_factory(str(root / "examples" / "my_models.py") + ":make_cnn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = advise_ladder(*factory())
    finally:
        torch.set_num_threads(threads)
    assert doc["value"] == pytest.approx(want.value, rel=1e-6)
    assert doc["call"] == want.call and doc["reliability"] == want.reliability
    assert doc["low"] <= doc["value"] <= doc["high"]
    assert doc["candidate"] == load_ladder_evidence()["validation"]["best"]
    # the shipped Table 1 evidence is regenerated under the default (log) recipe, which a
    # user's JS0 then uses too (a stale linear-recipe file would fail here)
    assert evidence_recipe(load_evidence()) == RECIPES["log"]


def test_evidence_recipe_names():
    assert evidence_recipe({"js_settings": {"recipe": "log"}}) == RECIPES["log"]
    assert evidence_recipe({"js_settings": {"recipe": "DensityRecipe()"}}) == RECIPES["linear"]
    with pytest.raises(ValueError, match="density recipe"):
        evidence_recipe({"js_settings": {"recipe": "cubic"}})


def _ladder_evidence(n_held_out, accuracy, threshold):
    recs = [{"name": f"{f}-{i}", "family": f, "size": i, "profile": "tiny", "parameters": 100,
             "candidates": {"logmax_spread": {"value": 0.1 * i}},
             "gap": {"64": {"gap": 0.1 * i}}} for f in ("gpt", "bert") for i in range(6)]
    held = [r["name"] for r in recs if r["family"] == "bert"][:n_held_out]
    cand = {"threshold": threshold, "selection": {"n": 6, "accuracy": 1.0, "spearman": None},
            "held_out": {"n": n_held_out, "points": held, "accuracy": accuracy,
                         "spearman": None}}
    return {"records": recs, "validation": {
        "protocol": {"selection_families": ["gpt"], "held_out_families": ["bert"],
                     "lag_threshold": 0.405}, "batch_size": 64, "best": "logmax_spread",
        "candidates": {"logmax_spread": cand}, "missing": []}}


def test_ladder_advice_calls_by_threshold_and_says_when_it_is_inconclusive(user_module,
                                                                          monkeypatch):
    monkeypatch.syspath_prepend(str(user_module.parent))
    model, loss, data = load_factory("mymodels:make_model")()
    ok = advise_ladder(model, loss, data, evidence=_ladder_evidence(MIN_HELD_OUT, 0.9, -1.0))
    assert ok.candidate == "logmax_spread" and ok.value > -1.0 and ok.call == "lag"
    assert ok.reliability == "validated" and ok.low <= ok.value <= ok.high
    assert ok.selection["points"] == [f"gpt-{i}" for i in range(6)]
    hi = advise_ladder(model, loss, data, evidence=_ladder_evidence(MIN_HELD_OUT, 0.9, 1e9))
    assert hi.call == "no lag" and hi.value == pytest.approx(ok.value)
    few = advise_ladder(model, loss, data, evidence=_ladder_evidence(MIN_HELD_OUT - 1, 1.0, 0))
    assert few.reliability == "inconclusive" and "held-out point" in few.reason
    poor = advise_ladder(model, loss, data, evidence=_ladder_evidence(MIN_HELD_OUT, 0.5, 0))
    assert poor.reliability == "inconclusive" and "50%" in poor.reason
    assert "INCONCLUSIVE" in poor.message
    none = _ladder_evidence(6, 1.0, 0)
    none["validation"]["best"] = None
    with pytest.raises(ValueError, match="chose no predictor"):
        advise_ladder(model, loss, data, evidence=none)


def test_advise_cli_reads_ladder_evidence(tmp_path, user_module, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(user_module.parent))
    p = tmp_path / "ladder.json"
    ev = _ladder_evidence(3, 1.0, 0.0)
    write_ladder_evidence(ev["records"], ev["validation"], p)
    assert cli.main(["advise", "--model", "mymodels:make_model", "--evidence", str(p)]) == 0
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out and "held out" in out and "YOUR MODEL" in out
    assert cli.main(["advise", "--model", "mymodels:make_model", "--evidence", str(p),
                     "--batch-size", "8"]) == 2
    assert "--batch-size applies to Table 1" in capsys.readouterr().err


def test_ladder_evidence_is_sealed_and_refused_when_edited(tmp_path):
    ev = _ladder_evidence(3, 1.0, 0.0)
    p = tmp_path / "ladder.json"
    write_ladder_evidence(ev["records"], ev["validation"], p)
    doc = load_ladder_evidence(p)
    assert doc["records"] == ev["records"] and doc["code"]
    edited = json.loads(p.read_text())
    edited["validation"]["candidates"]["logmax_spread"]["held_out"]["accuracy"] = 0.25
    p.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match=r"checksum mismatch.*make ladder"):
        load_ladder_evidence(p)
    p.write_text(json.dumps(ev))  # the old unsealed format
    with pytest.raises(ValueError, match="no checksum"):
        load_ladder_evidence(p)
    write_evidence({"rows": [], "js_settings": {}}, p)
    with pytest.raises(ValueError, match="table1` evidence is another format"):
        load_ladder_evidence(p)
