"""proofs — numerical checks of the theory of "Why Transformers Need Adam: A Hessian Perspective"
(Zhang et al., arXiv 2402.16788, §3.2): Proposition 1, Theorem 1, Proposition 2 and Table 2,
each as printed and, where the printed form fails, in the nearest form that holds.

`python -m proofs` prints the verdict table; `python -m proofs --json` the verdicts as JSON.
"""

from labkit.interrupts import guard_startup

# Before the heavy imports below: Ctrl-C while they load (`python -m proofs`) prints one
# line and exits 130 instead of an import traceback.
guard_startup("proofs", prog="python -m proofs")

from .efforts import EFFORTS, Effort, get_effort
from .prop1 import CORRECTED as PROP1_CORRECTED
from .prop1 import PRINTED as PROP1_PRINTED
from .prop1 import Prop1Result, Prop1Statement, check_prop1, search_prop1, tight_construction
from .prop2 import (
    cycle_multipliers,
    cycle_state,
    exact_run,
    search_prop2,
    simulate_log,
)
from .report import format_table, run_all
from .strategies import (
    block_spectra,
    initial_points,
    problems,
    problems_with_start,
    tight_prop1,
)
from .table2 import search_table2
from .thm1 import CORRECTED as THM1_CORRECTED
from .thm1 import PRINTED as THM1_PRINTED
from .thm1 import SHARP as THM1_SHARP
from .thm1 import Thm1Result, Thm1Statement, check_thm1, check_thm1_batch, search_thm1
from .verdict import Verdict

__all__ = [
    "EFFORTS",
    "PROP1_CORRECTED",
    "PROP1_PRINTED",
    "THM1_CORRECTED",
    "THM1_PRINTED",
    "THM1_SHARP",
    "Effort",
    "Prop1Result",
    "Prop1Statement",
    "Thm1Result",
    "Thm1Statement",
    "Verdict",
    "block_spectra",
    "check_prop1",
    "check_thm1",
    "check_thm1_batch",
    "cycle_multipliers",
    "cycle_state",
    "exact_run",
    "format_table",
    "get_effort",
    "initial_points",
    "problems",
    "problems_with_start",
    "run_all",
    "search_prop1",
    "search_prop2",
    "search_table2",
    "search_thm1",
    "simulate_log",
    "tight_construction",
    "tight_prop1",
]
