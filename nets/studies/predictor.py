r"""Which statistic of the initial Hessian predicts the SGD–Adam gap? Candidates and a protocol
fixed before measuring, validated on models it never saw.

**Candidates** (all from the same blockwise SLQ spectra at initialization):

* ``js0:<recipe>`` — the paper's JS0 under each named density recipe of
  :data:`nets.engine.density.RECIPES` (``log``, ``linear``, ``lambda1``, ``lambda10``).
* ``logmax_spread`` — the standard deviation over blocks of ``log10 λ_max,l`` (how far apart
  the block scales are), ``λ_max,l`` the largest Ritz value of block ``l`` over probes.
* ``theorem1`` — the theory's own quantity. Theorem 1 bounds GD's rate by the global condition
  number ``κ`` and Adam's by the blockwise ones, ``r · max_l κ_l``; for a block-diagonal
  Hessian ``κ = max_l λ_max,l / min_l λ_min,l``. At initialization the Hessian is indefinite
  with many near-zero eigenvalues, so ``λ_min,l`` is replaced by the bulk scale ``β_l``, the
  weighted median of ``|θ|`` over the block's Ritz values ``θ`` (quadrature weights):
  ``theorem1 = log10(max_l λ_max,l / min_l β_l) − log10 max_l (λ_max,l / β_l)`` ≥ 0, the
  (log) factor by which the global condition number exceeds the worst block's.

Each candidate comes with an interval for the probe noise (the same bootstrap over probes and
Student-t interval as :func:`nets.engine.js.js0_bootstrap`).

**Protocol** (:data:`PROTOCOL`, fixed in code before any ladder point was measured):

* target: the gap ``ln(L_SGD / L_Adam)`` at the larger of the ladder's two batch sizes; the
  call "SGD will lag" is ``gap > ln 1.5``;
* selection points: every measured rung of the families ``gpt``, ``vit``, ``resnet``, ``mlp``
  and the Hugging Face ``hf-gpt2`` and ``hf-vit``; held out: every rung of ``bert``, ``mixer``,
  ``vgg``, ``hf-bert`` and ``hf-resnet`` (five whole families: two masked LMs, an MLP-mixer
  and two CNNs; the Hugging Face families were added to both sides before any of their rungs
  was measured);
* for each candidate (direction fixed: larger means more lag, as the paper claims), the
  threshold is the midpoint that maximizes the call's accuracy on the selection points;
* metrics on the held-out points: Spearman ρ (bootstrap 95% interval) and the call's accuracy
  at the selected threshold;
* the *best* candidate is chosen on the selection points only (highest accuracy, ties broken
  by Spearman ρ), then reported with its held-out numbers — including when they are poor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.atomic import atomic_write_bytes
from labkit.cache import code_version
from labkit.jsonio import as_float, check_sealed, dumps, load_file, seal
from nets.engine.density import RECIPES
from nets.engine.intervals import probe_interval, probe_resamples
from nets.engine.js import js0, numerically_zero_blocks
from nets.engine.slq import BlockSpectrum
from nets.studies.correlation import spearman

__all__ = ["CANDIDATES", "LADDER_EVIDENCE", "LADDER_EVIDENCE_FIX", "PROTOCOL", "Protocol",
           "block_scale_statistics", "candidate_values", "load_ladder_evidence", "merge_records",
           "validate", "write_ladder_evidence"]

#: The ladder evidence shipped with the package (``nets predictor ... --write-evidence``).
LADDER_EVIDENCE = Path(__file__).resolve().parent / "evidence_ladder.json"
#: How to get a good ladder evidence file back (quoted by every refusal of
#: :func:`load_ladder_evidence`).
LADDER_EVIDENCE_FIX = ("regenerate it with `make ladder` (or `nets predictor runs/ladder/*.json "
                       "--write-evidence PATH`; the packaged file: reinstall the package)")

CANDIDATES = (*(f"js0:{n}" for n in RECIPES), "logmax_spread", "theorem1")


@dataclass(frozen=True)
class Protocol:
    """The validation protocol (see the module docstring)."""

    selection_families: tuple[str, ...] = ("gpt", "vit", "resnet", "mlp", "hf-gpt2", "hf-vit")
    held_out_families: tuple[str, ...] = ("bert", "mixer", "vgg", "hf-bert", "hf-resnet")
    lag_threshold: float = math.log(1.5)
    batch: str = "largest"


PROTOCOL = Protocol()


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    c = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(c, 0.5 * c[-1])])


def block_scale_statistics(spectra: Mapping[str, BlockSpectrum]) -> dict[str, float]:
    """``logmax_spread`` and ``theorem1`` of a set of block spectra (module docstring).

    Numerically zero blocks (:func:`nets.engine.js.numerically_zero_blocks`) and blocks whose
    largest Ritz value or bulk scale is not positive are left out; with fewer than two usable
    blocks both are ``nan``.

    Args:
        spectra: ``{block: BlockSpectrum}`` of one model.

    Returns:
        ``{"logmax_spread": float, "theorem1": float}``.
    """
    zero = set(numerically_zero_blocks(spectra))
    top, bulk = [], []
    for k, s in spectra.items():
        if k in zero:
            continue
        lam = float(s.nodes.max())
        beta = _weighted_median(np.abs(s.nodes).ravel(), s.weights.ravel() / s.probes)
        if lam > 0 and beta > 0 and math.isfinite(lam):
            top.append(lam)
            bulk.append(beta)
    if len(top) < 2:
        return {"logmax_spread": math.nan, "theorem1": math.nan}
    top, bulk = np.log10(top), np.log10(bulk)
    return {"logmax_spread": float(np.std(top)),
            "theorem1": float((top.max() - bulk.min()) - (top - bulk).max())}


def _js0_safe(spectra, recipe) -> float:
    try:
        return js0(spectra, recipe)
    except (ValueError, FloatingPointError):
        return math.nan


def _all(spectra) -> dict[str, float]:
    out = {f"js0:{n}": _js0_safe(spectra, r) for n, r in RECIPES.items()}
    out.update(block_scale_statistics(spectra))
    return out


def candidate_values(spectra: Mapping[str, BlockSpectrum], *, n_boot: int,
                     rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Every candidate with its 95% interval for the probe noise.

    The interval is :func:`nets.engine.intervals.probe_interval` of the bootstrap over probes
    (the Student-t interval with the bootstrap standard error, around the value from all
    probes, JS0's clipped to ``[0, 1]``), the same as :func:`nets.engine.js.js0_bootstrap`'s:
    every distinct resample with its probability where they are at most ``n_boot``
    (:func:`nets.engine.intervals.probe_resamples`), else ``n_boot`` draws.

    A candidate that cannot be computed (e.g. ``lambda10`` on a block of rank < 10, or
    identical block densities under a normalization) is ``nan``, never an exception.

    Args:
        spectra: ``{block: BlockSpectrum}`` with the same number of probes.
        n_boot: Bootstrap resamples (>= 2).
        rng: Explicit numpy generator of the resampling.

    Returns:
        ``{candidate: {"value", "low", "high"}}``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    if len(spectra) < 2:
        raise ValueError("the candidates need at least two blocks")
    p = next(iter(spectra.values())).probes
    point = _all(spectra)
    boots = {k: [] for k in point}
    resamples, weights = probe_resamples(p, n_boot, rng)
    for rows in resamples:
        for k, v in _all({n: s.select(rows) for n, s in spectra.items()}).items():
            boots[k].append(v)
    out = {}
    for k, v in point.items():
        b = np.asarray(boots[k])
        # no interval around an undefined value or from fewer than two finite replicates
        if not (math.isfinite(v) and np.isfinite(b).sum() >= 2):
            out[k] = {"value": v, "low": math.nan, "high": math.nan}
            continue
        iv = probe_interval(v, b, p, bounds=(0.0, 1.0) if k.startswith("js0:") else
                            (-math.inf, math.inf), weights=weights)
        # one probe: no spread, and an unbounded end is no interval
        out[k] = {"value": v, "low": iv.low if math.isfinite(iv.low) else math.nan,
                  "high": iv.high if math.isfinite(iv.high) else math.nan}
    return out


def _threshold(x: np.ndarray, lag: np.ndarray) -> tuple[float, float]:
    """Midpoint threshold (call lag where x > t) of best accuracy; ties: the smallest t."""
    xs = np.unique(x)
    cands = np.concatenate([[xs[0] - 1.0], 0.5 * (xs[1:] + xs[:-1]), [xs[-1] + 1.0]])
    accs = [float(np.mean((x > t) == lag)) for t in cands]
    best = int(np.argmax(accs))
    return float(cands[best]), accs[best]


def _points(records: Sequence[dict], families: Sequence[str], candidate: str, batch: str
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    xs, ys, names = [], [], []
    for r in records:
        if r["family"] not in families:
            continue
        g = (r.get("gap") or {}).get(batch)
        v = as_float(r["candidates"].get(candidate, {}).get("value", math.nan))
        if g is None or not (math.isfinite(as_float(g["gap"])) and math.isfinite(v)):
            continue
        xs.append(v)
        ys.append(as_float(g["gap"]))
        names.append(r["name"])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), names


def _spearman(x, y, seed: int, n_boot: int) -> dict | None:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    s = spearman(x, y, rng=np.random.default_rng(seed), n_boot=n_boot)
    return {"rho": s.rho, "low": s.low, "high": s.high, "n": s.n}


def validate(records: Sequence[dict], protocol: Protocol = PROTOCOL, *, seed: int = 0,
             n_boot: int = 1000) -> dict:
    """Run the protocol on ladder records (:func:`nets.studies.ladder.run_ladder`, as dicts or
    as read back from their JSON, where non-finite numbers are strings).

    Args:
        records: Ladder records with ``family``, ``name``, ``candidates`` and ``gap``.
        protocol: The protocol (default :data:`PROTOCOL`, fixed before measuring).
        seed: Seed of the Spearman bootstraps.
        n_boot: Resamples of each Spearman bootstrap.

    Returns:
        ``{"protocol", "batch_size", "candidates": {name: {"threshold", "selection":
        {"n", "accuracy", "spearman"}, "held_out": {"n", "points", "accuracy",
        "spearman"}}}, "best", "missing"}`` where ``missing`` lists what the protocol needed
        and did not find (e.g. no held-out point with a measured gap).

    Raises:
        ValueError: no record has a measured gap.
    """
    sizes = sorted({int(b) for r in records for b in (r.get("gap") or {})})
    if not sizes:
        raise ValueError("no ladder record has a measured gap: run the ladder with gaps first")
    batch = str(sizes[-1] if protocol.batch == "largest" else int(protocol.batch))
    out: dict = {"protocol": {"selection_families": list(protocol.selection_families),
                              "held_out_families": list(protocol.held_out_families),
                              "lag_threshold": protocol.lag_threshold},
                 "batch_size": int(batch), "candidates": {}, "missing": []}
    for c in CANDIDATES:
        xs, ys, _ = _points(records, protocol.selection_families, c, batch)
        xh, yh, names = _points(records, protocol.held_out_families, c, batch)
        entry: dict = {"threshold": math.nan,
                       "selection": {"n": int(xs.size), "accuracy": math.nan,
                                     "spearman": _spearman(xs, ys, seed, n_boot)},
                       "held_out": {"n": int(xh.size), "points": names, "accuracy": math.nan,
                                    "spearman": _spearman(xh, yh, seed + 1, n_boot)}}
        if xs.size:
            t, acc = _threshold(xs, ys > protocol.lag_threshold)
            entry["threshold"], entry["selection"]["accuracy"] = t, acc
            if xh.size:
                entry["held_out"]["accuracy"] = float(np.mean((xh > t) ==
                                                              (yh > protocol.lag_threshold)))
        out["candidates"][c] = entry

    def rank(c):
        e = out["candidates"][c]["selection"]
        acc = e["accuracy"] if math.isfinite(e["accuracy"]) else -1.0
        return (acc, (e["spearman"] or {}).get("rho", -2.0))

    usable = [c for c in CANDIDATES if out["candidates"][c]["selection"]["n"] > 0]
    out["best"] = max(usable, key=rank) if usable else None
    if not usable:
        out["missing"].append("no selection point with a finite gap and candidate")
    if not any(out["candidates"][c]["held_out"]["n"] for c in CANDIDATES):
        out["missing"].append("no held-out point with a measured gap")
    return out


def merge_records(records: Sequence[dict]) -> list[dict]:
    """One record per rung from records of several ladder runs (e.g. a spectra-only run of
    every size and a later run with gaps at the small sizes).

    Rule: for each rung name, a record with a measured gap wins over one without; among equals,
    the later record in ``records`` wins. The order is by family, then size.

    Args:
        records: Ladder records (:func:`nets.studies.ladder.run_ladder`, or read back from
            ``nets ladder --json``).

    Returns:
        The merged records.

    Raises:
        ValueError: a record without ``name``, ``family`` or ``size``.
    """
    best: dict[str, dict] = {}
    for r in records:
        if not all(k in r for k in ("name", "family", "size")):
            raise ValueError("a ladder record needs 'name', 'family' and 'size' (write records "
                             "with `nets ladder --json`)")
        old = best.get(r["name"])
        if old is None or r.get("gap") is not None or old.get("gap") is None:
            best[r["name"]] = r
    return sorted(best.values(), key=lambda r: (r["family"], int(r["size"])))


def write_ladder_evidence(records: Sequence[Mapping], validation: Mapping,
                          path: str | Path) -> None:
    """Write a ladder evidence file atomically: ``{"validation", "records", "code",
    "checksum"}`` (``code``: the version of the code that validated the records; each record
    carries its own spectra's fingerprint and code version).

    Args:
        records: The merged ladder records (:func:`merge_records`).
        validation: :func:`validate` of them.
        path: Where to write.
    """
    doc = {"validation": validation, "records": list(records),
           "code": code_version(["nets.studies.predictor"])}
    atomic_write_bytes(path, dumps(seal(doc), indent=1).encode())


def load_ladder_evidence(path: str | Path | None = None) -> dict:
    """Read and verify a ladder evidence file (written by :func:`write_ladder_evidence`).

    Args:
        path: The file (default: the packaged :data:`LADDER_EVIDENCE`).

    Returns:
        The document; non-finite numbers stay strings (read them with
        :func:`labkit.jsonio.as_float`).

    Raises:
        ValueError: no such file, not strict JSON, no checksum or one that does not match its
            content (damaged or edited), or not a ladder evidence file; the message names the
            file and :data:`LADDER_EVIDENCE_FIX`.
    """
    path = Path(path) if path is not None else LADDER_EVIDENCE
    doc = load_file(path, LADDER_EVIDENCE_FIX, missing=f"no ladder evidence file at {path}; "
                    "write one with `nets predictor runs/ladder/*.json --write-evidence PATH`")
    if isinstance(doc, dict) and "rows" in doc and "validation" not in doc:
        raise ValueError(f"{path}: not a ladder evidence file (`nets table1` evidence is "
                         f"another format); {LADDER_EVIDENCE_FIX}")
    check_sealed(doc, str(path), LADDER_EVIDENCE_FIX)
    if "validation" not in doc or "records" not in doc:
        raise ValueError(f"{path}: not a ladder evidence file (needs 'validation' and "
                         f"'records'); {LADDER_EVIDENCE_FIX}")
    return doc
