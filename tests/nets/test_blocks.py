"""User partitions: fused QKV split into Q, K, V and per-head blocks."""

import numpy as np
import pytest
import torch

import nets
from nets.engine.blocks import Block, Piece, check_blocks


class FusedQKV(torch.nn.Module):
    def __init__(self, dim=4, heads=2):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.heads = heads
        self.qkv = torch.nn.Parameter(torch.randn(3 * dim, dim, generator=g,
                                                  dtype=torch.float64) / 2)
        self.out = torch.nn.Parameter(torch.randn(2, dim, generator=g, dtype=torch.float64))

    def forward(self, x):  # x: (B, T, dim)
        b, t, d = x.shape
        q, k, v = (x @ self.qkv.T).split(d, dim=-1)
        h, dh = self.heads, d // self.heads
        q, k, v = (z.reshape(b, t, h, dh).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, t, d)
        return y.mean(1) @ self.out.T


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, 4, generator=g, dtype=torch.float64)
    return [(x, torch.randint(0, 2, (6,), generator=g))]


def test_split_parameter_specs():
    spec = nets.split_parameter("qkv", (12, 4), ["q", "k", "v"])
    assert list(spec) == ["qkv.q", "qkv.k", "qkv.v"]
    assert spec["qkv.k"] == ("qkv", (slice(4, 8),))
    cols = nets.split_parameter("w", (4, 6), 3, dim=1, prefix="w_cols")
    assert cols["w_cols.2"] == ("w", (slice(None), slice(4, 6)))
    with pytest.raises(ValueError, match="equal parts"):
        nets.split_parameter("w", (5, 4), 2)


def test_qkv_and_head_blocks_match_dense_submatrices():
    model = FusedQKV()
    loss_fn, data = torch.nn.functional.cross_entropy, _data()
    blocks = nets.split_parameter("qkv", (12, 4), ["q", "k", "v"])
    # per-head blocks of Q: rows of head h
    heads = {f"q.head{h}": ("qkv", (slice(2 * h, 2 * h + 2),)) for h in range(2)}
    h_full = nets.dense_hessian(model, loss_fn, data)  # qkv (48 entries) first, then out
    exact = nets.exact_blockwise_eigenvalues(model, loss_fn, data, blocks={**blocks, "out": "out"})
    exact_heads = nets.exact_blockwise_eigenvalues(model, loss_fn, data, blocks=heads)
    for i, name in enumerate(["qkv.q", "qkv.k", "qkv.v"]):
        sub = h_full[16 * i:16 * i + 16, 16 * i:16 * i + 16]  # rows 4i..4i+3 of a (12,4) weight
        np.testing.assert_allclose(exact[name], np.linalg.eigvalsh(sub), atol=1e-12)
    for h in range(2):
        sub = h_full[8 * h:8 * h + 8, 8 * h:8 * h + 8]
        np.testing.assert_allclose(exact_heads[f"q.head{h}"], np.linalg.eigvalsh(sub),
                                   atol=1e-12)
    spectra = nets.blockwise_spectrum(model, loss_fn, data, blocks={**blocks, **{"out": "out"}},
                                      lanczos_steps=16, probes=2)
    for name, ev in exact.items():
        scale = np.abs(ev).max()
        assert abs(spectra[name].nodes.max() - ev[-1]) <= 1e-6 * scale
        assert abs(spectra[name].nodes.min() - ev[0]) <= 1e-6 * scale


def test_multi_piece_block():
    """A block made of two pieces (V rows of the fused weight and the whole output weight) is
    the principal submatrix of the dense Hessian on those coordinates: its eigenvalues match,
    and Lanczos run to the block's dimension recovers them."""
    model = FusedQKV()
    loss_fn, data = torch.nn.functional.cross_entropy, _data()
    blocks = {"qk": [("qkv", (slice(0, 8),))], "v_and_out": [("qkv", (slice(8, 12),)), "out"]}
    out = nets.blockwise_spectrum(model, loss_fn, data, blocks=blocks, lanczos_steps=24,
                                  probes=1)
    assert out["qk"].dim == 32 and out["v_and_out"].dim == 16 + 8
    h_full = nets.dense_hessian(model, loss_fn, data)  # qkv (48 entries) first, then out (8)
    coords = {"qk": np.arange(32), "v_and_out": np.r_[32:48, 48:56]}
    exact = nets.exact_blockwise_eigenvalues(model, loss_fn, data, blocks=blocks)
    for name, idx in coords.items():
        want = np.linalg.eigvalsh(h_full[np.ix_(idx, idx)])
        scale = np.abs(want).max()
        np.testing.assert_allclose(exact[name], want, atol=1e-12 * scale)
        s = out[name]
        if s.dim <= 24:  # the Krylov space is exhausted: the Ritz values are the eigenvalues
            n = int(s.n_steps[0])
            ritz = np.sort(s.nodes[0, :n])
            assert abs(ritz[-1] - want[-1]) <= 1e-8 * scale
            assert abs(ritz[0] - want[0]) <= 1e-8 * scale


def test_check_blocks_refuses_each_malformed_partition_by_name():
    params = dict(FusedQKV().named_parameters())
    good = nets.resolve_blocks(FusedQKV(), {"q": ("qkv", (slice(0, 4),)), "out": "out"})
    check_blocks(good, params)  # a resolved partition passes
    piece = good[0].pieces[0]
    with pytest.raises(TypeError, match="non-empty list"):
        check_blocks([], params)
    with pytest.raises(TypeError, match="non-empty list"):
        check_blocks(good[0], params)
    with pytest.raises(TypeError, match=r"must hold nets\.engine\.blocks\.Block objects"):
        check_blocks([good[0], "out"], params)
    with pytest.raises(ValueError, match="two blocks are named 'q'"):
        check_blocks([good[0], good[0]], params)
    with pytest.raises(ValueError, match="block 'empty' has no piece"):
        check_blocks([Block("empty", ())], params)
    with pytest.raises(ValueError, match="names parameter 'missing', which the model does not"):
        check_blocks([Block("m", (Piece("missing", (), (2,)),))], params)
    with pytest.raises(ValueError, match=r"has shape \(5, 4\), which its index does not select"):
        check_blocks([Block("q", (Piece("qkv", piece.index, (5, 4)),))], params)
    with pytest.raises(TypeError, match=r"is torch\.int64; the Hessian is taken with respect to "
                       r"real floating parameters"):
        check_blocks(good, {**params, "out": torch.zeros(2, 4, dtype=torch.int64)})
