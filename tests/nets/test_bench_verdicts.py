"""benchmarks/verdicts.py: the benchmarks' verdict rules on hand-set inputs (each outcome of
a verdict), and the intervals they are judged on against exact distributions and simulation."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("value, lo, hi, target, higher, expected", [
    (2.0, 1.8, 2.2, 1.5, True, "met"),
    (1.0, 0.9, 1.2, 1.5, True, "MISSED"),
    (1.6, 1.3, 1.9, 1.5, True, "within noise"),
    (1.5, 1.5, 1.5, 1.5, True, "met"),  # reaching the target is meeting it
    (0.4, 0.3, 0.45, 0.5, False, "met"),
    (0.8, 0.7, 0.9, 0.5, False, "MISSED"),
    (0.5, 0.4, 0.6, 0.5, False, "within noise"),
])
def test_verdict_outcomes(benchmark_script, value, lo, hi, target, higher, expected):
    bench = benchmark_script("verdicts")
    assert bench.verdict(value, lo, hi, target, higher) == expected


def test_verdict_refuses_a_value_outside_its_spread(benchmark_script):
    with pytest.raises(ValueError, match="outside its spread"):
        benchmark_script("verdicts").verdict(2.0, 1.0, 1.5, 1.5, True)


@pytest.mark.parametrize("difference, noise, share, expected", [
    (1e-4, 1e-2, 0.01, "agrees"),
    (5e-4, 1e-2, 0.05, "agrees"),  # at the share: agrees
    (2e-3, 1e-2, 0.2, "partly"),
    (5e-3, 1e-2, 0.5, "partly"),
    (2e-2, 1e-2, 2.0, "disagrees"),
    (0.0, 0.0, math.nan, "inconclusive"),  # one probe: no spread to compare with
    (1e-3, math.nan, math.nan, "inconclusive"),
    (math.inf, 1e-2, math.nan, "inconclusive"),
])
def test_agreement_outcomes(benchmark_script, difference, noise, share, expected):
    got_share, verdict = benchmark_script("verdicts").agreement(difference, noise)
    assert verdict == expected
    assert got_share == pytest.approx(share, rel=1e-12, nan_ok=True)


def test_agreement_refuses_a_negative_difference(benchmark_script):
    with pytest.raises(ValueError, match="non-negative"):
        benchmark_script("verdicts").agreement(-1e-3, 1.0)


def test_top_difference_is_relative_to_the_largest_ritz_value(benchmark_script):
    v = benchmark_script("verdicts")
    old = {"top": {"a": 2.0, "b": 1.0}}
    moved = {"top": {"a": 2.0, "b": 1.5}}
    assert v.top_difference(moved, old) == 0.25
    with pytest.raises(ValueError, match="different blocks"):
        v.top_difference({"top": {"a": 2.0}}, old)


def test_paired_ratios_judge_not_slower(benchmark_script):
    """Two versions of a cell: old time over new time with its interval, new peak rise over
    old, and the speed verdict against 1 (each outcome)."""
    v = benchmark_script("verdicts")
    old = {"seconds": 2.0, "runs": [2.0, 1.9, 2.1], "peak_extra_bytes": 100}
    faster = {"seconds": 1.0, "runs": [1.0, 0.9, 1.1], "peak_extra_bytes": 50}
    same = {"seconds": 2.0, "runs": [1.8, 2.0, 2.2], "peak_extra_bytes": 100}
    slower = {"seconds": 3.0, "runs": [3.0, 2.9, 3.1], "peak_extra_bytes": 300}
    c = v.paired_ratios(faster, old)
    assert c["speed"] == pytest.approx(2.0) and c["memory"] == 0.5
    assert c["speed_lo"] <= c["speed"] <= c["speed_hi"] and c["speed_verdict"] == "met"
    assert v.paired_ratios(same, old)["speed_verdict"] == "within noise"
    assert v.paired_ratios(slower, old)["speed_verdict"] == "MISSED"
    assert v.paired_ratios(slower, old)["memory"] == 3.0


def test_runs_of_a_row_measured_once(benchmark_script):
    v = benchmark_script("verdicts")
    assert v.runs_of({"seconds": 1.5}) == [1.5]
    assert v.runs_of({"seconds": 1.5, "runs": [1.4, 1.5, 1.6]}) == [1.4, 1.5, 1.6]
    assert v.runs_of({"product_s": 0.5, "product_runs": [0.5, 0.6]}, "product_s") == [0.5, 0.6]


@pytest.mark.parametrize("n, m", [(1, 1), (1, 4), (2, 3), (3, 3), (4, 2), (4, 5)])
def test_rank_sum_counts_match_every_ordering(benchmark_script, n, m):
    """The exact null distribution of the Mann-Whitney U equals the count over every ordering
    of n x's and m y's."""
    bench = benchmark_script("verdicts")
    brute = [0] * (n * m + 1)
    for xs in itertools.combinations(range(n + m), n):  # the x's ranks
        ys = [r for r in range(n + m) if r not in xs]
        brute[sum(x > y for x in xs for y in ys)] += 1
    assert list(bench._rank_sum_counts(n, m)) == brute
    assert sum(brute) == math.comb(n + m, n)


@pytest.mark.parametrize("n, critical", [(5, 2), (6, 5), (7, 8), (8, 13), (9, 17), (10, 23)])
def test_rank_sum_depth_matches_the_printed_table(benchmark_script, n, critical):
    """Two-sided 5% critical values of U for n = m (the standard table): the interval keeps
    the (critical + 1)-th smallest and largest pairwise ratio."""
    bench = benchmark_script("verdicts")
    assert bench._depth(bench._rank_sum_counts(n, n), 0.95) == critical + 1


def test_ratio_interval_is_the_extremes_for_three_runs_and_trims_with_more(benchmark_script):
    """3 runs against 3 cannot reach 95% (P(U = 0) = 1/20): the interval is the fastest
    against the slowest, the rule before pooling. The same runs pooled over two rounds (6
    against 6) trim the 5 extreme pairs at each end; the ratio of medians is unchanged."""
    bench = benchmark_script("verdicts")
    peer, nets_runs = [1.9, 2.0, 2.4], [0.9, 1.0, 1.1]
    v, lo, hi = bench.ratio_interval(peer, nets_runs)
    assert (v, lo, hi) == pytest.approx((2.0, 1.9 / 1.1, 2.4 / 0.9))
    v2, lo2, hi2 = bench.ratio_interval(peer * 2, nets_runs * 2)
    pairs = sorted(a / b for a in peer * 2 for b in nets_runs * 2)
    assert (v2, lo2, hi2) == pytest.approx((2.0, pairs[5], pairs[-6]))
    assert lo < lo2 <= v2 <= hi2 < hi
    # one run each: the ratio itself
    assert bench.ratio_interval([3.0], [2.0]) == pytest.approx((1.5, 1.5, 1.5))
    for bad in ([], [1.0, -1.0], [1.0, 0.0]):
        with pytest.raises(ValueError, match="non-empty and positive"):
            bench.ratio_interval(bad, [1.0])
    with pytest.raises(ValueError, match="level"):
        bench.ratio_interval([1.0], [1.0], level=1.0)


@settings(deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=12),
       st.lists(st.floats(0.1, 10.0), min_size=1, max_size=12))
def test_ratio_interval_lies_within_the_extremes_and_narrows_with_more_runs(benchmark_script,
                                                                          num, den):
    """The interval contains the ratio of medians and lies within every pair's range; the same
    runs observed twice give an interval inside the first (more runs, no wider)."""
    bench = benchmark_script("verdicts")
    v, lo, hi = bench.ratio_interval(num, den)
    ext_lo, ext_hi = min(num) / max(den), max(num) / min(den)
    tol = 1e-12 * ext_hi
    assert ext_lo - tol <= lo <= v <= hi <= ext_hi + tol
    _, lo2, hi2 = bench.ratio_interval(num * 2, den * 2)
    assert lo - tol <= lo2 and hi2 <= hi + tol


def test_ratio_interval_covers_the_true_ratio(benchmark_script):
    """Simulated timings (log-normal noise, a known ratio of 1.5): the 95% interval of 6 runs
    against 6 covers the true ratio in at least 92% of 400 seeded draws (the rank-sum
    interval's exact coverage under a shift is 1 - 2 P(U <= 5) = 0.959), and is narrower than
    the range of the extreme pairs in every draw."""
    bench = benchmark_script("verdicts")
    rng = np.random.default_rng(7)
    covered, narrower = 0, 0
    for _ in range(400):
        nets_runs = np.exp(rng.normal(0.0, 0.1, 6))
        peer = 1.5 * np.exp(rng.normal(0.0, 0.1, 6))
        _, lo, hi = bench.ratio_interval(peer, nets_runs)
        covered += lo <= 1.5 <= hi
        narrower += hi - lo < peer.max() / nets_runs.min() - peer.min() / nets_runs.max()
    assert covered >= 0.92 * 400 and narrower == 400


@pytest.mark.parametrize("n, k", [(1, 1), (3, 1), (8, 1), (9, 2), (10, 2), (20, 6)])
def test_median_interval_is_the_sign_tests(benchmark_script, n, k):
    """The median's interval keeps the k-th smallest and largest run, k from the binomial
    (two-sided 5%: the range below 9 runs; 2 at 9 and 10, 6 at 20)."""
    bench = benchmark_script("verdicts")
    runs = [float(i) for i in range(1, n + 1)]
    v, lo, hi = bench.median_interval(runs[::-1])
    assert (v, lo, hi) == (float(np.median(runs)), runs[k - 1], runs[-k])
    with pytest.raises(ValueError, match="non-empty"):
        bench.median_interval([])


@pytest.mark.parametrize("grad_runs, interval, expected", [
    ([0.05, 0.05, 0.05], (1.8, 2.2), "met"),  # 0.09 / 0.05 ... 0.11 / 0.05
    ([0.03, 0.05, 0.07], (0.09 / 0.07, 0.11 / 0.03), "within noise"),  # a noisy unit
    ([0.02, 0.021, 0.022], (0.09 / 0.022, 0.11 / 0.02), "MISSED"),
], ids=["met", "noisy-gradient", "missed"])
def test_cost_per_product_counts_the_gradients_noise(benchmark_script, grad_runs, interval,
                                                     expected):
    """Hand-set rows (3 runs of 10 products against 3 gradients: every pair's range): the
    interval pairs each run's time per product with each gradient's time, so a noisy gradient
    widens it and the ``<= 3`` target is within noise where the products' noise alone (the
    rule for a row that kept one gradient time) calls it met."""
    v = benchmark_script("verdicts")
    row = {"seconds": 1.0, "runs": [1.0, 0.9, 1.1], "hvps": 10,
           "grad_s": float(np.median(grad_runs)), "grad_runs": grad_runs}
    value, lo, hi = v.cost_per_product(row)
    assert value == pytest.approx(0.1 / row["grad_s"])
    assert (lo, hi) == pytest.approx(interval)
    assert v.verdict(value, lo, hi, 3, higher=False) == expected
    older = {k: x for k, x in row.items() if k != "grad_runs"}  # one gradient time
    m, lo, hi = v.median_interval([t / 10 for t in row["runs"]])
    assert v.cost_per_product(older) == pytest.approx(
        (m / row["grad_s"], lo / row["grad_s"], hi / row["grad_s"]))
    if expected == "within noise":
        assert v.verdict(*v.cost_per_product(older), 3, higher=False) == "met"


def test_products_that_disagree_are_not_timed(benchmark_script):
    """check_same passes round-off (relative to the largest product) and refuses a product
    that differs beyond it, naming what differs."""
    verdicts = benchmark_script("verdicts")
    ref = [torch.tensor([1.0, -2.0]), torch.tensor([4.0])]
    verdicts.check_same(ref, [r * (1 + 1e-6) for r in ref], "round-off")
    with pytest.raises(RuntimeError, match="bundled products differ"):
        verdicts.check_same(ref, [ref[0], torch.tensor([4.1])], "bundled")


@pytest.mark.parametrize(("ours", "theirs", "expected"), [
    ([10, 11, 12], [10, 10, 11], "met"),  # every pair's ratio <= 1.5
    ([20, 21, 22], [10, 11, 12], "MISSED"),  # every pair's > 1.5
    ([15, 12, 16], [10, 11, 10], "within noise"),  # the pairs straddle 1.5
], ids=["met", "missed", "within-noise"])
def test_memory_ratio_judged_on_the_rounds_rises(benchmark_script, ours, theirs, expected):
    """A memory target is judged on every pair of the rounds' rises: the value (the largest
    rises' ratio) lies inside, and a straddling spread is within noise, not a verdict the
    next round could flip."""
    v = benchmark_script("verdicts")
    mib = 2**20
    row = {"peak_extra_bytes": max(ours) * mib, "peak_extra_rounds": [x * mib for x in ours]}
    peer = {"peak_extra_bytes": max(theirs) * mib,
            "peak_extra_rounds": [x * mib for x in theirs]}
    value, lo, hi = v.memory_ratio(row, peer)
    assert value == pytest.approx(max(ours) / max(theirs))
    assert lo == pytest.approx(min(ours) / max(theirs))
    assert hi == pytest.approx(max(ours) / min(theirs))
    assert v.verdict(value, lo, hi, 1.5, higher=False) == expected


def test_memory_ratio_of_one_round_has_no_spread(benchmark_script):
    """One process per method: one reading each, no spread (the verdict is that reading's);
    a rise of zero counts as one byte instead of dividing by zero."""
    v = benchmark_script("verdicts")
    assert v.memory_ratio({"peak_extra_bytes": 30}, {"peak_extra_bytes": 20}) == (1.5, 1.5, 1.5)
    assert v.memory_ratio({"peak_extra_bytes": 5}, {"peak_extra_bytes": 0}) == (5.0, 5.0, 5.0)
