"""Binning: choose which rows to read for a viewport, run the kernels on private buffers.

``rows_for`` picks the rows (the cells in view of the index's sorted copy, or a full scan
in original order) and the order in which per-point attributes are read; the ``bin_*``
drivers run one kernel call per thread (``_numba.run_chunks``) and sum the buffers.
``rows_frame`` picks the rows of a numeric frame the same way, as a DataFrame for
Datashader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.render import _kernels
from explorer.render._numba import n_workers, run_chunks
from explorer.render.index import PointIndex, Viewport, check_mask, split_spans

ReadPath = Literal["auto", "index", "scan"]
# Looking attributes up through the sort permutation is a random read per point; past this
# share of all points in view, gathering a sorted copy once (and caching it) is cheaper.
GATHER_FRACTION = 0.25
# Below this many points one thread is faster than zeroing a buffer per thread.
_PARALLEL_MIN = 100_000
# int32 like the index's own perm, so both paths share one compiled kernel.
_EMPTY_PERM = np.zeros(0, np.int32)


@dataclass(frozen=True, eq=False)
class Rows:
    """Rows to bin: ``xy`` pieces per thread; ``perm`` and ``mask`` as the kernels take them."""

    xy: NDArray[np.float32]
    pieces: NDArray[np.int64]
    bounds: NDArray[np.int64]
    perm: NDArray[np.signedinteger]
    mask: NDArray[np.bool_]


def rows_for(
    index: PointIndex,
    viewport: Viewport,
    mask: NDArray[np.bool_] | None,
    attr: NDArray[np.generic] | None,
    *,
    path: ReadPath,
) -> tuple[Rows, NDArray[np.generic] | None]:
    """Choose the rows to read and the order of the per-point arrays the kernels look up.

    Returns the rows and ``attr`` (codes or values) in the order the kernels index it.
    """
    n = index.n_points
    mask_arg = check_mask(mask, n)
    if attr is not None and attr.shape != (n,):
        msg = f"colour column has shape {attr.shape} but the layout has {n} points"
        raise InputError(msg)
    arrays = [a for a in (mask_arg if mask is not None else None, attr) if a is not None]
    spans = index.spans(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
    candidates = int((spans[:, 1] - spans[:, 0]).sum())
    xy, perm = index.xy, _EMPTY_PERM
    if path == "scan":
        xy, spans, candidates = index.coords, np.array([[0, n]], np.int64), n
    elif arrays and path == "index":
        perm = index.perm
    elif arrays and (
        all(index.has_sorted_copy(a) for a in arrays) or candidates > GATHER_FRACTION * n
    ):
        # Sorted copies make every read sequential and every write local. Making one is a
        # random read per point, yet a first frame that gathers and then bins in sorted
        # order was still faster than one full scan in the caller's order (whose pixel
        # writes are random): 160-260 ms against 270-420 ms at 10M points, measured.
        arrays = [index.sorted_copy(a) for a in arrays]
        if mask is not None:
            mask_arg = arrays[0]  # type: ignore[assignment]
        if attr is not None:
            attr = arrays[-1]
    elif arrays:
        # A small view: look its few points' attributes up through perm.
        perm = index.perm
    pieces, bounds = split_spans(spans, n_workers() if candidates >= _PARALLEL_MIN else 1)
    return Rows(xy, pieces, bounds, perm, mask_arg), attr


def rows_frame(
    index: PointIndex,
    viewport: Viewport,
    mask: NDArray[np.bool_] | None,
    values: NDArray[np.floating],
    *,
    path: ReadPath,
) -> pd.DataFrame:
    """The points of a numeric frame for Datashader: columns ``x``, ``y``, ``v``.

    A small view (or ``"index"``) gives only the rows of the cells it overlaps; a wide one
    gives the index's sorted rows from the first grid row in view to the last (a slice, no
    copy) with a sorted copy of ``values`` (cached, as for categories). Datashader writes
    pixels in cell order then, which halved its time at 10M points (135 -> 58 ms, measured).
    ``"scan"`` gives every point in the caller's order.
    """
    n = index.n_points
    check_mask(mask, n)
    if values.shape != (n,):
        msg = f"colour column has shape {values.shape} but the layout has {n} points"
        raise InputError(msg)
    spans = index.spans(viewport.x0, viewport.x1, viewport.y0, viewport.y1)
    candidates = int((spans[:, 1] - spans[:, 0]).sum())
    arrays = [values] if mask is None else [values, mask]
    keep: NDArray[np.generic] | None
    v: NDArray[np.generic]
    if path == "scan":
        xy, v, keep = index.coords, values, mask
    elif (
        path == "auto"
        and spans.size
        and (candidates > GATHER_FRACTION * n or all(index.has_sorted_copy(a) for a in arrays))
    ):
        rows = slice(int(spans[0, 0]), int(spans[-1, 1]))
        xy, v = index.xy[rows], index.sorted_copy(values)[rows]
        keep = None if mask is None else index.sorted_copy(mask)[rows]
    else:
        take = np.concatenate([np.arange(a, b) for a, b in spans] or [np.zeros(0, np.int64)])
        orig = index.perm[take]
        xy, v = index.xy[take], values[orig]
        keep = None if mask is None else mask[orig]
    return points_frame(xy, v, keep)


def points_frame(
    xy: NDArray[np.floating], values: NDArray[np.generic], keep: NDArray[np.generic] | None
) -> pd.DataFrame:
    """``x``, ``y`` (columns of ``xy`` (m, 2)) and ``v``, the rows where ``keep`` is True.

    Always the same array layouts (x and y strided views of one (m, 2) array, v
    contiguous), so Datashader compiles each numeric reduction once per process (~0.7 s
    each) rather than once per layout.
    """
    if keep is not None:
        xy, values = xy[keep], values[keep]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "v": values}, copy=False)


def gathered_rows(xy: NDArray[np.float32], mask: NDArray[np.bool_] | None) -> Rows:
    """Rows of an already gathered subset, attributes in the same order."""
    n = xy.shape[0]
    spans = np.array([[0, n]], np.int64)
    pieces, bounds = split_spans(spans, n_workers() if n >= _PARALLEL_MIN else 1)
    return Rows(xy, pieces, bounds, _EMPTY_PERM, check_mask(mask, n))


def n_chunks(rows: Rows) -> int:
    return int(rows.bounds.size - 1)


def chunked(rows: Rows, call: Callable[[NDArray[np.int64], int], Any]) -> list[Any]:
    """``call(pieces, k)`` for each thread's chunk ``k`` of ``rows``, in parallel."""
    b = rows.bounds
    return run_chunks(lambda k: call(rows.pieces[b[k] : b[k + 1]], k), n_chunks(rows))


def bin_count(rows: Rows, viewport: Viewport) -> tuple[NDArray[np.uint32], int]:
    w, h, vp = viewport.width, viewport.height, viewport.transform()
    buf = np.zeros((n_chunks(rows), h * w), np.uint32)
    drawn = chunked(
        rows,
        lambda pieces, k: _kernels.bin_count(
            rows.xy, pieces, rows.perm, rows.mask, vp, w, h, buf[k]
        ),
    )
    return buf.sum(axis=0, dtype=np.uint32).reshape(h, w), int(sum(drawn))


def bin_rgb(
    rows: Rows, viewport: Viewport, codes: NDArray[np.integer], lut: NDArray[np.uint32]
) -> tuple[NDArray[np.unsignedinteger], NDArray[np.int64]]:
    """``[count, R, G, B]`` sums (h, w, 4) and per-code counts (n_codes,)."""
    for dtype in (np.uint32, np.uint64):
        acc, code_counts = _bin_rgb_as(rows, viewport, codes, lut.astype(dtype))
        # uint32 colour sums overflow only past 2**32 / 255 points in one pixel: redo wider.
        if int(acc[..., 0].max(initial=0)) <= (2**32 - 1) // 255:
            break
    return acc, code_counts


def _bin_rgb_as(
    rows: Rows, viewport: Viewport, codes: NDArray[np.integer], lut: NDArray[np.unsignedinteger]
) -> tuple[NDArray[np.unsignedinteger], NDArray[np.int64]]:
    """``_bin_rgb`` with sums in ``lut``'s dtype."""
    w, h, vp = viewport.width, viewport.height, viewport.transform()
    buf = np.zeros((n_chunks(rows), h * w, 4), lut.dtype)
    code_counts = np.zeros((n_chunks(rows), lut.shape[0]), np.int64)
    chunked(
        rows,
        lambda pieces, k: _kernels.bin_rgb(
            rows.xy, pieces, rows.perm, rows.mask, codes, lut, vp, w, h, buf[k], code_counts[k]
        ),
    )
    return buf.sum(axis=0, dtype=lut.dtype).reshape(h, w, 4), code_counts.sum(axis=0)
