"""Figure 1: full Hessian spectra at initialization, CNNs vs Transformers.

Numbers from `nets.full_spectrum` (SLQ) and `nets.js_matrix`; `plot` only draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import nets
from labkit.tables import format_table
from nets import zoo

from .families import family
from .registry import FigureSpec, Finding
from .style import RC, save
from .verdict import Part, combine

#: Spectra of different scales on one axis: the claim is about their shapes.
RECIPE = nets.RECIPES["lambda1"]
#: "Alike": the mean cross-family distance is at most this multiple of the within-family one.
ALIKE_RATIO = 1.25
N_BOOT = 100


@dataclass(frozen=True)
class FullSpectra:
    """Full-Hessian SLQ spectra per model, the JS distances between their densities, and a
    bootstrap over probes of the cross/within-family distance ratio."""

    spectra: dict
    js: np.ndarray
    names: tuple[str, ...]
    ratio_boot: tuple[float, ...] = ()


def cross_within(names, js: np.ndarray) -> float:
    """Mean JS distance across families over the mean within a family (nan if undefined)."""
    fam = [family(n) for n in names]
    cross, within = [], []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            (cross if fam[i] != fam[j] else within).append(js[i, j])
    if not cross or not within or not np.mean(within) > 0:
        return float("nan")
    return float(np.mean(cross) / np.mean(within))


def compute(*, models: tuple[str, ...], steps: int, probes: int, seed: int,
            progress=None) -> FullSpectra:
    """SLQ of the full Hessian of each zoo model at its seeded initialization."""
    spectra = {}
    for name in models:
        model, loss_fn, data = zoo.load(name, seed=seed)
        spectra[name] = nets.full_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                           probes=probes, seed=seed)
        if progress is not None:
            progress(name)
    names, js = nets.js_matrix(spectra, RECIPE)
    rng = np.random.default_rng([seed, 777])
    boots = []
    for _ in range(N_BOOT):
        rows = {n: rng.integers(0, s.probes, size=s.probes) for n, s in spectra.items()}
        _, d = nets.js_matrix({n: s.select(rows[n]) for n, s in spectra.items()}, RECIPE)
        boots.append(cross_within(names, d))
    return FullSpectra(spectra, np.asarray(js), tuple(names), tuple(boots))


def plot(res: FullSpectra, out_dir: Path) -> list[Path]:
    """Log density of each model's full spectrum, eigenvalues divided by the largest."""
    grid, dens, _ = nets.block_densities(res.spectra, RECIPE)
    with plt.rc_context(RC):
        fams = ("CNN", "Transformer")
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for ax, fam in zip(axes, fams, strict=True):
            for name in res.names:
                if family(name) == fam:
                    ax.semilogy(grid, np.maximum(dens[name], 1e-8), label=name)
            ax.set_title(f"{fam}s: full Hessian at initialization")
            ax.set_xlabel("eigenvalue / λ_max")
            ax.set_ylim(1e-5, None)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        axes[0].set_ylabel("spectral density (log)")
        fig.tight_layout()
        return save(fig, out_dir, "fig1_full_spectra")


def alike_part(res: FullSpectra) -> Part:
    """Part "the full spectra of CNNs and Transformers are alike": the cross/within-family JS
    ratio is at most `ALIKE_RATIO` across the bootstrap interval (holds), above it across the
    interval (fails), or straddles it (inconclusive)."""
    name = f"full spectra alike across families (cross/within JS ratio ≤ {ALIKE_RATIO})"
    ratio = cross_within(res.names, res.js)
    b = np.asarray(res.ratio_boot, dtype=np.float64)
    if not np.isfinite(ratio) or b.size < 2 or not np.all(np.isfinite(b)):
        return Part(name, "not measurable",
                    "needs models of both families and two of one family")
    lo, hi = np.percentile(b, [2.5, 97.5])
    detail = f"ratio {ratio:.2f}, bootstrap 95% [{lo:.2f}, {hi:.2f}]"
    if hi <= ALIKE_RATIO:
        return Part(name, "holds", detail)
    if lo > ALIKE_RATIO:
        return Part(name, "fails", detail)
    return Part(name, "inconclusive", detail)


def findings(res: FullSpectra) -> Finding:
    """Cross-family vs within-family JS distance of the full-spectrum densities."""
    part = alike_part(res)
    measured = ("Mean JS distance between full-spectrum densities (eigenvalues / λ_max), "
                f"CNN vs Transformer over within a family: [{part.outcome}] {part.detail}.")
    rows = [{"model": n, "family": family(n),
             "lmin": float(res.spectra[n].nodes.min()), "lmax": float(res.spectra[n].nodes.max())}
            for n in res.names]
    table = format_table(rows, [("model", "model", ""), ("family", "family", ""),
                                ("lmin", "λ_min (Ritz)", ".3g"), ("lmax", "λ_max (Ritz)", ".3g")],
                         markdown=True)
    return Finding(measured, combine([part]), table, (part,))


SPEC = FigureSpec(
    name="fig1_full_spectra",
    title="Figure 1 — full Hessian spectra: CNNs and Transformers look alike",
    claim=("The full Hessian spectra of CNNs and Transformers at initialization are similar "
           "(similar spread, roughly symmetric around 0), so the full spectrum does not explain "
           "why SGD lags Adam on Transformers."),
    caption=("SLQ densities of the full Hessian at initialization (log scale), eigenvalues "
             "divided by each model's largest; zoo models (see nets.zoo.models)."),
    settings={"tiny": {"models": ("mlp",), "steps": 6, "probes": 2, "seed": 0},
              "quick": {"models": ("resnet", "vgg", "gpt", "bert", "vit"), "steps": 40,
                        "probes": 5, "seed": 0},
              "full": {"models": ("resnet", "vgg", "gpt", "bert", "vit"), "steps": 100,
                       "probes": 10, "seed": 0}},
    packages=("nets",),
    compute=compute,
    draw=plot,
    findings=findings,
)
