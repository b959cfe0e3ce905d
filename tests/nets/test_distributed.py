"""Data-parallel spectra and sharded grids: real processes on localhost with gloo.

The launcher starts the ranks of ``distributed_worker.py`` as separate Python processes (the
environment torchrun would give them) and waits with a timeout, so a hang fails the test
instead of stalling the suite. The end-to-end tests run the documented ``torchrun`` commands.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from nets.engine.distributed import Communicator, DistributedCommunicator, init_from_env
from nets.engine.spectrum import _warn_asymmetry

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[2]
#: A test whose processes have not finished after this long has hung.
HANG_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def launch(scenario: str, out: Path, *, world: int = 2, timeout_s: float = 30):
    """Run ``scenario`` on ``world`` ranks; returns (exit codes, stderr per rank, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    port = str(_free_port())
    procs = []
    t0 = time.monotonic()
    for r in range(world):
        env = _env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, TEST_TIMEOUT=str(timeout_s))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), scenario, str(out)], env=env,
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    codes, errs = [], []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(HANG_S - (time.monotonic() - t0), 1))
            codes.append(p.returncode)
            errs.append(err)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"scenario {scenario!r} hung: no exit after {HANG_S} s")
    return codes, errs, time.monotonic() - t0


def _result(out: Path, rank: int):
    return pickle.loads((out / f"rank{rank}.pkl").read_bytes())


# ------------------------------------------------------------------ single process (no launch)
def test_single_process_communicator_is_the_identity():
    comm = Communicator()
    assert (comm.rank, comm.world_size, comm.is_distributed) == (0, 1, False)
    assert comm.shard([1, 2, 3]) == [1, 2, 3]
    assert comm.map(lambda x: x + 1, [1, 2]) == [2, 3]
    t = torch.ones(3)
    comm.sum_([t], what="x")
    assert torch.equal(t, torch.ones(3))
    with pytest.raises(KeyError):
        comm.sum_([t], what="x", error=KeyError("own"))
    assert comm.together(lambda: 5, what="x") == 5
    assert comm.broadcast("a", what="x") == "a"


@dataclass(frozen=True)
class _RankOne(Communicator):
    """Rank 1 of 2 seen from one process (the base's single-process collectives)."""

    @property
    def rank(self) -> int:
        return 1

    @property
    def world_size(self) -> int:
        return 2


def test_gather_and_warn_of_a_single_process():
    comm = Communicator()
    assert comm.gather({"a": 1}, what="x") == [{"a": 1}]
    with pytest.warns(UserWarning, match="said once") as rec:
        comm.warn("said once")
    assert rec[0].filename == __file__  # stacklevel counts from the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _RankOne().warn("not on rank 1")  # rank 0 says it for the job


def test_the_asymmetry_warning_is_rank_zeros():
    """The products' asymmetry is measured on the same reduced products on every rank."""
    with pytest.warns(UserWarning, match="asymmetric at 1.0e-03"):
        _warn_asymmetry(1e-3, torch.float32, Communicator())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_asymmetry(1e-3, torch.float32, _RankOne())


def test_init_without_torchrun_is_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert type(init_from_env()) is Communicator
    with pytest.raises(ValueError, match="backend"):
        init_from_env(backend="mpi")
    with pytest.raises(ValueError, match="timeout"):
        init_from_env(timeout_s=0)
    with pytest.raises(ValueError, match="not initialized"):
        DistributedCommunicator()


# ------------------------------------------------------------------ two gloo processes
def _check_two_ranks_against_one(tmp_path, scenario: str) -> None:
    """Run ``scenario`` on two ranks and the default spectrum in one process: the ranks'
    spectra are bit-identical, and equal the single-process one to round-off (float64),
    relative to its scale."""
    codes, errs, _ = launch(scenario, tmp_path / "two")
    assert codes == [0, 0], errs
    codes1, errs1, _ = launch("spectrum", tmp_path / "one", world=1)
    assert codes1 == [0], errs1
    ref, a, b = _result(tmp_path / "one", 0), _result(tmp_path / "two", 0), \
        _result(tmp_path / "two", 1)
    assert ref.keys() == a.keys() == b.keys() and len(ref) == 4
    for k in ref:
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1], b[k][1])
        scale = np.abs(ref[k][0]).max()
        np.testing.assert_allclose(a[k][0], ref[k][0], rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(a[k][1], ref[k][1], rtol=0, atol=1e-10)


def test_data_parallel_spectrum_equals_single_process(tmp_path):
    _check_two_ranks_against_one(tmp_path, "spectrum")


def test_data_parallel_spectrum_at_the_least_budget(tmp_path):
    """``max_memory="least"`` on two ranks with uneven shards: each rank's least comes from
    its own graphs, and the Lanczos groups and reorthogonalization chunks are rank 0's (a
    chunk from each rank's budget changed the round-off: the ranks' tridiagonals differed)."""
    _check_two_ranks_against_one(tmp_path, "spectrum-least")


def test_data_parallel_spectrum_with_partial_reorthogonalization(tmp_path):
    """``reorth="partial"`` on two ranks: the ranks decide their passes from the same
    all-reduced products, so their tridiagonals agree bit for bit (the run's own check would
    stop them otherwise), and the spectra are the single-process full run's to round-off."""
    _check_two_ranks_against_one(tmp_path, "spectrum-partial")


def test_a_data_parallel_run_warns_once_not_once_per_rank(tmp_path):
    """What every rank computes alike (a 16-bit model's precision) is said by rank 0 alone;
    a budget below the least, which each rank finds from its own shard, is said once by rank 0
    for every rank below it, named, and the least quoted is the largest of theirs."""
    codes, errs, _ = launch("warnings", tmp_path)
    assert codes == [0, 0], errs
    zero, one = _result(tmp_path, 0), _result(tmp_path, 1)
    assert one == {"both below": [], "rank 1 below": [], "bfloat16": []}
    below = [m for m in zero["both below"] if "below the least" in m]
    assert len(below) == 1 and "max_memory=1 bytes is below the least this run holds on " \
        "ranks 0, 1 of 2:" in below[0], zero
    only = [m for m in zero["rank 1 below"] if "below the least" in m]
    assert len(only) == 1 and "holds on rank 1 of 2:" in only[0], zero
    leasts = {int(m.split("about ")[1].split(" bytes")[0]) for m in below + only}
    assert len(leasts) == 1 and min(leasts) > 1  # rank 1's shard has the larger first batch
    assert sum("bfloat16" in m for m in zero["bfloat16"]) == 1, zero


def test_sharded_grids_gather_the_single_process_result_on_every_rank(tmp_path):
    codes, errs, _ = launch("grids", tmp_path / "two")
    assert codes == [0, 0], errs
    a, b = _result(tmp_path / "two", 0), _result(tmp_path / "two", 1)
    assert a["map"] == b["map"] == [(x * x, x % 2) for x in range(7)]  # item i on rank i mod 2
    codes, errs, _ = launch("grids", tmp_path / "one", world=1)
    assert codes == [0], errs
    ref = _result(tmp_path / "one", 0)["gap"]
    # every training run and JS0, exactly (compared as JSON text: NaN, e.g. a held-out gap
    # without held-out data, is equal to itself there)
    assert (json.dumps(a["gap"], sort_keys=True) == json.dumps(b["gap"], sort_keys=True)
            == json.dumps(ref, sort_keys=True))
    assert len(ref["results"]) == 2 and all(len(r["sgd"]["grid"]) == 2 for r in ref["results"])
    # each rank trained only its share (its own cache folder holds only its runs)
    counts = [len(list((tmp_path / "two" / f"cache{r}").rglob("train-*"))) for r in (0, 1)]
    assert sorted(counts) == [6, 6], counts


def test_failing_item_of_a_map_is_reported_on_every_rank(tmp_path):
    codes, errs, _ = launch("map-failure", tmp_path)
    assert codes == [3, 3], errs
    for err in errs:
        assert "rank 0 of 2 failed" in err and "item 4" in err and "ZeroDivisionError" in err


def test_rank_failing_mid_run_stops_every_rank_with_its_error(tmp_path):
    codes, errs, seconds = launch("hvp-failure", tmp_path)
    assert codes == [3, 3], errs
    for err in errs:
        assert "all-reduce of Hessian-vector products" in err
        assert "rank 1 of 2 failed" in err and "injected failure in the loss" in err
    assert seconds < 30  # reported at the next collective, not after the timeout


def test_rank_dying_mid_run_is_reported_not_a_hang(tmp_path):
    codes, errs, _ = launch("crash", tmp_path, timeout_s=20)
    assert codes[1] == 7
    assert codes[0] == 3, errs[0]
    assert "rank 0 of 2" in errs[0] and "failed" in errs[0]


def test_ranks_with_different_models_are_refused(tmp_path):
    codes, errs, _ = launch("other-model", tmp_path)
    assert codes == [3, 3], errs
    assert all("model parameters differ across ranks" in e for e in errs)


# ------------------------------------------------------------------ the documented commands
def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=HANG_S * 3)


def test_torchrun_nets_spectrum_matches_single_process(tmp_path):
    """The acceptance command of the issue, with its single-process twin."""
    opts = ["spectrum", "--model", "gpt", "--blocks", "--steps", "10", "--probes", "2", "--json",
            "--quiet"]
    dist = _torchrun(["-m", "nets", *opts, "--out", "dist.json"], tmp_path)
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "nets", *opts, "--out", "single.json"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True,
                            timeout=HANG_S * 3)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = json.loads(dist.stdout), json.loads(single.stdout)  # rank 0 alone prints
    assert a["settings"] == b["settings"] and len(a["blocks"]) == len(b["blocks"]) > 10
    for ra, rb in zip(a["blocks"], b["blocks"], strict=True):
        assert ra["block"] == rb["block"]
        scale = max(abs(rb["lambda_min"]), abs(rb["lambda_max"]))
        for key in ("lambda_min", "lambda_max", "trace"):
            assert abs(ra[key] - rb[key]) <= 1e-4 * scale + 1e-12, (ra, rb)  # float32 round-off


ODD_ATTENTION = """
import torch
from torch import nn


class OddAttention(nn.Module):  # an attention module whose Q, K and V nets cannot recognize
    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(4, 4)

    def forward(self, x):
        return torch.tanh(self.mix(x))


def make():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(OddAttention(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(12, 4, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    return model, nn.functional.cross_entropy, [(x[:6], y[:6]), (x[6:], y[6:])]
"""


def test_torchrun_warns_once_about_the_blocks(tmp_path):
    """Blocks are built on every rank, alike: their warning (an attention module whose Q, K
    and V are not recognized) comes once, from rank 0."""
    (tmp_path / "odd.py").write_text(ODD_ATTENTION)
    dist = _torchrun(["-m", "nets", "spectrum", "--model", f"{tmp_path / 'odd.py'}:make",
                      "--blocks", "qkv", "--steps", "3", "--probes", "1", "--json", "--quiet",
                      "--out", "d.json"], tmp_path)
    assert dist.returncode == 0, dist.stderr[-3000:]
    assert dist.stderr.count("none of its linear layers (mix)") == 1, dist.stderr[-3000:]


def test_torchrun_quadlab_sweep_equals_single_process(tmp_path):
    opts = ["sweep", "--cases", "hetero", "homo", "--seeds", "2", "--steps", "2000", "--json",
            "--quiet"]
    dist = _torchrun(["-m", "quadlab", *opts], tmp_path)
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "quadlab", *opts], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=HANG_S)
    assert single.returncode == 0, single.stderr[-3000:]
    assert json.loads(dist.stdout) == json.loads(single.stdout)  # the same runs, gathered


def test_torchrun_refuses_commands_that_do_not_run_distributed(tmp_path):
    res = _torchrun(["-m", "nets", "lnstudy", "--depths", "2", "--quiet"], tmp_path)
    assert res.returncode != 0
    assert "does not run distributed" in res.stderr


def test_torchrun_resumes_a_partial_results_file(tmp_path):
    """Rank 0 reads the stored probes and tells the others; only the missing probe is computed."""
    from nets import zoo
    from nets.engine.results import load_spectra, save_spectra
    from nets.engine.spectrum import blockwise_spectrum

    opts = ["spectrum", "--model", "mlp", "--blocks", "--steps", "4", "--probes", "2", "--quiet",
            "--dtype", "float64"]
    full = subprocess.run([sys.executable, "-m", "nets", *opts, "--out", "full.json"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=HANG_S)
    assert full.returncode == 0, full.stderr[-3000:]
    stored = load_spectra(tmp_path / "full.json")
    model, loss_fn, data = zoo.load("mlp", seed=0, dtype=torch.float64)
    first = blockwise_spectrum(model, loss_fn, data, lanczos_steps=4, probes=2,
                               probe_indices=[1])  # probe 1 stored, probe 0 missing
    save_spectra(tmp_path / "part.json", stored.settings, first, code=stored.code,
                 fingerprint=stored.fingerprint)
    res = _torchrun(["-m", "nets", *opts, "--out", "part.json"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    a = load_spectra(tmp_path / "full.json").spectra
    b = load_spectra(tmp_path / "part.json").spectra
    for k in a:
        assert b[k].probe_ids.tolist() == [1, 0]  # the stored probe kept, the missing one added
        order = np.argsort(b[k].probe_ids)
        scale = np.abs(a[k].nodes).max()
        np.testing.assert_allclose(b[k].nodes[order], a[k].nodes, rtol=0, atol=1e-10 * scale)
