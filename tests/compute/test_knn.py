"""kNN graph: exact on a grid, self first with duplicates, recall measured honestly."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.compute.knn import exact_neighbors, knn_graph, knn_recall
from explorer.errors import ConfigError


def _grid(side: int = 12) -> np.ndarray:
    xy = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)
    # A tiny jitter breaks the grid's distance ties, so the answer is unique.
    jitter = np.random.default_rng(0).normal(scale=1e-3, size=xy.shape)
    return (xy + jitter).astype(np.float32)


def test_grid_neighbours_are_exact() -> None:
    x = _grid()
    graph = knn_graph(x, 5)
    assert graph.indices.shape == (144, 5)
    assert (graph.indices[:, 0] == np.arange(144)).all()
    assert (graph.distances[:, 0] == 0).all()
    # An interior point's 4 nearest are its grid neighbours at distance ~1.
    i = 5 * 12 + 5
    assert set(graph.indices[i, 1:]) == {i - 1, i + 1, i - 12, i + 12}
    np.testing.assert_allclose(graph.distances[i, 1:], 1.0, atol=0.01)
    assert (np.diff(graph.distances, axis=1) >= 0).all()


def test_nndescent_agrees_with_exact_on_easy_data() -> None:
    x = _grid(40)
    graph = knn_graph(x, 8, exact_limit=100)
    assert graph.method == "nndescent"
    assert (graph.indices[:, 0] == np.arange(len(x))).all()
    assert knn_recall(x, graph.indices, sample=300) >= 0.98


def test_duplicates_keep_self_first() -> None:
    x = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    x[:60] = x[0]
    graph = knn_graph(x, 10)
    assert (graph.indices[:, 0] == np.arange(200)).all()
    assert knn_recall(x, graph.indices) == 1.0


def test_k_is_capped_at_n() -> None:
    x = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    graph = knn_graph(x, 15)
    assert graph.indices.shape == (6, 6)
    assert graph.params["n_neighbors"] == 6


def test_cosine_matches_definition() -> None:
    x = np.random.default_rng(3).normal(size=(50, 5)).astype(np.float32)
    graph = knn_graph(x, 4, "cosine")
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = 1.0 - unit @ unit.T
    for i in range(50):
        order = np.argsort(expected[i], kind="stable")[:4]
        np.testing.assert_allclose(graph.distances[i], expected[i, order], atol=1e-5)
    with pytest.raises(ConfigError, match="all-zero"):
        knn_graph(np.zeros((5, 3), dtype=np.float32), 3, "cosine")


def test_recall_counts_wrong_neighbours() -> None:
    x = _grid()
    good = knn_graph(x, 5).indices
    bad = good.copy()
    bad[:, 1:] = np.roll(bad[:, 1:], 7, axis=0)  # other points' neighbours
    assert knn_recall(x, good) == 1.0
    assert knn_recall(x, bad) < 0.5


def test_exact_neighbors_breaks_ties_by_row() -> None:
    x = np.zeros((5, 2), dtype=np.float32)
    idx, dist = exact_neighbors(x, x, 3)
    assert idx.tolist() == [[0, 1, 2]] * 5
    assert (dist == 0).all()
