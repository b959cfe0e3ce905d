"""Independent Hessian-vector products at once on a CPU: one thread pool per worker count.

On a CPU, PyTorch parallelizes inside an operation (intra-op threads, ``torch.set_num_threads``),
and only operations above a grain size of work are split: the small operations of a double
backward through a small or medium model mostly run on one thread whatever the setting. The
products of different blocks on one kept gradient graph (:func:`nets.engine.products.
block_products`, :func:`nets.engine.products.bundle_products`) are independent double backwards
of that graph (``retain_graph=True``), and PyTorch's autograd engine runs concurrent calls on a
shared graph from several threads: each call's CPU work runs on its calling thread with the
global interpreter lock released, and the nodes that hold state are locked (PyTorch's autograd
notes, "Concurrency on CPU"; custom ``autograd.Function`` backwards run under the lock). So the
blocks' products of one call run on up to ``T = torch.get_num_threads()`` threads at once
(:func:`product_workers`): the thread count the user gave intra-op parallelism, used across the
products instead of only inside their operations.

The ``W`` threads running products at once take ``T // W`` intra-op threads each (at least
one; :func:`parallel_map`), not ``T`` each: ``W · T`` threads on ``T`` cores oversubscribe them
as soon as a product's operations are large enough to be split (more rows per product, a wider
model). On the blockwise cells at 10 probes and ``T = 2``, where each block's batched double
backward carries 10 rows, two workers at two intra-op threads each ran the GPT-2-small config's
products slower than one after another, and two workers at one thread each faster
(``benchmarks/results/ab-workers.md`` times this rule against the one before it).
torch's intra-op count is a setting of each thread (OpenMP's and MKL's counts of the calling
thread; ``torch.get_num_threads`` reads the calling thread's), so the workers set theirs, and
the calling thread sets its own for the call and restores it after: the caller's setting is
what it was, while threads that first use torch during the call start from the workers' count
(torch's process default follows the last ``torch.set_num_threads``).

Each product still runs start to end on one thread, with the same operations on the same
inputs: the products at once are those of one after another at ``T // W`` intra-op threads,
bit for bit, and equal those at ``T`` threads to round-off (a reduction split over more threads
sums in another order; both tested). What a thread holds of its own does not pass to the
workers: grad mode, autocast, and the Python dispatch modes a caller may have entered (a memory
count such as :class:`nets.engine.memory.LiveBytes`, which would not see the workers' tensors).
Where the calling thread has grad mode off, autocast on or a dispatch mode active, the products
run in it, one after another (:func:`product_workers`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

__all__ = ["parallel_map", "plain_thread", "product_workers"]

T = TypeVar("T")
R = TypeVar("R")

#: The pools, by ``(process id, pool threads)``: a forked child starts its own (a parent's pool
#: threads do not exist in the child).
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def product_workers(device: torch.device, tasks: int, rows: int, chunk_size: int | None) -> int:
    """How many independent products to run at once.

    On a CPU, ``min(torch.get_num_threads(), tasks, chunk_size // rows)``: no more than the
    threads the process may use, the tasks there are, and the products whose rows fit the
    memory budget's chunk together (each product in flight holds its ``rows`` tangents'
    intermediates; the budget sized ``chunk_size`` rows at once). One elsewhere (a GPU already
    runs each product's kernels across the device), and one where the calling thread's own
    state would not reach the workers (:func:`plain_thread`).

    Args:
        device: Where the products run.
        tasks: Independent products in the call.
        rows: Most tangent rows one product holds at once.
        chunk_size: Rows the budget lets the call hold at once (``None``: no bound).
    """
    if device.type != "cpu" or tasks < 2 or not plain_thread():
        return 1
    fit = tasks if chunk_size is None else chunk_size // max(rows, 1)
    return max(1, min(torch.get_num_threads(), tasks, fit))


def plain_thread() -> bool:
    """Whether the calling thread's own autograd state is what a new thread starts with: grad
    mode on, autocast off (CPU and CUDA), and no Python dispatch mode active."""
    return (torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
            and not torch.is_autocast_enabled("cuda") and not is_in_torch_dispatch_mode())


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]``, run on ``workers`` threads at once where above 1: the
    calling thread and ``workers - 1`` pool threads, each taking the next item not yet taken,
    each at ``max(1, T // workers)`` torch intra-op threads where the calling thread has ``T``
    (module docstring; the calling thread's count is restored on return).

    The results keep the order of ``items``. Once an item raises, no thread takes another, and
    the error of the first item (in their order) that raised is raised here once every thread
    has stopped; an interrupt of the calling thread stops the others after their current item.
    A pool thread busy elsewhere (another caller's items, or the items of a call this one is
    nested in) is not waited for: the calling thread then runs the items itself.

    Args:
        fn: The function (thread-safe for distinct items).
        items: Its arguments.
        workers: Threads at once (1: in this thread, one after another).
    """
    n = len(items)
    if workers <= 1 or n <= 1:
        return [fn(item) for item in items]
    results: list = [None] * n
    errors: dict[int, BaseException] = {}
    order = itertools.count()  # next() on it is atomic: each index is taken once
    stop = threading.Event()
    own = torch.get_num_threads()
    each = max(1, own // workers)

    def drain() -> None:
        torch.set_num_threads(each)  # this thread's intra-op count (module docstring)
        while not stop.is_set() and (i := next(order)) < n:
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # re-raised in the calling thread below
                errors[i] = e
                stop.set()

    key = (os.getpid(), workers - 1)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(workers - 1, thread_name_prefix="nets-products")
    helpers = [pool.submit(drain) for _ in range(workers - 1)]
    try:
        drain()
        # a helper not started (the pool busy elsewhere) has no item left: cancelled, and not
        # waited for (a cancelled future counts as done only once a pool thread reaches it)
        wait([helper for helper in helpers if not helper.cancel()])
    finally:  # interrupted while waiting: the helpers take no further item
        stop.set()
        torch.set_num_threads(own)
    if errors:
        raise errors[min(errors)]
    return results
