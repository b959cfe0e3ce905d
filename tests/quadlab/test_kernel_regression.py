"""Bitwise regression of the simulation kernels against stored outputs.

`data/kernel_reference.npz` holds the gaps, log gaps, failure steps and statistics of a grid of
runs (Adam and AdaBelief; β1 = 0 and 0.9; β2 = 0.999 and 1; ε = 0 and 1e-8; bias correction on
and off; extended range on and off; the fused and the blocked kernel; Gaussian and
least-squares noise with `trajectory_statistics`; runs that diverge and runs that underflow),
computed by the kernels before their speed-up (issue 15's benchmark target). Every output must
stay bit for bit the same: a faster kernel may not change a single rounding.

Bits are a property of the numerical stack as well as of the kernels: the problems' matrices come
from LAPACK (QR, eigendecompositions) and the kernels call BLAS, so another NumPy or SciPy (their
OpenBLAS) or numba rounds differently. Python 3.12's NumPy 2.5 with OpenBLAS 0.3.34, for example,
differs from Python 3.11's NumPy 2.4 with OpenBLAS 0.3.31 in the last bits of nearly every
output (at most a few 1e-11 relative). The CPU counts too: OpenBLAS picks its kernels by the
CPU's features and numba compiles for the host CPU, so the same versions on an AMD Zen 3 and on
the machine the first reference was written on differed in the last bit of most outputs. The
reference therefore records the stack it was written on (`__stack__`: the versions, the BLAS
libraries, the CPU numba compiles for and the OpenBLAS kernels' architecture): on that stack
every output must match bit for bit; on another one, every failure step, stop and non-finite
entry must still match exactly and every value to :data:`FOREIGN_RTOL` relative (a wrong
formula, not a rounding, is what fails there).

Record the reference on this stack: `python tests/quadlab/test_kernel_regression.py --write`.
That refuses when the outputs differ from the stored ones beyond :data:`FOREIGN_RTOL`; an
intended change of the results needs `--write --changed` (and says so in the commit).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import llvmlite.binding
import numba
import numpy as np
import pytest
import scipy
import threadpoolctl

import quadlab
from quadlab import simulate as sim
from quadlab.optimizers import make_optimizer

DATA = Path(__file__).parent / "data" / "kernel_reference.npz"

#: The key of the reference's stack description (not an output).
STACK_KEY = "__stack__"

#: Relative tolerance on another stack than the reference's: about 200 times the largest
#: difference seen between two stacks (module docstring), far below any change of formula.
FOREIGN_RTOL = 1e-8


def stack() -> str:
    """The numerical stack the outputs' bits depend on: NumPy, SciPy and numba, the BLAS of each
    of NumPy and SciPy, the CPU numba compiles for and the kernels OpenBLAS chose for this CPU."""

    def blas(mod) -> str:
        try:
            b = mod.show_config(mode="dicts")["Build Dependencies"]["blas"]
            return f"{b.get('name')} {b.get('version')}"
        except (AttributeError, KeyError, TypeError):  # older releases print only
            return "unknown"

    cpu = numba.config.CPU_NAME or llvmlite.binding.get_host_cpu_name()
    cores = sorted({str(lib.get("architecture")) for lib in threadpoolctl.threadpool_info()
                    if lib.get("internal_api") == "openblas"})
    return (f"numpy {np.__version__} ({blas(np)}); scipy {scipy.__version__} ({blas(scipy)}); "
            f"numba {numba.__version__}; cpu {cpu} (OpenBLAS kernels: {', '.join(cores)})")


def _hetero_points(n: int) -> tuple[quadlab.Problem, np.ndarray]:
    prob = quadlab.make_problem("hetero")
    return prob, prob.initial_points(n, seed=3)


def _big_blocks() -> quadlab.Problem:
    """Blocks of 13 and 3 (13 > FUSED_MAX_BLOCK: the blocked kernel)."""
    rng = np.random.default_rng(7)
    blocks = []
    for s, top in ((13, 50.0), (3, 2.0)):
        q, _ = np.linalg.qr(rng.standard_normal((s, s)))
        blocks.append((q * np.geomspace(1.0, top, s)) @ q.T)
    return quadlab.Problem.from_blocks(blocks, h=rng.standard_normal(16))


def _adam_grid():
    """(name, optimizer, hyper) of the optimizer grid."""
    out = []
    for b1 in (0.0, 0.9):
        for b2 in (0.999, 1.0):
            for eps in (0.0, 1e-8):
                for bias in (False, True):
                    if bias and b2 == 1.0:
                        continue  # refused (v̂ would divide by zero)
                    out.append((f"adam_b1{b1}_b2{b2}_eps{eps}_bias{bias}", "adam",
                                {"beta1": b1, "beta2": b2, "eps": eps,
                                 "bias_correction": bias}))
    for b1 in (0.5, 0.9):
        for eps in (0.0, 1e-8):
            out.append((f"adabelief_b1{b1}_b2 0.999_eps{eps}", "adabelief",
                        {"beta1": b1, "beta2": 0.999, "eps": eps}))
    return out


def compute() -> dict[str, np.ndarray]:
    """Every output of the grid, keyed "<case>/<field>"."""
    res: dict[str, np.ndarray] = {}

    def fused_or_blocked(key, prob, opt, hyper, lr, w0, steps, extended):
        spec = make_optimizer(opt, **hyper)
        e0 = np.ascontiguousarray(w0 - prob.w_star)
        logs = np.empty((e0.shape[0], steps + 1))
        if extended and not sim.extended_range(spec):
            return
        gaps, stopped = sim.simulate(prob, spec, np.asarray(lr, dtype=float), e0, steps,
                                     log_out=logs, extended=extended)
        res[f"{key}/gaps"], res[f"{key}/stopped"] = gaps, stopped
        if extended:  # plain float64: the logs are log10 of the gaps
            res[f"{key}/logs"] = logs

    het, w0 = _hetero_points(3)
    lr = np.array([1e-3, 3e-2, 0.5])
    big = _big_blocks()
    wb = big.initial_points(3, seed=5)
    for name, opt, hyper in _adam_grid():
        for ext in (False, True):
            fused_or_blocked(f"hetero/{name}/ext{ext}", het, opt, hyper, lr, w0, 100, ext)
            fused_or_blocked(f"blocked/{name}/ext{ext}", big, opt, hyper, lr, wb, 40, ext)
    # many lanes: several chunks, full SIMD width and remainders
    het70, w70 = _hetero_points(70)
    lr70 = np.geomspace(1e-4, 1.0, 70)
    for ext in (False, True):
        for eps in (0.0, 1e-8):
            fused_or_blocked(f"hetero70/eps{eps}/ext{ext}", het70, "adam",
                             {"beta1": 0.0, "beta2": 0.999, "eps": eps}, lr70, w70, 20, ext)
    # the issue's dip: H = [[1]], w0 = 1, η = 0.9, β2 = 0.999 (gap ~1e-2028 in extended range;
    # plain float64 underflows and stops), plus a start far below float64's range
    one = quadlab.Problem.from_blocks([np.eye(1)])
    for ext in (False, True):
        fused_or_blocked(f"dip/ext{ext}", one, "adam", {"beta2": 0.999},
                         [0.9, 1e-201], np.array([[1.0], [1e-200]]), 600, ext)
        fused_or_blocked(f"dip_belief/ext{ext}", one, "adabelief", {"beta2": 0.999},
                         [0.9, 1e-201], np.array([[1.0], [1e-200]]), 600, ext)
    # divergence: step sizes far too large (GD simulated, Adam with β2 = 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for opt, hyper, lr_div in (("gd", {}, [0.001, 0.03, 5.0]),
                                   ("adam", {"beta2": 1.0, "eps": 1e-8}, [1e-3, 1e12, 1e40])):
            out = quadlab.run(het, opt, lr=lr_div, w0=w0, steps=200, method="simulate",
                              log_gap=True, **hyper)
            res[f"diverge/{opt}/gaps"], res[f"diverge/{opt}/logs"] = out.gap, out.log10_gap
            res[f"diverge/{opt}/stopped"] = quadlab.divergence_steps(out.gap)
        # the public entry point, default options, on the benchmark's case (short)
        res["run/hetero/gaps"] = quadlab.run(het70, "adam", lr=1e-5, w0=w70, steps=40,
                                             beta1=0.0, beta2=0.999)
        # noise with statistics (plain float64), fused and blocked
        for key, prob, pts in (("hetero", het, w0), ("blocked", big, wb)):
            for nkey, noise in (("gauss", quadlab.GaussianNoise("hessian", scale=0.5)),
                                ("lsq", quadlab.LeastSquaresNoise(n_samples=64, sigma=0.3))):
                for opt, hyper in (("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
                                   ("adabelief", {"beta1": 0.9, "beta2": 0.999})):
                    st = quadlab.trajectory_statistics(
                        prob, opt, lr=[1e-3, 1e-2, 0.1], w0=pts, steps=80, average_from=40,
                        noise=noise, batch_size=2, seed=11, **hyper)
                    k = f"stats/{key}/{nkey}/{opt}"
                    res[f"{k}/gaps"] = st.gaps
                    for f in ("v", "g2_noisy", "g2_true", "e2"):
                        res[f"{k}/{f}"] = getattr(st, f)
                    for f in ("gg_noisy", "gg_true", "ee"):
                        res[f"{k}/{f}"] = np.concatenate([b.ravel() for b in getattr(st, f)])
                    res[f"noise/{key}/{nkey}/{opt}/gaps"] = quadlab.run(
                        prob, opt, lr=[1e-3, 1e-2, 0.1], w0=pts, steps=80, noise=noise,
                        batch_size=2, seed=11, **hyper)
    return res


def _bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of a float array (every NaN mapped to one pattern)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    return np.where(np.isnan(a), np.nan, a).view(np.int64)


@pytest.fixture(scope="module")
def computed() -> dict[str, np.ndarray]:
    return compute()


def load_reference() -> tuple[dict[str, np.ndarray], str]:
    """The stored reference outputs and the stack they were written on."""
    with np.load(DATA) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, str(arrays.pop(STACK_KEY))


@pytest.fixture(scope="module")
def stored() -> tuple[dict[str, np.ndarray], str]:
    """The reference outputs and the stack they were written on."""
    return load_reference()


@pytest.fixture(scope="module")
def reference(stored) -> dict[str, np.ndarray]:
    return stored[0]


def test_reference_covers_the_grid(computed, reference):
    assert sorted(computed) == sorted(reference)
    # the grid reaches what it claims to: renormalized dips, underflow stops, divergences
    assert np.nanmin(reference["dip/extTrue/logs"]) < -1000
    assert (reference["dip/extFalse/stopped"] >= 0).any()
    assert np.isnan(reference["dip/extTrue/gaps"]).any()
    assert (reference["diverge/gd/stopped"] >= 0).any()
    assert (reference["diverge/adam/stopped"] >= 0).any()


def differences(reference: dict[str, np.ndarray], computed: dict[str, np.ndarray],
                rtol: float | None) -> list[str]:
    """The outputs of ``computed`` that differ from ``reference``, one line each.

    ``rtol=None``: bit for bit. Otherwise integers (failure steps) and the positions of NaN and
    infinite entries exactly, and each finite value to ``rtol`` of its own size (so a gap of
    ``1e-200`` is held to ``1e-208``, not to ``rtol`` times the largest gap; on the one other
    stack measured, relative differences stayed below 5e-11 and zeros stayed exact zeros).
    """
    bad = []
    for key in sorted(reference):
        ref, new = reference[key], computed[key]
        if ref.shape != new.shape or ref.dtype != new.dtype:
            bad.append(f"{key}: shape/dtype {new.shape} {new.dtype} != {ref.shape} {ref.dtype}")
            continue
        if rtol is None or ref.dtype.kind != "f":
            diff = _bits(ref) != _bits(new)
        else:
            finite = np.isfinite(ref) & np.isfinite(new)
            with np.errstate(invalid="ignore"):
                far = np.abs(new - ref) > rtol * np.abs(ref)
            diff = np.where(finite, far, _bits(ref) != _bits(new))
        if diff.any():
            first = tuple(np.argwhere(diff)[0])
            bad.append(f"{key}: {int(diff.sum())} entries differ, first at {first}: "
                       f"{new[first]!r} != {ref[first]!r}")
    return bad


def test_outputs_are_the_reference(computed, stored):
    """Every gap, log gap, failure step and statistic equals the stored one: bit for bit on the
    reference's stack, to :data:`FOREIGN_RTOL` (failure steps exactly) on another one."""
    reference, written_on = stored
    here = stack()
    rtol = None if here == written_on else FOREIGN_RTOL
    bad = differences(reference, computed, rtol)
    how = ("bit for bit" if rtol is None else
           f"to {rtol:g} relative: this stack ({here}) is not the reference's ({written_on})")
    assert not bad, f"outputs differ from the reference ({how}):\n" + "\n".join(bad)


def test_differences_are_judged_by_the_stack():
    """The comparison itself: one rounding fails bit for bit and passes a foreign stack's
    tolerance; a change beyond it, a moved failure step or a moved NaN fails both."""
    ref = {"gaps": np.array([1.0, 1e-200, np.nan]), "stopped": np.array([-1, 7])}
    rounded = {"gaps": np.array([np.nextafter(1.0, 2.0), 1e-200, np.nan]),
               "stopped": np.array([-1, 7])}
    assert differences(ref, dict(ref), None) == []
    assert len(differences(ref, rounded, None)) == 1
    assert differences(ref, rounded, FOREIGN_RTOL) == []
    tiny = {**rounded, "gaps": np.array([1.0, 1e-200 * (1 + 1e-12), np.nan])}
    assert differences(ref, tiny, FOREIGN_RTOL) == []
    for changed in ({**ref, "gaps": np.array([1.0 + 1e-6, 1e-200, np.nan])},
                    {**ref, "gaps": np.array([1.0, 2e-200, np.nan])},
                    {**ref, "gaps": np.array([1.0, 1e-200, 0.5])},
                    {**ref, "stopped": np.array([-1, 8])}):
        assert len(differences(ref, changed, FOREIGN_RTOL)) == 1
        assert len(differences(ref, changed, None)) == 1


if __name__ == "__main__":
    if sys.argv[1:] not in (["--write"], ["--write", "--changed"]):
        raise SystemExit(f"usage: python {sys.argv[0]} --write [--changed]   (regenerates {DATA})")
    DATA.parent.mkdir(exist_ok=True)
    arrays = compute()
    if DATA.exists() and "--changed" not in sys.argv:
        previous, _ = load_reference()
        if sorted(previous) != sorted(arrays) or differences(previous, arrays, FOREIGN_RTOL):
            raise SystemExit("the outputs differ from the stored reference beyond "
                             f"{FOREIGN_RTOL:g} relative (not a rounding); pass --changed only "
                             "for an intended change of the results")
    np.savez_compressed(DATA, **arrays, **{STACK_KEY: np.array(stack())})
    print(f"wrote {DATA} ({DATA.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays)")
