"""Hypothesis profile for the proofs tests: no deadline (numba compiles on first call)."""

from hypothesis import HealthCheck, settings

settings.register_profile("proofs", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("proofs")
