"""The ladder figure's verdict parts on hand-set ladder points (no computation)."""

import math
from pathlib import Path

from figures import fig_ladder
from nets.studies.predictor import LADDER_EVIDENCE
from nets.zoo.families import FAMILIES, LADDER_FAMILIES

FIXED = {"gpt": 0.90, "bert": 0.88, "vit": 0.86, "mixer": 0.80, "mlp": 0.75, "resnet": 0.70,
         "vgg": 0.65}


def _point(fam, size, js, gap=None, edge=False):
    gaps = {} if gap is None else {"64": {"gap": gap, "sgd_seed_std": 0.01,
                                          "adam_seed_std": 0.01, "sgd_at_edge": edge,
                                          "adam_at_edge": False, "seeds": 3}}
    return {"family": fam, "size": size, "name": f"{fam}-{size}", "profile": "ladder",
            "parameters": 1000 * 10 ** size, "js0": js, "js0_low": js - 0.01,
            "js0_high": js + 0.01, "gaps": gaps, "gap_skipped": None if gaps else "JS0 only"}


def _res(points, best_spearman=None):
    cand = {"held_out": {"n": 3 if best_spearman else 0, "accuracy": 1.0,
                         "spearman": best_spearman}}
    return {"points": points, "validation": {"best": "js0:log", "candidates": {"js0:log": cand}},
            "planned": {f: 2 for f in LADDER_FAMILIES},
            "batch_sizes": sorted({int(b) for p in points for b in p["gaps"]})}


def test_orderings_that_hold_at_both_sizes_agree():
    pts = [_point(f, s, FIXED[f] + 0.001 * s, gap=5 * FIXED[f] if s == 0 else None)
           for f in FAMILIES for s in (0, 1)]
    sp = {"rho": 1.0, "low": 0.5, "high": 1.0, "n": 3}
    f = fig_ladder.findings(_res(pts, sp))
    assert [p.outcome for p in f.parts] == ["holds"] * 5 and f.verdict == "agrees"
    assert "JS0 only at gpt-1" in f.measured and "JS0 only" in f.table
    assert "size 0: +0.160; size 1: +0.160" in f.measured  # vit 0.86 (+0.001) vs resnet 0.70


def test_a_reversed_ordering_at_the_top_size_fails_and_edges_are_left_out():
    pts = [_point(f, 0, FIXED[f], gap=5 * FIXED[f], edge=f == "gpt") for f in FAMILIES]
    pts += [_point(f, 1, 1.6 - FIXED[f]) for f in FAMILIES]  # every ranking reversed
    f = fig_ladder.findings(_res(pts))
    out = {p.name: p.outcome for p in f.parts}
    assert out["at ladder size 0, every Transformer (bert, gpt, vit) has a larger JS0 than "
               "every CNN (resnet, vgg)"] == "holds"
    assert out["at ladder size 1, every Transformer (bert, gpt, vit) has a larger JS0 than "
               "every CNN (resnet, vgg)"] == "fails"
    assert "1 of them with a tuned rate at a grid edge" in f.measured
    corr = next(p for p in f.parts if p.name.startswith("JS0 ranks"))
    assert "n = 6" in corr.detail  # the edge point (gpt) is not in the correlation
    assert f.parts[-1].outcome == "not measurable" and f.verdict == "partly"


def test_missing_sizes_are_not_measurable_and_listed():
    pts = [_point(f, 0, FIXED[f]) for f in FAMILIES if f not in ("vgg", "resnet")]
    f = fig_ladder.findings(_res(pts))
    assert f.verdict == "not measurable at this budget"
    assert "vgg[0]" in f.measured and "gpt[1]" in f.measured and "hf-gpt2[0]" in f.measured
    assert all(math.isfinite(p["js0"]) for p in pts)


def test_the_settings_name_the_packaged_evidence_relative_to_the_packages():
    """The settings (the cache key, printed in the report) name the evidence relative to the
    folder of the packages, not by this checkout's absolute path, and compute reads it."""
    settings = fig_ladder.SPEC.settings_for("quick")
    assert settings["evidence"] == "nets/studies/evidence_ladder.json"
    assert not Path(settings["evidence"]).is_absolute()
    res = fig_ladder.compute(**settings)
    assert res["points"]
    same = fig_ladder.compute(evidence=str(LADDER_EVIDENCE), digest=settings["digest"])
    assert same["points"] == res["points"]
