"""Post-LN / Pre-LN / Admin: output change against depth (Liu et al. 2020, Figure 4 analogue).

Thin layer over :func:`nets.studies.layernorm.perturbation_study` (its ``to_dict()``); drawn by
``python -m figures --only fig_layernorm`` (see figures/nets_specs.py).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from .style import RC, save

LABELS = {"postln": "Post-LN", "preln": "Pre-LN", "admin": "Admin"}


def plot(study: dict, out_dir: Path) -> list[Path]:
    """Two log-log panels (random perturbation, one Adam step) of Δ against depth N."""
    depths = study["depths"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.6))
        for ax, key, fits, title in (
                (axes[0], "random", "fits_random",
                 f"random δ = {study['epsilon']:g}·N(0, I)"),
                (axes[1], "adam_step", "fits_adam", f"one Adam step, lr = {study['lr']:g}")):
            for v, vals in study[key].items():
                a = study[fits][v]["exponent"]
                ax.plot(depths, vals, "o-", label=f"{LABELS.get(v, v)} (α = {a:.2f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("layers N")
            ax.set_ylabel("mean (F(x,W) − F(x,W+δ))²")
            ax.set_title(title)
            ax.legend()
        return save(fig, Path(out_dir), "fig_layernorm")
