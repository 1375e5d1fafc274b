"""The app's render path: one viewport of one layout → a PNG data URI and its legend.

``draw_frame`` is what the map pane runs for every pan, zoom, colour, filter or selection
change (in a worker thread when served). It calls ``explorer.render`` only: the points
never leave the server, the browser receives one compressed image.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from explorer.app.markup import one_line
from explorer.app.resources import StoreResources
from explorer.render.raster import (
    CategoricalColor,
    Frame,
    NumericColor,
    Viewport,
    encode_png,
    render,
)

MAX_SIDE = 4096  # frames larger than this are drawn at lower resolution and scaled up
TITLE_CHARS = 40  # a title drawn beside its point at a deep zoom
PICTURE_LIMIT = 400  # at most this many points in view: draw their thumbnails (or titles)


@dataclass(frozen=True, eq=False)
class FrameRequest:
    """Everything one frame depends on (a snapshot of the session's state).

    mask : (n,) bool or None; highlight : (k,) int64 sorted unique rows drawn over the
    dimmed rest.
    """

    layout: str
    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int
    color_by: str = ""
    mask: NDArray[np.bool_] | None = None
    highlight: NDArray[np.int64] | None = None

    def viewport(self) -> Viewport:
        """The render viewport, its sides clamped to ``[1, MAX_SIDE]`` pixels."""
        w = int(min(max(self.width, 1), MAX_SIDE))
        h = int(min(max(self.height, 1), MAX_SIDE))
        return Viewport(self.x0, self.x1, self.y0, self.y1, w, h)


@dataclass(frozen=True, eq=False)
class FrameResult:
    """A rendered frame, its PNG as a data URI, and how long each step took (ms)."""

    request: FrameRequest
    frame: Frame
    uri: str
    png_bytes: int
    render_ms: float
    encode_ms: float
    pictures: Pictures | None = None


@dataclass(frozen=True, eq=False)
class Pictures:
    """The points of a deep zoom, drawn as themselves: thumbnails or titles at positions.

    rows : (m,) int64; x, y : their positions; uris : a thumbnail data URI each (image
    stores) or None; titles : a short title each (text stores) or None.
    colors : each point's colour on the map (its category's; grey otherwise), drawn as a
    frame round its thumbnail so the colouring survives the switch from dots to pictures.
    alphas : 1.0, or 0.3 for the points outside a highlight (the selection stands out).
    """

    rows: NDArray[np.int64]
    x: list[float]
    y: list[float]
    uris: list[str] | None
    titles: list[str] | None
    side: float = 36.0  # pixels per thumbnail: smaller when more share the view
    colors: list[str] = field(default_factory=list)
    alphas: list[float] = field(default_factory=list)


PICTURE_FRAME_COLOR = "#777777"  # the frame of a thumbnail whose colouring is not by category
DIMMED_PICTURE_ALPHA = 0.3


def _picture_colors(resources: StoreResources, color_by: str, rows: NDArray[np.int64]) -> list[str]:
    color = resources.color(color_by)
    if not isinstance(color, CategoricalColor):
        return [PICTURE_FRAME_COLOR] * rows.size
    if resources.cluster is not None:  # the codes live on the workers
        slots = resources.cluster.slots_of(color_by, rows)
        return [color.colors[int(s)] for s in slots]
    slots = np.asarray(color.slot_of_code)[np.asarray(color.codes)[rows]]
    return [color.colors[int(s)] for s in slots]


def _picture_alphas(highlight: NDArray[np.int64] | None, rows: NDArray[np.int64]) -> list[float]:
    if highlight is None:
        return [1.0] * rows.size
    # ``highlight`` is sorted: a binary search per picture (0.3 ms for 300 pictures against a
    # 1M-row selection, where np.isin sorted the selection again: 0.9 s).
    at = np.minimum(np.searchsorted(highlight, rows), max(highlight.size - 1, 0))
    inside = highlight[at] == rows if highlight.size else np.zeros(rows.size, bool)
    return [1.0 if i else DIMMED_PICTURE_ALPHA for i in inside.tolist()]


def pictures_in_view(
    resources: StoreResources, request: FrameRequest, n_in_view: int
) -> Pictures | None:
    """Thumbnails (image stores) or titles (text stores) of the points in view, when few
    enough are in view to see them one by one (``PICTURE_LIMIT``); else None."""
    if n_in_view > PICTURE_LIMIT or n_in_view == 0:
        return None
    has_text = resources.cards.title_column is not None or resources.text_column is not None
    if resources.cards.thumbnails is None and not has_text:
        return None
    box = (request.x0, request.x1, request.y0, request.y1)
    rows, xy32 = resources.points_in_box(request.layout, box, mask=request.mask)
    xy = np.asarray(xy32, np.float64).reshape(-1, 2)
    colors = _picture_colors(resources, request.color_by, rows)
    alphas = _picture_alphas(request.highlight, rows)
    x, y = xy[:, 0].tolist(), xy[:, 1].tolist()
    if resources.cards.thumbnails is not None:
        uris = [resources.cards.thumbnail(int(r)) or "" for r in rows]
        vp = request.viewport()
        side = float(np.clip(0.7 * np.sqrt(vp.width * vp.height / max(rows.size, 1)), 16, 48))
        return Pictures(rows, x, y, uris, None, side, colors, alphas)
    titles = [one_line(resources.cards.heading(int(r)), TITLE_CHARS) for r in rows]
    return Pictures(rows, x, y, None, titles, colors=colors, alphas=alphas)


def min_alpha(n_candidates: int, viewport: Viewport) -> int:
    """Lowest alpha of a drawn pixel: opaque-ish when few points share the view's pixels.

    Density shading gives single points the lowest alpha; in a sparse view (a small dataset,
    a deep zoom) nearly every point is single and would be faint. ``n_candidates`` is the
    number of points in or near the view (``PointIndex.candidates``).
    """
    per_pixel = n_candidates / (viewport.width * viewport.height)
    # 40 (Datashader-like) from 1 point per pixel up; 160 below 1 point per 100 pixels.
    t = np.clip((np.log10(max(per_pixel, 1e-9)) + 2.0) / 2.0, 0.0, 1.0)
    return round(160 - 120 * float(t))


def draw_frame(resources: StoreResources, request: FrameRequest) -> FrameResult:
    """Render ``request`` with the shared index and colouring, encode it as a PNG."""
    t0 = time.perf_counter()
    color: CategoricalColor | NumericColor | None = resources.color(request.color_by)
    viewport = request.viewport()
    if resources.cluster is not None:  # the points live on a Dask cluster
        cluster = resources.cluster
        frame = cluster.render(
            request.layout, viewport, request.color_by, color=color, mask=request.mask,
            highlight=request.highlight,
            min_alpha=min_alpha(cluster.candidates(request.layout, viewport), viewport),
        )  # fmt: skip
    else:
        index = resources.index(request.layout)
        frame = render(
            index,
            viewport,
            color=color,
            mask=request.mask,
            highlight=request.highlight,
            min_alpha=min_alpha(index.candidates(viewport), viewport),
        )
    t1 = time.perf_counter()
    png = encode_png(frame.rgba)
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    pictures = pictures_in_view(resources, request, frame.n_in_view)
    t2 = time.perf_counter()
    return FrameResult(request, frame, uri, len(png), (t1 - t0) * 1e3, (t2 - t1) * 1e3, pictures)
