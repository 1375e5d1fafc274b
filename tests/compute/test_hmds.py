"""Known answers for h-MDS: exact recovery, trees, Sarkar, disconnected graphs, duplicates."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra, shortest_path
from sklearn.neighbors import NearestNeighbors

from explorer.compute import hmds_graph
from explorer.compute.hmds import choose_tau, hmds_exact, hmds_layout, place_out_of_sample
from explorer.compute.hmds_graph import (
    connect_components,
    landmark_distances,
    landmark_labels,
    symmetric_knn_graph,
)
from explorer.compute.hmds_refine import hmds_refine
from explorer.compute.hyperbolic import (
    average_distortion,
    hyperboloid_to_poincare,
    hyperboloid_to_tangent,
    lorentz_recentre,
    mean_average_precision,
    pairwise_poincare_distances,
    poincare_distance,
    poincare_to_hyperboloid,
    poincare_to_tangent,
    sarkar_tree_embedding,
    tangent_to_poincare,
    to_poincare,
    worst_distortion,
)
from explorer.errors import ConfigError, InputError


def _hyperbolic_points(n: int, seed: int) -> np.ndarray:
    """Poincaré points from a Gaussian in tangent coordinates, off-centre on purpose."""
    rng = np.random.default_rng(seed)
    return tangent_to_poincare(rng.normal(size=(n, 2)) * 1.5 + np.array([2.0, 0.5]))


def _balanced_tree(branching: int, depth: int) -> np.ndarray:
    parent = [-1]
    frontier = [0]
    for _ in range(depth):
        nxt = []
        for v in frontier:
            for _ in range(branching):
                parent.append(v)
                nxt.append(len(parent) - 1)
        frontier = nxt
    return np.array(parent)


Tree = tuple[np.ndarray, sp.csr_matrix, np.ndarray]


@pytest.fixture(scope="module")
def tree() -> Tree:
    """Ternary tree of depth 5 (364 nodes): parent array, adjacency, shortest paths."""
    parent = _balanced_tree(3, 5)
    m = parent.size
    adj = sp.csr_matrix((np.ones(m - 1), (np.arange(1, m), parent[1:])), shape=(m, m))
    adj = (adj + adj.T).tocsr()
    return parent, adj, shortest_path(adj, directed=False)


def _knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist, ind = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    return ind.astype(np.int32), dist.astype(np.float32)


def _blobs(n_per: int, n_blobs: int, gap: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, 6)) * gap
    labels = np.repeat(np.arange(n_blobs), n_per)
    # Two strong directions per blob: locally low-dimensional, as real embeddings tend to be.
    noise = rng.normal(size=(labels.size, 6)) * np.array([3.0, 2.0, 0.3, 0.3, 0.3, 0.3])
    return centres[labels] + noise, labels


# --- geometry ---------------------------------------------------------------------------


def test_poincare_distance_is_precise_near_the_boundary_and_for_close_points() -> None:
    ray = np.array([1.0, 0.0])
    far = poincare_distance(np.tanh(10.0) * ray, np.tanh(10.0005) * ray)  # radii 20 and 20.001
    assert far == pytest.approx(1e-3, rel=1e-5)
    near = poincare_distance(np.zeros(2), np.tanh(0.5e-9) * ray)
    assert near == pytest.approx(1e-9, rel=1e-9)


def test_model_conversions_round_trip() -> None:
    p = _hyperbolic_points(50, seed=1)
    x = poincare_to_hyperboloid(p)
    np.testing.assert_allclose(hyperboloid_to_poincare(x), p, atol=1e-12)
    np.testing.assert_allclose(tangent_to_poincare(poincare_to_tangent(p)), p, atol=1e-12)
    np.testing.assert_allclose(tangent_to_poincare(hyperboloid_to_tangent(x)), p, atol=1e-12)
    r = np.linalg.norm(poincare_to_tangent(p), axis=1)
    np.testing.assert_allclose(r, poincare_distance(p, np.zeros(2)), rtol=1e-12)


def test_to_poincare_keeps_float32_points_strictly_inside() -> None:
    x = np.array([[1e30, 0.0], [0.0, -1e8], [3.0, 4.0]])
    p = to_poincare(x)
    assert p.dtype == np.float32
    assert np.all(np.linalg.norm(p.astype(np.float64), axis=1) < 1.0)


def test_lorentz_recentre_is_an_isometry_that_centres() -> None:
    p = _hyperbolic_points(80, seed=2)
    x = lorentz_recentre(poincare_to_hyperboloid(p))
    np.testing.assert_allclose(
        pairwise_poincare_distances(hyperboloid_to_poincare(x)),
        pairwise_poincare_distances(p),
        atol=1e-9,
    )
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-9)


# --- h-MDS --------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_hmds_exact_recovers_hyperbolic_points(tau: float) -> None:
    p = _hyperbolic_points(150, seed=0)
    d = pairwise_poincare_distances(p)
    x = hmds_exact(d / tau, tau)  # τ·D is the hyperbolic distance again
    recovered = pairwise_poincare_distances(hyperboloid_to_poincare(x))
    np.testing.assert_allclose(recovered, d, atol=1e-8 * d.max())


@pytest.mark.parametrize("n_anchors", [None, 6])
def test_out_of_sample_places_points_exactly(n_anchors: int | None) -> None:
    p = _hyperbolic_points(120, seed=3)
    lm, new = p[:100], p[100:]
    dist = poincare_distance(new[:, None, :], lm[None, :, :])
    x = place_out_of_sample(poincare_to_hyperboloid(lm), dist, 1.0, n_anchors=n_anchors)
    np.testing.assert_allclose(hyperboloid_to_poincare(x), new, atol=1e-7)


def test_refinement_restores_the_local_order_of_a_tree(tree: Tree) -> None:
    _, adj, d = tree
    tau = 1.0
    plain = hyperboloid_to_poincare(lorentz_recentre(hmds_exact(d, tau)))
    refined = hmds_refine(plain, d, tau, steps=2000, seed=0)
    map_plain, map_refined = (
        mean_average_precision(plain, adj),
        mean_average_precision(refined, adj),
    )
    dist_plain, dist_refined = (
        average_distortion(plain, d, tau),
        average_distortion(refined, d, tau),
    )
    # Measured: plain MAP 0.045, distortion 0.28; refined MAP 0.79, distortion 0.13.
    assert map_plain < 0.1
    assert dist_plain > 0.25
    assert map_refined >= 0.7
    assert dist_refined <= 0.15
    assert np.all(np.linalg.norm(refined, axis=1) < 1.0)


def test_choose_tau_stays_in_the_searched_range(tree: Tree) -> None:
    _, _, d = tree
    fit, hold = np.arange(0, 364, 2), np.arange(1, 364, 10)
    tau, distortion, x = choose_tau(d[np.ix_(fit, fit)], d[np.ix_(hold, fit)])
    assert 0.5 / 10 <= tau <= 20 / 10  # τ·diameter in [0.5, 20]; the diameter is 10
    assert distortion < 0.4
    assert x.shape == (fit.size, 2)


def test_sarkar_embeds_the_tree_with_exact_edge_lengths(tree: Tree) -> None:
    parent, adj, d = tree
    z = sarkar_tree_embedding(parent, edge_length=2.0)
    assert z.shape == (364, 2)
    np.testing.assert_allclose(z[0], 0.0)
    np.testing.assert_allclose(poincare_distance(z[1:], z[parent[1:]]), 2.0, rtol=1e-9)
    assert mean_average_precision(z, adj) >= 0.98
    assert average_distortion(z, d, 2.0) < 0.2
    assert worst_distortion(z, d, 2.0) < 2.0


def test_sarkar_rejects_a_forest() -> None:
    with pytest.raises(InputError, match="roots"):
        sarkar_tree_embedding(np.array([-1, 0, -1]))


# --- graph distances ------------------------------------------------------------------


def test_landmark_labels_are_the_exact_nearest_sources() -> None:
    x, _ = _blobs(100, 2, gap=0.5, seed=4)
    graph, _ = connect_components(symmetric_knn_graph(*_knn(x, 8)), x, seed=0)
    sources = np.arange(0, 200, 9)
    ids, dist = landmark_labels(graph, sources, n_labels=4)
    exact = dijkstra(graph, directed=False, indices=sources).T  # (n, m)
    np.testing.assert_allclose(dist, np.sort(exact, axis=1)[:, :4], rtol=1e-12)
    np.testing.assert_allclose(np.take_along_axis(exact, ids.astype(np.int64), 1), dist, rtol=1e-12)


def test_label_landmark_distances_bound_the_geodesics(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = _blobs(150, 2, gap=0.5, seed=5)
    graph, _ = connect_components(symmetric_knn_graph(*_knn(x, 10)), x, seed=0)
    lm = np.arange(0, 300, 6)
    exact = landmark_distances(graph, x, lm, "geodesic").fit
    monkeypatch.setattr(hmds_graph, "EXACT_LIMIT", 0)
    approx = landmark_distances(graph, x, lm, "geodesic").fit
    off = ~np.eye(lm.size, dtype=bool)
    assert np.all(approx[off] >= exact[off] - 1e-9)
    assert np.median(approx[off] / exact[off]) < 1.05


def test_disconnected_graph_is_connected_through_closest_pairs() -> None:
    x, _ = _blobs(60, 4, gap=60.0, seed=6)
    graph = symmetric_knn_graph(*_knn(x, 6))
    assert connected_components(graph, directed=False)[0] >= 4
    joined, n_before = connect_components(graph, x, seed=0)
    assert n_before >= 4
    assert connected_components(joined, directed=False)[0] == 1
    assert joined.nnz - graph.nnz == 2 * (n_before - 1)  # a spanning set of bridges, both ways
    assert np.all(np.isfinite(dijkstra(joined, directed=False, indices=[0])))


# --- the stage ------------------------------------------------------------------------


def test_layout_keeps_far_apart_clusters_apart() -> None:
    x, labels = _blobs(150, 5, gap=60.0, seed=7)
    ind, dist = _knn(x, 10)
    assert connected_components(symmetric_knn_graph(ind, dist), directed=False)[0] > 1
    result = hmds_layout(x, ind, dist, n_landmarks=150, refine_steps=500, seed=0)
    coords = result.coords
    assert coords.shape == (750, 2)
    assert coords.dtype == np.float32
    assert np.all(np.isfinite(coords))
    assert np.all(np.linalg.norm(coords.astype(np.float64), axis=1) < 1.0)
    d = pairwise_poincare_distances(coords)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) >= 0.95
    assert result.tau > 0
    assert result.landmarks.dtype == np.int64
    assert result.landmarks.size + result.holdout.size <= 150
    assert result.distortion < result.distortion_mds
    again = hmds_layout(x, ind, dist, n_landmarks=150, refine_steps=500, seed=0)
    np.testing.assert_array_equal(again.coords, coords)


def test_layout_euclidean_distances_with_every_point_a_landmark() -> None:
    x, labels = _blobs(80, 3, gap=30.0, seed=8)
    ind, dist = _knn(x, 8)
    result = hmds_layout(x, ind, dist, distance="euclidean", refine_steps=300)
    d = pairwise_poincare_distances(result.coords)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) >= 0.95
    assert result.distortion < 0.3


def test_layout_survives_duplicated_points() -> None:
    x, _ = _blobs(100, 2, gap=20.0, seed=9)
    # Every point twice, plus one point repeated more often than k (its own component).
    x = np.concatenate([x, x, np.repeat(x[:1] + 100.0, 12, axis=0)])
    ind, dist = _knn(x, 8)
    result = hmds_layout(x, ind, dist, n_landmarks=120, refine_steps=200)
    assert np.all(np.isfinite(result.coords))
    assert np.all(np.linalg.norm(result.coords.astype(np.float64), axis=1) < 1.0)
    assert np.isfinite(result.distortion)


def test_layout_of_identical_points_is_the_origin() -> None:
    x = np.ones((20, 3))
    ind = np.tile(np.arange(5, dtype=np.int32), (20, 1))
    ind[:, 0] = np.arange(20)
    result = hmds_layout(x, ind, np.zeros((20, 5), np.float32), refine_steps=10)
    np.testing.assert_array_equal(result.coords, 0.0)


def test_layout_rejects_bad_inputs() -> None:
    x, _ = _blobs(20, 2, gap=5.0, seed=10)
    ind, dist = _knn(x, 5)
    with pytest.raises(ConfigError, match="geodesic"):
        hmds_layout(x, ind, dist, distance="cosine")
    with pytest.raises(InputError, match="knn_indices"):
        hmds_layout(x, ind + 40, dist)
    bad = dist.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="row 3"):
        hmds_layout(x, ind, bad)


def test_layout_reports_progress() -> None:
    x, _ = _blobs(50, 2, gap=20.0, seed=11)
    seen: list[float] = []
    hmds_layout(x, *_knn(x, 6), refine_steps=100, on_progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("distance", ["geodesic", "euclidean"])
def test_layout_through_landmark_labels(monkeypatch: pytest.MonkeyPatch, distance: str) -> None:
    """The large-n path (labels instead of Dijkstra from every landmark) on a small problem."""
    monkeypatch.setattr(hmds_graph, "EXACT_LIMIT", 0)
    x, labels = _blobs(120, 4, gap=40.0, seed=12)
    ind, dist = _knn(x, 10)
    result = hmds_layout(x, ind, dist, n_landmarks=100, distance=distance, refine_steps=400)
    assert np.all(np.linalg.norm(result.coords.astype(np.float64), axis=1) < 1.0)
    d = pairwise_poincare_distances(result.coords)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) >= 0.95
    assert result.distortion < 0.2


def test_layout_is_centred_in_the_disk() -> None:
    from explorer.compute.hmds import hmds_layout
    from explorer.compute.knn import knn_graph

    rng = np.random.default_rng(7)
    # An off-centre, lopsided cloud: the layout must still sit around the origin.
    x = np.vstack([rng.normal(0, 1, (300, 6)), rng.normal(5, 0.5, (60, 6))]).astype(np.float32)
    g = knn_graph(x, 10)
    coords = hmds_layout(x, g.indices, g.distances, n_landmarks=80, refine_steps=200).coords
    spatial = 2 * coords / (1 - (coords**2).sum(axis=1, keepdims=True))
    assert np.linalg.norm(spatial.mean(axis=0)) < 0.05 * np.linalg.norm(spatial, axis=1).mean()
