"""The cost floor of exact Hessian-vector products, and the speed ratios it allows.

``benchmarks/bench_peers.py`` times whole runs. This script times the products themselves, on
the same models and data, in one process, one thread: what any engine built on these products
pays per Lanczos step, however little else it does. From those times it derives the best ratio
each product allows against each peer's way of computing the same numbers, and compares it with
the issue's target. A target above its ceiling cannot be met by that product on this machine,
whatever the engine around it.

Timed, per model (mean over repeats after a warm-up call; ``P`` = probes, batched as rows):

* ``grad``: one gradient of the mean loss over all batches (the unit of cost);
* ``build``: the forward and graph-building backward (``create_graph=True``) of all batches: what
  hessian-eigenthings pays per product and the authors' algorithm per Lanczos step and probe;
* ``full(P)``: one double backward of every batch's kept gradient graph, ``P`` rows;
* ``blocks(P)``: one double backward per parameter block (``L`` blocks) from the kept graphs,
  restricted to the block (``autograd.grad(g_l, w_l)``, the authors' product), ``P`` rows;
* ``bundled(P)``: the same products a bundle of consecutive blocks at a time, one batched
  double backward per bundle over its blocks' zero-padded rows
  (``nets.engine.products.bundle_products``, ``nets.engine.modes.bundle_blocks(P)`` blocks per
  bundle, nets' ``"reverse-bundle"``: ``L/S`` walks of the graph instead of ``L``; with one
  block per bundle it is ``blocks(P)`` itself);
* ``nets(P)``: ``nets.BlockHVP`` (mode ``auto``, graphs kept, after its calibrating first
  call; ``mode`` says what it chose) applying the same products, i.e. the engine's overhead
  over the product it runs.

Derived:

* ``floor(P) = min(blocks(P), bundled(P))``: the cheaper of nets' two block products;
* grads per block-HVP ``= floor(P) / (P·L·grad)`` (target ≤ 0.5) and per full HVP
  ``= full(P) / (P·grad)`` (target ≤ 3);
* ceiling ×authors, Lanczos phase, for a run of ``k`` steps
  ``= k·P·(build + blocks(1)) / (build + k·floor(P))`` (target ≥ 1.5): the authors rebuild the
  graph every step and run the probes one after another, one double backward per block; an
  engine that keeps the graphs still builds them once;
* ceiling ×eigenthings, full spectrum, ``k`` steps ``= k·P·(build + full(1)) / (build +
  k·full(P))`` (target ≥ 1.5): hessian-eigenthings rebuilds the graph for every product, one
  probe at a time.

Both for ``k`` = 10 and 30, the benchmark grid's step counts.

Run:  .venv/bin/python benchmarks/bench_floor.py [--models gpt gpt2-s gpt2-m] [--probes 1 3 10]
      [--out benchmarks/results/floor.md]

Timings depend on the machine's load (printed with the result).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from meters import gradient_seconds, torch_threads  # noqa: E402
from problems import load  # noqa: E402
from reports import machine_note  # noqa: E402
from verdicts import check_same  # noqa: E402

import nets  # noqa: E402
from labkit.atomic import atomic_write_bytes  # noqa: E402
from labkit.tables import format_table  # noqa: E402
from nets.engine.blocks import default_blocks  # noqa: E402
from nets.engine.modes import bundle_blocks  # noqa: E402
from nets.engine.products import DoubleBackward, bundle_products, consecutive_bundles  # noqa: E402

COLUMNS = [("model", "model", ""), ("nets_mode", "nets mode", ""), ("L", "blocks", ""),
           ("P", "P", ""),
           ("grad_ms", "grad ms", ".1f"), ("build_ms", "build ms", ".1f"),
           ("full_ms", "full(P) ms", ".1f"), ("blocks_ms", "blocks(P) ms", ".1f"),
           ("bundle", "S", ""), ("bundled_ms", "bundled(P) ms", ".1f"),
           ("nets_ms", "nets(P) ms", ".1f"),
           ("gr_full", "grads/full HVP", ".2f"), ("gr_block", "grads/block-HVP", ".2f"),
           ("x_authors_10", "ceiling ×authors k=10", ".2f"),
           ("x_authors_30", "ceiling ×authors k=30", ".2f"),
           ("x_eig_10", "ceiling ×eigenthings full k=10", ".2f"),
           ("x_eig_30", "ceiling ×eigenthings full k=30", ".2f")]

#: Lanczos steps of the ceilings (the peers benchmark's grid).
STEPS = (10, 30)


def _seconds(fn, repeats: int) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _dbl(outputs, inputs, grad_outputs):
    """Double backward with ``P`` stacked rows (a plain one for one row)."""
    if grad_outputs[0].shape[0] == 1:
        return torch.autograd.grad(outputs, inputs, [g[0] for g in grad_outputs],
                                   retain_graph=True, allow_unused=True)
    return torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph=True,
                               is_grads_batched=True, allow_unused=True)


def measure(name: str, probes: list[int], repeats: int) -> list[dict]:
    """The floor rows of one model: one per probe count."""
    model, loss_fn, data = load(name)
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(len(y) for _, y in data)
    gen = torch.Generator().manual_seed(0)
    rows = []
    with sdpa_kernel([SDPBackend.MATH]):
        t_grad = gradient_seconds(model, loss_fn, data, repeats=max(3, repeats))  # warm

        def build():
            out = []
            for x, y in data:
                loss = loss_fn(model(x), y) * (len(y) / total)
                out.append(torch.autograd.grad(loss, params, create_graph=True))
            return out

        t_build = _seconds(build, repeats)
        graphs = build()
        blocks = default_blocks(model)
        names = [n for n, _ in model.named_parameters()]
        assert [b.params for b in blocks] == [(n,) for n in names]  # one block per tensor
        # the kept graphs as nets' products take them, (leaves, gradient) by name: built once,
        # outside the timed calls
        named = [(dict(zip(names, params, strict=True)), dict(zip(names, gs, strict=True)))
                 for gs in graphs]
        db = DoubleBackward()
        for p in probes:
            v = [torch.randn(p, *w.shape, generator=gen, dtype=w.dtype) for w in params]

            def full(v=v):
                for gs in graphs:
                    _dbl(gs, params, v)

            def per_block(v=v):
                out = [torch.zeros_like(t) for t in v]
                for gs in graphs:
                    for o, g, w, t in zip(out, gs, params, v, strict=True):
                        h = _dbl([g], [w], [t])[0]
                        if h is not None:  # None: the block's gradient does not depend on it
                            o += h.reshape(t.shape)
                return out

            flat = [t.reshape(p, -1) for t in v]
            size = bundle_blocks(p)
            bundles = consecutive_bundles(len(blocks), size)

            def bundled(flat=flat, v=v, bundles=bundles, rows=size * p):
                out = [torch.zeros_like(t) for t in v]
                for graph in named:
                    for o, h in zip(out, bundle_products(graph, blocks, flat, bundles, rows, db,
                                                         v[0].dtype), strict=True):
                        o += h.reshape(o.shape)
                return out

            op = nets.BlockHVP(model, loss_fn, data, blocks)  # auto: calibrated on its 1st call
            # the timed ways compute the same numbers (else the times would not compare)
            ref = per_block()
            check_same(ref, bundled(), f"{name} P={p}: bundled")
            check_same(ref, [o.reshape(t.shape) for o, t in zip(op(flat), v, strict=True)],
                       f"{name} P={p}: nets.BlockHVP")
            rows.append({"model": name, "L": len(params), "P": p, "grad_ms": 1e3 * t_grad,
                         "build_ms": 1e3 * t_build, "full_ms": 1e3 * _seconds(full, repeats),
                         "blocks_ms": 1e3 * _seconds(per_block, repeats),
                         "bundle": size, "bundled_ms": 1e3 * _seconds(bundled, repeats),
                         "nets_ms": 1e3 * _seconds(lambda flat=flat, op=op: op(flat), repeats),
                         "nets_mode": op.info()["hvp_mode"]})
    return derive(rows)


def derive(rows: list[dict]) -> list[dict]:
    """Add the costs in gradients and the ceilings (module docstring) to the timed rows.

    A ceiling compares ``P`` probes batched with the peer's one probe at a time, so it needs
    the model's ``P = 1`` row (``None`` without it).
    """
    one = {r["model"]: r for r in rows if r["P"] == 1}
    for r in rows:
        base = one.get(r["model"])
        r["gr_full"] = r["full_ms"] / r["P"] / r["grad_ms"]
        floor = min(r["blocks_ms"], r["bundled_ms"])
        r["gr_block"] = floor / (r["P"] * r["L"]) / r["grad_ms"]
        for k in STEPS:
            r[f"x_authors_{k}"] = None if base is None else k * r["P"] * (
                r["build_ms"] + base["blocks_ms"]) / (r["build_ms"] + k * floor)
            r[f"x_eig_{k}"] = None if base is None else k * r["P"] * (
                r["build_ms"] + base["full_ms"]) / (r["build_ms"] + k * r["full_ms"])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["gpt", "gpt2-s", "gpt2-m"])
    ap.add_argument("--probes", nargs="+", type=int, default=[1, 3, 10])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    args = ap.parse_args(argv)
    if 1 not in args.probes:
        ap.error("--probes must include 1 (the ceilings compare with one probe at a time)")
    load0 = os.getloadavg()[0]
    with torch_threads(args.threads):
        rows = [r for m in args.models for r in measure(m, sorted(args.probes), args.repeats)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip() or "unknown"
    table = format_table(rows, COLUMNS, markdown=True)
    met = {"gr_block": sum(r["gr_block"] <= 0.5 for r in rows),
           **{key: sum(r[f"{key}_{k}"] >= 1.5 for r in rows for k in STEPS)
              for key in ("x_authors", "x_eig")}}
    text = "\n".join([
        "# The cost floor of exact Hessian-vector products", "",
        f"Generated by `benchmarks/bench_floor.py` at {commit} on {machine_note()}, "
        f"{args.threads} thread(s), "
        f"{args.repeats} repeats; load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. Definitions: the script's docstring.", "",
        table, "",
        f"Rows whose product could meet the target at all: grads per block-HVP ≤ 0.5: "
        f"{met['gr_block']} of {len(rows)}; ×authors Lanczos phase ≥ 1.5: "
        f"{met['x_authors']} of {len(STEPS) * len(rows)}; full ×eigenthings ≥ 1.5: "
        f"{met['x_eig']} of {len(STEPS) * len(rows)} (row × step count)."])
    print(text, flush=True)
    if args.out:
        atomic_write_bytes(Path(args.out), (text + "\n").encode())


if __name__ == "__main__":
    main()
