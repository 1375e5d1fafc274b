"""Box and lasso hit-tests equal a brute-force ray-casting reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.errors import InputError
from explorer.render import hittest
from explorer.render.hittest import points_in_box, points_in_polygon
from explorer.render.index import PointIndex


def reference_in_polygon(coords: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Plain even-odd ray casting in float64 over every edge (W. R. Franklin's pnpoly)."""
    x = coords[:, 0].astype(np.float64)
    y = coords[:, 1].astype(np.float64)
    inside = np.zeros(x.size, bool)
    m = len(px)
    for i in range(m):
        j = (i + 1) % m
        xi, yi, xj, yj = float(px[i]), float(py[i]), float(px[j]), float(py[j])
        crosses = (yi > y) != (yj > y)
        if yj == yi:
            continue
        # Tiny (subnormal) edge heights overflow to inf: IEEE arithmetic, same as the kernel.
        with np.errstate(over="ignore", invalid="ignore"):
            x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
        inside ^= crosses & (x < x_cross)
    return np.flatnonzero(inside)


@pytest.fixture(scope="module")
def index(coords) -> PointIndex:
    return PointIndex.build(coords, points_per_cell=16)


@pytest.fixture(scope="module")
def coords() -> np.ndarray:
    rng = np.random.default_rng(5)
    pts = rng.uniform(-0.2, 1.2, size=(3000, 2)).astype(np.float32)
    # Grid points, so some lie exactly on vertex heights and polygon edges.
    g = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    return np.vstack([pts, grid])


def test_square_and_star(coords) -> None:
    square = points_in_polygon(coords, [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(
        square, reference_in_polygon(coords, np.array([0, 1, 1, 0.0]), np.array([0, 0, 1, 1.0]))
    )
    x, y = coords[:, 0], coords[:, 1]
    strictly = np.flatnonzero((x > 0) & (x < 1) & (y > 0) & (y < 1))
    assert set(strictly) <= set(square)
    # A pentagram drawn in one stroke: under the even-odd rule its centre is outside.
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    sx, sy = 0.5 + 0.5 * np.cos(angles), 0.5 + 0.5 * np.sin(angles)
    star = points_in_polygon(np.array([[0.5, 0.5], [0.5, 0.93]], np.float32), sx, sy)
    np.testing.assert_array_equal(star, [1])


polygons = st.integers(3, 24).flatmap(
    lambda m: st.tuples(
        st.lists(st.floats(-0.1, 1.1, allow_nan=False), min_size=m, max_size=m),
        st.lists(st.floats(-0.1, 1.1, allow_nan=False), min_size=m, max_size=m),
    )
)


@settings(max_examples=60, deadline=None)
@given(polygons)
def test_polygon_equals_brute_force(coords, index, poly) -> None:
    px, py = np.array(poly[0]), np.array(poly[1])
    expected = reference_in_polygon(coords, px, py)
    got = points_in_polygon(coords, px, py)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    # Through the spatial index (cells under the lasso, in sorted order): same answer.
    np.testing.assert_array_equal(points_in_polygon(index, px, py), expected)


@settings(max_examples=25, deadline=None)
@given(polygons, st.integers(0, 2**32 - 1))
def test_polygon_with_mask(coords, index, poly, seed) -> None:
    px, py = np.array(poly[0]), np.array(poly[1])
    mask = np.random.default_rng(seed).random(coords.shape[0]) < 0.5
    expected = np.intersect1d(reference_in_polygon(coords, px, py), np.flatnonzero(mask))
    np.testing.assert_array_equal(points_in_polygon(coords, px, py, mask=mask), expected)
    np.testing.assert_array_equal(points_in_polygon(index, px, py, mask=mask), expected)


def test_chunked_run_equals_single(coords, index, monkeypatch) -> None:
    px = np.array([0.1, 0.9, 0.2, 0.8, 0.5])
    py = np.array([0.1, 0.3, 0.9, 0.95, 0.0])
    single = points_in_polygon(coords, px, py)
    box = points_in_box(coords, 0.2, 0.7, 0.1, 0.4)
    monkeypatch.setattr(hittest, "_PARALLEL_MIN", 0)
    np.testing.assert_array_equal(points_in_polygon(coords, px, py), single)
    np.testing.assert_array_equal(points_in_polygon(index, px, py), single)
    np.testing.assert_array_equal(points_in_box(coords, 0.7, 0.2, 0.4, 0.1), box)
    np.testing.assert_array_equal(points_in_box(index, 0.2, 0.7, 0.1, 0.4), box)


def test_box_equals_brute_force(coords) -> None:
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    expected = np.flatnonzero((x >= 0.2) & (x <= 0.7) & (y >= 0.1) & (y <= 0.4))
    np.testing.assert_array_equal(points_in_box(coords, 0.7, 0.2, 0.1, 0.4), expected)
    mask = np.arange(coords.shape[0]) % 3 == 0
    np.testing.assert_array_equal(
        points_in_box(coords, 0.2, 0.7, 0.1, 0.4, mask=mask), expected[mask[expected]]
    )


def test_degenerate_and_invalid() -> None:
    pts = np.zeros((4, 2), np.float32)
    assert points_in_polygon(pts, [0.0, 1.0], [0.0, 1.0]).size == 0
    assert points_in_polygon(pts, [0.0, 1.0, 2.0], [1.0, 1.0, 1.0]).size == 0
    with pytest.raises(InputError, match="lasso"):
        points_in_polygon(pts, [0.0, 1.0, 2.0], [1.0, 1.0])
    with pytest.raises(InputError, match="finite"):
        points_in_polygon(pts, [0.0, 1.0, np.nan], [1.0, 1.0, 0.0])
    with pytest.raises(InputError, match="mask"):
        points_in_box(pts, 0, 1, 0, 1, mask=np.ones(3, bool))
