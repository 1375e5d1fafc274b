"""Box and lasso selection on the server: which points lie inside, as sorted int64 indices.

Bokeh sends the lasso's vertices in data coordinates (``SelectionGeometry``); the points
never leave the server. The lasso test is exact: the even-odd (crossing-number) rule in
float64, so a self-intersecting lasso selects the regions it encloses an odd number of
times. A bounding-box prefilter skips most points, and the polygon's edges are bucketed
into horizontal bands so each point tests only the few edges at its height.

``false_neighbours``: the points a pinned point's 2-D neighbourhood holds that its
high-dimensional one does not (the map's "strangers").
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.jit import njit
from explorer.render._numba import n_workers, run_chunks
from explorer.render.index import PointIndex, split_spans

# Below this many points one thread beats waking the pool.
_PARALLEL_MIN = 200_000


@njit(inline="always")
def _band(y, lo, inv, n_bands):  # type: ignore[no-untyped-def]
    # The same float64 formula bins edges and points, so it is monotone in y.
    f = (y - lo) * inv
    if f < 0.0:
        return 0
    if f >= n_bands:
        return n_bands - 1
    return int(f)


@njit(inline="always")
def _inside(x, y, edges, lo, inv, band_offsets, band_edges):  # type: ignore[no-untyped-def]
    """Even-odd crossing test of one point against the edges of its band."""
    b = _band(y, lo, inv, band_offsets.shape[0] - 1)
    inside = False
    for q in range(band_offsets[b], band_offsets[b + 1]):
        e = band_edges[q]
        yi = edges[e, 1]
        yj = edges[e, 3]
        if (yi > y) != (yj > y):
            xi = edges[e, 0]
            xj = edges[e, 2]
            if x < xi + (y - yi) * (xj - xi) / (yj - yi):
                inside = not inside
    return inside


@njit
def _in_box_flags(xy, start, stop, box, out):  # type: ignore[no-untyped-def]
    """``out[i] = 1`` for rows ``start:stop`` in ``box`` ``[x0, x1, y0, y1]`` (inclusive).

    Branch-free: in the caller's (spatially random) order an ``if`` here mispredicts
    often, and that made the whole lasso 3-10x slower (measured).
    """
    x0, x1, y0, y1 = box[0], box[1], box[2], box[3]
    for i in range(start, stop):
        x = np.float64(xy[i, 0])
        y = np.float64(xy[i, 1])
        out[i] = (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)


@njit
def _in_polygon_rows(xy, rows, start, stop, mask, edges, geom, band_offsets, band_edges, out):  # type: ignore[no-untyped-def]
    """Test rows ``rows[start:stop]`` of ``xy``; ``out[row] = 1`` inside, else 0."""
    use_mask = mask.shape[0] > 0
    for k in range(start, stop):
        i = rows[k]
        x = np.float64(xy[i, 0])
        y = np.float64(xy[i, 1])
        ok = _inside(x, y, edges, geom[0], geom[1], band_offsets, band_edges)
        if use_mask:
            ok = ok and mask[i]
        out[i] = ok


@njit
def _in_polygon_sorted(xy, pieces, perm, mask, box, edges, geom, band_offsets, band_edges, out):  # type: ignore[no-untyped-def]
    """Test the index's sorted rows in ``pieces``; ``out[perm[s]] = 1`` inside.

    Points arrive cell by cell, so the box and crossing branches are predictable.
    """
    use_mask = mask.shape[0] > 0
    x0, x1, y0, y1 = box[0], box[1], box[2], box[3]
    for q in range(pieces.shape[0]):
        for s in range(pieces[q, 0], pieces[q, 1]):
            x = np.float64(xy[s, 0])
            y = np.float64(xy[s, 1])
            if not ((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)):
                continue
            if not _inside(x, y, edges, geom[0], geom[1], band_offsets, band_edges):
                continue
            j = perm[s]
            if not use_mask or mask[j]:
                out[j] = 1


def _check_points(
    points: NDArray[np.floating] | PointIndex, mask: NDArray[np.bool_] | None
) -> tuple[NDArray[np.floating], NDArray[np.bool_]]:
    """The (n, 2) coordinates in original order and the kernels' mask argument."""
    coords = points.coords if isinstance(points, PointIndex) else np.asarray(points)
    if coords.ndim != 2 or coords.shape[1] != 2:
        msg = f"coords must have shape (n, 2), got {coords.shape}"
        raise InputError(msg)
    if mask is None:
        return coords, np.zeros(0, bool)
    mask = np.asarray(mask)
    if mask.shape != (coords.shape[0],) or mask.dtype != np.bool_:
        msg = f"mask must be a bool array of shape ({coords.shape[0]},), got {mask.dtype}"
        raise InputError(msg)
    return coords, mask


def _chunks(n: int) -> NDArray[np.int64]:
    """Boundaries of equal row chunks, one per thread (one chunk for small inputs)."""
    n_chunks = n_workers() if n >= _PARALLEL_MIN else 1
    return n * np.arange(n_chunks + 1, dtype=np.int64) // n_chunks


def _box_flags(coords: NDArray[np.floating], box: NDArray[np.float64]) -> NDArray[np.bool_]:
    out = np.empty(coords.shape[0], np.bool_)
    cuts = _chunks(coords.shape[0])
    run_chunks(lambda k: _in_box_flags(coords, cuts[k], cuts[k + 1], box, out), cuts.size - 1)
    return out


def points_in_box(
    points: NDArray[np.floating] | PointIndex,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    *,
    mask: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """Sorted indices of points with ``x0 <= x <= x1`` and ``y0 <= y <= y1``.

    points : (n, 2) float coordinates, or a ``PointIndex`` (its ``coords`` are used);
    mask : (n,) bool, only True points can be selected. The edges may come in either
    order (Bokeh's box select gives them as dragged).
    """
    coords, mask_arg = _check_points(points, mask)
    box = np.array([*sorted((float(x0), float(x1))), *sorted((float(y0), float(y1)))])
    flags = _box_flags(coords, box)
    if mask_arg.size:
        flags &= mask_arg
    return np.flatnonzero(flags).astype(np.int64)


def _bands(
    edges: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Bucket non-horizontal edges by the bands their y-range ``[a, b]`` meets."""
    a = np.minimum(edges[:, 1], edges[:, 3])
    b = np.maximum(edges[:, 1], edges[:, 3])
    n_bands = int(np.clip(edges.shape[0], 1, 4096))
    lo, span = float(a.min()), float(b.max() - a.min())
    # A subnormal span would make inv infinite (and 0 * inf NaN): use one band then.
    inv = n_bands / span if span > 0 and math.isfinite(n_bands / span) else 0.0
    # Same arithmetic as _band: floor((y - lo) * inv), clamped.
    first = np.clip(np.floor((a - lo) * inv), 0, n_bands - 1).astype(np.int64)
    last = np.clip(np.floor((b - lo) * inv), 0, n_bands - 1).astype(np.int64)
    per_edge = last - first + 1
    edge_of = np.repeat(np.arange(edges.shape[0]), per_edge)
    # Entry t of edge e is band first[e] + t.
    step = np.arange(edge_of.size) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge)
    band_of = first[edge_of] + step
    order = np.argsort(band_of, kind="stable")
    offsets = np.zeros(n_bands + 1, np.int64)
    np.cumsum(np.bincount(band_of, minlength=n_bands), out=offsets[1:])
    return np.array([lo, inv]), offsets, edge_of[order].astype(np.int64)


def points_in_polygon(
    points: NDArray[np.floating] | PointIndex,
    poly_x: NDArray[np.floating] | list[float],
    poly_y: NDArray[np.floating] | list[float],
    *,
    mask: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """Sorted indices of points inside the polygon ``(poly_x, poly_y)`` (even-odd rule).

    points : (n, 2) float coordinates, or a ``PointIndex`` (faster: it reads only the
    cells under the lasso, in spatial order); poly_x, poly_y : (m,) vertices, closed
    implicitly (a repeated first vertex is harmless); mask : (n,) bool, only True points
    can be selected. Fewer than 3 vertices select nothing. Matches a plain float64
    ray-casting loop exactly.
    """
    coords, mask_arg = _check_points(points, mask)
    px = np.asarray(poly_x, np.float64).ravel()
    py = np.asarray(poly_y, np.float64).ravel()
    if px.shape != py.shape:
        msg = f"lasso has {px.size} x but {py.size} y coordinates"
        raise InputError(msg)
    if not (np.isfinite(px).all() and np.isfinite(py).all()):
        msg = "lasso vertices must be finite"
        raise InputError(msg)
    edges = np.stack([px, py, np.roll(px, -1), np.roll(py, -1)], axis=1)
    # Horizontal edges never cross a horizontal ray under the half-open rule.
    edges = edges[edges[:, 1] != edges[:, 3]]
    if px.size < 3 or edges.shape[0] == 0:
        return np.zeros(0, np.int64)
    # Widen the prefilter box a hair so rounding near it can never change an answer.
    size = np.abs(px).max() + np.abs(py).max() + np.ptp(px) + np.ptp(py)
    eps = 1e-9 * float(size) + 1e-300
    box = np.array([px.min() - eps, px.max() + eps, py.min() - eps, py.max() + eps])
    geom, offsets, band_edges = _bands(edges)
    if isinstance(points, PointIndex):
        return _polygon_sorted(points, mask_arg, box, edges, geom, offsets, band_edges)
    # Two passes: a branch-free box test, then the crossing test on the candidates only.
    rows = np.flatnonzero(_box_flags(coords, box))
    out = np.zeros(coords.shape[0], np.bool_)
    cuts = _chunks(rows.size)
    run_chunks(
        lambda k: _in_polygon_rows(
            coords, rows, cuts[k], cuts[k + 1], mask_arg, edges, geom, offsets, band_edges, out
        ),
        cuts.size - 1,
    )
    return rows[out[rows]].astype(np.int64)


def _polygon_sorted(
    index: PointIndex,
    mask: NDArray[np.bool_],
    box: NDArray[np.float64],
    edges: NDArray[np.float64],
    geom: NDArray[np.float64],
    offsets: NDArray[np.int64],
    band_edges: NDArray[np.int64],
) -> NDArray[np.int64]:
    spans = index.spans(box[0], box[1], box[2], box[3])
    n_rows = int((spans[:, 1] - spans[:, 0]).sum())
    pieces, bounds = split_spans(spans, n_workers() if n_rows >= _PARALLEL_MIN else 1)
    out = np.zeros(index.n_points, np.uint8)
    run_chunks(
        lambda k: _in_polygon_sorted(
            index.xy, pieces[bounds[k] : bounds[k + 1]], index.perm, mask, box, edges, geom,
            offsets, band_edges, out,
        ),
        bounds.size - 1,
    )  # fmt: skip
    return np.flatnonzero(out).astype(np.int64)


def false_neighbours(
    coords: NDArray[np.floating], row: int, true: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Among ``row``'s ``len(true)`` nearest points on the map, those not in ``true``
    (its nearest in the data): strangers the picture puts next to it. Nearest first."""
    if true.size == 0:
        return np.zeros(0, np.int64)
    xy = np.asarray(coords, np.float64)
    d2 = np.sum((xy - xy[row]) ** 2, axis=1)
    d2[row] = np.inf
    d2[~np.isfinite(d2)] = np.inf
    k = min(true.size, d2.size - 1)
    if k <= 0:
        return np.zeros(0, np.int64)
    near = np.argpartition(d2, k - 1)[:k]
    near = near[np.argsort(d2[near], kind="stable")]
    return near[~np.isin(near, true)].astype(np.int64)
