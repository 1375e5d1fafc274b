"""A store without the slices stage: the Slices tab says why it is empty and how to get
slices, and lists a selection once one is saved (the other analytic tabs are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.datasets.synth import write_scale_store
from explorer.store.reader import Store


@pytest.fixture
def scale_app(tmp_path: Path) -> ExplorerApp:
    """The app over a small synthetic scale store (validate, umap, trust, partitions)."""
    out = tmp_path / "scale.store"
    write_scale_store(out, 2_000, seed=0, chunk=1_000, rows_per_part=600)
    return build_app(StoreResources(Store(out)))


def test_slices_tab_says_why_it_is_empty_and_how_to_fill_it(scale_app: ExplorerApp) -> None:
    # The tabs of the missing stages are absent; Slices stays, for saved selections.
    assert not {"treemap", "outliers", "intrinsic"} & set(scale_app.panes)
    pane = scale_app.pane("slices")
    assert pane.missing.visible
    note = str(pane.missing.object)
    for what in ("no slices", "explorer build", "--label", "--prediction", "saved"):
        assert what in note
    assert [p.visible for p in (pane.controls, pane.table, pane.help)] == [False] * 3
    assert pane.frame.empty

    scale_app.state.select(np.arange(20, 25))
    assert scale_app.pane("export").save("five rows")
    assert pane.table.visible
    assert pane.controls.visible
    assert pane.missing.visible  # still no slices: the note stays
    assert pane.frame["name"].tolist() == ["five rows"]
    scale_app.state.clear_selection()
    assert pane.click(0) == 5
    assert scale_app.state.selection.tolist() == list(range(20, 25))


def test_a_store_with_slices_shows_no_such_note(app: ExplorerApp) -> None:
    pane = app.pane("slices")
    assert not pane.missing.visible
    assert pane.table.visible
    assert pane.help.visible
    assert len(pane.frame) > 0
