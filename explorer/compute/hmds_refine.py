"""Refinement of a hyperbolic layout in the Poincaré disk (plain h-MDS scrambles local order).

Loss ``Σ w (d_H(p_i, p_j)/t_ij − 1)²`` over sampled pairs, minimised by Adam on tangent
coordinates at the origin (``p = tanh(|u|/2)·u/|u|``, so points never leave the disk) with a
Riemannian step: a step moves a point by about the learning rate in hyperbolic distance
wherever it is. ``hmds_refine`` refines a dense problem (the landmarks); ``refine_points``
refines every other point on its kNN pairs and a few landmarks, linear in n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from explorer.compute.hmds_graph import LandmarkDistances
from explorer.compute.hyperbolic import MAX_RADIUS, poincare_to_tangent, tangent_to_poincare
from explorer.jit import njit, prange

Progress = Callable[[float], None] | None

# Hyperbolic radius of MAX_RADIUS: the refinement keeps points within it.
R_MAX = 2.0 * float(np.arctanh(MAX_RADIUS))
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-12
_PARALLEL_PAIRS = 500_000  # pairs per step above which the refinement uses threads
_CHUNK = 50  # refinement steps per kernel call (progress, far-pair redraws)
_N_NEAR, _N_FAR = 10, 30  # landmark refinement: nearest landmarks, random far landmarks
_FAR_WEIGHT = 1.0
_N_FAR_POINTS = 4  # random landmarks each other point is also refined against
_KNN_WEIGHT = 1.0  # weight of kNN pairs in the all-points refinement
_LOCAL_LR = 0.3  # first step of the all-points refinement, in units of τ × median kNN distance


def hmds_refine(
    coords: ArrayLike,
    D: ArrayLike,
    tau: float,
    *,
    steps: int = 2000,
    seed: int = 0,
    on_progress: Progress = None,
) -> NDArray[np.float64]:
    """Refine a 2-D Poincaré layout against a dense distance matrix; every point moves.

    coords : (m, 2) Poincaré; D : (m, m). Minimises ``Σ w (d_H(p_i, p_j)/(τ·D_ij) − 1)²``
    over each point's 10 nearest points and 30 random others redrawn every 50 steps, by Adam
    in tangent coordinates (points never leave the disk). Returns (m, 2) float64 Poincaré.
    """
    u = poincare_to_tangent(coords)
    refine_dense(
        u, np.asarray(D, dtype=np.float64), tau, steps, np.random.default_rng(seed), on_progress
    )
    return tangent_to_poincare(u)


def refine_dense(
    u: NDArray[np.float64],
    d: NDArray[np.float64],
    tau: float,
    steps: int,
    rng: np.random.Generator,
    on_progress: Progress,
) -> None:
    """``hmds_refine`` on tangent coordinates ``u`` (m, 2), in place; d : (m, m)."""
    m = d.shape[0]
    if steps <= 0 or m < 2:
        return
    floor = _target_floor(d)
    n_near = min(_N_NEAR, m - 1)
    n_far = min(_N_FAR, m - 1)
    near = np.argpartition(np.where(np.eye(m, dtype=bool), np.inf, d), n_near - 1, axis=1)
    near = near[:, :n_near]
    rows = np.arange(m)[:, None]
    # Large first steps untangle the h-MDS start; the rate then decays 100-fold.
    lr0 = 1.5 * tau * float(np.median(np.maximum(d[rows, near], floor)))
    adam = TangentAdam.start(m, steps, lr0, lr0 / 100.0)
    weights = np.concatenate([np.ones(n_near), np.full(n_far, _FAR_WEIGHT)])
    for start in range(0, steps, _CHUNK):
        far = (rows + rng.integers(1, m, size=(m, n_far))) % m
        partners = np.concatenate([near, far], axis=1)
        targets = tau * np.maximum(d[rows, partners], floor)
        refine_tangent(
            u, np.arange(m), partners, targets, weights, adam, min(_CHUNK, steps - start)
        )
        if on_progress is not None:
            on_progress(min(start + _CHUNK, steps) / steps)


def _target_floor(d: NDArray[np.floating]) -> float:
    """Smallest target distance: duplicates (distance 0) would divide the loss by zero."""
    positive = d[np.isfinite(d) & (d > 0)]
    return 1e-3 * float(np.median(positive)) if positive.size else 1.0


def refine_points(
    u: NDArray[np.float64],
    move: NDArray[np.int64],
    knn: tuple[NDArray[np.int32], NDArray[np.float32]],
    dists: LandmarkDistances,
    tau: float,
    steps: int,
    rng: np.random.Generator,
    on_progress: Progress,
) -> None:
    """Refine the points ``move`` of ``u`` (n, 2) in place; landmarks stay fixed.

    Pairs: each point's kNN neighbours (targets from ``_local_targets``), its own anchors
    and a few random landmarks (targets from ``dists``). ``steps`` full-batch Adam steps,
    O(n · pairs) each.
    """
    if steps <= 0 or move.size == 0:
        return
    ind, kd = knn
    # Far pairs: the point's own anchors (exact distances) and a few random landmarks.
    fit_ids = np.concatenate(
        [
            np.maximum(dists.anchor_ids[move], 0),
            rng.integers(0, dists.landmarks.size, size=(move.size, _N_FAR_POINTS)),
        ],
        axis=1,
    )
    floor = _target_floor(kd[:, 1:])
    far_d = dists.to_landmarks(move, fit_ids)
    near_d = _local_targets(kd[move, 1:].astype(np.float64))
    targets = tau * np.maximum(np.concatenate([near_d, far_d], axis=1), floor)
    # Work in an order where kNN partners sit close in memory (points sorted by their
    # nearest landmark): at 1M points random partner reads would dominate the kernel.
    order = np.argsort(dists.anchor_ids[:, 0], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    partners = rank[np.concatenate([ind[move, 1:], dists.landmarks[fit_ids]], axis=1)]
    by_rank = np.argsort(rank[move], kind="stable")
    partners, targets, moving = partners[by_rank], targets[by_rank], rank[move][by_rank]
    weights = np.concatenate(
        [np.full(ind.shape[1] - 1, _KNN_WEIGHT), np.full(fit_ids.shape[1], _FAR_WEIGHT)]
    )
    lr0 = _LOCAL_LR * tau * float(np.median(np.maximum(kd[:, 1:], floor)))
    adam = TangentAdam.start(move.size, steps, lr0, lr0 / 20.0)
    u_sorted = u[order]
    for start in range(0, steps, _CHUNK):
        refine_tangent(
            u_sorted, moving, partners, targets, weights, adam, min(_CHUNK, steps - start)
        )
        if on_progress is not None:
            on_progress(min(start + _CHUNK, steps) / steps)
    u[order] = u_sorted


def _local_targets(near_d: NDArray[np.float64]) -> NDArray[np.float64]:
    """kNN distances with the shared noise floor partly removed, (q, k-1) -> (q, k-1).

    In high dimensions a point's neighbours all sit at nearly the nearest distance ρ (the
    ratio median/ρ is about 7^{1/m} for m intrinsic dimensions), and matching those
    distances in 2-D scrambles the local order. Take ``sqrt(d² − s·ρ²)`` with
    ``s = clip(2 − median/ρ, 0, 1)``: nothing for ratios of 2 or more (about 2-D), almost
    all of ρ for concentrated distances.
    """
    positive = np.where(near_d > 0, near_d, np.inf)
    rho = positive.min(axis=1, keepdims=True)
    rho = np.where(np.isfinite(rho), rho, 0.0)
    ratio = np.median(near_d, axis=1, keepdims=True) / np.where(rho > 0, rho, 1.0)
    share = np.clip(2.0 - ratio, 0.0, 1.0)
    out: NDArray[np.float64] = np.sqrt(np.maximum(near_d**2 - share * rho**2, 0.0))
    return out


@dataclass
class TangentAdam:
    """Adam state of one ``refine_tangent`` run: moments of the moving points and the schedule.

    m1 : (q, 2) first moments; m2 : (q,) second moments of the gradient's hyperbolic norm.
    The learning rate decays geometrically from ``lr0`` to ``lr1`` over ``total_steps``.
    """

    m1: NDArray[np.float64]
    m2: NDArray[np.float64]
    total_steps: int
    lr0: float
    lr1: float
    step: int = 0

    @classmethod
    def start(cls, n_moving: int, total_steps: int, lr0: float, lr1: float) -> TangentAdam:
        """Fresh state for ``n_moving`` points."""
        return cls(np.zeros((n_moving, 2)), np.zeros(n_moving), max(total_steps, 1), lr0, lr1)


def refine_tangent(
    u: NDArray[np.float64],
    move: NDArray[np.int64],
    partners: NDArray[np.int64],
    targets: NDArray[np.float64],
    weights: NDArray[np.float64],
    adam: TangentAdam,
    n_steps: int,
) -> None:
    """Run ``n_steps`` Adam steps on ``Σ w (d_H(p_i, p_j)/t_ij − 1)²``, updating ``u`` in place.

    u : (n, 2) tangent coordinates of every point; move : (q,) the points that move;
    partners : (q, P) point indices (-1 ends a row); targets : (q, P) hyperbolic target
    distances (> 0); weights : (P,) per column. Each step computes every gradient from the same
    positions before moving any point (deterministic under threads). The step is Riemannian:
    the second moment is that of the gradient's hyperbolic norm, so a step moves a point by
    about the learning rate in hyperbolic distance wherever it is in the disk.
    """
    # Threads pay a synchronisation per step: small problems run faster on one.
    kernel = _adam_steps_parallel if partners.size >= _PARALLEL_PAIRS else _adam_steps_serial
    kernel(
        u, move, partners, targets, weights, adam.m1, adam.m2,
        adam.step, n_steps, adam.total_steps, adam.lr0, adam.lr1, R_MAX,
    )  # fmt: skip
    adam.step += n_steps


@njit(parallel=True)
def _adam_steps_parallel(  # type: ignore[no-untyped-def]
    u, move, partners, targets, weights, m1, m2, step0, n_steps, total, lr0, lr1, r_max
):
    p = np.empty((u.shape[0], 2))
    alpha = np.empty(u.shape[0])
    for step in range(step0, step0 + n_steps):
        lr, bc1, bc2 = _schedule(step, total, lr0, lr1)
        for i in prange(u.shape[0]):
            _position(u, p, alpha, i)
        for a in prange(move.shape[0]):
            i = move[a]
            gx, gy = _pair_gradient(p, alpha, i, partners[a], targets[a], weights)
            _adam_update(u, m1, m2, a, i, gx, gy, lr, bc1, bc2, r_max)


@njit
def _adam_steps_serial(  # type: ignore[no-untyped-def]
    u, move, partners, targets, weights, m1, m2, step0, n_steps, total, lr0, lr1, r_max
):
    p = np.empty((u.shape[0], 2))
    alpha = np.empty(u.shape[0])
    for step in range(step0, step0 + n_steps):
        lr, bc1, bc2 = _schedule(step, total, lr0, lr1)
        for i in range(u.shape[0]):
            _position(u, p, alpha, i)
        for a in range(move.shape[0]):
            i = move[a]
            gx, gy = _pair_gradient(p, alpha, i, partners[a], targets[a], weights)
            _adam_update(u, m1, m2, a, i, gx, gy, lr, bc1, bc2, r_max)


@njit(inline="always")
def _schedule(step, total, lr0, lr1):  # type: ignore[no-untyped-def]
    """Geometric learning-rate decay and Adam's bias corrections at ``step``."""
    lr = lr0 * (lr1 / lr0) ** (min(step, total - 1) / max(total - 1, 1))
    return lr, 1.0 - _BETA1 ** (step + 1), 1.0 - _BETA2 ** (step + 1)


@njit(inline="always")
def _position(u, p, alpha, i):  # type: ignore[no-untyped-def]
    """Poincaré position of point i and ``sqrt(1 − |p|²) = sech(r/2)`` (exact near the edge)."""
    r = math.sqrt(u[i, 0] ** 2 + u[i, 1] ** 2)
    f = math.tanh(r / 2.0) / r if r > 0 else 0.5
    p[i, 0] = u[i, 0] * f
    p[i, 1] = u[i, 1] * f
    alpha[i] = 1.0 / math.cosh(r / 2.0)


@njit(inline="always")
def _pair_gradient(p, alpha, i, partners, targets, weights):  # type: ignore[no-untyped-def]
    """Gradient with respect to p_i of Σ_j w (d_H(p_i, p_j)/t − 1)²."""
    gx = 0.0
    gy = 0.0
    for b in range(partners.shape[0]):
        j = partners[b]
        if j < 0:
            break
        dx = p[i, 0] - p[j, 0]
        dy = p[i, 1] - p[j, 1]
        s = dx * dx + dy * dy
        if s <= 1e-300:  # coincident points (duplicates): no direction to push
            continue
        rs = math.sqrt(s)
        sab = alpha[i] * alpha[j]  # sqrt((1 − |p_i|²)(1 − |p_j|²))
        z = rs / sab
        t = targets[b]
        # d = 2·asinh(z) with z = |p − q|/sab; asinh(z) = log1p(z + z²/(1 + sqrt(1 + z²))).
        # dz/dp_i = ((p − q)/|p − q| + |p − q|·p_i/(1 − |p_i|²)) / sab
        root = math.sqrt(1.0 + z * z)
        d = 2.0 * math.log1p(z + z * z / (1.0 + root))
        c = 4.0 * weights[b] * (d / t - 1.0) / (t * root * sab)
        a2 = alpha[i] * alpha[i]
        gx += c * (dx / rs + rs * p[i, 0] / a2)
        gy += c * (dy / rs + rs * p[i, 1] / a2)
    return gx, gy


@njit(inline="always")
def _adam_update(u, m1, m2, a, i, gx, gy, lr, bc1, bc2, r_max):  # type: ignore[no-untyped-def]
    """Chain the disk gradient to tangent coordinates, precondition by the metric, step."""
    ux = u[i, 0]
    uy = u[i, 1]
    r = math.sqrt(ux * ux + uy * uy)
    if r > 1e-12:
        ex = ux / r
        ey = uy / r
        f = math.tanh(r / 2.0)
        radial = 0.5 * (1.0 - f * f) * (gx * ex + gy * ey)
        tx = (f / r) * (gx - (gx * ex + gy * ey) * ex)
        ty = (f / r) * (gy - (gx * ex + gy * ey) * ey)
        # Angular metric factor (sinh r / r)²: divide by it for the Riemannian gradient.
        inv = (r / math.sinh(r)) ** 2
        nx = radial * ex + tx * inv
        ny = radial * ey + ty * inv
        norm2 = radial * radial + (tx * tx + ty * ty) * inv
    else:
        nx = 0.5 * gx
        ny = 0.5 * gy
        norm2 = nx * nx + ny * ny
    m1[a, 0] = _BETA1 * m1[a, 0] + (1.0 - _BETA1) * nx
    m1[a, 1] = _BETA1 * m1[a, 1] + (1.0 - _BETA1) * ny
    m2[a] = _BETA2 * m2[a] + (1.0 - _BETA2) * norm2
    den = math.sqrt(m2[a] / bc2) + _EPS
    ux -= lr * m1[a, 0] / bc1 / den
    uy -= lr * m1[a, 1] / bc1 / den
    r = math.sqrt(ux * ux + uy * uy)
    if r > r_max:
        ux *= r_max / r
        uy *= r_max / r
    u[i, 0] = ux
    u[i, 1] = uy
