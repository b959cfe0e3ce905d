"""Every verdict rule on hand-set inputs, one input per outcome it can give.

The inputs are built by hand (no training, no spectra computed): the tests check the rules,
not the measurements.
"""

from types import SimpleNamespace as NS

import numpy as np
import pytest

from figures import (
    fig1_full_spectra,
    fig5_mlp_mixer,
    fig6_finetune,
    fig7_gap_vs_js0,
    fig34_blockwise,
    fig_batch,
    fig_eps,
    fig_layernorm,
    fig_newton,
)
from figures.families import FAMILY
from figures.registry import Finding
from figures.verdict import (
    NOT_MEASURABLE,
    OUTCOMES,
    Part,
    combine,
    exceeds,
    exceeds_over_seeds,
    groups_ordered,
    trained,
)
from nets.engine.slq import BlockSpectrum
from nets.studies.finetune import FinetuneStudy
from nets.studies.gap import GapReport, GapResult, LrScore, TunedOptimizer
from nets.studies.layernorm import GrowthFit, PerturbationStudy
from nets.studies.table1 import Table1
from nets.zoo import models as zoo
from quadlab.studies.eps import EpsResult, EpsRow

# ------------------------------------------------------------------ the helper


def test_combine_gives_every_outcome():
    h, f, i, n = (Part("x", o) for o in ("holds", "fails", "inconclusive", "not measurable"))
    assert combine([h, h]) == "agrees"
    assert combine([f, f]) == "disagrees"
    assert combine([f, i]) == "disagrees"
    assert combine([h, f]) == "partly"
    assert combine([h, i]) == "partly"
    assert combine([i, i]) == "inconclusive"
    assert combine([i, n]) == NOT_MEASURABLE
    assert {combine(p) for p in ([h], [f], [h, f], [i], [n])} == set(OUTCOMES)
    with pytest.raises(ValueError, match="at least one part"):
        combine([])
    with pytest.raises(ValueError, match="part outcome"):
        Part("x", "agrees")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Finding("m", "not comparable")


def test_interval_and_seed_rules():
    assert exceeds("x", 0.1, 0.5).outcome == "holds"
    assert exceeds("x", -0.5, -0.1).outcome == "fails"
    assert exceeds("x", -0.1, 0.5).outcome == "inconclusive"  # Figure 7's ρ interval with 0
    assert exceeds("x", float("nan"), 0.5).outcome == "not measurable"
    assert exceeds("x", 1.1, 2.0, threshold=1.0).outcome == "holds"
    assert exceeds_over_seeds("x", [0.5, 0.6, 0.55]).outcome == "holds"
    assert exceeds_over_seeds("x", [-0.5, -0.6, -0.55]).outcome == "fails"
    assert exceeds_over_seeds("x", [0.5, -0.4, 0.1]).outcome == "inconclusive"
    # one seed is never enough, however large the value (Figure 6's old strict "<")
    assert exceeds_over_seeds("x", [5.0]).outcome == "inconclusive"
    assert exceeds_over_seeds("x", [0.5, float("inf"), 0.4]).outcome == "not measurable"
    assert groups_ordered("x", [(0.5, 0.6)], [(0.1, 0.2)]).outcome == "holds"
    assert groups_ordered("x", [(0.1, 0.2)], [(0.5, 0.6)]).outcome == "fails"
    assert groups_ordered("x", [(0.1, 0.55)], [(0.5, 0.6)]).outcome == "inconclusive"
    assert groups_ordered("x", [], [(0.5, 0.6)]).outcome == "not measurable"
    assert trained(2.3, [1.0, 1.1, 0.9])
    assert not trained(2.2946, [2.2940, 2.2950, 2.2948])  # the ResNet at 60 steps
    assert not trained(2.3, [1.0, float("nan")])


def test_one_family_table_covers_the_zoo():
    assert set(FAMILY) == set(zoo.MODELS)


# ------------------------------------------------------------------ hand-set gap results


def _tuned(opt, losses, *, initial=2.0, at_edge=False):
    losses = tuple(float(x) for x in losses)
    mean = float(np.mean(losses))
    score = LrScore(0.1, mean, losses, tuple(None for _ in losses))
    return TunedOptimizer(opt, 0.1, mean, (score,), np.array([0, 10]),
                          np.array([initial, mean]), at_edge)


def _result(b, sgd, adam, **kw):
    s, a = _tuned("sgd", sgd, **kw), _tuned("adam", adam)
    return GapResult(b, 10, s, a, float(np.log(s.final_loss / a.final_loss)), None, None)


def _report(task, js, results):
    return GapReport(task, "hand", js[0], js[1], js[2], tuple(results))


LAG = ([1.0, 1.1, 0.9], [0.2, 0.22, 0.18])       # SGD lags clearly on every seed
LAG_BIG = ([1.5, 1.6, 1.4], [0.1, 0.11, 0.09])   # lags more
NO_LAG = ([0.2, 0.22, 0.18], [1.0, 1.1, 0.9])    # Adam lags
NOISY = ([1.0, 0.2, 0.6], [0.6, 0.6, 0.6])       # the seeds disagree
ONE_SEED = ([1.0], [0.2])


ZOO7 = ("resnet", "vgg", "mlp", "mixer", "vit", "gpt", "bert")


def _table1(js_of, sgd_of, *, at_edge=(), one_seed=False):
    """The zoo with hand-set JS0 intervals and SGD final losses (Adam ends at 0.2 from the
    initial loss 2.0, so the bounded gap of a model is ``(sgd − 0.2) / 2``)."""
    reps = []
    for t in ZOO7:
        s = sgd_of[t]
        runs = ([s], [0.2]) if one_seed else ([s, s * 1.02, s * 0.98], [0.2, 0.21, 0.19])
        reps.append(_report(t, js_of[t], [_result(8, *runs, at_edge=t in at_edge)]))
    return Table1("hand", tuple(reps), {}, {8: []}, {})


RISING = dict(zip(ZOO7, (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2), strict=True))   # with JS0 order
ZIGZAG = dict(zip(ZOO7, (1.2, 0.3, 1.0, 0.4, 0.8, 0.5, 0.6), strict=True))   # no order


def _js_rising(lo_cnn, hi_tf):
    """JS0 rising along ZOO7 (narrow intervals), CNNs first."""
    return {t: (v, v - 0.005, v + 0.005) for t, v in zip(
        ZOO7, np.linspace(lo_cnn, hi_tf, len(ZOO7)), strict=True)}


def test_fig7_rule_outcomes():
    f = fig7_gap_vs_js0.findings
    up = _js_rising(0.2, 0.8)
    down = {t: up[u] for t, u in zip(ZOO7, reversed(ZOO7), strict=True)}
    agree = f(_table1(up, RISING))
    assert agree.verdict == "agrees", agree.measured
    assert "bounded gap" in agree.measured and "n = 7 trained" in agree.measured
    assert f(_table1(down, RISING)).verdict == "disagrees"   # JS0 order and ρ both reversed
    assert f(_table1(up, ZIGZAG)).verdict == "partly"        # ρ's interval contains 0
    over = {t: (v, v - 0.5, v + 0.5) for t, (v, _, _) in up.items()}  # intervals overlap
    assert f(_table1(over, ZIGZAG)).verdict == "inconclusive"
    edge = f(_table1(over, RISING, at_edge=ZOO7[:4]))
    assert edge.verdict == NOT_MEASURABLE and "edge of its grid" in edge.measured
    # models whose runs did not train are left out of ρ, not counted: the two that break
    # the order are at a grid edge, the other five agree
    broken = dict(RISING, resnet=2.0, bert=0.21)
    assert f(_table1(up, broken)).verdict == "partly"
    kept = f(_table1(up, broken, at_edge=("resnet", "bert")))
    assert kept.verdict == "agrees" and "n = 5 trained" in kept.measured
    # every part of the claim is judged: JS0 by family and the correlation per batch size
    assert len(agree.parts) == 2


def test_fig7_judges_the_bounded_gap_not_the_log_ratio():
    """A model whose Adam nearly memorizes the pool has a huge ln ratio but a bounded gap no
    larger than the others': the rule ranks by the bounded gap."""
    up = _js_rising(0.2, 0.8)
    t = _table1(up, RISING)
    r = t.reports[0].results[0]
    assert r.rel_gap == pytest.approx(np.mean([(x - y) / 2.0 for x, y in zip(
        [0.3, 0.306, 0.294], [0.2, 0.21, 0.19], strict=True)]))
    reps = list(t.reports)
    memo = _result(8, [0.9, 0.91, 0.89], [1e-9, 1e-9, 1e-9])  # ln ratio ≈ 20
    reps[0] = _report("resnet", up["resnet"], [memo])
    res = fig7_gap_vs_js0.findings(Table1("hand", tuple(reps), {}, {8: []}, {}))
    assert memo.gap > 15 and memo.rel_gap < 0.46
    assert res.verdict == "partly"  # the lowest JS0 with the mid-sized bounded gap breaks ρ


def _finetune(sc_js, ft_js, sc_runs, ft_runs, **kw):
    sc = _report("gpt-dialect", sc_js, [_result(8, *sc_runs, **kw)])
    ft = _report("gpt-ft", ft_js, [_result(8, *ft_runs, **kw)])
    return FinetuneStudy(sc, ft)


def test_fig6_rule_outcomes():
    hi, lo = (0.2, 0.18, 0.22), (0.04, 0.03, 0.05)
    f = fig6_finetune.findings
    assert f(_finetune(hi, lo, LAG_BIG, LAG)).verdict == "agrees"
    assert f(_finetune(lo, hi, LAG, LAG_BIG)).verdict == "disagrees"
    assert f(_finetune(hi, lo, LAG, LAG_BIG)).verdict == "partly"
    assert f(_finetune((0.1, 0.0, 0.3), (0.1, 0.0, 0.3), ONE_SEED, ONE_SEED)
             ).verdict == "inconclusive"  # one seed: the noise is unknown
    untrained = ([1.99, 1.98, 2.0], [1.99, 1.98, 2.0])
    assert f(_finetune((0.1, 0.0, 0.3), (0.1, 0.0, 0.3), untrained, untrained)
             ).verdict == NOT_MEASURABLE


def _hetero(js_first, js_last, runs_first, runs_last, mixer_js, mixer_runs):
    scaled = Table1("hand", (_report("mlp-s1", js_first, [_result(8, *runs_first)]),
                             _report("mlp-s30", js_last, [_result(8, *runs_last)])),
                    {}, {}, {})
    return fig5_mlp_mixer.HeteroMixer(scaled, (1.0, 30.0), {},
                                      _report("mixer", mixer_js, [_result(8, *mixer_runs)]))


def test_fig5_rule_outcomes():
    lo, hi = (0.1, 0.08, 0.12), (0.5, 0.45, 0.55)
    f = fig5_mlp_mixer.findings
    assert f(_hetero(lo, hi, LAG, LAG_BIG, hi, LAG)).verdict == "agrees"
    assert f(_hetero(hi, lo, LAG_BIG, LAG, lo, NO_LAG)).verdict == "disagrees"
    # JS0 rises but the gap does not: half of the claim (the old rule ignored JS0)
    assert f(_hetero(lo, hi, LAG_BIG, LAG, hi, LAG)).verdict == "partly"
    over = (0.3, 0.1, 0.5)
    assert f(_hetero(over, over, NOISY, NOISY, over, NOISY)).verdict == "inconclusive"
    flat = ([1.99, 1.98, 2.0], [1.99, 1.98, 2.0])
    assert f(_hetero((0.3, float("nan"), 0.5), over, flat, flat, over, flat)
             ).verdict == NOT_MEASURABLE


def _ln(per_seed_fits):
    """PerturbationStudy per seed with the given {variant: (α, R² lin, R² log)}."""
    depths = (2, 4, 8)
    studies = []
    for fits in per_seed_fits:
        v = {k: (1.0, 2.0, 3.0) for k in fits}
        g = {k: GrowthFit(*x) for k, x in fits.items()}
        studies.append(PerturbationStudy(depths, 0.01, 1e-3, v, v, g, g))
    return fig_layernorm.LayerNormResult(studies[0], tuple(studies))


GOOD = {"postln": (1.0, 0.99, 0.80), "preln": (0.3, 0.80, 0.99), "admin": (0.35, 0.8, 0.98)}
BAD = {"postln": (0.3, 0.80, 0.99), "preln": (1.0, 0.99, 0.80), "admin": (-0.5, 0.99, 0.8)}


def test_layernorm_rule_outcomes():
    f = fig_layernorm.findings
    jitter = [{k: (a + 0.01 * s, b, c) for k, (a, b, c) in GOOD.items()} for s in range(3)]
    good = f(_ln(jitter))
    assert good.verdict == "agrees"
    assert len(good.parts) == 6  # Post-LN, Pre-LN, Admin for both perturbations
    assert f(_ln([BAD] * 3)).verdict == "disagrees"
    no_admin = {**GOOD, "admin": (1.0, 0.99, 0.8)}  # Admin stays with Post-LN
    assert f(_ln([no_admin, GOOD, no_admin])).verdict == "partly"
    assert f(_ln([GOOD, GOOD])).verdict == "inconclusive"  # two seeds
    missing = {k: v for k, v in GOOD.items() if k != "admin"}
    assert f(_ln([missing] * 3)).verdict == NOT_MEASURABLE


def _eps(small, large, at_edge=False):
    rows = [EpsRow("hetero", s, v, re_, re_, 0.0, 0.1, 10.0, 10.0, sp, at_edge)
            for v in ("adam",) for re_, sps in ((1e-4, small), (1e4, large))
            for s, sp in enumerate(sps)]
    return EpsResult(tuple(rows), {}, ("hetero",), (0, 1, 2), (1e-4, 1e4), 100, 1e-6)


def test_eps_rule_outcomes(monkeypatch):
    monkeypatch.setattr(fig_eps, "EPS_VARIANTS", ("adam",))
    f = fig_eps.findings
    assert f(_eps([5.0, 6.0, np.inf], [1.0, 1.1, 0.9])).verdict == "agrees"
    # 0×: Adam never reached the tolerance. That is no advantage (the old rule counted it).
    assert f(_eps([0.0, 0.0, 0.0], [5.0, 6.0, 7.0])).verdict == "disagrees"
    assert f(_eps([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])).verdict == "partly"
    assert f(_eps([5.0, 0.0, 5.0], [1.0, 5.0, 1.0])).verdict == "inconclusive"
    assert f(_eps([5.0, 5.0, 5.0], [1.0, 1.0, 1.0], at_edge=True)).verdict == NOT_MEASURABLE


def _batch(**curves):
    return {"budget": NS(curves=tuple(NS(label=k, shape=s, surge=s == "surge", eps=e,
                                         peak_batch=4) for k, (s, e) in curves.items()))}


def test_batch_rule_outcomes():
    f = fig_batch.findings
    assert f(_batch(sgd=("increasing", None), sign=("surge", None),
                    **{"adam ε=1e-3": ("surge", 1e-3), "adam ε=1e3": ("increasing", 1e3)})
             ).verdict == "agrees"
    assert f(_batch(sgd=("decreasing", None), sign=("surge", None),
                    **{"adam ε=1e-3": ("surge", 1e-3), "adam ε=1e3": ("surge", 1e3)})
             ).verdict == "partly"
    assert f(_batch(sgd=("decreasing", None), sign=("flat", None),
                    **{"adam ε=1e-3": ("flat", 1e-3), "adam ε=1e3": ("flat", 1e3)})
             ).verdict == "disagrees"
    assert f(_batch(**{"adam ε=1": ("flat", 1.0)})).verdict in ("disagrees", NOT_MEASURABLE)
    assert f(_batch(**{"adam ε=1": ("flat", 1.0)})).verdict == "disagrees"
    assert combine([p for p in f(_batch()).parts]) == NOT_MEASURABLE


def test_newton_rule_outcomes():
    f = fig_newton.findings

    def res(*ps):
        return NS(rows=tuple(NS(problem="p", noise="n", optimizer="adam", beta2=0.9, p=p,
                                err_gn=0.1) for p in ps))

    assert f(res(2.1, 1.9)).verdict == "agrees"
    assert f(res(2.1, 1.0)).verdict == "partly"
    assert f(res(1.0, 3.0)).verdict == "disagrees"


def _spec(name, lo, hi):
    nodes = np.tile(np.array([[lo, hi]]), (2, 1))
    return BlockSpectrum(name, 2, nodes, np.full((2, 2), 0.5), np.array([2, 2]),
                         np.array([0, 1]))


#: The log recipe at the zero threshold float32 products resolve (nets.CHECK_RECIPES).
COARSE = "log (zero threshold 1e-05)"


def _blockwise(cnn, tf, linear=None, coarse=None):
    # c: at 5e-7 of the largest, above float32's epsilon and below the check threshold
    spectra = {m: {"a": _spec("a", 1.0, 2.0), "b": _spec("b", 3.0, 4.0),
                   "c": _spec("c", 1e-6, 2e-6)} for m in ("resnet", "gpt")}
    log = {"resnet": cnn, "gpt": tf}
    return fig34_blockwise.Blockwise(spectra, {}, {m: v[0] if v else np.nan
                                                   for m, v in log.items()},
                                     {"log": log, "linear": linear or log,
                                      COARSE: coarse or log})


def test_fig34_rule_outcomes_and_recipe_invariance_report():
    lo, hi = (0.2, 0.15, 0.25), (0.6, 0.55, 0.65)
    f = fig34_blockwise.findings
    res = f(_blockwise(lo, hi, linear={"resnet": hi, "gpt": lo}))
    assert res.verdict == "agrees" and "linear: fails" in res.measured
    # the log recipe at a zero threshold float32 products resolve is reported beside it
    res = f(_blockwise(lo, hi, coarse={"resnet": hi, "gpt": lo}))
    assert res.verdict == "agrees" and f"{COARSE}: fails" in res.measured
    assert fig34_blockwise.RECIPES[COARSE].zero_rel == 1e-5
    # the table names the blocks the check threshold leaves out besides the numerically zero
    assert "| resnet | CNN | 3 | none | c |" in res.table
    assert f(_blockwise(hi, lo)).verdict == "disagrees"
    assert f(_blockwise((0.4, 0.1, 0.7), hi)).verdict == "inconclusive"
    assert f(_blockwise(None, hi)).verdict == NOT_MEASURABLE


def test_fig1_rule_outcomes():
    names = ("resnet", "vgg", "gpt")
    js = np.array([[0, 0.2, 0.2], [0.2, 0, 0.2], [0.2, 0.2, 0]])  # ratio 1
    f = fig1_full_spectra.findings
    spectra = {n: _spec(n, -1.0, 1.0) for n in names}

    def res(boot):
        return fig1_full_spectra.FullSpectra(spectra, js, names, tuple(boot))

    assert f(res([0.9, 1.0, 1.1, 1.2])).verdict == "agrees"
    assert f(res([1.5, 1.6, 1.8])).verdict == "disagrees"
    assert f(res([1.0, 1.2, 1.5])).verdict == "inconclusive"
    assert f(fig1_full_spectra.FullSpectra(spectra, js, names, ())).verdict == NOT_MEASURABLE


def test_fig7_table_has_every_recipe_and_block_set():
    from dataclasses import replace

    t = _table1(_js_rising(0.2, 0.8), RISING)
    table = [{"recipe": k, "block_set": b, "js0": 0.5, "low": 0.4, "high": 0.6}
             for k in ("log", "linear") for b in ("all", "matrices")]
    reps = tuple(replace(r, js0_table=tuple(table)) for r in t.reports)
    res = fig7_gap_vs_js0.findings(replace(t, reports=reps))
    assert "JS0 linear [95%]" in res.table and "| matrices |" in res.table
    assert "0.500 [0.400, 0.600]" in res.table
    assert "weight matrices only: log: part 1 inconclusive" in res.measured


def test_fig5_gap_parts_judge_the_bounded_gap_not_the_log_ratio():
    """At S = 30 Adam nearly memorizes the pool (ln ratio ≈ 20, far above S = 1's ≈ 1.6), but
    it removes a smaller share of the initial loss than SGD lags at S = 1: on the bounded gap
    SGD does not lag more at S = 30, and the part says so."""
    lo, hi = (0.1, 0.08, 0.12), (0.5, 0.45, 0.55)
    memo = ([0.5, 0.51, 0.49], [1e-9, 1.1e-9, 0.9e-9])   # Δ = 0.25, ln ratio ≈ 20
    res = fig5_mlp_mixer.findings(_hetero(lo, hi, LAG, memo, hi, LAG))  # LAG: Δ = 0.40
    part = next(p for p in res.parts if "more at S = 30" in p.name)
    assert part.outcome == "fails", part
    s30 = _result(8, *memo)
    assert s30.gap > 19 and s30.rel_gap == pytest.approx(0.25, abs=1e-3)
    assert "held-out n/a" in res.measured and "ln(L_SGD/L_Adam) = 20" in res.measured
