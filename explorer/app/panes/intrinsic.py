"""Intrinsic dimension: how many directions the data really varies in, globally and per point.

The global estimates (MLE averaged as MacKay–Ghahramani, and TwoNN) come from the store's
``intrinsic`` stage; the histogram shows local ID (Levina–Bickel MLE on each point's kNN
distances) for all points with the selection over it. Dragging across the histogram
selects exactly the points whose local ID lies in that range.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.charts import Histogram
from explorer.app.models.scores import LOCAL_ID
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import range_ref, select_ref
from explorer.app.resources import StoreResources

MEANING = (
    "The intrinsic dimension is the number of independent directions the data varies in "
    "near a point: a curve is 1, a sheet 2, however many coordinates the vectors have."
)


class IntrinsicPane(PaneBase):
    """Global ID, local-ID histogram with a brush, selection median against the whole."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self._scores = resources.scores
        self.histogram = Histogram("local intrinsic dimension (drag to select)", self.select_range)
        self.summary = markup.html_pane("", margin=(0, 10))
        self.medians = markup.html_pane("", margin=(0, 10))
        self._panel = pn.Column(
            self.summary,
            markup.html_pane(markup.note(MEANING), margin=(0, 10)),
            pn.pane.Bokeh(self.histogram.figure, sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
            self.medians,
            sizing_mode="stretch_both",
        )
        self.summary.object = self.global_text()
        self._on_selection()

    def global_text(self) -> str:
        """The global estimates as one line of HTML."""
        summary = self._scores.summary("intrinsic")
        mle, twonn = summary.get("global_mle"), summary.get("twonn")
        parts = []
        if mle is not None:
            parts.append(f"MLE <b>{float(mle):.1f}</b>")
        if twonn is not None:
            parts.append(f"TwoNN <b>{float(twonn):.1f}</b>")
        dim = summary.get("ambient_dim") or self._res.store.stage("validate")["summary"].get("dim")
        tail = f" (the vectors have {int(dim):,} coordinates)" if dim else ""
        return markup.card(["Global intrinsic dimension: ", " · ".join(parts) or "n/a",
                            markup.esc(tail)])  # fmt: skip

    def select_range(self, lo: float, hi: float) -> int:
        """Select every point whose local ID lies in ``[lo, hi]``; return how many."""
        return select_ref(self.state, self._res, range_ref(LOCAL_ID, lo, hi), origin="intrinsic")

    @param.depends("state.selection", watch=True)
    def _on_selection(self) -> None:
        hist = self._scores.histogram(LOCAL_ID)
        sel = self.state.selection
        self.histogram.update(hist.edges, hist.counts, self._scores.selected_counts(LOCAL_ID, sel))
        whole = self._res.median(LOCAL_ID)
        text = f"Median local ID: all points {whole:.2f}"
        if sel.size:
            text += f" · selection {self._scores.median(LOCAL_ID, sel):.2f} ({sel.size:,} points)"
        self.medians.object = markup.note(text)


PANE = PaneSpec(
    name="intrinsic", title="Intrinsic dim.", region="tabs", requires=("intrinsic",),
    needs=lambda res: res.scores.has(LOCAL_ID),
    make=lambda res, state: IntrinsicPane(res, state=state),
)  # fmt: skip
