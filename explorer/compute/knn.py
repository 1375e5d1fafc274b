"""The approximate kNN graph that every later stage reuses, and its measured recall."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from explorer.errors import ConfigError
from explorer.jit import njit, prange

# Below this many points an exact brute-force graph is faster than NN-descent, whose
# numba compilation alone costs 20-30 s in every new process, and it has recall 1.
EXACT_LIMIT = 20_000
# Exact distances are computed for blocks of query rows against all n points; a block
# holds at most this many float64 distances (256 MB), whatever n is.
_BLOCK_ELEMENTS = 32 * 1024 * 1024


@dataclass(frozen=True)
class KnnGraph:
    """indices : (n, k) int32, nearest first, column 0 the point itself.
    distances : (n, k) float32, column 0 is 0.
    """

    indices: NDArray[np.int32]
    distances: NDArray[np.float32]
    method: str
    params: dict[str, int | str]


def _prepare(x: NDArray[np.float32], metric: str) -> NDArray[np.float32]:
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            row = int(np.flatnonzero(norms[:, 0] == 0)[0])
            msg = (
                f"row {row} is an all-zero vector, which has no cosine distance; "
                "use --metric euclidean"
            )
            raise ConfigError(msg)
        return np.ascontiguousarray(x / norms, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def prepare_vectors(x: NDArray[np.float32], metric: str) -> NDArray[np.float32]:
    """The vectors as the graph searches them: unit rows for cosine, float32 C-order.

    Refuses an all-zero row under cosine (ConfigError naming it).
    """
    return _prepare(x, metric)


def put_self_first(indices: NDArray[np.int32], distances: NDArray[np.float32]) -> None:
    """In place: column 0 of each row becomes the point itself at distance 0.

    Duplicates of a point can displace it from column 0 of an exact or approximate graph;
    ``knn_graph`` calls this before it returns.
    """
    _self_first(indices, distances)


def _sq_dists(
    block: NDArray[np.float32], x64_t: NDArray[np.float64], x_sq: NDArray[np.float64]
) -> NDArray[np.float64]:
    b = block.astype(np.float64)
    d2 = b @ x64_t  # (rows, n): the only large temporary
    d2 *= -2.0
    d2 += (b * b).sum(axis=1)[:, None]
    d2 += x_sq[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _to_metric(d2: NDArray[np.float64], metric: str) -> NDArray[np.float64]:
    # On unit vectors the cosine distance 1 - cos is half the squared euclidean one.
    return d2 / 2.0 if metric == "cosine" else np.sqrt(d2)


def exact_neighbors(
    queries: NDArray[np.float32],
    x: NDArray[np.float32],
    k: int,
    metric: str = "euclidean",
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Exact k nearest rows of ``x`` for each query row (brute force, in blocks).

    Both inputs must already be prepared for the metric (unit rows for cosine).
    Ties are broken by row number, so the result is deterministic.
    """
    x64_t = np.ascontiguousarray(x.T, dtype=np.float64)
    x_sq = (x64_t**2).sum(axis=0)
    block = max(1, min(4096, _BLOCK_ELEMENTS // max(x.shape[0], 1)))
    out_i = np.empty((len(queries), k), dtype=np.int64)
    out_d = np.empty((len(queries), k), dtype=np.float64)
    for s in range(0, len(queries), block):
        d2 = _sq_dists(queries[s : s + block], x64_t, x_sq)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < x.shape[0] else None
        cand = part if part is not None else np.tile(np.arange(x.shape[0]), (len(d2), 1))
        cd = np.take_along_axis(d2, cand, axis=1)
        order = np.lexsort((cand, cd), axis=1)
        out_i[s : s + len(d2)] = np.take_along_axis(cand, order, axis=1)
        out_d[s : s + len(d2)] = _to_metric(np.take_along_axis(cd, order, axis=1), metric)
    return out_i, out_d


@njit(parallel=True)
def _self_first(indices, distances):  # type: ignore[no-untyped-def]
    """Make column 0 of each row the point itself at distance 0 (duplicates can displace it)."""
    n, k = indices.shape
    for i in prange(n):
        pos = -1
        for j in range(k):
            if indices[i, j] == i:
                pos = j
                break
        if pos == 0:
            distances[i, 0] = 0.0
            continue
        if pos < 0:
            pos = k - 1  # i is missing: drop the farthest neighbour to make room
        for j in range(pos, 0, -1):
            indices[i, j] = indices[i, j - 1]
            distances[i, j] = distances[i, j - 1]
        indices[i, 0] = i
        distances[i, 0] = 0.0


def default_effort(n: int) -> dict[str, int]:
    """pynndescent's own defaults for n points (trees, iterations, candidates)."""
    return {
        "n_trees": min(64, 5 + round(n**0.25 / 2.0)),
        "n_iters": max(5, round(math.log2(max(n, 2)))),
        "max_candidates": 60,
    }


def default_build_factor(n: int) -> float:
    """How many times k neighbours NN-descent keeps while it searches.

    Measured on 64-d Gaussian mixtures (high intrinsic dimension, the hard case), k=15:
    recall 0.75 -> 0.96 at 100k with factor 2 (1.4x the time); at 1M factor 2 gave 0.76
    and factor 3 gave 0.90. Low-dimensional data reaches ~1.0 either way.
    """
    return 2.0 if n <= 200_000 else 3.0


def knn_graph(
    x: NDArray[np.float32],
    n_neighbors: int = 15,
    metric: str = "euclidean",
    *,
    seed: int | None = 0,
    n_iters: int | None = None,
    max_candidates: int | None = None,
    n_trees: int | None = None,
    build_factor: float | None = None,
    exact_limit: int = EXACT_LIMIT,
    on_progress: Callable[[float], None] | None = None,
) -> KnnGraph:
    """The kNN graph of ``x`` (n, d): exact below ``exact_limit`` points, else NN-descent.

    ``n_neighbors`` counts the point itself and is capped at n. ``seed=None`` lets
    NN-descent vary run to run; the exact graph is the same whatever the seed.
    """
    n = x.shape[0]
    k = min(n_neighbors, n)
    xp = _prepare(x, metric)
    if n <= exact_limit:
        idx, dist = exact_neighbors(xp, xp, k, metric)
        indices, distances = idx.astype(np.int32), dist.astype(np.float32)
        method, params = "exact", {}
    else:
        effort = default_effort(n)
        params = {
            "n_trees": n_trees or effort["n_trees"],
            "n_iters": n_iters or effort["n_iters"],
            "max_candidates": max_candidates or effort["max_candidates"],
        }
        factor = build_factor or default_build_factor(n)
        build_k = min(n, max(k, round(k * factor)))
        indices, distances = _nndescent(xp, build_k, metric, seed, params)
        indices, distances = (
            np.ascontiguousarray(indices[:, :k]),
            np.ascontiguousarray(distances[:, :k]),
        )
        params["build_neighbors"] = build_k
        method = "nndescent"
    _self_first(indices, distances)
    if on_progress is not None:
        on_progress(1.0)
    return KnnGraph(indices, distances, method, {"n_neighbors": k, "metric": metric, **params})


def _nndescent(
    xp: NDArray[np.float32], k: int, metric: str, seed: int | None, params: dict[str, int]
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    from pynndescent import NNDescent

    index = NNDescent(
        xp,
        n_neighbors=k,
        metric="euclidean" if metric == "euclidean" else "cosine",
        random_state=seed,
        low_memory=True,
        compressed=True,
        verbose=False,
        **params,
    )
    # neighbor_graph applies the distance correction (e.g. cosine); _neighbor_graph does not
    indices, distances = index.neighbor_graph
    return (
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(distances, dtype=np.float32),
    )


def knn_recall(
    x: NDArray[np.float32],
    indices: NDArray[np.int32],
    metric: str = "euclidean",
    *,
    sample: int = 1000,
    seed: int = 0,
) -> float:
    """Share of the graph's neighbours that are true k-nearest neighbours, on a sample.

    A returned neighbour counts as correct when its exact distance is within the exact
    k-th neighbour distance, so ties among duplicates do not count as misses.
    """
    n, k = indices.shape
    if n == 0 or sample == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    xp = _prepare(x, metric)
    _, exact_d = exact_neighbors(xp[rows], xp, k, metric)
    kth = exact_d[:, -1]
    q = xp[rows].astype(np.float64)
    nb = xp[indices[rows]].astype(np.float64)  # (s, k, d)
    d2 = ((nb - q[:, None, :]) ** 2).sum(axis=2)
    got = _to_metric(d2, metric)
    tol = 1e-6 * np.maximum(kth, 1.0)
    return float(np.mean(got <= (kth + tol)[:, None]))
