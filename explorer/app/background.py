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
