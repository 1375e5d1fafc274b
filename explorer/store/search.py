"""Find points by their text or id: a case-insensitive substring or regex over string columns.

Arrow compute does the matching (RE2 underneath, no Python loop over rows). Columns are cut
into slices of ``SLICE_ROWS`` matched on a thread pool (Arrow releases the GIL), so the time
divides by the cores the machine has. Dictionary (categorical) columns are matched on their
distinct values only, then mapped to rows.
Only numpy and pyarrow are imported: the app uses this module directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from explorer.errors import QueryError

SLICE_ROWS = 1 << 19
"""Rows matched per task: large enough that a task's overhead is noise, small enough to
spread 10M rows over 16 cores."""


@dataclass(frozen=True)
class SearchResult:
    """The rows that match a search.

    rows  : sorted unique int64 row numbers (at most ``limit`` of them)
    count : how many rows match in all (before ``limit``)
    """

    rows: NDArray[np.int64]
    count: int

    @property
    def truncated(self) -> bool:
        """True when ``limit`` cut the rows short of ``count``."""
        return len(self.rows) < self.count


def _as_text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """String, large string or dictionary-of-string columns as they are; others as text."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        msg = f"column {name!r} holds {column.type}, which cannot be searched as text"
        raise QueryError(msg) from exc


def _match_array(array: pa.Array, query: str, *, regex: bool) -> pa.BooleanArray:
    """Per-row match (nulls as False) of one chunk; dictionaries match their values once."""
    if isinstance(array, pa.DictionaryArray):
        on_values = _match_array(array.dictionary, query, regex=regex)
        hits = pc.take(on_values, array.indices)
        return pc.fill_null(hits, False)
    # A query without letters has no case: the plain search skips RE2 (about 1.6× faster).
    ignore_case = query.lower() != query.upper()
    if regex:
        found = pc.match_substring_regex(array, pattern=query, ignore_case=ignore_case)
    else:
        found = pc.match_substring(array, pattern=query, ignore_case=ignore_case)
    return pc.fill_null(found, False)


def _slices(column: pa.ChunkedArray) -> Iterator[tuple[int, pa.Array]]:
    """(first row, array) pieces of a column, each at most ``SLICE_ROWS`` long."""
    start = 0
    for chunk in column.chunks:
        for offset in range(0, len(chunk), SLICE_ROWS):
            yield start + offset, chunk.slice(offset, SLICE_ROWS)
        start += len(chunk)


def _id_mask(column: pa.ChunkedArray, query: str) -> pa.ChunkedArray | None:
    """Rows whose id equals ``query`` exactly (compared as a number for numeric ids)."""
    kind = column.type
    if pa.types.is_integer(kind):
        try:
            value: object = int(query.strip())
        except ValueError:
            return None
    elif pa.types.is_floating(kind):
        try:
            value = float(query.strip())
        except ValueError:
            return None
    else:
        column = _as_text(column, "id")
        value = query
    return pc.fill_null(pc.equal(column, pa.scalar(value)), False)


def _check_pattern(query: str) -> None:
    """A bad regex is one QueryError line, found before scanning millions of rows."""
    probe = pa.array([""], pa.string())
    try:
        pc.match_substring_regex(probe, pattern=query, ignore_case=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "invalid pattern"
        msg = f"bad regular expression {query!r}: {reason}"
        raise QueryError(msg) from exc


def _match_columns(
    texts: list[pa.ChunkedArray], query: str, n: int, *, regex: bool, workers: int | None
) -> NDArray[np.bool_]:
    """Rows where any of ``texts`` matches, the slices matched on a thread pool."""
    # One mask row per column: each task writes its own block, so no two threads ever
    # update the same bytes.
    masks = np.zeros((len(texts), n), dtype=bool)
    tasks = [(i, *piece) for i, column in enumerate(texts) for piece in _slices(column)]

    def match(task: tuple[int, int, pa.Array]) -> None:
        i, start, array = task
        found = _match_array(array, query, regex=regex)
        masks[i, start : start + len(array)] = found.to_numpy(zero_copy_only=False)

    workers = min(len(tasks), workers or os.cpu_count() or 1)
    if workers <= 1:
        for task in tasks:
            match(task)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(match, tasks))
    mask: NDArray[np.bool_] = np.logical_or.reduce(masks, axis=0)
    return mask


def search_rows(
    table: pa.Table,
    query: str,
    *,
    columns: Sequence[str],
    regex: bool = False,
    limit: int | None = None,
    id_column: str | None = None,
    workers: int | None = None,
) -> SearchResult:
    """Rows of ``table`` where any of ``columns`` contains ``query`` (ignoring case).

    With ``regex=True`` the query is an RE2 regular expression (searched, not anchored),
    also case-insensitive. When ``id_column`` is given, rows whose id equals the query
    exactly match too. An empty query matches nothing. ``limit`` caps the rows returned,
    not ``count``. ``workers`` threads match slices of the columns at once (default: one
    per core). Raises QueryError for a bad regex or an unknown column.
    """
    n = table.num_rows
    if not query:
        return SearchResult(np.empty(0, np.int64), 0)
    if regex:
        _check_pattern(query)
    names = list(columns) + ([id_column] if id_column is not None else [])
    missing = [c for c in names if c not in table.column_names]
    if missing:
        msg = f"no column {missing[0]!r} to search (columns: {', '.join(table.column_names)})"
        raise QueryError(msg)
    texts = [_as_text(table.column(name), name) for name in columns]
    mask = _match_columns(texts, query, n, regex=regex, workers=workers)
    if id_column is not None:
        same = _id_mask(table.column(id_column), query)
        if same is not None:
            mask |= same.to_numpy()
    rows = np.flatnonzero(mask).astype(np.int64)
    count = int(rows.size)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    return SearchResult(rows, count)
