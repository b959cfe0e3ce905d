"""Results files: spectra with their provenance, written atomically, checked and resumed.

A file is strict JSON (:mod:`labkit.jsonio`)::

    {"format": 2, "settings": {...}, "code": "<version>+<hash>", "fingerprint": "<sha256>",
     "versions": {...}, "metadata": {...},
     "blocks": {name: {"dim", "probe_ids", "n_steps", "nodes", "weights"}},
     "checksum": sha256(canonical JSON of everything else)}

``code`` is :func:`labkit.cache.code_version` of the modules that computed the spectra and
``fingerprint`` is :func:`fingerprint` of the model parameters and data batches; ``metadata``
says how it ran (product mode, peak memory, timings: the ``info`` of
:func:`nets.blockwise_spectrum`) and is stored, not compared. Floats are
written with ``repr`` precision, so nodes and weights round-trip exactly. Writes go through
:func:`labkit.atomic.atomic_write_bytes` (temporary file + ``os.replace``; leftovers of a killed
writer are removed on the next write).

:func:`resume_spectra` is the probe loop of a resumable run: it reads the probes already stored
(rank 0 only, under ``torchrun``), validates the file completely — format, checksum, every
requested block present and no other, unique probe ids that are the same in every block and lie
in ``range(probes)``, shapes, finite nodes and non-negative finite weights, and the same
settings, code version and fingerprint — computes the missing probes one at a time and saves
after each. A file that fails a check is refused with the fix ("use --overwrite or another
--out"), never silently mixed with new probes.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch

from labkit import jsonio
from labkit.atomic import atomic_write_bytes, remove_stale_temps
from nets.engine.checks import check_model
from nets.engine.digest import update_digest
from nets.engine.distributed import Communicator
from nets.engine.slq import BlockSpectrum

__all__ = ["FORMAT", "ResultsFileError", "SpectraFile", "check_out_path", "fingerprint",
           "load_metadata", "load_spectra", "resume_spectra", "save_spectra", "versions"]

FORMAT = 2
_FIX = "use --overwrite or another --out"


class ResultsFileError(ValueError):
    """A results file cannot be used (the message names the file, the reason and the fix)."""


@dataclass(frozen=True)
class SpectraFile:
    """The content of a results file.

    Attributes:
        settings: The settings of the run.
        code: Code version of the modules that computed it.
        fingerprint: :func:`fingerprint` of the model parameters and data.
        versions: Library versions (informative, not checked).
        spectra: ``{block name: BlockSpectrum}``.
        metadata: How the run went (informative, not checked).
    """

    settings: dict
    code: str
    fingerprint: str
    versions: dict
    spectra: dict[str, BlockSpectrum]
    metadata: dict


def versions() -> dict[str, str]:
    """Versions of the libraries that produced a result."""
    try:
        own = version("blockhet")
    except PackageNotFoundError:
        own = "unknown"
    return {"blockhet": own, "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def fingerprint(model: torch.nn.Module, data: Sequence[Any]) -> str:
    """SHA-256 of the model's parameters and buffers and of the data batches.

    Every tensor contributes its name (or position), shape, dtype and bytes
    (:func:`nets.engine.digest.update_digest`), so two runs share a fingerprint exactly when
    they measure the Hessian of the same function at the same point.

    Args:
        model: The network (its ``state_dict``: parameters and buffers).
        data: The batches the loss averages over.

    Raises:
        TypeError: ``model`` is not a module, or a batch holds something other than tensors,
            numbers, strings and containers of them.
    """
    check_model(model)
    h = hashlib.sha256()
    update_digest(h, dict(model.state_dict()), "model")
    batches = list(data)
    try:
        update_digest(h, batches, "data")
    except TypeError as e:
        raise TypeError(f"{e}; the fingerprint hashes every batch, so convert the batches' "
                        "entries to those (e.g. a tensor for an array)") from None
    return h.hexdigest()


def check_out_path(path: str | os.PathLike) -> Path:
    """Check that a results file can be written at ``path`` before anything is computed.

    Also removes the temporary files a killed writer left beside it.

    Args:
        path: The results file to be written.

    Raises:
        ResultsFileError: ``path`` is a directory, or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultsFileError(f"--out {path} is a directory: give a file name, e.g. "
                               f"{path / 'spectra.json'}")
    parent = path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ResultsFileError(f"--out {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise ResultsFileError(f"--out {path}: no permission to write there; choose another "
                               "--out")
    remove_stale_temps(path, older_than_s=0.0)
    return path


def save_spectra(path: str | os.PathLike, settings: Mapping[str, object],
                 spectra: Mapping[str, BlockSpectrum], *, code: str, fingerprint: str,
                 metadata: Mapping[str, object] | None = None) -> None:
    """Atomically write settings, provenance and spectra to ``path`` (strict JSON).

    Args:
        path: Results file.
        settings: What was computed (compared on resumption).
        spectra: The spectra by block name.
        code: Code version of the computing modules (compared on resumption).
        fingerprint: :func:`fingerprint` of the model and data (compared on resumption).
        metadata: How it ran (stored under ``"metadata"``, not compared).

    Raises:
        ValueError: a node or weight is not finite (nothing is written).
    """
    for name, s in spectra.items():
        if not (np.all(np.isfinite(s.nodes)) and np.all(np.isfinite(s.weights))):
            raise ValueError(f"block {name!r} has non-finite Ritz values or weights: refusing "
                             "to store them (check the model's loss for NaN/inf)")
    doc = {
        "format": FORMAT,
        "settings": jsonio.to_jsonable(dict(settings)),
        "code": code,
        "fingerprint": fingerprint,
        "versions": versions(),
        "metadata": jsonio.to_jsonable(dict(metadata or {})),
        "blocks": {
            name: {"dim": int(s.dim), "probe_ids": s.probe_ids.tolist(),
                   "n_steps": s.n_steps.tolist(), "nodes": s.nodes.tolist(),
                   "weights": s.weights.tolist()}
            for name, s in spectra.items()
        },
    }
    doc["checksum"] = jsonio.content_checksum(doc)
    atomic_write_bytes(path, jsonio.dumps(doc).encode())


def _int_list(v: Any, what: str) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                          for i in v):
        raise ValueError(f"{what} must be a list of integers")
    return v


def _matrix(v: Any, rows: int, what: str) -> np.ndarray:
    if (not isinstance(v, list) or len(v) != rows or not all(isinstance(r, list) for r in v)
            or len({len(r) for r in v}) > 1):
        raise ValueError(f"{what} must be {rows} rows of equal length")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for r in v for x in r):
        raise ValueError(f"{what} must hold numbers only")
    a = np.asarray(v, dtype=np.float64).reshape(rows, -1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} holds non-finite numbers")
    return a


def _block(name: str, b: Any) -> BlockSpectrum:
    if not isinstance(b, dict) or set(b) != {"dim", "probe_ids", "n_steps", "nodes", "weights"}:
        raise ValueError(f"block {name!r} must have exactly dim, probe_ids, n_steps, nodes, "
                         "weights")
    dim = b["dim"]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"block {name!r}: dim must be a positive integer")
    ids = _int_list(b["probe_ids"], f"block {name!r} probe_ids")
    n_steps = _int_list(b["n_steps"], f"block {name!r} n_steps")
    if not ids:
        raise ValueError(f"block {name!r} has no probes")
    if len(set(ids)) != len(ids):
        raise ValueError(f"block {name!r} has repeated probe ids {ids}")
    if len(n_steps) != len(ids):
        raise ValueError(f"block {name!r}: n_steps and probe_ids differ in length")
    nodes = _matrix(b["nodes"], len(ids), f"block {name!r} nodes")
    weights = _matrix(b["weights"], len(ids), f"block {name!r} weights")
    if nodes.shape != weights.shape or nodes.shape[1] < 1:
        raise ValueError(f"block {name!r}: nodes and weights differ in shape")
    if not all(1 <= k <= nodes.shape[1] for k in n_steps):
        raise ValueError(f"block {name!r}: n_steps outside 1..{nodes.shape[1]}")
    if np.any(weights < 0) or not np.allclose(weights.sum(1), 1.0, rtol=0, atol=1e-8):
        raise ValueError(f"block {name!r}: weights must be non-negative and sum to 1 per probe")
    return BlockSpectrum(name, dim, nodes, weights, np.asarray(n_steps, dtype=np.int64),
                         np.asarray(ids, dtype=np.int64))


def load_spectra(path: str | os.PathLike) -> SpectraFile:
    """Read and validate a results file (structure and checksum; not the settings).

    Args:
        path: The results file.

    Raises:
        ResultsFileError: unreadable, not strict JSON, another format, a bad checksum, a missing
            key, or a malformed block (the message names the file, the reason and the fix).
    """
    path = Path(path)
    try:
        doc = jsonio.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a nets results file of format {FORMAT}")
        missing = {"settings", "code", "fingerprint", "versions", "blocks",
                   "checksum"} - set(doc)
        if missing:
            raise ValueError(f"missing {sorted(missing)}")
        if doc["checksum"] != jsonio.content_checksum(doc):
            raise ValueError("checksum mismatch (damaged or edited)")
        if not all(isinstance(doc[k], dict) for k in ("settings", "blocks", "versions")) or (
                not isinstance(doc.get("metadata", {}), dict)):
            raise ValueError("settings, versions, metadata and blocks must be objects")
        if not isinstance(doc["code"], str) or not isinstance(doc["fingerprint"], str):
            raise ValueError("code and fingerprint must be strings")
        if not doc["blocks"]:
            raise ValueError("no blocks")
        spectra = {name: _block(name, b) for name, b in doc["blocks"].items()}
        ids = {tuple(sorted(s.probe_ids.tolist())) for s in spectra.values()}
        if len(ids) > 1:
            raise ValueError("the blocks hold different probes")
        if len({s.steps for s in spectra.values()}) > 1:
            raise ValueError("the blocks have different numbers of Lanczos steps")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ResultsFileError(f"{path}: {e}; {_FIX}") from e
    return SpectraFile(doc["settings"], doc["code"], doc["fingerprint"], doc["versions"],
                       spectra, doc.get("metadata", {}))


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` of a results file (how it ran), after :func:`load_spectra`'s checks.

    Args:
        path: The results file.

    Raises:
        ResultsFileError: the file fails a check.
    """
    return dict(load_spectra(path).metadata)


def _stored(out: Path, settings: Mapping[str, object], *, code: str, fingerprint: str,
            blocks: Sequence[str], probes: int, steps: int | None
            ) -> tuple[dict[str, BlockSpectrum], dict]:
    """The validated spectra and metadata already in ``out`` (empty if there is no file)."""
    if not out.exists():
        return {}, {}
    f = load_spectra(out)
    want = jsonio.to_jsonable(dict(settings))
    if f.settings != want:
        diff = {k: (f.settings.get(k), v) for k, v in want.items() if f.settings.get(k) != v}
        diff.update({k: (v, None) for k, v in f.settings.items() if k not in want})
        raise ResultsFileError(f"{out} holds a run with other settings {diff}; {_FIX}")
    if f.code != code:
        raise ResultsFileError(f"{out} was computed by other code ({f.code}, now {code}); "
                               f"{_FIX}")
    if f.fingerprint != fingerprint:
        raise ResultsFileError(f"{out} was computed on other model parameters or data "
                               f"(fingerprint {f.fingerprint[:12]}…, now {fingerprint[:12]}…); "
                               f"{_FIX}")
    missing = sorted(set(blocks) - set(f.spectra))
    extra = sorted(set(f.spectra) - set(blocks))
    if missing or extra:
        raise ResultsFileError(f"{out} does not hold the requested blocks (missing "
                               f"{missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected "
                               f"{extra[:5]}{'…' if len(extra) > 5 else ''}); {_FIX}")
    first = next(iter(f.spectra.values()))
    bad = [p for p in first.probe_ids.tolist() if not 0 <= p < probes]
    if bad:
        raise ResultsFileError(f"{out} holds probe ids {bad} outside 0..{probes - 1}; {_FIX}")
    if steps is not None and first.steps != steps:
        raise ResultsFileError(f"{out} holds {first.steps} Lanczos steps per probe, not "
                               f"{steps}; {_FIX}")
    return {name: f.spectra[name] for name in blocks}, dict(f.metadata)


def resume_spectra(out: str | os.PathLike, settings: Mapping[str, object], *,
                   blocks: Sequence[str], probes: int,
                   compute_probe: Callable[[int], Mapping[str, BlockSpectrum]],
                   code: str, fingerprint: str, steps: int | None = None,
                   overwrite: bool = False, comm: Communicator | None = None,
                   metadata: Callable[[], Mapping[str, object]] | None = None,
                   on_resume: Callable[[dict], None] | None = None,
                   on_saved: Callable[[int, int], None] | None = None
                   ) -> dict[str, BlockSpectrum]:
    """Compute the probes ``0..probes-1`` of a run, resuming from ``out`` and saving after each.

    Under ``torchrun`` (``comm`` distributed) rank 0 alone reads and writes ``out`` and tells
    the other ranks which probes are stored; every rank calls ``compute_probe`` (the HVPs are
    all-reduced inside it).

    Args:
        out: The results file (checked with :func:`check_out_path` before anything else).
        settings: JSON settings of the run; a stored file must have the same.
        blocks: The block names every probe must produce (and the file must hold).
        probes: Number of probes of the run.
        compute_probe: ``compute_probe(p) -> {block: BlockSpectrum}`` for probe ``p`` alone.
        code: Code version (:func:`labkit.cache.code_version`) of the computing modules.
        fingerprint: :func:`fingerprint` of the model and data.
        steps: Lanczos steps per probe, checked against the file when given.
        overwrite: Discard an existing file instead of resuming from it.
        comm: Communicator (default: one process).
        metadata: ``metadata()`` after each probe: how the run went, saved with the probes.
        on_resume: ``on_resume(stored_metadata)`` on every rank before the first new probe
            (``{}`` without a stored file), e.g. to go on with the stored product mode.
        on_saved: ``on_saved(done, probes)`` after each probe is stored (rank 0).

    Returns:
        ``{block: BlockSpectrum}`` with all probes, rows sorted by probe id.

    Raises:
        ResultsFileError: ``out`` cannot be written, or holds a file that fails a check.
        ValueError: ``compute_probe`` returned other blocks than ``blocks``.
    """
    comm = comm or Communicator()
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes must be a positive integer, got {probes!r}")
    blocks = list(blocks)
    if not blocks or len(set(blocks)) != len(blocks):
        raise ValueError(f"blocks must be distinct names, at least one, got {blocks[:5]}")
    out = Path(out)

    def read() -> tuple[dict[str, BlockSpectrum], dict]:
        check_out_path(out)
        if overwrite:
            return {}, {}
        return _stored(out, settings, code=code, fingerprint=fingerprint, blocks=blocks,
                       probes=probes, steps=steps)

    mine = read if comm.rank == 0 else lambda: ({}, {})
    done, stored_meta = comm.broadcast(comm.together(mine, what="reading the results file"),
                                       what="sharing the stored probes")
    if on_resume is not None:
        on_resume(stored_meta)
    have = set() if not done else set(next(iter(done.values())).probe_ids.tolist())
    for p in (p for p in range(probes) if p not in have):
        new = dict(compute_probe(p))
        if set(new) != set(blocks):
            raise ValueError(f"probe {p} produced blocks {sorted(new)[:5]}…, expected "
                             f"{blocks[:5]}…")
        done = ({k: new[k] for k in blocks} if not done else
                {k: BlockSpectrum.concatenate([done[k], new[k]]) for k in blocks})
        if comm.rank == 0:
            save_spectra(out, settings, done, code=code, fingerprint=fingerprint,
                         metadata=None if metadata is None else metadata())
            if on_saved is not None:
                on_saved(len(have) + 1, probes)
        have.add(p)
    return {k: s.select(np.argsort(s.probe_ids, kind="stable")) for k, s in done.items()}

