"""Hessian-vector products of a mean loss over a data set, with ``torch.func``.

The loss is ``L(w) = Σ_b (n_b / N) ℓ_b(w)``, where ``ℓ_b(w) = loss_fn(model(x_b; w), y_b)`` is
the mean loss of batch ``b``, ``n_b`` its number of samples (``len(y_b)``) and ``N = Σ_b n_b``:
the mean loss over all samples when every batch loss is a per-sample mean. (The authors' code
sums the batch HVPs, which scales the Hessian by the number of batches.)

The HVP is forward-over-reverse, ``∇²L v = ∂/∂ε ∇L(w + εv)|₀ = jvp(grad(L), w, v)``, mapped
over a stack of tangents with ``vmap``, so one call evaluates many products (several probe
vectors, several blocks) with a single forward/backward trace per batch.

A block-restricted product ``[∇²L]_ll v_l`` is the block-``l`` part of ``∇²L ṽ`` where ``ṽ``
is ``v_l`` embedded in the full parameter space with zeros elsewhere. :class:`BlockHVP`
evaluates these for all blocks at once: it stacks the embedded tangents of every block and probe
into one ``vmap`` batch, which is what lets Lanczos run on all blocks in lockstep.

HVPs run in the dtype of the model's parameters (float32 or float64).

**Data parallel.** With a :class:`nets.engine.distributed.DistributedCommunicator`, ``data`` is this
rank's shard. The weights become ``n_b / N`` with ``N`` the number of samples over all ranks,
each rank sums its batches, and the block products are all-reduced, so every rank holds the
same ``[∇²L]_ll V_l`` of the mean loss over the union of the shards (equal to the
single-process product up to the order of the floating-point sum). Only the block rows are
reduced (``Σ_l m_l d_l`` numbers per step, not ``m · D`` per block).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import torch
from torch.func import grad, jvp, vmap

from nets.engine.adapters import LossFn, functional_forward, prepare_data
from nets.engine.blocks import Block
from nets.engine.distributed import Communicator

__all__ = ["BlockHVP", "make_batch_hessian_vector_product"]


def make_batch_hessian_vector_product(
    model: torch.nn.Module, loss_fn: LossFn
) -> Callable[..., dict[str, torch.Tensor]]:
    """Pure function computing stacked HVPs of one batch's loss.

    Args:
        model: The network; only its structure and buffers are used.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean batch loss.

    Returns:
        ``hvp(params, inputs, targets, tangents, chunk_size=None)``: ``params`` maps every
        parameter name to a tensor, ``tangents`` maps some parameter names to stacks of shape
        ``(T, *param.shape)``; returns ``{name: (T, *shape)}`` with rows ``∇²ℓ t_i``, the
        Hessian taken with respect to the parameters named in ``tangents`` (the others fixed).
    """
    buffers = {n: b for n, b in model.named_buffers()}

    def loss(sub: dict, rest: dict, inputs, targets) -> torch.Tensor:
        out = functional_forward(model, ({**rest, **sub}, buffers), inputs)
        return loss_fn(out, targets)

    def hvp(params, inputs, targets, tangents, chunk_size=None):
        sub = {n: params[n] for n in tangents}
        rest = {n: p.detach() for n, p in params.items() if n not in sub}
        g = grad(loss)

        def one(t):
            return jvp(lambda s: g(s, rest, inputs, targets), (sub,), (t,))[1]

        return vmap(one, chunk_size=chunk_size)(tangents)

    return hvp


class BlockHVP:
    """Block-diagonal Hessian-vector products ``v_l ↦ [∇²L]_ll v_l`` for many blocks at once.

    Args:
        model: The network (its current parameters are the point ``w``).
        loss_fn: Scalar mean batch loss ``loss_fn(model(inputs), targets)``.
        data: Re-iterable of ``(inputs, targets)``; the Hessian is that of the mean loss.
        blocks: Disjoint blocks (see :mod:`nets.engine.blocks`).
        chunk_size: Optional ``vmap`` chunk size (bounds memory for many tangents).
        comm: :class:`nets.engine.distributed.DistributedCommunicator` for data-parallel products
            (``data`` is then this rank's shard; the model must be the same on every rank,
            which is checked); default: one process.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, data: Iterable,
                 blocks: Sequence[Block], *, chunk_size: int | None = None,
                 comm: Communicator | None = None) -> None:
        params = dict(model.named_parameters())
        if not params:
            raise ValueError("the model has no parameters: there is no Hessian to study")
        first = next(iter(params.values()))
        self.device = first.device
        self.dtype = first.dtype
        self.blocks = list(blocks)
        self.names = tuple(dict.fromkeys(n for b in self.blocks for n in b.params))
        self.params = {n: p.detach() for n, p in params.items()}
        self.comm = comm or Communicator()
        if self.comm.is_distributed:  # hashing costs a pass over the parameters
            self.comm.check_identical(_fingerprint(self.params), what="model parameters")
        self.data = prepare_data(model, loss_fn, data, device=self.device, comm=self.comm)
        self.chunk_size = chunk_size
        self._hvp = make_batch_hessian_vector_product(model, loss_fn)
        self.calls = 0
        self.products = 0

    def __call__(self, vectors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Apply every block's diagonal Hessian block to its stack of vectors.

        Args:
            vectors: One entry per block: a ``(m_l, d_l)`` stack, or ``None`` to skip it.

        Returns:
            The ``(m_l, d_l)`` stacks ``[∇²L]_ll V_l`` (``None`` where skipped).
        """
        rows = []
        start = 0
        for v in vectors:
            m = 0 if v is None else v.shape[0]
            rows.append((start, start + m))
            start += m
        total = start
        if total == 0:
            return [None for _ in vectors]
        used = [n for n in self.names
                if any(v is not None and n in b.params for b, v in zip(self.blocks, vectors,
                                                                       strict=True))]
        tangents = {n: torch.zeros((total, *self.params[n].shape), dtype=self.dtype,
                                   device=self.device) for n in used}
        for b, v, (r0, r1) in zip(self.blocks, vectors, rows, strict=True):
            if v is None:
                continue
            off = 0
            for pc in b.pieces:
                chunk = v[:, off:off + pc.size].reshape(r1 - r0, *pc.shape).to(self.dtype)
                tangents[pc.param][(slice(r0, r1), *pc.index)] = chunk
                off += pc.size
        try:
            local = self._local_products(vectors, tangents, used, rows)
            error = None
        except Exception as e:  # re-raised by comm.sum_, on every rank when distributed
            local = [None if v is None else torch.zeros_like(v, dtype=self.dtype)
                     for v in vectors]
            error = e
        self.comm.sum_([t for t in local if t is not None], error=error,
                       what="all-reduce of Hessian-vector products")
        self.calls += 1
        self.products += total
        for b, out_b in zip(self.blocks, local, strict=True):
            if out_b is not None and not torch.isfinite(out_b).all():
                raise ValueError(f"non-finite Hessian-vector product in block {b.name!r}")
        return local

    def _local_products(self, vectors, tangents, used, rows) -> list[torch.Tensor | None]:
        """This process's ``Σ_b w_b ∇²ℓ_b`` products, cut into the blocks' ``(m_l, d_l)`` rows."""
        acc: dict[str, torch.Tensor] | None = None
        for x, y, w in self.data:
            out = self._hvp(self.params, x, y, tangents, chunk_size=self.chunk_size)
            if acc is None:
                acc = {n: out[n] * w for n in used}
            else:
                for n in used:
                    acc[n].add_(out[n], alpha=w)
        assert acc is not None
        result: list[torch.Tensor | None] = []
        for b, v, (r0, r1) in zip(self.blocks, vectors, rows, strict=True):
            if v is None:
                result.append(None)
                continue
            parts = [acc[pc.param][(slice(r0, r1), *pc.index)].reshape(r1 - r0, -1)
                     for pc in b.pieces]
            result.append(torch.cat(parts, dim=1))
        return result


def _fingerprint(params: dict[str, torch.Tensor]) -> bytes:
    """SHA-256 of the parameters' names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name, p in params.items():
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        h.update(p.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.digest()
