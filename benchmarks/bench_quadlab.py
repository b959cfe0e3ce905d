"""Speed of `quadlab.run` against a plain numpy baseline, measured in the same run.

The baseline updates all trajectories at once with one dense (n×d)·(d×d) matmul per step and
records the loss gap every step, i.e. it produces the same output as `quadlab.run`.

Targets (issue #2):
  * 256 trajectories on `hetero` (d = 9), Adam β2 = 0.999, 20,000 steps: ≥ 5× faster.
  * 64 trajectories on three 100×100 blocks (d = 300), 2,000 steps:
    GD ≥ 10× faster (closed form), Adam β2 = 0.999 ≥ 1.5× faster.

Run: `python benchmarks/bench_quadlab.py [--repeats 3]`. Times are the best of the repeats,
after one warm-up call (numba compilation is not timed). Results agree with the baseline to
the printed relative error.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import quadlab
from quadlab.cases import haar_orthogonal


def numpy_baseline(problem, optimizer, lr, w0, steps, beta2=0.999):
    """Reference loop: dense matmul per step for all trajectories; returns gaps (n, steps+1)."""
    hess = problem.hessian()
    w = w0.copy()
    w_star = problem.w_star
    gaps = np.empty((w.shape[0], steps + 1))
    grad = w @ hess - problem.h
    gaps[:, 0] = 0.5 * np.sum((w - w_star) * grad, axis=1)
    m, v = grad.copy(), grad * grad
    for t in range(steps):
        if optimizer == "gd":
            w -= lr[:, None] * grad
        else:
            m = grad  # β1 = 0
            v = beta2 * v + (1.0 - beta2) * grad * grad
            w -= lr[:, None] * m / np.sqrt(v)
        grad = w @ hess - problem.h
        gaps[:, t + 1] = 0.5 * np.sum((w - w_star) * grad, axis=1)
    return gaps


def best_time(fn, repeats):
    fn()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def three_blocks_300(seed=0):
    rng = np.random.default_rng(seed)
    spectra = [np.geomspace(1, 10, 100), np.geomspace(10, 100, 100), np.geomspace(100, 5000, 100)]
    rot = [haar_orthogonal(100, rng) for _ in spectra]
    return quadlab.Problem.from_spectra(spectra, rot, rng.standard_normal(300), name="3x100")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    cases = []
    hetero = quadlab.make_problem("hetero")
    w0 = hetero.initial_points(256, seed=1)
    cases.append(("hetero d=9, 256 traj, Adam β2=0.999, 20k steps", hetero, "adam",
                  np.full(256, 1e-3), w0, 20_000, 5.0))
    big = three_blocks_300()
    w0 = big.initial_points(64, seed=1)
    cases.append(("3×100 blocks d=300, 64 traj, GD, 2k steps", big, "gd",
                  np.geomspace(1e-5, 3.9e-4, 64), w0, 2_000, 10.0))
    cases.append(("3×100 blocks d=300, 64 traj, Adam β2=0.999, 2k steps", big, "adam",
                  np.full(64, 1e-3), w0, 2_000, 1.5))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}")
    print(f"{'case':58s} {'quadlab':>9s} {'numpy':>9s} {'ratio':>7s} {'target':>7s}  max rel err")
    all_ok = True
    for label, prob, opt, lr, w0, steps, target in cases:
        hyper = {"beta1": 0.0, "beta2": 0.999} if opt == "adam" else {}
        t_ours, ours = best_time(
            lambda prob=prob, opt=opt, lr=lr, w0=w0, steps=steps, hyper=hyper:
            quadlab.run(prob, opt, lr=lr, w0=w0, steps=steps, **hyper), args.repeats)
        t_base, base = best_time(
            lambda prob=prob, opt=opt, lr=lr, w0=w0, steps=steps:
            numpy_baseline(prob, opt, lr, w0, steps), args.repeats)
        err = float(np.max(np.abs(ours - base)) / np.max(np.abs(base[:, 0])))
        ratio = t_base / t_ours
        ok = ratio >= target
        all_ok &= ok
        print(f"{label:58s} {t_ours:8.3f}s {t_base:8.3f}s {ratio:6.1f}× {target:6.1f}×  "
              f"{err:.1e} {'ok' if ok else 'BELOW TARGET'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
