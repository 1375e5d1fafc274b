"""The app without a browser: panes follow the state, widgets write it, selections are exact."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

from explorer.app.frames import FrameRequest, draw_frame, min_alpha
from explorer.app.notebook import show
from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.render.raster import Viewport
from explorer.store.reader import Store
from tests.helpers import XSS

ID = "pid"


def reference_in_polygon(coords: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Brute-force even-odd ray casting in float64 over every edge."""
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    inside = np.zeros(x.size, bool)
    for i in range(len(px)):
        j = (i + 1) % len(px)
        xi, yi, xj, yj = float(px[i]), float(py[i]), float(px[j]), float(py[j])
        if yi == yj:
            continue
        crosses = (yi > y) != (yj > y)
        inside ^= crosses & (x < xi + (y - yi) * (xj - xi) / (yj - yi))
    return np.flatnonzero(inside)


def test_get_root_builds(app: ExplorerApp) -> None:
    root = pn.panel(app).get_root(Document(), comm=Comm())
    assert root is not None
    template = app.template()
    assert template.title.startswith("explorer")


def test_first_frame_is_drawn(app: ExplorerApp, resources: StoreResources) -> None:
    result = app.map.last_result
    assert result is not None
    assert result.uri.startswith("data:image/png;base64,")
    assert result.frame.n_in_view == resources.n_points
    assert app.state.color_by == "label"  # the label column is the default colour
    assert [e.label for e in result.frame.legend] == ["a", "b", "c"]


def test_box_selection_equals_brute_force(app: ExplorerApp, resources: StoreResources) -> None:
    coords = np.asarray(resources.store.layout(app.state.layout))
    x0, x1 = np.percentile(coords[:, 0], [20, 70])
    y0, y1 = np.percentile(coords[:, 1], [10, 80])
    app.map.select_geometry({"type": "rect", "x0": x1, "x1": x0, "y0": y0, "y1": y1})
    inside = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0)
    inside &= coords[:, 1] <= y1
    assert app.state.selection.tolist() == np.flatnonzero(inside).tolist()
    assert app.state.selection_source == "map"


@pytest.mark.parametrize("seed", range(6))
def test_lasso_equals_brute_force(app: ExplorerApp, resources: StoreResources, seed: int) -> None:
    rng = np.random.default_rng(seed)
    coords = np.asarray(resources.store.layout(app.state.layout))
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    m = int(rng.integers(3, 40))
    px = rng.uniform(lo[0], hi[0], m)
    py = rng.uniform(lo[1], hi[1], m)
    app.map.select_geometry({"type": "poly", "x": px, "y": py})
    assert app.state.selection.tolist() == reference_in_polygon(coords, px, py).tolist()


def test_filters_restrict_drawing_and_selecting(
    app: ExplorerApp, resources: StoreResources
) -> None:
    widget = app.pane("filters").add_filter("label")
    widget.value = ["b"]
    labels = resources.column("label")
    assert app.state.filters == {"label": ["b"]}
    assert app.state.n_selectable == int((labels == "b").sum())
    app.map.select_geometry({"type": "rect", "x0": -1e9, "x1": 1e9, "y0": -1e9, "y1": 1e9})
    assert set(labels[app.state.selection]) == {"b"}
    assert app.map.last_result is not None
    assert app.map.last_result.frame.n_in_view == int((labels == "b").sum())
    size = app.pane("filters").add_filter("size")
    with param.edit_constant(size):  # what releasing the slider does
        size.value_throttled = (0.0, 0.5)
    sizes = resources.column("size")
    assert app.state.n_selectable == int(((labels == "b") & (sizes <= 0.5)).sum())
    app.pane("filters").remove_filter("label")
    assert list(app.state.filters) == ["size"]
    # state -> widgets (as a shared link does)
    app.state.filters = {"prediction": ["a"]}
    assert app.pane("filters").widgets["prediction"].value == ["a"]


def test_panes_follow_the_selection(app: ExplorerApp) -> None:
    app.state.select(np.arange(50, 120))
    assert "70 of 600 points selected" in app.pane("controls").count.object
    assert app.pane("export").download.label == "Download 70 selected points"
    assert not app.pane("export").download.disabled
    assert "Selection: 70 points" in app.pane("selection").header.object
    assert "error rate" in app.pane("selection").header.object
    gallery = app.pane("selection").gallery
    assert len(gallery.rows) == 48
    assert len(gallery.images.data["url"]) == 48  # every tiny point has a thumbnail
    gallery.pick(3)  # a click on a thumbnail pins its point and centres the map on it
    assert app.state.pinned == gallery.rows[3] == app.state.centre
    app.pane("controls").clear_button.clicks += 1
    assert app.state.n_selected == 0
    assert app.pane("export").download.disabled
    app.pane("controls").invert_button.clicks += 1
    assert app.state.n_selected == 600


def test_widgets_write_the_state(app: ExplorerApp) -> None:
    app.pane("controls").color_select.value = "size"
    assert app.state.color_by == "size"
    assert app.map.figure.right[0].visible  # the colour bar
    app.state.color_by = "trust:umap"
    assert app.pane("controls").color_select.value == "trust:umap"
    app.pane("controls").color_select.value = ""
    assert app.state.color_by == ""
    app.pane("controls").mode.value = "add"
    assert app.state.select_mode == "add"


def test_pin_shows_neighbours(app: ExplorerApp, resources: StoreResources) -> None:
    app.state.pinned = 10
    idx, _ = resources.neighbors(10)
    assert 10 not in idx.tolist()
    assert idx.size > 0
    assert "nearest neighbours" in app.pane("details").card.object
    assert len(app.map._map.neighbours.data["x"]) == idx.size
    assert app.map.last_result is not None
    assert app.map.last_result.frame.n_highlight_in_view == idx.size + 1
    app.pane("details").select_button.clicks += 1
    assert app.state.selection.tolist() == sorted([10, *idx.tolist()])


def test_metadata_is_escaped(app: ExplorerApp, resources: StoreResources) -> None:
    rows = np.flatnonzero(resources.column("note") == XSS)
    assert rows.size
    app.state.hovered = int(rows[0])
    assert XSS not in app.pane("details").card.object
    assert "&lt;script&gt;" in app.pane("details").card.object
    app.state.select(rows)
    assert XSS not in app.pane("selection").stats.object


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_round_trip(app: ExplorerApp, resources: StoreResources, fmt: str) -> None:
    rows = np.arange(0, 600, 7)
    app.state.select(rows)
    app.pane("export").format.value = fmt
    app.pane("export").with_coords.value = True
    assert app.pane("export").download.filename == f"selection.{fmt}"
    data = app.pane("export").export_file()
    assert data is not None
    back = {
        "parquet": pd.read_parquet,
        "csv": pd.read_csv,
        "jsonl": lambda b: pd.read_json(b, lines=True),
    }[fmt](io.BytesIO(data.getvalue()))
    assert back[ID].astype(str).tolist() == resources.column(ID)[rows].tolist()
    assert f"{app.state.layout}_x" in back.columns
    assert app.selection[ID].tolist() == back[ID].astype(str).tolist()


def test_save_and_load(tiny_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "copy.store"
    shutil.copytree(tiny_store, store)
    res = StoreResources(Store(store))
    a, b = build_app(res), build_app(res)
    a.state.select([1, 2, 3])
    assert a.pane("export").save("bad/name") is None
    assert "invalid selection name" in a.pane("export").last_message
    assert a.pane("export").save("three points") == "three points"
    assert a.state.selection_ref == "saved:three points"
    b.state.select([4, 5])
    assert b.pane("export").save("two") == "two"
    assert res.store.selections() == ["three points", "two"]
    b.state.clear_selection()
    assert b.pane("export").load("three points")
    assert b.state.selection.tolist() == [1, 2, 3]
    assert b.state.selection_ref == "saved:three points"
    assert a.state.selection.tolist() == [1, 2, 3]


def test_saving_over_a_name_asks_first(tiny_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "copy.store"
    shutil.copytree(tiny_store, store)
    res = StoreResources(Store(store))
    a, b = build_app(res), build_app(res)
    a.state.select([1, 2, 3])
    assert a.pane("export").save("mine") == "mine"
    b.state.select([7])
    b.pane("export").name_input.value = "mine"
    b.pane("export").save_button.clicks += 1  # first press: refused, with a question
    assert "press Save again" in b.pane("export").last_message
    assert res.store.selection("mine").tolist() == [1, 2, 3]
    b.pane("export").save_button.clicks += 1  # second press with the same name: replaces
    assert res.store.selection("mine").tolist() == [7]


def test_frames_reuse_masks(resources: StoreResources) -> None:
    mask = resources.mask({"label": ["a"]})
    assert mask is resources.mask({"label": ["a"]})  # identity: the render caches by it
    req = FrameRequest("umap", *resources.extent("umap"), 64, 48, color_by="size", mask=mask)
    result = draw_frame(resources, req)
    assert result.frame.rgba.shape == (48, 64)
    assert result.frame.n_in_view == int(mask.sum())
    assert min_alpha(10, Viewport(0, 1, 0, 1, 100, 100)) > min_alpha(
        10**6, Viewport(0, 1, 0, 1, 100, 100)
    )


def test_show_returns_app_with_selection(tiny_store: Path) -> None:
    app = show(str(tiny_store))
    app.state.select([0, 5])
    assert app.selection[ID].tolist() == ["p000", "p005"]


def test_markup_escapes_every_label() -> None:
    from explorer.app import markup

    html = markup.legend([(XSS, "#ff0000", 3), ("ok", "javascript:alert(1)", 1)], XSS)
    assert "<script>" not in html
    assert "javascript:" not in html  # colours must look like #rrggbb
    card = markup.point_card(markup.PointView(XSS, {XSS: XSS}, "data:x onerror=alert(1)", XSS))
    assert "<script>" not in card
    assert "onerror" not in card  # a thumbnail that is not a base64 PNG is dropped


def test_default_origins() -> None:
    from explorer.app.server import default_origins

    assert default_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert len(default_origins("0.0.0.0", 80)) >= 3


def test_filter_dropdown_shows_hostile_labels_as_text(hostile_store: Path) -> None:
    from explorer.app.panes.filters import FiltersPane
    from explorer.app.state import ExplorerState
    from tests.helpers import HOSTILE_LABELS

    res = StoreResources(Store(hostile_store))
    state = ExplorerState(
        n_points=res.n_points, layouts=res.store.layouts, color_options=res.color_options,
        mask_for=res.mask,
    )  # fmt: skip
    pane = FiltersPane(res, state=state)
    state.filters = {"label": [HOSTILE_LABELS[0]]}
    widget = pane.widgets["label"]
    model = widget.get_root(Document(), comm=Comm())
    # Choices.js renders labels as HTML: the browser must get them escaped...
    shown = [o if isinstance(o, str) else o[1] for o in model.options]
    assert not any("<" in label or '"' in label for label in shown)
    assert all("&lt;" in label for label in shown if label != "ok")
    assert not any("<" in v for v in model.value)
    # ...while the state still holds (and filters by) the real labels.
    assert widget.value == [HOSTILE_LABELS[0]]
    assert state.n_selectable == int((res.column("label") == HOSTILE_LABELS[0]).sum())


def test_error_rate_agrees_with_the_slice_table(hostile_store: Path) -> None:
    res = StoreResources(Store(hostile_store))
    app = build_app(res)
    codes, loss = res.store.errors()
    assert loss is None
    assert set(np.unique(codes)) == {-1, 0, 1}  # missing predictions are unknown
    slices = res.store.slices()
    scored = slices[slices["n_scored"] < slices["size"]].head(5)
    assert len(scored) > 0  # slices holding unknown points
    for _, row in scored.iterrows():
        app.state.select(res.store.slice_members(str(row["name"])))
        rate, overall = app.pane("selection").error_rates() or (np.nan, np.nan)
        assert rate == pytest.approx(row["error_rate"])
        assert overall == pytest.approx(row["error_rate"] / row["lift"])


def test_app_csv_export_neutralises_formulas(hostile_store: Path) -> None:
    from tests.helpers import HOSTILE_COLUMN

    app = build_app(StoreResources(Store(hostile_store)))
    app.state.select(np.arange(app.state.n_points))
    app.pane("export").format.value = "csv"
    table = pd.read_csv(io.BytesIO(app.pane("export").export_bytes()), dtype=str)
    values = set(table[HOSTILE_COLUMN])
    assert "'=1+1" in values
    assert "=1+1" not in values


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_large_exports_in_a_process_equal_the_thread(resources: StoreResources, fmt: str) -> None:
    from explorer.app.exporter import export_bytes

    rows = np.arange(0, 600, 3, dtype=np.int64)
    here = export_bytes(resources.store, rows, fmt, layouts=("umap",), min_rows=10**9)
    there = export_bytes(resources.store, rows, fmt, layouts=("umap",), min_rows=0)
    assert there == here
