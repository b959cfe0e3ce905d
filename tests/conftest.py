"""Shared test configuration: the hypothesis profiles, registered and loaded once for the run.

``HYPOTHESIS_PROFILE`` picks one: ``default`` (60 examples), ``ci`` (the same, derandomized;
the default when ``CI`` is set) or ``thorough`` (1000 examples). No test module loads a profile
or sets ``max_examples`` itself, so the chosen profile applies to every module (checked by
``tests/test_hypothesis_profiles.py``). No deadline: numba compiles on the first call.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else
                                     "default"))
