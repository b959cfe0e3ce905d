"""The ``quadlab`` command line: parsing and printing over the library (``python -m quadlab``)."""

from quadlab.cli.app import main

__all__ = ["main"]
