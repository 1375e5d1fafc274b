"""Raster path: our aggregates equal Datashader's, the spatial index changes nothing, frames."""

from __future__ import annotations

import io

import datashader as ds
import datashader.transfer_functions as tf
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.errors import ConfigError, InputError
from explorer.render import _binning
from explorer.render import index as index_module
from explorer.render.colors import CategoricalColor, NumericColor, categorical_color
from explorer.render.index import PointIndex, Viewport, nearest_point
from explorer.render.raster import aggregate_count, encode_png, render

N_CATS = 6


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """3,000 clustered points, some exactly on the edges of the test viewports."""
    rng = np.random.default_rng(7)
    xy = (rng.normal(size=(3000, 2)) * [1.0, 0.6]).astype(np.float32)
    # Points exactly on the edges and corners of VIEWPORTS below (Datashader's convention:
    # both edges inclusive, the last column/row takes the upper edge).
    edge = np.array(
        [[-1, -1], [1, 1], [-1, 1], [1, -1], [0, 1], [1, 0], [-1, 0], [0, -1],
         [0.5, 0.25], [-0.5, 0.25], [0.0, 0.75], [0.25, -0.5], [0.3, 0.1], [-0.3, -0.7]],
        np.float32,
    )  # fmt: skip
    xy[: edge.shape[0]] = edge
    codes = rng.integers(0, N_CATS, xy.shape[0]).astype(np.uint8)
    values = rng.normal(size=xy.shape[0]).astype(np.float32)
    values[::17] = np.nan
    mask = rng.random(xy.shape[0]) < 0.6
    return {"xy": xy, "codes": codes, "values": values, "mask": mask}


@pytest.fixture(scope="module")
def index(data: dict[str, np.ndarray]) -> PointIndex:
    return PointIndex.build(data["xy"], points_per_cell=8)


VIEWPORTS = [
    Viewport(-1.0, 1.0, -1.0, 1.0, 40, 30),
    Viewport(-4.0, 4.0, -3.0, 3.0, 64, 64),
    Viewport(-0.5, 0.5, 0.25, 0.75, 17, 9),
    Viewport(0.0, 0.25, -0.5, 0.0, 5, 7),
    # Edges that float32 cannot represent: float32(0.3) > 0.3, so that point is outside.
    Viewport(-0.3, 0.3, -0.7, 0.1, 13, 11),
]


def _frame(data: dict[str, np.ndarray], keep: np.ndarray | None = None) -> pd.DataFrame:
    sel = slice(None) if keep is None else keep
    return pd.DataFrame(
        {
            "x": data["xy"][sel, 0],
            "y": data["xy"][sel, 1],
            "cat": pd.Categorical(data["codes"][sel], categories=range(N_CATS)),
            "v": data["values"][sel],
        }
    )


def _canvas(vp: Viewport) -> ds.Canvas:
    return ds.Canvas(vp.width, vp.height, x_range=(vp.x0, vp.x1), y_range=(vp.y0, vp.y1))


# Distinct colours per code: the kernel's colour sums then pin down its per-code counts.
CODE_RGB = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [7, 3, 0], [0, 11, 5], [13, 0, 17]], np.uint32
)


def _kernel_categories(
    index: PointIndex, vp: Viewport, codes: np.ndarray, mask=None, path="auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Our categorical kernel's ``[count, R, G, B]`` sums (h, w, 4) and per-code counts."""
    rows, codes = _binning.rows_for(index, vp, mask, codes, path=path)
    acc, code_counts = _binning.bin_rgb(rows, vp, codes, CODE_RGB)
    return acc.astype(np.int64), code_counts


def _expected_categories(by: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same from Datashader's ``ds.by(codes, ds.count())`` aggregate (h, w, n_codes)."""
    by = by.astype(np.int64)
    acc = np.concatenate([by.sum(axis=2, keepdims=True), by @ CODE_RGB.astype(np.int64)], axis=2)
    return acc, by.sum(axis=(0, 1))


@pytest.mark.parametrize("vp", VIEWPORTS)
@pytest.mark.parametrize("path", ["auto", "index", "scan"])
def test_count_equals_datashader(data, index, vp, path) -> None:
    expected = _canvas(vp).points(_frame(data), "x", "y", ds.count()).values
    got = aggregate_count(index, vp, path=path)
    assert got.dtype == np.uint32
    assert got.shape == (vp.height, vp.width)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_total_equals_points_in_view(data, index, vp) -> None:
    # Compare in float64 as Datashader does (numpy would round the edges to float32).
    x, y = data["xy"][:, 0].astype(np.float64), data["xy"][:, 1].astype(np.float64)
    inside = (x >= vp.x0) & (x <= vp.x1) & (y >= vp.y0) & (y <= vp.y1)
    assert int(aggregate_count(index, vp).sum()) == int(inside.sum())
    assert render(index, vp).n_in_view == int(inside.sum())


@pytest.mark.parametrize("vp", VIEWPORTS)
@pytest.mark.parametrize("path", ["auto", "index", "scan"])
def test_categories_equal_datashader_by(data, index, vp, path) -> None:
    agg = _canvas(vp).points(_frame(data), "x", "y", ds.by("cat", ds.count()))
    acc, code_counts = _kernel_categories(index, vp, data["codes"], path=path)
    expected_acc, expected_counts = _expected_categories(agg.values)
    np.testing.assert_array_equal(acc, expected_acc)
    np.testing.assert_array_equal(code_counts, expected_counts)


@pytest.mark.parametrize("path", ["auto", "index", "scan"])
def test_mask_excludes_points(data, index, path) -> None:
    vp = VIEWPORTS[1]
    keep = data["mask"]
    expected = _canvas(vp).points(_frame(data, keep), "x", "y", ds.count()).values
    np.testing.assert_array_equal(aggregate_count(index, vp, mask=keep, path=path), expected)
    by = _canvas(vp).points(_frame(data, keep), "x", "y", ds.by("cat", ds.count())).values
    acc, code_counts = _kernel_categories(index, vp, data["codes"], mask=keep, path=path)
    np.testing.assert_array_equal(acc, _expected_categories(by)[0])
    np.testing.assert_array_equal(code_counts, _expected_categories(by)[1])
    assert render(index, vp, mask=keep, path=path).n_in_view == int(expected.sum())


def test_many_threads_and_sorted_copies_change_nothing(data, monkeypatch) -> None:
    """The chunked (multi-thread) build and binning give the same index and aggregates."""
    single = PointIndex.build(data["xy"], points_per_cell=8)
    monkeypatch.setattr(index_module, "_PARALLEL_MIN", 0)
    monkeypatch.setattr(_binning, "_PARALLEL_MIN", 0)
    many = PointIndex.build(data["xy"], points_per_cell=8)
    np.testing.assert_array_equal(single.perm, many.perm)
    np.testing.assert_array_equal(single.offsets, many.offsets)
    for vp in VIEWPORTS:
        np.testing.assert_array_equal(aggregate_count(single, vp), aggregate_count(many, vp))
        cats = [
            _kernel_categories(many, vp, data["codes"], mask=data["mask"], path=p)[0]
            for p in ("auto", "index", "scan")
        ]
        np.testing.assert_array_equal(cats[0], cats[1])
        np.testing.assert_array_equal(cats[0], cats[2])


def test_sorted_copies_are_cached(data) -> None:
    idx = PointIndex.build(data["xy"], points_per_cell=8)
    vp = VIEWPORTS[1]  # most points: the first frame makes sorted copies of the attributes
    color = categorical_color(data["codes"], [f"c{i}" for i in range(N_CATS)])
    mask = data["mask"].copy()
    first = render(idx, vp, color=color, mask=mask)
    assert idx.has_sorted_copy(color.codes)
    assert idx.has_sorted_copy(mask)
    assert not idx.has_sorted_copy(mask.copy())  # keyed by identity, not value
    np.testing.assert_array_equal(idx.sorted_copy(mask), mask[idx.perm])
    np.testing.assert_array_equal(render(idx, vp, color=color, mask=mask).rgba, first.rgba)
    # A small view does not make copies: it looks attributes up through perm.
    other = mask.copy()
    render(idx, VIEWPORTS[3], mask=other)
    assert not idx.has_sorted_copy(other)


def test_index_sorts_points_by_cell(data, index) -> None:
    np.testing.assert_array_equal(index.xy, data["xy"][index.perm])
    assert np.array_equal(np.sort(index.perm), np.arange(data["xy"].shape[0]))
    assert index.offsets[0] == 0
    assert index.offsets[-1] == data["xy"].shape[0]
    assert (np.diff(index.offsets) >= 0).all()
    # Every point of a span lies in the cells that span covers: a box query is a superset.
    spans = index.spans(-0.5, 0.5, 0.25, 0.75)
    rows = np.concatenate([np.arange(a, b) for a, b in spans])
    x, y = data["xy"][:, 0], data["xy"][:, 1]
    inside = np.flatnonzero((x >= -0.5) & (x <= 0.5) & (y >= 0.25) & (y <= 0.75))
    assert set(inside) <= set(index.perm[rows].tolist())
    assert rows.size < data["xy"].shape[0] / 2


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_zoomed_index_render_equals_full_scan(data, index, vp) -> None:
    colors = [
        None,
        categorical_color(data["codes"], [f"c{i}" for i in range(N_CATS)], top=4),
        NumericColor(data["values"]),
        NumericColor(data["values"], reduction="max", span=(-1.0, 2.0)),
        NumericColor(data["values"], reduction="min"),
    ]
    hl = np.arange(0, data["xy"].shape[0], 5)
    for color in colors:
        for mask in (None, data["mask"]):
            kw = {"color": color, "mask": mask, "highlight": hl}
            a = render(index, vp, path="index", **kw)
            b = render(index, vp, path="scan", **kw)
            c = render(index, vp, path="auto", **kw)
            np.testing.assert_array_equal(a.rgba, b.rgba)
            np.testing.assert_array_equal(a.rgba, c.rgba)
            assert a.n_in_view == b.n_in_view == c.n_in_view
            assert a.legend == b.legend
            assert a.span == b.span


def test_frame_is_uint32_image(data, index) -> None:
    vp = VIEWPORTS[1]
    frame = render(index, vp, spread=0)
    assert frame.rgba.shape == (vp.height, vp.width)
    assert frame.rgba.dtype == np.uint32
    counts = aggregate_count(index, vp)
    # Without spreading, exactly the non-empty pixels are drawn, all opaque.
    np.testing.assert_array_equal(frame.rgba != 0, counts > 0)
    assert ((frame.rgba[counts > 0] >> 24) == 255).all()
    assert frame.span == (float(counts[counts > 0].min()), float(counts.max()))
    for how in ("eq_hist", "log", "cbrt", "linear"):
        assert ((render(index, vp, how=how, spread=0).rgba != 0) == (counts > 0)).all()
    with pytest.raises(ConfigError, match="how="):
        render(index, vp, how="sqrt")


def test_categorical_colors_match_datashader(data, index) -> None:
    vp = VIEWPORTS[1]
    labels = [f"c{i}" for i in range(N_CATS)]
    color = categorical_color(data["codes"], labels, top=N_CATS)
    frame = render(index, vp, color=color, spread=0)
    agg = _canvas(vp).points(_frame(data), "x", "y", ds.by("cat", ds.count()))
    key = {code: color.colors[color.slot_of_code[code]] for code in range(N_CATS)}
    img = tf.shade(agg, color_key=key).values
    ours = frame.rgba.view(np.uint8).reshape(vp.height, vp.width, 4).astype(int)
    theirs = img.view(np.uint8).reshape(vp.height, vp.width, 4).astype(int)
    drawn = theirs[..., 3] > 0
    np.testing.assert_array_equal(ours[..., 3] > 0, drawn)
    # Same weighted mean of category colours (theirs in float32, ours exact).
    assert np.abs(ours[drawn, :3] - theirs[drawn, :3]).max() <= 1
    assert ours[drawn, 3].min() >= 40


def test_legend_counts_in_view(data, index) -> None:
    vp = VIEWPORTS[0]
    labels = [f"c{i}" for i in range(N_CATS)]
    color = categorical_color(data["codes"], labels, top=3)
    frame = render(index, vp, color=color)
    assert [e.label for e in frame.legend][-1] == "other"
    assert len(frame.legend) == 4
    by = _canvas(vp).points(_frame(data), "x", "y", ds.by("cat", ds.count())).values
    per_code = by.sum(axis=(0, 1))
    top = np.argsort(-np.bincount(data["codes"], minlength=N_CATS), kind="stable")[:3]
    for entry, code in zip(frame.legend[:3], top, strict=True):
        assert entry.label == labels[code]
        assert entry.count == per_code[code]
    assert frame.legend[3].count == per_code.sum() - per_code[top].sum()
    assert sum(e.count for e in frame.legend) == frame.n_in_view


def test_numeric_mean_matches_datashader(data, index) -> None:
    vp = VIEWPORTS[1]
    span = (-1.5, 1.5)
    # A two-colour map black -> red makes the red channel equal to the 8-bit scaled mean.
    color = NumericColor(data["values"], cmap=("#000000", "#ff0000"), span=span)
    frame = render(index, vp, color=color, spread=0)
    mean = _canvas(vp).points(_frame(data), "x", "y", ds.mean("v")).values
    have = np.isfinite(mean)
    px = frame.rgba.view(np.uint8).reshape(vp.height, vp.width, 4)
    np.testing.assert_array_equal(px[..., 3] > 0, have)
    expected = np.clip((mean[have] - span[0]) / (span[1] - span[0]), 0, 1) * 255 + 0.5
    assert np.abs(px[have, 0].astype(int) - expected.astype(int)).max() <= 1
    assert frame.span == span


def test_max_score_shows_a_single_outlier(data, index) -> None:
    vp = VIEWPORTS[1]
    scores = np.zeros(data["xy"].shape[0], np.float32)
    scores[100] = 10.0
    frame = render(
        index, vp, color=NumericColor(scores, cmap=("#000000", "#ff0000"), reduction="max")
    )
    x, y = data["xy"][100]
    col = min(int((x - vp.x0) * vp.width / (vp.x1 - vp.x0)), vp.width - 1)
    row = min(int((y - vp.y0) * vp.height / (vp.y1 - vp.y0)), vp.height - 1)
    px = frame.rgba.view(np.uint8).reshape(vp.height, vp.width, 4)
    assert px[row, col, 0] == 255
    assert frame.span == (0.0, 10.0)


def test_isolated_point_visible_after_spreading() -> None:
    rng = np.random.default_rng(3)
    xy = np.vstack([rng.normal(size=(2000, 2)) * 0.05, [[0.905, 0.905]]]).astype(np.float32)
    idx = PointIndex.build(xy)
    vp = Viewport(-1.0, 1.0, -1.0, 1.0, 200, 200)
    row = col = 190  # 0.905 lies in the middle of pixel 190
    bare = render(idx, vp, spread=0).rgba
    assert bare[row, col] >> 24 > 0
    assert (bare[row - 1 : row + 2, col - 1 : col + 2] != 0).sum() == 1
    frame = render(idx, vp, spread="auto")
    assert frame.spread >= 1
    r = frame.spread
    block = frame.rgba[row - r : row + r + 1, col - r : col + r + 1]
    assert ((block >> 24) > 0).all()
    # Spreading only fills empty pixels: drawn pixels keep their colour.
    np.testing.assert_array_equal(frame.rgba[bare != 0], bare[bare != 0])


def test_highlight_on_top_of_dimmed_rest(data, index) -> None:
    vp = VIEWPORTS[1]
    hl = np.flatnonzero(data["xy"][:, 0] > 0.5)
    frame = render(index, vp, highlight=hl, spread=0, dim=0.2)
    alpha = frame.rgba >> 24
    hl_counts = aggregate_count(PointIndex.build(data["xy"][hl]), vp)
    assert (alpha[hl_counts > 0] == 255).all()
    rest = (hl_counts == 0) & (aggregate_count(index, vp) > 0)
    assert rest.any()
    assert (alpha[rest] <= 51).all()
    assert frame.n_highlight_in_view == int(hl_counts.sum())
    with pytest.raises(InputError, match="highlight"):
        render(index, vp, highlight=np.array([10**9]))


def test_encode_png_round_trip(data, index) -> None:
    frame = render(index, VIEWPORTS[1], color=NumericColor(data["values"]))
    png = encode_png(frame.rgba)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    back = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    # The PNG's first row is the top of the view, the frame's first row the bottom.
    np.testing.assert_array_equal(back[::-1], frame.rgba.view(np.uint8).reshape(back.shape))


def test_nearest_point_equals_brute_force(data, index) -> None:
    rng = np.random.default_rng(11)
    xy = data["xy"].astype(np.float64)
    for qx, qy in rng.uniform(-2, 2, size=(50, 2)):
        for mask in (None, data["mask"]):
            d2 = (xy[:, 0] - qx) ** 2 + (xy[:, 1] - qy) ** 2
            if mask is not None:
                d2[~mask] = np.inf
            best = int(np.argmin(d2))
            expected = best if d2[best] <= 0.1**2 else None
            assert nearest_point(index, qx, qy, 0.1, mask=mask) == expected


def test_empty_and_invalid_inputs() -> None:
    empty = PointIndex.build(np.zeros((0, 2), np.float32))
    vp = Viewport(0.0, 1.0, 0.0, 1.0, 8, 8)
    frame = render(empty, vp)
    assert frame.n_in_view == 0
    assert not frame.rgba.any()
    assert nearest_point(empty, 0.5, 0.5, 1.0) is None
    with pytest.raises(ConfigError, match="x1 > x0"):
        Viewport(1.0, 0.0, 0.0, 1.0, 8, 8)
    with pytest.raises(ConfigError, match="width"):
        Viewport(0.0, 1.0, 0.0, 1.0, 0, 8)
    with pytest.raises(InputError, match="shape"):
        PointIndex.build(np.zeros((5, 3), np.float32))
    with pytest.raises(InputError, match="mask"):
        render(PointIndex.build(np.zeros((5, 2), np.float32)), vp, mask=np.ones(4, bool))
    with pytest.raises(InputError, match="colour column"):
        render(PointIndex.build(np.zeros((5, 2), np.float32)), vp, color=NumericColor(np.ones(4)))
    with pytest.raises(InputError, match="codes"):
        CategoricalColor(np.array([0, 3], np.uint8), np.array([0, 0]), ("a",), ("#000000",))
