"""One rank of the multi-process tests in test_distributed.py (started by its launcher).

Usage: ``python distributed_worker.py SCENARIO OUT_DIR`` with ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set. Writes ``OUT_DIR/rank<r>.pkl`` on success; on a
``DistributedError`` prints it to stderr and exits with status 3.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
from pathlib import Path

import torch

from nets.engine.distributed import DistributedError, init_from_env
from nets.engine.spectrum import blockwise_spectrum

#: Batch sizes of the data: uneven, so a wrong weighting of the shards would show.
SIZES = (10, 22, 17, 15)


def small_problem():
    """A float64 tanh MLP with cross-entropy and its data, seeded."""
    g = torch.Generator().manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(),
                                torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(sum(SIZES), 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (sum(SIZES),), generator=g)
    return model, torch.nn.functional.cross_entropy, (x, y)


def uneven_batches(data):
    x, y = data
    out, start = [], 0
    for n in SIZES:
        out.append((x[start:start + n], y[start:start + n]))
        start += n
    return out


def spectrum_result(comm, *, loss_hook=None, max_memory=None, reorth="full", dtype=None):
    model, loss_fn, data = small_problem()
    if dtype is not None:
        model, data = model.to(dtype), (data[0].to(dtype), data[1])
    if loss_hook is not None:
        loss_fn = loss_hook(loss_fn)
    spectra = blockwise_spectrum(model, loss_fn, comm.shard(uneven_batches(data)),
                                 lanczos_steps=6, probes=2, seed=3, comm=comm,
                                 max_memory=max_memory, reorth=reorth)
    return {k: (s.nodes, s.weights) for k, s in spectra.items()}


def warnings_of(run) -> list[str]:
    """The messages of the warnings ``run()`` gave on this rank, every one recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught]


def warning_cases(comm) -> dict[str, list[str]]:
    """Each rank's warnings for a budget below the least on both ranks, on rank 1 alone, and
    for a 16-bit model."""
    return {"both below": warnings_of(lambda: spectrum_result(comm, max_memory=1)),
            "rank 1 below": warnings_of(lambda: spectrum_result(
                comm, max_memory=1 if comm.rank == 1 else None)),
            "bfloat16": warnings_of(lambda: spectrum_result(comm, dtype=torch.bfloat16))}


def gap_report(comm, cache) -> dict:
    """A tiny tuned SGD-vs-Adam grid (2 batch sizes × 3 rates × 2 seeds, and JS0)."""
    from nets.studies.gap import GapProfile, measure_gap
    from nets.studies.tasks import Task
    from nets.studies.training import Pool

    _, _, (x, y) = small_problem()

    def build(seed):
        m, lf, _ = small_problem()
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(1 + 0.1 * seed)
        return m, lf

    task = Task("tiny-mlp", "digits", build, lambda: uneven_batches((x, y)),
                {"test": "tiny-mlp"}, make_pool=lambda n: Pool(x[:n], y[:n]))
    prof = GapProfile("t", steps=5, sgd_lrs=(0.01, 0.1), adam_lrs=(1e-2,), seeds=(0, 1),
                      batch_sizes=(4, 8), pool_size=32, eval_every=5, js_steps=3, js_probes=2)
    return measure_gap(task, prof, cache_dir=cache, comm=comm).to_dict()


def on_call(n: int, action):
    """A loss hook that calls ``action()`` at this rank's ``n``-th loss evaluation."""
    def hook(loss_fn):
        calls = [0]

        def loss(out, y):
            calls[0] += 1
            if calls[0] == n:
                action()
            return loss_fn(out, y)

        return loss

    return hook


def _raise():
    raise FloatingPointError("injected failure in the loss")


def _die():
    os._exit(7)  # a rank dying outright (no Python cleanup, no error message)


def main() -> int:
    scenario, out_dir = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    comm = init_from_env(device="cpu", timeout_s=float(os.environ.get("TEST_TIMEOUT", "30")))
    rank = comm.rank
    try:
        if scenario == "spectrum":
            result = spectrum_result(comm)
        elif scenario == "spectrum-least":  # each rank's least from its own (uneven) shard
            result = spectrum_result(comm, max_memory="least")
        elif scenario == "spectrum-partial":  # every rank decides its passes alike
            result = spectrum_result(comm, reorth="partial")
        elif scenario == "warnings":
            result = warning_cases(comm)
        elif scenario == "grids":
            result = {"map": comm.map(lambda x: (x * x, comm.rank), list(range(7))),
                      "gap": gap_report(comm, Path(out_dir) / f"cache{rank}")}
        elif scenario == "map-failure":
            result = comm.map(lambda x: 1 / (x - 4), list(range(7)))  # item 4 fails, on rank 0
        # a budget no graph fits: every call rebuilds the graphs, so the loss runs (and the
        # injected failure strikes) inside the products, not only in the data check
        elif scenario == "hvp-failure":
            result = spectrum_result(comm, loss_hook=on_call(5, _raise) if rank == 1 else None,
                                     max_memory=1)
        elif scenario == "crash":
            result = spectrum_result(comm, loss_hook=on_call(5, _die) if rank == 1 else None,
                                     max_memory=1)
        elif scenario == "other-model":
            model, loss_fn, data = small_problem()
            if rank == 1:
                with torch.no_grad():
                    next(model.parameters()).add_(1e-12)
            result = blockwise_spectrum(model, loss_fn, comm.shard(uneven_batches(data)),
                                        lanczos_steps=3, probes=1, comm=comm)
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
    except DistributedError as e:
        print(f"rank {rank}: DistributedError: {e}", file=sys.stderr)
        return 3
    finally:
        if comm.is_distributed:
            torch.distributed.destroy_process_group()
    (out_dir / f"rank{rank}.pkl").write_bytes(pickle.dumps(result))
    return 0


if __name__ == "__main__":
    code = main()
    # torch's gloo teardown at interpreter exit aborts now and then ("terminate called without
    # an active exception", exit -6, about 1 run in 10 with torch 2.13, with or without this
    # package's changes) after the group was destroyed and the result written: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
