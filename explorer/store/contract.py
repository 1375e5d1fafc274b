"""Checking a stage's files against their declarations in ``format.STAGE_FILES``.

The writer checks every stage before renaming it into place (a file it does not declare,
or of the wrong dtype or shape, is a bug caught before it reaches a store); the reader
checks every stage on open. Both read only headers: a ``.npy`` header and a Parquet
footer per file, so a check costs milliseconds whatever the store's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from explorer.errors import StoreCorruptError
from explorer.store.files import read_npy_header
from explorer.store.format import STAGE_FILES, STAGE_META, FileSpec, file_spec

_SYMBOL = re.compile(r"^([a-z])(?:\+(\d+))?$")


def npy_header(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """dtype and shape from a ``.npy`` file's header (reads a few hundred bytes)."""
    with path.open("rb") as f:
        shape, _, dtype = read_npy_header(f)
    return dtype, shape


def _table_header(path: Path) -> tuple[tuple[int, ...], list[str]]:
    meta = pq.read_metadata(path)
    return (int(meta.num_rows),), [str(c) for c in meta.schema.to_arrow_schema().names]


def _dims_text(dims: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in dims.items())


def match_shape(
    rule: tuple[str | int, ...], shape: tuple[int, ...], bound: dict[str, int]
) -> str | None:
    """None when ``shape`` fits ``rule`` (binding new symbols in ``bound``), else why not."""
    if len(rule) != len(shape):
        return f"has {len(shape)} dimensions, expected {len(rule)}"
    for want, got in zip(rule, shape, strict=True):
        if want == "*":
            continue
        if isinstance(want, int):
            expected = want
        else:
            m = _SYMBOL.match(want)
            if m is None:
                msg = f"bad shape rule {want!r} in explorer/store/format.py"
                raise ValueError(msg)
            symbol, plus = m.group(1), int(m.group(2) or 0)
            if symbol not in bound:
                bound[symbol] = got - plus
                continue
            expected = bound[symbol] + plus
        if got != expected:
            return f"has shape {shape}, expected {rule} with {_dims_text(bound)}"
    return None


def _check_file(path: Path, spec: FileSpec, bound: dict[str, int]) -> str | None:
    """None when the file fits its declaration, else what is wrong."""
    if spec.kind == "image":
        return None
    if spec.kind == "array":
        dtype, shape = npy_header(path)
        if spec.dtype is not None and dtype != np.dtype(spec.dtype):
            return f"has dtype {dtype}, expected {spec.dtype}"
        return match_shape(spec.shape, shape, bound)
    rows, columns = _table_header(path)
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        return f"lacks the column(s) {', '.join(missing)}"
    return match_shape(spec.shape, rows, bound)


def stage_problems(
    stage: str, folder: Path, files: Iterable[str], dims: Mapping[str, int], *, strict: bool
) -> list[tuple[Path, str]]:
    """(file, what is wrong) for each of ``files`` in ``folder`` that breaks the contract.

    strict : also report files the stage does not declare (the writer; a reader skips
             them, so a store written by a newer minor version still opens).
    """
    specs = STAGE_FILES.get(stage)
    if specs is None:
        if strict:
            return [(folder, f"stage {stage!r} is not declared in explorer/store/format.py")]
        return []
    names = [f for f in files if f != STAGE_META]
    problems: list[tuple[Path, str]] = []
    for spec in specs:
        if spec.required and "*" not in spec.name and spec.name not in names:
            problems.append((folder / spec.name, "is missing"))
    bound = dict(dims)
    for fname in names:
        declared = file_spec(stage, fname)
        if declared is None:
            if strict:
                problems.append((folder / fname, "is not declared in explorer/store/format.py"))
            continue
        try:
            why = _check_file(folder / fname, declared, bound)
        except (OSError, ValueError, EOFError) as exc:
            why = f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
        if why is not None:
            problems.append((folder / fname, why))
    return problems


def check_stage(
    stage: str, folder: Path, files: Iterable[str], dims: Mapping[str, int], *, strict: bool
) -> None:
    """Raise ``StoreCorruptError`` (one line: the first bad file and why) if any breaks."""
    problems = stage_problems(stage, folder, files, dims, strict=strict)
    if problems:
        path, why = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        if strict:
            msg = (
                f"stage {stage!r} breaks the store format: {path.name} {why}{more} "
                "(nothing was written; a bug, please report it)"
            )
        else:
            msg = f"{path} {why}{more}; the store is damaged: rebuild it"
        raise StoreCorruptError(msg)
