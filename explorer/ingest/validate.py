"""Validation: raw input -> a Dataset, or one InputError that names the row and column.

Runs entirely in memory before anything is written, so bad input never leaves a store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.ingest.dataset import Dataset, InputSpec
from explorer.ingest.layouts import layout_columns, read_layouts
from explorer.ingest.readers import RawInput, input_format, read_input, read_table_file

MIN_POINTS = 5
# An object column is taken for a numeric column with a bad cell (and reported) when at
# least half of its non-empty cells parse as numbers (pandas reads a clean numeric
# column as numbers, so such a column has bad cells).
_NUMERIC_SHARE = 0.5


def _bad_numeric_cell(path: Path, table: pd.DataFrame, column: str) -> InputError:
    parsed = pd.to_numeric(table[column], errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy() & table[column].notna().to_numpy())
    row = int(bad[0]) if bad.size else int(np.flatnonzero(table[column].isna().to_numpy())[0])
    value = table[column].iloc[row]
    msg = f"{path} row {row}, column {column!r}: {value!r} is not a number"
    return InputError(msg)


def _looks_numeric(series: pd.Series) -> bool:
    values = series.dropna()
    if values.empty or series.dtype.kind not in "OSUT":
        return False
    parsed = pd.to_numeric(values, errors="coerce")
    return bool(parsed.notna().mean() >= _NUMERIC_SHARE)


def _vector_columns(spec: InputSpec, table: pd.DataFrame) -> list[str]:
    roles = {c for c in spec.role_columns().values() if c is not None} | layout_columns(spec)
    if spec.vectors is not None:
        cols = [str(c) for c in table.columns if str(c).startswith(spec.vectors)]
        if not cols:
            msg = f"{spec.path} has no columns starting with {spec.vectors!r}"
            raise InputError(msg)
        return cols
    cols = []
    for c in table.columns:
        if c in roles:
            continue
        kind = table[c].dtype.kind
        if kind in "fiu" or _looks_numeric(table[c]):
            cols.append(str(c))
    if not cols:
        msg = (
            f"{spec.path} has no numeric columns to use as vectors; name a list column or a "
            "column prefix with --vectors"
        )
        raise InputError(msg)
    return cols


def _vectors_from_columns(
    spec: InputSpec, table: pd.DataFrame, cols: list[str]
) -> tuple[NDArray[np.floating], pd.DataFrame]:
    for c in cols:
        if table[c].dtype.kind not in "fiub":
            raise _bad_numeric_cell(spec.path, table, c)
    matrix = table[cols].to_numpy(dtype=np.float64)
    return matrix, table.drop(columns=cols)


def _first_nonfinite(path: Path, x: NDArray[np.floating], names: list[str] | None) -> None:
    finite = np.isfinite(x)
    if finite.all():
        return
    row, col = (int(v) for v in np.argwhere(~finite)[0])
    value = x[row, col]
    where = names[col] if names else f"dimension {col}"
    kind = "NaN" if np.isnan(value) else "an infinite value"
    msg = f"{path} row {row}, {where!r}: {kind}; drop or impute it"
    raise InputError(msg)


def _clean_metadata(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table.columns = [str(c) for c in table.columns]
    if len(set(table.columns)) != len(table.columns):
        dup = next(c for c in table.columns if list(table.columns).count(c) > 1)
        msg = f"the metadata has two columns named {dup!r}; rename one"
        raise InputError(msg)
    for c in table.columns:
        col = table[c]
        if col.dtype == object:
            # Parquet needs one type per column: mixed Python objects become text.
            values = col.dropna()
            if not values.map(lambda v: isinstance(v, str)).all():
                table[c] = col.map(lambda v: v if v is None or pd.isna(v) else str(v))
    return table.reset_index(drop=True)


def _attach_ids(spec: InputSpec, table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if spec.id is None:
        name = "id" if "id" not in table.columns else "row"
        table.insert(0, name, np.arange(len(table), dtype=np.int64))
        return table, name
    ids = table[spec.id]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        msg = f"{spec.path} row {row}, column {spec.id!r}: the id is missing"
        raise InputError(msg)
    dup = ids.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        msg = (
            f"{spec.path}: id {ids.iloc[row]!r} (column {spec.id!r}) appears twice, "
            f"at rows {first} and {row}; ids must be unique"
        )
        raise InputError(msg)
    cols = [spec.id] + [c for c in table.columns if c != spec.id]
    return table[cols], spec.id


def _check_images(spec: InputSpec, table: pd.DataFrame) -> list[str]:
    if spec.image_col is None:
        return []
    if spec.image_root is None:
        msg = "--image-col needs --image-root DIR (the folder the image paths are relative to)"
        raise InputError(msg)
    root = spec.image_root.resolve()
    if not root.is_dir():
        msg = f"--image-root {spec.image_root} is not a directory"
        raise InputError(msg)
    missing = 0
    first_missing = ""
    for row, value in enumerate(table[spec.image_col]):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        rel = Path(str(value))
        target = (root / rel).resolve()
        if rel.is_absolute() or not target.is_relative_to(root):
            msg = (
                f"{spec.path} row {row}, column {spec.image_col!r}: image path {str(value)!r} "
                "escapes --image-root; paths must stay inside it"
            )
            raise InputError(msg)
        if not target.is_file():
            missing += 1
            first_missing = first_missing or f"row {row}, {str(value)!r}"
    if missing:
        return [f"{missing} image files are missing under {root} (first: {first_missing})"]
    return []


def duplicate_rows(x: NDArray[np.float32]) -> NDArray[np.int64]:
    """Per row, the first earlier row with the identical vector, or -1 when unique.

    Rows are grouped by a 64-bit hash of their bits (``-0.0`` counted as ``0.0``), then
    compared exactly with the first row of their group: a pass over the data plus a sort
    of n integers.
    """
    n = x.shape[0]
    rows = np.ascontiguousarray(x + np.float32(0.0))  # -0.0 -> 0.0
    bits = rows.view(np.uint32)
    # A polynomial hash over the 32-bit words, column by column (uint64 wraps around).
    digests = np.zeros(n, dtype=np.uint64)
    for j in range(bits.shape[1]):
        digests = digests * np.uint64(0x100000001B3) + bits[:, j].astype(np.uint64)
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    candidate = first[inverse].astype(np.int64)
    same = np.all(rows == rows[candidate], axis=1)
    dup_of = np.where((candidate != np.arange(n)) & same, candidate, -1)
    return dup_of.astype(np.int64)


def load_dataset(spec: InputSpec) -> Dataset:
    """Read and validate the input described by ``spec``."""
    raw: RawInput = read_input(spec)
    matrix, table, notes = raw
    vector_names: list[str] | None = None
    if matrix is None and len(table) == 0:
        msg = f"{spec.path} has no rows"
        raise InputError(msg)
    if matrix is None:
        vector_names = _vector_columns(spec, table)
        matrix, table = _vectors_from_columns(spec, table, vector_names)
    n = matrix.shape[0]
    if n == 0:
        msg = f"{spec.path} has no rows"
        raise InputError(msg)
    if matrix.shape[1] == 0:
        msg = f"{spec.path}: the vectors have no dimensions"
        raise InputError(msg)
    if n < MIN_POINTS:
        msg = f"{spec.path} has {n} points; at least {MIN_POINTS} are needed"
        raise InputError(msg)
    if spec.meta is not None:
        meta = read_table_file(spec.meta)
        if len(meta) != n:
            msg = f"--meta {spec.meta} has {len(meta)} rows but the vectors have {n}"
            raise InputError(msg)
        table = pd.concat([table.reset_index(drop=True), meta.reset_index(drop=True)], axis=1)
    layouts, table = read_layouts(spec, table, n, vector_names)
    _first_nonfinite(spec.path, np.asarray(matrix), vector_names)
    vectors = np.ascontiguousarray(matrix, dtype=np.float32)
    _first_nonfinite(spec.path, vectors, vector_names)  # float64 -> float32 overflow
    table = _clean_metadata(table)
    for role, column in spec.role_columns().items():
        if column is not None and column not in table.columns:
            have = ", ".join(table.columns) or "none"
            msg = f"--{role} column {column!r} is not in the metadata (columns: {have})"
            raise InputError(msg)
    table, id_col = _attach_ids(spec, table)
    notes += _check_images(spec, table)
    dup_of = duplicate_rows(vectors)
    roles = {**spec.role_columns(), "id": id_col}
    source = {**spec.describe(), "format": input_format(spec.path)}
    return Dataset(
        vectors=vectors,
        points=table,
        roles=roles,
        source=source,
        image_root=spec.image_root,
        duplicate_of=dup_of,
        notes=notes,
        layouts=layouts,
    )
