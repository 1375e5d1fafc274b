"""The view survives a trip through the URL; bad links are reported, not fatal."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import numpy as np

from explorer.app.shell import ExplorerApp, build_app
from explorer.app.state import ExplorerState
from explorer.app.urlstate import bind_location, parse_view, query_string, view_query


@dataclass
class FakeLocation:
    """What bind_location needs of panel's Location: a writable ``search``."""

    search: str = ""


def as_query(search: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(search.lstrip("?"), keep_blank_values=True)


def test_round_trip(app: ExplorerApp) -> None:
    state = app.state
    state.param.update(layout="umap", color_by="size")
    state.filters = {"label": ["a", "c"], "size": (0.25, 0.75)}
    state.select([1, 2], ref="saved:my pick")
    search = query_string(view_query(state))
    assert search.startswith("?")
    other = ExplorerState(
        n_points=state.n_points,
        layouts=state.param.layout.objects,
        color_options=state.param.color_by.objects,
    )
    updates, problems = parse_view(as_query(search), other)
    assert problems == []
    assert updates == {
        "layout": "umap",
        "color_by": "size",
        "filters": {"label": ["a", "c"], "size": (0.25, 0.75)},
        "selection_ref": "saved:my pick",
    }


def test_density_colour_round_trips(app: ExplorerApp) -> None:
    app.state.color_by = ""
    updates, _ = parse_view(as_query(query_string(view_query(app.state))), app.state)
    assert updates["color_by"] == ""


def test_bad_links_are_reported(app: ExplorerApp) -> None:
    query = as_query("?layout=tsne&color_by=%3Cscript%3E&filters=%7Bnot%20json&selection=x")
    updates, problems = parse_view(query, app.state)
    assert updates == {"selection_ref": "saved:x"}
    assert len(problems) == 3
    updates, problems = parse_view({"filters": ['{"size": [1, 0], "label": {"a": 1}}']}, app.state)
    assert "filters" not in updates
    assert len(problems) == 2


def test_bind_location_applies_and_mirrors(app: ExplorerApp) -> None:
    location = FakeLocation('?color_by=prediction&filters={"label":["b"]}&selection=saved-one')
    loaded: list[str] = []

    def select(ref: str) -> int:
        loaded.append(ref)
        return 0

    problems: list[str] = []
    bind_location(app.state, location, on_problem=problems.append, select=select)
    assert app.state.color_by == "prediction"
    assert app.state.filters == {"label": ["b"]}
    assert app.state.mask is not None
    assert int(app.state.mask.sum()) == 200
    assert loaded == ["saved:saved-one"]
    assert problems == []
    app.state.color_by = "size"
    assert as_query(location.search)["color_by"] == ["size"]
    assert as_query(location.search)["filters"] == ['{"label":["b"]}']


def test_unknown_filter_column_is_skipped(resources: object) -> None:
    app = build_app(resources)  # type: ignore[arg-type]
    location = FakeLocation('?filters={"nope":["x"]}')
    problems: list[str] = []
    bind_location(app.state, location, on_problem=problems.append)
    assert app.state.filters == {}
    assert app.state.mask is None
    assert problems
    assert "nope" in problems[0]
    app.state.select(np.arange(5))
    assert app.state.n_selected == 5
