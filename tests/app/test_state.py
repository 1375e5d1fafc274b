"""ExplorerState alone: selection modes, filters and masks, independence of two states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from explorer.app.state import ExplorerState

N = 100


def even_mask(filters: Mapping[str, Any]) -> np.ndarray | None:
    """A stand-in for the store: filter {'even': ...} keeps even rows."""
    if not filters:
        return None
    return np.arange(N) % 2 == 0


def make_state(**params: Any) -> ExplorerState:
    return ExplorerState(
        n_points=N,
        layouts=["umap", "largevis"],
        color_options=["label", "size"],
        mask_for=even_mask,
        **params,
    )


def test_defaults_and_choices() -> None:
    state = make_state()
    assert state.layout == "umap"
    assert state.color_by == ""
    assert state.param.color_by.objects == ["", "label", "size"]
    assert state.n_selected == 0
    assert state.mask is None
    with pytest.raises(ValueError):
        state.layout = "tsne"


def test_select_normalises_and_is_read_only() -> None:
    state = make_state()
    state.select([5, 3, 3, 9], source="test")
    assert state.selection.tolist() == [3, 5, 9]
    assert state.selection.dtype == np.int64
    assert state.selection_source == "test"
    with pytest.raises(ValueError):
        state.selection[0] = 1
    with pytest.raises(ValueError):
        state.select([N])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("replace", [3, 4, 5, 6]), ("add", [1, 2, 3, 4, 5, 6]), ("subtract", [1, 2])],
)
def test_modes(mode: str, expected: list[int]) -> None:
    state = make_state()
    state.select([1, 2, 3])
    state.select_mode = mode
    state.select([3, 4, 5, 6])
    assert state.selection.tolist() == expected
    # an explicit mode overrides the widget's
    state.select([7], mode="replace")
    assert state.selection.tolist() == [7]


def test_add_mode_keeps_union() -> None:
    state = make_state()
    state.select([1, 2, 3])
    state.select([3, 4], mode="add")
    assert state.selection.tolist() == [1, 2, 3, 4]


def test_clear_and_invert() -> None:
    state = make_state()
    state.select(np.arange(10))
    state.invert_selection()
    assert state.selection.tolist() == list(range(10, N))
    state.clear_selection()
    assert state.n_selected == 0


def test_filters_restrict_selection_and_invert() -> None:
    state = make_state()
    state.select([1, 2, 3, 4])
    state.pinned, state.hovered = 3, 4
    state.set_filter("even", ["yes"])
    assert state.mask is not None
    assert state.n_selectable == N // 2
    assert state.selection.tolist() == [2, 4]  # hidden rows leave the selection
    assert state.selection_source == "filters"
    assert state.pinned is None
    assert state.hovered == 4
    state.select([5, 6, 7])  # hidden rows cannot be selected
    assert state.selection.tolist() == [6]
    state.invert_selection()
    assert state.selection.tolist() == [i for i in range(0, N, 2) if i != 6]
    state.set_filter("even", None)
    assert state.mask is None
    assert state.filters == {}


def test_filters_given_at_construction_apply() -> None:
    state = make_state(filters={"even": ["yes"]})
    assert state.mask is not None
    assert state.n_selectable == N // 2


def test_saved_name_is_forgotten_on_change() -> None:
    state = make_state()
    state.select([1, 2], ref="saved:mine")
    assert state.selection_ref == "saved:mine"
    assert state.view()["selection_ref"] == "saved:mine"
    state.select([3], mode="add")
    assert state.selection_ref == ""


def test_two_states_are_independent() -> None:
    a, b = make_state(), make_state()
    a.select([1, 2])
    a.layout = "largevis"
    a.color_by = "label"
    a.set_filter("even", ["yes"])
    assert b.n_selected == 0
    assert b.layout == "umap"
    assert b.color_by == ""
    assert b.filters == {}
    assert b.mask is None
    b.param.layout.objects = ["umap"]
    assert a.param.layout.objects == ["umap", "largevis"]
