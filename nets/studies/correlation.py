r"""Spearman rank correlation with confidence intervals.

Spearman's ``ρ`` is Pearson's correlation of the ranks (average ranks for ties):

    ρ = Σ_i (r_i − r̄)(s_i − s̄) / sqrt(Σ_i (r_i − r̄)² Σ_i (s_i − s̄)²).

Two intervals at level ``1 − a``:

* **bootstrap** (percentile): resample the ``n`` pairs with replacement ``n_boot`` times,
  recompute ``ρ`` (resamples with a constant coordinate, where ``ρ`` is undefined, are
  dropped), take the ``a/2`` and ``1 − a/2`` percentiles;
* **Fisher z** (Fieller, Hartley & Pearson 1957): ``z = atanh ρ`` with standard error
  ``sqrt(1.06 / (n − 3))``, interval ``tanh(z ± q_{1−a/2} · se)`` (needs ``n ≥ 4``).

With the handful of models of Table 1 both intervals are wide; they are reported, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["SpearmanResult", "spearman"]


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's ρ with its intervals.

    Attributes:
        rho: Spearman's ρ.
        pvalue: Two-sided p-value of ``scipy.stats.spearmanr`` (``t`` approximation).
        n: Number of pairs.
        low: Bootstrap percentile interval, lower end.
        high: Bootstrap percentile interval, upper end.
        fisher_low: Fisher-z interval, lower end (``nan`` if ``n < 4``).
        fisher_high: Fisher-z interval, upper end.
        level: Confidence level.
        n_boot: Bootstrap resamples used (after dropping degenerate ones).
    """

    rho: float
    pvalue: float
    n: int
    low: float
    high: float
    fisher_low: float
    fisher_high: float
    level: float
    n_boot: int


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else math.nan


def spearman(x: Sequence[float], y: Sequence[float], *, rng: np.random.Generator,
             n_boot: int = 2000, level: float = 0.95) -> SpearmanResult:
    """Spearman's ρ between ``x`` and ``y`` with bootstrap and Fisher-z intervals.

    Args:
        x: First coordinate of the pairs (finite, at least 3 values, not constant).
        y: Second coordinate, paired with ``x`` (same length, finite, not constant).
        rng: Explicit numpy generator for the bootstrap.
        n_boot: Bootstrap resamples.
        level: Confidence level in (0, 1).

    Raises:
        ValueError: too few pairs, non-finite values, a constant coordinate, bad level.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    n = x.size
    if n < 3:
        raise ValueError(f"Spearman's rho needs at least 3 pairs, got {n}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (drop diverged or missing entries first)")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("a constant coordinate has no rank correlation")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 10:
        raise ValueError("n_boot must be at least 10")
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        r = _rank_corr(x[i], y[i])
        if math.isfinite(r):
            boots.append(r)
    a = 1 - level
    lo, hi = (np.percentile(boots, [100 * a / 2, 100 * (1 - a / 2)]) if boots
              else (math.nan, math.nan))
    if n >= 4:
        z = math.atanh(min(max(rho, -0.999999), 0.999999))
        se = math.sqrt(1.06 / (n - 3))
        q = float(stats.norm.ppf(1 - a / 2))
        flo, fhi = math.tanh(z - q * se), math.tanh(z + q * se)
    else:
        flo = fhi = math.nan
    return SpearmanResult(rho, p, n, float(lo), float(hi), flo, fhi, level, len(boots))
