"""The Adam-pretrained zoo GPT: the checkpoint the fine-tuning study (Figure 6 analogue) starts
from.

The zoo GPT (:func:`nets.zoo.models.load` ``"gpt"``, seed ``s``) is trained with Adam
(``lr = 3e-3``, batch 32, :data:`PRETRAIN_STEPS` steps) on the grammar corpus (next-character
pool of 2048 sequences, :func:`nets.studies.pools.make_pool` ``"charlm"``). The checkpoint is
cached on disk like every other result. Everything is local (no downloaded weights).
"""

from __future__ import annotations

import os
import tempfile
from functools import cache

import torch

from labkit.cache import cache_dir, cache_key
from nets.studies.pools import make_pool
from nets.studies.training import TrainConfig, train
from nets.zoo import models as zoo

__all__ = ["PRETRAIN_BATCH", "PRETRAIN_LR", "PRETRAIN_STEPS", "finetune_build", "pretrained_state"]

PRETRAIN_STEPS = 1500
PRETRAIN_LR = 3e-3
PRETRAIN_BATCH = 32
_SOURCES = ("training.py", "tasks.py", "zoo.py", "data.py", "finetune.py")


def _pretrain(seed: int, steps: int) -> dict[str, torch.Tensor]:
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
