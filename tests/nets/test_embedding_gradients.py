"""Embeddings whose backward is not the plain gradient: ``scale_grad_by_freq=True`` returns each
row's gradient divided by its count in the batch (not a gradient of the loss, so a double
backward through it is asymmetric and not the Hessian) and ``sparse=True`` a sparse gradient
(no double backward, no forward-mode derivative). The engine runs them without those flags
(:func:`nets.engine.adapters.exact_derivatives`): the same forward values, and the Hessian of
the loss, which is checked here against the same model with the flags cleared, in every mode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import nets
from nets.engine.adapters import altered_embedding_gradients
from nets.engine.hvp import BlockHVP

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
    scale = np.abs(ref).max()
    np.testing.assert_allclose(nets.dense_hessian(model, CE, data), ref, rtol=0,
                               atol=1e-12 * scale)
    blocks = nets.resolve_blocks(model, None)
    g = torch.Generator().manual_seed(1)
    vecs = [torch.randn(2, b.dim, generator=g, dtype=torch.float64) for b in blocks]
    starts = np.cumsum([0, *[b.dim for b in blocks[:-1]]])
    for mode in ("forward", "reverse", "reverse-block", "reverse-bundle"):
        out = BlockHVP(model, CE, data, blocks, mode=mode)(vecs)
        for b, s, v, hv in zip(blocks, starts, vecs, out, strict=True):
            want = v.numpy() @ ref[s:s + b.dim, s:s + b.dim]
            np.testing.assert_allclose(hv.numpy(), want, rtol=0, atol=1e-12 * scale,
                                       err_msg=f"{mode} {b.name}")
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
