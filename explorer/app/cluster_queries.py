"""What runs on the Dask workers to answer the panes (``explorer.app.cluster``): filter
masks asked about by row, score histograms, top rows, rows in a value range, sums, points
and positions per hierarchy leaf, a few rows of the point table, and Find (text search and
SQL over each partition's rows, with the in-process kernels). Each takes a partition
(x, y and the columns, indexed by row) and small arguments and sends back row ids, counts
or a few values, never a column.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.app.cluster_tasks import (
    KEEP_META,
    as_flags,
    in_sorted,
    keep_of,
    opened_store,
    read_rows,
)
from explorer.app.models.scores import bin_numbers, top_rows
from explorer.store.query import PointQuery, sql_columns
from explorer.store.search import TextBuffer, search_rows, text_buffer


def keep_of_rows(
    part: pd.DataFrame, tests: tuple[tuple[str, str, Any], ...], rows: NDArray[np.int64]
) -> pd.Series:
    """``keep_of``'s tests, and only among ``rows`` (sorted unique: a SQL condition's rows)."""
    keep = keep_of(part, tests).to_numpy(bool) & in_sorted(part.index.to_numpy(np.int64), rows)
    return pd.Series(keep, index=part.index, name=KEEP_META.name)


def kept_count(keep: pd.Series) -> int:
    return int(np.count_nonzero(keep.to_numpy(bool)))


def kept_among(keep: pd.Series, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """The partition's kept rows among ``rows`` (sorted unique)."""
    index = keep.index.to_numpy(np.int64)
    take = keep.to_numpy(bool) & in_sorted(index, rows)
    return index[take]


def kept_except(keep: pd.Series, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """The partition's kept rows that are not among ``rows`` (sorted unique)."""
    index = keep.index.to_numpy(np.int64)
    take = keep.to_numpy(bool) & ~in_sorted(index, rows)
    return index[take]


def leaf_stats(
    part: pd.DataFrame, keep: pd.Series | None, rows: NDArray[np.int64] | None, path: str,
    n_nodes: int, *, sums: bool = False,
) -> NDArray[np.float64]:  # fmt: skip
    """Per hierarchy node, of the partition's points that ``keep`` keeps and are among
    ``rows`` (None: all), counted at each point's leaf: (1, n_nodes) counts, or with
    ``sums`` (4, n_nodes) counts, finite positions, sum of x, sum of y."""
    index = part.index.to_numpy(np.int64)
    take = np.ones(index.size, bool)
    flags = as_flags(keep)
    if flags is not None:
        take &= flags
    if rows is not None:
        take &= in_sorted(index, rows)
    leaf = np.asarray(opened_store(path).array("hierarchy", "leaf")[index[take]], np.int64)
    counts = np.bincount(leaf, minlength=n_nodes).astype(np.float64)
    if not sums:
        return counts[None]
    x = part["x"].to_numpy(np.float64)[take]
    y = part["y"].to_numpy(np.float64)[take]
    ok = np.isfinite(x) & np.isfinite(y)
    at = leaf[ok]
    return np.stack([
        counts, np.bincount(at, minlength=n_nodes).astype(np.float64),
        np.bincount(at, weights=x[ok], minlength=n_nodes),
        np.bincount(at, weights=y[ok], minlength=n_nodes),
    ])  # fmt: skip


def _values(part: pd.DataFrame, key: str, rows: NDArray[np.int64] | None) -> NDArray[Any]:
    v = part[key].to_numpy()
    return v if rows is None else v[in_sorted(part.index.to_numpy(np.int64), rows)]


def hist_counts(
    part: pd.DataFrame, rows: NDArray[np.int64] | None, key: str, edges: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Counts per bin of ``edges`` of the partition's finite values (among ``rows``)."""
    bins = bin_numbers(_values(part, key, rows), edges)
    return np.bincount(bins[bins >= 0], minlength=edges.size - 1).astype(np.int64)


def top_in_part(
    part: pd.DataFrame, key: str, count: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The partition's ``count`` rows with the highest value (``top_rows``'s order)."""
    v = part[key].to_numpy(np.float32)
    local = top_rows(v, count)
    return part.index.to_numpy(np.int64)[local], v[local]


def rows_in_range(
    part: pd.DataFrame, key: str, lo: float, hi: float, *, below: bool = False
) -> NDArray[np.int64]:
    """Rows whose value lies in ``[lo, hi]`` (``below``: under ``hi``), in the partition."""
    v = part[key].to_numpy()
    take = v < hi if below else (v >= lo) & (v <= hi)
    out: NDArray[np.int64] = part.index.to_numpy(np.int64)[take]
    return out


def value_extent(part: pd.DataFrame, key: str) -> tuple[float, float, int]:
    """(min, max, count) of the partition's finite values (0, 0, 0 when none)."""
    v = part[key].to_numpy()
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max()), int(v.size)) if v.size else (0.0, 0.0, 0)


def value_sums(part: pd.DataFrame, key: str, threshold: float) -> tuple[float, int, int]:
    """(sum, count) of the partition's finite values, and how many are below ``threshold``."""
    v = part[key].to_numpy()
    v = v[np.isfinite(v)]
    return float(v.sum(dtype=np.float64)), int(v.size), int(np.count_nonzero(v < threshold))


def point_rows(path: str, rows: NDArray[np.int64]) -> list[dict[str, Any]]:
    """The point table's rows ``rows`` (sorted unique) with every score, as Python values:
    only the row groups that hold them are read."""
    store = opened_store(path)
    pf = pq.ParquetFile(store.table_path("validate", "points"))
    meta = pf.metadata
    sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
    ends = np.cumsum(sizes)
    groups = np.unique(np.searchsorted(ends, rows, side="right"))
    table = pf.read_row_groups([int(g) for g in groups])
    starts = ends - sizes
    # each row's place in the concatenated groups
    before = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])
    place = rows - starts[np.searchsorted(ends, rows, side="right")]
    place += before[np.searchsorted(groups, np.searchsorted(ends, rows, side="right"))]
    out: list[dict[str, Any]] = table.take(pa.array(place)).to_pylist()
    for name in store.scores:
        values = np.asarray(store.score(name)[rows], np.float32)
        for record, value in zip(out, values, strict=True):
            record[name] = float(value)
    return out


class PartText:
    """A partition's rows of the point table on a worker, for Find: the table, its text
    columns made ready for fast search (``TextBuffer``, on first use) and a DuckDB query
    over it and the scores (``PointQuery``, on first use)."""

    def __init__(self, path: str, rows: NDArray[np.int64]) -> None:
        self.path = path
        self.rows = rows
        self.table = _part_table(path, rows)
        self._buffers: dict[str, TextBuffer | None] = {}
        self._query: PointQuery | None = None
        self._lock = threading.Lock()

    def buffer(self, column: str) -> TextBuffer | None:
        with self._lock:
            if column not in self._buffers:
                self._buffers[column] = text_buffer(self.table.column(column), column)
            return self._buffers[column]

    def query(self) -> PointQuery:
        with self._lock:
            if self._query is None:
                store = opened_store(self.path)
                table = self.table
                columns = sql_columns(store, table.column_names)
                for name, ident in columns.items():
                    values = np.asarray(store.score(name)[self.rows], np.float32)
                    table = table.append_column(ident, pa.array(values))
                self._query = PointQuery(table, columns)
            return self._query


PARTS_KEPT = 64  # partitions' text kept per worker process, least recently used dropped
_texts: OrderedDict[tuple[str, int, int, int], PartText] = OrderedDict()
_texts_lock = threading.Lock()


def _part_table(path: str, rows: NDArray[np.int64]) -> pa.Table:
    """The point table's ``rows`` (a range: only its row groups are read)."""
    points = opened_store(path).table_path("validate", "points")
    if rows.size and rows[-1] - rows[0] + 1 == rows.size and bool(np.all(np.diff(rows) == 1)):
        return read_rows(points, pq.read_schema(points).names, int(rows[0]), int(rows[-1]) + 1)
    return pq.read_table(points).take(pa.array(rows))


def part_text(part: pd.DataFrame, path: str) -> PartText:
    """The partition's ``PartText``, made once per worker process."""
    rows = part.index.to_numpy(np.int64)
    key = (path, int(rows[0]) if rows.size else 0, int(rows[-1]) if rows.size else 0, rows.size)
    with _texts_lock:
        hit = _texts.get(key)
        if hit is not None:
            _texts.move_to_end(key)
            return hit
    made = PartText(path, rows)
    with _texts_lock:
        made = _texts.setdefault(key, made)
        while len(_texts) > PARTS_KEPT:
            _texts.popitem(last=False)
    return made


def search_part(
    part: pd.DataFrame, path: str, query: str, columns: tuple[str, ...], regex: bool,
    id_column: str | None,
) -> tuple[NDArray[np.int64], int]:  # fmt: skip
    """The partition's rows where any of ``columns`` contains ``query`` (``search_rows``
    over its rows, with the same kernels), and how many."""
    text = part_text(part, path)
    found = search_rows(text.table, query, columns=columns, regex=regex, id_column=id_column,
                        buffers=text.buffer, workers=1)  # fmt: skip
    return text.rows[found.rows], found.count


def where_part(part: pd.DataFrame, path: str, clause: str) -> NDArray[np.int64]:
    """The partition's rows where the SQL ``clause`` holds (DuckDB over its rows)."""
    text = part_text(part, path)
    out: NDArray[np.int64] = text.rows[text.query().rows(clause)]
    return out


def rows_of_ids(
    part: pd.DataFrame, path: str, column: str, wanted: list[Any]
) -> tuple[NDArray[np.int64], list[Any]]:
    """The partition's rows whose ``column`` equals one of ``wanted``, and their values."""
    text = part_text(part, path)
    col = text.table.column(column)
    try:
        values = pa.array(wanted, col.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids of another type: none of them here
        return np.zeros(0, np.int64), []
    hit = np.asarray(pc.is_in(col, value_set=values).to_numpy(zero_copy_only=False), bool)
    local = np.flatnonzero(hit)
    return text.rows[local], col.take(pa.array(local)).to_pylist()


def nearest_k(
    part: pd.DataFrame, x: float, y: float, k: int, skip: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The partition's ``k`` points nearest ``(x, y)`` on the map (row ``skip`` left out;
    non-finite never): squared distances and rows, nearest first, ties by row."""
    d2 = (part["x"].to_numpy(np.float64) - x) ** 2 + (part["y"].to_numpy(np.float64) - y) ** 2
    rows = part.index.to_numpy(np.int64)
    ok = np.isfinite(d2) & (rows != skip)
    d2, rows = d2[ok], rows[ok]
    if d2.size > k:
        near = np.argpartition(d2, k - 1)[:k]
        d2, rows = d2[near], rows[near]
    order = np.lexsort((rows, d2))
    return d2[order], rows[order]
