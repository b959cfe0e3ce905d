"""Embeddings whose backward is not the plain gradient: ``scale_grad_by_freq=True`` returns each
row's gradient divided by its count in the batch (not a gradient of the loss, so a double
backward through it is asymmetric and not the Hessian) and ``sparse=True`` a sparse gradient
(no double backward, no forward-mode derivative). The engine runs them without those flags
(:func:`nets.engine.adapters.exact_derivatives`): the same forward values, and the Hessian of
the loss, which is checked here against the same model with the flags cleared, in every mode.
``nn.EmbeddingBag``'s fused kernel has no second derivative at all: the engine evaluates it by
:func:`nets.engine.adapters.embedding_bag_formula`, whose values equal torch's and whose
Hessian equals the bags written out by hand."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import nets
from nets.engine.adapters import altered_embedding_gradients, embedding_bag_formula

from .reference_checks import assert_products_match

CE = nn.functional.cross_entropy


class _Bag(nn.Module):
    """Token embedding → tanh → mean over the sequence → linear classifier."""

    def __init__(self, **flags: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 3, **flags)
        self.head = nn.Linear(3, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.emb(ids)).mean(1))


def _problem(**flags: bool):
    torch.manual_seed(0)
    model = _Bag(**flags).double().eval()
    ids = torch.tensor([[0, 0, 0, 1], [1, 2, 3, 3], [4, 4, 4, 4], [5, 0, 1, 2], [0, 0, 0, 0],
                        [3, 2, 1, 5]])  # rows repeated within batches: frequencies matter
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, [(ids[:4], y[:4]), (ids[4:], y[4:])]


def _cleared(model: _Bag) -> _Bag:
    plain = copy.deepcopy(model)
    plain.emb.scale_grad_by_freq = plain.emb.sparse = False
    return plain


def _hessian_by_double_backward(model, data) -> np.ndarray:
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    sizes = [p.numel() for p in params]
    total = sum(len(y) for _, y in data)

    def loss(flat):
        t = dict(zip(names, (a.reshape(p.shape) for a, p in
                             zip(flat.split(sizes), params, strict=True)), strict=True))
        return sum(CE(torch.func.functional_call(model, t, (x,)), y) * len(y) / total
                   for x, y in data)

    return torch.autograd.functional.hessian(loss, torch.cat([p.reshape(-1) for p in params])
                                             ).numpy()


FLAGS = [{"scale_grad_by_freq": True}, {"sparse": True},
         {"scale_grad_by_freq": True, "sparse": True}]


def test_the_frequency_scaled_gradient_has_no_symmetric_hessian():
    """Why the engine clears the flag: differentiating torch's frequency-scaled backward gives
    a matrix far from symmetric, while the loss (the same values) has a symmetric Hessian."""
    model, data = _problem(scale_grad_by_freq=True)
    raw = _hessian_by_double_backward(model, data)
    assert np.abs(raw - raw.T).max() > 1e-2 * np.abs(raw).max()
    plain = _hessian_by_double_backward(_cleared(model), data)
    assert np.abs(plain - plain.T).max() <= 1e-14 * np.abs(plain).max()


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "+".join(f))
def test_the_hessian_is_the_losss_in_every_mode(flags):
    model, data = _problem(**flags)
    assert altered_embedding_gradients(model) == ["emb"]
    assert altered_embedding_gradients(_cleared(model)) == []
    ref = _hessian_by_double_backward(_cleared(model), data)
    assert_products_match(model, CE, data, ref, rtol=1e-12, seed=1,
                          modes=("forward", "reverse", "reverse-block", "reverse-bundle"))
    # the model is left as it was: the flags are cleared only inside the engine's calls
    assert model.emb.scale_grad_by_freq == flags.get("scale_grad_by_freq", False)
    assert model.emb.sparse == flags.get("sparse", False)


def test_a_spectrum_of_a_frequency_scaled_embedding_is_symmetric_and_exact():
    """The whole run: products symmetric to round-off (no asymmetry warning), extreme Ritz
    values at full steps equal to the exact block eigenvalues of the loss."""
    model, data = _problem(scale_grad_by_freq=True)
    info: dict = {}
    spec = nets.blockwise_spectrum(model, CE, data, blocks={"emb": "emb.weight"},
                                   lanczos_steps=18, probes=1, info=info)
    ref = _hessian_by_double_backward(_cleared(model), data)[:18, :18]
    want = np.linalg.eigvalsh(ref)
    assert info["product_asymmetry"] <= 1e-13
    assert abs(spec["emb"].nodes.max() - want.max()) <= 1e-12 * np.abs(want).max()
    assert abs(spec["emb"].nodes.min() - want.min()) <= 1e-12 * np.abs(want).max()


# ---- nn.EmbeddingBag: torch's fused kernel has no double backward nor forward-mode AD ----

@st.composite
def _bags(draw):
    """A random ``F.embedding_bag`` call: 2-D input, or 1-D with offsets (empty bags allowed,
    with or without the last offset), each mode, per-sample weights with ``sum``, padding."""
    rows = draw(st.integers(2, 6))
    mode = draw(st.sampled_from(["sum", "mean", "max"]))
    padding_idx = draw(st.one_of(st.none(), st.integers(-rows, rows - 1)))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    kw = {"mode": mode, "padding_idx": padding_idx}
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        x = torch.randint(0, rows, shape, generator=g)
    else:
        lengths = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
        x = torch.randint(0, rows, (sum(lengths),), generator=g)
        offsets = torch.tensor([0, *np.cumsum(lengths)[:-1].tolist()], dtype=torch.long)
        if draw(st.booleans()):
            offsets = torch.cat([offsets, torch.tensor([sum(lengths)])])
            kw["include_last_offset"] = True
        kw["offsets"] = offsets
    if mode == "sum" and draw(st.booleans()):
        kw["per_sample_weights"] = torch.randn(x.shape, generator=g, dtype=torch.float64)
    weight = torch.randn(rows, 3, generator=g, dtype=torch.float64)
    return x, weight, kw


@given(_bags())
def test_the_embedding_bag_formula_has_torchs_values(bag):
    x, weight, kw = bag
    np.testing.assert_allclose(embedding_bag_formula(x, weight, **kw),
                               F.embedding_bag(x, weight, **kw), rtol=1e-13, atol=1e-13)


class _BagModel(nn.Module):
    """``nn.EmbeddingBag`` → tanh → linear classifier, bags given by offsets."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(6, 3, mode=mode, padding_idx=0)
        self.head = nn.Linear(3, 3)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.emb(ids, offsets)))


def _written_out(model: _BagModel, ids: torch.Tensor, offsets: torch.Tensor,
                 params: dict) -> torch.Tensor:
    """The same bags written with ``nn.Embedding`` rows and Python reductions."""
    w = params["emb.weight"]
    bounds = [*offsets.tolist(), len(ids)]
    out = []
    for a, b in itertools.pairwise(bounds):
        rows = [w[i] for i in ids[a:b].tolist() if i != 0]
        if not rows:
            out.append(torch.zeros(3, dtype=w.dtype))
        elif model.emb.mode == "max":
            out.append(torch.stack(rows).amax(0))
        else:
            total = torch.stack(rows).sum(0)
            out.append(total / len(rows) if model.emb.mode == "mean" else total)
    h = torch.tanh(torch.stack(out))
    return h @ params["head.weight"].T + params["head.bias"]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_an_embedding_bags_hessian_is_exact_in_every_mode(mode):
    torch.manual_seed(0)
    model = _BagModel(mode).double()
    assert altered_embedding_gradients(model) == ["emb"]
    ids = torch.tensor([1, 2, 2, 0, 3, 4, 5, 5, 1, 0, 0, 2])
    offsets = torch.tensor([0, 3, 5, 5, 9])  # bag 3 is empty, bag 4 holds padding
    y = torch.tensor([0, 1, 2, 0, 1])
    data = [((ids, offsets), y)]
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    sizes = [p.numel() for p in params]

    def loss(flat):
        t = dict(zip(names, (a.reshape(p.shape) for a, p in
                             zip(flat.split(sizes), params, strict=True)), strict=True))
        return CE(_written_out(model, ids, offsets, t), y)

    ref = torch.autograd.functional.hessian(loss, torch.cat([p.reshape(-1) for p in params])
                                            ).numpy()
    assert_products_match(model, CE, data, ref, rtol=1e-12, seed=2, label=mode)


def test_the_formula_refuses_what_torch_refuses():
    w = torch.randn(4, 2, dtype=torch.float64)
    x = torch.tensor([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="mode must be"):
        embedding_bag_formula(x, w, mode="median")
    with pytest.raises(ValueError, match="only supported for mode='sum'"):
        embedding_bag_formula(x, w, mode="mean", per_sample_weights=torch.ones(2, 2))
