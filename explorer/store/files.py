"""Opening a store's files: the manifest (checked for structure and version) and arrays
(memory-mapped through one handle, refused when truncated or damaged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from explorer.errors import (
    StageMissingError,
    StoreCorruptError,
    StoreError,
    StoreIncompleteError,
    StoreVersionError,
)
from explorer.store.format import FORMAT_NAME, FORMAT_VERSION, MANIFEST, STAGE_META


def load_array(path: Path, *, expected_bytes: int | None = None) -> np.ndarray:
    """Memory-map one ``.npy`` file read-only, refusing a truncated or damaged one."""
    if not path.exists():
        msg = f"{path} is missing; rebuild the store"
        raise StoreCorruptError(msg)
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        msg = (
            f"{path} is {size} bytes but the manifest says {expected_bytes}: the file is "
            "truncated or was changed; rebuild the store"
        )
        raise StoreCorruptError(msg)
    try:
        return map_npy(path)
    except (ValueError, OSError, EOFError) as exc:
        msg = f"{path} is not a readable .npy array ({exc}); rebuild the store"
        raise StoreCorruptError(msg) from exc


def read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from an open ``.npy`` file, left at its data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        msg = f"unsupported .npy version {version}"
        raise ValueError(msg)
    return tuple(int(v) for v in shape), bool(fortran), dtype


def map_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file read-only through ONE open handle.

    ``np.load(path, mmap_mode="r")`` opens the file by name twice (header, then data): a
    file replaced in between would be read as the old header over the new data.
    """
    with path.open("rb") as f:
        shape, fortran, dtype = read_npy_header(f)
        if dtype.hasobject:
            msg = "object arrays are not allowed"
            raise ValueError(msg)
        order: Literal["F", "C"] = "F" if fortran else "C"
        offset = f.tell()
        if int(np.prod(shape)) == 0:
            return np.empty(shape, dtype=dtype)  # mmap cannot map zero bytes
        mapped: np.ndarray = np.memmap(
            f,  # type: ignore[call-overload]
            dtype=dtype,
            mode="r",
            offset=offset,
            shape=shape,
            order=order,
        )
        return mapped


def read_stage_record(store: Path, stage: str) -> dict[str, Any]:
    """The ``stage.json`` of a finished stage folder (used while a build is running)."""
    meta = store / stage / STAGE_META
    if not meta.exists():
        msg = f"store {store} has no {stage!r} stage; run explorer build first"
        raise StageMissingError(msg)
    record: dict[str, Any] = json.loads(meta.read_text())
    return record


def read_stage_array(store: Path, stage: str, stem: str) -> np.ndarray:
    """One array of a finished stage, memory-mapped, checked against its stage.json."""
    record = read_stage_record(store, stage)
    info = record["files"].get(f"{stem}.npy")
    if info is None:
        msg = f"stage {stage!r} in {store} has no array {stem!r}"
        raise StageMissingError(msg)
    return load_array(store / stage / f"{stem}.npy", expected_bytes=info["bytes"])


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at ``path``, refused in one line when absent or damaged."""
    if not path.is_dir():
        msg = f"{path} is not a projection store (no such directory); run explorer build"
        raise StoreError(msg)
    mpath = path / MANIFEST
    if not mpath.exists():
        msg = (
            f"{path} is incomplete: it has no {MANIFEST}, so its build did not finish; "
            "rerun the same explorer build command to resume it"
        )
        raise StoreIncompleteError(msg)
    try:
        manifest: Any = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{mpath} is not readable JSON ({type(exc).__name__}); rebuild the store"
        raise StoreCorruptError(msg) from exc
    if not isinstance(manifest, dict):
        msg = (
            f"{mpath} holds a JSON {type(manifest).__name__}, not a store manifest; "
            "rebuild the store"
        )
        raise StoreCorruptError(msg)
    if manifest.get("format") != FORMAT_NAME:
        msg = f"{path} is not a projection store (its manifest has no format {FORMAT_NAME!r})"
        raise StoreError(msg)
    version = manifest.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        msg = (
            f"{path} has store format version {version}, newer than this explorer reads "
            f"({FORMAT_VERSION}); upgrade explorer"
        )
        raise StoreVersionError(msg)
    if version != FORMAT_VERSION or isinstance(version, bool):
        msg = (
            f"{mpath} has format_version {version!r}, not one this explorer reads "
            f"({FORMAT_VERSION}); the manifest is damaged or foreign: rebuild the store"
        )
        raise StoreCorruptError(msg)
    problem = _manifest_problem(manifest)
    if problem:
        msg = f"{mpath} is damaged: {problem}; rebuild the store"
        raise StoreCorruptError(msg)
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is structurally wrong with a manifest, or None."""
    n = manifest.get("n_points")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return f"n_points is {n!r}, not a positive integer"
    stages = manifest.get("stages")
    if not isinstance(stages, dict) or "validate" not in stages:
        return "it lists no stages (or no 'validate' stage)"
    for name, record in stages.items():
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict) or not all(
            isinstance(info, dict) and isinstance(info.get("bytes"), int) for info in files.values()
        ):
            return f"stage {name!r} has no valid file list"
    for kind in ("layouts", "scores", "partitions"):
        table = manifest.get(kind, {})
        if not isinstance(table, dict) or not all(
            isinstance(w, dict) and w.get("stage") in stages for w in table.values()
        ):
            return f"its {kind} do not point at stages of the store"
    return None
