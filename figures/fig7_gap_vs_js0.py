"""Figure 7 analogue: the tuned SGD–Adam gap against JS0, one panel per batch size.

Thin layer: the numbers come from :func:`nets.studies.table1.table1` (its ``to_dict()``, which is
what
``nets table1 --json`` prints); this module only draws them. Usage::

    nets table1 --profile default --json > runs/table1.json
    python -m figures.fig7_gap_vs_js0 runs/table1.json [more tables (e.g. nets hetero --json)]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from .style import PALETTE, RC, save


def plot(table: dict, out_dir: Path, *, extra: Sequence[dict] = ()) -> list[Path]:
    """Scatter of gap ``ln(L_SGD / L_Adam)`` against JS0 (with its bootstrap interval).

    Args:
        table: ``Table1.to_dict()`` of the main set (the zoo), annotated with Spearman ρ.
        out_dir: Folder for fig7_gap_vs_js0.png/.pdf.
        extra: More ``Table1.to_dict()`` documents drawn in another colour (e.g. scaled MLPs).
    """
    sizes = sorted(int(b) for b in table["spearman"])
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 3.8), squeeze=False)
        for ax, b in zip(axes[0], sizes, strict=True):
            for k, doc in enumerate((table, *extra)):
                for r in doc["rows"]:
                    g = r.get(f"gap_b{b}")
                    if g is None:
                        continue
                    lo, hi = r["js0_low"], r["js0_high"]
                    ax.errorbar([r["js0"]], [g], xerr=[[r["js0"] - lo], [hi - r["js0"]]],
                                fmt="o", color=PALETTE[k % len(PALETTE)], ms=5, capsize=2)
                    ax.annotate(r["task"], (r["js0"], g), textcoords="offset points",
                                xytext=(4, 3), fontsize=7.5)
            sp = table["spearman"].get(str(b))
            title = f"batch size {b}"
            if sp:
                lo, hi = sp["interval95_bootstrap"]
                title += (f"\nSpearman ρ = {sp['rho']:+.2f} (95% [{lo:+.2f}, {hi:+.2f}], "
                          f"n={sp['n']})")
            ax.set_title(title)
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xlabel("JS0 at initialization")
            ax.set_ylabel("gap ln(L_SGD / L_Adam)")
        return save(fig, Path(out_dir), "fig7_gap_vs_js0")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    docs = [json.loads(Path(p).read_text()) for p in argv]
    out = Path(__file__).resolve().parent / "out"
    print("\n".join(str(p) for p in plot(docs[0], out, extra=docs[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
