"""The JS block sets ("all", "matrices") chosen by role, not by tensor shape.

The role-based "matrices" set (weight matrices and embeddings) equals the old shape rule (every
tensor with two or more axes) on the zoo models and the tiny Hugging Face models, and differs
from it exactly where shape alone is wrong: a 2-D normalization gain and a 2-D bias.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nets
from nets.zoo.models import MODELS, load


def _shape_rule(model: nn.Module) -> list[str]:
    """The former choice: every trainable tensor with two or more axes."""
    return [n for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]


@pytest.mark.parametrize("name", MODELS)
def test_zoo_matrix_set_by_role_equals_the_shape_rule(name):
    model = load(name, 0)[0]
    blocks = nets.resolve_blocks(model, None)
    got = nets.block_set(model, blocks, "matrices")
    assert got == _shape_rule(model)
    assert got == nets.matrix_blocks(model, blocks)
    assert 0 < len(got) < len(blocks)
    assert nets.block_set(model, blocks, "all") == [b.name for b in blocks]


def test_hf_matrix_set_by_role_equals_the_shape_rule():
    pytest.importorskip("transformers")
    from .test_hf import PROBLEMS

    for label, make in sorted(PROBLEMS.items()):
        model = make()[0]
        blocks = nets.resolve_blocks(model, None)
        got = nets.block_set(model, blocks, "matrices")
        assert got == _shape_rule(model), label
        assert 0 < len(got) < len(blocks), label


class ChannelNorm(nn.Module):
    """A norm whose gain and shift are (1, d): two axes, yet not weight matrices."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, d))
        self.shift = nn.Parameter(torch.zeros(1, d))

    def forward(self, x):
        return (x - x.mean(-1, keepdim=True)) * self.gain + self.shift


class Affine(nn.Module):
    """A custom layer with a (k, d) bias: two axes, yet a bias."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
        self.bias = nn.Parameter(torch.zeros(k, d))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def test_two_axis_gain_and_bias_are_not_matrices():
    model = nn.Sequential(nn.Embedding(5, 4), ChannelNorm(4), Affine(4, 3), nn.Linear(4, 2))
    roles = nets.parameter_roles(model)
    assert roles == {"0.weight": "embedding", "1.gain": "norm", "1.shift": "norm",
                     "2.weight": "weight", "2.bias": "bias", "3.weight": "weight",
                     "3.bias": "bias"}
    blocks = nets.resolve_blocks(model, None)
    got = nets.matrix_blocks(model, blocks)
    assert got == ["0.weight", "2.weight", "3.weight"]
    # the shape rule would have counted the gain, the shift and the 2-D bias
    assert set(_shape_rule(model)) - set(got) == {"1.gain", "1.shift", "2.bias"}


def test_sliced_and_mixed_blocks():
    """Slices of a weight stay matrix blocks; a block mixing a weight and a bias does not."""
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))
    spec = {**nets.split_parameter("0.weight", (6, 4), 3), "mixed": ["2.weight", "2.bias"],
            "b": "0.bias"}
    blocks = nets.resolve_blocks(model, spec)
    assert nets.block_set(model, blocks, "matrices") == ["0.weight.0", "0.weight.1",
                                                         "0.weight.2"]


def test_block_set_refusals():
    model = nn.Linear(3, 2)
    blocks = nets.resolve_blocks(model, None)
    with pytest.raises(ValueError, match="which"):
        nets.block_set(model, blocks, "weights")
    with pytest.raises(TypeError, match="model"):
        nets.matrix_blocks(blocks, blocks)
    with pytest.raises(TypeError, match="blocks"):
        nets.block_set(model, ["weight"], "all")
    other = nets.resolve_blocks(nn.Sequential(nn.Linear(3, 2)), None)
    with pytest.raises(ValueError, match="same model"):
        nets.matrix_blocks(model, other)
