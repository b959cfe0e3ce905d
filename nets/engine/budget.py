"""How a Hessian operator shares its memory budget: kept gradient graphs, stacked tangents and
the Lanczos vectors.

:class:`MemoryPlan` is the arithmetic of :class:`nets.engine.hvp.BlockHVP`'s memory budget on
sizes the operator has measured (batch 0's gradient graph, the bytes a stacked tangent holds,
the Lanczos vectors' smallest group); it runs no model and allocates nothing, so every rule can
be checked on hand-set numbers. With ``B`` batches of ``n_i`` samples, batch 0's graph saving
``G`` bytes over ``n_0`` samples and ``p`` bytes per copy of the blocks' parameters:

* a kept graph of batch ``i`` is estimated at ``⌈G n_i / n_0⌉ + p`` bytes (its saved tensors,
  scaled by the samples, and the gradient itself);
* a stacked tangent takes ``t`` bytes: measured, or before that the **graph bound** ``G + p``;
* **keep-all** holds every graph where their sum, one tangent and the vectors' floor fit the
  budget ``M``; else **one-at-a-time** holds the largest;
* the rest ``R = M − held`` goes to the stacked tangents (half of it, less where the vectors'
  floor needs more, at least one tangent) and the remainder to the Lanczos vectors;
* the **least** budget (``max_memory="least"``) is the largest graph, one tangent and the
  vectors' room: half a tangent, or their smallest group where that is more. A given budget
  below it runs at it.

:class:`nets.engine.hvp.BlockHVP` documents why (its "Memory budget"); the measurements behind
the rules are in ``benchmarks/results/memory-sweep.md``, ``memory-measured.md``,
``estimates.md`` and ``groups.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LEAN_SHARE", "LEAST", "MemoryPlan"]

#: ``max_memory=LEAST``: the budget is the least the products run in, the largest batch's
#: gradient graph, one tangent and the Lanczos vectors' room, measured on the first batch
#: (:meth:`MemoryPlan.resolve_least`; :class:`nets.engine.hvp.BlockHVP`'s "Memory budget").
LEAST = "least"

#: With every graph kept and the default budget, whole blocks are grouped for Lanczos so that
#: their stored vectors take at most this share of the kept graphs' bytes
#: (:meth:`MemoryPlan.vector_room`). A half gives the groups of the float64 basis that
#: ``benchmarks/results/groups.md`` measured (the basis is now kept in the vectors' dtype, half
#: the bytes for a float32 model); the whole graphs' size gave groups of twice as many blocks
#: and a peak rise about a tenth higher, in the same time within noise, on the blockwise cells
#: of ``benchmarks/results/ab-basis.md``.
LEAN_SHARE = 0.5


@dataclass
class MemoryPlan:
    """A memory budget and the sizes it is shared by (bytes throughout).

    The operator fills in what it measures as it goes: :attr:`samples` once the data is
    checked, :attr:`graph_bytes` and :attr:`first_samples` once batch 0's graph is measured
    (:meth:`measured`), :attr:`tangent_estimate` at the first call, :attr:`vectors_least` when
    the Lanczos vectors reserve their room; :attr:`max_memory` follows under ``least``
    (:meth:`resolve_least`).

    Attributes:
        max_memory: The budget (under ``least``, the least once resolved; 1 before).
        least: ``max_memory="least"`` was asked: the budget is the least the run holds.
        given: The caller gave the budget (``least`` included), not the default.
        param_bytes: One copy of the blocks' parameters (a gradient, a padded tangent).
        samples: Samples of each batch (empty before the data check).
        graph_bytes: Tensors batch 0's gradient graph saves (0: not measured).
        first_samples: Samples of batch 0, over which :attr:`graph_bytes` was measured.
        tangent_estimate: Bytes per stacked tangent the plan uses (``None``: the graph bound).
        vectors_least: The Lanczos vectors' smallest group (0 before they reserve it).
    """

    max_memory: int
    least: bool
    given: bool
    param_bytes: int
    samples: tuple[int, ...] = ()
    graph_bytes: int = 0
    first_samples: int = 0
    tangent_estimate: int | None = None
    vectors_least: int = 0

    def measured(self, size: int, samples: int) -> None:
        """Record batch 0's graph; under ``least``, batch 0's least becomes the budget until
        every batch's size is known.

        Args:
            size: Bytes the graph saves (at least 1 is kept: 0 means not measured).
            samples: Samples of batch 0.
        """
        self.graph_bytes = max(int(size), 1)
        self.first_samples = int(samples)
        if self.least:
            self.max_memory = self.least_bytes([self.first_samples])

    def scaled(self, size: int, samples: int) -> int:
        """Bytes measured on batch 0 scaled to a batch of ``samples``: ``⌈size · n / n_0⌉``
        (activations grow with the samples; ``size`` itself before batch 0 is measured).

        Args:
            size: Bytes measured on batch 0.
            samples: The batch's samples ``n``.
        """
        n0 = self.first_samples
        return int(np.ceil(size * samples / n0)) if n0 > 0 else size

    def estimated_bytes(self, samples: int) -> int:
        """A kept graph of a batch: ``⌈G n / n_0⌉ + p``, the saved tensors scaled from batch
        0's (:meth:`scaled`) and the gradient itself (a copy of the blocks' parameters).

        Args:
            samples: The batch's samples ``n``.
        """
        return self.scaled(self.graph_bytes, samples) + self.param_bytes

    def graph_sizes(self) -> list[int]:
        """Every batch's kept graph (:meth:`estimated_bytes`), in batch order."""
        return [self.estimated_bytes(n) for n in self.samples]

    def graph_bound(self) -> int:
        """Bytes a stacked tangent may take with nothing measured: a graph's worth (batch 0's
        saved tensors) plus a copy of the parameters."""
        return max(self.graph_bytes + self.param_bytes, 1)

    def per_tangent(self) -> int:
        """Bytes one stacked tangent may take: the estimate once set, else the graph bound."""
        return self.tangent_estimate if self.tangent_estimate is not None else self.graph_bound()

    def least_floor(self) -> int:
        """The Lanczos vectors' room in the least budget: half a tangent, or their smallest
        group where that is more."""
        return max(self.per_tangent() // 2, self.vectors_least)

    def vector_floor(self) -> int:
        """The least room the plan leaves the Lanczos vectors: their smallest group (0 before
        it is reserved), and under ``least`` at least half a tangent."""
        return self.least_floor() if self.least else self.vectors_least

    def least_bytes(self, samples: Sequence[int] | None = None) -> int:
        """The least budget: the largest batch's graph, one tangent and the vectors' room
        (:meth:`least_floor`).

        Args:
            samples: The batches' samples (default: :attr:`samples`, every batch's).
        """
        samples = self.samples if samples is None else samples
        return (max(self.estimated_bytes(n) for n in samples) + self.per_tangent()
                + self.least_floor())

    def resolve_least(self) -> None:
        """Under ``least``, once batch 0's graph is measured, make the budget every batch's
        least (after what changes it: the tangent estimate, the vectors' smallest group)."""
        if self.least and self.graph_bytes:
            self.max_memory = self.least_bytes()

    def plan_budget(self) -> int:
        """The bytes the plan shares out: :attr:`max_memory`, or the least where a given
        budget is below it (the run holds that least anyway, with a warning; shared as under
        ``least``, its Lanczos vectors get their room rather than none, which had made as
        many groups as probes times blocks)."""
        if not self.given or self.least or not self.graph_bytes:
            return self.max_memory
        return max(self.max_memory, self.least_bytes())

    def below_least(self) -> bool:
        """A given budget is below the least the run holds (it runs at that least)."""
        return self.plan_budget() > self.max_memory

    def fits(self, kept: int, samples: int) -> bool:
        """Whether one more batch's graph, with those kept so far and one tangent's room, fits
        the budget (the ``"keep-all"`` test, batch by batch); never before batch 0's graph is
        measured.

        Args:
            kept: Bytes of the graphs kept so far.
            samples: The batch's samples.
        """
        if not self.graph_bytes:  # batch 0's graph could not be built: no graph to keep
            return False
        return kept + self.estimated_bytes(samples) + self.per_tangent() <= self.max_memory

    def beside_graphs(self) -> int:
        """The least rest beside the held graphs for which :meth:`room`'s split gives the
        products one tangent and the Lanczos vectors their floor."""
        return self.per_tangent() + self.vector_floor()

    def strategy(self, forward: bool = False) -> tuple[str, int]:
        """The graph strategy the budget allows and the bytes of the graphs it holds at once.

        Args:
            forward: The products are forward-over-reverse, which keeps no graph.

        Returns:
            ``("keep-all", Σ sizes)`` where every graph and :meth:`beside_graphs` fit the
            budget, ``("one-at-a-time", max size)`` otherwise, ``("none", 0)`` if ``forward``.
        """
        if forward:
            return "none", 0
        sizes = self.graph_sizes()
        if sum(sizes) + self.beside_graphs() <= self.max_memory:
            return "keep-all", sum(sizes)
        return "one-at-a-time", max(sizes)

    def room(self, held: int) -> tuple[int, int]:
        """How the rest of the budget beside the held graphs is shared.

        With ``R = plan_budget − held``, the stacked tangents get ``max(t, min(⌊R/2⌋, R − f))``
        (half, less where the vectors' floor ``f`` needs more than the other half, at least
        the one tangent ``t`` a product holds) and the vectors what is left. (Halves alone,
        with a rest under two tangents, gave the vectors room that the one tangent then took,
        and graphs, tangent and vectors rose past the budget by up to half a tangent.)

        Args:
            held: Bytes of the graphs held at once.

        Returns:
            ``(tangents, vectors)`` in bytes.
        """
        rest = max(self.plan_budget() - held, 0)
        tangents = max(self.per_tangent(), min(rest // 2, rest - self.vector_floor()))
        return tangents, max(rest - tangents, 0)

    def chunk_room(self, held: int) -> int:
        """Tangents per product the budget allows beside the graphs and the Lanczos vectors'
        most (at least 1).

        Args:
            held: Bytes of the graphs held at once.
        """
        return max(1, self.room(held)[0] // self.per_tangent())

    def vector_room(self, strategy: str, held: int) -> tuple[int, int | None]:
        """The Lanczos vectors' room.

        Args:
            strategy: The graph strategy (:meth:`strategy`).
            held: Bytes of the graphs held at once.

        Returns:
            ``(limit, lean)``: ``limit`` is :meth:`room`'s share; ``lean``, with the default
            budget while every graph is kept, :data:`LEAN_SHARE` of those graphs (else
            ``None``).
        """
        limit = self.room(held)[1]
        lean = int(held * LEAN_SHARE) if strategy == "keep-all" and not self.given else None
        return limit, lean
