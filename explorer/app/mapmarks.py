"""The few marks drawn over the map's image: the hovered and pinned points, the pinned
point's true neighbours (from the kNN graph) and false ones (near it only in 2-D), and the
cluster names. Each is a small Bokeh source; the points themselves stay on the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app.frames import Pictures
from explorer.app.mapfigure import (
    PICTURE_FIELDS,
    TITLE_FIELDS,
    MapFigure,
    palette_of,
    update_source,
)
from explorer.app.markup import one_line
from explorer.app.resources import StoreResources
from explorer.render.raster import NumericColor

LABEL_CHARS = 28


class MapMarks:
    """Updates the map's overlay sources for one session."""

    def __init__(self, resources: StoreResources, figure: MapFigure) -> None:
        self._res = resources
        self._map = figure

    def xy(self, layout: str, rows: list[int] | NDArray[np.int64]) -> dict[str, Any]:
        """``{"x": [...], "y": [...]}`` of ``rows`` in ``layout``."""
        coords = self._res.coords(layout)
        pts = np.asarray(coords[np.asarray(rows, np.int64)], np.float64).reshape(-1, 2)
        return {"x": pts[:, 0].tolist(), "y": pts[:, 1].tolist()}

    def hovered(self, layout: str, row: int | None) -> None:
        """Ring the hovered point (None: no ring)."""
        update_source(self._map.hovered, self.xy(layout, [] if row is None else [row]))

    def pinned(self, layout: str, row: int | None) -> NDArray[np.int64]:
        """Mark the pinned point, its true and its false neighbours; return the false ones."""
        m = self._map
        true = np.zeros(0, np.int64) if row is None else self._res.neighbors(row)[0]
        false = (
            np.zeros(0, np.int64) if row is None
            else self._res.false_neighbours(layout, row, true)
        )  # fmt: skip
        update_source(m.pinned, self.xy(layout, [] if row is None else [row]))
        ends = self.xy(layout, true)
        update_source(m.neighbours, ends)
        update_source(m.false_neighbours, self.xy(layout, false))
        if row is None:
            update_source(m.links, {"xs": [], "ys": []})
        else:
            px, py = m.pinned.data["x"][0], m.pinned.data["y"][0]
            update_source(m.links, {"xs": [[px, x] for x in ends["x"]],
                                   "ys": [[py, y] for y in ends["y"]]})  # fmt: skip
        return false

    def pictures(self, pictures: Pictures | None) -> None:
        """Thumbnails or titles of the points in a deep view (None: clear them)."""
        m = self._map
        uris = pictures.uris if pictures is not None else None
        titles = pictures.titles if pictures is not None else None
        if pictures is not None and uris is not None:
            keep = [i for i, u in enumerate(uris) if u]
            update_source(m.pictures, {
                "url": [uris[i] for i in keep], "x": [pictures.x[i] for i in keep],
                "y": [pictures.y[i] for i in keep], "side": [pictures.side] * len(keep),
                "frame": [pictures.side + 4] * len(keep),
                "color": [pictures.colors[i] for i in keep],
                "alpha": [pictures.alphas[i] for i in keep],
            })  # fmt: skip
        else:
            update_source(m.pictures, {k: [] for k in PICTURE_FIELDS})
        if pictures is not None and titles is not None:
            update_source(m.titles, {
                "x": pictures.x, "y": pictures.y, "text": titles,
                "color": pictures.colors, "alpha": pictures.alphas,
            })  # fmt: skip
        else:
            update_source(m.titles, {k: [] for k in TITLE_FIELDS})

    def color_key(self, name: str) -> str | None:
        """Show the colour bar for a numeric colouring (hide it otherwise); return the
        legend's line for it, or None."""
        color = self._res.color(name)
        bar = self._map.color_bar
        if not isinstance(color, NumericColor):
            bar.visible = False
            return None
        lo, hi = color.span or self._res.value_range(name)
        self._map.color_mapper.update(palette=palette_of(color.cmap), low=lo, high=hi)
        bar.update(title=name, visible=True)
        reduction = "highest" if color.reduction == "max" else "mean"
        return f"{name}: {reduction} per pixel"

    def centre_on(
        self, layout: str, row: int, view: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float] | None:
        """Move the browser's view to centre ``row`` (zooming in from a view of nearly
        everything); return the new view, or None when the point has no position."""
        x, y = (float(v) for v in self._res.coords(layout)[row])
        if not (np.isfinite(x) and np.isfinite(y)):
            return None
        fx0, fx1, _, _ = self._res.extent(layout)
        w, h = view[1] - view[0], view[3] - view[2]
        if w > 0.5 * (fx1 - fx0):
            w, h = w / 5, h / 5
        x0, x1, y0, y1 = x - w / 2, x + w / 2, y - h / 2, y + h / 2
        self._map.goto.data = {"x0": [x0], "x1": [x1], "y0": [y0], "y1": [y1]}
        return x0, x1, y0, y1

    def labels(self, layout: str | None, view: tuple[float, float, float, float], *,
               visible: bool, mask: NDArray[np.bool_] | None = None) -> None:  # fmt: skip
        """Cluster names for ``view`` (coarser zoomed out, finer zoomed in)."""
        tree = self._res.hierarchy
        if not visible or not tree.available or layout is None:
            update_source(self._map.labels, {"x": [], "y": [], "text": []})
            return
        found = tree.labels_in_view(self._res.coords(layout), layout, view, shown=mask)
        update_source(self._map.labels, {
            "x": [x for x, _, _ in found], "y": [y for _, y, _ in found],
            "text": [one_line(name, LABEL_CHARS) for _, _, name in found],
        })  # fmt: skip
