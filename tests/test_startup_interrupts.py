"""Ctrl-C at early moments of every command line (while torch/numba still import): one line, 130.

Each command runs with ``-X importtime`` so the test knows when the package ``__init__`` has
called :func:`labkit.interrupts.guard_startup` (the first module imported after
``labkit.interrupts``: the guard runs between the two, before the heavy imports); SIGINT is then
sent at a random moment of the next second or so: during the
heavy imports, argument parsing or the command's first work. Before that moment the interpreter
itself is starting, which no Python code can guard.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labkit import interrupts
from labkit.interrupts import EXIT_INTERRUPTED, guard_startup

ROOT = Path(__file__).resolve().parent.parent


def _interrupt_early(argv: list[str], cwd: Path, delay: float) -> tuple[int, list[str]]:
    """Start ``python -X importtime argv``, SIGINT ``delay`` s after the start-up guard ran."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *argv], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    guarded = threading.Event()

    def drain() -> None:  # importtime writes thousands of lines: never let the pipe fill
        seen = False
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line.startswith("import time:"):
                if seen:  # an import after labkit.interrupts: guard_startup has returned
                    guarded.set()
                seen = seen or line.endswith("labkit.interrupts")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert guarded.wait(120), f"no import after labkit.interrupts: {lines[-20:]}"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    return proc.returncode, lines


COMMANDS = {
    "nets": (["-m", "nets", "spectrum", "--model", "mlp", "--blocks", "--steps", "20",
              "--probes", "500", "--threads", "1", "--out", "run.json"], "nets"),
    "quadlab": (["-m", "quadlab", "sweep", "--steps", "200000"], "quadlab"),
    "proofs": (["-m", "proofs", "--effort", "high"], "python -m proofs"),
    "figures": (["-m", "figures", "--profile", "tiny", "--only", "fig8_quadratic", "--out",
                 "out", "--cache", "cache"], "python -m figures"),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_sigint_at_early_random_moments_gives_one_line_and_130(name, tmp_path):
    argv, prog = COMMANDS[name]
    rng = np.random.default_rng([20261201, len(name)])
    # one SIGINT right after the guard (inside the heavy imports), one at a random later moment
    for attempt, delay in enumerate((0.0, float(rng.uniform(0.0, 1.0)))):
        cwd = tmp_path / str(attempt)
        cwd.mkdir()
        code, lines = _interrupt_early(argv, cwd, delay)
        text = [ln for ln in lines if not ln.startswith("import time:")]
        assert code == EXIT_INTERRUPTED, (name, delay, code, text[-30:])
        joined = "\n".join(text)
        assert "Traceback" not in joined and "KeyboardInterrupt" not in joined, joined[-3000:]
        last = [ln for ln in "\n".join(text).replace("\r", "\n").splitlines() if ln.strip()][-1]
        assert last.startswith(prog) and ": interrupted" in last, (name, last)
        assert not list(cwd.rglob(".*.tmp"))
        if attempt == 0 and name == "nets":
            # the SIGINT came while torch was importing: its import never completed
            assert not any(re.search(r"\|\s+torch$", ln) for ln in lines), "torch had loaded"
            assert last == "nets: interrupted while starting; nothing was saved", last


def test_guard_installs_only_for_the_command_line(monkeypatch):
    previous = signal.getsignal(signal.SIGINT)
    try:
        monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest", "-q"])
        assert not guard_startup("nets")  # a library import: untouched
        assert signal.getsignal(signal.SIGINT) is previous
        monkeypatch.setattr(sys, "argv", ["-m", "spectrum"])
        monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "othertool", "x"])
        assert not guard_startup("nets")  # another tool's `python -m` importing nets: untouched
        assert signal.getsignal(signal.SIGINT) is previous
        monkeypatch.setattr(sys, "orig_argv", ["python", "-mnets.cli"])  # attached form
        assert guard_startup("nets")
        signal.signal(signal.SIGINT, previous)
        monkeypatch.setattr(sys, "orig_argv", ["python", "-X", "dev", "-m", "nets", "spectrum"])
        assert guard_startup("nets")  # `python -X dev -m nets spectrum`
        assert signal.getsignal(signal.SIGINT) is not previous
        assert guard_startup("quadlab")  # imported by nets' command: the line still says nets
        assert interrupts._startup["prog"] == "nets"
        signal.signal(signal.SIGINT, previous)
        monkeypatch.setattr(sys, "argv", ["/venv/bin/quadlab", "run"])  # the console script
        assert guard_startup("quadlab", prog="quadlab")
        signal.signal(signal.SIGINT, lambda s, f: None)  # someone else's handler: left alone
        assert not guard_startup("quadlab")
        with pytest.raises(TypeError, match="package"):
            guard_startup("")
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts._startup.clear()
