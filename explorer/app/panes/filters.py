"""Metadata filters: categories (multi-select) and numeric ranges restrict drawing and selecting.

Filters are added one column at a time ("Add a filter"), so a table with many columns
stays readable and only the columns used cost anything. Widgets write ``state.filters``;
``state.filters`` set elsewhere (a shared link) creates and updates the widgets.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import panel as pn
import param

from explorer.app import markup
from explorer.app.masks import WHERE_FILTER
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.resources import StoreResources

ADD_PROMPT = "Add a filter…"
MAX_OPTIONS = 2000  # categories offered in a filter (the most frequent ones)


def shown_as_text(labels: list[str]) -> dict[str, str]:
    """MultiChoice options ``{escaped label: label}``.

    Bokeh's MultiChoice (Choices.js, ``allowHTML``) renders option labels as HTML, so a
    category ``<img onerror=…>`` would run. Escaped labels are shown as their text, and
    the widget's value still holds the real labels (``html.escape`` is one-to-one).
    """
    return {html.escape(label): label for label in labels}


# Fixed, so a filter row (widget and its ✕) fits the sidebar instead of overflowing it.
WIDGET_WIDTH = 245


class FiltersPane(PaneBase):
    """One widget per filtered column; empty categories or a full range mean 'no filter'."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        self.columns = [
            *resources.names_of("categorical"),
            *resources.names_of("numeric"),
            *resources.store.scores,
        ]
        self.add_select = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="Filters", options=[ADD_PROMPT, *self.columns], sizing_mode="stretch_width"
        )
        self.add_select.param.watch(self._on_add, "value")
        self.widgets: dict[str, pn.widgets.Widget] = {}
        self._rows = pn.Column(sizing_mode="stretch_width")
        self._syncing = False
        self.summary = markup.html_pane("", sizing_mode="stretch_width", margin=(0, 10))
        self._panel = pn.Column(
            self.add_select, self._rows, self.summary, sizing_mode="stretch_width"
        )
        self._on_filters()

    def add_filter(self, column: str) -> pn.widgets.Widget:
        """Show a widget for ``column`` (no filtering until its value changes)."""
        if column in self.widgets:
            return self.widgets[column]
        if column == WHERE_FILTER:  # a SQL condition from the Find pane: shown, not edited
            widget: pn.widgets.Widget = pn.widgets.TextInput(  # type: ignore[no-untyped-call]
                label="SQL condition", value="", disabled=True, width=WIDGET_WIDTH
            )
        elif column in self._res.names_of("categorical"):
            labels = self._res.labels(column)
            counts = self._res.category_counts(column)
            top = np.argsort(-counts, kind="stable")[:MAX_OPTIONS]
            widget = pn.widgets.MultiChoice(  # type: ignore[no-untyped-call]
                label=column, options=shown_as_text([labels[i] for i in top]), value=[],
                placeholder="all values", width=WIDGET_WIDTH,
            )  # fmt: skip
            widget.param.watch(self._on_widget, "value")
        else:
            lo, hi = self._res.value_range(column)
            hi = hi if hi > lo else lo + 1.0
            widget = pn.widgets.EditableRangeSlider(  # type: ignore[no-untyped-call]
                label=column, start=lo, end=hi, value=(lo, hi), step=(hi - lo) / 200,
                width=WIDGET_WIDTH,
            )  # fmt: skip
            widget.param.watch(self._on_widget, "value_throttled")
        remove = pn.widgets.Button(label="✕", width=32, margin=(24, 5, 5, 0))  # type: ignore[no-untyped-call]
        remove.on_click(lambda _: self.remove_filter(column))
        self.widgets[column] = widget
        self._rows.append(pn.Row(widget, remove, sizing_mode="stretch_width"))
        return widget

    def remove_filter(self, column: str) -> None:
        """Drop ``column``'s widget and its filter."""
        widget = self.widgets.pop(column, None)
        if widget is None:
            return
        self._rows.objects = [r for r in self._rows.objects if r.objects[0] is not widget]
        self.state.set_filter(column, None)

    def _on_add(self, event: param.parameterized.Event) -> None:
        if event.new != ADD_PROMPT:
            self.add_filter(event.new)
            self.add_select.value = ADD_PROMPT

    def _on_widget(self, event: param.parameterized.Event) -> None:
        if self._syncing:
            return
        widget = event.obj
        column = next(c for c, w in self.widgets.items() if w is widget)
        if isinstance(widget, pn.widgets.MultiChoice):
            value: Any = list(event.new) or None
        else:
            lo, hi = (float(v) for v in event.new)
            full = lo <= widget.start and hi >= widget.end
            value = None if full else (lo, hi)
        self.state.set_filter(column, value)

    @param.depends("state.filters", "state.mask", watch=True)
    def _on_filters(self) -> None:
        self._syncing = True
        try:
            for column, value in self.state.filters.items():
                widget = self.add_filter(column)
                if column == WHERE_FILTER:
                    widget.value = str(value[0]) if value else ""
                elif isinstance(widget, pn.widgets.MultiChoice):
                    widget.value = [str(v) for v in value]
                else:
                    widget.value = (float(value[0]), float(value[1]))
        finally:
            self._syncing = False
        kept = self.state.n_selectable
        n = self.state.n_points
        text = f"{kept:,} of {n:,} points pass the filters" if self.state.filters else ""
        self.summary.object = markup.note(text) if text else ""


PANE = PaneSpec(
    name="filters", title="Filters", region="sidebar",
    make=lambda res, state: FiltersPane(res, state=state),
)  # fmt: skip
