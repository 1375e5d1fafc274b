"""The points live on the cluster: ``explorer serve STORE --dask ADDRESS``.

``ClusterPoints`` keeps every layout's points, the colourable columns and the filter masks
persisted on the workers of a Dask cluster, partition by partition, each partition's bounds
known in the web process. A frame is one Datashader aggregation over a ``dask.dataframe``
of the partitions the view touches; hit-tests, filters, selection statistics and exports
are tasks per partition that send back row ids, bitmaps or small tables. The web process
holds images, selections (row ids), masks (one bit a point) and per-column summaries: no
coordinates and no column values.

Two seams are meant to be swapped when the partitioned store and the DataFrame render
entry point land (see ``docs/app.md``): ``load_layout`` (how a layout's partitions are made
and bounded) and ``aggregate_frame`` (the Datashader call and the shading).
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.app.coloring import TOP_CATEGORIES
from explorer.app.columns import MISSING_LABEL, ColumnInfo, display_value, numeric_values
from explorer.app.masks import WHERE_FILTER, canonical_filters
from explorer.errors import ConfigError, ExplorerError
from explorer.render import _kernels, _shade
from explorer.render.colors import DEFAULT_PALETTE, OTHER_COLOR, CategoricalColor
from explorer.render.hittest import points_in_box, points_in_polygon
from explorer.render.index import PointIndex, Viewport
from explorer.render.raster import Frame, LegendEntry, NumericColor
from explorer.store.export import subset_table
from explorer.store.reader import Store

LOCAL_PREFIX = "local:"
# Rows per partition: about 4 partitions per worker, within these bounds (a partition
# costs a task per frame, so a small store gets one or a few).
MIN_ROWS_PER_PARTITION = 250_000
ROWS_PER_PARTITION = 1_000_000
RETRIES = 2  # a task whose worker died is run again this many times
MASKS_KEPT = 16  # filter masks kept on the workers, least recently used dropped first
ERROR_COLUMN = "__error__"  # the per-point error (wrong 1 / right 0 / NaN), when built
_RADIX_BITS = (11, 11, 10)
# How a frame is aggregated: Datashader per partition in tasks, or its dask backend.
AggregateEngine = Literal[
    "partitions", "dask"
]  # an exact order statistic of float32 values in three rounds


class ClusterError(ExplorerError):
    """The Dask cluster could not be reached, or lost work it could not redo."""


def _dask_dataframe() -> Any:
    """``dask.dataframe``, imported when a cluster is used (its functions are untyped)."""
    return importlib.import_module("dask.dataframe")


# -- connecting ------------------------------------------------------------------------------
def connect(address: str, *, timeout: float = 10.0) -> tuple[Any, Any]:
    """A ``distributed.Client`` for ``address`` and the ``LocalCluster`` started for it.

    ``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes (closed
    with the client); anything else (``tcp://host:8786``) is a running scheduler's address.
    """
    distributed: Any = importlib.import_module("distributed")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if address.startswith(LOCAL_PREFIX):
        count = address[len(LOCAL_PREFIX) :]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            msg = f"--dask {address}: write local:N with N workers, 1 to 256 (e.g. local:2)"
            raise ConfigError(msg)
        cluster = LocalCluster(
            n_workers=int(count), threads_per_worker=1, processes=True,
            dashboard_address=":0", silence_logs=40,
        )  # fmt: skip
        return Client(cluster, set_as_default=True), cluster
    try:
        return Client(address, timeout=timeout, set_as_default=True), None
    except (OSError, TimeoutError, ValueError) as exc:
        msg = f"--dask {address}: cannot reach a Dask scheduler there ({type(exc).__name__})"
        raise ClusterError(msg) from exc


# -- what runs on the workers ----------------------------------------------------------------
_opened: dict[str, Store] = {}
_opened_lock = threading.Lock()


def _store(path: str) -> Store:
    """The store at ``path``, opened once per worker process (memory-mapped)."""
    with _opened_lock:
        if path not in _opened:
            _opened[path] = Store(path)
        return _opened[path]


def _read_rows(path: Path, columns: list[str], start: int, stop: int) -> pa.Table:
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


def _raw_categories(path: str, column: str, start: int, stop: int) -> tuple[list[Any], int]:
    """A categorical column's distinct values in rows ``start:stop`` and its number of
    missing values there: first seen first, as one ``dictionary_encode`` of the whole column
    orders them (a dictionary column: its whole dictionary, in its order)."""
    col = _read_rows(_store(path).table_path("validate", "points"), [column], start, stop)[0]
    if pa.types.is_dictionary(col.type):
        enc = col.unify_dictionaries().combine_chunks()
        return enc.dictionary.to_pylist(), int(enc.indices.null_count)
    enc = col.combine_chunks().dictionary_encode()
    return enc.dictionary.to_pylist(), int(enc.indices.null_count)


_KEEP_META = pd.Series(np.zeros(0, bool), index=pd.RangeIndex(0, 0, name="row"), name="keep")


@dataclass(frozen=True)
class _Columns:
    """What a partition holds beside x, y: internal name → (column, kind, raw categories)."""

    path: str
    items: tuple[tuple[str, str, str, tuple[Any, ...]], ...]  # (key, name, kind, raw values)


def _load_partition(path: str, layout: str, start: int, stop: int, spec: _Columns) -> pd.DataFrame:
    """Rows ``start:stop`` of ``layout``: x, y (float32) and the columns, indexed by row."""
    store = _store(path)
    xy = np.asarray(store.layout(layout)[start:stop], np.float32)
    data: dict[str, Any] = {"x": xy[:, 0].copy(), "y": xy[:, 1].copy()}
    table_cols = [name for _, name, kind, _ in spec.items if kind in ("categorical", "numeric")]
    table = (
        _read_rows(store.table_path("validate", "points"), table_cols, start, stop)
        if table_cols
        else None
    )
    for key, name, kind, raw in spec.items:
        if kind == "categorical" and table is not None:
            data[key] = _global_codes(table.column(name), raw)
        elif kind == "numeric" and table is not None:
            data[key] = numeric_values(table.column(name))
        elif kind == "score":
            data[key] = np.asarray(store.score(name)[start:stop], np.float32)
        elif kind == "error":
            data[key] = np.asarray(store.error_values()[start:stop], np.float64)
    return pd.DataFrame(data, index=pd.RangeIndex(start, stop, name="row"))


def _global_codes(col: pa.ChunkedArray, raw: tuple[Any, ...]) -> NDArray[np.int32]:
    """Codes of ``col`` into the whole column's values ``raw``; missing -> ``len(raw)``."""
    if pa.types.is_dictionary(col.type):
        enc = col.unify_dictionaries().combine_chunks()
    else:
        enc = col.combine_chunks().dictionary_encode()
    lookup = {v: i for i, v in enumerate(raw)}
    local = np.array([lookup[v] for v in enc.dictionary.to_pylist()] + [len(raw)], np.int32)
    idx = np.asarray(enc.indices.fill_null(len(local) - 1).to_numpy(zero_copy_only=False))
    return local[idx.astype(np.int64)]


def _empty_partition(columns: _Columns) -> pd.DataFrame:
    """A partition with no rows: the DataFrame's meta."""
    dtypes = {"categorical": np.int32, "numeric": np.float32, "score": np.float32,
              "error": np.float64}  # fmt: skip
    data: dict[str, Any] = {"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
    for key, _, kind, _ in columns.items:
        data[key] = np.zeros(0, dtypes[kind])
    return pd.DataFrame(data, index=pd.RangeIndex(0, 0, name="row"))


def _bounds(part: pd.DataFrame) -> NDArray[np.float64]:
    """``[xmin, xmax, ymin, ymax]`` of a partition's finite points (inf, -inf when none)."""
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    out: NDArray[np.float64] = _kernels.extent(xy)
    return out


def _cell_hist(part: pd.DataFrame, grid: NDArray[np.float64], side: int) -> NDArray[np.int64]:
    xy = np.ascontiguousarray(np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1))
    hist = np.zeros(side * side, np.int64)
    _kernels.cell_histogram(xy, 0, xy.shape[0], grid, side, hist)
    return hist


def _in(rows: NDArray[np.int64], sorted_rows: NDArray[np.int64] | None) -> NDArray[np.bool_]:
    """Which ``rows`` are in ``sorted_rows`` (sorted unique); all when it is None."""
    if sorted_rows is None:
        return np.ones(rows.size, bool)
    if sorted_rows.size == 0:
        return np.zeros(rows.size, bool)
    pos = np.minimum(np.searchsorted(sorted_rows, rows), sorted_rows.size - 1)
    hit: NDArray[np.bool_] = sorted_rows[pos] == rows
    return hit


def _flags(keep: pd.Series | NDArray[np.bool_] | None) -> NDArray[np.bool_] | None:
    return None if keep is None else np.asarray(keep, bool)


def _frame_rows(
    part: pd.DataFrame,
    keep: pd.Series | None = None,
    *,
    highlight: NDArray[np.int64] | None,
    attr: str | None,
    kind: str,
    slot_of_code: NDArray[np.intp] | None,
) -> pd.DataFrame:
    """The rows of one partition a frame draws: x, y and ``a`` (legend slot or float64)."""
    take = _in(part.index.to_numpy(np.int64), highlight)
    flags = _flags(keep)
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


def _box(
    part: pd.DataFrame, keep: pd.Series | None, box: tuple[float, float, float, float]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    local = points_in_box(xy, *box, mask=_flags(keep))
    return part.index.to_numpy(np.int64)[local], xy[local]


def _lasso(
    part: pd.DataFrame, keep: pd.Series | None, px: NDArray[np.float64],
    py: NDArray[np.float64],
) -> NDArray[np.int64]:  # fmt: skip
    xy = np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1)
    local = points_in_polygon(xy, px, py, mask=_flags(keep))
    out: NDArray[np.int64] = part.index.to_numpy(np.int64)[local]
    return out


def _nearest(
    part: pd.DataFrame, keep: pd.Series | None, x: float, y: float, r2: float
) -> tuple[float, int]:
    """(squared distance, row) of the partition's nearest point within ``r2``, or (inf, -1)."""
    xy = np.ascontiguousarray(np.stack([part["x"].to_numpy(), part["y"].to_numpy()], axis=1))
    flags = _flags(keep)
    mask = np.zeros(0, bool) if flags is None else flags
    spans = np.array([[0, xy.shape[0]]], np.int64)
    local = int(_kernels.nearest(xy, spans, np.zeros(0, np.int32), mask, x, y, r2))
    if local < 0:
        return float("inf"), -1
    dx, dy = np.float64(xy[local, 0]) - x, np.float64(xy[local, 1]) - y
    return float(dx * dx + dy * dy), int(part.index[local])


def _keep_of(part: pd.DataFrame, tests: tuple[tuple[str, str, Any], ...]) -> pd.Series:
    """The AND of filter tests on a partition: (key, "codes", allowed) or (key, "range", lo/hi)."""
    keep = np.ones(len(part), bool)
    for key, how, arg in tests:
        v = part[key].to_numpy()
        if how == "codes":
            keep &= np.asarray(arg, bool)[v]
        else:
            keep &= (v >= arg[0]) & (v <= arg[1])
    return pd.Series(keep, index=part.index, name="keep")


def _keep_piece(flags: NDArray[np.bool_], start: int) -> pd.Series:
    """A mask made in the web process, one partition of it (rows ``start:``)."""
    return pd.Series(flags, index=pd.RangeIndex(start, start + flags.size, name="row"), name="keep")


def _packed(keep: pd.Series) -> tuple[str, NDArray[np.int64], NDArray[np.uint8]]:
    """A partition's mask: ("range", [first row, count], one bit a row) when its rows are
    one range, else ("rows", the kept rows, nothing)."""
    rows = keep.index.to_numpy(np.int64)
    flags = keep.to_numpy(bool)
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return "range", np.array([rows[0], rows.size], np.int64), np.packbits(flags)
    return "rows", rows[flags], np.zeros(0, np.uint8)


def _selected(part: pd.DataFrame, rows: NDArray[np.int64] | None) -> NDArray[np.bool_]:
    return _in(part.index.to_numpy(np.int64), rows)


def _code_counts(
    part: pd.DataFrame, rows: NDArray[np.int64] | None, keys: tuple[tuple[str, int], ...]
) -> list[NDArray[np.int64]]:
    sel = _selected(part, rows)
    return [np.bincount(part[k].to_numpy()[sel], minlength=n).astype(np.int64) for k, n in keys]


def _error_sums(part: pd.DataFrame, rows: NDArray[np.int64] | None) -> tuple[float, int]:
    e = part[ERROR_COLUMN].to_numpy()[_selected(part, rows)]
    known = e[~np.isnan(e)]
    return float(known.sum()), int(known.size)


def _float_keys(values: NDArray[np.float32]) -> NDArray[np.uint32]:
    """Unsigned keys that sort as the finite float32 ``values`` do."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    neg = (bits >> 31).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)


def _key_value(key: int) -> float:
    bits = key & 0x7FFFFFFF if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def _digit_hist(
    part: pd.DataFrame, rows: NDArray[np.int64] | None,
    wanted: tuple[tuple[str, tuple[tuple[int, int], ...]], ...], bits: int,
) -> list[list[NDArray[np.int64]]]:  # fmt: skip
    """Per column key and per (prefix, prefix bits): counts of the next ``bits`` bits of
    the keys of the selected finite values that start with that prefix."""
    sel = _selected(part, rows)
    out = []
    for key, prefixes in wanted:
        v = part[key].to_numpy()[sel]
        keys = _float_keys(v[np.isfinite(v)])
        hists = []
        for prefix, used in prefixes:
            k = keys if used == 0 else keys[(keys >> np.uint32(32 - used)) == prefix]
            digit = (k >> np.uint32(32 - used - bits)) & np.uint32((1 << bits) - 1)
            hists.append(np.bincount(digit, minlength=1 << bits).astype(np.int64))
        out.append(hists)
    return out


def _export_part(
    path: str, start: int, rows: NDArray[np.int64], layouts: tuple[str, ...], vectors: bool
) -> pd.DataFrame:
    """The exported table of ``rows`` (sorted, inside one partition that starts at ``start``)."""
    store = _store(path)
    if rows.size == 0:
        return subset_table(store, rows, points=pq.read_schema(
            store.table_path("validate", "points")).empty_table())  # fmt: skip
    stop = int(rows[-1]) + 1
    table = _read_rows(store.table_path("validate", "points"), _all_columns(store), start, stop)
    out = subset_table(store, rows - start, points=table)
    for name in layouts:
        coords = np.asarray(store.layout(name)[rows])
        out[f"{name}_x"] = coords[:, 0]
        out[f"{name}_y"] = coords[:, 1]
    if vectors:
        out["vector"] = list(np.asarray(store.vectors(reduced=False)[rows]))
    return out


def _all_columns(store: Store) -> list[str]:
    return list(pq.read_schema(store.table_path("validate", "points")).names)


# -- the web process's side ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LayoutParts:
    """One layout on the cluster: its persisted partitions (in order) and their bounds.

    ddf : the persisted ``dask.dataframe`` (x, y and the columns, index = row; known divisions).
    parts : its partitions as Delayed, in order (for tasks per partition).
    bounds : (p, 4) float64 ``[xmin, xmax, ymin, ymax]`` of each partition's finite points.
    cells : an index over cell counts only (grid, side, offsets) for ``candidates``/extent.
    """

    parts: list[Any]
    bounds: NDArray[np.float64]
    ranges: NDArray[np.int64]
    cells: PointIndex
    ddf: Any

    def touching(self, x0: float, x1: float, y0: float, y1: float) -> list[int]:
        """Partitions whose bounds meet ``[x0, x1] × [y0, y1]``."""
        b = self.bounds
        hit = (b[:, 0] <= x1) & (b[:, 1] >= x0) & (b[:, 2] <= y1) & (b[:, 3] >= y0)
        return [int(i) for i in np.flatnonzero(hit)]


@dataclass(frozen=True)
class ColumnSummary:
    """What the web process knows of one column: kind, labels and counts, or range."""

    key: str
    kind: Literal["categorical", "numeric"]
    labels: tuple[str, ...] = ()
    counts: NDArray[np.int64] | None = None


class ClusterPoints:
    """A store's points on a Dask cluster: frames, hit-tests, filters, statistics, exports."""

    def __init__(
        self,
        store: Store,
        client: Any,
        columns: Mapping[str, ColumnInfo],
        *,
        cluster: Any = None,
        rows_per_partition: int | None = None,
        engine: AggregateEngine = "partitions",
    ) -> None:
        self.store = store
        self.engine: AggregateEngine = engine
        self.client = client
        self._cluster = cluster
        self.n_points = store.n_points
        self._path = str(Path(store.path).resolve())
        n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
        per = rows_per_partition or int(
            np.clip(-(-self.n_points // (4 * n_workers)), MIN_ROWS_PER_PARTITION,
                    ROWS_PER_PARTITION)
        )  # fmt: skip
        per = max(per, 1)
        cuts = np.unique(np.append(np.arange(0, self.n_points, per), self.n_points))
        self._ranges = np.stack([cuts[:-1], cuts[1:]], axis=1).astype(np.int64)
        self._lock = threading.Lock()
        self.summaries: dict[str, ColumnSummary] = {}
        self._columns = self._survey(columns)
        self.layouts: dict[str, LayoutParts] = {}
        for layout in store.layouts:
            self.layouts[layout] = self.load_layout(layout)
        # filters key -> (the mask, its keep Series per layout on the workers)
        self._masks: OrderedDict[str, tuple[NDArray[np.bool_], dict[str, Any]]] = OrderedDict()
        # id of an array sent to the workers -> (the array, what was sent)
        self._known: OrderedDict[int, tuple[NDArray[Any], Any]] = OrderedDict()
        self._quantiles: dict[tuple[str, float], float] = {}

    # -- start: columns, partitions, bounds ----------------------------------------------
    def _survey(self, columns: Mapping[str, ColumnInfo]) -> _Columns:
        """Name the columns the partitions carry; label every categorical one (on the cluster)."""
        from dask.delayed import delayed

        items: list[tuple[str, str, str, tuple[Any, ...]]] = []
        cats = [c.name for c in columns.values() if c.kind == "categorical"]
        jobs = [
            [delayed(_raw_categories)(self._path, name, int(a), int(b)) for a, b in self._ranges]
            for name in cats
        ]
        found = self.client.compute(jobs, sync=True, retries=RETRIES) if jobs else []
        for i, (name, per_part) in enumerate(zip(cats, found, strict=True)):
            raw: dict[Any, None] = {}
            for values, _ in per_part:
                raw.update(dict.fromkeys(values))
            key = f"c{i}"
            labels = [display_value(v) for v in raw]
            if any(nulls for _, nulls in per_part):
                labels.append(MISSING_LABEL)
            items.append((key, name, "categorical", tuple(raw)))
            self.summaries[name] = ColumnSummary(key, "categorical", tuple(labels))
        numeric = [c.name for c in columns.values() if c.kind == "numeric"]
        for j, name in enumerate([*numeric, *self.store.scores]):
            key = f"v{j}"
            items.append((key, name, "score" if name in self.store.scores else "numeric", ()))
            self.summaries[name] = ColumnSummary(key, "numeric")
        if self.store.has_errors:
            items.append((ERROR_COLUMN, ERROR_COLUMN, "error", ()))
        return _Columns(self._path, tuple(items))

    def load_layout(self, layout: str) -> LayoutParts:
        """Persist ``layout``'s partitions on the workers and measure their bounds.

        The seam for partitioned stores: here the partitions are row ranges of the
        memory-mapped layout and the point table; with a partitioned store they are its
        Parquet partitions (``Store.partition_ddf``), bounds read from the store.
        """
        dd = _dask_dataframe()
        from dask.delayed import delayed

        ranges = [(int(a), int(b)) for a, b in self._ranges]
        meta = _empty_partition(self._columns)
        ddf = dd.from_map(
            _load_partition,
            [self._path] * len(ranges), [layout] * len(ranges), [a for a, _ in ranges],
            [b for _, b in ranges], [self._columns] * len(ranges),
            meta=meta, divisions=[*(a for a, _ in ranges), ranges[-1][1] - 1] if ranges else None,
            enforce_metadata=False,
        )  # fmt: skip
        # Persisted once: frames and tasks read the workers' memory, and the scheduler
        # recomputes a partition whose worker died from this graph (the store on disk).
        ddf = self.client.persist(ddf, retries=RETRIES)
        parts = list(ddf.to_delayed(optimize_graph=False))
        bounds = np.array(
            self.client.compute([delayed(_bounds)(p) for p in parts], sync=True, retries=RETRIES),
            np.float64,
        ).reshape(-1, 4)
        cells = self._cells(parts, bounds)
        return LayoutParts(parts, bounds, self._ranges, cells, ddf)

    def _cells(self, parts: list[Any], bounds: NDArray[np.float64]) -> PointIndex:
        """Cell counts on the grid ``PointIndex.build`` would use (same side, same extent)."""
        from dask.delayed import delayed

        n = self.n_points
        side = int(np.clip(round(np.sqrt(n / 64)), 1, 2048))
        xmin, xmax = (
            float(bounds[:, 0].min(initial=np.inf)),
            float(bounds[:, 1].max(initial=-np.inf)),
        )
        ymin, ymax = (
            float(bounds[:, 2].min(initial=np.inf)),
            float(bounds[:, 3].max(initial=-np.inf)),
        )
        if not xmin <= xmax:
            xmin, xmax, ymin, ymax = 0.0, 1.0, 0.0, 1.0
        width = xmax - xmin if xmax > xmin else 1.0
        height = ymax - ymin if ymax > ymin else 1.0
        grid = np.array([xmin, side / width, ymin, side / height])
        hists = self.client.compute(
            [delayed(_cell_hist)(p, grid, side) for p in parts], sync=True, retries=RETRIES
        )
        offsets = np.zeros(side * side + 1, np.int64)
        np.cumsum(np.sum(hists, axis=0), out=offsets[1:])
        empty = np.zeros((0, 2), np.float32)
        return PointIndex(empty, empty, np.zeros(0, np.int32), offsets, grid, side)

    def close(self) -> None:
        """Close the client, and the local cluster when this server started it."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def _layout(self, layout: str) -> LayoutParts:
        if layout not in self.layouts:
            msg = f"no layout {layout!r} on the cluster (this store has {sorted(self.layouts)})"
            raise ConfigError(msg)
        return self.layouts[layout]

    def _run(self, jobs: Sequence[Any]) -> list[Any]:
        """Compute ``jobs`` on the cluster; a lost worker is retried, then a one-line error."""
        try:
            return list(self.client.compute(list(jobs), sync=True, retries=RETRIES))
        except ExplorerError:
            raise
        except Exception as exc:  # a killed worker, a lost connection: one line for the map
            self._forget()
            raise ClusterError(_cluster_message(exc)) from exc

    def _forget(self) -> None:
        """Drop what was scattered to the workers (a selection sent once): after a failure
        it may be gone with its worker, so the next call sends it again."""
        with self._lock:
            self._known.clear()

    # -- masks -----------------------------------------------------------------------------
    def mask(self, filters: Mapping[str, Any], where: Callable[[str], NDArray[np.int64]]) -> (
        NDArray[np.bool_] | None
    ):  # fmt: skip
        """(n,) read-only bool of the points ``filters`` keep (computed on the cluster), or
        None. The same filters give the same array; its partitions stay on the workers."""
        import json

        from dask.delayed import delayed

        if not filters:
            return None
        key = json.dumps(canonical_filters(filters), sort_keys=True)
        with self._lock:
            hit = self._masks.get(key)
            if hit is not None:
                self._masks.move_to_end(key)
                return hit[0]
        tests: list[tuple[str, str, Any]] = []
        extra: NDArray[np.bool_] | None = None
        for column, value in filters.items():
            if column == WHERE_FILTER:  # SQL runs where the table is (DuckDB): row ids back
                keep = np.zeros(self.n_points, bool)
                keep[where(str(value[0]) if value else "")] = True
                extra = keep if extra is None else extra & keep
                continue
            summary = self.summaries.get(column)
            if summary is None:
                msg = f"cannot filter on {column!r}: no such column or score in this store"
                raise ConfigError(msg)
            if summary.kind == "categorical":
                wanted = [str(v) for v in value]
                allowed = np.isin(np.asarray(summary.labels, dtype=object), wanted)
                tests.append((summary.key, "codes", allowed))
            else:
                lo, hi = (float(v) for v in value)
                tests.append((summary.key, "range", (lo, hi)))
        per_layout = {
            name: lp.ddf.map_partitions(_keep_of, tuple(tests), meta=_KEEP_META)
            for name, lp in self.layouts.items()
        }
        first = next(iter(per_layout.values()))
        mask = np.zeros(self.n_points, bool)
        for kind, where_, bits in self._run([delayed(_packed)(k) for k in first.to_delayed()]):
            if kind == "range":
                start, count = int(where_[0]), int(where_[1])
                mask[start : start + count] = np.unpackbits(bits, count=count).astype(bool)
            else:
                mask[where_] = True
        if extra is not None:
            mask &= extra
            kept = self._mask_ddfs(mask)
        else:
            kept = {name: self.client.persist(k, retries=RETRIES) for name, k in per_layout.items()}
        mask.setflags(write=False)
        with self._lock:
            self._masks[key] = (mask, kept)
            while len(self._masks) > MASKS_KEPT:
                self._masks.popitem(last=False)
        return mask

    def _mask_ddfs(self, mask: NDArray[np.bool_]) -> dict[str, Any]:
        """A mask made in the web process, sent to the workers once, split as each layout's
        partitions are (one ``keep`` Series per partition)."""
        dd = _dask_dataframe()

        out: dict[str, Any] = {}
        for name, lp in self.layouts.items():
            starts = [int(a) for a, _ in lp.ranges]
            pieces = [mask[a:b] for a, b in lp.ranges]
            keep = dd.from_map(_keep_piece, pieces, starts, meta=_KEEP_META,
                               divisions=lp.ddf.divisions, enforce_metadata=False)  # fmt: skip
            out[name] = self.client.persist(keep, retries=RETRIES)
        return out

    def _mask_ddf(self, layout: str, mask: NDArray[np.bool_] | None) -> Any:
        """``mask`` on the workers, partitioned as ``layout`` is (None for no mask)."""
        self._layout(layout)
        if mask is None:
            return None
        with self._lock:
            for stored, per_layout in self._masks.values():
                if stored is mask:
                    return per_layout[layout]
            hit = self._known.get(id(mask))
            if hit is not None and hit[0] is mask:
                return hit[1][layout]
        flags = np.asarray(mask, bool)
        if flags.shape != (self.n_points,):
            msg = f"mask must have shape ({self.n_points},), got {flags.shape}"
            raise ConfigError(msg)
        per_layout = self._mask_ddfs(flags)
        self._remember(mask, per_layout)
        return per_layout[layout]

    def _mask_parts(self, layout: str, mask: NDArray[np.bool_] | None) -> list[Any]:
        """``mask``'s partitions as Delayed (each None for no mask), for tasks."""
        keep = self._mask_ddf(layout, mask)
        if keep is None:
            return [None] * len(self._layout(layout).parts)
        return list(keep.to_delayed(optimize_graph=False))

    def _remember(self, array: NDArray[Any], value: Any) -> None:
        with self._lock:
            self._known[id(array)] = (array, value)
            while len(self._known) > 8:
                self._known.popitem(last=False)

    def _rows_future(self, rows: NDArray[np.int64] | None) -> Any:
        """Sorted unique row ids on the cluster, sent once per array (by identity)."""
        if rows is None:
            return None
        with self._lock:
            hit = self._known.get(id(rows))
            if hit is not None and hit[0] is rows:
                return hit[1]
        sent = self.client.scatter(np.unique(np.asarray(rows, np.int64)), broadcast=True)
        self._remember(rows, sent)
        return sent

    # -- colour ------------------------------------------------------------------------------
    def category_counts(self, column: str) -> NDArray[np.int64]:
        """Points per label of a categorical column over all points (counted once)."""
        summary = self.summaries[column]
        if summary.counts is None:
            counts = self.selected_counts([column], None)[0]
            counts.setflags(write=False)
            summary = ColumnSummary(summary.key, summary.kind, summary.labels, counts)
            self.summaries[column] = summary
        assert summary.counts is not None
        return summary.counts

    def coloring(self, name: str) -> CategoricalColor | NumericColor | None:
        """The map's colouring of ``name`` as the in-process path makes it, without the
        per-point arrays (those stay on the workers): legend slots, or the value span."""
        summary = self.summaries.get(name)
        if not name or summary is None:
            return None
        if summary.kind == "numeric":
            lo, hi = self.percentiles(name, (1.0, 99.0))
            reduction: Literal["mean", "max"] = "max" if name.startswith("outlier") else "mean"
            empty = np.zeros(0, np.float32)
            return NumericColor(empty, span=(lo, max(hi, lo)), reduction=reduction)
        counts = self.category_counts(name)
        order = np.argsort(-counts, kind="stable")
        shown = order[: min(TOP_CATEGORIES, len(summary.labels))]
        names = [summary.labels[c] for c in shown]
        colors = list(DEFAULT_PALETTE[: len(shown)])
        if len(summary.labels) > len(shown):
            names.append("other")
            colors.append(OTHER_COLOR)
        return CategoricalColor(
            np.zeros(0, np.uint8), np.arange(len(names)), tuple(names), tuple(colors)
        )

    def _slot_of_code(self, name: str) -> NDArray[np.intp]:
        summary = self.summaries[name]
        counts = self.category_counts(name)
        shown = np.argsort(-counts, kind="stable")[: min(TOP_CATEGORIES, len(summary.labels))]
        slot_of_code = np.full(len(summary.labels), len(shown), np.intp)
        slot_of_code[shown] = np.arange(len(shown))
        return slot_of_code

    # -- frames ------------------------------------------------------------------------------
    def candidates(self, layout: str, viewport: Viewport) -> int:
        """Points in the grid cells the viewport meets (``PointIndex.candidates``)."""
        return self._layout(layout).cells.candidates(viewport)

    def grid(self, layout: str) -> tuple[NDArray[np.float64], int]:
        """The layout's grid ``[xmin, side / width, ymin, side / height]`` and side."""
        cells = self._layout(layout).cells
        return cells.grid, cells.side

    def view_partitions(
        self,
        layout: str,
        viewport: Viewport,
        color_by: str = "",
        *,
        mask: NDArray[np.bool_] | None = None,
        highlight: NDArray[np.int64] | None = None,
    ) -> tuple[Any, str]:
        """A ``dask.dataframe`` of the rows a frame draws (x, y and ``a``, the colour),
        built from only the partitions that meet ``viewport``, and the colour's kind."""
        dd = _dask_dataframe()

        lp = self._layout(layout)
        ids = lp.touching(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
        summary = self.summaries.get(color_by) if color_by else None
        kind = "" if summary is None else summary.kind
        options: dict[str, Any] = {
            "highlight": self._rows_future(highlight),
            "attr": None if summary is None else summary.key,
            "kind": kind,
            "slot_of_code": self._slot_of_code(color_by) if kind == "categorical" else None,
        }
        meta = _frame_rows(_empty_partition(self._columns), **{**options, "highlight": None})
        if not ids:
            return dd.from_pandas(meta, npartitions=1), kind
        keep = self._mask_ddf(layout, mask)
        args = [] if keep is None else [keep.partitions[ids]]
        ddf = lp.ddf.partitions[ids].map_partitions(_frame_rows, *args, meta=meta, **options)
        return ddf, kind

    def render(
        self,
        layout: str,
        viewport: Viewport,
        color_by: str = "",
        *,
        color: CategoricalColor | NumericColor | None = None,
        mask: NDArray[np.bool_] | None = None,
        highlight: NDArray[np.int64] | None = None,
        min_alpha: int = 40,
        how: str = "eq_hist",
        dim: float = 0.25,
    ) -> Frame:
        """One frame, as ``explorer.render.raster.render`` draws it, aggregated on the cluster."""
        if color is None:
            color = self.coloring(color_by)
        try:
            ddf, kind = self.view_partitions(layout, viewport, color_by, mask=mask)
            base = aggregate_frame(ddf, viewport, kind, color, how, min_alpha,
                                   client=self.client, engine=self.engine)  # fmt: skip
            radius = _shade.spread_radius(base.nonzero)
            rgba = _shade.spread(base.rgba, radius)
            n_highlight = 0
            if highlight is not None:
                ddf, kind = self.view_partitions(
                    layout, viewport, color_by, mask=mask, highlight=highlight
                )
                top = aggregate_frame(ddf, viewport, kind, color, how, min_alpha,
                                      client=self.client, engine=self.engine)  # fmt: skip
                rgba = _shade.composite(rgba, _shade.spread(top.rgba, radius), dim)
                n_highlight = top.n_in
        except ExplorerError:
            raise
        except Exception as exc:  # a killed worker, a lost connection: one line for the map
            self._forget()
            raise ClusterError(_cluster_message(exc)) from exc
        legend: tuple[LegendEntry, ...] = ()
        if isinstance(color, CategoricalColor):
            legend = tuple(
                LegendEntry(label, hex_, int(count))
                for label, hex_, count in zip(
                    color.labels, color.colors, base.slot_counts, strict=True
                )
            )
        return Frame(rgba, viewport, base.n_in, n_highlight, legend, base.span, radius)

    # -- hit-tests -----------------------------------------------------------------------------
    def box(
        self, layout: str, x0: float, x1: float, y0: float, y1: float,
        mask: NDArray[np.bool_] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:  # fmt: skip
        """Sorted rows inside the box (edges in either order) and their (k, 2) positions."""
        from dask.delayed import delayed

        lp = self._layout(layout)
        bx0, bx1 = sorted((float(x0), float(x1)))
        by0, by1 = sorted((float(y0), float(y1)))
        keep = self._mask_parts(layout, mask)
        ids = lp.touching(bx0, bx1, by0, by1)
        found = self._run([delayed(_box)(lp.parts[i], keep[i], (bx0, bx1, by0, by1)) for i in ids])
        return _sorted_rows(found)

    def lasso(
        self, layout: str, px: NDArray[np.float64], py: NDArray[np.float64],
        mask: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.int64]:  # fmt: skip
        """Sorted rows inside the polygon (even-odd rule, as ``points_in_polygon``)."""
        from dask.delayed import delayed

        px = np.asarray(px, np.float64).ravel()
        py = np.asarray(py, np.float64).ravel()
        if px.size < 3 or px.shape != py.shape:
            return points_in_polygon(np.zeros((0, 2), np.float32), px, py)  # its checks
        lp = self._layout(layout)
        keep = self._mask_parts(layout, mask)
        ids = lp.touching(float(px.min()), float(px.max()), float(py.min()), float(py.max()))
        found = self._run([delayed(_lasso)(lp.parts[i], keep[i], px, py) for i in ids])
        rows = np.concatenate(found) if found else np.zeros(0, np.int64)
        return np.sort(rows).astype(np.int64)

    def nearest(
        self, layout: str, x: float, y: float, radius: float,
        mask: NDArray[np.bool_] | None = None,
    ) -> int | None:  # fmt: skip
        """The row nearest ``(x, y)`` within ``radius`` (ties: smallest row), or None."""
        from dask.delayed import delayed

        if not (np.isfinite(x) and np.isfinite(y) and radius >= 0):
            return None
        lp = self._layout(layout)
        keep = self._mask_parts(layout, mask)
        pad = radius * (1 + 1e-9) + 1e-30
        ids = lp.touching(x - pad, x + pad, y - pad, y + pad)
        jobs = [delayed(_nearest)(lp.parts[i], keep[i], x, y, radius * radius) for i in ids]
        best = min(((d, r) for d, r in self._run(jobs) if r >= 0), default=None)
        return None if best is None else int(best[1])

    # -- statistics ----------------------------------------------------------------------------
    def _stat_parts(self) -> list[Any]:
        return next(iter(self.layouts.values())).parts

    def selected_counts(
        self, columns: Sequence[str], rows: NDArray[np.int64] | None
    ) -> list[NDArray[np.int64]]:
        """Per categorical column, points per label among ``rows`` (all points for None)."""
        from dask.delayed import delayed

        keys = tuple((self.summaries[c].key, len(self.summaries[c].labels)) for c in columns)
        sel = self._rows_future(rows)
        per_part = self._run([delayed(_code_counts)(p, sel, keys) for p in self._stat_parts()])
        return [
            np.sum([counts[i] for counts in per_part], axis=0).astype(np.int64)
            if per_part else np.zeros(n, np.int64)
            for i, (_, n) in enumerate(keys)
        ]  # fmt: skip

    def error_rate(self, rows: NDArray[np.int64] | None) -> float:
        """Mean error over the known points among ``rows`` (NaN when none is known)."""
        from dask.delayed import delayed

        if not self.store.has_errors:
            return float("nan")
        sel = self._rows_future(rows)
        sums = self._run([delayed(_error_sums)(p, sel) for p in self._stat_parts()])
        total, count = sum(s for s, _ in sums), sum(c for _, c in sums)
        return total / count if count else float("nan")

    def order_statistics(
        self,
        names: Sequence[str],
        rows: NDArray[np.int64] | None,
        ranks: Callable[[int], list[int]],
    ) -> list[tuple[int, list[float]]]:
        """Per column: its number of finite values among ``rows`` (all for None) and the
        values at the 0-based ``ranks(count)`` in sorted order.

        Exact, and no value leaves the workers: three rounds of radix histograms over the
        float32 bit patterns (2048 bins a round), every column in the same tasks.
        """
        from dask.delayed import delayed

        keys = [self.summaries[name].key for name in names]
        sel = self._rows_future(rows)
        parts = self._stat_parts()
        # per column: (prefix, bits used, rank left) of each wanted rank
        targets: list[list[tuple[int, int, int]]] = [[(0, 0, -1)] for _ in keys]
        counts: list[int] = []
        for bits in _RADIX_BITS:
            wanted = tuple(
                (key, tuple(dict.fromkeys((p, u) for p, u, _ in t)))
                for key, t in zip(keys, targets, strict=True)
            )
            hists = self._run([delayed(_digit_hist)(p, sel, wanted, bits) for p in parts])
            nxt = []
            for c, (_, prefixes) in enumerate(wanted):
                total = {
                    pu: np.sum([h[c][i] for h in hists], axis=0) for i, pu in enumerate(prefixes)
                }
                if not counts or len(counts) <= c:
                    n = int(total[0, 0].sum()) if hists else 0
                    counts.append(n)
                    targets[c] = [(0, 0, r) for r in (ranks(n) if n else [])]
                column = []
                for prefix, used, rank in targets[c]:
                    cum = np.cumsum(total[prefix, used])
                    digit = int(np.searchsorted(cum, rank, side="right"))
                    below = int(cum[digit - 1]) if digit else 0
                    column.append(((prefix << bits) | digit, used + bits, rank - below))
                nxt.append(column)
            targets = nxt
        return [(n, [_key_value(p) for p, _, _ in t]) for n, t in zip(counts, targets, strict=True)]

    def medians(self, names: Sequence[str], rows: NDArray[np.int64] | None) -> list[float]:
        """``finite_median`` of each column among ``rows`` (all points for None)."""
        found = self.order_statistics(names, rows, lambda n: sorted({(n - 1) // 2, n // 2}))
        return [
            float(np.median(np.array(values, np.float32))) if n else float("nan")
            for n, values in found
        ]

    def median(self, name: str, rows: NDArray[np.int64] | None) -> float:
        """``finite_median`` of ``name`` among ``rows`` (all points for None)."""
        return self.medians([name], rows)[0]

    def percentiles(self, name: str, qs: tuple[float, ...]) -> tuple[float, ...]:
        """``np.percentile`` of the finite values of ``name`` at ``qs`` (over all points)."""
        h = np.true_divide(np.asarray(qs, np.float64), 100)

        def ranks(n: int) -> list[int]:
            virtual = h * (n - 1)
            low = np.floor(virtual).astype(np.int64)
            return sorted({*low.tolist(), *np.minimum(low + 1, n - 1).tolist()})

        ((count, values),) = self.order_statistics([name], None, ranks)
        if count == 0:
            return tuple(0.0 if q < 50 else 1.0 for q in qs)
        at = dict(zip(ranks(count), values, strict=True))
        out = []
        for v in h * (count - 1):
            lo = int(np.floor(v))
            pair = np.array([at[lo], at[min(lo + 1, count - 1)]], np.float32)
            out.append(float(np.quantile(pair, v - lo)))
        return tuple(out)

    def value_range(self, name: str) -> tuple[float, float]:
        """(min, max) of the finite values of ``name``; (0, 0) when none."""
        ((count, values),) = self.order_statistics([name], None, lambda n: [0, n - 1])
        return (values[0], values[-1]) if count else (0.0, 0.0)

    # -- export ------------------------------------------------------------------------------
    def subset(
        self, rows: NDArray[np.int64], *, layouts: tuple[str, ...] = (), vectors: bool = False
    ) -> pd.DataFrame:
        """The point table at ``rows`` as ``explorer export`` writes it, gathered from the
        workers (each reads its partition's rows)."""
        from dask.delayed import delayed

        rows = np.unique(np.asarray(rows, np.int64))
        jobs = []
        for a, b in self._ranges:
            inside = rows[(rows >= a) & (rows < b)]
            if inside.size:
                jobs.append(delayed(_export_part)(self._path, int(a), inside, layouts, vectors))
        if not jobs:
            jobs = [delayed(_export_part)(self._path, 0, rows, layouts, vectors)]
        table: pd.DataFrame = pd.concat(self._run(jobs), ignore_index=True)
        return table


@dataclass(frozen=True, eq=False)
class _Layer:
    rgba: NDArray[np.uint32]
    nonzero: NDArray[np.bool_]
    n_in: int
    span: tuple[float, float] | None
    slot_counts: NDArray[np.int64]


def _canvas(vp: tuple[float, float, float, float, int, int]) -> Any:
    import datashader as ds

    x0, x1, y0, y1, w, h = vp
    return ds.Canvas(plot_width=w, plot_height=h, x_range=(x0, x1), y_range=(y0, y1))


def _aggregate(
    df: pd.DataFrame | Any, vp: tuple[float, float, float, float, int, int], kind: str,
    rgb: NDArray[np.uint32] | None, use_max: bool,
) -> dict[str, Any]:  # fmt: skip
    """Datashader's aggregate of ``df`` (x, y, ``a``) for one viewport, kept sparse (the
    drawn pixels ``idx`` only) in fields that add up over partitions: ``count``;
    ``acc`` ``[count, R, G, B]`` sums and ``slots`` (categories); ``c`` valid values and
    ``v`` their sum or maximum, ``n`` points drawn (numbers)."""
    import datashader as ds

    canvas = _canvas(vp)
    n_pixels = vp[4] * vp[5]
    if kind == "categorical" and rgb is not None:
        by = np.asarray(canvas.points(df, "x", "y", ds.by("a", ds.count())).data)
        flat = by.reshape(n_pixels, by.shape[-1])
        total = flat.sum(axis=1, dtype=np.uint64)
        idx = np.flatnonzero(total)
        drawn = flat[idx].astype(np.uint64)
        acc = np.empty((idx.size, 4), np.uint64)
        acc[:, 0] = total[idx]
        acc[:, 1:] = drawn @ rgb.astype(np.uint64)
        slots = drawn.sum(axis=0).astype(np.int64)
        return {"n_pixels": n_pixels, "idx": idx, "acc": acc, "slots": slots}
    if kind == "numeric":
        value = ds.max("a") if use_max else ds.sum("a")
        agg = canvas.points(df, "x", "y", ds.summary(n=ds.count(), c=ds.count("a"), v=value))
        c = np.asarray(agg["c"].data, np.float64).reshape(-1)
        idx = np.flatnonzero(c)
        v = np.asarray(agg["v"].data, np.float64).reshape(-1)[idx]
        return {"n_pixels": n_pixels, "idx": idx, "c": c[idx], "v": v,
                "n": int(np.asarray(agg["n"].data).sum()), "max": use_max}  # fmt: skip
    counts = np.asarray(canvas.points(df, "x", "y", ds.count()).data, np.uint32).reshape(-1)
    idx = np.flatnonzero(counts)
    return {"n_pixels": n_pixels, "idx": idx, "count": counts[idx]}


_PIXEL_FIELDS = ("count", "acc", "c", "v")


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up sparse partition aggregates pixel by pixel (a maximum for ``v`` with ``max``).

    Through a dense buffer: a partition's pixels are unique, so ``buf[idx] += values``
    is exact, and it costs one pass over the frame instead of a sort of every pixel.
    """
    out = dict(parts[0])
    n_pixels = int(out["n_pixels"])
    use_max = bool(out.get("max"))
    seen = np.zeros(n_pixels, bool)
    for part in parts:
        seen[part["idx"]] = True
    out["idx"] = np.flatnonzero(seen)
    for key in _PIXEL_FIELDS:
        if key not in out:
            continue
        first = parts[0][key]
        buf = np.zeros((n_pixels, *first.shape[1:]), first.dtype)
        if key == "v" and use_max:
            buf[:] = -np.inf
        for part in parts:
            if key == "v" and use_max:
                buf[part["idx"]] = np.maximum(buf[part["idx"]], part[key])
            else:
                buf[part["idx"]] += part[key]
        out[key] = buf[out["idx"]]
    for key in ("slots", "n"):
        if key in out:
            out[key] = sum(p[key] for p in parts)
    return out


def _dense(agg: dict[str, Any], key: str, n_pixels: int, dtype: Any) -> NDArray[Any]:
    values = agg[key]
    out = np.zeros((n_pixels, *values.shape[1:]), dtype)
    out[agg["idx"]] = values
    return out


def _tree(jobs: list[Any], split_every: int = 4) -> Any:
    """One Delayed combining ``jobs`` in a tree on the workers (one result comes back)."""
    from dask.delayed import delayed

    while len(jobs) > 1:
        jobs = [delayed(_combine)(jobs[i : i + split_every])
                for i in range(0, len(jobs), split_every)]  # fmt: skip
    return jobs[0]


def aggregate_frame(
    ddf: Any,
    viewport: Viewport,
    kind: str,
    color: CategoricalColor | NumericColor | None,
    how: str,
    min_alpha: int,
    *,
    client: Any = None,
    engine: AggregateEngine = "partitions",
) -> _Layer:
    """Datashader over ``ddf`` (x, y, ``a``), shaded as the in-process path shades.

    ``engine="partitions"`` runs Datashader's pandas backend on each partition in a task
    and adds the aggregates up in a tree on the workers; ``"dask"`` hands ``ddf`` to
    Datashader's dask backend, which pickles and recompiles its numba closures for every
    call (about a second a frame here, see docs/benchmarks.md). The seam for
    ``explorer.render``'s DataFrame entry point: swap this body for that call.
    """
    from dask.delayed import delayed

    vp = (viewport.x0, viewport.x1, viewport.y0, viewport.y1, viewport.width, viewport.height)
    rgb = (
        _shade.rgb_triples(color.colors)
        if kind == "categorical" and isinstance(color, CategoricalColor)
        else None
    )
    use_max = isinstance(color, NumericColor) and color.reduction == "max"
    if kind == "numeric" and not isinstance(color, NumericColor):
        kind = ""
    if engine == "dask":
        agg = _aggregate(ddf, vp, kind, rgb, use_max)
    else:
        jobs = [delayed(_aggregate)(p, vp, kind, rgb, use_max) for p in ddf.to_delayed()]
        agg = client.compute(_tree(jobs), sync=True, retries=RETRIES)
    none = np.zeros(0, np.int64)
    h, w = viewport.height, viewport.width
    if "acc" in agg:
        acc = _dense(agg, "acc", h * w, np.uint64).reshape(h, w, 4)
        if int(acc[..., 0].max(initial=0)) <= (2**32 - 1) // 255:
            acc = acc.astype(np.uint32)  # as the in-process sums, so one kernel serves both
        slot_counts = np.asarray(agg["slots"], np.int64).reshape(-1)
        if slot_counts.size == 0 and isinstance(color, CategoricalColor):
            slot_counts = np.zeros(len(color.labels), np.int64)
        rgba = _shade.shade_rgb(acc, how, min_alpha)
        return _Layer(rgba, acc[..., 0] > 0, int(slot_counts.sum()), None, slot_counts)
    if "c" in agg and isinstance(color, NumericColor):
        acc_v = np.stack(
            [_dense(agg, "c", h * w, np.float64), _dense(agg, "v", h * w, np.float64)], axis=-1
        ).reshape(h, w, 2)
        lut = _shade.cmap_lut(color.cmap)
        rgba, span = _shade.shade_values(acc_v, lut, mean=not use_max, span=color.span)
        return _Layer(rgba, acc_v[..., 0] > 0, int(agg["n"]), span, none)
    counts = _dense(agg, "count", h * w, np.uint32).reshape(h, w)
    rgba = _shade.shade_counts(counts, _shade.cmap_lut(_shade.DEFAULT_COUNT_CMAP), how)
    nonzero = counts > 0
    n_in = int(counts.sum())
    span = (float(counts[nonzero].min()), float(counts.max())) if n_in else None
    return _Layer(rgba, nonzero, n_in, span, none)


def _sorted_rows(
    found: list[tuple[NDArray[np.int64], NDArray[np.float32]]],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    if not found:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    rows = np.concatenate([r for r, _ in found])
    xy = np.concatenate([p for _, p in found]).reshape(-1, 2)
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), xy[order]


def _cluster_message(exc: BaseException) -> str:
    """One line for a failed cluster call."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if len(text) > 160:
        text = text[:159] + "…"
    return f"the Dask cluster failed ({type(exc).__name__}: {text}); the next view retries"
