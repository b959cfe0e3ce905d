"""Model zoo: offline data, seeded deterministic models, partitions, second derivatives."""

import numpy as np
import pytest
import torch

import nets
from nets import zoo
from nets.zoo.data import VOCAB, glyph_digits, grammar_corpus, masked_lm_batches


@pytest.mark.parametrize("name", zoo.MODELS)
def test_load_is_seeded_deterministic_and_finite(name):
    m1, loss_fn, data = zoo.load(name, seed=0)
    m2, _, data2 = zoo.load(name, seed=0)
    m3, _, _ = zoo.load(name, seed=1)
    assert not m1.training
    for (n, p), q, r in zip(m1.named_parameters(), m2.parameters(), m3.parameters(),
                            strict=True):
        assert torch.equal(p, q), n
        assert torch.isfinite(p).all(), n
        if p.numel() > 1 and p.std() > 0:
            assert not torch.equal(p, r), n
    for (x, y), (x2, y2) in zip(data, data2, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    with torch.no_grad():
        losses = [loss_fn(m1(x), y) for x, y in data]
    n_classes = len(VOCAB) + (name == "bert") if name in ("gpt", "bert") else 10
    for loss in losses:
        assert loss.ndim == 0
        # at initialization the loss is close to log(#classes)
        assert abs(loss.item() - np.log(n_classes)) < 0.15 * np.log(n_classes)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        zoo.load("alexnet")
    m, _, _ = zoo.load("mlp")
    with pytest.raises(ValueError, match="unknown partition"):
        zoo.partition("mlp", m, "rows")


@pytest.mark.parametrize("name", ["vit", "gpt", "bert"])
def test_partitions_resolve(name):
    m, _, _ = zoo.load(name)
    n_params = sum(p.numel() for p in m.parameters())
    for kind in ("qkv", "heads"):
        blocks = nets.resolve_blocks(m, zoo.partition(name, m, kind))
        assert sum(b.dim for b in blocks) == n_params  # a partition covers every coordinate
    qkv = {b.name for b in nets.resolve_blocks(m, zoo.partition(name, m, "qkv"))}
    assert "layers.0.attn.q.weight" in qkv and "layers.0.attn.v.weight" in qkv
    heads = {b.name for b in nets.resolve_blocks(m, zoo.partition(name, m, "heads"))}
    assert "layers.1.attn.k.weight.head3" in heads


def test_gpt_blockwise_spectrum_runs():
    """A zoo Transformer: math attention has second derivatives; Q, K, per-head blocks run."""
    m, loss_fn, data = zoo.load("gpt")
    heads = zoo.partition("gpt", m, "heads")
    blocks = {k: heads[k] for k in ("wte.weight", "layers.0.attn.q.weight.head0",
                                    "layers.0.attn.k.weight.head0", "layers.1.fc2.weight")}
    spectra = nets.blockwise_spectrum(m, loss_fn, data, lanczos_steps=3, probes=1,
                                      blocks=blocks)
    assert spectra["layers.0.attn.q.weight.head0"].dim == 8 * 32
    for s in spectra.values():
        assert np.all(np.isfinite(s.nodes)) and s.nodes.shape == (1, 3)
        assert s.nodes.max() > 0


def test_offline_data_sources():
    x, y = glyph_digits(40, seed=3)
    assert x.shape == (40, 1, 16, 16) and x.dtype == torch.float32
    assert sorted(np.bincount(y.numpy()).tolist()) == [4] * 10
    # class means differ (the glyphs carry the label), beyond pixel noise
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    assert (means[0] - means[1]).abs().mean() > 0.05
    text = grammar_corpus(500, seed=0)
    assert len(text) >= 500 and set(text) <= set(VOCAB)
    assert text == grammar_corpus(500, seed=0) != grammar_corpus(500, seed=1)
    (_xb, yb), *_ = masked_lm_batches(n_seq=8, context=16, batch_size=4)
    assert ((yb != -100).sum(1) >= 1).all()
