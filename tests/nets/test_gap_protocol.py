"""The bounded gap metric, held-out pools and the first-seed tuning protocol of the gap study."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nets.studies.gap as gap
from nets.studies.gap import GapProfile, measure_gap, relative_gap
from nets.studies.pools import HELDOUT_SEED, POOL_SEED, make_pool
from nets.studies.tasks import Task, zoo_task
from nets.studies.training import Pool, TrainConfig, pool_loss, train

from .test_training import tiny_factory


def heldout_task() -> Task:
    """A tiny task with 64 training samples and 32 held-out samples of the same rule."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return Task("tiny-ho", "digits", tiny_factory, lambda: [(x[:32], y[:32])],
                {"test": "tiny-heldout"}, make_pool=lambda n: Pool(x[:n], y[:n]),
                make_heldout=lambda n: Pool(x[64:64 + n], y[64:64 + n]))


def test_relative_gap_by_hand():
    assert relative_gap(1.5, 0.5, 2.0) == pytest.approx(0.5)
    assert relative_gap(0.5, 1.5, 2.0) == pytest.approx(-0.5)
    assert relative_gap(1.0, 1.0, 2.0) == 0.0
    assert math.isnan(relative_gap(math.inf, 0.5, 2.0))
    assert math.isnan(relative_gap(1.0, math.nan, 2.0))
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="initial_loss"):
            relative_gap(1.0, 0.5, bad)


@given(st.floats(1e-6, 1e6), st.floats(0, 1), st.floats(0, 1))
def test_relative_gap_is_bounded_where_the_log_ratio_is_not(l0, fs, fa):
    """Both losses in [0, L0]: the relative gap lies in [-1, 1] and is the difference of the two
    relative reductions; the log ratio grows without bound as Adam's loss tends to 0."""
    d = relative_gap(fs * l0, fa * l0, l0)
    assert -1 - 1e-12 <= d <= 1 + 1e-12
    assert d == pytest.approx((l0 - fa * l0) / l0 - (l0 - fs * l0) / l0, abs=1e-12)
    assert relative_gap(0.5 * l0, 1e-300, l0) <= 0.5 and gap.gap_metric(0.5 * l0, 1e-300) > 600


def test_profile_checks_protocol_heldout_and_grid_order():
    base = dict(steps=4, sgd_lrs=(0.1,), adam_lrs=(1e-2,), seeds=(0,), batch_sizes=(4,),
                pool_size=16, eval_every=2, js_steps=2, js_probes=1)
    with pytest.raises(ValueError, match="protocol"):
        GapProfile("x", **base, protocol="random")
    with pytest.raises(ValueError, match="heldout_size"):
        GapProfile("x", **base, heldout_size=-1)
    with pytest.raises(ValueError, match="increasing"):
        GapProfile("x", **{**base, "sgd_lrs": (0.1, 0.01)})
    assert GapProfile("x", **base).settings()["protocol"] == "grid"


def test_train_evaluates_the_heldout_pool_at_every_evaluation():
    task = heldout_task()
    pool, held = task.pool(64), task.heldout_pool(32)
    r = train(task.build, pool, TrainConfig("adam", 1e-2, 10, 8, eval_every=5), heldout=held)
    assert r.heldout_losses.shape == r.eval_losses.shape == (3,)
    model, loss_fn = task.build(0)
    assert r.heldout_losses[0] == pool_loss(model, loss_fn, held)  # same model at step 0
    assert not np.array_equal(r.heldout_losses, r.eval_losses)
    plain = train(task.build, pool, TrainConfig("adam", 1e-2, 10, 8, eval_every=5))
    assert plain.heldout_losses.size == 0
    assert plain.eval_losses.tolist() == r.eval_losses.tolist()  # evaluation does not perturb
    with pytest.raises(TypeError, match="heldout"):
        train(task.build, pool, TrainConfig("adam", 1e-2, 2, 8), heldout=(1, 2))


def test_zoo_heldout_pool_is_a_fresh_draw_of_the_same_data():
    t = zoo_task("mlp")
    pool, held = t.pool(32), t.heldout_pool(32)
    assert held.inputs.shape == pool.inputs.shape
    assert torch.equal(held.inputs, make_pool("digits", 32, seed=HELDOUT_SEED).inputs)
    assert HELDOUT_SEED != POOL_SEED
    flat_p, flat_h = pool.inputs.flatten(1), held.inputs.flatten(1)
    assert torch.cdist(flat_h, flat_p).min() > 0  # no held-out image is a training image
    custom = Task("c", "digits", tiny_factory, list, {"c": 1}, make_pool=lambda n: pool)
    assert custom.heldout_pool(8) is None  # custom data, no held-out builder: none


SEEDS = (0, 1, 2)
GRID = dict(steps=12, sgd_lrs=(1e-3, 1e-2, 0.1, 1.0, 1e4), adam_lrs=(1e-4, 1e-3, 1e-2, 0.1, 1.0),
            seeds=SEEDS, batch_sizes=(8,), pool_size=64, eval_every=6, js_steps=3,
            js_probes=2, heldout_size=32)


def test_first_seed_protocol_runs_fewer_and_picks_the_full_grid_rate(tmp_path, gap_train_calls):
    calls = gap_train_calls
    task = heldout_task()
    quick = measure_gap(task, GapProfile("fs", **GRID, protocol="first-seed"),
                        cache_dir=tmp_path, with_js0=False)
    n_first = calls["n"]
    n_rates = len(GRID["sgd_lrs"]) + len(GRID["adam_lrs"])
    assert n_first < len(SEEDS) * n_rates  # fewer runs than the whole grid with every seed
    for opt in (quick.results[0].sgd, quick.results[0].adam):
        lrs = [g.lr for g in opt.grid]
        i = lrs.index(opt.lr)
        assert opt.tuned_score.seeds == SEEDS
        for j in (i - 1, i + 1):  # flanked by complete rates, the edge, or a diverged rate
            if 0 <= j < len(lrs):
                g = opt.grid[j]
                assert g.seeds == SEEDS or g.diverged_steps[0] is not None
        assert all(g.seeds[:1] == (0,) for g in opt.grid)  # the first seed ran every rate
    assert any(g.seeds == (0,) for o in (quick.results[0].sgd, quick.results[0].adam)
               for g in o.grid)  # rates far from the optimum: the first seed only
    full = measure_gap(task, GapProfile("grid", **GRID), cache_dir=tmp_path, with_js0=False)
    assert calls["n"] == len(SEEDS) * n_rates  # the grid reused every run already made
    for a, b in zip((quick.results[0].sgd, quick.results[0].adam),
                    (full.results[0].sgd, full.results[0].adam), strict=True):
        assert a.lr == b.lr and a.final_loss == b.final_loss and not b.at_edge


def test_gap_results_carry_the_bounded_metrics_by_seed(tmp_path):
    rep = measure_gap(heldout_task(), GapProfile("g", **{**GRID, "sgd_lrs": (0.01, 0.1, 1.0),
                                                          "adam_lrs": (1e-3, 1e-2, 0.1)}),
                      cache_dir=tmp_path, with_js0=False)
    r = rep.results[0]
    s, a = r.sgd.tuned_score, r.adam.tuned_score
    assert s.initial_losses == a.initial_losses  # same seeds, same initializations
    want = [(x - y) / z for x, y, z in zip(s.final_losses, a.final_losses, s.initial_losses,
                                          strict=True)]
    assert r.seed_relative_gaps().tolist() == pytest.approx(want, rel=1e-12)
    assert r.rel_gap == pytest.approx(np.mean(want), rel=1e-12)
    held = [(x - y) / z for x, y, z in zip(s.heldout_final, a.heldout_final, s.heldout_initial,
                                          strict=True)]
    assert r.seed_relative_gaps("heldout").tolist() == pytest.approx(held, rel=1e-12)
    assert r.heldout_rel_gap == pytest.approx(np.mean(held), rel=1e-12)
    assert r.adam.heldout_curve.shape == r.adam.curve.shape
    assert r.adam.heldout_curve[-1] == pytest.approx(np.mean(a.heldout_final), rel=1e-12)
    doc = rep.to_dict()
    assert doc["heldout_rel_gap"]["8"] == r.heldout_rel_gap
    assert doc["results"][0]["sgd"]["grid"][0]["heldout_final"]
    with pytest.raises(ValueError, match="data"):
        r.seed_relative_gaps("test")
    no_held = measure_gap(heldout_task(), GapProfile("g", **{**GRID, "heldout_size": 0,
                                                              "sgd_lrs": (0.1,),
                                                              "adam_lrs": (1e-2,)}),
                          cache_dir=tmp_path, with_js0=False)
    assert math.isnan(no_held.results[0].heldout_rel_gap)
    assert np.isfinite(no_held.results[0].rel_gap)


def test_first_seed_without_neighbours_runs_the_other_seeds_at_the_choice_only(tmp_path):
    prof = GapProfile("fs0", **{**GRID, "sgd_lrs": (1e-3, 1e-2, 0.1), "adam_lrs": (1e-3, 1e-2),
                                "steps": 6, "eval_every": 3},
                      protocol="first-seed", neighbours=0)
    rep = measure_gap(heldout_task(), prof, cache_dir=tmp_path, with_js0=False)
    assert len(list(tmp_path.glob("train-*.npz"))) == 5 + 2 * (len(SEEDS) - 1)
    for opt in (rep.results[0].sgd, rep.results[0].adam):
        firsts = [g.final_losses[0] for g in opt.grid]
        assert opt.lr == opt.grid[int(np.argmin(firsts))].lr  # the first seed's choice
        assert opt.tuned_score.seeds == SEEDS
        assert sum(g.seeds == SEEDS for g in opt.grid) == 1
    with pytest.raises(ValueError, match="neighbours"):
        GapProfile("x", **{**GRID, "neighbours": -1})
