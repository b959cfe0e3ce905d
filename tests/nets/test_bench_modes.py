"""benchmarks/bench_modes.py: the ratios and the crossover follow their definitions, a smoke run.

The script's timings are the benchmark's output, not tested; what is tested is that the
numbers derived from them follow their definitions and that it runs end to end on a tiny
float64 model, checking that the two modes' products agree before timing them.
"""

import contextlib
import io

import pytest
import torch


@pytest.fixture(scope="module")
def modes(benchmark_script):
    return benchmark_script("bench_modes")


def test_ratios_and_crossover_follow_their_definitions(modes):
    rows = modes.derive([
        {"model": "a", "T": 8, "forward_first_ms": 40.0, "forward_ms": 12.0,
         "reverse_first_ms": 10.0, "reverse_ms": 10.0},
        {"model": "a", "T": 16, "forward_first_ms": 60.0, "forward_ms": 18.0,
         "reverse_first_ms": 20.0, "reverse_ms": 20.0},
        {"model": "a", "T": 32, "forward_first_ms": 90.0, "forward_ms": 30.0,
         "reverse_first_ms": 40.0, "reverse_ms": 40.0},
        {"model": "b", "T": 8, "forward_first_ms": 9.0, "forward_ms": 8.0,
         "reverse_first_ms": 10.0, "reverse_ms": 10.0},
        {"model": "b", "T": 16, "forward_first_ms": 30.0, "forward_ms": 21.0,
         "reverse_first_ms": 20.0, "reverse_ms": 20.0},
        {"model": "c", "T": 8, "forward_first_ms": 30.0, "forward_ms": 11.0,
         "reverse_first_ms": 10.0, "reverse_ms": 10.0}])
    assert rows[0]["warm_ratio"] == pytest.approx(1.2)
    assert rows[0]["first_ratio"] == pytest.approx(4.0)
    # a: faster from 16 on; b: faster at 8 but not at 16 (not from 8 on); c: never
    assert modes.crossover(rows) == {"a": 16, "b": None, "c": None}


def test_smoke_run_times_both_modes(modes, tmp_path, smoke_report):
    text, rows = smoke_report(modes.main, ["--models", "mlp-xs", "--tangents", "2", "4",
                                           "--repeats", "1", "--in-process"],
                              tmp_path / "modes.md", "mlp-xs")
    assert [r[2] for r in rows] == ["2", "4"]
    assert "mlp-xs: " in text.splitlines()[-1]


def test_bad_options_are_refused(modes):
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        modes.main(["--tangents", "0"])


def test_each_model_runs_in_its_own_process(modes, tmp_path):
    """The default path: a model's rows come back from a fresh process (``--model``)."""
    out = tmp_path / "modes.md"
    with contextlib.redirect_stdout(io.StringIO()):
        modes.main(["--models", "mlp-xs", "--tangents", "2", "--repeats", "1",
                    "--out", str(out)])
    text = out.read_text()
    assert "every model in its own process" in text
    assert len([line for line in text.splitlines() if line.startswith("| mlp-xs | 31 | 2 |")]) == 1


def test_the_device_is_named_in_the_report(modes, tmp_path, smoke_report):
    """``--device`` (cuda on a GPU: ``make gpu-check``) is part of the command in the header."""
    text, rows = smoke_report(modes.main, ["--models", "mlp-xs", "--tangents", "2", "--repeats",
                                           "1", "--in-process", "--device", "cpu"],
                              tmp_path / "modes.md", "mlp-xs")
    assert len(rows) == 1 and "--device cpu`" in text


def test_a_count_out_of_memory_ends_that_models_counts(modes, monkeypatch):
    """On a GPU the largest counts may not fit: the first that does not is recorded as such, the
    larger ones are not tried, the smaller ones keep their rows."""
    real = modes._measure_count

    def tight(*args):
        if args[5] >= 4:  # t
            raise modes.torch.OutOfMemoryError("CUDA out of memory")
        return real(*args)

    monkeypatch.setattr(modes, "_measure_count", tight)
    rows = modes.measure("mlp-xs", [2, 4, 8], 1)
    assert [r["T"] for r in rows] == [2, 4]
    assert "error" not in rows[0] and rows[1]["error"] == "out of memory"
    assert modes.crossover(rows) == {"mlp-xs": modes.crossover(rows[:1])["mlp-xs"]}


def test_a_model_that_fails_is_named_and_the_others_reported(modes, tmp_path):
    out = tmp_path / "modes.md"
    with contextlib.redirect_stdout(io.StringIO()):
        modes.main(["--models", "mlp-xs", "no-such-model", "--tangents", "2", "--repeats", "1",
                    "--out", str(out)])
    text = out.read_text()
    assert len([line for line in text.splitlines() if line.startswith("| mlp-xs |")]) == 1
    assert "Not measured: no-such-model at T = all: " in text


def test_break_even_counts_the_calls_after_which_compiling_pays(modes):
    """n calls of the compiled product, its first compiling, against n of the eager one."""
    # 100 + 18·5 = 190 = 10 + 18·10 at n = 19, and 185 > 180 at n = 18
    assert modes.break_even(100.0, 5.0, 10.0, 10.0) == 19
    assert modes.break_even(5.0, 1.0, 10.0, 2.0) == 1  # faster from the first call
    assert modes.break_even(100.0, 10.0, 10.0, 10.0) == "never"  # warm no faster
    assert modes.break_even(5.0, 3.0, 10.0, 2.0) == "never"  # first faster, but loses later


def test_compiled_rows_compare_with_the_faster_eager_mode(modes):
    rows = modes.derive([
        {"model": "a", "T": 8, "forward_first_ms": 40.0, "forward_ms": 12.0,
         "reverse_first_ms": 10.0, "reverse_ms": 10.0, "compiled_first_ms": 1010.0,
         "compiled_ms": 5.0},
        {"model": "a", "T": 64, "forward_first_ms": 40.0, "forward_ms": 8.0,
         "reverse_first_ms": 10.0, "reverse_ms": 10.0, "compiled_first_ms": 1040.0,
         "compiled_ms": 9.0}])
    assert rows[0]["compiled_ratio"] == pytest.approx(0.5)  # against reverse-block's 10
    assert rows[0]["break_even"] == 1 + 200  # (1010 - 10) / (10 - 5)
    assert rows[1]["compiled_ratio"] == pytest.approx(9.0 / 8.0)  # against forward's 8
    assert rows[1]["break_even"] == "never"
    line = modes._compiled_summary(rows)
    assert "a: T = 8 after 201 calls." in line and "T = 64" not in line
    assert "at no tangent count" in modes._compiled_summary(rows[1:])


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="no torch.compile here")
def test_smoke_run_with_compile_times_the_compiled_product(modes, tmp_path):
    """--compile: the compiled product is checked against the eager ones and timed; its row
    says after how many calls it pays, or never."""
    out = tmp_path / "modes.md"
    with contextlib.redirect_stdout(io.StringIO()):
        modes.main(["--models", "mlp-xs", "--tangents", "2", "--repeats", "1", "--in-process",
                    "--compile", "--out", str(out)])
    text = out.read_text()
    (row,) = [[c.strip() for c in line.strip("|").split("|")]
              for line in text.splitlines() if line.startswith("| mlp-xs |")]
    assert all(float(c) > 0 for c in row[3:-1]), row  # times and ratios
    assert row[-1] == "never" or int(row[-1]) >= 1
    assert "compiled first ms (compiling)" in text and "--compile`" in text
    assert "next operator's first ms" in text
    assert not modes.inductor_config.force_disable_caches  # cold for the measurement only
    assert "Compiled forward-over-reverse is faster warm than the faster eager mode: mlp-xs: " \
        in text
