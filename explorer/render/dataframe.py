"""Frames from a DataFrame through Datashader: the engine for partitioned and Dask data.

``render_frame_dataframe`` draws the points of a pandas or ``dask.dataframe`` DataFrame
(columns x, y, an optional colour column and bool mask/highlight columns) with
Datashader's ``Canvas.points`` and explicit ranges, then shades exactly as ``render`` does
over a ``PointIndex`` (``explorer.render.frame``): on the same points the two frames are
pixel-equal, legend and counts included. ``numeric_aggregate`` is also what ``render``
uses for numeric colour, where our kernels had no measured gain (docs/render.md).

Datashader is imported on first use: importing it costs ~1.5 s, which the app's start
does not need to pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.render.colors import CategoricalColor, NumericColor
from explorer.render.frame import (
    Frame,
    Layer,
    assemble,
    by_category_layer,
    count_layer,
    numeric_layer,
)
from explorer.render.index import Viewport

if TYPE_CHECKING:
    import pandas as pd

_NUMERIC_VALUE = "v"  # the summary field holding the per-pixel value


def canvas(viewport: Viewport) -> Any:
    """The Datashader ``Canvas`` of ``viewport``: its size and explicit ranges.

    Explicit ranges keep Datashader from scanning for the extent (70-230 ms, measured) and
    give its pixel rule the same edges as ours (both inclusive, float64).
    """
    import datashader as ds

    # Floats always: Datashader's kernels compile per argument type (int edges recompile).
    return ds.Canvas(
        plot_width=int(viewport.width),
        plot_height=int(viewport.height),
        x_range=(float(viewport.x0), float(viewport.x1)),
        y_range=(float(viewport.y0), float(viewport.y1)),
    )


def numeric_aggregate(
    df: pd.DataFrame | Any,
    viewport: Viewport,
    x: str,
    y: str,
    column: str,
    reduction: Literal["mean", "max", "min"],
) -> tuple[NDArray[np.float64], int]:
    """Per-pixel ``reduction`` of ``column`` (h, w) float64, NaN where no point has a value,
    and the number of points in view (those with a NaN value included)."""
    import datashader as ds

    reduce = {"mean": ds.mean, "max": ds.max, "min": ds.min}[reduction]
    agg = canvas(viewport).points(
        df, x, y, agg=ds.summary(n=ds.count(), **{_NUMERIC_VALUE: reduce(column)})
    )
    values = np.asarray(agg[_NUMERIC_VALUE].values, np.float64)
    return values, int(agg["n"].values.sum(dtype=np.int64))


def _count_layer(df: Any, viewport: Viewport, x: str, y: str, how: str, cmap: Any) -> Layer:
    import datashader as ds

    counts = canvas(viewport).points(df, x, y, agg=ds.count()).values
    return count_layer(np.asarray(counts, np.uint32), how, cmap)


def _category_layer(
    df: Any,
    viewport: Viewport,
    x: str,
    y: str,
    column: str,
    color: CategoricalColor,
    how: str,
    min_alpha: int,
) -> Layer:
    import datashader as ds

    n_codes = len(color.slot_of_code)
    # Codes in [0, n_codes) get their own bin; anything else (and NaN) the extra last one.
    codes = ds.category_binning(
        column, 0, n_codes, n_codes, include_under=False, include_over=False
    )
    by = np.asarray(canvas(viewport).points(df, x, y, agg=ds.by(codes, ds.count())).values)
    if by[..., n_codes].any():
        msg = (
            f"colour column {column!r} holds values outside the codes [0, {n_codes}) of its "
            "colouring; recode it with the colouring's categories"
        )
        raise InputError(msg)
    return by_category_layer(by[..., :n_codes], color, how, min_alpha)


def _layer(
    df: Any,
    viewport: Viewport,
    x: str,
    y: str,
    color: CategoricalColor | NumericColor | None,
    column: str,
    how: str,
    cmap: str | tuple[str, ...] | None,
    min_alpha: int,
) -> Layer:
    if isinstance(color, CategoricalColor):
        return _category_layer(df, viewport, x, y, column, color, how, min_alpha)
    if isinstance(color, NumericColor):
        values, n_in = numeric_aggregate(df, viewport, x, y, column, color.reduction)
        return numeric_layer(values, n_in, color, cmap)
    return _count_layer(df, viewport, x, y, how, cmap)


def _check_columns(
    df: Any, names: dict[str, str | None], color: CategoricalColor | NumericColor | None
) -> None:
    """Each named column exists; mask/highlight are bool, codes integer, values numeric."""
    columns = set(df.columns)
    for role, name in names.items():
        if name is not None and name not in columns:
            shown = ", ".join(repr(c) for c in sorted(columns, key=str)[:12])
            msg = f"{role} column {name!r} is not in the DataFrame (columns: {shown})"
            raise InputError(msg)
    kinds = {"mask": "b", "highlight": "b"}
    if color is not None:
        kinds["colour"] = "iu" if isinstance(color, CategoricalColor) else "iuf"
    wanted = {"b": "bool", "iu": "integer codes", "iuf": "numeric"}
    for role, kind in kinds.items():
        name = names.get(role)
        dtype = None if name is None else df[name].dtype
        # numpy dtypes only: Datashader reads pandas' nullable (extension) columns as objects.
        if dtype is not None and not (isinstance(dtype, np.dtype) and dtype.kind in kind):
            msg = f"{role} column {name!r} must be {wanted[kind]} (numpy dtype), got {dtype}"
            raise InputError(msg)


def render_frame_dataframe(
    df: pd.DataFrame | Any,
    viewport: Viewport,
    *,
    x: str = "x",
    y: str = "y",
    color: CategoricalColor | NumericColor | None = None,
    color_column: str | None = None,
    mask_column: str | None = None,
    highlight_column: str | None = None,
    how: str = "eq_hist",
    cmap: str | tuple[str, ...] | None = None,
    spread: int | Literal["auto"] = "auto",
    min_alpha: int = 40,
    dim: float = 0.25,
) -> Frame:
    """Draw the rows of ``df`` (pandas or ``dask.dataframe``) inside ``viewport``.

    The frame equals ``render(index, viewport, ...)`` pixel for pixel on the same points
    (float32 ``x``/``y`` as in a store), with the same ``color``, mask and highlight.

    color : None (density), a ``CategoricalColor`` or a ``NumericColor``; its legend,
        colours, span and reduction are used, its per-point array is not (it may be
        empty): the points' codes or values are read from ``color_column``.
    color_column : integer codes in ``[0, len(color.slot_of_code))`` for a categorical
        colour (anything else raises ``InputError``), floats (NaN = no value) for numeric.
    mask_column : bool; only True rows are drawn (filters).
    highlight_column : bool; True rows (within the mask) are drawn over the rest, whose
        alpha is multiplied by ``dim``.
    how, cmap, spread, min_alpha : as in ``render``.

    A Dask DataFrame is aggregated where it lives (a ``distributed`` client, if one is
    active, runs it on the cluster); each layer (the base, the highlight) is one pass.
    """
    if color is not None and color_column is None:
        msg = "a colour needs color_column: the DataFrame column of codes or values"
        raise InputError(msg)
    column = color_column if color is not None else None
    _check_columns(
        df,
        {"x": x, "y": y, "colour": column, "mask": mask_column, "highlight": highlight_column},
        color,
    )
    if mask_column is not None:
        df = df[df[mask_column]]
    base = _layer(df, viewport, x, y, color, column or "", how, cmap, min_alpha)
    top = None
    if highlight_column is not None:
        sub = df[df[highlight_column]]
        top = _layer(sub, viewport, x, y, color, column or "", how, cmap, min_alpha)
    return assemble(viewport, base, top, color, spread=spread, dim=dim)
