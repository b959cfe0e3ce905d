"""benchmarks/bench_groups.py: the grouping rules it compares, its ratios and its command line."""

import contextlib
import io
import json

import pytest
import torch

from nets.engine.blocks import resolve_blocks
from nets.engine.budget import LEAN_SHARE
from nets.engine.hvp import BlockHVP

MIB = 2**20


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_groups")


def _row(seconds, rise_mib, runs=None, rule="one-block"):
    return {"model": "m", "probes": 3, "steps": 10, "rule": rule, "groups": 4,
            "seconds": seconds, "runs": runs or [seconds], "peak_extra_bytes": rise_mib * MIB,
            "load": 0.5}


def test_cells_parse_and_bad_ones_are_named(bench):
    assert bench.parse_cells("gpt2-m:3:10, gpt:1:30") == [("gpt2-m", 3, 10), ("gpt", 1, 30)]
    for bad in ("gpt2-m:3", "gpt:0:30", "gpt:x:3", ":1:2", "gpt:1:2:3"):
        with pytest.raises(ValueError, match="--cells"):
            bench.parse_cells(bad)


def test_compare_on_hand_set_rows(bench):
    old = _row(10.0, 40, runs=[9.0, 10.0, 11.0], rule="graph-sized")
    faster = bench.compare(_row(5.0, 20, runs=[4.9, 5.0, 5.1]), old)
    assert faster["speed"] == pytest.approx(2.0) and faster["speed_verdict"] == "met"
    assert faster["speed_lo"] == pytest.approx(9.0 / 5.1) and faster["memory"] == 0.5
    slower = bench.compare(_row(20.0, 40, runs=[19.0, 20.0, 21.0]), old)
    assert slower["speed_verdict"] == "MISSED" and slower["memory"] == 1.0
    even = bench.compare(_row(10.0, 30, runs=[9.5, 10.0, 10.5]), old)
    assert even["speed_verdict"] == "within noise"
    text = bench.render([(_row(5.0, 20), old), ({**_row(1, 1), "error": "boom"}, old)], "# h")
    assert "| m | 3 | 10 | one-block | 4 | 5.00 | 1 | 20 | 2.00 (1.80-2.20) | met | 0.50 |" \
        in text and "failed: boom" in text


def test_nets_packs_blocks_to_the_kept_graphs_and_the_alternative_runs_one_each(
        bench, attention_problem, monkeypatch):
    model, loss_fn, data = attention_problem[:3]
    op = BlockHVP(model, loss_fn, data, resolve_blocks(model, None), mode="reverse-block")
    limit, lean = op.vector_budget()
    assert op._strategy()[0] == "keep-all" and lean == int(op._strategy()[1] * LEAN_SHARE) > 0
    forward = BlockHVP(model, loss_fn, data, resolve_blocks(model, None), mode="forward")
    monkeypatch.setattr(BlockHVP, "vector_budget", BlockHVP.vector_budget)  # undone after
    bench.use_one_block_groups()
    assert op.vector_budget() == (limit, 0)
    assert forward.vector_budget()[1] is None  # no graphs: the rule does not apply


def test_command_line_measures_both_rules_in_rounds(bench, tmp_path):
    out, js = tmp_path / "groups.md", tmp_path / "groups.json"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        bench.main(["--rounds", "2", "--cells", "mlp-xs:1:5", "--out", str(out),
                    "--json", str(js)])
    text = out.read_text()
    assert "--rounds 2" in text and text in printed.getvalue()
    assert text.count("| mlp-xs | 1 | 5 |") == 2
    runs = json.loads(js.read_text())["runs"]
    assert sorted(len(v) for v in runs.values()) == [2, 2]
    assert all(torch.isfinite(torch.tensor(r["seconds"])) for v in runs.values() for r in v)
    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])


def test_render_only_writes_the_report_from_saved_rounds(bench, tmp_path):
    """Hand-set rounds saved as the command writes them: the report is written from them
    (nothing measured) and judged by the rank-sum interval. Pooled 6 runs against 6, the
    4 pairs below 1 (the one slow one-block run against the faster nets-rule runs) are
    trimmed and the rule is `met` (not slower); the first three runs alone are within noise.
    Without --json, or from an unreadable file, it refuses."""
    one = [4.0, 4.1, 5.03, 4.05, 3.95, 4.02]
    nets_rule = [5.0, 5.1, 4.9, 5.05, 4.95, 5.02]

    def rounds(rule, times):
        return [{**_row(t, 10, runs=[t], rule=rule), "model": "mlp-xs", "probes": 1,
                 "steps": 5} for t in times]

    runs = {json.dumps(["mlp-xs", 1, 5, "one-block"]): rounds("one-block", one),
            json.dumps(["mlp-xs", 1, 5, "graph-sized"]): rounds("graph-sized", nets_rule)}
    js, out = tmp_path / "groups.json", tmp_path / "groups.md"
    js.write_text(json.dumps({"version": {"commit": "abc1234", "code": "x"}, "runs": runs}))
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--render-only", "--json", str(js), "--out", str(out)])
    text = out.read_text()
    assert "--render-only" in text and "nothing measured by this command)" in text
    assert "code abc1234" in text and "6 fresh processes" in text
    assert "they were measured by" not in text  # a file written before rows kept the command
    line = next(r for r in text.splitlines() if "| one-block |" in r)
    assert "| met |" in line
    assert bench.compare(*[bench.runner.pool_rounds(rounds(r, t[:3]))
                           for r, t in (("one-block", one), ("graph-sized", nets_rule))]
                         )["speed_verdict"] == "within noise"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--render-only"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="cannot write the report from"):
        bench.main(["--render-only", "--json", str(tmp_path / "bad.json")])
