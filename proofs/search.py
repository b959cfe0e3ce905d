"""Counterexample search with hypothesis, usable from library code (no pytest needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import seed as hypothesis_seed
from hypothesis.strategies import SearchStrategy


def hypothesis_search(strategy: SearchStrategy, evaluate: Callable[[Any], tuple[float, Any]],
                      *, max_examples: int, seed: int = 0) -> list[Any]:
    """Run hypothesis over `strategy`, steering it (`hypothesis.target`) towards high scores.

    Args:
        strategy: a hypothesis strategy of instances.
        evaluate: instance → (score, record); larger score = closer to a counterexample.
            Return `None` to skip an instance (e.g. a measure-zero degenerate draw).
        max_examples: hypothesis' example budget.
        seed: hypothesis seed (runs are reproducible).

    Returns:
        The records of every evaluated instance, in order.
    """
    records: list[Any] = []

    @hypothesis_seed(seed)
    @settings(max_examples=int(max_examples), deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.target],
              derandomize=False, print_blob=False)
    @given(strategy)
    def probe(instance):
        out = evaluate(instance)
        if out is None:
            return
        score, record = out
        records.append(record)
        target(float(score), label="score")

    probe()
    return records
