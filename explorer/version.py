"""The package version, in a module of its own so importing it pulls in nothing else."""

from __future__ import annotations

__version__ = "0.1.0"
