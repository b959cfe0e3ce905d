"""benchmarks/bench_numerics.py: the engine's numerical choices (partial reorthogonalization,
the model's precision) judged against the probe noise. The comparison can say each thing
(hand-set spectra: a rescaled block disagrees, one probe is inconclusive), a smoke run on a
real model agrees, the float64 variant casts what it should, and ``--resume`` measures only
what its file lacks."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

import nets


@pytest.fixture(scope="module")
def effect(benchmark_script):
    return benchmark_script("bench_numerics")


def _spectra(probes: int, scale_b: float = 1.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(["a", "b", "c"]):
        nodes = np.sort(rng.gamma(2.0 + i, 1.0 + 5 * i, size=(probes, 8)), axis=1)
        if name == "b":
            nodes = nodes * scale_b
        w = rng.dirichlet(np.ones(8), size=probes)
        out[name] = nets.BlockSpectrum(name, 40, nodes, w, np.full(probes, 8),
                                       np.arange(probes))
    return out


def test_the_same_spectra_agree_and_a_rescaled_block_disagrees(effect):
    same = effect.compare(_spectra(6), _spectra(6), seed=0)
    assert same["verdict"] == "agrees"
    assert same["d_js0"] == 0.0 and same["d_density"] == 0.0 and same["d_lambda"] == 0.0
    assert same["js0_std"] > 0 and same["probe_js"] > 0
    off = effect.compare(_spectra(6), _spectra(6, scale_b=3.0), seed=0)
    assert off["verdict"] == "disagrees"
    assert off["density_share"] > effect.verdicts.PARTLY_SHARE
    assert off["d_lambda"] > 0


def test_a_coarser_zero_threshold_hides_a_difference_below_it(effect):
    """Eigenvalues near roundoff (1e-7 of the largest) moved tenfold in the variant: seen at a
    threshold below them, one atom at zero in both above them."""
    def tiny(c):
        spectra = _spectra(6)
        s = spectra["a"]
        nodes = s.nodes.copy()
        nodes[:, :4] = c * 1e-7 * np.abs(_spectra(6)["c"].nodes).max()
        spectra["a"] = nets.BlockSpectrum("a", s.dim, np.sort(nodes, axis=1), s.weights,
                                          s.n_steps, s.probe_ids)
        return spectra

    fine = effect.compare(tiny(1.0), tiny(10.0), seed=0,
                          recipe=nets.DensityRecipe(zero_rel=1e-9))
    coarse = effect.compare(tiny(1.0), tiny(10.0), seed=0,
                            recipe=nets.DensityRecipe(zero_rel=1e-5))
    assert fine["d_density"] > 0.1 and fine["verdict"] != "agrees"
    assert coarse["d_density"] == 0.0 and coarse["verdict"] == "agrees"


def test_one_probe_is_inconclusive_and_a_full_spectrum_has_no_js0(effect):
    one = effect.compare(_spectra(1), _spectra(1), seed=0)
    assert one["verdict"] == "inconclusive"
    assert np.isnan(one["js0_std"]) and np.isnan(one["probe_js"])
    whole = {"full": _spectra(4)["c"]}
    row = effect.compare(whole, whole, seed=0)
    assert row["js0"] is None and row["verdict"] == "agrees"


def test_smoke_run_agrees_and_resumes_from_its_file(effect, tmp_path, monkeypatch):
    out, js = tmp_path / "numerics.md", tmp_path / "numerics.json"
    argv = ["--models", "mlp-xs", "--steps", "6", "--probes", "4", "--zero-rels", "1e-7",
            "1e-3", "--out", str(out), "--json", str(js)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        effect.main(argv)
    rows = json.loads(js.read_text())["rows"]
    assert [(r["model"], r["kind"], r["variant"], r["zero_rel"]) for r in rows] == [
        ("mlp-xs", kind, variant, z) for kind in ("blocks", "full")
        for variant in ("partial", "float64") for z in (1e-7, 1e-3)]
    for r in rows:
        assert r["verdict"] == "agrees"
        default, variant, steps = (int(x) for x in r["passes"].split(" / "))
        assert default < steps  # full reorthogonalization skips the last step's pass
        assert r["s_default"] > 0 and r["s_variant"] > 0
        if r["variant"] == "partial":
            assert variant < default
        else:  # mlp-xs is float64 already: the same computation, bit for bit
            assert variant == default
            assert r["d_density"] == 0.0 and r["d_lambda"] == 0.0
    text = out.read_text()
    assert text.count("| mlp-xs |") == 8 and "--zero-rels 1e-07 0.001" in text

    def refuse(*a, **k):
        raise AssertionError("a row the file holds was measured again")

    monkeypatch.setattr(effect, "measure", refuse)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        effect.main([*argv, "--resume"])
    assert json.loads(js.read_text())["rows"] == rows


def test_float64_casts_the_model_and_floating_inputs_only(effect):
    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    data = [(x, torch.tensor([0, 1, 1, 0])), (torch.tensor([[1, 2]]), x[:1])]
    wide, wide_data = effect.cast(model, data, torch.float64)
    assert wide is model and all(p.dtype == torch.float64 for p in wide.parameters())
    assert [(a.dtype, b.dtype) for a, b in wide_data] == [
        (torch.float64, torch.int64), (torch.int64, torch.float64)]
    assert torch.equal(wide_data[0][0], x.double())


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--probes", "0"], ["--resume"],
                                  ["--models", "resnet"], ["--zero-rels", "1"]])
def test_bad_options_are_refused(effect, argv):
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        effect.main(argv)
