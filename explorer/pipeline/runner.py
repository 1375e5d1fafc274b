"""build_store(): validate first, then run each stage, skipping those already finished.

The input is read and validated in memory before the store directory is touched, so bad
input leaves nothing behind. Each stage is written atomically; the manifest is written
last. Interrupted (Ctrl-C, SIGKILL, a crash), a rerun of the same build reuses every
finished stage whose key matches and gives the same store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from explorer.config import BuildConfig
from explorer.ingest.dataset import InputSpec
from explorer.ingest.validate import load_dataset
from explorer.pipeline.import_stage import check_layout_plan
from explorer.pipeline.registry import all_stages
from explorer.pipeline.stage import BuildContext, Stage
from explorer.store.format import FORMAT_VERSION, IMPORTED_STAGE
from explorer.store.manifest import layout_entry, store_manifest
from explorer.store.writer import StoreWriter, file_digest, stage_key
from explorer.version import __version__

if TYPE_CHECKING:
    from explorer.pipeline.distributed import DaskCluster, DaskOptions


@dataclass
class StageReport:
    """One row of the build summary."""

    name: str
    status: str  # "ran" or "reused"
    seconds: float
    n_files: int
    n_bytes: int
    summary: dict[str, Any]


@dataclass
class BuildReport:
    """What a build did: one row per stage, and notes for the user."""

    store: Path
    n_points: int
    dim: int
    stages: list[StageReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    records: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)


def _versions(libraries: tuple[str, ...]) -> dict[str, str]:
    out = {"explorer": __version__}
    for lib in dict.fromkeys(("numpy", *libraries)):
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _upstream(stage: Stage, ctx: BuildContext, planned: set[str]) -> list[str]:
    names = [ctx.vector_stage if r == "vectors" else r for r in stage.requires]
    return [n for n in dict.fromkeys(names) if n in planned]


def _progress_bar(name: str, show: bool) -> tuple[Any, Callable[[float], None]]:
    bar = tqdm(
        total=1000,
        desc=f"{name:>10}",
        bar_format="{desc}: {percentage:3.0f}%|{bar:24}| {elapsed}",
        disable=not show,
        leave=False,
    )

    def update(fraction: float) -> None:
        target = int(max(0.0, min(1.0, fraction)) * 1000)
        if target > bar.n:
            bar.update(target - bar.n)

    return bar, update


def build_store(
    spec: InputSpec,
    out: str | Path,
    config: BuildConfig | None = None,
    *,
    show_progress: bool = True,
    dask: DaskOptions | None = None,
) -> BuildReport:
    """Build (or resume building) the projection store for ``spec`` at ``out``.

    dask : build the stages that grow with n on a Dask cluster (pipeline/distributed.py);
    the store is the same files either way.
    """
    started = time.perf_counter()
    config = config or BuildConfig()
    config.check()
    check_layout_plan(config, spec)
    dataset = load_dataset(spec)
    dataset.source["sha256"] = file_digest(spec.path)
    if spec.meta is not None:
        dataset.source["meta_sha256"] = file_digest(spec.meta)
    # The cluster is reached before the store is touched: an address that does not
    # answer leaves nothing behind.
    with (
        _connect(dask) as cluster,
        StoreWriter(out, {"n": dataset.n_points, "d": dataset.dim}) as writer,
    ):
        run_seed = int(np.random.default_rng().integers(2**31 - 1))
        ctx = BuildContext(config=config, dataset=dataset, store=writer.path, run_seed=run_seed)
        ctx.cluster = cluster
        report = _run_plan(ctx, writer, show_progress)
        report.seconds = time.perf_counter() - started
        writer.write_manifest(_manifest(ctx, report.records, report.seconds))
    return report


@contextlib.contextmanager
def _connect(options: DaskOptions | None) -> Iterator[DaskCluster | None]:
    if options is None:
        yield None
        return
    from explorer.pipeline.distributed import open_cluster

    with open_cluster(options) as cluster:
        yield cluster


def _run_plan(ctx: BuildContext, writer: StoreWriter, show_progress: bool) -> BuildReport:
    """Run (or reuse) every enabled stage in order; remove stages no longer planned."""
    plan = [s for s in all_stages() if s.enabled(ctx)]
    planned = {s.name for s in plan}
    report = BuildReport(writer.path, ctx.dataset.n_points, ctx.dataset.dim)
    keys: dict[str, str] = {}
    records = report.records
    marked = False
    for planned_stage in plan:
        stage, distributed = _placed(planned_stage, ctx)
        upstream = _upstream(stage, ctx, planned)
        params = stage.params(ctx)
        key = stage_key(
            stage.name,
            {"params": params, "format": FORMAT_VERSION, "explorer": __version__},
            {u: keys[u] for u in upstream},
        )
        keys[stage.name] = key
        record = writer.finished(stage.name, key)
        status = "reused"
        if record is None:
            if not marked:
                writer.mark_incomplete()
                marked = True
            record = _run_stage(
                stage, ctx, writer, key, params, upstream, show_progress, distributed
            )
            status = "ran"
        records[stage.name] = record
        report.notes.extend(record.get("notes", []))
        report.stages.append(
            StageReport(
                stage.name,
                status,
                float(record["seconds"]),
                len(record["files"]),
                sum(f["bytes"] for f in record["files"].values()),
                record.get("summary", {}),
            )
        )
    for name in writer.stage_names():
        if name not in planned:
            writer.mark_incomplete()
            writer.remove_stage(name)
    if ctx.cluster is not None:
        from explorer.pipeline.distributed import remove_scratch

        remove_scratch(writer.path)  # checkpoints of stages whose key has changed
    return report


def _placed(stage: Stage, ctx: BuildContext) -> tuple[Stage, bool]:
    """The stage as it runs in this build: on the cluster where it has a version there."""
    if ctx.cluster is None:
        return stage, False
    from explorer.pipeline.distributed import on_cluster

    remote = on_cluster(stage, ctx)
    return (stage, False) if remote is None else (remote, True)


def _run_stage(
    stage: Stage,
    ctx: BuildContext,
    writer: StoreWriter,
    key: str,
    params: dict[str, Any],
    upstream: list[str],
    show_progress: bool,
    distributed: bool = False,
) -> dict[str, Any]:
    bar, update = _progress_bar(stage.name, show_progress)
    ctx.progress = update
    if distributed:
        from explorer.pipeline.distributed import scratch_folder

        ctx.scratch = scratch_folder(writer.path, stage.name, key, ctx.cluster)
        # The manifest says where it ran; the key does not, so either way is reused.
        params = {**params, **ctx.cluster.describe()}
    t0 = time.perf_counter()
    try:
        result = stage.run(ctx)
        update(1.0)
    finally:
        bar.close()
        ctx.progress = lambda _: None
    seconds = time.perf_counter() - t0
    record = writer.write_stage(
        stage.name,
        key,
        arrays=result.arrays,
        tables=result.tables,
        extra=result.extra,
        record={
            "title": stage.title,
            "params": params,
            "requires": upstream,
            "versions": _versions(stage.libraries),
            "seconds": round(seconds, 3),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "summary": result.summary,
            "provides": result.provides,
            "notes": result.notes,
        },
    )
    if ctx.scratch is not None:
        shutil.rmtree(ctx.scratch, ignore_errors=True)  # the stage is stored: shards done
        ctx.scratch = None
    return record


def _manifest(
    ctx: BuildContext, records: dict[str, dict[str, Any]], seconds: float
) -> dict[str, Any]:
    layouts: dict[str, dict[str, Any]] = {}
    imported = records.get(IMPORTED_STAGE, {})
    for name, stem in imported.get("provides", {}).get("layouts", {}).items():
        source = imported["params"]["layouts"].get(name, {})
        layouts[name] = layout_entry(IMPORTED_STAGE, stem, imported=source)
    for name in ctx.config.layouts:
        if name in records:
            layouts[name] = layout_entry(name)
    return store_manifest(
        n_points=ctx.dataset.n_points,
        dim=ctx.dataset.dim,
        source=ctx.dataset.source,
        roles=ctx.dataset.roles,
        config=ctx.config.as_dict(),
        stages=records,
        layouts=layouts,
        build_seconds=seconds,
    )
