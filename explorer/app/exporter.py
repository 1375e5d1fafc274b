"""Large exports in a separate process, so they never hold up another session.

Building a million-row file is mostly pandas and Arrow work under Python's GIL: in a thread
of the server it stalled every other session's lasso (7× slower beside a 1M-row export,
measured by ``benchmarks/panes.py``). A single worker process, started on first use with
"spawn" (forking a threaded server is unsafe), opens the store itself (memory-mapped) and
sends back the file's bytes. Small selections stay in a thread: a process hop costs more
than they do. ``h5ad`` (stores built from an .h5ad file) goes the same way: AnnData and
h5py are imported by whichever process writes the file, on the first .h5ad export.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.store.export import h5ad_bytes, subset_table, table_bytes
from explorer.store.reader import Store

PROCESS_MIN_ROWS = 50_000  # smaller exports are built in the calling thread

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
# In the worker: the stores it has opened, and their point tables (read once, when needed).
_opened: dict[str, tuple[Store, pa.Table | None]] = {}


def _pool_executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return _pool


def _export_job(
    path: str, rows: NDArray[np.int64], fmt: str, layouts: tuple[str, ...], vectors: bool
) -> bytes:
    """In the worker process: the export file's bytes."""
    if path not in _opened:
        _opened[path] = (Store(path), None)
    store, points = _opened[path]
    if fmt == "h5ad":  # every layout and the vectors, whatever the options say
        return h5ad_bytes(store, rows)
    if points is None:  # read once, on the first export that needs the table
        points = pq.read_table(store.table_path("validate", "points"))
        _opened[path] = (store, points)
    table = subset_table(store, rows, layouts=layouts, vectors=vectors, points=points)
    return table_bytes(table, fmt)


def export_bytes(
    store: Store,
    rows: NDArray[np.int64],
    fmt: str,
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
    points: pa.Table | None = None,
    min_rows: int = PROCESS_MIN_ROWS,
) -> bytes:
    """The rows as a file in ``fmt``: in the worker process from ``min_rows`` rows up.

    ``h5ad`` (``formats_for(store)``) holds every layout and the vectors, whatever
    ``layouts`` and ``vectors`` say; other stores refuse it with an InputError.
    """
    if rows.size < min_rows:
        if fmt == "h5ad":
            return h5ad_bytes(store, rows)
        table = subset_table(store, rows, layouts=layouts, vectors=vectors, points=points)
        return table_bytes(table, fmt)
    job = _pool_executor().submit(
        _export_job, str(Path(store.path).resolve()), rows, fmt, layouts, vectors
    )
    return job.result()
