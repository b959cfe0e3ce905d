"""The ladder study, its command line, and the out-of-sample predictor protocol."""

import json
import math

import numpy as np
import pytest
import torch

from nets.cli import main
from nets.engine.slq import BlockSpectrum
from nets.studies import predictor as pr
from nets.zoo.families import LADDER_FAMILIES


def _spec(name, eigs):
    eigs = np.sort(np.asarray(eigs, dtype=float))
    w = np.full((1, eigs.size), 1 / eigs.size)
    return BlockSpectrum(name, eigs.size, eigs[None], w, np.array([eigs.size]), np.array([0]))


def test_block_scale_statistics_match_closed_forms():
    base = np.linspace(1.0, 10.0, 11)  # λ_max = 10, bulk (weighted median) = 5.5
    same = pr.block_scale_statistics({"a": _spec("a", base), "b": _spec("b", base)})
    assert same["logmax_spread"] == pytest.approx(0.0, abs=1e-12)
    assert same["theorem1"] == pytest.approx(0.0, abs=1e-12)
    c = 1000.0
    het = pr.block_scale_statistics({"a": _spec("a", base), "b": _spec("b", c * base)})
    assert het["logmax_spread"] == pytest.approx(0.5 * math.log10(c))  # std of {1, 4}
    assert het["theorem1"] == pytest.approx(math.log10(c))  # κ_global / κ_block = c
    one = pr.block_scale_statistics({"a": _spec("a", base), "z": _spec("z", -base)})
    assert math.isnan(one["theorem1"])  # a block with no positive curvature is left out


def test_candidate_values_have_intervals_and_reject_bad_input():
    rng = np.random.default_rng(0)
    spectra = {}
    for k, scale in (("a", 1.0), ("b", 30.0), ("c", 900.0)):
        nodes = np.sort(rng.gamma(2.0, scale, size=(4, 12)), axis=1)
        spectra[k] = BlockSpectrum(k, 50, nodes, np.full((4, 12), 1 / 12), np.full(4, 12),
                                   np.arange(4))
    out = pr.candidate_values(spectra, n_boot=30, rng=np.random.default_rng(1))
    assert set(out) == set(pr.CANDIDATES)
    for k in ("js0:log", "js0:linear", "logmax_spread", "theorem1"):
        assert out[k]["low"] < out[k]["value"] < out[k]["high"], (k, out[k])
    assert out["logmax_spread"]["value"] > 1.0
    with pytest.raises(TypeError, match="Generator"):
        pr.candidate_values(spectra, n_boot=5, rng=0)
    with pytest.raises(ValueError, match="two blocks"):
        pr.candidate_values({"a": spectra["a"]}, n_boot=5, rng=np.random.default_rng(0))


def _rec(family, i, x, gap):
    cands = {c: {"value": math.nan} for c in pr.CANDIDATES}
    cands["theorem1"] = {"value": x}
    cands["logmax_spread"] = {"value": -x}  # anti-correlated: must fail out of sample
    return {"family": family, "name": f"{family}-{i}", "candidates": cands,
            "gap": {"8": {"gap": 0.0}, "64": {"gap": gap}}}


def test_validate_selects_on_selection_points_and_reports_held_out():
    recs = []
    for fam in ("gpt", "vit", "resnet", "mlp", "bert", "mixer", "vgg"):
        for i in range(3):
            x = {"gpt": 3, "vit": 2.5, "bert": 2.8, "mixer": 1.0}.get(fam, 0.5) + 0.1 * i
            recs.append(_rec(fam, i, x, gap=0.2 * x))  # gap > ln 1.5 exactly when x > 2.03
    out = pr.validate(recs, n_boot=200)
    assert out["batch_size"] == 64 and out["best"] == "theorem1"
    t1 = out["candidates"]["theorem1"]
    assert t1["selection"]["accuracy"] == 1.0 and t1["held_out"]["accuracy"] == 1.0
    assert t1["held_out"]["n"] == 9 and t1["held_out"]["spearman"]["rho"] == pytest.approx(1.0)
    bad = out["candidates"]["logmax_spread"]
    assert bad["held_out"]["spearman"]["rho"] == pytest.approx(-1.0)
    assert out["candidates"]["js0:log"]["selection"]["n"] == 0
    only_sel = pr.validate([r for r in recs if r["family"] == "gpt"], n_boot=50)
    assert "no held-out point with a measured gap" in only_sel["missing"]
    with pytest.raises(ValueError, match="no ladder record"):
        pr.validate([{**recs[0], "gap": None}])


def test_ladder_cli_tiny_end_to_end_and_resume(tmp_path, capsys):
    argv = ["ladder", "--family", "mlp", "--profile", "tiny", "--cache", str(tmp_path),
            "--json", "--quiet"]
    assert main(argv) == 0
    recs = json.loads(capsys.readouterr().out)
    (r,) = recs
    assert r["family"] == "mlp" and r["parameters"] == 544 and r["blocks"] == 8
    assert set(r["js0"]) == {"log", "linear", "lambda1", "lambda10"}
    assert set(r["gap"]) == {"4", "16"}
    for g in r["gap"].values():
        assert g["seeds"] == 3 and g["sgd_lr"] in (0.1, 1.0) and g["adam_lr"] in (1e-3, 1e-2)
        assert math.isclose(g["gap"], math.log(g["sgd_loss"] / g["adam_loss"]), rel_tol=1e-9)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 0  # resumed entirely from the cache: identical records, no new file
    again = json.loads(capsys.readouterr().out)
    assert again[0]["candidates"] == r["candidates"] and again[0]["gap"] == r["gap"]
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    path = tmp_path / "l.json"
    path.write_text(json.dumps(recs))
    assert main(["predictor", str(path)]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "missing: no held-out point" in out


def test_ladder_cli_bad_input(capsys):
    assert main(["ladder", "--family", "mlp", "--profile", "tiny", "--sizes", "3"]) == 2
    assert "out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ladder", "--family", "alexnet"])


def test_predictor_cli_names_a_missing_or_broken_records_file_and_the_fix(tmp_path, capsys):
    assert main(["predictor", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert "no file at" in err and "absent.json" in err and "nets ladder --json" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{bad")
    assert main(["predictor", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json: not JSON" in err and "nets ladder --json" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_gpu_check_refuses_a_cpu_only_machine(capsys):
    assert main(["gpu-check"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_rung_spectra_cache_entry_of_other_model_is_reported_and_recomputed(tmp_path,
                                                                              monkeypatch):
    import nets.studies.ladder as lad
    from labkit.cache import CacheWarning

    rung = lad.ladder("mlp", "tiny")[0]
    profile = lad.LADDER_PROFILES["tiny"]
    first, _ = lad.rung_spectra(rung, profile, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("ladder-spectra-*.npz")
    real = lad.build_rung

    def scaled(rung, seed, device="cpu"):
        model, loss = real(rung, seed, device=device)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(2.0)
        return model, loss

    monkeypatch.setattr(lad, "build_rung", scaled)
    with pytest.warns(CacheWarning, match=rf"{entry.name}.*other fingerprint"):
        second, _ = lad.rung_spectra(rung, profile, cache_dir=tmp_path)
    k = next(iter(first))
    assert not np.array_equal(first[k].nodes, second[k].nodes)


def test_merge_records_prefers_measured_gaps_then_later_records(tmp_path):
    a = {"name": "mlp-h6", "family": "mlp", "size": 0, "gap": None, "tag": 1}
    b = {"name": "mlp-h6", "family": "mlp", "size": 0, "gap": {"64": {}}, "tag": 2}
    c = {"name": "mlp-h6", "family": "mlp", "size": 0, "gap": None, "tag": 3}
    d = {"name": "gpt-x", "family": "gpt", "size": 1, "gap": None, "tag": 4}
    e = {"name": "gpt-y", "family": "gpt", "size": 0, "gap": None, "tag": 5}
    assert [r["tag"] for r in pr.merge_records([a, b, c, d, e])] == [5, 4, 2]
    assert [r["tag"] for r in pr.merge_records([a, c])] == [3]
    with pytest.raises(ValueError, match="needs 'name'"):
        pr.merge_records([{"family": "mlp"}])
    with pytest.raises(ValueError, match="no ladder evidence file"):
        pr.load_ladder_evidence(tmp_path / "none.json")
    (tmp_path / "t1.json").write_text(json.dumps({"rows": [], "js_settings": {}}))
    with pytest.raises(ValueError, match="not a ladder evidence file"):
        pr.load_ladder_evidence(tmp_path / "t1.json")
    packaged = pr.load_ladder_evidence()
    assert packaged["records"] and "best" in packaged["validation"]


def test_ladder_cli_no_gap_gives_spectra_only_and_says_so(tmp_path, capsys):
    argv = ["ladder", "--family", "vgg", "--profile", "tiny", "--cache", str(tmp_path),
            "--json", "--quiet", "--no-gap"]
    assert main(argv) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["gap"] is None and "not requested" in r["gap_skipped"]
    assert math.isfinite(r["js0"]["log"]["value"])
    # provenance: the fingerprint of the exact model and batches the spectra were computed on
    import nets.studies.ladder as lad
    from nets.engine.results import fingerprint
    rung = lad.ladder("vgg", "tiny")[0]
    prof = lad.LADDER_PROFILES["tiny"]
    model, _ = lad.build_rung(rung, 0)
    data = lad._spectrum_batches(rung, prof.spectrum_samples, prof.spectrum_batch)
    assert r["spectra_fingerprint"] == fingerprint(model, data)
    assert r["code"].split("+")[1] and len(r["code"].split("+")[1]) == 16
    assert not any(p.name.startswith("train") for p in tmp_path.rglob("*"))


def test_protocol_puts_every_ladder_family_on_exactly_one_side():
    sel, held = set(pr.PROTOCOL.selection_families), set(pr.PROTOCOL.held_out_families)
    assert not sel & held
    assert sel | held == set(LADDER_FAMILIES)
    # at least one whole family held out of each kind the paper compares
    assert {"bert", "hf-bert"} <= held and {"vgg", "hf-resnet"} & held
