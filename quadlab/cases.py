"""The paper's four Hessian cases (§3.1, Figure 8), all with κ(H) = 5000.

* ``hetero`` — simplified heterogeneous: blocks with eigenvalues {1,2,3}, {99,100,101},
  {4998,4999,5000}.
* ``homo`` — simplified homogeneous: the same nine values regrouped {1,99,4998}, {2,100,4999},
  {3,101,5000}.
* ``transformer`` — blocks whose spectra differ in scale *and* shape, cycling through four
  families that mimic the blockwise spectra the paper shows for Transformers (its Figure 3):
  an embedding-like log-normal spectrum, a query/key-like spectrum with most mass near zero
  and a few outliers a decade higher, a value/output-like Marchenko–Pastur bulk one decade up,
  and an MLP-like Marchenko–Pastur bulk another 1.5 decades up. Each block is moderately
  conditioned on its own (κ_l of order 10–100): the ill-conditioning of H comes from the
  blocks' different scales, which is the paper's notion of block heterogeneity.
* ``cnn`` — every block draws from one Marchenko–Pastur family at one scale, as the paper's
  convolution blocks share one spectral shape.

Every block is H_l = Q_l diag(λ_l) Q_lᵀ with Q_l Haar-distributed (seeded). For ``transformer``
and ``cnn`` the raw eigenvalues are mapped by one power law λ ↦ c·λ^p, common to all blocks, so
that κ(H) = 5000 exactly; a power map keeps each block's shape on the log axis (up to the
common exponent) and keeps the ordering of the blocks' scales.

Randomness: `seed` feeds a `numpy.random.SeedSequence` spawned into independent streams for
the spectra, the rotations and h, so changing one ingredient never reshuffles the others.
h ~ N(0, h_scale² I); initial points come from `Problem.initial_points` (standard Gaussian).
"""

from __future__ import annotations

import numpy as np

from .problem import Problem
from .validation import check_choice, check_options, check_positive

KAPPA = 5000.0

HETERO_SPECTRA = ((1.0, 2.0, 3.0), (99.0, 100.0, 101.0), (4998.0, 4999.0, 5000.0))
HOMO_SPECTRA = ((1.0, 99.0, 4998.0), (2.0, 100.0, 4999.0), (3.0, 101.0, 5000.0))

#: Block families of the Transformer-like case, in the order they cycle.
TRANSFORMER_FAMILIES = ("embedding", "attention_qk", "attention_vo", "mlp")

CASES = ("hetero", "homo", "transformer", "cnn")


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed n×n orthogonal matrix (QR of a Gaussian matrix with sign fix)."""
    z = rng.standard_normal((n, n))
    q, r = np.linalg.qr(z)
    return q * np.sign(np.diag(r))


def marchenko_pastur(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Eigenvalues of XᵀX/m, X an m×n Gaussian matrix with n/m = `ratio` (a Wishart spectrum)."""
    m = max(n, round(n / ratio))
    x = rng.standard_normal((m, n))
    return np.linalg.eigvalsh(x.T @ x / m)


def block_family_spectrum(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Raw (un-normalised) eigenvalues of one block of a given family.

    Families (scales are relative; the case builder rescales to κ = 5000):
        embedding: log10 λ ~ N(0, 0.3²) — log-normal, scale 1.
        attention_qk: 80% of log10 λ ~ N(−1, 0.2²), 20% ~ N(0, 0.2²) — mass near zero plus
            a few outliers a decade higher.
        attention_vo: 10 × Marchenko–Pastur(ratio 0.3).
        mlp: 300 × Marchenko–Pastur(ratio 0.3).
        conv: Marchenko–Pastur(ratio 0.5), the single family of the CNN-like case.
    """
    if family == "embedding":
        return np.sort(10.0 ** rng.normal(0.0, 0.3, n))
    if family == "attention_qk":
        n_out = max(1, n // 5)
        logs = np.concatenate([rng.normal(-1.0, 0.2, n - n_out), rng.normal(0.0, 0.2, n_out)])
        return np.sort(10.0**logs)
    if family == "attention_vo":
        return 10.0 * marchenko_pastur(n, 0.3, rng)
    if family == "mlp":
        return 300.0 * marchenko_pastur(n, 0.3, rng)
    if family == "conv":
        return marchenko_pastur(n, 0.5, rng)
    raise ValueError(f"unknown block family {family!r}")


def rescale_to_kappa(spectra: list[np.ndarray], kappa: float) -> list[np.ndarray]:
    """Map all eigenvalues by λ ↦ (λ/λ_min)^p with p chosen so that max/min = `kappa` exactly.

    The smallest eigenvalue becomes 1 and the largest `kappa`.
    """
    lo = min(float(s.min()) for s in spectra)
    hi = max(float(s.max()) for s in spectra)
    if not hi > lo > 0:
        raise ValueError("raw spectra must be positive and not all equal")
    p = np.log(kappa) / np.log(hi / lo)
    out = [(s / lo) ** p for s in spectra]
    # pin the extremes exactly (the power map is exact up to one rounding)
    flat_min = min(range(len(out)), key=lambda i: out[i].min())
    flat_max = max(range(len(out)), key=lambda i: out[i].max())
    out[flat_min][np.argmin(out[flat_min])] = 1.0
    out[flat_max][np.argmax(out[flat_max])] = kappa
    return out


def _assemble(spectra, rot_rng, h_rng, h_scale: float, name: str) -> Problem:
    rotations = [haar_orthogonal(len(lam), rot_rng) for lam in spectra]
    d = sum(len(s) for s in spectra)
    h = h_scale * h_rng.standard_normal(d)
    return Problem.from_spectra(spectra, rotations, h, name=name)


def make_problem(case: str, seed=0, **options) -> Problem:
    """Build one of the paper's Hessian cases.

    Args:
        case: "hetero", "homo", "transformer" or "cnn".
        seed: int or `numpy.random.SeedSequence` for the spectra (sampled cases), the Haar
            rotations and h.
        **options: ``h_scale`` (default 1.0; 0 gives h = 0 and w* = 0) for every case;
            ``n_blocks`` (default 4) and ``block_size`` (default 25) for "transformer"/"cnn".

    Returns:
        The `Problem`, with κ(H) = 5000 for every case.

    Raises:
        ValueError: unknown case or option, or an option out of range.
    """
    check_choice(case, CASES, what="case")
    sampled = case in ("transformer", "cnn")
    check_options(options, ("h_scale", "n_blocks", "block_size") if sampled else ("h_scale",),
                  what=f"case {case!r}")
    h_scale = float(options.get("h_scale", 1.0))
    if not np.isfinite(h_scale) or h_scale < 0:
        raise ValueError(f"h_scale must be finite and >= 0, got {h_scale!r}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    spec_ss, rot_ss, h_ss = ss.spawn(3)
    spec_rng, rot_rng, h_rng = (np.random.default_rng(s) for s in (spec_ss, rot_ss, h_ss))

    if case == "hetero":
        spectra = [np.array(s) for s in HETERO_SPECTRA]
    elif case == "homo":
        spectra = [np.array(s) for s in HOMO_SPECTRA]
    else:
        n_blocks = int(options.get("n_blocks", 4))
        block_size = int(options.get("block_size", 25))
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        if block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {block_size}")
        check_positive(block_size, name="block_size")
        if case == "transformer":
            families = [TRANSFORMER_FAMILIES[i % 4] for i in range(n_blocks)]
        else:
            families = ["conv"] * n_blocks
        raw = [block_family_spectrum(f, block_size, spec_rng) for f in families]
        spectra = rescale_to_kappa(raw, KAPPA)
    return _assemble(spectra, rot_rng, h_rng, h_scale, case)
