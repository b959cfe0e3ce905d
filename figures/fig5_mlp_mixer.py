"""Figure 5 analogue: (a) the scaled MLP, (b) MLP-mixer blockwise spectra, (c) its gap.

This module owns the figure's spec (settings and verdict rule). The drawing takes (a) from
``nets hetero --json`` (a :class:`nets.studies.table1.Table1` document with the
scalings), (b) from a blockwise spectrum file of ``nets spectrum --model mixer --blocks``
(:func:`nets.engine.results.load_spectra`, densities by :func:`nets.block_densities`), (c) from the
mixer's row of ``nets table1 --json``. Usage::

    python -m figures.fig5_mlp_mixer runs/hetero.json runs/mixer-spectra.json runs/table1.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from nets.engine.density import block_densities
from nets.engine.results import load_spectra
from nets.engine.spectrum import blockwise_spectrum
from nets.studies.gap import GapReport, measure_gap
from nets.studies.table1 import Table1, table1
from nets.studies.tasks import scaled_mlp_task, zoo_task
from nets.zoo import models as zoo

from .budgets import FIG5_QUICK, TINY_PROFILE, gap_profile
from .gapstats import describe, gap_difference_part, gap_part
from .registry import FigureSpec, Finding
from .style import PALETTE, RC, save
from .verdict import combine, explain, groups_ordered


def plot(hetero: dict, out_dir: Path, *, mixer_spectra: dict | None = None,
         mixer_report: dict | None = None, max_blocks: int = 6) -> list[Path]:
    """Draw the available panels.

    Args:
        hetero: ``Table1.to_dict()`` of the ``mlp-s{S}`` tasks (plus ``"scales"``).
        out_dir: Folder for fig5_mlp_mixer.png/.pdf.
        mixer_spectra: ``{block: BlockSpectrum}`` of the mixer (panel b).
        mixer_report: The mixer's ``GapReport.to_dict()`` (panel c).
        max_blocks: Blocks drawn in panel b (the largest weight matrices).
    """
    panels = 1 + (mixer_spectra is not None) + (mixer_report is not None)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, panels, figsize=(4.8 * panels, 3.6), squeeze=False)
        fig.subplots_adjust(wspace=0.55)  # room for panel (a)'s twin JS0 axis
        ax = axes[0][0]
        s_vals = [float(r["task"].split("-s")[1]) for r in hetero["rows"]]
        sizes = sorted(int(b) for b in hetero["spearman"])
        for k, b in enumerate(sizes):
            ax.plot(s_vals, [r.get(f"rel_gap_b{b}") for r in hetero["rows"]], "o-",
                    color=PALETTE[k], label=f"Δ train, B={b}")
            held = [r.get(f"heldout_rel_gap_b{b}") for r in hetero["rows"]]
            if all(h is not None for h in held):
                ax.plot(s_vals, held, "o--", mfc="none", color=PALETTE[k],
                        label=f"Δ held-out, B={b}")
        ax.set_xscale("log")
        ax.set_xlabel("layer-scale spread S")
        ax.set_ylabel("gap Δ = (L_SGD − L_Adam) / L₀")
        tw = ax.twinx()
        tw.plot(s_vals, [r["js0"] for r in hetero["rows"]], "s:", color="0.3", label="JS0")
        tw.set_ylabel("JS0")
        tw.grid(False)
        ax.legend(loc="upper left")
        tw.legend(loc="lower right")
        ax.set_title("(a) MLP, layers scaled by S^(−1,−1/3,1/3,1)")
        i = 1
        if mixer_spectra is not None:
            ax = axes[0][i]
            i += 1
            names = sorted((n for n in mixer_spectra if n.endswith("weight")),
                           key=lambda n: -mixer_spectra[n].dim)[:max_blocks]
            grid, dens, _ = block_densities({n: mixer_spectra[n] for n in names})
            for k, n in enumerate(names):
                ax.plot(grid, np.maximum(dens[n], 1e-12), color=PALETTE[k % len(PALETTE)],
                        label=n, lw=1.1)
            ax.set_yscale("log")
            ax.set_ylim(1e-4, None)
            ax.set_xlabel("sign(λ)·log10(|λ|/τ)  (decades above the zero threshold τ)")
            ax.set_ylabel("density")
            ax.set_title("(b) MLP-mixer blockwise spectra at init")
            ax.legend(fontsize=6.5)
        if mixer_report is not None:
            ax = axes[0][i]
            r = mixer_report["results"][-1]
            for opt, c in (("sgd", PALETTE[1]), ("adam", PALETTE[0])):
                ax.plot(r[opt]["eval_steps"], r[opt]["curve"], color=c,
                        label=f"{opt.upper()} lr={r[opt]['lr']:g}")
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.set_title(f"(c) MLP-mixer, B={r['batch_size']}, Δ {r['rel_gap']:+.2f}")
            ax.legend()
        return save(fig, Path(out_dir), "fig5_mlp_mixer")


@dataclass(frozen=True)
class HeteroMixer:
    """Figure 5's data: Table 1 of the scaled MLPs, and the mixer's spectra and gap report."""

    scaled: Table1
    scales: tuple[float, ...]
    mixer_spectra: dict
    mixer_report: GapReport


def compute(*, scales, profile, mixer_steps: int, mixer_probes: int,
            progress=None) -> HeteroMixer:
    """Scaled MLPs (layer scales S^(-1, -1/3, 1/3, 1), see `nets.zoo.scaled_mlp`) and MLP-mixer."""
    prof = gap_profile(profile)
    scaled = table1([scaled_mlp_task(s) for s in scales], prof, progress=progress)
    model, loss_fn, data = zoo.load("mixer", seed=0)
    spectra = blockwise_spectrum(model, loss_fn, data, lanczos_steps=mixer_steps,
                                 probes=mixer_probes, seed=0)
    return HeteroMixer(scaled, tuple(scales), spectra,
                       measure_gap(zoo_task("mixer"), prof, progress=progress))


def draw(res: HeteroMixer, out_dir: Path) -> list[Path]:
    return plot(res.scaled.to_dict(), out_dir, mixer_spectra=res.mixer_spectra,
                mixer_report=res.mixer_report.to_dict())


def findings(res: HeteroMixer) -> Finding:
    """Parts: (1) JS0 at the largest S exceeds JS0 at the smallest beyond the bootstrap
    intervals; (2) per batch size, the gap at the largest S exceeds the gap at the smallest
    beyond the seeds' spread; (3) the mixer's JS0 exceeds the unscaled MLP's (its homogeneous
    baseline); (4) per batch size, SGD lags Adam on the mixer beyond the seeds' spread. Gaps
    are the bounded Adam − SGD relative loss reduction on the training pool, per seed
    (`figures.gapstats`); runs that did not train make a part "not measurable"."""
    first, last = res.scaled.reports[0], res.scaled.reports[-1]
    mixer = res.mixer_report
    parts = [groups_ordered(f"JS0 grows from S = {res.scales[0]:g} to S = {res.scales[-1]:g}",
                            [(last.js0_low, last.js0_high)], [(first.js0_low, first.js0_high)])]
    for a, b in zip(last.results, first.results, strict=True):
        parts.append(gap_difference_part(
            f"at B = {a.batch_size}, SGD lags Adam more at S = {res.scales[-1]:g} than at "
            f"S = {res.scales[0]:g}", a, b))
    parts.append(groups_ordered("the MLP-mixer's JS0 exceeds the unscaled MLP's",
                                [(mixer.js0_low, mixer.js0_high)],
                                [(first.js0_low, first.js0_high)]))
    parts += [gap_part(f"at B = {r.batch_size}, SGD lags Adam on the MLP-mixer", r)
              for r in mixer.results]
    measured = (explain(parts) + " JS0 over S: " + " → ".join(
        f"{rep.js0:.3f} [{rep.js0_low:.3f}, {rep.js0_high:.3f}]" for rep in res.scaled.reports)
        + f"; mixer {mixer.js0:.3f} [{mixer.js0_low:.3f}, {mixer.js0_high:.3f}]. Gaps: "
        + " | ".join(f"{rep.task}: {describe(rep.results)}"
                     for rep in (*res.scaled.reports, mixer)) + ".")
    return Finding(measured, combine(parts), parts=tuple(parts))


SPEC = FigureSpec(
    name="fig5_mlp_mixer",
    title="Figure 5 — dialling heterogeneity up in an MLP; the MLP-mixer",
    claim=("Scaling the layers of a 4-layer MLP makes its blockwise spectra heterogeneous and "
           "SGD falls further behind Adam as the scaling grows; the MLP-mixer's initial Hessian is "
           "block-heterogeneous and SGD lags Adam on it."),
    caption=("(a) bounded gap Δ = (L_SGD − L_Adam)/L₀ (solid: training pool, dashed: held-out) "
             "and JS0 of the MLP with layer scales S^(-1, -1/3, 1/3, 1); (b) blockwise "
             "spectra of the MLP-mixer; (c) its tuned training curves."),
    settings={"tiny": {"scales": (1, 10), "profile": TINY_PROFILE, "mixer_steps": 3,
                       "mixer_probes": 1},
              "quick": {"scales": (1, 3, 10, 30), "profile": FIG5_QUICK, "mixer_steps": 20,
                        "mixer_probes": 3},
              "full": {"scales": (1, 3, 10, 30), "profile": "full", "mixer_steps": 100,
                       "mixer_probes": 10}},
    packages=("nets",),
    compute=compute,
    draw=draw,
    findings=findings,
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 3:
        print(__doc__)
        return 2
    hetero = json.loads(Path(argv[0]).read_text())
    spectra = load_spectra(argv[1]).spectra if len(argv) > 1 else None
    report = None
    if len(argv) > 2:
        table = json.loads(Path(argv[2]).read_text())
        report = next((r for r in table["reports"] if r["task"] == "mixer"), None)
    out = Path(__file__).resolve().parent / "out"
    paths = plot(hetero, out, mixer_spectra=spectra, mixer_report=report)
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
