"""k-means building blocks for the cluster tree: nearest centres, k-means++ and Lloyd, Ward cuts.

Distances are computed by numba loops rather than ``X @ C.T``: exact (no cancellation
between equal points), and free of BLAS threads, which spin badly on a busy machine over the
thousands of small nodes of a tree (6x slower under load at 100k points). Small inputs run
serially; large ones in threaded blocks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from explorer.jit import njit, prange

_LLOYD_ITERS = 25


@njit
def _nearest_rows(X, CT, out, lo, hi):  # type: ignore[no-untyped-def]
    # Centres transposed (d, k) so the inner loop runs across centres: independent lanes
    # that vectorise without fastmath.
    dist = np.empty(CT.shape[1], dtype=np.float32)
    for i in range(lo, hi):
        dist[:] = 0.0
        for j in range(X.shape[1]):
            x = X[i, j]
            for c in range(CT.shape[1]):
                diff = x - CT[j, c]
                dist[c] += diff * diff
        out[i] = np.argmin(dist)


@njit
def _group_sums(X, labels, k):  # type: ignore[no-untyped-def]
    sums = np.zeros((k, X.shape[1]), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    for i in range(X.shape[0]):
        g = labels[i]
        counts[g] += 1
        for j in range(X.shape[1]):
            sums[g, j] += X[i, j]
    return sums, counts


@njit(parallel=True)
def _nearest_blocks(X, CT, out, block):  # type: ignore[no-untyped-def]
    n_blocks = (X.shape[0] + block - 1) // block
    for b in prange(n_blocks):
        _nearest_rows(X, CT, out, b * block, min(X.shape[0], (b + 1) * block))


# Rows times centres above which starting threads pays off (small nodes run serially).
_PARALLEL_WORK = 1 << 20


def nearest_centres(X: NDArray[np.float32], C: NDArray[np.float32]) -> NDArray[np.intp]:
    """Index of the nearest row of ``C`` (k, d) for every row of ``X`` (n, d): (n,) intp."""
    out = np.empty(X.shape[0], dtype=np.intp)
    Xc = np.ascontiguousarray(X, dtype=np.float32)
    CT = np.ascontiguousarray(C.T, dtype=np.float32)
    if X.shape[0] * C.shape[0] >= _PARALLEL_WORK:
        _nearest_blocks(Xc, CT, out, 4096)
    else:
        _nearest_rows(Xc, CT, out, 0, X.shape[0])
    return out


def _seed_centres(X: NDArray[np.float32], k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ seeding; stops early when every point coincides with a chosen centre."""
    chosen = [int(rng.integers(X.shape[0]))]
    d2 = ((X - X[chosen[0]]) ** 2).sum(axis=1, dtype=np.float64)
    while len(chosen) < k:
        total = float(d2.sum())
        if total <= 0.0:
            break
        i = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        i = min(i, X.shape[0] - 1)
        chosen.append(i)
        d2 = np.minimum(d2, ((X - X[i]) ** 2).sum(axis=1, dtype=np.float64))
    return chosen


def group_means(
    X: NDArray[np.float32], labels: NDArray[np.intp], k: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per-label means (k, d) float64 (0 for empty labels), and the counts (k,)."""
    sums, counts = _group_sums(np.ascontiguousarray(X, dtype=np.float32), labels, k)
    means: NDArray[np.float64] = sums / np.maximum(counts, 1)[:, None]
    return means, counts


def kmeans(X: NDArray[np.float32], k: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """Lloyd's k-means from k-means++ seeds: (c, d) float32 distinct centres, c <= k."""
    centres = X[_seed_centres(X, k, rng)].copy()
    labels = nearest_centres(X, centres)
    for _ in range(_LLOYD_ITERS):
        means, counts = group_means(X, labels, centres.shape[0])
        # An emptied centre keeps its place: it may still win points of the full node.
        centres = np.where(counts[:, None] > 0, means, centres).astype(np.float32)
        new = nearest_centres(X, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return centres


def ward_cut(
    centres: NDArray[np.float32], counts: NDArray[np.int64], gap: float
) -> NDArray[np.intp]:
    """Group k weighted centres by Ward merges, cut where a merge costs ``gap`` times the last.

    Returns (k,) group ids; all distinct when no merge cost jumps by ``gap`` or more.
    """
    k = centres.shape[0]
    c = centres.astype(np.float64)
    w = counts.astype(np.float64)
    group = np.arange(k)
    alive = list(range(k))
    heights: list[float] = []
    snapshots: list[NDArray[np.intp]] = []
    while len(alive) > 1:
        best = (np.inf, 0, 0)
        for i, a in enumerate(alive):
            for b in alive[i + 1 :]:
                cost = w[a] * w[b] / (w[a] + w[b]) * float(((c[a] - c[b]) ** 2).sum())
                if cost < best[0]:
                    best = (cost, a, b)
        cost, a, b = best
        heights.append(cost)
        snapshots.append(group.copy())
        c[a] = (w[a] * c[a] + w[b] * c[b]) / (w[a] + w[b])
        w[a] += w[b]
        group[group == b] = a
        alive.remove(b)
    # heights[j] is the cost of merge j; cutting before merge j keeps snapshots[j].
    h = np.maximum(np.asarray(heights), 1e-300)
    ratios = h[1:] / h[:-1]  # ratios[j - 1] compares merge j with merge j - 1
    if ratios.size == 0 or ratios.max() < gap:
        return np.arange(k)
    j = int(np.argmax(ratios)) + 1
    return np.unique(snapshots[j], return_inverse=True)[1]
