"""LargeVis (Tang et al. 2016): a 2-D layout of the store's kNN graph by edge sampling.

Edge weights are perplexity-calibrated Gaussian affinities on the kNN graph, symmetrised
``w_ij = (p(j|i) + p(i|j)) / 2N``. The layout maximises
``Σ_(i,j)∈E w_ij log f(‖y_i − y_j‖) + γ Σ_(i,j)∉E log(1 − f(‖y_i − y_j‖))`` with
``f(x) = 1 / (1 + x²)`` by asynchronous SGD: a positive edge is drawn with probability
``∝ w_ij`` (alias table) and ``M`` negative vertices from ``P_n(j) ∝ deg(j)^0.75``; both
endpoints move, each gradient clipped to [−5, 5], learning rate ``ρ_0 (1 − t/T)``.

As in umap-learn, a numba kernel (``_sgd_pass``) runs one chunk of samples and the Python
driver (``largevis_layout``) owns the loop over chunks, the seed and the progress callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from explorer.compute.largevis_sgd import optimise_layout
from explorer.errors import ConfigError, InputError
from explorer.jit import njit, prange

# A row's perplexity is capped at this share of its neighbours (self excluded). The reference
# code pairs perplexity 50 with K = 150 (a third), but on k = 15 graphs a third leaves about
# 5 effective neighbours and trustworthiness fell (digits, 2,000 samples per point: 0.951 at
# 1/3, 0.979 at 1/2, 0.987 at 3/4 to 1); 0.9 keeps some distance information in the weights.
PERPLEXITY_PER_NEIGHBOR = 0.9
# The reference initialisation: uniform in ±0.5e-4 / out_dim around 0.
_INIT_SCALE = 1e-4 / 2.0
# Output: centred, RMS distance from the centre this big (the optimiser's own is about
# twice this, whatever n: RMS 18-21 at 2k-50k points of a 5-D mixture).
_OUTPUT_RMS = 10.0


@njit(parallel=True)
def _calibrate_rows(indices, distances, targets, probs):  # type: ignore[no-untyped-def]
    """probs[i, c] = p(indices[i, c] | i) at entropy targets[i] (nats); 0 off the graph."""
    n, k = indices.shape
    for i in prange(n):
        n_valid = 0
        d2_min = np.inf
        for c in range(k):
            probs[i, c] = 0.0
            j = indices[i, c]
            if j >= 0 and j != i:
                n_valid += 1
                d2_min = min(d2_min, distances[i, c] ** 2)
        if n_valid == 0:
            continue
        # Shift by the nearest distance (cancels in the normalisation, no underflow) and
        # search beta in units of the mean shifted distance, so any scale converges alike.
        scale = 0.0
        for c in range(k):
            j = indices[i, c]
            if j >= 0 and j != i:
                scale += distances[i, c] ** 2 - d2_min
        scale /= n_valid
        beta = 0.0  # all neighbours equally far (e.g. duplicates): uniform weights
        if scale > 0.0:
            beta = _search_beta(indices[i], distances[i], i, d2_min, scale, targets[i])
        z = 0.0
        for c in range(k):
            j = indices[i, c]
            if j >= 0 and j != i:
                probs[i, c] = math.exp(-beta * (distances[i, c] ** 2 - d2_min))
                z += probs[i, c]
        for c in range(k):
            probs[i, c] /= z  # z >= 1: the nearest neighbour contributes exp(0)


@njit
def _search_beta(row_idx, row_dist, i, d2_min, scale, target):  # type: ignore[no-untyped-def]
    """Bisection (with doubling while unbounded) for the beta whose entropy is ``target``."""
    lo, hi, b = 0.0, np.inf, 1.0
    for _ in range(200):
        beta = b / scale
        z = 0.0
        zs = 0.0
        for c in range(row_idx.shape[0]):
            j = row_idx[c]
            if j >= 0 and j != i:
                s = row_dist[c] ** 2 - d2_min
                e = math.exp(-beta * s)
                z += e
                zs += e * s
        entropy = math.log(z) + beta * zs / z
        if abs(entropy - target) < 1e-6:
            break
        if entropy > target:  # too flat: sharpen
            lo = b
            b = b * 2.0 if hi == np.inf else (b + hi) / 2.0
        else:
            hi = b
            b = (b + lo) / 2.0
    return b / scale


def _check_knn(knn_indices: NDArray[np.integer], knn_distances: NDArray[np.floating]) -> None:
    idx, dist = np.asarray(knn_indices), np.asarray(knn_distances)
    if idx.ndim != 2 or idx.shape != dist.shape or idx.shape[0] < 2 or idx.shape[1] < 2:
        msg = (
            f"knn_indices {idx.shape} and knn_distances {dist.shape} must both be (n, k) "
            "with n >= 2 and k >= 2 (the point itself plus neighbours); rebuild the kNN stage"
        )
        raise InputError(msg)
    n = idx.shape[0]
    if idx.min() < -1 or idx.max() >= n:
        msg = f"knn_indices must lie in [-1, {n}); rebuild the kNN stage"
        raise InputError(msg)
    if not np.isfinite(dist[idx >= 0]).all() or (dist[idx >= 0] < 0).any():
        msg = "knn_distances has negative or non-finite entries; rebuild the kNN stage"
        raise InputError(msg)


def perplexity_probabilities(
    knn_indices: NDArray[np.int32],
    knn_distances: NDArray[np.float32],
    perplexity: float = 50.0,
) -> NDArray[np.float64]:
    """Conditional probabilities ``p(j|i)`` over each point's kNN row.

    The target perplexity of row i is ``min(perplexity, max(1, 0.9 m_i))``, ``m_i`` the
    number of its neighbours other than itself (``-1`` entries are missing neighbours).
    Rows whose neighbours are all at the same distance (e.g. duplicates) get uniform weights.

    Returns probs : (n, k) float64, aligned with ``knn_indices``; 0 at the point itself.
    """
    if not perplexity >= 1.0:
        msg = f"largevis perplexity = {perplexity!r} must be >= 1 (the default is 50)"
        raise ConfigError(msg)
    _check_knn(knn_indices, knn_distances)
    return row_probabilities(knn_indices, knn_distances, perplexity)


def row_probabilities(
    knn_indices: NDArray[np.integer], knn_distances: NDArray[np.floating], perplexity: float
) -> NDArray[np.float64]:
    """``perplexity_probabilities`` without its checks: row i's own index is i, and its
    entries may point past the rows (to points whose own rows are elsewhere)."""
    idx = np.ascontiguousarray(knn_indices, dtype=np.int64)
    dist = np.ascontiguousarray(knn_distances, dtype=np.float64)
    n_valid = ((idx >= 0) & (idx != np.arange(idx.shape[0])[:, None])).sum(axis=1)
    targets = np.log(np.clip(n_valid * PERPLEXITY_PER_NEIGHBOR, 1.0, perplexity))
    probs = np.empty(idx.shape, dtype=np.float64)
    _calibrate_rows(idx, dist, targets, probs)
    return probs


def largevis_weights(
    knn_indices: NDArray[np.int32],
    knn_distances: NDArray[np.float32],
    perplexity: float = 50.0,
) -> sp.csr_matrix:
    """The symmetric LargeVis edge weights ``w_ij = (p(j|i) + p(i|j)) / 2N``.

    Returns weights : (n, n) scipy CSR, float64, symmetric, nonnegative, summing to 1
    (less the rows that have no neighbour at all).
    """
    probs = perplexity_probabilities(knn_indices, knn_distances, perplexity)
    n, k = probs.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = np.asarray(knn_indices, dtype=np.int64).ravel()
    vals = probs.ravel()
    keep = vals > 0.0
    cond = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n))
    weights = ((cond + cond.T) / (2.0 * n)).tocsr()
    weights.sum_duplicates()
    weights.sort_indices()
    return weights


def check_options(
    samples_per_point: int, n_negatives: int, gamma: float, learning_rate: float
) -> None:
    if samples_per_point < 1 or n_negatives < 1 or gamma < 0.0 or not learning_rate > 0.0:
        msg = (
            f"largevis samples_per_point = {samples_per_point}, n_negatives = {n_negatives}, "
            f"gamma = {gamma}, learning_rate = {learning_rate}: need samples_per_point >= 1, "
            "n_negatives >= 1, gamma >= 0 and learning_rate > 0 (see LargeVisConfig)"
        )
        raise ConfigError(msg)


def _initial_coords(
    n: int, init: NDArray[np.floating] | None, rng: np.random.Generator
) -> NDArray[np.float32]:
    """The reference's tiny uniform start, or ``init`` centred with max |coordinate| 10."""
    if init is None:
        return rng.uniform(-_INIT_SCALE, _INIT_SCALE, size=(n, 2)).astype(np.float32)
    start = np.array(init, dtype=np.float64)
    if start.shape != (n, 2) or not np.isfinite(start).all():
        msg = f"largevis init has shape {start.shape}; need ({n}, 2) and finite values"
        raise InputError(msg)
    start -= start.mean(axis=0)
    top = np.abs(start).max()
    # A given init can be on any scale; the clipped, unit-rate steps assume tens.
    return (start * (10.0 / top) if top > 0 else start).astype(np.float32)


def scale_layout(coords: NDArray[np.floating]) -> NDArray[np.float32]:
    """Centre at the mean; scale to an RMS distance from the centre of 10 (LargeVis's
    output scale)."""
    out = coords.astype(np.float64)
    out -= out.mean(axis=0)
    rms = math.sqrt(float((out**2).sum(axis=1).mean()))
    if rms > 0:
        out *= _OUTPUT_RMS / rms
    return out.astype(np.float32)


def largevis_layout(
    knn_indices: NDArray[np.int32],
    knn_distances: NDArray[np.float32],
    *,
    perplexity: float = 50.0,
    samples_per_point: int = 2000,
    n_negatives: int = 5,
    gamma: float = 7.0,
    learning_rate: float = 1.0,
    seed: int = 0,
    parallel: bool = True,
    init: NDArray[np.floating] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> NDArray[np.float32]:
    """A 2-D LargeVis layout of the kNN graph (``knn_indices`` / ``knn_distances``, (n, k)).

    ``samples_per_point × n`` positive edges are sampled in all, each with ``n_negatives``
    negative vertices. ``parallel=False`` runs one thread and gives the same output for the
    same seed; ``parallel=True`` runs numba's threads lock-free (Hogwild), each with its own
    random stream from ``seed``, and is not bit-reproducible. ``init`` (n, 2) replaces the
    tiny random start. ``on_progress`` gets the fraction done (0..1), 50 times.

    Returns coords : (n, 2) float32, centred, RMS distance from the centre 10.
    """
    check_options(samples_per_point, n_negatives, gamma, learning_rate)
    weights = largevis_weights(knn_indices, knn_distances, perplexity).tocoo()
    n = weights.shape[0]
    rng = np.random.default_rng(seed)
    coords = _initial_coords(n, init, rng)
    if weights.nnz == 0:  # no edges at all (every row empty): nothing to optimise
        return scale_layout(coords)
    moving = np.ones(n, dtype=np.bool_)
    sgd = (learning_rate, gamma, n_negatives, parallel)
    optimise_layout(coords, weights, moving, samples_per_point * n, rng, sgd, on_progress)
    return scale_layout(coords)
