"""The `theappapp-sandbox` command line (entry point: `main`)."""

from runtime.cli.commands import main

__all__ = ["main"]
