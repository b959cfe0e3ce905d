"""The authors' blockwise spectrum, re-implemented from the description of
github.com/zyushun/hessian-spectrum (the paper's code), as the benchmarks' baseline.

Per probe and Lanczos step: one forward and graph-building backward per batch, then one
double backward per block from that graph (the graph shared by the blocks); plain Lanczos
without reorthogonalization; the density on a 50,000-point grid by Python loops, as theirs.
Its Lanczos (Hessian-vector) phase is timed alone too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["authors_blockwise"]


def authors_blockwise(model, loss_fn, data, steps: int, probes: int, seed: int,
                      density_bins: int = 50_000, blocks: Sequence[str] | None = None
                      ) -> tuple[float, dict[str, float]]:
    """The authors' algorithm: Lanczos on every parameter block, the gradient graph of a batch
    shared by the blocks, no reorthogonalization, then each block's density.

    Each step computes ``[∇²L]_ll v_l`` for every block ``l`` by a double backward of block
    ``l``'s gradient from one graph per batch; the tridiagonal's eigenpairs ``(θ_i, s_0i²)``
    are the block's quadrature nodes and weights (stochastic Lanczos quadrature, as the paper
    computes its blockwise spectra).

    Args:
        model: The model; each of its named parameters is a block.
        loss_fn: ``loss_fn(model(x), y)``, a batch's mean loss.
        data: ``(x, y)`` batches; the loss is their size-weighted mean.
        steps: Lanczos steps (at most a block's dimension).
        probes: Start vectors per block (Gaussian, normalized).
        seed: Seed of the start vectors' generator.
        density_bins: Grid points of their density (theirs: 50,000).
        blocks: Parameter names to run on (default every parameter).

    Returns:
        ``(lanczos_seconds, {block: largest Ritz value})``: the Lanczos (Hessian-vector) phase's
        wall time, without the densities.
    """
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
    """Their ``density_generate``: Python loops over runs and grid points (kept slow on
    purpose: it is their cost)."""
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
