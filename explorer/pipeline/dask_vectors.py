"""PCA and the kNN graph on the cluster.

- pca: the moments of each row chunk on the cluster, summed in row order here, so the
  axes and vectors are exactly the in-process ones; then the projection per shard.
- knn: below ``exact_limit`` points the exact graph per block of query rows (exactly the
  in-process graph). Above, k-means partitions with each point in its ``overlap`` nearest
  (DiskANN's partitioned build), ``knn_graph`` per partition, and for each point the best
  k among its partitions' candidates; the recall is measured as in-process.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from explorer.compute.kmeans import kmeans
from explorer.compute.knn import (
    EXACT_LIMIT,
    KnnGraph,
    exact_neighbors,
    knn_graph,
    prepare_vectors,
    put_self_first,
)
from explorer.compute.knn_merge import merge_candidates, nearest_centres_m, partition_members
from explorer.compute.pca import check_components, chunk_moments, pca_axes, pca_project
from explorer.pipeline.core_stages import knn_result
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

# k-means for the kNN partitions runs on at most this many sampled points.
PARTITION_FIT_SAMPLE = 50_000


# --- task bodies: module-level functions, so workers import them by name


def _task_moments(block: np.ndarray, chunk: int) -> dict[str, np.ndarray]:
    parts = [chunk_moments(block[s : s + chunk]) for s in range(0, len(block), chunk)]
    return {"sums": np.stack([p[0] for p in parts]), "grams": np.stack([p[1] for p in parts])}


def _task_project(block: np.ndarray, chunk: int, axes: Any) -> dict[str, np.ndarray]:
    out = [pca_project(block[s : s + chunk], axes) for s in range(0, len(block), chunk)]
    return {"vectors": np.concatenate(out)}


def _task_exact(queries: np.ndarray, xp: np.ndarray, k: int, metric: str) -> dict[str, np.ndarray]:
    idx, dist = exact_neighbors(queries, xp, k, metric)
    return {"indices": idx.astype(np.int32), "distances": dist.astype(np.float32)}


def _task_assign(block: np.ndarray, centres: np.ndarray, m: int) -> dict[str, np.ndarray]:
    return {"assign": nearest_centres_m(block, centres, m)}


def _task_partition(
    xp_part: np.ndarray, members: np.ndarray, k: int, metric: str, knn: dict[str, Any]
) -> dict[str, np.ndarray]:
    # Vectors arrive prepared (unit rows for cosine): euclidean on them orders as cosine.
    graph = knn_graph(xp_part, k, metric, **knn)
    return {
        "rows": members,
        "indices": members[graph.indices].astype(np.int32),
        "distances": graph.distances,
    }


def run_pca(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.pca
    assert cfg.n_components is not None
    x = ctx.array("validate", "vectors")
    n, d = x.shape
    check_components(cfg.n_components, d)
    chunk = cfg.chunk_rows
    shards = row_shards(n, ctx.cluster.options.shard_rows, align=chunk)
    moments = per_shard(
        ctx, "moments", _task_moments, shards, lambda a, b: (Rows(x, a, b), chunk), (0.0, 0.5)
    )
    sums = np.zeros(d, dtype=np.float64)
    gram = np.zeros((d, d), dtype=np.float64)
    # in row order, chunk by chunk: exactly pca_reduce's sums
    for s, g in zip(moments["sums"], moments["grams"], strict=True):
        sums += s
        gram += g
    axes = pca_axes(sums, gram, n, cfg.n_components)
    projected = per_shard(
        ctx, "project", _task_project, shards, lambda a, b: (Rows(x, a, b), chunk, axes), (0.5, 1)
    )
    total = axes.total_variance
    kept = float(axes.explained_variance.sum()) / total if total > 0 else 1.0
    return StageResult(
        arrays={
            "vectors": projected["vectors"],
            "components": axes.components.astype(np.float32),
            "mean": axes.mean.astype(np.float32),
            "explained_variance": axes.explained_variance,
        },
        summary={"n_components": cfg.n_components, "variance_kept": round(min(kept, 1.0), 4)},
    )


def _knn_exact_block(n: int) -> int:
    # The in-process exact graph works in blocks of this many query rows; shards start
    # on its multiples so every block multiplies the same matrices (same rounding).
    return max(1, min(4096, (32 * 1024 * 1024) // max(n, 1)))


def run_knn(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.knn
    opts: DaskOptions = ctx.cluster.options
    x = ctx.vectors()
    n = x.shape[0]
    k = min(cfg.n_neighbors, n)
    xp = prepare_vectors(np.asarray(x), cfg.metric)
    if n <= opts.exact_limit:
        shards = row_shards(n, opts.shard_rows, align=_knn_exact_block(n))
        whole = submit(cluster_of(ctx).client, np.asarray, xp)  # one copy, rerunnable
        parts = per_shard(
            ctx,
            "exact",
            _task_exact,
            shards,
            lambda a, b: (Rows(xp, a, b), whole, k, cfg.metric),
            (0.0, 0.8),
        )
        whole.release()
        indices, distances = parts["indices"], parts["distances"]
        put_self_first(indices, distances)
        graph = KnnGraph(indices, distances, "exact", {"n_neighbors": k, "metric": cfg.metric})
        return knn_result(ctx, x, graph)
    graph = _sharded_graph(ctx, xp, k)
    advice = (
        f"raise --knn-build-factor or make the partitions larger (now about "
        f"{opts.partition_rows:,} points, each point in {opts.overlap})"
    )
    return knn_result(ctx, x, graph, advice)


def _partition_count(n: int, opts: DaskOptions) -> int:
    return max(opts.overlap + 1, math.ceil(n * opts.overlap / opts.partition_rows))


def _sharded_graph(ctx: BuildContext, xp: np.ndarray, k: int) -> KnnGraph:
    cfg = ctx.config.knn
    opts: DaskOptions = ctx.cluster.options
    n = xp.shape[0]
    rng = np.random.default_rng(stage_seed(ctx))
    fit_rows = np.sort(rng.choice(n, size=min(n, PARTITION_FIT_SAMPLE), replace=False))
    centres = kmeans(xp[fit_rows], _partition_count(n, opts), rng)
    shards = row_shards(n, opts.shard_rows)
    assign = per_shard(
        ctx,
        "assign",
        _task_assign,
        shards,
        lambda a, b: (Rows(xp, a, b), centres, opts.overlap),
        (0.0, 0.1),
    )["assign"]
    members = partition_members(assign, centres.shape[0])
    knn_opts = {
        "seed": ctx.config.seed,
        "n_iters": cfg.n_iters,
        "max_candidates": cfg.max_candidates,
        "n_trees": cfg.n_trees,
        "build_factor": cfg.build_factor,
        "exact_limit": opts.exact_limit,
    }
    parts = run_jobs(
        ctx,
        "partition",
        _task_partition,
        [job(Rows(xp, rows), rows, k, cfg.metric, knn_opts) for rows in members if len(rows)],
        (0.1, 0.7),
    )
    m = assign.shape[1]
    cand_idx = np.full((n, m * k), -1, dtype=np.int32)
    cand_dist = np.full((n, m * k), np.inf, dtype=np.float32)
    filled = np.zeros(n, dtype=np.int64)
    for part in parts:
        rows, kk = part["rows"], part["indices"].shape[1]
        slot = filled[rows]
        cols = slot[:, None] * k + np.arange(kk)[None, :]
        cand_idx[rows[:, None], cols] = part["indices"]
        cand_dist[rows[:, None], cols] = part["distances"]
        filled[rows] += 1
    indices, distances, count = merge_candidates(cand_idx, cand_dist, k)
    short = np.flatnonzero(count < k)
    if short.size:  # tiny partitions gave fewer than k candidates: exact for those rows
        idx, dist = exact_neighbors(xp[short], xp, k, cfg.metric)
        indices[short], distances[short] = idx, dist
        put_self_first(indices, distances)
    params: dict[str, int | str] = {
        "n_neighbors": k,
        "metric": cfg.metric,
        "partitions": len(parts),
        "overlap": m,
        "largest_partition": max(len(r) for r in members),
    }
    return KnnGraph(indices, distances, "sharded", params)


def knn_params(ctx: BuildContext) -> dict[str, Any]:
    opts: DaskOptions = ctx.cluster.options
    n = ctx.dataset.n_points
    if n <= opts.exact_limit:
        return {} if n <= EXACT_LIMIT else {"exact_limit": opts.exact_limit}
    return {
        "sharded": {
            "partition_rows": opts.partition_rows,
            "overlap": opts.overlap,
            "exact_limit": opts.exact_limit,
        }
    }
