"""Figures 3 and 4: blockwise Hessian spectra at initialization, and the JS distances between them.

Numbers from `nets.blockwise_spectrum` (SLQ), `nets.js_matrix` and `nets.js0`; `plot` only
draws. One computation feeds both figures (Figure 3: four blocks per model, each normalized by
its 10th-largest eigenvalue as in the paper — or its largest where a block has rank < 10;
Figure 4: the JS distance matrix of every model).
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
from .style import PALETTE, RC, save
from .verdict import Part, combine, explain, groups_ordered

#: Bootstrap resamples over probes for each JS0 interval.
N_BOOT = 100
#: Every recipe JS0 is given under: `nets.RECIPES`, and `nets.CHECK_RECIPES` beside them (the
#: log recipe at a zero threshold float32 products resolve).
RECIPES = {**nets.RECIPES, **nets.CHECK_RECIPES}


@dataclass(frozen=True)
class Blockwise:
    """Blockwise SLQ spectra per model, their JS matrices and JS0 (default log recipe), and JS0
    with a bootstrap interval under every recipe of :data:`RECIPES`."""

    spectra: dict  # model -> {block: BlockSpectrum}
    js: dict  # model -> (names, matrix)
    js0: dict  # model -> float
    intervals: dict  # recipe -> model -> (js0, low, high), or None where the recipe fails


def compute(*, models: tuple[str, ...], steps: int, probes: int, seed: int,
            progress=None) -> Blockwise:
    """Blockwise SLQ of each zoo model (one block per parameter tensor) at initialization."""
    spectra, js, js0 = {}, {}, {}
    intervals: dict = {k: {} for k in RECIPES}
    recipe = nets.DensityRecipe()
    for name in models:
        model, loss_fn, data = zoo.load(name, seed=seed)
        spectra[name] = nets.blockwise_spectrum(model, loss_fn, data, lanczos_steps=steps,
                                                probes=probes, seed=seed)
        js[name] = nets.js_matrix(spectra[name], recipe)
        js0[name] = nets.js0(spectra[name], recipe)
        for k, rec in RECIPES.items():
            try:
                est = nets.js0_bootstrap(spectra[name], rec, n_boot=N_BOOT,
                                         rng=np.random.default_rng([seed, 777]))
                intervals[k][name] = (est.value, est.low, est.high)
            except ValueError:
                intervals[k][name] = None
        if progress is not None:
            progress(name)
    return Blockwise(spectra, js, js0, intervals)


def representative_blocks(spectra: dict, k: int = 4) -> list[str]:
    """k weight matrices spread evenly through the network (first, …, last)."""
    weights = [n for n, s in spectra.items() if n.endswith("weight") and s.dim >= 16]
    weights = weights or list(spectra)
    idx = np.unique(np.linspace(0, len(weights) - 1, min(k, len(weights))).round().astype(int))
    return [weights[i] for i in idx]


def _normalized(spec) -> tuple[np.ndarray, str]:
    for k in (10, 1):
        try:
            return spec.nodes / nets.kth_largest_eigenvalue(spec, k), f"λ{k}"
        except ValueError:
            continue
    return spec.nodes / np.abs(spec.nodes).max(), "max|λ|"


def plot(res: Blockwise, out_dir: Path) -> list[Path]:
    """Figure 3 (densities of 4 blocks per model) and Figure 4 (JS heat maps)."""
    models = list(res.spectra)
    paths = []
    with plt.rc_context(RC):
        fig, axes = plt.subplots(len(models), 4, figsize=(12, 2.3 * len(models)), squeeze=False)
        for row, m in zip(axes, models, strict=True):
            chosen = representative_blocks(res.spectra[m])
            for ax, (name, color) in zip(row, zip(chosen, PALETTE, strict=False), strict=False):
                spec = res.spectra[m][name]
                nodes, by = _normalized(spec)
                lo, hi = float(nodes.min()), float(nodes.max())
                pad = 0.05 * (hi - lo + 1e-12)
                grid = np.linspace(lo - pad, hi + pad, 600)
                dens = nets.spectral_density(nodes, spec.weights, grid, 0.01 * (hi - lo + 1e-12))
                ax.semilogy(grid, np.maximum(dens, 1e-6), color=color)
                ax.set_title(f"{m}: {name}", fontsize=8)
                ax.set_xlabel(f"eigenvalue / {by}", fontsize=8)
                ax.set_ylim(1e-4, None)
            for ax in row[len(chosen):]:
                ax.set_visible(False)
        fig.suptitle("Blockwise Hessian spectra at initialization (4 blocks per model)")
        fig.tight_layout()
        paths += save(fig, out_dir, "fig3_blockwise_spectra")

        ncols = min(3, len(models))
        nrows = int(np.ceil(len(models) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False)
        for ax, m in zip(axes.flat, models, strict=False):
            names, mat = res.js[m]
            im = ax.imshow(mat, vmin=0, vmax=1, cmap="magma", interpolation="nearest")
            ax.set_title(f"{m} ({family(m)}): JS0 = {res.js0[m]:.3f}")
            ax.set_xlabel(f"block (of {len(names)})")
            ax.set_ylabel("block")
            ax.grid(False)
        for ax in list(axes.flat)[len(models):]:
            ax.set_visible(False)
        fig.colorbar(im, ax=axes, shrink=0.7, label="JS distance")
        paths += save(fig, out_dir, "fig4_js_distances")
    return paths


def family_part(by_model: dict) -> Part:
    """JS0 is larger for every Transformer than for every CNN, beyond the bootstrap intervals."""
    return groups_ordered("JS0 (blockwise heterogeneity) is larger for Transformers than CNNs",
                          [v[1:] for m, v in by_model.items()
                           if v is not None and family(m) == "Transformer"],
                          [v[1:] for m, v in by_model.items()
                           if v is not None and family(m) == "CNN"])


def findings(res: Blockwise) -> Finding:
    """Figures 3 and 4 make one claim: the blocks of Transformers differ more than those of CNNs
    (JS0, bootstrap intervals over probes), judged under the default log recipe; the outcome
    under the other recipes is reported beside it (recipe invariance)."""
    parts = [family_part(res.intervals["log"])]
    others = "; ".join(f"{k}: {family_part(v).outcome}" for k, v in res.intervals.items()
                       if k != "log")
    rows = []
    for m in res.js0:
        zero = nets.numerically_zero_blocks(res.spectra[m])
        # the blocks a check recipe's coarser threshold leaves out besides
        more = sorted({b for rec in nets.CHECK_RECIPES.values()
                       for b in nets.numerically_zero_blocks(res.spectra[m], rec)} - set(zero))
        row = {"model": m, "family": family(m), "blocks": len(res.spectra[m]),
               "zero": ", ".join(zero) or "none", "more": ", ".join(more) or "none"}
        for k, v in res.intervals.items():
            row[k] = "n/a" if v.get(m) is None else f"{v[m][0]:.3f} [{v[m][1]:.3f}, {v[m][2]:.3f}]"
        rows.append(row)
    table = format_table(rows, [("model", "model", ""), ("family", "family", ""),
                                ("blocks", "blocks", "d"), ("zero", "numerically zero", ""),
                                ("more", "also zero at the check threshold", "")]
                         + [(k, f"JS0 {k} [95%]", "") for k in res.intervals], markdown=True)
    measured = (explain(parts) + f" Under the other recipes the same part: {others}. JS0 "
                "averages over every parameter tensor except numerically zero blocks (every "
                "|λ| within the zero threshold, by default float32's epsilon times the largest; "
                f"{' and '.join(map(repr, nets.CHECK_RECIPES))} raises it to a level float32 "
                "products resolve, benchmarks/results/numerics.md: a JS0 carried by round-off "
                "differs there). The log recipe is the default because it alone has the "
                "properties a heterogeneity measure needs (tests/nets/test_density_recipes.py): "
                "an unrelated block does not move the distance between two others, a block and "
                "its 100× copy are far apart, identical spectra give 0 (see "
                "nets.engine.density).")
    return Finding(measured, combine(parts), table, tuple(parts))


SPEC = FigureSpec(
    name="fig34_blockwise",
    title="Figures 3 and 4 — blockwise spectra differ across blocks in Transformers, not in CNNs",
    claim=("The spectra of the principal diagonal Hessian blocks differ strongly from block to "
           "block in Transformers (block heterogeneity) and are similar in CNNs; the JS "
           "distances between block densities (Figure 4) are larger in Transformers."),
    caption=("Figure 3: SLQ densities of four weight blocks per model, each divided by its "
             "10th-largest eigenvalue (largest where rank < 10). Figure 4: JS distance between "
             "every pair of blocks (density recipe: the default log recipe, nets.engine.density)."),
    settings={"tiny": {"models": ("mlp",), "steps": 6, "probes": 2, "seed": 0},
              "quick": {"models": ("resnet", "vgg", "gpt", "bert", "vit", "mixer"),
                        "steps": 25, "probes": 5, "seed": 0},
              "full": {"models": ("resnet", "vgg", "mlp", "gpt", "bert", "vit", "mixer"),
                       "steps": 100, "probes": 10, "seed": 0}},
    packages=("nets",),
    compute=compute,
    draw=plot,
    findings=findings,
)
