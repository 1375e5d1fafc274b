"""UMAP and LargeVis on the cluster: fitted on a sample, the other points placed.

Up to ``layout_sample`` points a layout is the in-process one (UMAP fitted on one
worker, LargeVis in the building process). Above, both take the same route
(``_placed_layout``): the layout fitted on a sample (its own kNN graph) on one worker;
every other point at the weighted mean of its neighbours (``propagate_positions``);
then tiles of that first layout refined one task each by the layout's own optimiser,
the rest held still (compute/placement.py says why tiles, and why all points move).

LargeVis's tiles run LargeVis's own schedule (its samples per point and rate) from the
placed positions, on the first layout stretched by 3 sqrt(n / sample): the sample's
layout is drawn at RMS 10 whatever its size, and the placed points need room.
Trust, 10 tiles, a 20% sample, 2,000 samples a point (``explorer synth``'s mixture drawn
in 3 dimensions and rotated into 16, as benchmarks/scale_build.py --intrinsic 3): 20,000
points, LargeVis on all 0.551; stretched by 1 sqrt(5) 0.40 (500 samples), 2 sqrt(5) 0.49,
3 sqrt(5) 0.530, 4 sqrt(5) 0.52 (500 samples), 16 sqrt(5) 0.45-0.49. With tiles of 5,000
points (4 tiles) 0.571 at 3 sqrt(5); with tiles of 500 (5,000 points) 0.535 against 0.600:
points near a tile's edge cannot move past its fixed neighbours, so tiles should hold
thousands of points (shard_rows). UMAP's optimiser with LargeVis's kernel (a = b = 1,
gamma 7) in place of LargeVis's reached only 0.30-0.33 against 0.344 (5-D mixture).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.compute.knn import KnnGraph, knn_graph
from explorer.compute.largevis import (
    largevis_layout,
    scale_layout,
)
from explorer.compute.placement import (
    largevis_refine,
    membership_weights,
    propagate_positions,
    refine_positions,
    spatial_tiles,
)
from explorer.compute.umap_layout import umap_layout
from explorer.pipeline.dask_cluster import DaskOptions
from explorer.pipeline.dask_jobs import (
    Rows,
    cluster_of,
    job,
    per_shard,
    row_shards,
    run_jobs,
    stage_seed,
    submit,
)
from explorer.pipeline.stage import BuildContext, StageResult

# LargeVis's first layout is stretched by this times sqrt(n / sample) before its
# refinement (the module docstring has the measurements).
LARGEVIS_STRETCH = 3.0

# --- task bodies: module-level functions, so workers import them by name


def _task_weights(indices: np.ndarray, distances: np.ndarray) -> dict[str, np.ndarray]:
    return {"weights": membership_weights(indices, distances)}


def _task_umap_all(
    x: np.ndarray, indices: np.ndarray, distances: np.ndarray, umap: dict[str, Any], metric: str
) -> dict[str, np.ndarray]:
    return {"coords": umap_layout(x, indices, distances, metric=metric, **umap)}


def _umap_of(x: np.ndarray, graph: KnnGraph, metric: str, opts: dict[str, Any]) -> np.ndarray:
    return umap_layout(x, graph.indices, graph.distances, metric=metric, **opts)


def _largevis_of(x: np.ndarray, graph: KnnGraph, metric: str, opts: dict[str, Any]) -> np.ndarray:
    return largevis_layout(graph.indices, graph.distances, **opts)


def _task_fit(
    x: np.ndarray, k: int, metric: str, layout: Callable[..., np.ndarray], opts: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The sample's own kNN graph, then ``layout`` (``_umap_of``, ``_largevis_of``) on it."""
    graph = knn_graph(x, k, metric, seed=opts["seed"])
    return {"coords": layout(x, graph, metric, opts)}


def _task_refine(
    coords: np.ndarray,
    rows: np.ndarray,
    indices: np.ndarray,
    per_row: np.ndarray,
    refine: Callable[..., np.ndarray],
    opts: dict[str, Any],
) -> dict[str, np.ndarray]:
    """One tile moved by ``refine`` (``refine_positions``, ``largevis_refine``)."""
    return {"coords": refine(coords, rows, indices, per_row, **opts)}


# --- the placed route, shared by both layouts


@dataclass(frozen=True)
class _Route:
    """How one layout is fitted on the sample and refined per tile.

    fit(x, graph, metric, fit_opts) lays out the sample on its own kNN graph;
    refine(coords, rows, indices, per_row, **refine_opts) moves one tile, ``per_row``
    being the rows' membership weights (UMAP) or kNN distances (LargeVis, which weighs
    its edges itself). ``stretch(n, sample)`` scales the first layout before refining.
    """

    fit: Callable[..., np.ndarray]
    fit_opts: dict[str, Any]
    refine: Callable[..., np.ndarray]
    refine_opts: dict[str, Any]
    refine_by_weights: bool
    stretch: Callable[[int, int], float] = lambda n, s: 1.0


def _first_layout(
    fitted: np.ndarray,
    sample: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """The sample at its fitted places, the rest at their neighbours' weighted means."""
    n = indices.shape[0]
    coords = np.zeros((n, 2), dtype=np.float32)
    coords[sample] = fitted
    fixed = np.zeros(n, dtype=bool)
    fixed[sample] = True
    coords, placed = propagate_positions(coords, fixed, indices, weights)
    unreached = np.flatnonzero(~placed)
    if unreached.size:  # parts of the graph with no sampled point: near the centre
        centre = np.median(coords[placed], axis=0)
        scale = 0.01 * float(np.ptp(coords[placed], axis=0).max() or 1.0)
        jitter = rng.normal(0.0, scale, size=(unreached.size, 2))
        coords[unreached] = (centre + jitter).astype(np.float32)
    return coords, int(unreached.size)


def _placed_layout(ctx: BuildContext, route: _Route) -> tuple[np.ndarray, dict[str, Any]]:
    opts: DaskOptions = ctx.cluster.options
    indices, distances = ctx.knn()
    x = ctx.vectors()
    n, k = indices.shape
    seed = stage_seed(ctx)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=opts.layout_sample, replace=False))
    fit_job = job(Rows(x, sample), k, ctx.config.knn.metric, route.fit, route.fit_opts)
    (fit,) = run_jobs(ctx, "fit", _task_fit, [fit_job], (0.0, 0.5))
    weights = per_shard(
        ctx,
        "weights",
        _task_weights,
        row_shards(n, opts.shard_rows),
        lambda a, b: (Rows(indices, a, b), Rows(distances, a, b)),
        (0.5, 0.6),
    )["weights"]
    coords, unreached = _first_layout(fit["coords"], sample, indices, weights, rng)
    coords *= np.float32(route.stretch(n, sample.size))
    whole = submit(cluster_of(ctx).client, np.asarray, coords)
    tiles = spatial_tiles(coords, math.ceil(n / opts.shard_rows))
    jobs = [
        job(
            whole,
            rows,
            Rows(indices, rows),
            weights[rows] if route.refine_by_weights else Rows(distances, rows),
            route.refine,
            {**route.refine_opts, "seed": seed + j},
        )
        for j, rows in enumerate(tiles)
    ]
    moved = run_jobs(ctx, "refine", _task_refine, jobs, (0.6, 1.0))
    whole.release()
    for rows, part in zip(tiles, moved, strict=True):
        coords[rows] = part["coords"]
    summary = {
        "fit_sample": int(sample.size),
        "placed": int(n - sample.size),
        "unreached": unreached,
    }
    return coords, summary


def _is_placed(ctx: BuildContext) -> bool:
    opts: DaskOptions = ctx.cluster.options
    return ctx.dataset.n_points > opts.layout_sample


# --- the stages


def run_umap(ctx: BuildContext) -> StageResult:
    """UMAP: fitted on one worker, or on a sample with the rest placed."""
    cfg = ctx.config.umap
    umap_opts = {
        "min_dist": cfg.min_dist,
        "spread": cfg.spread,
        "n_epochs": cfg.n_epochs,
        "seed": ctx.config.seed,
    }
    metric = ctx.config.knn.metric
    if not _is_placed(ctx):  # the whole layout on one worker: the in-process one
        indices, distances = ctx.knn()
        n = indices.shape[0]
        x = ctx.vectors()
        fit_all = job(Rows(x, 0, n), Rows(indices, 0, n), Rows(distances, 0, n), umap_opts, metric)
        (whole,) = run_jobs(ctx, "fit", _task_umap_all, [fit_all])
        return StageResult(arrays={"coords": whole["coords"]})
    epochs = ctx.cluster.options.refine_epochs
    route = _Route(
        fit=_umap_of,
        fit_opts=umap_opts,
        refine=refine_positions,
        refine_opts={"n_epochs": epochs, "min_dist": cfg.min_dist, "spread": cfg.spread},
        refine_by_weights=True,
    )
    coords, summary = _placed_layout(ctx, route)
    return StageResult(arrays={"coords": coords}, summary={**summary, "refine_epochs": epochs})


def umap_params(ctx: BuildContext) -> dict[str, Any]:
    """The key's extra params: the sample and the refinement, when placed."""
    if not _is_placed(ctx):
        return {}
    opts: DaskOptions = ctx.cluster.options
    return {"placed": {"fit_sample": opts.layout_sample, "refine_epochs": opts.refine_epochs}}


def _largevis_stretch(n: int, sample: int) -> float:
    return LARGEVIS_STRETCH * math.sqrt(n / sample)


def run_largevis(ctx: BuildContext) -> StageResult:
    """LargeVis fitted on a sample, the rest placed and refined by LargeVis's optimiser.

    Runs only above ``layout_sample`` points (``runs_on_cluster``); below, the in-process
    stage runs in the building process.
    """
    cfg = ctx.config.largevis
    weighs = {"perplexity": cfg.perplexity, "n_negatives": cfg.n_negatives, "gamma": cfg.gamma}
    fit_opts = {
        **weighs,
        "samples_per_point": cfg.samples_per_point,
        "learning_rate": cfg.learning_rate,
        "seed": stage_seed(ctx),
        # Hogwild threads are not bit-reproducible: a --seed build runs on one thread.
        "parallel": cfg.parallel and not ctx.config.reproducible,
    }
    route = _Route(
        fit=_largevis_of,
        fit_opts=fit_opts,
        refine=largevis_refine,
        # the tile runs LargeVis's own schedule from the placed positions
        refine_opts={
            **weighs,
            "samples_per_point": cfg.samples_per_point,
            "learning_rate": cfg.learning_rate,
        },
        refine_by_weights=False,
        stretch=_largevis_stretch,
    )
    coords, summary = _placed_layout(ctx, route)
    return StageResult(arrays={"coords": scale_layout(coords)}, summary=summary)


def largevis_params(ctx: BuildContext) -> dict[str, Any]:
    """The key's extra params (LargeVis runs on the cluster only when placed)."""
    opts: DaskOptions = ctx.cluster.options
    return {"placed": {"fit_sample": opts.layout_sample, "stretch": LARGEVIS_STRETCH}}


def largevis_on_cluster(ctx: BuildContext) -> bool:
    """LargeVis leaves the building process only when it is placed."""
    return _is_placed(ctx)
