"""The analytic panes on a Dask cluster: every answer equals the in-process one, and the web
process reads no per-point array (no score, column, point table or mask of all points).

The digits store over the session's 2-worker LocalCluster, in partitions of 300 rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.app.cluster import ClusterMask, ClusterPoints
from explorer.app.models.scores import top_rows
from explorer.app.refs import range_ref, select_ref, where_rows
from explorer.app.resources import StoreResources
from explorer.app.shell import build_app
from explorer.app.state import ExplorerState
from explorer.errors import QueryError
from explorer.store.reader import Store

FILTERS = {"label": ["3", "5", "8"], "confidence": (0.5, 1.0)}


@pytest.fixture(scope="module")
def plain(digits_store: Path) -> StoreResources:
    return StoreResources(Store(digits_store))


@pytest.fixture(scope="module")
def points(dask_client: Any, digits_store: Path) -> ClusterPoints:
    res = StoreResources(Store(digits_store))
    return ClusterPoints(res.store, dask_client, res.columns, rows_per_partition=300)


@pytest.fixture
def on_cluster(points: ClusterPoints) -> StoreResources:
    """A fresh StoreResources (nothing cached) over the cluster's points."""
    res = StoreResources(points.store)
    res.attach_cluster(points)
    return res


def _rows(res: StoreResources) -> np.ndarray:
    return np.arange(3, res.n_points, 7, dtype=np.int64)


def test_top_rows_order() -> None:
    v = np.array([0.5, np.nan, 0.9, 0.5, 0.9, 0.1], np.float32)
    np.testing.assert_array_equal(top_rows(v, 3), [2, 4, 0])  # ties: lower row first
    np.testing.assert_array_equal(top_rows(v, 9), [2, 4, 0, 3, 5])  # NaN never
    np.testing.assert_array_equal(top_rows(v[:0], 3), np.zeros(0, np.int64))


def test_score_answers_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    rows = _rows(plain)
    a, b = plain.scores, on_cluster.scores
    for name in plain.store.scores:
        ha, hb = a.histogram(name), b.histogram(name)
        np.testing.assert_array_equal(ha.edges, hb.edges)
        np.testing.assert_array_equal(ha.counts, hb.counts)
        assert hb.bins is None  # no per-point bin numbers in the web process
        for sel in (rows, rows[:5], rows[:0]):
            np.testing.assert_array_equal(
                a.selected_counts(name, sel), b.selected_counts(name, sel)
            )
        for count in (1, 24, plain.n_points + 5):
            np.testing.assert_array_equal(a.top(name, count), b.top(name, count))
        top = a.top(name, 24)
        np.testing.assert_array_equal(a.values_at(name, top), b.values_at(name, top))
        assert a.quantile(name, 0.99) == b.quantile(name, 0.99)
        assert a.median(name, rows) == b.median(name, rows)
        sa, sb = a.share_below(name, 0.3), b.share_below(name, 0.3)
        assert sa is not None
        assert sb is not None
        assert sb[0] == pytest.approx(sa[0], rel=1e-12)
        assert sb[1] == sa[1]
        lo, hi = (
            float(np.nanpercentile(plain.values(name), 20)),
            float(np.nanmax(plain.values(name))),
        )
        found = plain.rows_in_range(name, lo, hi)
        assert 0 < found.size < plain.n_points
        np.testing.assert_array_equal(on_cluster.rows_in_range(name, lo, hi), found)
        np.testing.assert_array_equal(on_cluster.rows_below(name, lo), plain.rows_below(name, lo))


def test_row_details_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    on_cluster.cards.fetch_points(_rows(plain)[:20])
    for row in (0, 1, 17, plain.n_points - 1, *_rows(plain)[:20].tolist()):
        assert on_cluster.cards.record(row) == plain.cards.record(row)
        assert on_cluster.cards.heading(row) == plain.cards.heading(row)
        assert on_cluster.cards.text(row) == plain.cards.text(row)
        assert on_cluster.cards.label_of(row) == plain.cards.label_of(row)


def test_hierarchy_on_cluster_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    a, b = plain.hierarchy, on_cluster.hierarchy
    assert a.available
    rows = _rows(plain)
    np.testing.assert_array_equal(b.selected_counts(rows), a.selected_counts(rows))
    for layout in plain.store.layouts:
        coords = np.asarray(plain.store.layout(layout))
        ca = a.centres(coords, layout)
        cb = b.centres(np.zeros((0, 2), np.float32), layout)  # coords unread on a cluster
        np.testing.assert_allclose(cb, ca, rtol=1e-9, atol=1e-9)
    view = plain.extent("umap")
    np.testing.assert_array_equal(
        b._shown_counts(on_cluster.mask(FILTERS)), a._shown_counts(plain.mask(FILTERS))
    )
    got = b.labels_in_view(np.zeros((0, 2)), "umap", view, shown=on_cluster.mask(FILTERS))
    want = a.labels_in_view(plain.store.layout("umap"), "umap", view, shown=plain.mask(FILTERS))
    assert [n for _, _, n in got] == [n for _, _, n in want]
    np.testing.assert_allclose([(x, y) for x, y, _ in got], [(x, y) for x, y, _ in want])


def test_cluster_mask_answers(plain: StoreResources, on_cluster: StoreResources) -> None:
    want = plain.mask(FILTERS)
    mask = on_cluster.mask(FILTERS)
    assert isinstance(mask, ClusterMask)
    assert want is not None
    assert mask.count == int(want.sum())
    rows = _rows(plain)
    np.testing.assert_array_equal(mask.kept(rows), want[rows])
    np.testing.assert_array_equal(mask.kept(rows[:0]), np.zeros(0, bool))
    np.testing.assert_array_equal(mask.kept_except(rows), np.flatnonzero(want & ~np.isin(
        np.arange(plain.n_points), rows)))  # fmt: skip
    np.testing.assert_array_equal(np.asarray(mask), want)
    # Dropped from the workers' cache (17 other filters since): made again when asked.
    for i in range(17):
        on_cluster.mask({"confidence": (0.0, 0.05 * (i + 1))})
    np.testing.assert_array_equal(mask.kept(rows), want[rows])


def test_state_with_a_cluster_mask(plain: StoreResources, on_cluster: StoreResources) -> None:
    states = [
        ExplorerState(n_points=r.n_points, mask_for=r.mask, layouts=["umap"])
        for r in (plain, on_cluster)
    ]
    rows = _rows(plain)
    for state in states:
        state.select(rows)
        state.pin(int(rows[0]))
        state.filters = dict(FILTERS)
    a, b = states
    assert isinstance(b.mask, ClusterMask)
    np.testing.assert_array_equal(b.selection, a.selection)
    assert (b.pinned, b.n_selectable) == (a.pinned, a.n_selectable)
    for state in states:
        state.select(rows[: rows.size // 2], mode="add")
    np.testing.assert_array_equal(b.selection, a.selection)
    for state in states:
        state.invert_selection()
    np.testing.assert_array_equal(b.selection, a.selection)
    assert b.selection.size > 0


def test_panes_on_cluster_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    apps = [build_app(plain), build_app(on_cluster)]
    for app in apps:
        app.state.set_filter("label", ["3", "5", "8"])
    a, b = (app.pane("outliers") for app in apps)
    np.testing.assert_array_equal(b.top_rows, a.top_rows)
    assert b.threshold.value == a.threshold.value
    assert dict(b.gallery.captions.data) == dict(a.gallery.captions.data)
    assert dict(b.gallery.images.data) == dict(a.gallery.images.data)
    assert b.select_above(a.threshold.value) == a.select_above(a.threshold.value)
    np.testing.assert_array_equal(apps[1].state.selection, apps[0].state.selection)
    assert apps[1].state.selection_ref == apps[0].state.selection_ref
    ta, tb = (app.pane("trust") for app in apps)
    assert tb.summary.object == ta.summary.object
    ia, ib = (app.pane("intrinsic") for app in apps)
    assert ib.medians.object == ia.medians.object
    assert ib.select_range(2.0, 6.0) == ia.select_range(2.0, 6.0)
    np.testing.assert_array_equal(apps[1].state.selection, apps[0].state.selection)
    fa, fb = (app.pane("filters") for app in apps)
    assert fb.summary.object == fa.summary.object
    for app in apps:
        app.state.flag_low_trust = True
    ma, mb = (app.map for app in apps)
    np.testing.assert_array_equal(mb._low_trust(), ma._low_trust())
    n = select_ref(apps[1].state, on_cluster, range_ref("confidence", 0.2, 0.7), origin="t")
    assert n == select_ref(apps[0].state, plain, range_ref("confidence", 0.2, 0.7), origin="t")
    np.testing.assert_array_equal(apps[1].state.selection, apps[0].state.selection)


class _NoFullRead:
    """Stands in for a memory-mapped per-point array: a few rows may be read, never all."""

    def __init__(self, array: Any, n: int, what: str) -> None:
        self._array, self._n, self._what = array, n, what
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, key: Any) -> Any:
        out = self._array[key]
        if np.ndim(out) and len(out) >= self._n:
            msg = f"the web process read all of {self._what}"
            raise AssertionError(msg)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        msg = f"the web process read all of {self._what}"
        raise AssertionError(msg)


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, points: ClusterPoints) -> StoreResources:
    """StoreResources over the cluster whose store hands out guarded arrays only (the
    workers, other processes, still read theirs), and no point table or column."""
    n = points.n_points
    real_score, real_array, real_layout = Store.score, Store.array, Store.layout

    def fail(what: str) -> Any:
        def refuse(*_: Any, **__: Any) -> Any:
            msg = f"the web process read {what}"
            raise AssertionError(msg)

        return refuse

    monkeypatch.setattr(Store, "score", lambda s, name: _NoFullRead(real_score(s, name), n, name))
    monkeypatch.setattr(Store, "layout", lambda s, name: _NoFullRead(real_layout(s, name), n, name))
    monkeypatch.setattr(
        Store, "array", lambda s, stage, stem: _NoFullRead(real_array(s, stage, stem), n, stem)
    )
    monkeypatch.setattr(Store, "error_values", fail("the per-point errors"))
    monkeypatch.setattr(StoreResources, "table", property(fail("the point table")))
    monkeypatch.setattr(StoreResources, "column_data", fail("a whole column"))
    monkeypatch.setattr(ClusterMask, "to_array", fail("a whole mask"))
    res = StoreResources(points.store)
    res.attach_cluster(points)
    return res


def test_web_process_holds_no_per_point_array(guarded: StoreResources) -> None:
    """A session with a filter, every analytic pane, a selection, hover and a pinned point:
    only row ids, counts and single rows reach the web process."""
    with pytest.raises(AssertionError, match="read all of outlier"):
        np.asarray(guarded.store.score("outlier"))  # the guard itself works
    app = build_app(guarded)
    app.state.set_filter("label", ["3", "5", "8"])
    assert isinstance(app.state.mask, ClusterMask)
    for name in ("outliers", "trust", "intrinsic", "selection", "filters"):
        assert app.pane(name) is not None
    app.pane("outliers").select_above(app.pane("outliers").threshold.value)
    app.pane("intrinsic").select_range(2.0, 8.0)
    app.state.flag_low_trust = True
    app.state.invert_selection()
    row = int(app.state.selection[0])
    app.state.hovered = row
    guarded.cards.record(row)
    guarded.false_neighbours("umap", row, guarded.neighbors(row)[0])  # the guard would raise
    app.pane("find").search("3")
    app.pane("find").filter_where("confidence < 0.7")
    assert isinstance(app.state.mask, ClusterMask)
    app.pane("selection")._summaries()
    app.map.redraw()


def test_find_on_cluster_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    """Search, regex, SQL and ids run per partition on the workers: the same rows."""
    for text, regex in (("3", False), ("^1[0-9]$", True), ("zzz-none", False)):
        np.testing.assert_array_equal(
            on_cluster.search(text, regex=regex), plain.search(text, regex=regex)
        )
    assert plain.search("3").size > 0
    for clause in ("label = '3' OR confidence < 0.6", "outlier > 0.2 AND split = 'test'"):
        want = where_rows(plain, clause)
        assert want.size > 0
        np.testing.assert_array_equal(where_rows(on_cluster, clause), want)
    with pytest.raises(QueryError):
        where_rows(on_cluster, "no_such_column = 1")
    with pytest.raises(QueryError):
        on_cluster.search("(", regex=True)
    ids = [plain.cards.label_of(r) for r in (5, 0, 1700, 5)]
    np.testing.assert_array_equal(on_cluster.rows_of_ids(ids), [5, 0, 1700, 5])
    np.testing.assert_array_equal(on_cluster.rows_of_ids(["nope"]), plain.rows_of_ids(["nope"]))
    apps = [build_app(plain), build_app(on_cluster)]
    for app in apps:
        app.pane("find").search("3")
        app.pane("find").filter_where("confidence < 0.7")
    a, b = apps
    assert b.pane("find").last_message == a.pane("find").last_message
    assert b.state.n_selectable == a.state.n_selectable
    np.testing.assert_array_equal(b.state.selection, a.state.selection)


def test_false_neighbours_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    """A pinned point's strangers on the map: its nearest on the map come from the workers."""
    for layout in plain.store.layouts:
        for row in (0, 17, 900, plain.n_points - 1):
            true = plain.neighbors(row)[0]
            want = plain.false_neighbours(layout, row, true)
            np.testing.assert_array_equal(on_cluster.false_neighbours(layout, row, true), want)


@pytest.mark.parametrize("n_points", [40, 100_000])  # flags, and merged sorted runs
def test_add_and_subtract_selections(n_points: int) -> None:
    rng = np.random.default_rng(1)
    state = ExplorerState(n_points=n_points)
    want = np.zeros(n_points, bool)
    for mode in ("replace", "add", "subtract", "add", "add", "subtract"):
        rows = np.unique(rng.integers(0, n_points, 30))
        state.select(rows, mode=mode)
        if mode == "replace":
            want[:] = False
        want[rows] = mode != "subtract"
        np.testing.assert_array_equal(state.selection, np.flatnonzero(want))
