"""The points live on the cluster: ``explorer serve STORE --dask ADDRESS``.

``ClusterPoints`` keeps every layout's points, the colourable columns and the filter masks
persisted on the workers of a Dask cluster, partition by partition, each partition's bounds
known in the web process. A frame is Datashader over the ``dask.dataframe`` of the
partitions the view touches (``cluster_frames``); hit-tests, filters, selection statistics
and exports are tasks per partition (``cluster_tasks``) that send back row ids, bitmaps or
small tables. The web process holds images, selections (row ids), masks and per-column
summaries: no coordinates and no column values.

``ClusterPoints.load_layout`` is the one place that makes a layout's partitions: row ranges
of the memory-mapped layout and point table today; a partitioned store's parts
(``Store.partition_ddf``) can take its place.
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
from numpy.typing import NDArray

from explorer.app import cluster_frames as frames
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_tasks import RETRIES
from explorer.app.coloring import TOP_CATEGORIES
from explorer.app.columns import MISSING_LABEL, ColumnInfo, display_value
from explorer.app.masks import WHERE_FILTER, canonical_filters
from explorer.errors import ConfigError, ExplorerError
from explorer.render.colors import DEFAULT_PALETTE, OTHER_COLOR, CategoricalColor
from explorer.render.frame import Frame, assemble
from explorer.render.hittest import points_in_polygon
from explorer.render.index import PointIndex, Viewport
from explorer.render.raster import NumericColor
from explorer.store.reader import Store

LOCAL_PREFIX = "local:"
# Rows per partition: about 4 partitions per worker, within these bounds (a partition
# costs a task per frame, so a small store gets one or a few).
MIN_ROWS_PER_PARTITION = 250_000
ROWS_PER_PARTITION = 1_000_000
MASKS_KEPT = 16  # filter masks kept on the workers, least recently used dropped first
_RADIX_BITS = (11, 11, 10)
# How a frame is aggregated: Datashader per partition in tasks, or its dask backend.
frames.AggregateEngine = Literal[
    "partitions", "dask"
]  # an exact order statistic of float32 values in three rounds


class ClusterError(ExplorerError):
    """The Dask cluster could not be reached, or lost work it could not redo."""


def _dask_dataframe() -> Any:
    """``dask.dataframe``, imported when a cluster is used (its functions are untyped)."""
    return importlib.import_module("dask.dataframe")


def check_address(address: str) -> None:
    """A one-line ConfigError unless ``address`` is ``local:N`` or a scheduler address."""
    if address.startswith(LOCAL_PREFIX):
        count = address[len(LOCAL_PREFIX) :]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            msg = f"--dask {address}: write local:N with N workers, 1 to 256 (e.g. local:2)"
            raise ConfigError(msg)
    elif not address.strip():
        msg = "--dask needs an address: local:N, or a scheduler's tcp://host:port"
        raise ConfigError(msg)


# -- connecting ------------------------------------------------------------------------------
def connect(address: str, *, timeout: float = 10.0) -> tuple[Any, Any]:
    """A ``distributed.Client`` for ``address`` and the ``LocalCluster`` started for it.

    ``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes (closed
    with the client); anything else (``tcp://host:8786``) is a running scheduler's address.
    """
    distributed: Any = importlib.import_module("distributed")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    check_address(address)
    if address.startswith(LOCAL_PREFIX):
        count = address[len(LOCAL_PREFIX) :]
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
        engine: frames.AggregateEngine = "partitions",
    ) -> None:
        self.store = store
        self.engine: frames.AggregateEngine = engine
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
    def _survey(self, columns: Mapping[str, ColumnInfo]) -> tasks.PartitionColumns:
        """Name the columns the partitions carry; label every categorical one (on the cluster)."""
        from dask.delayed import delayed

        items: list[tuple[str, str, str, tuple[Any, ...]]] = []
        cats = [c.name for c in columns.values() if c.kind == "categorical"]
        jobs = [
            [
                delayed(tasks.raw_categories)(self._path, name, int(a), int(b))
                for a, b in self._ranges
            ]
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
            items.append((tasks.ERROR_COLUMN, tasks.ERROR_COLUMN, "error", ()))
        return tasks.PartitionColumns(self._path, tuple(items))

    def load_layout(self, layout: str) -> LayoutParts:
        """Persist ``layout``'s partitions on the workers and measure their bounds.

        A partitioned layout (``explorer build --partition``) is read from its Parquet
        parts, tiled by position, so a view skips the parts it does not meet; any other is
        cut into row ranges of the memory-mapped layout and point table.
        """
        dd = _dask_dataframe()
        from dask.delayed import delayed

        meta = tasks.empty_partition(self._columns)
        if self.store.is_partitioned(layout):
            sources = self._part_sources(layout)
            parts_ddf: Any = self.store.partition_ddf(layout)  # dask's methods are untyped
            ddf = parts_ddf.map_partitions(tasks.from_part, self._columns, sources, meta=meta)
        else:
            ranges = [(int(a), int(b)) for a, b in self._ranges]
            ddf = dd.from_map(
                tasks.load_partition,
                [self._path] * len(ranges), [layout] * len(ranges), [a for a, _ in ranges],
                [b for _, b in ranges], [self._columns] * len(ranges),
                meta=meta,
                divisions=[*(a for a, _ in ranges), ranges[-1][1] - 1] if ranges else None,
                enforce_metadata=False,
            )  # fmt: skip
        # Persisted once: frames and tasks read the workers' memory, and the scheduler
        # recomputes a partition whose worker died from this graph (the store on disk).
        ddf = self.client.persist(ddf, retries=RETRIES)
        parts = list(ddf.to_delayed(optimize_graph=False))
        bounds = np.array(
            self.client.compute(
                [delayed(tasks.bounds)(p) for p in parts], sync=True, retries=RETRIES
            ),
            np.float64,
        ).reshape(-1, 4)
        cells = self._cells(parts, bounds)
        return LayoutParts(parts, bounds, cells, ddf)

    def _part_sources(self, layout: str) -> dict[str, tuple[str, tuple[int, ...]]]:
        """For each column key: the part column holding it and, for a categorical one
        stored dictionary-encoded, each part category's code in our labels (-1: missing).
        A key with no part column is left out (read from the point table by row)."""
        described = self.store.partition_columns(layout)
        out: dict[str, tuple[str, tuple[int, ...]]] = {}
        for key, name, kind, raw in self._columns.items:
            if kind == "error":
                continue
            want = "score" if kind == "score" else "point"
            found = [
                c for c, info in described.items()
                if info.get("kind") == want and (info.get("source") or c) == name
            ]  # fmt: skip
            if not found:
                continue
            cats = described[found[0]].get("categories")
            lookup: tuple[int, ...] = ()
            if kind == "categorical" and cats is not None:
                by_value = {v: i for i, v in enumerate(raw)}
                by_text = {str(v): i for i, v in enumerate(raw)}
                lookup = tuple(by_value.get(c, by_text.get(str(c), -1)) for c in cats)
            out[key] = (found[0], lookup)
        return out

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
            [delayed(tasks.cell_hist)(p, grid, side) for p in parts], sync=True, retries=RETRIES
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
            name: lp.ddf.map_partitions(tasks.keep_of, tuple(tests), meta=tasks.KEEP_META)
            for name, lp in self.layouts.items()
        }
        first = next(iter(per_layout.values()))
        mask = np.zeros(self.n_points, bool)
        for kind, where_, bits in self._run([delayed(tasks.packed)(k) for k in first.to_delayed()]):
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
        """A mask made in the web process, sent to the workers once as one bit a point,
        each layout's partitions taking their rows' bits (one ``keep`` Series each)."""
        bits = self.client.scatter(np.packbits(mask), broadcast=True)
        return {
            name: self.client.persist(
                lp.ddf.map_partitions(tasks.keep_from_bits, bits, meta=tasks.KEEP_META),
                retries=RETRIES,
            )
            for name, lp in self.layouts.items()
        }

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
            reduction: Literal["mean", "max", "min"] = (
                "max" if name.startswith("outlier") else "mean"
            )
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

    def slots_of(self, column: str, rows: NDArray[np.int64]) -> NDArray[np.intp]:
        """The legend slot of each of ``rows`` (sorted unique) coloured by ``column``."""
        from dask.delayed import delayed

        key = self.summaries[column].key
        rows = np.asarray(rows, np.int64)
        jobs = [delayed(tasks.values_at)(p, rows, key) for p in self._stat_parts()]
        found = self._run(jobs)
        got = np.concatenate([r for r, _ in found]) if found else np.zeros(0, np.int64)
        codes = np.concatenate([v for _, v in found]) if found else np.zeros(0, np.int32)
        codes = codes[np.argsort(got, kind="stable")]
        out: NDArray[np.intp] = self._slot_of_code(column)[codes]
        return out

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
        meta = tasks.frame_rows(
            tasks.empty_partition(self._columns), **{**options, "highlight": None}
        )
        if not ids:
            return dd.from_pandas(meta, npartitions=1), kind
        keep = self._mask_ddf(layout, mask)
        args = [] if keep is None else [keep.partitions[ids]]
        ddf = lp.ddf.partitions[ids].map_partitions(tasks.frame_rows, *args, meta=meta, **options)
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
            base = frames.aggregate_frame(ddf, viewport, kind, color, how, min_alpha,
                                          client=self.client, engine=self.engine)  # fmt: skip
            top = None
            if highlight is not None:
                ddf, kind = self.view_partitions(
                    layout, viewport, color_by, mask=mask, highlight=highlight
                )
                top = frames.aggregate_frame(ddf, viewport, kind, color, how, min_alpha,
                                             client=self.client, engine=self.engine)  # fmt: skip
        except ExplorerError:
            raise
        except Exception as exc:  # a killed worker, a lost connection: one line for the map
            self._forget()
            raise ClusterError(_cluster_message(exc)) from exc
        return assemble(viewport, base, top, color, spread="auto", dim=dim)

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
        found = self._run(
            [delayed(tasks.box)(lp.parts[i], keep[i], (bx0, bx1, by0, by1)) for i in ids]
        )
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
        found = self._run([delayed(tasks.lasso)(lp.parts[i], keep[i], px, py) for i in ids])
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
        jobs = [delayed(tasks.nearest)(lp.parts[i], keep[i], x, y, radius * radius) for i in ids]
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
        per_part = self._run([delayed(tasks.code_counts)(p, sel, keys) for p in self._stat_parts()])
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
        sums = self._run([delayed(tasks.error_sums)(p, sel) for p in self._stat_parts()])
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
            hists = self._run([delayed(tasks.digit_hist)(p, sel, wanted, bits) for p in parts])
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
        return [
            (n, [tasks.key_value(p) for p, _, _ in t]) for n, t in zip(counts, targets, strict=True)
        ]

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
        if rows.size == 0:
            empty: pd.DataFrame = self._run(
                [delayed(tasks.export_part)(self._path, 0, rows, layouts, vectors)]
            )[0]
            return empty
        sel = self._rows_future(rows)
        found = self._run([
            delayed(tasks.export_in_part)(p, sel, self._path, layouts, vectors)
            for p in self._stat_parts()
        ])  # fmt: skip
        found = [(r, t) for r, t in found if t is not None]
        got = np.concatenate([r for r, _ in found])
        table: pd.DataFrame = pd.concat([t for _, t in found], ignore_index=True)
        order = np.argsort(got, kind="stable")  # row order, whatever the partitioning
        if not np.array_equal(order, np.arange(order.size)):
            table = table.iloc[order].reset_index(drop=True)
        return table


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
