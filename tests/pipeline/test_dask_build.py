"""Building on Dask (issue 11): the same store as in-process, sampled parts within tolerance,
a lost worker or cluster loses nothing, an unreachable scheduler is one line."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from explorer.compute.knn import knn_graph
from explorer.compute.trust import layout_trust
from explorer.config import BuildConfig, KnnConfig, PcaConfig, UmapConfig
from explorer.ingest.dataset import InputSpec
from explorer.pipeline import dask_analytic, dask_jobs, distributed
from explorer.pipeline.distributed import ClusterError, DaskOptions
from explorer.pipeline.runner import build_store
from explorer.store.reader import Store
from tests.helpers import TINY_CONFIG, run_cli, write_vectors_parquet

pytestmark = pytest.mark.slow
CLUSTER_STAGES = {"pca", "knn", "umap", "trust", "intrinsic", "outliers"}


def _local_cluster() -> Any:
    from distributed import LocalCluster

    # Threads, not processes: the workers share this process's compiled numba code
    # (seconds per kernel in a new process) and the tests' patched task functions.
    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """One 2-worker LocalCluster for the session."""
    cluster = _local_cluster()
    yield cluster
    cluster.close()


def _hashes(store: Path) -> dict[str, dict[str, str]]:
    manifest = json.loads((store / "manifest.json").read_text())
    return {
        name: {f: info["sha256"] for f, info in record["files"].items()}
        for name, record in manifest["stages"].items()
    }


def _manifest(store: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((store / "manifest.json").read_text())
    return out


PCA_CONFIG = BuildConfig(
    seed=0, umap=UmapConfig(n_epochs=60), pca=PcaConfig(n_components=4, chunk_rows=1024)
)


def test_same_store_as_in_process(tiny_input: InputSpec, dask_cluster: Any, tmp_path: Path) -> None:
    """PCA, exact kNN, UMAP (fitted on all), trust, intrinsic and outliers: same bytes."""
    spec = InputSpec(path=tiny_input.path, id="pid", label="label", prediction="prediction")
    plain = tmp_path / "plain.store"
    build_store(spec, plain, PCA_CONFIG, show_progress=False)
    on_dask = tmp_path / "dask.store"
    # 100-row shards: pca, kNN, trust, intrinsic and outliers each run as 6 tasks
    options = DaskOptions(dask_cluster.scheduler_address, shard_rows=100, timeout=5)
    report = build_store(spec, on_dask, PCA_CONFIG, show_progress=False, dask=options)
    assert _hashes(on_dask) == _hashes(plain)
    stages = _manifest(on_dask)["stages"]
    for name, record in stages.items():
        if name in CLUSTER_STAGES:
            assert record["params"]["dask"] == dask_cluster.scheduler_address
            assert record["params"]["workers"] == 2
            assert record["key"] == _manifest(plain)["stages"][name]["key"]
        else:
            assert "dask" not in record["params"]
    assert {s.name for s in report.stages} >= CLUSTER_STAGES
    assert not [p for p in on_dask.iterdir() if p.name.startswith(".partial-")]
    Store(on_dask)  # opens: the contract holds
    # The keys agree, so a store built in-process is reused by a --dask rerun (and back).
    again = build_store(spec, plain, PCA_CONFIG, show_progress=False, dask=options)
    assert {s.status for s in again.stages} == {"reused"}


def _mixture(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, size=(8, 5))
    labels = rng.integers(0, 8, n)
    return (centres[labels] + rng.normal(0.0, 1.0, size=(n, 5))).astype(np.float32)


@pytest.fixture(scope="module")
def mixture_input(tmp_path_factory: pytest.TempPathFactory) -> InputSpec:
    """1,500 points of an 8-cluster 5-D mixture."""
    folder = tmp_path_factory.mktemp("mixture")
    x = _mixture(1500)
    meta = pd.DataFrame({"pid": [f"m{i}" for i in range(len(x))]})
    return InputSpec(path=write_vectors_parquet(folder / "m.parquet", x, meta), id="pid")


def test_sampled_layout_and_sharded_knn_within_tolerance(
    mixture_input: InputSpec, dask_cluster: Any, tmp_path: Path
) -> None:
    """kNN from overlapping partitions: recall >= 0.9; UMAP fitted on 400 of 1,500 points
    and the rest placed: trust within 0.02 of UMAP fitted on all (same exact graph)."""
    config = BuildConfig(seed=0, knn=KnnConfig(recall_sample=1500), umap=UmapConfig(n_epochs=200))
    options = DaskOptions(
        dask_cluster.scheduler_address,
        shard_rows=750,
        partition_rows=500,  # 6 partitions of ~500 points, each point in 2
        exact_limit=600,
        layout_sample=400,
        timeout=5,
    )
    out = tmp_path / "sampled.store"
    build_store(mixture_input, out, config, show_progress=False, dask=options)
    stages = _manifest(out)["stages"]
    knn = stages["knn"]["summary"]
    assert knn["method"] == "sharded"
    assert knn["partitions"] == 6
    assert knn["recall"] >= 0.9
    assert stages["umap"]["summary"]["fit_sample"] == 400
    assert stages["umap"]["params"]["placed"] == {"fit_sample": 400, "refine_epochs": 60}
    store = Store(out)
    x = np.asarray(store.vectors())
    exact = knn_graph(x, 15, seed=0)
    sharded_idx = np.asarray(store.knn()[0])
    # the sharded graph's recall, checked here on every point
    hits = [len(set(a) & set(b)) for a, b in zip(exact.indices, sharded_idx, strict=True)]
    assert np.mean(hits) / 15 >= 0.9
    from explorer.compute.umap_layout import umap_layout

    fitted = umap_layout(x, exact.indices, exact.distances, n_epochs=200, seed=0)
    placed = np.asarray(store.layout("umap"))
    trust_fitted = float(layout_trust(fitted, exact.indices).mean())
    trust_placed = float(layout_trust(placed, exact.indices).mean())
    assert trust_placed >= trust_fitted - 0.02, (trust_placed, trust_fitted)


def test_sampled_largevis_within_tolerance(
    mixture_input: InputSpec, dask_cluster: Any, tmp_path: Path
) -> None:
    """LargeVis above --dask-layout-sample: fitted on 400 of 1,500 points on a worker, the
    rest placed and refined per tile; trust within 0.02 of LargeVis fitted on all."""
    config = BuildConfig(seed=0, layouts=("largevis",))
    options = DaskOptions(
        dask_cluster.scheduler_address, shard_rows=750, layout_sample=400, timeout=5
    )
    out = tmp_path / "largevis.store"
    build_store(mixture_input, out, config, show_progress=False, dask=options)
    record = _manifest(out)["stages"]["largevis"]
    assert record["params"]["dask"] == dask_cluster.scheduler_address
    assert record["params"]["placed"] == {"fit_sample": 400, "stretch": 3.0}
    assert record["summary"]["fit_sample"] == 400
    assert record["summary"]["placed"] == 1100
    store = Store(out)
    indices, distances = (np.asarray(a) for a in store.knn())  # exact: n <= 20,000
    from explorer.compute.largevis import largevis_layout

    fitted = largevis_layout(indices, distances, seed=0, parallel=False)
    placed = np.asarray(store.layout("largevis"))
    assert np.sqrt((placed**2).sum(axis=1).mean()) == pytest.approx(10.0, rel=1e-3)
    trust_fitted = float(layout_trust(fitted, indices).mean())
    trust_placed = float(layout_trust(placed, indices).mean())
    assert trust_placed >= trust_fitted - 0.02, (trust_placed, trust_fitted)


_KILLED = threading.Event()


def _dying_lid(distances: np.ndarray, n_neighbors: int | None) -> dict[str, np.ndarray]:
    """The intrinsic task, except that its first call closes the worker running it."""
    from distributed import get_worker

    if not _KILLED.is_set():
        _KILLED.set()
        worker = get_worker()
        worker.loop.add_callback(worker.close)
        deadline = time.monotonic() + 10
        while worker.status.name == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
    return _REAL_LID(distances, n_neighbors)


_REAL_LID = dask_analytic._task_lid


def test_worker_killed_mid_stage_finishes_the_same(
    tiny_input: InputSpec, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker closed while it runs a task: Dask reruns the task on the other one."""
    monkeypatch.setattr(dask_analytic, "_task_lid", _dying_lid)
    _KILLED.clear()
    cluster = _local_cluster()
    try:
        options = DaskOptions(cluster.scheduler_address, shard_rows=100, timeout=5)
        out = tmp_path / "killed.store"
        build_store(tiny_input, out, TINY_CONFIG, show_progress=False, dask=options)
        assert _KILLED.is_set()
        assert len(cluster.scheduler.workers) == 1
    finally:
        cluster.close()
    assert _hashes(out) == _hashes(tiny_store)


_CALLS: list[int] = []
_STOP = threading.Event()


def _counted_spread(
    indices: np.ndarray, distances: np.ndarray, t: float, start: int
) -> dict[str, np.ndarray]:
    """The outliers task, counting its calls; the fourth shard waits for the cluster to go."""
    _CALLS.append(start)
    if start == 300 and _STOP.is_set():
        time.sleep(30)  # the test closes the cluster meanwhile
    return _REAL_SPREAD(indices, distances, t, start)


_REAL_SPREAD = dask_analytic._task_spread


def test_cluster_lost_mid_stage_then_resumed(
    tiny_input: InputSpec,
    tiny_store: Path,
    dask_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cluster vanishes: one line saying to rerun; the rerun redoes only what was lost."""
    monkeypatch.setattr(dask_analytic, "_task_spread", _counted_spread)
    monkeypatch.setattr(dask_jobs, "IN_FLIGHT_PER_WORKER", 1)
    _CALLS.clear()
    _STOP.set()
    doomed = _local_cluster()
    out = tmp_path / "lost.store"

    def close_when_stuck() -> None:
        while 300 not in _CALLS:
            time.sleep(0.05)
        time.sleep(0.5)
        doomed.close()

    closer = threading.Thread(target=close_when_stuck, daemon=True)
    closer.start()
    options = DaskOptions(doomed.scheduler_address, shard_rows=100, timeout=5)
    with pytest.raises(ClusterError) as err:
        build_store(tiny_input, out, TINY_CONFIG, show_progress=False, dask=options)
    closer.join(timeout=30)
    message = str(err.value)
    assert "\n" not in message
    assert "went away during stage 'outliers'" in message
    assert "rerun the same command to resume" in message
    assert not (out / "manifest.json").exists()
    scratch = [p for p in out.iterdir() if p.name.startswith(".partial-outliers-")]
    assert len(scratch) == 1
    kept = sorted(p.name for p in scratch[0].iterdir())
    assert len(kept) >= 2  # shards finished before the loss are checkpointed
    _STOP.clear()
    _CALLS.clear()
    resumed = DaskOptions(dask_cluster.scheduler_address, shard_rows=100, timeout=5)
    report = build_store(tiny_input, out, TINY_CONFIG, show_progress=False, dask=resumed)
    status = {s.name: s.status for s in report.stages}
    assert status["knn"] == status["umap"] == "reused"
    assert status["outliers"] == "ran"
    assert len(_CALLS) == 6 - len(kept)  # only the unfinished shards ran again
    assert _hashes(out) == _hashes(tiny_store)
    assert not [p for p in out.iterdir() if p.name.startswith(".partial-")]


def test_unreachable_scheduler_is_one_line(tiny_input: InputSpec, tmp_path: Path) -> None:
    """exit 2, one stderr line, no traceback, no store written."""
    out = tmp_path / "never.store"
    args = ["build", str(tiny_input.path), "--out", str(out), "--dask", "tcp://127.0.0.1:9"]
    result = run_cli(args, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_bad_local_spec_is_refused(tiny_input: InputSpec, tmp_path: Path) -> None:
    """--dask local:x names the expected form."""
    with pytest.raises(Exception, match="write local:N"):
        build_store(tiny_input, tmp_path / "x.store", TINY_CONFIG, dask=DaskOptions("local:x"))
    assert not (tmp_path / "x.store").exists()


def test_local_cluster_from_the_command_line(tmp_path: Path) -> None:
    """--dask local:2 starts two worker processes and gives the in-process store.

    LargeVis (run in this process either way) keeps umap's compilation out of the two new
    worker processes: they run the exact kNN, trust, intrinsic and outlier tasks.
    """
    x = _mixture(300)
    meta = pd.DataFrame({"pid": [f"q{i}" for i in range(len(x))]})
    path = write_vectors_parquet(tmp_path / "q.parquet", x, meta)
    config = BuildConfig(seed=0, layouts=("largevis",))
    build_store(InputSpec(path=path, id="pid"), tmp_path / "a.store", config, show_progress=False)
    args = ["build", str(path), "--id", "pid", "--seed", "0", "--layouts", "largevis"]
    on_dask = run_cli([*args, "--quiet", "--out", str(tmp_path / "b.store"), "--dask", "local:2"])
    assert on_dask.returncode == 0, on_dask.stderr
    assert _hashes(tmp_path / "b.store") == _hashes(tmp_path / "a.store")
    assert _manifest(tmp_path / "b.store")["stages"]["knn"]["params"]["workers"] == 2
    assert _manifest(tmp_path / "b.store")["stages"]["knn"]["params"]["dask"] == "local:2"
    # below --dask-layout-sample LargeVis runs in the building process, as without --dask
    assert "dask" not in _manifest(tmp_path / "b.store")["stages"]["largevis"]["params"]


def test_a_rerun_samples_as_the_run_it_resumes(tmp_path: Path) -> None:
    """Without --seed each run draws a seed; shards read back must match their samples."""
    from types import SimpleNamespace

    first = SimpleNamespace(scratch=tmp_path / ".partial-umap-x", seed=11)
    assert distributed.stage_seed(first) == 11  # type: ignore[arg-type]
    rerun = SimpleNamespace(scratch=first.scratch, seed=99)
    assert distributed.stage_seed(rerun) == 11  # type: ignore[arg-type]
