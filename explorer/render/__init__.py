"""Server-side rendering: Datashader aggregation and shading, hit-testing, treemap rectangles."""

from __future__ import annotations
