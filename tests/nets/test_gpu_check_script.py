"""benchmarks/gpu_check.sh (``make gpu-check``): it stops at once without CUDA, and with CUDA it
runs its five measurements in order, each into the output folder, going on after one fails.

The GPU itself is not here: a stand-in ``python`` records each command instead of running it
(and claims CUDA where the script asks), so what is tested is the script's own logic and that
the commands it runs name grids, models and options that the benchmark scripts know.
"""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _stand_in(tmp_path: Path, fail: str = "") -> tuple[Path, Path]:
    """A ``python`` that logs its arguments (one line per call) and exits 0, or 3 for a call
    whose arguments contain ``fail``."""
    log = tmp_path / "calls.log"
    py = tmp_path / "python"
    failing = f'[[ "$*" == *{fail}* ]] && exit 3\n' if fail else ""
    py.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> {shlex.quote(str(log))}\n"
                  f"{failing}exit 0\n")
    py.chmod(0o755)
    return py, log


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_before_measuring(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(SCRIPT), str(out), sys.executable], capture_output=True,
                       text=True)
    assert p.returncode == 2
    assert "no CUDA device" in p.stderr
    assert list(out.iterdir()) == []


def test_it_runs_the_five_measurements_in_order_into_the_folder(tmp_path, benchmark_script):
    py, log = _stand_in(tmp_path)
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(SCRIPT), str(out), str(py)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("-c import torch")  # the CUDA check first
    scripts = [c.split()[0] for c in calls[1:]]
    assert scripts == ["benchmarks/bench_peers.py", "benchmarks/bench_modes.py",
                       "benchmarks/bench_reorth.py", "benchmarks/bench_peers.py", "-m"]
    assert "--max-memory least" in calls[4]
    for name in ("peers-gpu.md", "modes-gpu.md", "reorth-gpu.md", "peers-gpu-least.md",
                 "gpu-check.json"):
        assert str(out / name) in p.stdout + log.read_text(), name
    # the grid and the models it names exist
    peers = benchmark_script("bench_peers")
    assert calls[1].split()[calls[1].split().index("--grid") + 1] in peers.GRIDS
    modes_args = calls[2].split()
    models = modes_args[modes_args.index("--models") + 1:modes_args.index("--tangents")]
    assert models and set(models) <= set(benchmark_script("problems").MODELS)
    assert "nets gpu-check --json" in calls[5]


def test_a_failed_measurement_does_not_stop_the_others(tmp_path):
    py, log = _stand_in(tmp_path, fail="bench_modes")
    p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(py)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "== modes FAILED (exit 3)" in p.stdout
    assert len(log.read_text().splitlines()) == 6  # the check and all five measurements
