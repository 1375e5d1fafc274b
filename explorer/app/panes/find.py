"""Find points: search their text or id, or write a SQL condition over the point table and
the stored scores; "points like this one" selects the pinned point's neighbours.

Both searches become selections through references (``search:TEXT``, ``regex:PATTERN``,
``where:CLAUSE``), so the URL carries them like every other selection; the SQL condition can
also become a filter (``filters={"sql:where": ["CLAUSE"]}``). A search with a single hit pins
that point and centres the map on it. Errors are one line under the box, never a traceback.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.masks import WHERE_FILTER
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import select_ref, where_rows
from explorer.app.resources import StoreResources
from explorer.errors import ExplorerError


class FindPane(PaneBase):
    """Search box, SQL box, and the pinned point's neighbours as a selection."""

    last_message = param.String(default="", doc="the last count or error shown (for tests)")

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self.search_input = pn.widgets.TextInput(  # type: ignore[no-untyped-call]
            label="Search text or id", placeholder="a word, a phrase or an id (Enter)",
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.regex = pn.widgets.Checkbox(label="regular expression", value=False)  # type: ignore[no-untyped-call]
        self.search_input.param.watch(lambda e: self.search(e.new or ""), "value")
        self.sql_input = pn.widgets.TextAreaInput(  # type: ignore[no-untyped-call]
            label="SQL condition", placeholder="label = '7' AND outlier > 0.3", height=64,
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.sql_select = pn.widgets.Button(label="Select", width=90)  # type: ignore[no-untyped-call]
        self.sql_filter = pn.widgets.Button(label="Filter", width=90)  # type: ignore[no-untyped-call]
        self.sql_select.on_click(self._on_select)
        self.sql_filter.on_click(lambda _: self.filter_where(self.sql_input.value or ""))
        self.like_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Points like the pinned one", disabled=True, sizing_mode="stretch_width"
        )
        self.like_button.on_click(self._on_like)
        self.message = markup.html_pane("", margin=(0, 10))
        self._panel = pn.Column(
            self.search_input,
            self.regex,
            self.like_button,
            self.sql_input,
            pn.Row(self.sql_select, self.sql_filter),
            self.message,
            sizing_mode="stretch_width",
        )

    # -- user input → state ------------------------------------------------------------
    def search(self, text: str) -> int:
        """Select the points whose text or id matches ``text``; return how many."""
        text = text.strip()
        if not text:
            return 0
        kind = "regex" if self.regex.value else "search"
        n = self._select(f"{kind}:{text}", "search")
        if n == 1:
            self.state.pin(int(self.state.selection[0]), centre=True)
        return n

    def where(self, clause: str) -> int:
        """Select the points where the SQL ``clause`` holds; return how many."""
        return self._select(f"where:{clause.strip()}", "sql") if clause.strip() else 0

    def filter_where(self, clause: str) -> None:
        """Keep only the points where the SQL ``clause`` holds (a filter, until removed)."""
        clause = clause.strip()
        try:
            where_rows(self._res, clause)  # checked here, so a bad clause never becomes a filter
        except ExplorerError as exc:
            self._say(f"Not applied: {exc}")
            return
        self.state.set_filter(WHERE_FILTER, [clause] if clause else None)
        self._say(f"Filter: {self.state.n_selectable:,} points where {clause}")

    def points_like_pinned(self) -> int:
        """Select the pinned point and its nearest neighbours in the data."""
        pinned = self.state.pinned
        if pinned is None:
            return 0
        self.state.select(self._res.neighbourhood(pinned), source="find")
        return self.state.n_selected

    def _on_select(self, _: object) -> None:
        self.where(self.sql_input.value or "")

    def _on_like(self, _: object) -> None:
        self.points_like_pinned()

    def _select(self, ref: str, origin: str) -> int:
        try:
            n = select_ref(self.state, self._res, ref, origin=origin)
        except (ExplorerError, ValueError) as exc:
            self._say(str(exc))
            return 0
        self._say(f"{n:,} matching points" + (" (selected)" if n else ""))
        return n

    def _say(self, text: str) -> None:
        self.last_message = text
        self.message.object = markup.note(text)

    @param.depends("state.pinned", watch=True)
    def _on_pinned(self) -> None:
        self.like_button.disabled = self.state.pinned is None


PANE = PaneSpec(
    name="find", title="Find", region="sidebar",
    make=lambda res, state: FindPane(res, state=state),
)  # fmt: skip
