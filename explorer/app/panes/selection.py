"""The selection pane: how many points, how they differ from the whole, and a sample of them.

For every categorical column: its top values in the selection against their share overall;
for every numeric column and score: its median in the selection and overall; with a label
and a prediction, the error rate in the selection and overall; and a grid of up to
``GRID_SIZE`` thumbnails (or text snippets) spread evenly over the selection, each of which
pins its point when clicked. The statistics are computed off the event loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param
from numpy.typing import NDArray

from explorer.app import markup
from explorer.app.background import run_then, served_document
from explorer.app.charts import Gallery
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.resources import StoreResources

GRID_SIZE = 48
TOP_VALUES = 5
EMPTY_HINT = "Nothing selected yet: drag a box or a lasso on the map (tools at its right)."


class SelectionPane(PaneBase):
    """Summary of ``state.selection``; every label is escaped."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self.header = markup.html_pane("", sizing_mode="stretch_width")
        self.stats = markup.html_pane("", sizing_mode="stretch_width")
        self.gallery = Gallery(self.pick, columns=8, cell=56, height=330)
        self.gallery_note = markup.html_pane("", sizing_mode="stretch_width")
        self._panel = pn.Column(
            self.header,
            self.gallery_note,
            pn.pane.Bokeh(self.gallery.figure, sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
            self.stats,
            sizing_mode="stretch_both",
            scroll=True,
        )
        self._update()

    def error_rates(self) -> tuple[float, float] | None:
        """(in selection, overall) share of points whose prediction differs from the label."""
        inside = self._res.error_rate(self.state.selection)
        overall = self._res.error_rate(None)
        if inside is None or overall is None:
            return None
        return inside, overall

    def top_values(self, column: str) -> list[tuple[str, int, float, float]]:
        """(label, count in selection, share in selection, share overall), most common first."""
        labels = self._res.labels(column)
        sel = self.state.selection
        overall = self._res.category_counts(column) / max(self._res.n_points, 1)
        counts = self._res.selected_counts(column, sel)
        order = np.argsort(-counts, kind="stable")[:TOP_VALUES]
        n = max(sel.size, 1)
        return [
            (labels[i], int(counts[i]), counts[i] / n, float(overall[i]))
            for i in order
            if counts[i]
        ]

    def sample_rows(self) -> NDArray[np.int64]:
        """Up to ``GRID_SIZE`` selected rows, evenly spread over the selection."""
        sel = self.state.selection
        if sel.size <= GRID_SIZE:
            return sel
        return sel[np.linspace(0, sel.size - 1, GRID_SIZE).astype(np.int64)]

    def numeric_medians(self) -> list[tuple[str, float, float]]:
        """(column or score, median in the selection, median overall) for every numeric one."""
        sel = self.state.selection
        names = [*self._res.names_of("numeric"), *self._res.store.scores]
        inside = self._res.selected_medians(names, sel)
        return list(zip(names, inside, self._res.medians(names), strict=True))

    def pick(self, row: int) -> None:
        """Pin point ``row`` (a click on its thumbnail) and centre the map on it."""
        self.state.pin(row, centre=True)

    @param.depends("state.selection", watch=True)
    def _update(self) -> None:
        n, total = self.state.n_selected, self.state.n_points
        if n == 0:
            self.header.object = markup.card(["<b>Selection</b> ", markup.esc(EMPTY_HINT)])
            self.stats.object = ""
            self.gallery_note.object = ""
            self.gallery.show([])
            return
        parts = [f"<b>Selection: {n:,} points</b> ({n / max(total, 1):.1%} of {total:,})"]
        rates = self.error_rates()
        if rates is not None:
            parts.append(f" · error rate {rates[0]:.1%} (overall {rates[1]:.1%})")
        if self.state.selection_ref:
            parts.append(f" · <i>{markup.esc(self.state.selection_ref)}</i>")
        self.header.object = markup.card(parts)
        run_then(served_document(self.gallery.figure), self._summaries, self._show)

    def _summaries(self) -> tuple[str, list[tuple[int, str | None, str, str]]]:
        """The statistics' HTML and the gallery's items (in a worker thread when served)."""
        n = self.state.n_selected
        tables = [
            markup.value_table(c, self.top_values(c), n) for c in self._res.names_of("categorical")
        ]
        tables.append(markup.median_table(self.numeric_medians(), n))
        items = []
        sample = self.sample_rows()
        self._res.cards.fetch_points(sample)  # on a cluster: their text in one trip
        for r in sample:
            row = int(r)
            snippet = self._res.cards.text(row, 60) or self._res.cards.label_of(row)
            items.append(
                (row, self._res.cards.thumbnail(row), snippet, self._res.cards.label_of(row))
            )
        return markup.card(tables), items

    def _show(self, result: tuple[str, list[tuple[int, str | None, str, str]]]) -> None:
        stats, items = result
        self.stats.object = stats
        n = self.state.n_selected
        shown = f"{len(items)} of {n:,}" if n > len(items) else f"all {n:,}"
        self.gallery_note.object = markup.note(f"{shown} selected points (click one to pin it)")
        self.gallery.show(items)


PANE = PaneSpec(
    name="selection", title="Selection", region="tabs",
    make=lambda res, state: SelectionPane(res, state=state),
)  # fmt: skip
