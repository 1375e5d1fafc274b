"""The DataFrame path (Datashader, pandas or Dask) draws the same frames as ``render``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from explorer.errors import InputError
from explorer.render.colors import CategoricalColor, NumericColor, categorical_color
from explorer.render.frame import Frame
from explorer.render.index import PointIndex, Viewport
from explorer.render.raster import render, render_frame_dataframe

N_CATS = 6
VIEWPORTS = [
    Viewport(-1.0, 1.0, -1.0, 1.0, 40, 30),
    Viewport(-4.0, 4.0, -3.0, 3.0, 64, 64),
    # Edges float32 cannot represent, a view that is partly empty.
    Viewport(-0.3, 2.3, -0.7, 0.1, 13, 11),
]


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    """3,000 clustered float32 points (some exactly on viewport edges) with every column."""
    rng = np.random.default_rng(5)
    n = 3000
    xy = (rng.normal(size=(n, 2)) * [1.2, 0.8]).astype(np.float32)
    edge = [[-1, -1], [1, 1], [-1, 1], [1, -1], [0, 1], [1, 0], [-4, -3], [4, 3], [2.3, 0.1]]
    xy[: len(edge)] = np.array(edge, np.float32)
    values = rng.normal(size=n).astype(np.float32)
    values[::13] = np.nan
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "c": rng.integers(0, N_CATS, n).astype(np.uint8),
            "v": values,
            "m": rng.random(n) < 0.7,
            "h": rng.random(n) < 0.2,
        }
    )


@pytest.fixture(scope="module")
def index(points: pd.DataFrame) -> PointIndex:
    return PointIndex.build(points[["x", "y"]].to_numpy(), points_per_cell=8)


def _colors(points: pd.DataFrame) -> list[tuple[str, CategoricalColor | NumericColor | None]]:
    codes = points["c"].to_numpy()
    values = points["v"].to_numpy()
    return [
        ("density", None),
        ("categories", categorical_color(codes, [f"c{i}" for i in range(N_CATS)], top=4)),
        ("mean", NumericColor(values)),
        ("max", NumericColor(values, reduction="max", span=(-1.0, 2.0))),
        ("min", NumericColor(values, cmap="fire", reduction="min")),
    ]


def _assert_same(a: Frame, b: Frame) -> None:
    np.testing.assert_array_equal(a.rgba, b.rgba)
    assert (a.n_in_view, a.n_highlight_in_view) == (b.n_in_view, b.n_highlight_in_view)
    assert a.legend == b.legend
    assert a.span == b.span
    assert a.spread == b.spread


ALL_CASES = [(vp, m, h) for vp in VIEWPORTS for m, h in ((0, 0), (1, 0), (1, 1), (0, 1))]
# Each Dask layer is a round trip through the scheduler: fewer cases, every kind covered.
DASK_CASES = [(VIEWPORTS[1], 0, 0), (VIEWPORTS[2], 1, 1)]


def _check_equal(
    index: PointIndex, points: pd.DataFrame, df: Any, cases: list[tuple[Viewport, int, int]]
) -> None:
    """Every colour, for each (viewport, with mask?, with highlight?) in ``cases``."""
    mask, hl = points["m"].to_numpy(), np.flatnonzero(points["h"].to_numpy())
    for name, color in _colors(points):
        column = "c" if isinstance(color, CategoricalColor) else "v"
        for vp, use_mask, use_hl in cases:
            m, h = (mask if use_mask else None), (hl if use_hl else None)
            ours = render(index, vp, color=color, mask=m, highlight=h)
            theirs = render_frame_dataframe(
                df,
                vp,
                color=color,
                color_column=column,
                mask_column="m" if use_mask else None,
                highlight_column="h" if use_hl else None,
            )
            assert ours.n_in_view > 0, (name, vp)
            assert (ours.n_highlight_in_view > 0) == bool(use_hl), (name, vp)
            _assert_same(ours, theirs)


def test_pandas_frames_equal_index_frames(index, points) -> None:
    _check_equal(index, points, points, ALL_CASES)


def test_legend_and_counts_equal_datashader(index, points) -> None:
    import datashader as ds

    vp = VIEWPORTS[1]
    color = categorical_color(points["c"].to_numpy(), [f"c{i}" for i in range(N_CATS)], top=3)
    frame = render_frame_dataframe(points, vp, color=color, color_column="c")
    cvs = ds.Canvas(vp.width, vp.height, x_range=(vp.x0, vp.x1), y_range=(vp.y0, vp.y1))
    df = points.assign(cat=pd.Categorical(points["c"], categories=range(N_CATS)))
    per_code = cvs.points(df, "x", "y", ds.by("cat", ds.count())).values.sum(axis=(0, 1))
    per_slot = np.bincount(color.slot_of_code, weights=per_code, minlength=4)
    assert [e.count for e in frame.legend] == per_slot.astype(int).tolist()
    assert frame.legend[-1].label == "other"
    assert frame.n_in_view == int(per_code.sum())


def test_color_without_per_point_array(index, points) -> None:
    """The DataFrame path reads codes and values from the frame, never from the colour."""
    vp = VIEWPORTS[0]
    full = categorical_color(points["c"].to_numpy(), [f"c{i}" for i in range(N_CATS)], top=4)
    bare = CategoricalColor(np.zeros(0, np.uint8), full.slot_of_code, full.labels, full.colors)
    a = render_frame_dataframe(points, vp, color=full, color_column="c", highlight_column="h")
    b = render_frame_dataframe(points, vp, color=bare, color_column="c", highlight_column="h")
    _assert_same(a, b)
    numeric = NumericColor(np.zeros(0, np.float32), span=(-1.0, 1.0))
    ours = render(index, vp, color=NumericColor(points["v"].to_numpy(), span=(-1.0, 1.0)))
    _assert_same(ours, render_frame_dataframe(points, vp, color=numeric, color_column="v"))


def test_bad_dataframe_input(points) -> None:
    vp = VIEWPORTS[0]
    color = categorical_color(points["c"].to_numpy(), [f"c{i}" for i in range(N_CATS)])
    with pytest.raises(InputError, match="color_column"):
        render_frame_dataframe(points, vp, color=color)
    with pytest.raises(InputError, match="'nope' is not in the DataFrame"):
        render_frame_dataframe(points, vp, x="nope")
    with pytest.raises(InputError, match="mask column 'v' must be bool"):
        render_frame_dataframe(points, vp, mask_column="v")
    with pytest.raises(InputError, match="colour column 'v' must be integer codes"):
        render_frame_dataframe(points, vp, color=color, color_column="v")
    small = CategoricalColor(np.zeros(0, np.uint8), np.arange(3), ("a", "b", "c"), color.colors[:3])
    with pytest.raises(InputError, match=r"outside the codes \[0, 3\)"):
        render_frame_dataframe(points, vp, color=small, color_column="c")


def _tiles(points: pd.DataFrame, side: int) -> list[pd.DataFrame]:
    """The points cut into ``side`` x ``side`` tiles of their extent (as a partitioned store
    lays them out), plus empty partitions; most tiles miss the smaller viewports."""
    x, y = points["x"].to_numpy(), points["y"].to_numpy()
    tx = np.clip(((x - x.min()) / np.ptp(x) * side).astype(int), 0, side - 1)
    ty = np.clip(((y - y.min()) / np.ptp(y) * side).astype(int), 0, side - 1)
    tile = ty * side + tx
    parts = [points[tile == t].reset_index(drop=True) for t in range(side * side)]
    return [points.iloc[:0], *parts, points.iloc[:0]]


def test_dask_frames_equal_index_frames(dask_client, index, points) -> None:
    import dask.dataframe as dd

    parts = _tiles(points, 4)
    assert sum(len(p) == 0 for p in parts) >= 2
    tiled = dd.from_map(lambda p: p, parts, meta=points.iloc[:0], divisions=None)
    assert tiled.npartitions == len(parts)
    _check_equal(index, points, tiled, DASK_CASES)
