r"""Intervals for statistics of a spectrum over probes: the probe noise, around the estimate.

A statistic of SLQ spectra (JS0, a block-scale statistic) is computed from ``P`` random probe
vectors; its noise is estimated by a bootstrap over probes: ``B`` resamples draw ``P`` probe
indices with replacement and recompute the statistic, giving replicates ``θ*_1..θ*_B``.

The interval is the **Student-t interval with the bootstrap standard error**, centred on the
estimate ``θ̂`` from all probes::

    se = std(θ*)  (ddof = 1),   θ̂ ± t_{P−1, (1+level)/2} · se,

clipped to the statistic's range (``[0, 1]`` for a JS distance). It contains ``θ̂`` by
construction, widens with the Student quantile where the probes are few (95%: ``t = 12.7`` for
2 probes, ``4.30`` for 3, ``2.36`` for 8, ``→ 1.96``), and narrows as ``se ∝ 1/√P``.

Why not the percentile interval ``[q_{2.5%}(θ*), q_{97.5%}(θ*)]``: a resample with repeated
probes is another estimator than ``θ̂`` (fewer distinct probes, a noisier density), and for a
nonlinear statistic such as a JS distance it is biased (upward: noise adds distance), so with
few probes the percentiles sit beside ``θ̂`` rather than around it. With 3 probes only 10
distinct resamples exist, the all-distinct one (``θ̂`` itself) has probability 2/9, and the
percentile interval had ``θ̂`` as its lower end or excluded it. That shift is reported as
``bias = mean(θ*) − θ̂`` (a bias comparable to ``se`` says the probes are too few for the
density), not hidden by re-centring the interval on the replicates.

Where the distinct resamples are few (``C(2P−1, P)``: 3 for 2 probes, 10 for 3, 35 for 4),
:func:`probe_resamples` gives every one with its probability instead of ``B`` draws: the exact
bootstrap distribution, which the draws only approximate, at fewer evaluations; ``se`` and the
bias are then its weighted standard deviation and mean.

Below :data:`MIN_PROBES` probes no spread can be estimated: the interval is the whole range.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from nets.engine.checks import check_int

__all__ = ["MIN_PROBES", "ProbeInterval", "probe_interval", "probe_resamples"]

#: Fewest probes from which an interval is estimated (one probe has no spread).
MIN_PROBES = 2


@dataclass(frozen=True)
class ProbeInterval:
    """An estimate from all probes with its interval for the probe noise.

    Attributes:
        value: ``θ̂``, the statistic from all probes.
        low: Lower end, ``max(lower bound, θ̂ − t·se)``.
        high: Upper end, ``min(upper bound, θ̂ + t·se)``.
        std: ``se``, the bootstrap standard deviation (``nan`` below :data:`MIN_PROBES`).
        bias: ``mean(θ*) − θ̂`` (``nan`` below :data:`MIN_PROBES`).
        probes: ``P``.
        level: Nominal coverage, e.g. 0.95.
    """

    value: float
    low: float
    high: float
    std: float
    bias: float
    probes: int
    level: float


def _real(name: str, x: object) -> float:
    """``x`` as a float, or a TypeError naming the argument (bools and strings refused)."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def probe_resamples(probes: int, n_boot: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """The bootstrap's resamples of ``P`` probe indices: all of them where few, else drawn.

    ``P`` probes have ``C(2P−1, P)`` distinct resamples (multisets of ``P`` indices drawn with
    replacement); one with counts ``c_1..c_P`` has probability ``P! / (c_1!…c_P! · P^P)``.
    Where there are at most ``n_boot`` of them, each is returned once with its probability: the
    exact bootstrap distribution (what ``n_boot → ∞`` draws approach), from no more evaluations
    than ``n_boot`` draws would cost. Otherwise ``n_boot`` resamples are drawn by ``rng``, each
    index uniform with replacement.

    Args:
        probes: ``P`` (at least 1).
        n_boot: Resamples to draw where the distinct ones are more (at least 2).
        rng: Explicit numpy generator (not used where every resample is returned).

    Returns:
        ``(rows, weights)``: an ``(R, P)`` integer array of probe indices, and their
        probabilities (summing to 1) for the exact distribution or ``None`` for ``R = n_boot``
        equally weighted draws.

    Raises:
        TypeError: ``probes`` or ``n_boot`` not an integer.
        ValueError: ``probes < 1`` or ``n_boot < 2``.
    """
    p = check_int("probes", probes, minimum=1)
    n_boot = check_int("n_boot", n_boot, minimum=2)
    if math.comb(2 * p - 1, p) > n_boot:
        # one draw of P indices per resample (the stream the bootstrap has always drawn)
        return np.stack([rng.integers(0, p, size=p) for _ in range(int(n_boot))]), None
    rows = np.array(list(itertools.combinations_with_replacement(range(p), p)), dtype=np.int64)
    counts = np.array([np.bincount(r, minlength=p) for r in rows])
    ways = [math.factorial(p) // math.prod(math.factorial(int(c)) for c in row)
            for row in counts]
    return rows, np.array(ways, dtype=np.float64) / float(p) ** p


def probe_interval(value: float, replicates: Sequence[float] | np.ndarray, probes: int, *,
                   level: float = 0.95,
                   bounds: tuple[float, float] = (-math.inf, math.inf),
                   weights: Sequence[float] | np.ndarray | None = None) -> ProbeInterval:
    """The Student-t interval with bootstrap standard error around ``value`` (module docstring).

    Args:
        value: ``θ̂`` from all ``probes`` probes (finite).
        replicates: The bootstrap replicates ``θ*`` (non-finite ones, e.g. a resample where the
            statistic is undefined, are left out; at least two finite ones are needed).
        probes: ``P``, the number of probes resampled.
        level: Coverage in ``(0, 1)``.
        bounds: The statistic's range; the interval is clipped to it (``(0, 1)`` for a JS
            distance).
        weights: The replicates' probabilities where they are the exact bootstrap distribution
            (:func:`probe_resamples`): ``se`` is then their weighted standard deviation and the
            bias their weighted mean minus ``value`` (a left-out replicate's weight with it);
            ``None``: equally weighted draws, ``se`` their standard deviation (ddof = 1).

    Returns:
        The :class:`ProbeInterval`; with fewer than :data:`MIN_PROBES` probes its ends are
        ``bounds`` and ``std``, ``bias`` are ``nan``.

    Raises:
        TypeError: ``probes`` not an integer, ``value``, ``level`` or ``bounds`` not real
            numbers, ``replicates`` not a sequence of them.
        ValueError: a non-finite ``value``, ``value`` outside ``bounds``, a ``level`` outside
            ``(0, 1)``, ``probes < 1``, fewer than two finite replicates, or ``weights`` not one
            non-negative probability per replicate or summing to zero over the finite ones.
    """
    value = _real("value", value)
    if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
        raise TypeError(f"bounds must be a (low, high) pair of numbers, got {bounds!r}")
    lo_b, hi_b = (_real("bounds", b) for b in bounds)
    if not lo_b < hi_b:
        raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
    level = _real("level", level)
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {value}")
    if not lo_b <= value <= hi_b:
        raise ValueError(f"value {value} lies outside bounds {bounds}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    probes = check_int("probes", probes, minimum=1)
    if probes < MIN_PROBES:
        return ProbeInterval(value, lo_b, hi_b, math.nan, math.nan, probes, float(level))
    try:
        reps = np.asarray(replicates, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise TypeError(f"replicates must be a sequence of real numbers ({err})") from None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != reps.shape or not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError(f"weights must be one non-negative probability per replicate "
                             f"({reps.size}), got {w.size} values")
    finite = np.isfinite(reps)
    reps = reps[finite]
    if reps.size < 2:
        raise ValueError(f"need at least two finite bootstrap replicates, got {reps.size}: "
                         "use more resamples")
    if weights is None:
        se, mean = float(reps.std(ddof=1)), float(reps.mean())
    else:
        total = float(w[finite].sum())
        if not total > 0.0:
            raise ValueError("the weights of the finite replicates sum to zero: give a positive "
                             "probability to at least one finite replicate")
        w = w[finite] / total
        mean = float(w @ reps)
        se = math.sqrt(float(w @ (reps - mean) ** 2))
    half = float(student_t.ppf(0.5 + 0.5 * float(level), probes - 1)) * se
    return ProbeInterval(value, max(lo_b, value - half), min(hi_b, value + half), se,
                         mean - value, probes, float(level))
