"""nets.engine.products: one batch's Hessian-vector products in every way, against a dense
Hessian that ``torch.autograd.functional.hessian`` computes on the flattened parameters."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nets.engine.blocks import resolve_blocks
from nets.engine.products import (
    DoubleBackward,
    block_products,
    bundle_products,
    consecutive_bundles,
    cut_products,
    gradient_graph,
    make_batch_hessian_vector_product,
    pad_tangents,
    reverse_products,
    row_chunks,
)

#: Block partitions mixing whole tensors and parts of tensors (indexed pieces), per problem.
PARTITIONS = {
    "mlp_problem": {"first rows": [("0.weight", (slice(0, 3),)), "0.bias"],
                    "last rows": ("0.weight", (slice(3, 6),)),
                    "head": ["2.weight", "2.bias"]},
    "attention_problem": {"qk": ["q", "k"], "v top": ("v", (slice(0, 2),)),
                          "v bottom": ("v", (slice(2, 4),)), "emb": "emb", "out": "out"},
}


def _dense(model, loss_fn, x, y) -> torch.Tensor:
    """The batch loss's Hessian over the flattened parameters (``named_parameters`` order)."""
    params = dict(model.named_parameters())
    shapes = {n: p.shape for n, p in params.items()}

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts, off = {}, 0
        for n, shape in shapes.items():
            size = int(torch.tensor(shape).prod())
            parts[n] = flat[off:off + size].reshape(shape)
            off += size
        return loss_fn(torch.func.functional_call(model, parts, (x,)), y)

    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    return torch.autograd.functional.hessian(loss, flat)


def _coordinates(model, block) -> torch.Tensor:
    """The flat coordinates of a block's vector, piece by piece."""
    offsets, off = {}, 0
    for n, p in model.named_parameters():
        offsets[n] = off
        off += p.numel()
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    return torch.cat([offsets[pc.param] + torch.arange(shapes[pc.param].numel()).reshape(
        shapes[pc.param])[pc.index].reshape(-1) for pc in block.pieces])


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    scale = float(ref.abs().max())
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * max(scale, 1.0))


@pytest.mark.parametrize("problem", sorted(PARTITIONS))
@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_every_way_equals_the_dense_hessian(problem, chunk_size, request):
    """Forward-over-reverse, reverse-over-reverse on a kept graph (chunked) and the
    block-restricted products (whole tensors and indexed pieces, chunked; one block at a time
    and in bundles of consecutive blocks, pieces of one tensor in one bundle or in two; on one
    thread and on two at once, bit for bit the same) all equal the dense Hessian's products;
    the zero-padded ones cut to the blocks equal its diagonal blocks."""
    model, loss_fn, data, _ = request.getfixturevalue(problem)
    x, y = data[0]
    hess = _dense(model, loss_fn, x, y)
    params = {n: p.detach() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(7)
    tangents = {n: torch.randn((3, *p.shape), generator=g, dtype=p.dtype)
                for n, p in params.items()}
    flat_t = torch.cat([t.reshape(3, -1) for t in tangents.values()], dim=1)
    expected = flat_t @ hess  # rows H t_r (H symmetric)

    def flat(out: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([out[n].reshape(3, -1) for n in params], dim=1)

    forward = make_batch_hessian_vector_product(model, loss_fn)
    _close(flat(forward(params, x, y, tangents, chunk_size=chunk_size)), expected)
    buffers = dict(model.named_buffers())
    leaves, grads, loss = gradient_graph(model, buffers, loss_fn, params, list(params), x, y)
    _close(loss.detach(), loss_fn(model(x), y).detach())
    db = DoubleBackward()
    _close(flat(reverse_products((leaves, grads), tangents, chunk_size, db)), expected)
    assert db.batched  # these models' ops all have batching rules

    blocks = resolve_blocks(model, PARTITIONS[problem])
    vectors = [torch.randn((m, b.dim), generator=g, dtype=torch.float64)
               for m, b in zip((3, 1, 2, 3, 2), blocks, strict=False)]
    vectors[1] = None  # a skipped block
    restricted = block_products((leaves, grads), blocks, vectors, chunk_size, db, torch.float64)
    padded = pad_tangents(blocks, vectors, params, torch.float64)
    full = reverse_products((leaves, grads), padded, chunk_size, db)
    cut = cut_products(full, blocks, vectors)
    bundled = {size: bundle_products((leaves, grads), blocks, vectors,
                                     consecutive_bundles(len(blocks), size), chunk_size, db,
                                     torch.float64)
               for size in (2, 3, len(blocks))}
    # on two threads at once (nets.engine.concurrency): the same products bit for bit
    together = block_products((leaves, grads), blocks, vectors, chunk_size, db, torch.float64,
                              workers=2)
    bundled_together = bundle_products((leaves, grads), blocks, vectors,
                                       consecutive_bundles(len(blocks), 2), chunk_size, db,
                                       torch.float64, workers=2)
    for one, two in ((restricted, together), (bundled[2], bundled_together)):
        assert [o is None for o in one] == [t is None for t in two]
        assert all(torch.equal(o, t) for o, t in zip(one, two, strict=True) if o is not None)
    for i, (b, v, r, c) in enumerate(zip(blocks, vectors, restricted, cut, strict=True)):
        if v is None:
            assert r is None and c is None
            assert all(out[i] is None for out in bundled.values())
            continue
        idx = _coordinates(model, b)
        ref = v @ hess[idx][:, idx]
        _close(r, ref)
        _close(c, ref)
        for out in bundled.values():
            _close(out[i], ref)


@given(blocks=st.integers(0, 40), size=st.integers(1, 12))
def test_consecutive_bundles_partition_the_blocks_in_order(blocks, size):
    """Every block in exactly one bundle, in order; every bundle of ``size`` blocks but the
    last, which holds the rest."""
    bundles = consecutive_bundles(blocks, size)
    assert [i for b in bundles for i in b] == list(range(blocks))
    assert all(len(b) == size for b in bundles[:-1])
    assert not bundles or 1 <= len(bundles[-1]) <= size


def test_consecutive_bundles_refuse_an_empty_bundle():
    with pytest.raises(ValueError, match="at least 1"):
        consecutive_bundles(4, 0)


def test_a_graph_for_some_parameters_gives_their_block(mlp_problem):
    """A gradient graph built for the head's bias alone (the rest held constant) gives that
    parameter's diagonal block of the dense Hessian."""
    model, loss_fn, data, _ = mlp_problem
    x, y = data[0]
    params = {n: p.detach() for n, p in model.named_parameters()}
    leaves, grads, _ = gradient_graph(model, {}, loss_fn, params, ["2.bias"], x, y)
    assert set(leaves) == set(grads) == {"2.bias"}
    tangent = {"2.bias": torch.arange(6, dtype=torch.float64).reshape(2, 3)}
    out = reverse_products((leaves, grads), tangent, 4, DoubleBackward())
    hess = _dense(model, loss_fn, x, y)
    idx = slice(hess.shape[0] - 3, hess.shape[0])  # 2.bias is the last parameter
    _close(out["2.bias"], tangent["2.bias"] @ hess[idx, idx])


class _Spare(torch.nn.Module):
    """A linear model with a parameter its output does not use."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self.spare = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_a_parameter_the_loss_does_not_use_has_zero_rows():
    """The gradient of an unused parameter is ``None``: its products are exact zeros in the
    padded and in the block-restricted ways, not an error."""
    model = _Spare()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (5,), generator=g)
    loss_fn = torch.nn.functional.cross_entropy
    params = {n: p.detach() for n, p in model.named_parameters()}
    leaves, grads, _ = gradient_graph(model, {}, loss_fn, params, list(params), x, y)
    assert grads["spare"] is None
    db = DoubleBackward()
    out = reverse_products((leaves, grads), {"spare": torch.ones((2, 4), dtype=torch.float64)},
                           2, db)
    assert torch.equal(out["spare"], torch.zeros((2, 4), dtype=torch.float64))
    blocks = resolve_blocks(model, {"spare": "spare", "weight": "lin.weight"})
    vectors = [torch.ones((2, 4), dtype=torch.float64),
               torch.ones((3, 6), dtype=torch.float64)]
    spare, weight = block_products((leaves, grads), blocks, vectors, 2, db, torch.float64)
    assert torch.equal(spare, torch.zeros((2, 4), dtype=torch.float64))
    assert weight.shape == (3, 6) and float(weight.abs().max()) > 0


def test_double_backward_falls_back_to_one_row_at_a_time(mlp_problem, monkeypatch):
    """An op without a batching rule (simulated: the batched backward raises) makes the
    product fall back to one backward per row, with the same rows, and not try again."""
    model, loss_fn, data, _ = mlp_problem
    x, y = data[0]
    params = {n: p.detach() for n, p in model.named_parameters()}
    graph = gradient_graph(model, {}, loss_fn, params, list(params), x, y)[:2]
    g = torch.Generator().manual_seed(3)
    tangents = {n: torch.randn((4, *p.shape), generator=g, dtype=p.dtype)
                for n, p in params.items()}
    reference = reverse_products(graph, tangents, 4, DoubleBackward())
    real, batched_calls = torch.autograd.grad, []

    def no_batching_rule(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            batched_calls.append(1)
            raise RuntimeError("Batching rule not implemented for aten::something")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching_rule)
    db = DoubleBackward()
    for _ in range(2):
        out = reverse_products(graph, tangents, 4, db)
        for n in params:
            _close(out[n], reference[n])
    assert db.batched is False and len(batched_calls) == 1


@given(counts=st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_cut_inverts_pad(counts):
    """Padding embeds each block's vectors at its coordinates and zero elsewhere (the padded
    stacks hold exactly the vectors' entries); cutting the padded stacks returns the vectors."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).double()
    blocks = resolve_blocks(model, {"a": [("0.weight", (slice(0, 2),)), "1.bias"],
                                    "b": ("0.weight", (slice(2, 4), slice(1, 3))),
                                    "c": ["0.bias", "1.weight"]})
    params = {n: p.detach() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(sum(counts))
    vectors = [None if m == 0 else torch.randn((m, b.dim), generator=g, dtype=torch.float64)
               for m, b in zip(counts, blocks, strict=True)]
    if sum(counts) == 0:
        return
    padded = pad_tangents(blocks, vectors, params, torch.float64)
    assert all(t.shape[0] == sum(counts) for t in padded.values())
    total = sum(float((v ** 2).sum()) for v in vectors if v is not None)
    assert sum(float((t ** 2).sum()) for t in padded.values()) == pytest.approx(total, rel=1e-14)
    for v, c in zip(vectors, cut_products(padded, blocks, vectors), strict=True):
        assert (v is None and c is None) or torch.equal(v, c)


@given(counts=st.lists(st.integers(0, 4), min_size=1, max_size=5), size=st.integers(1, 6))
def test_row_chunks_cover_every_row_once_in_stack_order(counts, size):
    """The chunks cut the stack of every block's rows, in block order, into pieces of ``size``:
    each block's rows are covered once, in order, and each chunk holds at most ``size`` rows
    (all but the last exactly ``size``)."""
    vectors = [None if m == 0 else torch.zeros(m, 1) for m in counts]
    chunks = row_chunks(vectors, size)
    seen = []
    for chunk in chunks:
        rows = [(blk, r) for blk, r in enumerate(chunk) if r is not None]
        assert all(r.stop > r.start for _, r in rows)
        seen += [(blk, i) for blk, r in rows for i in range(r.start, r.stop)]
        held = sum(r.stop - r.start for _, r in rows)
        assert held == size or chunk is chunks[-1]
        assert 0 < held <= size
    assert seen == [(blk, i) for blk, m in enumerate(counts) for i in range(m)]
    assert row_chunks(vectors, None) == ([] if sum(counts) == 0 else [
        [None if m == 0 else slice(0, m) for m in counts]])
