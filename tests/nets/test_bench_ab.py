"""benchmarks/bench_ab.py: two versions of nets on the same cells, in one run."""

import contextlib
import io
import json

import pytest
import torch

MIB = 2**20


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_ab")


def _row(seconds, rise_mib, label, runs=None):
    return {"model": "m", "kind": "full", "probes": 3, "steps": 10, "threads": 1, "label": label,
            "seconds": seconds, "runs": runs or [seconds], "peak_extra_bytes": rise_mib * MIB,
            "load": 0.5, "top": {"a": 2.0, "b": 1.0}}


def test_cells_parse_and_bad_ones_are_named(bench):
    assert bench.parse_cells("gpt2-m:full:3:10, gpt:blocks:1:30,gpt:lanczos:2:5") == [
        ("gpt2-m", "full", 3, 10), ("gpt", "blocks", 1, 30), ("gpt", "lanczos", 2, 5)]
    for bad in ("gpt2-m:full:3", "gpt:full:0:30", "gpt:spectrum:1:3", "gpt:full:x:3",
                ":full:1:2", "gpt:full:1:2:3"):
        with pytest.raises(ValueError, match="--cells"):
            bench.parse_cells(bad)


def test_render_on_hand_set_rows(bench):
    base = _row(10.0, 40, "abc", runs=[9.0, 10.0, 11.0])
    text = bench.render([(_row(5.0, 20, "def", runs=[4.9, 5.0, 5.1]), base),
                         ({**_row(1, 1, "def"), "error": "boom"}, base)], "# h")
    assert ("| m | full | 3 | 10 | 1 | def | 5.00 | 3 | 20 | 2.00 (1.76-2.24) | met | 0.50 | "
            "0.0e+00 |") in text
    assert "| m | full | 3 | 10 | 1 | abc | 10.00 | 3 | 40 |  | | |  | 0.5 |" in text
    assert "failed: boom" in text


def test_base_is_extracted_and_a_bad_revision_is_named(bench, tmp_path):
    short = bench.extract("HEAD", tmp_path)
    assert short and (tmp_path / "nets" / "__init__.py").is_file()
    assert (tmp_path / "labkit").is_dir() and not (tmp_path / "tests").exists()
    with pytest.raises(ValueError, match="not a commit"):
        bench.extract("no-such-revision-xyz", tmp_path)


def test_lanczos_alone_finds_the_diagonal_operators_top(bench):
    """The Lanczos-only cell runs nets.lanczos on a diagonal operator of the model's dimension
    (31 for mlp-xs): with 31 steps its largest Ritz value is the largest entry exactly."""
    row = bench.run_lanczos(dict(model="mlp-xs", kind="lanczos", probes=2, steps=31, threads=1,
                                 method="nets"))
    g = torch.Generator().manual_seed(0)
    top = float(torch.rand(31, generator=g, dtype=torch.float64).max())
    assert row["params"] == 31 and abs(row["top"]["full"] - top) < 1e-12
    assert len(row["runs"]) == 3 and row["seconds"] > 0


def test_a_process_that_imports_nets_from_elsewhere_is_an_error(bench, tmp_path):
    """The measuring process reports where it imported nets from: a code directory without
    nets falls back to the installed one, and the row says so instead of timing it."""
    cell = dict(model="mlp-xs", kind="full", probes=1, steps=31, threads=1, method="nets")
    row = bench.measure(cell, tmp_path)
    assert "imported nets from" in row["error"]


def test_command_line_measures_both_versions_in_rounds(bench, tmp_path):
    out, js = tmp_path / "ab.md", tmp_path / "ab.json"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        # (a spectrum cell runs in a measuring process in the test above)
        bench.main(["--rounds", "1", "--cells", "mlp-xs:lanczos:2:20", "--threads", "1,2",
                    "--out", str(out), "--json", str(js)])
    text = out.read_text()
    assert "--base HEAD --rounds 1 --threads 1,2" in text and text in printed.getvalue()
    assert text.count("| mlp-xs | lanczos | 2 | 20 | 1 |") == text.count(
        "| mlp-xs | lanczos | 2 | 20 | 2 |") == 2
    saved = json.loads(js.read_text())
    assert sorted(len(v) for v in saved["runs"].values()) == [1] * 4
    assert all("error" not in r and r["seconds"] > 0 for v in saved["runs"].values() for r in v)
    for bad in (["--rounds", "0"], ["--threads", "0"], ["--threads", "one"]):
        with pytest.raises(SystemExit):
            bench.main(bad)
    # the same rows written again without measuring: the same table
    again = tmp_path / "again.md"
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--render-only", "--json", str(js), "--out", str(again)])
    rerun = again.read_text()
    assert "--render-only" in rerun and "nothing measured by this command" in rerun
    assert saved["command"] == "--base HEAD --rounds 1 --threads 1,2 --cells mlp-xs:lanczos:2:20"
    assert f"they were measured by `{saved['command']}` on {saved['measured']}" in rerun
    assert [r for r in rerun.splitlines() if r.startswith("| mlp-xs |")] == [
        r for r in text.splitlines() if r.startswith("| mlp-xs |")]
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--render-only"])
    with pytest.raises(SystemExit):
        bench.main(["--base", "no-such-revision-xyz", "--cells", "mlp-xs:full:1:31"])
