"""The analytic panes, driven through their own methods: every selection is exact."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.app.refs import parse_ref, range_ref
from explorer.app.registry import PANES, available_panes
from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.app.urlstate import parse_view, query_string, view_query
from explorer.render.colors import CategoricalColor
from explorer.render.hittest import false_neighbours
from explorer.store.reader import Store
from tests.app.test_urlstate import FakeLocation, as_query


def test_registry_builds_every_pane_the_store_feeds(app: ExplorerApp) -> None:
    names = [spec.name for spec in PANES]
    assert len(names) == len(set(names))
    assert set(app.panes) == {spec.name for spec in available_panes(app.resources)}
    for name in ("treemap", "slices", "outliers", "intrinsic", "trust", "selection", "map"):
        assert name in app.panes


def test_treemap_click_selects_exactly_the_node(
    app: ExplorerApp, resources: StoreResources
) -> None:
    tree = app.pane("treemap")
    store = resources.store
    node = tree.shown[0]
    tree.click(node)
    assert app.state.selection.tolist() == store.node_members(node).tolist()
    assert app.state.selection_ref == f"node:{node}"
    # It had children: the treemap drilled into it and shows them.
    kids = resources.hierarchy.children(node).tolist()
    assert kids
    assert app.state.focus_node == node
    assert tree.shown == kids
    # The band on each cell is the selected share: all of every child is selected.
    cells = tree.cells.data
    for bottom, top, band in zip(cells["bottom"], cells["top"], cells["band_top"], strict=True):
        assert band == pytest.approx(top) or top == bottom
    tree.click(kids[0])
    assert app.state.selection.tolist() == store.node_members(kids[0]).tolist()
    tree.go_up(0)  # the breadcrumb's root: back to the top, nothing selected
    assert app.state.focus_node is None
    assert app.state.n_selected == 0
    assert tree.shown == resources.hierarchy.children(0).tolist()


def test_treemap_outlines_error_hot_spots(app: ExplorerApp, resources: StoreResources) -> None:
    tree = app.pane("treemap")
    nodes = resources.hierarchy.nodes
    rate = nodes["error_rate"].to_numpy()
    hot = tree.hot(np.arange(len(nodes)))
    # Label "b" is planted with 30% wrong predictions against ~2% elsewhere.
    assert hot.any()
    assert (rate[hot] >= 1.5 * rate[0]).all()
    widths = dict(zip(tree.cells.data["node"], tree.cells.data["width"], strict=True))
    for node, width in widths.items():
        assert (width > 1) == bool(hot[node])


def test_slice_row_selects_exactly_the_slice(app: ExplorerApp, resources: StoreResources) -> None:
    pane = app.pane("slices")
    assert len(pane.frame) == len(resources.store.slices())
    for index in (0, 1, len(pane.frame) - 1):
        name = pane.frame["name"].iloc[index]
        n = pane.click(index)
        assert app.state.selection.tolist() == resources.store.slice_members(name).tolist()
        assert n == app.state.n_selected
        assert app.state.selection_ref == f"slice:{name}"
    pane.kind_filter.value = ["metadata"]
    assert set(pane.frame["kind"]) == {"metadata"}


def test_saved_selections_are_listed_and_selectable(tiny_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.store"
    shutil.copytree(tiny_store, copy)  # saving writes into the store: not the shared one
    app = build_app(StoreResources(Store(copy)))
    app.state.select(np.arange(10, 17))
    assert app.pane("export").save("seven rows")
    pane = app.pane("slices")
    saved = pane.frame.index[pane.frame["kind"] == "saved"].tolist()
    assert saved
    app.state.clear_selection()
    pane.click(saved[0])
    assert app.state.selection.tolist() == list(range(10, 17))
    assert app.state.selection_ref == "saved:seven rows"


def test_id_brush_selects_exactly_the_points_in_range(
    app: ExplorerApp, resources: StoreResources
) -> None:
    lid = np.asarray(resources.store.score("lid"))
    lo, hi = np.percentile(lid, [30, 60])
    n = app.pane("intrinsic").select_range(float(lo), float(hi))
    expected = np.flatnonzero((lid >= lo) & (lid <= hi))
    assert app.state.selection.tolist() == expected.tolist()
    assert n == expected.size
    medians = app.pane("intrinsic").medians.object
    assert f"{np.median(lid[expected]):.2f}" in medians


def test_outlier_threshold_selects_exactly_the_points_above(
    app: ExplorerApp, resources: StoreResources
) -> None:
    score = np.asarray(resources.store.score("outlier"))
    threshold = float(np.quantile(score, 0.9))
    app.pane("outliers").select_above(threshold)
    assert app.state.selection.tolist() == np.flatnonzero(score >= threshold).tolist()
    assert app.pane("outliers").histogram.threshold.location == pytest.approx(threshold)


def test_outlier_gallery_pins_and_centres(app: ExplorerApp, resources: StoreResources) -> None:
    pane = app.pane("outliers")
    score = np.asarray(resources.store.score("outlier"))
    top = pane.gallery.rows
    assert score[top[0]] == score.max()
    assert score[top].tolist() == sorted(score[top].tolist(), reverse=True)
    pane.gallery.pick(0)
    assert app.state.pinned == top[0] == app.state.centre
    x, y = resources.store.layout(app.state.layout)[top[0]]
    x0, x1, y0, y1 = app.map._view
    assert x0 < x < x1
    assert y0 < y < y1
    assert "Magnitude of all points" in pane.magnitude.object


def test_trust_pane_and_low_trust_highlight(app: ExplorerApp, resources: StoreResources) -> None:
    trust = np.asarray(resources.store.score(f"trust:{app.state.layout}"))
    mean, low = app.pane("trust").stats()
    assert mean == pytest.approx(trust.mean(), rel=1e-5)
    assert low == pytest.approx(np.mean(trust < app.state.trust_threshold))
    app.state.flag_low_trust = True
    frame = app.map.last_result.frame
    assert frame.n_highlight_in_view == int(np.sum(trust < app.state.trust_threshold))
    app.state.trust_threshold = 0.0
    assert app.map.last_result.frame.n_highlight_in_view == 0


def test_pinned_point_shows_false_neighbours(app: ExplorerApp, resources: StoreResources) -> None:
    row = 7
    app.state.pin(row)
    true, _ = resources.neighbors(row)
    false = false_neighbours(resources.store.layout(app.state.layout), row, true)
    assert not np.isin(false, true).any()
    coords = np.asarray(resources.store.layout(app.state.layout), np.float64)
    d = np.hypot(*(coords - coords[row]).T)
    d[row] = np.inf
    nearest = np.argsort(d, kind="stable")[: true.size]
    assert sorted(false.tolist()) == sorted(set(nearest.tolist()) - set(true.tolist()))
    assert len(app.map._map.false_neighbours.data["x"]) == false.size
    card = app.pane("details").card.object
    for label in ("layout trust (umap)", "local ID", "outlier score"):
        assert label in card


@pytest.fixture
def named_tree(app: ExplorerApp, resources: StoreResources) -> Iterator[None]:
    """The tiny store's clusters, given names (its random labels name none of them)."""
    tree = resources.hierarchy
    stored = tree.nodes["name"].copy()
    tree.nodes["name"] = ["all"] + [f"cluster {n}" for n in range(1, tree.n_nodes)]
    tree.__dict__.pop("_named", None)
    app.map._update_labels()
    yield
    tree.nodes["name"] = stored
    tree.__dict__.pop("_named", None)
    app.map._update_labels()


def test_unnamed_clusters_get_no_name_on_the_map(
    app: ExplorerApp, resources: StoreResources
) -> None:
    tree = resources.hierarchy
    # Nothing in the tiny store's random labels sets a cluster apart: the build stores
    # "node <id>", which the treemap shows as "mixed" and the map leaves out.
    assert all(tree.nodes["name"].iloc[n] == f"node {n}" for n in range(1, tree.n_nodes))
    assert tree.name(1) == "mixed · #1"
    assert app.map._map.labels.data["text"] == []


def test_cluster_labels_follow_the_zoom(
    app: ExplorerApp, resources: StoreResources, named_tree: None
) -> None:
    labels = app.map._map.labels.data
    tree = resources.hierarchy
    assert len(labels["text"]) == tree.children(0).size  # zoomed out: the top clusters
    node = int(tree.children(0)[0])
    coords = np.asarray(resources.store.layout("umap"))
    members = coords[tree.members(node)]
    (xa, ya), (xb, yb) = members.min(axis=0), members.max(axis=0)
    found = tree.labels_in_view(coords, "umap", (float(xa), float(xb), float(ya), float(yb)))
    # Zoomed in on one top cluster: the names are those of finer clusters (depth 2).
    finer = {tree.name(int(n)) for n in np.flatnonzero(tree.depth == 2)}
    assert len(found) > 1
    assert {name for _, _, name in found} <= finer
    app.state.filters = {"label": ["a"]}  # a cluster with no point left shows no name
    kept = app.state.mask
    named = set(app.map._map.labels.data["text"])
    assert named
    for n in range(1, tree.n_nodes):
        if tree.name(n) in named and tree.depth[n] == 1:
            assert kept[tree.members(n)].any()
    empty = [n for n in range(1, tree.n_nodes) if not kept[tree.members(n)].any()]
    assert empty
    assert not named & {tree.name(n) for n in empty} - {
        tree.name(n) for n in range(1, tree.n_nodes) if n not in empty
    }
    app.state.show_labels = False
    assert app.map._map.labels.data["text"] == []


def test_links_open_what_was_selected(app: ExplorerApp, resources: StoreResources) -> None:
    slices = resources.store.slices()
    name = slices["name"].iloc[0]
    for ref in (f"slice:{name}", "node:1", range_ref("lid", 5.0, 7.5)):
        app.select_ref(ref)
        expected = app.state.selection.copy()
        query = view_query(app.state)
        kind = parse_ref(ref).kind
        assert kind in query or (kind == "saved" and "selection" in query)
        other = app.__class__(resources)
        other.location = FakeLocation(query_string(query))
        from explorer.app.urlstate import bind_location

        bind_location(other.state, other.location, select=other.select_ref)
        assert other.state.selection.tolist() == expected.tolist()
        assert other.state.selection_ref == ref


def test_bad_link_keeps_what_is_valid(app: ExplorerApp) -> None:
    from explorer.app.urlstate import bind_location

    search = (
        '?layout=nope&color_by=size&filters={"label":["b"],"nope":["x"]}'
        "&slice=no%20such%20slice&focus_node=1&flag_low_trust=maybe"
    )
    problems: list[str] = []
    bind_location(app.state, FakeLocation(search), on_problem=problems.append,
                  select=app.select_ref)  # fmt: skip
    assert app.state.color_by == "size"
    assert app.state.filters == {"label": ["b"]}  # the good filter survives the bad one
    assert app.state.focus_node == 1
    text = " ".join(problems)
    for part in ("nope", "no such slice", "flag_low_trust"):
        assert part in text
    assert len(problems) == 4
    updates, _ = parse_view(as_query("?node=abc"), app.state)
    assert "selection_ref" not in updates


@pytest.fixture(scope="module")
def text_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny vectors as a text store with titles and no labels or predictions."""
    from explorer.ingest.dataset import InputSpec
    from explorer.pipeline.runner import build_store
    from tests.helpers import TINY_CONFIG, tiny_data, write_vectors_parquet

    vectors, meta = tiny_data()
    topics = {"a": "apples", "b": "boats", "c": "clouds"}
    text = pd.DataFrame({
        "pid": meta["pid"],
        "title": [f"On {topics[v]} #{i}" for i, v in enumerate(meta["label"])],
        "body": [f"a long text about {topics[v]} and more, number {i}"
                 for i, v in enumerate(meta["label"])],
    })  # fmt: skip
    folder = tmp_path_factory.mktemp("text")
    path = write_vectors_parquet(folder / "text.parquet", vectors, text)
    out = folder / "text.store"
    build_store(InputSpec(path=path, id="pid", text_col="body"), out, TINY_CONFIG,
                show_progress=False)  # fmt: skip
    return out


def test_store_without_labels_opens_with_what_it_has(text_store: Path) -> None:
    resources = StoreResources(Store(text_store))
    app = build_app(resources)
    assert {"treemap", "slices", "outliers", "intrinsic", "trust", "selection"} <= set(app.panes)
    pane = app.pane("slices")
    assert "cluster" in set(pane.frame["kind"])
    assert pane.click(0) == app.state.n_selected > 0
    tree = app.pane("treemap")
    assert "error rate" not in tree.color_choice.options  # nothing to show without labels
    assert any(s.startswith("“a long text about") for s in tree.cells.data["snippet"])
    # The card leads with the title, and neither the title nor the text is said twice.
    app.state.pin(4)
    card = app.pane("details").card.object
    assert "Pinned: On apples #4" in card
    assert card.count("On apples #4") == 1
    assert card.count("a long text about apples and more, number 4") == 1


def test_selection_modes_apply_to_every_pane(app: ExplorerApp, resources: StoreResources) -> None:
    tree = app.pane("treemap")
    a, b = tree.shown[0], tree.shown[1]
    tree.click(a)
    tree.go_up(0)
    app.state.select_mode = "add"
    tree.click(a)
    tree.click(b)
    both = np.union1d(resources.hierarchy.members(a), resources.hierarchy.members(b))
    assert app.state.selection.tolist() == both.tolist()
    assert app.state.selection_ref == ""  # a combination is no single named thing
    app.state.select_mode = "subtract"
    app.pane("slices").click(0)
    name = app.pane("slices").frame["name"].iloc[0]
    expected = np.setdiff1d(both, resources.store.slice_members(name))
    assert app.state.selection.tolist() == expected.tolist()


def test_deep_zoom_draws_the_points_themselves(app: ExplorerApp, resources: StoreResources) -> None:
    coords = np.asarray(resources.store.layout(app.state.layout))
    assert app.map.last_result.pictures is None  # 600 points in view: dots
    x, y = coords[5]
    app.map._view = (float(x) - 0.3, float(x) + 0.3, float(y) - 0.3, float(y) + 0.3)
    app.map.redraw()
    result = app.map.last_result
    x0, x1, y0, y1 = app.map._view
    inside = np.flatnonzero(
        (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
    )
    assert 0 < result.frame.n_in_view <= 400
    assert result.pictures is not None
    assert result.pictures.rows.tolist() == inside.tolist()
    assert len(app.map._map.pictures.data["url"]) == inside.size  # every tiny point has one
    assert all(u.startswith("data:image/png;base64,") for u in app.map._map.pictures.data["url"])
    # Each thumbnail is framed in its point's colour on the map; a selection dims the rest.
    color = resources.color(app.map.color_by)
    if isinstance(color, CategoricalColor):
        slots = np.asarray(color.slot_of_code)[np.asarray(color.codes)[inside]]
        assert result.pictures.colors == [color.colors[s] for s in slots]
    assert set(result.pictures.alphas) == {1.0}
    app.state.select(inside[:1], source="test")
    app.map.redraw()
    alphas = app.map.last_result.pictures.alphas
    assert alphas[0] == 1.0
    assert all(a < 1.0 for a in alphas[1:])
    assert app.map._map.pictures.data["alpha"] == alphas


def test_split_view_shares_the_selection(app: ExplorerApp, resources: StoreResources) -> None:
    assert not app.map2.shown
    assert app.map2.frames_drawn == 0  # hidden: not drawn until shown
    app.state.param.update(split=True, color_by2="size")
    assert app.map2.shown
    assert app.map2.color_by == "size"
    assert app.map2.last_result.request.color_by == "size"
    coords = np.asarray(resources.store.layout(app.map.layout))
    x0, x1 = np.percentile(coords[:, 0], [10, 60])
    y0, y1 = np.percentile(coords[:, 1], [10, 60])
    app.map.select_geometry({"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": y1})
    n = app.state.n_selected
    assert n > 0
    assert app.map2.last_result.frame.n_highlight_in_view == n
    query = view_query(app.state)
    assert query["split"] == "1"
    assert query["color_by2"] == "size"
    app.state.split = False
    assert "color_by2" not in view_query(app.state)


def test_selection_magnitude_exact_at_once_estimated_on_demand(
    app: ExplorerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import explorer.app.panes.outliers as outliers_module

    pane = app.pane("outliers")
    app.state.select(np.arange(50))
    assert "of the selection: " in pane.magnitude.object
    assert not pane.estimate_button.visible
    monkeypatch.setattr(outliers_module, "SELECTION_EXACT_LIMIT", 100)
    app.state.select(np.arange(300))  # "large": asked for, not computed on every click
    assert pane.estimate_button.visible
    assert "of the selection" not in pane.magnitude.object
    pane.estimate_selection_magnitude()
    assert "of the selection: " in pane.magnitude.object


def test_the_browser_view_report_draws_that_view(app: ExplorerApp) -> None:
    # The browser reports its view in one message the moment a zoom or pan moves it.
    x0, x1, y0, y1 = app.map._view
    half = ((x0 + x1) / 2, x1, (y0 + y1) / 2, y1)
    drawn = app.map.frames_drawn
    app.map._map.seen.data = {"x0": [half[0]], "x1": [half[1]], "y0": [half[2]], "y1": [half[3]]}
    req = app.map.last_result.request
    assert (req.x0, req.x1, req.y0, req.y1) == half
    assert app.map.frames_drawn == drawn + 1
    # Bokeh's own report of the same view, when the interaction pauses, draws nothing more.
    from bokeh import events

    x0, x1, y0, y1 = half
    app.map._on_ranges_update(events.RangesUpdate(app.map.figure, x0=x0, x1=x1, y0=y0, y1=y1))
    assert app.map.frames_drawn == drawn + 1
    app.map._map.seen.data = {"x0": [1.0], "x1": [0.0], "y0": [0.0], "y1": [1.0]}  # inverted
    assert app.map.frames_drawn == drawn + 1
