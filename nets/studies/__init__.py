"""Training studies on real networks: training, tasks, the tuned SGD-vs-Adam gap, Table 1,
Pre/Post-LN,
fine-tuning, and ``advise``. They use the engine (:mod:`nets.engine`) and the zoo (:mod:`nets.zoo`).
"""

from nets.studies.advise import (
    Advice,
    advise,
    check_twice_differentiable,
    checked_user_problem,
)
from nets.studies.advise_ladder import LadderAdvice, advise_ladder
from nets.studies.correlation import SpearmanResult, spearman
from nets.studies.finetune import FinetuneStudy, finetune_study
from nets.studies.gap import (
    PROFILES,
    GapProfile,
    GapReport,
    GapResult,
    gap_metric,
    measure_gap,
    tune,
)
from nets.studies.layernorm import PerturbationStudy, perturbation_study
from nets.studies.pools import HELDOUT_SEED, POOL_SEED, first_batches, make_pool
from nets.studies.table1 import Table1, table1
from nets.studies.tasks import (
    Task,
    factory_task,
    finetune_task,
    layernorm_task,
    scaled_mlp_task,
    zoo_task,
)
from nets.studies.training import Pool, TrainConfig, TrainResult, train

__all__ = [
    "HELDOUT_SEED",
    "POOL_SEED",
    "PROFILES",
    "Advice",
    "FinetuneStudy",
    "GapProfile",
    "GapReport",
    "GapResult",
    "LadderAdvice",
    "PerturbationStudy",
    "Pool",
    "SpearmanResult",
    "Table1",
    "Task",
    "TrainConfig",
    "TrainResult",
    "advise",
    "advise_ladder",
    "check_twice_differentiable",
    "checked_user_problem",
    "factory_task",
    "finetune_study",
    "finetune_task",
    "first_batches",
    "gap_metric",
    "layernorm_task",
    "make_pool",
    "measure_gap",
    "perturbation_study",
    "scaled_mlp_task",
    "spearman",
    "table1",
    "train",
    "tune",
    "zoo_task",
]
