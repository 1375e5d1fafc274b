"""Planted outlier sets with known answers, for the outlier tests and benchmarks/analytics.py."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

INLIER, SCATTERED, GROUP = 0, 1, 2


def planted_outliers(
    seed: int,
    dim: int = 10,
    sizes: tuple[int, ...] = (1500, 800, 400, 200, 100),
    spreads: tuple[float, ...] = (1.0, 2.0, 0.7, 1.5, 3.0),
    n_scattered: int = 60,
    groups: tuple[int, ...] = (30, 45),
    separation: float = 12.0,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Clusters of unequal size and spread, scattered outliers and tight far-off groups.

    Cluster centres lie at ``separation`` from the origin; scattered outliers are uniform in
    the inliers' bounding box widened by 5; each group (spread 0.3) sits at 2.5 times
    ``separation`` in a random direction. Returns the points and a kind per point
    (INLIER, SCATTERED or GROUP).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)
    inliers = np.concatenate(
        [c + rng.normal(size=(s, dim)) * w for c, s, w in zip(centres, sizes, spreads, strict=True)]
    )
    low, high = inliers.min(axis=0) - 5, inliers.max(axis=0) + 5
    scattered = rng.uniform(low, high, size=(n_scattered, dim))
    parts = [inliers, scattered]
    for m in groups:
        direction = rng.normal(size=dim)
        direction /= np.linalg.norm(direction)
        parts.append(direction * separation * 2.5 + rng.normal(size=(m, dim)) * 0.3)
    kind = np.r_[
        np.full(len(inliers), INLIER), np.full(n_scattered, SCATTERED), np.full(sum(groups), GROUP)
    ]
    return np.concatenate(parts), kind.astype(np.int64)


def auroc_by_kind(kind: NDArray[np.int64], scores: NDArray[np.floating]) -> tuple[float, float]:
    """AUROC of scores for scattered outliers vs inliers, and for group members vs inliers."""
    from sklearn.metrics import roc_auc_score

    out = []
    for target in (SCATTERED, GROUP):
        keep = (kind == INLIER) | (kind == target)
        out.append(float(roc_auc_score(kind[keep] == target, scores[keep])))
    return out[0], out[1]
