"""Figure 6 analogue: pretrain with Adam, then fine-tune; heterogeneity and the SGD gap.

Everything is local (no downloaded weights):

1. **Pretraining**: the zoo GPT (:func:`nets.zoo.models.load` ``"gpt"``, seed ``s``) is trained with
   Adam (``lr = 3e-3``, batch 32, :data:`PRETRAIN_STEPS` steps) on the grammar corpus
   (next-character pool of 2048 sequences, :func:`nets.studies.pools.make_pool` ``"charlm"``). The
   checkpoint is cached on disk like every other result.
2. **Downstream task**: the *dialect* corpus — grammar text from another seed with the letters
   ``a`` and ``o`` swapped: the same syntax, shifted surface statistics, so pretraining helps
   but does not solve it.
3. **Comparison**: task ``gpt-dialect`` (from random initialization) vs ``gpt-ft`` (from the
   pretrained checkpoint), both on the dialect pool: JS at the starting point (JS0 of each
   task, measured on the dialect batches) and the tuned SGD–Adam gap
   (:func:`nets.studies.gap.measure_gap`).

The paper reports that the pretrained GPT-2 is less heterogeneous than at initialization and
that SGD's gap on fine-tuning is smaller.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nets.engine.distributed import Communicator
from nets.studies.gap import GapProfile, measure_gap
from nets.studies.pretraining import PRETRAIN_STEPS
from nets.studies.tasks import finetune_task

__all__ = ["FinetuneStudy", "finetune_study"]


@dataclass(frozen=True)
class FinetuneStudy:
    """JS at the starting point and the tuned gap, from scratch vs from the checkpoint.

    Attributes:
        scratch: :class:`nets.studies.gap.GapReport` of ``gpt-dialect`` (JS0 at random init).
        finetune: :class:`nets.studies.gap.GapReport` of ``gpt-ft`` (JS at the checkpoint).
    """

    scratch: object
    finetune: object

    def rows(self) -> list[dict]:
        """One row per start (scratch, fine-tune) and batch size: JS at the start, losses, gap."""
        out = []
        for label, rep in (("from scratch", self.scratch), ("fine-tune", self.finetune)):
            for r in rep.results:
                out.append({"start": label, "B": r.batch_size, "js": rep.js0,
                            "sgd_loss": r.sgd.final_loss, "adam_loss": r.adam.final_loss,
                            "gap": r.gap})
        return out

    def to_dict(self) -> dict:
        """Both reports and the rows as plain values."""
        return {"scratch": self.scratch.to_dict(), "finetune": self.finetune.to_dict(),
                "rows": self.rows()}


def finetune_study(profile: str | GapProfile = "quick", *, pretrain_steps: int = PRETRAIN_STEPS,
                   cache_dir: str | os.PathLike | None = None,
                   checkpoint_dir: str | os.PathLike | None = None,
                   progress: Callable[[str], None] | None = None,
                   comm: Communicator | None = None,
                   device: str | torch.device = "cpu") -> FinetuneStudy:
    """Run the comparison (see the module docstring) under a gap profile.

    Args:
        profile: A :class:`nets.studies.gap.GapProfile` or its name.
        pretrain_steps: Adam steps of pretraining (fewer than :data:`PRETRAIN_STEPS` make a
            smoke test, not a measurement).
        cache_dir: Folder of the training runs.
        checkpoint_dir: Folder of the pretrained checkpoint (default: ``cache_dir``).
        progress: Called with a note after every training run.
        comm: :class:`nets.engine.distributed.DistributedCommunicator` to share the training grids
            out among the ranks (a rank that trains a fine-tuning run pretrains the checkpoint
            itself unless it finds it in its cache folder).
        device: Where the fine-tuning and from-scratch runs train and JS0 is computed
            (:func:`nets.studies.gap.measure_gap`); the Adam-pretrained checkpoint itself is
            computed once on the CPU and cached (:func:`nets.studies.pretraining.pretrained_state`).
    """
    ckpt = cache_dir if checkpoint_dir is None else checkpoint_dir
    ft_task = finetune_task(True, pretrain_steps=pretrain_steps, cache_dir=ckpt)
    scratch = measure_gap(finetune_task(False), profile, cache_dir=cache_dir, progress=progress,
                          comm=comm, device=device)
    ft = measure_gap(ft_task, profile, cache_dir=cache_dir, progress=progress, comm=comm,
                     device=device)
    return FinetuneStudy(scratch, ft)
