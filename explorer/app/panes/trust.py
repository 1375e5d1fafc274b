"""Where the 2-D picture lies: how much of each point's high-dimensional neighbourhood the
current layout keeps (per-point trust, from the store's ``trust`` stage).

Shows the layout's mean trust and the share of points below a threshold; a switch
highlights those points on the map; the histogram selects a trust range by dragging. For a
pinned point the map draws, beside its true neighbours, its false 2-D neighbours.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.charts import Histogram
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import range_ref, select_ref
from explorer.app.resources import StoreResources

MEANING = (
    "Trust = the share of a point's nearest neighbours in the data that are also among its "
    "nearest on the map. Low trust: what surrounds the point in the picture is not what "
    "surrounds it in the data."
)


def trust_score(layout: str | None) -> str:
    """The score name of a layout's trust."""
    return f"trust:{layout}"


class TrustPane(PaneBase):
    """Layout trust: mean, share below the threshold, highlight switch, histogram."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self._scores = resources.scores
        self.summary = markup.html_pane("", margin=(0, 10))
        self.flag = pn.widgets.Checkbox.from_param(  # type: ignore[no-untyped-call]
            self.state.param.flag_low_trust, label="Highlight low-trust points on the map"
        )
        self.threshold = pn.widgets.FloatSlider.from_param(  # type: ignore[no-untyped-call]
            self.state.param.trust_threshold, label="Low trust below", step=0.05,
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.histogram = Histogram("trust of the current layout (drag to select)",
                                   self.select_range)  # fmt: skip
        self._panel = pn.Column(
            self.summary,
            markup.html_pane(markup.note(MEANING), margin=(0, 10)),
            self.flag,
            self.threshold,
            pn.pane.Bokeh(self.histogram.figure, sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
            markup.html_pane(markup.note(
                "Pin a point on the map: orange = its true neighbours, red = points near it "
                "on the map but not in the data."), margin=(0, 10)),
            sizing_mode="stretch_both",
        )  # fmt: skip
        self._update()

    @property
    def score(self) -> str:
        """The current layout's trust score name."""
        return trust_score(self.state.layout)

    def stats(self) -> tuple[float, float] | None:
        """(mean trust, share of points below the threshold) of the current layout."""
        if not self._scores.has(self.score):
            return None
        return self._scores.share_below(self.score, self.state.trust_threshold)

    def select_range(self, lo: float, hi: float) -> int:
        """Select every point whose trust in the current layout lies in ``[lo, hi]``."""
        return select_ref(self.state, self._res, range_ref(self.score, lo, hi), origin="trust")

    @param.depends("state.layout", "state.selection", "state.trust_threshold", watch=True)
    def _update(self) -> None:
        stats = self.stats()
        if stats is None:
            self.summary.object = markup.note(f"No trust score for layout {self.state.layout!r}.")
            return
        mean, low = stats
        self.summary.object = markup.card([
            f"Layout <b>{markup.esc(self.state.layout)}</b>: mean trust <b>{mean:.2f}</b> · "
            f"<b>{low:.1%}</b> of points below {self.state.trust_threshold:.2f}"
        ])  # fmt: skip
        hist = self._scores.histogram(self.score)
        sel = self.state.selection
        self.histogram.update(
            hist.edges, hist.counts, self._scores.selected_counts(self.score, sel)
        )
        self.histogram.mark(self.state.trust_threshold)


PANE = PaneSpec(
    name="trust", title="Layout trust", region="tabs", requires=("trust",),
    make=lambda res, state: TrustPane(res, state=state),
)  # fmt: skip
