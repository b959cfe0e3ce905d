"""Offline, seeded data sets for the model zoo (nothing is downloaded, ever).

* :func:`glyph_digits` — an MNIST-like set: the ten digits rendered from the DejaVu Sans
  outlines that ship with matplotlib (``matplotlib.textpath.TextPath``), each sample under a
  random affine jitter (rotation ±15°, scale, shear, shift), rasterized with 2×2 supersampling
  and additive Gaussian pixel noise. Real glyph shapes give the images the spatial structure that
  convolutions and patches exploit, unlike i.i.d. noise classes.
* :func:`grammar_corpus` — English-like text from a small seeded probabilistic grammar (nouns,
  verbs, adjectives, prepositional phrases, relative clauses), lowercase letters, space, comma
  and period. Chosen over text shipped with Python (docstrings, ``this``) because it is identical
  across Python versions and has a controlled, learnable structure at the character level.
* :func:`char_lm_batches` / :func:`masked_lm_batches` — next-character and masked-character
  batches from the corpus (the mask is drawn once from the seed: the loss is a fixed function).

All randomness comes from an explicit ``numpy.random.Generator`` built from ``seed``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

__all__ = ["DIALECT", "MASK_ID", "VOCAB", "char_lm_batches", "dialect_lm_batches", "glyph_digits",
           "grammar_corpus", "masked_lm_batches"]


@cache
def _digit_outlines() -> tuple:
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(family="DejaVu Sans", weight="bold")
    out = []
    for d in "0123456789":
        path = TextPath((0, 0), d, size=1.0, prop=prop)
        v = path.vertices.copy()
        lo, hi = v.min(0), v.max(0)
        v = (v - (lo + hi) / 2) / (hi - lo).max()  # centred, largest side 1
        out.append((v, path.codes.copy()))
    return tuple(out)


def glyph_digits(n: int, *, size: int = 16, seed: int = 0, noise: float = 0.1
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` jittered digit images ``(n, 1, size, size)`` (float32) and labels ``(n,)``.

    Labels cycle through 0..9 in a seeded random order (balanced classes).

    Args:
        n: Number of images.
        size: Image side in pixels.
        seed: Seed of the jitter, the noise and the label order.
        noise: Standard deviation of the additive Gaussian pixel noise.
    """
    from matplotlib.path import Path

    if n < 1 or size < 8:
        raise ValueError("need n >= 1 and size >= 8")
    rng = np.random.default_rng([seed, 1])
    outlines = _digit_outlines()
    labels = rng.permutation(np.arange(n) % 10)
    ss = 2 * size
    c = (np.arange(ss) + 0.5) / ss - 0.5  # pixel centres in [-0.5, 0.5]
    pts = np.stack(np.meshgrid(c, -c), -1).reshape(-1, 2)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    for i, lab in enumerate(labels):
        v, codes = outlines[lab]
        ang = np.deg2rad(rng.uniform(-15, 15))
        s = rng.uniform(0.6, 0.8)
        sh = rng.uniform(-0.15, 0.15)
        a = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ np.array(
            [[1.0, sh], [0.0, 1.0]])
        t = rng.uniform(-0.08, 0.08, 2)
        inside = np.zeros(len(pts), dtype=bool)
        for poly in Path(v @ a.T + t, codes).to_polygons(closed_only=True):
            inside ^= Path(poly).contains_points(pts)  # even-odd rule: glyph holes stay open
        img = inside.reshape(ss, ss).astype(np.float32)
        img = img.reshape(size, 2, size, 2).mean((1, 3))
        images[i, 0] = img + noise * rng.standard_normal((size, size))
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


_NOUNS = ["cat", "dog", "bird", "king", "queen", "child", "river", "tree", "stone", "ship",
          "garden", "house", "storm", "light", "song", "horse", "wolf", "moon"]
_NAMES = ["anna", "boris", "clara", "david", "elena", "felix"]
_VERBS_T = ["sees", "finds", "loves", "follows", "carries", "watches", "builds", "calls"]
_VERBS_I = ["sleeps", "runs", "sings", "waits", "falls", "smiles", "grows"]
_ADJS = ["old", "young", "dark", "bright", "small", "great", "quiet", "green", "cold"]
_PREPS = ["near", "under", "over", "behind", "with", "beside"]
_DETS = ["the", "a", "every", "this", "that"]

VOCAB = " ,.abcdefghijklmnopqrstuvwxyz"
MASK_ID = len(VOCAB)  # extra token for the masked LM


def _np(rng: np.random.Generator, depth: int) -> list[str]:
    if rng.random() < 0.2:
        return [str(rng.choice(_NAMES))]
    words = [str(rng.choice(_DETS))]
    while rng.random() < 0.4:
        words.append(str(rng.choice(_ADJS)))
    words.append(str(rng.choice(_NOUNS)))
    if depth < 2 and rng.random() < 0.25:
        words += [str(rng.choice(_PREPS)), *_np(rng, depth + 1)]
    elif depth < 1 and rng.random() < 0.15:
        words += ["that", *_vp(rng, depth + 1)]
    return words


def _vp(rng: np.random.Generator, depth: int) -> list[str]:
    if rng.random() < 0.4:
        words = [str(rng.choice(_VERBS_I))]
        if rng.random() < 0.3:
            words += [str(rng.choice(_PREPS)), *_np(rng, depth + 1)]
        return words
    return [str(rng.choice(_VERBS_T)), *_np(rng, depth + 1)]


def grammar_corpus(n_chars: int, *, seed: int = 0) -> str:
    """At least ``n_chars`` characters of seeded grammar text over :data:`VOCAB`.

    Args:
        n_chars: Minimum length.
        seed: Seed of the generator.
    """
    rng = np.random.default_rng([seed, 2])
    parts: list[str] = []
    total = 0
    while total < n_chars:
        words = _np(rng, 0) + _vp(rng, 0)
        if rng.random() < 0.2:
            words = [*words, ",", "and", *_np(rng, 1), *_vp(rng, 1)]
        s = " ".join(words).replace(" ,", ",") + ". "
        parts.append(s)
        total += len(s)
    return "".join(parts)


def _encode(text: str) -> np.ndarray:
    lut = {c: i for i, c in enumerate(VOCAB)}
    return np.array([lut[c] for c in text], dtype=np.int64)


def char_lm_batches(*, n_seq: int, context: int, batch_size: int, seed: int = 0
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Next-character batches ``(x, y)`` of shape ``(b, context)``, ``y`` shifted by one.

    Args:
        n_seq: Number of sequences.
        context: Sequence length.
        batch_size: Sequences per batch.
        seed: Seed of the grammar text and the sequence starts.
    """
    ids = _encode(grammar_corpus(n_seq * (context + 1) + 1, seed=seed))
    seqs = ids[: n_seq * (context + 1)].reshape(n_seq, context + 1)
    x, y = torch.from_numpy(seqs[:, :-1].copy()), torch.from_numpy(seqs[:, 1:].copy())
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_seq, batch_size)]


def masked_lm_batches(*, n_seq: int, context: int, batch_size: int, seed: int = 0,
                      mask_rate: float = 0.15) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Masked-character batches: inputs with a fixed seeded mask, targets ``-100`` elsewhere.

    Of the chosen positions, 80% become the mask token, 10% a random character and 10% stay, as
    in BERT; at least one position per sequence is chosen.

    Args:
        n_seq: Number of sequences.
        context: Sequence length.
        batch_size: Sequences per batch.
        seed: Seed of the text and of the mask.
        mask_rate: Fraction of positions chosen for prediction.
    """
    ids = _encode(grammar_corpus(n_seq * context + 1, seed=seed))
    seqs = ids[: n_seq * context].reshape(n_seq, context)
    rng = np.random.default_rng([seed, 3])
    chosen = rng.random(seqs.shape) < mask_rate
    chosen[np.arange(n_seq), rng.integers(0, context, n_seq)] = True
    u = rng.random(seqs.shape)
    inputs = seqs.copy()
    inputs[chosen & (u < 0.8)] = MASK_ID
    rand = chosen & (u >= 0.8) & (u < 0.9)
    inputs[rand] = rng.integers(0, len(VOCAB), rand.sum())
    targets = np.where(chosen, seqs, -100)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_seq, batch_size)]


#: The dialect's letter substitution (``a`` and ``o`` swapped).
DIALECT = str.maketrans("ao", "oa")


def dialect_lm_batches(*, n_seq: int, context: int, batch_size: int, seed: int = 0
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Next-character batches of the dialect corpus (grammar seed ``seed + 500``).

    Args:
        n_seq: Number of sequences.
        context: Sequence length.
        batch_size: Sequences per batch.
        seed: Seed (the text uses grammar seed ``seed + 500``).
    """
    text = grammar_corpus(n_seq * (context + 1) + 1, seed=seed + 500).translate(DIALECT)
    lut = {c: i for i, c in enumerate(VOCAB)}
    ids = np.array([lut[c] for c in text], dtype=np.int64)
    seqs = ids[: n_seq * (context + 1)].reshape(n_seq, context + 1)
    x, y = torch.from_numpy(seqs[:, :-1].copy()), torch.from_numpy(seqs[:, 1:].copy())
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_seq, batch_size)]
