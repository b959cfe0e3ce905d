"""Figure 6 analogue: pretrain with Adam, then fine-tune; heterogeneity and the SGD gap.

Everything is local (no downloaded weights):

1. **Pretraining**: the zoo GPT (:func:`nets.zoo.load` ``"gpt"``, seed ``s``) is trained with
   Adam (``lr = 3e-3``, batch 32, :data:`PRETRAIN_STEPS` steps) on the grammar corpus
   (next-character pool of 2048 sequences, :func:`nets.tasks.make_pool` ``"charlm"``). The
   checkpoint is cached on disk like every other result.
2. **Downstream task**: the *dialect* corpus — grammar text from another seed with the letters
   ``a`` and ``o`` swapped: the same syntax, shifted surface statistics, so pretraining helps
   but does not solve it.
3. **Comparison**: task ``gpt-dialect`` (from random initialization) vs ``gpt-ft`` (from the
   pretrained checkpoint), both on the dialect pool: JS at the starting point (JS0 of each
   task, measured on the dialect batches) and the tuned SGD–Adam gap
   (:func:`nets.gap.measure_gap`).

The paper reports that the pretrained GPT-2 is less heterogeneous than at initialization and
that SGD's gap on fine-tuning is smaller.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from . import zoo
from .cache import cache_dir, cache_key
from .data import VOCAB, grammar_corpus
from .distributed import Communicator

__all__ = [
    "DIALECT",
    "PRETRAIN_STEPS",
    "FinetuneStudy",
    "dialect_lm_batches",
    "finetune_build",
    "finetune_study",
    "pretrained_state",
]

PRETRAIN_STEPS = 1500
PRETRAIN_LR = 3e-3
PRETRAIN_BATCH = 32
#: The dialect's letter substitution (``a`` and ``o`` swapped).
DIALECT = str.maketrans("ao", "oa")
_SOURCES = ("training.py", "tasks.py", "zoo.py", "data.py", "finetune.py")


def dialect_lm_batches(*, n_seq: int, context: int, batch_size: int, seed: int = 0
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Next-character batches of the dialect corpus (grammar seed ``seed + 500``)."""
    text = grammar_corpus(n_seq * (context + 1) + 1, seed=seed + 500).translate(DIALECT)
    lut = {c: i for i, c in enumerate(VOCAB)}
    ids = np.array([lut[c] for c in text], dtype=np.int64)
    seqs = ids[: n_seq * (context + 1)].reshape(n_seq, context + 1)
    x, y = torch.from_numpy(seqs[:, :-1].copy()), torch.from_numpy(seqs[:, 1:].copy())
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n_seq, batch_size)]


def _pretrain(seed: int, steps: int) -> dict[str, torch.Tensor]:
    from .tasks import make_pool
    from .training import TrainConfig, train

    state: dict[str, torch.Tensor] = {}

    def factory(s: int):
        model, loss_fn = zoo.load("gpt", seed=s)[:2]
        state["model"] = model
        return model, loss_fn

    res = train(factory, make_pool("charlm", 2048),
                TrainConfig("adam", PRETRAIN_LR, steps, PRETRAIN_BATCH, seed=seed,
                            eval_every=steps))
    if res.diverged:
        raise ValueError(f"pretraining diverged at step {res.diverged_step}")
    return {k: v.detach().clone() for k, v in state["model"].state_dict().items()}


@cache
def _pretrained_cached(seed: int, steps: int, folder: str) -> dict[str, torch.Tensor]:
    settings = {"seed": seed, "steps": steps, "lr": PRETRAIN_LR, "batch": PRETRAIN_BATCH}
    path = os.path.join(folder, f"pretrain-{cache_key('pretrain', settings, _SOURCES)}.pt")
    if os.path.exists(path):
        return torch.load(path, weights_only=True)
    state = _pretrain(seed, steps)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return state


def pretrained_state(seed: int = 0, *, steps: int = PRETRAIN_STEPS, directory=None
                     ) -> dict[str, torch.Tensor]:
    """The Adam-pretrained GPT's ``state_dict`` (computed once, then read from the cache)."""
    return _pretrained_cached(int(seed), int(steps), str(cache_dir(directory)))


def finetune_build(seed: int, *, pretrained: bool, steps: int = PRETRAIN_STEPS):
    """``(model, loss_fn)``: the zoo GPT at seed ``seed``, or its pretrained checkpoint."""
    model, loss_fn = zoo.load("gpt", seed=seed)[:2]
    if pretrained:
        model.load_state_dict(pretrained_state(seed, steps=steps))
    return model.eval(), loss_fn


@dataclass(frozen=True)
class FinetuneStudy:
    """JS at the starting point and the tuned gap, from scratch vs from the checkpoint.

    Attributes:
        scratch: :class:`nets.gap.GapReport` of ``gpt-dialect`` (JS0 at random init).
        finetune: :class:`nets.gap.GapReport` of ``gpt-ft`` (JS at the checkpoint).
    """

    scratch: object
    finetune: object

    def rows(self) -> list[dict]:
        out = []
        for label, rep in (("from scratch", self.scratch), ("fine-tune", self.finetune)):
            for r in rep.results:
                out.append({"start": label, "B": r.batch_size, "js": rep.js0,
                            "sgd_loss": r.sgd.final_loss, "adam_loss": r.adam.final_loss,
                            "gap": r.gap})
        return out

    def to_dict(self) -> dict:
        return {"scratch": self.scratch.to_dict(), "finetune": self.finetune.to_dict(),
                "rows": self.rows()}


def finetune_study(profile="quick", *, pretrain_steps: int = PRETRAIN_STEPS, cache_dir=None,
                   progress: Callable[[str], None] | None = None,
                   comm: Communicator | None = None) -> FinetuneStudy:
    """Run the comparison (see the module docstring) under a gap profile.

    Args:
        profile: A :class:`nets.gap.GapProfile` or its name.
        pretrain_steps: Adam steps of pretraining (task ``gpt-ft-p<steps>`` when it is not
            :data:`PRETRAIN_STEPS`; fewer make a smoke test, not a measurement).
        cache_dir: Folder of the training runs; the pretrained checkpoint goes to the default
            cache folder (``$NETS_CACHE`` or ``runs/cache``), which the CLI points at ``--cache``.
        progress: Called with a note after every training run.
        comm: :class:`nets.distributed.DistributedCommunicator` to share the training grids
            out among the ranks (a rank that trains a fine-tuning run pretrains the checkpoint
            itself unless it finds it in its cache folder).
    """
    from .gap import measure_gap

    if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) \
            or pretrain_steps < 1:
        raise ValueError(f"pretrain_steps must be a positive integer, got {pretrain_steps!r}")
    ft_task = "gpt-ft" if pretrain_steps == PRETRAIN_STEPS else f"gpt-ft-p{pretrain_steps}"
    scratch = measure_gap("gpt-dialect", profile, cache_dir=cache_dir, progress=progress,
                          comm=comm)
    ft = measure_gap(ft_task, profile, cache_dir=cache_dir, progress=progress, comm=comm)
    return FinetuneStudy(scratch, ft)
