"""benchmarks/bench_derivatives.py: it runs end to end and its table says what the check
found (a smooth model agrees in float64; a ReLU model's gradient part is inconclusive in
float32, where its step crosses kinks)."""

import contextlib
import io

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_derivatives")


def test_the_report_tabulates_both_parts_of_every_row(bench, tmp_path):
    out = tmp_path / "derivatives.md"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        bench.main(["--models", "gpt", "mlp", "--dtypes", "float32", "float64",
                    "--out", str(out)])
    text = out.read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line
            for line in text.splitlines() if line.startswith("| gpt") or
            line.startswith("| mlp")}
    assert set(rows) == {("gpt", "float32"), ("gpt", "float64"), ("mlp", "float32"),
                         ("mlp", "float64")}
    assert rows["gpt", "float64"].count("| agrees |") == 3  # both parts and the verdict
    assert "| inconclusive |" in rows["mlp", "float32"]  # ReLU kinks at float32's step
    assert "Verdicts: 3 agree, 0 disagree, 1 inconclusive." in text


def test_a_row_is_one_check_on_the_first_batch(bench):
    row = bench.check("mixer", bench.torch.float64)
    assert row["verdict"] == row["gradient_verdict"] == "agrees", row
    assert row["params"] > 0 and row["step"] > 0 and row["seconds"] > 0
