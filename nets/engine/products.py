"""Hessian-vector products of one batch's loss, as functions: the three ways to evaluate them.

For one batch, ``ℓ(w) = loss_fn(model(x; w), y)``, and stacked tangents ``t_1 … t_T``:

* **forward-over-reverse** (:func:`make_batch_hessian_vector_product`,
  :func:`forward_over_reverse`): ``∇²ℓ t = ∂/∂ε ∇ℓ(w + εt)|₀ = jvp(grad(ℓ), w, t)``, mapped over
  the tangents with ``vmap``. No graph is kept; each call traces the model.
* **reverse-over-reverse** (:func:`gradient_graph`, then :func:`reverse_products`): the gradient
  ``g = ∇ℓ`` is built once with its graph (``create_graph=True``), and
  ``∇²ℓ t = ∇_w ⟨g, t⟩`` is a second backward pass through it, for all tangents at once
  (``is_grads_batched``, :class:`DoubleBackward`). The graph can serve many calls.
* **block-restricted reverse-over-reverse** (:func:`block_products`): for block ``l``,
  ``[∇²ℓ]_ll v_l = ∇_{w_l} ⟨g_l, v_l⟩``, differentiating only from the block's gradient to its
  own parameters: autograd visits only the part of the graph between them, and no tangent is
  padded with zeros. This is the authors' product, with one graph shared by every block.
* **bundled block-restricted reverse-over-reverse** (:func:`bundle_products`): consecutive
  blocks in bundles, each bundle one batched double backward from its blocks' gradients to
  their parameters over the bundle's zero-padded tangents (:func:`pad_tangents` within the
  bundle): a bundle's rows share one traversal of the graph, where :func:`block_products`
  makes one per block. The bundle's cross terms ``[∇²ℓ]_lk v_k`` are computed and discarded.

The zero-padded modes apply to a block's vectors embedded in the full parameter space
(:func:`pad_tangents`) and keep the block's rows of the result (:func:`cut_products`): the block
part of ``∇²ℓ ṽ`` with ``ṽ`` the block vector padded with zeros is ``[∇²ℓ]_ll v_l``.

Attention runs on PyTorch's math kernel (:func:`nets.engine.adapters.math_attention`, which
every forward call of the engine enters): the fused ``scaled_dot_product_attention`` kernels
have neither forward-mode AD nor double backward.
:class:`nets.engine.hvp.BlockHVP` chooses among these per model, holds the graphs within a
memory budget, weights and sums the batches; the functions here keep no state beyond one call
(except :class:`DoubleBackward`'s fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.func import grad, jvp, vmap

from nets.engine.adapters import LossFn, checked_loss, functional_forward
from nets.engine.blocks import Block
from nets.engine.checks import check_callable, check_model
from nets.engine.concurrency import parallel_map
from nets.engine.finite import all_finite

__all__ = ["DoubleBackward", "batch_loss", "block_products", "bundle_products",
           "check_chunk_size", "consecutive_bundles", "cut_products", "forward_over_reverse",
           "gradient_graph", "make_batch_hessian_vector_product", "pad_tangents",
           "reverse_products", "row_chunks"]

#: A batch's gradient graph: the parameter leaves it was built on and the gradient
#: ``{name: ∇_name ℓ}`` (``None`` where the loss does not depend on the parameter).
Graph = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None]]


def check_chunk_size(chunk_size: object) -> None:
    """Validate a number of tangents per ``vmap``/batched backward.

    Args:
        chunk_size: A positive integer, or ``None`` (no bound).

    Raises:
        TypeError: not an integer.
        ValueError: below 1.
    """
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be a positive integer or None, got "
                        f"{type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")


def make_batch_hessian_vector_product(
    model: torch.nn.Module, loss_fn: LossFn
) -> Callable[..., dict[str, torch.Tensor]]:
    """Pure function computing stacked HVPs of one batch's loss (forward-over-reverse).

    ``∇²ℓ t_i = jvp(grad(ℓ), w, t_i)`` for every tangent of the stack, ``vmap``-ed.

    Args:
        model: The network; only its structure and buffers are used.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean batch loss.

    Returns:
        ``hvp(params, inputs, targets, tangents, chunk_size=None)``: ``params`` maps every
        parameter name to a tensor, ``tangents`` maps some parameter names to stacks of shape
        ``(T, *param.shape)``; returns ``{name: (T, *shape)}`` with rows ``∇²ℓ t_i``, the
        Hessian taken with respect to the parameters named in ``tangents`` (the others fixed).
        Malformed arguments raise ``TypeError``/``ValueError`` naming them; a model or loss
        that forward-mode AD cannot differentiate (e.g. ``F.mse_loss`` in torch 2.13) and
        non-finite products raise ``ValueError`` (:class:`nets.engine.hvp.BlockHVP` offers
        reverse modes).

    Raises:
        TypeError: ``model`` is not a module or ``loss_fn`` is not callable.
    """
    check_model(model)
    check_callable("loss_fn", loss_fn)
    raw = forward_over_reverse(model, loss_fn)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}

    def hvp(params, inputs, targets, tangents, chunk_size=None):
        _check_batch_call(shapes, params, tangents, chunk_size)
        try:
            out = raw(params, inputs, targets, tangents, chunk_size=chunk_size)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, TypeError) as e:
            kind = TypeError if isinstance(e, TypeError) else ValueError
            raise kind(f"forward-over-reverse failed on this model, loss_fn, inputs and "
                       f"targets ({str(e)[:200]}); check their shapes and dtypes, or use "
                       "nets.BlockHVP with mode='reverse-block'") from e
        for n, t in out.items():
            if not all_finite(t):
                raise ValueError(f"non-finite Hessian-vector product for parameter {n!r} "
                                 "(are params, tangents, inputs and targets finite?)")
        return out

    return hvp


def forward_over_reverse(model: torch.nn.Module, loss_fn: LossFn
                         ) -> Callable[..., dict[str, torch.Tensor]]:
    """The unchecked product of :func:`make_batch_hessian_vector_product`, which raises
    torch's own errors (:class:`nets.engine.hvp.BlockHVP`'s calibration catches them to rule
    the forward mode out).

    Args:
        model: The network; only its structure and buffers are used.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean batch loss.

    Returns:
        ``hvp(params, inputs, targets, tangents, chunk_size=None)`` as in
        :func:`make_batch_hessian_vector_product`, without its checks.
    """
    buffers = {n: b for n, b in model.named_buffers()}

    def loss(sub: dict, rest: dict, inputs, targets) -> torch.Tensor:
        out = functional_forward(model, ({**rest, **sub}, buffers), inputs)
        return loss_fn(out, targets)

    def hvp(params, inputs, targets, tangents, chunk_size=None):
        sub = {n: params[n] for n in tangents}
        rest = {n: p.detach() for n, p in params.items() if n not in sub}
        g = grad(loss)
        if isinstance(targets, torch.Tensor) and targets.is_floating_point():
            # floating targets get an explicit zero tangent: without one, forward-mode AD gives
            # a loss such as mse_loss an efficient ZeroTensor for it, which eager torch refuses
            # ("ZeroTensors are immutable", pytorch#123996) and a CPU Inductor kernel reads as
            # memory (a segfault under compile=True, pytorch#197067). Not batched by vmap: one
            # copy of the targets, and only the loss's own ops see it
            zero = torch.zeros_like(targets)

            def one(t):
                return jvp(lambda s, y: g(s, rest, inputs, y), (sub, targets), (t, zero))[1]
        else:
            def one(t):
                return jvp(lambda s: g(s, rest, inputs, targets), (sub,), (t,))[1]

        return vmap(one, chunk_size=chunk_size)(tangents)

    return hvp


def _check_batch_call(shapes: dict[str, tuple[int, ...]], params: object, tangents: object,
                      chunk_size: object) -> None:
    """Validate the arguments of the function :func:`make_batch_hessian_vector_product` returns
    (shapes and types only: a non-finite value shows in the products, which are checked)."""
    check_chunk_size(chunk_size)
    if not isinstance(params, Mapping):
        raise TypeError(f"params must map parameter names to tensors, got "
                        f"{type(params).__name__}")
    for n, shape in shapes.items():
        p = params.get(n)
        if not isinstance(p, torch.Tensor) or tuple(p.shape) != shape:
            got = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"params[{n!r}] must be a tensor of shape {shape}, got {got}")
        if not p.is_floating_point():
            raise TypeError(f"params[{n!r}] must be real floating point, got {p.dtype}")
    if not isinstance(tangents, Mapping) or not tangents:
        raise TypeError("tangents must be a non-empty mapping {parameter name: (T, *shape) "
                        f"stack}}, got {tangents!r:.80}")
    counts = set()
    for n, t in tangents.items():
        if n not in shapes:
            raise ValueError(f"tangents names {n!r}, which is not a parameter of the model")
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"tangents[{n!r}] must be a real floating tensor")
        if t.ndim != len(shapes[n]) + 1 or tuple(t.shape[1:]) != shapes[n] or len(t) < 1:
            raise ValueError(f"tangents[{n!r}] must have shape (T, *{shapes[n]}) with T >= 1, "
                             f"got {tuple(t.shape)}")
        counts.add(len(t))
    if len(counts) > 1:
        raise ValueError(f"tangents must all stack the same number T of vectors, got "
                         f"{sorted(counts)}")


def gradient_graph(model: torch.nn.Module, buffers: Mapping[str, torch.Tensor],
                   loss_fn: LossFn, params: Mapping[str, torch.Tensor], names: Sequence[str],
                   inputs: object, targets: object, *, create_graph: bool = True
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None],
                              torch.Tensor]:
    """One batch's gradient ``g = ∇_w ℓ`` with its graph (``create_graph=True``), with respect
    to the parameters ``names`` (the others are constants).

    Autograd records only from the earliest of those parameters on, so a graph for late
    parameters is smaller and faster to build. ``create_graph=False`` gives the plain gradient
    (no graph: nothing to differentiate again).

    Args:
        model: The network; ``params`` and ``buffers`` are substituted for its own.
        buffers: The model's buffers by name.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean batch loss.
        params: Every parameter of the model by name (detached tensors).
        names: The parameters to differentiate with respect to.
        inputs: The batch's inputs.
        targets: The batch's targets.
        create_graph: Record the gradient's own graph (for a double backward).

    Returns:
        ``(leaves, gradient, loss)``: the parameter leaves the graph starts from, the gradient
        ``{name: ∇_name ℓ}`` (``None`` where ``ℓ`` does not depend on the parameter) and the
        loss ``ℓ``.
    """
    with torch.enable_grad():
        leaves, loss = batch_loss(model, buffers, loss_fn, params, names, inputs, targets)
        gs = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph,
                                 allow_unused=True)
    return leaves, dict(zip(leaves, gs, strict=True)), loss


def batch_loss(model: torch.nn.Module, buffers: Mapping[str, torch.Tensor], loss_fn: LossFn,
               params: Mapping[str, torch.Tensor], names: Sequence[str], inputs: object,
               targets: object) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One batch's loss ``ℓ(w) = loss_fn(model(inputs; w), targets)`` on the products' path:
    the parameters ``names`` as fresh leaves that require gradients, the others constants.
    Autograd records the forward pass only where grad mode is on (the caller's choice).

    Args:
        model: The network; ``params`` and ``buffers`` are substituted for its own.
        buffers: The model's buffers by name.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean batch loss.
        params: Every parameter of the model by name (detached tensors).
        names: The parameters that become leaves.
        inputs: The batch's inputs.
        targets: The batch's targets.

    Returns:
        ``(leaves, loss)``.

    Raises:
        nets.engine.adapters.LossError: ``loss_fn`` returned no scalar floating tensor.
    """
    leaves = {n: params[n].detach().requires_grad_(True) for n in names}
    out = functional_forward(model, ({**params, **leaves}, buffers), inputs)
    return leaves, checked_loss(loss_fn(out, targets))


class DoubleBackward:
    """``autograd.grad(outputs, inputs, grad_outputs)`` for stacked ``grad_outputs`` (one row
    per tangent), keeping the graph for the next call.

    Rows go through one batched backward (``is_grads_batched=True``, a ``vmap`` over the
    rows); an op without a batching rule makes it fall back to one backward per row, from
    then on (:attr:`batched` turns ``False``). A single row takes a plain backward.
    """

    def __init__(self) -> None:
        #: whether stacked rows still go through one batched backward
        self.batched = True

    def __call__(self, outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor],
                 grad_outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
        """``∇_{inputs} Σ_o ⟨outputs_o, grad_outputs_o[r]⟩`` for every row ``r``, stacked.

        Args:
            outputs: Differentiable tensors (the gradient entries of a kept graph).
            inputs: The leaves to differentiate with respect to.
            grad_outputs: One ``(R, *output.shape)`` stack per output.

        Returns:
            One ``(R, *input.shape)`` stack per input, ``None`` where no output depends on it.
        """
        if grad_outputs[0].shape[0] == 1:  # one row: a plain double backward, no vmap
            return tuple(None if h is None else h[None] for h in torch.autograd.grad(
                outputs, inputs, [g[0] for g in grad_outputs], retain_graph=True,
                allow_unused=True))
        if self.batched:
            try:
                return torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph=True,
                                           is_grads_batched=True, allow_unused=True)
            except RuntimeError:  # an op without a batching rule: one row at a time
                self.batched = False
        rows = [torch.autograd.grad(outputs, inputs, [g[r] for g in grad_outputs],
                                    retain_graph=True, allow_unused=True)
                for r in range(grad_outputs[0].shape[0])]
        return tuple(None if col[0] is None else torch.stack(col)
                     for col in zip(*rows, strict=True))


def reverse_products(graph: Graph, tangents: Mapping[str, torch.Tensor], chunk_size: int,
                     double_backward: DoubleBackward) -> dict[str, torch.Tensor]:
    """``∇²ℓ t_r = ∇_w ⟨g, t_r⟩`` for every stacked tangent, from a kept gradient graph.

    Args:
        graph: ``(leaves, gradient)`` of :func:`gradient_graph`.
        tangents: ``{name: (T, *shape)}`` stacks over (some of) the graph's leaves.
        chunk_size: Rows per batched backward.
        double_backward: The backward to use (its fallback state persists).

    Returns:
        ``{name: (T, *shape)}``: the products' rows, zero where the gradient does not depend
        on the tangents' parameters.
    """
    leaves, grads = graph
    names = list(tangents)
    live = [n for n in names if grads[n] is not None and grads[n].requires_grad]
    out = {n: torch.zeros_like(tangents[n]) for n in names}
    total = next(iter(tangents.values())).shape[0]
    if not live:  # the gradient does not depend on these parameters: zero Hessian rows
        return out
    for s in range(0, total, chunk_size):
        sl = slice(s, s + chunk_size)
        hv = double_backward([grads[n] for n in live], [leaves[n] for n in names],
                             [tangents[n][sl] for n in live])
        for n, h in zip(names, hv, strict=True):
            if h is not None:
                out[n][sl] = h
    return out


def block_products(graph: Graph, blocks: Sequence[Block],
                   vectors: Sequence[torch.Tensor | None], chunk_size: int,
                   double_backward: DoubleBackward, dtype: torch.dtype, workers: int = 1
                   ) -> list[torch.Tensor | None]:
    """``[∇²ℓ]_ll V_l`` for every block's stacked vectors: per block, ``∇_{w_l} ⟨g_l, v⟩``
    differentiated from the block's gradient to its own leaves only.

    Args:
        graph: ``(leaves, gradient)`` of :func:`gradient_graph`, over every block's
            parameters.
        blocks: The blocks.
        vectors: One ``(m_l, d_l)`` stack per block, or ``None`` to skip it.
        chunk_size: Rows per batched backward.
        double_backward: The backward to use (its fallback state persists).
        dtype: The products' dtype (the model's).
        workers: Blocks' products at once (:func:`nets.engine.concurrency.parallel_map`; the
            same products bit for bit).

    Returns:
        One ``(m_l, d_l)`` stack per block (``None`` where skipped).
    """
    leaves, grads = graph

    def one(item: tuple[Block, torch.Tensor | None]) -> torch.Tensor | None:
        b, v = item
        if v is None:
            return None
        m = v.shape[0]
        names = list(b.params)
        like = leaves[names[0]]
        outs, gos, off = [], [], 0
        for pc in b.pieces:
            g = grads[pc.param]
            if g is not None and g.requires_grad:
                outs.append(g[pc.index] if pc.index else g)
                gos.append(v[:, off:off + pc.size].reshape(m, *pc.shape).to(dtype))
            off += pc.size
        if outs and m <= chunk_size and all(not pc.index for pc in b.pieces):
            # the common case, whole tensors in one chunk: no zero buffers, no copies
            hv = double_backward(outs, [leaves[n] for n in names], gos)
            parts = [like.new_zeros((m, pc.size), dtype=dtype) if h is None
                     else h.reshape(m, -1)
                     for pc, h in zip(b.pieces, hv, strict=True)]
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        full = {n: leaves[n].new_zeros((m, *leaves[n].shape), dtype=dtype) for n in names}
        for s in range(0, m if outs else 0, chunk_size):
            sl = slice(s, s + chunk_size)
            hv = double_backward(outs, [leaves[n] for n in names], [go[sl] for go in gos])
            for n, h in zip(names, hv, strict=True):
                if h is not None:
                    full[n][sl] = h
        return torch.cat([full[pc.param][(slice(None), *pc.index)].reshape(m, -1)
                          for pc in b.pieces], dim=1)

    return parallel_map(one, list(zip(blocks, vectors, strict=True)), workers)


def consecutive_bundles(blocks: int, size: int) -> list[list[int]]:
    """Block indices ``0 … blocks-1`` in consecutive bundles of ``size`` (the last may be
    smaller): the bundles of :func:`bundle_products`.

    Args:
        blocks: How many blocks.
        size: Blocks per bundle (at least 1).

    Raises:
        ValueError: ``size`` below 1.
    """
    if size < 1:
        raise ValueError(f"blocks per bundle must be at least 1, got {size}")
    return [list(range(i, min(i + size, blocks))) for i in range(0, blocks, size)]


def bundle_products(graph: Graph, blocks: Sequence[Block],
                    vectors: Sequence[torch.Tensor | None], bundles: Sequence[Sequence[int]],
                    chunk_size: int, double_backward: DoubleBackward, dtype: torch.dtype,
                    workers: int = 1) -> list[torch.Tensor | None]:
    """``[∇²ℓ]_ll V_l`` for every block's stacked vectors, a bundle of blocks at a time.

    For bundle ``G``, every tangent of its blocks' vectors is zero-padded over ``w_G`` (the
    bundle's parameters) and ``∇_{w_G} ⟨g_G, t⟩`` is differentiated from the bundle's
    gradients to its own leaves only, all the bundle's tangents in one batched double
    backward; block ``l``'s part of the product of its own padded tangent ``ṽ_l`` is
    ``[∇²ℓ]_ll v_l``. Same products as :func:`block_products`, in fewer traversals of the
    graph with more rows each.

    Args:
        graph: ``(leaves, gradient)`` of :func:`gradient_graph`, over the parameters of every
            block given vectors.
        blocks: The blocks.
        vectors: One ``(m_l, d_l)`` stack per block, or ``None`` to skip it.
        bundles: Block indices, each block in one bundle (:func:`consecutive_bundles`).
        chunk_size: Rows per batched backward.
        double_backward: The backward to use (its fallback state persists).
        dtype: The products' dtype (the model's).
        workers: Bundles' products at once (:func:`nets.engine.concurrency.parallel_map`; the
            same products bit for bit).

    Returns:
        One ``(m_l, d_l)`` stack per block (``None`` where skipped).
    """
    leaves, _ = graph

    def one(members: list[int]) -> list[torch.Tensor]:
        bs, vs = [blocks[i] for i in members], [vectors[i] for i in members]
        names = {n for b in bs for n in b.params}
        params = {n: leaves[n] for n in leaves if n in names}
        out = reverse_products(graph, pad_tangents(bs, vs, params, dtype), chunk_size,
                               double_backward)
        return cut_products(out, bs, vs)

    live = [m for m in ([i for i in bundle if vectors[i] is not None] for bundle in bundles)
            if m]
    result: list[torch.Tensor | None] = [None] * len(blocks)
    for members, parts in zip(live, parallel_map(one, live, workers), strict=True):
        for i, r in zip(members, parts, strict=True):
            result[i] = r
    return result


def _rows(vectors: Sequence[torch.Tensor | None]) -> list[tuple[int, int]]:
    """Block ``l``'s rows ``(r0, r1)`` in the stack of every block's vectors, in block order
    (``r1 - r0 = m_l``; empty where the block has no vectors)."""
    rows, start = [], 0
    for v in vectors:
        end = start + (0 if v is None else v.shape[0])
        rows.append((start, end))
        start = end
    return rows


def row_chunks(vectors: Sequence[torch.Tensor | None], size: int | None
               ) -> list[list[slice | None]]:
    """The stack of every block's vectors (block ``l``'s ``m_l`` rows after those of the blocks
    before it, as :func:`pad_tangents` stacks them) cut into chunks of ``size`` rows.

    Args:
        vectors: One ``(m_l, d_l)`` stack per block, or ``None``.
        size: Rows per chunk (the last may have fewer); ``None``: one chunk of every row.

    Returns:
        One entry per chunk: per block, the slice of its own rows that the chunk holds, or
        ``None`` where it holds none of them (the block's ``vectors`` entry then reads
        ``None`` for :func:`pad_tangents` and :func:`cut_products`).
    """
    check_chunk_size(size)
    rows = _rows(vectors)
    total = rows[-1][1] if rows else 0
    size = max(total, 1) if size is None else size
    return [[slice(max(r0, s) - r0, min(r1, s + size) - r0) if max(r0, s) < min(r1, s + size)
             else None for r0, r1 in rows]
            for s in range(0, total, size)]


def pad_tangents(blocks: Sequence[Block], vectors: Sequence[torch.Tensor | None],
                 params: Mapping[str, torch.Tensor], dtype: torch.dtype
                 ) -> dict[str, torch.Tensor]:
    """Every block's vectors embedded in the full parameter space, zero elsewhere, stacked in
    block order (block ``l``'s ``m_l`` tangents after those of the blocks before it).

    Args:
        blocks: The blocks.
        vectors: One ``(m_l, d_l)`` stack per block, or ``None``.
        params: The parameters by name (shapes and device of the tangents), in the order
            the tangents' stacks take.
        dtype: The tangents' dtype (the model's).

    Returns:
        ``{name: (T, *shape)}`` stacks of ``T = Σ_l m_l`` tangents over the parameters that
        some block given vectors holds.
    """
    rows = _rows(vectors)
    total = rows[-1][1]
    used = [n for n in params
            if any(v is not None and n in b.params for b, v in zip(blocks, vectors, strict=True))]
    tangents = {n: params[n].new_zeros((total, *params[n].shape), dtype=dtype) for n in used}
    for b, v, (r0, r1) in zip(blocks, vectors, rows, strict=True):
        if v is None:
            continue
        off = 0
        for pc in b.pieces:
            chunk = v[:, off:off + pc.size].reshape(r1 - r0, *pc.shape).to(dtype)
            tangents[pc.param][(slice(r0, r1), *pc.index)] = chunk
            off += pc.size
    return tangents


def cut_products(out: Mapping[str, torch.Tensor], blocks: Sequence[Block],
                 vectors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """The blocks' ``(m_l, d_l)`` rows of full-space products (the inverse of
    :func:`pad_tangents`'s embedding).

    Args:
        out: ``{name: (T, *shape)}`` products of the padded tangents.
        blocks: The blocks.
        vectors: The stacks that were padded (their sizes say which rows are whose;
            ``None`` entries are skipped).

    Returns:
        One ``(m_l, d_l)`` stack per block (``None`` where skipped).
    """
    result: list[torch.Tensor | None] = []
    for b, v, (r0, r1) in zip(blocks, vectors, _rows(vectors), strict=True):
        if v is None:
            result.append(None)
            continue
        parts = [out[pc.param][(slice(r0, r1), *pc.index)].reshape(r1 - r0, -1)
                 for pc in b.pieces]
        result.append(torch.cat(parts, dim=1))
    return result
