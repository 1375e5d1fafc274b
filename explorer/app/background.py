"""Heavy work off the server's event loop, results applied back on it.

Every session of a server shares one event loop: a hit-test over 10M points or a 1M-row
statistic run in a callback would stall every other session meanwhile. ``run_then`` runs
the work in a thread pool and hands the result to a callback on the loop, inside the
document lock (Bokeh models may only change there: changing them from a thread or an
unlocked callback is what raised ``_pending_writes should be non-None``). Without a
served document (tests, notebooks) it runs both at once, in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bokeh.document import Document
from bokeh.document import without_document_lock as _without_document_lock

log = logging.getLogger(__name__)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def without_document_lock(func: F) -> F:
    """Bokeh's ``without_document_lock``, typed: a callback that runs outside the lock."""
    wrapped: F = _without_document_lock(func)
    return wrapped


# Shared by all sessions of the process; the render path keeps its own (the loop default).
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="explorer-work")

# Work that can wait (compiling Datashader's reductions, reading the whole table) waits
# for the first session's first image and then for a pause in the drawing: numba's
# compiler holds the GIL for seconds, and run beside the first page it made that page 4×
# slower to appear (benchmarks/browser.py, 1M points: 6.6 s to the first image).
_first_image = threading.Event()
_last_frame = [0.0]  # time.monotonic() of the latest frame started or shown
FIRST_IMAGE_WAIT_S = 20.0  # a server nobody opens still warms up
QUIET_S = 1.0  # no frame for this long: a good moment
QUIET_WAIT_S = 60.0  # a map in constant use still gets its warm-up after this


def frame_activity(*, shown: bool = False) -> None:
    """A map frame started (or, ``shown``, reached a browser): deferred work waits."""
    _last_frame[0] = time.monotonic()
    if shown:
        _first_image.set()


def wait_for_quiet() -> None:
    """Block (a background thread) until a first image was shown and no frame was drawn
    for ``QUIET_S`` seconds, or until the waits above run out."""
    _first_image.wait(FIRST_IMAGE_WAIT_S)
    deadline = time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline:
        idle = time.monotonic() - _last_frame[0]
        if idle >= QUIET_S:
            return
        time.sleep(QUIET_S - idle)


def served_document(model: Any) -> Document | None:
    """The Bokeh document ``model`` is served in, or None (not served, or not yet)."""
    doc = getattr(model, "document", None)
    return doc if doc is not None and doc.session_context is not None else None


def run_then(
    doc: Document | None,
    work: Callable[[], T],
    then: Callable[[T], None],
    on_error: Callable[[Exception], None] | None = None,
) -> None:
    """Run ``work()`` in a worker thread, then ``then(result)`` on the loop, locked.

    ``on_error`` gets any exception ``work`` raised (logged either way).
    """
    if doc is None:
        try:
            result = work()
        except Exception as exc:
            if on_error is None:
                raise
            on_error(exc)
            return
        then(result)
        return

    @without_document_lock
    async def compute() -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(_POOL, work)
        except Exception as exc:  # reported to the user through on_error, and logged
            log.exception("background work failed")
            if on_error is not None:
                doc.add_next_tick_callback(functools.partial(on_error, exc))
            return
        doc.add_next_tick_callback(functools.partial(then, result))

    doc.add_next_tick_callback(compute)  # type: ignore[arg-type]


def on_loop(doc: Document | None, fn: Callable[[], None]) -> None:
    """Call ``fn`` now when not served, else on the next tick of the loop (locked)."""
    if doc is None:
        fn()
    else:
        doc.add_next_tick_callback(fn)


async def in_worker(work: Callable[[], T]) -> T:
    """Await ``work()`` run in the worker pool (for Panel's async callbacks)."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, work)
