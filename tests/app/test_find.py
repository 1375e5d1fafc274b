"""The Find pane: search and SQL conditions select exact rows; bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.app.masks import WHERE_FILTER
from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.app.urlstate import bind_location, query_string, view_query
from tests.app.test_urlstate import FakeLocation


def test_search_selects_exactly_the_matches(app: ExplorerApp, resources: StoreResources) -> None:
    find = app.pane("find")
    notes = resources.column("note")
    n = find.search("POINT 12")  # case-insensitive substring of the text column
    expected = [i for i, t in enumerate(notes) if "point 12" in str(t).lower()]
    assert app.state.selection.tolist() == expected
    assert n == len(expected)
    assert f"{n:,} matching points" in find.last_message
    assert app.state.selection_ref == "search:POINT 12"


def test_a_single_hit_is_pinned_and_centred(app: ExplorerApp) -> None:
    find = app.pane("find")
    assert find.search("p123") == 1  # an id
    assert app.state.pinned == 123 == app.state.centre


def test_regex_and_bad_regex(app: ExplorerApp, resources: StoreResources) -> None:
    find = app.pane("find")
    find.regex.value = True
    n = find.search("^point 5[0-9]$")
    assert app.state.selection.tolist() == [i for i in range(50, 60) if i != 50]  # 50: XSS
    assert n == 9
    assert find.search("point (") == 0
    assert "\n" not in find.last_message
    assert find.last_message


def test_sql_condition_selects_exactly(app: ExplorerApp, resources: StoreResources) -> None:
    find = app.pane("find")
    label = resources.column("label")
    outlier = np.asarray(resources.store.score("outlier"))
    n = find.where("label = 'b' AND outlier > 0.2")
    expected = np.flatnonzero((label == "b") & (outlier > np.float32(0.2)))
    assert app.state.selection.tolist() == expected.tolist()
    assert n == expected.size
    assert app.state.selection_ref == "where:label = 'b' AND outlier > 0.2"


@pytest.mark.parametrize(
    "clause",
    ["label = ", "1=1; DROP TABLE points", "1=1) UNION SELECT 1 --",
     "size > (SELECT 1 FROM read_csv('/etc/passwd'))"],
)  # fmt: skip
def test_bad_or_hostile_sql_is_one_line(app: ExplorerApp, clause: str) -> None:
    app.state.select([1, 2, 3])
    find = app.pane("find")
    assert find.where(clause) == 0
    assert find.last_message
    assert "\n" not in find.last_message
    assert app.state.selection.tolist() == [1, 2, 3]  # nothing changed


def test_sql_filter_and_links(app: ExplorerApp, resources: StoreResources) -> None:
    find = app.pane("find")
    find.filter_where("size < 0.5")
    size = resources.column("size")
    assert app.state.filters == {WHERE_FILTER: ["size < 0.5"]}
    assert app.state.mask.tolist() == (size < 0.5).tolist()
    assert app.pane("filters").widgets[WHERE_FILTER].value == "size < 0.5"
    find.where("label = 'a'")
    query = query_string(view_query(app.state))
    other = build_app(resources)
    bind_location(other.state, FakeLocation(query), select=other.select_ref)
    assert other.state.filters == app.state.filters
    assert other.state.selection.tolist() == app.state.selection.tolist()
    find.filter_where("nope nope")
    assert "Not applied" in find.last_message
    assert app.state.filters == {WHERE_FILTER: ["size < 0.5"]}


def test_points_like_the_pinned_one(app: ExplorerApp, resources: StoreResources) -> None:
    find = app.pane("find")
    assert find.like_button.disabled
    app.state.pin(9)
    assert not find.like_button.disabled
    find.points_like_pinned()
    idx, _ = resources.neighbors(9)
    assert app.state.selection.tolist() == sorted({9, *idx.tolist()})
