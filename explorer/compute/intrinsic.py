"""Intrinsic dimension from kNN distances: per point, per group and for the whole set.

All functions read the project's kNN convention: ``knn_distances`` is (n, k) float32, each
row sorted ascending and starting with the point itself at distance 0 (so ``k`` counts the
point). Estimators:

- local: the Levina–Bickel MLE ``m(x) = [(1/(k−1)) Σ_{j<k} log(T_k / T_j)]^{-1}``;
- global and per group: MacKay–Ghahramani (average the inverses ``1/m``, then invert);
- global: TwoNN (Facco et al.), ``d = N / Σ log(T_2 / T_1)``.

All are biased low when the dimension is high for the number of points (a few thousand
points in a 10-D cube read about 7–8): compare estimates with each other, not with truth.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from explorer.errors import ConfigError

# Fewer strictly positive neighbour distances than this and the local MLE is not defined.
_MIN_POSITIVE = 3


def _check_distances(knn_distances: NDArray[np.floating], n_neighbors: int | None) -> int:
    """Validate the kNN distance matrix; return the number of columns to use (self included)."""
    if knn_distances.ndim != 2 or knn_distances.shape[1] < _MIN_POSITIVE + 1:
        msg = (
            f"knn_distances has shape {knn_distances.shape}; need (n, k) with k >= "
            f"{_MIN_POSITIVE + 1} (the point itself plus at least {_MIN_POSITIVE} neighbours)"
        )
        raise ConfigError(msg)
    k = int(knn_distances.shape[1])
    if n_neighbors is None:
        return k
    if not _MIN_POSITIVE + 1 <= n_neighbors <= k:
        msg = (
            f"intrinsic n_neighbors = {n_neighbors} must lie in [{_MIN_POSITIVE + 1}, {k}] "
            "(the kNN graph's k, which counts the point itself); rebuild the kNN graph with "
            "more neighbours or lower n_neighbors"
        )
        raise ConfigError(msg)
    return n_neighbors


def _inverse_local(
    knn_distances: NDArray[np.floating], n_neighbors: int | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per-point ``1/m(x)`` (the mean log ratio) and a mask of rows where it is defined."""
    k = _check_distances(knn_distances, n_neighbors)
    # Column 0 is the point itself; float64 so that log ratios of close distances stay exact.
    d = np.asarray(knn_distances[:, 1:k], dtype=np.float64)
    positive = d > 0  # zeros are duplicates of the point: they carry no scale information
    n_pos = positive.sum(axis=1)
    t_max = d.max(axis=1)
    log_d = np.log(np.where(positive, d, 1.0))
    log_ratio = np.where(positive, np.log(np.where(t_max > 0, t_max, 1.0))[:, None] - log_d, 0.0)
    # The farthest distance contributes log 1 = 0, so n_pos - 1 terms carry information.
    terms = np.maximum(n_pos - 1, 1)
    inv = log_ratio.sum(axis=1) / terms
    # A zero sum means every positive distance ties (e.g. a lattice): no finite estimate.
    valid = (n_pos >= _MIN_POSITIVE) & (inv > 0)
    return inv, valid


def local_intrinsic_dim(
    knn_distances: NDArray[np.floating], n_neighbors: int | None = None
) -> NDArray[np.float32]:
    """Levina–Bickel maximum-likelihood intrinsic dimension of each point.

    Parameters
    ----------
    knn_distances : (n, k) float
        Sorted neighbour distances; column 0 is the point itself (distance 0).
    n_neighbors : int, optional
        Use the first ``n_neighbors`` columns (the point itself included, as in the kNN
        graph); ``None`` uses all ``k``.

    Returns
    -------
    (n,) float32
        ``m(x) = [(1/(k'−1)) Σ_{j<k'} log(T_k' / T_j)]^{-1}`` over the ``k'`` strictly positive
        neighbour distances of the row. Distances of 0 (exact duplicates of the point) are
        skipped. Where fewer than 3 positive distances remain, or they all tie, the estimate
        is undefined and the point gets the global MacKay–Ghahramani estimate of the defined
        points instead (0.0 if no point is defined, e.g. all points identical). Always finite.
    """
    return local_dim_from_parts(*local_dim_parts(knn_distances, n_neighbors))


def local_dim_parts(
    knn_distances: NDArray[np.floating], n_neighbors: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per point ``1/m(x)`` (n,) float64 and whether it is defined (n,) bool.

    Computed on row blocks and concatenated, ``local_dim_from_parts`` turns them into
    exactly ``local_intrinsic_dim`` of the whole graph (its fallback is global).
    """
    return _inverse_local(knn_distances, n_neighbors)


def local_dim_from_parts(inv: NDArray[np.float64], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
    """``local_intrinsic_dim`` from its parts (see ``local_dim_parts``)."""
    out = np.empty(inv.shape[0], dtype=np.float64)
    out[valid] = 1.0 / inv[valid]
    fallback = 1.0 / float(inv[valid].mean()) if valid.any() else 0.0
    out[~valid] = fallback
    return out.astype(np.float32)


def smooth_over_neighbors(
    values: NDArray[np.floating], knn_indices: NDArray[np.integer]
) -> NDArray[np.float32]:
    """Mean of ``values`` over each point's kNN row (the point itself and its neighbours).

    Parameters
    ----------
    values : (n,) float
    knn_indices : (n, k) int
        The kNN graph's indices (column 0 is the point itself). Negative entries (missing
        neighbours) are skipped.

    Returns
    -------
    (n,) float32
    """
    values = np.asarray(values, dtype=np.float64)
    if knn_indices.ndim != 2 or knn_indices.shape[0] != values.shape[0]:
        msg = (
            f"knn_indices has shape {knn_indices.shape} but values has {values.shape[0]} "
            "points; pass the kNN graph of the same points"
        )
        raise ConfigError(msg)
    present = knn_indices >= 0
    gathered = np.where(present, values[np.where(present, knn_indices, 0)], 0.0)
    counts = np.maximum(present.sum(axis=1), 1)
    mean: NDArray[np.float64] = gathered.sum(axis=1) / counts
    return mean.astype(np.float32)


def _inverse_from(
    local_or_distances: NDArray[np.floating], n_neighbors: int | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``1/m`` per point and where it is usable, from local estimates (1-D) or distances (2-D)."""
    arr = np.asarray(local_or_distances)
    if arr.ndim == 2:
        return _inverse_local(arr, n_neighbors)
    if arr.ndim != 1:
        msg = f"expected (n,) local estimates or (n, k) kNN distances, got shape {arr.shape}"
        raise ConfigError(msg)
    local = arr.astype(np.float64)
    valid = np.isfinite(local) & (local > 0)
    inv = np.zeros_like(local)
    inv[valid] = 1.0 / local[valid]
    return inv, valid


def mle_global_dimension(
    local_or_distances: NDArray[np.floating], n_neighbors: int | None = None
) -> float:
    """MacKay–Ghahramani global dimension: the inverse of the mean of ``1/m(x)``.

    Parameters
    ----------
    local_or_distances : (n,) float or (n, k) float
        Local estimates from ``local_intrinsic_dim``, or the kNN distances themselves (then
        points without a defined local estimate are left out rather than filled in).
    n_neighbors : int, optional
        Columns to use when distances are given (see ``local_intrinsic_dim``).

    Returns
    -------
    float
        0.0 when no point has a positive estimate.
    """
    inv, valid = _inverse_from(local_or_distances, n_neighbors)
    if not valid.any():
        return 0.0
    return float(1.0 / inv[valid].mean())


def twonn_dimension(knn_distances: NDArray[np.floating]) -> float:
    """TwoNN global dimension (Facco et al.): ``d = N / Σ log(T_2 / T_1)``.

    Parameters
    ----------
    knn_distances : (n, k) float, k >= 3
        Sorted distances; column 0 is the point itself.

    Returns
    -------
    float
        Points whose ratio ``μ = T_2 / T_1`` is undefined or 1 (duplicates, ties) are dropped,
        as Facco et al. advise; 0.0 when no point is left.
    """
    if knn_distances.ndim != 2 or knn_distances.shape[1] < 3:
        msg = f"TwoNN needs (n, k) distances with k >= 3, got shape {knn_distances.shape}"
        raise ConfigError(msg)
    t1 = np.asarray(knn_distances[:, 1], dtype=np.float64)
    t2 = np.asarray(knn_distances[:, 2], dtype=np.float64)
    keep = (t1 > 0) & (t2 > t1)
    if not keep.any():
        return 0.0
    log_mu = np.log(t2[keep] / t1[keep])
    return float(keep.sum() / log_mu.sum())


def group_intrinsic_dim(
    local_or_distances: NDArray[np.floating],
    groups: NDArray[np.integer],
    n_groups: int,
    n_neighbors: int | None = None,
) -> NDArray[np.float32]:
    """MacKay–Ghahramani dimension of each group (harmonic mean of its local estimates).

    Parameters
    ----------
    local_or_distances : (n,) float or (n, k) float
        Local estimates, or the kNN distances (see ``mle_global_dimension``).
    groups : (n,) int
        Group id of each point in ``[0, n_groups)``; negative ids (unassigned) are ignored.
    n_groups : int
    n_neighbors : int, optional
        Columns to use when distances are given.

    Returns
    -------
    (n_groups,) float32
        NaN for a group with no points; 0.0 for a group whose points have no positive estimate.
    """
    inv, valid = _inverse_from(local_or_distances, n_neighbors)
    groups = np.asarray(groups)
    if groups.shape != inv.shape:
        msg = f"groups has shape {groups.shape}, expected ({inv.shape[0]},): one id per point"
        raise ConfigError(msg)
    if groups.size and int(groups.max()) >= n_groups:
        msg = f"group id {int(groups.max())} is not below n_groups = {n_groups}"
        raise ConfigError(msg)
    member = groups >= 0
    size = np.bincount(groups[member], minlength=n_groups)
    use = member & valid
    n_valid = np.bincount(groups[use], minlength=n_groups)
    inv_sum = np.bincount(groups[use], weights=inv[use], minlength=n_groups)
    out = np.full(n_groups, np.nan)
    out[size > 0] = 0.0
    has = n_valid > 0
    out[has] = n_valid[has] / inv_sum[has]
    return out.astype(np.float32)
