"""Layouts the user brings: two columns of the input table, or an ``.h5ad`` ``.obsm`` key.

Checked like the vectors, before anything is written: an unknown column, a column that is
not numbers, or a NaN/infinite coordinate is refused in one line naming the first bad row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.ingest.dataset import InputSpec, LayoutSource
from explorer.ingest.readers import input_format, read_h5ad_obsm


def layout_columns(spec: InputSpec) -> set[str]:
    """The table columns that ``--layout`` takes (never vector dimensions)."""
    return {c for s in spec.layouts for c in (s.columns or ())}


def _numbers(path: Path, table: pd.DataFrame, column: str, source: LayoutSource) -> pd.Series:
    col = table[column]
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col
    parsed = pd.to_numeric(col.astype(object), errors="coerce")
    bad = col.notna().to_numpy() & parsed.isna().to_numpy()
    if pd.api.types.is_bool_dtype(col.dtype):
        bad = col.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        msg = (
            f"{path} row {row}, column {column!r} (--layout {source}): "
            f"{col.iloc[row]!r} is not a number; the column must hold x or y coordinates"
        )
        raise InputError(msg)
    return parsed


def _from_columns(
    spec: InputSpec, table: pd.DataFrame, source: LayoutSource, vector_columns: list[str]
) -> tuple[NDArray[np.float64], list[str]]:
    assert source.columns is not None
    for column in source.columns:
        if column not in table.columns:
            have = ", ".join(map(str, table.columns)) or "none"
            used = f"; taken as vectors: {', '.join(vector_columns)}" if vector_columns else ""
            msg = (
                f"--layout {source}: column {column!r} is not in the input (columns: {have}{used})"
            )
            raise InputError(msg)
    xs = [_numbers(spec.path, table, c, source) for c in source.columns]
    xy = np.column_stack([x.to_numpy(dtype=np.float64, na_value=np.nan) for x in xs])
    return xy, list(source.columns)


def _from_obsm(
    spec: InputSpec, n: int, source: LayoutSource
) -> tuple[NDArray[np.float64], list[str]]:
    assert source.obsm is not None
    if input_format(spec.path) != "h5ad":
        msg = f"--layout {source}: an .obsm key needs an .h5ad input, not {spec.path.name}"
        raise InputError(msg)
    matrix = read_h5ad_obsm(spec.path, source.obsm)
    if matrix.shape[0] != n or matrix.shape[1] < 2:
        msg = (
            f"--layout {source}: .obsm[{source.obsm!r}] has shape {matrix.shape}; "
            f"expected ({n}, 2 or more)"
        )
        raise InputError(msg)
    key = source.obsm
    return np.asarray(matrix[:, :2], dtype=np.float64), [f"obsm[{key}][:, 0]", f"obsm[{key}][:, 1]"]


def _check_finite(
    path: Path, xy: NDArray[np.floating], names: list[str], source: LayoutSource
) -> None:
    finite = np.isfinite(xy)
    if finite.all():
        return
    row, col = (int(v) for v in np.argwhere(~finite)[0])
    kind = "NaN (or missing)" if np.isnan(xy[row, col]) else "an infinite value"
    msg = (
        f"{path} row {row}, {names[col]!r} (--layout {source}): {kind}; every point needs "
        "coordinates: drop or fill that row"
    )
    raise InputError(msg)


def read_layouts(
    spec: InputSpec, table: pd.DataFrame, n: int, vector_columns: list[str] | None = None
) -> tuple[dict[str, NDArray[np.float32]], pd.DataFrame]:
    """The imported layouts by name ((n, 2) float32, finite) and the table without their
    columns (role columns stay); ``vector_columns`` (those already taken as the vectors)
    are named when a column is not found."""
    layouts: dict[str, NDArray[np.float32]] = {}
    for source in spec.layouts:
        if source.obsm is not None:
            xy, names = _from_obsm(spec, n, source)
        else:
            xy, names = _from_columns(spec, table, source, vector_columns or [])
        _check_finite(spec.path, xy, names, source)
        coords = xy.astype(np.float32)
        _check_finite(spec.path, coords, names, source)  # float64 -> float32 overflow
        layouts[source.name] = coords
    roles = {c for c in spec.role_columns().values() if c is not None}
    drop = [c for c in layout_columns(spec) if c in table.columns and c not in roles]
    return layouts, table.drop(columns=drop)
