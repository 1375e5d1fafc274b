"""A frame's aggregation on the cluster: Datashader per partition, added up on the workers.

``aggregate_frame`` is the seam where ``explorer.render``'s DataFrame entry point goes
once it lands; ``explorer.app.cluster`` calls only it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.app.cluster_tasks import RETRIES
from explorer.render import _shade
from explorer.render.colors import CategoricalColor
from explorer.render.index import Viewport
from explorer.render.raster import NumericColor

# How a frame is aggregated: Datashader per partition in tasks, or its dask backend.
AggregateEngine = Literal["partitions", "dask"]


@dataclass(frozen=True, eq=False)
class Layer:
    rgba: NDArray[np.uint32]
    nonzero: NDArray[np.bool_]
    n_in: int
    span: tuple[float, float] | None
    slot_counts: NDArray[np.int64]


def _canvas(vp: tuple[float, float, float, float, int, int]) -> Any:
    import datashader as ds

    x0, x1, y0, y1, w, h = vp
    return ds.Canvas(plot_width=w, plot_height=h, x_range=(x0, x1), y_range=(y0, y1))


def _aggregate(
    df: pd.DataFrame | Any, vp: tuple[float, float, float, float, int, int], kind: str,
    rgb: NDArray[np.uint32] | None, use_max: bool,
) -> dict[str, Any]:  # fmt: skip
    """Datashader's aggregate of ``df`` (x, y, ``a``) for one viewport, kept sparse (the
    drawn pixels ``idx`` only) in fields that add up over partitions: ``count``;
    ``acc`` ``[count, R, G, B]`` sums and ``slots`` (categories); ``c`` valid values and
    ``v`` their sum or maximum, ``n`` points drawn (numbers)."""
    import datashader as ds

    canvas = _canvas(vp)
    n_pixels = vp[4] * vp[5]
    if kind == "categorical" and rgb is not None:
        by = np.asarray(canvas.points(df, "x", "y", ds.by("a", ds.count())).data)
        flat = by.reshape(n_pixels, by.shape[-1])
        total = flat.sum(axis=1, dtype=np.uint64)
        idx = np.flatnonzero(total)
        drawn = flat[idx].astype(np.uint64)
        acc = np.empty((idx.size, 4), np.uint64)
        acc[:, 0] = total[idx]
        acc[:, 1:] = drawn @ rgb.astype(np.uint64)
        slots = drawn.sum(axis=0).astype(np.int64)
        return {"n_pixels": n_pixels, "idx": idx, "acc": acc, "slots": slots}
    if kind == "numeric":
        value = ds.max("a") if use_max else ds.sum("a")
        agg = canvas.points(df, "x", "y", ds.summary(n=ds.count(), c=ds.count("a"), v=value))
        c = np.asarray(agg["c"].data, np.float64).reshape(-1)
        idx = np.flatnonzero(c)
        v = np.asarray(agg["v"].data, np.float64).reshape(-1)[idx]
        return {"n_pixels": n_pixels, "idx": idx, "c": c[idx], "v": v,
                "n": int(np.asarray(agg["n"].data).sum()), "max": use_max}  # fmt: skip
    counts = np.asarray(canvas.points(df, "x", "y", ds.count()).data, np.uint32).reshape(-1)
    idx = np.flatnonzero(counts)
    return {"n_pixels": n_pixels, "idx": idx, "count": counts[idx]}


_PIXEL_FIELDS = ("count", "acc", "c", "v")


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up sparse partition aggregates pixel by pixel (a maximum for ``v`` with ``max``).

    Through a dense buffer: a partition's pixels are unique, so ``buf[idx] += values``
    is exact, and it costs one pass over the frame instead of a sort of every pixel.
    """
    out = dict(parts[0])
    n_pixels = int(out["n_pixels"])
    use_max = bool(out.get("max"))
    seen = np.zeros(n_pixels, bool)
    for part in parts:
        seen[part["idx"]] = True
    out["idx"] = np.flatnonzero(seen)
    for key in _PIXEL_FIELDS:
        if key not in out:
            continue
        first = parts[0][key]
        buf = np.zeros((n_pixels, *first.shape[1:]), first.dtype)
        if key == "v" and use_max:
            buf[:] = -np.inf
        for part in parts:
            if key == "v" and use_max:
                buf[part["idx"]] = np.maximum(buf[part["idx"]], part[key])
            else:
                buf[part["idx"]] += part[key]
        out[key] = buf[out["idx"]]
    for key in ("slots", "n"):
        if key in out:
            out[key] = sum(p[key] for p in parts)
    return out


def _dense(agg: dict[str, Any], key: str, n_pixels: int, dtype: Any) -> NDArray[Any]:
    values = agg[key]
    out = np.zeros((n_pixels, *values.shape[1:]), dtype)
    out[agg["idx"]] = values
    return out


def _tree(jobs: list[Any], split_every: int = 4) -> Any:
    """One Delayed combining ``jobs`` in a tree on the workers (one result comes back)."""
    from dask.delayed import delayed

    while len(jobs) > 1:
        jobs = [delayed(_combine)(jobs[i : i + split_every])
                for i in range(0, len(jobs), split_every)]  # fmt: skip
    return jobs[0]


def aggregate_frame(
    ddf: Any,
    viewport: Viewport,
    kind: str,
    color: CategoricalColor | NumericColor | None,
    how: str,
    min_alpha: int,
    *,
    client: Any = None,
    engine: AggregateEngine = "partitions",
) -> Layer:
    """Datashader over ``ddf`` (x, y, ``a``), shaded as the in-process path shades.

    ``engine="partitions"`` runs Datashader's pandas backend on each partition in a task
    and adds the aggregates up in a tree on the workers; ``"dask"`` hands ``ddf`` to
    Datashader's dask backend, which pickles and recompiles its numba closures for every
    call (about a second a frame here, see docs/benchmarks.md). The seam for
    ``explorer.render``'s DataFrame entry point: swap this body for that call.
    """
    from dask.delayed import delayed

    vp = (viewport.x0, viewport.x1, viewport.y0, viewport.y1, viewport.width, viewport.height)
    rgb = (
        _shade.rgb_triples(color.colors)
        if kind == "categorical" and isinstance(color, CategoricalColor)
        else None
    )
    use_max = isinstance(color, NumericColor) and color.reduction == "max"
    if kind == "numeric" and not isinstance(color, NumericColor):
        kind = ""
    if engine == "dask":
        agg = _aggregate(ddf, vp, kind, rgb, use_max)
    else:
        jobs = [delayed(_aggregate)(p, vp, kind, rgb, use_max) for p in ddf.to_delayed()]
        agg = client.compute(_tree(jobs), sync=True, retries=RETRIES)
    none = np.zeros(0, np.int64)
    h, w = viewport.height, viewport.width
    if "acc" in agg:
        acc = _dense(agg, "acc", h * w, np.uint64).reshape(h, w, 4)
        if int(acc[..., 0].max(initial=0)) <= (2**32 - 1) // 255:
            acc = acc.astype(np.uint32)  # as the in-process sums, so one kernel serves both
        slot_counts = np.asarray(agg["slots"], np.int64).reshape(-1)
        if slot_counts.size == 0 and isinstance(color, CategoricalColor):
            slot_counts = np.zeros(len(color.labels), np.int64)
        rgba = _shade.shade_rgb(acc, how, min_alpha)
        return Layer(rgba, acc[..., 0] > 0, int(slot_counts.sum()), None, slot_counts)
    if "c" in agg and isinstance(color, NumericColor):
        acc_v = np.stack(
            [_dense(agg, "c", h * w, np.float64), _dense(agg, "v", h * w, np.float64)], axis=-1
        ).reshape(h, w, 2)
        lut = _shade.cmap_lut(color.cmap)
        rgba, span = _shade.shade_values(acc_v, lut, mean=not use_max, span=color.span)
        return Layer(rgba, acc_v[..., 0] > 0, int(agg["n"]), span, none)
    counts = _dense(agg, "count", h * w, np.uint32).reshape(h, w)
    rgba = _shade.shade_counts(counts, _shade.cmap_lut(_shade.DEFAULT_COUNT_CMAP), how)
    nonzero = counts > 0
    n_in = int(counts.sum())
    span = (float(counts[nonzero].min()), float(counts.max())) if n_in else None
    return Layer(rgba, nonzero, n_in, span, none)
