"""The memory planner's estimates against the bytes the products hold: is the budget kept?

``nets.BlockHVP`` plans its memory from two estimates made on the first batch: the bytes a
kept gradient graph holds (the tensors it saves for backward, ``graph_bytes``, found by walking
it, and the gradient itself) and the bytes one stacked tangent takes while a product runs
(``tangent_bytes``): for the double-backward modes measured on one tangent per block where
asked (``measure_tangents=True``, as here), for forward-over-reverse the graph bound (a graph's
worth plus a copy of the parameters). Graphs are kept while they fit the budget
(``max_memory``) and the tangents stacked per product follow from what is left, so a budget is
kept exactly when these estimates cover what the products really hold.

This script measures what they estimate, per model (one fresh process each, one thread):

* **graph**: the bytes still alive after one batch's gradient graph is built with
  ``nets.engine.products.gradient_graph`` (the operator's own builder), against what an
  operator on the same data counts for keeping that graph (its saved tensors, ``graph_bytes``,
  and the gradient it holds);
* **per tangent**: for each product mode and number ``T`` of tangents per product
  (``chunk_size=T``, every graph kept), the peak bytes over one operator call, less the bytes
  of the products it returns times ``product_copies`` (the batches' sum holds one batch's
  products beside it; the Lanczos vectors' budget holds those), divided by ``T``, against the
  operator's per-tangent estimate (measured for the double-backward modes, the graph bound
  for ``forward``; the graph bound is printed beside it). The double-backward modes' graphs
  are built before the call, so the peak is the products' own; ``forward``
  (forward-over-reverse) builds no graph to keep, and its transient is its whole pass.

Bytes are counted twice, by two instruments that share nothing:
:class:`nets.engine.memory.LiveBytes`, which sees every tensor an operator returns and when its
storage is freed (the same count on a CPU and a GPU, free of the allocator's caching and
rounding, blind to a kernel's own scratch; the operator measures its per-tangent estimate with
it), and the allocator (:func:`_allocator_bytes`: on a CPU the allocation events
``torch.profiler`` records, on a GPU the caching allocator's counters), which sees every
allocation. The verdict is judged on the allocator's count, the instrument the estimate was
not made with; the other is printed beside it. A ratio
estimate / measured of at least 1 keeps the budget; above :data:`WASTE` the planner leaves
memory unused (fewer stacked tangents, more graph rebuilds than the budget allows). Each is
judged with :func:`verdicts.verdict` (a byte count is exact: no interval).

Run:  .venv/bin/python benchmarks/bench_estimates.py [--models gpt gpt2-s gpt2-m]
      [--device cpu] [--out benchmarks/results/estimates.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import meters
import problems
import reports
import runner
from verdicts import verdict

import nets
from labkit.atomic import atomic_write_bytes
from labkit.tables import format_table
from nets.engine.memory import LiveBytes
from nets.engine.products import gradient_graph

#: The product modes measured and the tangents per product of each (``chunk_size``).
MODES = {"reverse-block": (1, 3), "reverse": (4, 16), "forward": (4, 16)}

#: Above this ratio estimate / measured, the planner is called wasteful (a MISSED target).
WASTE = 1.5

COLUMNS = [("model", "model", ""), ("what", "what", ""), ("T", "T", ""),
           ("estimate", "estimate", ""), ("estimate_mib", "estimate MiB", ".2f"),
           ("allocator_mib", "allocator MiB", ".2f"), ("ratio", "estimate / allocator", ".2f"),
           ("verdict", "verdict", ""), ("live_mib", "LiveBytes MiB", ".2f"),
           ("bound_mib", "graph bound MiB", ".2f")]

MIB = 2**20


def ratio_verdict(ratio: float) -> str:
    """``met`` where the estimate covers the measurement and wastes at most :data:`WASTE`;
    else ``MISSED (under)`` (the budget can be exceeded) or ``MISSED (over)``."""
    if verdict(ratio, ratio, ratio, 1.0, higher=True) == "MISSED":
        return "MISSED (under)"
    if verdict(ratio, ratio, ratio, WASTE, higher=False) == "MISSED":
        return "MISSED (over)"
    return "met"


def _row(model: str, what: str, t: object, kind: str, estimate: int, allocator: int,
         live: int, bound: int | None = None) -> dict:
    """One report row: ``estimate`` bytes (of ``kind``) judged against the allocator's count
    ``allocator``; ``live`` (LiveBytes' count) and the graph bound ``bound`` beside them."""
    ratio = estimate / max(allocator, 1)
    return {"model": model, "what": what, "T": t, "estimate": kind,
            "estimate_mib": estimate / MIB, "allocator_mib": allocator / MIB, "ratio": ratio,
            "verdict": ratio_verdict(ratio), "live_mib": live / MIB,
            "bound_mib": None if bound is None else bound / MIB}


def _allocator_bytes(device: torch.device, call) -> tuple[int, int]:
    """The allocator's view of ``call()``: its peak rise and what is left allocated at the end
    (every allocation, a kernel's own scratch included, which :class:`LiveBytes` cannot see).
    On a GPU the caching allocator's counters; on the host the CPU allocator's events that
    ``torch.profiler`` records (``profile_memory``), summed in time order."""
    if device.type == "cuda":  # the benchmarks' own GPU meters (its peak counter reset)
        meters.synchronize(device)
        now, peak = meters.memory_meters(device)
        before = now()
        call()
        meters.synchronize(device)
        return peak() - before, now() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    level = peak = 0
    for _, size in events:
        level += size
        peak = max(peak, level)
    return peak, level


def _counted(device: torch.device, call) -> tuple[object, dict[str, int]]:
    """``call()``'s result and its bytes by both counters: ``live`` (alive at the end) and
    ``peak`` by :class:`LiveBytes`, ``allocator_peak`` and ``allocator_held`` by the
    allocator (:func:`_allocator_bytes`)."""
    box: list = []
    with LiveBytes() as count:
        peak, held = _allocator_bytes(device, lambda: box.append(call()))
        counts = {"live": count.live, "peak": count.peak, "allocator_peak": peak,
                  "allocator_held": held}
    return box[0], counts


def measure(name: str, device: str = "cpu", modes: dict | None = None) -> list[dict]:
    """The rows of one model (in this process): the graph, then each mode and ``T``."""
    dev = torch.device(device)
    model, loss_fn, data = problems.load(name, dev)
    blocks = nets.resolve_blocks(model, None)
    gen = torch.Generator().manual_seed(0)
    rows = []
    x, y = data[0]
    probe = nets.BlockHVP(model, loss_fn, data, blocks, mode="reverse-block")
    probe([torch.randn(1, b.dim, generator=gen).to(dev, probe.dtype) for b in blocks])
    estimate = probe.plan.graph_sizes()[0]  # what the planner counts for keeping batch 0's graph
    params = dict(probe.params)
    del probe
    buffers = dict(model.named_buffers())
    graph, n = _counted(dev, lambda: gradient_graph(model, buffers, loss_fn, params,
                                                    list(params), x, y))
    del graph
    rows.append(_row(name, "graph", "", "walked", estimate, n["allocator_held"], n["live"]))
    for mode, counts in (MODES if modes is None else modes).items():
        for t in counts:
            per_block = t if mode == "reverse-block" else 1  # padded: T rows from the blocks
            if mode != "reverse-block" and len(blocks) < t:
                continue
            op = nets.BlockHVP(model, loss_fn, data, blocks, mode=mode, chunk_size=t,
                               measure_tangents=mode != "forward")
            vectors = [torch.randn(per_block, b.dim, generator=gen).to(dev, op.dtype)
                       for b in blocks]
            op(vectors)  # plans (measuring), keeps every graph (built before the measured call)
            out, n = _counted(dev, lambda op=op, v=vectors: op(v))
            products = op.product_copies * sum(p.untyped_storage().nbytes() for p in out
                                               if p is not None)
            info = op.info()  # the operator's own estimate, and the bound it replaces
            rows.append(_row(name, mode, t, info["tangent_estimate"], info["tangent_bytes"],
                             (n["allocator_peak"] - products) // t, (n["peak"] - products) // t,
                             op.plan.graph_bound()))
            del op, out
    return rows


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gpt", "gpt2-s", "gpt2-m"])
    ap.add_argument("--device", default="cpu", help="where the model and products are")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--in-process", action="store_true",
                    help="measure every model in this process (the tests' mode)")
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)  # one model, JSON out
    args = ap.parse_args(argv)
    with meters.torch_threads(args.threads):
        if args.model is not None:
            print(json.dumps(measure(args.model, args.device)))
            return
        rows = runner.each_model(
            __file__, args.models, lambda m: ["--model", m, "--device", args.device,
                                              "--threads", str(args.threads)],
            lambda m: measure(m, args.device), in_process=args.in_process,
            failed=lambda m, e: {"model": m, "error": e})
    version = reports.code_version(__file__)
    good = [r for r in rows if "error" not in r]
    met = sum(r["verdict"] == "met" for r in good)
    text = "\n".join([
        "# The memory planner's estimates against the bytes the products hold", "",
        f"Generated by `benchmarks/bench_estimates.py --models {' '.join(args.models)} "
        f"--device {args.device} --threads {args.threads}` at {version['commit']} (sources "
        f"{version['code']}) on {reports.machine_note(args.device)}. `graph`: one batch's "
        "gradient graph, as the planner counts a kept graph (the saved tensors found by walking "
        "it, and the gradient) and measured as the bytes alive after it is built; a mode's "
        "row: the operator's per-tangent estimate (`measured` on one tangent per block for the "
        "double-backward modes, the `graph bound` for forward-over-reverse) against the peak "
        "over one call, less the products it returns (twice: the batches' sum holds one "
        "batch's beside it), per tangent (`T` tangents per product, every graph kept). "
        "`allocator` is the allocator's count (every allocation, kernels' scratch included: "
        "on a CPU from `torch.profiler`'s memory events, on a GPU its counters), the verdict's "
        "instrument; `LiveBytes` counts per tensor storage, the instrument the operator "
        "measures with; `graph bound` is the estimate without a measurement. "
        f"Target: 1 <= estimate / allocator <= {WASTE} (`under`: the budget can be "
        "exceeded; `over`: memory left unused). Definitions: the script's docstring.", "",
        format_table(good, COLUMNS, markdown=True), "",
        f"{met} of {len(good)} estimates met the target."
        + "".join(f"\nNot measured: {r['model']}: {r['error']}." for r in rows if "error" in r)])
    print(text, flush=True)
    if args.out:
        atomic_write_bytes(Path(args.out), (text + "\n").encode())


if __name__ == "__main__":
    main()
