"""Serving on a Dask cluster (``explorer serve --dask``): every answer equals the in-process
one. The digits store over a 2-worker LocalCluster, split into partitions of 300 rows so
frames combine several partitions and zoomed views skip some."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bokeh.events import MouseMove

from explorer.app.cluster import ClusterError, ClusterMask, ClusterPoints, connect
from explorer.app.frames import FrameRequest, draw_frame
from explorer.app.models.scores import bin_numbers
from explorer.app.resources import StoreResources
from explorer.app.shell import build_app
from explorer.errors import ConfigError
from explorer.render.raster import NumericColor
from explorer.store.export import table_bytes
from explorer.store.reader import Store


@pytest.fixture(scope="module")
def plain(digits_store: Path) -> StoreResources:
    """The in-process path: the reference every cluster answer must equal."""
    return StoreResources(Store(digits_store))


@pytest.fixture(scope="module")
def on_cluster(dask_client: Any, digits_store: Path) -> StoreResources:
    """The same store with its points on the cluster."""
    res = StoreResources(Store(digits_store))
    points = ClusterPoints(res.store, dask_client, res.columns, rows_per_partition=300)
    res.attach_cluster(points)
    return res


def _views(res: StoreResources) -> list[tuple[float, float, float, float]]:
    """The whole extent, and a quarter-width view whose left half holds filtered points
    (so every comparison below compares something, whatever the layout looks like)."""
    x0, x1, y0, y1 = res.extent("umap")
    w, h = x1 - x0, y1 - y0
    kept = np.flatnonzero(np.asarray(res.mask({"label": ["3", "5", "8"]})))
    cx, cy = np.median(np.asarray(res.store.layout("umap"))[kept], axis=0)
    return [(x0, x1, y0, y1), (cx - 0.05 * w, cx + 0.2 * w, cy - 0.1 * h, cy + 0.1 * h)]


def _mask(res: StoreResources) -> Any:
    return res.mask({"label": ["3", "5", "8"], "confidence": (0.5, 1.0)})


def test_partitions_and_skipping(on_cluster: StoreResources) -> None:
    points = on_cluster.cluster
    assert points is not None
    lp = points.layouts["umap"]
    assert len(lp.parts) == 6  # 1,797 rows in partitions of 300
    assert lp.bounds.shape == (6, 4)
    x0, x1, y0, y1 = _views(on_cluster)[1]
    # Row ranges of a UMAP layout are spread over the map, but bounds still skip some.
    assert lp.touching(x0, x1, y0, y1) == [
        i
        for i, b in enumerate(lp.bounds)
        if b[0] <= x1 and b[1] >= x0 and b[2] <= y1 and b[3] >= y0
    ]


def test_frame_is_a_task_per_worker_thread_where_its_partitions_are(
    plain: StoreResources, on_cluster: StoreResources, dask_client: Any
) -> None:
    """A frame's partitions are aggregated where they are held, in one task per worker
    thread (not three per partition): nothing but the partial aggregates moves."""
    from distributed import get_task_stream

    points = on_cluster.cluster
    assert points is not None
    x0, x1, y0, y1 = plain.extent("umap")
    req = FrameRequest("umap", x0, x1, y0, y1, 300, 200, color_by="label")
    draw_frame(on_cluster, req)  # warm: the colouring's counts are asked for once
    with get_task_stream(dask_client) as stream:
        frame = draw_frame(on_cluster, req).frame
    np.testing.assert_array_equal(frame.rgba, draw_frame(plain, req).frame.rgba)
    ran = [t for t in stream.data if "_aggregate_parts" in str(t["key"])]
    threads = sum(dask_client.nthreads().values())
    assert 1 <= len(ran) <= threads
    holders = dask_client.who_has(points.layouts["umap"].futures)
    workers = {w for held in holders.values() for w in held}
    assert {t["worker"] for t in ran} == workers  # a task on each worker holding parts
    # Their inputs (the partitions, the mask) were already on their worker.
    assert not [s for t in ran for s in t["startstops"] if s["action"] == "transfer"]


def test_statistics_are_a_task_per_worker_thread(
    plain: StoreResources, on_cluster: StoreResources, dask_client: Any
) -> None:
    """A pane's statistic and a box select over every partition are a task per worker
    thread too (not one per partition), each where its partitions are, and equal to the
    in-process answers."""
    from distributed import get_task_stream

    points = on_cluster.cluster
    assert points is not None
    rows = np.arange(0, plain.n_points, 3, dtype=np.int64)
    edges = np.linspace(0.0, 1.0, 11)
    points.histogram("confidence", rows, edges)  # warm: the rows are sent once
    with get_task_stream(dask_client) as stream:
        counts = points.histogram("confidence", rows, edges)
    bins = bin_numbers(np.asarray(plain.values("confidence"))[rows], edges)
    want = np.bincount(bins[bins >= 0], minlength=edges.size - 1)
    np.testing.assert_array_equal(counts, want)
    ran = [t for t in stream.data if "per_part" in str(t["key"])]
    assert 1 <= len(ran) <= sum(dask_client.nthreads().values())
    assert not [s for t in ran for s in t["startstops"] if s["action"] == "transfer"]
    # A box select over the whole map (every partition, with a filter) the same way.
    box = plain.extent("umap")
    mask_a, mask_b = _mask(plain), _mask(on_cluster)
    on_cluster.points_in_box("umap", box, mask=mask_b)  # warm: the filter is made once
    with get_task_stream(dask_client) as stream:
        got = on_cluster.points_in_box("umap", box, mask=mask_b)[0]
    np.testing.assert_array_equal(got, plain.points_in_box("umap", box, mask=mask_a)[0])
    ran = [t for t in stream.data if "per_part" in str(t["key"])]
    assert 1 <= len(ran) <= sum(dask_client.nthreads().values())


def test_extent_and_candidates_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    for layout in plain.store.layouts:
        assert on_cluster.extent(layout) == plain.extent(layout)
    points = on_cluster.cluster
    assert points is not None
    for x0, x1, y0, y1 in _views(plain):
        req = FrameRequest("umap", x0, x1, y0, y1, 300, 200)
        vp = req.viewport()
        assert points.candidates("umap", vp) == plain.index("umap").candidates(vp)


@pytest.mark.parametrize("color_by", ["", "label", "confidence", "outlier"])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("highlighted", [False, True], ids=["plain", "highlight"])
def test_frames_pixel_equal(
    plain: StoreResources, on_cluster: StoreResources, color_by: str, filtered: bool,
    highlighted: bool,
) -> None:  # fmt: skip
    highlight = np.arange(0, plain.n_points, 7, dtype=np.int64) if highlighted else None
    for x0, x1, y0, y1 in _views(plain):
        frames = []
        for res in (plain, on_cluster):
            req = FrameRequest(
                "umap", x0, x1, y0, y1, 240, 160, color_by=color_by,
                mask=_mask(res) if filtered else None, highlight=highlight,
            )  # fmt: skip
            frames.append(draw_frame(res, req).frame)
        a, b = frames
        assert a.n_in_view > 0
        np.testing.assert_array_equal(a.rgba, b.rgba)
        assert (a.n_in_view, a.n_highlight_in_view, a.span, a.spread) == (
            b.n_in_view, b.n_highlight_in_view, b.span, b.spread,
        )  # fmt: skip
        assert a.legend == b.legend


def test_masks_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    for filters in (
        {"label": ["3"]},
        {"confidence": (0.2, 0.8)},
        {"label": ["3", "5", "8"], "confidence": (0.5, 1.0)},
        {"trust:umap": (0.0, 0.5), "split": ["test"]},
    ):
        np.testing.assert_array_equal(on_cluster.mask(filters), plain.mask(filters))
    mask = _mask(on_cluster)
    assert mask is _mask(on_cluster)  # the same filters: the same (cached) object
    assert isinstance(mask, ClusterMask)  # its flags stay on the workers
    assert mask.count == int(np.count_nonzero(_mask(plain)))
    with pytest.raises(ConfigError, match="no such column"):
        on_cluster.mask({"nope": ["x"]})


def test_masks_made_in_the_server_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    """A SQL filter (DuckDB, in the server) and any other (n,) bool mask reach the workers
    as one bit a point: frames and selections with them equal the in-process ones."""
    sql = {"sql:where": ["label = '3' OR confidence < 0.6"]}
    np.testing.assert_array_equal(on_cluster.mask(sql), plain.mask(sql))
    other = np.asarray(plain.values("ink") > plain.median("ink"))
    x0, x1, y0, y1 = _views(plain)[0]
    for mask_a, mask_b in ((plain.mask(sql), on_cluster.mask(sql)), (other, other.copy())):
        req_a = FrameRequest("umap", x0, x1, y0, y1, 200, 150, color_by="label", mask=mask_a)
        req_b = FrameRequest("umap", x0, x1, y0, y1, 200, 150, color_by="label", mask=mask_b)
        np.testing.assert_array_equal(
            draw_frame(on_cluster, req_b).frame.rgba, draw_frame(plain, req_a).frame.rgba
        )
        box = (x0, x1, y0, (y0 + y1) / 2)
        np.testing.assert_array_equal(
            on_cluster.points_in_box("umap", box, mask=mask_b)[0],
            plain.points_in_box("umap", box, mask=mask_a)[0],
        )


def test_selections_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    for x0, x1, y0, y1 in _views(plain):
        box = (x0, (x0 + x1) / 2, y1, y0)  # edges in either order, as dragged
        for mask in (None, "filtered"):
            ma = _mask(plain) if mask else None
            mb = _mask(on_cluster) if mask else None
            rows_a, xy_a = plain.points_in_box("umap", box, mask=ma)
            rows_b, xy_b = on_cluster.points_in_box("umap", box, mask=mb)
            np.testing.assert_array_equal(rows_a, rows_b)
            np.testing.assert_array_equal(xy_a, xy_b)
            assert rows_a.size > 0
            px = np.array([x0, x1, (x0 + x1) / 2, x0 + 0.1 * (x1 - x0)])
            py = np.array([y0, y0 + 0.2 * (y1 - y0), y1, y0 + 0.8 * (y1 - y0)])
            lasso = plain.points_in_lasso("umap", px, py, mask=ma)
            assert lasso.size > 0
            np.testing.assert_array_equal(
                on_cluster.points_in_lasso("umap", px, py, mask=mb), lasso
            )
    rng = np.random.default_rng(0)
    for layout in plain.store.layouts:
        x0, x1, y0, y1 = plain.extent(layout)
        for x, y in zip(rng.uniform(x0, x1, 20), rng.uniform(y0, y1, 20), strict=True):
            for radius in (0.01, 0.2):
                found = plain.nearest(layout, x, y, radius)
                assert on_cluster.nearest(layout, x, y, radius) == found


def test_statistics_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    rows = np.flatnonzero(plain.values("confidence") < 0.9).astype(np.int64)
    for column in plain.names_of("categorical"):
        np.testing.assert_array_equal(
            on_cluster.category_counts(column), plain.category_counts(column)
        )
        assert on_cluster.labels(column) == plain.labels(column)
        np.testing.assert_array_equal(
            on_cluster.selected_counts(column, rows), plain.selected_counts(column, rows)
        )
    names = [*plain.names_of("numeric"), *plain.store.scores]
    assert on_cluster.medians(names) == plain.medians(names)
    for sel in (rows, rows[:2], rows[:1], rows[:0]):
        a, b = plain.selected_medians(names, sel), on_cluster.selected_medians(names, sel)
        np.testing.assert_array_equal(a, b)  # NaN equals NaN here (an empty selection)
    for name in ("confidence", "loss", "outlier", "trust:umap"):
        assert on_cluster.value_range(name) == plain.value_range(name)
        color_a, color_b = plain.color(name), on_cluster.color(name)
        assert isinstance(color_a, NumericColor)
        assert isinstance(color_b, NumericColor)
        assert (color_a.span, color_a.reduction) == (color_b.span, color_b.reduction)
    assert on_cluster.error_rate(rows) == plain.error_rate(rows)
    assert on_cluster.error_rate(None) == plain.error_rate(None)


def test_exports_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    rows = np.flatnonzero(plain.mask({"label": ["7"]})).astype(np.int64)
    layouts = tuple(plain.store.layouts)
    a = plain.subset(rows, layouts=layouts)
    b = on_cluster.subset(rows, layouts=layouts)
    assert len(b) == rows.size
    assert a.equals(b)
    for fmt in ("csv", "jsonl", "parquet"):
        assert table_bytes(b, fmt) == table_bytes(a, fmt)
    assert on_cluster.subset(rows[:0]).equals(plain.subset(rows[:0]))


def test_app_on_cluster_selects_and_summarises(
    plain: StoreResources, on_cluster: StoreResources
) -> None:
    apps = [build_app(plain), build_app(on_cluster)]
    x0, x1, y0, y1 = _views(plain)[0]
    for app in apps:
        app.state.set_filter("label", ["3", "5"])
        app.map.select_geometry({"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": (y0 + y1) / 2})
    a, b = (app.state.selection for app in apps)
    assert a.size > 0
    np.testing.assert_array_equal(a, b)
    sa, sb = (app.pane("selection") for app in apps)
    assert sb.top_values("label") == sa.top_values("label")
    assert sb.numeric_medians() == sa.numeric_medians()
    assert sb.error_rates() == sa.error_rates()
    assert apps[1].map.last_result is not None
    np.testing.assert_array_equal(
        apps[1].map.last_result.frame.rgba, apps[0].map.last_result.frame.rgba
    )
    assert apps[1].pane("export").export_bytes() == apps[0].pane("export").export_bytes()
    x, y = (float(v) for v in plain.coords("umap")[int(a[0])])
    for app in apps:  # hover: a round trip to the cluster, off the loop when served
        app.map._on_mouse_move(MouseMove(app.map.figure, x=x, y=y, sx=0, sy=0))
    assert apps[1].state.hovered == apps[0].state.hovered == int(a[0])


def test_bad_address_is_one_line() -> None:
    with pytest.raises(ConfigError, match="local:N"):
        connect("local:two")
    with pytest.raises(ClusterError, match="cannot reach a Dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout=1)


def test_deep_zoom_pictures_equal(plain: StoreResources, on_cluster: StoreResources) -> None:
    """A view of a few points shows their thumbnails, framed in their category's colour."""
    x0, x1, y0, y1 = _views(plain)[1]
    sel = np.arange(0, plain.n_points, 2, dtype=np.int64)
    req = FrameRequest("umap", x0, x1, y0, y1, 300, 200, color_by="label", highlight=sel)
    a, b = (draw_frame(res, req).pictures for res in (plain, on_cluster))
    assert a is not None
    assert b is not None
    assert a.rows.size > 0
    np.testing.assert_array_equal(a.rows, b.rows)
    assert (a.x, a.y, a.uris, a.colors, a.alphas) == (b.x, b.y, b.uris, b.colors, b.alphas)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--dask", "local:x"], "write local:N"),
        (["--dask", "local:2", "--num-procs", "2"], "one server process"),
    ],
)
def test_cli_refuses_bad_dask_options(extra: list[str], says: str, digits_store: Path) -> None:
    """Before serving anything: exit 2 with one line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "serve", str(digits_store), "--no-show", *extra],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert says in lines[0]
    assert "Serving" not in proc.stdout


@pytest.fixture(scope="module")
def partitioned(
    tiny_store: Path, tiny_input: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny store rebuilt with partitions (parts of 70 rows tiled by position)."""
    import shutil

    from explorer.config import BuildConfig, PartitionConfig
    from explorer.pipeline.runner import build_store
    from tests.helpers import TINY_CONFIG

    out = tmp_path_factory.mktemp("cluster-parts") / "p.store"
    shutil.copytree(tiny_store, out)
    config = BuildConfig(seed=TINY_CONFIG.seed, umap=TINY_CONFIG.umap,
                         partitions=PartitionConfig(enabled=True, rows_per_part=70))  # fmt: skip
    build_store(tiny_input, out, config, show_progress=False)
    return out


def test_partitioned_store_on_cluster(partitioned: Path, dask_client: Any) -> None:
    """A partitioned store's parts are the cluster's partitions; answers stay equal."""
    plain = StoreResources(Store(partitioned))
    res = StoreResources(Store(partitioned))
    assert res.store.is_partitioned("umap")
    res.attach_cluster(ClusterPoints(res.store, dask_client, res.columns))
    points = res.cluster
    assert points is not None
    assert len(points.layouts["umap"].parts) == len(res.store.partitions("umap")) > 1
    x0, x1, y0, y1 = plain.extent("umap")
    w = x1 - x0
    views = [(x0, x1, y0, y1), (x0 + 0.2 * w, x0 + 0.5 * w, y0, y1)]
    sel = np.arange(0, plain.n_points, 3, dtype=np.int64)
    assert len(points.layouts["umap"].touching(*views[1])) < len(points.layouts["umap"].parts)
    for view in views:
        for color_by in ("", "label", *plain.store.scores[:1]):
            for filters in (None, {"label": [plain.labels("label")[0]]}):
                req = [
                    FrameRequest(
                        "umap",
                        *view,
                        200,
                        150,
                        color_by=color_by,
                        highlight=sel,
                        mask=None if filters is None else r.mask(filters),
                    )
                    for r in (plain, res)
                ]
                a, b = draw_frame(plain, req[0]).frame, draw_frame(res, req[1]).frame
                np.testing.assert_array_equal(a.rgba, b.rgba)
                assert (a.n_in_view, a.legend) == (b.n_in_view, b.legend)
        box = (view[0], view[1], view[2], (view[2] + view[3]) / 2)
        np.testing.assert_array_equal(
            res.points_in_box("umap", box)[0], plain.points_in_box("umap", box)[0]
        )
    other = np.asarray(plain.values(plain.store.scores[0]) > 0.5)
    np.testing.assert_array_equal(
        res.points_in_box("umap", (x0, x1, y0, y1), mask=other)[0],
        plain.points_in_box("umap", (x0, x1, y0, y1), mask=other)[0],
    )
    assert res.subset(sel).equals(plain.subset(sel))
    np.testing.assert_array_equal(
        res.selected_counts("label", sel), plain.selected_counts("label", sel)
    )


def test_killed_worker_between_frames(
    plain: StoreResources, on_cluster: StoreResources, dask_client: Any
) -> None:
    """Kill one of the two workers between two frames: the next frame arrives (its lost
    partitions recomputed from the store) or fails in one line, and the one after works."""
    x0, x1, y0, y1 = _views(plain)[0]
    sel = np.arange(0, plain.n_points, 5, dtype=np.int64)
    req = FrameRequest("umap", x0, x1, y0, y1, 200, 150, color_by="label", highlight=sel)
    want = draw_frame(plain, req).frame.rgba
    np.testing.assert_array_equal(draw_frame(on_cluster, req).frame.rgba, want)
    pids = dask_client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    try:
        got: Any = draw_frame(on_cluster, req).frame.rgba
    except ClusterError as exc:  # the lost work could not be redone: one line, then go on
        got = str(exc)
    if isinstance(got, str):
        assert "\n" not in got
        assert "Dask cluster" in got
    else:
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(draw_frame(on_cluster, req).frame.rgba, want)
    rows, _ = on_cluster.points_in_box("umap", (x0, x1, y0, y1))
    assert rows.size == plain.n_points
    dask_client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed one
    deadline = time.monotonic() + 60
    while len(dask_client.run(os.getpid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)


def _slow_first_partition(flag: str) -> None:
    """On a worker: the next partition a frame reads waits 3 s, after writing the worker's
    pid to ``flag`` (so the test knows the frame is in flight, and on which worker)."""
    from explorer.app import cluster_tasks

    plain_rows = getattr(cluster_tasks, "_plain_frame_rows", cluster_tasks.frame_rows)
    cluster_tasks._plain_frame_rows = plain_rows  # type: ignore[attr-defined]

    def slow(*args: Any, **kwargs: Any) -> Any:
        if not Path(flag).exists():
            Path(flag).write_text(str(os.getpid()))
            time.sleep(3)
        return plain_rows(*args, **kwargs)

    cluster_tasks.frame_rows = slow


def _plain_partitions() -> None:
    from explorer.app import cluster_tasks

    cluster_tasks.frame_rows = getattr(cluster_tasks, "_plain_frame_rows", cluster_tasks.frame_rows)


def test_killed_worker_mid_frame(
    plain: StoreResources, on_cluster: StoreResources, dask_client: Any, tmp_path: Path
) -> None:
    """Kill the worker that is reading a frame's partition while it reads: the frame is
    retried on the other worker (or fails in one line), and the next frame works."""
    import threading

    x0, x1, y0, y1 = _views(plain)[0]
    req = FrameRequest("umap", x0, x1, y0, y1, 200, 150, color_by="label")
    want = draw_frame(plain, req).frame.rgba
    flag = tmp_path / "reading"
    dask_client.run(_slow_first_partition, str(flag))
    got: list[Any] = []

    def frame() -> None:
        try:
            got.append(draw_frame(on_cluster, req).frame.rgba)
        except ClusterError as exc:
            got.append(str(exc))

    try:
        drawing = threading.Thread(target=frame)
        drawing.start()
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the frame never reached a worker"
        time.sleep(0.2)  # the pid is written before the sleep: let it be mid-read
        os.kill(int(flag.read_text()), signal.SIGKILL)
        drawing.join(120)
        assert not drawing.is_alive()
        assert len(got) == 1
        if isinstance(got[0], str):
            assert "\n" not in got[0]
            assert "Dask cluster" in got[0]
        else:
            np.testing.assert_array_equal(got[0], want)
    finally:
        dask_client.run(_plain_partitions)
    np.testing.assert_array_equal(draw_frame(on_cluster, req).frame.rgba, want)
    dask_client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed one
