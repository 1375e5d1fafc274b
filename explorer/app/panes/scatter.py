"""The map: every point drawn on the server, selection and hover answered on the server.

Pan and zoom report the new ranges (``RangesUpdate``, and range changes from the browser's
own layout); the pane renders a frame for the new viewport at the plot's pixel size and
sends it as one PNG. Renders run in a worker thread when served, one at a time per session:
requests arriving meanwhile are merged into one follow-up render, so a burst of events
(a wheel zoom, a slider drag) costs two frames, not twenty.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh import events
from numpy.typing import NDArray

from explorer.app import markup
from explorer.app.background import frame_activity, on_loop, run_then, without_document_lock
from explorer.app.frames import FrameRequest, FrameResult, draw_frame
from explorer.app.mapfigure import make_map_figure
from explorer.app.mapmarks import MapMarks
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.resources import DISK_LAYOUT, StoreResources

log = logging.getLogger(__name__)

DEFAULT_SIZE = (800, 600)
PICK_RADIUS_PX = 8  # how close (in pixels) the cursor must be to hover or pin a point
VIEW_DEBOUNCE_MS = 120
LEGEND_WIDTH = 150
# state parameter -> the map's handler (run under the document lock, see __init__)
# The second map's own parameters, in place of the first map's.
SECOND_MAP = {"layout": "layout2", "color_by": "color_by2"}
STATE_HANDLERS = {
    "layout": "_on_layout", "color_by": "_on_color", "show_labels": "_update_labels",
    "centre": "_on_centre", "pinned": "_on_pinned", "hovered": "_on_hovered",
    "mask": "_update_labels",
}  # fmt: skip  # range changes while dragging: render when they pause


class MapPane(PaneBase):
    """The Datashader-style map of the current layout, with box/lasso select and hover."""

    frames_drawn = param.Integer(default=0, doc="frames rendered so far (for tests and stats)")
    last_frame_ms = param.Number(default=0.0, doc="render + encode time of the last frame")

    def __init__(self, resources: StoreResources, *, second: bool = False, **params: Any) -> None:
        super().__init__(resources, **params)
        # The split view's second map draws its own layout and colour, same selection.
        self.second = second
        self._names = SECOND_MAP if second else {}
        layout = self.layout
        self._view = resources.extent(layout)
        self._map = make_map_figure(self._view)
        self._marks = MapMarks(resources, self._map)
        self._map.disk.visible = layout == DISK_LAYOUT
        self.figure = self._map.fig
        self.legend = markup.live_html("", width=LEGEND_WIDTH, sizing_mode=None, margin=(5, 10))
        self._status = markup.live_html("", sizing_mode="stretch_width", margin=(0, 10))
        self._busy = False
        self._dirty = False
        self._dirty_delay = 0  # ms: the shortest delay asked for while a frame was drawn
        self._timer: Any = None
        # The view of the frame drawn last or being drawn: a report of it draws nothing.
        self._drawn_view: tuple[float, float, float, float] | None = None
        self.last_result: FrameResult | None = None
        self._hover_at: tuple[float | None, float | None] | None = None
        self._hover_busy = False
        fig = self.figure
        fig.on_event(events.RangesUpdate, self._on_ranges_update)
        fig.on_event(events.SelectionGeometry, self._on_selection_geometry)
        fig.on_event(events.MouseMove, self._on_mouse_move)
        fig.on_event(events.MouseLeave, self._on_mouse_leave)
        fig.on_event(events.Tap, self._on_tap)
        self._map.seen.on_change("data", self._on_seen)
        for rng in (self._map.x_range, self._map.y_range):
            rng.on_change("start", self._on_range_change)
            rng.on_change("end", self._on_range_change)
        # State changes may come from a widget callback that runs without the document
        # lock; Bokeh models must change under it, so these handlers run on the next tick.
        for name, handler in STATE_HANDLERS.items():
            watched = self._names.get(name, name)
            self.state.param.watch(functools.partial(self._deferred, handler), [watched])
        if second:
            self.state.param.watch(self._on_split, ["split"])
        fig.on_change("inner_width", self._on_resize)
        fig.on_change("inner_height", self._on_resize)
        plot = pn.pane.Bokeh(  # type: ignore[no-untyped-call]
            self.figure, sizing_mode="stretch_both", min_height=420
        )
        # Fixed width, height from the content (sizing_mode "fixed" wants a height too: W-1005).
        legend = pn.Column(
            self.legend, width=LEGEND_WIDTH, scroll=True, sizing_mode="stretch_height"
        )
        self._content = [self._status, pn.Row(plot, legend, sizing_mode="stretch_both")]
        # The hidden second map joins the page when first shown: until then its ~100
        # Bokeh models stay out of the first page's document (smaller, sooner shown).
        self._column = pn.Column(
            *(self._content if self.shown else []),
            sizing_mode="stretch_both",
            min_height=460,
            visible=self.shown,
        )
        self._panel = self._column
        self._layout_marks()
        self._update_labels()
        self._update_color_key()
        if self.shown:  # the hidden second map draws when it is shown
            self._draw_now()

    @property
    def layout(self) -> str:
        """The layout this map draws."""
        return str(getattr(self.state, self._names.get("layout", "layout")))

    @property
    def color_by(self) -> str:
        """What this map is coloured by ('' = density)."""
        return str(getattr(self.state, self._names.get("color_by", "color_by")))

    @property
    def shown(self) -> bool:
        """Whether this map is on the page (the second map only in the split view)."""
        return not self.second or bool(self.state.split)

    def _on_split(self, *_: Any) -> None:
        if self.shown and not self._column.objects:
            self._column.objects = list(self._content)
        self._column.visible = self.shown
        if self.shown:
            self.redraw()

    # -- what a frame depends on -------------------------------------------------------
    def _pixels(self) -> tuple[int, int]:
        try:
            w, h = int(self.figure.inner_width), int(self.figure.inner_height)
        except (ValueError, TypeError, AttributeError):
            return DEFAULT_SIZE
        return (w, h) if w > 0 and h > 0 else DEFAULT_SIZE

    def _highlight(self) -> NDArray[np.int64] | None:
        if self.state.flag_low_trust:
            return self._low_trust()
        if self.state.n_selected:
            return self.state.selection
        if self.state.pinned is not None:
            nbrs, _ = self._res.neighbors(self.state.pinned)
            return np.unique(np.append(nbrs, self.state.pinned))
        return None

    def _low_trust(self) -> NDArray[np.int64] | None:
        """Rows whose trust in the current layout is below the threshold (None: no score)."""
        name = f"trust:{self.layout}"
        if name not in self._res.store.scores:
            return None
        return self._res.rows_below(name, self.state.trust_threshold)

    def request(self) -> FrameRequest:
        """A snapshot of everything the next frame depends on."""
        w, h = self._pixels()
        x0, x1, y0, y1 = self._view
        return FrameRequest(
            self.layout, x0, x1, y0, y1, w, h,
            color_by=self.color_by, mask=self.state.mask, highlight=self._highlight(),
        )  # fmt: skip

    # -- rendering (coalesced; in a worker thread when served) ---------------------------
    def _served_doc(self) -> Any:
        doc = self.figure.document
        return doc if doc is not None and doc.session_context is not None else None

    def redraw(self, delay_ms: int = 0) -> None:
        """Ask for a new frame; when served, requests made while rendering are merged."""
        if not self.shown:
            return  # a hidden second map draws when it is shown
        self._dirty = True
        doc = self._served_doc()
        if doc is None:
            self._draw_now()
            return
        if self._busy:  # drawn when the frame being drawn is shown, after the delay
            self._dirty_delay = min(self._dirty_delay, delay_ms)
            return
        if self._timer is not None:
            with contextlib.suppress(ValueError, KeyError):
                doc.remove_timeout_callback(self._timer)
        self._timer = doc.add_timeout_callback(self._start, delay_ms)

    def _draw_now(self) -> None:
        self._dirty = False
        req = self.request()
        self._drawn_view = (req.x0, req.x1, req.y0, req.y1)
        self._show(draw_frame(self._res, req))

    def _start(self) -> None:
        self._timer = None
        doc = self._served_doc()
        if self._busy or not self._dirty or doc is None:
            return
        self._busy, self._dirty = True, False
        self._dirty_delay = VIEW_DEBOUNCE_MS
        frame_activity()
        req = self.request()
        self._drawn_view = (req.x0, req.x1, req.y0, req.y1)

        @without_document_lock
        async def compute() -> None:
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, draw_frame, self._res, req)
            except Exception as exc:  # shown to the user and logged, never swallowed
                log.exception("rendering the map failed")
                doc.add_next_tick_callback(functools.partial(self._finish, None, exc))
                return
            doc.add_next_tick_callback(functools.partial(self._finish, result, None))

        doc.add_next_tick_callback(compute)

    def _finish(self, result: FrameResult | None, error: Exception | None) -> None:
        self._busy = False
        if result is not None:
            self._show(result)
            frame_activity(shown=True)
        elif error is not None and pn.state.notifications is not None:
            message = markup.esc(f"Could not draw the map: {error}")
            pn.state.notifications.error(message, duration=8000)  # type: ignore[no-untyped-call]
        if self._dirty:
            # A resize (the axis labels of a zoom are wider or narrower: a few pixels)
            # waits its debounce after the frame just shown, so it is not drawn while the
            # browser receives that frame: on 2 cores that second frame slowed the first.
            delay, self._dirty_delay = self._dirty_delay, 0
            self.redraw(delay)

    def _show(self, result: FrameResult) -> None:
        req, frame = result.request, result.frame
        self._map.image.data = {
            "url": [result.uri], "x": [req.x0], "y": [req.y0],
            "w": [req.x1 - req.x0], "h": [req.y1 - req.y0],
        }  # fmt: skip
        self.last_result = result
        self._marks.pictures(result.pictures)
        ms = result.render_ms + result.encode_ms
        shown = f"{frame.n_in_view:,} points in view"
        if frame.n_highlight_in_view:
            low_trust = req.highlight is not None and self.state.flag_low_trust
            what = "low-trust" if low_trust else "highlighted"
            shown += f", {frame.n_highlight_in_view:,} {what}"
        self._status.object = markup.note(
            f"{shown} · frame {ms:.0f} ms, {result.png_bytes / 1024:.0f} KB"
        )
        if frame.legend:
            self.legend.object = markup.legend(
                [(e.label, e.color, e.count) for e in frame.legend], self.color_by
            )
        elif not self.color_by and frame.span is not None:
            lo, hi = frame.span
            self.legend.object = markup.note(f"density: {lo:,.0f}–{hi:,.0f} points per pixel")
        self.param.update(frames_drawn=self.frames_drawn + 1, last_frame_ms=ms)

    def _deferred(self, handler: str, *_: Any) -> None:
        on_loop(self._served_doc(), getattr(self, handler))

    # -- browser events ----------------------------------------------------------------
    def _on_ranges_update(self, event: events.Event) -> None:
        if not isinstance(event, events.RangesUpdate):
            return
        if event.x0 is None or event.x1 is None or event.y0 is None or event.y1 is None:
            return
        x0, x1, y0, y1 = float(event.x0), float(event.x1), float(event.y0), float(event.y1)
        # Usually reported already (``_on_seen``): drawn or being drawn, nothing to do.
        if x1 > x0 and y1 > y0 and (x0, x1, y0, y1) != self._drawn_view:
            self._view = (x0, x1, y0, y1)
            self._update_labels()
            self.redraw()

    def _on_seen(self, attr: str, old: Any, new: Any) -> None:
        """The browser's view, reported the moment a zoom or pan moved it: draw it now."""
        try:
            x0, x1, y0, y1 = (float(new[k][0]) for k in ("x0", "x1", "y0", "y1"))
        except (KeyError, IndexError, TypeError, ValueError):
            return
        if x1 > x0 and y1 > y0 and (x0, x1, y0, y1) != self._drawn_view:
            self._view = (x0, x1, y0, y1)
            self._update_labels()
            self.redraw()

    def _on_range_change(self, attr: str, old: Any, new: Any) -> None:
        xr, yr = self._map.x_range, self._map.y_range
        values = (xr.start, xr.end, yr.start, yr.end)
        if not all(isinstance(v, int | float) for v in values):
            return  # not laid out yet (None)
        x0, x1, y0, y1 = (float(v) for v in values)  # type: ignore[arg-type]
        if x1 > x0 and y1 > y0 and (x0, x1, y0, y1) != self._view:
            self._view = (x0, x1, y0, y1)
            self._update_labels()
            self.redraw(VIEW_DEBOUNCE_MS)

    def _on_resize(self, attr: str, old: Any, new: Any) -> None:
        self.redraw(VIEW_DEBOUNCE_MS)

    def _pick(self, x: float | None, y: float | None) -> int | None:
        if x is None or y is None:
            return None
        w, _ = self._pixels()
        radius = PICK_RADIUS_PX * (self._view[1] - self._view[0]) / max(w, 1)
        return self._res.nearest(self.layout, float(x), float(y), radius, mask=self.state.mask)

    def _on_mouse_move(self, event: events.Event) -> None:
        if not isinstance(event, events.MouseMove):
            return
        if self._res.cluster is None:
            self._set_hovered(self._pick(event.x, event.y))
            return
        # On a cluster a pick is a round trip: off the loop, one at a time, the latest
        # position asked for next (moves made meanwhile are merged).
        self._hover_at = (event.x, event.y)
        if not self._hover_busy:
            self._hover_next()

    def _hover_next(self) -> None:
        at, self._hover_at = self._hover_at, None
        if at is None:
            self._hover_busy = False
            return
        self._hover_busy = True

        def done(row: int | None) -> None:
            self._set_hovered(row)
            self._hover_next()

        def failed(_: Exception) -> None:  # a lost worker: no ring this time
            self._hover_busy = False

        run_then(self._served_doc(), lambda: self._pick(*at), done, failed)

    def _set_hovered(self, row: int | None) -> None:
        if row != self.state.hovered:
            self.state.hovered = row

    def _on_mouse_leave(self, event: events.Event) -> None:
        self.state.hovered = None

    def _on_tap(self, event: events.Event) -> None:
        if isinstance(event, events.Tap):
            self.state.pinned = self._pick(event.x, event.y)

    def _on_selection_geometry(self, event: events.Event) -> None:
        # The lasso reports every mouse move; act on the finished shape only.
        if isinstance(event, events.SelectionGeometry) and event.final and event.geometry:
            self.select_geometry(dict(event.geometry))

    def select_geometry(self, geometry: dict[str, Any]) -> None:
        """Select the points inside a Bokeh selection geometry (rect or poly).

        The hit-test runs in a worker thread when served (at 10M points it would stall
        every session's event loop), and the selection is set back on the loop.
        """
        res, layout = self._res, self.layout
        mask = self.state.mask
        if geometry.get("type") == "rect":
            g = geometry
            box = (float(g["x0"]), float(g["x1"]), float(g["y0"]), float(g["y1"]))

            def work() -> NDArray[np.int64]:
                return res.points_in_box(layout, box, mask=mask)[0]

        elif geometry.get("type") == "poly":
            px = np.asarray(geometry["x"], np.float64)
            py = np.asarray(geometry["y"], np.float64)

            def work() -> NDArray[np.int64]:
                return res.points_in_lasso(layout, px, py, mask=mask)

        else:
            return
        run_then(self._served_doc(), work, lambda rows: self.state.select(rows, source="map"),
                 self._report_error)  # fmt: skip

    def _report_error(self, error: Exception) -> None:
        if pn.state.notifications is not None:
            message = markup.esc(f"Could not select: {error}")
            pn.state.notifications.error(message, duration=8000)  # type: ignore[no-untyped-call]

    # -- state → figure ----------------------------------------------------------------
    def _on_layout(self) -> None:
        layout = self.layout
        self._view = self._res.extent(layout)
        x0, x1, y0, y1 = self._view
        self._map.disk.visible = layout == DISK_LAYOUT
        self._map.bounds.data = {"x": [x0, x1], "y": [y0, y1]}  # resets the browser's view
        self._layout_marks()
        self._update_labels()
        self.redraw()

    def _on_color(self) -> None:
        self._update_color_key()
        self.redraw()

    @param.depends("state.mask", "state.selection", "state.flag_low_trust",
                   "state.trust_threshold", watch=True)  # fmt: skip
    def _on_points(self) -> None:
        self.redraw()

    def _update_labels(self) -> None:
        self._marks.labels(self.layout, self._view, visible=self.state.show_labels,
                           mask=self.state.mask)  # fmt: skip

    def _on_centre(self) -> None:
        """Move the view to centre the requested point, zooming in from a far view."""
        if self.state.centre is None:
            return
        view = self._marks.centre_on(self.layout, self.state.centre, self._view)
        if view is None:
            return
        self._view = view
        self._update_labels()
        self.redraw()

    def _on_pinned(self) -> None:
        self._layout_marks()
        if not self.state.n_selected:
            self.redraw()

    def _on_hovered(self) -> None:
        self._marks.hovered(self.layout, self.state.hovered)

    def _layout_marks(self) -> None:
        self._marks.pinned(self.layout, self.state.pinned)
        self._on_hovered()

    def _update_color_key(self) -> None:
        note = self._marks.color_key(self.color_by)
        if note is not None:
            self.legend.object = markup.note(note)

    def __panel__(self) -> pn.viewable.Viewable:
        """The map and its status line (the legend is ``self.legend``, placed by the shell)."""
        return self._panel


PANE = PaneSpec(
    name="map", title="Map", region="map",
    make=lambda res, state: MapPane(res, state=state),
)  # fmt: skip
SECOND_PANE = PaneSpec(
    name="map2", title="Second map", region="map",
    make=lambda res, state: MapPane(res, state=state, second=True),
)  # fmt: skip
