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
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.partition("alexnet", m, "qkv")


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


def _name_pattern_partition(name, model, kind):
    """The zoo's former partition, by parameter-name patterns and hard-coded head counts (the
    independent reference the roles-based one must reproduce)."""
    params = dict(model.named_parameters())
    heads = {"vit": 4, "gpt": 4, "bert": 4}.get(name)
    out = {}
    for pname, p in params.items():
        if pname.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            base, stem = pname.rsplit(".qkv.", 1)
            d = p.shape[0] // 3
            for i, part in enumerate("qkv"):
                if kind == "heads" and stem == "weight" and part in "qk" and heads:
                    per = d // heads
                    for h in range(heads):
                        rows = slice(i * d + h * per, i * d + (h + 1) * per)
                        out[f"{base}.{part}.{stem}.head{h}"] = (pname, (rows,))
                else:
                    out[f"{base}.{part}.{stem}"] = (pname, (slice(i * d, (i + 1) * d),))
        elif kind == "heads" and heads and pname.endswith(("attn.q.weight", "attn.k.weight")):
            out.update(nets.split_parameter(pname, tuple(p.shape),
                                            [f"head{h}" for h in range(heads)]))
        else:
            out[pname] = pname
    return out


def _plain(spec):
    if isinstance(spec, str):
        return spec
    name, index = spec
    return name, tuple((s.start, s.stop, s.step) if isinstance(s, slice) else s for s in index)


@pytest.mark.parametrize("name", zoo.MODELS)
@pytest.mark.parametrize("kind", ["qkv", "heads"])
def test_partition_is_the_engines_roles_split_with_zoo_names(name, kind):
    """One way to split by role: zoo.partition = nets.engine.roles.role_blocks (module types,
    shapes, the attention module's head count) up to the zoo's names of fused Q/K/V blocks,
    and it equals the former name-pattern partition block for block, in order."""
    from nets.engine.roles import role_blocks

    m, _, _ = zoo.load(name)
    part = zoo.partition(name, m, kind)
    ref = _name_pattern_partition(name, m, kind)
    assert list(part) == list(ref)
    assert {k: _plain(v) for k, v in part.items()} == {k: _plain(v) for k, v in ref.items()}
    roles = role_blocks(m, split=kind)
    assert [_plain(v) for v in part.values()] == [_plain(v) for v in roles.values()]
    if name in ("gpt", "bert"):  # separate Q/K/V layers: the engine's names are the zoo's
        assert list(part) == list(roles)


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
