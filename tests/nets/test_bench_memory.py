"""benchmarks/bench_memory.py: the memory-against-speed sweep's verdicts and its command line."""

import contextlib
import io
import json

import pytest

MIB = 2**20


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_memory")


def _row(seconds, rise_mib, runs=None, **extra):
    return {"seconds": seconds, "runs": runs or [seconds], "peak_extra_bytes": rise_mib * MIB,
            "graphs": "keep-all", "load": 0.5, "commit": "abc1234", **extra}


def test_budgets_parse_and_bad_ones_are_named(bench):
    assert bench.parse_budgets("default, 24,0.5") == [None, 24 * MIB, MIB // 2]
    assert bench.parse_budgets("least,default") == ["least", None]
    for bad in ("twelve", "0", "-3", "12,12", "", "least,least", "lest"):
        with pytest.raises(ValueError, match="--budgets"):
            bench.parse_budgets(bad)


def test_trade_verdicts_on_hand_set_rows(bench):
    peer = _row(10.0, 20, runs=[9.0, 10.0, 11.0])
    fast_lean = bench.trade(_row(4.0, 25, runs=[3.9, 4.0, 4.1]), peer)
    assert fast_lean["speed_verdict"] == "met" and fast_lean["memory_verdict"] == "met"
    assert fast_lean["both"] and fast_lean["speed"] == pytest.approx(2.5)
    assert fast_lean["speed_lo"] == pytest.approx(9.0 / 4.1)
    fat = bench.trade(_row(4.0, 40), peer)  # 2x the peer's rise
    assert fat["memory_verdict"] == "MISSED" and not fat["both"]
    slow = bench.trade(_row(8.0, 10, runs=[7.9, 8.0, 8.1]), peer)  # 1.25x
    assert slow["speed_verdict"] == "MISSED" and slow["memory_verdict"] == "met"
    noisy = bench.trade(_row(5.0, 10, runs=[4.0, 5.0, 6.0]), peer)  # 1.5x..2.75x
    assert noisy["speed_verdict"] == "within noise" and not noisy["both"]


def test_report_names_the_budgets_meeting_both(bench):
    peer = _row(10.0, 20)
    rows = [_row(4.0, 60, max_memory=None), _row(4.5, 25, max_memory=12 * MIB),
            {"max_memory": 4 * MIB, "error": "MemoryError: boom"}]
    text = bench.render(rows, peer, "# title")
    assert "Budgets meeting both targets: 12 MiB." in text
    assert "| 4 MiB | failed |" in text and "MemoryError: boom" in text
    assert "| default | 4.00 | 60 |" in text
    none = bench.render(rows[:1], peer, "# title")
    assert "No budget meets both targets on this cell." in none
    no_peer = bench.render(rows, {"error": "ModuleNotFoundError: no peer"}, "# title")
    assert "No verdict: the peer did not run." in no_peer and "no peer" in no_peer
    assert "met" not in no_peer.replace("Budgets meeting", "")


def test_report_shows_the_least_and_the_budgets_run_over_it(bench):
    """The ``least`` row shows the bytes nets resolved it to, and budgets below that least
    are named as run at it, over the budget, in their rows and the list of budgets meeting both
    targets; with every budget at or above it, no such line."""
    peer = _row(10.0, 20)
    rows = [_row(4.0, 60, max_memory=None),
            _row(4.6, 24, max_memory="least", budget_bytes=int(17.5 * MIB)),
            _row(4.4, 28, max_memory=24 * MIB), _row(4.8, 22, max_memory=16 * MIB)]
    text = bench.render(rows, peer, "# title")
    assert "| least (17.5 MiB) | 4.60 | 24 |" in text
    assert "is 17.5 MiB. Below it (16 MiB) nets ran at that least, over the budget" in text
    assert "| 16 MiB (ran at the least) | 4.80 |" in text and "| 24 MiB | 4.40 |" in text
    assert ("Budgets meeting both targets: least (17.5 MiB), 24 MiB, 16 MiB (ran at the "
            "least).") in text
    assert "over the budget" not in bench.render(rows[:3], peer, "# title")


def test_sweep_runs_writes_and_resumes(bench, tmp_path, monkeypatch):
    out, rows = tmp_path / "sweep.md", tmp_path / "sweep.json"
    argv = ["--model", "mlp-xs", "--probes", "1", "--steps", "5", "--budgets", "default,least",
            "--in-process", "--json", str(rows), "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(argv)
    records = json.loads(rows.read_text())
    nets_rows = [r for r in records if r["method"] == "nets"]
    assert [r["max_memory"] for r in nets_rows] == [None, "least"]
    assert all(r["seconds"] > 0 and r["hvps"] > 0 for r in nets_rows)
    least = nets_rows[1]["budget_bytes"]
    assert 0 < least < nets_rows[0]["budget_bytes"]
    text = out.read_text()
    assert "| default |" in text and f"| least ({least / MIB:.1f} MiB) |" in text
    assert "| eigenthings |" in text
    calls = []
    real = bench.runner.run_cell
    monkeypatch.setattr(bench.runner, "run_cell", lambda c: calls.append(c) or real(c))
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main([*argv[:7], "default,least,2", *argv[8:], "--resume"])
    # only the new budget is measured (a peer that failed, e.g. not installed, runs again)
    assert [c["max_memory"] for c in calls if c["method"] == "nets"] == [2 * MIB]
    assert "| 2 MiB |" in out.read_text()


def test_rounds_interleave_the_rows_and_pool_their_runs(bench, tmp_path, monkeypatch):
    """``--rounds 2``: every row measured twice, the order reversed in the second round, the
    runs pooled (the median and spread over both); a row with fewer rounds than asked is
    measured again by ``--resume``, one with enough is kept."""
    order, times = [], iter([4.0, 3.0, 10.0, 10.0, 2.0, 5.0] * 3)

    def fake(run, in_process=False):
        order.append((run["method"], run["max_memory"]))
        t = next(times)
        return {"seconds": t, "runs": [t], "peak_bytes": 90 * MIB, "peak_extra_bytes": 10 * MIB,
                "load": 0.1,
                "graphs": "one-at-a-time", "budget_bytes": 5 * MIB}

    monkeypatch.setattr(bench.runner, "measure", fake)
    rows, out = tmp_path / "r.json", tmp_path / "r.md"
    argv = ["--budgets", "default,least", "--json", str(rows), "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main([*argv, "--rounds", "2"])
    first = [("eigenthings", None), ("nets", None), ("nets", "least")]
    assert order == first + first[::-1]
    records = {(r["method"], r["max_memory"]): r for r in json.loads(rows.read_text())}
    assert records[("eigenthings", None)]["runs"] == [4.0, 5.0]
    assert records[("nets", "least")]["runs"] == [10.0, 10.0]
    assert records[("nets", None)]["rounds"] == 2
    assert "in 2 rounds of fresh processes" in out.read_text()
    order.clear()
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main([*argv, "--rounds", "2", "--resume"])  # every row has its rounds
    assert order == []
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main([*argv, "--rounds", "3", "--resume"])
    assert order == first + first[::-1] + first


def test_bad_options_are_refused(bench):
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--budgets", "none"])
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--resume"])
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--rounds", "0"])


def test_device_and_blocks_reach_every_measured_cell(bench, monkeypatch):
    """--device and --blocks (names, or gpu-check: the blocks of `nets gpu-check`) go into
    every cell measured, the peer's and each budget's, and into the report's command."""
    seen = []

    def measure(run, in_process=False):
        seen.append(run)
        return _row(2.0, 10, budget_bytes=MIB, hvps=1)

    monkeypatch.setattr(bench.runner, "measure", measure)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--model", "gpt-gpu", "--device", "cuda", "--blocks", "gpu-check",
                    "--budgets", "default,least"])
    assert len(seen) == 3
    assert all(c["device"] == "cuda" and c["block_names"] == list(bench.GPT_BLOCKS)
               for c in seen)
    assert "--device cuda --blocks gpu-check" in buf.getvalue()
    seen.clear()
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--model", "mlp-xs", "--blocks", "a.weight, b.bias", "--budgets", "least"])
    assert [c["block_names"] for c in seen] == [["a.weight", "b.bias"]] * 2
    assert all("device" not in c for c in seen)  # the CPU: the cell as the grid's


def test_measured_rows_are_labelled_and_every_table_row_has_every_column(bench):
    """A ``--measured`` row is named as such, with the per-tangent bytes its budget counted
    and its Lanczos groups; it does not set the least the others are compared with."""
    peer = _row(10.0, 20)
    rows = [_row(4.6, 24, max_memory="least", budget_bytes=int(17.5 * MIB), groups=3,
                 tangent_bytes=8 * MIB, tangent_estimate="graph bound"),
            _row(4.4, 18, max_memory="least", budget_bytes=int(12.5 * MIB), groups=5,
                 tangent_bytes=3 * MIB, tangent_estimate="measured", measure_tangents=True),
            _row(4.8, 22, max_memory=16 * MIB, measure_tangents=True),
            {"max_memory": 4 * MIB, "error": "MemoryError: boom"}]
    text = bench.render(rows, peer, "# title")
    assert "| least (12.5 MiB), measured tangent | 4.40 | 18 | keep-all | 5 | 3.0 (measured) |" \
        in text
    assert "| least (17.5 MiB) | 4.60 | 24 | keep-all | 3 | 8.0 (graph bound) |" in text
    assert "| 16 MiB, measured tangent | 4.80 |" in text
    # the least of the graph bound: a measured tangent's 16 MiB is above its own least
    assert "is 17.5 MiB. Below it (4 MiB) nets ran at that least" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1, table
    failed = bench.render(rows, {"error": "no peer"}, "# title")
    table = [line for line in failed.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1, table


def test_measured_budgets_run_with_measured_tangents(bench, tmp_path, monkeypatch):
    """``--measured least`` adds a nets row at that budget with ``measure_tangents=True``;
    the other rows do not carry it."""
    cells = []

    def fake(run, in_process=False):
        cells.append(run)
        return {"seconds": 1.0, "runs": [1.0], "peak_bytes": 90 * MIB,
                "peak_extra_bytes": 10 * MIB, "load": 0.1, "graphs": "one-at-a-time",
                "budget_bytes": 5 * MIB}

    monkeypatch.setattr(bench.runner, "measure", fake)
    out = tmp_path / "m.md"
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--budgets", "default,least", "--measured", "least", "--out", str(out)])
    assert [(c["method"], c["max_memory"], c.get("measure_tangents")) for c in cells] == [
        ("eigenthings", None, None), ("nets", None, None), ("nets", "least", None),
        ("nets", "least", True)]
    text = out.read_text()
    assert "--measured least" in text and "| least (5.0 MiB), measured tangent |" in text
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--measured", "lots"])


def test_live_counts_each_nets_rows_tensors_within_its_budget(bench, tmp_path):
    """``--live``: every nets row also counts its live tensors in one more, untimed run; the
    report shows their peak and its ratio to the budget the row resolved to (at most 1 at
    ``least`` and at a fixed budget above it), and the peer's row has no such count."""
    out, rows = tmp_path / "sweep.md", tmp_path / "sweep.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--model", "mlp-xs", "--probes", "1", "--steps", "5", "--budgets",
                    "least,1", "--live", "--in-process", "--json", str(rows), "--out",
                    str(out)])
    records = json.loads(rows.read_text())
    nets_rows = [r for r in records if r["method"] == "nets"]
    assert all(0 < r["live_peak_bytes"] <= r["budget_bytes"] for r in nets_rows)
    assert not any("live_peak_bytes" in r for r in records if r["method"] != "nets")
    text = out.read_text()
    assert "--live" in text and "| tensors MiB (/ budget) |" in text
    for r in nets_rows:
        live = r["live_peak_bytes"]
        assert f"| {live / MIB:.1f} ({live / r['budget_bytes']:.2f}) |" in text
    widths = {line.count("|") for line in text.splitlines() if line.startswith("| ")}
    assert len(widths) == 1  # every row, the peer's included, has the header's columns


def test_render_only_writes_the_report_from_saved_rows(bench, tmp_path, monkeypatch):
    """``--resume --render-only`` measures nothing and reports the saved rows, naming their
    commit; a budget the file lacks is an error naming it, as is ``--render-only`` alone."""
    out, rows = tmp_path / "sweep.md", tmp_path / "sweep.json"
    argv = ["--model", "mlp-xs", "--probes", "1", "--steps", "5", "--budgets", "least",
            "--in-process", "--json", str(rows)]
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(argv)
    saved = json.loads(rows.read_text())
    for r in saved:
        r["commit"], r["code"] = "abc1234", "stale"  # measured by other code
    saved[0] = {k: v for k, v in saved[0].items() if k in ("model", "kind", "probes", "steps",
                                                            "threads", "method", "max_memory")}
    saved[0]["error"] = "ModuleNotFoundError: the peer is not installed"  # as on a bare CI
    rows.write_text(json.dumps(saved))
    monkeypatch.setattr(bench.runner, "measure", lambda *a, **k: pytest.fail("measured"))
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main([*argv, "--resume", "--render-only", "--out", str(out)])
    text = out.read_text()
    assert "--render-only" in text and "code abc1234." in text and "nothing measured" in text
    assert "| least (" in text and "| eigenthings | failed |" in text
    assert json.loads(rows.read_text()) == saved  # the rows are left as they were
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
        bench.main([*argv[:7], "least,2", *argv[8:], "--resume", "--render-only"])
    assert "has no row for nets 2 MiB" in err.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
        bench.main([*argv, "--render-only"])
    assert "--render-only needs --resume" in err.getvalue()
