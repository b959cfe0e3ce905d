"""Entry point: `python -m proofs`."""

import sys

from .cli import main

sys.exit(main())
