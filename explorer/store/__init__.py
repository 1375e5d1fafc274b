"""The projection store: its on-disk format, atomic writes and the read-only reader."""

from __future__ import annotations
