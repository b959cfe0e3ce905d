"""Tuning, gap metric, cache reuse, Spearman intervals, Table 1, and `nets gap` end to end."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

import nets.cli.app as cli
import nets.studies.gap as gap
from labkit.cache import cached
from nets.studies.correlation import spearman
from nets.studies.gap import GapProfile, gap_metric, measure_gap, tune
from nets.studies.table1 import table1
from nets.studies.tasks import Task
from nets.studies.training import Pool

from .test_training import tiny_factory


def tiny_task(name="tiny", scale=1.0) -> Task:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    def factory(seed):
        model, loss = tiny_factory(seed)
        with torch.no_grad():
            model[0].weight.mul_(scale)
        return model, loss

    return Task(name, "digits", factory, lambda: [(x[:32], y[:32]), (x[32:], y[32:])],
                {"test": "tiny", "scale": scale}, make_pool=lambda n: Pool(x[:n], y[:n]))


TINY = GapProfile("tiny", steps=20, sgd_lrs=(0.1, 1e4), adam_lrs=(1e-3, 3e-2), seeds=(0, 1),
                  batch_sizes=(4, 16), pool_size=64, eval_every=5, js_steps=4, js_probes=2)


def test_tuning_excludes_diverged_rates(tmp_path):
    t = tune(tiny_task(), "sgd", (0.1, 1e4), batch_size=8, steps=20, seeds=(0, 1),
             pool_size=64, eval_every=5, cache_dir=tmp_path)
    big = t.grid[1]
    assert big.diverged and big.mean_final_loss == math.inf
    assert all(s is not None for s in big.diverged_steps)
    assert t.lr == 0.1 and math.isfinite(t.final_loss)
    assert t.final_loss == pytest.approx(np.mean(t.grid[0].final_losses))
    assert t.curve[-1] == pytest.approx(t.final_loss)


def test_all_diverged_is_reported_not_raised(tmp_path):
    t = tune(tiny_task(), "sgd", (1e4, 1e5), batch_size=8, steps=10, seeds=(0,),
             pool_size=64, eval_every=5, cache_dir=tmp_path)
    assert t.all_diverged and math.isnan(t.lr)
    assert gap_metric(t.final_loss, 1.0) == math.inf


def test_gap_metric():
    assert gap_metric(2.0, 1.0) == pytest.approx(math.log(2))
    assert gap_metric(1.0, 2.0) < 0
    assert math.isnan(gap_metric(1.0, math.inf))
    with pytest.raises(ValueError, match="positive"):
        gap_metric(0.0, 1.0)


def test_measure_gap_and_cache_reuse(tmp_path, gap_train_calls):
    task = tiny_task()
    calls = gap_train_calls
    rep = measure_gap(task, TINY, cache_dir=tmp_path)
    n_runs = 2 * 4 * 2
    assert calls["n"] == n_runs
    assert 0 <= rep.js0 <= 1 and rep.js0_low <= rep.js0_high
    assert [r.batch_size for r in rep.results] == [4, 16]
    for r in rep.results:
        assert r.gap == pytest.approx(math.log(r.sgd.final_loss / r.adam.final_loss))
        assert r.sgd.lr == 0.1  # 1e4 diverges and is excluded
    again = measure_gap(task, TINY, cache_dir=tmp_path)
    assert calls["n"] == n_runs  # everything came from the cache
    assert again.to_dict() == rep.to_dict()
    assert len(list(tmp_path.glob("train-*.npz"))) == n_runs
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_keys_on_settings(tmp_path):
    calls = []
    for s in ({"a": 1}, {"a": 1}, {"a": 2}):
        cached("x", s, lambda s=s: (calls.append(s), {"v": s["a"]})[1], directory=tmp_path,
               modules=("nets.studies.gap",))
    assert calls == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="kind"):
        cached("../evil", {}, dict, directory=tmp_path, modules=("nets.studies.gap",))


def test_spearman_against_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    y = x + 0.8 * rng.standard_normal(40)
    res = spearman(x, y, rng=np.random.default_rng(1), n_boot=1000)
    ref = stats.spearmanr(x, y)
    assert res.rho == pytest.approx(ref.statistic, abs=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    boot = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic,
                           paired=True, vectorized=False, n_resamples=1000,
                           method="percentile", random_state=np.random.default_rng(2))
    ci = boot.confidence_interval
    assert res.low == pytest.approx(ci.low, abs=0.05)
    assert res.high == pytest.approx(ci.high, abs=0.05)
    z, se = np.arctanh(res.rho), np.sqrt(1.06 / 37)
    assert res.fisher_low == pytest.approx(np.tanh(z - 1.959964 * se), abs=1e-5)
    assert res.low < res.rho < res.high
    perfect = spearman([1, 2, 3, 4], [10, 20, 40, 80], rng=np.random.default_rng(0))
    assert perfect.rho == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 pairs"):
        spearman([1, 2], [1, 2], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        spearman([1, 2, np.inf], [1, 2, 3], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        spearman([1, 2, 3], [1, 2, 3], rng=0)


def test_table1_on_tiny_tasks(tmp_path):
    tasks = [tiny_task(f"tiny{i}", scale) for i, scale in enumerate((0.3, 1.0, 3.0))]
    prof = GapProfile("t", steps=10, sgd_lrs=(0.1,), adam_lrs=(1e-2,), seeds=(0,),
                      batch_sizes=(8, 16), pool_size=64, eval_every=5, js_steps=3, js_probes=2)
    tab = table1(tasks, prof, cache_dir=tmp_path)
    assert tab.batch_sizes == (8, 16)
    rows = tab.rows()
    assert [r["task"] for r in rows] == ["tiny0", "tiny1", "tiny2"] and "gap_b8" in rows[0]
    for b, c in tab.correlations.items():
        js = [r["js0"] for r in rows]
        gaps = [r[f"gap_b{b}"] for r in rows]
        assert c.n == 3 and c.rho == pytest.approx(stats.spearmanr(js, gaps).statistic)
    doc = tab.to_dict()
    assert set(doc["spearman"]) == {"8", "16"}


@pytest.fixture
def short_quick(monkeypatch):
    """The real quick profile with its steps cut, to keep the suite fast."""
    q = gap.PROFILES["quick"]
    monkeypatch.setitem(gap.PROFILES, "quick", GapProfile(
        "quick", steps=10, sgd_lrs=q.sgd_lrs, adam_lrs=q.adam_lrs, seeds=q.seeds,
        batch_sizes=q.batch_sizes, pool_size=q.pool_size, eval_every=5, js_steps=3,
        js_probes=2))


def test_hetero_cli(tmp_path, capsys, short_quick):
    assert cli.main(["hetero", "--scales", "1", "10", "--quick", "--json", "--quiet",
                     "--cache", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in doc["rows"]] == ["mlp-s1", "mlp-s10"]
    assert doc["scales"]["mlp-s10"] == pytest.approx([0.1, 10 ** (-1 / 3), 10 ** (1 / 3), 10])
    assert cli.main(["hetero", "--scales", "0.5", "--quick", "--quiet"]) == 2
    assert "S must be" in capsys.readouterr().err


def test_gap_cli_quick_json(tmp_path, capsys, short_quick):
    # the real quick profile, on the zoo MLP, end to end
    assert cli.main(["gap", "--model", "mlp", "--quick", "--json", "--quiet", "--cache",
                     str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0 <= doc["js0"] <= 1
    assert set(doc["gap"]) == {"8", "64"}
    for b in ("8", "64"):
        assert set(doc["tuned"][b]) == {"sgd", "adam"}
        assert doc["tuned"][b]["sgd"]["lr"] in gap.PROFILES["quick"].sgd_lrs
    for r in doc["results"]:
        for opt in ("sgd", "adam"):
            assert r[opt]["lr"] > 0 and r[opt]["final_loss"] > 0
        sgd = next(g for g in r["sgd"]["grid"] if g["lr"] == r["sgd"]["lr"])
        adam = next(g for g in r["adam"]["grid"] if g["lr"] == r["adam"]["lr"])
        want = np.mean([(x - y) / z for x, y, z in zip(
            sgd["final_losses"], adam["final_losses"], sgd["initial_losses"], strict=True)])
        assert r["rel_gap"] == pytest.approx(want, rel=1e-12)
        assert doc["rel_gap"][str(r["batch_size"])] == r["rel_gap"]
    assert cli.main(["gap", "--model", "mlp", "--quick", "--quiet", "--cache",
                     str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "gap ln(S/A)" in out and "Δ (S−A)/L0" in out
    assert cli.main(["gap", "--model", "alexnet", "--quick", "--quiet"]) == 2
    assert "unknown task" in capsys.readouterr().err




def test_task_js0_table_covers_every_recipe_and_block_set(tmp_path):
    """One engine JS0 (no fallback): the table has every recipe × block set, each with its own
    bootstrap interval; the matrices set holds the weight matrices only, and the headline row is
    the log recipe on all blocks."""
    import nets
    from nets.engine.density import RECIPES

    task = tiny_task()
    res = gap.task_js0(task, lanczos_steps=4, probes=3, cache_dir=tmp_path)
    table = res["table"]
    assert [(r["recipe"], r["block_set"]) for r in table] == [
        (k, b) for k in (*RECIPES, *nets.CHECK_RECIPES) for b in nets.BLOCK_SETS]
    model, loss_fn = task.build(0)
    n_params = len(list(model.parameters()))
    n_matrices = sum(p.ndim >= 2 for p in model.parameters())
    for r in table:
        assert r["n_blocks"] == (n_params if r["block_set"] == "all" else n_matrices)
        if r["recipe"] == "lambda10":  # 4 Lanczos steps: fewer than 10 Ritz values
            assert "at least 10" in r["error"] and r["js0"] is None
        elif r["n_blocks"] >= 2:
            assert 0 <= r["low"] <= r["high"] <= 1 and 0 <= r["js0"] <= 1
    head = next(r for r in table if r["recipe"] == "log" and r["block_set"] == "all")
    assert (res["js0"], res["low"], res["high"]) == (head["js0"], head["low"], head["high"])
    assert res["recipe"] == "log"
    spectra = nets.blockwise_spectrum(model, loss_fn, task.spectrum_batches(), lanczos_steps=4,
                                      probes=3, seed=0)
    # the same spectra up to float32 round-off: the auto product mode is chosen by timing on
    # the first batch, and the modes agree to round-off, not bitwise
    assert res["js0"] == pytest.approx(nets.js0(spectra), rel=1e-5)
    # the check recipe's row is JS0 at its own (coarser) zero threshold, from the same spectra
    (name, check), = nets.CHECK_RECIPES.items()
    row = next(r for r in table if r["recipe"] == name and r["block_set"] == "all")
    assert row["js0"] == pytest.approx(nets.js0(spectra, check), rel=1e-5)


def test_task_js0_headline_under_a_recipe_of_its_own(tmp_path):
    """A headline recipe that is none of the table's gets its own JS0 (not a table row's),
    with the same spectra and bootstrap seed as the table."""
    import nets

    own = nets.DensityRecipe(width=0.3)
    res = gap.task_js0(tiny_task(), lanczos_steps=4, probes=3, cache_dir=tmp_path, recipe=own)
    log = next(r for r in res["table"] if r["recipe"] == "log" and r["block_set"] == "all")
    assert res["recipe"] == own.label != "log"
    assert 0 <= res["low"] <= res["js0"] <= res["high"] <= 1
    assert res["js0"] != log["js0"]


def test_training_cache_keys_on_thread_count(tmp_path):
    """Runs are reproducible bitwise for a seed and a thread count (not across thread counts:
    float reductions change order), so the thread count is part of the cache key."""
    from nets.studies.training import TrainConfig

    cfg = TrainConfig("adam", 1e-2, 6, 8, seed=0, eval_every=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = gap.train_cached(tiny_task(), cfg, pool_size=64, cache_dir=tmp_path)
        again = gap.train(tiny_task().build, tiny_task().pool(64), cfg)
        torch.set_num_threads(2)
        gap.train_cached(tiny_task(), cfg, pool_size=64, cache_dir=tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert a.eval_losses.tolist() == again.eval_losses.tolist()  # bitwise, same thread count
    assert len(list(tmp_path.glob("train-*.npz"))) == 2


def _tampered_task(*, weights: float = 1.0, data_shift: float = 0.0) -> Task:
    """``tiny_task`` behind the SAME cache key, with other initial weights or other data (what
    an edited zoo or data file outside the task's modules would do)."""
    base = tiny_task()

    def build(seed):
        model, loss = base.build(seed)
        with torch.no_grad():
            model[0].weight.mul_(weights)
        return model, loss

    def pool(n):
        p = base.pool(n)
        return Pool(p.inputs + data_shift, p.targets)

    batches = [(x + data_shift, y) for x, y in base.spectrum_batches()]
    return Task("tiny", "digits", build, lambda: batches, {"test": "tiny", "scale": 1.0},
                make_pool=pool)


@pytest.mark.parametrize("tamper", [{"weights": 1.5}, {"data_shift": 0.25}])
def test_training_cache_entry_of_other_model_or_data_is_reported_and_recomputed(tmp_path,
                                                                                 tamper):
    from labkit.cache import CacheWarning
    from nets.studies.training import TrainConfig

    cfg = TrainConfig("adam", 1e-2, 6, 8, seed=0, eval_every=3)
    first = gap.train_cached(tiny_task(), cfg, pool_size=64, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("train-*.npz")
    assert _tampered_task() == tiny_task()  # the same key: only the fingerprint can tell
    with pytest.warns(CacheWarning, match=rf"{entry.name}.*other fingerprint"):
        other = gap.train_cached(_tampered_task(**tamper), cfg, pool_size=64,
                                 cache_dir=tmp_path)
    fresh = gap.train(_tampered_task(**tamper).build, _tampered_task(**tamper).pool(64), cfg)
    assert other.eval_losses.tolist() == fresh.eval_losses.tolist()  # recomputed, not reused
    assert other.eval_losses.tolist() != first.eval_losses.tolist()
    # the recomputed entry replaced the stale one and is now a hit for the tampered inputs
    assert list(tmp_path.glob("train-*.npz")) == [entry]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again = gap.train_cached(_tampered_task(**tamper), cfg, pool_size=64, cache_dir=tmp_path)
    assert again.eval_losses.tolist() == other.eval_losses.tolist()


def test_js0_cache_entry_of_other_model_or_data_is_reported_and_recomputed(tmp_path):
    from labkit.cache import CacheWarning

    first = gap.task_js0(tiny_task(), lanczos_steps=4, probes=2, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("js0-*.npz")
    for tamper in ({"weights": 3.0}, {"data_shift": 0.5}):
        with pytest.warns(CacheWarning, match=rf"{entry.name}.*other fingerprint"):
            other = gap.task_js0(_tampered_task(**tamper), lanczos_steps=4, probes=2,
                                 cache_dir=tmp_path)
        assert other["js0"] != first["js0"]
