"""Writing a store: one atomic folder per stage, the manifest last.

A stage is identified by a *key*: a hash of its name, parameters, code version and the
keys of the stages it reads. A finished stage whose key matches is kept on a rerun, so an
interrupted build resumes where it stopped and gives the same result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.errors import StoreError
from explorer.store.atomic import (
    atomic_dir,
    remove_dir_atomic,
    remove_leftovers,
    write_json_atomic,
)
from explorer.store.contract import check_stage
from explorer.store.format import LOCK_FILE, MANIFEST, SELECTIONS_DIR, STAGE_META, TMP_PREFIX
from explorer.store.lock import StoreLock

_HASH_CHUNK = 1 << 22


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks; of a folder, its files' names and bytes."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():  # a datasets folder: a renamed or moved file changes the input
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def stage_key(name: str, params: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """Content key of a stage: its name, parameters and its inputs' keys."""
    blob = json.dumps(
        {"stage": name, "params": params, "upstream": dict(sorted(upstream.items()))},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _is_store_like(path: Path) -> bool:
    if (path / MANIFEST).exists():
        return True
    return any((child / STAGE_META).exists() for child in path.iterdir() if child.is_dir())


class StoreWriter:
    """Writes stages into a store directory; see the module docstring.

    Holds the store's writer lock from creation until ``close()`` (or the end of a
    ``with`` block, or the process): a second writer is refused with ``StoreLockedError``
    naming this one, and only then are a dead writer's temporary folders removed.
    """

    def __init__(self, path: str | Path, dims: Mapping[str, int] | None = None) -> None:
        """dims : ``{"n": n_points, "d": dim}`` that every stage's shapes are checked with."""
        self.path = Path(path)
        self.dims = dict(dims or {})
        if self.path.exists():
            if not self.path.is_dir():
                msg = f"{self.path} exists and is not a directory; choose another --out"
                raise StoreError(msg)
            visible = [
                c
                for c in self.path.iterdir()
                if not c.name.startswith(TMP_PREFIX) and c.name != LOCK_FILE
            ]
            if visible and not _is_store_like(self.path):
                msg = (
                    f"{self.path} exists, is not empty and is not a projection store; "
                    "choose another --out (nothing was written)"
                )
                raise StoreError(msg)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = StoreLock(self.path, "building into it").acquire()
        # Under the lock no other writer is alive, so what temporary folders remain are
        # a killed writer's leftovers.
        remove_leftovers(self.path)

    def close(self) -> None:
        """Release the writer lock."""
        self._lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finished(self, name: str, key: str) -> dict[str, Any] | None:
        """The stage record if ``name`` is finished with this key and its files are whole."""
        meta_path = self.path / name / STAGE_META
        if not meta_path.exists():
            return None
        try:
            record: dict[str, Any] = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if record.get("key") != key:
            return None
        for fname, info in record.get("files", {}).items():
            f = self.path / name / fname
            if not f.exists() or f.stat().st_size != info["bytes"]:
                return None
        return record

    def mark_incomplete(self) -> None:
        """Remove the manifest: from now until ``write_manifest`` the store is incomplete."""
        (self.path / MANIFEST).unlink(missing_ok=True)

    def write_stage(
        self,
        name: str,
        key: str,
        *,
        arrays: Mapping[str, np.ndarray] | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        extra: Callable[[Path], None] | None = None,
        record: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one stage's outputs atomically and return its record (stage.json).

        ``extra(folder)`` may write more files (e.g. sprite sheets) into the stage's
        temporary folder; they are listed and checksummed like the rest.
        """
        with atomic_dir(self.path / name) as tmp:
            listing: dict[str, dict[str, Any]] = {}
            for stem, arr in (arrays or {}).items():
                fname = f"{stem}.npy"
                np.save(tmp / fname, np.ascontiguousarray(arr), allow_pickle=False)
                listing[fname] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
            for stem, table in (tables or {}).items():
                fname = f"{stem}.parquet"
                table.to_parquet(tmp / fname, index=False)
                listing[fname] = {"rows": len(table), "columns": [str(c) for c in table.columns]}
            if extra is not None:
                extra(tmp)
                # Files in sub-folders (a directory of parts) are listed by relative path.
                for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                    listing.setdefault(f.relative_to(tmp).as_posix(), {})
            check_stage(name, tmp, sorted(listing), self.dims, strict=True)
            for fname, info in listing.items():
                info["bytes"] = (tmp / fname).stat().st_size
                info["sha256"] = file_digest(tmp / fname)
            full = {**(record or {}), "stage": name, "key": key, "files": listing}
            (tmp / STAGE_META).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        return full

    def remove_stage(self, name: str) -> None:
        """Remove a stage folder that the current build no longer produces."""
        remove_dir_atomic(self.path / name)

    def stage_names(self) -> list[str]:
        """Names of the stage folders present (finished or stale)."""
        return sorted(
            c.name
            for c in self.path.iterdir()
            if c.is_dir() and c.name != SELECTIONS_DIR and (c / STAGE_META).exists()
        )

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Write manifest.json last, atomically: from here on the store is complete."""
        # Unsorted: stages stay in the order they ran.
        write_json_atomic(self.path / MANIFEST, dict(manifest), sort_keys=False)
