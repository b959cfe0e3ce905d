"""The ``nets`` command line: parsing and printing over the library (``python -m nets``)."""

from nets.cli.app import main

__all__ = ["main"]
