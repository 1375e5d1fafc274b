"""Server-side rendering of millions of points into one RGBA frame (the browser gets pixels).

``render(index, viewport, ...)`` bins every point in view into pixels with our numba
kernels (Datashader's pixel rule, a private buffer per thread), shades the aggregate
(density, categories or a per-pixel mean/max of a numeric column), spreads isolated points,
and draws an optional highlighted subset over the dimmed rest. ``encode_png`` (from
``explorer.render.png``) turns the frame into a small PNG for the websocket.

Picture semantics follow Datashader: ``aggregate_count`` equals ``Canvas.points(...,
ds.count())`` and ``aggregate_categories`` equals ``ds.by(cat, ds.count())`` pixel for
pixel; categorical colour is the count-weighted mean of category colours, with alpha from
``min_alpha`` to 255 scaled by ``how``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.render import _kernels, _shade
from explorer.render._binning import (
    ReadPath,
    Rows,
    bin_count,
    bin_rgb,
    bin_values,
    chunked,
    gathered_rows,
    n_chunks,
    rows_for,
)
from explorer.render._shade import DEFAULT_COUNT_CMAP
from explorer.render.colors import CategoricalColor, NumericColor, categorical_color
from explorer.render.hittest import points_in_box, points_in_polygon
from explorer.render.index import PointIndex, Viewport, nearest_point
from explorer.render.png import encode_png


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
class _Layer:
    rgba: NDArray[np.uint32]
    nonzero: NDArray[np.bool_]
    n_in: int
    span: tuple[float, float] | None = None
    slot_counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def aggregate_count(
    index: PointIndex,
    viewport: Viewport,
    *,
    mask: NDArray[np.bool_] | None = None,
    path: ReadPath = "auto",
) -> NDArray[np.uint32]:
    """Points per pixel: (height, width) uint32, equal to Datashader's ``ds.count()``.

    ``mask`` (n,) bool keeps only its True points. ``path`` forces reading through the
    spatial index (``"index"``) or a full scan (``"scan"``); the result is the same.
    """
    rows, _ = rows_for(index, viewport, mask, None, path=path)
    return bin_count(rows, viewport)[0]


def aggregate_categories(
    index: PointIndex,
    viewport: Viewport,
    codes: NDArray[np.integer],
    n_codes: int,
    *,
    mask: NDArray[np.bool_] | None = None,
    path: ReadPath = "auto",
) -> NDArray[np.uint32]:
    """Points per pixel per code: (height, width, n_codes) uint32, as ``ds.by(c, ds.count())``.

    ``codes`` (n,) integer in ``[0, n_codes)``. For tests and exports: ``render`` does not
    need it (it sums colours directly, which is why categorical frames are cheap).
    """
    codes = _check_codes(codes, index.n_points, n_codes)
    rows, codes = rows_for(index, viewport, mask, codes, path=path)  # type: ignore[assignment]
    w, h, vp = viewport.width, viewport.height, viewport.transform()
    buf = np.zeros((n_chunks(rows), h * w, n_codes), np.uint32)
    chunked(
        rows,
        lambda pieces, k: _kernels.bin_codes(
            rows.xy, pieces, rows.perm, rows.mask, codes, vp, w, h, buf[k]
        ),
    )
    out: NDArray[np.uint32] = buf.sum(axis=0, dtype=np.uint32).reshape(h, w, n_codes)
    return out


def _check_codes(codes: NDArray[np.integer], n: int, n_codes: int) -> NDArray[np.integer]:
    codes = np.asarray(codes)
    if codes.shape != (n,) or codes.dtype.kind not in "ui":
        msg = f"codes must be an integer array of shape ({n},), got {codes.dtype} {codes.shape}"
        raise InputError(msg)
    if n and (int(codes.min()) < 0 or int(codes.max()) >= n_codes):
        msg = f"codes must lie in [0, {n_codes}); recode the column before colouring by it"
        raise InputError(msg)
    return codes


def _draw(
    rows: Rows,
    viewport: Viewport,
    color: CategoricalColor | NumericColor | None,
    attr: NDArray[np.generic] | None,
    how: str,
    cmap: str | tuple[str, ...] | None,
    min_alpha: int,
) -> _Layer:
    """Aggregate ``rows`` and shade them according to ``color``."""
    if isinstance(color, CategoricalColor):
        acc, code_counts = bin_rgb(rows, viewport, attr, color.code_rgb())  # type: ignore[arg-type]
        rgba = _shade.shade_rgb(acc, how, min_alpha)
        slot_counts = np.bincount(
            color.slot_of_code, weights=code_counts, minlength=len(color.labels)
        ).astype(np.int64)
        return _Layer(rgba, acc[..., 0] > 0, int(code_counts.sum()), None, slot_counts)
    if isinstance(color, NumericColor):
        use_max = color.reduction == "max"
        acc_v, n_in = bin_values(rows, viewport, attr, use_max=use_max)  # type: ignore[arg-type]
        lut = _shade.cmap_lut(cmap or color.cmap)
        rgba, span = _shade.shade_values(
            acc_v, lut, mean=color.reduction == "mean", span=color.span
        )
        return _Layer(rgba, acc_v[..., 0] > 0, n_in, span)
    counts, n_in = bin_count(rows, viewport)
    rgba = _shade.shade_counts(counts, _shade.cmap_lut(cmap or DEFAULT_COUNT_CMAP), how)
    nonzero = counts > 0
    span = (float(counts[nonzero].min()), float(counts.max())) if n_in else None
    return _Layer(rgba, nonzero, n_in, span)


def render(
    index: PointIndex,
    viewport: Viewport,
    *,
    color: CategoricalColor | NumericColor | None = None,
    mask: NDArray[np.bool_] | None = None,
    highlight: NDArray[np.integer] | None = None,
    how: str = "eq_hist",
    cmap: str | tuple[str, ...] | None = None,
    spread: int | Literal["auto"] = "auto",
    min_alpha: int = 40,
    dim: float = 0.25,
    path: ReadPath = "auto",
) -> Frame:
    """Draw every point of ``index`` inside ``viewport`` into one RGBA frame.

    color : None (density through ``cmap``, default light to dark blue), a
        ``CategoricalColor`` (mean of category colours, alpha by density) or a
        ``NumericColor`` (per-pixel mean or max of a column through its colour map).
    mask : (n,) bool, only True points are drawn (filters).
    highlight : (k,) int64 unique point indices drawn over the rest, whose alpha is
        multiplied by ``dim``; masked-out highlighted points stay hidden.
    how : density scaling, ``"eq_hist"``, ``"log"``, ``"cbrt"`` or ``"linear"``.
    spread : radius in pixels by which drawn pixels grow into empty ones, or ``"auto"``
        (1 to 3 px, more when points are isolated) so single points stay visible.
    """
    rows, attr = rows_for(index, viewport, mask, _attr(color), path=path)
    layer = _draw(rows, viewport, color, attr, how, cmap, min_alpha)
    radius = _shade.spread_radius(layer.nonzero) if spread == "auto" else int(spread)
    rgba = _shade.spread(layer.rgba, radius)
    n_highlight = 0
    if highlight is not None:
        take = _check_highlight(highlight, index.n_points)
        sub_mask = None if mask is None else np.asarray(mask)[take]
        sub_color = None if color is None else color.take(take)
        sub_rows = gathered_rows(index.coords[take], sub_mask)
        top = _draw(sub_rows, viewport, sub_color, _attr(sub_color), how, cmap, min_alpha)
        rgba = _shade.composite(rgba, _shade.spread(top.rgba, radius), dim)
        n_highlight = top.n_in
    legend: tuple[LegendEntry, ...] = ()
    if isinstance(color, CategoricalColor):
        legend = tuple(
            LegendEntry(label, hex_, int(count))
            for label, hex_, count in zip(
                color.labels, color.colors, layer.slot_counts, strict=True
            )
        )
    return Frame(rgba, viewport, layer.n_in, n_highlight, legend, layer.span, radius)


def _attr(color: CategoricalColor | NumericColor | None) -> NDArray[np.generic] | None:
    if isinstance(color, CategoricalColor):
        return color.codes
    if isinstance(color, NumericColor):
        return color.values
    return None


def _check_highlight(highlight: NDArray[np.integer], n: int) -> NDArray[np.int64]:
    take = np.asarray(highlight)
    if take.ndim != 1 or take.dtype.kind not in "ui":
        msg = f"highlight must be a 1-D integer index array, got {take.dtype} {take.shape}"
        raise InputError(msg)
    take = take.astype(np.int64, copy=False)
    if take.size and (int(take.min()) < 0 or int(take.max()) >= n):
        msg = f"highlight indices must lie in [0, {n}); the selection belongs to another store"
        raise InputError(msg)
    return take


def warm_up(code_dtypes: tuple[type[np.integer], ...] = (np.uint8, np.uint16)) -> None:
    """Load every compiled kernel once, so the first frames a user sees are not slow.

    Numba loads each kernel signature from its disk cache on first use in a process
    (50-150 ms each, measured). This renders a 256-point layout through every path
    (about 1-2 s); call it at server start, e.g. in a background thread.
    """
    rng = np.random.default_rng(0)
    xy = rng.random((256, 2), dtype=np.float32)
    index = PointIndex.build(xy)
    mask = rng.random(256) < 0.5
    values = rng.random(256, dtype=np.float32)
    colors: list[CategoricalColor | NumericColor | None] = [
        None, NumericColor(values), NumericColor(values, reduction="max")
    ]  # fmt: skip
    for dtype in code_dtypes:
        colors.append(categorical_color(rng.integers(0, 3, 256).astype(dtype), ["a", "b", "c"]))
    # The full view makes sorted copies; the small one looks attributes up through perm.
    for vp in (Viewport(0.0, 1.0, 0.0, 1.0, 8, 8), Viewport(0.0, 0.1, 0.0, 0.1, 8, 8)):
        for color in colors:
            for m in (None, mask):
                for path in ("auto", "index", "scan"):
                    render(index, vp, color=color, mask=m, highlight=np.arange(9), path=path)
    for m in (None, mask):
        nearest_point(index, 0.5, 0.5, 0.1, mask=m)
        for points in (xy, index):
            points_in_polygon(points, [0.1, 0.9, 0.5], [0.1, 0.2, 0.9], mask=m)
        points_in_box(xy, 0.1, 0.5, 0.1, 0.5, mask=m)


__all__ = [
    "CategoricalColor",
    "Frame",
    "LegendEntry",
    "NumericColor",
    "PointIndex",
    "Viewport",
    "aggregate_categories",
    "aggregate_count",
    "categorical_color",
    "encode_png",
    "nearest_point",
    "render",
    "warm_up",
]
