"""Distances for h-MDS at scale: the connected kNN graph, landmarks and their distances.

Exact geodesics from every landmark cost one Dijkstra over the whole graph each (about
0.4 s per landmark at 1M points), so above ``EXACT_LIMIT`` the landmarks' distances come
from a multi-source label propagation instead: every point learns its ``N_ANCHORS``
graph-nearest landmarks and their exact geodesic distances (a few parallel sweeps over the
edges), and landmark-to-landmark distances are shortest paths in the small graph whose
edges are the paths through points that know both landmarks (upper bounds, tight between
neighbouring landmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components, dijkstra

from explorer.jit import njit, prange

N_ANCHORS = 6  # landmarks each point is placed from (3 unknowns in the 2-D Lorentz model)
EXACT_LIMIT = 4_000_000  # landmarks × points up to which Dijkstra runs from every landmark
_COMPONENT_SAMPLE = 64  # points per component searched for the bridging edge
_CANDIDATE_COMPONENTS = 4  # nearest components (by centroid) searched for each component
_LANDMARK_SAMPLE = 10  # k-means++ seeding runs on up to this many points per landmark
_PROJECT_DIM = 64  # random projection before seeding when vectors are wider


def symmetric_knn_graph(
    knn_indices: NDArray[np.integer], knn_distances: NDArray[np.floating]
) -> sp.csr_matrix:
    """The kNN graph as a symmetric (n, n) CSR matrix of float64 edge lengths.

    Self-edges are dropped; zero lengths (duplicate points) become a tiny positive length so
    that sparse routines keep the edge.
    """
    n, k = knn_indices.shape
    rows = np.repeat(np.arange(n), k)
    cols = knn_indices.reshape(-1).astype(np.int64)
    w = knn_distances.reshape(-1).astype(np.float64)
    keep = cols != rows
    positive = w[keep & (w > 0)]
    floor = 1e-9 * float(np.median(positive)) if positive.size else 1e-9
    g = sp.csr_matrix((np.maximum(w[keep], floor), (rows[keep], cols[keep])), shape=(n, n))
    return g.maximum(g.T).tocsr()


def connect_components(
    graph: sp.csr_matrix, X: NDArray[np.floating], seed: int
) -> tuple[sp.csr_matrix, int]:
    """Join the graph's components by Euclidean edges between their closest sampled points.

    Each round links every component to the nearest of a few candidate components (chosen by
    centroid) through the shortest edge between up to 64 sampled points of each, so the
    number of components at least halves per round. Returns (connected graph, number of
    components before).
    """
    rng = np.random.default_rng(seed)
    n_before, labels = connected_components(graph, directed=False)
    n_comp = n_before
    while n_comp > 1:
        order = rng.permutation(graph.shape[0])
        order = order[np.argsort(labels[order], kind="stable")]
        starts = np.searchsorted(labels[order], np.arange(n_comp))
        sizes = np.bincount(labels, minlength=n_comp)
        samples = [
            order[s : s + min(z, _COMPONENT_SAMPLE)] for s, z in zip(starts, sizes, strict=True)
        ]
        centroids = np.stack([X[s].astype(np.float64).mean(axis=0) for s in samples])
        # Two components may pick the same bridge: keep each pair once (csr sums duplicates).
        edges = {
            tuple(sorted(e[:2])): e[2]
            for e in (_bridge(c, samples, centroids, X) for c in range(n_comp))
        }
        a, b = np.array(list(edges)).T
        w = np.maximum(np.array(list(edges.values())), 1e-12)
        bridge = sp.csr_matrix((w, (a, b)), shape=graph.shape)
        graph = graph.maximum(bridge.maximum(bridge.T)).tocsr()
        n_comp, labels = connected_components(graph, directed=False)
    return graph, int(n_before)


def _bridge(
    c: int,
    samples: list[NDArray[np.int64]],
    centroids: NDArray[np.float64],
    X: NDArray[np.floating],
) -> tuple[int, int, float]:
    """Shortest edge from component c's samples to those of its nearest candidate components."""
    gap = np.sum((centroids - centroids[c]) ** 2, axis=1)
    gap[c] = np.inf
    k = min(_CANDIDATE_COMPONENTS, len(samples) - 1)
    cand = np.argpartition(gap, k - 1)[:k]
    other = np.concatenate([samples[o] for o in cand])
    a, b = X[samples[c]].astype(np.float64), X[other].astype(np.float64)
    d2 = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=2)
    i, j = np.unravel_index(int(np.argmin(d2)), d2.shape)
    return int(samples[c][i]), int(other[j]), float(np.sqrt(d2[i, j]))


def select_landmarks(X: NDArray[np.floating], n_landmarks: int, seed: int) -> NDArray[np.int64]:
    """k-means++ (D²) seeding on a random sample of the points: spread-out landmarks.

    X : (n, d). Returns up to ``n_landmarks`` sorted distinct int64 indices (fewer when the
    sample has fewer distinct points); all points when ``n_landmarks >= n``.
    """
    n = X.shape[0]
    if n_landmarks >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    pool = np.sort(rng.choice(n, size=min(n, _LANDMARK_SAMPLE * n_landmarks), replace=False))
    y = np.asarray(X[pool], dtype=np.float64)
    if y.shape[1] > _PROJECT_DIM:  # distances survive a random projection well enough here
        y = y @ rng.standard_normal((y.shape[1], _PROJECT_DIM))
    chosen = [int(rng.integers(pool.size))]
    d2 = np.sum((y - y[chosen[0]]) ** 2, axis=1)
    for _ in range(n_landmarks - 1):
        total = float(d2.sum())
        if total <= 0:
            break
        nxt = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
        nxt = min(nxt, pool.size - 1)
        chosen.append(nxt)
        d2 = np.minimum(d2, np.sum((y - y[nxt]) ** 2, axis=1))
    return np.sort(pool[np.unique(chosen)]).astype(np.int64)


def landmark_labels(
    graph: sp.csr_matrix, sources: NDArray[np.int64], n_labels: int = N_ANCHORS
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """Every point's ``n_labels`` graph-nearest sources and their exact geodesic distances.

    graph : (n, n) symmetric CSR; sources : (m,) point indices. Returns ids : (n, K) int32
    positions in ``sources`` (-1 where fewer are reachable) and dist : (n, K) float64
    ascending (inf where missing). Jacobi sweeps of a K-best Bellman–Ford until nothing
    changes: O(edges · K²) per sweep, parallel, deterministic.
    """
    n = graph.shape[0]
    k = min(n_labels, sources.size)
    ids = np.full((n, k), -1, dtype=np.int32)
    dist = np.full((n, k), np.inf)
    ids[sources, 0] = np.arange(sources.size, dtype=np.int32)
    dist[sources, 0] = 0.0
    new_ids, new_dist = ids.copy(), dist.copy()
    changed = np.ones(n, dtype=np.bool_)
    changed_next = np.zeros(n, dtype=np.bool_)
    indptr = graph.indptr.astype(np.int64)
    indices = graph.indices.astype(np.int64)
    weights = graph.data.astype(np.float64)
    for _ in range(n):
        _label_sweep(indptr, indices, weights, ids, dist, new_ids, new_dist, changed, changed_next)
        ids, new_ids = new_ids, ids
        dist, new_dist = new_dist, dist
        changed, changed_next = changed_next, changed
        if not changed.any():
            break
    return ids, dist


@njit(parallel=True)
def _label_sweep(  # type: ignore[no-untyped-def]
    indptr, indices, weights, ids, dist, new_ids, new_dist, changed, changed_next
):
    n, k = ids.shape
    for i in prange(n):
        for c in range(k):
            new_ids[i, c] = ids[i, c]
            new_dist[i, c] = dist[i, c]
        active = False
        for e in range(indptr[i], indptr[i + 1]):
            if changed[indices[e]]:
                active = True
                break
        moved = False
        if active:
            for e in range(indptr[i], indptr[i + 1]):
                j = indices[e]
                for c in range(k):
                    if ids[j, c] < 0:
                        break
                    moved |= _insert(new_ids[i], new_dist[i], ids[j, c], dist[j, c] + weights[e])
        changed_next[i] = moved


@njit(inline="always")
def _insert(row_ids, row_d, s, d):  # type: ignore[no-untyped-def]
    """Insert (s, d) into a row sorted by distance with distinct ids; True if it changed."""
    k = row_ids.shape[0]
    pos = k
    for c in range(k):
        if row_ids[c] == s:
            if row_d[c] <= d:
                return False
            pos = c  # the same source, now closer: remove it, then insert
            break
    if pos == k and not d < row_d[k - 1]:
        return False
    c = min(pos, k - 1)
    while c > 0 and row_d[c - 1] > d:
        row_ids[c] = row_ids[c - 1]
        row_d[c] = row_d[c - 1]
        c -= 1
    row_ids[c] = s
    row_d[c] = d
    return True


@njit
def _label_edges(indptr, indices, weights, ids, dist, w_out):  # type: ignore[no-untyped-def]
    """Landmark graph: paths through a point that knows two landmarks, and across edges."""
    n, k = ids.shape
    for i in range(n):
        for a in range(k):
            sa = ids[i, a]
            if sa < 0:
                break
            for b in range(a + 1, k):
                sb = ids[i, b]
                if sb < 0:
                    break
                w = dist[i, a] + dist[i, b]
                if w < w_out[sa, sb]:
                    w_out[sa, sb] = w
                    w_out[sb, sa] = w
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            sa = ids[i, 0]
            sb = ids[j, 0]
            if sa >= 0 and sb >= 0 and sa != sb:
                w = dist[i, 0] + weights[e] + dist[j, 0]
                if w < w_out[sa, sb]:
                    w_out[sa, sb] = w
                    w_out[sb, sa] = w


@dataclass(frozen=True)
class LandmarkDistances:
    """Distances from points to the fitted landmarks, however they were obtained.

    fit : (m, m) between landmarks; anchor_ids / anchor_d : (n, K) each point's nearest
    landmarks (positions in the landmark list) and distances; full : (m, n) every distance
    when it was affordable, else None; x : the vectors when distances are Euclidean.
    """

    landmarks: NDArray[np.int64]
    fit: NDArray[np.float64]
    anchor_ids: NDArray[np.int64]
    anchor_d: NDArray[np.float64]
    full: NDArray[np.float64] | None
    x: NDArray[np.floating] | None

    def to_landmarks(self, points: NDArray[np.int64], lm: NDArray[np.int64]) -> NDArray[np.float64]:
        """Distances from ``points`` (q,) to landmark positions ``lm`` (q, F) -> (q, F)."""
        out: NDArray[np.float64]
        if self.full is not None:
            out = self.full[lm, points[:, None]]
        elif self.x is not None:
            out = row_distances(
                self.x, np.broadcast_to(points[:, None], lm.shape), self.landmarks[lm]
            )
        else:  # the shortest way through one of the point's anchors (an upper bound)
            ids, d = self.anchor_ids[points], self.anchor_d[points]
            via = d[:, None, :] + self.fit[lm[:, :, None], ids[:, None, :]]
            out = np.where(ids[:, None, :] >= 0, via, np.inf).min(axis=2)
        return out


def landmark_distances(
    graph: sp.csr_matrix,
    X: NDArray[np.floating] | None,
    landmarks: NDArray[np.int64],
    distance: str,
) -> LandmarkDistances:
    """Geodesic (on ``graph``) or Euclidean (on ``X``) distances to ``landmarks``."""
    n, m = graph.shape[0], landmarks.size
    x = None if distance == "geodesic" else X
    if m * n <= EXACT_LIMIT:
        if x is None:
            full = dijkstra(graph, directed=True, indices=landmarks)
        else:
            full = row_distances(
                x, np.broadcast_to(landmarks[:, None], (m, n)), np.indices((m, n))[1]
            )
        k = min(N_ANCHORS, m)
        ids = np.argpartition(full, k - 1, axis=0)[:k].T if k < m else np.indices((n, m))[1]
        d = np.take_along_axis(full.T, ids, axis=1)
        order = np.argsort(d, axis=1)
        ids, d = np.take_along_axis(ids, order, 1), np.take_along_axis(d, order, 1)
        fit = full[:, landmarks].copy()
        np.fill_diagonal(fit, 0.0)
        return LandmarkDistances(landmarks, fit, ids.astype(np.int64), d, full, None)
    lab_ids, lab_d = landmark_labels(graph, landmarks)
    if x is not None:  # Euclidean: keep the graph-nearest landmarks, measure them exactly
        near = landmarks[np.maximum(lab_ids, 0)]
        lab_d = np.where(lab_ids >= 0, row_distances(x, np.indices(near.shape)[0], near), np.inf)
        fit = row_distances(
            x, np.broadcast_to(landmarks[:, None], (m, m)), np.broadcast_to(landmarks, (m, m))
        )
        return LandmarkDistances(landmarks, fit, lab_ids.astype(np.int64), lab_d, None, x)
    w = np.full((m, m), np.inf)
    _label_edges(graph.indptr, graph.indices, graph.data, lab_ids, lab_d, w)
    small = sp.csr_matrix(np.where(np.isfinite(w), np.maximum(w, 1e-300), 0.0))
    fit = dijkstra(small, directed=False)
    return LandmarkDistances(landmarks, fit, lab_ids.astype(np.int64), lab_d, None, None)


def row_distances(
    X: NDArray[np.floating], i: NDArray[np.integer], j: NDArray[np.integer]
) -> NDArray[np.float64]:
    """Euclidean distances ``|X[i] − X[j]|`` for index arrays of one shape, in float64.

    Computed in row blocks so that wide float32 inputs are never copied whole.
    """
    out = np.empty(i.shape)
    flat_i, flat_j, flat_out = i.reshape(-1), j.reshape(-1), out.reshape(-1)
    block = max(1, (1 << 22) // max(X.shape[1], 1))
    for start in range(0, flat_i.size, block):
        stop = start + block
        diff = X[flat_i[start:stop]].astype(np.float64) - X[flat_j[start:stop]]
        flat_out[start:stop] = np.sqrt(np.einsum("qd,qd->q", diff, diff))
    return out
