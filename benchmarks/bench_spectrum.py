"""Blockwise Hessian spectra of the zoo GPT: nets vs the authors' algorithm, same run.

Baseline (re-implemented from the description of github.com/zyushun/hessian-spectrum): for each
block in turn, for each probe in turn, plain Lanczos (no reorthogonalization, division by
max(β, 1e-8) on breakdown) whose every step is one double-backward HVP per data batch
(``autograd.grad`` with ``create_graph=True``, then a second ``grad``), restricted to the
block's parameter; then the density of each block on a 50,000-point grid evaluated by Python
loops over probes and grid points (numpy over the nodes), as in their ``density_generate``.
One deliberate difference: batches are averaged (weights n_b/N) instead of summed, so both
methods compute the same Hessian and their Ritz values can be compared.

nets: all blocks and all probes advance in lockstep; each Lanczos step is one ``vmap``-ed
forward-over-reverse HVP per batch over the stacked tangents; full reorthogonalization; the
density is vectorized on a 2,000-point grid.

Run:  .venv/bin/python benchmarks/bench_spectrum.py [--steps 20] [--probes 3] [--model gpt]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
import torch

import nets
from nets import zoo


def baseline_hvp(model, loss_fn, data, param, v):
    """Authors' style HVP: double backward, batches one after another (averaged)."""
    total = sum(len(y) for _, y in data)
    out = torch.zeros_like(param)
    for x, y in data:
        loss = loss_fn(model(x), y)
        (g,) = torch.autograd.grad(loss, param, create_graph=True)
        (hv,) = torch.autograd.grad(g, param, grad_outputs=v)
        out += hv * (len(y) / total)
    return out


def baseline_lanczos(model, loss_fn, data, param, steps, gen):
    v = torch.randn(param.shape, generator=gen, dtype=param.dtype)
    v = v / v.norm()
    v_prev = torch.zeros_like(v)
    beta = 0.0
    alphas, betas = [], []
    for j in range(steps):
        w = baseline_hvp(model, loss_fn, data, param, v)
        alpha = float((w * v).sum())
        w = w - alpha * v - beta * v_prev
        alphas.append(alpha)
        if j == steps - 1:
            break
        beta = float(w.norm())
        betas.append(beta)
        v_prev, v = v, w / max(beta, 1e-8)
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    theta, s = np.linalg.eigh(t)
    return theta, s[0] ** 2


def gaussian(x, x0, sigma_squared):
    return np.exp(-((x0 - x) ** 2) / (2.0 * sigma_squared)) / np.sqrt(2 * np.pi * sigma_squared)


def baseline_density(eigenvalues, weights, num_bins=50_000, sigma_squared=1e-5, overhead=0.01):
    """The authors' ``density_generate``: Python loops over runs and grid points."""
    eigenvalues, weights = np.array(eigenvalues), np.array(weights)
    lambda_max = np.mean(np.max(eigenvalues, axis=1), axis=0) + overhead
    lambda_min = np.mean(np.min(eigenvalues, axis=1), axis=0) - overhead
    grids = np.linspace(lambda_min, lambda_max, num=num_bins)
    sigma = sigma_squared * max(1, (lambda_max - lambda_min))
    num_runs = eigenvalues.shape[0]
    density_output = np.zeros((num_runs, num_bins))
    for i in range(num_runs):
        for j in range(num_bins):
            x = grids[j]
            tmp_result = gaussian(eigenvalues[i, :], x, sigma)
            density_output[i, j] = np.sum(tmp_result * weights[i, :])
    return np.mean(density_output, axis=0), grids


def run_baseline(model, loss_fn, data, steps, probes, seed):
    gen = torch.Generator().manual_seed(seed)
    out = {}
    t_hvp = 0.0
    t_dens = 0.0
    for name, p in model.named_parameters():
        t0 = time.perf_counter()
        runs = [baseline_lanczos(model, loss_fn, data, p, steps, gen) for _ in range(probes)]
        t1 = time.perf_counter()
        baseline_density([r[0] for r in runs], [r[1] for r in runs])
        t2 = time.perf_counter()
        t_hvp += t1 - t0
        t_dens += t2 - t1
        out[name] = max(r[0].max() for r in runs)
    return out, t_hvp, t_dens


def run_nets(model, loss_fn, data, steps, probes, seed):
    t0 = time.perf_counter()
    spectra = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                      probes=probes, seed=seed)
    t1 = time.perf_counter()
    nets.block_densities(spectra)
    t2 = time.perf_counter()
    return {k: s.nodes.max() for k, s in spectra.items()}, t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gpt", choices=zoo.MODELS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (both methods); default: torch's choice")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, loss_fn, data = zoo.load(args.model, seed=0)
    n_blocks = len(list(model.parameters()))
    n_hvp = n_blocks * args.probes * args.steps
    print(f"# {args.model}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{n_blocks} blocks, {len(data)} batches; steps={args.steps}, probes={args.probes}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    # warm-up both (first-call overheads of autograd / functorch)
    nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=2, probes=1, seed=99)
    baseline_hvp(model, loss_fn, data, next(model.parameters()),
                 torch.ones_like(next(model.parameters())))

    ours, o_hvp, o_dens = run_nets(model, loss_fn, data, args.steps, args.probes, args.seed)
    print(f"nets     : lanczos {o_hvp:8.2f} s ({n_hvp / o_hvp:8.1f} HVP/s)  "
          f"density {o_dens:6.2f} s  total {o_hvp + o_dens:8.2f} s", flush=True)
    base, b_hvp, b_dens = run_baseline(model, loss_fn, data, args.steps, args.probes,
                                       args.seed)
    print(f"baseline : lanczos {b_hvp:8.2f} s ({n_hvp / b_hvp:8.1f} HVP/s)  "
          f"density {b_dens:6.2f} s  total {b_hvp + b_dens:8.2f} s")
    print(f"speed-up : end to end {(b_hvp + b_dens) / (o_hvp + o_dens):.2f}x, "
          f"HVP throughput {b_hvp / o_hvp:.2f}x")
    rel = [abs(ours[k] - base[k]) / max(abs(base[k]), 1e-30) for k in ours]
    print(f"check    : largest Ritz value per block, nets vs baseline: median rel. diff "
          f"{np.median(rel):.1e}, max {max(rel):.1e} "
          f"(different probes; the baseline has no reorthogonalization)")
    assert all(math.isfinite(v) for v in ours.values())


if __name__ == "__main__":
    main()
