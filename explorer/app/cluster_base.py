"""What every part of ``ClusterPoints`` (``explorer.app.cluster``) stands on: the layouts'
persisted partitions, the column summaries, and running tasks on the cluster with one-line
errors and row ids sent to the workers once."""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from explorer.app import cluster_frames as frames
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_tasks import RETRIES
from explorer.errors import ConfigError, ExplorerError
from explorer.render.index import PointIndex
from explorer.store.reader import Store

KNOWN_KEPT = 8  # row-id arrays kept sent to the workers (by identity), oldest dropped first


class ClusterError(ExplorerError):
    """The Dask cluster could not be reached, or lost work it could not redo."""


def dask_dataframe() -> Any:
    """``dask.dataframe``, imported when a cluster is used (its functions are untyped)."""
    return importlib.import_module("dask.dataframe")


@dataclass(frozen=True, eq=False)
class LayoutParts:
    """One layout on the cluster: its persisted partitions (in order) and their bounds.

    ddf : the persisted ``dask.dataframe`` (x, y and the columns, index = row; known divisions).
    parts : its partitions as Delayed, in order (bounds and cell counts at load).
    bounds : (p, 4) float64 ``[xmin, xmax, ymin, ymax]`` of each partition's finite points.
    cells : an index over cell counts only (grid, side, offsets) for ``candidates``/extent.
    futures : each partition's future (its Delayed's own key names the step that hands it
        out), to ask the scheduler which worker holds it.
    """

    parts: list[Any]
    bounds: NDArray[np.float64]
    cells: PointIndex
    ddf: Any
    futures: list[Any]

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


class ClusterBase:
    """The state every part of ``ClusterPoints`` shares (set by its ``__init__``)."""

    store: Store
    client: Any
    n_points: int
    engine: frames.AggregateEngine
    layouts: dict[str, LayoutParts]
    summaries: dict[str, ColumnSummary]
    _path: str
    _columns: tasks.PartitionColumns
    _ranges: NDArray[np.int64]
    _lock: threading.Lock
    # id of an array sent to the workers -> (the array, what was sent)
    _known: OrderedDict[int, tuple[Any, Any]]
    _threads: dict[str, int]  # worker address -> its threads

    def _layout(self, layout: str) -> LayoutParts:
        if layout not in self.layouts:
            msg = f"no layout {layout!r} on the cluster (this store has {sorted(self.layouts)})"
            raise ConfigError(msg)
        return self.layouts[layout]

    def _thread_groups(
        self, lp: LayoutParts, ids: Sequence[int]
    ) -> list[tuple[str | None, list[int]]]:
        """``ids`` (partitions of ``lp``) grouped by the worker that holds each, split into
        one group per thread of that worker (None: held nowhere now, e.g. being redone).
        A task per group instead of one per partition: scheduling costs ~1.1 ms a task
        (docs/benchmarks.md, "Frames at 100M points")."""
        where = self.client.who_has([lp.futures[i] for i in ids])
        threads = self._threads_of({w for held in where.values() for w in held})
        by_worker: dict[str | None, list[int]] = {}
        for i in ids:
            holders = sorted(where.get(lp.futures[i].key, ()))
            by_worker.setdefault(holders[0] if holders else None, []).append(i)
        groups = []
        for worker, held in by_worker.items():
            n = max(1, min(len(held), int(threads.get(worker, 1)) if worker else 1))
            groups += [(worker, held[t::n]) for t in range(n)]
        return groups

    def _threads_of(self, workers: set[str]) -> dict[str, int]:
        """Threads of each of ``workers``, asked of the scheduler only for addresses not
        seen before (a worker keeps its thread count; a restarted one has a new address),
        so a request costs one scheduler call (``who_has``), not two."""
        with self._lock:
            missing = workers - self._threads.keys()
        if missing:
            found = self.client.nthreads(sorted(missing))
            with self._lock:
                self._threads.update({w: int(n) for w, n in found.items()})
        with self._lock:
            return dict(self._threads)

    def _per_part(self, fn: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """``fn(partition, *args, **kwargs)`` over every partition of the first layout
        (each layout's partitions hold every row once), in partition order (``_grouped``)."""
        lp = next(iter(self.layouts.values()))
        return self._grouped(lp, range(len(lp.parts)), None, fn, args, kwargs)

    def _grouped(
        self, lp: LayoutParts, ids: Sequence[int], keeps: list[Any] | None, fn: Any,
        args: tuple[Any, ...], kwargs: dict[str, Any], *, with_parts: bool = True,
    ) -> list[Any]:  # fmt: skip
        """``fn(partition, *args, **kwargs)`` (``fn(partition, keep, ...)`` with ``keeps``,
        a mask partition per partition; ``fn(keep, ...)`` without ``with_parts``) over
        partitions ``ids``, in their order: a task per
        worker thread, on the worker holding them (the partitions' futures themselves: a
        Delayed from ``to_delayed`` is a task of its own, which Dask may run on another
        worker, moving the partition)."""
        from dask.delayed import delayed

        groups = self._thread_groups(lp, ids)
        jobs = []
        for worker, mine in groups:
            parts = [lp.futures[i] for i in mine] if with_parts else None
            masks = None if keeps is None else [keeps[i] for i in mine]
            with tasks.placed(worker):
                jobs.append(delayed(tasks.per_part)(fn, parts, args, kwargs, masks))
        position = {i: n for n, i in enumerate(ids)}
        out: list[Any] = [None] * len(position)
        for (_, mine), found in zip(groups, self._run(jobs), strict=True):
            for i, value in zip(mine, found, strict=True):
                out[position[i]] = value
        return out

    def _run(self, jobs: Sequence[Any]) -> list[Any]:
        """Compute ``jobs`` on the cluster; a lost worker is retried, then a one-line error."""
        try:
            return list(self.client.compute(list(jobs), sync=True, retries=RETRIES))
        except ExplorerError:
            raise
        except Exception as exc:  # a killed worker, a lost connection: one line for the map
            self._forget()
            raise ClusterError(cluster_message(exc)) from exc

    def _forget(self) -> None:
        """Drop what was scattered to the workers (a selection sent once): after a failure
        it may be gone with its worker, so the next call sends it again."""
        with self._lock:
            self._known.clear()

    def _remember(self, array: Any, value: Any) -> None:
        with self._lock:
            self._known[id(array)] = (array, value)
            while len(self._known) > KNOWN_KEPT:
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


def partition_futures(client: Any, ddf: Any, parts: list[Any]) -> list[Any]:
    """A persisted ``ddf``'s partitions as its futures, in order (``parts``, its Delayeds,
    where they cannot be matched). A Delayed from ``to_delayed`` is a task of its own, which
    Dask may run on another worker than the one holding the data, moving the partition."""
    futures = client.futures_of(ddf)
    names = {f.key[0] for f in futures if isinstance(f.key, tuple) and len(f.key) == 2}
    if len(names) != 1 or len(futures) != len(parts):
        return parts
    by_index = {f.key[1]: f for f in futures}
    return [by_index.get(i, p) for i, p in enumerate(parts)]


def cluster_message(exc: BaseException) -> str:
    """One line for a failed cluster call."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if len(text) > 160:
        text = text[:159] + "…"
    return f"the Dask cluster failed ({type(exc).__name__}: {text}); the next view retries"


def sorted_rows(
    found: list[tuple[NDArray[np.int64], NDArray[np.float32]]],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Rows from several partitions (each with its (k, 2) positions), in row order."""
    if not found:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    rows = np.concatenate([r for r, _ in found])
    xy = np.concatenate([p for _, p in found]).reshape(-1, 2)
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), xy[order]
