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

from .registry import FigureSpec, Finding
from .style import RC, save

FAMILIES = {"resnet": "CNN", "vgg": "CNN", "gpt": "Transformer", "bert": "Transformer",
            "vit": "Transformer"}
RECIPE = nets.DensityRecipe(normalize="lambda1")  # spectra of different scales, one axis


@dataclass(frozen=True)
class FullSpectra:
    """Full-Hessian SLQ spectra per model and the JS distances between their densities."""

    spectra: dict
    js: np.ndarray
    names: tuple[str, ...]


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
    return FullSpectra(spectra, np.asarray(js), tuple(names))


def plot(res: FullSpectra, out_dir: Path) -> list[Path]:
    """Log density of each model's full spectrum, eigenvalues divided by the largest."""
    grid, dens, _ = nets.block_densities(res.spectra, RECIPE)
    with plt.rc_context(RC):
        fams = ("CNN", "Transformer")
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for ax, fam in zip(axes, fams, strict=True):
            for name in res.names:
                if FAMILIES.get(name) == fam:
                    ax.semilogy(grid, np.maximum(dens[name], 1e-8), label=name)
            ax.set_title(f"{fam}s: full Hessian at initialization")
            ax.set_xlabel("eigenvalue / λ_max")
            ax.set_ylim(1e-5, None)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        axes[0].set_ylabel("spectral density (log)")
        fig.tight_layout()
        return save(fig, out_dir, "fig1_full_spectra")


def findings(res: FullSpectra) -> Finding:
    """Cross-family vs within-family JS distance of the full-spectrum densities."""
    fam = [FAMILIES.get(n, "?") for n in res.names]
    cross, within = [], []
    for i in range(len(res.names)):
        for j in range(i + 1, len(res.names)):
            (cross if fam[i] != fam[j] else within).append(res.js[i, j])
    if not cross or not within:
        verdict = "not comparable"
        measured = "Needs models of both families and two of one family to compare distances."
    else:
        cross_m, within_m = float(np.mean(cross)), float(np.mean(within))
        alike = cross_m <= 1.25 * within_m
        verdict = "agrees" if alike else "disagrees"
        measured = (f"Mean JS distance between full-spectrum densities (eigenvalues / λ_max): "
                    f"CNN vs Transformer {cross_m:.3f}, within a family {within_m:.3f} "
                    "(verdict: alike if the first is at most 1.25× the second). "
                    + ("Across families the full spectra are no more different than within one."
                       if alike else "The full spectra do separate CNNs from Transformers here."))
    rows = [{"model": n, "family": FAMILIES.get(n, "?"),
             "lmin": float(res.spectra[n].nodes.min()), "lmax": float(res.spectra[n].nodes.max())}
            for n in res.names]
    table = format_table(rows, [("model", "model", ""), ("family", "family", ""),
                                  ("lmin", "λ_min (Ritz)", ".3g"), ("lmax", "λ_max (Ritz)", ".3g")],
                         markdown=True)
    return Finding(measured, verdict, table)


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
