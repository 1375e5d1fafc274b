"""Running a stage's jobs on the cluster, each result checkpointed as it arrives.

A job is a task function and its arguments; ``Rows`` among the arguments are read from
the store's arrays only when the job is sent, so at most a few jobs' data are in flight.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.pipeline.dask_cluster import DaskCluster
from explorer.pipeline.stage import BuildContext

# Jobs in flight per worker: enough to keep each busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2


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


def submit(client: Any, fn: Callable[..., Any], *args: Any) -> Any:
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

    cluster = cluster_of(ctx)
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
        futures[submit(cluster.client, fn, *jobs[i]())] = i
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
            new = submit(cluster.client, fn, *jobs[nxt]())
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


def cluster_of(ctx: BuildContext) -> DaskCluster:
    cluster = ctx.cluster
    assert isinstance(cluster, DaskCluster)
    return cluster


def row_shards(n: int, rows: int, align: int = 1) -> list[tuple[int, int]]:
    """Row ranges of at most ``rows`` rows, each starting on a multiple of ``align``."""
    step = max(align, (rows // align) * align)
    return [(s, min(s + step, n)) for s in range(0, n, step)]


@dataclass(frozen=True)
class Rows:
    """Rows ``a:b`` (or the rows listed in ``a``) of an array, read when a job is sent."""

    array: Any
    a: Any
    b: int | None = None

    def read(self) -> np.ndarray:
        sel = slice(self.a, self.b) if self.b is not None else self.a
        return np.ascontiguousarray(self.array[sel])


def job(*args: Any) -> Callable[[], tuple[Any, ...]]:
    """A job's arguments; ``Rows`` among them are read only when the job is sent."""
    return functools.partial(_materialise, args)


def _materialise(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.read() if isinstance(a, Rows) else a for a in args)


def per_shard(
    ctx: BuildContext,
    tag: str,
    fn: Callable[..., dict[str, np.ndarray]],
    shards: Sequence[tuple[int, int]],
    args: Callable[[int, int], tuple[Any, ...]],
    progress: tuple[float, float] = (0.0, 1.0),
) -> dict[str, np.ndarray]:
    """``fn(*args(a, b))`` for each row shard ``a:b`` (``run_jobs``); each of its outputs
    concatenated in row order."""
    parts = run_jobs(ctx, tag, fn, [job(*args(a, b)) for a, b in shards], progress)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
