"""Outliers: the points the magnitude weighting vector flags, the score's distribution, and
the magnitude (effective number of distinct points) of the whole set and of the selection.

A point's score is its weight in the weighting vector of the metric space (see
docs/analytics.md): about 1 for a point alone, near 0 deep inside a crowd. The gallery shows
the highest; clicking one pins it and centres the map on it. The threshold selects every
point scoring at least that much; dragging across the histogram selects a range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param
from numpy.typing import NDArray

from explorer.app import markup
from explorer.app.background import run_then, served_document
from explorer.app.charts import Gallery, Histogram
from explorer.app.models.scores import OUTLIER
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import range_ref, select_ref
from explorer.app.resources import StoreResources
from explorer.magnitude import SELECTION_EXACT_LIMIT, SelectionMagnitude

TOP = 24
Magnitude = SelectionMagnitude | None
MEANING = (
    "Score = the point's weight in the magnitude weighting vector: near 1 for a point (or a "
    "small group) far from the rest, near 0 deep inside a dense cluster."
)


class OutliersPane(PaneBase):
    """Top outliers (click to pin), score histogram with a threshold, magnitudes."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self._scores = resources.scores
        hist = self._scores.histogram(OUTLIER)
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        self.histogram = Histogram("outlier score", self.select_range)
        self.threshold = pn.widgets.FloatSlider(  # type: ignore[no-untyped-call]
            label="Select every point scoring at least", start=lo, end=hi,
            value=self._scores.quantile(OUTLIER, 0.99) if hist.counts.sum() else hi,
            step=(hi - lo) / 200 or 0.01, sizing_mode="stretch_width",
        )  # fmt: skip
        self.threshold.param.watch(self._on_threshold, "value_throttled")
        self.gallery = Gallery(self.pick, columns=6, height=250)
        self.magnitude = markup.html_pane("", margin=(0, 10))
        self.estimate_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Estimate the selection's magnitude", visible=False, sizing_mode="stretch_width"
        )
        self.estimate_button.on_click(lambda _: self.estimate_selection_magnitude())
        self.top_rows = self._scores.top(OUTLIER, TOP)
        self._fill_gallery()
        self._panel = pn.Column(
            markup.html_pane(markup.note(MEANING), margin=(0, 10)),
            self.magnitude,
            self.estimate_button,
            pn.pane.Bokeh(self.gallery.figure, sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
            self.threshold,
            pn.pane.Bokeh(self.histogram.figure, sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
            sizing_mode="stretch_both",
            scroll=True,
        )
        self._on_selection()

    def _fill_gallery(self) -> None:
        values = self._scores.values_at(OUTLIER, self.top_rows)
        self._res.cards.fetch_points(self.top_rows)  # on a cluster: their text in one trip
        items = []
        for row, value in zip(self.top_rows, values, strict=True):
            r = int(row)
            text = self._res.cards.text(r, 40) or self._res.cards.label_of(r)
            items.append((r, self._res.cards.thumbnail(r), text, f"{value:.3f}"))
        self.gallery.show(items)

    # -- user input → state ------------------------------------------------------------
    def pick(self, row: int) -> None:
        """Pin point ``row`` and centre the map on it."""
        self.state.pin(row, centre=True)

    def select_above(self, threshold: float) -> int:
        """Select every point whose score is at least ``threshold``; return how many."""
        hi = float(self._scores.histogram(OUTLIER).edges[-1])
        return self.select_range(threshold, max(hi, threshold))

    def select_range(self, lo: float, hi: float) -> int:
        """Select every point whose score lies in ``[lo, hi]``; return how many."""
        return select_ref(self.state, self._res, range_ref(OUTLIER, lo, hi), origin="outliers")

    def _on_threshold(self, event: param.parameterized.Event) -> None:
        if event.new is not None:
            self.select_above(float(event.new))

    # -- state → view --------------------------------------------------------------------
    @param.depends("state.selection", watch=True)
    def _on_selection(self) -> None:
        hist = self._scores.histogram(OUTLIER)
        sel = self.state.selection
        self.histogram.update(hist.edges, hist.counts, self._scores.selected_counts(OUTLIER, sel))
        ref = self.state.selection_ref
        self.histogram.mark(float(ref.rsplit(":", 2)[1]) if ref.startswith(f"range:{OUTLIER}:")
                            else None)  # fmt: skip
        # A selection small enough for the exact solve gets its magnitude at once; a larger
        # one is estimated on a sample (about 1 s at 1M rows, measured) when asked for.
        small = 0 < sel.size <= SELECTION_EXACT_LIMIT
        self.estimate_button.visible = sel.size > SELECTION_EXACT_LIMIT
        self._magnitude_of(sel if small else None)

    def estimate_selection_magnitude(self) -> None:
        """Estimate the magnitude of the (large) selection, off the event loop."""
        self._magnitude_of(self.state.selection)

    def _magnitude_of(self, rows: NDArray[np.int64] | None) -> None:
        doc = served_document(self.histogram.figure)
        run_then(doc, lambda: self._magnitudes(rows), self._show_magnitude, self._no_magnitude)

    def _magnitudes(self, rows: NDArray[np.int64] | None) -> tuple[Magnitude, Magnitude]:
        whole = self._scores.magnitude(None)
        return whole, (self._scores.magnitude(rows) if rows is not None else None)

    def _no_magnitude(self, error: Exception) -> None:
        # The rest of the pane works without it: say why it is missing, in one line.
        self.magnitude.object = markup.note(f"Magnitude not available: {error}")

    def _show_magnitude(self, result: tuple[Magnitude, Magnitude]) -> None:
        whole, part = result
        parts = []
        if whole is not None:
            parts.append(f"Magnitude of all points: {_mag(whole)}")
        if part is not None:
            parts.append(f"of the selection: {_mag(part)}")
        self.magnitude.object = markup.note(
            " · ".join(parts) + " (the effective number of distinct points)" if parts else ""
        )


def _mag(result: SelectionMagnitude) -> str:
    text = f"{result.value:,.1f} of {result.n_rows:,}"
    return text if result.exact else f"{text} (estimated from a sample of {result.sample_size:,})"


PANE = PaneSpec(
    name="outliers", title="Outliers", region="tabs", requires=("outliers",),
    make=lambda res, state: OutliersPane(res, state=state),
)  # fmt: skip
