"""The model-size ladder: JS0 and the SGD–Adam gap against the parameter count, per family.

Draws the packaged ladder evidence (:data:`nets.studies.predictor.LADDER_EVIDENCE`, written by
``nets predictor runs/ladder/*.json --write-evidence nets/studies/evidence_ladder.json`` from
``nets ladder --json`` records; docs/studies.md) and owns the report entry ``SPEC``
(``python -m figures --only fig_ladder``). It computes nothing heavy: the ladder itself runs
for hours (its own documented command), so every profile reads the same file, and the file's
SHA-256 is part of the settings (so the figure cache follows the evidence).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from labkit.jsonio import as_float
from labkit.tables import format_table
from nets.studies.correlation import spearman
from nets.studies.predictor import LADDER_EVIDENCE, load_ladder_evidence, merge_records
from nets.zoo.families import LADDER_FAMILIES, LADDERS

from .registry import FigureSpec, Finding
from .style import PALETTE, RC, save
from .verdict import Part, combine, exceeds, explain, groups_ordered

#: The JS0 recipe drawn and judged (every recipe is in the evidence's records).
RECIPE = "log"
TRANSFORMERS = ("gpt", "bert", "vit", "hf-gpt2", "hf-bert", "hf-vit")
CNNS = ("resnet", "vgg", "hf-resnet")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


def _point(r: dict) -> dict:
    js = r["js0"].get(RECIPE, {})
    gaps = {}
    for b, g in (r.get("gap") or {}).items():
        gaps[str(b)] = {"gap": as_float(g["gap"]), "sgd_seed_std": as_float(g["sgd_seed_std"]),
                        "adam_seed_std": as_float(g["adam_seed_std"]),
                        "sgd_at_edge": bool(g["sgd_at_edge"]),
                        "adam_at_edge": bool(g["adam_at_edge"]), "seeds": int(g["seeds"])}
    return {"family": r["family"], "size": int(r["size"]), "name": r["name"],
            "profile": r["profile"], "parameters": int(r["parameters"]),
            "js0": as_float(js.get("value", math.nan)),
            "js0_low": as_float(js.get("low", math.nan)),
            "js0_high": as_float(js.get("high", math.nan)), "gaps": gaps,
            "gap_skipped": r.get("gap_skipped")}


def compute(*, evidence: str, digest: str, progress=None) -> dict:
    """The ladder points of the evidence file (one per rung) and its predictor validation.

    Args:
        evidence: Path of the evidence file; a relative one is relative to the folder that
            holds the ``nets`` package (so the settings, the cache key and the report name no
            checkout's own folder).
        digest: Its SHA-256 prefix when the settings were made (checked: a cache key).
        progress: Unused (the figure only reads a file).
    """
    path = _PACKAGES_ROOT / evidence
    if _digest(path) != digest:
        raise ValueError(f"{path} changed after the figure settings were made; rerun")
    doc = load_ladder_evidence(path)
    points = [_point(r) for r in merge_records(doc["records"])]
    planned = {f: len(LADDERS["ladder"][f]) for f in LADDER_FAMILIES}
    return {"points": points, "validation": doc["validation"], "planned": planned,
            "batch_sizes": sorted({int(b) for p in points for b in p["gaps"]})}


def plot(res: dict, out_dir: Path) -> list[Path]:
    """Left: JS0 against parameters (bootstrap intervals); right: gap at each batch size."""
    sizes = res["batch_sizes"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 1 + max(1, len(sizes)), figsize=(5 * (1 + max(1, len(sizes))),
                                                                      3.8), squeeze=False)
        axes = axes[0]
        for k, fam in enumerate(f for f in LADDER_FAMILIES
                                if any(p["family"] == f for p in res["points"])):
            pts = sorted((p for p in res["points"] if p["family"] == fam),
                         key=lambda p: p["parameters"])
            if not pts:
                continue
            c = PALETTE[k % len(PALETTE)]
            x = [p["parameters"] for p in pts]
            y = np.array([p["js0"] for p in pts])
            err = np.array([[p["js0"] - p["js0_low"] for p in pts],
                            [p["js0_high"] - p["js0"] for p in pts]])
            axes[0].errorbar(x, y, yerr=np.nan_to_num(err), fmt="o-", color=c, ms=4,
                             capsize=2, label=fam)
            for ax, b in zip(axes[1:], sizes, strict=False):
                g = [(p["parameters"], p["gaps"][str(b)]) for p in pts if str(b) in p["gaps"]]
                if g:
                    ax.errorbar([v for v, _ in g], [d["gap"] for _, d in g],
                                yerr=[d["sgd_seed_std"] if math.isfinite(d["sgd_seed_std"])
                                      else 0.0 for _, d in g],
                                fmt="o-", color=c, ms=4, capsize=2, label=fam)
        axes[0].set_xscale("log")
        axes[0].set_xlabel("parameters")
        axes[0].set_ylabel(f"JS0 ({RECIPE} recipe)")
        axes[0].set_title("block heterogeneity at initialization")
        axes[0].legend(ncol=2)
        for ax, b in zip(axes[1:], sizes, strict=False):
            ax.set_xscale("log")
            ax.axhline(math.log(1.5), color="0.5", ls=":", lw=1)
            ax.set_xlabel("parameters")
            ax.set_ylabel("gap ln(L_SGD / L_Adam)")
            ax.set_title(f"tuned SGD–Adam gap, B = {b} (measured sizes only)")
        if not sizes:
            axes[1].text(0.5, 0.5, "no gap measured", ha="center", transform=axes[1].transAxes)
        fig.tight_layout()
        return save(fig, Path(out_dir), "fig_ladder")


def draw(res: dict, out_dir: Path) -> list[Path]:
    return plot(res, out_dir)


def _interval(p: dict) -> tuple[float, float]:
    return (p["js0_low"], p["js0_high"])


def _order_part(res: dict, size: int) -> Part:
    pts = [p for p in res["points"] if p["size"] == size]
    above = [(_interval(p), p["family"]) for p in pts if p["family"] in TRANSFORMERS]
    below = [(_interval(p), p["family"]) for p in pts if p["family"] in CNNS]
    t, c = {f for _, f in above}, {f for _, f in below}
    return groups_ordered(f"at ladder size {size}, every Transformer ({', '.join(sorted(t))}) "
                          f"has a larger JS0 than every CNN ({', '.join(sorted(c))})",
                          [a for a, _ in above], [b for b, _ in below])


def _spearman_part(name: str, x: list[float], y: list[float], seed: int) -> tuple[Part, str]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Part(name, "not measurable", f"{x.size} usable points (4 needed)"), "n/a"
    s = spearman(x, y, rng=np.random.default_rng(seed), n_boot=2000)
    return (exceeds(name, s.low, s.high, what=f"Spearman rho {s.rho:+.2f} (n = {s.n}), "
                    "95% bootstrap interval"), f"{s.rho:+.2f} [{s.low:+.2f}, {s.high:+.2f}]")


def findings(res: dict) -> Finding:
    """Parts: (1) at the smallest and at the largest size every family of the evidence has JS0
    at, the
    Transformers' JS0 exceeds the CNNs' beyond the bootstrap intervals; (2) the families' JS0
    ranking at the smallest size predicts their ranking at the largest size where at least 4
    families have JS0 (Spearman ρ > 0 beyond its interval): the tiny-model ordering holds as
    the models grow; (3) over every measured
    (JS0, gap) point at the largest batch size whose tuned rates are inside their grids,
    Spearman ρ > 0 beyond its interval; (4) the
    predictor chosen on the selection families ranks the held-out families' gaps (Spearman ρ
    on the held-out points > 0 beyond its interval; not measurable with < 3 points)."""
    pts = res["points"]
    by = {(p["family"], p["size"]): p for p in pts}
    sizes = sorted({p["size"] for p in pts})
    fams = [f for f in LADDER_FAMILIES if any(p["family"] == f for p in pts)]
    complete = [s for s in sizes if all((f, s) in by for f in fams)]
    parts = []
    if complete:
        parts.append(_order_part(res, complete[0]))
        if complete[-1] != complete[0]:
            parts.append(_order_part(res, complete[-1]))
    else:
        parts.append(Part("Transformers have larger JS0 than CNNs at one size", "not measurable",
                          "no size has JS0 for every family"))
    rank_note = "n/a"
    lo = sizes[0] if sizes else 0
    # the largest size at which at least 4 families also have JS0 at the smallest size
    pairs = {s: [f for f in fams if (f, lo) in by and (f, s) in by] for s in sizes if s != lo}
    top = max((s for s, fs in pairs.items() if len(fs) >= 4), default=None)
    if top is not None:
        fs = pairs[top]
        part, rank_note = _spearman_part(
            f"the families' JS0 ranking at size {lo} carries over to size {top} "
            f"({len(fs)} families)",
            [by[f, lo]["js0"] for f in fs], [by[f, top]["js0"] for f in fs], 11)
        parts.append(part)
    else:
        parts.append(Part("the families' JS0 ranking carries over to larger sizes",
                          "not measurable", "fewer than 4 families have JS0 at two sizes"))
    b = res["batch_sizes"][-1] if res["batch_sizes"] else None
    gap_pts = [p for p in pts if b is not None and str(b) in p["gaps"]]
    # a tuned rate at its grid's edge leaves the gap unknown (the grid may be too narrow)
    inner = [p for p in gap_pts if not (p["gaps"][str(b)]["sgd_at_edge"]
                                        or p["gaps"][str(b)]["adam_at_edge"])]
    corr_part, corr_note = _spearman_part(
        f"JS0 ranks the tuned gap over the measured points with both tuned rates inside "
        f"their grids (B = {b})",
        [p["js0"] for p in inner], [p["gaps"][str(b)]["gap"] for p in inner], 12)
    parts.append(corr_part)
    val = res["validation"]
    best = val.get("best")
    ho = (val["candidates"].get(best) or {}).get("held_out", {}) if best else {}
    sp = ho.get("spearman")
    name = f"the predictor chosen on the selection families ({best}) ranks the held-out gaps"
    if not sp:
        parts.append(Part(name, "not measurable", f"{ho.get('n', 0)} held-out points with a "
                          "measured gap (3 needed)"))
    else:
        parts.append(exceeds(name, as_float(sp["low"]), as_float(sp["high"]),
                             what=f"held-out Spearman rho {as_float(sp['rho']):+.2f} "
                                  f"(n = {sp['n']}), 95% interval"))
    n_planned = sum(res["planned"].values())
    # does the ordering strengthen or weaken? the Transformer-CNN separation per complete size
    seps = []
    for sz in complete:
        tj = [by[f, sz]["js0"] for f in fams if f in TRANSFORMERS]
        cj = [by[f, sz]["js0"] for f in fams if f in CNNS]
        if tj and cj:
            seps.append(f"size {sz}: {min(tj) - max(cj):+.3f}")
    per_size = []
    for sz in sizes:
        inner_s = [p for p in inner if p["size"] == sz]
        if len(inner_s) >= 4:
            _, note = _spearman_part("", [p["js0"] for p in inner_s],
                                     [p["gaps"][str(b)]["gap"] for p in inner_s], 13 + sz)
            per_size.append(f"size {sz}: {note} (n = {len(inner_s)})")
    fam_note = ", ".join(fams) or "none"
    gap_names = [p["name"] for p in gap_pts]
    js_only = [p["name"] for p in pts if not p["gaps"]]
    missing = [f"{f}[{s}]" for f, n in res["planned"].items() for s in range(n)
               if (f, s) not in by]
    acc = as_float(ho.get("accuracy", math.nan)) if best else math.nan
    measured = (
        f"{explain(parts)} Measured: JS0 ({RECIPE} recipe) at {len(pts)} of {n_planned} "
        f"ladder rungs, the gap at {len(gap_names)} ({', '.join(gap_names) or 'none'}; "
        f"{len(gap_names) - len(inner)} of them with a tuned rate at a grid edge at B = {b}); "
        f"JS0 only at {', '.join(js_only) or 'none'}; not run: {', '.join(missing) or 'none'}. "
        f"Families with any point: {fam_note}; sizes with JS0 for each of them: "
        f"{complete or 'none'}. Rank carry-over of the families' JS0 from the smallest size to "
        f"the largest with at least 4 families: {rank_note}; JS0–gap rank "
        f"correlation over the measured points: {corr_note}; per size: "
        f"{'; '.join(per_size) or 'fewer than 4 points at every size'}. Separation of the "
        f"groups (smallest Transformer JS0 minus largest CNN JS0; positive: ordered as the "
        f"paper says, growing: strengthening): {'; '.join(seps) or 'n/a'}. Best predictor on "
        f"the selection "
        f"families: {best}, held-out accuracy of its 'SGD lags' call "
        f"{acc:.2f} on {ho.get('n', 0)} points.")
    rows = []
    for p in sorted(pts, key=lambda p: (p["family"], p["size"])):
        row = {"rung": p["name"], "params": p["parameters"], "js0": p["js0"],
               "ci": f"[{p['js0_low']:.3f}, {p['js0_high']:.3f}]"}
        for bb in res["batch_sizes"]:
            g = p["gaps"].get(str(bb))
            row[f"g{bb}"] = ("JS0 only" if g is None else f"{g['gap']:+.2f}" +
                             (" (edge)" if g["sgd_at_edge"] or g["adam_at_edge"] else ""))
        rows.append(row)
    cols = [("rung", "rung", ""), ("params", "parameters", "d"), ("js0", "JS0", ".3f"),
            ("ci", "95% interval", "")]
    cols += [(f"g{bb}", f"gap B={bb}", "") for bb in res["batch_sizes"]]
    return Finding(measured, combine(parts), format_table(rows, cols, markdown=True),
                   tuple(parts))


#: The folder that holds the ``nets`` package: relative evidence paths start there.
_PACKAGES_ROOT = LADDER_EVIDENCE.parents[2]
_SETTINGS = {"evidence": LADDER_EVIDENCE.relative_to(_PACKAGES_ROOT).as_posix(),
             "digest": _digest(LADDER_EVIDENCE)}

SPEC = FigureSpec(
    name="fig_ladder",
    title="Model-size ladder — JS0 and the SGD–Adam gap as models grow",
    claim=("Transformers are block-heterogeneous (large JS0) and CNNs are not, and JS0 at "
           "initialization predicts how much SGD lags Adam; the paper shows it at 10⁷–10⁸ "
           "parameters, our other figures at 10⁴. Do the orderings and correlations seen on "
           "tiny models hold, strengthen or reverse as the models grow?"),
    caption=(f"The {len(LADDER_FAMILIES)} ladder families (the zoo's and the Hugging Face "
             "ones) on real data (Shakespeare words, sklearn digits), four sizes each from ~4k "
             "to ~1M parameters (the ladder profile; the rungs measured are listed below): JS0 "
             "with its bootstrap interval "
             "over probes, and the tuned SGD-momentum vs Adam gap (seed spread as error bars) at "
             "the sizes where it was measured. Read from the packaged ladder evidence."),
    settings={"tiny": _SETTINGS, "quick": _SETTINGS, "full": _SETTINGS},
    packages=("nets",),
    compute=compute,
    draw=draw,
    findings=findings,
)
