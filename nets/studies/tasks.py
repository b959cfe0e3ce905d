"""Training tasks: a model factory, a training pool and the batches JS0 is computed on.

Names understood by :func:`get_task`:

==================  ==========================================================================
``mlp`` … ``mixer``  the zoo models (:data:`nets.zoo.models.MODELS`), JS0 on the zoo's own batches
``mlp-s{S}``        the 4-layer MLP with its layers scaled by ``S^(-1, -1/3, 1/3, 1)``
                    (:mod:`nets.zoo.scaled_mlp`), e.g. ``mlp-s10``
``postln{N}``       an ``N``-layer Post-LN Transformer LM (:mod:`nets.studies.layernorm`)
``preln{N}``        the same with Pre-LN
``admin{N}``        Post-LN with Admin initialization
``gpt-dialect``     the zoo GPT trained from scratch on the dialect corpus (fine-tuning study)
``gpt-ft``          the same, starting from the GPT pretrained with Adam on the grammar corpus
``gpt-ft-p{N}``     ``gpt-ft`` with ``N`` pretraining steps instead of
                    :data:`~nets.studies.pretraining.PRETRAIN_STEPS`, e.g. ``gpt-ft-p15``
==================  ==========================================================================

Pools (training data) are drawn with a seed (100) different from the zoo's JS0 batches (seed
0), so the training samples are not the ones the spectrum was measured on:

* images: :func:`nets.zoo.data.glyph_digits` (16×16), ``n`` samples;
* ``gpt`` and the Post/Pre-LN LMs: next-character sequences of length 32 of the grammar corpus;
* ``bert``: masked-character sequences (fixed mask).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nets.studies.pools import first_batches, make_pool
from nets.studies.pretraining import PRETRAIN_STEPS, finetune_build
from nets.studies.training import LossFn, Pool
from nets.zoo import models as zoo
from nets.zoo.ln_transformer import ln_transformer
from nets.zoo.scaled_mlp import scaled_mlp

__all__ = ["Task", "get_task"]

@dataclass(frozen=True)
class Task:
    """A trainable problem.

    Attributes:
        name: Registry name.
        data_kind: ``digits``, ``charlm`` or ``maskedlm`` (what :func:`make_pool` builds).
        build: ``build(seed) -> (model, loss_fn)`` at the seeded initialization.
        spectrum_batches: ``() -> list of (inputs, targets)``, the batches JS0 is measured on.
        description: One line for tables.
        sources: ``nets`` source files that define the task (part of its cache key).
    """

    name: str
    data_kind: str
    build: Callable[[int], tuple[torch.nn.Module, LossFn]]
    spectrum_batches: Callable[[], list]
    description: str = ""
    sources: tuple[str, ...] = ("training.py", "tasks.py", "zoo.py", "data.py")

    def pool(self, n: int) -> Pool:
        return make_pool(self.data_kind, n)


def _zoo_task(name: str) -> Task:
    kind = {"gpt": "charlm", "bert": "maskedlm"}.get(name, "digits")
    return Task(name, kind, lambda seed: zoo.load(name, seed=seed)[:2],
                lambda: zoo.load(name, seed=0)[2], f"zoo model {name}")


def get_task(name: str) -> Task:
    """The task called ``name`` (see the module docstring for the names)."""
    if not isinstance(name, str):
        raise TypeError(f"task name must be a string, got {type(name).__name__}")
    if name in zoo.MODELS:
        return _zoo_task(name)
    m = re.fullmatch(r"mlp-s(\d+(?:\.\d+)?)", name)
    if m:
        s = float(m.group(1))
        return Task(name, "digits", lambda seed: scaled_mlp(s, seed=seed),
                    lambda: first_batches("digits"), f"4-layer MLP, layer scales S={s:g}",
                    ("training.py", "tasks.py", "data.py", "heterogeneity.py"))
    m = re.fullmatch(r"(postln|preln|admin)(\d+)", name)
    if m:
        variant, depth = m.group(1), int(m.group(2))
        if depth < 1:
            raise ValueError(f"depth must be >= 1 in {name!r}")
        return Task(name, "charlm",
                    lambda seed: ln_transformer(variant, depth, seed=seed,
                                                profile_batch=first_batches("charlm")[0]),
                    lambda: first_batches("charlm"), f"{variant} Transformer LM, {depth} layers",
                    ("training.py", "tasks.py", "data.py", "zoo.py", "layernorm.py"))
    m = re.fullmatch(r"gpt-(dialect|ft)(?:-p(\d+))?", name)
    if m:
        pretrained = m.group(1) == "ft"
        if m.group(2) is not None and not pretrained:
            raise ValueError(f"{name!r}: only gpt-ft takes a pretraining length (-p<steps>)")
        steps = PRETRAIN_STEPS if m.group(2) is None else int(m.group(2))
        if steps < 1:
            raise ValueError(f"pretraining steps must be >= 1 in {name!r}")
        how = (f"fine-tuned from the Adam-pretrained checkpoint ({steps} steps)" if pretrained
               else "from scratch")
        return Task(name, "dialect",
                    lambda seed: finetune_build(seed, pretrained=pretrained, steps=steps),
                    lambda: first_batches("dialect"), f"GPT on the dialect corpus, {how}",
                    ("training.py", "tasks.py", "zoo.py", "data.py", "finetune.py"))
    raise ValueError(f"unknown task {name!r}: use a zoo model ({', '.join(zoo.MODELS)}), "
                     "mlp-s<scale>, postln<N>, preln<N>, admin<N>, gpt-dialect, gpt-ft or "
                     "gpt-ft-p<steps>")
