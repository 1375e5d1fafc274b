"""The points live on the cluster: ``explorer serve STORE --dask ADDRESS``.

``ClusterPoints`` keeps every layout's points, the colourable columns and the filter masks
persisted on the workers of a Dask cluster, partition by partition, each partition's bounds
known in the web process. A frame is Datashader over the ``dask.dataframe`` of the
partitions the view touches (``cluster_frames``); hit-tests, filters, selection statistics
and exports are tasks per partition (``cluster_tasks``, ``cluster_queries``) that send back
row ids, counts or small tables. The web process holds images, selections (row ids), the
filters of each mask with its count (``ClusterMask``) and per-column summaries: no
coordinates, no column or score values, no per-point flags.

``ClusterPoints.load_layout`` is the one place that makes a layout's partitions: row ranges
of the memory-mapped layout and point table today; a partitioned store's parts
(``Store.partition_ddf``) can take its place.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app import cluster_frames as frames
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_base import (
    ClusterError,
    ColumnSummary,
    LayoutParts,
    dask_dataframe,
    partition_futures,
)
from explorer.app.cluster_find import ClusterFind
from explorer.app.cluster_masks import MASKS_KEPT, ClusterMask
from explorer.app.cluster_tasks import RETRIES
from explorer.app.columns import MISSING_LABEL, ColumnInfo, display_value
from explorer.app.masks import MaskCache
from explorer.errors import ConfigError
from explorer.render.index import PointIndex
from explorer.store.reader import Store

__all__ = ["ClusterError", "ClusterMask", "ClusterPoints", "check_address", "connect"]

LOCAL_PREFIX = "local:"
# Rows per partition: about 4 partitions per worker, within these bounds (a partition
# costs a task per hit-test or statistic, so a small store gets one or a few).
MIN_ROWS_PER_PARTITION = 250_000
ROWS_PER_PARTITION = 1_000_000


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
class ClusterPoints(ClusterFind):
    """A store's points on a Dask cluster: frames, hit-tests, filters, statistics, exports.

    The jobs live in the classes it stands on: ``ClusterFind`` (search, SQL, ids),
    ``ClusterView`` (frames, hit-tests),
    ``ClusterStats`` (colours, counts, medians, scores, export), ``ClusterMasks`` (filter
    masks) and ``ClusterBase`` (running tasks); this one starts and stops them.
    """

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
        self._threads = {}
        self.summaries: dict[str, ColumnSummary] = {}
        self._columns = self._survey(columns)
        self.layouts: dict[str, LayoutParts] = {}
        for layout in store.layouts:
            self.layouts[layout] = self.load_layout(layout)
        # filters key -> (the mask, its keep Series per layout on the workers)
        self._masks = MaskCache(MASKS_KEPT)
        # id of an array sent to the workers -> (the array, what was sent)
        self._known = OrderedDict()
        self._extents = {}

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
        dd = dask_dataframe()
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
        return LayoutParts(parts, bounds, cells, ddf, partition_futures(self.client, ddf, parts))

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
        """Close the client, and the local cluster when this server started it.

        Our own cluster's workers are told to log nothing more first: a heartbeat racing
        the scheduler's exit printed a traceback at Ctrl-C on a busy machine.
        """
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self.client.run(quiet_logs)
                self.client.run(quiet_logs, nanny=True)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def quiet_logs() -> None:
    """(On a worker or nanny that is about to stop.) Log only what is critical."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
