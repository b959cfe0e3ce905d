"""Hessian spectra: nets against hessian-eigenthings, curvlinops and the authors' algorithm.

Every cell of the grid (model × full/blockwise × probes × Lanczos steps × threads) runs each
method in a fresh subprocess (so each one's peak resident memory is its own) on the same model,
data and loss, and reports wall time, Hessian-vector products per second, peak memory, the time
of one product divided by the time of one gradient of the same data, and nets' speed ratio to
each peer. Equal steps and probes everywhere; all methods run attention on PyTorch's math kernel
(fused kernels have no double backward).

Methods:
  * nets: ``nets.full_spectrum`` / ``nets.blockwise_spectrum`` (mode ``auto``: calibrated
    product, all blocks and probes in lockstep, full reorthogonalization), density included.
  * hessian-eigenthings 1.0.0a5: ``HessianOperator`` + ``spectral_density`` (double-backward
    HVPs, full reorthogonalization); blockwise = one operator per block (``param_filter``).
  * curvlinops 3.0.1 (full only; it has no blockwise spectra): ``HessianLinearOperator`` +
    ``lanczos_approximate_spectrum`` with the spectral boundaries given (no ARPACK estimate).
  * authors (blockwise only), re-implemented from the description of
    github.com/zyushun/hessian-spectrum: per probe and step, one forward and graph-building
    backward per batch, then one double backward per block from that graph; plain Lanczos (no
    reorthogonalization); the density on a 50,000-point grid by Python loops. Its Lanczos
    (HVP) phase is also timed alone.

Models: the zoo GPT, and a Hugging Face ``GPT2LMHeadModel`` built from a small config at two
sizes (random weights; no download), next-token cross-entropy.

Optional: ``--compile`` adds a ``nets+compile`` row to every full-spectrum cell:
``nets.full_spectrum(..., compile=True)`` (forward-over-reverse product compiled by
``torch.compile``; the compilation is part of its time, as it would be for a user).

Every row records the 1-minute load average (``os.getloadavg``) when its process started, and
the code that measured it: ``commit`` (git's short hash, ``+changes`` when the working tree's
``nets``, ``labkit`` or this script differ from it) and ``code`` (a hash of those sources). A
grid measured in parts (``--resume``, ``--only``) thus says which rows come from which code;
``--resume`` measures again every cell whose rows another code measured, unless
``--keep-stale`` keeps them (their commit is then shown in the nets row's notes).

Every row also reports ``λmax``, the largest Ritz value (blockwise: of every block, the table
shows the largest); nets, hessian-eigenthings and the authors' algorithm compute the same
quantity, curvlinops returns a density on a grid only (no Ritz values: blank).

Run:  python benchmarks/bench_peers.py --grid smoke|quick|full [--compile] [--out FILE]
[--json FILE [--resume [--keep-stale] [--render-only]]] [--only FIELD=V1,V2 ...]
(smoke, the test suite's: a 31-parameter MLP in float64, 31 steps, so every Lanczos run spans
its whole space and every method's λmax is the exact one; seconds. quick, ``make
bench-spectrum``: zoo GPT and the smaller GPT-2; full with 1 and 3 probes, blockwise with 1;
10 steps; one thread. full, ``make bench-spectrum-full``: the three models, full and blockwise
with 1, 3 and 10 probes, 10 and 30 steps, 1 and 2 threads. gpu, ``make gpu-check`` on a CUDA
GPU: the ``gpt-gpu`` model, the GPT-2-small-sized rung of the ``gpu`` ladder profile, blockwise
on the first layer's six matrices with 3 probes and 10 steps, the issue's GPU target; a cell's
memory columns are then the GPU allocator's.) ``--json`` writes every row's measurements, with
each block's λmax.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the verdict rules beside it

from verdicts import (  # noqa: E402
    INTERVAL_NOTE,
    RUNS_OF,
    median_interval,
    runs_of,
    speed_ratio,
    verdict,
)

import nets  # noqa: E402
from labkit.atomic import atomic_write_bytes  # noqa: E402
from nets.cli.common import memory_budget  # noqa: E402
from nets.studies.gpucheck import GPT_BLOCKS, gpt_problem  # noqa: E402
from nets.zoo import models as zoo  # noqa: E402

HF_SIZES = {"gpt2-s": dict(n_layer=2, n_embd=32, n_head=2, vocab_size=128, n_positions=32),
            "gpt2-m": dict(n_layer=4, n_embd=64, n_head=4, vocab_size=256, n_positions=32)}


class _LMHead(torch.nn.Module):
    """A Hugging Face causal LM as ``ids -> flattened next-token logits`` (a plain tensor)."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.lm(input_ids=ids).logits
        return logits[:, :-1].reshape(-1, logits.shape[-1])


def load(name: str, device: str | torch.device = "cpu"):
    """``(model, loss_fn, data)`` with ``data`` a list of ``(inputs, targets)`` tensors, all on
    ``device``."""
    dev = torch.device(device)
    model, loss_fn, data = _load(name)
    return model.to(dev), loss_fn, [(x.to(dev), y.to(dev)) for x, y in data]


def _load(name: str):
    """:func:`load` on the CPU."""
    if name == "gpt-gpu":  # make gpu-check's model: the GPT-2-small-sized rung
        return gpt_problem()
    if name == "mlp-xs":  # 3 -> 4 -> 3, tanh: 31 parameters, float64
        g = torch.Generator().manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                    torch.nn.Linear(4, 3)).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        x = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (2, 6), generator=g)
        return model, torch.nn.functional.cross_entropy, list(zip(x, y, strict=True))
    if name == "gpt":
        model, loss_fn, data = zoo.load("gpt", seed=0)
        return model, loss_fn, data
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(**HF_SIZES[name], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = _LMHead(GPT2LMHeadModel(cfg)).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (2, 4, 32), generator=g)
    data = [(x, x[:, 1:].reshape(-1)) for x in ids]
    return model, torch.nn.functional.cross_entropy, data


def gradient_seconds(model, loss_fn, data, repeats: int = 3) -> float:
    """Median time of one gradient of the mean loss over all batches."""
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x, y in data:
            torch.autograd.grad(loss_fn(model(x), y), params)
        synchronize(params[0].device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (a GPU's), so that a wall time measures them.

    The benchmark's own, like its memory readers, rather than nets' private twin in
    ``nets.engine.hvp``: ``bench_ab.py`` runs this script over an older ``nets``, whose
    internals the instruments must not depend on."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the authors' algorithm, re-implemented ------------------------------------------------------

def authors_blockwise(model, loss_fn, data, steps: int, probes: int, seed: int,
                      density_bins: int = 50_000, blocks: Sequence[str] | None = None):
    """Lanczos on every parameter block (or the parameters named in ``blocks``), graph shared
    by the blocks, no reorthogonalization."""
    gen = torch.Generator().manual_seed(seed)
    names, params = zip(*((n, p) for n, p in model.named_parameters()
                          if blocks is None or n in blocks), strict=True)
    total = sum(len(y) for _, y in data)
    cap = [min(steps, p.numel()) for p in params]  # a block of dimension d takes d steps
    t0 = time.perf_counter()
    runs = {n: [] for n in names}
    for _ in range(probes):
        v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
        v = [x / x.norm() for x in v]
        v_prev = [torch.zeros_like(x) for x in v]
        beta = [0.0] * len(v)
        alphas = [[] for _ in v]
        betas = [[] for _ in v]
        for j in range(steps):
            w = [torch.zeros_like(x) for x in v]
            for x, y in data:
                loss = loss_fn(model(x), y)
                grads = torch.autograd.grad(loss, params, create_graph=True)
                for i, (g, p) in enumerate(zip(grads, params, strict=True)):
                    (hv,) = torch.autograd.grad(g, p, grad_outputs=v[i], retain_graph=True)
                    w[i] += hv * (len(y) / total)
            for i in range(len(v)):
                if j >= cap[i]:
                    continue
                a = float((w[i] * v[i]).sum())
                alphas[i].append(a)
                if j == cap[i] - 1:
                    continue
                r = w[i] - a * v[i] - beta[i] * v_prev[i]
                beta[i] = float(r.norm())
                betas[i].append(beta[i])
                v_prev[i], v[i] = v[i], r / max(beta[i], 1e-8)
        for i, n in enumerate(names):
            t = np.diag(alphas[i]) + np.diag(betas[i], 1) + np.diag(betas[i], -1)
            theta, s = np.linalg.eigh(t)
            runs[n].append((theta, s[0] ** 2))
    lanczos_s = time.perf_counter() - t0
    for n in names:
        _authors_density([r[0] for r in runs[n]], [r[1] for r in runs[n]],
                         num_bins=density_bins)
    top = {n: float(max(r[0].max() for r in runs[n])) for n in names}
    return lanczos_s, top


def _authors_density(eigenvalues, weights, num_bins=50_000, sigma_squared=1e-5, overhead=0.01):
    """Their ``density_generate``: Python loops over runs and grid points."""
    eigenvalues, weights = np.array(eigenvalues), np.array(weights)
    lambda_max = np.mean(np.max(eigenvalues, axis=1), axis=0) + overhead
    lambda_min = np.mean(np.min(eigenvalues, axis=1), axis=0) - overhead
    grids = np.linspace(lambda_min, lambda_max, num=num_bins)
    sigma = sigma_squared * max(1, (lambda_max - lambda_min))
    out = np.zeros((eigenvalues.shape[0], num_bins))
    for i in range(eigenvalues.shape[0]):
        for j in range(num_bins):
            d = np.exp(-((grids[j] - eigenvalues[i, :]) ** 2) / (2.0 * sigma))
            out[i, j] = np.sum(d / np.sqrt(2 * np.pi * sigma) * weights[i, :])
    return np.mean(out, axis=0), grids


# -- one cell, one method (runs in a subprocess) --------------------------------------------------

#: Runs shorter than this (seconds) are repeated: their timings are mostly the machine's noise.
REPEAT_BELOW = 3.0
#: Runs of a short method in all (the median is reported, and their interval decides verdicts).
REPEATS = 3


def pool_rounds(rows: list[dict]) -> dict:
    """One row from a method's rounds on a cell (``--rounds``: each round a fresh process).

    The runs of every round are pooled: each timing of :data:`RUNS_OF` becomes the median of
    all its runs and keeps them all (so a target's interval spans every round), ``grad_s`` the
    median of the rounds' (where measured), the peak memory columns and ``load`` the largest
    of the rounds'; ``loads`` lists every round's load and ``rounds`` counts them. A round
    that failed makes the row that failure.

    Args:
        rows: :func:`run_cell` rows of one method on one cell, one per round.
    """
    failed = [r for r in rows if "error" in r]
    if failed:
        return failed[0]
    row = dict(rows[0])
    for key, runs_key in RUNS_OF.items():
        if all(key in r for r in rows):
            pooled = [t for r in rows for t in (r.get(runs_key) or [r[key]])]
            row[runs_key], row[key] = pooled, float(np.median(pooled))
    if all("grad_s" in r for r in rows):
        row["grad_s"] = float(np.median([r["grad_s"] for r in rows]))
    for key in ("peak_bytes", "peak_extra_bytes", "peak_all_bytes", "peak_steady_extra_bytes",
                "load"):
        if all(key in r for r in rows):
            row[key] = max(r[key] for r in rows)
    row["loads"] = [r["load"] for r in rows]
    row["rounds"] = len(rows)
    return row


def run_cell(cell: dict) -> dict:
    """Run one method on one cell (in this process); its measurements.

    A run shorter than :data:`REPEAT_BELOW` seconds is repeated, :data:`REPEATS` runs in all
    (the first included: a user's one call pays what it pays): ``seconds`` is their median,
    ``runs`` every run's time (the other timings of :data:`RUNS_OF` likewise). The peak memory
    is the first run's, a user's one call: a later run in the same process starts from what
    the allocator kept of the one before, and its peak creeps up (measured: nets' blockwise
    zoo GPT cell 1.4 MiB higher per repeat, hessian-eigenthings' 0.4), which would charge a
    method fast enough to be repeated for the repeats; ``peak_all_bytes`` keeps the peak over
    all runs.

    A cell's ``device`` (default the CPU) is where the model, data and products are; on a GPU
    the memory columns are its allocator's (``torch.cuda.max_memory_allocated``, the rise from
    what was allocated before the first run), not the process's RSS, and a nets row also has
    ``peak_steady_extra_bytes``: the rise after its first Lanczos step, i.e. without the data
    check and ``"auto"``'s calibration (which may stack every block's tangents at once in
    modes it then does not choose). A blockwise cell's
    ``block_names`` (parameter names; default every parameter) restricts every method to those
    blocks.
    """
    load_avg = os.getloadavg()[0]
    torch.set_num_threads(cell["threads"])
    device = torch.device(cell.get("device") or "cpu")
    model, loss_fn, data = load(cell["model"], device)
    names = [n for n, _ in model.named_parameters()]
    dims = {n: p.numel() for n, p in model.named_parameters()}
    if cell["kind"] == "blocks" and cell.get("block_names"):
        missing = sorted(set(cell["block_names"]) - set(names))
        if missing:
            raise ValueError(f"cell blocks {missing} are not parameters of {cell['model']}")
        names = [n for n in names if n in cell["block_names"]]
    steps, probes, kind = cell["steps"], cell["probes"], cell["kind"]
    with sdpa_kernel([SDPBackend.MATH]):
        t_grad = gradient_seconds(model, loss_fn, data)
        now, peak = _memory_meters(device)  # a GPU's peak counts from here: the runs alone
        before = now()
        # a short run is run again (up to REPEATS times in all): the median and the spread
        # of the runs, not one draw of the machine's noise, go into the row
        runs: list[float] = []
        extras: list[dict] = []
        every_peak = 0  # the peak over every run (each nets run on a GPU resets the counter)
        while not runs or (len(runs) < REPEATS and runs[0] < REPEAT_BELOW):
            t0 = time.perf_counter()
            extras.append(_run_once(cell, model, loss_fn, data, names))
            synchronize(device)
            runs.append(time.perf_counter() - t0)
            # nets on a GPU: its first step's peak was read (and the counter reset) by the
            # run itself; the run's peak is the larger, the reading after it its steady peak
            after = peak()
            run_peak = max(after, extras[-1].get("first_step_peak_bytes", 0))
            every_peak = max(every_peak, run_peak)
            if len(runs) == 1:
                first_peak, steady = run_peak, after
        extra = dict(extras[-1])
        if "first_step_peak_bytes" in extras[0]:
            extra["peak_steady_extra_bytes"] = max(steady - before, 0)
        for key, runs_key in RUNS_OF.items():
            if key in extra:
                extra[runs_key] = [e[key] for e in extras]
                extra[key] = float(np.median(extra[runs_key]))
        seconds = float(np.median(runs))
    blocks = 1 if kind == "full" else len(names)
    hvps = probes * (steps if kind == "full" else sum(min(steps, dims[n]) for n in names))
    return {**cell, "load": load_avg, "seconds": seconds, "hvps": hvps, "blocks": blocks,
            "grad_s": t_grad, "runs": runs,
            "peak_bytes": first_peak, "peak_extra_bytes": max(first_peak - before, 0),
            "peak_all_bytes": every_peak,
            "params": sum(dims[n] for n in names) if kind == "blocks" else sum(dims.values()),
            **extra}


def _memory_meters(device: torch.device):
    """``(now, peak)``: functions giving the memory in use and its peak so far, in bytes: the
    process's RSS on a CPU, the GPU allocator's on a CUDA device (its peak counter reset
    here)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return (functools.partial(torch.cuda.memory_allocated, device),
                functools.partial(torch.cuda.max_memory_allocated, device))
    return _rss_now, _peak_rss


def _run_once(cell: dict, model: torch.nn.Module, loss_fn, data: list, names: list[str]) -> dict:
    """One timed run of ``cell["method"]`` on the loaded model; what it reports besides its time."""
    steps, probes, method, kind = cell["steps"], cell["probes"], cell["method"], cell["kind"]
    extra: dict = {}
    if method in ("nets", "nets+compile"):
        info: dict = {}
        budget = cell.get("max_memory")
        first_step: dict = {}
        device = torch.device(cell.get("device") or "cpu")

        def callback(step: int, total: int) -> None:
            # on a GPU: the peak through the first step (the first operator call: the data
            # check, the calibration, the first products), then the run's own from here on
            if device.type == "cuda" and not first_step:
                first_step["peak"] = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)

        if kind == "full":
            s = nets.full_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                   probes=probes, info=info, max_memory=budget,
                                   compile=method == "nets+compile", callback=callback)
            nets.spectral_density(s.nodes, s.weights, np.linspace(
                s.nodes.min(), s.nodes.max(), 2000), 1e-3 * np.ptp(s.nodes) + 1e-12)
            top = {"full": float(s.nodes.max())}
        else:
            chosen = {n: n for n in names} if cell.get("block_names") else None
            spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                              probes=probes, info=info, max_memory=budget,
                                              blocks=chosen, callback=callback)
            nets.block_densities(spectra)
            top = {n: float(sp.nodes.max()) for n, sp in spectra.items()}
        extra = {"mode": info["hvp_mode"], "lanczos_s": info["seconds"],
                 "product_s": info["product_seconds"], "graph_s": info["graph_seconds"],
                 # (bench_ab drives older nets too, whose info has no calibration_seconds)
                 **({"calibration_s": info["calibration_seconds"]}
                    if "calibration_seconds" in info else {}),
                 **({"first_step_peak_bytes": first_step["peak"]} if first_step else {}),
                 "graphs": info["graph_strategy"], "groups": info.get("lanczos_groups", 1),
                 "budget_bytes": info["max_memory"],
                 "top": top}
    elif method == "eigenthings":
        import hessian_eigenthings as he

        lf = he.supervised_loss(loss_fn)
        groups = [None] if kind == "full" else [he.match_names(n) for n in names]
        top = {}
        for i, flt in enumerate(groups):
            op = he.HessianOperator(model, data, lf, param_filter=flt)
            k = min(steps, op.size) if kind == "blocks" else steps
            r = he.spectral_density(op, num_runs=probes, lanczos_steps=k, seed=i)
            top["full" if kind == "full" else names[i]] = float(
                r.raw_eigenvalues.nan_to_num(nan=-float("inf")).max())
        extra = {"top": top}
    elif method == "curvlinops":
        import curvlinops

        class Loss(torch.nn.Module):
            reduction = "mean"

            def forward(self, out, y):
                return loss_fn(out, y)

        params = [p for p in model.parameters()]
        op = curvlinops.HessianLinearOperator(model, Loss(), params, data,
                                              check_deterministic=False)
        curvlinops.lanczos_approximate_spectrum(op, ncv=steps, num_repeats=probes,
                                                boundaries=(-1.0, 1.0))
    elif method == "authors":
        lanczos_s, top = authors_blockwise(model, loss_fn, data, steps, probes, 0,
                                           cell.get("density_bins", 50_000),
                                           blocks=names if cell.get("block_names") else None)
        extra = {"lanczos_s": lanczos_s, "top": top}
    else:
        raise ValueError(method)
    return extra


def measure(run: dict, *, in_process: bool = False) -> dict:
    """:func:`run_cell`'s row for ``run`` (a cell with its ``method``), measured in a fresh
    process (``--cell``: the method's own peak memory) or, with ``in_process``, in this one.

    Returns:
        The row, or ``{"error": ...}`` with the failure's last line (a peer not installed or
        failing is reported in its row, not raised).
    """
    if in_process:
        try:
            return run_cell(run)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"[:120]}
    return measure_in(__file__, run)


def measure_in(script: str, cell: dict, env: dict | None = None) -> dict:
    """``python script --cell CELL`` in a fresh process (with ``env``, default this one's): the
    row it prints last, or ``{"error": ...}`` with the failure's last line."""
    try:
        return run_script(script, ["--cell", json.dumps(cell)], env)
    except RuntimeError as e:
        return {"error": str(e)}


def run_script(script: str, args: list[str], env: dict | None = None):
    """``python script ARGS`` in a fresh process (with ``env``, default this one's): the JSON
    it prints on its last line; a failure raises ``RuntimeError`` with its last line."""
    p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or ["failed"])[-1][:120])
    return json.loads(p.stdout.strip().splitlines()[-1])


def read_json(path: str | Path, doing: str):
    """The JSON a benchmark wrote to ``path``; an unreadable file exits with an error naming
    it, what could not be done (``doing``, e.g. ``"resume from"``) and the fix."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: cannot {doing} {path}: {e}; measure it again (delete it to "
                         "start over)") from None


def saved_rounds(path: str | Path) -> tuple[dict, list[tuple], int]:
    """What ``--render-only`` writes a report from (``bench_ab.py``, ``bench_groups.py``): the
    file's saved object, its cells in the order measured (each ``runs`` key without its last
    field, the version or rule compared) and its number of rounds (the most runs of a key)."""
    saved = read_json(path, "write the report from")
    runs = saved["runs"]
    cells = list(dict.fromkeys(tuple(json.loads(k)[:-1]) for k in runs))
    return saved, cells, max(len(v) for v in runs.values())


def generated_by(script: str, command: str, saved: dict | None = None) -> str:
    """A report's first sentence: ``Generated by `benchmarks/SCRIPT COMMAND` on`` when and on
    what (:func:`machine_note`); for a report written from ``saved`` rows (``--render-only``),
    that nothing was measured and, where the rows say so, the command that measured them and
    when (their ``command`` and ``measured``)."""
    text = f"Generated by `benchmarks/{script} {command}` on {machine_note()}"
    if saved is None:
        return text
    return text + (" from the rows of an earlier run (nothing measured by this command"
                   + (f"; they were measured by `{saved['command']}` on {saved['measured']}"
                      if "command" in saved and "measured" in saved else "") + ")")


def machine_note(device: str = "cpu") -> str:
    """When and on what a report was measured: ``"<UTC time> UTC: torch <version>, <n> CPUs
    (<arch>)"``, with ``", GPU <name>"`` for a CUDA ``device`` that is present.

    Args:
        device: Where the report's measurements ran.
    """
    gpu = ""
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: torch {torch.__version__}, "
            f"{os.cpu_count()} CPUs ({platform.machine()}){gpu}")


def rounds_note(what: str, rounds: int) -> str:
    """How a report of interleaved rounds (``bench_groups.py``, ``bench_ab.py``) measured each
    ``what`` (``"rule"``, ``"version"``), as one sentence of its header."""
    return (f"Each {what} on each cell ran in {rounds} fresh processes, the {what}s interleaved "
            f"(order alternating by round); `s` is the median of all its runs (a run under "
            f"{REPEAT_BELOW:g} s is repeated to {REPEATS} in its process), `runs` how many, "
            "`+peak` the largest rise of the process's peak RSS during its first run over the "
            "rounds.")


def publish(text: str, out: str | None, rows: Iterable[dict]) -> None:
    """Print a report and write it to ``out`` (atomically) when given; exit with an error if a
    row that did not fail has no time."""
    print(text)
    if out:
        atomic_write_bytes(Path(out), text.encode())
    if np.isnan([r["seconds"] for r in rows if "error" not in r]).any():
        raise SystemExit("a run reported no time")


def _peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the grid and the report -----------------------------------------------------------------------

#: the smoke grid shrinks the authors' density grid (50,000 points) to 500: seconds, not minutes
GRIDS = {"smoke": dict(models=["mlp-xs"], probes=[1], steps=[31], threads=[1],
                       density_bins=500),
         "quick": dict(models=["gpt", "gpt2-s"], probes=[1, 3], steps=[10], threads=[1]),
         "full": dict(models=["gpt", "gpt2-s", "gpt2-m"], probes=[1, 3, 10], steps=[10, 30],
                      threads=[1, 2]),
         # make gpu-check: the GPT-2-small-sized model on one GPU, blockwise on the first
         # layer's matrices (the blocks of `nets gpu-check`), the GPU target
         "gpu": dict(models=["gpt-gpu"], probes=[3], steps=[10], threads=[4], device="cuda",
                     block_names=list(GPT_BLOCKS), kinds=["blocks"])}


def grid(name: str) -> list[dict]:
    """The cells of grid ``name`` (a key of :data:`GRIDS`)."""
    quick = name != "full"
    g = GRIDS[name]
    models, probes, steps, threads = g["models"], g["probes"], g["steps"], g["threads"]
    extra = {k: g[k] for k in ("density_bins", "device") if k in g}
    cells = []
    for m in models:
        for kind in g.get("kinds", ("full", "blocks")):
            # quick, smoke: blockwise with one probe only (the authors' density loop alone takes
            # minutes per probe on a loaded 2-core machine)
            for p in probes if kind == "full" or not quick else probes[:1]:
                for k in steps:
                    for t in threads:
                        cells.append(dict(model=m, kind=kind, probes=p, steps=k, threads=t,
                                          **extra, **({"block_names": g["block_names"]}
                                                      if kind == "blocks" and "block_names" in g
                                                      else {})))
    return cells


PEERS = {"full": ["eigenthings", "curvlinops"], "blocks": ["authors", "eigenthings"]}


def peak_over_every_run(r: dict) -> bool:
    """Whether a row's peak columns are the peak over all its in-process runs: a row written
    before the peak became the first run's (it lacks ``peak_all_bytes``) whose runs were
    repeated in their process (more runs than rounds). Its peak then includes what the
    allocator kept between the repeats (:func:`run_cell`), so it is not comparable with a
    newer row's."""
    return "peak_all_bytes" not in r and len(r.get("runs") or ()) > r.get("rounds", 1)


def time_split(r: dict) -> str:
    """Where a nets row's time went: ``, products a%, graph builds b%, calibration c%`` of
    the run (its median ``product_s``, ``graph_s`` and ``calibration_s``, the products of
    the modes ``"auto"`` tried and did not choose, over its median ``seconds``; the rest is
    nets' overhead: data checks, Lanczos arithmetic, densities). The calibration's share is
    left out where it is zero or the row has none (an older script's); all of it is empty for
    a row measured before the split."""
    if "product_s" not in r:
        return ""
    cal = r.get("calibration_s") or 0.0
    return (f", products {r['product_s'] / r['seconds']:.0%}, graph builds "
            f"{r['graph_s'] / r['seconds']:.0%}"
            + (f", calibration {cal / r['seconds']:.0%}" if cal > 0 else ""))


def targets(kind: str, nets_r: dict, peers: dict) -> list[str]:
    """The issue's targets for one cell: ``name: value [spread] met/MISSED/within noise``.

    A ratio's interval is :func:`ratio_interval`'s over the two rows' runs (a cost per
    product: :func:`median_interval`'s over nets' runs), so a verdict that the machine's noise
    could flip is ``within noise``.

    A speed target not met is followed by ``[products alone: b]`` where nets' row has
    ``product_s`` (the seconds its Hessian-vector products took, :meth:`nets.BlockHVP.info`'s
    ``product_seconds``): ``b`` is the value nets would reach if its run were nothing but
    those products (the peer's median time over ``product_s``; for a cost per product,
    ``product_s`` per product in gradients), the bound on what removing nets' overhead can
    gain. ``beyond them`` marks a target that this bound misses too: only cheaper products
    could meet it.
    """
    out = []
    alone = nets_r.get("product_s")

    def check(label, value, lo, hi, target, higher=True, bound=None):
        spread = f" ({lo:.2f}-{hi:.2f})" if hi - lo > 5e-3 else ""
        v = verdict(value, lo, hi, target, higher)
        text = f"{label} {value:.2f}{spread} {v}"
        if bound is not None and v != "met":
            beyond = bound < target if higher else bound > target
            text += f" [products alone: {bound:.2f}{', beyond them' if beyond else ''}]"
        out.append(text)

    def ratio(peer: dict, key: str, label: str, target: float) -> None:
        check(label, *speed_ratio(peer, nets_r, key), target,
              bound=None if alone is None else peer[key] / alone)

    def per_product(label: str, target: float) -> None:
        m, lo, hi = (t / nets_r["hvps"] / nets_r["grad_s"]
                     for t in median_interval(runs_of(nets_r)))
        check(label, m, lo, hi, target, higher=False,
              bound=None if alone is None else alone / nets_r["hvps"] / nets_r["grad_s"])

    if kind == "full":
        for p in ("eigenthings", "curvlinops"):
            if p in peers:
                ratio(peers[p], "seconds", f"x{p}>=1.5:", 1.5)
        per_product("grads/HVP<=3:", 3)
    else:
        if "authors" in peers:
            ratio(peers["authors"], "seconds", "xauthors>=3:", 3)
            ratio(peers["authors"], "lanczos_s", "xauthors-HVP>=1.5:", 1.5)
        if "eigenthings" in peers:
            e = peers["eigenthings"]
            ratio(e, "seconds", "xeigenthings>=2:", 2)
            m = nets_r["peak_extra_bytes"] / max(e["peak_extra_bytes"], 1)
            check("mem/eigenthings<=1.5:", m, m, m, 1.5, higher=False)
            if "peak_steady_extra_bytes" in nets_r:  # a GPU's: without the first step
                after = nets_r["peak_steady_extra_bytes"] / max(e["peak_extra_bytes"], 1)
                out[-1] += f" [after the first step (calibration): {after:.2f}]"

            if peak_over_every_run(nets_r) or peak_over_every_run(e):
                out[-1] += " [peaks over every run: an older script's]"
        per_product("grads/block-HVP<=0.5:", 0.5)
    return out


def main(argv: list[str] | None = None) -> None:
    """The command line (``argv``: its arguments, default ``sys.argv[1:]``).

    Args:
        argv: Command-line arguments.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="quick",
                    help="smoke: a 31-parameter MLP (seconds, for the tests); quick: a small "
                         "grid (minutes); full: the issue's whole grid (hours); gpu: the "
                         "GPT-2-small-sized model's blockwise cell on a CUDA GPU (make "
                         "gpu-check)")
    ap.add_argument("--quick", action="store_true", help="same as --grid quick")
    ap.add_argument("--compile", action="store_true",
                    help="also time nets with compile=True on the full-spectrum cells")
    ap.add_argument("--out", default=None, help="Markdown report (default: print only)")
    ap.add_argument("--json", default=None, help="also write every row's measurements (JSON)")
    ap.add_argument("--max-memory", type=memory_budget, default=None,
                    help="nets' memory budget: bytes, a size such as 2G, or 'least' "
                         "(max_memory=; default: nets' own, half the available memory): a "
                         "budget below all batches' graphs makes nets hold one batch's graph "
                         "at a time")
    ap.add_argument("--note", default="", help="a line on the conditions (load, machine)")
    ap.add_argument("--resume", action="store_true",
                    help="with --json: keep the measurements that file already holds (written "
                         "after every cell) and run only the missing or failed ones, e.g. after "
                         "an interruption")
    ap.add_argument("--render-only", action="store_true",
                    help="with --resume: measure nothing, write the report from the rows the "
                         "--json file holds (the cells it lacks are listed as not measured), "
                         "e.g. for a grid stopped before its end")
    ap.add_argument("--keep-stale", action="store_true",
                    help="with --resume: also keep the cells that other code measured (another "
                         "commit or changed sources; default: measure them again)")
    ap.add_argument("--only", action="append", default=[], metavar="FIELD=V1,V2",
                    help="measure only the cells whose FIELD (model, kind, probes, steps, "
                         "threads) is one of the values; repeat to narrow further. With "
                         "--resume the other cells are reported from the file (or as not "
                         "measured), else left out")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each method of a cell this many times, each time in a fresh "
                         "process, the methods interleaved (nets, peers, nets, peers, ...), and "
                         "pool the runs: the median and the spread then span the rounds, so a "
                         "slow phase of a shared machine falls on every method (default 1)")
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--in-process", action="store_true",
                    help="run every method in this process (no subprocess start-up: the smoke "
                         "test's mode); the peak columns are then the whole process's, not "
                         "each method's")
    args = ap.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell))))
        return
    if args.quick:
        args.grid = "quick"
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    device = GRIDS[args.grid].get("device", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available() and not args.render_only:
        ap.error(f"--grid {args.grid} runs on {device} and this machine has no CUDA device "
                 "(torch.cuda.is_available() is False): run it on a GPU machine (make "
                 "gpu-check), or write its report from saved rows with --resume --render-only")
    if args.resume and not args.json:
        ap.error("--resume needs --json (the file the finished cells are read from)")
    if args.render_only and not args.resume:
        ap.error("--render-only needs --resume and --json (the rows to write the report from)")
    if args.keep_stale and not args.resume:
        ap.error("--keep-stale needs --resume and --json (the rows to keep)")
    try:
        only = parse_only(args.only)
    except ValueError as e:
        ap.error(str(e))
    version = code_version()
    fresh, stale = _finished_cells(Path(args.json), args, version) if args.resume else ({}, {})
    # a stale cell (measured by other code) is measured again where this run measures, and
    # reported as it is elsewhere (outside --only, --render-only) or with --keep-stale
    measured_here = {_cell_key(c) for c in grid(args.grid) if selected(c, only)}
    shown_stale = {k for k in stale
                   if args.keep_stale or args.render_only or k not in measured_here}
    done = {**fresh, **{k: stale[k] for k in shown_stale}}
    flags = f"--grid {args.grid}" + (" --compile" if args.compile else "") + (
        f" --max-memory {args.max_memory}" if args.max_memory else "") + (
        " --in-process" if args.in_process else "") + (
        " --resume" if args.resume else "") + (" --keep-stale" if args.keep_stale else "") + (
        " --render-only" if args.render_only else "") + (
        f" --rounds {args.rounds}" if args.rounds > 1 else "") + "".join(
        f" --only {o}" for o in args.only)
    settings = ", ".join(f"{k} {v}" for k, v in GRIDS[args.grid].items() if k != "kinds")
    kinds = " and ".join({"full": "full", "blocks": "blockwise"}[k]
                         for k in GRIDS[args.grid].get("kinds", ("full", "blocks")))
    lines = [f"# Hessian spectra: nets vs peers ({args.grid} grid)", "",
             f"Generated by `benchmarks/bench_peers.py {flags}` on "
             f"{machine_note(device)}, load average "
             f"{os.getloadavg()[0]:.1f} at the start. Grid: {settings}; {kinds} "
             f"spectra. {args.note}"
             + (f" Resumed: {sum(map(len, done.values()))} rows were read from {args.json}, "
                "measured by an earlier run of this grid (their load column says under what "
                "load)." if done else "")
             + (f" {len(stale)} cells of that file were measured by other code: "
                f"{len(shown_stale)} reported as they are (the nets row's notes name the "
                f"commit), {len(stale) - len(shown_stale)} measured again." if stale else "")
             + (" Nothing was measured by this command (--render-only): cells the file lacks "
                "are listed as not measured." if args.render_only else ""), "",
             "Times are wall seconds of one run (spectrum + density) in a fresh process, the "
             f"median of {REPEATS} runs in that process where the first took under "
             f"{REPEAT_BELOW:g} s (the notes give a target's value and its interval, and call "
             "it `within noise` where the interval straddles the target; for a ratio, "
             f"{INTERVAL_NOTE}; for a cost per product, the sign test's interval of nets' "
             "median run, the range of its runs below 9 runs); a row measured in several "
             "rounds (`--rounds`, the nets row's notes say how many: one fresh process per "
             "method and round, the methods interleaved) pools the runs of all its rounds, "
             "and its peak and load columns are the largest of its rounds'; "
             "`HVP/s` counts full-data products (blockwise: block products); `gr/HVP` is the "
             "time of one product over the time of one gradient of the same data; `peak` is "
             + ("the process's peak RSS" if device == "cpu" else
                "the GPU allocator's peak (`torch.cuda.max_memory_allocated`)")
             + ", `+peak` its rise during the (first) run (MiB; a "
             "repeated run's peak creeps up from what the allocator kept of the run before, "
             "so only the first counts); `x` = peer "
             "time / nets time; `λmax` is the largest Ritz value (blockwise: the largest over "
             "the blocks); `load` is the 1-minute load average when the method's process "
             "started (the machine's other jobs: timings are only comparable at equal load). "
             "After a speed target not met, `[products alone: b]` is the value nets would "
             "reach if its run were nothing but its Hessian-vector products (the autograd "
             "passes, from nets' own `product_seconds`): the bound on what cutting nets' "
             "overhead can gain; `beyond them` marks a target that bound misses too. The nets "
             "row's notes say what share of its run the products, the graph builds and "
             "(where it tried other modes) the calibration took (the rest is nets' overhead: "
             "data checks, Lanczos arithmetic, densities)"
             + ("; on a GPU, `[after the first step (calibration): m]` after the memory "
                "target is the same ratio for nets' rise after its first Lanczos step: "
                "without the data check and the calibration"
                if device.startswith("cuda") else "") + ".",
             "", "| model | kind | P | k | thr | method | s | HVP/s | gr/HVP | peak | +peak | x | "
             "λmax | load | notes |", "|" + "---|" * 15]
    print("\n".join(lines), flush=True)
    rows = []
    records: list[dict] = []
    t_start = time.perf_counter()
    # cells read back but not reached yet stay in the file until they are: an interruption of
    # a resumed run then loses nothing that was measured before
    pending = {**stale, **fresh}
    for cell in grid(args.grid):
        pending.pop(_cell_key(cell), None)
        res = dict(done.get(_cell_key(cell), {}))
        chosen = selected(cell, only)
        if not chosen and not args.resume:
            continue
        todo = [m for m in _methods(cell, args.compile) if m not in res]
        if args.render_only or not chosen:
            res.update({m: {"error": "not measured"} for m in todo})
            todo = []
        # rounds interleave the methods (nets, peer, peer, nets, ...): a slow phase of the
        # machine then falls on every method rather than on one
        rounds: dict[str, list[dict]] = {m: [] for m in todo}
        for _ in range(args.rounds if todo else 0):
            for method in todo:
                run = {**cell, "method": method, "max_memory": args.max_memory}
                rounds[method].append(measure(run, in_process=args.in_process))
        for method in todo:
            row = pool_rounds(rounds[method])
            res[method] = row if "error" in row else {**row, **version}
        nr = res["nets"]
        peers = {m: r for m, r in res.items() if m != "nets" and "error" not in r}
        for method, r in res.items():
            c = cell
            head = f"| {c['model']} | {c['kind']} | {c['probes']} | {c['steps']} | " \
                   f"{c['threads']} | {method} |"
            records.append({**cell, "method": method, **r})
            if "error" in r:
                row = f"{head} failed | | | | | | | | {r['error']} |"
            else:
                ratio = "" if method == "nets" or "error" in nr else \
                    f"{r['seconds'] / nr['seconds']:.2f}"
                note = ""
                if method == "nets" and "error" not in nr:
                    n_rounds = r.get("rounds", 1)
                    note = (f"at {r.get('commit', 'unknown')}"
                            + (f", {n_rounds} rounds" if n_rounds > 1 else "")
                            + f", mode {r['mode']}, graphs {r['graphs']}{time_split(r)}; "
                            + "; ".join(targets(c["kind"], nr, peers)))
                if method == "authors":
                    note = f"Lanczos phase {r['lanczos_s']:.2f} s"
                if method == "nets+compile":
                    note = f"mode {r['mode']}; compiled, compilation included"
                top = f"{max(r['top'].values()):.6g}" if r.get("top") else ""
                row = (f"{head} {r['seconds']:.2f} | {r['hvps'] / r['seconds']:.1f} | "
                       f"{r['seconds'] / r['hvps'] / r['grad_s']:.2f} | "
                       f"{r['peak_bytes'] / 2**20:.0f} | {r['peak_extra_bytes'] / 2**20:.0f} | "
                       f"{ratio} | {top} | "
                       f"{r['load']:.1f} | {note} |")
            rows.append(row)
            print(row, flush=True)
        if args.json and not args.render_only:  # after every cell: --resume continues
            later = [r for kept in pending.values() for r in kept.values()]
            atomic_write_bytes(Path(args.json), json.dumps(records + later, indent=1).encode())
    misses = sum(row.count("MISSED") for row in rows)
    met = sum(row.count(" met") for row in rows)
    noise = sum(row.count("within noise") for row in rows)
    beyond = sum(row.count("beyond them") for row in rows)
    bounded = sum(row.count("[products alone") for row in rows)
    took = time.perf_counter() - t_start
    commits = Counter(r.get("commit", "unknown") for r in records
                      if r.get("method") == "nets" and "error" not in r)
    old_peaks = sum(peak_over_every_run(r) for r in records if "error" not in r)
    tail = ["", "Cells measured at: " + (", ".join(f"{c} ({n})" for c, n in commits.items())
                                         or "none") + "."
            + (f" {old_peaks} rows' peak columns are the peak over all their runs in their "
               "process (measured before the peak became the first run's; their memory "
               "targets say so)." if old_peaks else ""),
            "", f"Targets: {met} met, {misses} missed, {noise} within noise (the interval "
            "over the repeated runs straddles the target). "
            + (f"Of the {bounded} speed targets missed or within noise whose nets row has "
               f"its product time, {beyond} stay out of reach of nets' products alone "
               "(`beyond them`): only cheaper products could meet them; the other "
               f"{bounded - beyond} are within reach of cutting nets' overhead. "
               if bounded else "") + (
        "Nothing measured by this command." if args.render_only else
        f"Whole run {took:.0f} s; load average {os.getloadavg()[0]:.1f} at the end.")]
    print("\n".join(tail), flush=True)
    if args.out:
        atomic_write_bytes(Path(args.out), ("\n".join(lines + rows + tail) + "\n").encode())


#: What identifies a cell of a grid.
CELL_FIELDS = ("model", "kind", "probes", "steps", "threads", "density_bins", "device",
               "block_names")


def _cell_key(cell: dict) -> str:
    """A cell's identity (:data:`CELL_FIELDS`) as a string."""
    return json.dumps({k: cell.get(k) for k in CELL_FIELDS}, sort_keys=True)


def parse_only(specs: list[str]) -> dict[str, set]:
    """``--only FIELD=V1,V2`` options as ``{field: allowed values}``.

    Raises:
        ValueError: A malformed option, an unknown field or a non-integer count.
    """
    fields = {"model": str, "kind": str, "probes": int, "steps": int, "threads": int}
    only: dict[str, set] = {}
    for spec in specs:
        field, sep, values = spec.partition("=")
        if not sep or field not in fields or not values:
            raise ValueError(f"--only {spec!r}: expected FIELD=V1,V2 with FIELD one of "
                             f"{', '.join(fields)}, e.g. --only kind=full")
        try:
            allowed = {fields[field](v) for v in values.split(",")}
        except ValueError:
            raise ValueError(f"--only {spec!r}: {field} takes integers") from None
        only[field] = only.get(field, allowed) & allowed
    return only


def selected(cell: dict, only: dict[str, set]) -> bool:
    """Whether ``cell`` passes every ``--only`` filter (see :func:`parse_only`)."""
    return all(cell[field] in allowed for field, allowed in only.items())


def code_version() -> dict[str, str]:
    """The code a measurement comes from: ``commit`` (git's short hash, ``+changes`` when the
    measured sources differ from it; ``unknown`` outside git) and ``code`` (SHA-256 prefix of
    the sources of ``nets``, ``labkit`` and this script)."""
    paths = sorted([*ROOT.glob("nets/**/*.py"), *ROOT.glob("labkit/**/*.py"),
                    Path(__file__).resolve()])
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--", "nets", "labkit",
                                  str(Path(__file__).resolve().relative_to(ROOT))],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, changed = "unknown", ""
    return {"commit": head + ("+changes" if changed else ""), "code": h.hexdigest()[:12]}


def _methods(cell: dict, compile: bool) -> list[str]:
    """The methods a grid runs on ``cell``: nets (and nets compiled), then its peers."""
    extra = ["nets+compile"] if compile and cell["kind"] == "full" else []
    return ["nets", *extra, *PEERS[cell["kind"]]]


def _finished_cells(path: Path, args: argparse.Namespace, version: dict[str, str]
                    ) -> tuple[dict[str, dict[str, dict]], dict[str, dict[str, dict]]]:
    """The grid's cells and methods that ``path`` holds measured, as two
    ``{cell key: {method: record}}`` maps, each record as the file has it (a method missing or
    failed there is run again): the cells measured by this code, and the stale ones, any of
    whose rows another code measured (``code`` differs from ``version``'s; a cell's ratios
    come from one code)."""
    if not path.exists():
        return {}, {}
    records = read_json(path, "resume from")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SystemExit(f"error: {path} is not a list of rows written by --json; delete it "
                         "to start over")
    by_cell: dict[str, dict[str, dict]] = {}
    for r in records:
        if r.get("max_memory") != args.max_memory and "error" not in r:
            raise SystemExit(f"error: {path} was measured with --max-memory "
                             f"{r.get('max_memory')}, not {args.max_memory}; use the same "
                             "options or another --json")
        by_cell.setdefault(_cell_key(r), {})[r.get("method")] = r
    fresh: dict[str, dict[str, dict]] = {}
    stale: dict[str, dict[str, dict]] = {}
    for cell in grid(args.grid):
        have = by_cell.get(_cell_key(cell), {})
        kept = {m: have[m] for m in _methods(cell, args.compile)
                if m in have and "error" not in have[m]}
        if kept:
            same = all(r.get("code") == version["code"] for r in kept.values())
            (fresh if same else stale)[_cell_key(cell)] = kept
    return fresh, stale


if __name__ == "__main__":
    main()
