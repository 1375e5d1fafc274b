"""The point-and-group outlier score: exact algebra, planted answers, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from explorer.compute.subsample_weights import (
    _batch,
    _draw_sample,
    added_weights,
    magnitude_share_scale,
    subsample_weight_scores,
)
from explorer.datasets.planted_outliers import auroc_by_kind, planted_outliers
from explorer.errors import ConfigError
from explorer.magnitude import magnitude, weighting_vector


def test_added_weight_is_the_exact_weight_in_the_augmented_set() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    sample = _draw_sample(X, 40, 0.2, np.random.default_rng(1), unit=False)
    others = np.setdiff1d(np.arange(200), sample.rows)[:10]
    got = added_weights(X[others], _batch([sample], 40, 4))[:, 0]
    for x, w in zip(X[others], got, strict=True):
        augmented = np.r_[X[sample.rows], x[None]]
        assert w == pytest.approx(weighting_vector(augmented, sample.t)[-1], abs=1e-7)


def test_scale_puts_the_magnitude_at_the_share() -> None:
    points = np.random.default_rng(2).normal(size=(32, 6))
    t = magnitude_share_scale(points, 0.1)
    assert magnitude(points, t) == pytest.approx(1 + 0.1 * 31, rel=1e-2)
    assert magnitude_share_scale(points[:1], 0.1) == 1.0


def test_small_sets_get_their_exact_weighting_vector() -> None:
    # n <= s: every sample is the whole set, so each score is the point's exact weight.
    X = np.random.default_rng(3).normal(size=(20, 3))
    found = subsample_weight_scores(X, n_samples=3, sample_size=32)
    t = float(found.scales[0])
    np.testing.assert_allclose(found.scores, weighting_vector(X, t), atol=1e-5)
    np.testing.assert_allclose(found.scales, t)
    assert found.standard_error.max() < 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_points_and_groups_rank_at_least_as_well_as_lof_and_near_isolation_forest(
    seed: int,
) -> None:
    # 3,000 inliers in clusters of 100-1,500 points, 60 scattered outliers and two tight
    # far-off groups of 30 and 45 points (2-3 times k = 15).
    X, kind = planted_outliers(seed)
    ours = auroc_by_kind(kind, subsample_weight_scores(X, seed=seed).scores)
    lof = auroc_by_kind(kind, -LocalOutlierFactor(n_neighbors=20).fit(X).negative_outlier_factor_)
    iforest = auroc_by_kind(kind, -IsolationForest(random_state=0).fit(X).score_samples(X))
    # Measured, seeds 0-3 (scattered / groups): ours 0.9993-0.9999 / 0.9986-1.0000,
    # LOF 0.9984-0.9998 / 0.26-0.29, IsolationForest 0.9975-0.9994 / 0.9994-1.0000. On the
    # scattered points ours and LOF tie to 0.0002 (a uniform outlier that falls inside a
    # cluster is missed by both), hence the 0.001 tolerance there.
    for mine, theirs_lof, theirs_if in zip(ours, lof, iforest, strict=True):
        assert mine >= theirs_lof - 0.001
        assert mine >= theirs_if - 0.01
    assert ours[1] >= lof[1] + 0.5


def test_cosine_ignores_vector_length() -> None:
    X = np.random.default_rng(4).normal(size=(300, 5))
    lengths = np.random.default_rng(5).uniform(0.5, 3.0, size=(300, 1))
    a = subsample_weight_scores(X, metric="cosine", seed=1).scores
    b = subsample_weight_scores(X * lengths, metric="cosine", seed=1).scores
    np.testing.assert_allclose(a, b, atol=1e-4)


def _degenerate_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    two = np.r_[np.zeros((30, 4)), np.ones((30, 4))]
    return {
        "5 points": rng.normal(size=(5, 3)),
        "100 points": rng.normal(size=(100, 8)),
        "all identical": np.ones((40, 3)),
        "two distinct repeated": two,
        "one tight cluster": 1e-9 * rng.normal(size=(50, 3)) + 7.0,
        "duplicates": np.r_[rng.normal(size=(30, 3)), np.zeros((20, 3))],
    }


@pytest.mark.parametrize("name", list(_degenerate_sets()))
def test_degenerate_inputs_give_finite_scores(name: str) -> None:
    X = _degenerate_sets()[name]
    found = subsample_weight_scores(X, seed=0)
    assert found.scores.shape == (len(X),)
    assert np.isfinite(found.scores).all()
    assert np.isfinite(found.standard_error).all()
    assert np.isfinite(found.scales).all()
    assert (found.scales > 0).all()
    if name == "all identical":
        # 32 copies share a weight of 1: a drawn copy weighs 1/32, one added to them 1/33
        assert 1 / 33 - 1e-6 <= found.scores.min() <= found.scores.max() <= 1 / 32 + 1e-6
    if name == "two distinct repeated":
        assert np.ptp(found.scores) < 0.01  # the two copies weigh alike


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="n >= 2"):
        subsample_weight_scores(np.zeros((1, 3)))
    bad = np.random.default_rng(7).normal(size=(50, 3))
    bad[3, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        subsample_weight_scores(bad, sample_size=50)
    with pytest.raises(ConfigError, match="share"):
        subsample_weight_scores(bad, share=1.5)
