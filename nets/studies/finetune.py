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

from collections.abc import Callable
from dataclasses import dataclass

from nets.engine.distributed import Communicator
from nets.studies.gap import measure_gap
from nets.studies.pretraining import PRETRAIN_STEPS

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
        profile: A :class:`nets.studies.gap.GapProfile` or its name.
        pretrain_steps: Adam steps of pretraining (task ``gpt-ft-p<steps>`` when it is not
            :data:`PRETRAIN_STEPS`; fewer make a smoke test, not a measurement).
        cache_dir: Folder of the training runs; the pretrained checkpoint goes to the default
            cache folder (``$NETS_CACHE`` or ``runs/cache``), which the CLI points at ``--cache``.
        progress: Called with a note after every training run.
        comm: :class:`nets.engine.distributed.DistributedCommunicator` to share the training grids
            out among the ranks (a rank that trains a fine-tuning run pretrains the checkpoint
            itself unless it finds it in its cache folder).
    """
    if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) \
            or pretrain_steps < 1:
        raise ValueError(f"pretrain_steps must be a positive integer, got {pretrain_steps!r}")
    ft_task = "gpt-ft" if pretrain_steps == PRETRAIN_STEPS else f"gpt-ft-p{pretrain_steps}"
    scratch = measure_gap("gpt-dialect", profile, cache_dir=cache_dir, progress=progress,
                          comm=comm)
    ft = measure_gap(ft_task, profile, cache_dir=cache_dir, progress=progress, comm=comm)
    return FinetuneStudy(scratch, ft)
