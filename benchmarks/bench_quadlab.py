"""Speed of `quadlab.run` against a plain numpy baseline, measured in the same run.

The baseline updates all trajectories at once with one dense (n×d)·(d×d) matmul per step and
records the loss gap every step, i.e. it produces the same output as `quadlab.run`.

Targets (issue #2):
  * 256 trajectories on `hetero` (d = 9), Adam β2 = 0.999, 20,000 steps: ≥ 5× faster.
  * 64 trajectories on three 100×100 blocks (d = 300), 2,000 steps:
    GD ≥ 10× faster (closed form), Adam β2 = 0.999 ≥ 1.5× faster.
Noisy gradients (issue #6), Gaussian noise with covariance σ²H/B (σ = 1, B = 1):
  * 256 trajectories on `hetero`, Adam β2 = 0.999, 20,000 steps: ≥ 1.5× faster (the
    normals (polar method, scalar log/sqrt: no vector math library) cost more than the
    deterministic step itself).
  The baseline draws its own normals (numpy Generator), so the two agree in distribution, not
  draw for draw: the last column is then the relative difference of the mean final gap.

Extended range (issue 15): Adam with β2 < 1 (ε = 0, and ε > 0 since it too can dip below
float64's range) runs with per-block exponents so it never underflows. Its cost is measured
against the same fused kernel with the extended range off (plain float64, which stops such runs
on underflow), on the first case above, for ε = 0 and ε = 1e-8: the slowdown must stay ≤ 1.25×.

Run: `python benchmarks/bench_quadlab.py [--repeats 3] [--out FILE]` (`make bench` writes
benchmarks/results/quadlab.md). Times are the best of the repeats, after one warm-up call (numba
compilation is not timed). Results agree with the baseline to the printed relative error. The
output states the settings (numba threads, BLAS/OpenMP thread variables) and the machine's load
average before and after: ratios measured on a loaded machine (other processes on the cores)
are not the kernel's speed, since the two sides of a ratio are not slowed down equally.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

import quadlab
from labkit.atomic import atomic_write_bytes
from quadlab import simulate as sim
from quadlab.cases import haar_orthogonal
from quadlab.optimizers import make_optimizer

#: largest accepted slowdown of the extended range over plain float64 (same kernel)
EXTENDED_MAX_SLOWDOWN = 1.25


def numpy_baseline(problem, optimizer, lr, w0, steps, beta2=0.999, noise_scale=0.0):
    """Reference loop: dense matmul per step for all trajectories; returns gaps (n, steps+1).

    With noise_scale > 0 the optimizer sees ∇L + noise_scale · H^{1/2} z, z ~ N(0, I).
    """
    hess = problem.hessian()
    lam, q = np.linalg.eigh(hess)
    half = (q * np.sqrt(lam)) @ q.T
    rng = np.random.default_rng(0)
    w = w0.copy()
    w_star = problem.w_star
    gaps = np.empty((w.shape[0], steps + 1))
    grad = w @ hess - problem.h
    gaps[:, 0] = 0.5 * np.sum((w - w_star) * grad, axis=1)

    def noisy(grad):
        if noise_scale == 0.0:
            return grad
        return grad + noise_scale * (rng.standard_normal(grad.shape) @ half)

    gn = noisy(grad)
    m, v = gn.copy(), gn * gn
    for t in range(steps):
        if t > 0:
            gn = noisy(grad)
        if optimizer == "gd":
            w -= lr[:, None] * gn
        else:
            m = gn  # β1 = 0
            v = beta2 * v + (1.0 - beta2) * gn * gn
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
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the output to this file (e.g. benchmarks/results/quadlab.md)")
    args = ap.parse_args(argv)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    code = _run(args, say)
    say(f"load average after: {_load()}")
    if args.out is not None:
        atomic_write_bytes(args.out, ("```\n" + "\n".join(lines) + "\n```\n").encode())
        print(f"wrote {args.out}", file=sys.stderr)
    return code


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


def _run(args, say) -> int:
    env = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    say(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    say(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    say(f"settings: --repeats {args.repeats} (best of), numba threads "
        f"{numba.get_num_threads()}, {' '.join(f'{k}={v}' for k, v in env.items())}")
    say(f"load average before: {_load()}")

    cases = []
    hetero = quadlab.make_problem("hetero")
    w0 = hetero.initial_points(256, seed=1)
    cases.append(("hetero d=9, 256 traj, Adam β2=0.999, 20k steps", hetero, "adam",
                  np.full(256, 1e-5), w0, 20_000, 5.0, 0.0))
    cases.append(("hetero d=9, 256 traj, Adam β2=0.999, noise σ²H, 20k", hetero, "adam",
                  np.full(256, 1e-3), w0, 20_000, 1.5, 1.0))
    big = three_blocks_300()
    w0 = big.initial_points(64, seed=1)
    cases.append(("3×100 blocks d=300, 64 traj, GD, 2k steps", big, "gd",
                  np.geomspace(1e-5, 3.9e-4, 64), w0, 2_000, 10.0, 0.0))
    cases.append(("3×100 blocks d=300, 64 traj, Adam β2=0.999, 2k steps", big, "adam",
                  np.full(64, 1e-3), w0, 2_000, 1.5, 0.0))

    say(f"{'case':58s} {'quadlab':>9s} {'numpy':>9s} {'ratio':>7s} {'target':>7s}  max rel err")
    all_ok = True
    for label, prob, opt, lr, w0, steps, target, sigma in cases:
        hyper = {"beta1": 0.0, "beta2": 0.999} if opt == "adam" else {}
        if sigma:
            hyper.update(noise=quadlab.GaussianNoise("hessian", scale=sigma), seed=0)
        t_ours, ours = best_time(
            lambda prob=prob, opt=opt, lr=lr, w0=w0, steps=steps, hyper=hyper:
            quadlab.run(prob, opt, lr=lr, w0=w0, steps=steps, **hyper), args.repeats)
        t_base, base = best_time(
            lambda prob=prob, opt=opt, lr=lr, w0=w0, steps=steps, sigma=sigma:
            numpy_baseline(prob, opt, lr, w0, steps, noise_scale=sigma), args.repeats)
        if sigma:  # different draws: compare the mean final gap
            err = float(abs(ours[:, -1].mean() - base[:, -1].mean()) / base[:, -1].mean())
        else:
            err = float(np.max(np.abs(ours - base)) / np.max(np.abs(base[:, 0])))
        ratio = t_base / t_ours
        ok = ratio >= target
        all_ok &= ok
        say(f"{label:58s} {t_ours:8.3f}s {t_base:8.3f}s {ratio:6.1f}× {target:6.1f}×  "
            f"{err:.1e} {'ok' if ok else 'BELOW TARGET'}")

    hetero = quadlab.make_problem("hetero")
    e0 = np.ascontiguousarray(hetero.initial_points(256, seed=1) - hetero.w_star)
    lr = np.full(256, 1e-5)
    for eps in (0.0, 1e-8):
        spec = make_optimizer("adam", beta1=0.0, beta2=0.999, eps=eps)
        t_ext, ext = best_time(lambda spec=spec: sim.simulate_fused(
            hetero, spec, lr, e0, 20_000, extended=True)[0], args.repeats)
        t_plain, plain = best_time(lambda spec=spec: sim.simulate_fused(
            hetero, spec, lr, e0, 20_000, extended=False)[0], args.repeats)
        slowdown = t_ext / t_plain
        ok = slowdown <= EXTENDED_MAX_SLOWDOWN
        all_ok &= ok
        same = "bitwise equal" if np.array_equal(ext, plain) else "DIFFERENT"
        label = f"extended range on vs off (hetero, Adam β2=0.999, ε={eps:g}, 20k)"
        say(f"{label:58s} {t_ext:8.3f}s {t_plain:8.3f}s {slowdown:6.2f}× "
            f"≤{EXTENDED_MAX_SLOWDOWN:5.2f}×  {same} {'ok' if ok else 'ABOVE TARGET'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
