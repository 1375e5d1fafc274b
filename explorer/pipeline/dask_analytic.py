"""Trust, intrinsic dimension and outliers on the cluster: the per-point functions per
shard, the global reductions here; the same numbers as in-process."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from explorer.compute.intrinsic import local_dim_from_parts, local_dim_parts
from explorer.compute.outliers import outlier_scores
from explorer.compute.trust import layout_trust_rows
from explorer.pipeline.analytic_stages import intrinsic_result, outlier_scale, outliers_result
from explorer.pipeline.dask_jobs import Rows, cluster_of, per_shard, row_shards, submit
from explorer.pipeline.stage import BuildContext, StageResult


def _task_trust(coords: np.ndarray, indices: np.ndarray, start: int) -> dict[str, np.ndarray]:
    return {"trust": layout_trust_rows(coords, indices, start)}


def _task_lid(distances: np.ndarray, n_neighbors: int | None) -> dict[str, np.ndarray]:
    inv, valid = local_dim_parts(distances, n_neighbors)
    return {"inv": inv, "valid": valid}


def _task_spread(
    indices: np.ndarray, distances: np.ndarray, t: float, start: int
) -> dict[str, np.ndarray]:
    return {"local": outlier_scores(indices, distances, t, row_offset=start)}


def _trust_args(whole: Any, indices: np.ndarray, a: int, b: int) -> tuple[Any, ...]:
    return (whole, Rows(indices, a, b), a)


def run_trust(ctx: BuildContext) -> StageResult:
    indices, _ = ctx.knn()
    n = indices.shape[0]
    shards = row_shards(n, ctx.cluster.options.shard_rows)
    arrays, provides, summary = {}, {}, {}
    layouts = ctx.layouts()
    for i, (name, coords) in enumerate(layouts.items()):
        whole = submit(cluster_of(ctx).client, np.asarray, np.asarray(coords))
        arrays[name] = per_shard(
            ctx,
            f"trust-{name}",
            _task_trust,
            shards,
            functools.partial(_trust_args, whole, indices),
            (i / len(layouts), (i + 1) / len(layouts)),
        )["trust"]
        whole.release()
        provides[f"trust:{name}"] = name
        summary[f"mean_{name}"] = round(float(arrays[name].mean()), 4)
    return StageResult(arrays=arrays, provides={"scores": provides}, summary=summary)


def run_intrinsic(ctx: BuildContext) -> StageResult:
    _, distances = ctx.knn()
    nn = ctx.config.intrinsic.n_neighbors
    shards = row_shards(distances.shape[0], ctx.cluster.options.shard_rows)
    parts = per_shard(
        ctx, "lid", _task_lid, shards, lambda a, b: (Rows(distances, a, b), nn), (0, 0.3)
    )
    raw = local_dim_from_parts(parts["inv"], parts["valid"])
    return intrinsic_result(ctx, raw)


def run_outliers(ctx: BuildContext) -> StageResult:
    indices, distances = ctx.knn()
    t = outlier_scale(ctx)
    shards = row_shards(indices.shape[0], ctx.cluster.options.shard_rows)
    parts = per_shard(
        ctx,
        "spread",
        _task_spread,
        shards,
        lambda a, b: (Rows(indices, a, b), Rows(distances, a, b), t, a),
        (0.0, 0.2),
    )
    return outliers_result(ctx, parts["local"], t)
