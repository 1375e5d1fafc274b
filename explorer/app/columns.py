"""What each metadata column is for in the app: colour, filter, hover text, or nothing.

Kinds: ``categorical`` (few distinct values: colour with a legend, multi-select filter),
``numeric`` (colour with a colour bar, range filter), ``text`` (many distinct strings: shown
in the hover card and the selection grid), ``id`` and ``image`` (shown, never coloured).
Columns are Arrow arrays: strings stay in Arrow's compact buffers (10M Python strings
would cost 5 s and 700 MB), and a sample of rows decides between categorical and text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

ColumnKind = Literal["categorical", "numeric", "text", "id", "image"]

MAX_CATEGORIES = 256  # more distinct strings than this (in a sample) and it is text
MAX_INT_CATEGORIES = 32  # label/prediction integer columns with this few values are categories
_SAMPLE = 20_000
MISSING_LABEL = "(missing)"


@dataclass(frozen=True)
class ColumnInfo:
    """One metadata column and how the app uses it."""

    name: str
    kind: ColumnKind
    role: str | None = None  # label, prediction, loss, text, ... from the store's roles


def _sample(col: pa.ChunkedArray) -> pa.Array:
    n = len(col)
    if n <= _SAMPLE:
        return col.combine_chunks()
    return col.take(pa.array(np.linspace(0, n - 1, _SAMPLE).astype(np.int64)))


def _n_distinct(col: pa.ChunkedArray) -> int:
    return int(pc.count_distinct(_sample(col)).as_py())


def column_kind(col: pa.ChunkedArray, role: str | None) -> ColumnKind:
    """How the app uses ``col``; ``role`` is its role in the store (or None)."""
    if role in ("id", "image", "text"):
        return role  # type: ignore[return-value]
    t = col.type
    if pa.types.is_dictionary(t) or pa.types.is_boolean(t):
        return "categorical"
    if pa.types.is_integer(t):
        few = _n_distinct(col) <= MAX_INT_CATEGORIES
        return "categorical" if few and role in ("label", "prediction") else "numeric"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    is_string = pa.types.is_string(t) or pa.types.is_large_string(t)
    if is_string and (role in ("label", "prediction") or _n_distinct(col) <= MAX_CATEGORIES):
        return "categorical"
    return "text"


def describe_columns(table: pa.Table, roles: dict[str, str | None]) -> list[ColumnInfo]:
    """A ``ColumnInfo`` per column of the point table, in table order."""
    role_of = {col: role for role, col in roles.items() if col}
    return [
        ColumnInfo(name, column_kind(table.column(name), role_of.get(name)), role_of.get(name))
        for name in table.column_names
    ]


def factorize(col: pa.ChunkedArray) -> tuple[NDArray[np.int32], list[str]]:
    """Integer codes (n,) int32 and their labels as text; missing values get their own label."""
    if pa.types.is_dictionary(col.type):
        encoded = col.unify_dictionaries().combine_chunks()
    else:
        encoded = col.combine_chunks().dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):  # empty columns stay chunked
        encoded = pa.DictionaryArray.from_arrays(
            pa.array([], pa.int32()), pa.array([], pa.string())
        )
    labels = [display_value(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    codes = np.asarray(indices.fill_null(len(labels)).to_numpy(zero_copy_only=False), np.int32)
    if indices.null_count:
        labels.append(MISSING_LABEL)
    return codes, labels


def numeric_values(col: pa.ChunkedArray) -> NDArray[np.float32]:
    """The column as (n,) float32, NaN where missing."""
    as_float = pc.cast(col, pa.float64()).fill_null(np.nan)
    return np.asarray(as_float.to_numpy(), dtype=np.float32)


def display_value(value: object) -> str:
    """A metadata value as short text (floats to 4 significant digits)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def first_rows(path: Path, n: int = 20_000) -> pa.Table:
    """The first ``n`` rows of a Parquet file: enough to tell the columns' kinds."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=n):
        return pa.Table.from_batches([batch])
    return pf.schema_arrow.empty_table()
