"""Building on a Dask cluster: ``explorer build ... --dask ADDRESS`` or ``--dask local:N``.

The stages that grow with n run as tasks, each calling the same pure compute functions
the in-process build calls, on row shards (or kNN partitions) of the store's arrays:

- pca: the moments of each row chunk on the cluster, summed in row order here, so the
  axes and vectors are exactly the in-process ones; then the projection per shard.
- knn: below ``exact_limit`` points the exact graph per block of query rows (exactly the
  in-process graph). Above, k-means partitions with each point in its ``overlap`` nearest
  (DiskANN's partitioned build), ``knn_graph`` per partition, and for each point the best
  k among its partitions' candidates; the recall is measured as in-process.
- umap: up to ``layout_sample`` points fitted on one worker (the in-process layout);
  above, fitted on a sample and the other points placed shard by shard
  (compute/placement.py: UMAP transform's weighted mean and short refinement).
- trust, intrinsic, outliers: their per-point functions per shard, the global
  reductions here; the same numbers as in-process.

The other stages (validate, errors, largevis, hmds, hierarchy, slices, thumbs) run in
this process as without ``--dask``. Each task's result is checkpointed in the stage's
scratch folder as it arrives, so a rerun after a crash or a lost cluster redoes only
unfinished shards; a worker lost mid-task costs only its tasks, which Dask reruns on the
others (every input is held by the scheduler, never only by one worker).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.compute.intrinsic import local_dim_from_parts, local_dim_parts
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
from explorer.compute.outliers import outlier_scores
from explorer.compute.pca import check_components, chunk_moments, pca_axes, pca_project
from explorer.compute.placement import (
    membership_weights,
    propagate_positions,
    refine_positions,
    spatial_tiles,
)
from explorer.compute.trust import layout_trust_rows
from explorer.compute.umap_layout import umap_layout
from explorer.errors import ConfigError, ExplorerError
from explorer.pipeline.analytic_stages import intrinsic_result, outlier_scale, outliers_result
from explorer.pipeline.core_stages import knn_result
from explorer.pipeline.stage import BuildContext, Stage, StageResult

SCRATCH_PREFIX = ".partial-"
LOCAL_PREFIX = "local:"
# k-means for the kNN partitions runs on at most this many sampled points.
PARTITION_FIT_SAMPLE = 50_000
# Jobs in flight per worker: enough to keep each busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2


class ClusterError(ExplorerError):
    """The Dask cluster cannot be reached, has no workers, or went away during a build."""


@dataclass(frozen=True)
class DaskOptions:
    """How a build uses the cluster (``--dask``); defaults suit 1M–100M points.

    address        : a scheduler address (``tcp://host:8786``) or ``local:N`` for a
                     LocalCluster of N single-threaded worker processes started here.
    shard_rows     : rows per task of the row-wise stages (pca, trust, intrinsic, ...).
    partition_rows : about how many points a kNN partition holds (approximate graphs).
    overlap        : partitions each point joins (its nearest k-means centres).
    layout_sample  : points a layout is fitted on; the rest are placed.
    refine_epochs  : optimiser epochs of the placed layout, tile by tile (60 measured in
                     compute/placement.py).
    exact_limit    : up to this many points the kNN graph is exact (as in-process).
    timeout        : seconds to wait for the scheduler and a first worker.
    """

    address: str
    shard_rows: int = 100_000
    partition_rows: int = 1_000_000
    overlap: int = 2
    layout_sample: int = 1_000_000
    refine_epochs: int = 60
    exact_limit: int = EXACT_LIMIT
    timeout: float = 10.0

    def check(self) -> None:
        """Refuse values that cannot work, naming the option."""
        for name, low in (
            ("shard_rows", 1),
            ("partition_rows", 2),
            ("overlap", 1),
            ("layout_sample", 10),
            ("refine_epochs", 0),
            ("exact_limit", 0),
        ):
            if getattr(self, name) < low:
                msg = f"--dask {name.replace('_', '-')} must be at least {low}"
                raise ConfigError(msg)
        if self.address.startswith(LOCAL_PREFIX):
            _local_workers(self.address)


def _local_workers(address: str) -> int:
    text = address[len(LOCAL_PREFIX) :]
    if not text.isdigit() or int(text) < 1:
        msg = f"--dask {address!r}: write local:N with N the number of workers, e.g. local:2"
        raise ConfigError(msg)
    return int(text)


class DaskCluster:
    """A connected Dask client (and the LocalCluster it started, if any)."""

    def __init__(self, client: Any, label: str, local: Any = None) -> None:
        self.client = client
        self.label = label
        self.local = local
        self.options: DaskOptions = DaskOptions(label)

    @property
    def n_workers(self) -> int:
        """Workers the scheduler knows now."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def describe(self) -> dict[str, Any]:
        """What a stage run on the cluster records in its params."""
        return {"dask": self.label, "workers": self.n_workers}

    def close(self) -> None:
        """Close the client, and the LocalCluster if this build started it."""
        with contextlib.suppress(Exception):  # BLE001: closing a cluster that already died
            self.client.close()
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close()


@contextlib.contextmanager
def open_cluster(options: DaskOptions) -> Iterator[DaskCluster]:
    """Connect to the scheduler (or start ``local:N``); a one-line error if it fails."""
    options.check()
    from distributed import Client, LocalCluster

    if options.address.startswith(LOCAL_PREFIX):
        n = _local_workers(options.address)
        local = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        cluster = DaskCluster(Client(local), options.address, local)  # type: ignore[no-untyped-call]
    else:
        try:
            client = Client(options.address, timeout=options.timeout)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            msg = (
                f"cannot reach the Dask scheduler at {options.address} "
                f"({_reason(exc)}); start it or check --dask"
            )
            raise ClusterError(msg) from None
        cluster = DaskCluster(client, options.address)
    cluster.options = options
    try:
        try:
            cluster.client.wait_for_workers(1, timeout=options.timeout)
        except (OSError, TimeoutError):
            msg = (
                f"the Dask scheduler at {options.address} has no workers "
                f"(waited {options.timeout:g} s); start some with `dask worker ADDRESS`"
            )
            raise ClusterError(msg) from None
        yield cluster
    finally:
        cluster.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# --- running jobs on the cluster, with checkpoints -------------------------------------


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        path.unlink(missing_ok=True)  # a torn file: redo that job
        return None


def _submit(client: Any, fn: Callable[..., Any], *args: Any) -> Any:
    # Arguments go inside the task, so the scheduler holds them and can rerun the task on
    # another worker when one dies (scattered data would die with its worker).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Large object of size")
        return client.submit(fn, *args, pure=False)


def run_jobs(
    ctx: BuildContext,
    tag: str,
    fn: Callable[..., dict[str, np.ndarray]],
    jobs: Sequence[Callable[[], tuple[Any, ...]]],
    progress: tuple[float, float] = (0.0, 1.0),
) -> list[dict[str, np.ndarray]]:
    """``fn(*job())`` for every job on the cluster; each result checkpointed as it arrives.

    A job whose checkpoint exists (an earlier, interrupted run of the same stage with the
    same key) is read back instead of run. ``job()`` builds the arguments only when the
    job is sent, so at most a few jobs' data per worker are in flight.
    """
    from distributed import as_completed

    cluster = _cluster(ctx)
    folder = ctx.scratch
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, np.ndarray] | None] = [None] * len(jobs)
    todo = []
    for i in range(len(jobs)):
        path = folder / f"{tag}-{i:05d}.npz"
        found = _load(path) if path.exists() else None
        if found is None:
            todo.append(i)
        results[i] = found
    lo, hi = progress
    done = len(jobs) - len(todo)

    def report() -> None:
        ctx.progress(lo + (hi - lo) * done / max(len(jobs), 1))

    report()
    window = max(1, IN_FLIGHT_PER_WORKER * max(cluster.n_workers, 1))
    queue = iter(todo)
    futures: dict[Any, int] = {}
    for i in queue:
        futures[_submit(cluster.client, fn, *jobs[i]())] = i
        if len(futures) >= window:
            break
    pool = as_completed(list(futures))  # type: ignore[no-untyped-call]
    for fut in pool:
        i = futures.pop(fut)
        result = fut.result()
        fut.release()
        _save(folder / f"{tag}-{i:05d}.npz", result)
        results[i] = result
        done += 1
        report()
        nxt = next(queue, None)
        if nxt is not None:
            new = _submit(cluster.client, fn, *jobs[nxt]())
            futures[new] = nxt
            pool.add(new)  # type: ignore[no-untyped-call]
    out = [r for r in results if r is not None]
    assert len(out) == len(jobs)
    return out


def stage_seed(ctx: BuildContext) -> int:
    """The seed a stage's sampling uses, the same in every rerun until it is stored.

    Without ``--seed`` each run draws its own; a rerun that reads back shards must draw
    the same samples and partitions as the run that wrote them, so the first run's seed
    is kept with the shards.
    """
    folder = ctx.scratch
    assert folder is not None
    path = folder / "seed.json"
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            return int(json.loads(path.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".seed.json.tmp"
    tmp.write_text(json.dumps(ctx.seed))
    tmp.replace(path)
    return ctx.seed


def _cluster(ctx: BuildContext) -> DaskCluster:
    cluster = ctx.cluster
    assert isinstance(cluster, DaskCluster)
    return cluster


def _shards(n: int, rows: int, align: int = 1) -> list[tuple[int, int]]:
    """Row ranges of at most ``rows`` rows, each starting on a multiple of ``align``."""
    step = max(align, (rows // align) * align)
    return [(s, min(s + step, n)) for s in range(0, n, step)]


@dataclass(frozen=True)
class _Rows:
    """Rows ``a:b`` (or the rows listed in ``a``) of an array, read when a job is sent."""

    array: Any
    a: Any
    b: int | None = None

    def read(self) -> np.ndarray:
        sel = slice(self.a, self.b) if self.b is not None else self.a
        return np.ascontiguousarray(self.array[sel])


def _job(*args: Any) -> Callable[[], tuple[Any, ...]]:
    """A job's arguments; ``_Rows`` among them are read only when the job is sent."""
    return functools.partial(_materialise, args)


def _materialise(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.read() if isinstance(a, _Rows) else a for a in args)


# --- task bodies: module-level functions, so workers import them by name ---------------


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


def _task_trust(coords: np.ndarray, indices: np.ndarray, start: int) -> dict[str, np.ndarray]:
    return {"trust": layout_trust_rows(coords, indices, start)}


def _task_lid(distances: np.ndarray, n_neighbors: int | None) -> dict[str, np.ndarray]:
    inv, valid = local_dim_parts(distances, n_neighbors)
    return {"inv": inv, "valid": valid}


def _task_spread(
    indices: np.ndarray, distances: np.ndarray, t: float, start: int
) -> dict[str, np.ndarray]:
    return {"local": outlier_scores(indices, distances, t, row_offset=start)}


def _task_weights(indices: np.ndarray, distances: np.ndarray) -> dict[str, np.ndarray]:
    return {"weights": membership_weights(indices, distances)}


def _task_fit(x: np.ndarray, k: int, metric: str, umap: dict[str, Any]) -> dict[str, np.ndarray]:
    graph = knn_graph(x, k, metric, seed=umap["seed"])
    coords = umap_layout(x, graph.indices, graph.distances, metric=metric, **umap)
    return {"coords": coords}


def _task_refine(
    coords: np.ndarray,
    rows: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    opts: dict[str, Any],
) -> dict[str, np.ndarray]:
    return {"coords": refine_positions(coords, rows, indices, weights, **opts)}


# --- stages on the cluster -------------------------------------------------------------


def _pca(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.pca
    assert cfg.n_components is not None
    x = ctx.array("validate", "vectors")
    n, d = x.shape
    check_components(cfg.n_components, d)
    chunk = cfg.chunk_rows
    shards = _shards(n, ctx.cluster.options.shard_rows, align=chunk)
    moments = run_jobs(
        ctx,
        "moments",
        _task_moments,
        [_job(_Rows(x, a, b), chunk) for a, b in shards],
        (0.0, 0.5),
    )
    sums = np.zeros(d, dtype=np.float64)
    gram = np.zeros((d, d), dtype=np.float64)
    for part in moments:  # in row order, chunk by chunk: exactly pca_reduce's sums
        for s, g in zip(part["sums"], part["grams"], strict=True):
            sums += s
            gram += g
    axes = pca_axes(sums, gram, n, cfg.n_components)
    projected = run_jobs(
        ctx,
        "project",
        _task_project,
        [_job(_Rows(x, a, b), chunk, axes) for a, b in shards],
        (0.5, 1.0),
    )
    total = axes.total_variance
    kept = float(axes.explained_variance.sum()) / total if total > 0 else 1.0
    return StageResult(
        arrays={
            "vectors": np.concatenate([p["vectors"] for p in projected]),
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


def _knn(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.knn
    opts: DaskOptions = ctx.cluster.options
    x = ctx.vectors()
    n = x.shape[0]
    k = min(cfg.n_neighbors, n)
    xp = prepare_vectors(np.asarray(x), cfg.metric)
    if n <= opts.exact_limit:
        shards = _shards(n, opts.shard_rows, align=_knn_exact_block(n))
        whole = _submit(_cluster(ctx).client, np.asarray, xp)  # one copy, rerunnable
        parts = run_jobs(
            ctx,
            "exact",
            _task_exact,
            [_job(_Rows(xp, a, b), whole, k, cfg.metric) for a, b in shards],
            (0.0, 0.8),
        )
        whole.release()
        indices = np.concatenate([p["indices"] for p in parts])
        distances = np.concatenate([p["distances"] for p in parts])
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
    shards = _shards(n, opts.shard_rows)
    assigned = run_jobs(
        ctx,
        "assign",
        _task_assign,
        [_job(_Rows(xp, a, b), centres, opts.overlap) for a, b in shards],
        (0.0, 0.1),
    )
    assign = np.concatenate([p["assign"] for p in assigned])
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
        [_job(_Rows(xp, rows), rows, k, cfg.metric, knn_opts) for rows in members if len(rows)],
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


def _knn_params(ctx: BuildContext) -> dict[str, Any]:
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


def _umap(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.umap
    opts: DaskOptions = ctx.cluster.options
    indices, distances = ctx.knn()
    x = ctx.vectors()
    n, k = indices.shape
    metric = ctx.config.knn.metric
    umap_opts = {
        "min_dist": cfg.min_dist,
        "spread": cfg.spread,
        "n_epochs": cfg.n_epochs,
        "seed": ctx.config.seed,
    }
    if n <= opts.layout_sample:  # the whole layout on one worker: the in-process one
        fit_all = _job(
            _Rows(x, 0, n), _Rows(indices, 0, n), _Rows(distances, 0, n), umap_opts, metric
        )
        (whole,) = run_jobs(ctx, "fit", _task_umap_all, [fit_all])
        return StageResult(arrays={"coords": whole["coords"]})
    seed = stage_seed(ctx)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=opts.layout_sample, replace=False))
    (fit,) = run_jobs(
        ctx,
        "fit",
        _task_fit,
        [_job(_Rows(x, sample), k, metric, umap_opts)],
        (0.0, 0.5),
    )
    shards = _shards(n, opts.shard_rows)
    weights = np.concatenate(
        [
            p["weights"]
            for p in run_jobs(
                ctx,
                "weights",
                _task_weights,
                [_job(_Rows(indices, a, b), _Rows(distances, a, b)) for a, b in shards],
                (0.5, 0.6),
            )
        ]
    )
    coords = np.zeros((n, 2), dtype=np.float32)
    coords[sample] = fit["coords"]
    fixed = np.zeros(n, dtype=bool)
    fixed[sample] = True
    coords, placed = propagate_positions(coords, fixed, indices, weights)
    unreached = np.flatnonzero(~placed)
    if unreached.size:  # parts of the graph with no sampled point: near the centre
        centre = np.median(coords[placed], axis=0)
        scale = 0.01 * float(np.ptp(coords[placed], axis=0).max() or 1.0)
        jitter = rng.normal(0.0, scale, size=(unreached.size, 2))
        coords[unreached] = (centre + jitter).astype(np.float32)
    epochs = opts.refine_epochs
    refine = {
        "n_epochs": epochs,
        "min_dist": cfg.min_dist,
        "spread": cfg.spread,
    }
    whole = _submit(_cluster(ctx).client, np.asarray, coords)
    tiles = spatial_tiles(coords, math.ceil(n / opts.shard_rows))
    jobs = [
        _job(whole, rows, _Rows(indices, rows), weights[rows], {**refine, "seed": seed + j})
        for j, rows in enumerate(tiles)
    ]
    moved = run_jobs(ctx, "refine", _task_refine, jobs, (0.6, 1.0))
    whole.release()
    for rows, part in zip(tiles, moved, strict=True):
        coords[rows] = part["coords"]
    return StageResult(
        arrays={"coords": coords},
        summary={
            "fit_sample": int(sample.size),
            "placed": int(n - sample.size),
            "unreached": int(unreached.size),
            "refine_epochs": epochs,
        },
    )


def _task_umap_all(
    x: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    umap: dict[str, Any],
    metric: str,
) -> dict[str, np.ndarray]:
    return {"coords": umap_layout(x, indices, distances, metric=metric, **umap)}


def _umap_params(ctx: BuildContext) -> dict[str, Any]:
    opts: DaskOptions = ctx.cluster.options
    if ctx.dataset.n_points <= opts.layout_sample:
        return {}
    return {"placed": {"fit_sample": opts.layout_sample, "refine_epochs": opts.refine_epochs}}


def _trust(ctx: BuildContext) -> StageResult:
    indices, _ = ctx.knn()
    n = indices.shape[0]
    shards = _shards(n, ctx.cluster.options.shard_rows)
    arrays, provides, summary = {}, {}, {}
    layouts = ctx.layouts()
    for i, (name, coords) in enumerate(layouts.items()):
        whole = _submit(_cluster(ctx).client, np.asarray, np.asarray(coords))
        parts = run_jobs(
            ctx,
            f"trust-{name}",
            _task_trust,
            [_job(whole, _Rows(indices, a, b), a) for a, b in shards],
            (i / len(layouts), (i + 1) / len(layouts)),
        )
        whole.release()
        arrays[name] = np.concatenate([p["trust"] for p in parts])
        provides[f"trust:{name}"] = name
        summary[f"mean_{name}"] = round(float(arrays[name].mean()), 4)
    return StageResult(arrays=arrays, provides={"scores": provides}, summary=summary)


def _intrinsic(ctx: BuildContext) -> StageResult:
    _, distances = ctx.knn()
    nn = ctx.config.intrinsic.n_neighbors
    shards = _shards(distances.shape[0], ctx.cluster.options.shard_rows)
    parts = run_jobs(
        ctx,
        "lid",
        _task_lid,
        [_job(_Rows(distances, a, b), nn) for a, b in shards],
        (0.0, 0.3),
    )
    raw = local_dim_from_parts(
        np.concatenate([p["inv"] for p in parts]), np.concatenate([p["valid"] for p in parts])
    )
    return intrinsic_result(ctx, raw)


def _outliers(ctx: BuildContext) -> StageResult:
    indices, distances = ctx.knn()
    t = outlier_scale(ctx)
    shards = _shards(indices.shape[0], ctx.cluster.options.shard_rows)
    parts = run_jobs(
        ctx,
        "spread",
        _task_spread,
        [_job(_Rows(indices, a, b), _Rows(distances, a, b), t, a) for a, b in shards],
        (0.0, 0.2),
    )
    return outliers_result(ctx, np.concatenate([p["local"] for p in parts]), t)


# stage name -> (run on the cluster, extra key params: where the algorithm differs)
def _same(ctx: BuildContext) -> dict[str, Any]:
    return {}


_Run = Callable[[BuildContext], StageResult]
_ON_CLUSTER: dict[str, tuple[_Run, Callable[[BuildContext], dict[str, Any]]]] = {
    "pca": (_pca, _same),
    "knn": (_knn, _knn_params),
    "umap": (_umap, _umap_params),
    "trust": (_trust, _same),
    "intrinsic": (_intrinsic, _same),
    "outliers": (_outliers, _same),
}


def on_cluster(stage: Stage) -> Stage | None:
    """The stage as run on the cluster, or None for stages that run in this process.

    Its params gain entries only where the cluster's algorithm differs from the
    in-process one (a sampled layout, a partitioned kNN graph): elsewhere the key is the
    same, so a store built either way is reused by the other.
    """
    found = _ON_CLUSTER.get(stage.name)
    if found is None:
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

    cluster = _cluster(ctx)
    try:
        return run(ctx)
    except KilledWorker as exc:
        msg = (
            f"stage {name!r}: a task was running on every worker that died under it "
            f"({_reason(exc)}); the workers may be short of memory: lower --dask shard "
            "sizes or add memory, then rerun the same command to resume"
        )
        raise ClusterError(msg) from None
    except (CancelledError, CommClosedError, OSError, TimeoutError) as exc:
        if isinstance(exc, OSError) and cluster.client.status == "running":
            raise
        kept = _checkpoints(ctx.scratch)
        msg = (
            f"the Dask cluster at {cluster.label} went away during stage {name!r} "
            f"({_reason(exc) or type(exc).__name__}); finished stages and {kept} finished "
            "shards are kept: rerun the same command to resume"
        )
        raise ClusterError(msg) from None


def _checkpoints(folder: Path | None) -> int:
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix == ".npz")


def scratch_folder(store: Path, stage: str, key: str, cluster: DaskCluster) -> Path:
    """Where a stage run on the cluster keeps its finished shards until it is stored.

    Named by the stage's key and by how the work is cut into jobs (the options other
    than the address), so a rerun only ever reads back shards of the same jobs.
    """
    cut = dataclasses.asdict(cluster.options)
    del cut["address"], cut["timeout"]
    digest = hashlib.sha256(json.dumps([key, cut], sort_keys=True).encode()).hexdigest()
    return store / f"{SCRATCH_PREFIX}{stage}-{digest[:16]}"


def remove_scratch(store: Path, keep: Sequence[Path] = ()) -> None:
    """Remove the store's checkpoint folders (all but ``keep``)."""
    for child in store.iterdir():
        if child.name.startswith(SCRATCH_PREFIX) and child not in keep:
            shutil.rmtree(child, ignore_errors=True)
