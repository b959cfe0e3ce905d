"""benchmarks/runner.py and benchmarks/problems.py: one method on one cell, in this process and
in a fresh one (``runner.py --cell``, what every spectra benchmark measures by), and the
problems they load."""

import argparse
import contextlib
import io

import numpy as np
import pytest
import torch

CELL = dict(model="mlp-xs", kind="full", probes=1, steps=31, threads=1, method="nets")


def test_a_fresh_process_gives_the_in_process_row(benchmark_script):
    """``measure`` runs ``runner.py --cell`` in a fresh process: the same cell, the same
    spectrum (31 steps on 31 parameters: λmax exact in both), its own timings and memory."""
    runner = benchmark_script("runner")
    here = runner.measure(CELL, in_process=True)
    there = runner.measure(CELL)
    assert "error" not in there, there
    assert {k: there[k] for k in CELL} == CELL
    assert set(here) <= set(there)
    assert there["top"]["full"] == pytest.approx(here["top"]["full"], rel=1e-9)
    assert there["seconds"] > 0 and there["peak_bytes"] > 0 and there["grad_s"] > 0
    # the gradient's warm runs are kept, and its time is their median
    meters = benchmark_script("meters")
    assert len(there["grad_runs"]) == meters.GRADIENT_REPEATS
    assert there["grad_s"] == pytest.approx(float(np.median(there["grad_runs"])))


def test_gradient_runs_are_warm_and_refuse_no_repeats(benchmark_script):
    """``gradient_runs`` times ``repeats`` gradients after an untimed one (the unit of a cost
    per product): the loss of each of the two batches is evaluated ``repeats + 1`` times, and
    ``repeats`` times are returned; fewer than one repeat is refused, naming the argument."""
    meters = benchmark_script("meters")
    model = torch.nn.Linear(3, 1)
    data = [(torch.ones(4, 3), torch.zeros(4, 1))] * 2
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return torch.nn.functional.mse_loss(out, y)

    runs = meters.gradient_runs(model, loss_fn, data, repeats=4)
    assert len(runs) == 4 and all(t > 0 for t in runs)
    assert len(calls) == 2 * (4 + 1)
    assert meters.gradient_seconds(model, loss_fn, data, repeats=1) > 0
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        meters.gradient_runs(model, loss_fn, data, repeats=0)


@pytest.mark.parametrize("method, package", [("eigenthings", "hessian_eigenthings"),
                                             ("curvlinops", "curvlinops")])
def test_a_peers_import_is_not_in_its_timed_runs(benchmark_script, method, package):
    """In a fresh process the peer's package is imported before its runs are timed, as nets
    is: ``run_imports`` (what the runs imported) does not name it."""
    pytest.importorskip(package)
    runner = benchmark_script("runner")
    row = runner.measure({**CELL, "method": method})
    assert "error" not in row, row
    assert package in runner.LIBRARIES[method]
    assert isinstance(row["run_imports"], list) and package not in row["run_imports"]


def test_a_failing_cell_is_an_error_row_naming_the_problem(benchmark_script):
    """A cell that cannot run is reported in its row, with the fix, in either process."""
    runner = benchmark_script("runner")
    bad = {**CELL, "model": "resnet"}
    for row in (runner.measure(bad, in_process=True), runner.measure(bad)):
        assert set(row) == {"error"}
        assert "unknown benchmark model 'resnet'" in row["error"]


def test_problems_know_their_names_and_leave_the_global_generator_alone(benchmark_script):
    """An unknown name is refused with the known ones; building a model seeds a private
    generator state, not the caller's."""
    problems = benchmark_script("problems")
    with pytest.raises(ValueError, match="expected one of mlp-xs, gpt"):
        problems.load("gpt3")
    pytest.importorskip("transformers")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = problems.load("gpt2-s")
    assert torch.equal(torch.get_rng_state(), state)
    b = problems.load("gpt2-s")  # the same weights and data each time
    for p, q in zip(a[0].parameters(), b[0].parameters(), strict=True):
        assert torch.equal(p, q)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a[2], b[2], strict=True))


def test_repeat_runs_a_short_run_again_and_keeps_the_first_peak(benchmark_script, monkeypatch):
    """A run under REPEAT_BELOW seconds is run REPEATS times in all, a longer one once; the row's
    peak is the first run's, the larger of a nets run's own first-step reading and the meter's,
    and every run's report is kept."""
    runner = benchmark_script("runner")
    readings = iter([100, 150, 400, 170, 180])  # now(), then peak() after each run

    def meters(device):
        return (lambda: next(readings)), (lambda: next(readings))

    monkeypatch.setattr(runner.meters, "memory_meters", meters)
    reports = iter([{"first_step_peak_bytes": 300, "n": 0}, {"n": 1}, {"n": 2}])
    done = runner.repeat(lambda: next(reports), torch.device("cpu"))
    assert len(done.runs) == runner.REPEATS == 3
    assert [e["n"] for e in done.extras] == [0, 1, 2]
    assert done.before == 100
    assert (done.first_peak, done.steady) == (300, 150)  # the run's own reading was higher
    assert done.every_peak == 400
    monkeypatch.setattr(runner, "REPEAT_BELOW", 0.0)  # every run is long: one run
    readings = iter([0, 5])
    done = runner.repeat(lambda: {}, torch.device("cpu"))
    assert len(done.runs) == 1 and done.first_peak == done.every_peak == 5


def test_round_order_alternates_and_every_round_measures_everything(benchmark_script):
    """Even rounds keep the order, odd ones reverse it; each round holds every item once."""
    runner = benchmark_script("runner")
    items = ["nets", "eigenthings", "curvlinops"]
    assert runner.round_order(items, 0) == items
    assert runner.round_order(items, 1) == items[::-1]
    assert runner.round_order(items, 2) == items
    assert runner.round_order((), 1) == []
    assert runner.round_order(items, 3) is not items


def test_each_model_isolates_failures_and_measures_here_when_asked(benchmark_script, tmp_path):
    """A model whose process fails gives its ``failed`` row and the others go on; with
    ``in_process`` the script is not run at all."""
    runner = benchmark_script("runner")
    script = tmp_path / "one.py"
    script.write_text("import json, sys\nname = sys.argv[1]\nif name == 'bad':\n"
                      "    raise SystemExit('bad model: use another')\n"
                      "print(json.dumps([{'model': name, 'where': 'there'}]))\n")
    rows = runner.each_model(str(script), ["a", "bad", "b"], lambda m: [m],
                             lambda m: [{"model": m, "where": "here"}], in_process=False,
                             failed=lambda m, e: {"model": m, "error": e})
    assert rows == [{"model": "a", "where": "there"},
                    {"model": "bad", "error": "bad model: use another"},
                    {"model": "b", "where": "there"}]
    here = runner.each_model(str(tmp_path / "missing.py"), ["a"], lambda m: [m],
                             lambda m: [{"model": m, "where": "here"}], in_process=True,
                             failed=lambda m, e: {"model": m, "error": e})
    assert here == [{"model": "a", "where": "here"}]


def test_torch_threads_restores_the_callers_count_even_on_error(benchmark_script):
    meters = benchmark_script("meters")
    before = torch.get_num_threads()
    inside = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="boom"), meters.torch_threads(inside):
        assert torch.get_num_threads() == inside
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_reusable_needs_the_same_code_and_enough_rounds(benchmark_script):
    """``--resume`` keeps a row only if this code measured it in at least the rounds asked;
    a row without ``rounds`` counts as one round."""
    reports = benchmark_script("reports")
    row = {"code": "abc", "rounds": 3}
    assert reports.reusable(row, "abc", 3) and reports.reusable(row, "abc", 1)
    assert not reports.reusable(row, "abc", 5)
    assert not reports.reusable(row, "def", 1)
    assert reports.reusable({"code": "abc"}, "abc", 1)
    assert not reports.reusable({"code": "abc"}, "abc", 2)
    assert not reports.reusable({"rounds": 9}, "abc", 1)


@pytest.mark.parametrize("argv, fault", [
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--render-only"], "--render-only needs --json"),
])
def test_round_options_refuse_what_cannot_run_and_say_why(benchmark_script, argv, fault):
    """The interleaved-rounds comparisons share their options and their one check."""
    reports = benchmark_script("reports")
    ap = argparse.ArgumentParser(prog="bench")
    reports.add_round_options(ap, "versions")
    good = ap.parse_args(["--rounds", "2", "--render-only", "--json", "rows.json"])
    reports.check_round_options(ap, good)  # nothing to refuse
    assert (good.rounds, good.out, good.cell) == (2, None, None)
    rounds = next(a for a in ap._actions if a.dest == "rounds")
    assert rounds.help == "fresh processes per version and cell, the versions interleaved"
    err = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(err):
        reports.check_round_options(ap, ap.parse_args(argv))
    assert fault in err.getvalue()
