"""Hypothesis strategies for testing your own conjectures about block-diagonal quadratics.

Re-exported from `quadlab.strategies` (block-diagonal PD problems with controlled spectra and
initial points, adversarial ones included), plus `tight_prop1` for Proposition 1's construction.

Example (a conjecture in three lines)::

    from hypothesis import given
    from proofs.strategies import problems_with_start
    from proofs import check_thm1, THM1_CORRECTED

    @given(problems_with_start(adversarial=True))
    def test_theorem1_corrected(case):
        assert check_thm1(*case, statement=THM1_CORRECTED).holds
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from quadlab import Problem
from quadlab.strategies import block_spectra, initial_points, problems, problems_with_start

from .prop1 import tight_construction

__all__ = ["block_spectra", "initial_points", "problems", "problems_with_start", "tight_prop1"]


def tight_prop1(*, min_log10_kappa: float = 0.1, max_log10_kappa: float = 8.0
                ) -> st.SearchStrategy[tuple[Problem, np.ndarray]]:
    """(problem, w0) pairs of Proposition 1's tight construction H = diag(1, κ), w0 = (κ, 1),
    with log10 κ uniform in [min_log10_kappa, max_log10_kappa].

    Args:
        min_log10_kappa: Smallest log10 κ.
        max_log10_kappa: Largest log10 κ.
    """
    return st.floats(min_log10_kappa, max_log10_kappa).map(
        lambda x: tight_construction(10.0 ** x))
