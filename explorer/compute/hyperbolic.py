"""Geometry of the hyperbolic plane for h-MDS: models, distances, Sarkar's tree, quality.

Two models of curvature −1 are used. The hyperboloid (Lorentz) model stores a point by its
*spatial* coordinates ``x`` (``x_0 = sqrt(1 + |x|²)`` is implied); the Poincaré ball stores
``p`` with ``|p| < 1``. A third chart, the *tangent* coordinates ``u`` at the origin, has
``|u|`` equal to the hyperbolic distance from the origin and ``p = tanh(|u|/2)·u/|u|``: it
never leaves the ball, which is why the refinement optimises in it.

Precision: a point at hyperbolic radius ``r`` has ``1 − |p| ≈ 2·e^{−r}``, so float64 holds
radii up to about 36 and float32 up to about 15; ``to_poincare`` clips the radius so that
coordinates stay strictly inside the disk after the float32 cast.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from explorer.errors import InputError

# 1 − |p| of the outermost stored point: hyperbolic radius ≈ 12.2, well inside float32.
MAX_RADIUS = 1.0 - 1e-5
_TINY = np.finfo(np.float64).tiny
_BLOCK = 1024


def poincare_distance(p: ArrayLike, q: ArrayLike) -> NDArray[np.float64]:
    """Hyperbolic distance between Poincaré-ball points, broadcast over leading axes.

    p, q : (..., dim) with norms below 1. Returns (...) float64.
    Uses ``2·asinh(|p − q| / sqrt((1 − |p|²)(1 − |q|²)))``, which equals
    ``arccosh(1 + 2|p − q|²/((1 − |p|²)(1 − |q|²)))`` but keeps full relative precision for
    close points (arccosh near 1 loses half the digits).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    a = np.maximum(1.0 - np.sum(p * p, axis=-1), _TINY)
    b = np.maximum(1.0 - np.sum(q * q, axis=-1), _TINY)
    diff2 = np.sum((p - q) ** 2, axis=-1)
    out: NDArray[np.float64] = 2.0 * np.arcsinh(np.sqrt(diff2 / a / b))
    return out


def pairwise_poincare_distances(coords: ArrayLike) -> NDArray[np.float64]:
    """All pairwise hyperbolic distances, ``coords : (n, dim)`` -> (n, n) float64."""
    c = np.asarray(coords, dtype=np.float64)
    return poincare_distance(c[:, None, :], c[None, :, :])


def hyperboloid_to_poincare(x: ArrayLike) -> NDArray[np.float64]:
    """Spatial hyperboloid coordinates ``x : (n, dim)`` -> Poincaré ``p = x / (1 + x_0)``."""
    x = np.asarray(x, dtype=np.float64)
    x0 = np.sqrt(1.0 + np.sum(x * x, axis=-1, keepdims=True))
    out: NDArray[np.float64] = x / (1.0 + x0)
    return out


def poincare_to_hyperboloid(p: ArrayLike) -> NDArray[np.float64]:
    """Poincaré ``p : (n, dim)`` -> spatial hyperboloid coordinates ``2p / (1 − |p|²)``."""
    p = np.asarray(p, dtype=np.float64)
    a = np.maximum(1.0 - np.sum(p * p, axis=-1, keepdims=True), _TINY)
    out: NDArray[np.float64] = 2.0 * p / a
    return out


def hyperboloid_to_tangent(x: ArrayLike) -> NDArray[np.float64]:
    """Spatial hyperboloid ``x`` -> tangent coordinates at the origin, ``|u| = asinh|x|``."""
    x = np.asarray(x, dtype=np.float64)
    r = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    scale = np.where(r > 0, np.arcsinh(r) / np.where(r > 0, r, 1.0), 1.0)
    out: NDArray[np.float64] = x * scale
    return out


def poincare_to_tangent(p: ArrayLike) -> NDArray[np.float64]:
    """Poincaré ``p : (n, dim)`` -> tangent coordinates ``2·artanh(|p|)·p/|p|``."""
    p = np.asarray(p, dtype=np.float64)
    r = np.sqrt(np.sum(p * p, axis=-1, keepdims=True))
    r_in = np.minimum(r, 1.0 - 1e-16)
    scale = np.where(r > 0, 2.0 * np.arctanh(r_in) / np.where(r > 0, r, 1.0), 2.0)
    out: NDArray[np.float64] = p * scale
    return out


def tangent_to_poincare(u: ArrayLike) -> NDArray[np.float64]:
    """Tangent coordinates ``u : (n, dim)`` -> Poincaré ``tanh(|u|/2)·u/|u|``."""
    u = np.asarray(u, dtype=np.float64)
    r = np.sqrt(np.sum(u * u, axis=-1, keepdims=True))
    scale = np.where(r > 0, np.tanh(r / 2.0) / np.where(r > 0, r, 1.0), 0.5)
    out: NDArray[np.float64] = u * scale
    return out


def to_poincare(x: ArrayLike, max_radius: float = MAX_RADIUS) -> NDArray[np.float32]:
    """Spatial hyperboloid coordinates -> float32 Poincaré coordinates strictly inside the disk.

    x : (n, dim) -> (n, dim) float32, every norm at most ``max_radius`` (default 1 − 1e-5,
    hyperbolic radius ≈ 12.2), so the float32 cast cannot round a point onto the boundary.
    """
    return clip_to_disk(hyperboloid_to_poincare(x), max_radius)


def clip_to_disk(p: ArrayLike, max_radius: float = MAX_RADIUS) -> NDArray[np.float32]:
    """Scale Poincaré points with ``|p| > max_radius`` back to it; return float32."""
    p = np.asarray(p, dtype=np.float64)
    r = np.sqrt(np.sum(p * p, axis=-1, keepdims=True))
    scale = np.where(r > max_radius, max_radius / np.maximum(r, _TINY), 1.0)
    return np.ascontiguousarray(p * scale, dtype=np.float32)


def lorentz_recentre(x: ArrayLike) -> NDArray[np.float64]:
    """Apply the hyperbolic isometry that moves the points' Lorentz centroid to the origin.

    x : (n, dim) spatial hyperboloid coordinates -> (n, dim). Distances are unchanged;
    centring keeps the radii (and so the precision loss near the boundary) as small as possible.
    """
    x = np.asarray(x, dtype=np.float64)
    x0 = np.sqrt(1.0 + np.sum(x * x, axis=-1))
    c_s = x.mean(axis=0)
    c0 = float(x0.mean())
    norm = np.sqrt(max(c0 * c0 - float(c_s @ c_s), _TINY))
    c_s, c0 = c_s / norm, c0 / norm
    # The boost B = [[c0, −cᵀ], [−c, I + c cᵀ/(1 + c0)]] maps (c0, c) to (1, 0).
    dot = x @ c_s
    out: NDArray[np.float64] = x + np.outer(dot / (1.0 + c0) - x0, c_s)
    return out


def sarkar_tree_embedding(parent: ArrayLike, edge_length: float = 2.0) -> NDArray[np.float64]:
    """Sarkar's combinatorial embedding of a rooted tree in the Poincaré disk.

    parent : (m,) int, ``parent[root] = -1`` (or the root's own index); exactly one root.
    Returns coords : (m, 2) float64. The root sits at the origin with its children spread
    evenly in angle; every other node is moved to the origin by a Möbius translation, its
    children are spread evenly in the angles left free by its parent, each at hyperbolic
    distance ``edge_length``, and the translation is undone. Depth × edge_length must stay
    below about 30 for float64 to tell the deepest nodes apart.
    """
    par, order, depth = _bfs_order(parent)
    m = par.shape[0]
    z = np.zeros(m, dtype=np.complex128)
    r = np.tanh(edge_length / 2.0)
    n_child = np.bincount(np.where(par >= 0, par, m), minlength=m + 1)[:m]
    for level in range(1, int(depth.max()) + 1):
        kids = order[depth[order] == level]
        kids = kids[np.argsort(par[kids], kind="stable")]
        pa = par[kids]
        first = np.searchsorted(pa, pa, side="left")
        rank = np.arange(kids.size) - first
        zv = z[pa]
        is_root = par[pa] < 0
        zg = z[np.where(is_root, pa, par[pa])]
        # The parent's direction as seen from v once v is translated to the origin.
        w = (zg - zv) / (1.0 - np.conj(zv) * zg)
        theta0 = np.where(is_root, 0.0, np.angle(w))
        slots = n_child[pa] + np.where(is_root, 0, 1)
        angle = theta0 + 2.0 * np.pi * (rank + np.where(is_root, 0, 1)) / slots
        zeta = r * np.exp(1j * angle)
        z[kids] = (zeta + zv) / (1.0 + np.conj(zv) * zeta)
    return np.stack([z.real, z.imag], axis=1)


def _bfs_order(
    parent: ArrayLike,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Parent array with the root as -1, breadth-first order and depth; raise if not a tree."""
    par = np.array(parent, dtype=np.int64).reshape(-1)
    m = par.shape[0]
    par[par == np.arange(m)] = -1
    roots = np.flatnonzero(par < 0)
    if roots.size != 1 or np.any(par >= m):
        msg = f"parent array has {roots.size} roots (need exactly 1) or an index >= {m}"
        raise InputError(msg)
    children = sp.csr_matrix((np.ones(m - 1), (par[par >= 0], np.flatnonzero(par >= 0))), (m, m))
    depth = np.full(m, -1, dtype=np.int64)
    frontier = roots
    level = 0
    order = [frontier]
    while frontier.size:
        depth[frontier] = level
        frontier = children[frontier].indices.astype(np.int64)
        frontier = frontier[depth[frontier] < 0]
        order.append(frontier)
        level += 1
    if np.any(depth < 0):
        msg = f"parent array: {int(np.sum(depth < 0))} nodes are not reachable from the root"
        raise InputError(msg)
    return par, np.concatenate(order), depth


def _ratio_blocks(coords: ArrayLike, D: ArrayLike, tau: float) -> list[NDArray[np.float64]]:
    """``d_H(p_i, p_j) / (τ·D_ij)`` over pairs i < j with finite positive ``D_ij``."""
    c = np.asarray(coords, dtype=np.float64)
    dist = np.asarray(D, dtype=np.float64)
    out = []
    for start in range(0, c.shape[0], _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, c.shape[0]))
        dh = poincare_distance(c[rows, None, :], c[None, :, :])
        d = dist[rows]
        keep = (np.arange(c.shape[0])[None, :] > rows[:, None]) & np.isfinite(d) & (d > 0)
        out.append(dh[keep] / (tau * d[keep]))
    return out


def average_distortion(coords: ArrayLike, D: ArrayLike, tau: float) -> float:
    """Mean over pairs of ``|d_H(p_i, p_j)/τ − D_ij| / D_ij``.

    coords : (n, dim) Poincaré; D : (n, n) target distances (pairs with zero or non-finite
    ``D_ij`` are skipped); tau : the scale the embedding was made at.
    """
    ratios = np.concatenate(_ratio_blocks(coords, D, tau))
    return float(np.mean(np.abs(ratios - 1.0))) if ratios.size else 0.0


def worst_distortion(coords: ArrayLike, D: ArrayLike, tau: float) -> float:
    """Worst-case distortion ``max(d_H/(τD)) / min(d_H/(τD))`` over pairs (1 is perfect)."""
    ratios = np.concatenate(_ratio_blocks(coords, D, tau))
    if ratios.size == 0:
        return 1.0
    low = float(ratios.min())
    return float(ratios.max()) / low if low > 0 else float("inf")


def mean_average_precision(coords: ArrayLike, adjacency: ArrayLike | sp.spmatrix) -> float:
    """Graph MAP: each node's graph neighbours ranked by embedded hyperbolic distance.

    coords : (n, dim) Poincaré; adjacency : (n, n) dense or sparse, nonzero = edge (the
    diagonal is ignored). For node a with neighbours N_a, the precision at neighbour b is
    ``|N_a ∩ R_ab| / |R_ab|`` with ``R_ab`` the nodes no farther from a than b; MAP averages
    over b, then over nodes with neighbours. O(n²) time: meant for up to ~20k nodes.
    """
    c = np.asarray(coords, dtype=np.float64)
    adj = sp.csr_matrix(adjacency)
    n = c.shape[0]
    scores = []
    for a in range(n):
        nbrs = adj.indices[adj.indptr[a] : adj.indptr[a + 1]]
        nbrs = nbrs[nbrs != a]
        if nbrs.size == 0:
            continue
        d = poincare_distance(c[a], c)
        d[a] = -np.inf
        ranks = np.searchsorted(np.sort(d), d[nbrs], side="right") - 1
        dn = np.sort(d[nbrs])
        hits = np.searchsorted(dn, d[nbrs], side="right")
        scores.append(float(np.mean(hits / np.maximum(ranks, 1))))
    return float(np.mean(scores)) if scores else 0.0
