"""Results files: spectra with their settings, written atomically, read back for resumption.

A file is JSON: ``{"format": 1, "settings": {...}, "versions": {...}, "blocks": {name:
{"dim", "probe_ids", "n_steps", "nodes", "weights"}}}``. Floats are written with ``repr``
precision, so nodes and weights round-trip exactly. Writing goes to a temporary file in the same
directory followed by ``os.replace``, so an interruption never leaves a truncated file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from labkit.atomic import atomic_write_bytes
from nets.engine.slq import BlockSpectrum

__all__ = ["load_metadata", "load_spectra", "save_spectra", "versions"]

FORMAT = 1


def versions() -> dict[str, str]:
    """Versions of the libraries that produced a result."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import scipy
    import torch

    try:
        own = version("blockhet")
    except PackageNotFoundError:
        own = "unknown"
    return {"blockhet": own, "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def save_spectra(path: str | os.PathLike, settings: Mapping[str, object],
                 spectra: Mapping[str, BlockSpectrum], *,
                 metadata: Mapping[str, object] | None = None) -> None:
    """Atomically write settings and spectra to ``path`` (JSON).

    Args:
        path: Results file.
        settings: What was computed (compared on resumption).
        spectra: The spectra by block name.
        metadata: How it ran (product mode, peak memory, timings: the ``info`` of
            :func:`nets.blockwise_spectrum`); stored under ``"metadata"``, not compared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "settings": dict(settings),
        "versions": versions(),
        "metadata": dict(metadata or {}),
        "blocks": {
            name: {"dim": s.dim, "probe_ids": s.probe_ids.tolist(),
                   "n_steps": s.n_steps.tolist(), "nodes": s.nodes.tolist(),
                   "weights": s.weights.tolist()}
            for name, s in spectra.items()
        },
    }
    atomic_write_bytes(path, json.dumps(doc).encode())


def load_spectra(path: str | os.PathLike) -> tuple[dict, dict, dict[str, BlockSpectrum]]:
    """Read ``(settings, versions, spectra)`` from a results file.

    Args:
        path: The results file.

    Raises:
        ValueError: not a results file of this format.
    """
    with open(path) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a JSON results file ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a nets results file (format {FORMAT})")
    spectra = {}
    for name, b in doc["blocks"].items():
        nodes = np.asarray(b["nodes"], dtype=np.float64).reshape(len(b["probe_ids"]), -1)
        weights = np.asarray(b["weights"], dtype=np.float64).reshape(nodes.shape)
        spectra[name] = BlockSpectrum(name, int(b["dim"]), nodes, weights,
                                      np.asarray(b["n_steps"], dtype=np.int64),
                                      np.asarray(b["probe_ids"], dtype=np.int64))
    return doc["settings"], doc.get("versions", {}), spectra


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` of a results file (how it ran; empty for files written without it).

    Args:
        path: The results file.

    Raises:
        ValueError: not a results file of this format.
    """
    load_spectra(path)  # validates the file
    with open(path) as f:
        return dict(json.load(f).get("metadata") or {})
