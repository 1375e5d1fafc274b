"""Small Bokeh charts the analytic panes share: a score histogram with a brush, and a
clickable gallery of points.

Both draw metadata only through canvas text glyphs and our own PNG data URIs, so a hostile
label shows as text. Both report user input through plain Python callbacks; the panes turn
that into ``state`` changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from bokeh import events
from bokeh.models import BoxSelectTool, ColumnDataSource, Range1d, TapTool
from bokeh.models.annotations import Span
from bokeh.plotting import figure
from numpy.typing import NDArray

from explorer.app.background import on_loop, served_document
from explorer.app.markup import one_line

ACCENT = "#4c78a8"
_URI_RE = re.compile(r"^data:image/png;base64,[A-Za-z0-9+/=]*$")


class Histogram:
    """Share of all points per bin (grey) with the selection's share (blue) over it.

    Dragging across it (box select, x only) calls ``on_range(low, high)``; a threshold
    line can be shown with ``mark``.
    """

    def __init__(self, title: str, on_range: Callable[[float, float], object]) -> None:
        self._on_range = on_range
        self.source = ColumnDataSource({"left": [], "right": [], "all": [], "sel": []})
        brush = BoxSelectTool(dimensions="width", description="Drag to select a range")
        self.figure = figure(
            height=170, sizing_mode="stretch_width", tools=[brush, "reset"], active_drag=brush,
            toolbar_location=None, title=title, y_axis_label="share of points",
        )  # fmt: skip
        fig = self.figure
        fig.quad(left="left", right="right", bottom=0, top="all", source=self.source,
                 fill_color="#bbbbbb", line_color="#ffffff", legend_label="all points")  # fmt: skip
        fig.quad(left="left", right="right", bottom=0, top="sel", source=self.source,
                 fill_color=ACCENT, fill_alpha=0.55, line_color=ACCENT,
                 legend_label="selection")  # fmt: skip
        # The brush needs a renderer to act on; the server does the selecting.
        target = fig.scatter(x=[], y=[], alpha=0)
        brush.renderers = [target]
        self.threshold = Span(dimension="height", line_color="#d62728", line_width=2,
                              location=0, visible=False)  # fmt: skip
        fig.add_layout(self.threshold)
        fig.legend.location = "top_right"
        fig.legend.label_text_font_size = "10px"
        fig.legend.background_fill_alpha = 0.6
        fig.toolbar.logo = None
        fig.grid.visible = False
        fig.on_event(events.SelectionGeometry, self._on_geometry)

    def update(
        self, edges: NDArray[np.float64], counts: NDArray[np.int64], selected: NDArray[np.int64]
    ) -> None:
        """Redraw from bin edges and the counts of all points and of the selection."""
        total, n_sel = max(int(counts.sum()), 1), int(selected.sum())
        data = {
            "left": edges[:-1].tolist(), "right": edges[1:].tolist(),
            "all": (counts / total).tolist(),
            "sel": (selected / max(n_sel, 1)).tolist() if n_sel else [0.0] * counts.size,
        }  # fmt: skip
        on_loop(served_document(self.figure), lambda: setattr(self.source, "data", data))

    def mark(self, value: float | None) -> None:
        """Show a threshold line at ``value`` (hide it with None)."""

        def apply() -> None:
            self.threshold.visible = value is not None
            if value is not None:
                self.threshold.location = float(value)

        on_loop(served_document(self.figure), apply)

    def _on_geometry(self, event: events.Event) -> None:
        if not isinstance(event, events.SelectionGeometry) or not event.final:
            return
        g = dict(event.geometry or {})
        if g.get("type") == "rect" and g.get("x0") is not None and g.get("x1") is not None:
            lo, hi = sorted((float(str(g["x0"])), float(str(g["x1"]))))
            self._on_range(lo, hi)


class Gallery:
    """A grid of points (thumbnail or text, with a caption); a click calls ``on_pick(row)``."""

    def __init__(self, on_pick: Callable[[int], None], *, columns: int = 6, cell: int = 64,
                 height: int = 260) -> None:  # fmt: skip
        self._on_pick = on_pick
        self.columns = columns
        self.cell = cell
        self.rows: list[int] = []
        self.cells = ColumnDataSource({"x": [], "y": [], "row": []})
        self.images = ColumnDataSource({"url": [], "x": [], "y": []})
        self.captions = ColumnDataSource({"x": [], "y": [], "sy": [], "text": [], "snippet": []})
        tap = TapTool()
        self.figure = figure(
            height=height, sizing_mode="stretch_width", tools=[tap, "pan", "wheel_zoom"],
            toolbar_location=None, x_range=Range1d(start=-0.05, end=columns + 0.05),
        )  # fmt: skip
        fig = self.figure
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.toolbar.logo = None
        rects = fig.rect(x="x", y="y", width=0.96, height=0.96, source=self.cells,
                         fill_color="#f6f6f6", line_color="#dddddd",
                         selection_fill_color="#dde8f3", selection_line_color=ACCENT,
                         nonselection_fill_alpha=1.0)  # fmt: skip
        tap.renderers = [rects]
        # Thumbnails keep their square shape whatever the cell's aspect: sized in pixels.
        fig.image_url(url="url", x="x", y="y", w=cell * 0.7, h=cell * 0.7, w_units="screen",
                      h_units="screen", anchor="center", source=self.images)  # fmt: skip
        fig.text(x="x", y="sy", text="snippet", source=self.captions, text_font_size="9px",
                 text_align="center", text_baseline="middle", text_color="#333333")  # fmt: skip
        fig.text(x="x", y="y", text="text", source=self.captions, text_font_size="10px",
                 text_align="center", text_baseline="bottom", text_color="#555555")  # fmt: skip
        self.cells.selected.on_change("indices", self._on_tap)

    def show(self, items: Sequence[tuple[int, str | None, str, str]]) -> None:
        """Draw ``(row, thumbnail URI or None, snippet, caption)`` per point, in order."""
        on_loop(served_document(self.figure), lambda: self._show(items))

    def _show(self, items: Sequence[tuple[int, str | None, str, str]]) -> None:
        xs, ys, rows, urls, ix, iy, snippets, captions = [], [], [], [], [], [], [], []
        for i, (row, uri, snippet, caption) in enumerate(items):
            r, c = divmod(i, self.columns)
            x, y = c + 0.5, -r - 0.5
            xs.append(x)
            ys.append(y)
            rows.append(int(row))
            has_image = uri is not None and bool(_URI_RE.match(uri))
            if has_image:
                urls.append(uri)
                ix.append(x)
                iy.append(y + 0.1)
            snippets.append("" if has_image else one_line(snippet, 14, strip=True))
            captions.append(one_line(caption, 16, strip=True))
        self.rows = rows
        n_rows = max(1, -(-len(items) // self.columns))
        self.figure.y_range.update(start=-n_rows - 0.05, end=0.05)
        self.cells.selected.indices = []
        self.cells.data = {"x": xs, "y": ys, "row": rows}
        self.images.data = {"url": urls, "x": ix, "y": iy}
        # Snippets sit in the middle of their cell, captions at its foot.
        self.captions.data = {"x": xs, "y": [y - 0.46 for y in ys], "sy": ys, "text": captions,
                              "snippet": snippets}  # fmt: skip

    def pick(self, index: int) -> None:
        """What a click on item ``index`` does (also for tests)."""
        if 0 <= index < len(self.rows):
            self._on_pick(self.rows[index])

    def _on_tap(self, attr: str, old: Any, new: Any) -> None:
        if new:
            self.pick(int(new[0]))
