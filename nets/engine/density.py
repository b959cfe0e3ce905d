"""Smoothed spectral densities on a shared grid, and the λ₁₀ normalization.

The density of one block is the SLQ quadrature smoothed with a Gaussian kernel,

    φ_σ(t) = (1/P) Σ_p Σ_j τ_{pj} · exp(−(t − θ_{pj})² / (2σ²)) / (σ √(2π)).

Recipe (chosen here; the paper does not state its own):

* **Grid**: shared by all blocks, ``grid_size`` equispaced points on
  ``[lo − 4σ, hi + 4σ]`` where ``lo``/``hi`` are the smallest/largest nodes carrying weight over
  all blocks (after normalization).
* **Width**: ``σ = width · (hi − lo)``: a fixed fraction of the spread of the spectra, so it
  scales with the spectrum (the authors use an absolute ``σ² = 1e-5``, which is meaningless for
  spectra of unknown scale). If all nodes coincide, the spread is replaced by ``max(|hi|, 1)``.
* **Normalization** (optional): ``"lambda10"``, as in the paper's plots, divides each block's
  nodes by its 10th-largest eigenvalue, estimated as the median over probes of each probe's
  10th-largest Ritz value (the top Ritz values converge first). It fails on blocks whose Hessian
  has rank < 10 (e.g. a 10-class output bias: rank 9), so ``"lambda1"`` (the largest
  eigenvalue) is offered too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nets.engine.slq import BlockSpectrum

__all__ = ["DensityRecipe", "block_densities", "kth_largest_eigenvalue", "lambda10",
           "spectral_density"]

NORMALIZATIONS = ("none", "lambda1", "lambda10")


@dataclass(frozen=True)
class DensityRecipe:
    """How block densities are built for plotting and JS distances.

    Attributes:
        width: Kernel σ as a fraction of the shared spectral spread ``hi − lo``.
        grid_size: Number of grid points.
        normalize: ``"none"``, ``"lambda1"`` or ``"lambda10"`` (divide each block by its
            largest or 10th-largest eigenvalue).
    """

    width: float = 0.01
    grid_size: int = 2000
    normalize: str = "none"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width must be a positive fraction, got {self.width!r}")
        if int(self.grid_size) != self.grid_size or self.grid_size < 16:
            raise ValueError(f"grid_size must be an integer >= 16, got {self.grid_size!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got "
                             f"{self.normalize!r}")


def spectral_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray,
                     sigma: float) -> np.ndarray:
    """Gaussian-smoothed quadrature density ``φ_σ`` on ``grid`` (vectorized, chunked).

    Args:
        nodes: ``(P, k)`` Ritz values (or ``(k,)``).
        weights: Matching weights, each row summing to 1.
        grid: ``(G,)`` evaluation points.
        sigma: Kernel standard deviation (> 0).

    Returns:
        ``(G,)`` density values (integrating to ≈ 1 when the grid covers the nodes).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    n = np.atleast_2d(np.asarray(nodes, dtype=np.float64)).ravel()
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    p = w.shape[0]
    w = w.ravel() / p
    keep = w > 0
    n, w = n[keep], w[keep]
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(w))):
        raise ValueError("non-finite nodes or weights")
    grid = np.asarray(grid, dtype=np.float64)
    out = np.empty(grid.shape[0])
    c = 1.0 / (sigma * np.sqrt(2 * np.pi))
    step = max(1, 2_000_000 // max(n.size, 1))
    for s in range(0, grid.size, step):
        z = (grid[s:s + step, None] - n[None, :]) / sigma
        out[s:s + step] = c * (np.exp(-0.5 * z * z) @ w)
    return out


def kth_largest_eigenvalue(spec: BlockSpectrum, k: int) -> float:
    """Estimate of the block's k-th largest eigenvalue (median over probes of the k-th
    largest Ritz value of each probe).

    Raises:
        ValueError: fewer than ``k`` Ritz values per probe, or a non-positive estimate.
    """
    vals = []
    for r in range(spec.probes):
        n = int(spec.n_steps[r])
        if n < k:
            raise ValueError(f"block {spec.name!r}: probe {r} has {n} Ritz values; the "
                             f"lambda{k} normalization needs at least {k} (steps >= {k}, "
                             f"dim >= {k})")
        vals.append(np.sort(spec.nodes[r, :n])[-k])
    v = float(np.median(vals))
    if not v > 0:
        raise ValueError(f"block {spec.name!r}: its {k}-th largest eigenvalue estimate is "
                         f"{v:g} (not positive); cannot normalize by it")
    return v


def lambda10(spec: BlockSpectrum) -> float:
    """Estimate of the block's 10th-largest eigenvalue (the paper's normalization)."""
    return kth_largest_eigenvalue(spec, 10)


def block_densities(spectra: Mapping[str, BlockSpectrum], recipe: DensityRecipe | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Densities of all blocks on one shared grid.

    Returns:
        ``(grid, {name: density}, sigma)``.
    """
    recipe = recipe or DensityRecipe()
    if not spectra:
        raise ValueError("no spectra given")
    nodes = {}
    for name, s in spectra.items():
        scale = 1.0
        if recipe.normalize != "none":
            scale = kth_largest_eigenvalue(s, int(recipe.normalize.removeprefix("lambda")))
        nodes[name] = s.nodes / scale
    live = np.concatenate([nodes[k][spectra[k].weights > 0] for k in spectra])
    lo, hi = float(live.min()), float(live.max())
    spread = hi - lo
    if not spread > 1e-12 * max(abs(lo), abs(hi)):
        spread = max(abs(hi), 1.0)
    sigma = recipe.width * spread
    grid = np.linspace(lo - 4 * sigma, hi + 4 * sigma, int(recipe.grid_size))
    dens = {k: spectral_density(nodes[k], spectra[k].weights, grid, sigma) for k in spectra}
    return grid, dens, sigma
