"""Lanczos with full reorthogonalization, run on many symmetric operators in lockstep.

For a symmetric ``A`` (``d × d``) and a unit start ``q_1``, ``k`` Lanczos steps build an
orthonormal basis ``Q_k`` of the Krylov space ``span{q_1, A q_1, …, A^{k-1} q_1}`` and the
tridiagonal ``T_k = Q_kᵀ A Q_k`` with diagonal ``α_1..α_k`` and off-diagonal ``β_1..β_{k-1}``:

    w = A q_j − α_j q_j − β_{j-1} q_{j-1},   α_j = q_jᵀ A q_j,   β_j = ‖w‖,   q_{j+1} = w / β_j.

In floating point the ``q_j`` lose orthogonality and ghost copies of converged eigenvalues
appear; here every new ``w`` is orthogonalized against all previous ``q_i`` twice (classical
Gram–Schmidt applied twice, "CGS2"), which keeps ``Q_k`` orthonormal to working precision.

If ``β_j`` falls below ``tol · max(|α|, |β|)`` the Krylov space is invariant: the run stops
cleanly at ``k = j`` steps (no division by a tiny number). At most ``d`` steps are taken.

Many operators (blocks) and many start vectors (probes) advance together: ``matvec`` receives
one stack of vectors per operator, so a single call can batch all HVPs of one step. The vectors
passed to ``matvec`` have the dtype of the start vectors; the basis is kept in float64 (the same
values) and the recurrence, reorthogonalization and ``α``, ``β`` run in float64: ``k`` steps on
``m`` probes of dimension ``d`` hold ``8·m·k·d`` bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["BASIS_DTYPE", "LanczosRun", "lanczos"]

#: Dtype of the stored Lanczos basis (every start dtype): ``k`` steps on ``m`` probes of
#: dimension ``d`` keep ``m·k·d`` numbers of it.
BASIS_DTYPE = torch.float64


@dataclass(frozen=True)
class LanczosRun:
    """Tridiagonals of several Lanczos runs on one operator (one row per start vector).

    Attributes:
        alpha: ``(m, steps)`` float64 diagonals; entries past ``n_steps`` are 0.
        beta: ``(m, steps - 1)`` float64 off-diagonals; entries past ``n_steps - 1`` are 0.
        n_steps: ``(m,)`` number of steps actually taken (``< steps`` after an invariant
            subspace was found or when ``steps`` exceeds the dimension).
    """

    alpha: np.ndarray
    beta: np.ndarray
    n_steps: np.ndarray


def _dot64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() * b.double()).sum(-1)


def lanczos(
    matvec: Callable[[list[torch.Tensor | None]], list[torch.Tensor | None]],
    starts: Sequence[torch.Tensor],
    steps: int,
    *,
    tol: float | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[LanczosRun]:
    """Run Lanczos on several operators in lockstep.

    Args:
        matvec: Maps a list (one entry per operator) of ``(m_l, d_l)`` stacks, or ``None`` for
            operators that are finished, to the list of products ``A_l V_l``.
        starts: One ``(m_l, d_l)`` stack of start vectors per operator (any nonzero norm).
        steps: Number of Lanczos steps (capped at ``d_l`` for each operator).
        tol: Relative breakdown threshold; default ``sqrt(eps)`` of the vectors' dtype.
        callback: Called as ``callback(step, steps)`` after each step.

    Returns:
        One :class:`LanczosRun` per operator.

    Raises:
        ValueError: ``steps < 1`` or too large to store, a zero or non-finite start vector,
            ``tol`` outside ``[0, 1)``, or ``matvec`` returning products of the wrong shape or
            non-finite ones (or coefficients beyond float64's range).
        TypeError: ``matvec`` or ``callback`` not callable, ``starts`` not a list of real
            floating ``(m, d)`` tensors, ``tol`` not a number.
    """
    steps, tol = _check_arguments(matvec, starts, steps, tol, callback)
    L = len(starts)
    basis: list[torch.Tensor] = []
    alpha = [np.zeros((s.shape[0], steps)) for s in starts]
    beta = [np.zeros((s.shape[0], max(steps - 1, 0))) for s in starts]
    nsteps = [np.zeros(s.shape[0], dtype=np.int64) for s in starts]
    active: list[torch.Tensor] = []
    scale = [torch.zeros(s.shape[0], dtype=torch.float64, device=s.device) for s in starts]
    cap = [min(steps, s.shape[1]) for s in starts]
    q: list[torch.Tensor] = []
    for s in starts:
        norms = torch.sqrt(_dot64(s, s))
        unit = s.double() / norms[:, None]
        odd = ~torch.isfinite(norms) | (norms < 1e-150)
        if odd.any():  # entries near 1e308 overflow the sum of squares, tiny ones underflow it
            big = s.double().abs().amax(-1)[:, None]
            scaled = s.double() / big
            scaled = scaled / torch.sqrt((scaled * scaled).sum(-1))[:, None]
            unit = torch.where(odd[:, None], scaled, unit)
        q.append(unit.to(s.dtype))
        # (m, k, d): each probe's vectors contiguous, so the products below are batched
        # matrix products over the probes with no transposed copy. Stored in float64 (the
        # vectors' own values, exactly): reorthogonalization then reads it in place, where a
        # float64 copy of a float32 basis at every step cost more time and memory than the
        # basis itself
        basis.append(torch.zeros((s.shape[0], min(steps, s.shape[1]), s.shape[1]),
                                 dtype=BASIS_DTYPE, device=s.device))
        active.append(torch.ones(s.shape[0], dtype=torch.bool, device=s.device))
    prev_beta = [torch.zeros(s.shape[0], dtype=torch.float64, device=s.device) for s in starts]
    for j in range(steps):
        live = [j < cap[i] and bool(active[i].any()) for i in range(L)]
        if not any(live):
            break
        for i in range(L):
            if live[i]:
                basis[i][:, j] = q[i]
        out = _checked_products(matvec([q[i] if live[i] else None for i in range(L)]), q,
                                live, j)
        for i in range(L):
            if not live[i]:
                continue
            w = out[i]
            act = active[i]
            a = _dot64(q[i], w)
            w = w.double() - a[:, None] * q[i].double()
            if j > 0:
                w = w - prev_beta[i][:, None] * basis[i][:, j - 1]
            Q = basis[i][:, : j + 1]  # a view: no copy
            for _ in range(2):  # CGS2: full reorthogonalization, twice
                c = torch.bmm(Q, w.unsqueeze(-1))  # (m, j+1, 1): q_iᵀ w
                w = w - torch.bmm(c.transpose(1, 2), Q).squeeze(1)
            del Q, c
            b = torch.sqrt((w * w).sum(-1))
            if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
                raise ValueError(f"matvec: Lanczos coefficients of operator {i} overflowed "
                                 f"float64 at step {j + 1} (is the operator's norm beyond "
                                 "1e150? rescale it)")
            a_np = a.cpu().numpy()
            act_np = act.cpu().numpy()
            alpha[i][act_np, j] = a_np[act_np]
            nsteps[i][act_np] = j + 1
            scale[i] = torch.maximum(scale[i], torch.maximum(a.abs(), b))
            if j + 1 >= cap[i]:
                active[i] = torch.zeros_like(act)
                continue
            brk = b <= tol * scale[i]
            brk = brk | (scale[i] == 0)
            cont = act & ~brk
            b_np = b.cpu().numpy()
            cont_np = cont.cpu().numpy()
            beta[i][cont_np, j] = b_np[cont_np]
            safe = torch.where(cont, b, torch.ones_like(b))
            q[i] = torch.where(cont[:, None], w / safe[:, None], torch.zeros_like(w)).to(
                q[i].dtype)
            prev_beta[i] = torch.where(cont, b, torch.zeros_like(b))
            active[i] = cont
        if callback is not None:
            callback(j + 1, steps)
    return [LanczosRun(alpha[i], beta[i], nsteps[i]) for i in range(L)]


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
        if not torch.isfinite(s).all() or (s == 0).all(-1).any():
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


def _checked_products(out: object, q: list[torch.Tensor], live: list[bool],
                      step: int) -> list[torch.Tensor]:
    """Check what ``matvec`` returned at ``step``: one finite stack per live operator."""
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
        if not torch.isfinite(w).all():
            raise ValueError(f"matvec returned non-finite products for operator {i} at step "
                             f"{step + 1}")
    return list(out)
