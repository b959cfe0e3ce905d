"""Smoothed spectral densities on a shared axis, and the λ₁/λ₁₀ normalizations.

The density of one block is the SLQ quadrature smoothed with a Gaussian kernel on an axis
``t = T(λ)``,

    φ_σ(t) = (1/P) Σ_p Σ_j τ_{pj} · exp(−(t − T(θ_{pj}))² / (2σ²)) / (σ √(2π)).

Three recipes are kept (switching costs no HVPs: results store the raw nodes and weights):

* ``"log"`` (**the default**): the signed log-magnitude axis

      T(λ) = sign(λ) · log₁₀(max(|λ|, τ) / τ),   τ = zero_rel · max_{blocks} |λ|,

  where ``zero_rel`` is the relative precision of the computation (default: float32's machine
  epsilon, 1.2e-7, the dtype of the zoo's HVPs): eigenvalues within ``τ`` of zero count as
  zero and form an atom at ``t = 0``. The kernel width ``σ`` is in the axis' own units
  (decades, default 0.1) and the grid step is ``σ/8`` on a lattice anchored at 0, reaching 8σ
  past the outermost nodes, so neither depends on the other blocks.
* ``"linear"``: ``T(λ) = λ`` with ``σ`` a fraction (default 1%) of the spread of all blocks'
  nodes on ``grid_size`` points (the recipe used before; see below why it is not the default).
* ``"lambda1"`` / ``"lambda10"``: the linear axis after dividing each block by its largest or
  10th-largest eigenvalue (the paper's plots use λ₁₀; it fails on blocks whose Hessian has rank
  < 10, e.g. a 10-class output bias, hence λ₁).

**Why the log recipe is the default** (decided from these properties, tested in
``tests/nets/test_density_recipes.py`` on exact spectra, not from which recipe agrees with the
paper):

1. *Unrelated blocks do not move JS(a, b).* On the log axis rescaling every block by ``c``, or
   raising ``τ`` by adding a block ``c``× larger, translates positive eigenvalues by
   ``log₁₀ c`` (negative ones the other way, which changes nothing while the signs stay
   separated by many σ); a fixed σ in decades then leaves JS(a, b) unchanged. On the linear
   axis σ is a fraction of the overall spread, so one block 1000× larger squeezes every other
   block into one spike at zero (two distinct blocks measured 0.36 apart drop to 0.006).
2. *Scale differences are heterogeneity.* A block and its 100× copy are two decades apart on
   the log axis (JS ≈ 1); the λ-normalized recipes divide the difference away (JS = 0), yet
   the paper's simplified heterogeneous case differs from the homogeneous one only in scale.
3. *Identical spectra give 0* (all recipes).

The zero threshold follows the precision of the computation, not the curvature: in the zoo's
GPT the attention key biases (whose Hessian is exactly zero, softmax being shift-invariant)
have |λ| ≈ 4e-13 ≈ 1e-13 of the model's largest, while the smallest real block (query biases)
is at 1e-6 of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nets.engine.checks import (
    check_array,
    check_int,
    check_positive,
    check_spectra,
    check_spectrum,
)
from nets.engine.slq import BlockSpectrum

__all__ = ["AXES", "CHECK_RECIPES", "NORMALIZATIONS", "RECIPES", "ZERO_REL", "ZERO_REL_RESOLVED",
           "DensityRecipe", "block_densities", "kth_largest_eigenvalue", "lambda10", "signed_log",
           "spectral_density", "zero_threshold"]

NORMALIZATIONS = ("none", "lambda1", "lambda10")
AXES = ("log", "linear")
#: Relative precision of the zoo's float32 HVPs: |λ| ≤ ZERO_REL · max |λ| counts as zero.
ZERO_REL = float(np.finfo(np.float32).eps)
#: A coarser zero threshold, one that float32 products resolve: at it, float32 and float64
#: products give the same block densities on every block of the benchmark models, while at
#: :data:`ZERO_REL` some blocks' densities differ beyond the probe noise (a fused attention
#: bias whose exactly-zero part float32 scatters between 1e-8 and 1e-6 of the largest
#: eigenvalue: ``benchmarks/results/numerics.md``). :func:`nets.engine.js.js0_sensitivity`
#: reports JS0 at both.
ZERO_REL_RESOLVED = 1e-5
_DEFAULT_WIDTH = {"log": 0.1, "linear": 0.01}
_POINTS_PER_SIGMA = 8
_MAX_LOG_GRID = 200_000


@dataclass(frozen=True, kw_only=True)
class DensityRecipe:
    """How block densities are built for plotting and JS distances (see the module docstring).

    Attributes:
        axis: ``"log"`` (signed log-magnitude, the default) or ``"linear"``.
        width: Kernel σ: in decades on the log axis (default 0.1); as a fraction of the shared
            spectral spread on the linear axis (default 0.01). ``None`` picks the default.
        grid_size: Number of grid points on the linear axis (the log axis uses σ/8 steps).
        normalize: ``"none"``, ``"lambda1"`` or ``"lambda10"`` (divide each block by its
            largest or 10th-largest eigenvalue before the axis map).
        zero_rel: Eigenvalues with ``|λ| ≤ zero_rel · max |λ|`` (over all blocks) count as
            zero on the log axis; set it to the relative precision of the HVPs (float32:
            1.2e-7; float64: 2.2e-16).
    """

    axis: str = "log"
    width: float | None = None
    grid_size: int = 2000
    normalize: str = "none"
    zero_rel: float = ZERO_REL

    def __post_init__(self) -> None:
        if not isinstance(self.axis, str) or self.axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {self.axis!r}")
        if self.width is None:
            object.__setattr__(self, "width", _DEFAULT_WIDTH[self.axis])
        if not (isinstance(self.width, (int, float)) and not isinstance(self.width, bool)
                and np.isfinite(self.width)
                and self.width > 0):
            raise ValueError(f"width must be a positive number (decades on the log axis, a "
                             f"fraction of the spread on the linear one), got {self.width!r}")
        check_int("grid_size", self.grid_size, minimum=16, maximum=10**7)
        if not isinstance(self.normalize, str) or self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got "
                             f"{self.normalize!r}")
        if not (isinstance(self.zero_rel, (int, float)) and not isinstance(self.zero_rel, bool)
                and 0 < self.zero_rel < 1):
            raise ValueError(f"zero_rel must be in (0, 1) (the relative precision of the "
                             f"HVPs, e.g. 1.2e-7 for float32), got {self.zero_rel!r}")

    @property
    def label(self) -> str:
        """Short name: the key of `RECIPES` when it is one of them, else its fields."""
        for k, v in RECIPES.items():
            if v == self:
                return k
        return (f"{self.axis}(width={self.width:g}, normalize={self.normalize}, "
                f"zero_rel={self.zero_rel:g})")


def check_recipe(recipe: object) -> DensityRecipe:
    """``recipe``, or the default recipe for ``None``.

    Args:
        recipe: A :class:`DensityRecipe` or ``None``.

    Raises:
        TypeError: anything else (e.g. a recipe's name: use ``RECIPES[name]``).
    """
    if recipe is None:
        return DensityRecipe()
    if not isinstance(recipe, DensityRecipe):
        raise TypeError(f"recipe must be a nets.DensityRecipe (e.g. nets.RECIPES['log']) or "
                        f"None, got {type(recipe).__name__}")
    return recipe


#: The named recipes compared in the report; ``"log"`` is the default.
RECIPES: dict[str, DensityRecipe] = {
    "log": DensityRecipe(),
    "linear": DensityRecipe(axis="linear"),
    "lambda1": DensityRecipe(axis="linear", normalize="lambda1"),
    "lambda10": DensityRecipe(axis="linear", normalize="lambda10"),
}

#: Recipes reported beside :data:`RECIPES` as checks on them, not recipes of their own (the size
#: ladder's evidence and predictor candidates are :data:`RECIPES`'): the log recipe at
#: :data:`ZERO_REL_RESOLVED`, where JS0 is not carried by eigenvalues at the level of the
#: products' round-off (Figures 3–4 and the gap studies' JS0 tables give JS0 under it).
CHECK_RECIPES: dict[str, DensityRecipe] = {
    f"log (zero threshold {ZERO_REL_RESOLVED:g})": DensityRecipe(zero_rel=ZERO_REL_RESOLVED),
}


def zero_threshold(spectra: Mapping[str, BlockSpectrum], zero_rel: float = ZERO_REL) -> float:
    """``τ = zero_rel · max |λ|`` over the live nodes of all blocks (0 when all are zero).

    Args:
        spectra: Blockwise spectra.
        zero_rel: Relative threshold (default: float32 machine epsilon).
    """
    top = max((float(np.abs(s.nodes[s.weights > 0]).max(initial=0.0))
               for s in spectra.values()), default=0.0)
    return zero_rel * top


def signed_log(values: np.ndarray, tau: float) -> np.ndarray:
    """The log axis ``T(λ) = sign(λ) · log₁₀(max(|λ|, τ) / τ)`` (0 for ``|λ| ≤ τ``).

    Args:
        values: Eigenvalues (any shape).
        tau: Zero threshold (> 0).
    """
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be positive and finite, got {tau!r}")
    v = np.asarray(values, dtype=np.float64)
    return np.sign(v) * np.log10(np.maximum(np.abs(v), tau) / tau)


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
    nodes = check_array("nodes", nodes, ndim=(1, 2))
    weights = check_array("weights", weights, ndim=(1, 2))
    if nodes.shape != weights.shape:
        raise ValueError(f"nodes and weights must have one shape, got {nodes.shape} and "
                         f"{weights.shape}")
    if np.any(weights < 0):
        raise ValueError("weights must be non-negative")
    grid = check_array("grid", grid, ndim=(1,))
    sigma = check_positive("sigma", sigma)
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
    if not np.all(np.isfinite(out)):
        raise ValueError(f"sigma={sigma!r} is too small for float64 (the kernel overflows); "
                         "use a wider kernel")
    return out


def kth_largest_eigenvalue(spec: BlockSpectrum, k: int) -> float:
    """Estimate of the block's k-th largest eigenvalue (median over probes of the k-th
    largest Ritz value of each probe).

    Args:
        spec: The block's spectrum.
        k: Which eigenvalue, counted from the largest (1 = largest).

    Raises:
        ValueError: fewer than ``k`` Ritz values per probe, or a non-positive estimate.
    """
    check_spectrum("spec", spec)
    k = check_int("k", k, minimum=1)
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
    """Estimate of the block's 10th-largest eigenvalue (the paper's normalization).

    Args:
        spec: The block's spectrum.
    """
    return kth_largest_eigenvalue(spec, 10)


def block_densities(spectra: Mapping[str, BlockSpectrum], recipe: DensityRecipe | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Densities of all blocks on one shared grid, on the recipe's axis.

    Args:
        spectra: ``{block: BlockSpectrum}``.
        recipe: Density recipe (default: the log recipe, see the module docstring).

    Returns:
        ``(grid, {name: density}, sigma)``; ``grid`` and ``sigma`` are in the axis' units
        (decades of ``|λ|/τ`` on the log axis, eigenvalue units on the linear one).

    Raises:
        ValueError: no spectra, non-finite nodes, a normalization that does not apply, or (log
            axis) every eigenvalue of every block zero.
    """
    spectra = check_spectra("spectra", spectra)
    recipe = check_recipe(recipe)
    recipe = recipe or DensityRecipe()
    if not spectra:
        raise ValueError("no spectra given")
    nodes = {}
    for name, s in spectra.items():
        if not np.all(np.isfinite(s.nodes[s.weights > 0])):
            raise ValueError(f"block {name!r}: non-finite Ritz values (the HVPs overflowed or "
                             "diverged); recompute the spectrum")
        scale = 1.0
        if recipe.normalize != "none":
            scale = kth_largest_eigenvalue(s, int(recipe.normalize.removeprefix("lambda")))
        nodes[name] = s.nodes / scale
    if recipe.axis == "log":
        scaled = {k: BlockSpectrum(k, spectra[k].dim, v, spectra[k].weights,
                                   spectra[k].n_steps, spectra[k].probe_ids)
                  for k, v in nodes.items()}
        tau = zero_threshold(scaled, recipe.zero_rel)
        if not tau > 0:
            raise ValueError("every eigenvalue of every block is zero: there is no curvature "
                             "to compare on the log axis (use axis='linear')")
        nodes = {k: signed_log(v, tau) for k, v in nodes.items()}
    live = np.concatenate([nodes[k][spectra[k].weights > 0] for k in spectra])
    lo, hi = float(live.min()), float(live.max())
    if recipe.axis == "log":
        sigma = float(recipe.width)
        h = sigma / _POINTS_PER_SIGMA
        # ±8σ margins: the Gaussian tails cut off are < 1e-15, so a grid widened by other
        # blocks does not change a block's normalized density
        k0, k1 = int(np.floor((lo - 8 * sigma) / h)), int(np.ceil((hi + 8 * sigma) / h))
        if k1 - k0 + 1 > _MAX_LOG_GRID:
            raise ValueError(f"width={sigma:g} decades needs {k1 - k0 + 1} grid points over "
                             f"{hi - lo:.1f} decades; use a larger width")
        grid = np.arange(k0, k1 + 1) * h
    else:
        spread = hi - lo
        if not spread > 1e-12 * max(abs(lo), abs(hi)):
            spread = max(abs(hi), 1.0)
        sigma = float(recipe.width) * spread
        grid = np.linspace(lo - 4 * sigma, hi + 4 * sigma, int(recipe.grid_size))
    dens = {k: spectral_density(nodes[k], spectra[k].weights, grid, sigma) for k in spectra}
    return grid, dens, sigma
