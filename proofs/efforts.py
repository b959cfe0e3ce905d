"""Search budgets. "test" is for unit tests (seconds), "default" for `python -m proofs`
(< 3 minutes on 2 cores), "high" searches harder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Effort:
    """How hard each driver searches.

    Attributes:
        name: the effort's name.
        prop1_kappas: condition numbers κ for Proposition 1's tight construction.
        prop1_etas: number of step sizes on Proposition 1's grid.
        prop1_steps: steps t checked per step size.
        prop1_random: random (H, w0) constructions tried against the as-printed existential claim.
        thm1_problems: Monte-Carlo problems for Theorem 1 (each with `thm1_starts` initial points).
        thm1_starts: initial points per Monte-Carlo problem.
        thm1_hypothesis: hypothesis examples per form (targeted search for counterexamples).
        thm1_steps: steps of the per-step check through `quadlab.run`.
        thm1_r_trials: Gaussian initial points for the distribution of r on the paper's cases.
        prop2_beta2: β2 values for Proposition 2.
        prop2_etas: step sizes η for Proposition 2.
        prop2_starts: initial points per (β2, η) pair (plus the special ones).
        prop2_max_steps_factor: steps allowed = factor / (1 − √β2).
        table2_kappas: κ values of the Table 2 families.
        table2_starts: initial points per κ.
    """

    name: str
    prop1_kappas: tuple[float, ...]
    prop1_etas: int
    prop1_steps: int
    prop1_random: int
    thm1_problems: int
    thm1_starts: int
    thm1_hypothesis: int
    thm1_steps: int
    thm1_r_trials: int
    prop2_beta2: tuple[float, ...]
    prop2_etas: tuple[float, ...]
    prop2_starts: int
    prop2_max_steps_factor: float
    table2_kappas: tuple[float, ...]
    table2_starts: int


EFFORTS: dict[str, Effort] = {
    "test": Effort("test", prop1_kappas=(10.0, 1e3), prop1_etas=200, prop1_steps=50,
                   prop1_random=20, thm1_problems=20, thm1_starts=3, thm1_hypothesis=15,
                   thm1_steps=30, thm1_r_trials=200, prop2_beta2=(0.5, 0.9),
                   prop2_etas=(0.1, 1.0), prop2_starts=2, prop2_max_steps_factor=80.0,
                   table2_kappas=(1e1, 1e2, 1e3), table2_starts=2),
    "default": Effort("default", prop1_kappas=(2.0, 10.0, 1e2, 1e3, 5e3, 1e4, 1e6),
                      prop1_etas=4000, prop1_steps=400, prop1_random=2000, thm1_problems=800,
                      thm1_starts=10, thm1_hypothesis=400, thm1_steps=300,
                      thm1_r_trials=20000, prop2_beta2=(0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999),
                      prop2_etas=(1e-3, 0.1, 1.0, 10.0), prop2_starts=12,
                      prop2_max_steps_factor=60.0,
                      table2_kappas=(1e1, 3e1, 1e2, 3e2, 1e3, 5e3, 1e4, 3e4, 1e5),
                      table2_starts=8),
    "high": Effort("high", prop1_kappas=(1.5, 2.0, 10.0, 1e2, 1e3, 5e3, 1e4, 1e5, 1e6, 1e8),
                   prop1_etas=20000, prop1_steps=2000, prop1_random=20000, thm1_problems=3000,
                   thm1_starts=10, thm1_hypothesis=2000, thm1_steps=1000,
                   thm1_r_trials=200000,
                   prop2_beta2=(0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999),
                   prop2_etas=(1e-4, 1e-2, 0.1, 1.0, 10.0, 1e3), prop2_starts=40,
                   prop2_max_steps_factor=80.0,
                   table2_kappas=tuple(10.0 ** (k / 2) for k in range(2, 13)),
                   table2_starts=30),
}


def get_effort(effort: str | Effort) -> Effort:
    """The `Effort` named `effort` (or `effort` itself).

    Args:
        effort: A name of :data:`EFFORTS` or an ``Effort``.

    Raises:
        ValueError: unknown effort name.
    """
    if isinstance(effort, Effort):
        return effort
    if effort not in EFFORTS:
        raise ValueError(f"unknown effort {effort!r}; choose one of {', '.join(EFFORTS)}")
    return EFFORTS[effort]
