r"""Man-made block heterogeneity: the 4-layer MLP with per-layer scales (Figure 5(a) analogue).

Layer ``l`` computes ``h_l = c_l · (W_l h_{l−1}) + b_l`` with a fixed constant ``c_l`` and its
weight initialized as ``W_l = W̃_l / c_l`` (``W̃_l`` the LeCun-normal draw of the plain MLP from
the same seed). So **the network function at initialization is the same for every scaling**;
only the parametrization changes. By the chain rule the Hessian block of ``W_l`` is
``c_l²`` times the Hessian block of the effective weight ``c_l W_l``: scaling layer ``l`` by
``c_l`` multiplies its block spectrum by ``c_l²``. Biases are not scaled.

The scalings (``S ≥ 1`` dials the heterogeneity; ``S = 1`` is the plain MLP)::

    c = (S^{-1}, S^{-1/3}, S^{1/3}, S)        for the layers 256→64→64→64→10

so the ratio between the largest and smallest block scales is ``S⁴`` in curvature. One
SGD step multiplies each effective layer's step by ``c_l²`` (its learning rate is spread over
``S⁴``), one Adam step by ``c_l`` (spread ``S²``): heterogeneity should hurt SGD more.
The paper (Figure 5(a)) scales each layer of a 4-layer MNIST MLP; its exact factors are not
known here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ScaledMLP", "layer_scales", "scaled_mlp"]


def layer_scales(s: float, layers: int = 4) -> tuple[float, ...]:
    """``c_l = S^(−1 + 2l/(L−1))``, log-spaced from ``1/S`` to ``S``.

    Args:
        s: The heterogeneity scale ``S >= 1``.
        layers: Number of layers ``L >= 2``.
    """
    if not (math.isfinite(s) and s >= 1):
        raise ValueError(f"the heterogeneity scale S must be >= 1, got {s!r}")
    if layers < 2:
        raise ValueError("need at least two layers")
    return tuple(float(s ** (-1 + 2 * i / (layers - 1))) for i in range(layers))


class ScaledMLP(nn.Module):
    """ReLU MLP whose layer ``l`` output is ``c_l W_l h + b_l``."""

    def __init__(self, sizes: Sequence[int], scales: Sequence[float]):
        super().__init__()
        if len(scales) != len(sizes) - 1:
            raise ValueError("one scale per layer")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.scales = tuple(float(c) for c in scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 10)``: layer ``l`` computes ``c_l W_l h + b_l`` (ReLU between layers).

        Args:
            x: Images ``(n, 1, 16, 16)`` (flattened here).
        """
        x = x.flatten(1)
        for i, (lin, c) in enumerate(zip(self.layers, self.scales, strict=True)):
            x = F.linear(x, lin.weight) * c + lin.bias
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def scaled_mlp(s: float, *, seed: int = 0, sizes: Sequence[int] = (256, 64, 64, 64, 10)
               ) -> tuple[ScaledMLP, object]:
    """``(model, loss_fn)``: the zoo MLP's architecture with layer scales ``layer_scales(s)``.

    Weights ``W_l = W̃_l / c_l`` with ``W̃_l ~ N(0, 1/fan_in)`` from
    ``torch.Generator().manual_seed(seed)``; biases 0; float32; eval mode.

    Args:
        s: The heterogeneity scale ``S >= 1``.
        seed: Seed of the weights.
        sizes: Layer widths, input first.
    """
    scales = layer_scales(s, len(sizes) - 1)
    model = ScaledMLP(sizes, scales)
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for lin, c in zip(model.layers, scales, strict=True):
            w = torch.randn(lin.weight.shape, generator=g) / math.sqrt(lin.weight.shape[1])
            lin.weight.copy_(w / c)
            lin.bias.zero_()
    return model.eval(), F.cross_entropy
