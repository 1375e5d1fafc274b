"""Per-point neighbourhood preservation of a 2-D layout: where the picture lies."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from explorer.jit import njit, prange


@njit(parallel=True)
def _overlap(high, low, n_keep, offset):  # type: ignore[no-untyped-def]
    n, k = high.shape
    out = np.empty(n, dtype=np.float32)
    for i in prange(n):
        hits = 0
        total = 0
        for a in range(k):
            j = high[i, a]
            if j == i + offset:
                continue
            total += 1
            seen = 0
            for b in range(low.shape[1]):
                m = low[i, b]
                if m == i + offset:
                    continue
                if m == j:
                    hits += 1
                    break
                seen += 1
                if seen >= n_keep:
                    break
        out[i] = hits / total if total > 0 else 1.0
    return out


def layout_trust(
    coords: NDArray[np.float32], knn_indices: NDArray[np.int32]
) -> NDArray[np.float32]:
    """Per point, the share of its k high-dimensional neighbours among its k nearest in 2-D.

    coords : (n, 2) float32; knn_indices : (n, k) int32 with the point itself in column 0.
    Returns (n,) float32 in [0, 1]; 1 means the layout keeps that neighbourhood exactly.
    """
    return layout_trust_rows(coords, knn_indices, 0)


def layout_trust_rows(
    coords: NDArray[np.float32], knn_indices: NDArray[np.int32], start: int
) -> NDArray[np.float32]:
    """``layout_trust`` of the rows ``start .. start + len(knn_indices)`` only.

    coords : (n, 2), every point (the 2-D neighbours are searched among all of them);
    knn_indices : (rows, k), those rows of the kNN graph. Concatenated over row blocks the
    result equals ``layout_trust`` of the whole graph.
    """
    n = coords.shape[0]
    rows, k = knn_indices.shape
    n_keep = k - 1  # neighbours other than the point itself
    if n_keep <= 0:
        return np.ones(rows, dtype=np.float32)
    tree = cKDTree(np.asarray(coords, dtype=np.float64))
    queries = np.asarray(coords[start : start + rows], dtype=np.float64)
    _, low = tree.query(queries, k=min(k + 1, n), workers=-1)
    low = np.asarray(low, dtype=np.int64).reshape(rows, -1)
    out: NDArray[np.float32] = _overlap(np.asarray(knn_indices, dtype=np.int64), low, n_keep, start)
    return out
