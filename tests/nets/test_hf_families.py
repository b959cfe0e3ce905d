"""The ladder's Hugging Face families: configs only (random init), sizes, seeds, real data, and
the exact Hessian of a tiny model of each family against an independent reference."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from nets.cli import main
from nets.engine.exact import dense_hessian
from nets.zoo import families as fam
from nets.zoo import hf_families as hf
from nets.zoo import realdata

from .test_families import rung_dense_reference


def test_missing_transformers_names_the_extra(monkeypatch, capsys):
    """Runs with or without transformers: a masked import gives the install command."""
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    rung = fam.ladder("hf-vit", "tiny")[0]
    with pytest.raises(hf.MissingExtraError, match=r"pip install '\.\[hf\]'"):
        fam.build_rung(rung)
    with pytest.raises(ImportError, match="transformers"):
        fam.parameter_count(rung)
    assert main(["ladder", "--family", "hf-vit", "--profile", "tiny", "--quiet"]) == 2
    assert "pip install '.[hf]'" in capsys.readouterr().err


def test_families_are_listed_beside_the_zoo():
    assert set(fam.HF_FAMILIES) == {"hf-gpt2", "hf-bert", "hf-vit", "hf-resnet"}
    assert fam.LADDER_FAMILIES == fam.FAMILIES + fam.HF_FAMILIES
    for profile in fam.LADDERS:
        assert set(fam.LADDERS[profile]) == set(fam.LADDER_FAMILIES)


transformers = pytest.importorskip("transformers")


def _have_texts() -> bool:
    try:
        realdata.shakespeare_text()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("family", hf.HF_FAMILIES)
def test_ladder_profile_spans_two_decades_up_to_about_a_million(family):
    counts = [fam.parameter_count(r) for r in fam.ladder(family, "ladder")]
    assert len(counts) >= 4 and counts == sorted(counts)
    assert counts[-1] / counts[0] >= 100
    assert counts[0] <= 30_000 and 5e5 <= counts[-1] <= 1.5e6


def test_gpu_profile_has_the_papers_sizes():
    """GPT-2 small / BERT-base widths with a 16k vocabulary (tied head), ViT-S, ResNet-18
    (HF's ResNet-18 with 10 classes and 1 channel: 11.18M)."""
    gpt2 = fam.ladder("hf-gpt2", "gpu")[0]
    assert dict(gpt2.config) == {"d": 768, "L": 12, "h": 12}
    # 12 layers of 12 d² + 13 d, token and position embeddings, final LayerNorm (head tied)
    d = 768
    assert fam.parameter_count(gpt2) == 12 * (12 * d * d + 13 * d) + (16384 + 128) * d + 2 * d
    assert 9e7 < fam.parameter_count(fam.ladder("hf-bert", "gpu")[0]) < 1.1e8
    assert 2e7 < fam.parameter_count(fam.ladder("hf-vit", "gpu")[0]) < 2.5e7
    assert 1.1e7 < fam.parameter_count(fam.ladder("hf-resnet", "gpu")[0]) < 1.2e7


@pytest.mark.parametrize("family", hf.HF_FAMILIES)
def test_build_is_the_transformers_class_seeded_eval_and_starts_at_chance(family):
    if family in hf.HF_TEXT_FAMILIES and not _have_texts():
        pytest.skip("Shakespeare not installed: make data")
    rung = fam.ladder(family, "ladder")[0]
    before = torch.random.get_rng_state()
    m1, loss_fn = fam.build_rung(rung, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is untouched
    m2, _ = fam.build_rung(rung, seed=0)
    m3, _ = fam.build_rung(rung, seed=1)
    assert type(m1).__module__.startswith("transformers.")
    assert not m1.training and not any(m.training for m in m1.modules())
    assert all(getattr(m, "p", 0.0) == 0.0 for m in m1.modules()
               if isinstance(m, torch.nn.Dropout))
    if family != "hf-resnet":
        assert m1.config._attn_implementation == "eager"
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(m1.parameters(), m3.parameters(),
                                                     strict=True))
    assert sum(p.numel() for p in m1.parameters()) == fam.parameter_count(rung)
    x, y = fam.rung_data(rung, "spectrum", 16)
    with torch.no_grad():
        loss = float(loss_fn(m1(x), y))
    classes = rung.vocab or 10
    assert math.isfinite(loss) and abs(loss - math.log(classes)) < 0.35 * math.log(classes)


def test_text_heads_are_tied_to_the_word_embedding():
    for family in hf.HF_TEXT_FAMILIES:
        model, _ = fam.build_rung(fam.ladder(family, "tiny")[0])
        emb = model.get_input_embeddings().weight
        assert model.get_output_embeddings().weight is emb
        assert sum(p is emb for p in model.parameters()) == 1


@pytest.mark.parametrize("family", hf.HF_FAMILIES)
def test_exact_hessian_of_tiny_model_matches_an_independent_reference(family):
    """nets.engine.exact's dense Hessian (forward-over-reverse) = double backward of the
    flat-parameter loss, on the family's tiny model and real data, in float64."""
    if family in hf.HF_TEXT_FAMILIES and not _have_texts():
        pytest.skip("Shakespeare not installed: make data")
    rung = fam.ladder(family, "tiny")[0]
    model, loss_fn = fam.build_rung(rung, seed=0, dtype=torch.float64)
    if family == "hf-resnet":  # non-trivial eval-mode batch-norm statistics
        g = torch.Generator().manual_seed(4)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g,
                                                 dtype=torch.float64))
                m.running_var.copy_(torch.rand(m.num_features, generator=g,
                                               dtype=torch.float64) + 0.5)
    data, _, _, ref = rung_dense_reference(model, loss_fn, rung, vectorize=True)
    h = dense_hessian(model, loss_fn, data)
    scale = np.abs(ref).max()
    assert h.shape == ref.shape and scale > 0
    assert np.abs(h - ref).max() <= 1e-9 * scale


@pytest.mark.slow
def test_ladder_cli_runs_an_hf_family(tmp_path, capsys):
    argv = ["ladder", "--family", "hf-vit", "--profile", "tiny", "--cache", str(tmp_path),
            "--json", "--quiet"]
    assert main(argv) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["family"] == "hf-vit" and r["parameters"] == fam.parameter_count(
        fam.ladder("hf-vit", "tiny")[0])
    assert r["blocks"] == sum(1 for _ in fam.build_rung(fam.ladder("hf-vit", "tiny")[0])[0]
                              .parameters())
    assert set(r["gap"]) == {"4", "16"}
    for g in r["gap"].values():
        assert math.isclose(g["gap"], math.log(g["sgd_loss"] / g["adam_loss"]), rel_tol=1e-9)
