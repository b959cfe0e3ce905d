"""benchmarks/gpu_check.sh (``make gpu-check``): it stops at once without CUDA, and with CUDA it
runs its six steps in order, each into the output folder under a time limit, going on after one
fails or is stopped.

The GPU itself is not here: a stand-in ``python`` records each command instead of running it
(and claims CUDA where the script asks), so what is tested is the script's own logic and that
the commands it runs name grids, models and options that the benchmark scripts know.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
#: The steps run when GPU_CHECK_STEPS names none, in the script's order.
DEFAULT_STEPS = ["peers", "cuda-tests", "memory", "modes", "reorth", "gpu-check"]


def _stand_in(tmp_path: Path, fail: str = "", slow: str = "") -> tuple[Path, Path]:
    """A ``python`` that logs its arguments (one line per call) and exits 0, or 3 for a call
    whose arguments contain ``fail``; a call whose arguments contain ``slow`` sleeps 5 s first."""
    log = tmp_path / "calls.log"
    py = tmp_path / "python"
    failing = f'[[ "$*" == *{fail}* ]] && exit 3\n' if fail else ""
    sleeping = f'[[ "$*" == *{slow}* ]] && sleep 5\n' if slow else ""
    py.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> {shlex.quote(str(log))}\n"
                  f"{failing}{sleeping}exit 0\n")
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


def _steps(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines()
            if line.startswith("== ") and "(limit" in line]


def test_it_runs_the_six_steps_in_order_into_the_folder(tmp_path, benchmark_script):
    py, log = _stand_in(tmp_path)
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(SCRIPT), str(out), str(py)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _steps(p.stdout) == DEFAULT_STEPS
    calls = log.read_text().splitlines()
    assert calls[0].startswith("-c import torch")  # the CUDA check first
    scripts = [c.split()[0] for c in calls[1:]]
    assert scripts == ["benchmarks/bench_peers.py", "-m", "benchmarks/bench_memory.py",
                       "benchmarks/bench_modes.py", "benchmarks/bench_reorth.py", "-m"]
    names = ("peers-gpu.md", "peers-gpu.json", "cuda-tests.txt", "memory-gpu.md",
             "memory-gpu.json", "modes-gpu.md", "reorth-gpu.md", "gpu-check.json")
    for name in names:
        assert str(out / name) in p.stdout + log.read_text(), name
    assert len(names) <= 8  # what a lent machine returns
    # the grid, the models, the budgets and the blocks it names exist
    peers = benchmark_script("bench_peers")
    assert calls[1].split()[calls[1].split().index("--grid") + 1] in peers.GRIDS
    memory = calls[3].split()
    assert memory[memory.index("--model") + 1] == peers.GRIDS["gpu"]["models"][0]
    assert memory[memory.index("--blocks") + 1] == "gpu-check"
    assert "least" in benchmark_script("bench_memory").parse_budgets(
        memory[memory.index("--budgets") + 1])
    modes_args = calls[4].split()
    models = modes_args[modes_args.index("--models") + 1:modes_args.index("--tangents")]
    assert models and set(models) <= set(benchmark_script("problems").MODELS)
    assert "nets gpu-check --json" in calls[6]
    # the CUDA tests: pytest on test files that exist, selecting the CUDA ones
    tests = calls[2].split()
    assert tests[:3] == ["-m", "pytest", "-q"] and tests[tests.index("-k") + 1] == "cuda"
    files = [a for a in tests if a.startswith("tests/")]
    assert files and all((ROOT / f).is_file() for f in files)


def test_the_step_limits_fit_a_lent_machines_command():
    """A lent GPU machine runs one command for at most 10 minutes: the default steps' limits,
    and the two optional gpu-full steps' together, leave a minute of it for installing the
    wheels and the CUDA check; the partial-reorthogonalization step runs in a command of its
    own."""
    limits = {line.split()[1]: int(line.split()[2]) for line in SCRIPT.read_text().splitlines()
              if line.startswith("step ")}
    assert list(limits) == [*DEFAULT_STEPS, "gpu-full", "gpu-full-compile", "gpu-full-partial"]
    assert all(n > 0 for n in limits.values())
    assert sum(limits[s] for s in DEFAULT_STEPS) <= 540
    assert limits["gpu-full"] + limits["gpu-full-compile"] <= 540
    assert limits["gpu-full-partial"] <= 540


def test_named_steps_run_alone_in_the_scripts_order(tmp_path, benchmark_script):
    """GPU_CHECK_STEPS splits the check over several commands; the optional gpu-full steps run
    the full-spectrum grid, then its compiled row on the same files."""
    py, log = _stand_in(tmp_path)
    env = {**os.environ, "GPU_CHECK_STEPS": "memory peers"}
    p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(py)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _steps(p.stdout) == ["peers", "memory"]
    log.unlink()
    env["GPU_CHECK_STEPS"] = "gpu-full gpu-full-compile"
    out = tmp_path / "full"
    p = subprocess.run(["bash", str(SCRIPT), str(out), str(py)], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _steps(p.stdout) == ["gpu-full", "gpu-full-compile"]
    first, second = (c.split() for c in log.read_text().splitlines()[1:])
    for call in (first, second):
        assert call[0] == "benchmarks/bench_peers.py"
        assert call[call.index("--grid") + 1] == "gpu-full"
        assert "gpu-full" in benchmark_script("bench_peers").GRIDS
        assert call[call.index("--json") + 1] == str(out / "peers-gpu-full.json")
    assert "--compile" not in first and {"--compile", "--resume"} <= set(second)
    log.unlink()
    env["GPU_CHECK_STEPS"] = "gpu-full-partial"
    p = subprocess.run(["bash", str(SCRIPT), str(out), str(py)], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    (call,) = (c.split() for c in log.read_text().splitlines()[1:])
    assert call[call.index("--grid") + 1] == "gpu-full"
    assert call[call.index("--reorth") + 1] == "partial"
    assert call[call.index("--json") + 1] == str(out / "peers-gpu-full-partial.json")


def test_an_unknown_step_is_refused_before_anything_runs(tmp_path):
    py, log = _stand_in(tmp_path)
    p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(py)],
                       capture_output=True, text=True,
                       env={**os.environ, "GPU_CHECK_STEPS": "peers gpufull"})
    assert p.returncode == 2
    assert "unknown step 'gpufull'" in p.stderr and "gpu-full-compile" in p.stderr
    assert not log.exists() and not (tmp_path / "out").exists()


def test_a_failed_measurement_does_not_stop_the_others(tmp_path):
    py, log = _stand_in(tmp_path, fail="bench_modes")
    p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), str(py)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "== modes FAILED (exit 3)" in p.stdout
    assert len(log.read_text().splitlines()) == 7  # the check and all six steps


def test_a_step_past_its_limit_is_stopped_and_the_next_runs(tmp_path):
    """A step that outlasts its limit is stopped and named; the steps after it run. With
    GPU_CHECK_UNLIMITED=1 the same step runs to its end."""
    script = tmp_path / "gpu_check.sh"  # a copy with reorth's limit cut to 1 s
    text = SCRIPT.read_text()
    assert "step reorth 45 " in text
    script.write_text(text.replace("step reorth 45 ", "step reorth 1 ").replace(
        'cd "$(dirname "$0")/.."', f"cd {shlex.quote(str(ROOT))}"))
    py, _ = _stand_in(tmp_path, slow="bench_reorth")
    p = subprocess.run(["bash", str(script), str(tmp_path / "out"), str(py)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "== reorth STOPPED at its 1 s limit" in p.stdout
    assert _steps(p.stdout)[-2:] == ["reorth", "gpu-check"]  # the step after it ran
    assert "== gpu-check took" in p.stdout
    assert "FAILED" not in p.stdout
    p = subprocess.run(["bash", str(script), str(tmp_path / "out2"), str(py)],
                       capture_output=True, text=True, env={**os.environ,
                                                            "GPU_CHECK_UNLIMITED": "1"})
    assert p.returncode == 0, p.stdout
    assert "(limit 0 s)" in p.stdout and "STOPPED" not in p.stdout
