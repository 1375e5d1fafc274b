"""A rendered frame, and how every render path assembles one from its aggregates.

Both paths, ``render`` over a ``PointIndex`` (our kernels, Datashader for numeric colour)
and ``render_frame_dataframe`` over a pandas or Dask DataFrame (Datashader only), end in
the functions here: an aggregate becomes a shaded ``Layer``; a base layer, an optional
highlighted layer on top, spreading and the legend become a ``Frame``. Equal aggregates
therefore give equal pixels, whichever path made them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from explorer.render import _shade
from explorer.render._shade import DEFAULT_COUNT_CMAP
from explorer.render.colors import CategoricalColor, NumericColor
from explorer.render.index import Viewport


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: a category label, its colour and its number of points in view."""

    label: str
    color: str
    count: int


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered image and what the app shows beside it.

    rgba : (height, width) uint32, Bokeh ``image_rgba`` layout (row 0 = ``viewport.y0``).
    n_in_view : points drawn (inside the viewport and the mask).
    n_highlight_in_view : highlighted points drawn.
    legend : categories with colours and in-view counts (empty unless categorical).
    span : the numeric colour bar's (low, high), or the per-pixel count range otherwise.
    spread : the spreading radius used, in pixels.
    """

    rgba: NDArray[np.uint32]
    viewport: Viewport
    n_in_view: int
    n_highlight_in_view: int = 0
    legend: tuple[LegendEntry, ...] = ()
    span: tuple[float, float] | None = None
    spread: int = 0


@dataclass(frozen=True, eq=False)
class Layer:
    """One shaded aggregate: its pixels, which are drawn, and what the legend needs."""

    rgba: NDArray[np.uint32]
    nonzero: NDArray[np.bool_]
    n_in: int
    span: tuple[float, float] | None = None
    slot_counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def count_layer(
    counts: NDArray[np.unsignedinteger], how: str, cmap: str | tuple[str, ...] | None
) -> Layer:
    """Points per pixel (h, w) shaded by density through ``cmap``."""
    rgba = _shade.shade_counts(counts, _shade.cmap_lut(cmap or DEFAULT_COUNT_CMAP), how)
    nonzero = counts > 0
    n_in = int(counts.sum(dtype=np.int64))
    span = (float(counts[nonzero].min()), float(counts.max())) if n_in else None
    return Layer(rgba, nonzero, n_in, span)


def category_layer(
    acc: NDArray[np.unsignedinteger],
    code_counts: NDArray[np.int64],
    color: CategoricalColor,
    how: str,
    min_alpha: int,
) -> Layer:
    """``[count, R sum, G sum, B sum]`` per pixel (h, w, 4) and points per code, shaded."""
    rgba = _shade.shade_rgb(acc, how, min_alpha)
    slot_counts = np.bincount(
        color.slot_of_code, weights=code_counts, minlength=len(color.labels)
    ).astype(np.int64)
    return Layer(rgba, acc[..., 0] > 0, int(code_counts.sum()), None, slot_counts)


def by_category_layer(
    by: NDArray[np.unsignedinteger], color: CategoricalColor, how: str, min_alpha: int
) -> Layer:
    """Datashader's ``ds.by(codes, ds.count())`` aggregate (h, w, n_codes), shaded.

    Turned into the colour sums our categorical kernel makes while binning (exact integer
    sums), so both give the same pixels.
    """
    counts = by.astype(np.uint64, copy=False)
    acc = np.empty((*by.shape[:2], 4), np.uint64)
    acc[..., 0] = counts.sum(axis=2, dtype=np.uint64)
    acc[..., 1:] = counts @ color.code_rgb().astype(np.uint64)
    code_counts = counts.sum(axis=(0, 1), dtype=np.uint64).astype(np.int64)
    return category_layer(acc, code_counts, color, how, min_alpha)


def numeric_layer(
    values: NDArray[np.floating], n_in: int, color: NumericColor, cmap: str | tuple[str, ...] | None
) -> Layer:
    """A per-pixel mean, max or min (h, w) float, NaN where no point has a value, shaded."""
    lut = _shade.cmap_lut(cmap or color.cmap)
    rgba, span = _shade.shade_values(values, lut, span=color.span)
    return Layer(rgba, np.isfinite(values), n_in, span)


def assemble(
    viewport: Viewport,
    base: Layer,
    top: Layer | None,
    color: CategoricalColor | NumericColor | None,
    *,
    spread: int | Literal["auto"],
    dim: float,
) -> Frame:
    """The frame: ``base`` spread, then ``top`` (the highlighted points) over it dimmed."""
    radius = _shade.spread_radius(base.nonzero) if spread == "auto" else int(spread)
    rgba = _shade.spread(base.rgba, radius)
    if top is not None:
        rgba = _shade.composite(rgba, _shade.spread(top.rgba, radius), dim)
    legend: tuple[LegendEntry, ...] = ()
    if isinstance(color, CategoricalColor):
        legend = tuple(
            LegendEntry(label, hex_, int(count))
            for label, hex_, count in zip(color.labels, color.colors, base.slot_counts, strict=True)
        )
    n_top = 0 if top is None else top.n_in
    return Frame(rgba, viewport, base.n_in, n_top, legend, base.span, radius)
