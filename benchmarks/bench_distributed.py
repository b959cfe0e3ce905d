"""Data-parallel blockwise spectrum of the zoo GPT: 2 processes vs 1, same run.

Each configuration runs ``nets.blockwise_spectrum`` (one block per parameter tensor, float32)
on the GPT's data, started as separate processes with the environment torchrun would give them
(gloo on localhost), after one warm-up HVP:

* ``1 proc × 1 thread`` — the baseline;
* ``1 proc × T threads`` — the same process with as many torch threads as processes below
  (the other way to use the cores);
* ``2 procs × 1 thread`` — data parallel: each rank takes every other batch.

Reported: wall time of the spectrum (median of ``--repeat`` runs, the slowest rank), the
speed-up over each baseline, and the communication share: the time rank 0 spent inside
collectives (all-reduces of the HVP blocks, and waiting there for the slower rank) over the
wall time, next to the pure cost of those all-reduces measured alone afterwards (the same
buffer size and number of calls, ranks already in step). Two data sizes: the zoo's own data
(2 batches of 8 sequences) and ``--batches`` batches of 8 sequences.

Run:  .venv/bin/python benchmarks/bench_distributed.py [--steps 10] [--probes 2] [--batches 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import torch

    from nets import zoo
    from nets.engine.blocks import resolve_blocks
    from nets.engine.distributed import init_from_env
    from nets.engine.hvp import BlockHVP
    from nets.engine.spectrum import blockwise_spectrum
    from nets.zoo.data import char_lm_batches

    torch.set_num_threads(args.threads)
    comm = init_from_env(device="cpu")
    model, loss_fn, data = zoo.load("gpt", seed=0)
    if args.batches:
        data = char_lm_batches(n_seq=8 * args.batches, context=32, batch_size=8, seed=0)
    shard = comm.shard(data)
    blocks = resolve_blocks(model, None)
    BlockHVP(model, loss_fn, shard, blocks, comm=comm)(  # warm-up (vmap tracing, allocations)
        [torch.ones(1, b.dim) for b in blocks])
    times, comm_s = [], []
    for _ in range(args.repeat):
        comm.together(lambda: None, what="barrier")
        before = comm.stats.seconds
        t0 = time.perf_counter()
        blockwise_spectrum(model, loss_fn, shard, lanczos_steps=args.steps, probes=args.probes,
                           comm=comm)
        times.append(time.perf_counter() - t0)
        comm_s.append(comm.stats.seconds - before)
    pure = 0.0
    if comm.is_distributed:  # the same all-reduces alone: size Σ_l probes·d_l (+ flag)
        buf = [torch.zeros(args.probes, sum(b.dim for b in blocks))]
        comm.together(lambda: None, what="barrier")
        t0 = time.perf_counter()
        for _ in range(args.steps):
            comm.sum_(buf, what="timing")
        pure = time.perf_counter() - t0
    slowest = comm.map(lambda _: times, list(range(comm.world_size)))
    wall = [max(ts[i] for ts in slowest) for i in range(args.repeat)]
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps({
            "wall": sorted(wall)[len(wall) // 2], "comm": sorted(comm_s)[len(comm_s) // 2],
            "pure_allreduce": pure, "batches": len(data), "world": comm.world_size}))
    if comm.is_distributed:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, threads: int, args: argparse.Namespace, batches: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "result.json"
    port = str(_free_port())
    procs = []
    for r in range(world):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": str(threads)}
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", "--threads", str(threads), "--out", str(out),
             "--steps", str(args.steps), "--probes", str(args.probes),
             "--repeat", str(args.repeat), "--batches", str(batches)], env=env))
    if any(p.wait(timeout=1800) != 0 for p in procs):
        raise SystemExit(f"a benchmark process failed (world {world}, threads {threads})")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--probes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", type=int, default=8,
                    help="second data size: this many batches of 8 sequences")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"# {platform.machine()}, {os.cpu_count()} cores; GPT blockwise spectrum, "
          f"{args.steps} Lanczos steps × {args.probes} probes, float32, gloo; "
          f"median of {args.repeat}")
    n = args.procs
    print(f"{'data':>16}  {'1p×1t (s)':>9}  {f'1p×{n}t (s)':>9}  {f'{n}p×1t (s)':>9}  "
          f"{'speed-up vs 1p×1t':>17}  {f'vs 1p×{n}t':>9}  {'in collectives':>14}  "
          f"{'pure all-reduce':>15}")
    for batches in (0, args.batches):
        one = launch(1, 1, args, batches)
        threaded = launch(1, n, args, batches)
        dist = launch(n, 1, args, batches)
        label = f"{dist['batches']} batches × 8 seq"
        print(f"{label:>16}  {one['wall']:9.2f}  {threaded['wall']:9.2f}  {dist['wall']:9.2f}  "
              f"{one['wall'] / dist['wall']:16.2f}×  {threaded['wall'] / dist['wall']:8.2f}×  "
              f"{100 * dist['comm'] / dist['wall']:13.1f}%  "
              f"{100 * dist['pure_allreduce'] / dist['wall']:14.1f}%")


if __name__ == "__main__":
    main()
