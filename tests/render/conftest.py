"""Render fixtures: one small Dask cluster for the whole session (starting one costs ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A 2-worker ``distributed.LocalCluster`` in this process, as the default client.

    The HTTP server takes a free port: 8787 may belong to another cluster on the machine.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
