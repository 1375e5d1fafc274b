"""Server-side rendering of millions of points into one RGBA frame (the browser gets pixels).

``render(index, viewport, ...)`` draws the points of a ``PointIndex``: count and
categorical frames are binned by our numba kernels over the index (Datashader's pixel rule,
a private buffer per thread), the fast path where ``benchmarks/render.py`` shows a gain;
numeric colour (a per-pixel mean, max or min) is aggregated by Datashader over the rows
the index selects. ``render_frame_dataframe`` (``explorer.render.dataframe``) draws a
pandas or Dask DataFrame through Datashader alone, pixel-equal to ``render`` on the same
points. Both shade, spread and highlight through ``explorer.render.frame``.
``encode_png`` turns a frame into a small PNG for the websocket. docs/render.md says which
path draws what, with the figures.

Picture semantics follow Datashader: ``aggregate_count`` equals ``Canvas.points(...,
ds.count())`` pixel for pixel, the categorical kernel's per-pixel counts equal
``ds.by(codes, ds.count())``; categorical colour is the count-weighted mean of category
colours, with alpha from ``min_alpha`` to 255 scaled by ``how``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.render._binning import (
    ReadPath,
    Rows,
    bin_count,
    bin_rgb,
    gathered_rows,
    points_frame,
    rows_for,
    rows_frame,
)
from explorer.render.colors import CategoricalColor, NumericColor, categorical_color
from explorer.render.dataframe import numeric_aggregate, render_frame_dataframe
from explorer.render.frame import (
    Frame,
    Layer,
    LegendEntry,
    assemble,
    category_layer,
    count_layer,
    numeric_layer,
)
from explorer.render.hittest import points_in_box, points_in_polygon
from explorer.render.index import PointIndex, Viewport, nearest_point
from explorer.render.png import encode_png


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


def _kernel_layer(
    rows: Rows,
    viewport: Viewport,
    color: CategoricalColor | None,
    codes: NDArray[np.generic] | None,
    how: str,
    cmap: str | tuple[str, ...] | None,
    min_alpha: int,
) -> Layer:
    """Count or categorical ``rows`` binned by our kernels, then shaded."""
    if color is not None:
        acc, code_counts = bin_rgb(rows, viewport, codes, color.code_rgb())  # type: ignore[arg-type]
        return category_layer(acc, code_counts, color, how, min_alpha)
    return count_layer(bin_count(rows, viewport)[0], how, cmap)


def _numeric_layer(
    frame: pd.DataFrame, viewport: Viewport, color: NumericColor, cmap: str | tuple[str, ...] | None
) -> Layer:
    values, n_in = numeric_aggregate(frame, viewport, "x", "y", "v", color.reduction)
    return numeric_layer(values, n_in, color, cmap)


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
        ``NumericColor`` (per-pixel mean, max or min of a column through its colour map).
    mask : (n,) bool, only True points are drawn (filters).
    highlight : (k,) int64 unique point indices drawn over the rest, whose alpha is
        multiplied by ``dim``; masked-out highlighted points stay hidden.
    how : density scaling, ``"eq_hist"``, ``"log"``, ``"cbrt"`` or ``"linear"``.
    spread : radius in pixels by which drawn pixels grow into empty ones, or ``"auto"``
        (1 to 3 px, more when points are isolated) so single points stay visible.

    Count and categorical frames are binned by our kernels over the index; numeric ones
    by Datashader over the rows the index selects (docs/render.md says why).
    """
    if isinstance(color, NumericColor):
        frame = rows_frame(index, viewport, mask, np.asarray(color.values), path=path)
        base = _numeric_layer(frame, viewport, color, cmap)
    else:
        rows, codes = rows_for(index, viewport, mask, _codes(color), path=path)
        base = _kernel_layer(rows, viewport, color, codes, how, cmap, min_alpha)
    top = None
    if highlight is not None:
        take = _check_highlight(highlight, index.n_points)
        keep = None if mask is None else np.asarray(mask)[take]
        top = _subset_layer(index.coords[take], keep, take, color, how, cmap, min_alpha, viewport)
    return assemble(viewport, base, top, color, spread=spread, dim=dim)


def _subset_layer(
    xy: NDArray[np.float32],
    keep: NDArray[np.bool_] | None,
    take: NDArray[np.int64],
    color: CategoricalColor | NumericColor | None,
    how: str,
    cmap: str | tuple[str, ...] | None,
    min_alpha: int,
    viewport: Viewport,
) -> Layer:
    """The layer of the points ``take`` (already gathered into ``xy``), drawn on top."""
    if isinstance(color, NumericColor):
        sub = points_frame(xy, color.values[take], keep)
        return _numeric_layer(sub, viewport, color, cmap)
    sub_color = None if color is None else color.take(take)
    rows = gathered_rows(xy, keep)
    return _kernel_layer(rows, viewport, sub_color, _codes(sub_color), how, cmap, min_alpha)


def _codes(color: CategoricalColor | None) -> NDArray[np.generic] | None:
    return None if color is None else color.codes


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


def warm_up(
    code_dtypes: tuple[type[np.integer], ...] = (np.uint8, np.uint16),
    *,
    datashader: bool = True,
    dataframe: bool = False,
    pause: Callable[[], None] | None = None,
) -> None:
    """Load every compiled kernel once, so the first frames a user sees are not slow.

    Numba loads each of our kernels from its disk cache on first use in a process (50-150
    ms each, measured); Datashader compiles each aggregation on first use (~0.7-1 s each
    on a quiet machine, never cached on disk). This renders a 256-point layout through
    every path of our kernels, then (``datashader``) through the numeric mean, max and
    min, then (``dataframe``) through ``render_frame_dataframe`` for every colour. Call it
    at server start, e.g. in a background thread. ``pause`` is called before each colour's
    kernels: a server waits there until no frame is being drawn (compiling holds the GIL).
    """
    rng = np.random.default_rng(0)
    xy = rng.random((256, 2), dtype=np.float32)
    index = PointIndex.build(xy)
    mask = rng.random(256) < 0.5
    colors: list[CategoricalColor | NumericColor | None] = [None]
    for dtype in code_dtypes:
        colors.append(categorical_color(rng.integers(0, 3, 256).astype(dtype), ["a", "b", "c"]))
    if datashader or dataframe:
        values = rng.random(256, dtype=np.float32)
        colors += [NumericColor(values, reduction=r) for r in ("mean", "max", "min")]
    viewports = (Viewport(0.0, 1.0, 0.0, 1.0, 8, 8), Viewport(0.0, 0.1, 0.0, 0.1, 8, 8))
    # The full view makes sorted copies; the small one looks attributes up through perm.
    for color in colors if datashader else colors[: 1 + len(code_dtypes)]:
        if pause is not None:
            pause()
        for vp in viewports:
            for m in (None, mask):
                for path in ("auto", "index", "scan"):
                    render(index, vp, color=color, mask=m, highlight=np.arange(9), path=path)
        if color is None:
            _warm_hit_tests(index, mask)
    if dataframe:
        if pause is not None:
            pause()
        df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "m": mask, "h": ~mask})
        for color in colors:
            if color is not None:
                df["c"] = color.codes if isinstance(color, CategoricalColor) else color.values
            render_frame_dataframe(
                df,
                viewports[0],
                color=color,
                color_column="c",
                mask_column="m",
                highlight_column="h",
            )


def _warm_hit_tests(index: PointIndex, mask: NDArray[np.bool_]) -> None:
    for m in (None, mask):
        nearest_point(index, 0.5, 0.5, 0.1, mask=m)
        for points in (index.coords, index):
            points_in_polygon(points, [0.1, 0.9, 0.5], [0.1, 0.2, 0.9], mask=m)
        points_in_box(index.coords, 0.1, 0.5, 0.1, 0.5, mask=m)


__all__ = [
    "CategoricalColor",
    "Frame",
    "LegendEntry",
    "NumericColor",
    "PointIndex",
    "Viewport",
    "aggregate_count",
    "categorical_color",
    "encode_png",
    "nearest_point",
    "render",
    "render_frame_dataframe",
    "warm_up",
]
