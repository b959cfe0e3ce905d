"""The Hessian-vector product modes and ``auto``'s rules for choosing among them.

:class:`nets.engine.hvp.BlockHVP` evaluates the block products ``[∇²L]_ll v_l`` in one of four
modes, :data:`MODES` (the functions of one batch are :mod:`nets.engine.products`'):

* ``"forward"``: forward-over-reverse, ``jvp(grad(ℓ))`` ``vmap``-ed over zero-padded tangents;
* ``"reverse"``: reverse-over-reverse from a kept gradient graph, over zero-padded tangents;
* ``"reverse-block"``: reverse-over-reverse restricted to each block (no padding);
* ``"reverse-bundle"``: the same, a bundle of consecutive blocks at a time.

``"auto"`` times the modes that may win on the first batch and keeps the fastest. This module
holds what that choice rests on and runs no model: which modes are tried (:func:`auto_skip`,
with the measured thresholds it cites), how bundles are sized (:func:`bundle_blocks`), the
check that the modes' products agree (:func:`check_agreement`, to the round-off of the precision
the model computes in, :func:`compute_dtype`) and the compile options of
the forward-over-reverse product (:func:`check_compile`, :func:`compile_options`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from nets.engine.finite import all_finite

__all__ = ["BUNDLE_ON_CPU", "BUNDLE_ROWS", "COMPILE_RECOMPILE_LIMIT", "FORWARD_MIN_TANGENTS",
           "FORWARD_MIN_TANGENTS_CPU", "MODES", "ZERO_PADDED_MAX_BLOCKS", "auto_skip",
           "bundle_blocks", "check_agreement", "check_compile", "compile_options",
           "compute_dtype", "forward_min_tangents"]

#: Ways to evaluate Hessian-vector products (module docstring).
MODES = ("auto", "forward", "reverse", "reverse-block", "reverse-bundle")

#: ``auto`` tries forward-over-reverse on an accelerator only from this many stacked tangents
#: on. Measured on an NVIDIA H200 on the GPT-2-small-sized model
#: (``benchmarks/results/modes-gpu.md``, ``bench_modes.py --device cuda``, run by
#: ``make gpu-check``): below it forward-over-reverse is the slower product, warm and first
#: call alike; from it on the two are close and either may win, so the calibration decides
#: (the same rule as :data:`FORWARD_MIN_TANGENTS_CPU`'s). One model only: the others of
#: ``modes.md`` were not measured on the GPU.
FORWARD_MIN_TANGENTS = 8

#: ... and on a CPU only from this many: below it forward-over-reverse is the slower warm
#: product on every model of ``benchmarks/results/modes.md`` (from it on the two are close,
#: either may win: the calibration decides), and its first call costs several warm calls
#: (``torch.func``'s set-up, the allocator's growth to the stacked tangents), which a run
#: that then keeps the double backward would pay for nothing.
FORWARD_MIN_TANGENTS_CPU = 32


def forward_min_tangents(device: torch.device) -> int:
    """The fewest stacked tangents from which ``auto`` tries forward-over-reverse on
    ``device``: :data:`FORWARD_MIN_TANGENTS_CPU` on a CPU, else :data:`FORWARD_MIN_TANGENTS`.

    Args:
        device: Where the products run.

    Returns:
        The threshold ``T``: ``auto`` times forward-over-reverse (``vmap`` over ``jvp`` of the
        gradient, ``∇²ℓ V`` for ``T`` stacked tangents ``V``) only when a call has at least
        ``T`` tangents.
    """
    return FORWARD_MIN_TANGENTS_CPU if device.type == "cpu" else FORWARD_MIN_TANGENTS

#: ``"reverse-bundle"`` bundles consecutive blocks so that one double backward carries about
#: this many rows (tangents): :func:`bundle_blocks`. One block's double backward with one or a
#: few rows is mostly the autograd engine's walk of the graph, which a bundle shares; with many
#: rows the bundle's zero-padded cross terms cost more than the walks it saves. The size was
#: chosen on the CPU from bundles of 2, 4 and 8 blocks at 1, 3 and 10 probes on the benchmark
#: models (not committed); ``benchmarks/results/floor.md`` times this rule's bundles
#: (``bundled(P)``) against one block at a time (``blocks(P)``). Not measured on a GPU.
BUNDLE_ROWS = 6

#: Whether ``"auto"`` tries ``"reverse-bundle"`` on a CPU. It does not: on the blockwise cells of
#: ``benchmarks/results/ab-bundle.md`` (``auto`` trying it, against the code before it) the runs
#: were from within noise to a fifth faster, and the peak rise up to twice as high (a bundle's
#: double backward holds its rows' buffers at once), against a memory target already missed at
#: the default budget. Forced (``mode="reverse-bundle"``) it runs on a CPU; on an accelerator
#: ``"auto"`` tries it, where batching rows is what the hardware is for. On the GPU check's
#: cell (``benchmarks/results/peers-gpu.json``'s ``calibration_modes``, an NVIDIA H200) the
#: zero-padded ``"reverse"`` beat it and one block at a time both, at the default budget.
BUNDLE_ON_CPU = False


def bundle_blocks(tangents: int, chunk_size: int | None = None) -> int:
    """Blocks per bundle of ``"reverse-bundle"`` for ``tangents`` stacked tangents per block:
    about :data:`BUNDLE_ROWS` rows per double backward, and no more than ``chunk_size``.

    Args:
        tangents: Tangents (rows) per block in a call (probes in lockstep).
        chunk_size: Rows per batched backward, or ``None`` (no bound).

    Returns:
        ``max(1, round(BUNDLE_ROWS / tangents))``, lowered to ``chunk_size // tangents`` where
        the bundle's rows would exceed ``chunk_size`` (at least 1: one block per bundle is
        ``"reverse-block"``'s product).
    """
    size = max(1, round(BUNDLE_ROWS / max(tangents, 1)))
    if chunk_size is not None and size * tangents > chunk_size:
        size = max(1, chunk_size // max(tangents, 1))
    return size


#: ``auto`` tries the zero-padded modes (``forward``, ``reverse``) only below this many blocks:
#: a zero-padded product costs a full-space product per tangent, so ``L`` blocks cost ``L``
#: full products per probe (and ``L`` padded copies of the parameters in memory), where the
#: block-restricted double backward only visits the part of the graph between each block's
#: gradient and its parameters.
ZERO_PADDED_MAX_BLOCKS = 8


def auto_skip(mode: str, *, device: torch.device, blocks: int, unpadded: bool, tangents: int,
              chunk_size: int | None = None, per_bundle: int | None = None) -> str | None:
    """Why ``auto``'s calibration does not try ``mode``, or ``None`` where it does.

    The rules (:class:`nets.engine.hvp.BlockHVP`, ``"auto"``): ``"reverse-bundle"`` only where
    a bundle holds several blocks and not on a CPU (:data:`BUNDLE_ON_CPU`); the zero-padded
    modes only below :data:`ZERO_PADDED_MAX_BLOCKS` blocks; forward-over-reverse only from
    :func:`forward_min_tangents` tangents per ``vmap`` on; the zero-padded double backward not
    with one tangent per product, nor where every block is whole tensors (its product is then
    ``"reverse-block"``'s). A rule whose input is not known yet (``chunk_size``,
    ``per_bundle``: before the first call has planned) does not skip: the plan, which must
    allow for every mode that may run, errs towards trying.

    Args:
        mode: A mode of :data:`MODES` other than ``"auto"``.
        device: Where the products run.
        blocks: Blocks of the operator (also when a call runs a group of them).
        unpadded: One block of whole tensors (a full spectrum): nothing to pad.
        tangents: Tangents the call stacks over all its blocks.
        chunk_size: Tangents per product (``None``: not planned yet).
        per_bundle: Blocks per ``"reverse-bundle"`` bundle (``None``: not known yet).

    Returns:
        The reason, for ``info()["calibration"]["skipped"]``, or ``None``.
    """
    stacked = tangents if chunk_size is None else min(tangents, chunk_size)
    if mode == "reverse-bundle":
        if blocks < 2:
            return "one block: nothing to bundle"
        if per_bundle is not None and per_bundle < 2:
            return "one block per bundle: the same product as reverse-block"
        if device.type == "cpu" and not BUNDLE_ON_CPU:
            return ("not tried on a CPU (BUNDLE_ON_CPU): at most a little faster there, for a "
                    "higher peak")
        return None
    least = forward_min_tangents(device)
    if mode == "forward" and stacked < least:
        return (f"{tangents} < {least} tangents on {device.type}" if stacked == tangents else
                f"{stacked} tangents per product (chunk_size {chunk_size}) < {least} on "
                f"{device.type}")
    if mode in ("reverse", "forward") and blocks >= ZERO_PADDED_MAX_BLOCKS:
        return f"{blocks} >= {ZERO_PADDED_MAX_BLOCKS} blocks"
    if mode == "reverse" and chunk_size is not None and stacked == 1:
        return ("one tangent per product (chunk_size 1): the zero-padded product does the "
                "block-restricted one's work and more, with no batching to gain")
    if mode == "reverse" and unpadded:
        return "every block is whole tensors: the same product as reverse-block"
    return None


#: How many compiled variants of the forward-over-reverse product (one per model object, loss
#: and batch or chunk shape) one process keeps under ``compile=True`` before torch runs the
#: product uncompiled. torch's own limit, 8 per function, was reached by the ninth small
#: model compiled in one process, after which the products quietly ran uncompiled (slower than
#: the default double backward); passed to ``torch.compile`` where it takes the option
#: (torch 2.13), else torch's limit holds (docs/engine.md, ``torch.compile``).
COMPILE_RECOMPILE_LIMIT = 64


def compile_options() -> dict[str, int]:
    """Keyword options for ``torch.compile`` of the forward-over-reverse product.

    Returns:
        ``{"recompile_limit": COMPILE_RECOMPILE_LIMIT}`` where this torch's ``torch.compile``
        takes that option (:data:`COMPILE_RECOMPILE_LIMIT`), else ``{}`` (torch's own limit).
    """
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        return {"recompile_limit": COMPILE_RECOMPILE_LIMIT}
    return {}


def check_compile(compile: object, mode: str) -> str:
    """The product mode to run with ``compile``, validated.

    ``torch.compile`` has no double backward, so only forward-over-reverse compiles: with
    ``compile=True`` the mode must be ``"auto"`` or ``"forward"`` and becomes ``"forward"``.

    Args:
        compile: Whether to compile the product (a bool).
        mode: The mode asked for, one of :data:`MODES`.

    Returns:
        ``"forward"`` where ``compile``, else ``mode``.

    Raises:
        TypeError: ``compile`` is not a bool.
        ValueError: ``compile`` with a double-backward mode.
        RuntimeError: ``compile`` where ``torch.compile`` is not supported.
    """
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {type(compile).__name__}")
    if not compile:
        return mode
    if mode not in ("auto", "forward"):
        raise ValueError(f"compile=True compiles the forward-over-reverse product only "
                         f"(torch.compile has no double backward); got mode={mode!r}: pass "
                         "mode='forward' or 'auto', or compile=False")
    if not torch._dynamo.is_dynamo_supported():
        raise RuntimeError("compile=True: torch.compile is not supported on this platform or "
                           "Python version; pass compile=False")
    return "forward"


def compute_dtype(dtype: torch.dtype, saved: Iterable[torch.dtype] = ()) -> torch.dtype:
    """The precision a model's products compute in: the coarsest of its parameters' ``dtype``
    and the floating dtypes its gradient graph saved (``saved``,
    :attr:`nets.engine.memory.GraphSaved.float_dtypes`).

    Many models compute part of their function below their parameters' precision: Hugging
    Face's T5 and Llama norms cast to float32 (``hidden_states.to(torch.float32)``), T5's
    attention takes its softmax in float32, autocast runs matrix products in 16 bits. The
    tensors these operations save for backward have that dtype, and two exact products of such
    a model agree only to its round-off, not to the parameters'.

    Args:
        dtype: The parameters' (and products') dtype.
        saved: Floating dtypes seen in the graph.

    Returns:
        The dtype of largest machine epsilon among ``dtype`` and ``saved``.
    """
    return max((dtype, *saved), key=lambda d: torch.finfo(d).eps)


def _precision_note(dtype: torch.dtype, coarse: torch.dtype) -> str:
    if coarse == dtype:
        return ""
    return (f", the tolerance of {str(coarse).removeprefix('torch.')}, in which part of the "
            "model computes")


def check_agreement(results: Mapping[str, Sequence[torch.Tensor | None]], choice: str,
                    names: Sequence[str], vectors: Sequence[torch.Tensor | None],
                    dtype: torch.dtype, computed: torch.dtype | None = None) -> None:
    """Check that every mode's block products equal the chosen mode's to round-off.

    Round-off of a product is relative to the Hessian's scale, not to the block's own products
    (a block whose Hessian is 0, like an attention key bias, is all round-off). Block ``l`` of
    mode ``m`` passes where

        ``max |P_l^m − P_l^c| ≤ 10 √ε · max(max|P_l^c|, max|P_l^m|, 10⁻² T, √ε · max|V|)``

    with ``c`` the chosen mode, ``T = max_l max|P_l^c|`` (the largest block's products) and
    ``V`` the tangents (a block alone, as in ``exact_blockwise_eigenvalues``, has no other
    scale: products below ``√ε · max|V|`` in both modes are round-off too), ``ε`` the dtype's
    machine epsilon.

    Args:
        results: Each mode's products, one ``(m_l, d_l)`` stack (or ``None``) per block.
        choice: The mode the others are compared with (a key of ``results``).
        names: The blocks' names, for the error message.
        vectors: The tangents the products were applied to (``None`` where skipped).
        dtype: The products' dtype.
        computed: The coarsest precision the model computes in (``None``: ``dtype``).

    Raises:
        ValueError: A product is not finite, or a mode disagrees with ``choice`` on a block
            (naming both modes, the block and the relative difference, and the fix).
    """
    coarse = compute_dtype(dtype, () if computed is None else (computed,))
    eps = float(np.sqrt(torch.finfo(coarse).eps))
    tol = 10 * eps
    top = max((float(r.abs().max()) for r in results[choice] if r is not None), default=0.0)
    floor = eps * max(float(v.abs().max()) for v in vectors if v is not None)
    for mode, res in results.items():
        for name, r, ref in zip(names, res, results[choice], strict=True):
            if ref is None:
                continue
            if not (all_finite(r) and all_finite(ref)):
                raise ValueError(f"non-finite Hessian-vector product in block {name!r}")
            scale = max(float(ref.abs().max()), float(r.abs().max()), 1e-2 * top, floor,
                        torch.finfo(dtype).tiny)
            diff = float((r - ref).abs().max()) / scale
            if not diff <= tol:
                raise ValueError(
                    f"Hessian-vector products disagree between modes {choice!r} and {mode!r} "
                    f"in block {name!r} (relative difference {diff:.1e} > {tol:.0e}"
                    f"{_precision_note(dtype, coarse)}): the "
                    "model differentiates differently in forward and reverse mode (e.g. a "
                    "custom autograd.Function whose jvp and backward disagree, or an "
                    "operation whose backward is not its derivative); pass mode= to choose "
                    "the product you trust")
