"""The viewport and the spatial index every render and hover query reads.

Datashader scans every point for every frame, so zooming in does not make a frame cheaper.
``PointIndex`` sorts the points once by a row-major grid cell (a counting sort, O(n)) and
keeps per-cell offsets, so a viewport reads only the rows of the cells it overlaps: a 1%
zoom reads about 1% of the points. The grid rows a viewport crosses are contiguous ranges
of the sorted arrays (one range per grid row), which keeps reads sequential.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from explorer.errors import ConfigError, InputError
from explorer.render import _kernels
from explorer.render._numba import n_workers, run_chunks

MAX_SIDE = 8192
# Below this many points the sort and gathers run on one thread (waking the pool costs more).
_PARALLEL_MIN = 1_000_000


@dataclass(frozen=True)
class Viewport:
    """A data-space rectangle drawn into ``width`` × ``height`` pixels.

    Both edges are inclusive, as in Datashader: a point exactly on ``x1`` (``y1``) lands in
    the last column (row). Row 0 of every image is ``y0`` (the bottom), as Bokeh's
    ``image_rgba`` expects.
    """

    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int

    def __post_init__(self) -> None:
        edges = (self.x0, self.x1, self.y0, self.y1)
        if not all(math.isfinite(v) for v in edges):
            msg = f"viewport edges must be finite, got {edges}"
            raise ConfigError(msg)
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            msg = f"viewport needs x1 > x0 and y1 > y0, got {edges}"
            raise ConfigError(msg)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not (isinstance(value, int | np.integer) and 1 <= value <= MAX_SIDE):
                msg = f"viewport {name} must be an integer in [1, {MAX_SIDE}], got {value!r}"
                raise ConfigError(msg)

    def transform(self) -> NDArray[np.float64]:
        """``[x0, x1, y0, y1, sx, tx, sy, ty]``: pixel column = ``int(x * sx + tx)``."""
        sx = self.width / (self.x1 - self.x0)
        sy = self.height / (self.y1 - self.y0)
        return np.array([self.x0, self.x1, self.y0, self.y1, sx, -self.x0 * sx, sy, -self.y0 * sy])


@dataclass(frozen=True, eq=False)
class PointIndex:
    """Points sorted by grid cell, with per-cell offsets; build with ``PointIndex.build``.

    Attributes
    ----------
    coords : (n, 2) float32, the layout in original order (kept for full scans and gathers).
    xy : (n, 2) float32, the same points sorted by cell.
    perm : (n,) int32 (int64 past 2**31 points), ``xy[s] == coords[perm[s]]``.
    offsets : (g * g + 1,) int64, cell ``c`` holds sorted rows ``offsets[c]:offsets[c + 1]``.
    grid : (4,) float64, ``[xmin, g / width, ymin, g / height]`` of the finite extent.
    side : int, ``g``, cells per axis.
    cache_entries : how many sorted copies of per-point arrays to keep (``sorted_copy``).
    """

    coords: NDArray[np.float32]
    xy: NDArray[np.float32]
    perm: NDArray[np.signedinteger]
    offsets: NDArray[np.int64]
    grid: NDArray[np.float64]
    side: int
    cache_entries: int = 8
    # Sorted copies of per-point arrays, by id of the original (see sorted_copy).
    _sorted: OrderedDict[int, tuple[NDArray[np.generic], NDArray[np.generic]]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def build(cls, coords: NDArray[np.floating], *, points_per_cell: int = 64) -> PointIndex:
        """Sort ``coords`` ((n, 2), float32 preferred: other dtypes are copied) by grid cell.

        About ``points_per_cell`` points per cell on average (at most 2048 cells a side).
        Non-finite points go to cell 0 and are never drawn.
        """
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        if coords.ndim != 2 or coords.shape[1] != 2:
            msg = f"coords must have shape (n, 2), got {coords.shape}; pass one 2-D layout"
            raise InputError(msg)
        n = coords.shape[0]
        side = int(np.clip(round(math.sqrt(n / max(points_per_cell, 1))), 1, 2048))
        xmin, xmax, ymin, ymax = _kernels.extent(coords)
        if not xmin <= xmax:  # no finite point at all
            xmin, xmax, ymin, ymax = 0.0, 1.0, 0.0, 1.0
        # Widen degenerate extents so the inverse cell size stays finite.
        width = xmax - xmin if xmax > xmin else 1.0
        height = ymax - ymin if ymax > ymin else 1.0
        grid = np.array([xmin, side / width, ymin, side / height])
        n_chunks = n_workers() if n >= _PARALLEL_MIN else 1
        cuts = n * np.arange(n_chunks + 1) // n_chunks
        hist = np.zeros((n_chunks, side * side), np.int64)
        run_chunks(
            lambda k: _kernels.cell_histogram(coords, cuts[k], cuts[k + 1], grid, side, hist[k]),
            n_chunks,
        )
        offsets = np.zeros(side * side + 1, np.int64)
        np.cumsum(hist.sum(axis=0), out=offsets[1:])
        # Chunk k of cell c starts after the cell's earlier cells and earlier chunks.
        starts = offsets[:-1] + np.cumsum(hist, axis=0) - hist
        xy = np.empty_like(coords)
        perm: NDArray[np.signedinteger] = (
            np.empty(n, np.int32) if n < 2**31 else np.empty(n, np.int64)
        )
        run_chunks(
            lambda k: _kernels.cell_scatter(
                coords, cuts[k], cuts[k + 1], grid, side, starts[k], xy, perm
            ),
            n_chunks,
        )
        return cls(coords=coords, xy=xy, perm=perm, offsets=offsets, grid=grid, side=side)

    @property
    def n_points(self) -> int:
        """Number of points indexed."""
        return int(self.coords.shape[0])

    def spans(self, x0: float, x1: float, y0: float, y1: float) -> NDArray[np.int64]:
        """Ranges of sorted rows whose cells meet ``[x0, x1] × [y0, y1]``: (k, 2) int64.

        A superset of the points in the box (whole cells); contiguous ranges are merged.
        """
        g = self.side
        cx0 = _kernels._cell(x0, self.grid[0], self.grid[1], g)
        cx1 = _kernels._cell(x1, self.grid[0], self.grid[1], g)
        cy0 = _kernels._cell(y0, self.grid[2], self.grid[3], g)
        cy1 = _kernels._cell(y1, self.grid[2], self.grid[3], g)
        rows = np.arange(cy0, cy1 + 1, dtype=np.int64) * g
        starts = self.offsets[rows + cx0]
        ends = self.offsets[rows + cx1 + 1]
        return _merge(starts, ends)

    def sorted_copy(self, values: NDArray[np.generic]) -> NDArray[np.generic]:
        """``values[perm]``: a per-point array (n,) in the index's order, cached by identity.

        Rendering reads sorted attributes sequentially; looking them up through ``perm``
        is a random read per point. The last ``cache_entries`` arrays are kept (with a
        reference to the original, so its ``id`` stays unique): treat arrays given to
        ``render`` as immutable and pass a new one when values change.
        """
        hit = self._cached(values)
        if hit is not None:
            return hit
        n = self.n_points
        if values.shape != (n,):
            msg = f"a per-point array must have shape ({n},), got {values.shape}"
            raise InputError(msg)
        out = np.empty(n, values.dtype)
        n_chunks = n_workers() if n >= _PARALLEL_MIN else 1
        cuts = n * np.arange(n_chunks + 1) // n_chunks
        run_chunks(
            lambda k: _kernels.gather(values, self.perm, cuts[k], cuts[k + 1], out), n_chunks
        )
        with self._lock:
            self._sorted[id(values)] = (values, out)
            while len(self._sorted) > self.cache_entries:
                self._sorted.popitem(last=False)
        return out

    def has_sorted_copy(self, values: NDArray[np.generic]) -> bool:
        """Whether ``sorted_copy(values)`` is cached (so it costs nothing)."""
        return self._cached(values) is not None

    def _cached(self, values: NDArray[np.generic]) -> NDArray[np.generic] | None:
        with self._lock:
            hit = self._sorted.get(id(values))
            if hit is None or hit[0] is not values:
                return None
            self._sorted.move_to_end(id(values))
            return hit[1]

    def candidates(self, viewport: Viewport) -> int:
        """Number of sorted rows a render of ``viewport`` would read through the index."""
        spans = self.spans(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
        return int((spans[:, 1] - spans[:, 0]).sum())


def _merge(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return np.zeros((0, 2), np.int64)
    # A range that begins where the previous one ends continues it.
    new = np.ones(starts.size, bool)
    new[1:] = starts[1:] != ends[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], starts.size) - 1
    return np.stack([starts[first], ends[last]], axis=1)


def split_spans(
    spans: NDArray[np.int64], n_chunks: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Cut ``spans`` (k, 2) into pieces so each of ``n_chunks`` threads gets an equal share.

    Returns ``pieces`` (p, 2) int64 and ``bounds`` (n_chunks + 1,) int64: thread ``t`` owns
    ``pieces[bounds[t]:bounds[t + 1]]``.
    """
    lengths = spans[:, 1] - spans[:, 0]
    cum = np.concatenate([[0], np.cumsum(lengths)])
    total = int(cum[-1])
    cuts = total * np.arange(n_chunks + 1, dtype=np.int64) // n_chunks
    points = np.union1d(cum, cuts)
    v0, v1 = points[:-1], points[1:]
    keep = v1 > v0
    v0, v1 = v0[keep], v1[keep]
    which = np.searchsorted(cum, v0, side="right") - 1
    start = spans[which, 0] + (v0 - cum[which])
    pieces = np.stack([start, start + (v1 - v0)], axis=1).astype(np.int64)
    bounds = np.searchsorted(v0, cuts).astype(np.int64)
    return pieces, bounds


def nearest_point(
    index: PointIndex,
    x: float,
    y: float,
    radius: float,
    *,
    mask: NDArray[np.bool_] | None = None,
) -> int | None:
    """Original index of the point nearest ``(x, y)`` within ``radius`` (data units), or None.

    For hover: the app converts its pixel tolerance to data units (``radius_px * (x1 - x0) /
    width``). ``mask`` (n,) bool limits the answer to drawn points. Ties go to the smallest
    index. Reads only the cells within ``radius``, so it costs microseconds.
    """
    if not (math.isfinite(x) and math.isfinite(y) and radius >= 0):
        return None
    # Pad the searched cells a little: x - radius is rounded, the distance test is exact.
    pad = radius * (1 + 1e-9) + 1e-30
    spans = index.spans(x - pad, x + pad, y - pad, y + pad)
    found = _kernels.nearest(
        index.xy, spans, index.perm, check_mask(mask, index.n_points), x, y, radius * radius
    )
    return None if found < 0 else int(found)


def check_mask(mask: NDArray[np.bool_] | None, n: int) -> NDArray[np.bool_]:
    """The kernels' mask argument: an empty array for "no mask"."""
    if mask is None:
        return np.zeros(0, bool)
    mask = np.asarray(mask)
    if mask.shape != (n,) or mask.dtype != np.bool_:
        msg = f"mask must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}"
        raise InputError(msg)
    return mask
