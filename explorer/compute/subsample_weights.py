"""Outlier scores for points and small groups: a point's weight beside a random subsample.

For a random sample S of s points and a point x, the score is the weight x gets in the
weighting vector of ``S ∪ {x}`` (``Z_ij = exp(−t·‖x_i − x_j‖)``, ``Z w = 1``), averaged over
R independent samples. With S's own weighting vector w_S and Cholesky factor ``Z_S = L Lᵀ``,
the weight of an added point is exact in closed form (the Schur complement of Z_S)::

    w_x = (1 − z_xᵀ w_S) / (1 − ‖L⁻¹ z_x‖²),   z_x = exp(−t·d(x, S))

about 1 for a point far from every sample point, near 0 for a point in a region the sample
covers. Each sample picks its own scale from its magnitude function: the t at which S's
magnitude is ``1 + share·(m − 1)`` (m distinct sample points), so every sample is seen at
the same coarse resolution whatever the data's units and density.

Why small samples: a tight far-off group of a few times k points is dense, so local scores
(the kNN spread, LOF, exact weights at any one scale) rank its members as inliers. In a
sample of s points such a group is mostly absent, and when absent its members weigh about
1, like isolated points; a cluster that holds more than about 1/s of the data is always
represented and its members weigh little. This is the subsampling that IsolationForest
relies on, with the weighting vector in place of random trees. Cost: O(n·R·s·(d + s)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import brentq
from scipy.spatial.distance import cdist

from explorer.errors import ConfigError
from explorer.jit import njit, prange
from explorer.magnitude import similarity_factor

# Measured on planted sets (docs/analytics.md): s = 32, R = 16, share = 0.1 ranked tight
# far-off groups of 15-45 points (AUROC >= 0.998) and scattered outliers (>= 0.999) at 3k
# and 20k points; s = 64 or R = 32 did no better, share = 0.2 worse (0.991 on groups).
DEFAULT_SAMPLE_SIZE = 32
DEFAULT_N_SAMPLES = 16
DEFAULT_SHARE = 0.1
_CHUNK_ROWS = 2048
# 1 − ‖L⁻¹z‖² below this: x coincides with a sample point (its added weight is 0/0).
_COINCIDENT = 1e-8


@dataclass(frozen=True)
class SubsampleScores:
    """Per-point scores and what made them.

    scores         : (n,) float32, mean added weight over the samples
    standard_error : (n,) float32, its Monte Carlo standard error
    scales         : (R,) float64, the t of each sample
    """

    scores: NDArray[np.float32]
    standard_error: NDArray[np.float32]
    scales: NDArray[np.float64]


@dataclass(frozen=True)
class _Sample:
    rows: NDArray[np.int64]  # drawn rows, sorted
    unique: NDArray[np.float64]  # (m, d) distinct sample points
    slot: NDArray[np.int64]  # drawn row -> index into unique
    counts: NDArray[np.int64]  # (m,) copies of each distinct point in the sample
    inverse_factor: NDArray[np.float64]  # L⁻¹, L the lower Cholesky factor of Z
    weights: NDArray[np.float64]  # (m,) weighting vector
    t: float


@dataclass(frozen=True)
class _Batch:
    """R samples padded to s points each, so one block of rows meets all of them at once."""

    centres: NDArray[np.float64]  # (R·s, d)
    sq_norms: NDArray[np.float64]  # (R·s,)
    present: NDArray[np.bool_]  # (R, s), False for padding
    scales: NDArray[np.float64]  # (R,)
    weights: NDArray[np.float64]  # (R, s), 0 for padding
    inverse_factor: NDArray[np.float64]  # (R, s, s), L⁻¹, 0 for padding
    counts: NDArray[np.float64]  # (R, s)


def _batch(samples: list[_Sample], size: int, dim: int) -> _Batch:
    r = len(samples)
    centres = np.zeros((r, size, dim))
    present = np.zeros((r, size), dtype=bool)
    weights = np.zeros((r, size))
    inverse = np.zeros((r, size, size))
    counts = np.ones((r, size))
    for i, sample in enumerate(samples):
        m = sample.unique.shape[0]
        centres[i, :m] = sample.unique
        present[i, :m] = True
        weights[i, :m] = sample.weights
        inverse[i, :m, :m] = sample.inverse_factor
        counts[i, :m] = sample.counts
    flat = centres.reshape(r * size, dim)
    scales = np.array([s.t for s in samples])
    return _Batch(flat, (flat * flat).sum(1), present, scales, weights, inverse, counts)


def _magnitude_at(points: NDArray[np.float64], t: float) -> float:
    factor = similarity_factor(points, t)
    return float(cho_solve((factor[0], True), np.ones(points.shape[0])).sum())


def magnitude_share_scale(points: NDArray[np.float64], share: float) -> float:
    """The t at which the magnitude of distinct ``points`` is ``1 + share·(m − 1)``.

    Magnitude rises from 1 (t → 0) to m (t → ∞); the root is found in log t. 1.0 when
    there is a single distinct point (every scale gives the same magnitude).
    """
    m = points.shape[0]
    if m < 2:
        return 1.0
    d = cdist(points, points)
    positive = d[d > 0]
    lo, hi = np.log(1e-3 / positive.max()), np.log(50.0 / positive.min())
    target = 1.0 + share * (m - 1)
    return float(
        np.exp(brentq(lambda lt: _magnitude_at(points, np.exp(lt)) - target, lo, hi, xtol=1e-3))
    )


def _draw_sample(
    X: NDArray[np.floating], size: int, share: float, rng: np.random.Generator, unit: bool
) -> _Sample:
    rows = np.sort(rng.choice(X.shape[0], size=size, replace=False))
    points = _prepare(X[rows], unit)
    if not np.isfinite(points).all():
        msg = "outlier scores: the vectors hold NaN or infinite values; drop or impute them"
        raise ConfigError(msg)
    unique, slot, counts = np.unique(points, axis=0, return_inverse=True, return_counts=True)
    t = magnitude_share_scale(unique, share)
    factor, _ = similarity_factor(unique, t)
    weights = np.asarray(cho_solve((factor, True), np.ones(unique.shape[0])), dtype=np.float64)
    inverse = solve_triangular(factor, np.eye(unique.shape[0]), lower=True, check_finite=False)
    return _Sample(rows, unique, slot.reshape(-1), counts, inverse, weights, t)


def _prepare(block: NDArray[np.floating], unit: bool) -> NDArray[np.float64]:
    arr = np.asarray(block, dtype=np.float64)
    if unit:  # cosine: Euclidean distance between unit vectors, a metric with Z positive
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        arr = arr / np.where(norms > 0, norms, 1.0)
    return arr


@njit(parallel=True)  # type: ignore[untyped-decorator]
def _unexplained(
    z: NDArray[np.float64], inverse: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out[c, r] = 1 − ‖L_r⁻¹ z[c, r]‖²`` (L⁻¹ lower triangular, zero-padded)."""
    rows, n_samples, size = z.shape
    for c in prange(rows):
        for r in range(n_samples):
            total = 0.0
            for a in range(size):
                u = 0.0
                for b in range(a + 1):
                    u += inverse[r, a, b] * z[c, r, b]
                total += u * u
            out[c, r] = 1.0 - total


def added_weights(points: NDArray[np.float64], batch: _Batch) -> NDArray[np.float64]:
    """(c, R): weight of each point in the weighting vector of ``sample ∪ {point}``."""
    r, size = batch.present.shape
    sq = points @ batch.centres.T
    sq *= -2.0
    sq += (points * points).sum(1)[:, None]
    sq += batch.sq_norms[None, :]
    np.maximum(sq, 0.0, out=sq)
    dist = np.sqrt(sq, out=sq).reshape(-1, r, size)
    z = dist * -batch.scales[None, :, None]
    np.exp(z, out=z)
    z *= batch.present[None]
    residual = 1.0 - np.einsum("crs,rs->cr", z, batch.weights)
    variance = np.empty_like(residual)
    _unexplained(z, batch.inverse_factor, variance)
    out: NDArray[np.float64] = residual / np.maximum(variance, _COINCIDENT)
    # A copy of sample point j joins its c_j copies: together they keep j's weight.
    rows, cols = np.nonzero(variance < _COINCIDENT)
    if rows.size:
        near = np.where(batch.present[cols], dist[rows, cols], np.inf).argmin(axis=1)
        out[rows, cols] = batch.weights[cols, near] / (batch.counts[cols, near] + 1)
    return out


def _check(X: NDArray[np.floating], n_samples: int, sample_size: int, share: float) -> None:
    if X.ndim != 2 or X.shape[0] < 2:
        msg = f"outlier scores need (n, d) vectors with n >= 2, got shape {X.shape}"
        raise ConfigError(msg)
    if n_samples < 1 or sample_size < 2:
        msg = (
            f"outlier samples: need n_samples >= 1 and sample_size >= 2, "
            f"got {n_samples} and {sample_size}"
        )
        raise ConfigError(msg)
    if not 0 < share < 1:
        msg = f"outlier magnitude share = {share} must lie in (0, 1)"
        raise ConfigError(msg)


def subsample_weight_scores(
    X: NDArray[np.floating],
    *,
    n_samples: int = DEFAULT_N_SAMPLES,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    share: float = DEFAULT_SHARE,
    metric: str = "euclidean",
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> SubsampleScores:
    """Outlier score of every point: its mean weight beside R random samples (module doc).

    Parameters
    ----------
    X : (n, d) float, may be a memmap (read in blocks)
    n_samples : int, R
    sample_size : int, s (capped at n)
    share : float in (0, 1), where on each sample's magnitude function its scale is taken
    metric : "euclidean" or "cosine" (then on unit vectors)
    seed : int
    on_progress : called with the fraction done after each block of rows

    Returns
    -------
    SubsampleScores
        Scores are about 1 for isolated points and members of small far-off groups, near 0
        inside clusters; always finite. Raises ConfigError on bad arguments or non-finite X.
    """
    _check(X, n_samples, sample_size, share)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    unit = metric == "cosine"
    size = min(sample_size, n)
    samples = [_draw_sample(X, size, share, rng, unit) for _ in range(n_samples)]
    batch = _batch(samples, size, X.shape[1])
    total = np.zeros(n)
    squares = np.zeros(n)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        block = _prepare(X[start:stop], unit)
        if not np.isfinite(block).all():
            msg = f"outlier scores: rows {start}..{stop - 1} hold NaN or infinite values"
            raise ConfigError(msg)
        w = added_weights(block, batch)
        for i, sample in enumerate(samples):
            # A drawn row is already in S: its weight is its share of S's own weights.
            inside = sample.rows[(sample.rows >= start) & (sample.rows < stop)]
            if inside.size:
                j = sample.slot[np.searchsorted(sample.rows, inside)]
                w[inside - start, i] = sample.weights[j] / sample.counts[j]
        total[start:stop] = w.sum(axis=1)
        squares[start:stop] = (w * w).sum(axis=1)
        if on_progress is not None:
            on_progress(stop / n)
    mean = total / n_samples
    spread = np.maximum(squares / n_samples - mean * mean, 0.0)
    return SubsampleScores(
        scores=mean.astype(np.float32),
        standard_error=np.sqrt(spread / n_samples).astype(np.float32),
        scales=np.array([s.t for s in samples], dtype=np.float64),
    )
