"""What one stacked tangent of a double backward holds in memory, measured on a kept graph.

A reverse-over-reverse product ``∇_w ⟨g, t⟩`` on a kept gradient graph ``g`` creates its
tangent, the backward's transient tensors and its product; the memory plan
(:class:`nets.engine.budget.MemoryPlan`) sizes the chunks of stacked tangents by the bytes one
tangent holds. Without a measurement it uses the graph bound (a graph's worth and a parameter
copy); :class:`nets.engine.hvp.BlockHVP` with ``measure_tangents`` measures instead, with the
two functions here, each counting the live tensors of one product under
:class:`nets.engine.memory.LiveBytes` (a kernel's scratch memory is not counted; the products
run several times slower under the count). One tangent's transient bounds a stacked tangent's
(``benchmarks/results/estimates.md`` measures both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nets.engine.blocks import Block
from nets.engine.memory import LiveBytes
from nets.engine.products import DoubleBackward, Graph, block_products, reverse_products

__all__ = ["block_tangent_bytes", "padded_row_bytes"]


def block_tangent_bytes(graph: Graph, blocks: Sequence[Block], dtype: torch.dtype,
                        device: torch.device, double_backward: DoubleBackward) -> int:
    """Bytes one tangent's block-restricted double backward holds on ``graph``, beyond its
    product: ``max_l (peak_l − |[∇²ℓ]_ll t_l|)`` over the blocks ``l``, each run with one
    tangent ``t_l`` of ones (:func:`nets.engine.products.block_products`). The product itself
    is left out because the Lanczos vectors' budget holds it.

    Args:
        graph: A kept gradient graph ``(leaves, gradient)``
            (:func:`nets.engine.products.gradient_graph`).
        blocks: The operator's blocks.
        dtype: The products' dtype.
        device: The parameters' device.
        double_backward: The operator's double backward (its batched-or-not state is kept).

    Returns:
        The most bytes any block's product holds at once beside its result, at least 1.
    """
    most = 0
    for i, b in enumerate(blocks):
        one: list[torch.Tensor | None] = [None] * len(blocks)
        one[i] = torch.ones((1, b.dim), dtype=dtype, device=device)
        with LiveBytes() as count:
            out = block_products(graph, blocks, one, 1, double_backward, dtype)[i]
            held = out.untyped_storage().nbytes()
        most = max(most, count.peak - held)
        del out
    return max(most, 1)


def padded_row_bytes(graph: Graph, params: Mapping[str, torch.Tensor], dtype: torch.dtype,
                     device: torch.device, double_backward: DoubleBackward) -> int:
    """Bytes one zero-padded row's double backward ``∇_w ⟨g, t⟩`` holds on ``graph``: its
    tangent ``t`` over every parameter of ``params``, its full-space product and the
    backward's transient, at their peak (the whole graph is walked at once, which may hold more
    than any one block's product, :func:`block_tangent_bytes`).

    Args:
        graph: A kept gradient graph ``(leaves, gradient)``.
        params: The blocks' parameters by name (the padded tangent's shape).
        dtype: The products' dtype.
        device: The parameters' device.
        double_backward: The operator's double backward.

    Returns:
        The peak bytes of the row's tensors, at least 1.
    """
    with LiveBytes() as count:
        row = {n: torch.ones((1, *p.shape), dtype=dtype, device=device)
               for n, p in params.items()}
        full = reverse_products(graph, row, 1, double_backward)
        del row, full
    return max(count.peak, 1)
