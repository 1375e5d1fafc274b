"""The pure pieces a sharded (Dask) build calls: per block, they add up to the whole."""

from __future__ import annotations

import numpy as np

from explorer.compute.intrinsic import local_dim_from_parts, local_dim_parts, local_intrinsic_dim
from explorer.compute.knn import knn_graph
from explorer.compute.knn_merge import merge_candidates, nearest_centres_m, partition_members
from explorer.compute.outliers import outlier_scores
from explorer.compute.pca import chunk_moments, pca_axes, pca_project, pca_reduce
from explorer.compute.placement import (
    membership_weights,
    propagate_positions,
    refine_positions,
    spatial_tiles,
)
from explorer.compute.trust import layout_trust, layout_trust_rows


def _blobs(n: int = 300, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (3, d))
    return (centres[rng.integers(0, 3, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def test_pca_from_chunk_moments_is_pca_reduce() -> None:
    x = _blobs(500, 8)
    whole = pca_reduce(x, 3, chunk_rows=128)
    sums, gram = np.zeros(8), np.zeros((8, 8))
    for s in range(0, 500, 128):
        a, b = chunk_moments(x[s : s + 128])
        sums += a
        gram += b
    axes = pca_axes(sums, gram, 500, 3)
    vectors = np.concatenate([pca_project(x[s : s + 128], axes) for s in range(0, 500, 128)])
    assert np.array_equal(vectors, whole.vectors)
    assert np.array_equal(axes.components.astype(np.float32), whole.components)


def test_row_blocks_add_up_to_the_whole_graph() -> None:
    x = _blobs()
    x[10:20] = x[20]  # 11 copies: no positive neighbour distance, no local dimension
    g = knn_graph(x, 10)
    coords = x[:, :2].copy()
    blocks = [(0, 70), (70, 200), (200, 300)]
    trust = np.concatenate([layout_trust_rows(coords, g.indices[a:b], a) for a, b in blocks])
    assert np.array_equal(trust, layout_trust(coords, g.indices))
    spread = np.concatenate(
        [outlier_scores(g.indices[a:b], g.distances[a:b], 0.5, row_offset=a) for a, b in blocks]
    )
    assert np.array_equal(spread, outlier_scores(g.indices, g.distances, 0.5))
    parts = [local_dim_parts(g.distances[a:b]) for a, b in blocks]
    local = local_dim_from_parts(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    assert not np.concatenate([p[1] for p in parts]).all()  # the global fallback is used
    assert np.array_equal(local, local_intrinsic_dim(g.distances))


def test_merge_keeps_the_nearest_distinct_candidates_self_first() -> None:
    idx = np.array([[1, 2, 0, 2, 3, -1], [0, 1, 2, 3, 3, 2]])
    dist = np.array([[1.0, 2.0, 0.0, 2.0, 0.5, 9.0], [1.0, 0.0, 3.0, 2.0, 2.0, 3.0]])
    out_i, out_d, count = merge_candidates(idx, dist, 4)
    assert out_i.tolist() == [[0, 3, 1, 2], [1, 0, 3, 2]]
    assert out_d.tolist() == [[0.0, 0.5, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]]
    assert count.tolist() == [4, 4]
    few_i, _, few = merge_candidates(np.array([[0, 1, 1]]), np.zeros((1, 3)), 3)
    assert few.tolist() == [2]
    assert few_i.tolist() == [[0, 1, -1]]


def test_partitions_hold_each_point_in_its_nearest_centres() -> None:
    x = np.array([[0.0, 0], [1, 0], [10, 0], [11, 0]], dtype=np.float32)
    centres = np.array([[0.0, 0], [10, 0], [5, 0]], dtype=np.float32)
    assign = nearest_centres_m(x, centres, 2)
    assert assign.tolist() == [[0, 2], [0, 2], [1, 2], [1, 2]]
    members = partition_members(assign, 3)
    assert [m.tolist() for m in members] == [[0, 1], [2, 3], [0, 1, 2, 3]]


def test_spatial_tiles_cover_every_point_once() -> None:
    coords = np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32)
    tiles = spatial_tiles(coords, 9)
    assert len(tiles) == 9
    assert np.array_equal(np.sort(np.concatenate(tiles)), np.arange(1000))
    assert max(len(t) for t in tiles) - min(len(t) for t in tiles) <= 2


def test_propagation_reaches_every_connected_point() -> None:
    # a chain 0-1-2-3 with only 0 placed, and a pair 4-5 that nothing placed reaches
    idx = np.array([[0, 1], [1, 0], [2, 1], [3, 2], [4, 5], [5, 4]])
    w = np.ones((6, 2), dtype=np.float32)
    coords = np.zeros((6, 2), dtype=np.float32)
    coords[0] = [3.0, 4.0]
    placed = np.array([True, False, False, False, False, False])
    out, done = propagate_positions(coords, placed, idx, w)
    assert done.tolist() == [True, True, True, True, False, False]
    assert np.allclose(out[:4], [3.0, 4.0])


def test_refine_moves_only_the_given_rows() -> None:
    x = _blobs(200, 4)
    g = knn_graph(x, 10)
    w = membership_weights(g.indices, g.distances)
    assert (w[:, 0] == 0).all()
    assert (w[:, 1:] > 0).all()
    coords = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    rows = np.arange(50, 120)
    moved = refine_positions(coords, rows, g.indices[rows], w[rows], n_epochs=20, seed=0)
    assert moved.shape == (70, 2)
    assert not np.allclose(moved, coords[rows])
    again = refine_positions(coords, rows, g.indices[rows], w[rows], n_epochs=20, seed=0)
    assert np.array_equal(moved, again)
