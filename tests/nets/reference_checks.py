"""One check shared by the tests that hold a model against an independent Hessian: the dense
Hessian and every product mode's block products equal the reference's blocks times random
vectors, to a tolerance relative to the reference's largest entry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

import nets
from nets.engine.hvp import BlockHVP


def assert_products_match(model, loss_fn, data, ref: np.ndarray, *, rtol: float,
                          modes: Sequence[str] = ("forward", "reverse", "reverse-block"),
                          seed: int = 0, rows: int = 2, label: str = "") -> list[BlockHVP]:
    """``nets.dense_hessian`` and, in each of ``modes``, the products of every parameter block
    (one per tensor, in ``named_parameters`` order, as ``ref``'s coordinates) with ``rows``
    Gaussian vectors equal ``ref``: within ``rtol · max|ref|``.

    Returns:
        The operators, one per mode (for their ``info()``).
    """
    scale = np.abs(ref).max()
    assert scale > 0, label
    np.testing.assert_allclose(nets.dense_hessian(model, loss_fn, data), ref, rtol=0,
                               atol=rtol * scale, err_msg=f"{label} dense")
    blocks = nets.resolve_blocks(model, None)
    starts = np.cumsum([0, *[b.dim for b in blocks[:-1]]])
    g = torch.Generator().manual_seed(seed)
    vecs = [torch.randn(rows, b.dim, generator=g, dtype=torch.float64) for b in blocks]
    ops = []
    for mode in modes:
        op = BlockHVP(model, loss_fn, data, blocks, mode=mode)
        for b, s, v, hv in zip(blocks, starts, vecs, op(vecs), strict=True):
            np.testing.assert_allclose(hv.numpy(), v.numpy() @ ref[s:s + b.dim, s:s + b.dim],
                                       rtol=0, atol=rtol * scale,
                                       err_msg=f"{label} {mode} {b.name}")
        ops.append(op)
    return ops
