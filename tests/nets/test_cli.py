"""End-to-end CLI: tables, JSON, atomic results, resumption after an interruption."""

import json

import numpy as np
import pytest
import torch

import labkit.progress
import nets
import nets.cli.app as cli
from nets.engine.results import load_spectra

# one product mode for every run: two fresh "auto" runs may calibrate to different (equally
# exact) products, and the resumption test compares float32 runs to 1e-6
FAST = ["--model", "mlp", "--steps", "4", "--probes", "3", "--quiet", "--device", "cpu",
        "--hvp-mode", "reverse"]


@pytest.fixture(scope="module")
def blockwise_file(tmp_path_factory):
    """One uninterrupted blockwise run shared by the tests (computed once)."""
    out = tmp_path_factory.mktemp("cli") / "ref.json"
    assert cli.main(["spectrum", *FAST, "--blocks", "--out", str(out)]) == 0
    return out


def test_spectrum_blockwise_json(blockwise_file, capsys):
    out = blockwise_file
    capsys.readouterr()
    assert cli.main(["spectrum", *FAST, "--blocks", "--json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["blocks"] == "params" and doc["settings"]["probes"] == 3
    assert [r["block"] for r in doc["blocks"]][:2] == ["layers.0.weight", "layers.0.bias"]
    f = load_spectra(out)
    settings, versions, spectra = f.settings, f.versions, f.spectra
    assert settings == doc["settings"] and "torch" in versions
    for s in spectra.values():
        assert s.nodes.shape == (3, 4) and list(s.probe_ids) == [0, 1, 2]
    for r in doc["blocks"]:
        assert r["lambda_min"] <= r["lambda_max"]


def test_spectrum_full_table_with_progress_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(labkit.progress, "_is_terminal", lambda stream: True)  # as on a tty
    out = tmp_path / "f.json"
    args = [a for a in FAST if a != "--quiet"]
    assert cli.main(["spectrum", *args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "full" in captured.out and "lambda_max" in captured.out
    assert "12/12" in captured.err and "probe 3/3" in captured.err  # 3 probes x 4 steps
    spectra = load_spectra(out).spectra
    assert list(spectra) == ["full"]


def test_js0_json_and_sensitivity(blockwise_file, tmp_path, capsys):
    out = tmp_path / "j.json"
    out.write_bytes(blockwise_file.read_bytes())  # js0 reuses the stored blockwise probes
    capsys.readouterr()
    assert cli.main(["js0", *FAST, "--out", str(out), "--json", "--bootstrap", "20",
                     "--sensitivity"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0.0 <= doc["js0"] <= 1.0
    assert doc["js0_interval95"][0] <= doc["js0_interval95"][1]
    assert len(doc["sensitivity"]) >= 4
    # every recipe at the run's threshold and at the coarser one float32 products resolve
    assert {r["zero_rel"] for r in doc["sensitivity"]} == {doc["recipe"]["zero_rel"], 1e-5}
    m = np.array(doc["js_matrix"])
    assert m.shape == (len(doc["blocks"]),) * 2
    assert doc["js0"] == pytest.approx(m[np.triu_indices(len(m), 1)].mean())
    assert cli.main(["js0", *FAST, "--out", str(out), "--json", "--bootstrap", "5",
                     "--exclude", "bias$"]) == 0
    sub = json.loads(capsys.readouterr().out)
    assert sub["blocks"] == [b for b in doc["blocks"] if not b.endswith("bias")]
    # a new recipe reuses the stored probes (no recomputation: the file is unchanged)
    before = out.read_bytes()
    assert cli.main(["js0", *FAST, "--out", str(out), "--width", "0.05", "--bootstrap",
                     "5"]) == 0
    assert "JS0 =" in capsys.readouterr().out
    assert out.read_bytes() == before


def test_js0_zero_threshold_does_not_follow_float64(tmp_path, capsys):
    """A model's JS0 must not move with the precision it was computed in: float32 and float64
    runs use the library's zero threshold; only a 16-bit dtype, whose products resolve no
    finer, gets its own coarser epsilon."""
    got = {}
    for dtype in ("float32", "float64"):
        out = tmp_path / f"{dtype}.json"
        assert cli.main(["js0", *FAST, "--dtype", dtype, "--blocks", "--out", str(out),
                         "--json", "--bootstrap", "5"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["settings"]["dtype"] == dtype
        got[dtype] = doc["recipe"]["zero_rel"]
    assert got == {"float32": nets.engine.density.ZERO_REL,
                   "float64": nets.engine.density.ZERO_REL}
    assert cli._zero_rel("native") == nets.engine.density.ZERO_REL
    assert cli._zero_rel("bfloat16") == float(torch.finfo(torch.bfloat16).eps)
    assert cli._zero_rel("float16") == float(torch.finfo(torch.float16).eps)


def test_resume_after_interruption(blockwise_file, tmp_path, monkeypatch, capsys):
    ref = blockwise_file
    real = cli.operator_spectra
    calls = []

    def interrupted(*a, **k):
        calls.append(k["probe_indices"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(cli, "operator_spectra", interrupted)
    out = tmp_path / "run.json"
    assert cli.main(["spectrum", *FAST, "--blocks", "--out", str(out)]) == 130
    assert "resume" in capsys.readouterr().err
    partial = load_spectra(out).spectra
    assert all(list(s.probe_ids) == [0] for s in partial.values())
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary file
    calls.clear()
    monkeypatch.setattr(cli, "operator_spectra", lambda *a, **k: (calls.append(
        k["probe_indices"]), real(*a, **k))[1])
    assert cli.main(["spectrum", *FAST, "--blocks", "--out", str(out)]) == 0
    assert calls == [[1], [2]]  # only the missing probes were computed
    a, b = load_spectra(ref).spectra, load_spectra(out).spectra
    for k in a:
        np.testing.assert_allclose(b[k].nodes, a[k].nodes, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(b[k].probe_ids, a[k].probe_ids)


def test_mismatched_settings_refused(blockwise_file, capsys):
    out = blockwise_file
    assert cli.main(["spectrum", "--model", "mlp", "--steps", "5", "--probes", "3", "--quiet",
                     "--blocks", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_bad_arguments(tmp_path, capsys):
    assert cli.main(["spectrum", "--model", "alexnet"]) == 2  # neither zoo name nor factory
    assert "unknown model 'alexnet'" in capsys.readouterr().err
    assert cli.main(["spectrum", "--model", "mlp", "--probes", "0"]) == 2
    assert "--probes must be >= 1" in capsys.readouterr().err


def test_device_auto(monkeypatch):
    from nets.engine.distributed import local_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert local_device("auto").type == want
    assert local_device("cpu").type == "cpu"
    if torch.cuda.is_available():  # one GPU per torchrun rank on a machine
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert local_device("auto") == torch.device("cuda", 1)


def test_reorth_partial_is_a_setting_of_its_own(blockwise_file, tmp_path, capsys, monkeypatch):
    """--reorth partial: recorded in the settings (so a full-reorthogonalization file is not
    resumed with it) and in the default file name; the spectra agree with the full
    reorthogonalization's to the float32 model's roundoff."""
    out = tmp_path / "partial.json"
    capsys.readouterr()
    assert cli.main(["spectrum", *FAST, "--blocks", "--reorth", "partial", "--json", "--out",
                     str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["reorth"] == "partial"
    assert "reorth" not in load_spectra(blockwise_file).settings
    full, part = load_spectra(blockwise_file).spectra, load_spectra(out).spectra
    for name, s in full.items():
        scale = np.abs(s.nodes).max()
        np.testing.assert_allclose(np.sort(part[name].nodes, -1), np.sort(s.nodes, -1), rtol=0,
                                   atol=1e-5 * scale)
    assert cli.main(["spectrum", *FAST, "--blocks", "--reorth", "partial", "--out",
                     str(blockwise_file)]) == 2
    assert "other settings" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert cli.main(["spectrum", *FAST, "--reorth", "partial"]) == 0
    assert (tmp_path / "runs" / "mlp-full-s0-k4-p3-float32-m0-partial.json").exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        cli.main(["spectrum", *FAST, "--reorth", "never"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'never'" in capsys.readouterr().err
