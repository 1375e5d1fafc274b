"""Atomic writes: everything is written beside its final place, then renamed into it.

A crash, SIGKILL or Ctrl-C leaves either the old content or the new, never half of one;
leftover temporary folders are ignored by readers and removed by the next writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from explorer.store.format import SELECTIONS_DIR, TMP_PREFIX, TRASH_PREFIX


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush one file's data to disk."""
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _tmp_name(final: Path) -> Path:
    return final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary directory is removed and
    ``final`` is left as it was.
    """
    tmp = _tmp_name(final)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for child in sorted(tmp.rglob("*"), reverse=True):  # files before their folders
            if child.is_file():
                fsync_file(child)
            elif child.is_dir():
                fsync_dir(child)
        fsync_dir(tmp)
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(src: Path, final: Path) -> None:
    """Move directory ``src`` to ``final``, replacing an existing one.

    ``os.replace`` cannot replace a non-empty directory, so an old one is first renamed
    aside (one atomic step), then the new one renamed in (another), then the old removed.
    """
    old = None
    if final.exists():
        old = final.parent / f"{TRASH_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
        final.replace(old)
    src.replace(final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_dir_atomic(path: Path) -> None:
    """Remove a directory so that it is either whole or gone, never half-deleted."""
    if not path.exists():
        return
    old = path.parent / f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    path.replace(old)
    fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` through a temporary file and ``os.replace``."""
    tmp = _tmp_name(final)
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(final: Path, obj: Any, *, sort_keys: bool = True) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=str)
    write_bytes_atomic(final, (text + "\n").encode())


def remove_leftovers(store: Path) -> None:
    """Remove temporary and trash folders a killed writer left in ``store``.

    Call it only while holding the store's writer lock: then no live writer owns them.
    """
    if not store.is_dir():
        return
    selections = store / SELECTIONS_DIR
    children = [*store.iterdir(), *(selections.iterdir() if selections.is_dir() else [])]
    for child in children:
        if child.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
