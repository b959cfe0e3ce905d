"""Hessian-vector products of a mean loss over a data set, with ``torch.func``.

The loss is ``L(w) = Σ_b (n_b / N) ℓ_b(w)``, where ``ℓ_b(w) = loss_fn(model(x_b; w), y_b)`` is
the mean loss of batch ``b``, ``n_b`` its number of samples (``len(y_b)``) and ``N = Σ_b n_b``:
the mean loss over all samples when every batch loss is a per-sample mean. (The authors' code
sums the batch HVPs, which scales the Hessian by the number of batches.)

The HVP ``∇²L v = ∂/∂ε ∇L(w + εv)|₀`` is evaluated in one of four modes (see
:class:`BlockHVP`; one batch's products are the functions of :mod:`nets.engine.products`):
forward-over-reverse, ``jvp(grad(L), w, v)`` mapped over a stack of tangents with ``vmap``;
reverse-over-reverse, ``∇_w ⟨∇L(w), v⟩`` from a gradient graph built once per batch and kept
across calls within a memory budget; or the latter restricted to each block, or to bundles of
consecutive blocks. This module is
the operator around them: it checks the data, measures the graphs, chooses the mode and how
graphs are held within the budget, and weights and sums the batches.

A block-restricted product ``[∇²L]_ll v_l`` is the block-``l`` part of ``∇²L ṽ`` where ``ṽ``
is ``v_l`` embedded in the full parameter space with zeros elsewhere. :class:`BlockHVP`
evaluates these for all blocks at once: in the zero-padded modes it stacks the embedded tangents
of every block and probe into ``vmap`` (or batched backward) chunks of :attr:`BlockHVP.chunk_size`
rows, each padded only when its turn comes, which is what lets Lanczos run on all blocks in
lockstep within a memory budget.

HVPs run in the dtype of the model's parameters (float32 or float64).

**Data parallel.** With a :class:`nets.engine.distributed.DistributedCommunicator`, ``data`` is this
rank's shard. The weights become ``n_b / N`` with ``N`` the number of samples over all ranks,
each rank sums its batches, and the block products are all-reduced, so every rank holds the
same ``[∇²L]_ll V_l`` of the mean loss over the union of the shards (equal to the
single-process product up to the order of the floating-point sum). Only the block rows are
reduced (``Σ_l m_l d_l`` numbers per step, not ``m · D`` per block).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from nets.engine.adapters import (
    LossFn,
    batch_size,
    math_attention,
    prepare_data,
)
from nets.engine.blocks import Block, check_blocks
from nets.engine.budget import LEAST, MemoryPlan
from nets.engine.checks import check_callable, check_int, check_model
from nets.engine.concurrency import parallel_map, product_workers
from nets.engine.digest import tensors_digest
from nets.engine.distributed import Communicator
from nets.engine.finite import all_finite
from nets.engine.graphs import GradientGraphs, synchronize
from nets.engine.memory import default_budget, peak_bytes
from nets.engine.modes import (
    MODES,
    auto_skip,
    bundle_blocks,
    check_agreement,
    check_compile,
    compile_options,
    compute_dtype,
)
from nets.engine.products import (
    DoubleBackward,
    block_products,
    bundle_products,
    check_chunk_size,
    consecutive_bundles,
    cut_products,
    forward_over_reverse,
    pad_tangents,
    reverse_products,
    row_chunks,
)
from nets.engine.second_derivatives import (
    DerivativeCheck,
    check_along_random_direction,
    enforce_derivative_check,
)
from nets.engine.tangents import block_tangent_bytes, padded_row_bytes
from nets.engine.userwarn import warn

__all__ = ["BlockHVP", "check_hvp_options"]

def check_hvp_options(mode: object, max_memory: object, chunk_size: object) -> None:
    """Validate the product options shared by :class:`BlockHVP` and the spectrum functions.

    Args:
        mode: Product mode, one of :data:`nets.engine.modes.MODES`.
        max_memory: Memory budget in bytes, :data:`nets.engine.budget.LEAST` (``"least"``),
            or ``None``.
        chunk_size: Probe vectors per vmapped product, or ``None``.

    Raises:
        ValueError: ``mode`` not in :data:`nets.engine.modes.MODES`, a non-positive budget or
            chunk size, or a budget string other than ``"least"``
            (:data:`nets.engine.budget.LEAST`).
        TypeError: ``max_memory`` or ``chunk_size`` not an integer.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    if isinstance(max_memory, str):
        if max_memory != LEAST:
            raise ValueError(f"max_memory must be a number of bytes, {LEAST!r} (the least the "
                             f"products run in) or None (half the available memory), got "
                             f"{max_memory!r}")
    elif max_memory is not None:
        if isinstance(max_memory, bool) or not isinstance(max_memory, int | np.integer):
            raise TypeError(f"max_memory must be a positive integer, {LEAST!r} or None, got "
                            f"{type(max_memory).__name__}")
        if max_memory < 1:
            raise ValueError(f"max_memory must be a positive integer, {LEAST!r} or None, got "
                             f"{max_memory}")
    check_chunk_size(chunk_size)


class BlockHVP:
    """Block-diagonal Hessian-vector products ``v_l ↦ [∇²L]_ll v_l`` for many blocks at once.

    Four ways to evaluate the same products (equal to round-off, tested against the dense
    Hessian), chosen by ``mode``:

    * ``"forward"``: forward-over-reverse, ``jvp(grad(ℓ_b))`` ``vmap``-ed over the stacked,
      zero-padded tangents of every block and probe: one trace per batch and call.
    * ``"reverse"``: reverse-over-reverse. The gradient graph ``g_b = ∇ℓ_b`` of each batch is
      built once (``create_graph=True``) and each call differentiates ``Σ_n ⟨g_n, t_n⟩`` again
      (``autograd.grad(..., is_grads_batched=True)`` over the stacked zero-padded tangents).
    * ``"reverse-block"``: reverse-over-reverse restricted to each block: one batched double
      backward per block from ``g_l`` to ``w_l`` only (no zero padding; autograd visits only the
      part of the graph between them), the authors' product with the graph shared by all blocks.
    * ``"reverse-bundle"``: the same, a bundle of consecutive blocks at a time: one batched
      double backward per bundle from its blocks' gradients to their parameters, over the
      tangents zero-padded within the bundle (:func:`nets.engine.products.bundle_products`),
      :func:`nets.engine.modes.bundle_blocks` blocks per bundle (one block per bundle:
      ``"reverse-block"``).
    * ``"auto"`` (default): on the first call, the first batch is evaluated in every mode that
      :func:`nets.engine.modes.auto_skip` lets it try (forward-over-reverse only from enough
      stacked tangents, the zero-padded modes only for operators of few blocks, bundles not on
      a CPU: the rules and the measurements behind them are in :mod:`nets.engine.modes`), the
      products are checked to agree (:func:`nets.engine.modes.check_agreement`), and the
      fastest mode (counting the cost of rebuilding graphs that do not fit the budget) is used
      from then on; :meth:`info` reports the timings and why each mode left out was skipped.
      Forward-over-reverse is timed on its second evaluation of the batch: its first in a
      process pays one-time costs that a run does not pay again (several warm calls,
      ``benchmarks/results/modes.md``), which would bias the choice against it.

    **Memory budget.** The data check measures the first batch's gradient graph (its saved
    tensors, read off the built graph by :func:`nets.engine.memory.saved_by_graph`; batch
    ``i``'s is estimated as that times ``n_i / n_0``), and the first call chooses how the
    double-backward modes hold graphs (:attr:`graph_strategy`, reported by :meth:`info`):

    * ``"keep-all"``: the graphs of all ``B`` batches, plus one tangent's worth of room, fit in
      ``max_memory``: every graph is built once and kept across calls (Lanczos steps), so a
      call costs only double backwards. The data check's loss evaluations are these builds
      (:meth:`nets.engine.graphs.GradientGraphs.check_loss`): checking the data costs one
      forward pass beyond them.
    * ``"one-at-a-time"``: they do not fit: each call loops over the batches outermost, builds
      one batch's graph (with respect to the call's blocks only: autograd then records from
      the earliest of them on, so a group of late blocks builds a smaller graph, faster),
      applies every block and probe to it and frees it before the next batch (the peak
      holds one graph, as a one-block-at-a-time peer does; each call pays ``B`` forward and
      graph-building backward passes). Same products to round-off.

    (``"forward"`` keeps no graph: ``"none"``.) ``max_memory=LEAST`` (``"least"``) makes the
    budget the least the products run in (the largest batch's graph and one tangent) and the
    Lanczos vectors' room beside it, from the measured graph: one graph at a time (all of them kept
    only when there is one batch), one tangent per product, and the vectors in half a
    tangent's room, or in one probe of the largest block where that is more
    (:meth:`reserve_vectors`) — the smallest peak the products allow without a size to guess
    (``benchmarks/results/memory-sweep.md`` measures it against the other budgets and a
    one-block-at-a-time peer). The Lanczos vectors are bounded by the same budget
    (:meth:`vector_budget`). A given budget below that least runs at it, over the budget,
    with a :class:`UserWarning` naming it.
    Stacked tangents are processed ``chunk_size`` at a time, by default as many as the rest of
    the budget allows at the per-tangent estimate (:meth:`info`'s ``tangent_bytes``), the rest
    being what the held graphs and the Lanczos vectors' most (:meth:`vector_budget`'s
    ``limit``) leave. The per-tangent estimate is one of two:

    * the **graph bound** (default), a graph's worth plus a parameter copy: what a tangent may
      hold with no measurement, and always where forward-over-reverse may run (it builds a
      graph per tangent);
    * **measured** (``measure_tangents=True``, or ``None`` for only where the graph bound
      binds: under ``"least"``, where not every graph fits beside a tangent, or where the
      budget's chunks would stack fewer tangents than the first call has rows): at the first
      call one
      block-restricted double backward per block, one tangent each, runs on the first batch
      under :class:`nets.engine.memory.LiveBytes`, and the most any block holds beyond its
      product, scaled to the largest batch, is the estimate. Where zero-padded rows may run,
      the estimate is the larger of that plus two parameter copies (a padded tangent and its
      full-space product) and one padded row's whole double backward, measured the same way
      (walking the whole graph at once can hold more than any one block's product). One tangent's
      transient bounds a stacked tangent's (``benchmarks/results/estimates.md`` measures both);
      a kernel's scratch memory is not counted. The measurement costs one pass of products
      under a Python dispatch mode (several times their plain time), paid once
      (``tangent_measure_seconds``), and leaves room the graph bound wastes. Why it is not
      the default (it did not pay on the CPU, and the process's resident set rose past
      budgets its live tensors kept) is in ``docs/engine.md``, "The memory budget", with
      ``benchmarks/results/memory-measured.md``'s measurements.

    Graphs are all kept only where one tangent and the vectors' smallest group fit beside
    them; the rest beside the held graphs goes half to the stacked tangents (at least one
    tangent, and less than half where the vectors' smallest group needs more) and the rest to
    the vectors (:meth:`nets.engine.budget.MemoryPlan.room`; the arithmetic of the whole plan
    is :class:`nets.engine.budget.MemoryPlan`'s). So graphs, tangents and vectors together stay
    within ``max_memory`` wherever it holds the ``"least"`` budget (tested piece by piece, and on
    whole runs by counting the live tensors with the measured estimate:
    ``tests/nets/test_budget_live.py``); a smaller budget runs at that least and warns.
    The graph bound is an estimate, not a bound: on the small attention and LayerNorm test
    models a double backward held more than a graph and a parameter copy, and whole runs
    under it went a few percent past their budgets in live tensors.
    Attention runs on PyTorch's math kernel (``sdpa_kernel([SDPBackend.MATH])``): fused
    ``scaled_dot_product_attention`` kernels have neither forward-mode AD nor double backward.

    **Second derivatives.** Autograd differentiates a custom ``torch.autograd.Function``'s
    ``backward`` as written, which is the second derivative only where that ``backward`` is
    written in differentiable operations (one marked ``@once_differentiable``, or computing
    with a detached tensor, gives a wrong Hessian without an error), and of the loss only
    where it computes the loss's gradient (a backward hook that rescales it does not). Where
    the first batch's graph holds a custom Function (``check_derivatives=None``, the default;
    a module's full backward hook is one), or always (``True``), the first call checks one
    product on the first batch, along a seeded random direction over the blocks' parameters,
    against central differences of the gradient and second differences of the loss
    (:mod:`nets.engine.second_derivatives`: five gradient evaluations and one product, once):
    a product that disagrees with differences that converged is refused with a
    ``ValueError`` naming the Functions; differences that did not converge (a loss that is
    not smooth at the step's scale) leave it unchecked, with a :class:`UserWarning`.
    :meth:`info`'s ``derivative_check`` reports the check (``None`` where none ran).

    Args:
        model: The network (its current parameters are the point ``w``).
        loss_fn: Scalar mean batch loss ``loss_fn(model(inputs), targets)``.
        data: Re-iterable of ``(inputs, targets)``; the Hessian is that of the mean loss.
        blocks: Disjoint blocks (see :mod:`nets.engine.blocks`).
        mode: One of :data:`nets.engine.modes.MODES`.
        max_memory: Memory budget in bytes for kept graphs and stacked tangents,
            ``"least"`` for the least the products run in (measured on the first batch;
            :attr:`max_memory` then holds those bytes), or ``None`` (default:
            :func:`nets.engine.memory.default_budget`, half of the available memory).
        chunk_size: Tangents per ``vmap``/batched backward (default: from ``max_memory``).
        comm: :class:`nets.engine.distributed.DistributedCommunicator` for data-parallel products
            (``data`` is then this rank's shard; the model must be the same on every rank,
            which is checked; after the first call every rank uses rank 0's calibrated mode);
            default: one process.
        compile: Compile the forward-over-reverse product with ``torch.compile`` (Inductor).
            Only that mode compiles (``torch.compile`` has no double backward), so ``mode``
            must be ``"auto"`` (then ``"forward"``, uncalibrated: calibrating would pay the
            compilation in the timed call) or ``"forward"``. Compiling costs minutes of CPU
            time on a transformer, which only a long run earns back (measured by
            ``benchmarks/bench_peers.py --compile``); the products equal the uncompiled ones
            to round-off (tested).
        measure_tangents: Measure the bytes a stacked tangent holds (``True``), use the graph
            bound (``False``, default), or measure only where the graph bound binds
            (``None``); see "Memory budget" above. Forward-over-reverse always uses the bound.
        check_derivatives: Check the products against differences of the gradient and of
            the loss where the model's graph holds a custom ``autograd.Function`` (``None``,
            default), always (``True``) or never (``False``); see "Second derivatives" above.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, data: Iterable,
                 blocks: Sequence[Block], *, mode: str = "auto",
                 max_memory: int | str | None = None,
                 chunk_size: int | None = None, comm: Communicator | None = None,
                 compile: bool = False, measure_tangents: bool | None = False,
                 check_derivatives: bool | None = None) -> None:
        check_hvp_options(mode, max_memory, chunk_size)
        if measure_tangents is not None and not isinstance(measure_tangents, bool):
            raise TypeError(f"measure_tangents must be True, False or None (measured where the "
                            f"graph bound binds), got {type(measure_tangents).__name__}")
        if check_derivatives is not None and not isinstance(check_derivatives, bool):
            raise TypeError(f"check_derivatives must be True, False or None (where the model "
                            f"has a custom autograd.Function), got "
                            f"{type(check_derivatives).__name__}")
        check_model(model)
        check_callable("loss_fn", loss_fn)
        requested, mode = mode, check_compile(compile, mode)
        params = dict(model.named_parameters())
        if not params:
            raise ValueError("the model has no parameters: there is no Hessian to study")
        check_blocks(blocks, params)
        first = next(iter(params.values()))
        self.device = first.device
        self.dtype = first.dtype
        self.blocks = list(blocks)
        self.names = tuple(dict.fromkeys(n for b in self.blocks for n in b.params))
        self.params = {n: p.detach() for n, p in params.items()}
        #: the blocks' parameters in block order (the order of the padded tangents)
        self._block_params = {n: self.params[n] for n in self.names}
        self.comm = comm or Communicator()
        if self.comm.is_distributed:  # hashing costs a pass over the parameters
            self.comm.check_identical(tensors_digest(self.params).encode(),
                                      what="model parameters")
        #: wall seconds in each mode's products, autograd passes only (see :meth:`info`; the
        #: graph builds' are :attr:`graphs`' ``seconds``)
        self._product_seconds: dict[str, float] = {}
        self.requested_mode = requested
        self.mode: str | None = None if mode == "auto" else mode
        #: the budget asked for: bytes, LEAST or None (the default)
        self.requested_max_memory = max_memory
        least = max_memory == LEAST
        #: how the budget is shared (:class:`nets.engine.budget.MemoryPlan`): the sizes it is
        #: shared by are filled in as they are measured
        self.plan = MemoryPlan(
            max_memory=(default_budget(self.device) if max_memory is None
                        else 1 if least else int(max_memory)),
            least=least, given=max_memory is not None,
            param_bytes=sum(p.numel() * p.element_size() for p in self._block_params.values()))
        #: whether the budget-below-the-least warning was given (:meth:`_warn_below_least`)
        self._least_warned = False
        self.chunk_size = chunk_size
        self.measure_tangents = measure_tangents
        #: "graph bound" or "measured": where the per-tangent estimate came from
        self.tangent_source = "graph bound"
        self._tangent_seconds = 0.0
        self.calibration: dict[str, object] = {}
        #: how graphs are held: "keep-all", "one-at-a-time" or "none" (set by the first call)
        self.graph_strategy: str | None = None
        #: the gradient graphs the double backwards run on (built, timed, kept); the data
        #: check keeps those it builds unless the products run forward-over-reverse
        self.graphs = GradientGraphs(model, loss_fn, self.params, self.names, self.plan,
                                     self.device, keeping=self.mode != "forward")
        self._double_backward = DoubleBackward()
        self.check_derivatives = check_derivatives
        #: the first call's check of the second derivatives (None where none ran)
        self.derivative_check: DerivativeCheck | None = None
        self._check_seconds = 0.0
        # the data check's evaluations are graph builds: the first measures batch 0's graph,
        # the others are kept for the products while they fit (GradientGraphs.check_loss)
        self.data = prepare_data(model, loss_fn, data, device=self.device, comm=self.comm,
                                 evaluate=self.graphs.check_loss)
        self.plan.samples = tuple(batch_size(y, x) for x, y, _ in self.data)
        #: batches whose products one call may run at once: a one-block operator's (a full
        #: spectrum's) on a CPU, up to the threads torch has now (:meth:`_batch_groups`); fixed
        #: here, as :attr:`product_copies` counts their products
        self._batch_cap = (min(len(self.data), torch.get_num_threads())
                           if len(self.blocks) == 1 and self.device.type == "cpu" else 1)
        self._hvp = forward_over_reverse(model, loss_fn)
        self.compiled = bool(compile)
        if compile:
            # static shapes: batches of another size recompile (dynamic shapes fail in
            # forward-mode AD's zero tangents on torch 2.13: "storage_offset() on tensor with
            # symbolic sizes")
            self._hvp = torch.compile(self._hvp, dynamic=False, **compile_options())
        #: one block of whole tensors (a full spectrum): nothing to pad, reverse ≡ reverse-block
        self._unpadded = len(self.blocks) == 1 and all(not pc.index
                                                       for pc in self.blocks[0].pieces)
        self._shared = False
        self.calls = 0
        self.products = 0
        #: blocks per bundle at the last ``"reverse-bundle"`` product (None before one)
        self.bundle_size: int | None = None

    @property
    def max_memory(self) -> int:
        """The budget in bytes (under ``"least"``, the least once the first batch's graph is
        measured)."""
        return self.plan.max_memory

    @property
    def compute_dtype(self) -> torch.dtype:
        """The coarsest precision the model computes in (:func:`nets.engine.modes.
        compute_dtype` of :attr:`dtype` and the first batch's graph's saved dtypes):
        :attr:`dtype` until that graph is measured."""
        return compute_dtype(self.dtype, self.graphs.saved_dtypes)

    @property
    def custom_functions(self) -> tuple[str, ...]:
        """The custom ``autograd.Function`` classes in the first batch's graph (found by the
        data check, :meth:`nets.engine.graphs.GradientGraphs.measure_first`)."""
        return self.graphs.custom_functions

    @property
    def graph_bytes(self) -> int:
        """Bytes the first batch's gradient graph saves (0 before it is measured)."""
        return self.plan.graph_bytes

    def info(self) -> dict[str, object]:
        """What ran and what it cost: mode, calibration timings, chunking, memory, counts.

        Besides the settings, ``calls`` and ``products`` count what was applied, and two
        timings split the cost of the products from everything around them:

        * ``product_seconds``: wall seconds inside the products of the mode in use (the
          autograd passes that compute ``∇²ℓ_b V``, the calibration's products in that mode
          included, forward-over-reverse's warm-up too): what a run would cost if it did
          nothing but these products. Graph builds, checks, padding and the caller's Lanczos
          arithmetic are not in it.
        * ``graph_seconds``: wall seconds building the gradient graphs the products ran on
          (one forward and one graph-building backward per batch; once per batch under
          ``"keep-all"``, once per batch and call under ``"one-at-a-time"``).

        On a GPU both are synchronized with the device, so they are the kernels' time.
        ``calibration_seconds`` is what ``"auto"``'s calibration added: the wall seconds of its
        products in the modes it did not choose (warm-ups included). Its memory is in
        ``peak_memory_bytes``, the device's high-water mark
        (:func:`nets.engine.memory.peak_bytes`; ``peak_memory_kind``: on a GPU the allocator's
        since the caller last reset it, which nets never does, on the host the process's
        lifetime peak RSS; reset CUDA's counter before building the operator for its own
        peak): the zero-padded and forward modes run a full-space product per block and
        probe, so the calibration may take much longer than the mode chosen then does, within
        the same chunks of stacked tangents. ``tangent_bytes`` is the bytes per stacked tangent
        the plan used (``None`` before the first call), ``tangent_estimate`` whether they are
        the graph bound or measured, ``tangent_measure_seconds`` what measuring them cost.
        ``compute_dtype`` is the coarsest precision the model computes in, read off the first
        batch's graph (:func:`nets.engine.modes.compute_dtype`): the calibration's agreement
        check allows its round-off. ``derivative_check`` is the first call's check of the
        products against differences of the gradient and of the loss (class docstring,
        "Second derivatives": the verdict and each part's, their relative errors and spreads,
        the tolerance, the step, the custom Functions found, and its seconds), ``None`` where
        none ran.
        """
        peak, kind = peak_bytes(self.device)
        others = sum(s for m, s in self._product_seconds.items() if m != self.mode)
        return {"hvp_mode": self.mode, "requested_mode": self.requested_mode,
                "compiled": self.compiled,
                "calibration": self.calibration, "chunk_size": self.chunk_size,
                "max_memory": self.max_memory,
                "requested_max_memory": self.requested_max_memory,
                "graph_bytes": self.graph_bytes,
                "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
                "tangent_bytes": self.plan.tangent_estimate,
                "tangent_estimate": self.tangent_source,
                "tangent_measure_seconds": self._tangent_seconds,
                "graph_strategy": self.graph_strategy, "graphs_kept": len(self.graphs.kept),
                "bundle_size": self.bundle_size if self.mode == "reverse-bundle" else None,
                "batches": len(self.data),
                "calls": self.calls, "products": self.products,
                "product_seconds": self._product_seconds.get(self.mode, 0.0),
                "graph_seconds": self.graphs.seconds,
                "calibration_seconds": others,
                "derivative_check": None if self.derivative_check is None else {
                    **self.derivative_check.as_dict(), "seconds": self._check_seconds},
                "peak_memory_bytes": peak, "peak_memory_kind": kind}

    def __call__(self, vectors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Apply every block's diagonal Hessian block to its stack of vectors.

        Args:
            vectors: One entry per block: a ``(m_l, d_l)`` stack, or ``None`` to skip it.

        Returns:
            The ``(m_l, d_l)`` stacks ``[∇²L]_ll V_l`` (``None`` where skipped).
        """
        if not isinstance(vectors, list | tuple):
            raise TypeError(f"vectors must be a list with one (m, d) stack (or None) per block, "
                            f"got {type(vectors).__name__}")
        if len(vectors) != len(self.blocks):
            raise ValueError(f"got {len(vectors)} stacks of vectors for {len(self.blocks)} blocks")
        for b, v in zip(self.blocks, vectors, strict=True):
            if v is None:
                continue
            if not isinstance(v, torch.Tensor) or not v.is_floating_point():
                raise TypeError(f"vectors for block {b.name!r} must be a real floating tensor, "
                                f"got {type(v).__name__}"
                                f"{f' of dtype {v.dtype}' if isinstance(v, torch.Tensor) else ''}")
            if v.ndim != 2 or v.shape[1] != b.dim:
                raise ValueError(f"vectors for block {b.name!r} must be an (m, {b.dim}) stack, "
                                 f"got shape {tuple(v.shape)}")
            if not all_finite(v):
                raise ValueError(f"vectors for block {b.name!r} are not finite")
        total = sum(0 if v is None else v.shape[0] for v in vectors)
        if total == 0:
            return [None for _ in vectors]
        try:
            with math_attention():
                if self.graph_strategy is None:
                    self._plan(total)
                    self._check_second_derivatives()
                local = self._local_products(vectors)
            error = None
        except Exception as e:  # re-raised by comm.sum_, on every rank when distributed
            local = [None if v is None else torch.zeros_like(v, dtype=self.dtype)
                     for v in vectors]
            error = e
        self.comm.sum_([t for t in local if t is not None], error=error,
                       what="all-reduce of Hessian-vector products")
        if self.requested_mode == "auto" and self.comm.is_distributed and not self._shared:
            # every rank is here (a failure above was raised on all of them): adopt rank 0's
            # calibrated mode so that all ranks run the same products from now on
            self.mode = self.comm.broadcast(self.mode, what="the Hessian-vector product mode")
            self._shared = True
            if self.mode == "forward":
                self.graphs.drop()
                self.graph_strategy = "none"
        self.calls += 1
        self.products += total
        for b, out_b in zip(self.blocks, local, strict=True):
            if out_b is not None and not all_finite(out_b):
                raise ValueError(f"non-finite Hessian-vector product in block {b.name!r}")
        return local

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, rows: int) -> None:
        """Choose the per-tangent estimate, the graph strategy and the tangent chunks from the
        first batch's graph size, at the first call (of ``rows`` stacked rows).

        Strategy (class docstring): ``"keep-all"`` when all graphs plus one tangent's worth of
        room fit in ``max_memory``, else ``"one-at-a-time"``; ``"none"`` in forward mode. The
        chunk size (unless given) spends what the held graphs leave of the budget.
        """
        if not self.graph_bytes:  # not measured by the data check: measured (or fails) here
            x, y, _ = self.data[0]
            self.graphs.measure_unkept(x, y)
        if self.plan.tangent_estimate is None:  # not settled before (settle_tangents)
            self._settle(rows)
        self.graph_strategy, held = self._strategy()
        if self.graph_strategy != "keep-all":
            # the data check kept the graphs that fitted beside the graph bound; a larger
            # measured estimate plans one at a time, which holds none across calls
            self.graphs.drop()
        self._warn_below_least()
        if self.chunk_size is None:  # not given by the caller
            self.chunk_size = self.plan.chunk_room(held)

    def _check_second_derivatives(self) -> None:
        """Check one product on the first batch against central differences of the gradient
        where asked (class docstring, "Second derivatives"; :attr:`check_derivatives`, by
        default where the data check found a custom ``autograd.Function``): refuse a product
        that disagrees, warn where the differences could not tell
        (:func:`nets.engine.second_derivatives.check_along_random_direction` and
        :func:`nets.engine.second_derivatives.enforce_derivative_check`).

        The direction is a unit Gaussian over the blocks' parameters (seeded, on the device),
        the product the zero-padded double backward on the batch's kept graph (built for the
        check where none is kept).

        Raises:
            ValueError: The products are not the second derivative along the direction.
        """
        if not (bool(self.custom_functions) if self.check_derivatives is None
                else self.check_derivatives):
            return
        t0 = time.perf_counter()
        x, y, _ = self.data[0]

        def gradient_at(shifted: dict[str, torch.Tensor]
                        ) -> tuple[float, dict[str, torch.Tensor | None]]:
            loss, grads = self.graphs.gradient(x, y, shifted)
            return float(loss), grads

        def product_of(direction: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            product = reverse_products(self.graphs.kept_or_built(0, x, y),
                                       {n: d[None] for n, d in direction.items()}, 1,
                                       self._double_backward)
            return {n: p[0] for n, p in product.items()}

        check, why = check_along_random_direction(
            dict(self._block_params), gradient_at, product_of, self.compute_dtype,
            self.custom_functions, torch.Generator(device=self.device).manual_seed(0))
        self.derivative_check = check
        self._check_seconds = time.perf_counter() - t0
        enforce_derivative_check(check, why)

    def _warn_below_least(self, *, collective: bool = False) -> None:
        """Warn, once, where a given budget is below the least the run holds
        (:meth:`nets.engine.budget.MemoryPlan.least_bytes`, measured on the first batch): it
        then runs at that least, over the budget. :meth:`reserve_vectors` warns as soon as the
        least is whole (before the Lanczos vectors are grouped), :meth:`_plan` where a caller
        did not reserve them.

        Each rank's least comes from its own shard. Where ``collective`` (every rank calls this
        at the same point, outside the products' failure handling: :meth:`reserve_vectors`),
        the ranks' budgets and leasts are gathered and rank 0 warns once for the job, naming
        the ranks below; elsewhere (:meth:`_plan`, inside a call whose failures are reported
        collectively afterwards, where no other collective may run) a rank below warns for
        itself, naming its rank.
        """
        if self._least_warned:  # the same on every rank: set from the gathered findings
            return
        found = (self.max_memory, self.plan.plan_budget())  # least > budget: given one below
        every = (dict(enumerate(self.comm.gather(found, what="the ranks' least memory budgets")))
                 if collective and self.comm.is_distributed else {self.comm.rank: found})
        below = [(r, budget, least) for r, (budget, least) in every.items() if least > budget]
        if not below:
            return
        self._least_warned = True
        _, budget, least = max(below, key=lambda t: t[2])
        where = (f" on rank{'s' if len(below) > 1 else ''} "
                 f"{', '.join(str(r) for r, _, _ in below)} of {self.comm.world_size}"
                 if self.comm.is_distributed else "")
        message = (f"max_memory={budget} bytes is below the least this run holds{where}: one "
                   "batch's gradient graph, one tangent and the Lanczos vectors' room (half a "
                   "tangent, or one probe of the largest block where that is more), about "
                   f"{least} bytes (measured on the first batch); it runs at that least (one "
                   "graph and one tangent at a time), over the budget. Pass max_memory >= "
                   f"{least}, or smaller batches or fewer lanczos_steps")
        if collective:
            self.comm.warn(message)
        else:
            warn(message)

    def _tangent_bytes(self, rows: int) -> int:
        """The per-tangent estimate the first call (of ``rows`` stacked rows) plans with:
        measured (:meth:`_measured_bytes`) where asked or where the graph bound binds
        (:meth:`_binds`) and no mode that may run is forward-over-reverse; else, or where the
        measurement cannot run, the graph bound (class docstring, "Memory budget")."""
        bound = self.plan.graph_bound()
        modes = self._candidate_modes(rows)
        if "forward" in modes or self.measure_tangents is False:
            return bound
        if self.measure_tangents is None and not self._binds(rows):
            return bound
        measured = self._measured_bytes(bool(modes & {"reverse", "reverse-bundle"}))
        if measured is None:
            return bound
        transient, padded = measured
        largest = max(self.plan.samples)  # measured on batch 0, scaled to the largest batch
        estimate = self.plan.scaled(transient, largest)
        if padded:  # zero-padded rows: a padded tangent and its full-space product besides
            estimate = max(estimate + 2 * self.plan.param_bytes,
                           self.plan.scaled(padded, largest))
        self.tangent_source = "measured"
        return max(estimate, 1)

    def _candidate_modes(self, rows: int) -> set[str]:
        """The product modes the first call (of ``rows`` stacked rows) may run: the mode asked
        for, or those ``auto``'s calibration may try (:func:`nets.engine.modes.auto_skip`'s
        rules, with the chunks and bundles not planned yet: erring towards trying)."""
        if self.mode is not None:
            return {self.mode}
        return {"reverse-block"} | {
            m for m in ("reverse-bundle", "reverse", "forward")
            if auto_skip(m, device=self.device, blocks=len(self.blocks),
                         unpadded=self._unpadded, tangents=rows) is None}

    def _binds(self, rows: int) -> bool:
        """Whether the graph bound limits the first call's plan (of ``rows`` stacked rows): under
        ``"least"`` (it is part of the budget), where not every graph fits beside one
        tangent, or where the budget's chunks would stack fewer tangents than the call has
        rows."""
        if self.plan.least:
            return True
        strategy, held = self._strategy()
        if strategy != "keep-all":
            return True
        return self.chunk_size is None and self.plan.chunk_room(held) < rows

    def _measured_bytes(self, padded: bool) -> tuple[int, int] | None:
        """``(transient, row)``: :func:`nets.engine.tangents.block_tangent_bytes` and, where
        ``padded``, :func:`nets.engine.tangents.padded_row_bytes` (else 0), both on the first
        batch's graph (kept, or built once for them; its time counts in
        ``tangent_measure_seconds``). ``None`` where either cannot run (the caller keeps the
        graph bound)."""
        t0 = time.perf_counter()
        try:
            x, y, _ = self.data[0]
            graph = self.graphs.kept_or_built(0, x, y)
            return (block_tangent_bytes(graph, self.blocks, self.dtype, self.device,
                                        self._double_backward),
                    padded_row_bytes(graph, self._block_params, self.dtype, self.device,
                                     self._double_backward) if padded else 0)
        except (NotImplementedError, RuntimeError):
            return None
        finally:
            self._tangent_seconds += time.perf_counter() - t0

    def _strategy(self) -> tuple[str, int]:
        """The graph strategy the budget allows and the bytes of the graphs it holds at once
        (:meth:`nets.engine.budget.MemoryPlan.strategy`; ``"none"`` in forward mode)."""
        return self.plan.strategy(forward=self.mode == "forward")

    @property
    def product_copies(self) -> int:
        """Copies of its products a call holds at once: where it sums several batches, the
        weighted sum so far and the products of the batches it runs at once (one, or up to
        the threads of a one-block operator on a CPU, :meth:`_batch_groups`) while they are
        added; else 1 (the products, weighted in place). The Lanczos vectors' budget counts
        them (:func:`nets.engine.groups.lanczos_probe_bytes`)."""
        return 1 + self._batch_cap if len(self.data) > 1 else 1

    def settle_tangents(self, rows: int) -> None:
        """Fix, before the first call, the per-tangent estimate the plan will use, for calls of
        at most ``rows`` stacked rows, so that :meth:`vector_budget` counts the graphs the
        products will hold.

        A measured estimate (``measure_tangents``) differs from the graph bound (on the
        benchmark models it is smaller; where zero-padded rows may run it can be larger), so a
        budget that holds one graph at a time beside the bound may hold every graph beside the
        measurement, or the reverse (and ``"least"`` resolves to other bytes). Vectors sized by
        :meth:`vector_budget` before the first call measured it would get the room of a
        strategy the products do not run, and graphs, tangents and vectors together would
        exceed ``max_memory``. :func:`nets.engine.spectrum.operator_spectra` therefore calls
        this before it sizes the vectors. It does nothing once a call has planned, or while
        the first batch's graph is not measured (the first call measures it and plans then).
        Where the estimate is measured only where the graph bound binds
        (``measure_tangents=None``), ``rows`` stands for the first call's rows in that test.

        Args:
            rows: The most tangents one call will stack over all its blocks (e.g. probes times
                blocks).

        Raises:
            ValueError: ``rows`` is not a positive integer.
        """
        check_int("rows", rows, minimum=1)
        if self.plan.tangent_estimate is None and self.graph_bytes:
            with math_attention():
                self._settle(rows)

    def _settle(self, rows: int) -> None:
        """Set the per-tangent estimate for calls of ``rows`` stacked rows
        (:meth:`_tangent_bytes`) and, under ``"least"``, the budget it implies."""
        self.plan.tangent_estimate = self._tangent_bytes(rows)
        self.plan.resolve_least()

    def vector_budget(self) -> tuple[int, int | None]:
        """How many bytes the Lanczos vectors of the blocks in flight may take.

        Lanczos with full reorthogonalization keeps ``k`` vectors per block and probe: all
        blocks and probes at once take ``P · k · d`` numbers (for GPT-2 small with ``k = 30``,
        ``P = 10``: 150 GB for a float32 model). :func:`nets.engine.spectrum.operator_spectra`
        therefore runs the blocks in groups, and a block's probes in chunks, within:

        * ``limit``: what ``max_memory`` leaves after the graphs held at once and the stacked
          tangents' room (:meth:`nets.engine.budget.MemoryPlan.room`: half of the rest for the
          tangents, at least one tangent, less where the vectors' smallest group needs more).
          Probes are split only to meet it.
        * ``lean``: with the default budget while every graph is kept (``"keep-all"``), whole
          blocks are grouped so that their vectors
          (:func:`nets.engine.groups.lanczos_probe_bytes`) take no more than half those
          graphs' bytes (:data:`nets.engine.budget.LEAN_SHARE`): a group costs only its own
          block products (no
          graph is rebuilt), so the vectors add at most half the kept graphs' size to the peak,
          at no cost in products. ``None`` otherwise (grouping would rebuild the graphs once per
          group, or run fewer tangents per ``vmap``). One block per group would hold less
          (block-restricted products cost the same whatever the group) but makes many more,
          smaller operator calls: ``benchmarks/bench_groups.py`` measures that trade
          (``benchmarks/results/groups.md``).

        Returns:
            ``(limit, lean)`` in bytes (``lean`` may be ``None``). Before the first batch's
            graph is measured the graphs are not counted and ``lean`` is ``None``.
        """
        strategy, held = self._strategy() if self.graph_bytes else ("unknown", 0)
        return self.plan.vector_room(strategy, held)

    def reserve_vectors(self, least: int) -> tuple[int, int | None]:
        """Make room in the budget for the Lanczos vectors' smallest group; the vectors' room
        then (:meth:`vector_budget`).

        A group holds at least one probe of one block: its basis, its start vector, the vector
        passed to the products and their copies
        (:func:`nets.engine.groups.lanczos_probe_bytes`), the float64 work row
        (:func:`nets.engine.groups.lanczos_work_bytes`) and, for a basis narrower than float64,
        one row of the chunk buffer, ``8 d`` bytes: for the largest block, ``least`` bytes. A
        run whose vectors get less than ``least`` still runs that group, over the budget; so the
        plan keeps every graph only where one tangent and ``least`` fit beside them, shares the
        rest so that the vectors get ``least`` where one tangent leaves it
        (:meth:`nets.engine.budget.MemoryPlan.room`), and
        under ``"least"`` the budget holds a graph, a tangent and the larger of half a tangent
        and ``least`` (on a small model with large blocks the vectors, not the products, set the
        least: a float32 MLP with a block of 8,192 parameters, 6 steps, ran 2.4 times its least
        budget in live tensors, counted by :class:`nets.engine.memory.LiveBytes`, before this).
        A given budget below that least runs at it, over the budget, with a warning
        (:class:`UserWarning`) naming it, given here once the first batch's graph is measured
        (else at the first call); data parallel, once for the job by rank 0, naming the ranks
        below (every rank calls this at the same point).
        :func:`nets.engine.spectrum.operator_spectra` calls this after :meth:`settle_tangents`
        and before it sizes the vectors' groups.

        Args:
            least: Bytes of the vectors' smallest group (at least 0).

        Returns:
            :meth:`vector_budget`'s ``(limit, lean)``, with that room.

        Raises:
            ValueError: ``least`` is not a non-negative integer.
        """
        least = check_int("least", least, minimum=0)
        self.plan.vectors_least = max(self.plan.vectors_least, least)
        self.plan.resolve_least()
        # (none while the first graph is not measured); every rank calls this here
        self._warn_below_least(collective=True)
        return self.vector_budget()

    def _graph(self, i: int, x: object, y: object, vectors) -> tuple[dict, dict]:
        """Leaves and gradient ``∇ℓ_i`` (with its graph) of batch ``i``, kept under the
        ``"keep-all"`` strategy for every block. Otherwise the caller's reference is its only
        one, and the graph is built for the blocks this call applies (``vectors`` not
        ``None``) alone: autograd records and differentiates only from the earliest of their
        parameters on, which is cheaper for a group of late blocks and the same products."""
        kept = self.graphs.kept.get(i)
        if kept is not None:
            return kept
        keep = self.graph_strategy == "keep-all" and self.mode != "forward"
        names = None if keep else [
            n for n in self.names if any(v is not None and n in b.params
                                         for b, v in zip(self.blocks, vectors, strict=True))]
        return self.graphs.new(i, x, y, keep=keep, samples=batch_size(y, x), names=names)[0]

    # -- products ---------------------------------------------------------------------------

    def _local_products(self, vectors) -> list[torch.Tensor | None]:
        """This process's ``Σ_b w_b ∇²ℓ_b`` products, cut into the blocks' ``(m_l, d_l)`` rows;
        the batches summed in their order, whether or not several ran at once."""
        acc: list[torch.Tensor | None] | None = None
        for group in self._batch_groups(vectors):
            if len(group) == 1:
                parts = [self._batch_products(group[0], vectors)]
            else:  # one wall time for the batches at once (their own would overlap)
                t0 = time.perf_counter()
                parts = parallel_map(lambda i: self._batch_products(i, vectors, timed=False),
                                     group, len(group))
                self._timed(self.mode, t0)
            for i, part in zip(group, parts, strict=True):
                w = self.data[i][2]
                if acc is None:  # the products are the call's own tensors: weighted in place
                    acc = [None if p is None else p.mul_(w) for p in part]
                else:
                    for a, p in zip(acc, part, strict=True):
                        if a is not None:
                            a.add_(p, alpha=w)
            del parts
        assert acc is not None
        return acc

    def _batch_groups(self, vectors) -> list[list[int]]:
        """The batches in consecutive groups whose products run at once, each at its share of
        the intra-op threads (:func:`nets.engine.concurrency.parallel_map`), one batch per
        group unless: the operator has one block (:attr:`_batch_cap`; an operator of several
        runs its blocks at once instead), its mode is calibrated and runs on gradient graphs
        (``compile=True`` forces ``"forward"``), and every batch's graph is kept (no graph is
        built in a group). As many at once as
        :func:`nets.engine.concurrency.product_workers` allows for the call's rows (each
        batch's products hold at most ``min(rows, chunk_size)`` of them), and the cap."""
        n = len(self.data)
        workers = 1
        if (self._batch_cap > 1 and self.mode not in (None, "forward")
                and len(self.graphs.kept) == n):
            rows = min(sum(v.shape[0] for v in vectors if v is not None), self.chunk_size)
            workers = min(self._batch_cap, product_workers(self.device, n, rows,
                                                           self.chunk_size))
        return [list(range(s, min(s + workers, n))) for s in range(0, n, workers)]

    def _batch_products(self, i: int, vectors, *, timed: bool = True
                        ) -> list[torch.Tensor | None]:
        """Batch ``i``'s block products: calibrating the mode on the first call, in the
        chosen or forced mode after; their time goes to the mode's product seconds where
        ``timed``."""
        x, y, _ = self.data[i]
        if self.mode is None:
            return self._calibrate(i, x, y, vectors)
        if self.requested_mode == "auto" and not self.compiled:
            return self._products(self.mode, i, x, y, vectors, timed=timed)
        return self._forced_products(i, x, y, vectors, timed=timed)

    def _forced_products(self, i, x, y, vectors, *, timed: bool = True
                         ) -> list[torch.Tensor | None]:
        """Batch ``i``'s products in the mode the user forced (``compile=True`` forces
        ``"forward"``), its failure named with the fix (``auto`` skips a mode the model cannot
        run; torch's own message is kept)."""
        try:
            return self._products(self.mode, i, x, y, vectors, timed=timed)
        except torch.OutOfMemoryError:
            raise
        except (NotImplementedError, RuntimeError) as e:
            fix = ("compile=False lets mode='auto' try every mode on the first batch and skip "
                   "those that fail" if self.compiled else
                   "mode='auto' tries every mode on the first batch and skips those that fail")
            raise RuntimeError(
                f"the Hessian-vector products in mode={self.mode!r} failed on this model: "
                f"{type(e).__name__}: {e} -- a mode fails where the model has an operation it "
                "cannot differentiate that way (forward-over-reverse needs forward-mode AD and "
                "torch.func support of every operation: a custom autograd.Function needs "
                f"setup_context and jvp); {fix}") from e

    def _products(self, mode, i, x, y, vectors, graph=None, *, timed: bool = True
                  ) -> list[torch.Tensor | None]:
        """Batch ``i``'s block products in ``mode`` (on ``graph``, else on the batch's kept or
        newly built graph); their time goes to ``mode``'s product seconds (:meth:`info`) where
        ``timed``."""
        if mode != "forward" and graph is None:
            graph = self._graph(i, x, y, vectors)
        if mode in ("forward", "reverse"):
            return self._padded_products(mode, x, y, vectors, graph, timed=timed)
        t0 = time.perf_counter()
        if mode == "reverse-bundle":
            blocks = self._reverse_bundle(graph, vectors)
        else:
            blocks = self._reverse_block(graph, vectors)
        if timed:
            self._timed(mode, t0)
        return blocks

    def _padded_products(self, mode, x, y, vectors, graph, *, timed: bool = True
                         ) -> list[torch.Tensor | None]:
        """The zero-padded products (``"forward"``, ``"reverse"``), :attr:`chunk_size` stacked
        rows at a time: each chunk's tangents are padded to the blocks' whole parameter space
        (:func:`nets.engine.products.pad_tangents`) and its products cut back to the blocks'
        rows, so the padded tangents and products held at once are one chunk's, as the budget
        sizes them, not every block's and probe's."""
        out = [None if v is None else
               torch.empty((v.shape[0], b.dim), dtype=self.dtype, device=self.device)
               for b, v in zip(self.blocks, vectors, strict=True)]
        for rows in row_chunks(vectors, self.chunk_size):
            part = [None if r is None else v[r] for v, r in zip(vectors, rows, strict=True)]
            padded = pad_tangents(self.blocks, part, self._block_params, self.dtype)
            t0 = time.perf_counter()  # padding and cutting are not the product
            if mode == "forward":
                # the chunk already holds at most chunk_size rows: no chunking inside vmap, and
                # no chunk_size in the compiled product's guards (a budget's other chunk_size
                # recompiled it for every new operator, seconds to a minute each)
                full = self._hvp(self.params, x, y, padded)
            else:
                full = reverse_products(graph, padded, self.chunk_size, self._double_backward)
            if timed:
                self._timed(mode, t0)
            del padded
            for o, r, p in zip(out, rows, cut_products(full, self.blocks, part), strict=True):
                if r is not None:
                    o[r] = p
            del full  # before the next chunk's products
        return out

    def _timed(self, mode: str, t0: float) -> None:
        """Add the wall seconds since ``t0`` (the device synchronized) to ``mode``'s product
        seconds (:meth:`info`)."""
        synchronize(self.device)
        self._product_seconds[mode] = (self._product_seconds.get(mode, 0.0)
                                       + time.perf_counter() - t0)

    def _calibrate(self, i, x, y, vectors) -> list[torch.Tensor | None]:
        """Evaluate batch ``i`` in every mode, check agreement, keep the fastest mode."""
        results, seconds, failed, skipped = {}, {}, {}, {}
        total = sum(0 if v is None else v.shape[0] for v in vectors)
        blocks = len(self.blocks)  # the operator's, also when a call runs a group of them
        # the double-backward modes are timed on one graph built beforehand: its build is
        # charged below only where the strategy rebuilds it on every call
        try:
            graph, graph_error = self._graph(i, x, y, vectors), None
        except (NotImplementedError, RuntimeError) as e:
            graph, graph_error = None, f"{type(e).__name__}: {e}"[:300]
        per_bundle = self._bundle_size(vectors)
        # reverse-bundle first: a first double backward may pay one-time costs, which then
        # fall on the bundles rather than on the per-block default
        for mode in ("reverse-bundle", "reverse-block", "reverse", "forward"):
            why = auto_skip(mode, device=self.device, blocks=blocks, unpadded=self._unpadded,
                            tangents=total, chunk_size=self.chunk_size, per_bundle=per_bundle)
            # a bundle is tried first or never; the other modes are skipped only where one
            # has given products already (else they are tried: one may work where others fail)
            if why is not None and (mode == "reverse-bundle" or results):
                skipped[mode] = why
                continue
            if mode != "forward" and graph is None:
                failed[mode] = f"building the gradient graph: {graph_error}"
                continue
            t0 = time.perf_counter()
            try:
                if mode == "forward":  # warm up: its first call pays one-time costs
                    self._products(mode, i, x, y, vectors, graph)
                    t0 = time.perf_counter()
                results[mode] = self._products(mode, i, x, y, vectors, graph)
            except (NotImplementedError, RuntimeError) as e:
                failed[mode] = f"{type(e).__name__}: {e}"[:300]
                continue
            seconds[mode] = time.perf_counter() - t0  # padding and cutting included
        if not results:
            raise RuntimeError("no Hessian-vector product mode works on this model: "
                               + "; ".join(f"{m}: {e}" for m, e in failed.items()))
        del graph
        # one-at-a-time rebuilds the batch's graph on every call: the double-backward modes
        # pay its build there (forward-over-reverse builds no graph: its time includes its pass)
        rebuilt = self.graphs.first_build_seconds if self.graph_strategy == "one-at-a-time" else 0.0
        cost = {m: s + (rebuilt if m != "forward" else 0.0) for m, s in seconds.items()}
        choice = min(cost, key=cost.__getitem__)  # rank 0's choice is shared after the call
        check_agreement(results, choice, [b.name for b in self.blocks], vectors, self.dtype,
                        self.compute_dtype)
        self.mode = choice
        self.calibration = {"seconds": cost, "failed": failed, "skipped": skipped,
                            "graph_build_seconds": self.graphs.first_build_seconds}
        if choice == "forward":
            self.graphs.drop()
            self.graph_strategy = "none"
        return results[choice]

    def _bundle_size(self, vectors) -> int:
        """Blocks per bundle for this call's ``vectors`` (:func:`nets.engine.modes.bundle_blocks`
        of its largest stack; 1 for an operator of one block)."""
        if len(self.blocks) < 2:
            return 1
        rows = max(v.shape[0] for v in vectors if v is not None)
        return bundle_blocks(rows, self.chunk_size)

    def _reverse_bundle(self, graph, vectors) -> list[torch.Tensor | None]:
        """The block products of every block on ``graph``, bundles of consecutive blocks at a
        time (:func:`nets.engine.products.bundle_products`; one block per bundle:
        :meth:`_reverse_block`)."""
        size = self._bundle_size(vectors)
        self.bundle_size = size
        if size < 2:
            return self._reverse_block(graph, vectors)
        bundles = consecutive_bundles(len(self.blocks), size)
        rows = max(min(sum(0 if vectors[i] is None else vectors[i].shape[0] for i in bundle),
                       self.chunk_size) for bundle in bundles)
        return bundle_products(graph, self.blocks, vectors, bundles, self.chunk_size,
                               self._double_backward, self.dtype,
                               product_workers(self.device, len(bundles), rows,
                                               self.chunk_size))

    def _reverse_block(self, graph, vectors) -> list[torch.Tensor | None]:
        """The block-restricted products of every block on ``graph``
        (:func:`nets.engine.products.block_products`), on a CPU several blocks at once
        (:func:`nets.engine.concurrency.product_workers`)."""
        live = [v.shape[0] for v in vectors if v is not None]
        workers = product_workers(self.device, len(live), min(max(live), self.chunk_size),
                                  self.chunk_size)
        return block_products(graph, self.blocks, vectors, self.chunk_size,
                              self._double_backward, self.dtype, workers)

