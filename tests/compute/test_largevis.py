"""LargeVis: calibrated edge weights and the sampled layout, on small seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from explorer.compute.largevis import (
    largevis_layout,
    largevis_weights,
    perplexity_probabilities,
)
from explorer.compute.placement import largevis_refine
from explorer.compute.trust import layout_trust
from explorer.errors import ConfigError, InputError


def _knn(x: NDArray[np.floating], k: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Exact kNN in the project's convention: column 0 is the point itself at distance 0."""
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    for i in range(len(x)):  # with duplicates sklearn may list a twin before the point
        row = [i, *(j for j in idx[i] if j != i)][:k]
        idx[i] = row
        dist[i, 0] = 0.0
    return idx.astype(np.int32), dist.astype(np.float32)


def _blobs(n_blobs: int, per_blob: int, dim: int, spread: float, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(n_blobs, dim))
    labels = np.repeat(np.arange(n_blobs), per_blob)
    x = centres[labels] + rng.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels


def _own_blob_share(coords: NDArray[np.float32], labels: NDArray[np.int64]) -> float:
    _, nearest = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    return float(np.mean(labels[nearest[:, 1]] == labels))


@pytest.fixture(scope="module")
def blobs() -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int64]]:
    x, labels = _blobs(5, 100, 10, spread=10.0)
    idx, dist = _knn(x, 15)
    return idx, dist, labels


def test_weights_symmetric_nonnegative_and_sum_to_one() -> None:
    x = np.random.default_rng(1).normal(size=(300, 8))
    idx, dist = _knn(x, 15)
    w = largevis_weights(idx, dist)
    assert w.shape == (300, 300)
    assert abs(w - w.T).max() < 1e-12
    assert w.data.min() > 0
    assert w.sum() == pytest.approx(1.0)
    assert w.diagonal().max() == 0  # no self edges


@pytest.mark.parametrize(("perplexity", "expected"), [(5.0, 5.0), (50.0, 0.9 * 30)])
def test_row_perplexity_reaches_target_or_cap(perplexity: float, expected: float) -> None:
    x = np.random.default_rng(2).normal(size=(400, 6))
    idx, dist = _knn(x, 31)  # 30 neighbours besides the point: the cap is 0.9 * 30
    probs = perplexity_probabilities(idx, dist, perplexity)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.all(probs[:, 0] == 0)  # the point itself
    p = np.where(probs > 0, probs, 1.0)
    row_perplexity = np.exp(-(probs * np.log(p)).sum(axis=1))
    assert np.allclose(row_perplexity, expected, rtol=1e-3)


def test_weights_finite_with_half_duplicates() -> None:
    x = np.random.default_rng(3).normal(size=(100, 5))
    x = np.concatenate([x, x, x[:50]])  # 250 points, 150 of them exact copies
    idx, dist = _knn(x, 8)
    probs = perplexity_probabilities(idx, dist)
    assert np.isfinite(probs).all()
    assert np.allclose(probs.sum(axis=1), 1.0)
    w = largevis_weights(idx, dist)
    assert np.isfinite(w.data).all()
    assert abs(w - w.T).max() < 1e-12


def test_blobs_separate_single_thread(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, labels = blobs
    coords = largevis_layout(idx, dist, parallel=False)
    assert coords.shape == (500, 2)
    assert coords.dtype == np.float32
    assert _own_blob_share(coords, labels) >= 0.95


def test_blobs_separate_in_parallel(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, labels = blobs
    coords = largevis_layout(idx, dist, parallel=True, seed=1)
    assert np.isfinite(coords).all()
    assert _own_blob_share(coords, labels) >= 0.95


def test_same_seed_same_output_single_thread(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, _ = blobs
    a = largevis_layout(idx, dist, samples_per_point=50, parallel=False, seed=7)
    b = largevis_layout(idx, dist, samples_per_point=50, parallel=False, seed=7)
    c = largevis_layout(idx, dist, samples_per_point=50, parallel=False, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_output_centred_and_scaled(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, _ = blobs
    coords = largevis_layout(idx, dist, samples_per_point=50, parallel=False)
    assert np.allclose(coords.mean(axis=0), 0.0, atol=1e-3)
    rms = np.sqrt((coords.astype(np.float64) ** 2).sum(axis=1).mean())
    assert rms == pytest.approx(10.0, rel=1e-3)


def test_disconnected_graph_with_half_duplicates_places_every_point() -> None:
    x, labels = _blobs(3, 60, 4, spread=1e4, seed=4)
    x = np.concatenate([x, x])  # every point twice: 50% exact duplicates
    labels = np.concatenate([labels, labels])
    idx, dist = _knn(x, 10)
    assert np.all(labels[idx] == labels[:, None])  # no kNN edge crosses between blobs
    coords = largevis_layout(idx, dist, samples_per_point=200, parallel=True)
    assert coords.shape == (360, 2)
    assert np.isfinite(coords).all()


def test_init_and_progress_are_used(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, labels = blobs
    init = np.stack([labels * 100.0, np.zeros(len(labels))], axis=1)  # blobs on a line
    seen: list[float] = []
    coords = largevis_layout(
        idx, dist, samples_per_point=20, parallel=False, init=init, on_progress=seen.append
    )
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert 20 <= len(seen) <= 100
    # few samples barely move a spread-out start: the blobs keep their order along x
    means = [coords[labels == b, 0].mean() for b in range(5)]
    assert means == sorted(means)


def test_bad_inputs_say_what_to_do(blobs) -> None:  # type: ignore[no-untyped-def]
    idx, dist, _ = blobs
    with pytest.raises(InputError, match="rebuild the kNN stage"):
        largevis_layout(idx[:, :1], dist[:, :1])
    with pytest.raises(InputError, match="rebuild the kNN stage"):
        largevis_layout(idx + 1, dist)
    with pytest.raises(InputError, match="init"):
        largevis_layout(idx, dist, init=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="samples_per_point"):
        largevis_layout(idx, dist, samples_per_point=0)
    with pytest.raises(ConfigError, match="perplexity"):
        largevis_weights(idx, dist, perplexity=0.5)


def test_digits_trustworthiness() -> None:
    x = load_digits().data.astype(np.float32)
    idx, dist = _knn(x, 15)
    coords = largevis_layout(idx, dist, seed=0)
    # measured 0.987-0.99 at the default 2,000 samples per point (UMAP: 0.988)
    assert trustworthiness(x, coords, n_neighbors=10) >= 0.97


def test_refine_moves_only_its_rows_and_spreads_a_collapsed_tile(
    blobs: tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int64]],
) -> None:
    """A third of a layout's points collapsed onto their blob's centre (as a placement by
    neighbour means leaves them), then refined with the rest held still: the layout keeps
    more of each point's neighbours; the input is untouched; the same seed, the same."""
    idx, dist, labels = blobs
    coords = largevis_layout(idx, dist, seed=0, parallel=False) * 2.0
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(len(coords), size=len(coords) // 3, replace=False))
    collapsed = coords.copy()
    for blob in np.unique(labels):
        mine = rows[labels[rows] == blob]
        collapsed[mine] = coords[labels == blob].mean(axis=0) + rng.normal(0, 0.1, (mine.size, 2))
    before = collapsed.copy()
    moved = largevis_refine(collapsed, rows, idx[rows], dist[rows], seed=1)
    assert moved.shape == (rows.size, 2)
    assert moved.dtype == np.float32
    np.testing.assert_array_equal(collapsed, before)  # the input is not written
    again = largevis_refine(collapsed, rows, idx[rows], dist[rows], seed=1)
    np.testing.assert_array_equal(moved, again)
    mended = collapsed.copy()
    mended[rows] = moved
    trust_before = float(layout_trust(collapsed, idx).mean())
    trust_after = float(layout_trust(mended, idx).mean())
    assert trust_after > trust_before + 0.05, (trust_before, trust_after)
    assert _own_blob_share(mended, labels) > 0.95
    empty = largevis_refine(coords, np.array([], dtype=np.int64), idx[:0], dist[:0])
    assert empty.shape == (0, 2)
