"""Finite-sample bias correction of the global intrinsic dimension, by simulation.

kNN estimators read low when the dimension is high for the number of points: the k-th
neighbour is no longer "local", so boundaries and density changes leak into the distance
ratios (a 20-D Gaussian of 4,000 points reads about 16). The correction calibrates the
MacKay–Ghahramani estimate against reference sets of known dimension with the same number
of points and neighbours, in the spirit of DANCo (Ceruti et al., 2014): the corrected
dimension is the d whose reference reads what the data reads.

The reference at dimension d is the mean of the estimate on uniform points of the sphere
S^d (no boundary, uniform density: the pure finite-sample effect) and of the cube [0,1]^d
(whose faces pull estimates lowest). Measured at 2,000 and 4,000 points, k = 15: either
reference alone left one family more than 10% off at 10-20 dimensions (sphere reference:
cube 20 read 17.8; cube reference: Gaussian 20 read above 22); their mean kept cubes,
Gaussians and spheres of 2-20 dimensions within 10% (docs/analytics.md).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import NearestNeighbors

from explorer.compute.intrinsic import mle_global_dimension
from explorer.errors import ConfigError

# Points the estimate and its references use: bias depends on n, so both use the same n.
CALIBRATION_POINTS = 4000
# Highest dimension the references are simulated at; beyond it the estimate is extrapolated.
_MAX_REFERENCE_DIM = 128


def _estimate(points: NDArray[np.float64], k: int) -> float:
    distances, _ = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(points)
    return mle_global_dimension(distances.astype(np.float32))


@functools.lru_cache(maxsize=512)
def reference_estimate(dim: int, n: int, k: int, seed: int = 0) -> float:
    """Mean MacKay–Ghahramani estimate on n uniform points of S^dim and of [0,1]^dim."""
    rng = np.random.default_rng([seed, dim, n, k])
    sphere = rng.normal(size=(n, dim + 1))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    cube = rng.uniform(size=(n, dim))
    return 0.5 * (_estimate(sphere, k) + _estimate(cube, k))


def calibrate(estimate: float, n: int, k: int, seed: int = 0) -> float:
    """The dimension d whose reference (n points, k neighbours) reads ``estimate``.

    Linear between the integer dimensions that bracket it; 0.0 for a non-positive estimate.
    """
    if not np.isfinite(estimate) or estimate <= 0:
        return 0.0
    low_dim = max(1, int(np.floor(estimate)))
    low = reference_estimate(low_dim, n, k, seed)
    while low > estimate and low_dim > 1:  # references read low, so this rarely steps
        low_dim -= 1
        low = reference_estimate(low_dim, n, k, seed)
    if low >= estimate:
        return float(low_dim * estimate / low)
    dim = low_dim
    while dim < _MAX_REFERENCE_DIM:
        high = reference_estimate(dim + 1, n, k, seed)
        if high >= estimate:
            return float(dim + (estimate - low) / max(high - low, 1e-12))
        dim, low = dim + 1, high
    return float(dim * estimate / low)


def corrected_global_dimension(
    X: NDArray[np.floating],
    n_neighbors: int = 15,
    metric: str = "euclidean",
    sample: int = CALIBRATION_POINTS,
    seed: int = 0,
) -> tuple[float, float]:
    """Global intrinsic dimension with its finite-sample bias corrected.

    Parameters
    ----------
    X : (n, d) float, may be a memmap (only a random sample is read)
    n_neighbors : int, k counting the point itself (as in the kNN graph)
    metric : "euclidean" or "cosine" (then on unit vectors)
    sample : int, points drawn for the estimate and its references (all when n <= sample)
    seed : int

    Returns
    -------
    (raw, corrected)
        The MacKay–Ghahramani estimate on the sample, and the calibrated dimension.
        (0.0, 0.0) when the sample has fewer than 5 distinct points.
    """
    if X.ndim != 2:
        msg = f"intrinsic dimension: X must be (n, d), got shape {X.shape}"
        raise ConfigError(msg)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    rows = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    points = np.unique(np.asarray(X[rows], dtype=np.float64), axis=0)
    if metric == "cosine":
        norms = np.linalg.norm(points, axis=1, keepdims=True)
        points = np.unique(points / np.where(norms > 0, norms, 1.0), axis=0)
    m = points.shape[0]
    k = min(n_neighbors, m)
    if k < 5:
        return 0.0, 0.0
    raw = _estimate(points, k)
    return raw, calibrate(raw, m, k, seed)
