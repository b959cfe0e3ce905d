"""Studies on the quadratic lab: Figure 8 (tuned GD vs Adam on the four cases), the Newton view
of Adam's second moment, Adam's ε, and the batch-size study, with the settings they share with
the command line and the figure job."""

from quadlab.studies.batch import BatchCurve, BatchResult, batch_studies, batch_study
from quadlab.studies.eps import EPS_VARIANTS, EpsResult, EpsRow, eps_study, softsign
from quadlab.studies.figure8 import DEFAULT_OPTIMIZERS, StudyResult, StudyRun, run_study
from quadlab.studies.newton import NewtonResult, NewtonRow, newton_study
from quadlab.studies.settings import SETTINGS, settings_for

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "EPS_VARIANTS",
    "SETTINGS",
    "BatchCurve",
    "BatchResult",
    "EpsResult",
    "EpsRow",
    "NewtonResult",
    "NewtonRow",
    "StudyResult",
    "StudyRun",
    "batch_studies",
    "batch_study",
    "eps_study",
    "newton_study",
    "run_study",
    "settings_for",
    "softsign",
]
