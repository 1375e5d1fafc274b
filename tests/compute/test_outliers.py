"""Known answers for weighting vectors and magnitude, and the outlier benchmark vs LOF/IF."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.spatial.distance import cdist
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from explorer.compute.outliers import (
    MAX_EXACT_POINTS,
    choose_scale,
    group_magnitude,
    magnitude,
    outlier_scores,
    validate_approximation,
    weighting_vector,
)
from explorer.errors import ConfigError


def exact_knn(X: NDArray[np.float64], k: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Exact kNN in the project's convention: k columns, the point itself first."""
    distances, indices = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X)
    return indices.astype(np.int32), distances.astype(np.float32)


def gaussian_mixture(seed: int, n: int = 2000, dim: int = 8) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(5, dim))
    spreads = np.array([1.0, 1.0, 2.0, 0.5, 1.5])
    label = rng.integers(0, 5, n)
    return centres[label] + rng.normal(size=(n, dim)) * spreads[label, None]


def planted(seed: int, dim: int = 10) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """3 clusters with spreads 1, 2.2 and 5; 60 scattered outliers; a far micro-cluster of 25.

    Returns the points and a kind per point: 0 inlier, 1 scattered outlier, 2 micro-cluster.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    centres *= 25.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    parts = [
        c + rng.normal(size=(s, dim)) * w
        for c, s, w in zip(centres, (1200, 900, 600), (1.0, 2.2, 5.0), strict=True)
    ]
    inliers = np.concatenate(parts)
    scattered = rng.uniform(inliers.min(axis=0) - 10, inliers.max(axis=0) + 10, size=(60, dim))
    far = rng.normal(size=dim)
    micro = far / np.linalg.norm(far) * 60.0 + rng.normal(size=(25, dim)) * 0.05
    kind = np.r_[np.zeros(len(inliers)), np.ones(60), np.full(25, 2)].astype(np.int64)
    return np.r_[inliers, scattered, micro], kind


def test_exact_solve_satisfies_zw_eq_1() -> None:
    X = np.random.default_rng(0).normal(size=(300, 3))
    w = weighting_vector(X, 1.0)
    np.testing.assert_allclose(np.exp(-cdist(X, X)) @ w, 1.0, atol=1e-8)
    assert magnitude(X, 1.0) == pytest.approx(w.sum())


def test_isolated_point_weighs_one_and_interior_little() -> None:
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(size=(400, 2)), [[50.0, 50.0]]]
    w = weighting_vector(X, 2.0)
    assert w[-1] == pytest.approx(1.0, abs=1e-9)
    inner = np.argsort(np.linalg.norm(X[:-1], axis=1))[:50]
    assert np.abs(w[inner]).max() < 0.1  # measured 0.039


def test_magnitude_counts_distinct_points() -> None:
    far_apart = np.c_[np.arange(10) * 100.0, np.zeros(10)]
    assert magnitude(far_apart, 1.0) == pytest.approx(10.0, abs=1e-9)
    tight = np.random.default_rng(2).normal(size=(50, 3)) * 3e-4
    assert 1.0 <= magnitude(tight, 1.0) < 1.05  # measured 1.001


def test_planted_outlier_ranks_first() -> None:
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(size=(500, 5)), [[6.0, 0.0, 0.0, 0.0, 0.0]]]
    indices, d = exact_knn(X, 15)
    t = choose_scale(d)
    assert np.argmax(outlier_scores(indices, d, t)) == 500
    assert np.argmax(weighting_vector(X, t)) == 500


def test_approximation_tracks_exact_weights() -> None:
    X = gaussian_mixture(4)
    indices, d = exact_knn(X, 15)
    t = choose_scale(d)
    scores = outlier_scores(indices, d, t)
    # n <= sample: the exact solve is on all 2,000 points. Measured 0.995 and 0.980.
    assert validate_approximation(X, scores, t) >= 0.95
    assert validate_approximation(X, scores, t, method="pearson") >= 0.9
    # On a 500-point sample (a sparser set at the same t), measured 0.985.
    assert validate_approximation(X, scores, t, sample=500, seed=1) >= 0.9


def test_benchmark_against_lof_and_isolation_forest() -> None:
    X, kind = planted(0)
    outlier = (kind > 0).astype(np.int64)
    indices, d = exact_knn(X, 15)
    ours = outlier_scores(indices, d, choose_scale(d))
    lof = -LocalOutlierFactor(n_neighbors=20).fit(X).negative_outlier_factor_
    iforest = -IsolationForest(random_state=0).fit(X).score_samples(X)
    no_micro = kind != 2
    # Measured on seeds 0-2 (all / scattered only / micro-cluster only):
    #   ours  0.704-0.705 / 0.997-0.998 / 0.000
    #   LOF   0.755-0.763 / 1.000       / 0.17-0.20
    #   IF    1.000       / 1.000       / 1.000
    # Ours finds the scattered outliers but, like LOF, cannot see a micro-cluster larger
    # than k: its points are each other's neighbours, so they look dense. The exact
    # weights do little better there (0.15). This is the local score ("outlier_local"); the
    # stored "outlier" score (test_subsample_weights.py) ranks such groups first.
    assert roc_auc_score(outlier, ours) >= 0.69
    assert roc_auc_score(outlier[no_micro], ours[no_micro]) >= 0.99
    assert roc_auc_score(outlier[no_micro], lof[no_micro]) >= 0.99
    assert roc_auc_score(outlier, iforest) >= 0.99


def test_duplicates_do_not_crash() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(200, 3))
    X = np.r_[base, base[:30], base[:30]]  # 30 points three times over
    w = weighting_vector(X, 1.0)
    np.testing.assert_allclose(np.exp(-cdist(X, X)) @ w, 1.0, atol=1e-8)
    np.testing.assert_allclose(w[:30], w[200:230])  # copies share the weight equally
    assert magnitude(X, 1.0) == pytest.approx(magnitude(base, 1.0))
    indices, d = exact_knn(X, 15)
    scores = outlier_scores(indices, d, choose_scale(d))
    assert np.isfinite(scores).all()
    assert np.isfinite(validate_approximation(X, scores, choose_scale(d)))
    same = np.zeros((10, 2))
    assert magnitude(same, 1.0) == pytest.approx(1.0)
    assert choose_scale(np.zeros((10, 5), dtype=np.float32)) == 1.0
    assert np.isnan(validate_approximation(same, np.ones(10), 1.0))


def test_exact_solve_refuses_large_inputs() -> None:
    with pytest.raises(ConfigError, match="sample"):
        weighting_vector(np.zeros((MAX_EXACT_POINTS + 1, 2)), 1.0)
    with pytest.raises(ConfigError, match="positive"):
        weighting_vector(np.zeros((5, 2)), 0.0)


def test_spread_formula_and_scale_by_hand() -> None:
    indices = np.array([[0, 1], [1, 0], [2, -1]], dtype=np.int32)
    d = np.array([[0.0, np.log(2)], [0.0, np.log(2)], [0.0, np.inf]], dtype=np.float32)
    seen: list[float] = []
    scores = outlier_scores(indices, d, 1.0, on_progress=seen.append)
    np.testing.assert_allclose(scores, [2 / 3, 2 / 3, 1.0], rtol=1e-6)
    assert seen[-1] == 1.0
    far = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 4.0], [0.0, 0.5, 1.0]], dtype=np.float32)
    assert choose_scale(far, factor=6.0) == pytest.approx(3.0)


def test_group_magnitude() -> None:
    rng = np.random.default_rng(6)
    tight = rng.normal(size=(40, 3)) * 3e-4
    spaced = np.c_[np.arange(20) * 100.0, np.zeros(20), np.ones(20) * 1e3]
    blob = rng.normal(size=(1200, 3))
    X = np.r_[tight, spaced, blob]
    groups = np.r_[np.zeros(40), np.ones(20), np.full(1200, 3)].astype(np.int64)
    mags = group_magnitude(X, groups, 1.0, max_size=400, n_groups=5)
    assert mags[0] == pytest.approx(1.0, abs=0.05)
    assert mags[1] == pytest.approx(20.0, abs=1e-6)
    assert mags[2] == 0.0  # empty group
    assert mags[4] == 0.0
    # 1,200 points from nested samples of 400 and 200: measured 17.6 against exact 17.7.
    assert mags[3] == pytest.approx(magnitude(blob, 1.0), rel=0.15)
