"""The selection pane: how many points, how they differ from the whole, and a sample of them.

For each categorical column: its top values in the selection against their share overall;
with a label and a prediction, the error rate in the selection and overall; and a grid of
up to ``GRID_SIZE`` thumbnails (or text snippets) spread evenly over the selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param
from numpy.typing import NDArray
from panel.viewable import Viewer
from param.parameters import NoNone

from explorer.app import markup
from explorer.app.resources import StoreResources
from explorer.app.state import ExplorerState

GRID_SIZE = 60
TOP_VALUES = 5
MAX_COLUMNS = 6
EMPTY_HINT = "Nothing selected yet: drag a box or a lasso on the map (tools at its right)."


def _known_mean(errors: np.ndarray) -> float:
    """Mean error over the points whose error is known (NaN when none is)."""
    known = errors[~np.isnan(errors)]
    return float(known.mean()) if known.size else float("nan")


class SelectionPane(Viewer):
    """Summary of ``state.selection``; every label is escaped."""

    state = param.ClassSelector(class_=ExplorerState, allow_None=NoNone, constant=True)

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._res = resources
        self.header = markup.html_pane("", sizing_mode="stretch_width")
        self.stats = markup.html_pane("", sizing_mode="stretch_width")
        self.gallery = markup.html_pane("", sizing_mode="stretch_width")
        self._panel = pn.Column(
            self.header,
            pn.Row(self.stats, self.gallery, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._update()

    def error_rates(self) -> tuple[float, float] | None:
        """(in selection, overall) share of points whose prediction differs from the label."""
        wrong = self._res.wrong_predictions()
        if wrong is None:
            return None
        return (_known_mean(wrong[self.state.selection]), _known_mean(wrong))

    def top_values(self, column: str) -> list[tuple[str, int, float, float]]:
        """(label, count in selection, share in selection, share overall), most common first."""
        codes, labels = self._res.codes(column)
        sel = self.state.selection
        overall = self._res.category_counts(column) / max(codes.size, 1)
        counts = np.bincount(codes[sel], minlength=len(labels))
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

    @param.depends("state.selection", watch=True)
    def _update(self) -> None:
        n, total = self.state.n_selected, self.state.n_points
        if n == 0:
            self.header.object = markup.card(["<b>Selection</b> ", markup.esc(EMPTY_HINT)])
            self.stats.object = ""
            self.gallery.object = ""
            return
        parts = [f"<b>Selection: {n:,} points</b> ({n / max(total, 1):.1%} of {total:,})"]
        rates = self.error_rates()
        if rates is not None:
            parts.append(f" · error rate {rates[0]:.1%} (overall {rates[1]:.1%})")
        if self.state.selection_name:
            parts.append(f" · saved as <i>{markup.esc(self.state.selection_name)}</i>")
        self.header.object = markup.card(parts)
        tables = [
            markup.value_table(c, self.top_values(c), n)
            for c in self._res.names_of("categorical")[:MAX_COLUMNS]
        ]
        self.stats.object = markup.card(tables)
        items = [
            (self._res.label_of(int(r)), self._res.thumbnail(int(r)), self._res.text(int(r), 80))
            for r in self.sample_rows()
        ]
        shown = f"{len(items)} of {n:,}" if n > len(items) else f"all {n:,}"
        self.gallery.object = markup.card(
            [f'<div class="ex-muted">{shown} selected points</div>', markup.grid(items)]
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._panel
