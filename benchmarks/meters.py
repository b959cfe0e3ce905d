"""The benchmarks' instruments: wall time that includes a GPU's queued work, the time of one
warm gradient (the unit a product's cost is counted in), and memory in use and at its peak.

The benchmarks' own, rather than nets' private twins in ``nets.engine``: ``bench_ab.py``
drives an older ``nets`` with the same instruments, so they must not depend on its internals.
On the host, memory is the process's resident set (its peak a lifetime peak, ``ru_maxrss``);
on a CUDA device, the allocator's (``torch.cuda.memory_allocated`` and its peak counter).
"""

from __future__ import annotations

import functools
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["GRADIENT_REPEATS", "gradient_runs", "gradient_seconds", "memory_meters", "peak_rss",
           "rss_now", "synchronize", "torch_threads"]

#: Timed gradients per measuring process (after one untimed): a benchmark row's ``grad_runs``.
GRADIENT_REPEATS = 5


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (a GPU's), so that a wall time measures them.

    Args:
        device: The device whose work a timing covers; a CPU returns at once.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, restoring the caller's count after
    (the tests call the benchmarks' ``main`` in their own process).

    Args:
        threads: ``torch.set_num_threads``'s argument inside the block.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gradient_runs(model: torch.nn.Module, loss_fn, data, repeats: int = GRADIENT_REPEATS
                  ) -> list[float]:
    """Times of one gradient of the mean loss over all batches, warm: the unit of the
    benchmarks' cost per product (``gr/HVP``), each run a sample of it.

    One untimed gradient first pays the process's one-time costs (the first backward's
    allocations and lazy initialization), which a gradient in a long run does not pay; then
    ``repeats`` gradients are timed, each its own run, so that a cost per product's interval
    can count the unit's noise as well as the products' (``verdicts.cost_per_product``).

    Args:
        model: The model, its trainable parameters differentiated.
        loss_fn: ``loss_fn(model(x), y)``, a batch's loss.
        data: ``(x, y)`` batches.
        repeats: Timed gradients (at least 1).

    Raises:
        ValueError: ``repeats`` is below 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    params = [p for p in model.parameters() if p.requires_grad]

    def one() -> float:
        t0 = time.perf_counter()
        for x, y in data:
            torch.autograd.grad(loss_fn(model(x), y), params)
        synchronize(params[0].device)
        return time.perf_counter() - t0

    one()
    return [one() for _ in range(repeats)]


def gradient_seconds(model: torch.nn.Module, loss_fn, data,
                     repeats: int = GRADIENT_REPEATS) -> float:
    """Median time of one gradient of the mean loss over all batches, warm
    (:func:`gradient_runs`' median).

    Args:
        model: The model, its trainable parameters differentiated.
        loss_fn: ``loss_fn(model(x), y)``, a batch's loss.
        data: ``(x, y)`` batches.
        repeats: Timed gradients; their median is returned.
    """
    return float(np.median(gradient_runs(model, loss_fn, data, repeats)))


def peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_now() -> int:
    """The process's resident set size now, in bytes (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_meters(device: torch.device) -> tuple[Callable[[], int], Callable[[], int]]:
    """``(now, peak)``: functions giving the memory in use and its peak so far, in bytes.

    Args:
        device: A CUDA device reads its allocator (whose peak counter this resets, so the
            peak counts from here); any other, the process's resident set.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return (functools.partial(torch.cuda.memory_allocated, device),
                functools.partial(torch.cuda.max_memory_allocated, device))
    return rss_now, peak_rss
