"""benchmarks/bench_reorth.py: a smoke run times every chunk size and the device's default, and
a chunk size whose Lanczos tridiagonals differ is an error, not a row.

The timings are the benchmark's output, not tested.
"""

import contextlib
import io

import numpy as np
import pytest


@pytest.fixture(scope="module")
def reorth(benchmark_script):
    return benchmark_script("bench_reorth")


def _rows(text):
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| chunk")]


def test_smoke_run_times_every_chunk_and_the_default(reorth, tmp_path):
    out = tmp_path / "reorth.md"
    with contextlib.redirect_stdout(io.StringIO()):
        reorth.main(["--dim", "4096", "--probes", "2", "--steps", "8", "--chunks", "0.01",
                     "0.05", "--repeats", "1", "--out", str(out)])
    text = out.read_text()
    rows = _rows(text)
    default = reorth.chunk_bytes_for(reorth.torch.device("cpu")) / 2**20
    assert [float(r[0]) for r in rows] == pytest.approx(sorted([0.01, 0.05, default]), rel=1e-4)
    assert [r[1] for r in rows].count("yes") == 1
    assert float(next(r for r in rows if r[1] == "yes")[0]) == default
    ratios = [float(r[3]) for r in rows]
    assert min(ratios) == 1.0 and all(float(r[2]) > 0 for r in rows)
    assert "--device cpu" in text and text.rstrip().endswith("x the fastest's time.")
    assert "--dtype float64" in text and "float64 vectors" in text  # the chunked bases


def test_differing_tridiagonals_are_an_error(reorth, monkeypatch):
    """The sizes must compute the same numbers, else their times do not compare."""
    real, calls = reorth.lanczos, []

    def drifting(matvec, starts, steps, *, chunk_bytes):
        run = real(matvec, starts, steps, chunk_bytes=chunk_bytes)[0]
        calls.append(chunk_bytes)
        if len(set(calls)) > 1:  # every size after the first drifts
            run.alpha[...] += 1e-3 * np.abs(run.alpha).max()
        return [run]

    monkeypatch.setattr(reorth, "lanczos", drifting)
    with pytest.raises(RuntimeError, match="the tridiagonals differ"):
        reorth.measure("cpu", 512, 1, 5, [0.001], 1)


def test_bad_options_are_refused(reorth):
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        reorth.main(["--dim", "0"])
