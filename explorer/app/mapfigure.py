"""The Bokeh figure of the map: an image of the points, plus the few glyphs drawn on top.

The points themselves are never sent to the browser: one ``image_url`` glyph shows the
server's PNG frame. An invisible, empty scatter gives the box and lasso tools a renderer to
act on (their geometry comes back to the server as ``SelectionGeometry`` events); a second
invisible glyph holds the layout's corners so the ranges (``DataRange1d`` with
``match_aspect``) know the extent and Reset returns to it. Small sources draw the hovered
and pinned points, the pinned point's neighbours and the Poincaré disk boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import colorcet
from bokeh.models import (
    BoxSelectTool,
    BoxZoomTool,
    ColumnDataSource,
    CustomJS,
    DataRange1d,
    LassoSelectTool,
    LinearColorMapper,
    PanTool,
    ResetTool,
    WheelZoomTool,
)
from bokeh.models.annotations import ColorBar
from bokeh.models.renderers import GlyphRenderer
from bokeh.plotting import figure

PIN_COLOR = "#111111"
NEIGHBOUR_COLOR = "#ff7f0e"
FALSE_COLOR = "#d62728"
HOVER_COLOR = "#555555"
PICTURE_FIELDS = ("url", "x", "y", "side", "frame", "color", "alpha")
TITLE_FIELDS = ("x", "y", "text", "color", "alpha")


@dataclass
class MapFigure:
    """The figure and the sources the map pane updates."""

    fig: figure
    x_range: DataRange1d
    y_range: DataRange1d
    image: ColumnDataSource  # url, x, y, w, h of the current frame
    bounds: ColumnDataSource  # x, y of the layout's two corners
    pinned: ColumnDataSource  # x, y of the pinned point
    neighbours: ColumnDataSource  # x, y of its kNN
    links: ColumnDataSource  # xs, ys segments pinned -> neighbour
    hovered: ColumnDataSource  # x, y of the hovered point
    false_neighbours: ColumnDataSource  # x, y of points near the pinned one in 2-D only
    labels: ColumnDataSource  # x, y, text of the cluster names drawn on the map
    goto: ColumnDataSource  # x0, x1, y0, y1: a view the server moves the browser to
    pictures: ColumnDataSource  # url, x, y of the thumbnails drawn at a deep zoom
    titles: ColumnDataSource  # x, y, text of the titles drawn at a deep zoom (text stores)
    disk: GlyphRenderer[Any]  # the unit circle (hmds layouts)
    color_bar: ColorBar
    color_mapper: LinearColorMapper
    seen: ColumnDataSource  # x0, x1, y0, y1: the view the browser shows, set by the browser


def _empty_xy() -> ColumnDataSource:
    return ColumnDataSource({"x": [], "y": []})


def _base_figure(x_range: DataRange1d, y_range: DataRange1d) -> figure:
    """An empty, responsive, equal-aspect figure with the map's tools and quiet axes."""
    pan, wheel = PanTool(), WheelZoomTool()
    fig = figure(
        x_range=x_range,
        y_range=y_range,
        match_aspect=True,
        sizing_mode="stretch_both",
        min_height=420,
        tools=[
            pan, wheel, BoxZoomTool(match_aspect=True),
            BoxSelectTool(description="Box select (exact, on the server)"),
            LassoSelectTool(description="Lasso select (exact, on the server)"),
            ResetTool(),
        ],
        active_drag=pan,
        active_scroll=wheel,
        toolbar_location="right",
        output_backend="canvas",
        # Report the new ranges 50 ms after a wheel zoom pauses (Bokeh waits 500 ms by
        # default), so the re-rendered frame follows the zoom quickly.
        lod_timeout=50,
        background_fill_color="#ffffff",
        border_fill_color="#ffffff",
        outline_line_color="#dddddd",
    )  # fmt: skip
    fig.grid.visible = False
    fig.axis.major_label_text_color = "#999999"
    fig.axis.axis_line_color = "#dddddd"
    fig.axis.major_tick_line_color = "#dddddd"
    fig.axis.minor_tick_line_color = None
    fig.toolbar.logo = None
    return fig


def make_map_figure(extent: tuple[float, float, float, float]) -> MapFigure:
    """A responsive figure over ``extent`` ``(x0, x1, y0, y1)`` with the map's tools."""
    x0, x1, y0, y1 = extent
    x_range, y_range = DataRange1d(range_padding=0), DataRange1d(range_padding=0)
    fig = _base_figure(x_range, y_range)
    bounds = ColumnDataSource({"x": [x0, x1], "y": [y0, y1]})
    corners = fig.scatter("x", "y", source=bounds, alpha=0, size=1)
    x_range.renderers = [corners]
    y_range.renderers = [corners]
    image = ColumnDataSource({"url": [""], "x": [x0], "y": [y0], "w": [x1 - x0], "h": [y1 - y0]})
    fig.image_url(url="url", x="x", y="y", w="w", h="h", anchor="bottom_left", source=image)
    # The select tools need a renderer; the server does the hit-testing on its points.
    target = fig.scatter("x", "y", source=_empty_xy(), alpha=0)
    for tool in fig.toolbar.tools:
        if isinstance(tool, BoxSelectTool | LassoSelectTool):
            tool.renderers = [target]
    # At a deep zoom the points themselves: thumbnails (image stores) or titles (text),
    # under the pin and neighbour marks. Each thumbnail sits in a frame of its point's
    # colour; outside a selection it is faint.
    pictures = ColumnDataSource({k: [] for k in PICTURE_FIELDS})
    fig.rect("x", "y", width="frame", height="frame", width_units="screen",
             height_units="screen", source=pictures, fill_alpha=0, line_color="color",
             line_width=2, line_alpha="alpha")  # fmt: skip
    fig.image_url(url="url", x="x", y="y", w="side", h="side", w_units="screen",
                  h_units="screen", anchor="center", global_alpha="alpha",
                  source=pictures)  # fmt: skip
    titles = ColumnDataSource({k: [] for k in TITLE_FIELDS})
    fig.scatter("x", "y", source=titles, size=7, fill_color="color", line_color="color",
                fill_alpha="alpha", line_alpha="alpha")  # fmt: skip
    fig.text("x", "y", text="text", source=titles, text_font_size="10px", x_offset=6,
             text_baseline="middle", text_color="#333333", text_alpha="alpha")  # fmt: skip
    disk = fig.circle(
        x=[0.0], y=[0.0], radius=1.0, fill_alpha=0, line_color="#888888", line_dash="dashed"
    )
    disk.visible = False
    links = ColumnDataSource({"xs": [], "ys": []})
    fig.multi_line("xs", "ys", source=links, line_color=NEIGHBOUR_COLOR, line_alpha=0.7)
    neighbours, pinned, hovered, false = _empty_xy(), _empty_xy(), _empty_xy(), _empty_xy()
    for source, size, color in ((false, 9, FALSE_COLOR), (neighbours, 9, NEIGHBOUR_COLOR),
                                (pinned, 15, PIN_COLOR), (hovered, 12, HOVER_COLOR)):  # fmt: skip
        fig.scatter(
            "x", "y", source=source, size=size, line_color=color, fill_alpha=0, line_width=2
        )
    # Cluster names: canvas text (never HTML), on a light box so they read over any colour.
    labels = ColumnDataSource({"x": [], "y": [], "text": []})
    fig.text(  # type: ignore[call-arg]  # background_* exist on Text (Bokeh >= 3.4)
        "x", "y", text="text", source=labels, text_font_size="12px", text_font_style="bold",
        text_align="center", text_baseline="middle", text_color="#222222",
        background_fill_color="#ffffff", background_fill_alpha=0.7,
    )  # fmt: skip
    mapper = LinearColorMapper(palette=list(colorcet.palette["bmy"]), low=0, high=1)
    color_bar = ColorBar(color_mapper=mapper, width=10, visible=False, title_text_font_size="11px")
    fig.add_layout(color_bar, "right")
    # A new layout changes the corners: reset the view to them (the reset also reports the
    # new ranges, which renders the first frame of the new layout at the right size).
    bounds.js_on_change("data", CustomJS(args={"plot": fig}, code="plot.reset.emit()"))
    # A view chosen on the server (centre on a point): set in the browser, which owns the
    # ranges (a DataRange1d set from the server is recomputed there).
    goto = ColumnDataSource({"x0": [], "x1": [], "y0": [], "y1": []})
    # Only models the document reaches are synced: a hidden glyph keeps the source in it.
    fig.scatter("x0", "y0", source=goto, visible=False)
    goto.js_on_change("data", CustomJS(args={"xr": x_range, "yr": y_range, "src": goto,
                                             "plot": fig}, code="""
        const d = src.data;
        if (!d.x0.length) { return; }
        // As a zoom tool does it, so the ranges keep the view (not recomputed from data).
        const pv = Bokeh.index.query_one((v) => v.model.id == plot.id);
        const xs = {start: d.x0[0], end: d.x1[0]}, ys = {start: d.y0[0], end: d.y1[0]};
        if (pv != null) {
            pv.update_range({xrs: new Map([[xr, xs]]), yrs: new Map([[yr, ys]])});
        } else {
            xr.setv(xs);
            yr.setv(ys);
        }"""))  # fmt: skip
    # The view the browser shows, reported as one message as soon as a zoom or pan moves
    # it: Bokeh's own RangesUpdate comes only when the interaction pauses (~60–110 ms
    # later, measured with benchmarks/browser.py), and the four range properties arrive as
    # four messages, the first of them a half-updated view.
    seen = ColumnDataSource({"x0": [], "x1": [], "y0": [], "y1": []})
    fig.scatter("x0", "y0", source=seen, visible=False)
    report = CustomJS(args={"xr": x_range, "yr": y_range, "src": seen}, code="""
        if (src.__pending) { return; }
        src.__pending = true;
        // Once the tool has set both ranges (a microtask later): one message, four values.
        queueMicrotask(() => {
            src.__pending = false;
            const v = [xr.start, xr.end, yr.start, yr.end];
            if (v.some((t) => t == null || !isFinite(t))) { return; }
            src.data = {x0: [v[0]], x1: [v[1]], y0: [v[2]], y1: [v[3]]};
        });""")  # fmt: skip
    for rng in (x_range, y_range):
        rng.js_on_change("start", report)
        rng.js_on_change("end", report)
    return MapFigure(
        fig, x_range, y_range, image, bounds, pinned, neighbours, links, hovered, false, labels,
        goto, pictures, titles, disk, color_bar, mapper, seen,
    )  # fmt: skip


def update_source(source: ColumnDataSource, data: dict[str, list[Any]]) -> None:
    """Set ``source.data`` unless it already holds ``data``.

    Bokeh sends every assignment to the browser, equal or not, and each makes the browser
    redraw the plot: after every pan or zoom that was three empty sources (names, pictures,
    titles), each a message and a canvas redraw while the new frame was on its way.
    """
    try:
        same = dict(source.data) == data
    except ValueError:  # numpy arrays compare elementwise: just send them
        same = False
    if not same:
        source.data = data


def palette_of(cmap: str | tuple[str, ...]) -> list[str]:
    """A Bokeh palette (list of hex colours) for a colorcet name or a colour tuple."""
    if isinstance(cmap, str):
        return list(colorcet.palette[cmap])
    return list(cmap)
