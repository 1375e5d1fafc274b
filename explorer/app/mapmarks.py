"""The few marks drawn over the map's image: the hovered and pinned points, the pinned
point's true neighbours (from the kNN graph) and false ones (near it only in 2-D), and the
cluster names. Each is a small Bokeh source; the points themselves stay on the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app.mapfigure import MapFigure
from explorer.app.resources import StoreResources

LABEL_CHARS = 28


def false_neighbours(
    coords: NDArray[np.floating], row: int, true: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Among ``row``'s ``len(true)`` nearest points on the map, those not in ``true``
    (its nearest in the data): strangers the picture puts next to it. Nearest first."""
    if true.size == 0:
        return np.zeros(0, np.int64)
    xy = np.asarray(coords, np.float64)
    d2 = np.sum((xy - xy[row]) ** 2, axis=1)
    d2[row] = np.inf
    d2[~np.isfinite(d2)] = np.inf
    k = min(true.size, d2.size - 1)
    if k <= 0:
        return np.zeros(0, np.int64)
    near = np.argpartition(d2, k - 1)[:k]
    near = near[np.argsort(d2[near], kind="stable")]
    return near[~np.isin(near, true)].astype(np.int64)


def _short(name: str) -> str:
    """A cluster name short enough for the map, on one line."""
    flat = "".join(ch if ch.isprintable() else " " for ch in name)
    return flat if len(flat) <= LABEL_CHARS else flat[: LABEL_CHARS - 1] + "…"


class MapMarks:
    """Updates the map's overlay sources for one session."""

    def __init__(self, resources: StoreResources, figure: MapFigure) -> None:
        self._res = resources
        self._map = figure

    def xy(self, layout: str, rows: list[int] | NDArray[np.int64]) -> dict[str, Any]:
        """``{"x": [...], "y": [...]}`` of ``rows`` in ``layout``."""
        coords = self._res.index(layout).coords
        pts = np.asarray(coords[np.asarray(rows, np.int64)], np.float64).reshape(-1, 2)
        return {"x": pts[:, 0].tolist(), "y": pts[:, 1].tolist()}

    def hovered(self, layout: str, row: int | None) -> None:
        """Ring the hovered point (None: no ring)."""
        self._map.hovered.data = self.xy(layout, [] if row is None else [row])

    def pinned(self, layout: str, row: int | None) -> NDArray[np.int64]:
        """Mark the pinned point, its true and its false neighbours; return the false ones."""
        m = self._map
        true = np.zeros(0, np.int64) if row is None else self._res.neighbors(row)[0]
        false = (
            np.zeros(0, np.int64) if row is None
            else false_neighbours(self._res.index(layout).coords, row, true)
        )  # fmt: skip
        m.pinned.data = self.xy(layout, [] if row is None else [row])
        ends = self.xy(layout, true)
        m.neighbours.data = ends
        m.false_neighbours.data = self.xy(layout, false)
        if row is None:
            m.links.data = {"xs": [], "ys": []}
        else:
            px, py = m.pinned.data["x"][0], m.pinned.data["y"][0]
            m.links.data = {"xs": [[px, x] for x in ends["x"]], "ys": [[py, y] for y in ends["y"]]}
        return false

    def labels(self, layout: str | None, view: tuple[float, float, float, float], *,
               visible: bool, mask: NDArray[np.bool_] | None = None) -> None:  # fmt: skip
        """Cluster names for ``view`` (coarser zoomed out, finer zoomed in)."""
        tree = self._res.hierarchy
        if not visible or not tree.available or layout is None:
            self._map.labels.data = {"x": [], "y": [], "text": []}
            return
        found = tree.labels_in_view(self._res.index(layout).coords, layout, view, shown=mask)
        self._map.labels.data = {
            "x": [x for x, _, _ in found], "y": [y for _, y, _ in found],
            "text": [_short(name) for _, _, name in found],
        }  # fmt: skip
