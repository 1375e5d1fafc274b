"""The point card: the hovered point (or else the pinned one), its thumbnail or text, its
metadata, and for a pinned point its high-dimensional neighbours."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.resources import StoreResources

HINT = "Hover over the map to see a point; click to pin it and show its nearest neighbours."


class DetailsPane(PaneBase):
    """Shows one point as text (metadata is escaped, never run)."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self.card = markup.html_pane(markup.note(HINT), sizing_mode="stretch_width")
        self.select_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Select it and its neighbours", visible=False, sizing_mode="stretch_width"
        )
        self.unpin_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Unpin", visible=False, sizing_mode="stretch_width"
        )
        self.select_button.on_click(self._select_neighbours)
        self.unpin_button.on_click(lambda _: setattr(self.state, "pinned", None))
        self._panel = pn.Column(
            self.card,
            self.select_button,
            self.unpin_button,
            sizing_mode="stretch_width",
        )

    def point_view(self, row: int, heading: str) -> markup.PointView:
        """What the card shows about ``row``."""
        return markup.PointView(
            heading=f"{heading}: {self._res.cards.heading(row)}",
            record=self._res.cards.record(row),
            thumbnail=self._res.cards.thumbnail(row),
            text=self._res.cards.text(row),
        )

    @param.depends("state.hovered", "state.pinned", watch=True)
    def _update(self) -> None:
        pinned, hovered = self.state.pinned, self.state.hovered
        self.select_button.visible = self.unpin_button.visible = pinned is not None
        if hovered is not None and hovered != pinned:
            self.card.object = markup.point_card(self.point_view(hovered, "Hovered"))
        elif pinned is not None:
            idx, dist = self._res.neighbors(pinned)
            neighbours = [
                (self._res.cards.label_of(int(i)), self._res.cards.thumbnail(int(i)), float(d))
                for i, d in zip(idx, dist, strict=True)
            ]
            self.card.object = markup.point_card(self.point_view(pinned, "Pinned"), neighbours)
        else:
            self.card.object = markup.note(HINT)

    def _select_neighbours(self, _: Any) -> None:
        pinned = self.state.pinned
        if pinned is not None:
            self.state.select(self._res.neighbourhood(pinned), source="details")


PANE = PaneSpec(
    name="details", title="Point", region="aside",
    make=lambda res, state: DetailsPane(res, state=state),
)  # fmt: skip
