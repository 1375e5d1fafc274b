"""Placing points into a layout fitted on a sample of them.

A layout fitted on a sample (``umap_layout`` on the sample's own kNN graph) gives the
sampled points their positions; every other point is then placed as UMAP's ``transform``
places new points: at the weighted mean of its neighbours' positions (UMAP's membership
weights), then moved by a short run of UMAP's own optimiser with the sampled points held
still. Unlike ``transform`` the neighbours come from the stored kNN graph of all points
(no search index is needed), so a point none of whose neighbours was sampled is placed
once its neighbours are (rounds of propagation over the graph).

Measured (10,000 points of a 5-D 20-cluster mixture, a 25% sample, k = 15; trust is
``layout_trust``'s mean): UMAP fitted on all points 0.265; the weighted means alone 0.230;
refining only the placed points (``transform``'s way) 0.19-0.22 at 30-200 epochs;
refining every point 0.267 at 30 epochs and 0.299 at 60. Refined in pieces with the rest
held still (one task each), pieces of consecutive rows fell to 0.17 (most neighbours are
held still at their first guesses), pieces that are tiles of the first layout
(``spatial_tiles``) kept 0.288 with 4 tiles and 0.271 with 16 of 625 points each: only
points near a tile's edge have neighbours outside it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from explorer.compute.largevis import check_options, row_probabilities
from explorer.compute.largevis_sgd import optimise_layout
from explorer.jit import njit, prange


def membership_weights(
    knn_indices: NDArray[np.integer], knn_distances: NDArray[np.floating]
) -> NDArray[np.float32]:
    """UMAP's fuzzy membership of each kNN edge, (rows, k) float32 (0 for the point itself).

    Per row; rows may be any block of the graph.
    """
    from umap.umap_ import smooth_knn_dist

    d = np.ascontiguousarray(knn_distances, dtype=np.float32)
    k = d.shape[1]
    sigmas, rhos = smooth_knn_dist(d, float(k), local_connectivity=1.0)
    w: NDArray[np.float32] = np.exp(-np.maximum(d - rhos[:, None], 0.0) / sigmas[:, None]).astype(
        np.float32
    )
    rows = np.arange(d.shape[0])[:, None]
    w[np.asarray(knn_indices) < 0] = 0.0
    w[(np.asarray(knn_indices) == rows) & (d == 0)] = 0.0
    w[:, 0] = 0.0  # column 0 is the point itself
    return w


@njit(parallel=True)
def _propagate_round(coords, placed, indices, weights, out, now):  # type: ignore[no-untyped-def]
    n, k = indices.shape
    for i in prange(n):
        now[i] = placed[i]
        if placed[i]:
            continue
        sx = 0.0
        sy = 0.0
        sw = 0.0
        for a in range(k):
            j = indices[i, a]
            if j < 0 or j == i or not placed[j]:
                continue
            # A point whose only placed neighbours have weight 0 still gets their mean.
            w = weights[i, a] + 1e-6
            sx += w * coords[j, 0]
            sy += w * coords[j, 1]
            sw += w
        if sw > 0.0:
            out[i, 0] = sx / sw
            out[i, 1] = sy / sw
            now[i] = True


def propagate_positions(
    coords: NDArray[np.float32],
    placed: NDArray[np.bool_],
    knn_indices: NDArray[np.integer],
    weights: NDArray[np.floating],
    max_rounds: int = 64,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Place unplaced points at the weighted mean of their placed neighbours, in rounds.

    coords : (n, 2), valid where ``placed``; weights : (n, k) from ``membership_weights``.
    Each round places every point with a neighbour placed in an earlier round (the
    same in any order, so threads may share it). Returns the new coords and the mask of
    placed points: points whose connected part of the graph holds no placed point stay
    unplaced.
    """
    out = np.array(coords, dtype=np.float32)
    done = np.array(placed, dtype=np.bool_)
    idx = np.ascontiguousarray(knn_indices, dtype=np.int64)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    now = np.empty_like(done)
    for _ in range(max_rounds):
        _propagate_round(out, done, idx, w, out, now)
        if np.array_equal(now, done):
            break
        done, now = now, done
    return out, done


def refine_positions(
    coords: NDArray[np.float32],
    rows: NDArray[np.integer],
    knn_indices: NDArray[np.integer],
    weights: NDArray[np.floating],
    *,
    n_epochs: int = 30,
    min_dist: float = 0.1,
    spread: float = 1.0,
    seed: int = 0,
) -> NDArray[np.float32]:
    """Move the points ``rows`` by UMAP's optimiser; every other point stays where it is.

    Used on the rows of one tile (``spatial_tiles``) at a time, all of its points moving,
    sampled ones included (the module docstring says why).

    coords : (n, 2) all points; rows : (r,) the points to move; knn_indices, weights :
    (r, k) their kNN rows and membership weights. As in ``UMAP.transform``: edges weaker
    than 1/n_epochs of the strongest are dropped, the learning rate starts at 1/4, and
    negative samples are drawn from all n points. Returns the moved rows' positions (r, 2).
    """
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import find_ab_params, make_epochs_per_sample

    rows = np.asarray(rows, dtype=np.int64)
    idx = np.asarray(knn_indices, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float32)
    keep = (idx >= 0) & (w > 0)
    if not keep.any() or n_epochs <= 0:
        return np.array(coords[rows], dtype=np.float32)
    keep &= w >= w[keep].max() / float(n_epochs)
    head = np.repeat(rows, idx.shape[1]).reshape(idx.shape)[keep].astype(np.int32)
    tail = idx[keep].astype(np.int32)
    epochs_per_sample = make_epochs_per_sample(w[keep].astype(np.float64), n_epochs)
    a, b = find_ab_params(spread, min_dist)
    embedding = np.ascontiguousarray(coords, dtype=np.float32).copy()
    rng = np.random.RandomState(seed)
    rng_state = rng.randint(np.iinfo(np.int32).min + 1, np.iinfo(np.int32).max - 1, 3).astype(
        np.int64
    )
    # head and tail share one array, so a moved point is seen at its new place by the rest
    # of its partition; with move_other=False only the heads (``rows``) ever move.
    optimize_layout_euclidean(
        embedding,
        embedding,
        head,
        tail,
        n_epochs,
        embedding.shape[0],
        epochs_per_sample,
        a,
        b,
        rng_state,
        1.0,
        0.25,
        5.0,
        False,
        move_other=False,
    )
    return np.ascontiguousarray(embedding[rows], dtype=np.float32)


def spatial_tiles(coords: NDArray[np.float32], n_tiles: int) -> list[NDArray[np.int64]]:
    """Split the points into about ``n_tiles`` tiles of equal counts (bands of x, then y).

    Returns each tile's rows, sorted; together they hold every row once.
    """
    n = coords.shape[0]
    n_tiles = max(1, min(n_tiles, n))
    bands = max(1, round(np.sqrt(n_tiles)))
    per_band = -(-n_tiles // bands)
    by_x = np.argsort(coords[:, 0], kind="stable")
    tiles: list[NDArray[np.int64]] = []
    for band in np.array_split(by_x, bands):
        by_y = band[np.argsort(coords[band, 1], kind="stable")]
        tiles.extend(np.sort(t).astype(np.int64) for t in np.array_split(by_y, per_band))
    return [t for t in tiles if t.size]


def largevis_refine(
    coords: NDArray[np.floating],
    rows: NDArray[np.integer],
    knn_indices: NDArray[np.integer],
    knn_distances: NDArray[np.floating],
    *,
    perplexity: float = 50.0,
    samples_per_point: int = 2000,
    n_negatives: int = 5,
    gamma: float = 7.0,
    learning_rate: float = 1.0,
    seed: int = 0,
    parallel: bool = False,
) -> NDArray[np.float32]:
    """Move the points ``rows`` by LargeVis's optimiser; every other point stays still.

    The placed layout's refinement (pipeline on a cluster: one tile of the first layout
    per task). coords : (n, 2) all points, on the scale of a ``largevis_layout`` output;
    rows : (r,) the points to move; knn_indices, knn_distances : (r, k) their kNN rows
    (global ids). The edges are the rows' own kNN edges weighted by ``p(j|i)``; negatives
    are drawn among ``rows``; ``samples_per_point × r`` edge samples in all, the rate
    falling from ``learning_rate`` as in ``largevis_layout``.

    Returns the moved rows' positions (r, 2) float32, on the scale of ``coords``.
    """
    check_options(samples_per_point, n_negatives, gamma, learning_rate)
    rows = np.asarray(rows, dtype=np.int64)
    idx = np.asarray(knn_indices, dtype=np.int64)
    r = rows.size
    if r == 0:
        return np.empty((0, 2), dtype=np.float32)
    # The tile's points first, then the fixed neighbours outside it; self edges dropped.
    valid = (idx >= 0) & (idx != rows[:, None])
    outside = np.setdiff1d(idx[valid], rows)
    local_ids = np.concatenate([rows, outside])
    order = np.argsort(local_ids, kind="stable")
    local = np.full(idx.shape, -1, dtype=np.int64)
    local[valid] = order[np.searchsorted(local_ids[order], idx[valid])]
    # p(j|i) over each tile row i (local number i; the point itself is -1, left out)
    probs = row_probabilities(local, knn_distances, perplexity)
    keep = probs > 0.0
    m = local_ids.size
    heads = np.repeat(np.arange(r, dtype=np.int64), idx.shape[1]).reshape(idx.shape)[keep]
    weights = sp.coo_matrix((probs[keep], (heads, local[keep])), shape=(m, m))
    if weights.nnz == 0:
        return np.array(np.asarray(coords)[rows], dtype=np.float32)
    # Only the tile's points carry negative mass (the fixed ones have no edges of their own).
    moved = np.ascontiguousarray(np.asarray(coords)[local_ids], dtype=np.float32)
    moving = np.zeros(m, dtype=np.bool_)
    moving[:r] = True
    sgd = (learning_rate, gamma, n_negatives, parallel)
    optimise_layout(moved, weights, moving, samples_per_point * r, np.random.default_rng(seed), sgd)
    return np.ascontiguousarray(moved[:r])
