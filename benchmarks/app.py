"""App benchmark: the app's own render path beside bare Datashader, and what a server costs.

    .venv/bin/python benchmarks/app.py --sizes 1e6,1e7 [--store-size 1e7] [--repeats 20]
    .venv/bin/python benchmarks/app.py --only find [--find-size 1e7] [--image-store PATH]

Part 1, for each size, on the same arrays in the same run (synthetic 2-D blobs, 10
categories, ``benchmarks/render.py``'s data): the app's frame path ``draw_frame`` (render +
PNG encoding + base64, i.e. what the map pane sends) against bare Datashader
(``Canvas.points`` + ``tf.shade``, pandas backend, explicit ranges, no PNG), 800 × 800,
median and p95 over ``--repeats`` random viewports (25-100% of the extent), and 1%-of-area
zooms; count and categorical colour.

Part 2, on a synthetic store of ``--store-size`` points written to a temporary folder
(id, 10-category label, a numeric column, one layout): in a fresh process, the time from
opening the store to the first image (the default categorical frame, kernels cold and
warm), a second session's first image, the lasso hit-test through the map pane, exporting
1M selected rows to Parquet, and the process's memory (peak RSS) with two sessions open.

Part 3 (``find``, issue 12), on a synthetic store of ``--find-size`` points with a text
column (four words of ``benchmarks/query.py``'s 25-word vocabulary a row, ~20 bytes), in
this process: a search through the app's path (``refs.rows_of``, the text buffer cached in
``StoreResources``: the first search builds it), p50 of plain searches and of a regex, a
SQL clause (``where_rows``, the first one opens DuckDB), each after one warm-up; then the
deep-zoom frame of an image store (``--image-store``, default the digits sample):
``draw_frame`` with thumbnails for viewports holding 100-400 points, thumbnails not yet
cut (a fresh process's first visit) and cut (a revisit).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datashader as ds
import datashader.transfer_functions as tf
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query import synthetic_table
from render import N_CATS, fmt, lasso, make_points, timed, viewports

from explorer.app.frames import FrameRequest, draw_frame
from explorer.render.colors import categorical_color
from explorer.render.index import PointIndex, Viewport
from explorer.render.raster import warm_up

ROOT = Path(__file__).resolve().parents[1]
Row = tuple[str, np.ndarray, np.ndarray | None]


class ArrayResources:
    """The two things ``draw_frame`` asks of ``StoreResources``, over plain arrays."""

    def __init__(self, xy: np.ndarray, labels: np.ndarray) -> None:
        self._index = PointIndex.build(xy)
        self._color = categorical_color(labels, [f"c{i}" for i in range(N_CATS)])

    def index(self, layout: str) -> PointIndex:
        return self._index

    def color(self, name: str) -> Any:
        return self._color if name else None


def frame_rows(n: int, args: argparse.Namespace) -> list[Row]:
    """Part 1: our frames (with PNG) against bare Datashader, same arrays and viewports."""
    rng = np.random.default_rng(args.seed)
    xy, labels = make_points(n, args.seed)
    res = ArrayResources(xy, labels)
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cat": pd.Categorical(labels)})
    if n > args.ds_max:
        df = df.iloc[:0]
    color = res.color("label")
    key = {c: color.colors[color.slot_of_code[c]] for c in range(N_CATS)}

    def ours(color_by: str) -> Any:
        def frame(vp: Viewport) -> Any:
            req = FrameRequest("xy", vp.x0, vp.x1, vp.y0, vp.y1, vp.width, vp.height, color_by)
            return draw_frame(res, req)  # type: ignore[arg-type]

        return frame

    def canvas(vp: Viewport) -> ds.Canvas:
        return ds.Canvas(vp.width, vp.height, x_range=(vp.x0, vp.x1), y_range=(vp.y0, vp.y1))

    def ds_count(vp: Viewport) -> Any:
        return tf.shade(canvas(vp).points(df, "x", "y", ds.count()))

    def ds_cats(vp: Viewport) -> Any:
        return tf.shade(canvas(vp).points(df, "x", "y", ds.by("cat", ds.count())), color_key=key)

    wide = viewports(xy, rng, args.repeats, None, args.size)
    zoom = viewports(xy, rng, args.repeats, 0.01, args.size)
    k = max(2, args.repeats if n <= 20_000_000 else args.ds_repeats)

    def theirs(func: Any, vps: list[Viewport]) -> np.ndarray | None:
        return timed(func, vps[:k]) if n <= args.ds_max else None

    rows: list[Row] = [
        ("count frame", timed(ours(""), wide), theirs(ds_count, wide)),
        ("10 categories", timed(ours("label"), wide), theirs(ds_cats, wide)),
        ("count, 1% zoom", timed(ours(""), zoom), theirs(ds_count, zoom)),
        ("10 categories, 1% zoom", timed(ours("label"), zoom), theirs(ds_cats, zoom)),
    ]
    png = draw_frame(res, FrameRequest("xy", *_full(xy), args.size, args.size, "label"))  # type: ignore[arg-type]
    rows.append((f"(PNG of a full categorical frame: {png.png_bytes / 1024:.0f} KB)", None, None))  # type: ignore[arg-type]
    return rows


def _full(xy: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = xy.min(axis=0).astype(float), xy.max(axis=0).astype(float)
    return lo[0], hi[0], lo[1], hi[1]


def write_store(path: Path, n: int, seed: int) -> None:
    """A minimal valid store: validate (points table) + one layout, no kNN."""
    from explorer.store.writer import StoreWriter

    xy, labels = make_points(n, seed)
    rng = np.random.default_rng(seed + 1)
    points = pd.DataFrame(
        {
            "id": pd.array([f"pt{i:09d}" for i in range(n)], dtype="str"),
            "label": pd.Categorical.from_codes(labels, [f"class {i}" for i in range(N_CATS)]),
            "score": rng.random(n, dtype=np.float32),
        }
    )
    with StoreWriter(path, {"n": n, "d": 2}) as writer:
        _write_stages_and_manifest(writer, n, xy, points)


def _write_stages_and_manifest(
    writer: Any, n: int, xy: np.ndarray, points: pd.DataFrame, text: str | None = None
) -> None:
    from explorer.store.format import LAYOUT_FILE
    from explorer.store.manifest import layout_entry, store_manifest

    # The store contract wants validate's vectors: the 2-D points stand in for them.
    validate = {"vectors": xy, "duplicate_of": np.full(n, -1, np.int64)}
    records = {
        "validate": writer.write_stage(
            "validate", "bench", arrays=validate, tables={"points": points}
        ),
        "umap": writer.write_stage("umap", "bench", arrays={LAYOUT_FILE: xy}),
    }
    writer.write_manifest(
        store_manifest(
            n_points=n,
            dim=2,
            source={"path": "benchmarks/app.py (synthetic)"},
            roles={"id": "id", "label": "label", "text": text},
            stages=records,
            layouts={"umap": layout_entry("umap")},
        )
    )


def child(store: str, repeats: int, warm: bool) -> dict[str, Any]:
    """Part 2, in a fresh process: open → first image, hit-tests, export, memory."""
    t_import = time.perf_counter()
    from explorer.app.process import open_resources
    from explorer.app.shell import build_app
    from explorer.render.hittest import points_in_polygon

    out: dict[str, Any] = {"import_s": time.perf_counter() - t_import}
    if warm:
        t = time.perf_counter()
        warm_up()
        out["warm_up_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res = open_resources(store)
    app = build_app(res)  # draws the first frame: categorical (label) at 800 x 600
    out["first_image_s"] = time.perf_counter() - t
    t = time.perf_counter()
    app2 = build_app(res)
    out["second_session_s"] = time.perf_counter() - t
    rng = np.random.default_rng(0)
    xy = res.index("umap").coords
    index = res.index("umap")
    hit_ms, select_ms, counts = [], [], []
    for _ in range(repeats):
        px, py = lasso(xy, rng)
        t = time.perf_counter()
        rows = points_in_polygon(index, px, py, mask=app2.state.mask)
        hit_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        # What the map pane does with a lasso: hit-test, set the state; every pane follows
        # (the map re-renders with the selection highlighted, synchronously here).
        app2.map.select_geometry({"type": "poly", "x": px, "y": py})
        select_ms.append((time.perf_counter() - t) * 1e3)
        counts.append(rows.size)
    out["lasso_ms"], out["select_ms"] = hit_ms, select_ms
    out["lasso_share"] = float(np.mean(counts)) / res.n_points
    rows = np.sort(rng.choice(res.n_points, min(1_000_000, res.n_points), replace=False))
    app.state.select(rows)
    t = time.perf_counter()
    data = app.export.export_bytes()  # the download button's path (Parquet by default)
    out["export_1m_s"] = time.perf_counter() - t
    out["export_mb"] = len(data) / 1e6
    for _ in range(3):  # a few frames in both sessions, as users would cause
        app.map.redraw()
        app2.map.redraw()
    out["rss_mb"] = _rss_mb("VmRSS")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(store: Path, repeats: int, warm: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(store), "--repeats", str(repeats)]
    proc = subprocess.run(
        [*cmd, *(["--warm"] if warm else [])], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def store_rows(n: int, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        store = Path(tmp) / "bench.store"
        t = time.perf_counter()
        write_store(store, n, args.seed)
        print(f"(wrote a {n:,}-point store in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
        cold = run_child(store, args.repeats, warm=False)
        warm = run_child(store, args.repeats, warm=True)
    lasso_ms, select_ms = np.array(warm["lasso_ms"]), np.array(warm["select_ms"])
    share = warm["lasso_share"]
    first = "open store → first image (categorical)"
    return [
        (f"{first}, kernels cold", f"{cold['first_image_s']:.2f} s", "≤ 2 s"),
        (f"{first}, after warm_up (as a server does)", f"{warm['first_image_s']:.2f} s", "≤ 2 s"),
        ("(warm_up itself, in a thread at server start)", f"{warm['warm_up_s']:.2f} s", "—"),
        ("a second session's first image (shared index)", f"{warm['second_session_s']:.2f} s", "—"),
        (f"lasso hit-test, 200 vertices (~{share:.0%} selected), p50 / p95",
         f"{np.median(lasso_ms):.0f} / {np.percentile(lasso_ms, 95):.0f} ms", "≤ 300 ms"),
        ("lasso → selection set and every pane updated (map re-rendered), p50 / p95",
         f"{np.median(select_ms):.0f} / {np.percentile(select_ms, 95):.0f} ms", "—"),
        (f"export 1M selected rows to Parquet ({warm['export_mb']:.0f} MB)",
         f"{warm['export_1m_s']:.2f} s", "≤ 3 s"),
        ("server memory: RSS with two sessions (peak)",
         f"{warm['rss_mb'] / 1024:.2f} GB ({warm['peak_rss_mb'] / 1024:.2f} GB)", "≤ 2 GB"),
    ]  # fmt: skip


def write_text_store(path: Path, n: int, seed: int) -> None:
    """A store of ``n`` points with a text column: id, text, label (10 values), score."""
    from explorer.store.writer import StoreWriter

    xy, _ = make_points(n, seed)
    table = synthetic_table(n, seed)
    points = pd.DataFrame(
        {
            "id": pd.array([f"pt{i:09d}" for i in range(n)], dtype="str"),
            "text": table.column("text").to_pandas(),
            "label": pd.Categorical(table.column("label").to_pandas()),
            "score": table.column("outlier").to_numpy(),
        }
    )
    with StoreWriter(path, {"n": n, "d": 2}) as writer:
        _write_stages_and_manifest(writer, n, xy, points, text="text")


def _p50(fn: Any, repeats: int) -> tuple[Any, float, str]:
    """(result, first call ms, "p50 ms (p50 CPU ms)" of ``repeats`` calls after it).

    CPU is the process's, all threads: on a shared machine the wall time is this work
    plus the waits for a core."""
    t = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - t) * 1e3
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return result, first, f"{np.median(wall):.0f} ms ({np.median(cpu):.0f} ms CPU)"


def find_rows(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    """Part 3: search and SQL over a text store, deep-zoom frames of an image store."""
    from explorer.app.refs import Ref, rows_of, where_rows
    from explorer.app.resources import StoreResources
    from explorer.store.reader import Store

    n = int(args.find_size)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / "text.store"
        t = time.perf_counter()
        write_text_store(path, n, args.seed)
        print(f"(wrote a {n:,}-point text store in {time.perf_counter() - t:.1f} s)",
              file=sys.stderr)  # fmt: skip
        res = StoreResources(Store(path))
        t = time.perf_counter()
        _ = res.table, res.columns
        yield (f"(load the point table, {n:,} rows)", f"{time.perf_counter() - t:.2f} s", "—")

        def search(kind: str, query: str) -> Any:
            return lambda: rows_of(res, Ref(kind, query))

        t = time.perf_counter()
        res.search_buffer("text")
        first_buffer = time.perf_counter() - t
        res._cache.pop(("search", "text"))  # the first search below builds it again
        hits, first, p50 = _p50(search("search", "zebra"), args.repeats)
        size = res.search_buffer("text").nbytes / 1e6
        yield (f"first search (builds the text buffer, {size:.0f} MB; alone: "
               f"{first_buffer:.2f} s)", f"{first:.0f} ms", "—")  # fmt: skip
        for query in ["zebra", "omega zeta", "Zeta Alpha", "pt000123456"]:
            hits, _, p50 = _p50(search("search", query), args.repeats)
            yield (f"search {query!r} over {n:,} rows ({hits.size:,} hits), p50",
                   p50, "≤ 300 ms")  # fmt: skip
        hits, _, p50 = _p50(search("regex", "^alpha.*z"), max(3, args.repeats // 4))
        yield (f"regex '^alpha.*z' (Arrow, RE2; {hits.size:,} hits), p50", p50, "—")
        for query, how in [
            ("zébra", "Arrow checks the rows holding 'bra'"),
            ("zéta", "'ta' is in most rows: Arrow over the column"),
        ]:
            hits, _, p50 = _p50(search("search", query), max(3, args.repeats // 4))
            yield (f"search {query!r} (not ASCII: {how}; {hits.size:,} hits), p50",
                   p50, "—")  # fmt: skip
        clause = "label = '7' AND score > 0.9"
        hits, first, p50 = _p50(lambda: where_rows(res, clause), args.repeats)
        yield (f"SQL {clause!r} over {n:,} rows ({hits.size:,} hits), p50 "
               f"(first, opening DuckDB: {first:.0f} ms)", p50, "≤ 500 ms")  # fmt: skip
        clause = "text ILIKE '%zebra%' AND score > 0.5"
        hits, first, p50 = _p50(lambda: where_rows(res, clause), args.repeats)
        yield (f"SQL {clause!r} ({hits.size:,} hits), p50", p50, "≤ 500 ms")
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        yield (f"(load average after the searches: {load} on {os.cpu_count()} cores)", "", "")
    if not Path(args.image_store, "manifest.json").is_file():
        yield (f"(deep-zoom frames: no image store at {args.image_store}; give --image-store)",
               "—", "≤ 150 ms")  # fmt: skip
        return
    yield from deep_zoom_rows(args)


def deep_zoom_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Frames of an image store at zooms with 100-400 points in view, thumbnails drawn."""
    from explorer.app.frames import PICTURE_LIMIT
    from explorer.app.resources import StoreResources
    from explorer.render.hittest import points_in_box
    from explorer.store.reader import Store

    res = StoreResources(Store(args.image_store))
    layout = next(iter(res.store.layouts))
    index = res.index(layout)
    xy = np.asarray(index.coords, np.float64)
    x0, x1, _, _ = res.extent(layout)
    rng = np.random.default_rng(args.seed)
    requests: list[FrameRequest] = []
    while len(requests) < args.repeats:
        cx, cy = xy[rng.integers(0, len(xy))]
        half = 0.5 * (x1 - x0) * rng.uniform(0.05, 0.4)
        box = (cx - half, cx + half, cy - half, cy + half)
        n_in = points_in_box(index, *box).size
        if 100 <= n_in <= PICTURE_LIMIT:
            requests.append(FrameRequest(layout, *box, args.size, args.size, res.default_color()))
    draw_frame(res, FrameRequest(layout, *res.extent(layout), args.size, args.size,
                                 res.default_color()))  # fmt: skip
    cold, warm, counts = [], [], []
    for req in requests:
        t = time.perf_counter()
        frame = draw_frame(res, req)
        cold.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        draw_frame(res, req)
        warm.append((time.perf_counter() - t) * 1e3)
        assert frame.pictures is not None, "no thumbnails drawn"
        assert frame.pictures.uris, "no thumbnails drawn"
        counts.append(len(frame.pictures.uris))
    name = Path(args.image_store).name
    what = f"{args.size}×{args.size}, {min(counts)}-{max(counts)} thumbnails"
    return [
        (f"deep-zoom image frame ({name}, {res.n_points:,} points; {what}), thumbnails "
         "not cut yet, p50 / p95", f"{np.median(cold):.0f} / {np.percentile(cold, 95):.0f} ms",
         "≤ 150 ms"),
        ("deep-zoom image frame, thumbnails cut (a revisit), p50 / p95",
         f"{np.median(warm):.0f} / {np.percentile(warm, 95):.0f} ms", "≤ 150 ms"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7", help="comma-separated point counts")
    parser.add_argument("--store-size", type=float, default=1e7, help="0 skips part 2")
    parser.add_argument("--repeats", type=int, default=20, help="viewports per measurement")
    parser.add_argument("--ds-repeats", type=int, default=5, help="Datashader's above 20M")
    parser.add_argument("--ds-max", type=float, default=1e9, help="no Datashader above this")
    parser.add_argument("--size", type=int, default=800, help="frame width and height")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="where the temporary store goes")
    parser.add_argument("--only", choices=["frames", "store", "find"], help="one part only")
    parser.add_argument("--find-size", type=float, default=1e7, help="rows searched (part 3)")
    parser.add_argument(
        "--image-store", default=str(ROOT / "sample_data" / "digits.store"),
        help="an image store for the deep-zoom frames (part 3)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.warm)))
        return
    print(f"$ .venv/bin/python benchmarks/app.py {' '.join(sys.argv[1:])}".rstrip())
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"datashader {ds.__version__}, {args.repeats} viewports of {args.size}×{args.size}; "
          f"load average {load}\n")  # fmt: skip
    warm_up()
    if args.only in (None, "frames"):
        frames_table(args)
    if args.store_size and args.only in (None, "store"):
        n = int(args.store_size)
        print(f"\n| {n:,}-point store | measured | target |\n|---|---|---|")
        for name, value, target in store_rows(n, args):
            print(f"| {name} | {value} | {target} |", flush=True)
    if args.only in (None, "find"):
        print("\n| find: search, SQL, deep zoom | measured | target |\n|---|---|---|")
        for name, value, target in find_rows(args):
            print(f"| {name} | {value} | {target} |", flush=True)


def frames_table(args: argparse.Namespace) -> None:
    """Part 1's table."""
    print("| points | frame | app p50 ms | app p95 ms | Datashader p50 ms | Datashader p95 ms "
          "| app speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n in (int(float(s)) for s in args.sizes.split(",") if s):
        for name, ours, theirs in frame_rows(n, args):
            if ours is None:
                print(f"| {n:,} | {name} | | | | | |")
                continue
            o50, o95 = fmt(ours)
            t50, t95 = fmt(theirs)
            gain = "—" if theirs is None else f"{np.median(theirs) / np.median(ours):.1f}×"
            print(f"| {n:,} | {name} | {o50} | {o95} | {t50} | {t95} | {gain} |", flush=True)


if __name__ == "__main__":
    main()
