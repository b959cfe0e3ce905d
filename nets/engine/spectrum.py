"""Full and blockwise Hessian spectra of a network by stochastic Lanczos quadrature.

``blockwise_spectrum`` runs Lanczos on every diagonal block ``[∇²L]_ll`` at once: at each step,
one call of :class:`nets.engine.hvp.BlockHVP` evaluates the products of all blocks and all
probes, in the product mode that is fastest on this model (measured on the first batch).
``full_spectrum`` is the same with a single block holding every parameter
(:func:`nets.engine.blocks.full_block`). :func:`operator_spectra` runs on an operator built once
and reused, e.g. probe by probe (data checked, graphs kept and product mode calibrated once).

Probes: probe ``p`` of block ``name`` is a standard Gaussian vector drawn in float64 from
``numpy.random.default_rng([seed, p, crc32(name)])``, so a probe does not depend on the device,
on the other blocks, or on which other probes are computed in the same call (this is what makes
probe-by-probe resumption exact).

Data parallel: pass ``comm=`` (:func:`nets.engine.distributed.init_from_env` under ``torchrun``)
and,
on each rank, its shard of the data (e.g. ``comm.shard(batches)``). The probes are drawn from
the seed on every rank, the HVPs are all-reduced (:class:`nets.engine.hvp.BlockHVP`), so Lanczos
runs
identically everywhere; the tridiagonals are compared across ranks at the end (bit for bit) and
every rank returns the same spectra.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from labkit.progress import Progress
from nets.engine.adapters import LossFn
from nets.engine.blocks import full_block, resolve_blocks
from nets.engine.checks import check_int, check_problem
from nets.engine.distributed import Communicator
from nets.engine.groups import (
    lanczos_group_floor_bytes,
    lanczos_groups,
    lanczos_probe_bytes,
    lanczos_work_bytes,
)
from nets.engine.hvp import BlockHVP
from nets.engine.lanczos import LanczosRun, check_reorth, chunk_bytes_for, lanczos
from nets.engine.slq import BlockSpectrum, gauss_quadrature

__all__ = ["ASYMMETRY_WARNING", "CHUNK_SHARE", "blockwise_spectrum", "full_spectrum",
           "operator_spectra", "probe_vector"]


#: Most Lanczos steps or probes a run may ask for (each costs at least one HVP).
MAX_COUNT = 1_000_000

#: Largest share of the Lanczos vectors' budget (:meth:`nets.engine.hvp.BlockHVP.vector_budget`)
#: that the float64 chunk buffer of the reorthogonalization may take
#: (:func:`nets.engine.lanczos.lanczos`'s ``chunk_bytes``; the device's default when smaller).
#: A tight budget thus reads the basis in small chunks: each probe's rows stream through the
#: buffer either way, so a chunk of a few hundred KiB costs little against the default 4 MiB
#: on a CPU, while the 4 MiB would be a visible part of a budget of a few tens of MiB.
CHUNK_SHARE = 1 / 8

#: A run whose products' measured asymmetry (``LanczosRun.asymmetry``, the largest over its
#: blocks relative to the largest Ritz value's magnitude over its blocks: a block whose
#: Hessian is numerically zero has products that are all roundoff, but roundoff of the whole
#: Hessian's scale) passes this many times the unit roundoff of the model's dtype warns: part
#: of the model computes in lower precision than its parameters (a float32 norm or attention
#: kernel in a float64 model, TF32 matrix products), and the spectra are accurate to about
#: that level, not to the dtype's. The models of the tests that compute in their own dtype
#: throughout stay at least an order of magnitude below it, and a float64 Llama, whose RMSNorm
#: computes in float32, passes it by orders of magnitude (``tests/nets/test_hf.py``).
ASYMMETRY_WARNING = 1e4


def probe_vector(seed: int, probe: int, block: str, dim: int) -> np.ndarray:
    """The float64 Gaussian start vector of probe ``probe`` for block ``block``.

    Args:
        seed: The run's seed.
        probe: Probe index.
        block: Block name.
        dim: Block dimension.
    """
    seed = check_int("seed", seed, minimum=0)
    probe = check_int("probe", probe, minimum=0)
    if not isinstance(block, str):
        raise TypeError(f"block must be a block name (str), got {type(block).__name__}")
    dim = check_int("dim", dim, minimum=0, maximum=2**31)
    rng = np.random.default_rng([int(seed), int(probe), zlib.crc32(block.encode())])
    return rng.standard_normal(dim)


#: Parameter dtypes whose products run in their own coarse precision while Lanczos runs in
#: float64 (:func:`_lanczos_dtype` warns of it once, so :func:`_warn_asymmetry` does not).
_HALF_DTYPES = (torch.bfloat16, torch.float16)


def _lanczos_dtype(model_dtype: torch.dtype, comm: Communicator) -> torch.dtype:
    """Dtype of the Lanczos vectors for a model of ``model_dtype``: its own, except float64 for
    16-bit models (bfloat16/float16), whose products then carry about 3 significant digits;
    a :class:`UserWarning` says so (once per job: every rank holds the same model)."""
    if model_dtype in _HALF_DTYPES:
        comm.warn(f"the model's parameters are {model_dtype}: Hessian-vector products run in "
                  "that precision (relative error about 1e-2 to 1e-3), Lanczos runs in "
                  "float64; eigenvalues far below the largest are round-off")
        return torch.float64
    return model_dtype


def _relative_asymmetry(runs: Sequence[LanczosRun], spectra: Iterable[BlockSpectrum]) -> float:
    """The runs' largest measured asymmetry over the largest Ritz value's magnitude of all
    their blocks (0 where either is unknown or zero)."""
    asymmetry = max((float(r.asymmetry.max()) for r in runs
                     if r.asymmetry is not None and r.asymmetry.size), default=0.0)
    scale = max((float(np.abs(s.nodes).max()) for s in spectra if s.nodes.size), default=0.0)
    return asymmetry / scale if scale > 0 else 0.0


def _warn_asymmetry(asymmetry: float, model_dtype: torch.dtype, comm: Communicator,
                    computed: torch.dtype | None = None) -> None:
    """Warn where the products' measured asymmetry passes :data:`ASYMMETRY_WARNING` times the
    unit roundoff of ``model_dtype`` (16-bit models have warned already: their products are
    that coarse by design), naming ``computed`` (the coarsest precision the model's graph
    saved, :func:`nets.engine.modes.compute_dtype`) where it is coarser; once per job, as the
    runs are the same on every rank."""
    u = torch.finfo(model_dtype).eps / 2
    if model_dtype in _HALF_DTYPES or asymmetry <= ASYMMETRY_WARNING * u:
        return
    dtype = str(model_dtype).removeprefix("torch.")
    if computed is not None and computed != model_dtype:
        where = (f"part of the model computes in {str(computed).removeprefix('torch.')} "
                 "(its gradient graph saves tensors of that dtype: e.g. a norm or softmax "
                 "cast to float32, or a torch.autocast context around the call)")
    else:
        where = ("part of the model computes in lower precision than its parameters "
                 "(e.g. a float32 norm or attention kernel, or TF32 matrix products)")
    comm.warn(f"the Hessian-vector products are asymmetric at {asymmetry:.1e} relative to the "
              f"largest eigenvalue, {asymmetry / u:.1e} times the roundoff of the model's "
              f"{dtype}: {where}, so the spectra are accurate to about that level, not to "
              f"{dtype}'s (info['product_asymmetry'] records it)")


def _check_run(lanczos_steps: object, probes: object, seed: object, probe_indices: object,
               info: object) -> list[int]:
    """Check the Lanczos options; the probe numbers to compute."""
    check_int("lanczos_steps", lanczos_steps, minimum=1, maximum=MAX_COUNT)
    probes = check_int("probes", probes, minimum=1, maximum=MAX_COUNT)
    check_int("seed", seed, minimum=0)
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict to fill (or None), got {type(info).__name__}")
    if probe_indices is not None and (isinstance(probe_indices, str | bytes | Mapping)
                                      or not isinstance(probe_indices, Iterable)):
        raise TypeError(f"probe_indices must be a sequence of probe numbers, got "
                        f"{type(probe_indices).__name__}")
    ids = (list(range(probes)) if probe_indices is None else
           [check_int("probe_indices entry", i, minimum=0) for i in probe_indices])
    if not ids:
        raise ValueError("probe_indices is empty")
    if any(i < 0 or i >= probes for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"probe_indices must be distinct integers in [0, {probes})")
    return ids


def _merge_runs(parts: Sequence[tuple[int, LanczosRun]]) -> LanczosRun:
    """One block's Lanczos runs from its probe chunks ``(first position, run)``."""
    parts = sorted(parts, key=lambda part: part[0])

    def joined(field: str) -> np.ndarray | None:
        pieces = [getattr(r, field) for _, r in parts]
        return None if any(p is None for p in pieces) else np.concatenate(pieces)

    return LanczosRun(*(joined(f) for f in ("alpha", "beta", "n_steps", "reorthogonalized",
                                            "asymmetry")))


def operator_spectra(
    op: BlockHVP,
    *,
    lanczos_steps: int = 30,
    probes: int = 10,
    seed: int = 0,
    probe_indices: Sequence[int] | None = None,
    callback: Callable[[int, int], None] | None = None,
    progress: bool | None = False,
    reorth: str = "full",
    info: dict | None = None,
) -> dict[str, BlockSpectrum]:
    """SLQ spectra of the diagonal Hessian blocks of an operator built once and reused.

    Each call runs Lanczos on ``op``, all blocks and probes in lockstep where their vectors fit
    the operator's memory budget, else in groups of blocks (and chunks of a block's probes)
    that do (:func:`lanczos_groups`, :meth:`nets.engine.hvp.BlockHVP.vector_budget`): the same
    products and spectra either way, to round-off. What a group holds is counted by
    :func:`lanczos_probe_bytes` (each block's vectors) and :func:`lanczos_work_bytes` (the
    float64 work stack its blocks share), and the float64 chunk buffer of the
    reorthogonalization is taken out of the budget first (at most :data:`CHUNK_SHARE` of it).
    The operator keeps what it has paid for across calls: checked data, kept gradient graphs,
    the calibrated product mode. The command line builds one per run and calls this once per probe.

    Args:
        op: The Hessian operator of the model, loss, data and blocks
            (:class:`nets.engine.hvp.BlockHVP`).
        lanczos_steps: Lanczos steps ``k`` (capped at each block's dimension; a run also stops
            early at an invariant subspace).
        probes: Number of probe vectors ``P``.
        seed: Seed of the probes (see :func:`probe_vector`).
        probe_indices: Compute only these probes (default ``range(probes)``), e.g. to resume.
        callback: ``callback(step, steps)`` after every Lanczos step (progress reporting);
            with several groups, ``steps`` is ``lanczos_steps`` times their number and group
            ``g``'s steps are numbered from ``g · lanczos_steps + 1`` (a group whose blocks
            stop early skips the rest of its numbers).
        progress: Show a progress bar (``labkit.progress``) over the Lanczos steps.
        reorth: ``"full"`` or ``"partial"`` reorthogonalization (see :func:`blockwise_spectrum`).
        info: A dict to fill with what ran (see :func:`blockwise_spectrum`); counts are the
            operator's totals over all calls, ``seconds`` is this call's, ``lanczos_groups``
            the number of groups, ``reorth`` the strategy, ``reorthogonalized_steps`` the
            steps of this call whose vectors were orthogonalized against their basis (summed
            over the groups' runs) and ``product_asymmetry`` the products' largest measured
            asymmetry relative to the largest Ritz value's magnitude over the blocks
            (``LanczosRun.asymmetry``; a run warns where it passes
            :data:`ASYMMETRY_WARNING` times the model dtype's roundoff).

    Returns:
        ``{block name: BlockSpectrum}`` with ``nodes``/``weights`` of shape
        ``(len(probe_indices), lanczos_steps)``.
    """
    if not isinstance(op, BlockHVP):
        raise TypeError(f"op must be a nets.BlockHVP, got {type(op).__name__}")
    ids = _check_run(lanczos_steps, probes, seed, probe_indices, info)
    check_reorth(reorth)
    blocks = op.blocks
    t0 = time.perf_counter()
    vec_dtype = _lanczos_dtype(op.dtype, op.comm)
    itemsize = vec_dtype.itemsize  # the stored basis holds the vectors in their own dtype
    # the graphs the products will hold, before the vectors get what they leave
    op.settle_tangents(len(ids) * len(blocks))
    per_probe = [lanczos_probe_bytes(b.dim, lanczos_steps, itemsize, op.product_copies)
                 for b in blocks]
    work = [lanczos_work_bytes(b.dim) for b in blocks]
    limit, lean = op.reserve_vectors(max(
        lanczos_group_floor_bytes(b.dim, lanczos_steps, itemsize, op.product_copies)
        for b in blocks))
    # the float64 chunk buffer comes out of the vectors' budget (at most CHUNK_SHARE of it)
    chunk = min(chunk_bytes_for(op.device), max(int(limit * CHUNK_SHARE), 1))
    groups = lanczos_groups(per_probe, len(ids), max(limit - chunk, 0), lean, shared=work)
    # every rank runs the same groups and reorthogonalization chunks (the budget depends on
    # each rank's memory and shard; other chunks would change the round-off of the tridiagonals)
    groups, chunk = op.comm.broadcast((groups, chunk),
                                      what="the Lanczos groups of blocks and chunk bytes")
    label = "full spectrum" if len(blocks) == 1 and blocks[0].name == "full" else (
        f"{len(blocks)} blocks")
    parts: list[list[tuple[int, LanczosRun]]] = [[] for _ in blocks]
    passes = 0
    total = lanczos_steps * len(groups)
    with Progress(total, f"Lanczos, {label}",
                  enabled=bool(progress) and op.comm.rank == 0) as bar:
        for g, group in enumerate(groups):
            members = [blk for blk, _, _ in group]

            def step(j: int, steps: int, done: int = g * lanczos_steps) -> None:
                bar.update_to(done + j, f"{op.products} HVPs")
                if callback is not None:
                    callback(done + j, total)

            def matvec(vectors, members=members):
                full: list[torch.Tensor | None] = [None] * len(blocks)
                for blk, v in zip(members, vectors, strict=True):
                    full[blk] = v
                out = op(full)
                return [out[blk] for blk in members]

            starts = [torch.as_tensor(np.stack([probe_vector(seed, p, blocks[blk].name,
                                                             blocks[blk].dim)
                                                for p in ids[p0:p1]]),
                                      dtype=vec_dtype, device=op.device)
                      for blk, p0, p1 in group]
            runs = lanczos(matvec, starts, lanczos_steps, callback=step, chunk_bytes=chunk,
                           reorth=reorth)
            del starts
            passes += sum(int(r.reorthogonalized[0]) for r in runs)
            # the group's blocks may have stopped early: the bar to the group's end
            bar.update_to((g + 1) * lanczos_steps, f"{op.products} HVPs")
            for (blk, p0, _), run in zip(group, runs, strict=True):
                parts[blk].append((p0, run))
    runs = [_merge_runs(p) for p in parts]
    op.comm.check_identical(b"".join(a.tobytes() for r in runs for a in (r.alpha, r.beta)),
                            what="Lanczos tridiagonals")
    out = {}
    for b, run in zip(blocks, runs, strict=True):
        nodes, weights = gauss_quadrature(run)
        out[b.name] = BlockSpectrum(b.name, b.dim, nodes, weights, run.n_steps.copy(),
                                    np.asarray(ids, dtype=np.int64))
    asymmetry = _relative_asymmetry(runs, out.values())
    _warn_asymmetry(asymmetry, op.dtype, op.comm, op.compute_dtype)
    if info is not None:
        info.update(op.info(), seconds=time.perf_counter() - t0, lanczos_groups=len(groups),
                    reorth=reorth, reorthogonalized_steps=passes, product_asymmetry=asymmetry)
    return out


def blockwise_spectrum(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    blocks: Mapping[str, object] | str | None = None,
    lanczos_steps: int = 30,
    probes: int = 10,
    seed: int = 0,
    probe_indices: Sequence[int] | None = None,
    chunk_size: int | None = None,
    callback: Callable[[int, int], None] | None = None,
    comm: Communicator | None = None,
    mode: str = "auto",
    max_memory: int | str | None = None,
    measure_tangents: bool | None = False,
    compile: bool = False,
    progress: bool | None = False,
    reorth: str = "full",
    check_derivatives: bool | None = None,
    info: dict | None = None,
) -> dict[str, BlockSpectrum]:
    """SLQ spectra of the diagonal Hessian blocks ``[∇²L(w)]_ll``.

    Args:
        model: Network at the point ``w`` (its current parameters). Must be deterministic
            (eval mode for dropout/batch norm).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean loss of a batch.
        data: Re-iterable of ``(inputs, targets)``; ``L`` is the mean loss over all samples
            (batches weighted by their size).
        blocks: ``None`` (one block per parameter tensor), ``"full"`` (one block ``"full"`` of
            every trainable parameter: the full Hessian, as :func:`full_spectrum`) or a
            partition ``{name: spec}``, see :mod:`nets.engine.blocks` (fused QKV can be split
            with :func:`nets.split_parameter`).
        lanczos_steps: Lanczos steps ``k`` (capped at each block's dimension; a run also stops
            early at an invariant subspace).
        probes: Number of probe vectors ``P``.
        seed: Seed of the probes (see :func:`probe_vector`).
        probe_indices: Compute only these probes (default ``range(probes)``), e.g. to resume.
        chunk_size: Tangents per ``vmap``/batched backward (``None``: from ``max_memory``).
        callback: ``callback(step, steps)`` after every Lanczos step (progress reporting).
        comm: :class:`nets.engine.distributed.DistributedCommunicator` to run data parallel
            (``data`` is then this rank's shard); default: one process.
        mode: Hessian-vector product: ``"auto"`` (calibrated on the first batch),
            ``"forward"``, ``"reverse"``, ``"reverse-block"`` or ``"reverse-bundle"``; see
            :class:`nets.engine.hvp.BlockHVP`. All give the same numbers to round-off.
        max_memory: Memory budget in bytes for kept gradient graphs, stacked tangents and
            Lanczos vectors; ``"least"`` (:data:`nets.engine.budget.LEAST`) for the least the
            products run in, one batch's graph and one tangent, measured on the first batch
            (the smallest peak, some time lost rebuilding graphs); default: half the memory
            available now (every graph kept when they fit: the fastest).
        measure_tangents: How the budget counts one stacked tangent: ``False`` (default) the
            graph bound, a graph's worth plus a parameter copy, with nothing measured;
            ``True`` measured on the first batch (one pass of products under a counting
            dispatch mode, paid once); ``None`` measured only where the graph bound limits the
            plan. See "Memory budget" in :class:`nets.engine.hvp.BlockHVP` and ``info``'s
            ``tangent_bytes`` and ``tangent_estimate``.
        compile: Compile the forward-over-reverse product with ``torch.compile`` (see
            :class:`nets.engine.hvp.BlockHVP`; pays only on long runs).
        progress: Show a progress bar (``labkit.progress``) over the Lanczos steps.
        reorth: Lanczos reorthogonalization: ``"full"`` (every step against the whole basis,
            the default) or ``"partial"`` (only where Simon's estimate of the lost
            orthogonality, which counts the products' measured asymmetry, passes ``√u`` of the
            vectors' dtype: the same spectra to about ``u‖H‖``, faster where the basis is long;
            see :func:`nets.engine.lanczos.lanczos`).
        check_derivatives: Check the products against central differences of the gradient
            and of the loss on the first batch where the model's graph holds a custom
            ``autograd.Function`` (``None``, default; a module's backward hook is one), always
            (``True``) or never (``False``): a custom backward that is not differentiable as
            written, or not the loss's gradient, gives a wrong Hessian without an error, and is
            refused (see "Second derivatives" in :class:`nets.engine.hvp.BlockHVP`;
            ``info``'s ``derivative_check``).
        info: A dict to fill with what ran: the mode chosen and its calibration timings,
            chunk size, graph size, peak memory (``peak_memory_bytes``, ``peak_memory_kind``),
            number of products and seconds, of which ``product_seconds`` in the products
            alone and ``graph_seconds`` building gradient graphs
            (:meth:`nets.engine.hvp.BlockHVP.info`), and what the Lanczos runs measured:
            ``reorth``, ``reorthogonalized_steps`` and ``product_asymmetry`` (see
            :func:`operator_spectra`; a run warns where the products' asymmetry shows lower
            precision inside the model).

    Returns:
        ``{block name: BlockSpectrum}`` with ``nodes``/``weights`` of shape
        ``(len(probe_indices), lanczos_steps)``.
    """
    check_problem(model, loss_fn, data)
    if isinstance(blocks, str) and blocks != "full":
        raise ValueError(f"blocks must be None, 'full' or a mapping {{name: spec}}, got "
                         f"{blocks!r}")
    bl = [full_block(model)] if isinstance(blocks, str) else resolve_blocks(model, blocks)
    _check_run(lanczos_steps, probes, seed, probe_indices, info)  # before any model evaluation
    check_reorth(reorth)
    op = BlockHVP(model, loss_fn, data, bl, mode=mode, max_memory=max_memory,
                  chunk_size=chunk_size, comm=comm, compile=compile,
                  measure_tangents=measure_tangents, check_derivatives=check_derivatives)
    return operator_spectra(op, lanczos_steps=lanczos_steps, probes=probes, seed=seed,
                            probe_indices=probe_indices, callback=callback, progress=progress,
                            reorth=reorth, info=info)


def full_spectrum(model: torch.nn.Module, loss_fn: LossFn, data: Iterable,
                  **options: Any) -> BlockSpectrum:
    """SLQ spectrum of the full Hessian ``∇²L(w)``: :func:`blockwise_spectrum` with
    ``blocks="full"`` (one block named ``"full"`` of every trainable parameter).

    Args:
        model: Network at the point ``w`` (deterministic: eval mode for dropout/batch norm).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the scalar mean loss of a batch.
        data: Re-iterable of ``(inputs, targets)`` (batches weighted by their size).
        **options: The keywords of :func:`blockwise_spectrum` other than ``blocks``
            (``lanczos_steps``, ``probes``, ``seed``, ``mode``, ``max_memory``, ...).

    Raises:
        TypeError: ``blocks=`` given, or a keyword :func:`blockwise_spectrum` does not take.
    """
    if "blocks" in options:
        raise TypeError("full_spectrum takes no blocks= (its one block is every parameter); "
                        "use blockwise_spectrum(..., blocks=...) for blocks")
    return blockwise_spectrum(model, loss_fn, data, blocks="full", **options)["full"]
