"""Sidebar controls: layout, colour, selection mode, clear and invert."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.resources import StoreResources
from explorer.app.state import SELECT_MODES

DENSITY_LABEL = "point density"


class ControlsPane(PaneBase):
    """What is drawn (layout, colour) and how the map's box and lasso combine selections."""

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
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
        self.split_switch = pn.widgets.Checkbox.from_param(  # type: ignore[no-untyped-call]
            self.state.param.split, label="split view: a second map, same selection"
        )
        self.layout2_select = pn.widgets.Select.from_param(  # type: ignore[no-untyped-call]
            self.state.param.layout2, label="Second map's layout", sizing_mode="stretch_width",
            visible=self.state.split,
        )  # fmt: skip
        self.color2_select = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="Second map's colour", options=options, value=self.state.color_by2,
            sizing_mode="stretch_width", visible=self.state.split,
        )  # fmt: skip
        self.color2_select.param.watch(self._on_color2_widget, "value")
        self.labels_switch = pn.widgets.Checkbox.from_param(  # type: ignore[no-untyped-call]
            self.state.param.show_labels, label="cluster names on the map",
            visible=resources.hierarchy.available,
        )  # fmt: skip
        self._on_selection()
        self._panel = pn.Column(
            self.layout_select,
            self.color_select,
            self.labels_switch,
            self.split_switch,
            self.layout2_select,
            self.color2_select,
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

    def _on_color2_widget(self, event: param.parameterized.Event) -> None:
        self.state.color_by2 = event.new

    @param.depends("state.split", "state.color_by2", watch=True)
    def _on_split(self) -> None:
        self.layout2_select.visible = self.color2_select.visible = self.state.split
        self.color2_select.value = self.state.color_by2

    @param.depends("state.color_by", watch=True)
    def _on_color(self) -> None:
        self.color_select.value = self.state.color_by

    @param.depends("state.selection", "state.mask", watch=True)
    def _on_selection(self) -> None:
        n, total = self.state.n_selected, self.state.n_selectable
        self.count.object = markup.note(f"{n:,} of {total:,} points selected")


PANE = PaneSpec(
    name="controls", title="View", region="sidebar",
    make=lambda res, state: ControlsPane(res, state=state),
)  # fmt: skip
