"""Blockwise spectra of zoo models, sampled into small eigenvalue sets for quadlab's quadratics.

The paper built its Transformer-type and CNN-type quadratics from eigenvalues sampled from the
blockwise spectra of real networks (GPT-2 and ResNet-18; not published). This module does the
same with the zoo's `gpt` and `resnet`: SLQ of four weight blocks at initialization, then
`size` eigenvalues per block at the quantile levels (i + ½)/size of the SLQ measure of |λ|
(pooled over probes). Absolute values, because a quadratic needs a positive-definite Hessian and
the Hessian at initialization is indefinite (the paper does not say how it handled negative
eigenvalues); values are floored at 1e-6 × the block's largest so that a spike at 0 does not
make κ infinite.

Regenerate the data file shipped with quadlab::

    nets quadratic-spectra            # writes quadlab/data/measured_spectra.json
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from labkit.atomic import atomic_write_bytes
from labkit.jsonio import dumps
from nets.engine.results import versions
from nets.engine.slq import BlockSpectrum
from nets.engine.spectrum import blockwise_spectrum
from nets.zoo import models as zoo

__all__ = ["OUT", "SOURCES", "measure", "measured_spectra", "sample_eigenvalues",
           "write_measured_spectra"]

#: case -> (zoo model, its four blocks: embedding / attention / attention output / MLP, or convs)
SOURCES = {
    "transformer": ("gpt", ("wte.weight", "layers.0.attn.q.weight", "layers.0.attn.proj.weight",
                            "layers.0.fc1.weight")),
    "cnn": ("resnet", ("stem.weight", "block1.conv1.weight", "block1.conv2.weight",
                       "block2.conv1.weight")),
}
OUT = Path(__file__).resolve().parent.parent / "quadlab" / "data" / "measured_spectra.json"


def sample_eigenvalues(spec: BlockSpectrum, size: int) -> np.ndarray:
    """`size` values of |λ| at the quantile levels (i + ½)/size of the SLQ measure (ascending),
    floored at 1e-6 × the largest.

    Args:
        spec: The block's SLQ spectrum.
        size: Number of values.
    """
    nodes = np.abs(spec.nodes.ravel())
    weights = spec.weights.ravel() / spec.probes
    keep = weights > 0
    order = np.argsort(nodes[keep])
    x, cdf = nodes[keep][order], np.cumsum(weights[keep][order])
    levels = (np.arange(size) + 0.5) / size * cdf[-1]
    vals = x[np.minimum(np.searchsorted(cdf, levels), x.size - 1)]
    return np.maximum(vals, 1e-6 * x.max())


def measure(case: str, *, size: int = 25, steps: int = 30, probes: int = 5, seed: int = 0
            ) -> dict[str, list[float]]:
    """{block: sampled eigenvalues} for one quadratic case (see `SOURCES`).

    Args:
        case: ``"transformer"`` or ``"cnn"`` (a key of :data:`SOURCES`).
        size: Eigenvalues sampled per block.
        steps: Lanczos steps per probe.
        probes: Probe vectors.
        seed: Seed of the zoo model and of the probes.
    """
    name, blocks = SOURCES[case]
    model, loss_fn, data = zoo.load(name, seed=seed)
    spectra = blockwise_spectrum(model, loss_fn, data, blocks={b: b for b in blocks},
                                 lanczos_steps=steps, probes=probes, seed=seed)
    return {b: sample_eigenvalues(spectra[b], size).tolist() for b in blocks}


def measured_spectra(*, size: int = 25, steps: int = 30, probes: int = 5, seed: int = 0
                     ) -> dict:
    """The data document of quadlab's measured quadratic cases: every case of :data:`SOURCES`.

    Args:
        size: Eigenvalues sampled per block (:func:`sample_eigenvalues`).
        steps: Lanczos steps per probe.
        probes: Probe vectors.
        seed: Seed of the zoo models and of the probes.

    Returns:
        ``{"settings", "versions", "sources", "spectra": {case: {block: eigenvalues}}}``.
    """
    settings = {"size": size, "steps": steps, "probes": probes, "seed": seed}
    return {"settings": settings, "versions": versions(),
            "sources": {c: {"model": m, "blocks": list(b)} for c, (m, b) in SOURCES.items()},
            "spectra": {c: measure(c, **settings) for c in SOURCES}}


def write_measured_spectra(path: str | os.PathLike = OUT, **settings: int) -> Path:
    """Compute :func:`measured_spectra` and write it atomically as strict JSON.

    Args:
        path: The data file (default: quadlab's ``data/measured_spectra.json``).
        **settings: Passed to :func:`measured_spectra` (``size``, ``steps``, ``probes``,
            ``seed``).

    Returns:
        The path written.
    """
    atomic_write_bytes(path, dumps(measured_spectra(**settings), indent=1).encode())
    return Path(path)
