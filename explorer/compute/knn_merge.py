"""A kNN graph from overlapping partitions: assign, build per partition, merge.

The sharded build (``explorer build --dask``) splits the points into k-means partitions,
each point going to its ``overlap`` nearest centres (DiskANN's partitioned build), builds
each partition's graph with ``knn_graph`` on its own worker, and keeps for every point the
best k among the candidates its partitions found. These are the pure parts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from explorer.jit import njit, prange

# Distances to the centres are computed for blocks of rows: rows × centres float64.
_BLOCK_ROWS = 8192


def nearest_centres_m(
    x: NDArray[np.float32], centres: NDArray[np.float32], m: int
) -> NDArray[np.int32]:
    """The ``m`` nearest rows of ``centres`` (c, d) for each row of ``x`` (n, d).

    Returns (n, min(m, c)) int32, nearest first (ties by centre number).
    """
    c = centres.shape[0]
    m = min(m, c)
    cen = np.asarray(centres, dtype=np.float64)
    cen_sq = (cen**2).sum(axis=1)
    out = np.empty((x.shape[0], m), dtype=np.int32)
    for s in range(0, x.shape[0], _BLOCK_ROWS):
        b = np.asarray(x[s : s + _BLOCK_ROWS], dtype=np.float64)
        d2 = cen_sq[None, :] - 2.0 * (b @ cen.T)  # the row's own norm does not change the order
        cols = np.tile(np.arange(c), (len(b), 1))
        order = np.lexsort((cols, d2), axis=1)[:, :m]
        out[s : s + len(b)] = order
    return out


def partition_members(assign: NDArray[np.int32], n_parts: int) -> list[NDArray[np.int64]]:
    """Rows of each partition (sorted), from the (n, m) centre assignment."""
    n, m = assign.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), m)
    parts = assign.reshape(-1).astype(np.int64)
    order = np.argsort(parts, kind="stable")  # stable: rows stay sorted within a part
    bounds = np.cumsum(np.bincount(parts, minlength=n_parts))
    starts = np.concatenate(([0], bounds[:-1]))
    return [rows[order[a:b]] for a, b in zip(starts, bounds, strict=True)]


@njit(parallel=True)
def _merge(cand_idx, cand_dist, k, out_idx, out_dist, count):  # type: ignore[no-untyped-def]
    n, c = cand_idx.shape
    for i in prange(n):
        # Sort the row's candidates by (distance, index); duplicates are then adjacent
        # only when they tie, so a seen-check over the kept ones is needed.
        order = np.argsort(cand_idx[i], kind="mergesort")
        order = order[np.argsort(cand_dist[i][order], kind="mergesort")]
        kept = 0
        # The point itself first, whatever its partitions said.
        out_idx[i, 0] = i
        out_dist[i, 0] = 0.0
        kept = 1
        for a in range(c):
            if kept >= k:
                break
            j = cand_idx[i, order[a]]
            if j < 0 or j == i:
                continue
            dup = False
            for b in range(1, kept):
                if out_idx[i, b] == j:
                    dup = True
                    break
            if dup:
                continue
            out_idx[i, kept] = j
            out_dist[i, kept] = cand_dist[i, order[a]]
            kept += 1
        count[i] = kept


def merge_candidates(
    cand_idx: NDArray[np.integer], cand_dist: NDArray[np.floating], k: int
) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int64]]:
    """For each row the point itself then its ``k - 1`` nearest distinct candidates.

    cand_idx, cand_dist : (n, c) candidates (global row numbers; -1 for none) with their
    distances, e.g. the rows of several partitions' graphs side by side. Returns indices
    (n, k) int32, distances (n, k) float32 (ascending; column 0 the point at 0) and the
    number of entries filled per row (n,): a row with fewer distinct candidates than k
    has -1 / inf in its last columns.
    """
    n = cand_idx.shape[0]
    out_idx = np.full((n, k), -1, dtype=np.int32)
    out_dist = np.full((n, k), np.inf, dtype=np.float32)
    count = np.zeros(n, dtype=np.int64)
    _merge(
        np.ascontiguousarray(cand_idx, dtype=np.int32),
        np.ascontiguousarray(cand_dist, dtype=np.float32),
        k,
        out_idx,
        out_dist,
        count,
    )
    return out_idx, out_dist, count
