"""Memory accounting for Hessian-vector products: budgets, graph sizes and peaks.

* :func:`default_budget` is half of the memory available now on the device (CUDA free memory,
  or ``MemAvailable`` of ``/proc/meminfo`` on the host).
* :class:`SavedBytes` counts the bytes an autograd graph keeps alive: every tensor saved for
  backward passes through a ``saved_tensors_hooks`` pack hook, and the distinct storages not in
  an ``exclude`` set (the parameters themselves) are summed. That is the size of a kept
  gradient graph, the quantity the budget is spent on.
* :func:`peak_bytes` is the high-water mark since :func:`reset_peak`: CUDA's
  ``max_memory_allocated`` on a GPU; on the host, the process's peak resident set size
  (``ru_maxrss``), a whole-process lifetime peak that cannot be reset.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable

import torch

__all__ = ["SavedBytes", "available_bytes", "default_budget", "peak_bytes", "reset_peak"]


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


def reset_peak(device: torch.device) -> None:
    """Start a new peak measurement (CUDA only; the host peak is process-wide).

    Args:
        device: The device.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> tuple[int, str]:
    """``(bytes, kind)``: the memory high-water mark and what it measures.

    Args:
        device: The device.
    """
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "process_peak_rss"


class SavedBytes:
    """Context manager counting the distinct storages saved for backward inside it.

    Args:
        exclude: Tensors whose storages are not counted (they exist anyway, e.g. parameters).

    Attributes:
        bytes: Total size of the counted storages.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._seen = {_key(t) for t in exclude}
        self.bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
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


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _key(t: torch.Tensor) -> tuple[str, int] | None:
    try:
        return str(t.device), t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. functorch)
        return None
