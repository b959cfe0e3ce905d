"""Ctrl-C at random moments of `nets spectrum`: one line, exit 130, a valid resumable file."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nets.engine.results import load_spectra

ROOT = Path(__file__).resolve().parents[2]


def test_sigint_at_random_moments_exits_130_without_traceback(tmp_path):
    rng = np.random.default_rng(20261201)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        out = tmp_path / f"run{attempt}.json"
        argv = [sys.executable, "-m", "nets", "spectrum", "--model", "mlp", "--blocks",
                "--steps", "20", "--probes", "500", "--threads", "1", "--out", str(out)]
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL)
        # wait until the probe loop runs (a probe is stored), then interrupt at a random moment
        deadline = time.monotonic() + 120
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.exists(), proc.poll()
        time.sleep(float(rng.uniform(0, 0.8)))
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read().decode(errors="replace")
        proc.wait(timeout=60)
        assert proc.returncode == 130, (attempt, err[-3000:])
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
        last = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()][-1]
        assert last.startswith("nets spectrum: interrupted; "), last
        assert "rerun the same command to resume" in last
        assert load_spectra(out).spectra  # what was saved is a valid file the next run resumes
        assert not list(tmp_path.glob(".*.tmp"))
