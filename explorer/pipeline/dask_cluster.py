"""The Dask cluster a build runs on (``--dask``): its options, the connection, scratch folders.

``open_cluster`` connects to a scheduler (or starts ``local:N``) and gives a ``DaskCluster``;
a stage run on it keeps its finished shards in ``scratch_folder`` until it is stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.compute.knn import EXACT_LIMIT
from explorer.errors import ConfigError, ExplorerError

SCRATCH_PREFIX = ".partial-"
LOCAL_PREFIX = "local:"


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
                f"({reason(exc)}); start it or check --dask"
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


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def checkpoint_count(folder: Path | None) -> int:
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
