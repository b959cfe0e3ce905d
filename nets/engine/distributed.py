"""Collectives for data-parallel spectra and sharded grids, over ``torch.distributed``.

Two implementations of one interface:

* :class:`Communicator` — a single process: sums are the identity, a map is a plain loop.
  Every function that accepts ``comm=`` uses it by default, so the single-process code path is
  the distributed one with ``world_size = 1``.
* :class:`DistributedCommunicator` — the ranks of an initialized process group (``gloo`` on
  CPU, ``nccl`` on GPU), usually started by ``torchrun`` and set up by :func:`init_from_env`.

Failures are collective. A rank whose local work raises still takes part in the next
collective with a failure flag, so every rank stops with a :class:`DistributedError` that names
the failing rank and its error (the failing rank's own error is the ``__cause__``). A rank that
dies outright (killed, out of memory) breaks the connection: the others get a
:class:`DistributedError` from the backend, at the latest after the process group's timeout
(:data:`DEFAULT_TIMEOUT_S`), never a silent hang.

Data-parallel sums (``Σ_r x_r``) are all-reduced in one flat buffer per call; the reduced value
is the same on every rank, so whatever is computed from it next (Lanczos) is identical on every
rank, which :meth:`DistributedCommunicator.check_identical` verifies at the end of a run.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from nets.engine.userwarn import warn

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "CommStats",
    "Communicator",
    "DistributedCommunicator",
    "DistributedError",
    "init_from_env",
    "launched_by_torchrun",
    "local_device",
]

T = TypeVar("T")
R = TypeVar("R")

#: Seconds a collective waits for the other ranks before it fails (process-group timeout).
DEFAULT_TIMEOUT_S = 300.0


class DistributedError(RuntimeError):
    """A collective failed: another rank raised, died, or did not answer in time."""


@dataclass
class CommStats:
    """Time spent in collectives (waiting for slower ranks included), for benchmarks."""

    calls: int = 0
    seconds: float = 0.0
    bytes: int = 0


@dataclass(frozen=True)
class Communicator:
    """A single process: rank 0 of 1. Sums are the identity and maps are loops.

    Attributes:
        stats: Counters of the collectives (always zero here).
    """

    stats: CommStats = field(default_factory=CommStats, compare=False)

    @property
    def rank(self) -> int:
        """This process's rank (0 in a single process)."""
        return 0

    @property
    def world_size(self) -> int:
        """Number of processes (1 in a single process)."""
        return 1

    @property
    def is_distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: ``items[rank::world_size]`` (round robin, order kept).

        Args:
            items: All items, in the same order on every rank.
        """
        return list(items[self.rank::self.world_size])

    def sum_(self, tensors: Sequence[torch.Tensor], *, what: str,
             error: BaseException | None = None) -> None:
        """All-reduce ``tensors`` in place (sum over ranks).

        Args:
            tensors: Same dtype and device on every rank, same shapes on every rank.
            what: What is being summed (named in errors).
            error: This rank's failure, if its local work raised; every rank then raises.
        """
        if error is not None:
            raise error

    def sum_int(self, value: int, *, what: str) -> int:
        """``Σ_r value_r``.

        Args:
            value: This rank's value.
            what: What is summed, for error messages.
        """
        return int(value)

    def broadcast(self, obj: T, *, what: str, src: int = 0) -> T:
        """Rank ``src``'s ``obj`` on every rank (picklable).

        Args:
            obj: The object (only ``src``'s is used).
            what: What is shared, for error messages.
            src: The sending rank.
        """
        return obj

    def gather(self, obj: T, *, what: str) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank (picklable).

        Args:
            obj: This rank's object.
            what: What is gathered, for error messages.
        """
        return [obj]

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        """Warn once for the whole job: on rank 0 only (:func:`nets.engine.userwarn.warn`,
        attributed to the user's code).

        For a warning about what every rank computed alike (the same model, the same reduced
        products, the same Lanczos runs), which would otherwise come once per rank. A warning
        about one rank's own data gathers what each rank found first and warns here for all.

        Args:
            message: The warning's text.
            category: Its class.
        """
        if self.rank == 0:
            warn(message, category)

    def together(self, fn: Callable[[], R], *, what: str) -> R:
        """Run ``fn`` on every rank; if it raises on any rank, raise on every rank.

        Args:
            fn: The work of this rank.
            what: What is done, for error messages.
        """
        return fn()

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]``, each item computed on one rank, gathered on all.

        Args:
            fn: Applied to each item; results must be picklable.
            items: The grid; every rank must pass the same items in the same order.
        """
        return [fn(x) for x in items]

    def check_identical(self, payload: bytes, *, what: str) -> None:
        """Raise unless ``payload`` is the same on every rank.

        Args:
            payload: This rank's bytes (e.g. a hash of the parameters).
            what: What is compared, for error messages.
        """


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


@dataclass(frozen=True)
class DistributedCommunicator(Communicator):
    """The ranks of an initialized ``torch.distributed`` process group.

    Attributes:
        group: The process group (``None``: the default group).
        timeout_s: The group's collective timeout, quoted in errors.
        stats: Time and volume of collectives on this rank.
    """

    group: Any = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            raise ValueError("torch.distributed is not initialized: start with torchrun and "
                             "call nets.engine.distributed.init_from_env() (or init_process_group)")
        # kept, so that they can still be read after the group is destroyed
        object.__setattr__(self, "_rank", torch.distributed.get_rank(self.group))
        object.__setattr__(self, "_world_size", torch.distributed.get_world_size(self.group))

    @property
    def rank(self) -> int:
        """This process's rank in the process group."""
        return self._rank

    @property
    def world_size(self) -> int:
        """Number of processes in the process group."""
        return self._world_size

    # -- plumbing ------------------------------------------------------------------------------
    def _collective(self, what: str, fn: Callable[[], R], nbytes: int = 0) -> R:
        t0 = time.perf_counter()
        try:
            return fn()
        except DistributedError:
            raise
        except (RuntimeError, ConnectionError, OSError) as e:
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed ({_describe(e)}). "
                "Another rank has probably stopped (see its error) or the connection broke; "
                f"collectives time out after {self.timeout_s:g} s.") from e
        finally:
            self.stats.calls += 1
            self.stats.seconds += time.perf_counter() - t0
            self.stats.bytes += nbytes

    def _raise_failures(self, failures: list, what: str, own: BaseException | None) -> None:
        bad = [(r, msg) for r, msg in enumerate(failures) if msg is not None]
        if not bad:
            return
        r, msg = bad[0]
        more = f" (and {len(bad) - 1} other rank(s))" if len(bad) > 1 else ""
        raise DistributedError(f"{what}: rank {r} of {self.world_size} failed{more}: {msg}"
                               ) from own

    # -- the interface -------------------------------------------------------------------------
    def sum_(self, tensors: Sequence[torch.Tensor], *, what: str,
             error: BaseException | None = None) -> None:
        tensors = list(tensors)
        if not tensors:
            raise ValueError("nothing to sum")
        dtype, device = tensors[0].dtype, tensors[0].device
        if any(t.dtype != dtype or t.device != device for t in tensors):
            raise ValueError("all tensors of one sum must share dtype and device")
        # one flat buffer (one collective), with a failure flag in the last slot
        flat = torch.empty(sum(t.numel() for t in tensors) + 1, dtype=dtype, device=device)
        off = 0
        for t in tensors:
            n = t.numel()
            flat[off:off + n] = 0 if error is not None else t.reshape(-1)
            off += n
        flat[-1] = 0 if error is None else 1
        self._collective(what, lambda: torch.distributed.all_reduce(flat, group=self.group),
                         flat.numel() * flat.element_size())
        if float(flat[-1]) != 0:
            msg = None if error is None else _describe(error)
            self._raise_failures(self.gather(msg, what=f"{what} (error report)"), what, error)
        off = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[off:off + n].view(t.shape))
            off += n

    def gather(self, obj: T, *, what: str) -> list[T]:
        out: list = [None] * self.world_size
        self._collective(what, lambda: torch.distributed.all_gather_object(
            out, obj, group=self.group))
        return out

    def sum_int(self, value: int, *, what: str) -> int:
        return int(sum(self.gather(int(value), what=what)))

    def broadcast(self, obj: T, *, what: str, src: int = 0) -> T:
        box = [obj if self.rank == src else None]
        self._collective(what, lambda: torch.distributed.broadcast_object_list(
            box, src=src, group=self.group))
        return box[0]

    def together(self, fn: Callable[[], R], *, what: str) -> R:
        try:
            value, own = fn(), None
        except Exception as e:  # reported on every rank below
            value, own = None, e
        self._raise_failures(self.gather(None if own is None else _describe(own), what=what),
                             what, own)
        return value  # type: ignore[return-value]

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        items = list(items)
        local: dict[int, R] = {}
        own: BaseException | None = None
        failed = None
        for i in self.shard(range(len(items))):  # this rank's items, as shard() deals them
            try:
                local[i] = fn(items[i])
            except Exception as e:  # reported on every rank below
                own, failed = e, f"item {i} ({items[i]!r}): {_describe(e)}"
                break
        gathered = self.gather((failed, pickle.dumps(local) if failed is None else b""),
                               what="gathering a sharded map")
        self._raise_failures([f for f, _ in gathered], "sharded map", own)
        merged: dict[int, R] = {}
        for _, blob in gathered:
            merged.update(pickle.loads(blob))
        return [merged[i] for i in range(len(items))]

    def check_identical(self, payload: bytes, *, what: str) -> None:
        digests = self.gather(_digest(payload), what=f"checking {what}")
        if len(set(digests)) > 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise DistributedError(f"{what} differ across ranks (ranks {differ} differ from "
                                   "rank 0): the ranks did not run identical computations")


def launched_by_torchrun() -> bool:
    """Whether this process is one of several ranks started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(name: str | torch.device = "auto") -> torch.device:
    """The device of this rank: ``auto`` is ``cuda:LOCAL_RANK`` when CUDA is there, else CPU.

    The one check of a ``--device`` value (every command and study function that takes a
    device goes through it, so they accept and refuse the same values with the same messages).

    Args:
        name: ``"auto"``, ``"cpu"``, ``"cuda"``, a torch device string such as ``"cuda:1"``,
            or a ``torch.device``.

    Raises:
        TypeError: ``name`` is neither a string nor a ``torch.device``.
        ValueError: ``name`` is not a device (``cpu``, ``cuda``, ``cuda:1``, ...), or names a
            device this torch build or machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', got {name!r}")
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError as e:
            raise ValueError(f"--device {name!r} is not a device: use auto, cpu, cuda or "
                             "cuda:N") from e
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {name}: this torch has no usable CUDA (built "
                                 f"without it, or no GPU visible); use --device cpu")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA "
                                 "device(s) visible")
        elif dev.type != "cpu":
            raise ValueError(f"--device {name}: only cpu and cuda devices are supported")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_from_env(*, device: str = "auto", backend: str = "auto",
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> Communicator:
    """Join the process group described by ``torchrun``'s environment, if there is one.

    Args:
        device: The device the computation will use (see :func:`local_device`).
        backend: ``gloo``, ``nccl`` or ``auto`` (``nccl`` for a CUDA device, else ``gloo``).
        timeout_s: Collective timeout in seconds.

    Returns:
        A :class:`DistributedCommunicator` under ``torchrun`` with more than one rank (the
        process group is initialized if it is not yet), else a single-process
        :class:`Communicator`.

    Raises:
        ValueError: unknown backend, non-positive timeout, ``nccl`` without a CUDA device.
    """
    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"unknown backend {backend!r}; choose auto, gloo or nccl")
    if not (np.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    if not launched_by_torchrun():
        return Communicator()
    dev = local_device(device)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        if dev.type != "cuda":
            raise ValueError("the nccl backend needs a CUDA device; use gloo on CPU")
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend, timeout=datetime.timedelta(seconds=float(timeout_s)),
            **({"device_id": dev} if backend == "nccl" else {}))
    return DistributedCommunicator(timeout_s=float(timeout_s))
