"""Lanczos with full (or partial) reorthogonalization, on many symmetric operators in lockstep.

For a symmetric ``A`` (``d × d``) and a unit start ``q_1``, ``k`` Lanczos steps build an
orthonormal basis ``Q_k`` of the Krylov space ``span{q_1, A q_1, …, A^{k-1} q_1}`` and the
tridiagonal ``T_k = Q_kᵀ A Q_k`` with diagonal ``α_1..α_k`` and off-diagonal ``β_1..β_{k-1}``:

    w = A q_j − α_j q_j − β_{j-1} q_{j-1},   α_j = q_jᵀ A q_j,   β_j = ‖w‖,   q_{j+1} = w / β_j.

In floating point the ``q_j`` lose orthogonality and ghost copies of converged eigenvalues
appear; here every new ``w`` is orthogonalized against all previous ``q_i`` by classical
Gram–Schmidt, a second time when the first pass cancelled much of ``w`` (the DGKS criterion,
:data:`REORTH_ETA`), which keeps ``Q_k`` orthonormal to working precision at the cost of one
pass on most steps instead of two.

If ``β_j`` falls below ``tol · max(|α|, |β|)`` the Krylov space is invariant: the run stops
cleanly at ``k = j`` steps (no division by a tiny number). At most ``d`` steps are taken.

Many operators (blocks) and many start vectors (probes) advance together: ``matvec`` receives
one stack of vectors per operator, so a single call can batch all HVPs of one step. The vectors
passed to ``matvec`` have the dtype of the start vectors, and the basis holds exactly those
vectors, so storing it wider would add no digit (``k`` steps on ``m`` probes of dimension ``d``
hold ``m·k·d`` numbers: half the bytes of a float64 copy for a float32 model). The recurrence
and ``α``, ``β`` run in float64, in one float64 work stack ``w`` and one chunk buffer shared by
all the operators of a run (they advance one at a time). The reorthogonalization of a float64
basis runs in float64, read in chunks of at most ``chunk_bytes`` (by default
:func:`chunk_bytes_for` the device; one probe's rows at a time once a whole step's would not
fit); that of a float32 basis runs in float32 where the device computes float32 products in
IEEE float32 (:func:`narrow_passes`), read as stored, the correction subtracted from the
float64 ``w`` (:func:`_remove_narrow` says why that loses nothing: the next vector is stored
in float32 anyway), else in float64 like the others. Where every operator's whole basis in
float64 fits ``chunk_bytes`` together, the bases are stored in float64 instead
(:func:`wide_bases`): the same values (each vector widened exactly, once, when it is stored),
read with no copy, so the memory stays within the stored bases and ``chunk_bytes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nets.engine.finite import all_finite

__all__ = ["NOISE_SAFETY", "REORTH_CHUNK_BYTES", "REORTH_CHUNK_BYTES_ACCELERATOR",
           "REORTH_ETA", "REORTH_MODES", "LanczosRun", "check_reorth", "chunk_bytes_for",
           "lanczos", "narrow_passes", "wide_bases"]

#: Largest float64 piece of the basis that reorthogonalization reads at a time on a CPU
#: (bytes). While a step's whole float64 basis (all probes) fits, it is projected out with two
#: batched products; beyond, one probe's rows at a time in chunks of this size (block
#: Gram–Schmidt), which keeps the chunk in cache between its two products. (A float32 basis
#: is projected in float32, not in chunks: :func:`narrow_passes`.) ``benchmarks/bench_ab.py``
#: measured this against the batched products over a float64 basis
#: (``benchmarks/results/ab.md``), ``benchmarks/bench_reorth.py`` against other chunk sizes
#: (``benchmarks/results/reorth.md``, ``make bench-reorth``: on float64 bases, now read with
#: no copy, larger chunks ran somewhat faster there; this size is kept because it also bounds
#: the bases stored in float64, :func:`wide_bases`, and the chunk buffer's memory).
REORTH_CHUNK_BYTES = 4 << 20
#: The same on other devices, where no cache is to be kept and each chunk costs kernel
#: launches: larger, so that a chunk's products are long against a launch. Measured on an
#: NVIDIA H200 (``benchmarks/results/reorth-gpu.md``, ``bench_reorth.py --device cuda``, run by
#: ``make gpu-check``): the fastest of the sizes tried there, the smaller ones and the next
#: larger one slower.
REORTH_CHUNK_BYTES_ACCELERATOR = 256 << 20


@dataclass(frozen=True)
class LanczosRun:
    """Tridiagonals of several Lanczos runs on one operator (one row per start vector).

    Attributes:
        alpha: ``(m, steps)`` float64 diagonals; entries past ``n_steps`` are 0.
        beta: ``(m, steps - 1)`` float64 off-diagonals; entries past ``n_steps - 1`` are 0.
        n_steps: ``(m,)`` number of steps actually taken (``< steps`` after an invariant
            subspace was found or when ``steps`` exceeds the dimension).
        reorthogonalized: ``(m,)`` number of steps whose new vector was orthogonalized against
            the whole basis (every step but the last under ``reorth="full"``; the probes of one
            operator advance together, so they share the count), or ``None`` where unknown.
        asymmetry: ``(m,)`` the products' largest measured asymmetry over the run,
            ``max_j |q_{j−1}ᵀ A q_j − β_{j−1}|`` (in ``A``'s units; 0 for a run of one step):
            zero for exact symmetric products, their roundoff in practice, far above the
            vectors' roundoff where a product computes in lower precision than its vectors;
            ``None`` where unknown.
    """

    alpha: np.ndarray
    beta: np.ndarray
    n_steps: np.ndarray
    reorthogonalized: np.ndarray | None = None
    asymmetry: np.ndarray | None = None


#: Reorthogonalize a second time when one pass leaves less than this fraction of the vector's
#: norm (Daniel, Gragg, Kaufman and Stewart 1976; "twice is enough", Parlett 1980 §6.9).
REORTH_ETA = 1 / math.sqrt(2)

#: The reorthogonalization strategies :func:`lanczos` knows.
REORTH_MODES = ("full", "partial")

#: Under ``reorth="partial"``, the measured asymmetry of the products (see :class:`_Omega`)
#: enters the estimates' noise term multiplied by this safety factor.
NOISE_SAFETY = 10.0


def lanczos(
    matvec: Callable[[list[torch.Tensor | None]], list[torch.Tensor | None]],
    starts: Sequence[torch.Tensor],
    steps: int,
    *,
    tol: float | None = None,
    callback: Callable[[int, int], None] | None = None,
    chunk_bytes: int | None = None,
    reorth: str = "full",
) -> list[LanczosRun]:
    """Run Lanczos on several operators in lockstep.

    Each step applies the three-term recurrence, then orthogonalizes ``w`` against the whole
    basis by classical Gram–Schmidt, ``w ← w − Q (Qᵀ w)``, and does so a second time only when
    the first pass left less than ``1/√2`` of ``‖w‖`` (the DGKS criterion: otherwise one pass
    leaves ``w`` orthogonal to ``Q`` to working precision; two passes always do).

    ``reorth="partial"`` does that pass only where it is needed to keep the basis
    *semi-orthogonal*, ``|q_iᵀ q_k| ≤ √u`` for the unit roundoff ``u`` of the vectors' dtype
    (partial reorthogonalization, Simon 1984): the overlaps ``ω_{j+1,k} ≈ q_{j+1}ᵀ q_k`` are
    estimated by Simon's recurrence from ``α`` and ``β`` alone,

        β_j ω_{j+1,k} = β_k ω_{j,k+1} + (α_k − α_j) ω_{j,k} + β_{k−1} ω_{j,k−1}
                        − β_{j−1} ω_{j−1,k} ± θ_j,

    with the noise ``θ_j`` the larger of ``u‖T_j‖`` and (times :data:`NOISE_SAFETY`) the
    products' measured asymmetry ``|q_{j−1}ᵀ A q_j − β_{j−1}|`` (which sees a product computed
    in lower precision than its vectors, e.g. float32 inside a float64 model). When an estimate
    passes ``√u``, the new vector and the next one are orthogonalized against the whole basis
    and the estimates reset to ``u``. Semi-orthogonality makes ``T_k`` the projection of ``A``
    onto an orthonormal basis of a space near the Krylov space up to ``O(u‖A‖)`` (Simon 1984,
    Theorem 4), so the Ritz values and the quadrature's nodes and weights agree with full
    reorthogonalization to about ``u‖A‖``, while most steps skip the passes over the basis
    (``LanczosRun.reorthogonalized`` counts those that did not).

    Args:
        matvec: Maps a list (one entry per operator) of ``(m_l, d_l)`` stacks, or ``None`` for
            operators that are finished, to the list of products ``A_l V_l``.
        starts: One ``(m_l, d_l)`` stack of start vectors per operator (any nonzero norm).
        steps: Number of Lanczos steps (capped at ``d_l`` for each operator).
        tol: Relative breakdown threshold; default ``sqrt(eps)`` of the vectors' dtype.
        callback: Called as ``callback(step, steps)`` after each step.
        chunk_bytes: Most bytes of float64 basis rows read at a time (the chunk buffer's size;
            at least one row is read; a basis projected in float32, :func:`narrow_passes`, is
            read as stored, the buffer then holding the rows of the recurrence and ``w`` in
            float32). Default :func:`chunk_bytes_for` the vectors' device
            (:data:`REORTH_CHUNK_BYTES` on a CPU). A memory budget bounds it
            (:func:`nets.engine.spectrum.operator_spectra`); the tridiagonals agree to
            round-off whatever its value.
        reorth: ``"full"`` (every step, the default) or ``"partial"`` (only where the
            estimated loss of orthogonality needs it, see above).

    Returns:
        One :class:`LanczosRun` per operator.

    Raises:
        ValueError: ``steps < 1`` or too large to store, a zero or non-finite start vector,
            ``tol`` outside ``[0, 1)``, ``chunk_bytes`` not positive, an unknown ``reorth``, or
            ``matvec`` returning products of the wrong shape or non-finite ones (or
            coefficients beyond float64's range).
        TypeError: ``matvec`` or ``callback`` not callable, ``starts`` not a list of real
            floating ``(m, d)`` tensors, ``tol`` not a number.
    """
    steps, tol = _check_arguments(matvec, starts, steps, tol, callback)
    chunk_bytes = _check_chunk_bytes(chunk_bytes, starts)
    check_reorth(reorth)
    wide = bool(starts) and wide_bases([tuple(s.shape) for s in starts], steps,
                                       starts[0].dtype, chunk_bytes)
    runs = [_Run(s, steps, partial=reorth == "partial", wide=wide) for s in starts]
    scratch = _Scratch(runs, chunk_bytes)
    for j in range(steps):
        live = [r.live(j) for r in runs]
        if not any(live):
            break
        out = _checked_products(matvec([r.q if ok else None for r, ok in zip(runs, live,
                                                                             strict=True)]),
                                [r.q for r in runs], live)
        for i, r in enumerate(runs):
            if live[i]:
                r.advance(j, out[i], tol, i, scratch)
        if callback is not None:
            callback(j + 1, steps)
    return [LanczosRun(r.alpha, r.beta, r.n_steps, np.full(len(r.n_steps), r.reorthogonalized),
                       r.asymmetry) for r in runs]


class _Scratch:
    """Float64 buffers shared by the operators of one :func:`lanczos` call.

    The operators advance one at a time, so one work stack (``w``, as large as the largest
    operator's ``m × d``) and one chunk buffer (the basis read in float64: the largest whole
    basis, but at most ``chunk_bytes``' worth or one row; a basis projected in its own dtype
    reads only its rows of the recurrence, one per probe, and ``w`` in that dtype,
    :meth:`narrow`) serve them all. Each is allocated on first use at that size and reused by
    every step (the products are memory-bound: a fresh ``m × d`` float64 allocation per
    operation cost as much as the operation).
    """

    def __init__(self, runs: Sequence[_Run], chunk_bytes: int) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self.chunk_bytes = chunk_bytes
        shapes = [r.basis.shape for r in runs]
        whole = max((m * (1 if r.narrow else k) * d
                     for r, (m, k, d) in zip(runs, shapes, strict=True)), default=0)
        row = max((d for _, _, d in shapes), default=0)
        self._sizes = {"work": max((m * d for m, _, d in shapes), default=0),
                       "chunk": min(whole, max(chunk_bytes // 8, row))}

    def get(self, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """A float64 tensor of ``shape`` on ``device`` (uninitialized, reused across calls)."""
        numel = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.device != device:
            buf = torch.empty(max(numel, self._sizes[name]), dtype=torch.float64, device=device)
            self._buffers[name] = buf
        return buf[:numel].view(shape)

    def narrow(self, shape: tuple[int, ...], dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
        """A tensor of ``shape`` and ``dtype`` (narrower than float64) in the chunk buffer's
        memory (uninitialized): the room of ``⌈numel · itemsize / 8⌉`` float64 numbers."""
        numel = math.prod(shape)
        room = -(-numel * dtype.itemsize // 8)
        return self.get("chunk", (room,), device).view(dtype)[:numel].view(shape)


class _Run:
    """One operator's Lanczos state: its basis and the tridiagonals.

    The basis ``(m, k, d)`` keeps each probe's vectors contiguous (the projections read one
    probe's rows, or all probes' as a batched product, with no transposed copy). It holds
    exactly the vectors passed to ``matvec``, stored in the start vectors' dtype, or with
    ``wide`` in float64 (the same values); the recurrence is float64 (:class:`_Scratch`), the
    passes over the basis in its dtype (:func:`_project_out`).
    """

    def __init__(self, start: torch.Tensor, steps: int, *, partial: bool = False,
                 wide: bool = False) -> None:
        m, d = start.shape
        self.dtype = start.dtype
        self.cap = min(steps, d)
        self.alpha = np.zeros((m, steps))
        self.beta = np.zeros((m, max(steps - 1, 0)))
        self.n_steps = np.zeros(m, dtype=np.int64)
        f64 = dict(dtype=torch.float64, device=start.device)
        self.active = torch.ones(m, dtype=torch.bool, device=start.device)
        self.scale = torch.zeros(m, **f64)
        self.prev_beta = torch.zeros(m, **f64)
        # every row j of the basis is written before a step reads it: no zero fill needed
        self.basis = torch.empty((m, self.cap, d), dtype=torch.float64 if wide else start.dtype,
                                 device=start.device)
        self.narrow = narrow_passes(self.basis.dtype, start.device)
        self.q = _unit(start)
        self.basis[:, 0] = self.q
        self.reorthogonalized = 0
        self.asymmetry = np.zeros(m)
        self.omega = _Omega(m, self.cap, start.dtype) if partial else None

    def live(self, j: int) -> bool:
        """Whether step ``j`` has work: within the cap and some probe still running."""
        return j < self.cap and bool(self.active.any())

    def advance(self, j: int, product: torch.Tensor, tol: float, i: int,
                scratch: _Scratch) -> None:
        """Step ``j`` from the product ``A q_j``: ``α_j``, ``β_j`` and the next vector."""
        m, _, d = self.basis.shape
        w = scratch.get("work", (m, d), product.device)
        w.copy_(product)
        a = _remove(self.basis[:, j:j + 1], w, scratch)[:, 0]  # α_j = q_jᵀ A q_j
        asymmetry = None
        if j > 0:  # β_{j-1} q_{j-1}
            # q_{j-1}ᵀ A q_j − β_{j-1}: zero for a symmetric A but for the products' roundoff
            asymmetry = (_dots(self.basis[:, j - 1], w, scratch) - self.prev_beta).abs()
            _remove(self.basis[:, j - 1:j], w, scratch, self.prev_beta[:, None])
        before = torch.linalg.vector_norm(w, dim=-1)
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(before).all())):
            raise _non_finite(product, i, j)
        act = self.active
        act_np = act.cpu().numpy()
        a_np = a.cpu().numpy()
        asym_np = None if asymmetry is None else asymmetry.cpu().numpy()
        if asym_np is not None:
            self.asymmetry[act_np] = np.maximum(self.asymmetry, asym_np)[act_np]
        # the last step stores no vector and no β: its w needs no pass
        last = j + 1 >= self.cap
        b = (self._orthogonalize(j, w, before, scratch)
             if not last and self._needs_pass(j, a_np, before, asym_np, act_np)
             else before)
        self.alpha[act_np, j] = a_np[act_np]
        self.n_steps[act_np] = j + 1
        self.scale = torch.maximum(self.scale, torch.maximum(a.abs(), b))
        if last:
            self.active = torch.zeros_like(act)
            return
        cont = act & (b > tol * self.scale) & (self.scale != 0)
        cont_np = cont.cpu().numpy()
        self.beta[cont_np, j] = b.cpu().numpy()[cont_np]
        w.div_(torch.where(cont, b, torch.ones_like(b))[:, None])
        if not bool(cont.all()):
            w[~cont] = 0
        self.q = w.to(self.dtype, copy=True)  # the vector matvec gets; the basis keeps it
        self.basis[:, j + 1] = self.q
        self.prev_beta = torch.where(cont, b, torch.zeros_like(b))
        self.active = cont

    def _needs_pass(self, j: int, a: np.ndarray, before: torch.Tensor,
                    asymmetry: np.ndarray | None, active: np.ndarray) -> bool:
        """Whether ``w`` needs a pass over the basis: always under ``reorth="full"``, else as
        :class:`_Omega` estimates from this run's ``α_0..α_{j−1}``, ``β_0..β_{j−1}`` and the
        step's ``α_j``, ``‖w‖``."""
        return self.omega is None or self.omega.needs_pass(
            j, self.alpha[:, :j], self.beta[:, :j], a, before.cpu().numpy(), asymmetry, active)

    def _orthogonalize(self, j: int, w: torch.Tensor, before: torch.Tensor,
                       scratch: _Scratch) -> torch.Tensor:
        """Orthogonalize ``w`` against the basis (a second pass by the DGKS criterion);
        returns ``β_j = ‖w‖``."""
        b = _project_out(self.basis, j + 1, w, scratch, narrow=self.narrow)
        if bool((b < REORTH_ETA * before).any()):
            b = _project_out(self.basis, j + 1, w, scratch, narrow=self.narrow)
        self.reorthogonalized += 1
        return b


class _Omega:
    """Estimated overlaps ``ω_{j,k} ≈ q_jᵀ q_k`` of one run's basis (``reorth="partial"``).

    Holds the last two rows of Simon's recurrence (see :func:`lanczos`) per probe, the running
    bound ``‖T_j‖ ≤ max_j (|α_j| + β_j + β_{j−1})`` and the largest measured asymmetry of the
    products, and decides each step whether the new vector needs a pass over the basis: when
    an estimate of an active probe passes ``√u``, at the step after such a pass (Simon's rule:
    the two vectors that carry the loss are both orthogonalized). The coefficients are the
    run's own (:class:`_Run`'s ``alpha`` and ``beta``, passed in); only an active probe's rows
    decide, as a stopped probe's ``β`` is 0.
    """

    def __init__(self, m: int, cap: int, dtype: torch.dtype) -> None:
        self.u = torch.finfo(dtype).eps / 2
        self.level = math.sqrt(self.u)
        self.now = np.zeros((m, cap + 1))  # ω_{j,·}
        self.now[:, 0] = 1
        self.before = np.zeros((m, cap + 1))  # ω_{j−1,·}
        self.norm = np.zeros(m)
        self.noise = np.zeros(m)
        self.again = False  # orthogonalize the next vector too

    def needs_pass(self, j: int, alphas: np.ndarray, betas: np.ndarray, a: np.ndarray,
                   b: np.ndarray, asymmetry: np.ndarray | None, active: np.ndarray) -> bool:
        """Estimate ``ω_{j+1,·}`` from ``α_0..α_{j−1}`` and ``β_0..β_{j−1}`` (``(m, j)``
        each), ``α_j`` and ``β_j = ‖w‖`` (before any pass) and say whether ``w`` needs a pass
        over the basis; the rows move on either way (reset to ``u`` after a pass)."""
        b_prev = betas[:, j - 1] if j > 0 else np.zeros_like(b)
        self.norm = np.maximum(self.norm, np.abs(a) + b + b_prev)
        if asymmetry is not None:
            self.noise = np.maximum(self.noise, asymmetry)
        theta = self.u * self.norm + NOISE_SAFETY * self.noise
        with np.errstate(divide="ignore", invalid="ignore"):
            row = self._estimate(j, alphas, betas, a, b, b_prev, theta)
        need = self.again or bool((~(np.abs(row[active]) <= self.level)).any())
        self.again = need and not self.again
        self._advance(j, np.full_like(row, self.u) if need else row)
        return need

    def _estimate(self, j: int, al: np.ndarray, be: np.ndarray, a: np.ndarray, b: np.ndarray,
                  b_prev: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``ω_{j+1,0..j}`` by Simon's recurrence, ``ω_{j+1,j} = u‖T_j‖/β_j`` (local)."""
        m = len(a)
        row = np.empty((m, j + 1))
        if j > 0:
            W, Wp = self.now, self.before
            t = be * W[:, 1:j + 1] + (al - a[:, None]) * W[:, :j] - b_prev[:, None] * Wp[:, :j]
            t[:, 1:] += be[:, :j - 1] * W[:, :j - 1]
            t += np.where(t < 0, -theta[:, None], theta[:, None])
            row[:, :j] = t / b[:, None]
        row[:, j] = self.u * self.norm / b
        return row

    def _advance(self, j: int, row: np.ndarray) -> None:
        """Make ``row`` (``ω_{j+1,0..j}``) the current row."""
        self.before, self.now = self.now, self.before
        self.now[:, :j + 1] = row
        self.now[:, j + 1] = 1


def _dots(rows: torch.Tensor, w: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """``rows[p]ᵀ w[p]`` per probe in float64 (``rows`` ``(m, d)``, read through the chunk
    buffer all at once where they fit it, else one at a time; ``w`` the ``(m, d)`` float64
    work stack)."""
    m, d = rows.shape
    if rows.dtype == torch.float64 or m * d * 8 <= scratch.chunk_bytes:
        return torch.linalg.vecdot(_wide(rows, scratch), w)
    return torch.stack([torch.dot(_wide(rows[p:p + 1], scratch)[0], w[p]) for p in range(m)])


def _unit(s: torch.Tensor) -> torch.Tensor:
    """The rows of ``s`` scaled to unit norm, in ``s``'s dtype (safe near over/underflow)."""
    s64 = s.double()
    norms = torch.linalg.vector_norm(s64, dim=-1)
    unit = s64 / norms[:, None]
    odd = ~torch.isfinite(norms) | (norms < 1e-150)
    if odd.any():  # entries near 1e308 overflow the sum of squares, tiny ones underflow it
        scaled = s64 / s64.abs().amax(-1)[:, None]
        scaled = scaled / torch.linalg.vector_norm(scaled, dim=-1)[:, None]
        unit = torch.where(odd[:, None], scaled, unit)
    return unit.to(s.dtype)


def _project_out(basis: torch.Tensor, n: int, w: torch.Tensor, scratch: _Scratch, *,
                 narrow: bool = False) -> torch.Tensor:
    """One Gram–Schmidt pass against each probe's first ``n`` basis rows: with ``narrow`` in
    the basis' own dtype (:func:`_remove_narrow`), else in float64 (:func:`_remove`); returns
    ``‖w‖`` per probe."""
    if narrow:
        _remove_narrow(basis[:, :n], w, scratch)
    else:
        _remove(basis[:, :n], w, scratch)
    return torch.linalg.vector_norm(w, dim=-1)


def narrow_passes(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :func:`lanczos` projects a basis of ``dtype`` on ``device`` out in that dtype
    (:func:`_remove_narrow`) rather than in float64: float32, where torch computes float32
    matrix products in IEEE float32 on that device (the CPU's or CUDA's ``fp32_precision``
    ``"ieee"``, or ``"none"`` with nothing set). Not where TF32 or bfloat16 products were
    allowed (``torch.set_float32_matmul_precision("high")``, ``allow_tf32``): their
    coefficients would carry a tenth of a percent of error, not float32's round-off. Nor for
    bfloat16 or float16 bases, nor on other devices (no setting to read): those are projected
    in float64.

    Args:
        dtype: The stored basis' dtype.
        device: Where it lives.
    """
    if dtype != torch.float32:
        return False
    backend = {"cpu": getattr(torch.backends, "mkldnn", None),
               "cuda": getattr(torch.backends, "cuda", None)}.get(device.type)
    precision = getattr(getattr(backend, "matmul", None), "fp32_precision", None)
    return precision in ("none", "ieee")


def _remove_narrow(Q: torch.Tensor, w: torch.Tensor, scratch: _Scratch) -> None:
    """``w ← w − Q (Qᵀ w)`` for each probe, the correction ``Q (Qᵀ w)`` computed in ``Q``'s
    dtype (narrower than float64) and subtracted from the float64 ``w``.

    ``Q`` is ``(m, n, d)``, read as stored (no float64 copy); ``w`` the ``(m, d)`` float64 work
    stack. ``w`` is read in ``Q``'s dtype into the chunk buffer (all probes at once where
    their float64 rows fit ``scratch.chunk_bytes``, else one probe at a time), which then
    receives the correction. Nothing is lost against float64 arithmetic: the coefficients
    ``Qᵀ w`` err by about the dtype's unit round-off ``u`` times ``‖w‖``, which leaves ``w``
    orthogonal to the basis to about ``u``, what storing the next vector in that dtype leaves
    of any orthogonality anyway; and the correction's own rounding, ``u`` times its size, is
    far below that, as the correction is small against ``w`` after the three-term recurrence
    (the parts along the older vectors that round-off left). Where it is not (a first pass
    that cancels most of ``w``, as for products far from symmetric), ``w`` keeps ``u`` times
    the cancelled part as error, where float64 passes would keep float64's round-off of it:
    the second pass (the DGKS criterion) removes what of it lies in the basis' span, not the
    rest. The products' measured asymmetry (``LanczosRun.asymmetry``) shows such products.
    """
    m, _, d = Q.shape
    if m * d * 8 <= scratch.chunk_bytes:
        t = scratch.narrow((m, d), Q.dtype, w.device).copy_(w)
        c = torch.bmm(Q, t.unsqueeze(-1))  # (m, n, 1): q_iᵀ w
        torch.bmm(c.transpose(1, 2), Q, out=t.unsqueeze(1))
        w.sub_(t)
        return
    for p in range(m):
        t = scratch.narrow((d,), Q.dtype, w.device).copy_(w[p])
        c = torch.mv(Q[p], t)
        torch.mv(Q[p].T, c, out=t)
        w[p].sub_(t)


def _remove(Q: torch.Tensor, w: torch.Tensor, scratch: _Scratch,
            coefficients: torch.Tensor | None = None) -> torch.Tensor:
    """``c = Qᵀ w`` (or the ``(m, n)`` ``coefficients`` given) and ``w ← w − Q c`` in place for
    each probe, in float64; returns ``c``.

    ``Q`` is ``(m, n, d)`` (``n`` basis rows of each of ``m`` probes, in their stored dtype, read
    in float64 through the chunk buffer unless float64 already), ``w`` the ``(m, d)`` float64
    work stack. While the float64 rows take at most ``scratch.chunk_bytes``, one classical
    Gram–Schmidt pass as two batched products. Beyond, each probe's rows in chunks of that size,
    each chunk's projection removed before the next is read (block Gram–Schmidt: the same
    subspace removed, as stable as the classical pass; the chunk stays in cache between its two
    products). ``c`` is then that of the chunks, each against the ``w`` it saw.
    """
    m, n, d = Q.shape
    size = scratch.chunk_bytes
    given = coefficients is not None
    if m * n * d * 8 <= size:
        Q = _wide(Q, scratch)
        c = coefficients[..., None] if given else torch.bmm(Q, w.unsqueeze(-1))  # q_iᵀ w
        w.unsqueeze(1).baddbmm_(c.transpose(1, 2), Q, alpha=-1)
        return c[..., 0]
    c = coefficients if given else torch.empty((m, n), dtype=torch.float64, device=w.device)
    rows = max(1, size // (8 * d))
    for p in range(m):
        wp = w[p]
        for s in range(0, n, rows):
            q = _wide(Q[p, s:s + rows], scratch)
            if not given:
                torch.mv(q, wp, out=c[p, s:s + rows])
            wp.addmv_(q.T, c[p, s:s + rows], alpha=-1)
    return c


def wide_bases(shapes: Sequence[tuple[int, int]], steps: int, dtype: torch.dtype,
               chunk_bytes: int) -> bool:
    """Whether :func:`lanczos` stores its bases in float64: vectors narrower than float64 whose
    bases (at most ``steps`` rows of each of ``m`` probes of dimension ``d`` per operator) take
    at most ``chunk_bytes`` together in float64.

    Such bases are read with no widening copy (one or two rows of the recurrence per step and
    operator otherwise), and their passes run in float64; their bytes stay below the stored
    bases' and ``chunk_bytes`` that the chunk buffer would take.

    Args:
        shapes: ``(m, d)`` of each operator's start stack.
        steps: The Lanczos steps asked for (each basis holds ``min(steps, d)`` rows).
        dtype: The vectors' dtype.
        chunk_bytes: The chunk buffer's bytes (:func:`lanczos`'s ``chunk_bytes``).
    """
    if dtype == torch.float64:
        return False
    return 8 * sum(m * min(steps, d) * d for m, d in shapes) <= chunk_bytes


def check_reorth(reorth: object) -> str:
    """``reorth`` if it names a strategy of :data:`REORTH_MODES`.

    Args:
        reorth: The reorthogonalization asked for.

    Raises:
        ValueError: Anything else, naming the choices.
    """
    if not isinstance(reorth, str) or reorth not in REORTH_MODES:
        raise ValueError(f"reorth must be one of {', '.join(map(repr, REORTH_MODES))}, got "
                         f"{reorth!r}")
    return reorth


def chunk_bytes_for(device: torch.device) -> int:
    """Default bytes of float64 basis rows read at a time on ``device``:
    :data:`REORTH_CHUNK_BYTES` on a CPU, :data:`REORTH_CHUNK_BYTES_ACCELERATOR` elsewhere.

    Args:
        device: Where the Lanczos vectors live.
    """
    return REORTH_CHUNK_BYTES if device.type == "cpu" else REORTH_CHUNK_BYTES_ACCELERATOR


def _check_chunk_bytes(chunk_bytes: object, starts: Sequence[torch.Tensor]) -> int:
    """``chunk_bytes``, or the default for the start vectors' device when ``None``."""
    if chunk_bytes is None:
        return chunk_bytes_for(starts[0].device if starts else torch.device("cpu"))
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int | np.integer) or (
            chunk_bytes < 1):
        raise ValueError(f"chunk_bytes must be a positive number of bytes (or None for the "
                         f"device's default), got {chunk_bytes!r}")
    return int(chunk_bytes)


def _wide(rows: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """``rows`` in float64: themselves if float64, else an exact copy in the chunk buffer."""
    if rows.dtype == torch.float64:
        return rows
    return scratch.get("chunk", tuple(rows.shape), rows.device).copy_(rows)


def _non_finite(product: torch.Tensor, i: int, j: int) -> ValueError:
    """The error for a step whose coefficients are not finite: a bad product, or overflow."""
    if not all_finite(product):
        return ValueError(f"matvec returned non-finite products for operator {i} at step "
                          f"{j + 1}")
    return ValueError(f"matvec: Lanczos coefficients of operator {i} overflowed float64 at "
                      f"step {j + 1} (is the operator's norm beyond 1e150? rescale it)")


#: Largest tridiagonal storage :func:`lanczos` allocates (``steps`` beyond it is refused).
MAX_TRIDIAGONAL_BYTES = 2**31


def _check_arguments(matvec: object, starts: object, steps: object, tol: object,
                     callback: object) -> tuple[int, float]:
    """Validate :func:`lanczos`'s arguments; returns ``(steps, tol)``."""
    if not callable(matvec):
        raise TypeError(f"matvec must be callable (a list of stacks -> their products), got "
                        f"{type(matvec).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if not isinstance(starts, list | tuple):
        raise TypeError(f"starts must be a list of (m, d) tensors, one per operator, got "
                        f"{type(starts).__name__}")
    for i, s in enumerate(starts):
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"starts[{i}] must be a torch.Tensor, got {type(s).__name__}")
        if not s.is_floating_point():
            raise TypeError(f"starts[{i}] must be a real floating tensor, got dtype {s.dtype}")
        if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
            raise ValueError(f"starts[{i}] must be an (m, d) stack with m, d >= 1, got shape "
                             f"{tuple(s.shape)}")
        if not all_finite(s) or (s == 0).all(-1).any():
            raise ValueError(f"starts[{i}]: start vectors must be finite and nonzero")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    need = 16 * steps * sum(int(s.shape[0]) for s in starts)
    if need > MAX_TRIDIAGONAL_BYTES:
        dims = max(int(s.shape[1]) for s in starts)
        raise ValueError(f"steps={steps} would need {need:.3g} bytes of tridiagonal storage "
                         f"(limit {MAX_TRIDIAGONAL_BYTES}); Lanczos takes at most d steps "
                         f"(largest d here: {dims})")
    if tol is None:
        dtype = starts[0].dtype if starts else torch.float64
        return steps, float(np.sqrt(torch.finfo(dtype).eps))
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.integer | np.floating):
        raise TypeError(f"tol must be a real number or None, got {type(tol).__name__}")
    if not (math.isfinite(tol) and 0 <= tol < 1):
        raise ValueError(f"tol must lie in [0, 1) (a relative breakdown threshold), got {tol!r}")
    return steps, float(tol)


def _checked_products(out: object, q: list[torch.Tensor],
                      live: list[bool]) -> list[torch.Tensor]:
    """Check what ``matvec`` returned: one stack of the right shape per live operator.

    Finiteness is not tested here: a NaN or ±∞ in a product makes that step's ``α`` or
    ``‖w‖`` non-finite, and :meth:`_Run.advance` then names the product as the cause.
    """
    if not isinstance(out, list | tuple) or len(out) != len(q):
        raise ValueError(f"matvec must return a list of {len(q)} products (one per operator), "
                         f"got {type(out).__name__}"
                         f"{f' of length {len(out)}' if isinstance(out, list | tuple) else ''}")
    for i, (w, v) in enumerate(zip(out, q, strict=True)):
        if not live[i]:
            continue
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise TypeError(f"matvec returned {type(w).__name__}"
                            f"{f' of dtype {w.dtype}' if isinstance(w, torch.Tensor) else ''} "
                            f"for operator {i}: expected a real floating tensor")
        if w.shape != v.shape:
            raise ValueError(f"matvec returned shape {tuple(w.shape)} for operator {i}, "
                             f"expected {tuple(v.shape)}")
    return list(out)
