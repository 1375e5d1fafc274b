"""Squarified treemap rectangles: areas follow sizes, stay in the box and never overlap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.errors import InputError
from explorer.render.treemap import children_index, treemap_layout, treemap_rects

EPS = 1e-9


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def assert_tiles(rects: np.ndarray, sizes: np.ndarray, box: tuple[float, ...]) -> None:
    """Areas proportional to sizes, inside the box, pairwise disjoint."""
    x, y, w, h = box
    area = rects[:, 2] * rects[:, 3]
    np.testing.assert_allclose(area, sizes / sizes.sum() * w * h, rtol=1e-9, atol=EPS)
    assert (rects[:, 2] >= 0).all()
    assert (rects[:, 3] >= 0).all()
    assert (rects[:, 0] >= x - EPS).all()
    assert (rects[:, 1] >= y - EPS).all()
    assert (rects[:, 0] + rects[:, 2] <= x + w + EPS).all()
    assert (rects[:, 1] + rects[:, 3] <= y + h + EPS).all()
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            assert overlap_area(rects[i], rects[j]) <= EPS * w * h


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.just(0), st.integers(1, 10_000)), min_size=1, max_size=40).filter(
        lambda s: sum(s) > 0
    ),
    st.floats(0.1, 10.0),
    st.floats(0.1, 10.0),
)
def test_rects_tile_the_box(sizes, w, h) -> None:
    sizes_arr = np.array(sizes, float)
    rects = treemap_rects(sizes_arr, 2.0, -1.0, w, h)
    assert rects.shape == (len(sizes), 4)
    assert_tiles(rects, sizes_arr, (2.0, -1.0, w, h))
    zero = sizes_arr == 0
    np.testing.assert_array_equal(rects[zero], np.tile([2.0, -1.0, 0.0, 0.0], (zero.sum(), 1)))


def test_rects_keep_input_order() -> None:
    rects = treemap_rects([1, 6, 3], 0, 0, 1, 1)
    areas = rects[:, 2] * rects[:, 3]
    np.testing.assert_allclose(areas, [0.1, 0.6, 0.3])
    assert not treemap_rects([0, 0], 0, 0, 1, 1)[:, 2:].any()
    assert treemap_rects([], 0, 0, 1, 1).shape == (0, 4)
    with pytest.raises(InputError, match="sizes"):
        treemap_rects([1, -1], 0, 0, 1, 1)


@pytest.fixture
def tree() -> tuple[np.ndarray, np.ndarray]:
    """Root 0 -> 1, 2, 3; 1 -> 4, 5; 2 -> 6, 7, 8; 3 is a leaf; 6 -> 9 (depth 3)."""
    parent = np.array([-1, 0, 0, 0, 1, 1, 2, 2, 2, 6])
    size = np.array([100, 50, 30, 20, 40, 10, 15, 10, 5, 15])
    return parent, size


def test_children_index(tree) -> None:
    order, offsets = children_index(tree[0])
    assert order[offsets[0] : offsets[1]].tolist() == [1, 2, 3]
    assert order[offsets[2] : offsets[3]].tolist() == [6, 7, 8]
    assert offsets[4] == offsets[3]  # node 3 has no children


def test_two_level_layout(tree) -> None:
    parent, size = tree
    box = (0.0, 0.0, 2.0, 1.0)
    layout = treemap_layout(parent, size, 0, box=box, pad=0.01, header=0.02)
    assert layout.nodes.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert layout.depth.tolist() == [1, 1, 1, 2, 2, 2, 2, 2]
    kids = layout.depth == 1
    assert_tiles(layout.rects[kids], size[layout.nodes[kids]].astype(float), box)
    for kid, rect in zip(layout.nodes[kids], layout.rects[kids], strict=True):
        grand = np.isin(layout.nodes, np.flatnonzero(parent == kid))
        if not grand.any():
            continue
        inner = (rect[0] + 0.01, rect[1] + 0.01, rect[2] - 0.02, rect[3] - 0.04)
        assert_tiles(layout.rects[grand], size[layout.nodes[grand]].astype(float), inner)
    # Zooming into a node lays out its own subtree.
    sub = treemap_layout(parent, size, 2)
    assert sub.nodes.tolist() == [6, 7, 8, 9]
    with pytest.raises(InputError, match="not in the hierarchy"):
        treemap_layout(parent, size, 10)
    with pytest.raises(InputError, match="one per node"):
        treemap_layout(parent, size[:-1], 0)
