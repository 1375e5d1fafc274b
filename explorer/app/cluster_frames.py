"""A frame's aggregation on the cluster: Datashader per partition, added up on the workers.

Each partition's rows (filtered and highlighted where they are held) go through
Datashader's pandas backend; a worker thread's partitions are aggregated and added up in
one task on the worker holding them (``_aggregate_parts``), the per-thread aggregates are
added in a tree on the workers, kept sparse; the one that comes back is shaded by
``explorer.render.frame`` (the functions ``render`` and ``render_frame_dataframe`` end
in), so the pixels are the same.
``engine="dask"`` hands the whole ``dask.dataframe`` to Datashader's dask backend instead
(as ``render_frame_dataframe`` does): same pixels, slower per frame (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_tasks import RETRIES
from explorer.render import _shade
from explorer.render.colors import CategoricalColor
from explorer.render.frame import Layer, category_layer, count_layer, numeric_layer
from explorer.render.index import Viewport
from explorer.render.raster import NumericColor

# How a frame is aggregated: Datashader per partition in tasks, or its dask backend.
AggregateEngine = Literal["partitions", "dask"]


def _canvas(vp: tuple[float, float, float, float, int, int]) -> Any:
    import datashader as ds

    x0, x1, y0, y1, w, h = vp
    return ds.Canvas(plot_width=w, plot_height=h, x_range=(x0, x1), y_range=(y0, y1))


def _aggregate(
    df: pd.DataFrame | Any, vp: tuple[float, float, float, float, int, int], kind: str,
    rgb: NDArray[np.uint32] | None, reduction: str,
) -> dict[str, Any]:  # fmt: skip
    """Datashader's aggregate of ``df`` (x, y, ``a``) for one viewport, kept sparse (the
    drawn pixels ``idx`` only) in fields that add up over partitions: ``count``;
    ``acc`` ``[count, R, G, B]`` sums and ``slots`` (categories); ``c`` valid values and
    ``v`` their sum, maximum or minimum (``reduction``), ``n`` points drawn (numbers)."""
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
        value = {"max": ds.max, "min": ds.min}.get(reduction, ds.sum)("a")
        agg = canvas.points(df, "x", "y", ds.summary(n=ds.count(), c=ds.count("a"), v=value))
        c = np.asarray(agg["c"].data, np.float64).reshape(-1)
        idx = np.flatnonzero(c)
        v = np.asarray(agg["v"].data, np.float64).reshape(-1)[idx]
        return {"n_pixels": n_pixels, "idx": idx, "c": c[idx], "v": v,
                "n": int(np.asarray(agg["n"].data).sum()), "reduction": reduction}  # fmt: skip
    counts = np.asarray(canvas.points(df, "x", "y", ds.count()).data, np.uint32).reshape(-1)
    idx = np.flatnonzero(counts)
    return {"n_pixels": n_pixels, "idx": idx, "count": counts[idx]}


_PIXEL_FIELDS = ("count", "acc", "c", "v")


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up sparse partition aggregates pixel by pixel (``v``: its max or min for those).

    Through a dense buffer: a partition's pixels are unique, so ``buf[idx] += values``
    is exact, and it costs one pass over the frame instead of a sort of every pixel.
    """
    out = dict(parts[0])
    n_pixels = int(out["n_pixels"])
    reduction = out.get("reduction", "mean")
    seen = np.zeros(n_pixels, bool)
    for part in parts:
        seen[part["idx"]] = True
    out["idx"] = np.flatnonzero(seen)
    for key in _PIXEL_FIELDS:
        if key not in out:
            continue
        first = parts[0][key]
        buf = np.zeros((n_pixels, *first.shape[1:]), first.dtype)
        extreme = key == "v" and reduction in ("max", "min")
        if extreme:
            buf[:] = -np.inf if reduction == "max" else np.inf
        for part in parts:
            if extreme:
                pick = np.maximum if reduction == "max" else np.minimum
                buf[part["idx"]] = pick(buf[part["idx"]], part[key])
            else:
                buf[part["idx"]] += part[key]
        out[key] = buf[out["idx"]]
    for key in ("slots", "n"):
        if key in out:
            out[key] = sum(p[key] for p in parts)
    return out


def _aggregate_parts(
    parts: list[pd.DataFrame], keeps: list[pd.Series | None], options: dict[str, Any],
    vp: tuple[float, float, float, float, int, int], kind: str,
    rgb: NDArray[np.uint32] | None, reduction: str,
) -> dict[str, Any]:  # fmt: skip
    """The frame's rows of several partitions of one worker, aggregated and added up in
    one task: a frame costs a task per worker, not three per partition."""
    aggs = []
    for part, keep in zip(parts, keeps, strict=True):
        rows = tasks.frame_rows(part, keep, **options)
        aggs.append(_aggregate(rows, vp, kind, rgb, reduction))
    return _combine(aggs)


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
    groups: list[tuple[list[Any], list[Any], str | None]] | None = None,
    options: dict[str, Any] | None = None,
) -> Layer:
    """Datashader over ``ddf`` (x, y, ``a``: legend slot or float64 value) as one layer.

    ``engine="partitions"`` runs Datashader's pandas backend on each partition in a task
    and adds the aggregates up in a tree on the workers; ``"dask"`` hands ``ddf`` to
    Datashader's dask backend, which pickles and recompiles its numba closures for every
    call (3-6x slower per frame here, docs/benchmarks.md). With ``groups`` (the persisted
    partitions, their masks and the worker that holds them) and ``options`` (for
    ``frame_rows``) instead of ``ddf``: one task per group, on its worker.
    """
    from dask.delayed import delayed

    options = options or {}
    vp = (viewport.x0, viewport.x1, viewport.y0, viewport.y1, viewport.width, viewport.height)
    rgb = (
        _shade.rgb_triples(color.colors)
        if kind == "categorical" and isinstance(color, CategoricalColor)
        else None
    )
    reduction = color.reduction if isinstance(color, NumericColor) else "mean"
    if kind == "numeric" and not isinstance(color, NumericColor):
        kind = ""
    if groups is not None:
        jobs = []
        for parts, keeps, worker in groups:
            with tasks.placed(worker):
                jobs.append(
                    delayed(_aggregate_parts)(parts, keeps, options, vp, kind, rgb, reduction)
                )
        agg = client.compute(_tree(jobs), sync=True, retries=RETRIES)
    elif engine == "dask":
        agg = _aggregate(ddf, vp, kind, rgb, reduction)
    else:
        jobs = [delayed(_aggregate)(p, vp, kind, rgb, reduction) for p in ddf.to_delayed()]
        agg = client.compute(_tree(jobs), sync=True, retries=RETRIES)
    h, w = viewport.height, viewport.width
    if "acc" in agg and isinstance(color, CategoricalColor):
        acc = _dense(agg, "acc", h * w, np.uint64).reshape(h, w, 4)
        if int(acc[..., 0].max(initial=0)) <= (2**32 - 1) // 255:
            acc = acc.astype(np.uint32)  # as the in-process sums, so one kernel serves both
        # The colouring's codes are its legend slots here (``ClusterPoints.coloring``).
        slot_counts = np.asarray(agg["slots"], np.int64).reshape(-1)
        if slot_counts.size == 0:
            slot_counts = np.zeros(len(color.slot_of_code), np.int64)
        return category_layer(acc, slot_counts, color, how, min_alpha)
    if "c" in agg and isinstance(color, NumericColor):
        c = _dense(agg, "c", h * w, np.float64)
        v = _dense(agg, "v", h * w, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(c > 0, v / c if reduction == "mean" else v, np.nan)
        return numeric_layer(values.reshape(h, w), int(agg["n"]), color, None)
    counts = _dense(agg, "count", h * w, np.uint32).reshape(h, w)
    return count_layer(counts, how, None)
