"""The figures runner keeps torch's thread count where it was asked to be.

numba's OpenMP threading layer sets the calling thread's OpenMP thread count (which torch reads)
back to the number of cores at every parallel launch, so a quadlab figure run before a nets
figure used to switch the nets training runs to another thread count (and the report's
environment said "torch threads 2" for a run asked to use 1).
"""

import json
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch

import figures.__main__ as runner
from figures import report
from figures.registry import FigureSpec, Finding

ROOT = Path(__file__).resolve().parents[2]

#: Run in a fresh interpreter: only the *first* numba parallel launch of a process resets the
#: count (it starts numba's OpenMP pool), and the test process may have launched one already.
SCRIPT = """
import json, sys
import numpy as np, torch
import figures.__main__ as runner
from figures import report
from figures.registry import FigureSpec, Finding
from quadlab.kernels import closed_form_linear

def launch():
    nu = np.ones((4, 3))
    closed_form_linear(nu, nu.copy(), np.full(4, 0.5), 5, 1e6, np.empty((4, 6)),
                       np.empty(4, np.int64))

seen = {}
def quad(progress=None):
    seen["quadlab"] = torch.get_num_threads()
    launch()
    seen["after the launch"] = torch.get_num_threads()
    return 0

def nets_like(progress=None):
    seen["nets"] = torch.get_num_threads()
    return 0

def spec(name, compute):
    return FigureSpec(name=name, title=name, claim="c", caption="c", settings={"tiny": {}},
                      packages=("quadlab",), compute=compute, draw=lambda res, out: [],
                      findings=lambda res: Finding("m", "inconclusive"))

torch.get_num_threads()  # torch's pool is up, as after any torch work
runner.FIGURES = {"quad": spec("quad", quad), "nets_like": spec("nets_like", nets_like)}
runner.run_figures(["quad", "nets_like"], profile="tiny", out=sys.argv[1], cache_dir=None,
                   threads=1)
seen["end"] = torch.get_num_threads()
seen["report"] = report.environment()["torch threads"]
print(json.dumps(seen))
"""


def test_every_figure_runs_at_the_requested_thread_count(tmp_path):
    """A quadlab figure (numba) before a nets figure: the nets figure still runs at 1 thread,
    and the report states the count the figures ran with."""
    if numba.get_num_threads() < 2:
        pytest.skip("numba runs single-threaded here: its launch cannot change the count")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # the cause: numba's first parallel launch switched torch to numba's count
    assert seen.pop("after the launch") == numba.get_num_threads()
    # the fix: every figure starts at the requested count, and it is restored after each
    assert seen == {"quadlab": 1, "nets": 1, "end": 1, "report": "1"}


def _spec(name: str, compute) -> FigureSpec:
    return FigureSpec(name=name, title=name, claim="c", caption="c", settings={"tiny": {}},
                      packages=("quadlab",), compute=compute, draw=lambda res, out: [],
                      findings=lambda res: Finding("m", "inconclusive"))


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_thread_count_keys_the_figure_cache(tmp_path, monkeypatch, restore_threads):
    calls = []

    def count(progress=None):
        calls.append(torch.get_num_threads())
        return len(calls)

    monkeypatch.setattr(runner, "FIGURES", {"count": _spec("count", count)})
    for threads in (1, 2, 1, 2):
        runner.run_figures(["count"], profile="tiny", out=tmp_path, cache_dir=tmp_path,
                           threads=threads)
    assert calls == [1, 2]  # computed once per thread count, then read from the cache


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_a_bad_thread_count_is_refused(tmp_path, threads):
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        runner.run_figures([], profile="tiny", out=tmp_path, cache_dir=None, threads=threads)


def test_environment_names_the_cpu_and_the_kernels_torch_dispatches_to():
    """The report's environment says which processor and which of torch's CPU kernel sets
    (AVX2, AVX512, ...) ran it: the same code and seeds give other round-off, and so other
    training numbers, on another processor (the verdicts are what must not move)."""
    env = report.environment()
    assert (bool(env["cpu"]) and env["cpu"] != "unknown") or sys.platform != "linux"
    assert env["torch CPU capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch CPU capability"] in ("DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2",
                                           "AVX512", "SVE256", "SVE128")
