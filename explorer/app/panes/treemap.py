"""The cluster treemap (as in DendroMap): the focused node's children as squarified cells.

Each cell's area is its size; it shows the node's name, its size, the share of it that is
selected (a band along its foot), and representative thumbnails (image stores) or a text
snippet (text stores). Cells are coloured by the user's choice; cells whose error rate is
well above the whole set's are outlined in red. Clicking a cell selects its points and,
when it has children, drills into it; the breadcrumb goes back up.
"""

from __future__ import annotations

import functools
from typing import Any

import colorcet
import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, TapTool
from bokeh.plotting import figure
from numpy.typing import NDArray

from explorer.app import markup
from explorer.app.background import on_loop, served_document
from explorer.app.markup import one_line
from explorer.app.models.hierarchy import COLOR_CHOICES
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import select_ref
from explorer.app.resources import StoreResources
from explorer.render.colors import DEFAULT_PALETTE
from explorer.render.treemap import treemap_rects

DEFAULT_PX = (520, 400)
HOT_RATIO = 1.5  # outline cells whose error rate is this many times the whole set's ...
HOT_MIN_GAP = 0.05  # ... and at least this much above it
THUMBS = 3
# One row per cell: its node, rectangle, fill, outline, selected band, and texts with places.
CELL_FIELDS = (
    "node", "left", "right", "bottom", "top", "color", "line", "width", "band_top",
    "label", "sub", "snippet", "lx", "ly", "sy", "ny",
)  # fmt: skip
NUMERIC_PALETTE = colorcet.palette["blues"][40:]


def _hex_of(values: NDArray[np.float64]) -> list[str]:
    """A colour per value on the numeric palette (grey when missing)."""
    finite = np.isfinite(values)
    out = ["#dddddd"] * values.size
    if finite.any():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        span = hi - lo if hi > lo else 1.0
        idx = ((values[finite] - lo) / span * (len(NUMERIC_PALETTE) - 1)).astype(int)
        for i, j in zip(np.flatnonzero(finite), idx, strict=True):
            out[i] = NUMERIC_PALETTE[j]
    return out


class TreemapPane(PaneBase):
    """Drill down the cluster hierarchy; every click is a selection."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self._tree = resources.hierarchy
        nodes = self._tree.nodes
        choices = {k: v for k, v in COLOR_CHOICES.items() if v[0] in nodes}
        if "errors" in nodes and not nodes["errors"].to_numpy().any() and "error rate" in choices:
            choices.pop("error rate")  # no labels/predictions: nothing to show
        self.color_choice = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="Colour cells by", options=list(choices), width=170
        )
        self._choices = choices
        self.color_choice.param.watch(lambda _: self._draw(), "value")
        self.crumbs = pn.Row(sizing_mode="stretch_width", margin=(0, 5))
        self.info = markup.html_pane("", margin=(0, 10))
        self.cells = ColumnDataSource({k: [] for k in CELL_FIELDS})
        self.thumbs = ColumnDataSource({"url": [], "x": [], "y": [], "w": [], "h": []})
        self.figure = self._make_figure()
        self.shown: list[int] = []  # node of each cell, in cell order (for tests)
        self._crumb_path: list[int] = []
        self._panel = pn.Column(
            pn.Row(self.color_choice, self.info, sizing_mode="stretch_width"),
            self.crumbs,
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_both", min_height=300),  # type: ignore[no-untyped-call]
            sizing_mode="stretch_both",
        )
        self._draw()

    def _make_figure(self) -> figure:
        w, h = DEFAULT_PX
        tap = TapTool()
        fig = figure(
            x_range=Range1d(start=0, end=w), y_range=Range1d(start=0, end=h), tools=[tap],
            toolbar_location=None,
            sizing_mode="stretch_both", min_height=300,
        )  # fmt: skip
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        fig.toolbar.logo = None
        quads = fig.quad(
            left="left", right="right", bottom="bottom", top="top", source=self.cells,
            fill_color="color", line_color="line", line_width="width",
            selection_fill_color="color", nonselection_fill_alpha=1.0,
            selection_line_color="line", nonselection_line_alpha=1.0,
        )  # fmt: skip
        tap.renderers = [quads]
        fig.quad(left="left", right="right", bottom="bottom", top="band_top", source=self.cells,
                 fill_color="#111111", fill_alpha=0.28, line_alpha=0)  # fmt: skip
        fig.image_url(url="url", x="x", y="y", w="w", h="h", anchor="bottom_left",
                      source=self.thumbs)  # fmt: skip
        fig.text(x="lx", y="ly", text="label", source=self.cells, text_font_size="12px",
                 text_font_style="bold", text_baseline="top", text_color="#111111")  # fmt: skip
        fig.text(x="lx", y="ny", text="snippet", source=self.cells, text_font_size="10px",
                 text_font_style="italic", text_baseline="top", text_color="#222222")  # fmt: skip
        fig.text(x="lx", y="sy", text="sub", source=self.cells, text_font_size="10px",
                 text_baseline="top", text_color="#333333")  # fmt: skip
        self.cells.selected.on_change("indices", self._on_tap)
        fig.on_change("inner_width", self._on_resize)
        fig.on_change("inner_height", self._on_resize)
        return fig

    # -- reading ---------------------------------------------------------------------
    @property
    def focus(self) -> int:
        """The node whose children are shown (the root unless drilled into)."""
        node = self.state.focus_node
        return node if node is not None and self._tree.has_node(node) else 0

    def _pixels(self) -> tuple[float, float]:
        try:
            w, h = float(self.figure.inner_width), float(self.figure.inner_height)
        except (TypeError, ValueError):
            return DEFAULT_PX
        return (w, h) if w > 50 and h > 50 else DEFAULT_PX

    def hot(self, nodes: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each node's error rate is well above the whole set's."""
        overall = self._tree.overall_error_rate()
        table = self._tree.nodes
        if overall is None or "error_rate" not in table:
            return np.zeros(nodes.size, bool)
        rate = table["error_rate"].to_numpy(np.float64)[nodes]
        return (rate >= HOT_RATIO * overall) & (rate >= overall + HOT_MIN_GAP)

    def _colors(self, nodes: NDArray[np.int64]) -> list[str]:
        column, kind = self._choices.get(self.color_choice.value, ("", "numeric"))
        table = self._tree.nodes
        if not column:
            return ["#c6dbef"] * nodes.size
        if kind == "categorical":
            labels = table[column].astype(str).to_numpy()[nodes]
            order = {v: i for i, v in enumerate(dict.fromkeys(sorted(set(labels))))}
            return [DEFAULT_PALETTE[order[v] % len(DEFAULT_PALETTE)] for v in labels]
        return _hex_of(table[column].to_numpy(np.float64)[nodes])

    # -- drawing -----------------------------------------------------------------------
    @param.depends("state.focus_node", "state.selection", watch=True)
    def _draw(self) -> None:
        # Bokeh models change under the document lock: on the next tick when served.
        on_loop(served_document(self.figure), self._render)

    def _render(self) -> None:
        focus, tree = self.focus, self._tree
        kids = tree.children(focus)
        w, h = self._pixels()
        self.figure.x_range.update(start=0, end=w)
        self.figure.y_range.update(start=0, end=h)
        sizes = tree.nodes["size"].to_numpy(np.float64)
        rects = treemap_rects(sizes[kids], 0, 0, w, h)
        counts = tree.selected_counts(self.state.selection)
        share = counts[kids] / np.maximum(sizes[kids], 1)
        hot = self.hot(kids)
        self.shown = [int(k) for k in kids]
        x, y, rw, rh = (rects[:, i] for i in range(4))
        labels = [_fit(tree.name(int(k)), rw[i]) for i, k in enumerate(kids)]
        subs = [
            _fit(f"{int(sizes[k]):,} pts" + (f" · {share[i]:.0%} selected" if counts[k] else ""),
                 rw[i]) if rh[i] > 30 else ""
            for i, k in enumerate(kids)
        ]  # fmt: skip
        self.cells.selected.indices = []
        self.cells.data = {
            "node": self.shown, "left": x.tolist(), "right": (x + rw).tolist(),
            "bottom": y.tolist(), "top": (y + rh).tolist(), "color": self._colors(kids),
            "line": ["#d62728" if v else "#ffffff" for v in hot],
            "width": [3.0 if v else 1.0 for v in hot],
            "band_top": (y + rh * share).tolist(),
            "label": [lab if rh[i] > 16 else "" for i, lab in enumerate(labels)],
            "sub": subs, "lx": (x + 4).tolist(), "ly": (y + rh - 3).tolist(),
            "sy": (y + rh - 18).tolist(), "snippet": self._snippets(kids, rw, rh),
            "ny": (y + rh - 32).tolist(),
        }  # fmt: skip
        self.thumbs.data = self._thumbnails(kids, rects)
        self._update_crumbs(focus)
        self._update_info(focus)

    def _snippets(self, kids: NDArray[np.int64], widths: NDArray[np.float64],
                  heights: NDArray[np.float64]) -> list[str]:  # fmt: skip
        """Text stores: the start of each cluster's most central text, where it fits."""
        if self._res.cards.thumbnails is not None or self._res.text_column is None:
            return [""] * kids.size
        out = []
        for k, w, h in zip(kids, widths, heights, strict=True):
            reps = self._tree.representatives(int(k), 1)
            text = self._res.cards.text(int(reps[0]), 200) if reps.size and h > 50 else None
            out.append(_fit(f"“{text}”", w, px_per_char=5.5) if text else "")
        return out

    def _thumbnails(self, kids: NDArray[np.int64], rects: NDArray[np.float64]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"url": [], "x": [], "y": [], "w": [], "h": []}
        if self._res.cards.thumbnails is None:
            return out
        for k, (x, y, w, h) in zip(kids, rects, strict=True):
            side = min(44.0, (w - 8) / THUMBS - 2, h - 40)
            if side < 18:
                continue
            for j, row in enumerate(self._tree.representatives(int(k), THUMBS)):
                uri = self._res.cards.thumbnail(int(row))
                if uri is not None:
                    out["url"].append(uri)
                    out["x"].append(x + 4 + j * (side + 2))
                    out["y"].append(y + 4)
                    out["w"].append(side)
                    out["h"].append(side)
        return out

    def _update_crumbs(self, focus: int) -> None:
        path = self._tree.path(focus)
        if path == self._crumb_path:
            return  # the same buttons: a click on one in flight must still find it
        self._crumb_path = path
        buttons = []
        for node in path:
            label = _fit(self._tree.name(node), 160, px_per_char=6.5)
            button = pn.widgets.Button(  # type: ignore[no-untyped-call]
                label=label, color="light", margin=(0, 2), height=28,
                disabled=node == focus,
            )  # fmt: skip
            button.on_click(functools.partial(self._on_crumb, node))
            buttons.append(button)
        self.crumbs.objects = buttons

    def _update_info(self, focus: int) -> None:
        row = self._tree.row(focus)
        parts = [f"{int(row['size']):,} points in {len(self.shown)} clusters"]
        overall = self._tree.overall_error_rate()
        if overall is not None:
            parts.append(f"red outline: error rate ≥ {HOT_RATIO:g}× the overall {overall:.1%}")
        self.info.object = markup.note(" · ".join(parts))

    # -- user input → state ------------------------------------------------------------
    def click(self, node: int) -> None:
        """Select ``node``'s points; drill into it when it has children."""
        # One batch: the panes watching both the selection and the focus update once.
        with param.parameterized.batch_call_watchers(self.state):
            select_ref(self.state, self._res, f"node:{node}", origin="treemap")
            if self._tree.children(node).size:
                self.state.focus_node = node

    def go_up(self, node: int) -> None:
        """Focus ``node`` (a breadcrumb); select its points (nothing for the root)."""
        with param.parameterized.batch_call_watchers(self.state):
            self.state.focus_node = None if node == 0 else node
            if node == 0:
                self.state.clear_selection("treemap")
            else:
                select_ref(self.state, self._res, f"node:{node}", origin="treemap")

    def _on_crumb(self, node: int, _: object) -> None:
        self.go_up(node)

    def _on_resize(self, attr: str, old: Any, new: Any) -> None:
        self._draw()

    def _on_tap(self, attr: str, old: Any, new: Any) -> None:
        if new and 0 <= new[0] < len(self.shown):
            self.click(self.shown[int(new[0])])


def _fit(text: str, width_px: float, px_per_char: float = 7.0) -> str:
    """``text`` cut to what fits in ``width_px`` (one line, control characters dropped)."""
    limit = max(int((width_px - 8) / px_per_char), 0)
    return one_line(text, limit) if limit > 1 or len(text) <= limit else ""


PANE = PaneSpec(
    name="treemap", title="Clusters", region="tabs", requires=("hierarchy",),
    make=lambda res, state: TreemapPane(res, state=state),
)  # fmt: skip
