"""The verdict rules of the benchmarks: timing ratios with distribution-free intervals over
repeated runs, and a target's verdict (met, MISSED or within noise) judged on that interval.

A benchmark row holds each timing as the median over its runs and keeps the runs (:data:`RUNS_OF`).
Two methods' (or versions') typical times are compared by the ratio of their medians with the
Hodges–Lehmann interval of the rank-sum test on log times (:func:`ratio_interval`); a cost per
product in gradients likewise, nets' runs per product against the gradient's runs
(:func:`cost_per_product`; for rows that kept one gradient time, nets' median run with the sign
test's interval, :func:`median_interval`); a peak memory rise against a peer's by the range of
their rounds' rises (:func:`memory_ratio`). A target is met or missed only when the whole interval
is on one side of it (:func:`verdict`): the machine's noise cannot flip a verdict, it makes it
``within noise``.
``bench_peers.py``, ``bench_memory.py``, ``bench_groups.py`` and ``bench_ab.py`` judge their
targets with these rules; ``tests/nets/test_bench_verdicts.py`` tests each outcome on hand-set
inputs. Under the timings of two ways to the same products (``bench_floor.py``,
``bench_modes.py``) lies one more rule, :func:`check_same`: they must agree to round-off. Two
computations of one quantity that may differ beyond round-off (``bench_numerics.py``: partial
reorthogonalization, a float64 model) are judged against the quantity's probe noise by
:func:`agreement`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

#: A timing that a row holds as a median over runs, and the key of its runs' values.
RUNS_OF = {"seconds": "runs", "lanczos_s": "lanczos_runs", "product_s": "product_runs",
           "graph_s": "graph_runs", "calibration_s": "calibration_runs",
           "grad_s": "grad_runs"}


#: Two-sided coverage of the interval a timing's verdict is judged on (:func:`ratio_interval`).
LEVEL = 0.95


#: How the reports describe a speed ratio's interval (:func:`ratio_interval`).
INTERVAL_NOTE = (f"its interval is the {LEVEL:.0%} rank-sum (Hodges-Lehmann) interval over the "
                 "two's runs: the range of every pair, fastest against slowest, where the runs "
                 "are too few for that level (3 against 3 or fewer), trimmed of its extreme "
                 "pairs where pooled rounds give more runs")


#: How the reports describe a memory ratio's interval (:func:`memory_ratio`).
MEMORY_INTERVAL_NOTE = "the range of every pair of the rounds' rises, none for one round"


def runs_of(r: dict, key: str = "seconds") -> list[float]:
    """A row's runs of ``key`` (:data:`RUNS_OF`); a row measured once (or by an older script)
    has its one value."""
    return list(r.get(RUNS_OF[key]) or [r[key]])


@functools.cache
def _rank_sum_counts(n: int, m: int) -> tuple[int, ...]:
    """How many of the ``C(n+m, n)`` orderings of ``n`` x's and ``m`` y's (all distinct) give
    each Mann–Whitney count ``U = #{(i, j): x_i > y_j}``, ``U = 0..nm`` (exact, integers).

    The largest of the ``n + m`` values is an x (then it exceeds all ``m`` y's) or a y, so
    ``N(n, m, u) = N(n-1, m, u-m) + N(n, m-1, u)``."""
    if n == 0 or m == 0:
        return (1,)
    out = [0] * (n * m + 1)
    for u, c in enumerate(_rank_sum_counts(n - 1, m)):
        out[u + m] += c
    for u, c in enumerate(_rank_sum_counts(n, m - 1)):
        out[u] += c
    return tuple(out)


def _depth(counts: Sequence[int], level: float) -> int:
    """``k``: the largest with ``P(U <= k-1) <= (1-level)/2`` under ``counts``' distribution
    (:func:`_rank_sum_counts`, or a binomial's), at least 1 (then the level is not reached)."""
    total, below, k = sum(counts), 0, 0
    for c in counts:
        below += c
        if below * 2 > (1.0 - level) * total * (1 + 1e-12):  # P > (1-level)/2
            break
        k += 1
    return max(k, 1)


def ratio_interval(num: Sequence[float], den: Sequence[float],
                   level: float = LEVEL) -> tuple[float, float, float]:
    """``median(num) / median(den)`` and a distribution-free interval for the ratio of the two
    methods' typical times: ``(value, low, high)``.

    The interval is the Hodges–Lehmann one of the rank-sum (Mann–Whitney) test on log times:
    of the ``n·m`` ratios ``num_i / den_j``, sorted, the ``k``-th smallest and the ``k``-th
    largest, with ``k`` the largest such that ``P(U <= k-1) <= (1-level)/2`` for the exact
    null distribution of ``U`` (:func:`_rank_sum_counts`). Where the runs are too few for
    ``level`` (3 against 3: ``P(U = 0) = 1/20``; 2 against 6; one run) ``k = 1``: the
    interval is every pair's range, the peer's fastest over nets' slowest and the reverse.
    With more runs (rounds pooled) it trims the extreme pairs, so it narrows as runs are
    added instead of widening as the range of the extremes does. It is widened to contain the
    ratio of medians where that falls outside (possible from about 11 runs a side).

    Args:
        num: Runs of the numerator (seconds, positive).
        den: Runs of the denominator.
        level: Two-sided coverage in ``(0, 1)``.
    """
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if a.size == 0 or b.size == 0 or not (np.all(a > 0) and np.all(b > 0)):
        raise ValueError(f"runs must be non-empty and positive, got {list(a)} and {list(b)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    pairs = np.sort(np.divide.outer(a, b).ravel())
    k = _depth(_rank_sum_counts(a.size, b.size), level)
    value = float(np.median(a) / np.median(b))
    return value, min(value, float(pairs[k - 1])), max(value, float(pairs[-k]))


def median_interval(runs: Sequence[float],
                    level: float = LEVEL) -> tuple[float, float, float]:
    """``median(runs)`` and its distribution-free interval (the sign test's): the ``k``-th
    smallest and largest run, ``k`` the largest with ``P(B <= k-1) <= (1-level)/2`` for
    ``B ~ Binomial(n, 1/2)``; below 9 runs (at 95%) the range of the runs.

    Args:
        runs: The runs (seconds).
        level: Two-sided coverage in ``(0, 1)``.
    """
    x = np.sort(np.asarray(runs, dtype=np.float64))
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"runs must be non-empty and finite, got {list(x)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    k = _depth([math.comb(x.size, i) for i in range(x.size + 1)], level)
    value = float(np.median(x))
    return value, min(value, float(x[k - 1])), max(value, float(x[-k]))


def speed_ratio(slow: dict, fast: dict, key: str = "seconds") -> tuple[float, float, float]:
    """``slow``'s time over ``fast``'s (rows; ``key`` of :data:`RUNS_OF`) with its interval
    over their runs (:func:`ratio_interval`)."""
    return ratio_interval(runs_of(slow, key), runs_of(fast, key))


def cost_per_product(row: dict) -> tuple[float, float, float]:
    """A row's time per product in gradients of the same data (``gr/HVP``), with its interval:
    ``(value, low, high)``.

    The value is ``seconds / hvps / grad_s``: the median run's time per product over the median
    time of one gradient. Both are measured, so both are noisy: where the row keeps its
    gradients' runs (``grad_runs``, :func:`meters.gradient_runs`), the interval is
    :func:`ratio_interval`'s over the runs' times per product against the gradients' times,
    which counts the unit's noise as well as the products'. A row measured before it kept
    them has only the median gradient, and its interval is the sign test's of its median run
    (:func:`median_interval`) over that one value: the products' noise alone.

    Args:
        row: A measured row: ``seconds`` (and ``runs``), ``hvps``, ``grad_s`` (and
            ``grad_runs``).
    """
    per_product = [t / row["hvps"] for t in runs_of(row)]
    if row.get("grad_runs"):
        return ratio_interval(per_product, row["grad_runs"])
    value, lo, hi = median_interval(per_product)
    return value / row["grad_s"], lo / row["grad_s"], hi / row["grad_s"]


def memory_ratio(row: dict, peer: dict) -> tuple[float, float, float]:
    """``row``'s peak memory rise over ``peer``'s, with its spread over their rounds:
    ``(value, low, high)``.

    The value is the ratio of the two rows' ``peak_extra_bytes`` (each the largest rise of its
    rounds, a conservative peak). The spread is every pair's range of the rounds' rises
    (``peak_extra_rounds``, one per fresh process, :func:`runner.pool_rounds`): the smallest
    over the peer's largest and the reverse, which contains the value. A peak is one number
    per process, so a row of one round has no spread (``low == high == value``), and its
    verdict is only as firm as that one reading. Rises are counted from 1 byte, so that a rise
    of zero does not divide.

    Args:
        row: The measured method's row (``peak_extra_bytes``; ``peak_extra_rounds`` where it
            ran in several rounds).
        peer: The peer's row, likewise.
    """
    def rises(r: dict) -> list[int]:
        return [max(int(x), 1) for x in (r.get("peak_extra_rounds") or [r["peak_extra_bytes"]])]

    ours, theirs = rises(row), rises(peer)
    value = max(int(row["peak_extra_bytes"]), 1) / max(int(peer["peak_extra_bytes"]), 1)
    lo, hi = min(ours) / max(theirs), max(ours) / min(theirs)
    return value, min(lo, value), max(hi, value)


def with_spread(value: float, lo: float, hi: float) -> str:
    """``value`` as a report prints it, ``"v (lo-hi)"``, or ``"v"`` where the spread is under
    the two decimals shown (one run, one round)."""
    return f"{value:.2f}" + (f" ({lo:.2f}-{hi:.2f})" if hi - lo > 5e-3 else "")


def verdict(value: float, lo: float, hi: float, target: float, higher: bool) -> str:
    """``met``, ``MISSED`` or ``within noise``: a target is met (missed) only when the whole
    interval ``[lo, hi]`` of the value over the repeated runs (:func:`ratio_interval`) is on
    its side (``higher``: the value must reach ``target``; else stay at or below it)."""
    if not lo <= value <= hi:
        raise ValueError(f"value {value} outside its spread [{lo}, {hi}]")
    if higher:
        return "met" if lo >= target else "MISSED" if hi < target else "within noise"
    return "met" if hi <= target else "MISSED" if lo > target else "within noise"


#: :func:`agreement`: two computations of one quantity agree where they differ by at most this
#: share of the quantity's probe noise (its standard deviation over probes, or the distance
#: between two halves of the probes): a twentieth of the noise moves no interval a report
#: prints by more than a few percent of its width.
AGREE_SHARE = 0.05

#: :func:`agreement`: up to this share of the probe noise they agree partly (the difference is
#: visible beside the noise, not comparable to it); beyond it they disagree.
PARTLY_SHARE = 0.5


def agreement(difference: float, noise: float) -> tuple[float, str]:
    """How two computations of one quantity compare against its probe noise.

    The share ``s = difference / noise`` decides: ``agrees`` for ``s ≤`` :data:`AGREE_SHARE`,
    ``partly`` for ``s ≤`` :data:`PARTLY_SHARE`, ``disagrees`` beyond, and ``inconclusive``
    where the noise is not a positive finite number (one probe: no spread to compare with) or
    the difference is not finite.

    Args:
        difference: The computations' difference (non-negative, e.g. ``|ΔJS0|`` or a JS
            distance).
        noise: The quantity's probe noise on the same scale.

    Returns:
        ``(s, verdict)``, with ``s`` NaN where the verdict is ``inconclusive``.

    Raises:
        ValueError: a negative difference.
    """
    if difference < 0:
        raise ValueError(f"difference must be non-negative, got {difference}")
    if not (math.isfinite(noise) and noise > 0 and math.isfinite(difference)):
        return math.nan, "inconclusive"
    share = difference / noise
    verdict = ("agrees" if share <= AGREE_SHARE else "partly" if share <= PARTLY_SHARE
               else "disagrees")
    return share, verdict


def top_difference(new: dict, old: dict) -> float:
    """The largest relative difference between two rows' largest Ritz values (``top``, one per
    block), relative to the largest of them: the same spectra give round-off (``bench_ab.py``'s
    and ``bench_numerics.py``'s ``λmax rel. diff``).

    Raises:
        ValueError: the rows have different blocks.
    """
    if set(new["top"]) != set(old["top"]):
        raise ValueError("the rows have different blocks: " f"{sorted(new['top'])} and "
                         f"{sorted(old['top'])}")
    scale = max(abs(v) for row in (new, old) for v in row["top"].values()) or 1.0
    return max(abs(new["top"][k] - old["top"][k]) for k in new["top"]) / scale


def paired_ratios(new: dict, old: dict) -> dict:
    """Two ways of running one cell compared (``bench_groups.py``'s rules, ``bench_ab.py``'s
    versions): ``speed`` = old time / new time with its interval over the runs
    (:func:`speed_ratio`), ``memory`` = new peak rise / old peak rise (the largest rise of each
    one's rounds, :func:`memory_ratio`'s value), and the speed verdict against 1 (not slower,
    :func:`verdict`).
    """
    speed, lo, hi = speed_ratio(old, new)
    memory = memory_ratio(new, old)[0]
    return {"speed": speed, "speed_lo": lo, "speed_hi": hi, "memory": memory,
            "speed_verdict": verdict(speed, lo, hi, 1.0, higher=True)}


def check_same(ref: list[torch.Tensor], got: list[torch.Tensor], label: str) -> None:
    """Raise unless ``got`` equals ``ref`` to round-off (relative to the largest product): the
    rule under every timing that compares two ways of computing the same products
    (``bench_floor.py``, ``bench_modes.py``), so that a faster way is never a wrong one.

    Args:
        ref: The reference products.
        got: The same products computed another way, in the same order and shapes.
        label: What ``got`` is, for the error.

    Raises:
        RuntimeError: ``got`` differs from ``ref`` by more than ``10·√eps`` of the largest
            reference entry (``eps`` of the reference's dtype).
    """
    scale = max(float(r.abs().max()) for r in ref)
    err = max(float((a - b).abs().max()) for a, b in zip(got, ref, strict=True))
    tol = 10 * torch.finfo(ref[0].dtype).eps ** 0.5 * scale
    if not err <= tol:
        raise RuntimeError(f"{label} products differ from the per-block ones by {err:.1e} "
                           f"(tolerance {tol:.1e}): the timings would not be of the same numbers")
