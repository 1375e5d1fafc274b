"""Export a subset of a store's points (ids and metadata, optionally coords and vectors).

Pure with respect to the store: reads it, returns bytes or writes one file atomically.
Used by ``explorer export`` and by the app's download button.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.store.atomic import write_bytes_atomic
from explorer.store.reader import Store

FORMATS = ("parquet", "csv", "jsonl")


def subset_table(
    store: Store,
    rows: NDArray[np.int64],
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
    points: pa.Table | None = None,
) -> pd.DataFrame:
    """The point table restricted to ``rows`` (sorted int64), plus optional columns.

    Taken from Arrow (``points``, when the caller holds the table already, else read from
    the store), so an export never converts the whole table to pandas. Coordinates become
    ``<layout>_x`` / ``<layout>_y``; vectors a list column ``vector``.
    """
    if points is None:
        points = pq.read_table(store.table_path("validate", "points"))
    table: pd.DataFrame = points.take(pa.array(np.asarray(rows, np.int64))).to_pandas()
    for name in layouts:
        coords = np.asarray(store.layout(name)[rows])
        table[f"{name}_x"] = coords[:, 0]
        table[f"{name}_y"] = coords[:, 1]
    if vectors:
        vec = np.asarray(store.vectors(reduced=False)[rows])
        table["vector"] = list(vec)
    return table


def table_bytes(table: pd.DataFrame, fmt: str) -> bytes:
    """Serialise a table as Parquet, CSV or JSON lines."""
    if fmt == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "csv":
        if "vector" in table.columns:
            table = table.assign(vector=[" ".join(f"{v:.7g}" for v in row) for row in table.vector])
        return table.to_csv(index=False).encode()
    if fmt == "jsonl":
        if "vector" in table.columns:
            table = table.assign(vector=[row.tolist() for row in table.vector])
        text: str = table.to_json(orient="records", lines=True, force_ascii=False) or ""
        return text.encode()
    msg = f"unknown export format {fmt!r}; use {', '.join(FORMATS)}"
    raise InputError(msg)


def rows_for_ids(store: Store, ids: list[str]) -> NDArray[np.int64]:
    """Row indices of the given ids (compared as text), sorted; unknown ids are an error."""
    id_col = store.roles.get("id") or store.points.columns[0]
    lookup = pd.Index(store.points[id_col].astype(str))
    positions = lookup.get_indexer(pd.Index(ids))
    if (positions < 0).any():
        bad = ids[int(np.flatnonzero(positions < 0)[0])]
        missing = int((positions < 0).sum())
        msg = f"id {bad!r} is not in the store ({missing} of {len(ids)} ids unknown)"
        raise InputError(msg)
    return np.unique(positions.astype(np.int64))


def read_id_file(path: Path) -> list[str]:
    """Ids from a text file (one per line), or the first column of a CSV/Parquet file."""
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.suffix.lower() == ".parquet":
        return [str(v) for v in pd.read_parquet(path).iloc[:, 0]]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [line for line in lines if line]
    if path.suffix.lower() == ".csv" and ids:
        ids = ids[1:]  # header
    return ids


def export_rows(
    store: Store,
    rows: NDArray[np.int64],
    out: Path,
    fmt: str,
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
) -> int:
    """Write the subset to ``out`` atomically; return the number of rows written."""
    data = table_bytes(subset_table(store, rows, layouts=layouts, vectors=vectors), fmt)
    write_bytes_atomic(out, data)
    return len(rows)
