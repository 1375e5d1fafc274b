"""The numba ``njit`` wrapper of ``explorer.render`` and the threads that run its kernels.

``njit`` is the project's wrapper (``explorer.jit``): ``cache=True`` so compiled kernels
survive between server processes, ``nogil=True`` so kernels run in parallel Python threads
and beside Bokeh's event loop, and no ``fastmath``: pixel assignment and hit-tests must
give the same answer as Datashader and as a plain float64 reference.

Kernels here are serial over one chunk; ``run_chunks`` runs the chunks on a small shared
thread pool. We do not use ``prange``: on these shared 2-core machines numba's OpenMP
workers spin after each parallel region, and under the container's CPU quota each
region then cost 4-6 ms of throttling (a 1% zoom frame took 24 ms instead of 9 ms).
Sleeping pool threads woken per frame do not have that problem.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_MAX_WORKERS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def n_workers() -> int:
    """Threads a parallel kernel uses: the CPUs this process may run on, at most 8."""
    return max(1, min(len(os.sched_getaffinity(0)), _MAX_WORKERS))


def run_chunks(func: Callable[[int], Any], n_chunks: int) -> list[Any]:
    """``[func(0), ..., func(n_chunks - 1)]``, chunks 1.. on the pool, chunk 0 here.

    ``func`` should spend its time in a ``nogil`` kernel, so the chunks run in parallel.
    Never call this from inside a chunk (the pool could deadlock waiting on itself).
    """
    if n_chunks <= 1:
        return [func(0)]
    global _pool  # one lazily started pool per process, shared by sessions
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="explorer-render")
        pool = _pool
    futures = [pool.submit(func, k) for k in range(1, n_chunks)]
    first = func(0)
    return [first, *(f.result() for f in futures)]
