"""Jensen–Shannon distances between blockwise spectral densities, JS0, its interval, sensitivity.

For two densities ``p``, ``q`` on the shared grid (normalized to sum 1), the JS distance is
``sqrt(JSD(p, q))`` with ``JSD = ½ KL(p‖m) + ½ KL(q‖m)``, ``m = ½(p + q)``, in base 2 so it
lies in ``[0, 1]`` (``scipy.spatial.distance.jensenshannon``). JS0 is the mean over all unordered
pairs of distinct blocks of this distance, for the spectra at initialization.

Which blocks JS0 averages over: every block it is given (with the default partition, one block
per parameter tensor: weight matrices, biases and norm gains alike; callers wanting the weight
matrices only select them with :func:`nets.engine.roles.matrix_blocks`) **except numerically
zero blocks** (every |λ| ≤ ``recipe.zero_rel`` · the model's largest |λ|, such as attention key
biases, whose Hessian is exactly zero): their "spectrum" is rounding noise, and counting them
would add a distance of ≈ 1 to every other block whatever the model. They are reported by
:func:`numerically_zero_blocks`, and :func:`js_matrix` still includes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from nets.engine.checks import check_int, check_positive, check_spectra
from nets.engine.density import (
    RECIPES,
    ZERO_REL_RESOLVED,
    DensityRecipe,
    block_densities,
    check_recipe,
    zero_threshold,
)
from nets.engine.intervals import probe_interval, probe_resamples
from nets.engine.slq import BlockSpectrum

__all__ = ["JS0Estimate", "js0", "js0_bootstrap", "js0_sensitivity", "js_between", "js_matrix",
           "numerically_zero_blocks"]


def _clean(p: np.ndarray) -> np.ndarray:
    # Normalize, and flush values below 1e-200: halving a subnormal in scipy's m = (p + q)/2 can
    # underflow to 0 and turn KL(p‖m) into inf. The change to the distance is below 1e-100.
    p = p / p.sum()
    return np.where(p < 1e-200, 0.0, p)


#: Most grid values of stacked densities one call of scipy's JS distance takes (its
#: temporaries are a few arrays of this size): the pairs of a matrix go in chunks of it.
PAIR_CHUNK_VALUES = 1 << 21


def _distances(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """JS distances (base 2) between the rows of ``p`` and ``q`` (:func:`_clean`-ed densities):
    one call of scipy's ``jensenshannon`` along the rows."""
    with np.errstate(invalid="ignore"):
        d = np.atleast_1d(jensenshannon(p, q, base=2, axis=-1))
    nan = np.isnan(d)
    if nan.any():
        # scipy takes the square root of a JS divergence that rounding made slightly negative
        # when p ≈ q; the divergence itself is then at rounding level and the distance is 0.
        pn, qn = p[nan], q[nan]
        m = 0.5 * (pn + qn)
        jsd = 0.5 * (rel_entr(pn, m).sum(axis=-1) + rel_entr(qn, m).sum(axis=-1))
        d[nan] = np.where(np.abs(jsd) <= 1e-12, 0.0, np.nan)
    return d


def js_matrix(spectra: Mapping[str, BlockSpectrum], recipe: DensityRecipe | None = None
              ) -> tuple[list[str], np.ndarray]:
    """Symmetric matrix of JS distances (base 2) between the blocks' densities.

    Args:
        spectra: Blockwise spectra.
        recipe: Density recipe (default :class:`DensityRecipe` ``()``).

    Returns:
        ``(names, D)`` with ``D[i, j]`` the distance between blocks ``names[i]``, ``names[j]``.
    """
    spectra = check_spectra("spectra", spectra)
    recipe = check_recipe(recipe)
    _, dens, _ = block_densities(spectra, recipe)
    names = list(dens)
    stacked = np.stack([_clean(dens[k]) for k in names])
    n = len(names)
    d = np.zeros((n, n))
    first, second = np.triu_indices(n, 1)
    step = max(1, PAIR_CHUNK_VALUES // stacked.shape[1])
    for s in range(0, len(first), step):
        i, j = first[s:s + step], second[s:s + step]
        d[i, j] = d[j, i] = _distances(stacked[i], stacked[j])
    if not np.all(np.isfinite(d)):
        raise ValueError("non-finite JS distance (a density is zero on the whole grid)")
    return names, d


def js_between(first: Mapping[str, BlockSpectrum], second: Mapping[str, BlockSpectrum],
               recipe: DensityRecipe | None = None) -> dict[str, float]:
    """JS distance between each block's density in two results for the same blocks.

    ``JS(φ_l, ψ_l)`` for every block ``l``, with ``φ_l`` its density in ``first`` and ``ψ_l``
    in ``second``: two computations of one model's spectra (two reorthogonalizations, dtypes,
    devices, two halves of the probes) compared block by block. All densities are drawn on
    the one grid of :func:`nets.engine.density.block_densities` over the blocks of both
    results (less those left out below), so a distance is the one :func:`js_matrix` of those
    blocks gives between the two densities.
    Blocks numerically zero in both results (:func:`numerically_zero_blocks` over both; their
    spectra are rounding noise) are left out; a block numerically zero in one result only is
    kept (its distance is then near 1).

    Args:
        first: ``{block: BlockSpectrum}``.
        second: The same blocks' spectra computed another way.
        recipe: Density recipe (default :class:`DensityRecipe` ``()``).

    Returns:
        ``{block: distance in [0, 1]}`` in ``first``'s order.

    Raises:
        ValueError: the two results hold different blocks, or every block is numerically zero
            in both.
    """
    first = check_spectra("first", first)
    second = check_spectra("second", second)
    recipe = check_recipe(recipe)
    if set(first) != set(second):
        raise ValueError(f"first and second must hold the same blocks; only in first: "
                         f"{sorted(set(first) - set(second))}, only in second: "
                         f"{sorted(set(second) - set(first))} (compare results of the same "
                         "blocks)")
    union = {**{f"first:{k}": s for k, s in first.items()},
             **{f"second:{k}": s for k, s in second.items()}}
    zero = set(numerically_zero_blocks(union, recipe))
    keep = [k for k in first if not {f"first:{k}", f"second:{k}"} <= zero]
    if not keep:
        raise ValueError("every block is numerically zero in both results: there is no "
                         "curvature to compare")
    _, dens, _ = block_densities({n: union[n] for k in keep
                                  for n in (f"first:{k}", f"second:{k}")}, recipe)
    d = _distances(np.stack([_clean(dens[f"first:{k}"]) for k in keep]),
                   np.stack([_clean(dens[f"second:{k}"]) for k in keep]))
    return {k: float(x) for k, x in zip(keep, d, strict=True)}


def numerically_zero_blocks(spectra: Mapping[str, BlockSpectrum],
                            recipe: DensityRecipe | None = None) -> list[str]:
    """Blocks whose every Ritz value has ``|λ| ≤ recipe.zero_rel · max |λ|`` over all blocks.

    Args:
        spectra: ``{block: BlockSpectrum}`` of one model (the threshold is relative to all).
        recipe: Supplies ``zero_rel`` (default: the float32 precision of the zoo's HVPs).
    """
    recipe = recipe or DensityRecipe()
    tau = zero_threshold(spectra, recipe.zero_rel)
    return [k for k, s in spectra.items()
            if float(np.abs(s.nodes[s.weights > 0]).max(initial=0.0)) <= tau]


def js0(spectra: Mapping[str, BlockSpectrum], recipe: DensityRecipe | None = None) -> float:
    """Mean JS distance over all pairs of distinct blocks that are not numerically zero.

    ``JS0 = (2 / (n(n−1))) Σ_{i<j} JS(φ_i, φ_j)`` over the ``n`` blocks left after removing
    :func:`numerically_zero_blocks` (see the module docstring).

    Args:
        spectra: Blockwise spectra (at least two blocks with curvature).
        recipe: Density recipe (default :class:`DensityRecipe` ``()``).

    Raises:
        ValueError: fewer than two blocks with curvature.
    """
    spectra = check_spectra("spectra", spectra)
    recipe = check_recipe(recipe)
    zero = set(numerically_zero_blocks(spectra, recipe))
    live = {k: v for k, v in spectra.items() if k not in zero}
    if len(live) < 2:
        raise ValueError(f"JS0 needs at least two blocks with curvature; got {len(live)} "
                         f"(numerically zero: {sorted(zero)})")
    _, d = js_matrix(live, recipe)
    iu = np.triu_indices(d.shape[0], 1)
    return float(d[iu].mean())


@dataclass(frozen=True)
class JS0Estimate:
    """JS0 with its interval for the probe noise (:mod:`nets.engine.intervals`).

    Attributes:
        value: JS0 from all probes.
        std: Bootstrap standard deviation over probes (``nan`` with one probe).
        low: Lower end of the interval: ``max(0, value − t_{P−1}·std)``.
        high: Upper end: ``min(1, value + t_{P−1}·std)``.
        n_boot: Number of resamples evaluated: every distinct one where ``exact``, else the
            draws.
        bias: Mean of the resamples minus ``value`` (resamples repeat probes, which biases a
            JS distance upward; comparable to ``std``: too few probes for the density).
        probes: Number of probes ``P``.
        exact: Whether the resamples were the exact bootstrap distribution (every distinct
            resample with its probability, :func:`nets.engine.intervals.probe_resamples`).
    """

    value: float
    std: float
    low: float
    high: float
    n_boot: int
    bias: float = math.nan
    probes: int = 0
    exact: bool = False


def js0_bootstrap(spectra: Mapping[str, BlockSpectrum], recipe: DensityRecipe | None = None,
                  *, n_boot: int = 200, rng: np.random.Generator,
                  level: float = 0.95) -> JS0Estimate:
    """JS0 and its interval for the probe noise, from a bootstrap over probes.

    Each resample draws ``P`` probe indices with replacement (the same indices for all blocks,
    since a probe index is one run of the whole pipeline) and recomputes JS0; where the distinct
    resamples are at most ``n_boot`` (up to 5 probes at the default), every one is evaluated
    once with its probability instead (:func:`nets.engine.intervals.probe_resamples`). The
    interval is
    the Student-t interval ``JS0 ± t_{P−1, (1+level)/2} · se`` with ``se`` the resamples'
    standard deviation, clipped to ``[0, 1]`` (:func:`nets.engine.intervals.probe_interval`:
    it contains the estimate, widens for few probes, and why the percentile interval does
    not do). With one probe no spread exists and the interval is ``[0, 1]``.

    Args:
        spectra: Blockwise spectra with the same number of probes.
        recipe: Density recipe.
        n_boot: Number of resamples drawn where the distinct ones are more.
        rng: Explicit numpy generator (unused where every resample is evaluated).
        level: Coverage of the interval, in ``(0, 1)``.
    """
    spectra = check_spectra("spectra", spectra)
    recipe = check_recipe(recipe)
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    n_boot = check_int("n_boot", n_boot, minimum=2, maximum=10**6)
    probes = {s.probes for s in spectra.values()}
    if len(probes) != 1:
        raise ValueError("all blocks must have the same number of probes")
    p = probes.pop()
    value = js0(spectra, recipe)
    resamples, weights = probe_resamples(p, n_boot, rng)
    boots = np.array([js0({k: s.select(rows) for k, s in spectra.items()}, recipe)
                      for rows in resamples])
    iv = probe_interval(value, boots, p, level=level, bounds=(0.0, 1.0), weights=weights)
    return JS0Estimate(value, iv.std, iv.low, iv.high, len(resamples), iv.bias, p,
                       exact=weights is not None)


def js0_sensitivity(spectra: Mapping[str, BlockSpectrum], *,
                    recipes: Mapping[str, DensityRecipe] | None = None,
                    width_factors: Sequence[float] = (1 / 3, 1.0, 3.0),
                    zero_rels: Sequence[float] | None = None) -> list[dict]:
    """JS0 under several recipes, from the stored nodes and weights (no new HVPs).

    Each base recipe runs at every kernel width ``σ · f`` (``f`` in ``width_factors``) and every
    zero threshold ``zero_rel`` (``τ = zero_rel · max |λ|``: eigenvalues within ``τ`` of zero
    form the log axis' atom at 0, and blocks wholly within it are left out of JS0). The
    threshold is the recipe's most arbitrary choice: by default each base recipe runs at its
    own and at :data:`nets.engine.density.ZERO_REL_RESOLVED` (where that is coarser), a
    threshold float32 products resolve, so that a JS0 carried by eigenvalues at the level of
    the products' round-off shows as a difference between the two.

    Args:
        spectra: ``{block: BlockSpectrum}``.
        recipes: Base recipes by name (default: :data:`nets.engine.density.RECIPES`).
        width_factors: Each base recipe is also run with its kernel width times these factors.
        zero_rels: Zero thresholds relative to the largest ``|λ|``, each in (0, 1), every base
            recipe runs at (default: its own ``zero_rel`` and, where coarser,
            ``ZERO_REL_RESOLVED``).

    Returns:
        One ``{"recipe", "axis", "normalize", "width", "grid_size", "zero_rel", "js0"}`` record
        per recipe, threshold and width (in that order of nesting); ``js0`` is ``None`` with an
        ``"error"`` message where the recipe does not apply (e.g. λ₁₀ ≤ 0).

    Raises:
        TypeError: ``recipes``, ``width_factors`` or ``zero_rels`` of the wrong type.
        ValueError: A width factor that is not positive or a threshold outside (0, 1).
    """
    spectra = check_spectra("spectra", spectra)
    recipes = RECIPES if recipes is None else recipes
    if not isinstance(recipes, Mapping) or not recipes:
        raise TypeError(f"recipes must be a non-empty mapping {{name: DensityRecipe}}, got "
                        f"{type(recipes).__name__}")
    for name, base in recipes.items():
        if not isinstance(base, DensityRecipe):
            raise TypeError(f"recipes[{name!r}] must be a nets.DensityRecipe, got "
                            f"{type(base).__name__}")
    width_factors = [check_positive("width_factors entry", f)
                     for f in _non_empty("width_factors", width_factors, "positive numbers")]
    if zero_rels is not None:
        zero_rels = [DensityRecipe(zero_rel=z).zero_rel  # checked there: a number in (0, 1)
                     for z in _non_empty("zero_rels", zero_rels, "numbers in (0, 1)")]
    out = []
    for name, base in recipes.items():
        thresholds = (zero_rels if zero_rels is not None
                      else sorted({base.zero_rel, max(base.zero_rel, ZERO_REL_RESOLVED)}))
        for z in thresholds:
            for f in width_factors:
                rec = replace(base, width=base.width * f, zero_rel=z)
                row = {"recipe": name, "axis": rec.axis, "normalize": rec.normalize,
                       "width": float(rec.width), "grid_size": int(rec.grid_size),
                       "zero_rel": float(z)}
                try:
                    row["js0"] = js0(spectra, rec)
                except ValueError as e:
                    row["js0"] = None
                    row["error"] = str(e)
                out.append(row)
    return out


def _non_empty(name: str, values: object, what: str) -> Sequence:
    """``values`` if it is a non-empty sequence (not a string), else a TypeError naming it."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name} must be a non-empty sequence of {what}, got "
                        f"{type(values).__name__}")
    return values
