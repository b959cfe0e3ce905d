"""Exact loss gaps of linear iterations in log space (no underflow, no round-off floor).

A linear iteration e ← (I − η P H) e on L(w) = ½ wᵀHw − hᵀw (GD: P = I; simplified Adam:
P = diag(|∇L(w0)|)⁻¹, the paper's Eq. (2)) has, with M = P^{1/2} H P^{1/2} = U diag(ν) Uᵀ,
the loss gap

    L(w_t) − L* = Σ_j ½ a_j (1 − η ν_j)^{2t},     a_j = ν_j z_j²,  z = Uᵀ P^{-1/2} (w0 − w*).

We evaluate log(L(w_t) − L*) = logsumexp_j(log ½a_j + 2t·log|1 − ην_j|), which neither underflows
(t·log ρ is an ordinary float even when ρ^t < 1e-308) nor loses the slow modes behind the fast
ones. The only error is the float64 error of ν and a (relative ~1e-15 × the conditioning of the
eigenproblem), so per-step ratios are accurate to ~1e-12 relative, independent of t.
"""

from __future__ import annotations

import numpy as np

from quadlab import Problem


def _check_point(problem: Problem, w0) -> np.ndarray:
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a quadlab.Problem, got {type(problem).__name__}")
    w0 = np.asarray(w0, dtype=np.float64)
    if w0.shape != (problem.d,):
        raise ValueError(f"w0 must have shape ({problem.d},), got {w0.shape}")
    if not np.all(np.isfinite(w0)):
        raise ValueError("w0 contains non-finite values")
    return w0


def gd_modes(problem: Problem, w0) -> tuple[np.ndarray, np.ndarray]:
    """(ν, a) of GD: ν = eigenvalues of H, a_j = λ_j (Qᵀ(w0 − w*))_j²; both shape (d,)."""
    e0 = _check_point(problem, w0) - problem.w_star
    nus, weights = [], []
    for sl, lam, q in zip(problem.block_slices, problem.eigenvalues, problem.eigenvectors,
                          strict=True):
        c = e0[sl] @ q
        nus.append(lam)
        weights.append(lam * c * c)
    return np.concatenate(nus), np.concatenate(weights)


def adam_modes(problem: Problem, w0) -> tuple[np.ndarray, np.ndarray]:
    """(ν, a) of simplified Adam (β1 = 0, β2 = 1), P = diag(|g0|)⁻¹, g0 = ∇L(w0).

    ν are the eigenvalues of D^{-1/2} H D^{-1/2} (D = diag|g0|), blockwise.

    Raises:
        ValueError: if g0 has an exactly zero coordinate (the preconditioner does not exist).
    """
    w0 = _check_point(problem, w0)
    e0 = w0 - problem.w_star
    g0 = problem.matvec(e0)
    if np.any(g0 == 0.0):
        raise ValueError("the gradient at w0 has an exactly zero coordinate: simplified Adam's "
                         "preconditioner diag(|∇L(w0)|)⁻¹ does not exist")
    dsq = np.sqrt(np.abs(g0))
    nus, weights = [], []
    for sl, b in zip(problem.block_slices, problem.blocks, strict=True):
        inv = 1.0 / dsq[sl]
        mat = inv[:, None] * b * inv[None, :]
        mu, u = np.linalg.eigh(0.5 * (mat + mat.T))
        z = u.T @ (dsq[sl] * e0[sl])
        nus.append(mu)
        weights.append(mu * z * z)
    return np.concatenate(nus), np.concatenate(weights)


def log_abs_one_minus(x: np.ndarray) -> np.ndarray:
    """log|1 − x|, accurate for small x (log1p) and −inf at x = 1."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < 1.0, np.log1p(-np.minimum(x, 1.0)), np.log(np.abs(x - 1.0)))


def log_gaps(nu: np.ndarray, a: np.ndarray, lr, steps: int) -> np.ndarray:
    """log(L(w_t) − L*) for t = 0..steps and every step size in `lr`.

    Args:
        nu: mode rates ν_j, shape (d,).
        a: mode weights a_j >= 0, shape (d,) (modes with a_j = 0 are ignored).
        lr: step sizes, scalar or shape (m,).
        steps: last step T.

    Returns:
        Shape (m, T+1) (or (T+1,) for scalar lr); −inf where the gap is exactly zero.
    """
    lr_arr = np.atleast_1d(np.asarray(lr, dtype=np.float64))
    keep = a > 0
    nu, a = nu[keep], a[keep]
    t = np.arange(steps + 1, dtype=np.float64)
    out = np.empty((lr_arr.size, steps + 1))
    if nu.size == 0:
        out[:] = -np.inf
        return out[0] if np.ndim(lr) == 0 else out
    log_w = np.log(0.5 * a)
    log_rho = 2.0 * log_abs_one_minus(lr_arr[:, None] * nu[None, :])  # (m, d)
    chunk = max(1, int(2_000_000 // max(1, (steps + 1) * nu.size)))
    for s in range(0, lr_arr.size, chunk):
        lr_rho = log_rho[s:s + chunk]
        # terms (m, T+1, d); 0·(−inf) at t = 0 must be 0, not nan
        with np.errstate(invalid="ignore"):
            terms = log_w[None, None, :] + t[None, :, None] * lr_rho[:, None, :]
        terms[:, 0, :] = log_w[None, :]
        peak = terms.max(axis=2, keepdims=True)
        finite_peak = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):
            out[s:s + chunk] = (np.log(np.exp(terms - finite_peak).sum(axis=2))
                                + finite_peak[..., 0])
    return out[0] if np.ndim(lr) == 0 else out


def log_ratios(log_g: np.ndarray) -> np.ndarray:
    """Per-step log contraction log((L_{t+1} − L*)/(L_t − L*)); nan where L_t − L* = 0."""
    prev, nxt = log_g[..., :-1], log_g[..., 1:]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(prev), nxt - prev, np.nan)


def steps_to_reach(nu: np.ndarray, a: np.ndarray, lr: float, reduction: float) -> float:
    """Smallest t with L(w_t) − L* <= reduction × (L(w_0) − L*), exactly (bisection in log space).

    Returns inf when some weighted mode does not contract (|1 − ην_j| >= 1).
    """
    keep = a > 0
    nu, a = nu[keep], a[keep]
    if not 0 < reduction < 1:
        raise ValueError(f"reduction must be in (0, 1), got {reduction!r}")
    rho = np.abs(1.0 - lr * nu)
    if np.any(rho >= 1.0):
        return float("inf")
    log_w = np.log(0.5 * a)
    log_g0 = np.logaddexp.reduce(log_w)
    target = log_g0 + np.log(reduction)
    log_rho = 2.0 * log_abs_one_minus(lr * nu)

    def log_gap(t: int) -> float:
        return float(np.logaddexp.reduce(log_w + t * log_rho))

    # gap_t <= gap_0 ρ_max^{2t} gives an upper bracket
    hi = max(1, int(np.ceil(np.log(reduction) / np.max(log_rho))) + 1)
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if log_gap(mid) <= target:
            hi = mid
        else:
            lo = mid
    return float(hi)
