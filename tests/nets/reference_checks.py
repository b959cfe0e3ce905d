"""What the tests that hold a model against an independent Hessian share: the reference (the
Hessian of the mean loss by double backward on the flattened parameters, outside the engine)
and the check (the dense Hessian and every product mode's block products equal the
reference's blocks times random vectors, to a tolerance relative to its largest entry)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

import nets
from nets.engine.hvp import BlockHVP


def reference_hessian(model, loss_fn, data) -> np.ndarray:
    """Double-backward Hessian of the sample-weighted mean loss over ``data`` (float64,
    symmetrized), parameters in ``named_parameters`` order: ``torch.autograd.functional.hessian``
    of the loss as a function of the flattened parameters (``functional_call``), attention on
    the math kernel. A batch is ``(inputs, targets)`` (a mapping of inputs is passed as keyword
    arguments, a tensor as the one positional argument) or a mapping with ``"labels"``. The
    Hessian's rows are computed in one ``vmap`` where every operation's double backward allows
    it, else one at a time."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names, shapes = [n for n, _ in params], [p.shape for _, p in params]
    sizes = [p.numel() for _, p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in params])
    batches = []
    for b in data:
        if isinstance(b, dict):
            b = ({k: v for k, v in b.items() if k != "labels"}, b["labels"])
        batches.append(b)
    total = sum(len(y) for _, y in batches)

    def loss(flat):
        tensors = dict(zip(names, (t.reshape(s) for t, s in
                                   zip(flat.split(sizes), shapes, strict=True)), strict=True))
        out = 0.0
        for x, y in batches:
            args, kw = ((), x) if isinstance(x, dict) else ((x,), {})
            out = out + loss_fn(functional_call(model, tensors, args, kw), y) * len(y) / total
        return out

    with sdpa_kernel([SDPBackend.MATH]):
        try:
            h = torch.autograd.functional.hessian(loss, flat0, vectorize=True)
        except RuntimeError:  # an op whose vmapped double backward fails (bilinear upsampling)
            h = torch.autograd.functional.hessian(loss, flat0)
    h = h.numpy()
    return 0.5 * (h + h.T)


def assert_products_match(model, loss_fn, data, ref: np.ndarray, *, rtol: float,
                          modes: Sequence[str] = ("forward", "reverse", "reverse-block"),
                          seed: int = 0, rows: int = 2, label: str = "") -> list[BlockHVP]:
    """``nets.dense_hessian`` and, in each of ``modes``, the products of every parameter block
    (one per tensor, in ``named_parameters`` order, as ``ref``'s coordinates) with ``rows``
    Gaussian vectors equal ``ref``: within ``rtol · max|ref|``. The products run on the model's
    device (the vectors go there, the products come back); ``ref`` is a CPU array. The first
    mode's operator also checks the double backward against central differences of the
    gradient and the loss (``check_derivatives=True``; the check does not depend on the mode),
    which must agree: the reference is a double backward as well, and a second derivative
    torch got wrong would be wrong in both.

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
    device = next(model.parameters()).device
    ops = []
    for i, mode in enumerate(modes):
        # the reference is a double backward too: differences of the gradient and the loss
        # check both, once (the check's product is the double backward whatever the mode)
        op = BlockHVP(model, loss_fn, data, blocks, mode=mode, check_derivatives=i == 0)
        products = op([v.to(device) for v in vecs])
        if i == 0:
            check = op.info()["derivative_check"]
            assert check["verdict"] == "agrees", f"{label}: {check}"
        for b, s, v, hv in zip(blocks, starts, vecs, products, strict=True):
            assert hv.device == device, f"{label} {mode} {b.name}: products on {hv.device}"
            np.testing.assert_allclose(hv.cpu().numpy(), v.numpy() @ ref[s:s + b.dim, s:s + b.dim],
                                       rtol=0, atol=rtol * scale,
                                       err_msg=f"{label} {mode} {b.name}")
        ops.append(op)
    return ops
