"""Training tasks as values: a model factory, its training data and the batches JS0 is measured on.

A :class:`Task` is a frozen value built by a typed function; its parameters travel in
:attr:`Task.settings` (never encoded in a name), and :meth:`Task.key` — the settings, the data
kind and the import paths of the modules that define the task — is what results caches are
keyed by. The builders:

==========================================  ==================================================
:func:`zoo_task` ``(name)``                 a zoo model (:data:`nets.zoo.models.MODELS`), JS0
                                            on the zoo's own batches
:func:`scaled_mlp_task` ``(scale)``         the 4-layer MLP with its layers scaled by
                                            ``S^(-1, -1/3, 1/3, 1)`` (:mod:`nets.zoo.scaled_mlp`)
:func:`layernorm_task` ``(variant, depth)``  an ``N``-layer Post-LN / Pre-LN / Admin Transformer
                                            LM (:mod:`nets.zoo.ln_transformer`)
:func:`finetune_task` ``(pretrained, …)``   the zoo GPT on the dialect corpus, from scratch or
                                            from the Adam-pretrained checkpoint
                                            (:mod:`nets.studies.pretraining`)
==========================================  ==================================================

The short string names of the command line (``gpt``, ``mlp-s3``, ``postln12``, ``gpt-ft-p15``)
are parsed by :func:`nets.cli.tasks.task_from_name` only; :attr:`Task.label` is a display label
for tables and figures and is never parsed back.

Pools (training data) are drawn with a seed (:data:`nets.studies.pools.POOL_SEED`) different from
the zoo's JS0 batches (seed 0), so the training samples are not the ones the spectrum was measured
on (see :mod:`nets.studies.pools`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType
from typing import Any

import torch

from nets.studies.pools import HELDOUT_SEED, first_batches, make_pool
from nets.studies.pretraining import PRETRAIN_STEPS, finetune_build
from nets.studies.training import LossFn, Pool
from nets.zoo import models as zoo
from nets.zoo.factory import load_factory, seed_arguments
from nets.zoo.ln_transformer import VARIANTS, ln_transformer
from nets.zoo.scaled_mlp import layer_scales, scaled_mlp

__all__ = ["BASE_MODULES", "Task", "factory_task", "finetune_task", "layernorm_task",
           "scaled_mlp_task", "zoo_task"]

#: Modules every task's results depend on: the training loop, the pools and the data.
BASE_MODULES = ("nets.studies.training", "nets.studies.pools", "nets.zoo.data")


def _frozen(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(settings))


@dataclass(frozen=True, eq=False)
class Task:
    """A trainable problem, as a value.

    Two tasks are equal (and hash equal) when their :meth:`key` and ``modules`` are: the key
    identifies the results, the label and the callables do not.

    Attributes:
        label: Display label for tables and figures (never parsed, never part of a cache key).
        data_kind: ``digits``, ``charlm``, ``maskedlm`` or ``dialect`` (what
            :func:`nets.studies.pools.make_pool` builds); ignored when ``make_pool`` is given.
        build: ``build(seed) -> (model, loss_fn)`` at the seeded initialization.
        spectrum_batches: ``() -> list of (inputs, targets)``, the batches JS0 is measured on.
        settings: The task's typed parameters (JSON values). Together with ``data_kind`` and
            ``modules`` they identify the task's results: two tasks with equal keys must build
            the same models and data.
        description: One line for tables.
        modules: Import paths of the modules that define the task (part of its cache key, so
            editing or moving one of them invalidates the cached results).
        make_pool: ``make_pool(n) -> Pool``, a custom training pool (default: the pool of
            ``data_kind`` of :mod:`nets.studies.pools`).
        make_heldout: ``make_heldout(n) -> Pool``, custom held-out samples (default: the
            data kind's held-out pool, or none when ``make_pool`` is custom and this is not
            given).
    """

    label: str
    data_kind: str
    build: Callable[[int], tuple[torch.nn.Module, LossFn]]
    spectrum_batches: Callable[[], list]
    settings: Mapping[str, Any]
    description: str = ""
    modules: tuple[str, ...] = BASE_MODULES
    make_pool: Callable[[int], Pool] | None = field(default=None, compare=False)
    make_heldout: Callable[[int], Pool] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.settings, Mapping) or not self.settings:
            raise ValueError(f"task {self.label!r}: settings must be a non-empty mapping of the "
                             "task's parameters (they key its cached results)")
        if not self.modules or not all(isinstance(m, str) and m for m in self.modules):
            raise ValueError(f"task {self.label!r}: modules must be import paths, "
                             f"got {self.modules!r}")
        object.__setattr__(self, "settings", _frozen(self.settings))
        object.__setattr__(self, "modules", tuple(self.modules))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return (self.key(), self.modules) == (other.key(), other.modules)

    def __hash__(self) -> int:
        return hash((json.dumps(self.key(), sort_keys=True, default=str), self.modules))

    def pool(self, n: int) -> Pool:
        """The training pool of ``n`` samples.

        Args:
            n: Number of samples.

        Returns:
            :class:`nets.studies.training.Pool` (``make_pool(n)`` if given, else the data kind's).
        """
        return self.make_pool(n) if self.make_pool is not None else make_pool(self.data_kind, n)

    def heldout_pool(self, n: int) -> Pool | None:
        """``n`` held-out samples of the task's data, never trained on, or ``None`` if the task
        has none (a custom ``make_pool`` without ``make_heldout``).

        Args:
            n: Number of samples.

        Returns:
            ``make_heldout(n)`` if given, else the data kind's pool drawn with
            :data:`nets.studies.pools.HELDOUT_SEED`.
        """
        if self.make_heldout is not None:
            return self.make_heldout(n)
        if self.make_pool is not None:
            return None
        return make_pool(self.data_kind, n, seed=HELDOUT_SEED)

    def key(self) -> dict[str, Any]:
        """What identifies the task's results: ``{"settings", "data_kind"}`` (JSON values).

        The modules enter the cache key through :func:`labkit.cache.code_version` (``modules=``).
        """
        return {"settings": dict(self.settings), "data_kind": self.data_kind}


def factory_task(spec: str, *, seed: int | None = None) -> Task:
    """The task a user's factory ``module:function`` returns (for ``nets gap --model``).

    Training needs a pool of samples and a seeded builder, not only batches, so a factory
    used with the gap harness returns a :class:`Task` (the factories of ``nets spectrum`` and
    ``nets advise`` return ``(model, loss_fn, data)`` instead). The training runs' model seeds
    are the profile's, passed to :attr:`Task.build`; ``seed`` (``--model-seed``) is handed to
    the factory itself like a model factory's (:func:`nets.zoo.factory.seed_arguments`: a
    ``seed`` or ``generator`` keyword, else only 0), e.g. to draw the task's data, and is added
    to the task's settings as ``factory_seed`` so tasks of different seeds never share cached
    results.

    Args:
        spec: ``module:function`` or ``path/file.py:function`` (:func:`nets.zoo.load_factory`).
        seed: Seed handed to the factory (``None``: called with no argument).

    Returns:
        The :class:`Task` the factory made.

    Raises:
        ValueError: the factory cannot be loaded or raised, or takes no seed and ``seed`` is
            not 0.
        TypeError: it did not return a :class:`Task`.
    """
    factory = load_factory(spec)
    kwargs = seed_arguments(factory, spec, seed)
    try:
        task = factory(**kwargs)
    except Exception as e:  # user code: report which factory failed and how
        raise ValueError(f"the task factory {spec!r} raised {type(e).__name__}: {e}") from e
    if not isinstance(task, Task):
        raise TypeError(f"the factory {spec!r} returned a {type(task).__name__}; for the gap "
                        "harness it must return a nets.studies.tasks.Task (a seeded builder, "
                        "a training pool and the spectrum batches)")
    if kwargs:
        task = replace(task, settings={**task.settings, "factory_seed": seed})
    return task


def zoo_task(name: str) -> Task:
    """A zoo model trained on its data kind (images: digits; ``gpt``: charlm; ``bert``: maskedlm).

    Args:
        name: One of :data:`nets.zoo.models.MODELS`.

    Returns:
        The task; JS0 is measured on the zoo's own batches (``zoo.load(name, seed=0)[2]``).

    Raises:
        ValueError: ``name`` is not a zoo model.
    """
    if name not in zoo.MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose from {', '.join(zoo.MODELS)}")
    kind = {"gpt": "charlm", "bert": "maskedlm"}.get(name, "digits")
    return Task(name, kind, partial(_zoo_build, name), partial(_zoo_batches, name),
                {"task": "zoo", "model": name}, f"zoo model {name}",
                (*BASE_MODULES, "nets.zoo.models"))


def _zoo_build(name: str, seed: int):
    return zoo.load(name, seed=seed)[:2]


def _zoo_batches(name: str) -> list:
    return zoo.load(name, seed=0)[2]


def scaled_mlp_task(scale: float) -> Task:
    """The 4-layer MLP with layer scales ``c = (S^-1, S^-1/3, S^1/3, S)`` on the digits.

    Args:
        scale: The heterogeneity scale ``S >= 1`` (:func:`nets.zoo.scaled_mlp.layer_scales`).

    Returns:
        The task (label ``mlp-s{S:g}``).

    Raises:
        ValueError: ``scale`` is not a finite number ``>= 1``.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}")
    s = float(scale)
    layer_scales(s)  # validates S
    return Task(f"mlp-s{s:g}", "digits", partial(_scaled_build, s),
                partial(first_batches, "digits"), {"task": "scaled_mlp", "scale": s},
                f"4-layer MLP, layer scales S={s:g}", (*BASE_MODULES, "nets.zoo.scaled_mlp"))


def _scaled_build(s: float, seed: int):
    return scaled_mlp(s, seed=seed)


def layernorm_task(variant: str, depth: int) -> Task:
    """An ``N``-layer Transformer LM with Post-LN, Pre-LN or Admin initialization (charlm data).

    Args:
        variant: ``"postln"``, ``"preln"`` or ``"admin"``
            (:data:`nets.zoo.ln_transformer.VARIANTS`).
        depth: Number of layers ``N >= 1``.

    Returns:
        The task (label ``{variant}{depth}``); Admin profiles on the first spectrum batch.

    Raises:
        ValueError: unknown variant or depth < 1.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    return Task(f"{variant}{depth}", "charlm", partial(_ln_build, variant, depth),
                partial(first_batches, "charlm"),
                {"task": "ln_transformer", "variant": variant, "depth": depth},
                f"{variant} Transformer LM, {depth} layers",
                (*BASE_MODULES, "nets.zoo.ln_transformer"))


def _ln_build(variant: str, depth: int, seed: int):
    return ln_transformer(variant, depth, seed=seed, profile_batch=first_batches("charlm")[0])


def finetune_task(pretrained: bool, *, pretrain_steps: int = PRETRAIN_STEPS,
                  cache_dir: str | os.PathLike | None = None) -> Task:
    """The zoo GPT on the dialect corpus, from scratch or from its Adam-pretrained checkpoint.

    Args:
        pretrained: Start from the checkpoint (:func:`nets.studies.pretraining.pretrained_state`)
            instead of the random initialization.
        pretrain_steps: Adam steps of pretraining (only with ``pretrained``).
        cache_dir: Folder of the pretrained checkpoint (default: :func:`labkit.cache.cache_dir`);
            where it is stored does not change the task's results, so it is not a setting.

    Returns:
        The task (label ``gpt-dialect``, ``gpt-ft`` or ``gpt-ft-p{steps}``).

    Raises:
        ValueError: ``pretrain_steps`` is not a positive integer, or is given without
            ``pretrained``.
    """
    if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) \
            or pretrain_steps < 1:
        raise ValueError(f"pretrain_steps must be a positive integer (>= 1), got "
                         f"{pretrain_steps!r}")
    if not pretrained and pretrain_steps != PRETRAIN_STEPS:
        raise ValueError("pretrain_steps applies only to the pretrained task (pretrained=True)")
    modules = (*BASE_MODULES, "nets.zoo.models", "nets.studies.pretraining")
    batches = partial(first_batches, "dialect")
    if not pretrained:
        return Task("gpt-dialect", "dialect",
                    partial(_finetune_build, pretrained=False, steps=pretrain_steps,
                            cache_dir=None),
                    batches, {"task": "finetune", "pretrained": False},
                    "GPT on the dialect corpus, from scratch", modules)
    label = "gpt-ft" if pretrain_steps == PRETRAIN_STEPS else f"gpt-ft-p{pretrain_steps}"
    return Task(label, "dialect",
                partial(_finetune_build, pretrained=True, steps=pretrain_steps,
                        cache_dir=cache_dir),
                batches, {"task": "finetune", "pretrained": True, "pretrain_steps": pretrain_steps},
                "GPT on the dialect corpus, fine-tuned from the Adam-pretrained checkpoint "
                f"({pretrain_steps} steps)", modules)


def _finetune_build(seed: int, *, pretrained: bool, steps: int, cache_dir):
    return finetune_build(seed, pretrained=pretrained, steps=steps, directory=cache_dir)

