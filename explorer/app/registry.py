"""Every pane of the app, in the order the shell lays them out: one line per pane."""

from __future__ import annotations

from explorer.app.pane import PaneSpec
from explorer.app.panes import (
    controls,
    details,
    export,
    filters,
    find,
    intrinsic,
    outliers,
    scatter,
    selection,
    slices,
    treemap,
    trust,
)
from explorer.app.resources import StoreResources

PANES: tuple[PaneSpec, ...] = (
    controls.PANE,
    find.PANE,
    details.PANE,
    filters.PANE,
    export.PANE,
    scatter.PANE,
    scatter.SECOND_PANE,
    treemap.PANE,
    slices.PANE,
    outliers.PANE,
    intrinsic.PANE,
    trust.PANE,
    selection.PANE,
)


def available_panes(resources: StoreResources) -> list[PaneSpec]:
    """The registered panes whose store stages are present, in registry order."""
    return [spec for spec in PANES if spec.available(resources)]
