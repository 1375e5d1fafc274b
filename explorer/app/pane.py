"""What a pane is: one module under ``explorer/app/panes`` that declares a ``PANE`` spec.

A pane is built from ``(resources, state)``: the process's shared read models and the
session's state. It reads both and writes only the state; it never imports another pane
(an import-linter contract checks that). The shell lays out every registered pane whose
store stages are present, in its region, in registry order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import panel as pn
import param
from panel.viewable import Viewer
from param.parameters import NoNone

from explorer.app.resources import StoreResources
from explorer.app.state import ExplorerState

# sidebar: the left column; map: the main view; aside: beside the map (the point card);
# tabs: the analytic tabs beside the map; below: under the map, full width.
Region = Literal["sidebar", "map", "aside", "tabs", "below"]


@dataclass(frozen=True)
class PaneSpec:
    """A pane's declaration: its name, title, region, needs, and how to build it."""

    name: str
    title: str
    region: Region
    make: Callable[[StoreResources, ExplorerState], Viewer]
    requires: tuple[str, ...] = ()  # store stages the pane needs
    needs: Callable[[StoreResources], bool] | None = None  # any other condition

    def available(self, resources: StoreResources) -> bool:
        """Whether the store has what this pane needs."""
        store = resources.store
        if not all(store.has_stage(stage) for stage in self.requires):
            return False
        return self.needs is None or bool(self.needs(resources))


class PaneBase(Viewer):
    """What every pane shares: the session's state, the process's resources, and its layout
    (``_panel``, built once in the pane's ``__init__``)."""

    state = param.ClassSelector(class_=ExplorerState, allow_None=NoNone, constant=True)
    _panel: pn.viewable.Viewable

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._res = resources

    def __panel__(self) -> pn.viewable.Viewable:
        return self._panel
