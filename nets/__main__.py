"""``python -m nets``: the command line (:mod:`nets.cli`)."""

import os
import sys

from nets.cli.app import main
from nets.engine.distributed import launched_by_torchrun

code = main()
if launched_by_torchrun():
    # torch's gloo teardown at interpreter exit aborts now and then ("terminate called without
    # an active exception", exit -6; seen with torch 2.13 in about 1 run in 10) after the process
    # group was destroyed and every result written: skip that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
