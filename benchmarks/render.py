"""Render benchmark: explorer.render against bare Datashader on the same arrays, same run.

    .venv/bin/python benchmarks/render.py --sizes 1e6,1e7 [--repeats 20] [--seed 0]

For each size: synthetic 2-D blobs (10 Gaussian clusters, category = cluster) as float32;
``PointIndex.build`` time; then, over ``--repeats`` random viewports at 800 × 800, the
median and p95 of one frame for: density (count + eq_hist shade), 10 categories, and
1%-of-area zooms centred on random points (count and categories). Datashader runs
``Canvas.points`` + ``tf.shade`` (pandas backend, explicit ranges, no spreading); ours is
``render`` with its default auto-spreading, i.e. the frame the app would send. A numeric
column (a smooth field plus noise) is drawn as a per-pixel mean, fixed span, colorcet "bmy".
"DataFrame path" rows draw the same pandas DataFrame through ``render_frame_dataframe``
(Datashader aggregates, our shading: what a partitioned/Dask server runs per partition set).
"shade only", "spread only" and "composite only" rows time one step alone on one wide
aggregate (ours against ``tf.shade`` / ``tf.dynspread`` / ``tf.stack``). Also: a 200-vertex
lasso hit-test, the first categorical frame (sorted-copy cache cold) and PNG size.
100M points need ~4 GB (``--sizes 1e8``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import colorcet
import datashader as ds
import datashader.transfer_functions as tf
import numpy as np
import pandas as pd

from explorer.render._numba import n_workers
from explorer.render.colors import NumericColor, categorical_color
from explorer.render.hittest import points_in_polygon
from explorer.render.index import PointIndex, Viewport, nearest_point
from explorer.render.raster import encode_png, render, render_frame_dataframe, warm_up

N_CATS = 10
SPAN = (-1.5, 1.5)
VALUE_CMAP = list(colorcet.palette["bmy"])
Row = tuple[str, np.ndarray, np.ndarray | None]


def make_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) float32 blobs and their uint8 cluster labels."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(N_CATS, 2))
    scales = rng.uniform(0.3, 2.0, size=N_CATS)
    labels = rng.integers(0, N_CATS, n).astype(np.uint8)
    xy = rng.standard_normal((n, 2), dtype=np.float32)
    xy *= scales[labels, None].astype(np.float32)
    xy += centres[labels].astype(np.float32)
    return xy, labels


def viewports(
    xy: np.ndarray, rng: np.random.Generator, k: int, zoom: float | None, size: int
) -> list[Viewport]:
    """``k`` viewports: ``zoom`` share of the extent's area centred on random points, or
    random windows covering 25-100% of the extent."""
    x0, y0 = xy.min(axis=0).astype(float)
    x1, y1 = xy.max(axis=0).astype(float)
    out = []
    for _ in range(k):
        share = zoom if zoom is not None else rng.uniform(0.25, 1.0)
        w, h = (x1 - x0) * share**0.5, (y1 - y0) * share**0.5
        if zoom is None:
            cx, cy = rng.uniform(x0 + w / 2, x1 - w / 2), rng.uniform(y0 + h / 2, y1 - h / 2)
        else:
            cx, cy = xy[rng.integers(xy.shape[0])].astype(float)
        out.append(Viewport(cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2, size, size))
    return out


def timed(func: Callable[[Viewport], Any], vps: list[Viewport]) -> np.ndarray:
    """Milliseconds of ``func(vp)`` for each viewport, after one warm-up call."""
    func(vps[0])
    out = []
    for vp in vps:
        t = time.perf_counter()
        func(vp)
        out.append((time.perf_counter() - t) * 1e3)
    return np.array(out)


def lasso(xy: np.ndarray, rng: np.random.Generator, m: int = 200) -> tuple[np.ndarray, ...]:
    """A wobbly closed loop around a random point, ~15% of the extent across."""
    cx, cy = xy[rng.integers(xy.shape[0])].astype(float)
    r = 0.15 * float(np.ptp(xy[:, 0])) * (1 + 0.2 * np.sin(np.arange(m) * 7 * 2 * np.pi / m))
    a = np.linspace(0, 2 * np.pi, m, endpoint=False)
    return cx + r * np.cos(a), cy + r * np.sin(a)


def run_size(n: int, args: argparse.Namespace) -> list[Row]:
    rng = np.random.default_rng(args.seed)
    xy, labels = make_points(n, args.seed)
    color = categorical_color(labels, [f"c{i}" for i in range(N_CATS)])
    # Load the compiled kernels (numba's disk cache) so "build" and "cold" time only work.
    warm_up()
    builds = []
    for _ in range(3):
        t = time.perf_counter()
        index = PointIndex.build(xy)
        builds.append((time.perf_counter() - t) * 1e3)
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cat": pd.Categorical(labels)})
    key = {c: color.colors[color.slot_of_code[c]] for c in range(N_CATS)}

    def canvas(vp: Viewport) -> ds.Canvas:
        return ds.Canvas(vp.width, vp.height, x_range=(vp.x0, vp.x1), y_range=(vp.y0, vp.y1))

    def ds_count(vp: Viewport) -> Any:
        return tf.shade(canvas(vp).points(df, "x", "y", ds.count()))

    def ds_cats(vp: Viewport) -> Any:
        agg = canvas(vp).points(df, "x", "y", ds.by("cat", ds.count()))
        return tf.shade(agg, color_key=key)

    t = time.perf_counter()
    first = render(index, viewports(xy, rng, 1, None, args.size)[0], color=color)
    first_ms = (time.perf_counter() - t) * 1e3
    wide = viewports(xy, rng, args.repeats, None, args.size)
    zoom = viewports(xy, rng, args.repeats, 0.01, args.size)

    def ours_count(vp: Viewport) -> Any:
        return render(index, vp)

    def ours_cats(vp: Viewport) -> Any:
        return render(index, vp, color=color)

    values = numeric_values(xy, args.seed)
    numeric = NumericColor(values, span=SPAN)
    df["v"] = values
    df["code"] = labels

    def frame_count(vp: Viewport) -> Any:
        return render_frame_dataframe(df, vp)

    def frame_cats(vp: Viewport) -> Any:
        return render_frame_dataframe(df, vp, color=color, color_column="code")

    def frame_mean(vp: Viewport) -> Any:
        return render_frame_dataframe(df, vp, color=numeric, color_column="v")

    def ours_mean(vp: Viewport) -> Any:
        return render(index, vp, color=numeric)

    def ds_mean(vp: Viewport) -> Any:
        agg = canvas(vp).points(df, "x", "y", ds.mean("v"))
        return tf.shade(agg, cmap=VALUE_CMAP, how="linear", span=SPAN)

    rows: list[Row] = [
        ("PointIndex.build", np.array(builds), None),
        ("count frame", timed(ours_count, wide), timed(ds_count, wide)),
        ("10 categories", timed(ours_cats, wide), timed(ds_cats, wide)),
        ("count, 1% zoom", timed(ours_count, zoom), timed(ds_count, zoom)),
        ("10 categories, 1% zoom", timed(ours_cats, zoom), timed(ds_cats, zoom)),
        ("numeric mean", timed(ours_mean, wide), timed(ds_mean, wide)),
        ("numeric mean, 1% zoom", timed(ours_mean, zoom), timed(ds_mean, zoom)),
        ("first categorical frame (no sorted copy yet)", np.array([first_ms]), None),
        ("DataFrame path (pandas): count frame", timed(frame_count, wide), timed(ds_count, wide)),
        ("DataFrame path (pandas): 10 categories", timed(frame_cats, wide), timed(ds_cats, wide)),
        ("DataFrame path (pandas): numeric mean", timed(frame_mean, wide), timed(ds_mean, wide)),
    ]
    rows += shade_rows(df, canvas(wide[0]), key, args.repeats)
    rows += hit_rows(index, wide, rng, args.repeats)
    t = time.perf_counter()
    png = encode_png(first.rgba)
    png_ms = np.array([(time.perf_counter() - t) * 1e3])
    rows.append((f"encode_png ({len(png) / 1024:.0f} KB)", png_ms, None))
    return rows


def numeric_values(xy: np.ndarray, seed: int) -> np.ndarray:
    """A smooth float32 field over the layout with noise: a numeric column to colour by."""
    rng = np.random.default_rng(seed + 1)
    v = np.sin(xy[:, 0] / 3) + np.cos(xy[:, 1] / 4)
    return (v + 0.3 * rng.standard_normal(v.shape[0])).astype(np.float32)


def repeat_ms(func: Callable[[], Any], repeats: int) -> np.ndarray:
    func()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        func()
        out.append((time.perf_counter() - t) * 1e3)
    return np.array(out)


def shade_rows(df: pd.DataFrame, cvs: ds.Canvas, key: dict[int, str], repeats: int) -> list[Row]:
    """Shading and spreading alone, ours against Datashader's, on one wide aggregate."""
    from explorer.render import _shade

    counts = cvs.points(df, "x", "y", ds.count())
    by = cvs.points(df, "x", "y", ds.by("cat", ds.count()))
    mean = cvs.points(df, "x", "y", ds.mean("v"))
    rgb = np.array([_shade.rgb_triples([key[c]])[0] for c in range(N_CATS)], np.uint64)
    acc = np.concatenate(
        [by.values.sum(axis=2, keepdims=True, dtype=np.uint64), by.values.astype(np.uint64) @ rgb],
        axis=2,
    )
    count_lut = _shade.cmap_lut(_shade.DEFAULT_COUNT_CMAP)
    value_lut = _shade.cmap_lut(VALUE_CMAP)
    img = tf.shade(counts, cmap=list(_shade.DEFAULT_COUNT_CMAP), how="eq_hist")
    nonzero = counts.values > 0
    # A highlighted subset (a tenth of the categories' image) over the dimmed rest.
    top = tf.shade(by, color_key=key, min_alpha=40)
    top_values = np.where(np.arange(top.values.size).reshape(top.shape) % 10 == 0, top.values, 0)
    top_img = tf.Image(top_values.astype(np.uint32), coords=top.coords, dims=top.dims)
    dimmed = img.values.view(np.uint8).reshape(*img.shape, 4).copy()
    dimmed[..., 3] = (dimmed[..., 3] * 0.25).astype(np.uint8)
    dimmed_img = tf.Image(
        dimmed.view(np.uint32).reshape(img.shape), coords=img.coords, dims=img.dims
    )
    return [
        (
            "shade only: count, eq_hist",
            repeat_ms(lambda: _shade.shade_counts(counts.values, count_lut, "eq_hist"), repeats),
            repeat_ms(
                lambda: tf.shade(counts, cmap=list(_shade.DEFAULT_COUNT_CMAP), how="eq_hist"),
                repeats,
            ),
        ),
        (
            "shade only: 10 categories",
            repeat_ms(lambda: _shade.shade_rgb(acc, "eq_hist", 40), repeats),
            repeat_ms(lambda: tf.shade(by, color_key=key, min_alpha=40), repeats),
        ),
        (
            "shade only: numeric mean",
            repeat_ms(lambda: _shade.shade_values(mean.values, value_lut, span=SPAN), repeats),
            repeat_ms(lambda: tf.shade(mean, cmap=VALUE_CMAP, how="linear", span=SPAN), repeats),
        ),
        (
            "spread only: auto radius",
            repeat_ms(lambda: _shade.spread(img.values, _shade.spread_radius(nonzero)), repeats),
            repeat_ms(lambda: tf.dynspread(img, max_px=3), repeats),
        ),
        (
            "composite only: highlight over the dimmed rest",
            repeat_ms(lambda: _shade.composite(img.values, top_values, 0.25), repeats),
            repeat_ms(lambda: tf.stack(dimmed_img, top_img, how="over"), repeats),
        ),
    ]


def hit_rows(
    index: PointIndex, wide: list[Viewport], rng: np.random.Generator, repeats: int
) -> list[Row]:
    """Lasso hit-tests (through the index and on plain coords) and hover look-ups."""
    xy, n = index.coords, index.n_points
    loops = [lasso(xy, rng) for _ in range(repeats)]
    rows: list[Row] = []
    for label, points in (("PointIndex", index), ("coords", xy)):
        lasso_ms, hits = [], []
        for px, py in loops:
            t = time.perf_counter()
            hits.append(points_in_polygon(points, px, py).size)
            lasso_ms.append((time.perf_counter() - t) * 1e3)
        name = f"lasso hit-test, {label} (200 vertices, ~{np.mean(hits) / n:.0%} selected)"
        rows.append((name, np.array(lasso_ms), None))
    hover_ms = []
    for vp in wide:
        # A cursor over a random point, with a 5-pixel tolerance.
        x, y = xy[rng.integers(n)].astype(float)
        t = time.perf_counter()
        nearest_point(index, x, y, 5 * (vp.x1 - vp.x0) / vp.width)
        hover_ms.append((time.perf_counter() - t) * 1e3)
    rows.append(("hover: nearest_point (5 px)", np.array(hover_ms), None))
    return rows


def fmt(ms: np.ndarray | None) -> tuple[str, str]:
    if ms is None:
        return "—", "—"
    p50, p95 = float(np.median(ms)), float(np.percentile(ms, 95))
    return (f"{p50:.1f}" if p50 >= 1 else f"{p50:.2f}"), (
        f"{p95:.1f}" if p95 >= 1 else f"{p95:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7", help="comma-separated point counts")
    parser.add_argument("--repeats", type=int, default=20, help="viewports per measurement")
    parser.add_argument("--size", type=int, default=800, help="frame width and height")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(f"$ .venv/bin/python benchmarks/render.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"numpy {np.__version__}, datashader {ds.__version__}, {n_workers()} render threads, "
        f"{args.repeats} viewports of {args.size}x{args.size}; times in ms"
    )
    # The machines are shared: say how busy this one was (an idle one sums 80 MB in ~4.5 ms).
    probe = np.random.default_rng(0).random(10_000_000)
    sums = []
    for _ in range(10):
        t = time.perf_counter()
        probe.sum()
        sums.append((time.perf_counter() - t) * 1e3)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average {load}; numpy sum of 80 MB: {np.median(sums):.1f} ms\n")
    print("| points | frame | ours p50 | ours p95 | Datashader p50 | Datashader p95 | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for name, ours, theirs in run_size(n, args):
            o50, o95 = fmt(ours)
            t50, t95 = fmt(theirs)
            gain = "—" if theirs is None else f"{np.median(theirs) / np.median(ours):.1f}×"
            print(f"| {n:,} | {name} | {o50} | {o95} | {t50} | {t95} | {gain} |", flush=True)


if __name__ == "__main__":
    main()
