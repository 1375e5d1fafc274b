"""Frames and hit-tests on the cluster (``explorer.app.cluster``): Datashader over the
partitions a view touches (``cluster_frames``), and box, lasso and nearest-point tests per
partition that send back row ids (and positions)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app import cluster_frames as frames
from explorer.app import cluster_queries as queries
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_base import ClusterError, cluster_message, dask_dataframe, sorted_rows
from explorer.app.cluster_stats import ClusterStats
from explorer.app.masks import Mask
from explorer.errors import ExplorerError
from explorer.render.colors import CategoricalColor
from explorer.render.frame import Frame, assemble
from explorer.render.hittest import points_in_polygon
from explorer.render.index import Viewport
from explorer.render.raster import NumericColor


class ClusterView(ClusterStats):
    """Frames and hit-tests over the layouts' partitions."""

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
        mask: Mask | None = None,
        highlight: NDArray[np.int64] | None = None,
    ) -> tuple[Any, str]:
        """A ``dask.dataframe`` of the rows a frame draws (x, y and ``a``, the colour),
        built from only the partitions that meet ``viewport``, and the colour's kind."""
        dd = dask_dataframe()

        lp = self._layout(layout)
        ids = lp.touching(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
        options, kind = self._frame_options(color_by, highlight)
        meta = tasks.frame_rows(
            tasks.empty_partition(self._columns), **{**options, "highlight": None}
        )
        if not ids:
            return dd.from_pandas(meta, npartitions=1), kind
        keep = self._mask_ddf(layout, mask)
        args = [] if keep is None else [keep.partitions[ids]]
        ddf = lp.ddf.partitions[ids].map_partitions(tasks.frame_rows, *args, meta=meta, **options)
        return ddf, kind

    def _frame_options(
        self, color_by: str, highlight: NDArray[np.int64] | None
    ) -> tuple[dict[str, Any], str]:
        """``frame_rows``'s options for a frame coloured by ``color_by``, and the kind."""
        summary = self.summaries.get(color_by) if color_by else None
        kind = "" if summary is None else summary.kind
        options: dict[str, Any] = {
            "highlight": self._rows_future(highlight),
            "attr": None if summary is None else summary.key,
            "kind": kind,
            "slot_of_code": self._slot_of_code(color_by) if kind == "categorical" else None,
        }
        return options, kind

    def _worker_groups(
        self, layout: str, viewport: Viewport, mask: Mask | None
    ) -> list[tuple[list[Any], list[Any], str | None]]:
        """The partitions ``viewport`` meets, grouped by the worker that holds each (with
        their masks), one group per thread of that worker: a frame then costs a task per
        worker thread. Scheduling was ~1.1 ms a task, 3 tasks a partition plus the tree
        (docs/benchmarks.md, "Frames at 100M points")."""
        lp = self._layout(layout)
        ids = lp.touching(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
        keep = self._mask_futures(layout, mask)
        # The futures themselves: a Delayed from ``to_delayed`` is a task of its own that
        # Dask may run on the other worker, moving the whole partition there.
        return [
            ([lp.futures[i] for i in mine], [keep[i] for i in mine], worker)
            for worker, mine in self._thread_groups(lp, ids)
        ]

    def _layer(
        self, layout: str, viewport: Viewport, color_by: str,
        color: CategoricalColor | NumericColor | None, how: str, min_alpha: int,
        mask: Mask | None, highlight: NDArray[np.int64] | None,
    ) -> Any:  # fmt: skip
        """One layer of a frame (the base, or the highlighted rows) from the cluster."""
        groups = [] if self.engine == "dask" else self._worker_groups(layout, viewport, mask)
        if not groups:  # Datashader's dask backend, or nothing in view (the empty frame)
            ddf, kind = self.view_partitions(
                layout, viewport, color_by, mask=mask, highlight=highlight
            )
            return frames.aggregate_frame(ddf, viewport, kind, color, how, min_alpha,
                                          client=self.client, engine=self.engine)  # fmt: skip
        options, kind = self._frame_options(color_by, highlight)
        return frames.aggregate_frame(
            None, viewport, kind, color, how, min_alpha,
            client=self.client, groups=groups, options=options,
        )  # fmt: skip

    def render(
        self,
        layout: str,
        viewport: Viewport,
        color_by: str = "",
        *,
        color: CategoricalColor | NumericColor | None = None,
        mask: Mask | None = None,
        highlight: NDArray[np.int64] | None = None,
        min_alpha: int = 40,
        how: str = "eq_hist",
        dim: float = 0.25,
    ) -> Frame:
        """One frame, as ``explorer.render.raster.render`` draws it, aggregated on the cluster."""
        if color is None:
            color = self.coloring(color_by)
        try:
            args = (layout, viewport, color_by, color, how, min_alpha, mask)
            base = self._layer(*args, None)
            top = None if highlight is None else self._layer(*args, highlight)
        except ExplorerError:
            raise
        except Exception as exc:  # a killed worker, a lost connection: one line for the map
            self._forget()
            raise ClusterError(cluster_message(exc)) from exc
        return assemble(viewport, base, top, color, spread="auto", dim=dim)

    # -- hit-tests -----------------------------------------------------------------------------
    def box(
        self, layout: str, x0: float, x1: float, y0: float, y1: float,
        mask: Mask | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:  # fmt: skip
        """Sorted rows inside the box (edges in either order) and their (k, 2) positions."""
        lp = self._layout(layout)
        bx0, bx1 = sorted((float(x0), float(x1)))
        by0, by1 = sorted((float(y0), float(y1)))
        keep = self._mask_futures(layout, mask)
        ids = lp.touching(bx0, bx1, by0, by1)
        found = self._grouped(lp, ids, keep, tasks.box, ((bx0, bx1, by0, by1),), {})
        return sorted_rows(found)

    def lasso(
        self, layout: str, px: NDArray[np.float64], py: NDArray[np.float64],
        mask: Mask | None = None,
    ) -> NDArray[np.int64]:  # fmt: skip
        """Sorted rows inside the polygon (even-odd rule, as ``points_in_polygon``)."""
        px = np.asarray(px, np.float64).ravel()
        py = np.asarray(py, np.float64).ravel()
        if px.size < 3 or px.shape != py.shape:
            return points_in_polygon(np.zeros((0, 2), np.float32), px, py)  # its checks
        lp = self._layout(layout)
        keep = self._mask_futures(layout, mask)
        ids = lp.touching(float(px.min()), float(px.max()), float(py.min()), float(py.max()))
        found = self._grouped(lp, ids, keep, tasks.lasso, (px, py), {})
        rows = np.concatenate(found) if found else np.zeros(0, np.int64)
        return np.sort(rows).astype(np.int64)

    def nearest(
        self, layout: str, x: float, y: float, radius: float,
        mask: Mask | None = None,
    ) -> int | None:  # fmt: skip
        """The row nearest ``(x, y)`` within ``radius`` (ties: smallest row), or None."""
        if not (np.isfinite(x) and np.isfinite(y) and radius >= 0):
            return None
        lp = self._layout(layout)
        keep = self._mask_futures(layout, mask)
        pad = radius * (1 + 1e-9) + 1e-30
        ids = lp.touching(x - pad, x + pad, y - pad, y + pad)
        found = self._grouped(lp, ids, keep, tasks.nearest, (x, y, radius * radius), {})
        best = min(((d, r) for d, r in found if r >= 0), default=None)
        return None if best is None else int(best[1])

    def nearest_rows(self, layout: str, row: int, k: int) -> NDArray[np.int64]:
        """The ``k`` points nearest point ``row`` on the map, nearest first (ties: lower
        row first; ``row`` itself and non-finite positions left out)."""
        if k <= 0:
            return np.zeros(0, np.int64)
        x, y = (float(v) for v in self.store.layout(layout)[row])
        lp = self._layout(layout)
        found = self._grouped(lp, range(len(lp.parts)), None, queries.nearest_k, (x, y, k, row), {})
        d2 = np.concatenate([d for d, _ in found]) if found else np.zeros(0)
        rows = np.concatenate([r for _, r in found]) if found else np.zeros(0, np.int64)
        order = np.lexsort((rows, d2))[:k]
        return rows[order].astype(np.int64)
