"""The command line's task names, parsed into :class:`nets.studies.tasks.Task` values.

==================  ==========================================================================
``mlp`` … ``mixer``  :func:`~nets.studies.tasks.zoo_task` (the zoo models)
``mlp-s{S}``        :func:`~nets.studies.tasks.scaled_mlp_task` ``(S)``, e.g. ``mlp-s10``
``postln{N}``       :func:`~nets.studies.tasks.layernorm_task` ``("postln", N)``
``preln{N}``        the same with Pre-LN
``admin{N}``        Post-LN with Admin initialization
``gpt-dialect``     :func:`~nets.studies.tasks.finetune_task` ``(pretrained=False)``
``gpt-ft``          :func:`~nets.studies.tasks.finetune_task` ``(pretrained=True)``
``gpt-ft-p{N}``     the same with ``pretrain_steps=N``, e.g. ``gpt-ft-p15``
``module:func``     :func:`~nets.studies.tasks.factory_task`: a user's factory returning a Task
==================  ==========================================================================

This is the only place where a task's parameters are read out of a string.
"""

from __future__ import annotations

import os
import re

from nets.studies.tasks import (
    Task,
    factory_task,
    finetune_task,
    layernorm_task,
    scaled_mlp_task,
    zoo_task,
)
from nets.zoo.factory import is_factory
from nets.zoo.models import MODELS

__all__ = ["TASK_NAMES_HELP", "task_from_name"]

#: One line listing the accepted names (for ``--help`` and error messages).
TASK_NAMES_HELP = (f"a zoo model ({', '.join(MODELS)}), mlp-s<scale>, postln<N>, preln<N>, "
                   "admin<N>, gpt-dialect, gpt-ft, gpt-ft-p<steps>, or a factory "
                   "module:function returning a nets.studies.tasks.Task")


def task_from_name(name: str, *, cache_dir: str | os.PathLike | None = None,
                   model_seed: int | None = None) -> Task:
    """The task a command-line name stands for (see the module docstring).

    Args:
        name: A task name, e.g. ``"gpt"``, ``"mlp-s3"``, ``"postln12"``, ``"gpt-ft-p15"``.
        cache_dir: Folder of the pretrained checkpoint for the fine-tuning tasks.
        model_seed: ``--model-seed``, handed to a factory (:func:`nets.studies.tasks.factory_task`);
            the built-in tasks are trained at the profile's seeds, so for them only ``None`` or
            0 is accepted.

    Returns:
        The :class:`~nets.studies.tasks.Task` built by its typed builder.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: an unknown name or an invalid parameter (the message lists the names).
    """
    if not isinstance(name, str):
        raise TypeError(f"task name must be a string, got {type(name).__name__}")
    if is_factory(name):
        return factory_task(name, seed=model_seed)
    if model_seed not in (None, 0):
        raise ValueError(f"--model-seed {model_seed}: only a factory module:function takes a "
                         f"model seed; {name!r} is trained at the profile's seeds (see "
                         "--profile), with JS0 at seed 0")
    if name in MODELS:
        return zoo_task(name)
    m = re.fullmatch(r"mlp-s(\d+(?:\.\d+)?)", name)
    if m:
        return scaled_mlp_task(float(m.group(1)))
    m = re.fullmatch(r"(postln|preln|admin)(\d+)", name)
    if m:
        depth = int(m.group(2))
        if depth < 1:
            raise ValueError(f"depth must be >= 1 in {name!r}")
        return layernorm_task(m.group(1), depth)
    m = re.fullmatch(r"gpt-(dialect|ft)(?:-p(\d+))?", name)
    if m:
        pretrained = m.group(1) == "ft"
        if m.group(2) is not None and not pretrained:
            raise ValueError(f"{name!r}: only gpt-ft takes a pretraining length (-p<steps>)")
        if m.group(2) is None:
            return finetune_task(pretrained, cache_dir=cache_dir)
        steps = int(m.group(2))
        if steps < 1:
            raise ValueError(f"pretraining steps must be >= 1 in {name!r}")
        return finetune_task(True, pretrain_steps=steps, cache_dir=cache_dir)
    raise ValueError(f"unknown task {name!r}: use {TASK_NAMES_HELP}")
