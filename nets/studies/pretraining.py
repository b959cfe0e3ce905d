"""The Adam-pretrained zoo GPT: the checkpoint the fine-tuning study (Figure 6 analogue) starts
from.

The zoo GPT (:func:`nets.zoo.models.load` ``"gpt"``, seed ``s``) is trained with Adam
(``lr = 3e-3``, batch 32, :data:`PRETRAIN_STEPS` steps) on the grammar corpus (next-character
pool of 2048 sequences, :func:`nets.studies.pools.make_pool` ``"charlm"``). The checkpoint is
cached on disk like every other result. Everything is local (no downloaded weights).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

import numpy as np
import torch

from labkit.cache import cache_dir, cached
from nets.engine.results import fingerprint
from nets.studies.pools import make_pool
from nets.studies.training import TrainConfig, train
from nets.zoo import models as zoo

__all__ = ["MODULES", "PRETRAIN_BATCH", "PRETRAIN_LR", "PRETRAIN_STEPS", "finetune_build",
           "pretrained_state"]

PRETRAIN_STEPS = 1500
PRETRAIN_LR = 3e-3
PRETRAIN_BATCH = 32
PRETRAIN_POOL = 2048
#: Modules whose source is part of the checkpoint's cache key.
MODULES = ("nets.studies.training", "nets.studies.pools", "nets.zoo.data", "nets.zoo.models",
           "nets.studies.pretraining")


def _pretrain(seed: int, steps: int) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}

    def factory(s: int):
        model, loss_fn = zoo.load("gpt", seed=s)[:2]
        state["model"] = model
        return model, loss_fn

    res = train(factory, make_pool("charlm", PRETRAIN_POOL),
                TrainConfig("adam", PRETRAIN_LR, steps, PRETRAIN_BATCH, seed=seed,
                            eval_every=steps))
    if res.diverged:
        raise ValueError(f"pretraining diverged at step {res.diverged_step}")
    return {k: v.detach().clone() for k, v in state["model"].state_dict().items()}


@cache
def _pretrained_cached(seed: int, steps: int, folder: str, threads: int
                       ) -> dict[str, torch.Tensor]:
    # the thread count changes the float reductions, hence the trained weights (bitwise)
    settings = {"seed": seed, "steps": steps, "lr": PRETRAIN_LR, "batch": PRETRAIN_BATCH,
                "torch_threads": threads}

    def compute() -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in _pretrain(seed, steps).items()}

    # what the checkpoint comes from: the GPT as initialized at the seed and the training pool
    pool = make_pool("charlm", PRETRAIN_POOL)
    inputs = fingerprint(zoo.load("gpt", seed=seed)[0], [(pool.inputs, pool.targets)])
    arrays = cached("pretrain", settings, compute, modules=MODULES, directory=folder,
                    fingerprint=inputs)
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


def pretrained_state(seed: int = 0, *, steps: int = PRETRAIN_STEPS,
                     directory: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The Adam-pretrained GPT's ``state_dict`` (computed once, then read from the cache).

    The checkpoint is reproducible bitwise for a seed, step count and torch thread count; the
    thread count is part of its cache key.

    Args:
        seed: Seed of the zoo GPT's initialization and of the training data order.
        steps: Adam steps of pretraining.
        directory: Folder of the checkpoint file (default :func:`labkit.cache.cache_dir`).

    Returns:
        The trained parameters and buffers, by name.
    """
    return _pretrained_cached(int(seed), int(steps), str(cache_dir(directory)),
                              torch.get_num_threads())


def finetune_build(seed: int, *, pretrained: bool, steps: int = PRETRAIN_STEPS,
                   directory: str | os.PathLike | None = None
                   ) -> tuple[torch.nn.Module, Callable]:
    """The zoo GPT at seed ``seed``, or loaded with its pretrained checkpoint.

    Args:
        seed: Model seed (also the pretraining seed).
        pretrained: Load :func:`pretrained_state` ``(seed, steps=steps)``.
        steps: Pretraining steps.
        directory: Folder of the checkpoint (see :func:`pretrained_state`).

    Returns:
        ``(model, loss_fn)``, the model in eval mode.
    """
    model, loss_fn = zoo.load("gpt", seed=seed)[:2]
    if pretrained:
        model.load_state_dict(pretrained_state(seed, steps=steps, directory=directory))
    return model.eval(), loss_fn
