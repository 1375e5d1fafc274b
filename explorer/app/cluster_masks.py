"""Filter masks on the cluster (``explorer.app.cluster``): made and kept on the workers.

A filter's flags are a ``keep`` Series per partition of every layout, persisted on the
workers; the web process gets a ``ClusterMask`` (the filters, their key, how many points
they keep) that asks the workers whatever a session needs: which of some rows are kept,
the kept rows outside a selection, kept points per hierarchy leaf. A SQL condition's rows
go to the workers as row ids. Any other (n,) bool array a caller hands in (a script, a
test) is sent once as one bit a point, each partition taking its rows' bits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app import cluster_queries as queries
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_base import ClusterBase, partition_futures
from explorer.app.cluster_tasks import RETRIES
from explorer.app.masks import WHERE_FILTER, Mask, MaskCache, RemoteMask, filters_key
from explorer.errors import ConfigError

MASKS_KEPT = 16  # filter masks kept on the workers, least recently used dropped first
WhereRows = Callable[[str], NDArray[np.int64]]


class ClusterMask(RemoteMask):
    """A filter mask kept on the cluster: only its filters, key and count are here."""

    def __init__(
        self, owner: ClusterMasks, filters: Mapping[str, Any], count: int, where: WhereRows
    ) -> None:
        super().__init__(filters, count, owner.n_points)
        self._owner = owner
        self.where = where

    def kept(self, rows: NDArray[np.int64]) -> NDArray[np.bool_]:
        return self._owner.mask_kept(self, rows)

    def kept_except(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        return self._owner.mask_kept_except(self, rows)

    def leaf_counts(self, n_nodes: int) -> NDArray[np.int64]:
        return self._owner.leaf_counts(self, n_nodes)

    def to_array(self) -> NDArray[np.bool_]:
        return self._owner.mask_array(self)


class ClusterMasks(ClusterBase):
    """Filter masks on the workers, looked up by the filters' key (``MaskCache``)."""

    _masks: MaskCache[tuple[ClusterMask, dict[str, Any]]]

    def mask(self, filters: Mapping[str, Any], where: WhereRows) -> ClusterMask | None:
        """The points ``filters`` keep, computed and kept on the cluster, or None for no
        filter. The same filters give the same object. ``where`` turns a SQL condition
        into rows."""
        if not filters:
            return None
        hit = self._masks.get(filters_key(filters))
        if hit is not None:
            return hit[0]
        per_layout = self._keep_ddfs(filters, where)
        name, first = next(iter(per_layout.items()))
        lp = self._layout(name)
        keeps = partition_futures(self.client, first, list(first.to_delayed()))
        count = sum(
            self._grouped(
                lp, range(len(lp.parts)), keeps, queries.kept_count, (), {}, with_parts=False
            )
        )
        mask = ClusterMask(self, filters, count, where)
        return self._masks.put(mask.key, (mask, per_layout))[0]

    def _keep_ddfs(self, filters: Mapping[str, Any], where: WhereRows) -> dict[str, Any]:
        """Each layout's persisted ``keep`` partitions for ``filters``."""
        tests: list[tuple[str, str, Any]] = []
        sql: NDArray[np.int64] | None = None
        for column, value in filters.items():
            if column == WHERE_FILTER:  # SQL runs where the table is (DuckDB): row ids back
                rows = np.asarray(where(str(value[0]) if value else ""), np.int64)
                sql = rows if sql is None else np.intersect1d(sql, rows)
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
        if sql is None:
            made = {
                name: lp.ddf.map_partitions(tasks.keep_of, tuple(tests), meta=tasks.KEEP_META)
                for name, lp in self.layouts.items()
            }
        else:
            sent = self.client.scatter(np.unique(sql), broadcast=True)
            made = {
                name: lp.ddf.map_partitions(
                    queries.keep_of_rows, tuple(tests), sent, meta=tasks.KEEP_META
                )
                for name, lp in self.layouts.items()
            }
        return {name: self.client.persist(k, retries=RETRIES) for name, k in made.items()}

    def _cluster_keep(self, mask: ClusterMask) -> dict[str, Any]:
        """``mask``'s keep partitions per layout; made again when they were dropped."""
        hit = self._masks.get(mask.key)
        if hit is not None:
            return hit[1]
        return self._masks.put(mask.key, (mask, self._keep_ddfs(mask.filters, mask.where)))[1]

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

    def _mask_ddf(self, layout: str, mask: Mask | None) -> Any:
        """``mask`` on the workers, partitioned as ``layout`` is (None for no mask)."""
        self._layout(layout)
        if mask is None:
            return None
        if isinstance(mask, ClusterMask):
            return self._cluster_keep(mask)[layout]
        with self._lock:
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

    def _mask_futures(self, layout: str, mask: Mask | None) -> list[Any]:
        """``mask``'s partitions as futures (each None for no mask), for tasks placed by
        where the data is (``partition_futures``)."""
        keep = self._mask_ddf(layout, mask)
        if keep is None:
            return [None] * len(self._layout(layout).parts)
        return partition_futures(self.client, keep, list(keep.to_delayed(optimize_graph=False)))

    # -- what a session asks of a mask ---------------------------------------------------
    def _per_keep(self, mask: ClusterMask, fn: Any, *args: Any) -> list[Any]:
        """``fn(keep, *args)`` over each partition of ``mask`` (``_grouped``)."""
        name = next(iter(self.layouts))
        lp = self._layout(name)
        keeps = self._mask_futures(name, mask)
        return self._grouped(lp, range(len(lp.parts)), keeps, fn, args, {}, with_parts=False)

    def mask_kept(self, mask: ClusterMask, rows: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of ``rows`` (sorted unique) ``mask`` keeps."""

        rows = np.asarray(rows, np.int64)
        if rows.size == 0:
            return np.zeros(0, bool)
        sel = self._rows_future(rows)
        found = self._per_keep(mask, queries.kept_among, sel)
        kept = np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)
        return tasks.in_sorted(rows, kept)

    def mask_kept_except(self, mask: ClusterMask, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """The rows ``mask`` keeps that are not among ``rows`` (sorted unique), sorted."""

        sel = self._rows_future(np.asarray(rows, np.int64))
        found = self._per_keep(mask, queries.kept_except, sel)
        return np.sort(np.concatenate(found)).astype(np.int64) if found else np.zeros(0, np.int64)

    def leaf_counts(self, mask: Mask | None, n_nodes: int) -> NDArray[np.int64]:
        """Points ``mask`` keeps (all for None) per hierarchy node, counted at their leaf."""
        counts: NDArray[np.int64] = self.leaf_stats(n_nodes, mask=mask)[0].astype(np.int64)
        return counts

    def leaf_stats(
        self, n_nodes: int, *, mask: Mask | None = None, rows: NDArray[np.int64] | None = None,
        layout: str | None = None,
    ) -> NDArray[np.float64]:  # fmt: skip
        """``cluster_queries.leaf_stats`` over every partition: per node (at the leaves),
        points kept by ``mask`` among ``rows``; with ``layout`` also finite positions and
        the sums of x and y in that layout (for the nodes' centres)."""
        name = layout or next(iter(self.layouts))
        lp = self._layout(name)
        keep = self._mask_futures(name, mask)
        sel = self._rows_future(rows)
        found = self._grouped(
            lp, range(len(lp.parts)), keep, queries.leaf_stats,
            (sel, self._path, n_nodes), {"sums": layout is not None},
        )  # fmt: skip
        return np.sum(found, axis=0) if found else np.zeros((1, n_nodes))

    def mask_array(self, mask: ClusterMask) -> NDArray[np.bool_]:
        """The whole (n,) bool ``mask`` gathered from the workers (tests and scripts)."""

        out = np.zeros(self.n_points, bool)
        for kind, where_, bits in self._per_keep(mask, tasks.packed):
            if kind == "range":
                start, count = int(where_[0]), int(where_[1])
                out[start : start + count] = np.unpackbits(bits, count=count).astype(bool)
            else:
                out[where_] = True
        out.setflags(write=False)
        return out
