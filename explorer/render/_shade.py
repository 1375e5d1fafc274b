"""Shading: aggregates to packed RGBA (small numba kernels per pixel), spreading, compositing.

Images are ``(h, w)`` uint32 in Bokeh's ``image_rgba`` (and Datashader's) layout: the bytes
of each pixel are R, G, B, A in memory order (``A << 24 | B << 16 | G << 8 | R``), row 0 is
the bottom of the viewport, and 0 is fully transparent.
"""

from __future__ import annotations

from collections.abc import Sequence

import colorcet
import numpy as np
from numpy.typing import NDArray
from PIL import ImageColor

from explorer.errors import ConfigError
from explorer.jit import njit

HOWS: tuple[str, ...] = ("eq_hist", "log", "cbrt", "linear")
# Counts: colorcet "blues" without its near-white start, so one point shows on white.
DEFAULT_COUNT_CMAP: tuple[str, ...] = tuple(colorcet.palette["blues"][72:])
DEFAULT_VALUE_CMAP = "bmy"
# Up to this many distinct count levels eq_hist uses a lookup table instead of sorting.
_TABLE_LEVELS = 1 << 20


def pack(
    r: NDArray[np.integer], g: NDArray[np.integer], b: NDArray[np.integer], a: NDArray[np.integer]
) -> NDArray[np.uint32]:
    """Pack 8-bit channels into RGBA uint32 pixels (Bokeh's byte order)."""
    packed = (
        r.astype(np.uint32)
        | (g.astype(np.uint32) << 8)
        | (b.astype(np.uint32) << 16)
        | (a.astype(np.uint32) << 24)
    )
    return np.asarray(packed, dtype=np.uint32)


def rgb_triples(colors: Sequence[str]) -> NDArray[np.uint32]:
    """``(k, 3)`` uint32 RGB of CSS colour names or hex strings.

    Parsed by Pillow rather than Datashader: importing Datashader costs ~1.5 s of app start.
    """
    try:
        rgb = [ImageColor.getrgb(c)[:3] for c in colors]
        return np.array(rgb, dtype=np.uint32).reshape(-1, 3)
    except ValueError as err:
        msg = f"cannot read colours {list(colors)[:5]}...: {err}; use '#rrggbb' or CSS names"
        raise ConfigError(msg) from err


def cmap_lut(cmap: str | Sequence[str], n: int = 256) -> NDArray[np.uint32]:
    """``(n,)`` opaque RGBA of a colorcet palette name or a list of colours, interpolated."""
    if isinstance(cmap, str):
        if cmap not in colorcet.palette:
            msg = f"unknown colour map {cmap!r}; use a colorcet name such as 'fire' or 'bmy'"
            raise ConfigError(msg)
        cmap = colorcet.palette[cmap]
    stops = rgb_triples(cmap).astype(np.float64)
    at = np.linspace(0.0, 1.0, len(stops))
    t = np.linspace(0.0, 1.0, n)
    chans = [np.interp(t, at, stops[:, i]).round().astype(np.uint8) for i in range(3)]
    return pack(chans[0], chans[1], chans[2], np.full(n, 255, np.uint8))


_HOW_CODE = {name: i for i, name in enumerate(HOWS)}


def _check_how(how: str) -> int:
    if how not in _HOW_CODE:
        msg = f"how={how!r} is not one of {', '.join(HOWS)}"
        raise ConfigError(msg)
    return _HOW_CODE[how]


@njit
def _count_range(total):  # type: ignore[no-untyped-def]
    """Smallest and largest non-zero count and the number of non-empty pixels."""
    lo = np.int64(2**62)
    hi = np.int64(0)
    n = 0
    # Indexed loop with min/max: branch-free enough for LLVM to vectorise (60x faster
    # here than iterating the array with an "n == 0 or" test).
    for i in range(total.size):
        v = np.int64(total[i])
        if v > 0:
            lo = min(lo, v)
            hi = max(hi, v)
            n += 1
    return (lo if n else np.int64(0)), hi, n


@njit
def _eq_table(total, lo, hi, n):  # type: ignore[no-untyped-def]
    """eq_hist scale of each count level ``lo..hi``: its rank among non-empty pixels."""
    hist = np.zeros(hi - lo + 1, np.int64)
    for i in range(total.size):
        if total[i] > 0:
            hist[np.int64(total[i]) - lo] += 1
    table = np.empty(hi - lo + 1)
    f0 = hist[0] / n
    run = 0
    for i in range(hist.size):
        run += hist[i]
        table[i] = (run / n - f0) / (1.0 - f0)
    return table


@njit(inline="always")
def _scaled(c, how, lo, hi, table, keys):  # type: ignore[no-untyped-def]
    if hi == lo:
        return 1.0
    if keys.size:
        return table[np.searchsorted(keys, c)]
    if table.size:
        return table[np.int64(c) - lo]
    d = float(np.int64(c) - lo)
    span = float(hi - lo)
    if how == 1:
        return np.log1p(d) / np.log1p(span)
    if how == 2:
        return (d / span) ** (1.0 / 3.0)
    return d / span


@njit
def _shade_count_px(total, how, lo, hi, table, keys, lut, out):  # type: ignore[no-untyped-def]
    top = lut.size - 1
    for p in range(total.size):
        c = total[p]
        if c == 0:
            out[p] = 0
        else:
            out[p] = lut[int(_scaled(c, how, lo, hi, table, keys) * top + 0.5)]


@njit
def _shade_rgb_px(acc, how, lo, hi, table, keys, min_alpha, out):  # type: ignore[no-untyped-def]
    for p in range(acc.shape[0]):
        c = acc[p, 0]
        if c == 0:
            out[p] = 0
            continue
        a = int(min_alpha + (255 - min_alpha) * _scaled(c, how, lo, hi, table, keys))
        r = np.int64(acc[p, 1] // c)
        g = np.int64(acc[p, 2] // c)
        b = np.int64(acc[p, 3] // c)
        out[p] = r + (g << 8) + (b << 16) + (np.int64(a) << 24)


def _scale_params(
    total: NDArray[np.unsignedinteger], how: str
) -> tuple[int, int, int, NDArray[np.float64], NDArray[np.unsignedinteger]]:
    """``how`` as a code, the non-zero count range, and the eq_hist table (and its keys).

    The scale maps the smallest non-empty count to 0 and the largest to 1 (Datashader
    subtracts the minimum too); eq_hist maps a count to its rank among non-empty pixels;
    a single level maps to 1 so a sparse frame is drawn at full strength. The table is
    indexed by ``count - lo``; past ``_TABLE_LEVELS`` levels eq_hist indexes it by rank
    among ``keys`` and the other scales are computed per pixel.
    """
    code = _check_how(how)
    lo, hi, n = _count_range(total)
    table = np.zeros(0)
    keys = np.zeros(0, total.dtype)
    if hi == lo:
        return code, int(lo), int(hi), table, keys
    if hi - lo < _TABLE_LEVELS:
        # One entry per count level: the per-pixel work becomes a lookup.
        d = np.arange(hi - lo + 1, dtype=np.float64)
        if code == 0:
            table = _eq_table(total, lo, hi, n)
        elif code == 1:
            table = np.log1p(d) / np.log1p(hi - lo)
        elif code == 2:
            table = np.cbrt(d / (hi - lo))
        else:
            table = d / (hi - lo)
    elif code == 0:
        keys, counts = np.unique(total[total > 0], return_counts=True)
        cdf = np.cumsum(counts) / n
        table = (cdf - cdf[0]) / (1.0 - cdf[0])
    return code, int(lo), int(hi), table, keys


def shade_counts(
    counts: NDArray[np.unsignedinteger], lut: NDArray[np.uint32], how: str
) -> NDArray[np.uint32]:
    """Counts (h, w) to RGBA (h, w) uint32 through ``lut`` (k,); empty pixels transparent."""
    flat = counts.reshape(-1)
    code, lo, hi, table, keys = _scale_params(flat, how)
    out = np.empty(flat.size, np.uint32)
    _shade_count_px(flat, code, lo, hi, table, keys, lut, out)
    return out.reshape(counts.shape)


def shade_rgb(acc: NDArray[np.unsignedinteger], how: str, min_alpha: int) -> NDArray[np.uint32]:
    """``[count, R sum, G sum, B sum]`` (h, w, 4) to RGBA (h, w) uint32.

    Colour is the count-weighted mean of the points' colours (truncated, as Datashader's
    categorical shade), alpha runs from ``min_alpha`` to 255 with the count scaled by ``how``.
    """
    flat = acc.reshape(-1, 4)
    code, lo, hi, table, keys = _scale_params(flat[:, 0], how)
    out = np.empty(flat.shape[0], np.uint32)
    _shade_rgb_px(flat, code, lo, hi, table, keys, min_alpha, out)
    return out.reshape(acc.shape[:2])


def shade_values(
    values: NDArray[np.floating], lut: NDArray[np.uint32], *, span: tuple[float, float] | None
) -> tuple[NDArray[np.uint32], tuple[float, float] | None]:
    """A per-pixel value (h, w), NaN where none, to RGBA (h, w) uint32 and the span used.

    Pixels without a value are transparent; others are opaque, coloured linearly between
    ``span`` (default: the pixel values' min and max) through the ``lut``. Datashader's
    ``tf.shade(how="linear", span=...)`` draws the same colours to within one step of 8
    bits (it truncates where this rounds) but took 7x as long (docs/render.md).
    """
    have = np.isfinite(values)
    vals = values[have]
    if span is None and vals.size:
        span = (float(vals.min()), float(vals.max()))
    out = np.zeros(values.shape, np.uint32)
    if span is None:
        return out, None
    lo, hi = span
    t = np.clip((vals - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.full(vals.size, 0.5)
    out[have] = lut[(t * (lut.size - 1) + 0.5).astype(np.intp)]
    return out, span


def spread_radius(nonzero: NDArray[np.bool_]) -> int:
    """Datashader-``dynspread``-like radius: 1 px, more when non-empty pixels are isolated.

    The share of non-empty pixels with a non-empty 8-neighbour picks the radius:
    ≥ 0.5 → 1, ≥ 0.2 → 2, else 3; an empty frame gets 0.
    """
    total = int(nonzero.sum())
    if total == 0:
        return 0
    neighbour = np.zeros_like(nonzero)
    h, w = nonzero.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            dst = neighbour[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            dst |= nonzero[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    share = int((nonzero & neighbour).sum()) / total
    return 1 if share >= 0.5 else 2 if share >= 0.2 else 3


def spread(rgba: NDArray[np.uint32], radius: int) -> NDArray[np.uint32]:
    """Fill empty pixels within ``radius`` (a square) of a drawn one; drawn pixels are kept.

    Unlike Datashader's ``spread`` (which composites neighbours over each other) dense
    regions keep their exact colours and only isolated points and edges grow. Among
    neighbours the most opaque wins (alpha is the high byte of the packed pixel).
    """
    if radius <= 0:
        return rgba
    rows = rgba.copy()
    for d in range(1, radius + 1):
        np.maximum(rows[:, d:], rgba[:, :-d], out=rows[:, d:])
        np.maximum(rows[:, :-d], rgba[:, d:], out=rows[:, :-d])
    both = rows.copy()
    for d in range(1, radius + 1):
        np.maximum(both[d:], rows[:-d], out=both[d:])
        np.maximum(both[:-d], rows[d:], out=both[:-d])
    return np.where(rgba == 0, both, rgba)


def composite(base: NDArray[np.uint32], top: NDArray[np.uint32], dim: float) -> NDArray[np.uint32]:
    """``top`` drawn over ``base`` whose alpha is first multiplied by ``dim`` (Porter-Duff over)."""
    h, w = base.shape
    out = base.view(np.uint8).reshape(h, w, 4).copy()
    out[..., 3] = (out[..., 3] * dim).astype(np.uint8)
    over = top.view(np.uint8).reshape(h, w, 4)
    sel = over[..., 3] > 0
    ta = over[sel, 3] / 255.0
    ba = out[sel, 3] / 255.0 * (1.0 - ta)
    oa = ta + ba
    rgb = (over[sel, :3] * ta[:, None] + out[sel, :3] * ba[:, None]) / oa[:, None]
    out[sel, :3] = np.clip(rgb.round(), 0, 255).astype(np.uint8)
    out[sel, 3] = np.clip((oa * 255).round(), 0, 255).astype(np.uint8)
    return out.view(np.uint32).reshape(h, w)
