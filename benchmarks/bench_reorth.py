"""Reorthogonalization's chunk size, by device: the measurement behind
``nets.engine.lanczos.REORTH_CHUNK_BYTES`` (CPU) and ``REORTH_CHUNK_BYTES_ACCELERATOR`` (GPU).

``nets.engine.lanczos.lanczos`` keeps the basis in the vectors' dtype and reads a float64 one
(or a narrower one where it is not projected in its own dtype,
:func:`nets.engine.lanczos.narrow_passes`) in float64, in chunks of at most ``chunk_bytes`` once
a step's whole basis would not fit in one (:func:`nets.engine.lanczos.chunk_bytes_for` chooses
the default by device); a float32 basis projected in float32 is read whole, the chunk size then
changing nothing but where ``w`` is read (``--dtype float32`` shows it). This script runs
``lanczos`` on a diagonal operator, whose product (one elementwise multiply) is nearly free,
so that the time is the Lanczos arithmetic and its full reorthogonalization: ``--probes``
``--dtype`` start vectors of dimension ``--dim``, ``--steps`` steps, on ``--device``, for every
``--chunks`` size (MiB) and the device's default. Per chunk size: the median wall time of
``--repeats`` runs after one warm-up run, its ratio to the fastest size's, and a check that the
tridiagonals agree across chunk sizes to round-off (else the timings would not be of the same
computation).

Run:  .venv/bin/python benchmarks/bench_reorth.py [--device cpu|cuda] [--dim N] [--probes 3]
      [--steps 30] [--dtype float64|float32] [--chunks 0.25 1 2 4 8 16 64]
      [--out benchmarks/results/reorth.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import meters
import reports

from labkit.tables import format_table
from nets.engine.lanczos import chunk_bytes_for, lanczos

COLUMNS = [("chunk", "chunk MiB", ""), ("default", "default", ""), ("seconds", "s", ".3f"),
           ("vs_best", "s / fastest s", ".2f")]


def measure(device: str, dim: int, probes: int, steps: int, chunks_mib: list[float],
            repeats: int, dtype: torch.dtype = torch.float64) -> list[dict]:
    """One row per chunk size (``chunks_mib`` and the device's default), timed on ``device``.

    Args:
        device: Where the vectors live.
        dim: The operator's dimension.
        probes: Start vectors, in lockstep.
        steps: Lanczos steps.
        chunks_mib: Chunk sizes to time, in MiB.
        repeats: Timed runs per size (after one warm-up run).
        dtype: The vectors' dtype.

    Returns:
        Rows with ``chunk`` (MiB), ``default`` (``"yes"`` for the device's default),
        ``seconds`` (median) and ``vs_best`` (over the fastest size's seconds).

    Raises:
        RuntimeError: the tridiagonals of two chunk sizes differ beyond round-off.
    """
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    # eigenvalues spread over [0, 1], a few outliers: a spectrum with converging Ritz values
    diag = torch.rand(dim, generator=gen, dtype=torch.float64)
    diag[:5] = torch.tensor([3.0, 4.0, 6.0, 9.0, 12.0], dtype=torch.float64)
    diag = diag.to(device=dev, dtype=dtype)
    start = torch.randn(probes, dim, generator=gen, dtype=torch.float64).to(dev, dtype)

    def matvec(vectors):
        return [None if v is None else v * diag for v in vectors]

    default = chunk_bytes_for(dev)
    sizes = sorted({int(c * 2**20) for c in chunks_mib} | {default})
    rows, ref = [], None
    for size in sizes:
        runs = []
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            run = lanczos(matvec, [start.clone()], steps, chunk_bytes=size)[0]
            meters.synchronize(dev)
            if r:  # the first run is a warm-up: allocations, kernels' first launch
                runs.append(time.perf_counter() - t0)
        tri = np.concatenate([run.alpha.ravel(), run.beta.ravel()])
        if ref is None:
            ref = tri
        elif not np.allclose(tri, ref, rtol=0, atol=1e-6 * float(np.abs(ref).max())):
            raise RuntimeError(f"chunk {size} bytes: the tridiagonals differ from the first "
                               f"size's by {np.abs(tri - ref).max():.1e}")
        rows.append({"chunk": f"{size / 2**20:g}", "default": "yes" if size == default else "",
                     "seconds": float(np.median(runs))})
    best = min(r["seconds"] for r in rows)
    for r in rows:
        r["vs_best"] = r["seconds"] / best
    return rows


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``).

    Args:
        argv: Command-line arguments.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dim", type=int, default=1 << 19)
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="the vectors' dtype (float64: the bases read in chunks)")
    ap.add_argument("--chunks", nargs="+", type=float, default=[0.25, 1, 2, 4, 8, 16, 64],
                    help="chunk sizes to time, MiB (the device's default is always timed)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    args = ap.parse_args(argv)
    if min(args.dim, args.probes, args.steps, args.repeats, args.threads) < 1 or min(
            args.chunks) <= 0:
        ap.error("--dim, --probes, --steps, --repeats, --threads and --chunks must be positive")
    load0 = os.getloadavg()[0]
    with meters.torch_threads(args.threads):
        rows = measure(args.device, args.dim, args.probes, args.steps, args.chunks,
                       args.repeats, getattr(torch, args.dtype))
    version = reports.code_version(__file__)
    fastest = min(rows, key=lambda r: r["seconds"])
    text = "\n".join([
        "# Reorthogonalization's chunk size", "",
        f"Generated by `benchmarks/bench_reorth.py --device {args.device} --dim {args.dim} "
        f"--probes {args.probes} --steps {args.steps} --dtype {args.dtype} --chunks "
        f"{' '.join(f'{c:g}' for c in args.chunks)} --repeats {args.repeats} --threads "
        f"{args.threads}` at {version['commit']} on {reports.machine_note(args.device)}; "
        f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        "Lanczos with full reorthogonalization on a diagonal operator (a nearly free product: "
        f"the time is the Lanczos arithmetic), {args.dtype} vectors; `s` is the median of the "
        "timed runs after a warm-up run; `default` marks the device's default chunk "
        "(`nets.engine.lanczos.chunk_bytes_for`). Definitions: the script's docstring.", "",
        format_table(rows, COLUMNS, markdown=True), "",
        f"Fastest: {fastest['chunk']} MiB; the default takes "
        f"{next(r for r in rows if r['default'])['vs_best']:.2f}x the fastest's time."])
    reports.publish(text, args.out, rows)


if __name__ == "__main__":
    main()
