"""The app driven from Python, as a notebook does: select, colour, read back, call back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp
from explorer.errors import InputError


def test_select_rows_reads_back_as_the_selection(app: ExplorerApp) -> None:
    assert app.select([5, 3, 3, 7]) == 3
    assert app.state.selection.tolist() == [3, 5, 7]
    assert app.state.selection_source == "python"
    assert app.selection["pid"].tolist() == ["p003", "p005", "p007"]


def test_select_mask_ids_and_modes(app: ExplorerApp, resources: StoreResources) -> None:
    label = resources.column("label")
    assert app.select(label == "b") == 200
    assert set(app.selection["label"]) == {"b"}
    assert app.select(ids=["p010", "p001"]) == 2
    assert app.state.selection.tolist() == [1, 10]
    assert app.select(ids=["p002"], mode="add") == 3
    assert app.select([1], mode="subtract") == 2
    assert app.selection["pid"].tolist() == ["p002", "p010"]


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((), {}, "exactly one"),
        (([1],), {"ids": ["p001"]}, "exactly one"),
        ((np.ones(5, bool),), {}, "shape (600,)"),
        (([0.5],), {}, "bool mask"),
        (([600],), {}, "outside 0..599"),
        ((), {"ids": ["nope", "p001"]}, "1 ids are not in column 'pid', e.g. 'nope'"),
    ],
)
def test_select_refuses_what_it_cannot_read(
    app: ExplorerApp, args: tuple[object, ...], kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        app.select(*args, **kwargs)  # type: ignore[arg-type]


def test_color_by_redraws_the_map(app: ExplorerApp) -> None:
    app.map.redraw()
    before = app.map.frames_drawn
    app.color_by = "size"
    assert app.state.color_by == "size"
    assert app.color_by == "size"
    assert app.map.frames_drawn > before
    assert app.map.last_result is not None
    assert app.map.last_result.request.color_by == "size"


def test_color_by_names_the_valid_columns(app: ExplorerApp) -> None:
    with pytest.raises(InputError, match=r"cannot colour by 'nope': choose one of .*'label'"):
        app.color_by = "nope"
    assert app.state.color_by == "label"


def test_on_select_calls_back_with_each_selection(app: ExplorerApp) -> None:
    seen: list[pd.DataFrame] = []
    stop = app.on_select(seen.append)
    app.select([4, 2])
    app.state.select([9], source="map")  # as a box on the map does
    assert [df["pid"].tolist() for df in seen] == [["p002", "p004"], ["p009"]]
    stop()
    app.select([1])
    assert len(seen) == 2
