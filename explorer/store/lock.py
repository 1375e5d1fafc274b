"""One writer at a time: an advisory lock on the store directory.

A build holds the lock from start to finish; saving a selection holds it for the few
milliseconds of the write. The lock is ``flock`` on ``<store>/.writer.lock``: the kernel
releases it when its holder exits or is killed, so a crash never leaves the store locked.
The file also says who holds it (pid, host, start time), for the refusal message; it is
never deleted (deleting a lock file lets two writers lock two different files).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from explorer.errors import StoreError, StoreLockedError
from explorer.store.format import LOCK_FILE

_POLL_SECONDS = 0.02


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"process {int(info['pid'])} on {str(info['host'])[:80]!r} "
            f"(since {str(info['started'])[:40]})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class StoreLock:
    """The store's writer lock; ``acquire`` raises ``StoreLockedError`` naming the holder."""

    def __init__(self, store: Path, purpose: str) -> None:
        self.path = Path(store) / LOCK_FILE
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> StoreLock:
        """Take the lock, retrying for up to ``wait`` seconds; return self."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            msg = (
                f"cannot open the writer lock {self.path} ({exc.strerror}): the store is not "
                f"writable here, so {self.purpose} is not possible; check its permissions"
            )
            raise StoreError(msg) from exc
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    store = self.path.parent
                    msg = (
                        f"{store} is being written by {_holder_text(self.path)}; wait for it "
                        f"to finish (or stop it) before {self.purpose}"
                    )
                    raise StoreLockedError(msg) from None
                time.sleep(_POLL_SECONDS)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "purpose": self.purpose,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> StoreLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


@contextlib.contextmanager
def store_lock(store: Path, purpose: str, wait: float = 0.0) -> Iterator[StoreLock]:
    """Hold the store's writer lock for the block (waiting up to ``wait`` seconds)."""
    lock = StoreLock(store, purpose).acquire(wait)
    try:
        yield lock
    finally:
        lock.release()
