"""Hyperbolic MDS into the Poincaré disk ("Representation Tradeoffs for Hyperbolic Embeddings").

``hmds_layout`` is the stage: landmarks are embedded exactly by h-MDS at a scale τ chosen on
held-out landmarks, every other point is placed from its distances to its nearest landmarks
(a least-squares problem in the Lorentz model), and the layout is refined in the disk, first
the landmarks on near and far landmark pairs, then every other point on its kNN pairs and a
few far pairs (``hmds_refine``; plain h-MDS in 2-D scrambles local order). Distances are
geodesics on the kNN graph (``hmds_graph``) or Euclidean distances between the vectors;
the geometry and the quality measures live in ``hyperbolic``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.linalg import eigsh

from explorer.compute.hmds_graph import (
    N_ANCHORS,
    connect_components,
    landmark_distances,
    select_landmarks,
    symmetric_knn_graph,
)
from explorer.compute.hmds_refine import refine_dense, refine_points
from explorer.compute.hyperbolic import (
    clip_to_disk,
    hyperboloid_to_poincare,
    hyperboloid_to_tangent,
    lorentz_recentre,
    poincare_distance,
    tangent_to_poincare,
)
from explorer.errors import ConfigError, InputError

Progress = Callable[[float], None] | None

_MAX_COSH_ARG = 700.0  # cosh overflows float64 a little above 710
_DENSE_EIGH = 600  # below this many points a dense eigh is faster than Lanczos
# τ·(landmark diameter) is searched in [_S_MIN, _S_MAX]: radii then stay near or below the
# ~12 that float32 Poincaré coordinates resolve (1 − |p| ≈ 2e^{-r}).
_S_MIN, _S_MAX = 0.5, 20.0
_MAX_HOLDOUT = 200
_TAU_TOLERANCE = 1.03  # take the smallest τ scoring within 3% of the best
_LOCAL_FRACTION = 40  # the all-points refinement runs refine_steps // 40 steps


@dataclass(frozen=True)
class HmdsResult:
    """coords : (n, 2) float32 Poincaré coordinates, all strictly inside the unit disk.
    tau : the scale (hyperbolic distance = τ × data distance).
    landmarks : (m,) int64 points embedded exactly by h-MDS.
    holdout : (h,) int64 landmarks held out of the fit, used to choose τ and to measure quality.
    distortion : average distortion of the final layout on held-out × landmark pairs.
    distortion_mds : the same, for plain h-MDS and out-of-sample placement (no refinement).
    """

    coords: NDArray[np.float32]
    tau: float
    landmarks: NDArray[np.int64]
    holdout: NDArray[np.int64]
    distortion: float
    distortion_mds: float


def hmds_exact(D: ArrayLike, tau: float, dim: int = 2) -> NDArray[np.float64]:
    """Simple h-MDS: ``Y = cosh(τD)``, top ``dim`` eigenpairs of ``−Y``, ``X = U·sqrt(λ)``.

    D : (m, m) symmetric distances. Returns (m, dim) float64 spatial hyperboloid coordinates
    (``hyperboloid_to_poincare`` gives the disk). Exact, up to an isometry, when D comes from
    points of the hyperbolic space of dimension ``dim`` and τ = 1; eigenvalues that are not
    positive give zero columns.
    """
    d = np.asarray(D, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or not np.all(np.isfinite(d)):
        msg = f"h-MDS needs a square finite distance matrix, got shape {d.shape}"
        raise InputError(msg)
    if not tau > 0 or tau * float(d.max(initial=0.0)) > _MAX_COSH_ARG:
        msg = f"h-MDS tau = {tau!r} must be > 0 with tau·max(D) <= {_MAX_COSH_ARG:g}"
        raise ConfigError(msg)
    m = d.shape[0]
    k = min(dim, m)
    neg_y = -np.cosh(tau * d)
    if m <= _DENSE_EIGH or k >= m - 1:
        vals, vecs = sla.eigh(neg_y, subset_by_index=[m - k, m - 1])
    else:
        v0 = np.random.default_rng(0).standard_normal(m)
        vals, vecs = eigsh(neg_y, k=k, which="LA", v0=v0)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    # Eigenvector signs are arbitrary: fix them so the output is reproducible.
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(k)])
    x = np.zeros((m, dim))
    x[:, :k] = vecs * np.where(signs == 0, 1.0, signs) * np.sqrt(np.maximum(vals, 0.0))
    return x


def place_out_of_sample(
    landmark_coords: ArrayLike, dist: ArrayLike, tau: float, *, n_anchors: int | None = None
) -> NDArray[np.float64]:
    """Place points from their distances to embedded landmarks (Lorentz least squares).

    landmark_coords : (m, dim) spatial hyperboloid coordinates; dist : (n, m) distances from
    each point to each landmark. ``⟨x, l_j⟩_L = −cosh(τ·d_j)`` is linear in ``(x_0, x)``:
    solve it by least squares, then project onto the hyperboloid. With ``n_anchors`` only
    the nearest ``n_anchors`` landmarks are used, each equation divided by ``cosh(τ·d_j)``
    (relative residuals: local accuracy); without, all landmarks, unweighted (the paper's).
    Returns (n, dim) float64 spatial hyperboloid coordinates.
    """
    lm = np.asarray(landmark_coords, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    if n_anchors is None:
        a = np.concatenate([-np.sqrt(1.0 + np.sum(lm * lm, axis=1))[:, None], lm], axis=1)
        z = np.linalg.lstsq(a, -np.cosh(tau * d).T, rcond=None)[0].T
        nearest = lm[np.argmin(d, axis=1)]
        return _project(z, nearest)
    k = min(n_anchors, lm.shape[0])
    ids = np.argpartition(d, k - 1, axis=1)[:, :k] if k < lm.shape[0] else np.indices(d.shape)[1]
    return place_from_anchors(lm, ids, np.take_along_axis(d, ids, axis=1), tau)


def place_from_anchors(
    landmark_coords: NDArray[np.float64],
    anchor_ids: NDArray[np.integer],
    anchor_d: NDArray[np.float64],
    tau: float,
) -> NDArray[np.float64]:
    """Lorentz least squares of each point on its own anchors (vectorised, O(n·k)).

    landmark_coords : (m, dim) spatial hyperboloid; anchor_ids : (n, k) rows of it (-1 =
    none); anchor_d : (n, k) distances. Each point's problem is solved in the frame where its
    nearest anchor is the origin: far from the origin the anchors' Lorentz vectors are nearly
    parallel and the normal equations lose every digit. Equations are divided by
    ``cosh(τ·d_j)`` (relative residuals). Points with fewer than dim + 1 usable anchors, or
    whose solution is not a point of the hyperboloid, take their nearest anchor's place.
    """
    valid = (anchor_ids >= 0) & np.isfinite(anchor_d)
    dd = np.where(valid, anchor_d, 0.0)
    near = np.argmin(np.where(valid, dd, np.inf), axis=1)
    rows = np.arange(dd.shape[0])
    lm = landmark_coords[np.where(valid, anchor_ids, 0)]  # (n, k, dim)
    centre = lm[rows, near]
    local = _boost(lm, centre[:, None, :])
    ch = np.cosh(np.minimum(tau * dd, _MAX_COSH_ARG))
    w = np.where(valid, 1.0 / ch, 0.0)
    a = np.concatenate([-np.sqrt(1.0 + np.sum(local**2, axis=2))[..., None], local], axis=2)
    a *= w[..., None]
    b = -ch * w
    ata = np.einsum("nki,nkj->nij", a, a)
    ata += (1e-12 * np.trace(ata, axis1=1, axis2=2) + 1e-300)[:, None, None] * np.eye(a.shape[2])
    z = np.linalg.solve(ata, np.einsum("nki,nk->ni", a, b)[..., None])[..., 0]
    too_few = valid.sum(axis=1) <= landmark_coords.shape[1]
    z[too_few | (dd[rows, near] == 0)] = np.nan
    placed = _project(z, np.zeros_like(centre))
    return _boost(placed, -centre)


def _boost(x: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """The hyperbolic isometry taking the point ``c`` to the origin (spatial coordinates).

    x : (..., dim), c broadcastable to it. ``_boost(x, -c)`` is its inverse.
    """
    x0 = np.sqrt(1.0 + np.sum(x * x, axis=-1, keepdims=True))
    c0 = np.sqrt(1.0 + np.sum(c * c, axis=-1, keepdims=True))
    out: NDArray[np.float64] = x + c * (np.sum(c * x, axis=-1, keepdims=True) / (1.0 + c0) - x0)
    return out


def _project(z: NDArray[np.float64], fallback: NDArray[np.float64]) -> NDArray[np.float64]:
    """Lorentz-normalise ``z = (x_0, x)``; rows that are not future timelike take ``fallback``."""
    q = z[:, 0] ** 2 - np.sum(z[:, 1:] ** 2, axis=1)
    ok = np.isfinite(q) & (z[:, 0] > 0) & (q > 1e-300)
    out = fallback.copy()
    out[ok] = z[ok, 1:] / np.sqrt(q[ok])[:, None]
    return out


def choose_tau(
    D_fit: NDArray[np.float64], hold_d: NDArray[np.float64]
) -> tuple[float, float, NDArray[np.float64]]:
    """Pick τ minimising the held-out average distortion of plain h-MDS in 2-D.

    D_fit : (m, m) landmark distances; hold_d : (h, m) held-out points to landmarks (h may be
    0: then the landmarks' own pairs are scored). Searches τ·max(D_fit) on a log grid in
    [0.5, 20], then by golden section around the best grid point, and returns the smallest
    τ scoring within 3% of the best (smaller radii keep more precision). Returns
    (tau, distortion, landmark hyperboloid coordinates at tau).
    """
    dmax = float(D_fit.max(initial=0.0))
    if not np.isfinite(dmax) or dmax <= 0:
        msg = f"choose_tau needs finite landmark distances with a positive maximum, got {dmax}"
        raise InputError(msg)
    cache: dict[float, tuple[float, NDArray[np.float64]]] = {}

    def score(log_s: float) -> float:
        if log_s not in cache:
            tau = float(np.exp(log_s)) / dmax
            x = lorentz_recentre(hmds_exact(D_fit, tau))
            cache[log_s] = (_held_out_distortion(x, D_fit, hold_d, tau), x)
        return cache[log_s][0]

    grid = np.linspace(np.log(_S_MIN), np.log(_S_MAX), 9)
    best = int(np.argmin([score(float(s)) for s in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(6):  # golden-section search on [lo, hi]
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if score(float(a)) < score(float(b)):
            hi = b
        else:
            lo = a
    # The score is flat near its minimum: prefer the smallest τ there (smaller radii).
    best_score = min(v[0] for v in cache.values())
    log_s = min(s for s, v in cache.items() if v[0] <= _TAU_TOLERANCE * best_score)
    return float(np.exp(log_s)) / dmax, cache[log_s][0], cache[log_s][1]


def _held_out_distortion(
    x: NDArray[np.float64], D_fit: NDArray[np.float64], hold_d: NDArray[np.float64], tau: float
) -> float:
    """Average distortion of held-out points (placed by anchors) against the landmarks."""
    p = tangent_to_poincare(hyperboloid_to_tangent(x))
    if hold_d.shape[0] == 0:
        i, j = np.triu_indices(x.shape[0], 1)
        return _pair_distortion(p[i], p[j], D_fit[i, j], tau)
    xh = place_out_of_sample(x, hold_d, tau, n_anchors=N_ANCHORS)
    ph = tangent_to_poincare(hyperboloid_to_tangent(xh))
    return _pair_distortion(ph[:, None, :], p[None, :, :], hold_d, tau)


def _pair_distortion(
    p: NDArray[np.float64], q: NDArray[np.float64], d: ArrayLike, tau: float
) -> float:
    dh = poincare_distance(p, q)
    d = np.broadcast_to(np.asarray(d, dtype=np.float64), dh.shape)
    keep = np.isfinite(d) & (d > 0)
    return float(np.mean(np.abs(dh[keep] / tau - d[keep]) / d[keep])) if keep.any() else 0.0


def hmds_layout(
    X: NDArray[np.floating],
    knn_indices: NDArray[np.integer],
    knn_distances: NDArray[np.floating],
    *,
    n_landmarks: int = 2000,
    distance: str = "geodesic",
    refine_steps: int = 2000,
    seed: int = 0,
    on_progress: Progress = None,
) -> HmdsResult:
    """Hyperbolic MDS layout of every point in the Poincaré disk, linear in n.

    X : (n, d) vectors (landmark choice, bridging a disconnected kNN graph, Euclidean
    distances); knn_indices : (n, k) int, knn_distances : (n, k), row i starting with i.
    distance : "geodesic" (shortest paths on the symmetrised, connected kNN graph) or
    "euclidean". ``refine_steps`` Adam steps refine the landmarks, then ``refine_steps // 40``
    steps refine every other point; 0 gives plain h-MDS with out-of-sample placement.
    """
    x, ind, kd = _check_inputs(X, knn_indices, knn_distances, n_landmarks, distance, refine_steps)
    report = _staged(on_progress)
    n = x.shape[0]
    graph, _ = connect_components(symmetric_knn_graph(ind, kd), x, seed)
    rng = np.random.default_rng(seed)
    chosen = select_landmarks(x, n_landmarks, seed)
    hold = np.sort(rng.choice(chosen, size=min(_MAX_HOLDOUT, chosen.size // 10), replace=False))
    fitted = np.setdiff1d(chosen, hold)
    dists = landmark_distances(graph, x, fitted, distance)
    report(0, 1.0)
    hold_d = dists.to_landmarks(
        hold, np.broadcast_to(np.arange(fitted.size), (hold.size, fitted.size))
    )
    dmax = float(dists.fit.max(initial=0.0))
    if dmax <= 0 or (dmax < 1e-6 and not np.any(np.ptp(x, axis=0) > 0)):
        # Every point is the same: nothing to lay out (zero-length edges were floored).
        coords = np.zeros((n, 2), dtype=np.float32)
        return HmdsResult(coords, 1.0, fitted, hold.astype(np.int64), 0.0, 0.0)
    tau, distortion_mds, x_fit = choose_tau(dists.fit, hold_d)
    report(1, 1.0)
    u = np.zeros((n, 2))
    u[fitted] = hyperboloid_to_tangent(x_fit)
    u_fit = u[fitted]
    refine_dense(u_fit, dists.fit, tau, refine_steps, rng, lambda f: report(2, f))
    u[fitted] = u_fit
    others = np.setdiff1d(np.arange(n), fitted)
    x_lm = _tangent_to_hyperboloid(u_fit)
    u[others] = hyperboloid_to_tangent(
        place_from_anchors(x_lm, dists.anchor_ids[others], dists.anchor_d[others], tau)
    )
    steps = refine_steps // _LOCAL_FRACTION
    refine_points(u, others, (ind, kd), dists, tau, steps, rng, lambda f: report(3, f))
    report(3, 1.0)
    # An isometry moving the Lorentz centroid to the origin: distances are unchanged, and
    # the picture uses the whole disk instead of crowding one side's rim.
    centred = lorentz_recentre(_tangent_to_hyperboloid(u))
    coords = clip_to_disk(hyperboloid_to_poincare(centred))
    p = coords.astype(np.float64)
    distortion = _pair_distortion(p[hold][:, None, :], p[fitted][None, :, :], hold_d, tau)
    return HmdsResult(coords, tau, fitted, hold.astype(np.int64), distortion, distortion_mds)


def _tangent_to_hyperboloid(u: NDArray[np.float64]) -> NDArray[np.float64]:
    r = np.sqrt(np.sum(u * u, axis=1, keepdims=True))
    out: NDArray[np.float64] = u * np.where(r > 0, np.sinh(r) / np.where(r > 0, r, 1.0), 1.0)
    return out


# Share of the progress bar per stage: distances, τ, landmark refinement, all points.
_STAGES = (0.15, 0.35, 0.75, 1.0)


def _staged(on_progress: Progress) -> Callable[[int, float], None]:
    def report(stage: int, fraction: float) -> None:
        if on_progress is not None:
            lo = _STAGES[stage - 1] if stage else 0.0
            on_progress(lo + (_STAGES[stage] - lo) * fraction)

    return report


def _check_inputs(
    X: NDArray[np.floating],
    knn_indices: NDArray[np.integer],
    knn_distances: NDArray[np.floating],
    n_landmarks: int,
    distance: str,
    refine_steps: int,
) -> tuple[NDArray[np.floating], NDArray[np.int32], NDArray[np.float32]]:
    """Validate the stage's inputs; return X as given, the kNN graph as int32 / float32."""
    if distance not in ("geodesic", "euclidean"):
        msg = f"hmds distance {distance!r} is not 'geodesic' or 'euclidean'"
        raise ConfigError(msg)
    if n_landmarks < 3 or refine_steps < 0:
        msg = (
            f"hmds n_landmarks = {n_landmarks} must be >= 3 and refine_steps = {refine_steps} >= 0"
        )
        raise ConfigError(msg)
    x = np.asarray(X)
    ind = np.asarray(knn_indices)
    kd = np.asarray(knn_distances, dtype=np.float32)
    n = x.shape[0]
    if x.ndim != 2 or n < 3 or ind.shape != kd.shape or ind.shape[0] != n or ind.shape[1] < 2:
        msg = (
            f"hmds needs X (n, d) with n >= 3 and knn_indices / knn_distances (n, k), k >= 2; "
            f"got {x.shape}, {ind.shape}, {kd.shape}: rebuild the kNN graph"
        )
        raise InputError(msg)
    if not np.issubdtype(ind.dtype, np.integer) or ind.min() < 0 or ind.max() >= n:
        msg = f"knn_indices must be integers in [0, {n}); rebuild the kNN graph"
        raise InputError(msg)
    bad = ~np.isfinite(kd) | (kd < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        msg = f"knn_distances row {row} has a negative or non-finite distance; rebuild the graph"
        raise InputError(msg)
    for start in range(0, n, 65536):  # blocks: never a full boolean copy of a wide X
        if not np.all(np.isfinite(x[start : start + 65536])):
            msg = "X has NaN or infinite values; drop or impute them before the layout"
            raise InputError(msg)
    return x, ind.astype(np.int32), kd
