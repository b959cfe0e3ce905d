"""benchmarks/bench_floor.py: the derived costs and ceilings, the same-numbers check, a smoke run.

The script's timings are the benchmark's output, not tested; what is tested is that the
numbers it derives from them follow their definitions, that it refuses to time products that
disagree, and that it runs end to end on a tiny float64 model.
"""


import pytest


@pytest.fixture(scope="module")
def floor(benchmark_script):
    return benchmark_script("bench_floor")


def test_derived_costs_and_ceilings_follow_their_definitions(floor):
    rows = [{"model": "m", "L": 4, "P": 1, "grad_ms": 2.0, "build_ms": 3.0, "full_ms": 5.0,
             "blocks_ms": 8.0, "bundled_ms": 6.0},
            {"model": "m", "L": 4, "P": 4, "grad_ms": 2.0, "build_ms": 3.0, "full_ms": 10.0,
             "blocks_ms": 16.0, "bundled_ms": 20.0},
            {"model": "other", "L": 2, "P": 3, "grad_ms": 1.0, "build_ms": 1.0, "full_ms": 1.0,
             "blocks_ms": 1.0, "bundled_ms": 1.0}]
    one, four, other = floor.derive(rows)
    assert one["gr_full"] == pytest.approx(2.5)            # 5 / 1 / 2
    assert one["gr_block"] == pytest.approx(0.75)          # bundled: 6 / (1·4) / 2
    assert four["gr_full"] == pytest.approx(1.25)          # 10 / 4 / 2
    assert four["gr_block"] == pytest.approx(0.5)          # per block: 16 / (4·4) / 2
    # k·P·(build + blocks(1)) / (build + k·floor(P)): the authors rebuild per step and run
    # one double backward per block, nets builds once and runs the cheaper of its products
    assert one["x_authors_10"] == pytest.approx(10 * 11 / (3 + 60))
    assert one["x_eig_30"] == pytest.approx(30 * 8 / (3 + 150))
    assert four["x_authors_30"] == pytest.approx(30 * 4 * 11 / (3 + 30 * 16))
    assert four["x_eig_10"] == pytest.approx(10 * 4 * 8 / (3 + 100))
    assert set(floor.STEPS) == {10, 30}
    assert all(other[f"x_{peer}_{k}"] is None  # no P = 1 row to compare with
               for peer in ("authors", "eig") for k in floor.STEPS)


def test_smoke_run_prints_a_row_per_probe_count(floor, tmp_path, smoke_report):
    text, rows = smoke_report(floor.main, ["--models", "mlp-xs", "--probes", "1", "2",
                                           "--repeats", "1"], tmp_path / "floor.md", "mlp-xs")
    assert [r[3] for r in rows] == ["1", "2"]
    assert all(r[1] in ("forward", "reverse", "reverse-block", "reverse-bundle") for r in rows)
    assert "Rows whose product could meet the target at all" in text


def test_probes_must_include_one(floor):
    with pytest.raises(SystemExit):
        floor.main(["--models", "mlp-xs", "--probes", "2"])
