"""``python -m quadlab``: the command line (:mod:`quadlab.cli`)."""

import os
import sys

from quadlab.cli.app import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # under torchrun: torch's gloo teardown at interpreter exit aborts now and then (exit -6,
    # "terminate called without an active exception") after every result was written; skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
