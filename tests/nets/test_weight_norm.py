"""Weight norm: PyTorch's fused kernel has a wrong double backward, the engine evaluates the
formula instead (:func:`nets.engine.adapters.exact_derivatives`), and its Hessian then equals
an independent one of ``w = g · v / ‖v‖`` written out by hand, in every product mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nets
from nets.engine.adapters import uses_weight_norm

CE = nn.functional.cross_entropy


def _problem(style: str):
    """A 4 → 3 → 2 tanh MLP in float64 whose first layer is weight-normalized (``style``:
    ``"parametrization"`` or the older ``"hook"``), and one batch of 6 points."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    if style == "parametrization":
        nn.utils.parametrizations.weight_norm(model[0])
    else:
        with pytest.warns(FutureWarning):  # deprecated by torch, still used by older models
            nn.utils.weight_norm(model[0])
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (6,), generator=g)
    return model, [(x, y)]


def _by_hand(model, data) -> np.ndarray:
    """The Hessian of the mean loss in the model's parameter order, with the first layer's
    weight written as ``g · v / ‖v‖`` (row norms), by double backward on a flat vector."""
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    sizes = [p.numel() for p in params]
    (x, y), = data

    def loss(flat):
        t = dict(zip(names, (a.reshape(p.shape) for a, p in
                             zip(flat.split(sizes), params, strict=True)), strict=True))
        g = next(t[n] for n in names if n.endswith(("original0", "weight_g")))
        v = next(t[n] for n in names if n.endswith(("original1", "weight_v")))
        w = v * (g / v.norm(dim=1, keepdim=True))
        h = torch.tanh(x @ w.T + t["0.bias"])
        return CE(h @ t["2.weight"].T + t["2.bias"], y)

    flat = torch.cat([p.reshape(-1) for p in params])
    return torch.autograd.functional.hessian(loss, flat).numpy()


def test_torchs_fused_weight_norm_has_no_symmetric_hessian():
    """Why the engine does not differentiate ``torch._weight_norm`` itself: on torch 2.13 its
    double backward gives a Hessian far from symmetric (the formula's is symmetric to
    round-off). If this fails, torch has fixed its derivative and the override can go."""
    g = torch.Generator().manual_seed(1)
    v0 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    g0 = torch.randn(5, 1, generator=g, dtype=torch.float64)
    x = torch.randn(6, generator=g, dtype=torch.float64)

    def hessian(weight):
        def f(flat):
            w = weight(flat[:30].reshape(5, 6), flat[30:].reshape(5, 1))
            return torch.tanh(w @ x).pow(2).sum()
        h = torch.autograd.functional.hessian(f, torch.cat([v0.reshape(-1), g0.reshape(-1)]))
        return float((h - h.T).abs().max() / h.abs().max())

    assert hessian(lambda v, g_: torch._weight_norm(v, g_, 0)) > 1e-2
    assert hessian(lambda v, g_: v * (g_ / v.norm(dim=1, keepdim=True))) < 1e-14


@pytest.mark.parametrize("style", ["parametrization", "hook"])
def test_weight_norm_is_detected(style):
    model, _ = _problem(style)
    assert uses_weight_norm(model)
    assert not uses_weight_norm(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))


@pytest.mark.parametrize("style", ["parametrization", "hook"])
def test_the_hessian_of_a_weight_normalized_model_is_exact_in_every_mode(style):
    model, data = _problem(style)
    ref = _by_hand(model, data)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(nets.dense_hessian(model, CE, data), ref, rtol=0,
                               atol=1e-12 * scale)
    block = nets.full_block(model)
    eye = torch.eye(block.dim, dtype=torch.float64)
    for mode in ("forward", "reverse", "reverse-block"):  # forward had no forward-mode AD
        op = nets.BlockHVP(model, CE, data, [block], mode=mode)
        h = op([eye])[0].numpy()
        np.testing.assert_allclose(h, ref, rtol=0, atol=1e-12 * scale, err_msg=mode)


def test_a_hugging_face_speech_model_gets_symmetric_products():
    """wav2vec2 weight-normalizes its convolutional position embedding (``dim=2``): the full
    Hessian's products are symmetric to round-off (with torch's fused kernel differentiated
    they were asymmetric at about 4e-7 of the largest eigenvalue, and warned)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Wav2Vec2Config(
        conv_dim=(4, 4), conv_kernel=(10, 3), conv_stride=(5, 2), hidden_size=8,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
        num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2, num_labels=2,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0,
        classifier_proj_size=4, vocab_size=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # transformers initializes from the global generator
        model = transformers.Wav2Vec2ForSequenceClassification(cfg).double().eval()
    assert uses_weight_norm(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 200, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 3), generator=g)
    data = [({"input_values": x[i]}, y[i]) for i in range(2)]
    info: dict = {}
    nets.full_spectrum(model, lambda out, t: CE(out.logits, t), data, lanczos_steps=20,
                       probes=1, info=info)
    assert info["product_asymmetry"] < 1e-12
