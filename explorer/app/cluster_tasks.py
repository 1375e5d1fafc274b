"""What runs on the Dask workers when the points live on a cluster (``explorer.app.cluster``).

Plain functions of pandas partitions (x, y and the columns, indexed by row) and small
arguments, so Dask ships them by reference: loading a partition from the store, its
bounds and grid cells, the rows a frame draws, hit-tests with ``explorer.render.hittest``'s
rules, filter masks, counts, radix histograms for exact medians, and export rows.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.app.columns import numeric_values
from explorer.render import _kernels
from explorer.render.hittest import points_in_box, points_in_polygon
from explorer.store.export import subset_table
from explorer.store.reader import Store

RETRIES = 2  # a task whose worker died is run again this many times


def placed(worker: str | None) -> contextlib.AbstractContextManager[Any]:
    """Tasks made inside run on ``worker`` (the one holding their inputs, so the data stays
    put), or on any other when it is gone; no preference for None."""
    from dask.base import annotate

    if worker is None:
        return contextlib.nullcontext()
    return annotate(workers=[worker], allow_other_workers=True)  # type: ignore[no-any-return]


ERROR_COLUMN = "__error__"  # the per-point error (wrong 1 / right 0 / NaN), when built
_opened: dict[str, Store] = {}
_opened_lock = threading.Lock()


def opened_store(path: str) -> Store:
    """The store at ``path``, opened once per worker process (memory-mapped)."""
    with _opened_lock:
        if path not in _opened:
            _opened[path] = Store(path)
        return _opened[path]


def read_rows(path: Path, columns: list[str], start: int, stop: int) -> pa.Table:
    """Rows ``start:stop`` of a Parquet file: only the row groups that hold them are read."""
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
    ends = np.cumsum(sizes)
    first = int(np.searchsorted(ends, start, side="right"))
    last = int(np.searchsorted(ends, stop - 1, side="right")) if stop > start else first
    groups = list(range(first, min(last, sizes.size - 1) + 1))
    table = pf.read_row_groups(groups, columns=columns)
    offset = int(ends[first - 1]) if first > 0 else 0
    return table.slice(start - offset, stop - start)


def raw_categories(path: str, column: str, start: int, stop: int) -> tuple[list[Any], int]:
    """A categorical column's distinct values in rows ``start:stop`` and its number of
    missing values there: first seen first, as one ``dictionary_encode`` of the whole column
    orders them (a dictionary column: its whole dictionary, in its order)."""
    col = read_rows(opened_store(path).table_path("validate", "points"), [column], start, stop)[0]
    if pa.types.is_dictionary(col.type):
        enc = col.unify_dictionaries().combine_chunks()
        return enc.dictionary.to_pylist(), int(enc.indices.null_count)
    enc = col.combine_chunks().dictionary_encode()
    return enc.dictionary.to_pylist(), int(enc.indices.null_count)


KEEP_META = pd.Series(np.zeros(0, bool), index=pd.RangeIndex(0, 0, name="row"), name="keep")


@dataclass(frozen=True)
class PartitionColumns:
    """What a partition holds beside x, y: internal name → (column, kind, raw categories)."""

    path: str
    items: tuple[tuple[str, str, str, tuple[Any, ...]], ...]  # (key, name, kind, raw values)


def load_partition(
    path: str, layout: str, start: int, stop: int, spec: PartitionColumns
) -> pd.DataFrame:
    """Rows ``start:stop`` of ``layout``: x, y (float32) and the columns, indexed by row."""
    store = opened_store(path)
    xy = np.asarray(store.layout(layout)[start:stop], np.float32)
    data: dict[str, Any] = {"x": xy[:, 0].copy(), "y": xy[:, 1].copy()}
    table_cols = [name for _, name, kind, _ in spec.items if kind in ("categorical", "numeric")]
    table = (
        read_rows(store.table_path("validate", "points"), table_cols, start, stop)
        if table_cols
        else None
    )
    for key, name, kind, raw in spec.items:
        if kind == "categorical" and table is not None:
            data[key] = global_codes(table.column(name), raw)
        elif kind == "numeric" and table is not None:
            data[key] = numeric_values(table.column(name))
        elif kind == "score":
            data[key] = np.asarray(store.score(name)[start:stop], np.float32)
        elif kind == "error":
            data[key] = np.asarray(store.error_values()[start:stop], np.float64)
    return pd.DataFrame(data, index=pd.RangeIndex(start, stop, name="row"))


def from_part(
    part: pd.DataFrame, spec: PartitionColumns, sources: dict[str, tuple[str, tuple[int, ...]]]
) -> pd.DataFrame:
    """A partitioned store's part (``row``, ``x``, ``y``, point columns, scores) as this
    module's partitions: indexed by row, our keys, categorical codes into our labels. A
    column the parts lack is read from the point table at the part's rows."""
    rows = part["row"].to_numpy(np.int64)
    data: dict[str, Any] = {
        "x": part["x"].to_numpy(np.float32), "y": part["y"].to_numpy(np.float32),
    }  # fmt: skip
    store = opened_store(spec.path)
    for key, name, kind, raw in spec.items:
        if kind == "error":
            data[key] = np.asarray(store.error_values()[rows], np.float64)
            continue
        source = sources.get(key)
        if source is None and kind == "score":  # a score the parts lack: the store's
            data[key] = np.asarray(store.score(name)[rows], np.float32)
            continue
        if source is None:  # not in the parts: the store's own column, at these rows
            col = whole_column(spec.path, name).take(pa.array(rows))
            if kind == "categorical":
                data[key] = global_codes(col, raw)
            else:
                data[key] = numeric_values(col)
            continue
        values = part[source[0]]
        if kind == "categorical" and isinstance(values.dtype, pd.CategoricalDtype):
            lookup = np.append(np.asarray(source[1], np.int64), -1)
            codes = lookup[values.cat.codes.to_numpy(np.int64)]  # -1 (missing) -> last
            data[key] = np.where(codes < 0, len(raw), codes).astype(np.int32)
        elif kind == "categorical":
            data[key] = global_codes(pa.chunked_array([pa.array(values)]), raw)
        else:
            data[key] = values.to_numpy(np.float32, na_value=np.nan)
    return pd.DataFrame(data, index=pd.Index(rows, name="row"))


_columns: dict[tuple[str, str], pa.ChunkedArray] = {}


def whole_column(path: str, name: str) -> pa.ChunkedArray:
    """A point-table column, read once per worker process."""
    with _opened_lock:
        if (path, name) not in _columns:
            table_path = opened_store(path).table_path("validate", "points")
            _columns[path, name] = pq.read_table(table_path, columns=[name]).column(name)
        return _columns[path, name]


def global_codes(col: pa.ChunkedArray, raw: tuple[Any, ...]) -> NDArray[np.int32]:
    """Codes of ``col`` into the whole column's values ``raw``; missing -> ``len(raw)``."""
    if pa.types.is_dictionary(col.type):
        enc = col.unify_dictionaries().combine_chunks()
    else:
        enc = col.combine_chunks().dictionary_encode()
    lookup = {v: i for i, v in enumerate(raw)}
    local = np.array([lookup[v] for v in enc.dictionary.to_pylist()] + [len(raw)], np.int32)
    idx = np.asarray(enc.indices.fill_null(len(local) - 1).to_numpy(zero_copy_only=False))
    return local[idx.astype(np.int64)]


def empty_partition(columns: PartitionColumns) -> pd.DataFrame:
    """A partition with no rows: the DataFrame's meta."""
    dtypes = {"categorical": np.int32, "numeric": np.float32, "score": np.float32,
              "error": np.float64}  # fmt: skip
    data: dict[str, Any] = {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
    for key, _, kind, _ in columns.items:
        data[key] = np.zeros(0, dtypes[kind])
    return pd.DataFrame(data, index=pd.RangeIndex(0, 0, name="row"))


def bounds(part: pd.DataFrame) -> NDArray[np.float64]:
    """``[xmin, xmax, ymin, ymax]`` of a partition's finite points (inf, -inf when none)."""
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    out: NDArray[np.float64] = _kernels.extent(xy)
    return out


def cell_hist(part: pd.DataFrame, grid: NDArray[np.float64], side: int) -> NDArray[np.int64]:
    xy = np.ascontiguousarray(np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1))
    hist = np.zeros(side * side, np.int64)
    _kernels.cell_histogram(xy, 0, xy.shape[0], grid, side, hist)
    return hist


def in_sorted(rows: NDArray[np.int64], sorted_rows: NDArray[np.int64] | None) -> NDArray[np.bool_]:
    """Which ``rows`` are in ``sorted_rows`` (sorted unique); all when it is None."""
    if sorted_rows is None:
        return np.ones(rows.size, bool)
    if sorted_rows.size == 0:
        return np.zeros(rows.size, bool)
    pos = np.minimum(np.searchsorted(sorted_rows, rows), sorted_rows.size - 1)
    hit: NDArray[np.bool_] = sorted_rows[pos] == rows
    return hit


def as_flags(keep: pd.Series | NDArray[np.bool_] | None) -> NDArray[np.bool_] | None:
    return None if keep is None else np.asarray(keep, bool)


def frame_rows(
    part: pd.DataFrame,
    keep: pd.Series | None = None,
    *,
    highlight: NDArray[np.int64] | None,
    attr: str | None,
    kind: str,
    slot_of_code: NDArray[np.intp] | None,
) -> pd.DataFrame:
    """The rows of one partition a frame draws: x, y and ``a`` (legend slot or float64)."""
    take = in_sorted(part.index.to_numpy(np.int64), highlight)
    flags = as_flags(keep)
    if flags is not None:
        take &= flags
    sub = part.loc[take] if not take.all() else part
    out = pd.DataFrame({"x": sub["x"].to_numpy(), "y": sub["y"].to_numpy()})
    if kind == "categorical" and attr is not None and slot_of_code is not None:
        slots = slot_of_code[sub[attr].to_numpy()].astype(np.int32)
        n_slots = int(slot_of_code.max(initial=-1)) + 1
        out["a"] = pd.Categorical.from_codes(slots, categories=pd.Index(range(n_slots)))
    elif kind == "numeric" and attr is not None:
        out["a"] = sub[attr].to_numpy(np.float64)
    return out


def box(
    part: pd.DataFrame, keep: pd.Series | None, box: tuple[float, float, float, float]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    local = points_in_box(xy, *box, mask=as_flags(keep))
    return part.index.to_numpy(np.int64)[local], xy[local]


def lasso(
    part: pd.DataFrame, keep: pd.Series | None, px: NDArray[np.float64],
    py: NDArray[np.float64],
) -> NDArray[np.int64]:  # fmt: skip
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    local = points_in_polygon(xy, px, py, mask=as_flags(keep))
    out: NDArray[np.int64] = part.index.to_numpy(np.int64)[local]
    return out


def nearest(
    part: pd.DataFrame, keep: pd.Series | None, x: float, y: float, r2: float
) -> tuple[float, int]:
    """(squared distance, row) of the partition's nearest point within ``r2``, or (inf, -1)."""
    xy = np.ascontiguousarray(np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1))
    flags = as_flags(keep)
    mask = np.zeros(0, bool) if flags is None else flags
    spans = np.array([[0, xy.shape[0]]], np.int64)
    local = int(_kernels.nearest(xy, spans, np.zeros(0, np.int32), mask, x, y, r2))
    if local < 0:
        return float("inf"), -1
    dx, dy = np.float64(xy[local, 0]) - x, np.float64(xy[local, 1]) - y
    return float(dx * dx + dy * dy), int(part.index[local])


def keep_of(part: pd.DataFrame, tests: tuple[tuple[str, str, Any], ...]) -> pd.Series:
    """The AND of filter tests on a partition: (key, "codes", allowed) or (key, "range", lo/hi)."""
    keep = np.ones(len(part), bool)
    for key, how, arg in tests:
        v = part[key].to_numpy()
        if how == "codes":
            keep &= np.asarray(arg, bool)[v]
        else:
            keep &= (v >= arg[0]) & (v <= arg[1])
    return pd.Series(keep, index=part.index, name="keep")


def keep_from_bits(part: pd.DataFrame, bits: NDArray[np.uint8]) -> pd.Series:
    """A partition's slice of a mask made in the web process and sent as one bit a row
    (``np.packbits`` of the whole mask): whatever rows the partition holds."""
    rows = part.index.to_numpy(np.int64)
    flags = ((bits[rows >> 3] >> (7 - (rows & 7)).astype(np.uint8)) & 1).astype(bool)
    return pd.Series(flags, index=part.index, name="keep")


def export_in_part(
    part: pd.DataFrame, rows: NDArray[np.int64], path: str, layouts: tuple[str, ...],
    vectors: bool,
) -> tuple[NDArray[np.int64], pd.DataFrame | None]:  # fmt: skip
    """The partition's rows among ``rows`` (sorted) and their exported table (None: none)."""
    inside = part.index.to_numpy(np.int64)[selected(part, rows)]
    if inside.size == 0:
        return inside, None
    inside = np.sort(inside)
    return inside, export_part(path, int(inside[0]), inside, layouts, vectors)


def packed(keep: pd.Series) -> tuple[str, NDArray[np.int64], NDArray[np.uint8]]:
    """A partition's mask: ("range", [first row, count], one bit a row) when its rows are
    one range, else ("rows", the kept rows, nothing)."""
    rows = keep.index.to_numpy(np.int64)
    flags = keep.to_numpy(bool)
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return "range", np.array([rows[0], rows.size], np.int64), np.packbits(flags)
    return "rows", rows[flags], np.zeros(0, np.uint8)


def selected(part: pd.DataFrame, rows: NDArray[np.int64] | None) -> NDArray[np.bool_]:
    return in_sorted(part.index.to_numpy(np.int64), rows)


def values_at(
    part: pd.DataFrame, rows: NDArray[np.int64], key: str
) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """The partition's rows among ``rows`` (sorted) and their values of column ``key``."""
    sel = selected(part, rows)
    return part.index.to_numpy(np.int64)[sel], part[key].to_numpy()[sel]


def code_counts(
    part: pd.DataFrame, rows: NDArray[np.int64] | None, keys: tuple[tuple[str, int], ...]
) -> list[NDArray[np.int64]]:
    sel = selected(part, rows)
    return [np.bincount(part[k].to_numpy()[sel], minlength=n).astype(np.int64) for k, n in keys]


def error_sums(part: pd.DataFrame, rows: NDArray[np.int64] | None) -> tuple[float, int]:
    e = part[ERROR_COLUMN].to_numpy()[selected(part, rows)]
    known = e[~np.isnan(e)]
    return float(known.sum()), int(known.size)


def float_keys(values: NDArray[np.float32]) -> NDArray[np.uint32]:
    """Unsigned keys that sort as the finite float32 ``values`` do."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    neg = (bits >> 31).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)


def key_value(key: int) -> float:
    bits = key & 0x7FFFFFFF if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def digit_hist(
    part: pd.DataFrame, rows: NDArray[np.int64] | None,
    wanted: tuple[tuple[str, tuple[tuple[int, int], ...]], ...], bits: int,
) -> list[list[NDArray[np.int64]]]:  # fmt: skip
    """Per column key and per (prefix, prefix bits): counts of the next ``bits`` bits of
    the keys of the selected finite values that start with that prefix."""
    sel = selected(part, rows)
    out = []
    for key, prefixes in wanted:
        v = part[key].to_numpy()[sel]
        keys = float_keys(v[np.isfinite(v)])
        hists = []
        for prefix, used in prefixes:
            k = keys if used == 0 else keys[(keys >> np.uint32(32 - used)) == prefix]
            digit = (k >> np.uint32(32 - used - bits)) & np.uint32((1 << bits) - 1)
            hists.append(np.bincount(digit, minlength=1 << bits).astype(np.int64))
        out.append(hists)
    return out


def export_part(
    path: str, start: int, rows: NDArray[np.int64], layouts: tuple[str, ...], vectors: bool
) -> pd.DataFrame:
    """The exported table of ``rows`` (sorted, none before ``start``): the point table's rows
    ``start`` to the last are read (only the row groups that hold them)."""
    store = opened_store(path)
    if rows.size == 0:
        return subset_table(store, rows, points=pq.read_schema(
            store.table_path("validate", "points")).empty_table())  # fmt: skip
    stop = int(rows[-1]) + 1
    table = read_rows(store.table_path("validate", "points"), all_columns(store), start, stop)
    out = subset_table(store, rows - start, points=table)
    for name in layouts:
        coords = np.asarray(store.layout(name)[rows])
        out[f"{name}_x"] = coords[:, 0]
        out[f"{name}_y"] = coords[:, 1]
    if vectors:
        out["vector"] = list(np.asarray(store.vectors(reduced=False)[rows]))
    return out


def per_part(
    fn: Any, parts: list[pd.DataFrame] | None, args: tuple[Any, ...], kwargs: dict[str, Any],
    keeps: list[pd.Series | None] | None = None,
) -> list[Any]:  # fmt: skip
    """``fn(part, *args, **kwargs)`` for each of a worker thread's partitions, in one task
    (``fn(part, keep, *args, **kwargs)`` with ``keeps``, each partition's mask;
    ``fn(keep, *args, **kwargs)`` without ``parts``)."""
    if parts is None:
        return [fn(keep, *args, **kwargs) for keep in keeps or []]
    if keeps is None:
        return [fn(part, *args, **kwargs) for part in parts]
    return [fn(part, keep, *args, **kwargs) for part, keep in zip(parts, keeps, strict=True)]


def all_columns(store: Store) -> list[str]:
    return list(pq.read_schema(store.table_path("validate", "points")).names)
