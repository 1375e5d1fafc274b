"""The ``explorer`` command: the only package that prints, exits or formats errors."""

from __future__ import annotations

from explorer.cli.main import main, make_parser

__all__ = ["main", "make_parser"]
