"""Pure compute functions: numpy arrays in, numpy arrays out, a seed, no I/O."""

from __future__ import annotations
