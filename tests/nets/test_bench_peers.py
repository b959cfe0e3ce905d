"""benchmarks/bench_peers.py, smoke grid: every column printed, nets agreeing with each peer.

The smoke grid is a 31-parameter float64 MLP with 31 Lanczos steps, so every Lanczos run spans
its whole space and the largest Ritz value of every method that computes one (nets,
hessian-eigenthings, the authors' algorithm) is the exact largest eigenvalue of the (block)
Hessian. Peers that are not installed are skipped (their rows then say why they failed).

Caveat found here: hessian-eigenthings starts Lanczos from a Rademacher vector, which on a tiny
block can lie in an invariant subspace; with two classes, its start (1, 1) on the output bias
is orthogonal to that block's only nonzero eigenvector and its λmax there is 0 (a property of
the probe, not an error). The smoke model has three classes, where no seeded start does that.
"""

import contextlib
import io
import json
import platform
import subprocess
import types

import numpy as np
import pytest
import torch

import nets
from nets.engine.exact import dense_hessian
from nets.studies.gpucheck import GPT_SAMPLES

COLUMNS = ["model", "kind", "P", "k", "thr", "method", "s", "HVP/s", "gr/HVP", "peak", "+peak",
           "x", "λmax", "load", "notes"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, benchmark_script):
    """``(module, printed table lines, JSON records)`` of one in-process smoke run."""
    bench = benchmark_script("bench_peers")
    out = tmp_path_factory.mktemp("bench") / "rows.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out)])
    lines = buf.getvalue().splitlines()
    return bench, lines, json.loads(out.read_text())


def _table(lines):
    head = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    cols = [c.strip() for c in lines[head].strip("|").split("|")]
    rows = []
    for line in lines[head + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(cols, [c.strip() for c in line.strip("|").split("|")],
                             strict=True)))
    return cols, rows


def test_table_has_every_column_and_nets_fills_them(smoke):
    bench, lines, records = smoke
    cols, rows = _table(lines)
    assert cols == COLUMNS
    cells = bench.grid("smoke")
    assert {(r["kind"], r["method"]) for r in rows} >= {(c["kind"], "nets") for c in cells}
    for r in rows:
        if r["method"] != "nets":
            continue
        for c in ("s", "HVP/s", "gr/HVP", "peak", "+peak", "λmax"):
            assert float(r[c]) == float(r[c]) and r[c] != "", (c, r)
        assert float(r["s"]) > 0 and float(r["HVP/s"]) > 0 and float(r["gr/HVP"]) > 0
        assert "mode " in r["notes"] and "graphs " in r["notes"]
        assert ", products " in r["notes"] and ", graph builds " in r["notes"]
        # the cost per product in gradients is one of the targets in every nets row
        assert ("grads/HVP<=3:" if r["kind"] == "full" else "grads/block-HVP<=0.5:") in r["notes"]
    assert lines[-1].startswith("Targets: ")
    assert len(records) == len(rows)
    for r in records:
        if r["method"] == "nets":  # the products, builds and calibration: parts of the run
            assert 0 < r["product_s"] and 0 <= r["graph_s"] and 0 <= r["calibration_s"]
            assert r["product_s"] + r["graph_s"] + r["calibration_s"] < r["seconds"]
            assert "peak_steady_extra_bytes" not in r  # a GPU's column
            # auto's per-mode timings on the first batch, the chosen mode among them
            assert r["mode"] in r["calibration_modes"]
            assert all(t > 0 for t in r["calibration_modes"].values())


def test_time_split_of_a_nets_row(benchmark_script):
    bench = benchmark_script("bench_peers")
    r = {"seconds": 2.0, "product_s": 1.5, "graph_s": 0.1}
    assert bench.time_split(r) == ", products 75%, graph builds 5%"
    assert bench.time_split({"seconds": 2.0}) == ""  # an older script's row
    cal = {**r, "calibration_s": 0.3}  # the modes auto tried and did not choose
    assert bench.time_split(cal) == ", products 75%, graph builds 5%, calibration 15%"
    assert bench.time_split({**r, "calibration_s": 0.0}) == ", products 75%, graph builds 5%"


def test_peak_after_the_first_step_on_a_gpu(benchmark_script, monkeypatch):
    """On a GPU, a nets run reads (and resets) the allocator's peak after its first Lanczos
    step: the row's peak is the larger of that and the rest, and the rise after the first step
    is kept beside it; the memory target notes it (a CPU row has no such column: the smoke
    grid's test)."""
    bench = benchmark_script("bench_peers")
    # the peak through the first step 5000, the rest's 2000, 1000 allocated before the run
    monkeypatch.setattr(bench.runner, "_run_once",
                        lambda *a: {"top": {}, "first_step_peak_bytes": 5_000})
    monkeypatch.setattr(bench.runner.meters, "memory_meters",
                        lambda device: (lambda: 1_000, lambda: 2_000))
    monkeypatch.setattr(bench.runner, "REPEAT_BELOW", 0.0)  # one run
    row = bench.runner.run_cell(dict(model="mlp-xs", kind="full", probes=1, steps=3, threads=1,
                              method="nets"))
    assert row["peak_bytes"] == 5_000 and row["peak_extra_bytes"] == 4_000
    assert row["peak_steady_extra_bytes"] == 1_000
    # repeated runs: each resets the counter at its first step, so the peak over every run
    # is the largest of what each read
    firsts = iter([5_000, 7_000, 6_000])
    monkeypatch.setattr(bench.runner, "_run_once",
                        lambda *a: {"top": {}, "first_step_peak_bytes": next(firsts)})
    monkeypatch.setattr(bench.runner, "REPEAT_BELOW", 1e9)  # three runs
    row = bench.runner.run_cell(dict(model="mlp-xs", kind="full", probes=1, steps=3, threads=1,
                              method="nets"))
    assert len(row["runs"]) == 3 and row["peak_bytes"] == 5_000
    assert row["peak_all_bytes"] == 7_000
    nets_r = {"seconds": 1.0, "hvps": 10, "grad_s": 0.5, "peak_extra_bytes": 4_000,
              "peak_steady_extra_bytes": 1_000}
    out = bench.targets("blocks", nets_r, {"eigenthings": {"seconds": 3.0,
                                                           "peak_extra_bytes": 2_000}})
    assert out[1] == "mem/eigenthings<=1.5: 2.00 MISSED [after the first step (calibration): 0.50]"


def test_nets_largest_ritz_value_is_the_exact_eigenvalue(smoke):
    """31 steps on 31 parameters: nets' λmax is the dense Hessian's largest eigenvalue."""
    bench, _, records = smoke
    model, loss_fn, data = bench.runner.problems.load("mlp-xs")
    assert sum(p.numel() for p in model.parameters()) == 31
    h = dense_hessian(model, loss_fn, data)
    exact_full = np.linalg.eigvalsh(h)[-1]
    exact_blocks = {n: e[-1] for n, e in
                    nets.exact_blockwise_eigenvalues(model, loss_fn, data).items()}
    scale = np.abs(h).max()
    for r in records:
        if r["method"] != "nets":
            continue
        ref = {"full": exact_full} if r["kind"] == "full" else exact_blocks
        assert set(r["top"]) == set(ref)
        for name, value in r["top"].items():
            assert abs(value - ref[name]) <= 1e-8 * scale, (r["kind"], name)


@pytest.mark.parametrize("peer, module", [("eigenthings", "hessian_eigenthings"),
                                          ("curvlinops", "curvlinops"), ("authors", None)])
def test_each_peer_runs_and_agrees_with_nets(smoke, peer, module):
    """Each installed peer has its rows, with nets' speed ratio; where it computes the same
    quantity (the largest Ritz value of each block) it agrees with nets to round-off."""
    if module is not None:
        pytest.importorskip(module)
    bench, lines, records = smoke
    _, rows = _table(lines)
    kinds = [k for k, peers in bench.PEERS.items() if peer in peers]
    for kind in kinds:
        (row,) = [r for r in rows if r["kind"] == kind and r["method"] == peer]
        assert row["s"] != "failed", row
        assert float(row["x"]) > 0 and float(row["+peak"]) >= 0
        nets_note = next(r["notes"] for r in rows if r["kind"] == kind and r["method"] == "nets")
        assert f"x{peer}" in nets_note  # the ratio target against this peer is reported
        rec = next(r for r in records if r["kind"] == kind and r["method"] == peer)
        ref = next(r for r in records if r["kind"] == kind and r["method"] == "nets")
        if peer == "curvlinops":  # a density on a grid, no Ritz values: nothing to compare
            assert "top" not in rec and row["λmax"] == ""
            continue
        assert set(rec["top"]) == set(ref["top"])
        scale = max(abs(v) for v in ref["top"].values())
        for name, value in rec["top"].items():
            assert abs(value - ref["top"][name]) <= 1e-6 * scale, (kind, peer, name)


def _counting(bench):
    """``(ran, run_cell)``: ``bench.runner.run_cell`` recording each ``(kind, method)`` it runs."""
    ran = []
    real = bench.runner.run_cell

    def counting(cell):
        ran.append((cell["kind"], cell["method"]))
        return real(cell)

    return ran, counting


def test_resume_keeps_finished_cells_and_runs_the_rest(tmp_path, monkeypatch, benchmark_script):
    """--json is written after every cell; --resume reads it back and runs only what is
    missing or failed (here: one row dropped from the file, as an interruption would, and the
    peers that are not installed)."""
    bench = benchmark_script("bench_peers")
    out = tmp_path / "rows.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out)])
    first = json.loads(out.read_text())
    dropped = first[-1]
    out.write_text(json.dumps(first[:-1]))
    ran, counting = _counting(bench)
    monkeypatch.setattr(bench.runner, "run_cell", counting)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume"])
    again_needed = [(r["kind"], r["method"]) for r in first[:-1] if "error" in r]
    assert sorted(ran) == sorted([*again_needed, (dropped["kind"], dropped["method"])])
    again = json.loads(out.read_text())
    key = lambda r: (r["kind"], r["method"])  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, first))
    kept = [r for r in first[:-1] if "error" not in r]
    assert all(r in again for r in kept)  # read back unchanged
    lines = buf.getvalue().splitlines()
    assert any(f"Resumed: {len(kept)} rows were read" in line for line in lines)
    assert lines[-1].startswith("Targets: ")
    # a resumed run interrupted before its end keeps every row the file had: the full cell is
    # finished and written, then the interruption comes in the blockwise cell
    def interrupted(cell):
        if cell["kind"] == "blocks":
            raise KeyboardInterrupt
        raise RuntimeError("not installed")  # a failed peer of the full cell, as in CI

    blocks_nets = next(r for r in first if r["kind"] == "blocks" and r["method"] == "nets")
    partial = [r for r in first if r is not blocks_nets]
    out.write_text(json.dumps(partial))
    monkeypatch.setattr(bench.runner, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume"])
    measured = lambda rows: sorted(key(r) for r in rows if "error" not in r)  # noqa: E731
    assert measured(json.loads(out.read_text())) == measured(partial)
    assert any(r["kind"] == "blocks" for r in partial if "error" not in r)
    monkeypatch.setattr(bench.runner, "run_cell", counting)
    # --render-only: the report from the file's rows, nothing run, the file left as it was
    out.write_text(json.dumps(first[:-1]))
    ran.clear()
    report = tmp_path / "report.md"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--render-only", "--out", str(report)])
    assert ran == [] and json.loads(out.read_text()) == first[:-1]
    text = report.read_text()
    assert "Nothing was measured by this command" in text
    missing = [line for line in text.splitlines()
               if line.startswith("|") and "not measured" in line]
    assert len(missing) == 1 + len(again_needed)
    assert f"| {dropped['method']} | not measured |" in "\n".join(missing)
    with pytest.raises(SystemExit):
        bench.main(["--grid", "smoke", "--render-only", "--json", str(out)])
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot resume"):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume"])
    with pytest.raises(SystemExit):
        bench.main(["--grid", "smoke", "--resume"])


def test_rows_name_their_code_and_stale_cells_are_measured_again(tmp_path, monkeypatch,
                                                                 benchmark_script):
    """Every row records the commit and a hash of the measured sources; --resume measures again
    a cell that other code measured (a cell's ratios come from one code) unless --keep-stale,
    and --only restricts what is measured."""
    bench = benchmark_script("bench_peers")
    version = bench.code_version(bench.__file__)
    assert set(version) == {"commit", "code"} and len(version["code"]) == 12
    assert bench.code_version(bench.__file__) == version  # a function of the sources
    # the script itself counts, beside nets, labkit and the measuring modules
    assert bench.code_version()["code"] != version["code"]
    # a commit the caller gives wins over git's (a copy sent to a GPU machine may carry a stale
    # .git); outside git without one, the commit is unknown
    def no_git(args, **kwargs):
        raise subprocess.CalledProcessError(128, args)

    with monkeypatch.context() as m:
        m.setenv("BENCH_COMMIT", "abc1234")
        assert bench.code_version(bench.__file__) == {**version, "commit": "abc1234 (given)"}
        m.setattr(subprocess, "run", no_git)
        assert bench.code_version(bench.__file__) == {**version, "commit": "abc1234 (given)"}
        m.delenv("BENCH_COMMIT")
        assert bench.code_version(bench.__file__) == {**version, "commit": "unknown"}
    out = tmp_path / "rows.json"
    ran, counting = _counting(bench)
    monkeypatch.setattr(bench.runner, "run_cell", counting)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # --only: the blockwise cell alone
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--only",
                    "kind=blocks"])
    assert ran and {k for k, _ in ran} == {"blocks"}
    rows = json.loads(out.read_text())
    measured = [r for r in rows if "error" not in r]
    kernels = torch.backends.cpu.get_cpu_capability()  # which machine: rows say it
    assert measured and all(r["code"] == version["code"] and r["commit"] == version["commit"]
                            and r["cpu"] == kernels for r in measured)
    assert f"Cells measured at: {version['commit']} (1). On CPU kernels: {kernels} (1)" in (
        buf.getvalue())
    assert f"({kernels} kernels)" in buf.getvalue()  # and the header
    nets_row = next(line for line in buf.getvalue().splitlines() if "| nets |" in line)
    assert f"at {version['commit']} on {kernels}, mode" in nets_row
    # the full cell, outside --only, is reported as not measured when resuming
    ran.clear()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--only", "kind=blocks", "--only", "probes=1"])
    assert {k for k, _ in ran} <= {"blocks"}  # only its failed peers, if any, again
    assert any("| full |" in line and "not measured" in line
               for line in buf.getvalue().splitlines())
    # the blockwise cell measured by "other code": measured again, or kept with --keep-stale
    # (and before rows named their CPU kernels)
    stale = [{**{k: v for k, v in r.items() if k != "cpu"}, "code": "0" * 12,
              "commit": "abc1234"} if "error" not in r else r
             for r in json.loads(out.read_text()) if r["kind"] == "blocks"]
    for keep, expect_rerun in ((True, False), (False, True)):
        out.write_text(json.dumps(stale))
        ran.clear()
        buf = io.StringIO()
        argv = ["--grid", "smoke", "--in-process", "--json", str(out), "--resume", "--only",
                "kind=blocks"] + (["--keep-stale"] if keep else [])
        with contextlib.redirect_stdout(buf):
            bench.main(argv)
        reran = ("blocks", "nets") in ran
        assert reran == expect_rerun
        text = buf.getvalue()
        assert ("1 cells of that file were measured by other code or in fewer rounds than "
                f"--rounds 1: {int(keep)} reported as they are") in text
        assert ("Cells measured at: abc1234 (1). On CPU kernels: not recorded (1) "
                in text) == keep
    # a cell of this code measured in fewer rounds than --rounds asks: measured again, every
    # method in the rounds asked for (not kept because it is current)
    current = json.loads(out.read_text())
    assert all(r.get("rounds", 1) == 1 for r in current if "error" not in r)
    ran.clear()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--only", "kind=blocks", "--rounds", "2"])
    assert ran.count(("blocks", "nets")) == 2
    assert "in fewer rounds than --rounds 2: 0 reported as they are" in buf.getvalue()
    again = [r for r in json.loads(out.read_text()) if r["kind"] == "blocks"]
    assert all(r["rounds"] == 2 for r in again if "error" not in r)
    ran.clear()
    with contextlib.redirect_stdout(io.StringIO()):  # now current in 2 rounds: kept
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--only", "kind=blocks", "--rounds", "2"])
    assert ("blocks", "nets") not in ran
    # outside --only a stale cell is reported as it is, and stays in the file
    out.write_text(json.dumps(stale))
    ran.clear()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--only", "kind=full"])
    assert {k for k, _ in ran} == {"full"}
    assert "Cells measured at: " in buf.getvalue() and "abc1234 (1)" in buf.getvalue()
    assert f"On CPU kernels: {kernels} (1), not recorded (1) " in buf.getvalue()
    kept = [r for r in json.loads(out.read_text()) if r["kind"] == "blocks"]
    assert [r for r in kept if "error" not in r] == [r for r in stale if "error" not in r]
    for bad in (["--only", "kind"], ["--only", "colour=red"], ["--only", "probes=one"],
                ["--only", "kind=blockwise"], ["--only", "probes=1,2"], ["--keep-stale"]):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            bench.main(["--grid", "smoke", "--in-process", *bad])


def test_short_runs_are_repeated_and_the_median_is_reported(smoke):
    """The smoke runs take well under REPEAT_BELOW: each row holds REPEATS runs and reports
    their median (the Lanczos phase likewise)."""
    bench, _, records = smoke
    for r in records:
        if "error" in r:
            continue
        assert len(r["runs"]) == bench.runner.REPEATS and r["runs"][0] < bench.runner.REPEAT_BELOW
        assert r["seconds"] == pytest.approx(float(np.median(r["runs"])))
        if "lanczos_runs" in r:
            assert r["lanczos_s"] == pytest.approx(float(np.median(r["lanczos_runs"])))


def test_pool_rounds_pools_every_run(benchmark_script):
    """Hand-set rounds of one method: timings pooled (median of all runs, all runs kept), the
    gradient time the rounds' median, peaks and load the largest, a failed round the row."""
    bench = benchmark_script("bench_peers")
    a = {"method": "nets", "seconds": 2.0, "runs": [1.0, 2.0, 3.0], "product_s": 1.0,
         "product_runs": [0.5, 1.0, 1.5], "grad_s": 0.1, "peak_bytes": 10,
         "peak_extra_bytes": 4, "load": 0.5, "mode": "reverse-block"}
    b = {**a, "seconds": 7.0, "runs": [7.0], "product_s": 6.0, "product_runs": [6.0],
         "grad_s": 0.3, "peak_bytes": 8, "peak_extra_bytes": 6, "load": 1.5}
    c = {**a, "grad_s": 0.2}
    row = bench.runner.pool_rounds([a, b, c])
    assert row["runs"] == [1.0, 2.0, 3.0, 7.0, 1.0, 2.0, 3.0] and row["seconds"] == 2.0
    assert row["product_runs"] == [0.5, 1.0, 1.5, 6.0, 0.5, 1.0, 1.5]
    assert row["product_s"] == 1.0
    assert row["grad_s"] == 0.2
    assert (row["peak_bytes"], row["peak_extra_bytes"], row["load"]) == (10, 6, 1.5)
    assert row["loads"] == [0.5, 1.5, 0.5] and row["rounds"] == 3
    assert row["peak_extra_rounds"] == [4, 6, 4]  # each round's rise, for the memory verdict
    assert row["run_imports"] == []  # rounds that imported nothing during their runs
    late = {**c, "run_imports": ["torch"]}
    assert bench.runner.pool_rounds([a, late])["run_imports"] == ["torch"]  # any round's
    assert "lanczos_runs" not in row  # a timing the rows lack stays absent
    one = bench.runner.pool_rounds([a])
    assert one["runs"] == a["runs"] and one["seconds"] == a["seconds"] and one["rounds"] == 1
    # a row without its runs (one run) pools as that one value
    bare = {k: v for k, v in b.items() if not k.endswith("runs")}
    assert bench.runner.pool_rounds([a, bare])["runs"] == [1.0, 2.0, 3.0, 7.0]
    err = {"error": "RuntimeError: boom"}
    assert bench.runner.pool_rounds([a, err, b]) == err


def test_rounds_interleave_the_methods_and_pool_their_runs(tmp_path, monkeypatch,
                                                           benchmark_script):
    """--rounds 2: each method of a cell runs twice, the methods interleaved (every method's
    first round before any second, the second in the reverse order), and the row pools both
    rounds' runs."""
    bench = benchmark_script("bench_peers")
    ran, counting = _counting(bench)
    monkeypatch.setattr(bench.runner, "run_cell", counting)
    out = tmp_path / "rows.json"
    report = tmp_path / "report.md"
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--rounds", "2",
                    "--only", "kind=full", "--out", str(report)])
    methods = bench._methods(bench.grid("smoke")[0], False)
    assert ran == [("full", m) for m in methods] + [("full", m) for m in methods[::-1]]
    rows = {r["method"]: r for r in json.loads(out.read_text())}
    nets_row = rows["nets"]
    assert nets_row["rounds"] == 2 and len(nets_row["loads"]) == 2
    assert len(nets_row["runs"]) == 2 * bench.runner.REPEATS
    assert nets_row["seconds"] == pytest.approx(float(np.median(nets_row["runs"])))
    text = report.read_text()
    assert "--rounds 2" in text and ", 2 rounds, mode " in text
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--grid", "smoke", "--rounds", "0"])


def test_targets_pair_the_extreme_runs(benchmark_script):
    """Hand-set rows: the ratio's spread is the peer's fastest over nets' slowest run and the
    reverse; a spread that straddles the target is within noise, a row measured once (no
    ``runs``) spreads over its one value, and a value outside its spread is refused."""
    bench = benchmark_script("bench_peers")
    nets_r = {"seconds": 1.0, "runs": [1.0, 0.9, 1.1], "hvps": 10, "grad_s": 0.05,
              "lanczos_s": 0.5, "lanczos_runs": [0.5, 0.5, 0.5], "peak_extra_bytes": 100,
              "peak_all_bytes": 200}
    clear = {"seconds": 2.0, "runs": [2.0, 1.9, 2.1]}  # 1.9 / 1.1 = 1.73 >= 1.5
    close = {"seconds": 1.6, "runs": [1.6, 1.3, 1.7]}  # 1.3 / 1.1 < 1.5 <= 1.6
    slow = {"seconds": 1.2}  # once: 1.2 < 1.5
    out = bench.targets("full", nets_r, {"eigenthings": clear, "curvlinops": close})
    assert out[0] == "xeigenthings>=1.5: 2.00 (1.73-2.33) met"
    assert out[1].startswith("xcurvlinops>=1.5: 1.60 (1.18-") and out[1].endswith(
        "within noise")
    # 1.0 s / 10 HVPs / 0.05 s = 2 gradients (1.8-2.2): met
    assert out[2] == "grads/HVP<=3: 2.00 (1.80-2.20) met"
    out = bench.targets("full", {**nets_r, "runs": None}, {"eigenthings": slow})
    assert out[0] == "xeigenthings>=1.5: 1.20 MISSED"
    authors = {"seconds": 4.0, "lanczos_s": 0.6, "lanczos_runs": [0.6]}
    eig = {"seconds": 2.5, "peak_extra_bytes": 50}
    out = bench.targets("blocks", nets_r, {"authors": authors, "eigenthings": eig})
    assert [o.split(":")[0] for o in out] == ["xauthors>=3", "xauthors-HVP>=1.5",
                                            "xeigenthings>=2", "mem/eigenthings<=1.5",
                                            "grads/block-HVP<=0.5"]
    assert out[0].endswith(" met") and out[1] == "xauthors-HVP>=1.5: 1.20 MISSED"
    assert out[2] == "xeigenthings>=2: 2.50 (2.27-2.78) met"  # 2.5 over 1.1 and 0.9 s
    assert out[3] == "mem/eigenthings<=1.5: 2.00 MISSED"


def test_pooled_rounds_can_turn_within_noise_into_a_verdict(benchmark_script):
    """Hand-set rows: the first round (3 runs a side) straddles the 1.5 target (the peer's
    fastest over nets' slow third run is below it); pooled with a second round (6 a side) the
    5 extreme pairs at each end are trimmed and the target is met; a clear shortfall is
    MISSED either way."""
    bench = benchmark_script("bench_peers")
    nets_runs = [1.0, 0.95, 1.12, 1.0, 0.98, 1.02]
    peer = [1.62, 1.7, 1.65, 1.66, 1.6, 1.68]
    # pooled: the 6 smallest pairs are every peer run over 1.12 s (1.43 ... 1.52); the 6th
    # of them, 1.7 / 1.12 = 1.52, is the interval's low end
    rows = [({"seconds": float(np.median(n)), "runs": n, "hvps": 10, "grad_s": 0.05},
             {"seconds": float(np.median(p)), "runs": p})
            for n, p in ((nets_runs[:3], peer[:3]), (nets_runs, peer))]
    one, two = (bench.targets("full", n, {"eigenthings": p})[0] for n, p in rows)
    assert one.endswith("within noise") and "(1.45-1.79)" in one
    assert two.endswith(" met") and "(1.52-" in two
    low = [1.2, 1.25, 1.3, 1.22, 1.28, 1.24]
    for n, _ in rows:
        out = bench.targets("full", n, {"eigenthings": {"seconds": 1.25, "runs": low}})
        assert out[0].endswith("MISSED")


def test_targets_bound_a_miss_by_the_products_and_their_builds(benchmark_script):
    """Hand-set rows: a speed target not met names the value nets would reach with nothing but
    its products and their graphs' builds (the peer's time over ``product_s + graph_s``; per
    product, that time in gradients) and marks it ``beyond them`` only where that bound
    misses the target too; a met target and a row without ``product_s`` (an older script's)
    carry no bound, and a row without ``graph_s`` counts its products alone."""
    bench = benchmark_script("bench_peers")
    nets_r = {"seconds": 1.0, "hvps": 10, "grad_s": 0.05, "product_s": 0.7, "graph_s": 0.1}
    overhead = {"seconds": 1.32}  # 1.32 < 1.5, but 1.32 / 0.8 = 1.65 >= 1.5
    floor = {"seconds": 1.1}  # 1.1 / 0.8 = 1.38 < 1.5: beyond the products and builds
    out = bench.targets("full", nets_r, {"eigenthings": overhead, "curvlinops": floor})
    assert out[0] == "xeigenthings>=1.5: 1.32 MISSED [products and builds: 1.65]"
    assert out[1] == "xcurvlinops>=1.5: 1.10 MISSED [products and builds: 1.38, beyond them]"
    assert out[2] == "grads/HVP<=3: 2.00 met"  # met: no bound
    # the builds count: the products alone (1.32 / 0.7 = 1.89) would call it reachable
    rebuilt = {**nets_r, "product_s": 0.7, "graph_s": 0.2}  # 1.32 / 0.9 = 1.47: beyond
    assert bench.targets("full", rebuilt, {"eigenthings": overhead})[0] == (
        "xeigenthings>=1.5: 1.32 MISSED [products and builds: 1.47, beyond them]")
    no_split = {k: v for k, v in nets_r.items() if k != "graph_s"}  # 1.32 / 0.7 = 1.89
    assert bench.targets("full", no_split, {"eigenthings": overhead})[0] == (
        "xeigenthings>=1.5: 1.32 MISSED [products and builds: 1.89]")
    slow = {**nets_r, "seconds": 4.0, "product_s": 0.9}  # 8 gradients; bound 2: reachable
    assert bench.targets("full", slow, {})[0] == (
        "grads/HVP<=3: 8.00 MISSED [products and builds: 2.00]")
    heavy = {**slow, "product_s": 3.4}  # bound 7 gradients: beyond them
    assert bench.targets("full", heavy, {})[0] == (
        "grads/HVP<=3: 8.00 MISSED [products and builds: 7.00, beyond them]")
    older = {k: v for k, v in nets_r.items() if k not in ("product_s", "graph_s")}
    assert bench.targets("full", older, {"curvlinops": floor})[0] == "xcurvlinops>=1.5: 1.10 MISSED"
    noisy = {"seconds": 1.6, "runs": [1.6, 1.3, 1.7]}  # within noise: bounded as well
    out = bench.targets("full", {**nets_r, "product_s": 1.1}, {"eigenthings": noisy})
    assert out[0] == ("xeigenthings>=1.5: 1.60 (1.30-1.70) within noise "
                      "[products and builds: 1.33, beyond them]")
    authors = {"seconds": 4.0, "lanczos_s": 0.6}  # Lanczos phase: 0.6 / 0.8 = 0.75
    blocks = {**nets_r, "lanczos_s": 0.5}
    out = bench.targets("blocks", blocks, {"authors": authors})
    assert out[1] == "xauthors-HVP>=1.5: 1.20 MISSED [products and builds: 0.75, beyond them]"


def test_max_memory_option_takes_sizes_or_least(benchmark_script, monkeypatch, capsys,
                                                 tmp_path):
    """``--max-memory`` parses like the command line's (bytes, ``2G``, ``least``) and refuses
    anything else with the command line's message, before measuring anything."""
    bench = benchmark_script("bench_peers")
    monkeypatch.setattr(bench.runner, "measure", lambda *a, **k: pytest.fail("measured"))
    for bad in ("0", "lest", "-5"):
        with pytest.raises(SystemExit):
            bench.main(["--grid", "smoke", "--max-memory", bad])
        assert "is not a memory budget" in capsys.readouterr().err
    rows = tmp_path / "rows.json"
    rows.write_text("[]")
    bench.main(["--grid", "smoke", "--max-memory", "2G", "--resume", "--render-only",
                "--json", str(rows)])  # measures nothing: the report's header names the bytes
    assert f"--max-memory {2 * 2**30} --resume" in capsys.readouterr().out


def test_peak_over_every_run_marks_only_an_older_scripts_repeated_rows(benchmark_script):
    """The memory target of a cell measured before the peak became the first run's (no
    ``peak_all_bytes``, runs repeated in their process) says that its peaks are not the
    first run's; a newer row, or an older row run once per round, says nothing."""
    bench = benchmark_script("bench_peers")
    old = {"seconds": 1.0, "runs": [1.0, 1.1, 0.9], "peak_extra_bytes": 10 * 2**20}
    once = {**old, "runs": [1.0, 1.1], "rounds": 2}
    new = {**old, "peak_all_bytes": 2**30}
    assert [bench.peak_over_every_run(r) for r in (old, once, new)] == [True, False, False]
    nets_r = {**new, "hvps": 10, "grad_s": 0.1}
    for eig, marked in ((old, True), (once, False), (new, False)):
        out = bench.targets("blocks", nets_r, {"eigenthings": eig})
        memory = next(t for t in out if t.startswith("mem/"))
        assert memory.startswith("mem/eigenthings<=1.5: 1.00 met")
        assert memory.endswith("[peaks over every run: an older script's]") is marked


def test_peak_memory_is_the_first_runs(benchmark_script, monkeypatch):
    """A short run is repeated in its process; the peak columns are the first run's (a repeat
    starts from what the allocator kept), the peak over every run is kept beside them."""
    bench = benchmark_script("bench_peers")
    peaks = iter([100_000, 120_000, 130_000, 140_000])  # KiB, rising with every reading
    monkeypatch.setattr(bench.runner.meters.resource, "getrusage",
                        lambda who: types.SimpleNamespace(ru_maxrss=next(peaks)))
    monkeypatch.setattr(bench.runner.meters, "rss_now", lambda: 90_000 * 1024)
    monkeypatch.setattr(bench.runner, "_run_once", lambda *a: {"top": {}})  # instant: 3 runs
    row = bench.runner.run_cell(dict(model="mlp-xs", kind="full", probes=1, steps=3, threads=1,
                              method="nets"))
    assert len(row["runs"]) == bench.runner.REPEATS == 3
    assert row["peak_bytes"] == 100_000 * 1024
    assert row["peak_extra_bytes"] == 10_000 * 1024
    assert row["peak_all_bytes"] == 130_000 * 1024  # read after each of the 3 runs


def test_a_cell_restricted_to_some_blocks_runs_every_method_on_them(benchmark_script):
    """A blockwise cell's ``block_names`` (the GPU grid's) restricts nets, hessian-eigenthings and
    the authors' algorithm to those parameters; each finds the exact largest eigenvalue of
    each of those diagonal blocks (31 steps span each block), and the counts are the blocks'."""
    bench = benchmark_script("bench_peers")
    model, loss_fn, data = bench.runner.problems.load("mlp-xs")
    names = ["0.weight", "2.bias"]
    params = dict(model.named_parameters())
    H = dense_hessian(model, loss_fn, data)
    offsets = np.cumsum([0] + [p.numel() for p in params.values()])
    exact = {}
    for (n, p), a in zip(params.items(), offsets[:-1], strict=False):
        if n in names:
            exact[n] = float(np.linalg.eigvalsh(H[a:a + p.numel(), a:a + p.numel()]).max())
    cell = dict(model="mlp-xs", kind="blocks", probes=1, steps=31, threads=1, density_bins=500,
                device="cpu", block_names=names)
    methods = ["nets", "authors"]
    try:
        import hessian_eigenthings  # noqa: F401
        methods.append("eigenthings")
    except ImportError:
        pass
    scale = max(abs(v) for v in exact.values())
    for method in methods:
        row = bench.runner.run_cell({**cell, "method": method})
        assert set(row["top"]) == set(names), method
        for n in names:
            assert abs(row["top"][n] - exact[n]) <= 1e-8 * scale, (method, n)
        assert row["params"] == 12 + 3 and row["hvps"] == 12 + 3  # one probe, capped steps


def test_a_cell_naming_an_unknown_block_is_refused(benchmark_script):
    bench = benchmark_script("bench_peers")
    with pytest.raises(ValueError, match=r"\['nope'\] are not parameters of mlp-xs"):
        bench.runner.run_cell(dict(model="mlp-xs", kind="blocks", probes=1, steps=3, threads=1,
                            block_names=["0.weight", "nope"], method="nets"))


def test_only_refuses_a_value_no_cell_has(benchmark_script):
    """A misspelt ``--only`` value would select no cell and measure nothing: it is refused,
    naming the values the grid's cells have."""
    bench = benchmark_script("bench_peers")
    cells = bench.grid("full")
    assert bench.parse_only(["kind=blocks", "probes=1,3"], cells) == {"kind": {"blocks"},
                                                                      "probes": {1, 3}}
    with pytest.raises(ValueError, match="no cell with kind blockwise; its cells have kind "
                                         "blocks, full"):
        bench.parse_only(["kind=blockwise"], cells)
    with pytest.raises(ValueError, match="no cell with probes 2, 5; its cells have probes "
                                         "1, 3, 10"):
        bench.parse_only(["probes=1,2,5"], cells)


def test_gpu_grid_is_the_gpt2_small_blockwise_cell_on_cuda(benchmark_script):
    """The grid ``make gpu-check`` measures: blockwise only, on CUDA, on the first layer's
    matrices of the GPT-2-small-sized model, which are parameters of it; its data are the
    sequences of its context in batches of 4."""
    bench = benchmark_script("bench_peers")
    cells = bench.grid("gpu")
    assert [c["kind"] for c in cells] == ["blocks"]
    (cell,) = cells
    assert cell["device"] == "cuda" and cell["model"] == "gpt-gpu"
    assert cell["block_names"] == list(bench.GPT_BLOCKS)
    assert bench._cell_key(cell) != bench._cell_key({**cell, "device": None})
    model, _, data = bench.runner.problems.load("gpt-gpu")
    assert set(cell["block_names"]) <= {n for n, _ in model.named_parameters()}
    assert sum(p.numel() for p in model.parameters()) > 100_000_000  # GPT-2-small-sized
    assert [tuple(x.shape) for x, _ in data] == [(4, 128)] * (GPT_SAMPLES // 4)


def test_gpu_full_grid_is_the_same_model_s_full_spectrum_on_cuda(benchmark_script):
    """The GPU's full-spectrum cell: the GPT-2-small-sized model of the gpu grid, whole, on
    CUDA, against the full-spectrum peers; with --compile nets runs compiled too."""
    bench = benchmark_script("bench_peers")
    (cell,) = bench.grid("gpu-full")
    (blocks,) = bench.grid("gpu")
    assert cell["kind"] == "full" and "block_names" not in cell
    assert {k: cell[k] for k in ("model", "device", "probes", "steps", "threads")} == {
        k: blocks[k] for k in ("model", "device", "probes", "steps", "threads")}
    assert bench._methods(cell, True) == ["nets", "nets+compile", "eigenthings", "curvlinops"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["gpu", "gpu-full"])
def test_gpu_grid_without_cuda_stops_with_the_fix(benchmark_script, capsys, name):
    bench = benchmark_script("bench_peers")
    with pytest.raises(SystemExit) as e:
        bench.main(["--grid", name])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "make gpu-check" in err
    assert bench.machine_note("cuda").endswith(f"CPUs ({platform.machine()})")  # no GPU


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_compile_adds_a_compiled_nets_row_to_the_full_cells(benchmark_script, tmp_path):
    """--compile: the full-spectrum cell gets a nets+compile row (compiled, its compilation in
    its time) with the same largest Ritz value as nets; the blockwise cell none."""
    bench = benchmark_script("bench_peers")
    out = tmp_path / "rows.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--compile", "--json", str(out)])
    rows = json.loads(out.read_text())
    (compiled,) = [r for r in rows if r["method"] == "nets+compile"]
    (eager,) = [r for r in rows if r["method"] == "nets" and r["kind"] == "full"]
    assert compiled["kind"] == "full" and "error" not in compiled, compiled
    assert compiled["mode"] == "forward" and compiled["seconds"] > 0
    assert compiled["top"]["full"] == pytest.approx(eager["top"]["full"], rel=1e-8)
    assert "compiled, compilation included" in buf.getvalue()


def test_reorth_option_runs_nets_partial_and_keeps_files_apart(smoke, tmp_path, capsys):
    """--reorth partial: nets' rows ran partial reorthogonalization (their notes say so and
    how many passes) and find the same largest Ritz value as the default run (the smoke
    model's whole space: the exact eigenvalue); a nets+full-reorth row ran the default in the
    same run, its ratio the partial run's gain; a --json file of the other option is refused
    on resume."""
    bench, _, full_rows = smoke
    out = tmp_path / "rows.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.main(["--grid", "smoke", "--in-process", "--reorth", "partial", "--only",
                    "kind=full", "--json", str(out)])
    rows = json.loads(out.read_text())
    (part,) = [r for r in rows if r["method"] == "nets"]
    (full,) = [r for r in full_rows if r["method"] == "nets" and r["kind"] == "full"]
    assert part["reorth"] == "partial" and 0 <= part["reorthogonalized"] < 30
    assert full.get("reorth", "full") == "full"
    (both,) = [r for r in rows if r["method"] == "nets+full-reorth"]
    assert both["reorth"] == "full" and both["reorthogonalized"] > part["reorthogonalized"], (
        both["reorthogonalized"], part["reorthogonalized"])
    assert both["top"]["full"] == pytest.approx(full["top"]["full"], rel=1e-12)
    (line,) = [x for x in buf.getvalue().splitlines() if "| nets+full-reorth |" in x]
    ratio = float(line.split("|")[12])
    assert ratio == pytest.approx(both["seconds"] / part["seconds"], abs=0.01)
    assert part["top"]["full"] == pytest.approx(full["top"]["full"], rel=1e-10)
    assert f"reorth partial ({part['reorthogonalized']} passes)" in buf.getvalue()
    assert "--reorth partial" in buf.getvalue()
    with pytest.raises(SystemExit, match="measured with --reorth partial, not full"):
        bench.main(["--grid", "smoke", "--in-process", "--json", str(out), "--resume",
                    "--render-only"])


def test_full_spectra_grid_is_the_full_grids_full_spectrum_cells(benchmark_script):
    bench = benchmark_script("bench_peers")
    full = [c for c in bench.grid("full") if c["kind"] == "full"]
    assert bench.grid("full-spectra") == full and len(full) == 36


def test_paper_steps_grid_is_the_full_spectrum_at_a_hundred_steps(benchmark_script):
    bench = benchmark_script("bench_peers")
    cells = bench.grid("paper-steps")
    assert {c["model"] for c in cells} == {"gpt", "gpt2-s", "gpt2-m"}
    assert all(c["kind"] == "full" and c["steps"] == 100 and c["probes"] == 1
               and c["threads"] == 1 for c in cells)
