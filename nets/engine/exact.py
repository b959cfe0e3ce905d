"""Dense reference: the exact Hessian of a small model and its blockwise eigenvalues.

``H = ∇²L(w)`` with ``L = Σ_b (n_b/N) ℓ_b`` is formed column by column from the same
block-restricted HVPs applied to the identity (``torch.func`` on the flattened parameters, in
the model dtype), then symmetrized, ``H ← (H + Hᵀ)/2``, and each diagonal block's eigenvalues
are computed by ``numpy.linalg.eigvalsh`` in float64. Only for models with a few thousand
parameters at most; tests compare SLQ against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from nets.engine.adapters import LossFn
from nets.engine.blocks import Block, full_block, resolve_blocks
from nets.engine.checks import check_problem
from nets.engine.hvp import BlockHVP

__all__ = ["dense_hessian", "exact_blockwise_eigenvalues"]

MAX_DIM = 20_000


def _dense(op: BlockHVP, block: Block, position: int = 0) -> np.ndarray:
    """Block ``position`` of ``op`` (``block``) applied to the identity, symmetrized."""
    d = block.dim
    if d > MAX_DIM:
        raise ValueError(f"block {block.name!r} has dimension {d} > {MAX_DIM}: too large for a "
                         "dense Hessian")
    cols = []
    step = 256
    for s in range(0, d, step):
        e = torch.zeros((min(step, d - s), d), dtype=op.dtype, device=op.device)
        e[torch.arange(e.shape[0]), torch.arange(s, s + e.shape[0])] = 1
        vectors: list[torch.Tensor | None] = [None] * len(op.blocks)
        vectors[position] = e
        cols.append(op(vectors)[position].double().cpu().numpy())
    h = np.concatenate(cols, axis=0)
    return 0.5 * (h + h.T)


def dense_hessian(model: torch.nn.Module, loss_fn: LossFn, data: Iterable) -> np.ndarray:
    """The full dense Hessian (float64 copy), parameters in ``named_parameters`` order.

    Args:
        model: The model (small: the Hessian has ``n_params²`` entries).
        loss_fn: ``loss_fn(outputs, targets)``, a mean over samples.
        data: Batches (the loss is their sample-weighted mean).
    """
    check_problem(model, loss_fn, data)
    block = full_block(model)
    op = BlockHVP(model, loss_fn, data, [block])
    return _dense(op, block)


def exact_blockwise_eigenvalues(model: torch.nn.Module, loss_fn: LossFn, data: Iterable,
                                blocks: Mapping[str, object] | None = None
                                ) -> dict[str, np.ndarray]:
    """Exact eigenvalues of every diagonal Hessian block, sorted ascending.

    Args:
        model: As in :func:`nets.blockwise_spectrum`.
        loss_fn: As in :func:`nets.blockwise_spectrum`.
        data: As in :func:`nets.blockwise_spectrum`.
        blocks: Partition as in :func:`nets.blockwise_spectrum` (default: one per tensor).

    Returns:
        ``{block name: eigenvalues}`` (float64, ascending).
    """
    check_problem(model, loss_fn, data)
    bl = resolve_blocks(model, blocks)
    op = BlockHVP(model, loss_fn, data, bl)  # data checked and product mode chosen once
    return {b.name: np.linalg.eigvalsh(_dense(op, b, i)) for i, b in enumerate(bl)}
