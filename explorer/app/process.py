"""The process's shared state: one ``StoreResources`` per store, and the warm-up that
prepares the first session's work before any browser asks for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from explorer.app.background import wait_for_quiet
from explorer.app.resources import StoreResources
from explorer.errors import ConfigError
from explorer.render.raster import warm_up
from explorer.store.reader import Store
from explorer.store.search import search_rows, text_buffer

_registry: dict[Path, StoreResources] = {}
_registry_lock = threading.Lock()
_warm = threading.Event()
_prepared: set[int] = set()  # id() of the resources whose first page is prepared


def open_resources(path: str | Path) -> StoreResources:
    """The process's shared resources for the store at ``path`` (opened once)."""
    key = Path(path).resolve()
    with _registry_lock:
        res = _registry.get(key)
        if res is None:
            res = _registry[key] = StoreResources(Store(key))
    return res


def attach_cluster(resources: StoreResources, address: str) -> None:
    """Move ``resources``' points onto the Dask cluster at ``address`` (``local:N`` starts
    one): frames, hit-tests, filters, statistics and exports run there from now on."""
    from explorer.app.cluster import ClusterPoints, connect

    if resources.cluster is not None:
        return
    client, cluster = connect(address)
    try:
        points = ClusterPoints(resources.store, client, resources.columns, cluster=cluster)
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    resources.attach_cluster(points)


def detach_cluster(resources: StoreResources) -> None:
    """Close ``resources``' cluster client (and the local cluster it started), if any."""
    cluster, resources.cluster = resources.cluster, None
    if cluster is not None:
        cluster.close()


def close_all_clusters() -> None:
    """Close every cluster this process attached (at server exit)."""
    with _registry_lock:
        opened = list(_registry.values())
    for resources in opened:
        detach_cluster(resources)


def check_dask_options(dask: str | None, num_procs: int) -> None:
    """``--dask`` serves from one process: the cluster does the work of several."""
    if dask is not None:
        from explorer.app.cluster import check_address

        check_address(dask)
    if dask is not None and num_procs > 1:
        msg = f"--dask with --num-procs {num_procs}: use one server process with a cluster"
        raise ConfigError(msg)


def preload_modules() -> None:
    """Import now what the first session would import on its first page: the slice
    table's Tabulator loads pandas' Styler, which loads matplotlib (0.7 s, measured with
    py-spy on the first page of a 1M store)."""
    import pandas.io.formats.style  # noqa: F401


def prepare_first_page(
    resources: StoreResources, build: Callable[[StoreResources], object]
) -> None:
    """Once per store and process, before the server listens: what the first page needs.

    Our render kernels (from numba's cache), the first layout's index and the default
    colour, then ``build(resources)``, a session built ahead: it fills the process's
    caches (score histograms, category counts, value ranges), imports what the panes
    import, and is the first visitor's session (``server.SpareSession``). Done while the
    first page was loading, this work made that page wait 5.6 s (1M points) to 8 s (10M)
    for its first image (benchmarks/browser.py).
    """
    with _registry_lock:
        if id(resources) in _prepared:
            return
        _prepared.add(id(resources))
    preload_modules()
    warm_up(datashader=False)
    layouts = resources.store.layouts
    resources.prefetch(layouts[0] if layouts else None, resources.default_color()).join()
    build(resources)


def start_warm_up(resources: StoreResources | None = None) -> None:
    """In a background thread, once per process, the work no first page waits for:
    Datashader's numeric reductions, the search kernels, then (given ``resources``) the
    whole table, each once the first image is shown and no frame is being drawn."""
    if _warm.is_set():
        return
    _warm.set()

    def work() -> None:
        # Datashader's numeric reductions are seconds of compiling, needed only when a
        # user colours by a number; compiling holds the GIL, so never beside a frame.
        warm_up(pause=wait_for_quiet)
        wait_for_quiet()
        _warm_search()
        if resources is not None and resources.cluster is None:  # on a cluster: never
            wait_for_quiet()
            _ = resources.table

    threading.Thread(target=work, name="explorer-warm-up", daemon=True).start()


def _warm_search() -> None:
    """Load the search kernels (~0.5 s from numba's cache) before the first search."""
    table = pa.table({"text": ["warm", "up", "search", "kernels"] * 16})
    found = {"text": text_buffer(table.column("text"), "text")}
    search_rows(table, "ar", columns=["text"], buffers=found.get, workers=1)
