"""nets.engine.concurrency: independent products at once on a CPU, the same numbers bit for bit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import nets
import nets.engine.hvp as hvp_module
import nets.engine.products as products_module
from nets.engine.concurrency import parallel_map, plain_thread, product_workers
from nets.engine.memory import LiveBytes
from nets.zoo import models as zoo

from .conftest import OldStyleSquare

CPU = torch.device("cpu")


def test_parallel_map_runs_the_items_at_once_and_keeps_their_order():
    """Two workers: both items are in ``fn`` at the same time (a two-party barrier that one
    thread alone would wait on until its timeout), on the calling thread and one other, and
    the results come back in the items' order."""
    barrier = threading.Barrier(2, timeout=30)
    threads = []

    def fn(i: int) -> int:
        threads.append(threading.current_thread())
        barrier.wait()
        return 10 * i

    assert parallel_map(fn, [1, 2], workers=2) == [10, 20]
    assert threading.current_thread() in threads and len(set(threads)) == 2
    assert parallel_map(fn, [3, 4, 5, 6], workers=2) == [30, 40, 50, 60]


def test_a_nested_call_finishes_while_the_pool_is_busy():
    """Items whose function calls ``parallel_map`` again on the same pool: the inner calls do
    not wait for the pool thread the outer call occupies (a deadlock otherwise) but run their
    items themselves."""
    def inner(i: int) -> int:
        return i + 1

    def outer(i: int) -> list[int]:
        return parallel_map(inner, [i, 10 * i], workers=2)

    assert parallel_map(outer, [1, 2, 3], workers=2) == [[2, 11], [3, 21], [4, 31]]


def test_one_worker_runs_in_the_calling_thread():
    seen = []
    assert parallel_map(lambda i: seen.append(threading.current_thread()) or i, [1, 2, 3],
                        workers=1) == [1, 2, 3]
    assert seen == [threading.current_thread()] * 3


def test_the_first_failing_item_raises_and_stops_the_others():
    """The error of the first item that raised, in the items' order; once one raised, no
    thread takes a new item (each other item takes 20 ms: at most a few run)."""
    calls = []

    def fn(i: int) -> int:
        calls.append(i)
        if i in (1, 2):
            raise ValueError(f"item {i}")
        time.sleep(0.02)
        return i

    with pytest.raises(ValueError, match="item 1"):
        parallel_map(fn, list(range(20)), workers=2)
    assert len(calls) < 10


def test_product_workers_rule(monkeypatch):
    """As many workers as threads, tasks and the budget's chunk allow (each product holds its
    rows), on a CPU only, and one where the caller's thread state would not reach them."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert product_workers(CPU, 10, 3, None) == 4
    assert product_workers(CPU, 3, 3, None) == 3
    assert product_workers(CPU, 10, 3, 6) == 2
    assert product_workers(CPU, 10, 3, 2) == 1  # one product's rows above the chunk: one
    assert product_workers(CPU, 1, 3, None) == 1
    assert product_workers(torch.device("cuda"), 10, 3, None) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert product_workers(CPU, 10, 3, None) == 1


def test_a_thread_with_its_own_state_keeps_its_products():
    """Grad mode off, autocast on or a dispatch mode active (here the engine's own memory
    count, which would not see the workers' tensors) are the caller thread's own: no
    workers."""
    assert plain_thread()
    with torch.no_grad():
        assert not plain_thread()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not plain_thread()
    with LiveBytes():
        assert not plain_thread()
        assert product_workers(CPU, 10, 1, None) == 1
    assert plain_thread()


class _CustomNet(nn.Module):
    """Two hidden layers through a custom ``autograd.Function`` whose backward is written in
    differentiable operations (its double backward runs Python, under the interpreter lock, on
    whichever thread runs the product)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(5, 5)
        self.c = nn.Linear(5, 3)

    def forward(self, x):
        return self.c(OldStyleSquare.apply(self.b(OldStyleSquare.apply(self.a(x)))))


def _custom_problem():
    torch.manual_seed(0)
    model = _CustomNet().double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    return model, nn.functional.cross_entropy, [(x[:6], y[:6]), (x[6:], y[6:])]


@pytest.fixture
def workers_used(monkeypatch) -> list[int]:
    """The ``workers`` of every :func:`parallel_map` call the products make, in order."""
    used: list[int] = []
    real_map = products_module.parallel_map

    def spying(fn, items, workers):
        used.append(workers)
        return real_map(fn, items, workers)

    monkeypatch.setattr(products_module, "parallel_map", spying)
    return used


#: The block products' mode and a budget that holds every block's vectors at once (one
#: Lanczos group): ``auto`` on a model this small may time the zero-padded product faster, and
#: the default budget's share for the vectors splits its blocks into groups of one.
SETTINGS = dict(lanczos_steps=5, probes=2, mode="reverse-block", max_memory=2**30)


@pytest.mark.parametrize("problem", ["gpt", "custom"])
def test_blockwise_spectra_on_two_threads_equal_one_after_another(problem, monkeypatch,
                                                                  workers_used):
    """On two threads the blocks' products run two at a time (seen in the calls), each at one
    intra-op thread: the spectra are bit for bit those of the products one after another at one
    thread, and those at two threads to the model's round-off (a reduction split over two
    threads sums in another order); the process's thread count is two again after each call.
    On the zoo GPT and on a model whose graph holds a custom ``autograd.Function``."""
    if problem == "gpt":
        model, loss_fn, data = zoo.load("gpt", seed=0, dtype=torch.float32)
        data = data[:2]
    else:
        model, loss_fn, data = _custom_problem()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        together = nets.blockwise_spectrum(model, loss_fn, data, **SETTINGS)
        assert workers_used and max(workers_used) == 2
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(hvp_module, "product_workers", lambda *a, **k: 1)
        workers_used.clear()
        alone_two = nets.blockwise_spectrum(model, loss_fn, data, **SETTINGS)
        torch.set_num_threads(1)
        alone_one = nets.blockwise_spectrum(model, loss_fn, data, **SETTINGS)
        assert set(workers_used) == {1}
    finally:
        torch.set_num_threads(threads)
    assert list(together) == list(alone_one) == list(alone_two)
    eps = torch.finfo(next(model.parameters()).dtype).eps
    for name in alone_one:
        np.testing.assert_array_equal(together[name].nodes, alone_one[name].nodes)
        np.testing.assert_array_equal(together[name].weights, alone_one[name].weights)
        scale = np.abs(alone_two[name].nodes).max()
        np.testing.assert_allclose(together[name].nodes, alone_two[name].nodes, rtol=0,
                                   atol=1e3 * eps * scale)
        np.testing.assert_allclose(together[name].weights, alone_two[name].weights, rtol=0,
                                   atol=1e3 * eps)


def test_the_calling_threads_count_is_restored_when_an_item_raises():
    """The calling thread runs its items at its share of the intra-op threads and has its own
    count back after the call, also when an item raised."""
    threads = torch.get_num_threads()
    seen: list[int] = []

    def fn(i):
        seen.append(torch.get_num_threads())
        if i == 3:
            raise ValueError("item 3")
        return i

    try:
        torch.set_num_threads(4)
        assert parallel_map(fn, [0, 1, 2], workers=2) == [0, 1, 2]
        assert set(seen) == {2} and torch.get_num_threads() == 4
        with pytest.raises(ValueError, match="item 3"):
            parallel_map(fn, [3, 4], workers=4)
        assert 1 in seen and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(threads)


def test_the_budgets_chunk_bounds_the_blocks_at_once(mlp_problem, monkeypatch, workers_used):
    """The operator asks for no more blocks at once than its chunk holds rows: with
    ``chunk_size=2``, one-row calls run two blocks at once, two-row calls one; the products
    are the same either way."""
    model, loss_fn, data, _ = mlp_problem
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    blocks = nets.resolve_blocks(model, None)
    op = nets.BlockHVP(model, loss_fn, data, blocks, mode="reverse-block", chunk_size=2)
    g = torch.Generator().manual_seed(3)
    two = [torch.randn((2, b.dim), generator=g, dtype=torch.float64) for b in blocks]
    together = op([v[:1] for v in two])
    assert set(workers_used) == {2}
    workers_used.clear()
    pair = op(two)
    assert set(workers_used) == {1}
    for a, b in zip(together, pair, strict=True):
        torch.testing.assert_close(a[0], b[0], rtol=1e-12, atol=0)


@pytest.fixture
def batches_at_once(monkeypatch) -> list[list[list[int]]]:
    """The batch groups of every call of a :class:`nets.BlockHVP`, in order."""
    groups: list[list[list[int]]] = []
    real_groups = hvp_module.BlockHVP._batch_groups

    def spying(self, vectors):
        out = real_groups(self, vectors)
        groups.append(out)
        return out

    monkeypatch.setattr(hvp_module.BlockHVP, "_batch_groups", spying)
    return groups


@pytest.mark.parametrize("problem", ["gpt", "custom"])
def test_a_full_spectrum_runs_its_batches_at_once(problem, monkeypatch, batches_at_once):
    """One block (a full spectrum) on two threads: after the calibrating first call, the
    batches' products run two at a time, each at one intra-op thread, and are summed in the
    batches' order, so the spectrum is bit for bit that of one batch after another at one
    thread, and that at two threads to the model's round-off; the call's product time is one
    wall time, not the batches' sum; the Lanczos vectors' budget counts the products of both
    batches beside their sum. On the zoo GPT (three batches: a group of two, then one) and on a
    model whose graph holds a custom ``autograd.Function``."""
    if problem == "gpt":
        model, loss_fn, data = zoo.load("gpt", seed=0, dtype=torch.float32)
        data = data[:3]
    else:
        model, loss_fn, data = _custom_problem()
    settings = dict(lanczos_steps=5, probes=2, mode="reverse")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        op = nets.BlockHVP(model, loss_fn, data, [nets.full_block(model)], mode="reverse")
        assert op.product_copies == 3  # the sum and two batches' products
        vectors = [torch.randn((2, op.blocks[0].dim), generator=torch.Generator().manual_seed(0),
                               dtype=op.dtype)]
        op(vectors)
        seconds = op.info()["product_seconds"]
        t0 = time.perf_counter()
        op(vectors)
        wall = time.perf_counter() - t0
        assert batches_at_once[-1][0] == [0, 1]
        assert len(batches_at_once[-1]) == (len(data) + 1) // 2
        assert op.info()["product_seconds"] - seconds <= wall
        together = nets.full_spectrum(model, loss_fn, data, **settings)
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(hvp_module, "product_workers", lambda *a, **k: 1)
        batches_at_once.clear()
        alone_two = nets.full_spectrum(model, loss_fn, data, **settings)
        assert all(len(g) == 1 for groups in batches_at_once for g in groups)
        torch.set_num_threads(1)
        alone_one = nets.full_spectrum(model, loss_fn, data, **settings)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(together.nodes, alone_one.nodes)
    np.testing.assert_array_equal(together.weights, alone_one.weights)
    eps = torch.finfo(next(model.parameters()).dtype).eps
    scale = np.abs(alone_two.nodes).max()
    np.testing.assert_allclose(together.nodes, alone_two.nodes, rtol=0, atol=1e3 * eps * scale)
    np.testing.assert_allclose(together.weights, alone_two.weights, rtol=0, atol=1e3 * eps)


def test_batches_run_one_at_a_time_where_the_chunk_holds_one_batchs_rows(mlp_problem,
                                                                         batches_at_once):
    """A chunk of one row (``chunk_size=1``) with one-row calls: one batch's products fill it,
    so the batches run one after another; without that bound two at a time; on one thread
    one at a time; several blocks run their blocks at once instead, and count two product
    copies."""
    model, loss_fn, data, _ = mlp_problem
    assert len(data) == 3
    threads = torch.get_num_threads()
    vectors = [torch.ones((1, sum(p.numel() for p in model.parameters())),
                          dtype=torch.float64)]
    try:
        torch.set_num_threads(2)
        for chunk, groups in ((1, [[0], [1], [2]]), (None, [[0, 1], [2]])):
            op = nets.BlockHVP(model, loss_fn, data, [nets.full_block(model)],
                               mode="reverse", chunk_size=chunk)
            op(vectors)
            op(vectors)
            assert batches_at_once[-1] == groups
        blocks = nets.BlockHVP(model, loss_fn, data, nets.resolve_blocks(model, None))
        assert blocks.product_copies == 2
        torch.set_num_threads(1)
        one = nets.BlockHVP(model, loss_fn, data, [nets.full_block(model)], mode="reverse")
        one(vectors)
        one(vectors)
        assert batches_at_once[-1] == [[0], [1], [2]] and one.product_copies == 2
    finally:
        torch.set_num_threads(threads)
