"""The ``projectionist`` command line (registered in ``program``, one module per command group)."""

from consumers.cli.program import app, main

__all__ = ["app", "main"]
