"""Per-point neighbourhood preservation of a 2-D layout: where the picture lies."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from explorer.jit import njit, prange


@njit(parallel=True)
def _overlap(high, low, n_keep):  # type: ignore[no-untyped-def]
    n, k = high.shape
    out = np.empty(n, dtype=np.float32)
    for i in prange(n):
        hits = 0
        total = 0
        for a in range(k):
            j = high[i, a]
            if j == i:
                continue
            total += 1
            seen = 0
            for b in range(low.shape[1]):
                m = low[i, b]
                if m == i:
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
    n, k = knn_indices.shape
    n_keep = k - 1  # neighbours other than the point itself
    if n_keep <= 0:
        return np.ones(n, dtype=np.float32)
    tree = cKDTree(np.asarray(coords, dtype=np.float64))
    _, low = tree.query(np.asarray(coords, dtype=np.float64), k=min(k + 1, n), workers=-1)
    low = np.asarray(low, dtype=np.int64).reshape(n, -1)
    out: NDArray[np.float32] = _overlap(np.asarray(knn_indices, dtype=np.int64), low, n_keep)
    return out
