"""benchmarks/bench_estimates.py: its two byte counters agree, its verdict rule gives each
outcome on hand-set ratios, and it runs end to end. (The dispatch-level counter,
``nets.engine.memory.LiveBytes``, is checked against allocations of known size in
``test_memory.py``.)"""

import contextlib
import io

import pytest
import torch


@pytest.fixture(scope="module")
def estimates(benchmark_script):
    return benchmark_script("bench_estimates")


def test_the_two_counters_agree_on_plain_allocations(estimates):
    """LiveBytes and the allocator's events count the same bytes where no kernel needs scratch
    memory: the allocator is the check on the dispatch-level count."""
    def work():
        a = torch.zeros(4096)
        b = torch.ones(1024, dtype=torch.float64)
        del a
        return b, torch.zeros(2048)

    out, counts = estimates._counted(torch.device("cpu"), work)
    assert counts["peak"] == counts["allocator_peak"] == 4096 * 4 + 1024 * 8
    assert counts["live"] == counts["allocator_held"] == 1024 * 8 + 2048 * 4
    assert len(out) == 2


@pytest.mark.parametrize("ratio, expected", [(1.0, "met"), (1.2, "met"), (1.5, "met"),
                                             (0.99, "MISSED (under)"), (0.5, "MISSED (under)"),
                                             (1.51, "MISSED (over)"), (3.0, "MISSED (over)")])
def test_ratio_verdict_outcomes(estimates, ratio, expected):
    assert estimates.ratio_verdict(ratio) == expected


def test_rows_follow_their_definitions(estimates):
    row = estimates._row("m", "reverse", 4, "measured", estimate=3 * 2**20, allocator=2 * 2**20,
                         live=2**19, bound=2**21)
    assert row["ratio"] == pytest.approx(1.5) and row["verdict"] == "met"
    assert row["estimate_mib"] == pytest.approx(3.0) and row["live_mib"] == 0.5
    assert row["bound_mib"] == 2.0 and row["estimate"] == "measured"
    assert estimates._row("m", "graph", "", "walked", 1, 1, 1)["bound_mib"] is None


def test_smoke_run_measures_every_mode(estimates, tmp_path):
    out = tmp_path / "estimates.md"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        estimates.main(["--models", "mlp-xs", "--in-process", "--out", str(out)])
    text = out.read_text()
    assert text.strip() == buf.getvalue().strip()
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| mlp-xs |")]
    # the graph, then every mode at each tangent count its four blocks allow (4, not 16)
    assert [(r[1], r[2]) for r in rows] == [("graph", ""), ("reverse-block", "1"),
                                            ("reverse-block", "3"), ("reverse", "4"),
                                            ("forward", "4")]
    assert all(cells[7] in ("met", "MISSED (under)", "MISSED (over)") for cells in rows)
    assert "estimates met the target" in text.splitlines()[-1]


def test_measured_rows_are_positive_and_consistent(estimates):
    """The tiny model's byte counts (under the report's two decimals of MiB) from the rows: the
    double-backward modes' estimates measured, forward-over-reverse's the graph bound, and the
    two counters equal on a CPU."""
    rows = estimates.measure("mlp-xs")
    assert len(rows) == 5
    for r in rows:
        assert r["estimate_mib"] > 0 and r["allocator_mib"] > 0
        assert r["live_mib"] == r["allocator_mib"]
        assert r["ratio"] == pytest.approx(r["estimate_mib"] / r["allocator_mib"])
        assert r["verdict"] == estimates.ratio_verdict(r["ratio"])
    kinds = {r["what"]: r["estimate"] for r in rows}
    assert kinds == {"graph": "walked", "reverse-block": "measured", "reverse": "measured",
                     "forward": "graph bound"}
    forward = next(r for r in rows if r["what"] == "forward")
    assert forward["estimate_mib"] == forward["bound_mib"]
