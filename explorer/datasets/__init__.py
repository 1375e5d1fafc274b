"""Data we ship or generate: the digits sample and a large synthetic mixture."""

from __future__ import annotations
