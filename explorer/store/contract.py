"""Checking a stage's files against their declarations in ``format.STAGE_FILES``.

The writer checks every stage before renaming it into place (a file it does not declare,
or of the wrong dtype or shape, is a bug caught before it reaches a store); the reader
checks every stage on open. Both read only headers: a ``.npy`` header and a Parquet
footer per file, so a check costs milliseconds whatever the store's size.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from explorer.errors import StoreCorruptError
from explorer.store.files import read_npy_header
from explorer.store.format import (
    PART_X,
    PART_Y,
    PARTITION_TABLE_COLUMNS,
    STAGE_FILES,
    STAGE_META,
    FileSpec,
    file_spec,
)

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
    parts: dict[tuple[FileSpec, str], list[str]] = {}
    for fname in names:
        declared = file_spec(stage, fname)
        if declared is None:
            if strict:
                problems.append((folder / fname, "is not declared in explorer/store/format.py"))
            continue
        if declared.kind == "parts":
            parts.setdefault((declared, fname.split("/")[0]), []).append(fname)
            continue
        try:
            why = _check_file(folder / fname, declared, bound)
        except (OSError, ValueError, EOFError) as exc:
            why = f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
        if why is not None:
            problems.append((folder / fname, why))
    for spec in specs:
        problems += _indexes_without_parts(folder, spec, names, parts)
    for (spec, dirname), part_files in parts.items():
        problems += parts_problems(folder, spec, dirname, part_files, dims)
    return problems


def _indexes_without_parts(
    folder: Path, spec: FileSpec, names: list[str], parts: Mapping[tuple[FileSpec, str], Any]
) -> list[tuple[Path, str]]:
    """A partition table whose directory has no parts in ``names``."""
    if spec.kind != "parts" or spec.index is None:
        return []
    index_rule = spec.index.format("*")
    out = []
    for fname in names:
        if "/" not in fname and fnmatch.fnmatchcase(fname, index_rule):
            dirname = fname.removesuffix(index_rule.removeprefix("*"))
            if (spec, dirname) not in parts:
                out.append((folder / fname, f"lists parts but {dirname}/ has none"))
    return out


def _read_index(path: Path) -> pd.DataFrame | str:
    """A partition table, or why it cannot be used."""
    if not path.exists():
        return "is missing (it lists the parts)"
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        return f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    missing = [c for c in PARTITION_TABLE_COLUMNS if c not in table.columns]
    if missing:
        return f"lacks the column(s) {', '.join(missing)}"
    return table


def _stat_range(meta: Any, column: str) -> tuple[float, float] | None:
    """(min, max) of a column over all row groups, from a Parquet footer's statistics."""
    index = [meta.schema.column(j).path for j in range(meta.num_columns)].index(column)
    lo, hi = np.inf, -np.inf
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if meta.row_group(g).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:
            return None
        lo, hi = min(lo, float(stats.min)), max(hi, float(stats.max))
    return lo, hi


def _part_problem(path: Path, spec: FileSpec, row: Any) -> str | None:
    """Why one part disagrees with its row of the partition table, or None."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError) as exc:
        return f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    columns = [meta.schema.column(j).path for j in range(meta.num_columns)]
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        return f"lacks the column(s) {', '.join(missing)}"
    if meta.num_rows != int(row.rows):
        return f"has {meta.num_rows} rows but its partition table says {int(row.rows)}"
    for col, lo, hi in ((PART_X, row.x0, row.x1), (PART_Y, row.y0, row.y1)):
        got = _stat_range(meta, col)
        if got is None:
            return f"has no min/max statistics for {col}, so its bounds cannot be checked"
        if not lo <= got[0] <= got[1] <= hi:
            return (
                f"has {col} in [{got[0]:g}, {got[1]:g}], outside its recorded bounds "
                f"[{lo:g}, {hi:g}]"
            )
    return None


def parts_problems(
    folder: Path, spec: FileSpec, dirname: str, part_files: list[str], dims: Mapping[str, int]
) -> list[tuple[Path, str]]:
    """(file, what is wrong) for a directory of parts against its partition table.

    Every listed part exists and every part is listed; each part's rows and x/y extent
    (its footer's statistics: no data is read) agree with its row of the table, and the
    rows of all parts add up to the declared shape (n: each point once).
    """
    assert spec.index is not None
    index = folder / spec.index.format(dirname)
    table = _read_index(index)
    if isinstance(table, str):
        return [(index, table)]
    problems: list[tuple[Path, str]] = []
    listed = {str(f) for f in table["file"]}
    for fname in sorted(listed - set(part_files)):
        problems.append((folder / fname, f"is missing (listed in {index.name})"))
    for fname in sorted(set(part_files) - listed):
        problems.append((folder / fname, f"is not listed in {index.name}"))
    if problems:
        return problems
    for row in table.itertuples(index=False):
        why = _part_problem(folder / str(row.file), spec, row)
        if why is not None:
            problems.append((folder / str(row.file), why))
    total = int(table["rows"].sum())
    why = match_shape(spec.shape, (total,), dict(dims))
    if why is not None:
        problems.append((index, f"lists parts holding {total} rows in all ({why})"))
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
