"""Numba kernels for the raster path: spatial sort, binning into pixels, nearest point.

Binning kernels exist only where they beat Datashader in ``benchmarks/render.py``: count
and categorical frames (docs/render.md); numeric reductions go through Datashader.

Each binning kernel is serial over *pieces*: ``(p, 2)`` int64 ``[start, end)`` ranges of
rows of an ``(m, 2)`` float32 ``xy`` array, and adds into its own buffer; the driver runs
one call per thread (``_numba.run_chunks``) with a private buffer each and sums them: no
atomics, no races.

``perm`` maps a row of ``xy`` to the point's original index, used to look up per-point
attributes (``mask``, ``codes``) that stay in the caller's order; an empty
``perm`` means the rows already are in the attributes' order. An empty ``mask`` means "all".

``vp`` is ``[x0, x1, y0, y1, sx, tx, sy, ty]`` (float64). The pixel rule is Datashader's
(``glyphs/points.py``): a point is drawn when ``x0 <= x <= x1`` and ``y0 <= y <= y1``; its
column is ``int(x * sx + tx)`` with ``sx = w / (x1 - x0)``, ``tx = -x0 * sx``, computed in
float64 from the float32 coordinate, and a point exactly on ``x1`` goes into the last column.
"""

from __future__ import annotations

import numpy as np

from explorer.jit import njit


@njit(inline="always")
def _pixel(x, y, x0, x1, y0, y1, sx, tx, sy, ty, w, h):  # type: ignore[no-untyped-def]
    """Flat pixel index ``row * w + col`` of a point, or -1 outside the viewport.

    Kernels unpack ``vp`` into scalars first: read from the array inside the loop, LLVM
    cannot prove the buffer writes leave it alone and reloads it (7x slower, measured).
    """
    # "&" not "and": one branch instead of four, which matters when the branch is
    # unpredictable (a zoomed full scan).
    if not ((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)):
        return -1
    xx = int(x * sx + tx)
    yy = int(y * sy + ty)
    if xx >= w:
        xx = w - 1
    if yy >= h:
        yy = h - 1
    return yy * w + xx


@njit(inline="always")
def _original(s, perm):  # type: ignore[no-untyped-def]
    if perm.shape[0] == 0:
        return s
    return int(perm[s])


@njit
def bin_count(xy, pieces, perm, mask, vp, w, h, buf):  # type: ignore[no-untyped-def]
    """Add points per pixel into ``buf`` (h * w,) uint32; return the number drawn."""
    x0, x1, y0, y1, sx, tx, sy, ty = vp[0], vp[1], vp[2], vp[3], vp[4], vp[5], vp[6], vp[7]
    use_mask = mask.shape[0] > 0
    drawn = 0
    for q in range(pieces.shape[0]):
        for s in range(pieces[q, 0], pieces[q, 1]):
            p = _pixel(xy[s, 0], xy[s, 1], x0, x1, y0, y1, sx, tx, sy, ty, w, h)
            if p < 0:
                continue
            if use_mask and not mask[_original(s, perm)]:
                continue
            buf[p] += 1
            drawn += 1
    return drawn


@njit
def bin_rgb(xy, pieces, perm, mask, codes, lut, vp, w, h, buf, code_counts):  # type: ignore[no-untyped-def]
    """Add per pixel ``[count, R sum, G sum, B sum]`` into ``buf`` (h * w, 4); count codes.

    ``lut`` (n_codes, 3) gives each code's colour; ``code_counts`` (n_codes,) int64.
    Summing colours while binning makes categorical shading one division per pixel, the
    same arithmetic as Datashader's weighted mean of category colours.
    """
    x0, x1, y0, y1, sx, tx, sy, ty = vp[0], vp[1], vp[2], vp[3], vp[4], vp[5], vp[6], vp[7]
    use_mask = mask.shape[0] > 0
    for q in range(pieces.shape[0]):
        for s in range(pieces[q, 0], pieces[q, 1]):
            p = _pixel(xy[s, 0], xy[s, 1], x0, x1, y0, y1, sx, tx, sy, ty, w, h)
            if p < 0:
                continue
            j = _original(s, perm)
            if use_mask and not mask[j]:
                continue
            c = codes[j]
            buf[p, 0] += 1
            buf[p, 1] += lut[c, 0]
            buf[p, 2] += lut[c, 1]
            buf[p, 3] += lut[c, 2]
            code_counts[c] += 1


@njit(inline="always")
def _cell(x, lo, inv, g):  # type: ignore[no-untyped-def]
    # The same float64 formula serves points and viewport edges, so it is monotone in x:
    # every point inside a viewport falls in a cell between the edges' cells.
    f = (x - lo) * inv
    if not f >= 0.0:  # also catches NaN
        return 0
    if f >= g:
        return g - 1
    return int(f)


@njit
def extent(xy):  # type: ignore[no-untyped-def]
    """``[xmin, xmax, ymin, ymax]`` over finite rows of ``xy`` (inf/-inf when none)."""
    lo_x, hi_x, lo_y, hi_y = np.inf, -np.inf, np.inf, -np.inf
    for i in range(xy.shape[0]):
        x = np.float64(xy[i, 0])
        y = np.float64(xy[i, 1])
        if np.isfinite(x) and np.isfinite(y):
            lo_x = min(lo_x, x)
            hi_x = max(hi_x, x)
            lo_y = min(lo_y, y)
            hi_y = max(hi_y, y)
    return np.array([lo_x, hi_x, lo_y, hi_y])


@njit
def cell_histogram(xy, start, stop, grid, g, hist):  # type: ignore[no-untyped-def]
    """Add the cells of rows ``start:stop`` into ``hist`` (g * g,) int64.

    ``grid`` is ``[xmin, g / width, ymin, g / height]``; cells are row-major
    (``cy * g + cx``) so a viewport's cells in one grid row are one contiguous range.
    """
    for i in range(start, stop):
        cx = _cell(xy[i, 0], grid[0], grid[1], g)
        cy = _cell(xy[i, 1], grid[2], grid[3], g)
        hist[cy * g + cx] += 1


@njit
def cell_scatter(xy, start, stop, grid, g, starts, xy_out, perm_out):  # type: ignore[no-untyped-def]
    """Counting-sort scatter of rows ``start:stop``: row i goes to ``starts[cell]`` (which
    advances). With one ``starts`` per chunk of rows, as in ``cell_histogram``, the sort
    is stable.
    """
    for i in range(start, stop):
        c = _cell(xy[i, 1], grid[2], grid[3], g) * g + _cell(xy[i, 0], grid[0], grid[1], g)
        pos = starts[c]
        starts[c] = pos + 1
        xy_out[pos, 0] = xy[i, 0]
        xy_out[pos, 1] = xy[i, 1]
        perm_out[pos] = i


@njit
def nearest(xy, spans, perm, mask, px, py, r2):  # type: ignore[no-untyped-def]
    """Original index of the point nearest ``(px, py)`` within squared radius ``r2``, or -1.

    Ties go to the smallest original index, so the answer does not depend on the sort.
    """
    use_mask = mask.shape[0] > 0
    best = -1
    best_d = r2
    for q in range(spans.shape[0]):
        for s in range(spans[q, 0], spans[q, 1]):
            dx = np.float64(xy[s, 0]) - px
            dy = np.float64(xy[s, 1]) - py
            d = dx * dx + dy * dy
            if d > best_d:
                continue
            j = _original(s, perm)
            if use_mask and not mask[j]:
                continue
            if d < best_d or best < 0 or j < best:
                best = j
                best_d = d
    return best


@njit
def gather(values, perm, start, stop, out):  # type: ignore[no-untyped-def]
    """``out[s] = values[perm[s]]`` for ``s`` in ``start:stop`` (an attribute, index order)."""
    for s in range(start, stop):
        out[s] = values[perm[s]]
