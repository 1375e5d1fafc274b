"""Trust (identity layout = 1), streaming PCA (= numpy SVD) and UMAP on the stored graph."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.compute.knn import knn_graph
from explorer.compute.pca import pca_reduce
from explorer.compute.trust import layout_trust
from explorer.compute.umap_layout import umap_layout
from explorer.errors import ConfigError


def test_identity_layout_has_trust_one() -> None:
    x = np.random.default_rng(0).uniform(size=(400, 2)).astype(np.float32)
    graph = knn_graph(x, 10)
    trust = layout_trust(x, graph.indices)
    assert trust.dtype == np.float32
    assert (trust == 1.0).all()


def test_scrambled_layout_has_low_trust() -> None:
    x = np.random.default_rng(1).uniform(size=(400, 2)).astype(np.float32)
    graph = knn_graph(x, 10)
    shuffled = x[np.random.default_rng(2).permutation(400)]
    assert layout_trust(shuffled, graph.indices).mean() < 0.1


def test_trust_counts_by_hand() -> None:
    coords = np.array([[0, 0], [0.9, 0], [2, 0], [10, 0]], dtype=np.float32)
    high = np.array([[0, 3], [1, 0], [2, 1], [3, 2]], dtype=np.int32)
    trust = layout_trust(coords, high)
    # point 0's high-D neighbour 3 is far in 2-D; the others' neighbours are nearest.
    assert trust.tolist() == [0.0, 1.0, 1.0, 1.0]


def test_pca_matches_svd() -> None:
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(1000, 20)) @ rng.normal(size=(20, 20))).astype(np.float32)
    result = pca_reduce(x, 5, chunk_rows=128)
    centred = x.astype(np.float64) - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result.explained_variance, s[:5] ** 2 / 1000, rtol=1e-4)
    for a, b in zip(result.components, vt[:5], strict=True):
        assert abs(abs(float(a @ b)) - 1.0) < 1e-4
    np.testing.assert_allclose(result.vectors, centred @ result.components.T, atol=1e-3)
    with pytest.raises(ConfigError, match="smaller than"):
        pca_reduce(x, 20)


def test_umap_uses_graph_and_separates_blobs() -> None:
    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(c, 1.0, size=(100, 6)) for c in (0, 20, 40)]).astype(np.float32)
    graph = knn_graph(x, 10)
    indices = graph.indices.copy()
    indices.setflags(write=False)  # the store's arrays are read-only memory maps
    coords = umap_layout(x, indices, graph.distances, n_epochs=50, seed=0)
    assert coords.shape == (300, 2)
    assert coords.dtype == np.float32
    again = umap_layout(x, indices, graph.distances, n_epochs=50, seed=0)
    np.testing.assert_array_equal(coords, again)
    labels = np.repeat(np.arange(3), 100)
    low = knn_graph(coords, 2).indices[:, 1]
    assert (labels[low] == labels).mean() >= 0.99


def test_umap_survives_many_duplicates() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    x[:120] = x[0]
    graph = knn_graph(x, 10)
    coords = umap_layout(x, graph.indices, graph.distances, n_epochs=30, seed=0)
    assert np.isfinite(coords).all()
