"""benchmarks/bench_floor.py: the derived costs and ceilings, the same-numbers check, a smoke run.

The script's timings are the benchmark's output, not tested; what is tested is that the
numbers it derives from them follow their definitions, that it refuses to time products that
disagree, and that it runs end to end on a tiny float64 model.
"""

import contextlib
import importlib.util
import io
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def floor():
    spec = importlib.util.spec_from_file_location("bench_floor",
                                                  ROOT / "benchmarks" / "bench_floor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_derived_costs_and_ceilings_follow_their_definitions(floor):
    rows = [{"model": "m", "L": 4, "P": 1, "grad_ms": 2.0, "build_ms": 3.0, "full_ms": 5.0,
             "blocks_ms": 8.0},
            {"model": "m", "L": 4, "P": 4, "grad_ms": 2.0, "build_ms": 3.0, "full_ms": 10.0,
             "blocks_ms": 16.0},
            {"model": "other", "L": 2, "P": 3, "grad_ms": 1.0, "build_ms": 1.0, "full_ms": 1.0,
             "blocks_ms": 1.0}]
    one, four, other = floor.derive(rows)
    assert one["gr_full"] == pytest.approx(2.5)            # 5 / 1 / 2
    assert one["gr_block"] == pytest.approx(1.0)           # 8 / (1·4) / 2
    assert one["x_authors"] == pytest.approx(11 / 8)       # 1·(3 + 8) / 8
    assert one["x_eig"] == pytest.approx(8 / 5)            # 1·(3 + 5) / 5
    assert four["gr_full"] == pytest.approx(1.25)          # 10 / 4 / 2
    assert four["gr_block"] == pytest.approx(0.5)          # 16 / (4·4) / 2
    assert four["x_authors"] == pytest.approx(4 * 11 / 16)
    assert four["x_eig"] == pytest.approx(4 * 8 / 10)
    assert other["x_authors"] is None and other["x_eig"] is None  # no P = 1 row to compare


def test_products_that_disagree_are_not_timed(floor):
    ref = [torch.tensor([1.0, -2.0]), torch.tensor([4.0])]
    floor.check_same(ref, [r * (1 + 1e-6) for r in ref], "round-off")
    with pytest.raises(RuntimeError, match="grouped products differ"):
        floor.check_same(ref, [ref[0], torch.tensor([4.1])], "grouped")


def test_smoke_run_prints_a_row_per_probe_count(floor, tmp_path):
    out = tmp_path / "floor.md"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        floor.main(["--models", "mlp-xs", "--probes", "1", "2", "--repeats", "1",
                    "--out", str(out)])
    text = out.read_text()
    assert text.strip() == buf.getvalue().strip()
    rows = [line for line in text.splitlines() if line.startswith("| mlp-xs |")]
    assert [r.split("|")[3].strip() for r in rows] == ["1", "2"]
    for r in rows:  # every timed and derived column is a positive number
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[3:]), r
    assert "Rows whose product could meet the target at all" in text


def test_probes_must_include_one(floor):
    with pytest.raises(SystemExit):
        floor.main(["--models", "mlp-xs", "--probes", "2"])
