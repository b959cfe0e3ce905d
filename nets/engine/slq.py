"""Stochastic Lanczos quadrature (SLQ): spectral densities from Lanczos tridiagonals.

For a symmetric ``A = Σ_i λ_i u_i u_iᵀ`` (``d × d``) the spectral density is
``φ(t) = (1/d) Σ_i δ(t − λ_i)``. For a unit probe ``v`` drawn uniformly on the sphere (a
normalized Gaussian), ``E[vᵀ f(A) v] = (1/d) Σ_i f(λ_i) = ∫ f dφ``, and the ``k``-point Gauss
quadrature of ``vᵀ f(A) v`` is given by the Lanczos tridiagonal ``T_k = S Θ Sᵀ``: nodes
``θ_j`` (Ritz values) and weights ``τ_j = S_{1j}²`` (``Σ_j τ_j = 1``). Averaging over ``P`` probes,

    φ̂(t) = (1/P) Σ_p Σ_j τ_{pj} δ(t − θ_{pj}),

which :func:`nets.engine.density.spectral_density` smooths with a Gaussian kernel. Results keep
the raw
nodes and weights so densities can be recomputed under any kernel without new HVPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal

from nets.engine.lanczos import LanczosRun

__all__ = ["BlockSpectrum", "gauss_quadrature"]


@dataclass(frozen=True)
class BlockSpectrum:
    """SLQ result for one Hessian block (or the full Hessian).

    Attributes:
        name: Block name.
        dim: Dimension ``d_l`` of the block.
        nodes: ``(probes, steps)`` float64 Ritz values of each probe, ascending. When a run
            stopped early (invariant subspace, or ``steps > dim``) the row is padded by repeating
            its largest node with weight 0.
        weights: ``(probes, steps)`` float64 Gauss quadrature weights; each row sums to 1.
        n_steps: ``(probes,)`` Lanczos steps actually taken by each probe.
        probe_ids: ``(probes,)`` indices of the probes (their seeds derive from these).
    """

    name: str
    dim: int
    nodes: np.ndarray
    weights: np.ndarray
    n_steps: np.ndarray
    probe_ids: np.ndarray

    @property
    def probes(self) -> int:
        """Number of probe vectors (rows of `nodes`)."""
        return int(self.nodes.shape[0])

    @property
    def steps(self) -> int:
        """Number of Lanczos steps (quadrature nodes per probe)."""
        return int(self.nodes.shape[1])

    def extreme_eigenvalues(self) -> tuple[float, float]:
        """Smallest and largest Ritz value over all probes (estimates of λ_min, λ_max)."""
        return float(self.nodes.min()), float(self.nodes.max())

    def select(self, rows: np.ndarray) -> BlockSpectrum:
        """The spectrum restricted to some probes (rows), e.g. for a bootstrap resample.

        Args:
            rows: Indices of the probes to keep (repeats allowed).
        """
        rows = np.asarray(rows)
        return BlockSpectrum(self.name, self.dim, self.nodes[rows], self.weights[rows],
                             self.n_steps[rows], self.probe_ids[rows])

    @staticmethod
    def concatenate(parts: list[BlockSpectrum]) -> BlockSpectrum:
        """Join the probes of several results for the same block (same steps).

        Args:
            parts: Results for one block, with the same number of steps.
        """
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.name != first.name or p.dim != first.dim or p.steps != first.steps:
                raise ValueError("can only concatenate results of the same block and steps")
        return BlockSpectrum(first.name, first.dim,
                             np.concatenate([p.nodes for p in parts]),
                             np.concatenate([p.weights for p in parts]),
                             np.concatenate([p.n_steps for p in parts]),
                             np.concatenate([p.probe_ids for p in parts]))


def gauss_quadrature(run: LanczosRun) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss quadrature of each Lanczos run.

    Solves the symmetric tridiagonal eigenproblem ``T_k = S Θ Sᵀ`` in float64
    (``scipy.linalg.eigh_tridiagonal``); nodes ``Θ``, weights ``S[0, :]²``.

    Args:
        run: The Lanczos tridiagonals of ``m`` runs.

    Returns:
        ``(nodes, weights)``, each ``(m, steps)``; rows shorter than ``steps`` are padded with
        their largest node and weight 0.

    Raises:
        TypeError: ``run`` is not a :class:`~nets.engine.lanczos.LanczosRun` of real arrays.
        ValueError: inconsistent shapes, step counts outside ``[1, steps]``, or non-finite
            coefficients.
    """
    _check_run(run)
    m, steps = run.alpha.shape
    nodes = np.zeros((m, steps))
    weights = np.zeros((m, steps))
    for r in range(m):
        k = int(run.n_steps[r])
        if k < 1:
            raise ValueError("a Lanczos run took no step")
        if k == 1:
            theta, s = run.alpha[r, :1].copy(), np.ones((1, 1))
        else:
            theta, s = eigh_tridiagonal(run.alpha[r, :k], run.beta[r, : k - 1])
        tau = s[0] ** 2
        tau = tau / tau.sum()
        if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(tau))):
            raise ValueError("non-finite Ritz values or weights")
        nodes[r, :k] = theta
        nodes[r, k:] = theta[-1]
        weights[r, :k] = tau
    return nodes, weights


def _check_run(run: object) -> None:
    """Check that ``run`` is a consistent :class:`LanczosRun` (shapes, counts, finiteness)."""
    if not isinstance(run, LanczosRun):
        raise TypeError(f"run must be a LanczosRun (from nets.engine.lanczos.lanczos), got "
                        f"{type(run).__name__}")
    arrays = {"alpha": run.alpha, "beta": run.beta, "n_steps": run.n_steps}
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"run.{name} must be a numpy array, got {type(a).__name__}")
        kinds = "iu" if name == "n_steps" else "f"
        if a.dtype.kind not in kinds:
            raise TypeError(f"run.{name} must be {'integer' if name == 'n_steps' else 'real'} "
                            f"(got dtype {a.dtype})")
    if run.alpha.ndim != 2 or run.alpha.shape[0] < 1 or run.alpha.shape[1] < 1:
        raise ValueError(f"run.alpha must be (m, steps) with m, steps >= 1, got shape "
                         f"{run.alpha.shape}")
    m, steps = run.alpha.shape
    if run.beta.shape != (m, steps - 1) or run.n_steps.shape != (m,):
        raise ValueError(f"run: beta {run.beta.shape} and n_steps {run.n_steps.shape} do not "
                         f"match alpha {run.alpha.shape} (expected {(m, steps - 1)} and {(m,)})")
    if np.any(run.n_steps < 1) or np.any(run.n_steps > steps):
        raise ValueError(f"run.n_steps must lie in [1, {steps}] (a Lanczos run took no step?), "
                         f"got {run.n_steps.tolist()}")
    if not (np.all(np.isfinite(run.alpha)) and np.all(np.isfinite(run.beta))):
        raise ValueError("run: non-finite Lanczos coefficients")
