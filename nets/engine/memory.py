"""Memory accounting for Hessian-vector products: budgets, graph sizes and peaks.

* :func:`default_budget` is half of the memory available now on the device (CUDA free memory,
  or ``MemAvailable`` of ``/proc/meminfo`` on the host).
* :func:`saved_by_graph` reads the size of a kept gradient graph, the quantity the budget is
  spent on, off the graph after it is built: the distinct storages its nodes hold saved for
  backward, not counting an ``exclude`` set (the parameters themselves); and the floating
  dtypes of those tensors, the precisions the model computed in.
* :class:`SavedBytes` counts the same while a graph is built, through a ``saved_tensors_hooks``
  pack hook: the fallback for a graph whose nodes :func:`saved_by_graph` cannot read. Its hooks
  stay in the graph and run (in Python) at every unpack of every later backward through it.
* :class:`LiveBytes` counts the bytes of the tensors created while it is active and still
  alive, and their peak: the transient memory of a computation (the operator measures one
  tangent's double backward with it, :class:`nets.engine.hvp.BlockHVP`). It sees every tensor
  an operator returns, on any device; it does not see a kernel's own scratch memory.
* :func:`peak_bytes` is the high-water mark: CUDA's ``max_memory_allocated`` on a GPU (since
  the process started or the caller last reset it with ``torch.cuda.reset_peak_memory_stats``:
  nets never resets it, so a peak the caller measures around a nets call covers the call), on
  the host the process's peak resident set size (``ru_maxrss``, a lifetime peak that cannot be
  reset).
"""

from __future__ import annotations

import os
import resource
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nets.engine.autograd_graph import graph_nodes

__all__ = ["GraphSaved", "LiveBytes", "SavedBytes", "available_bytes", "default_budget",
           "peak_bytes", "saved_by_graph"]


def available_bytes(device: torch.device) -> int:
    """Bytes that can be allocated now on ``device`` (free GPU memory, or host MemAvailable).

    Args:
        device: The device.
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def default_budget(device: torch.device) -> int:
    """The default ``max_memory``: half of :func:`available_bytes`.

    Args:
        device: The device.
    """
    return max(available_bytes(device) // 2, 1)


def peak_bytes(device: torch.device) -> tuple[int, str]:
    """``(bytes, kind)``: the memory high-water mark and what it measures.

    On a GPU, CUDA's ``max_memory_allocated`` (kind ``"cuda_max_allocated"``): the peak since
    the process started or the caller last reset the counter; on the host, the process's
    lifetime peak resident set size (kind ``"process_peak_rss"``). Neither is reset here.

    Args:
        device: The device.
    """
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "process_peak_rss"


@dataclass(frozen=True)
class GraphSaved:
    """What an autograd graph keeps alive for its backward (:func:`saved_by_graph`).

    Attributes:
        bytes: The distinct storages' bytes, less the excluded tensors'.
        float_dtypes: The floating dtypes of the saved tensors, the excluded included: the
            precisions the graph's operations computed in (a float64 model whose norm computes
            in float32 saves float32 tensors; see :func:`nets.engine.modes.compute_dtype`).
    """

    bytes: int
    float_dtypes: frozenset[torch.dtype]


def saved_by_graph(tensors: Iterable[torch.Tensor | None],
                   exclude: Iterable[torch.Tensor] = ()) -> GraphSaved | None:
    """What the nodes reachable from ``tensors``' ``grad_fn`` (:func:`nets.engine.autograd_graph.
    graph_nodes`) saved for backward: the bytes of
    the distinct storages (less those of ``exclude``) and the floating dtypes.

    Every built-in node exposes what it saved as ``_saved_*`` attributes and a custom
    :class:`torch.autograd.Function`'s node as ``saved_tensors``; the walk reads them without
    changing the graph (unlike :class:`SavedBytes`, whose hooks stay in it). Storages shared by
    several saved tensors count once. A kept gradient graph ``g = ∇ℓ`` built with
    ``create_graph=True`` holds exactly this: the forward activations and the backward's own
    saved tensors that its double backward needs.

    Args:
        tensors: The graph's outputs (e.g. a gradient's entries; ``None`` and tensors without
            a ``grad_fn`` are skipped).
        exclude: Tensors whose storages are not counted (they exist anyway, e.g. parameters).

    Returns:
        The :class:`GraphSaved`, or ``None`` where a node's saved tensors cannot be read (then
        measure the build with :class:`SavedBytes`).
    """
    seen = {_key(t) for t in exclude}
    attrs: dict[type, list[str]] = {}  # the ``_saved_*`` names of each node type
    total = 0
    dtypes = set()
    for node in graph_nodes(tensors):
        try:
            if isinstance(node, torch.autograd.function.BackwardCFunction):
                saved = list(node.saved_tensors)
            else:
                names = attrs.get(type(node))
                if names is None:
                    names = attrs[type(node)] = [a for a in dir(node)
                                                 if a.startswith("_saved_")]
                saved = [getattr(node, a) for a in names]
        except (RuntimeError, AttributeError):  # freed, or a node this walk cannot read
            return None
        for value in saved:
            for t in value if isinstance(value, list | tuple) else (value,):
                if isinstance(t, torch.Tensor):
                    if t.is_floating_point():
                        dtypes.add(t.dtype)
                    key = _key(t)
                    if key is not None and key not in seen:
                        seen.add(key)
                        total += t.untyped_storage().nbytes()
    return GraphSaved(total, frozenset(dtypes))


class SavedBytes:
    """Context manager counting the distinct storages saved for backward inside it.

    Args:
        exclude: Tensors whose storages are not counted (they exist anyway, e.g. parameters).

    Attributes:
        bytes: Total size of the counted storages.
        float_dtypes: The floating dtypes of every saved tensor (as
            :attr:`GraphSaved.float_dtypes`).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._seen = {_key(t) for t in exclude}
        self.bytes = 0
        self.float_dtypes: set[torch.dtype] = set()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            self.float_dtypes.add(t.dtype)
        key = _key(t)
        if key is not None and key not in self._seen:
            self._seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


class LiveBytes(TorchDispatchMode):
    """Context manager counting the bytes of the tensor storages created while it is active and
    still alive: :attr:`live` now, :attr:`peak` the most alive at once.

    A dispatch mode: every operator's outputs are seen (below autograd, so a backward's too),
    each storage counted once however many views share it, and uncounted when it is freed.
    Storages made before the count (an operator's inputs it has not seen created, e.g. a kept
    graph's saved tensors) are never counted, nor are their views. A kernel's own scratch
    memory is not a tensor and is not seen. Every operator goes through Python while it is
    active: a computation runs several times slower under it.

    Attributes:
        live: Bytes of the counted storages alive now.
        peak: The most of them alive at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._before: weakref.WeakSet = weakref.WeakSet()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs))[0]:  # storages made before: never counted
            if isinstance(t, torch.Tensor) and not t.is_meta:
                storage = t.untyped_storage()
                if storage not in self._seen:
                    self._before.add(storage)
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.is_meta:
                continue
            storage = t.untyped_storage()
            if storage in self._seen or storage in self._before:
                continue
            size = storage.nbytes()
            self._seen[storage] = size
            self.live += size
            weakref.finalize(storage, self._free, size)
        self.peak = max(self.peak, self.live)
        return out

    def _free(self, size: int) -> None:
        self.live -= size


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _key(t: torch.Tensor) -> tuple[str, int] | None:
    try:
        return str(t.device), t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. functorch)
        return None
