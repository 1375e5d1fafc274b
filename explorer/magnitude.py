"""Metric-space magnitude: the weighting vector and the effective number of distinct points.

For points x_1..x_n and a scale t > 0, ``Z_ij = exp(−t·‖x_i − x_j‖)``; the weighting vector
w solves ``Z w = 1`` and the magnitude ``Σ w`` is the effective number of distinct points
(Leinster; "Practical applications of metric space magnitude and weighting vectors").
For Euclidean points Z is positive definite, so a Cholesky solve is exact and unique.

This module is numpy/scipy only and imports nothing of the build, so both the build
(``explorer.compute``) and the app (``Store.magnitude``) use the same solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.spatial.distance import cdist

from explorer.errors import ConfigError

# Z is dense float64: 20,000 points is 3.2 GB and about a minute on two cores.
MAX_EXACT_POINTS = 20_000
# Diagonal ridges tried, in order, when near-duplicates make Z numerically singular.
_RIDGES = (0.0, 1e-10, 1e-8, 1e-6)
# Above this many rows a selection's magnitude is estimated from nested random samples:
# the exact solve of 2,000 points takes ~0.2 s here, so an estimate stays under a second.
SELECTION_EXACT_LIMIT = 2000


def check_scale(t: float) -> None:
    """Raise ConfigError unless t is a finite positive number."""
    if not (np.isfinite(t) and t > 0):
        msg = f"magnitude scale t = {t!r} must be a finite positive number"
        raise ConfigError(msg)


def _check_points(X: NDArray[np.floating], what: str) -> NDArray[np.float64]:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        msg = f"{what}: X must be (n, d), got shape {arr.shape}"
        raise ConfigError(msg)
    if arr.shape[0] > MAX_EXACT_POINTS:
        msg = (
            f"{what}: {arr.shape[0]} points is too many for the exact weighting vector "
            f"(at most {MAX_EXACT_POINTS}); pass a random sample, or use outlier_scores "
            "for all points"
        )
        raise ConfigError(msg)
    if not np.isfinite(arr).all():
        msg = f"{what}: X has NaN or infinite values; drop or impute them first"
        raise ConfigError(msg)
    return arr


def similarity_factor(points: NDArray[np.float64], t: float) -> tuple[NDArray[np.float64], bool]:
    """Cholesky factor (lower) of ``Z = exp(−t·D)``, with the smallest ridge that works.

    Points must be distinct (deduplicate first): exact duplicates make Z singular.
    """
    diag = np.arange(points.shape[0])
    for ridge in _RIDGES:
        # Rebuilt on each try: the factorisation overwrites Z (one n×n array, not two).
        Z = cdist(points, points)
        np.multiply(Z, -t, out=Z)
        np.exp(Z, out=Z)
        Z[diag, diag] += ridge
        try:
            factor, lower = cho_factor(Z, lower=True, overwrite_a=True, check_finite=False)
        except LinAlgError:
            continue
        return np.asarray(factor), bool(lower)
    msg = "the similarity matrix Z stays singular; raise the scale t or drop near-duplicates"
    raise ConfigError(msg)


def _solve_ones(points: NDArray[np.float64], t: float) -> NDArray[np.float64]:
    """Solve ``Z w = 1`` by Cholesky (see ``similarity_factor``)."""
    factor = similarity_factor(points, t)
    ones = np.ones(points.shape[0])
    return np.asarray(cho_solve(factor, ones, check_finite=False), dtype=np.float64)


def weighting_vector(X: NDArray[np.floating], t: float) -> NDArray[np.float64]:
    """Exact weighting vector: the solution of ``Z w = 1``, ``Z_ij = exp(−t·‖x_i − x_j‖)``.

    Parameters
    ----------
    X : (n, d) float, n <= MAX_EXACT_POINTS
    t : float > 0

    Returns
    -------
    (n,) float64
        Exact duplicates make Z singular: they are solved as one point and share its weight
        equally (the minimum-norm solution, so ``Z w = 1`` still holds). If near-duplicates
        make the Cholesky factorisation fail, a ridge of at most 1e-6 is added to Z's diagonal.
    """
    check_scale(t)
    arr = _check_points(X, "weighting_vector")
    if arr.shape[0] == 0:
        return np.zeros(0)
    unique, inverse, counts = np.unique(arr, axis=0, return_inverse=True, return_counts=True)
    w_unique = _solve_ones(unique, t)
    inverse = inverse.reshape(-1)
    return np.asarray(w_unique[inverse] / counts[inverse], dtype=np.float64)


def magnitude(X: NDArray[np.floating], t: float) -> float:
    """Magnitude ``Σ w`` of the points at scale t (see ``weighting_vector``; n <= 20,000)."""
    return float(weighting_vector(X, t).sum())


def _nested_estimate(
    sample: NDArray[np.float64], t: float, n: int, rng: np.random.Generator
) -> float:
    """Magnitude of n points from a random sample of them and a random half of that sample.

    The two magnitudes define a power law that is extrapolated to n and clipped to
    ``[magnitude of the sample, n]`` (magnitude is monotone under inclusion and at most n).
    """
    size = sample.shape[0]
    big = magnitude(sample, t)
    small = magnitude(sample[rng.permutation(size)[: size // 2]], t)
    if small <= 0 or big <= small:
        return big  # saturated (or degenerate): more points add nothing
    slope = np.log(big / small) / np.log(size / (size // 2))
    return float(np.clip(big * (n / size) ** slope, big, n))


def extrapolated_magnitude(
    X: NDArray[np.floating], t: float, max_size: int, rng: np.random.Generator
) -> float:
    """Magnitude of a set larger than ``max_size`` from nested random subsamples of it."""
    n = X.shape[0]
    order = np.sort(rng.permutation(n)[:max_size])  # sorted: cheap reads from a memmap
    return _nested_estimate(np.asarray(X[order], dtype=np.float64), t, n, rng)


@dataclass(frozen=True)
class SelectionMagnitude:
    """The magnitude of a set of rows, and how it was obtained.

    value       : effective number of distinct points at ``scale``
    n_rows      : rows asked for (after removing repeats)
    sample_size : rows the solve used (= n_rows when exact)
    exact       : False when extrapolated from nested samples of ``sample_size`` rows
    scale       : the t used
    """

    value: float
    n_rows: int
    sample_size: int
    exact: bool
    scale: float


def selection_magnitude(
    vectors: NDArray[np.floating],
    rows: NDArray[np.integer],
    t: float,
    *,
    max_exact: int = SELECTION_EXACT_LIMIT,
    seed: int = 0,
) -> SelectionMagnitude:
    """Magnitude of ``vectors[rows]`` at scale t: exact up to ``max_exact`` rows, else sampled.

    Parameters
    ----------
    vectors : (n, d) float, may be a memmap (only the rows used are read)
    rows : (m,) int, row indices into ``vectors`` (repeats are ignored)
    t : float > 0
    max_exact : int in [4, MAX_EXACT_POINTS]
    seed : int, for the samples drawn above ``max_exact`` rows
    """
    check_scale(t)
    if not 4 <= max_exact <= MAX_EXACT_POINTS:
        msg = f"max_exact = {max_exact} must lie in [4, {MAX_EXACT_POINTS}]"
        raise ConfigError(msg)
    picked = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    n = int(vectors.shape[0])
    if picked.size and (picked[0] < 0 or picked[-1] >= n):
        msg = f"rows must lie in [0, {n}); got {picked[0]}..{picked[-1]}"
        raise ConfigError(msg)
    m = int(picked.size)
    if m == 0:
        return SelectionMagnitude(0.0, 0, 0, exact=True, scale=t)
    if m <= max_exact:
        value = magnitude(np.asarray(vectors[picked], dtype=np.float64), t)
        return SelectionMagnitude(value, m, m, exact=True, scale=t)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(picked, size=max_exact, replace=False))
    value = _nested_estimate(np.asarray(vectors[chosen], dtype=np.float64), t, m, rng)
    return SelectionMagnitude(value, m, max_exact, exact=False, scale=t)
