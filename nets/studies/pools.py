"""Training pools and spectrum batches of the studies, drawn from :mod:`nets.zoo.data`.

Pools (training data) are drawn with a seed (:data:`POOL_SEED`) different from the zoo's JS0
batches (seed 0), so the training samples are not the ones the spectrum was measured on; the
held-out pools (:data:`HELDOUT_SEED`) are a third draw of the same data kind, never trained on
(new jitter and noise for the digits, new grammar text for the corpora):

* ``digits``: :func:`nets.zoo.data.glyph_digits` (16×16), ``n`` samples;
* ``charlm``: next-character sequences of length 32 of the grammar corpus;
* ``maskedlm``: masked-character sequences (fixed mask);
* ``dialect``: next-character sequences of the dialect corpus (fine-tuning study).
"""

from __future__ import annotations

from functools import cache

from nets.studies.training import Pool
from nets.zoo.data import char_lm_batches, dialect_lm_batches, glyph_digits, masked_lm_batches

__all__ = ["HELDOUT_SEED", "POOL_SEED", "first_batches", "make_pool"]


POOL_SEED = 100
#: Seed of the held-out pools (same data kind, a draw the model never trains on).
HELDOUT_SEED = 200
_KINDS = ("digits", "charlm", "maskedlm", "dialect")


@cache
def _pool_cached(kind: str, n: int, seed: int) -> Pool:
    if kind == "digits":
        x, y = glyph_digits(n, seed=seed)
        return Pool(x, y)
    (x, y), = _lm_maker(kind)(n_seq=n, context=32, batch_size=n, seed=seed)
    return Pool(x, y)


def _lm_maker(kind: str):
    if kind == "dialect":
        return dialect_lm_batches
    return char_lm_batches if kind == "charlm" else masked_lm_batches


def make_pool(kind: str, n: int, *, seed: int = POOL_SEED) -> Pool:
    """A training pool of ``n`` samples of data kind ``digits``, ``charlm``, ``maskedlm`` or
    ``dialect`` (the fine-tuning corpus of :mod:`nets.studies.finetune`).

    Args:
        kind: ``digits``, ``charlm``, ``maskedlm`` or ``dialect``.
        n: Number of samples.
        seed: Seed of the draw (default :data:`POOL_SEED`, not the JS0 batches' seed 0).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown data kind {kind!r}; choose from {_KINDS}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"pool size must be a positive integer, got {n!r}")
    return _pool_cached(kind, n, int(seed))


def first_batches(kind: str) -> list:
    """The fixed batches (seed 0) that JS0 is measured on for data kind ``kind``.

    Args:
        kind: ``digits``, ``charlm``, ``maskedlm`` or ``dialect``.
    """
    if kind == "digits":
        x, y = glyph_digits(128, seed=0)
        return [(x[i:i + 64], y[i:i + 64]) for i in range(0, 128, 64)]
    return _lm_maker(kind)(n_seq=32, context=32, batch_size=16, seed=0)
