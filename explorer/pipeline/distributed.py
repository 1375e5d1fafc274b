"""Building on a Dask cluster: ``explorer build ... --dask ADDRESS`` or ``--dask local:N``.

The stages that grow with n run as tasks, each calling the same pure compute functions
the in-process build calls, on row shards (or kNN partitions) of the store's arrays:

- pca, knn (dask_vectors.py): the same bytes as in-process; above ``exact_limit``
  points the kNN graph from overlapping k-means partitions.
- umap, largevis (dask_layouts.py): up to ``layout_sample`` points the in-process layout
  (UMAP fitted on one worker; LargeVis in this process); above, fitted on a sample and
  the other points placed and refined tile by tile (compute/placement.py).
- trust, intrinsic, outliers (dask_analytic.py): per shard; the same numbers.

The other stages (validate, errors, hmds, hierarchy, slices, thumbs) run in this process
as without ``--dask``. Each task's result is checkpointed in the stage's scratch folder as
it arrives (dask_jobs.py), so a rerun after a crash or a lost cluster redoes only
unfinished shards; a worker lost mid-task costs only its tasks, which Dask reruns on the
others (every input is held by the scheduler, never only by one worker).

This module maps stage names to their cluster versions and turns a lost cluster into one
line; the connection and its options are in dask_cluster.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from explorer.pipeline.dask_analytic import run_intrinsic, run_outliers, run_trust
from explorer.pipeline.dask_cluster import (
    ClusterError,
    DaskCluster,
    DaskOptions,
    checkpoint_count,
    open_cluster,
    reason,
    remove_scratch,
    scratch_folder,
)
from explorer.pipeline.dask_jobs import cluster_of, stage_seed
from explorer.pipeline.dask_layouts import (
    largevis_on_cluster,
    largevis_params,
    run_largevis,
    run_umap,
    umap_params,
)
from explorer.pipeline.dask_vectors import knn_params, run_knn, run_pca
from explorer.pipeline.stage import BuildContext, Stage, StageResult

__all__ = [
    "ClusterError",
    "DaskCluster",
    "DaskOptions",
    "on_cluster",
    "open_cluster",
    "remove_scratch",
    "scratch_folder",
    "stage_seed",
]


# stage name -> (run on the cluster, extra key params: where the algorithm differs)
def _same(ctx: BuildContext) -> dict[str, Any]:
    return {}


_Run = Callable[[BuildContext], StageResult]
_ON_CLUSTER: dict[str, tuple[_Run, Callable[[BuildContext], dict[str, Any]]]] = {
    "pca": (run_pca, _same),
    "knn": (run_knn, knn_params),
    "umap": (run_umap, umap_params),
    "largevis": (run_largevis, largevis_params),
    "trust": (run_trust, _same),
    "intrinsic": (run_intrinsic, _same),
    "outliers": (run_outliers, _same),
}


# stages that go to the cluster only in some builds: name -> whether this one
_WHEN: dict[str, Callable[[BuildContext], bool]] = {"largevis": largevis_on_cluster}


def on_cluster(stage: Stage, ctx: BuildContext) -> Stage | None:
    """The stage as run on the cluster, or None for stages that run in this process.

    Its params gain entries only where the cluster's algorithm differs from the
    in-process one (a sampled layout, a partitioned kNN graph): elsewhere the key is the
    same, so a store built either way is reused by the other.
    """
    found = _ON_CLUSTER.get(stage.name)
    when = _WHEN.get(stage.name)
    if found is None or (when is not None and not when(ctx)):
        return None
    run, extra = found

    def params(ctx: BuildContext) -> dict[str, Any]:
        return {**stage.params(ctx), **extra(ctx)}

    def guarded(ctx: BuildContext) -> StageResult:
        return _guard(ctx, stage.name, run)

    return dataclasses.replace(stage, run=guarded, params=params)


def _guard(ctx: BuildContext, name: str, run: Callable[[BuildContext], StageResult]) -> StageResult:
    """Turn a lost cluster into one line that says the build can be resumed."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    cluster = cluster_of(ctx)
    try:
        return run(ctx)
    except KilledWorker as exc:
        msg = (
            f"stage {name!r}: a task was running on every worker that died under it "
            f"({reason(exc)}); the workers may be short of memory: lower --dask shard "
            "sizes or add memory, then rerun the same command to resume"
        )
        raise ClusterError(msg) from None
    except (CancelledError, CommClosedError, OSError, TimeoutError) as exc:
        if isinstance(exc, OSError) and cluster.client.status == "running":
            raise
        kept = checkpoint_count(ctx.scratch)
        msg = (
            f"the Dask cluster at {cluster.label} went away during stage {name!r} "
            f"({reason(exc) or type(exc).__name__}); finished stages and {kept} finished "
            "shards are kept: rerun the same command to resume"
        )
        raise ClusterError(msg) from None
