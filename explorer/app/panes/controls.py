"""Sidebar controls: layout, colour, selection mode, clear and invert."""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from panel.viewable import Viewer
from param.parameters import NoNone

from explorer.app import markup
from explorer.app.pane import PaneSpec
from explorer.app.resources import StoreResources
from explorer.app.state import SELECT_MODES, ExplorerState

DENSITY_LABEL = "point density"


class ControlsPane(Viewer):
    """What is drawn (layout, colour) and how the map's box and lasso combine selections."""

    state = param.ClassSelector(class_=ExplorerState, allow_None=NoNone, constant=True)

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._res = resources
        scores = set(resources.store.scores)
        options = {DENSITY_LABEL: ""}
        for name in self.state.param.color_by.objects:
            if name:
                options[f"{name} (score)" if name in scores else name] = name
        self.layout_select = pn.widgets.Select.from_param(
            self.state.param.layout, label="Layout", sizing_mode="stretch_width"
        )
        self.color_select = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="Colour by", options=options, value=self.state.color_by,
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.color_select.param.watch(self._on_color_widget, "value")
        self.mode = pn.widgets.RadioButtonGroup.from_param(
            self.state.param.select_mode, options=list(SELECT_MODES), sizing_mode="stretch_width"
        )
        self.clear_button = pn.widgets.Button(label="Clear", sizing_mode="stretch_width")  # type: ignore[no-untyped-call]
        self.invert_button = pn.widgets.Button(label="Invert", sizing_mode="stretch_width")  # type: ignore[no-untyped-call]
        self.clear_button.on_click(lambda _: self.state.clear_selection("controls"))
        self.invert_button.on_click(lambda _: self.state.invert_selection("controls"))
        self.count = markup.html_pane("", sizing_mode="stretch_width", margin=(0, 10))
        self.labels_switch = pn.widgets.Checkbox.from_param(  # type: ignore[no-untyped-call]
            self.state.param.show_labels, label="cluster names on the map",
            visible=resources.hierarchy.available,
        )  # fmt: skip
        self._on_selection()
        self._panel = pn.Column(
            self.layout_select,
            self.color_select,
            self.labels_switch,
            markup.html_pane(
                markup.note("Box / lasso on the map (toolbar, right):"), margin=(5, 10, 0, 10)
            ),
            self.mode,
            pn.Row(self.clear_button, self.invert_button, sizing_mode="stretch_width"),
            self.count,
            sizing_mode="stretch_width",
        )

    def _on_color_widget(self, event: param.parameterized.Event) -> None:
        self.state.color_by = event.new

    @param.depends("state.color_by", watch=True)
    def _on_color(self) -> None:
        self.color_select.value = self.state.color_by

    @param.depends("state.selection", "state.mask", watch=True)
    def _on_selection(self) -> None:
        n, total = self.state.n_selected, self.state.n_selectable
        self.count.object = markup.note(f"{n:,} of {total:,} points selected")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._panel


PANE = PaneSpec(
    name="controls", title="View", region="sidebar",
    make=lambda res, state: ControlsPane(res, state=state),
)  # fmt: skip
