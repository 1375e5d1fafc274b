"""Server-side rendering: frames (our kernels over a spatial index where they beat
Datashader, Datashader for the rest and for DataFrames), hit-testing, treemap rectangles."""

from __future__ import annotations
