"""Shared test configuration: the hypothesis profiles, registered and loaded once for the run.

``HYPOTHESIS_PROFILE`` picks one: ``default`` (60 examples), ``ci`` (the same, derandomized;
the default when ``CI`` is set) or ``thorough`` (1000 examples). No test module loads a profile
or sets ``max_examples`` itself, so the chosen profile applies to every module (checked by
``tests/test_hypothesis_profiles.py``). No deadline: numba compiles on the first call.

Ctrl-C: a run started in the background by a shell without job control inherits SIGINT
*ignored*, which Python keeps (it then installs no ``KeyboardInterrupt`` handler) and passes on
to every child process. The interrupt tests send SIGINT to this process and to command lines
they start, so Python's default handler is restored here, as in a terminal.
"""

import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else
                                     "default"))

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

