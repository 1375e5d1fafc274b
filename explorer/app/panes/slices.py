"""The slice table: every stored slice and saved selection, ranked, filterable, clickable.

Rows are the store's ranking (failure evidence first: the error rate's confidence bound,
then lift, then size). Clicking a row selects exactly that slice's members, and the URL
records it (``?slice=NAME``), so a link reopens the slice.

A store written without the ``slices`` stage (a synthetic scale store, say) keeps the tab,
unlike the other analytic panes, whose tab is absent without their stage: saved selections
are listed here whatever the store holds. The tab says why there are no slices and how to
get them, and shows the table once a selection is saved.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from explorer.app import markup
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import select_ref
from explorer.app.resources import StoreResources

PAGE_SIZE = 14
TITLES = {
    "kind": "kind", "name": "name", "description": "description", "size": "size",
    "error_rate": "error rate", "lift": "lift", "lower_bound": "bound", "related": "related",
}  # fmt: skip
HELP = (
    "Ranked causes first: by 'bound' (a lower confidence bound of the error rate, corrected "
    "for the number of slices tried, so a small slice needs strong evidence), with a slice "
    "that lies mostly inside a broader, not clearly worse one listed after it ('related' "
    "says which). Lift = error rate / overall."
)
NO_SLICES = (
    "This store has no slices: it was written without the 'slices' stage (as a synthetic "
    "scale store is). 'explorer build' computes them: cluster slices always, metadata "
    "slices from the point table's other columns (--slice-ignore COL leaves one out), "
    "failure slices when --label COL and --prediction COL (or --loss COL) name the true "
    "label and the model's output. Selections saved under 'Export & save' are listed here."
)


class SlicesPane(PaneBase):
    """A sortable table of slices; a click selects the slice."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self._model = resources.slices
        kinds = self._model.kinds()
        self.kind_filter = pn.widgets.CheckButtonGroup(  # type: ignore[no-untyped-call]
            options=kinds, value=list(kinds), color="light", height=30
        )
        self.kind_filter.param.watch(lambda _: self.refresh(), "value")
        self.refresh_button = pn.widgets.Button(label="↻", width=40, height=30)  # type: ignore[no-untyped-call]
        self.refresh_button.on_click(lambda _: self.refresh())
        self.frame = pd.DataFrame()
        self.table = pn.widgets.Tabulator(  # type: ignore[no-untyped-call]
            pd.DataFrame(), disabled=True, selectable=1, show_index=False, pagination="local",
            page_size=PAGE_SIZE, sizing_mode="stretch_both", min_height=250, titles=TITLES,
            formatters={
                # Long names wrap (Tabulator's textarea formatter escapes HTML, like plaintext).
                "name": {"type": "textarea"},
                "related": {"type": "textarea"},
                "error_rate": NumberFormatter(format="0.0%"),
                "lower_bound": NumberFormatter(format="0.0%"),
                "lift": NumberFormatter(format="0.00"),
                "size": NumberFormatter(format="0,0"),
            },
            # Beside the map the tab is ~400 px: a narrower wrapped name leaves size and error
            # rate in sight, and frozen it stays in sight while the rest scrolls sideways.
            layout="fit_data_table", widths={"name": 200, "description": 220, "related": 200},
            frozen_columns=["name"],
        )  # fmt: skip
        self.table.param.watch(self._on_row, "selection")
        self.help = markup.html_pane(markup.note(HELP), margin=(0, 10))
        self.missing = markup.html_pane(
            markup.note(NO_SLICES), margin=(0, 10), visible=not self._model.available
        )
        self.controls = pn.Row(self.kind_filter, self.refresh_button, sizing_mode="stretch_width")
        self._panel = pn.Column(
            self.missing, self.controls, self.table, self.help, sizing_mode="stretch_both"
        )
        self.refresh()

    def refresh(self) -> None:
        """Re-read the slices (saved selections may have changed) under the kind filter."""
        self._model.forget_saved()
        table = self._model.table()
        chosen = set(self.kind_filter.value or [])
        kinds = self._model.kinds()
        new_kinds = set(kinds) - set(self.kind_filter.options)
        if new_kinds:  # e.g. the first saved selection: show it
            chosen |= new_kinds
            self.kind_filter.param.update(options=kinds, value=sorted(chosen))
        self.frame = table[table["kind"].isin(chosen)].reset_index(drop=True)
        self.table.value = self.frame
        self.table.selection = []
        # Without the stage and before any selection is saved there is no table to show.
        shown = self._model.available or not table.empty
        self.controls.visible = self.table.visible = shown
        self.help.visible = self._model.available  # the ranking it explains is the stage's

    def ref_of(self, index: int) -> str:
        """The selection reference of row ``index`` of the shown table."""
        row = self.frame.iloc[index]
        kind = "saved" if row["kind"] == "saved" else "slice"
        return f"{kind}:{row['name']}"

    def click(self, index: int) -> int:
        """Select the slice in row ``index``; return its size."""
        return select_ref(self.state, self._res, self.ref_of(index), origin="slices")

    def _on_row(self, event: param.parameterized.Event) -> None:
        if event.new and len(self.frame) > int(event.new[0]):
            self.click(int(event.new[0]))

    @param.depends("state.selection_ref", watch=True)
    def _on_ref(self) -> None:
        ref = self.state.selection_ref
        if ref.startswith("saved:") and ref[6:] not in set(self.frame.get("name", [])):
            self.refresh()  # just saved: list it


PANE = PaneSpec(
    name="slices", title="Slices", region="tabs",
    make=lambda res, state: SlicesPane(res, state=state),
)  # fmt: skip
