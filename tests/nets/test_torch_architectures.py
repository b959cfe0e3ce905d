"""Plain PyTorch architectures as users build them from ``torch.nn``, each against an
independent double-backward Hessian (:func:`tests.nets.reference_checks.reference_hessian`,
computed on the CPU): the dense Hessian and every product mode's block products, in float64,
on every device of :data:`tests.nets.conftest.DEVICES`.

Each brings something the engine must get right: ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` (Post-LN and Pre-LN) call fused multi-head attention with
``scaled_dot_product_attention`` and a stacked ``in_proj_weight``; ``nn.LSTM``, ``nn.GRU`` and
``nn.RNN`` run fused recurrent kernels (on a GPU, cuDNN's have no double backward: the engine
runs them without cuDNN, :func:`nets.engine.adapters.uses_recurrent_layers`); the
convolutional stacks bring batch norm in evaluation mode, max pooling, transposed and grouped
convolutions, instance and group norm, PReLU and bilinear upsampling.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nets
from nets.engine.adapters import exact_derivatives, uses_recurrent_layers

from .conftest import on_device
from .reference_checks import assert_products_match, reference_hessian

WIDTH = 4  # model width of the sequence models


class _Pooled(nn.Module):
    """``body`` over a ``(batch, time, features)`` sequence, mean over time, a linear head; a
    recurrent body's ``(output, state)`` pair is read as its output."""

    def __init__(self, body: nn.Module, features: int, classes: int = 3) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head((h[0] if isinstance(h, tuple) else h).mean(1))


class _Decoder(nn.Module):
    """A decoder layer attending to the sequence's first three steps as its memory."""

    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(WIDTH, 2, 8, dropout=0.0, batch_first=True,
                                                norm_first=norm_first)
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x, x[:, :3]).mean(1))


class _Flat(nn.Module):
    """``body`` over images, flattened, a linear head."""

    def __init__(self, body: nn.Module, features: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def _encoder(**kw) -> nn.Module:
    return nn.TransformerEncoderLayer(WIDTH, 2, 8, dropout=0.0, batch_first=True, **kw)


#: Sequence models over ``(batch, time, WIDTH)`` inputs, by name.
SEQUENCE_MODELS = {
    "encoder-post-ln": lambda: _Pooled(_encoder(), WIDTH),
    "encoder-pre-ln-gelu": lambda: _Pooled(_encoder(norm_first=True, activation="gelu"), WIDTH),
    "encoder-stack": lambda: _Pooled(nn.TransformerEncoder(
        _encoder(), 2, enable_nested_tensor=False), WIDTH),
    "decoder-post-ln": lambda: _Decoder(norm_first=False),
    "decoder-pre-ln": lambda: _Decoder(norm_first=True),
    "lstm": lambda: _Pooled(nn.LSTM(WIDTH, 3, batch_first=True), 3),
    "gru-two-layers-bidirectional": lambda: _Pooled(nn.GRU(
        WIDTH, 3, num_layers=2, batch_first=True, bidirectional=True), 6),
    "rnn-tanh": lambda: _Pooled(nn.RNN(WIDTH, 3, batch_first=True), 3),
}

#: Convolutional models over ``(batch, 2, 6, 6)`` images, by name.
IMAGE_MODELS = {
    "conv-batchnorm-maxpool": lambda: _Flat(nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2)), 12),
    "transposed-instancenorm-prelu": lambda: _Flat(nn.Sequential(
        nn.ConvTranspose2d(2, 2, 2, stride=2), nn.InstanceNorm2d(2, affine=True), nn.PReLU(),
        nn.AdaptiveAvgPool2d(2)), 8),
    "groupnorm-silu-upsample": lambda: _Flat(nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.SiLU(), nn.AvgPool2d(3),
        nn.Upsample(scale_factor=2, mode="bilinear")), 64),
    "grouped-conv-hardswish": lambda: _Flat(nn.Sequential(
        nn.Conv2d(2, 4, 3, groups=2), nn.Hardswish(), nn.Conv2d(4, 2, 1), nn.ELU()), 32),
}


def _problem(name: str):
    """The model ``name`` in evaluation mode (seeded weights) with two batches of three
    sequences or four images and their class labels."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = {**SEQUENCE_MODELS, **IMAGE_MODELS}[name]().double().eval()
    shape = (3, 5, WIDTH) if name in SEQUENCE_MODELS else (4, 2, 6, 6)
    data = [(torch.randn(shape, generator=g, dtype=torch.float64),
             torch.randint(0, 3, shape[:1], generator=g)) for _ in range(2)]
    return model, data


@pytest.fixture(scope="module", params=sorted({**SEQUENCE_MODELS, **IMAGE_MODELS}))
def problem(request):
    model, data = _problem(request.param)
    loss_fn = nn.functional.cross_entropy
    return request.param, model, loss_fn, data, reference_hessian(model, loss_fn, data)


def test_products_match_the_double_backward_hessian(problem, device):
    name, model, loss_fn, data, ref = problem
    model, data = on_device(model, data, device)
    ops = assert_products_match(model, loss_fn, data, ref, rtol=1e-10, label=name)
    for op in ops:  # every mode ran as asked, none fell back
        assert op.info()["hvp_mode"] == op.mode, name


def test_buffers_are_left_as_they_were(device):
    """Batch norm in evaluation mode reads its running statistics and writes none."""
    model, data = _problem("conv-batchnorm-maxpool")
    model, data = on_device(model, data, device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    nets.dense_hessian(model, nn.functional.cross_entropy, data)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class _SeesCudnn(nn.Module):
    """Records whether cuDNN was on at each forward call."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.backends.cudnn.enabled)
        return self.body(x)


def test_recurrent_layers_run_without_cudnn_in_the_engine_only():
    """cuDNN's recurrent kernels have no double backward: the engine's forward calls of a model
    with an ``nn.LSTM`` run with cuDNN off, those of a model without one leave it as it was,
    and the caller's setting comes back afterwards (also after an error)."""
    lstm, data = _problem("lstm")
    recurrent = _SeesCudnn(lstm)
    plain = _SeesCudnn(_problem("encoder-post-ln")[0])
    assert uses_recurrent_layers(recurrent) and not uses_recurrent_layers(plain)
    assert torch.backends.cudnn.enabled
    for model, expected in ((recurrent, False), (plain, True)):
        nets.dense_hessian(model, nn.functional.cross_entropy, data)
        assert model.seen and set(model.seen) == {expected}
    assert torch.backends.cudnn.enabled
    with pytest.raises(RuntimeError, match="inside"), exact_derivatives(recurrent):
        assert not torch.backends.cudnn.enabled
        raise RuntimeError("inside")
    assert torch.backends.cudnn.enabled
    try:  # a caller who turned cuDNN off keeps it off
        torch.backends.cudnn.enabled = False
        with exact_derivatives(recurrent):
            pass
        assert not torch.backends.cudnn.enabled
    finally:
        torch.backends.cudnn.enabled = True
