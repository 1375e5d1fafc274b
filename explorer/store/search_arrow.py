"""Text matching with Arrow compute (RE2, no Python loop over rows): the matcher for
regular expressions, dictionary (categorical) columns, matched on their distinct values
only, and queries a text buffer cannot settle (see ``explorer.store.search``). Columns
are cut into slices of ``SLICE_ROWS`` matched on a thread pool (Arrow releases the GIL).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from explorer.errors import QueryError

SLICE_ROWS = 1 << 19
"""Rows matched per task: large enough that a task's overhead is noise, small enough to
spread 10M rows over 16 cores."""


def as_text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
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


def match_array(array: pa.Array, query: str, *, regex: bool) -> pa.BooleanArray:
    """Per-row match (nulls as False) of one chunk; dictionaries match their values once."""
    if isinstance(array, pa.DictionaryArray):
        on_values = match_array(array.dictionary, query, regex=regex)
        hits = pc.take(on_values, array.indices)
        return pc.fill_null(hits, False)
    # A query without letters has no case: the plain search skips RE2 (about 1.6× faster).
    ignore_case = has_case(query)
    if regex:
        found = pc.match_substring_regex(array, pattern=query, ignore_case=ignore_case)
    else:
        found = pc.match_substring(array, pattern=query, ignore_case=ignore_case)
    return pc.fill_null(found, False)


def match_mask(array: pa.Array, query: str, *, regex: bool) -> NDArray[np.bool_]:
    """``match_array`` as a NumPy mask; a dictionary's matching values are looked up by
    code in NumPy (at 10M rows a third of the CPU of Arrow's take, fill and unpack)."""
    if not isinstance(array, pa.DictionaryArray):
        found = match_array(array, query, regex=regex).to_numpy(zero_copy_only=False)
        return np.asarray(found, dtype=bool)
    on_values = match_mask(array.dictionary, query, regex=regex)
    if not on_values.any():
        return np.zeros(len(array), dtype=bool)
    indices = pc.fill_null(array.indices, 0) if array.null_count else array.indices
    hits: NDArray[np.bool_] = on_values[indices.to_numpy()]
    if array.null_count:
        hits &= array.is_valid().to_numpy(zero_copy_only=False)
    return hits


def _slices(column: pa.ChunkedArray) -> Iterator[tuple[int, pa.Array]]:
    """(first row, array) pieces of a column, each at most ``SLICE_ROWS`` long."""
    start = 0
    for chunk in column.chunks:
        for offset in range(0, len(chunk), SLICE_ROWS):
            yield start + offset, chunk.slice(offset, SLICE_ROWS)
        start += len(chunk)


def id_mask(column: pa.ChunkedArray, query: str) -> pa.ChunkedArray | None:
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
        column = as_text(column, "id")
        value = query
    return pc.fill_null(pc.equal(column, pa.scalar(value)), False)


def check_pattern(query: str) -> None:
    """A bad regex is one QueryError line, found before scanning millions of rows."""
    probe = pa.array([""], pa.string())
    try:
        pc.match_substring_regex(probe, pattern=query, ignore_case=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "invalid pattern"
        msg = f"bad regular expression {query!r}: {reason}"
        raise QueryError(msg) from exc


def match_columns(
    texts: list[pa.ChunkedArray], query: str, n: int, *, regex: bool, workers: int | None
) -> NDArray[np.bool_]:
    """Rows where any of ``texts`` matches, the slices matched on a thread pool."""
    # One mask row per column: each task writes its own block, so no two threads ever
    # update the same bytes.
    masks = np.zeros((len(texts), n), dtype=bool)
    tasks = [(i, *piece) for i, column in enumerate(texts) for piece in _slices(column)]

    def match(task: tuple[int, int, pa.Array]) -> None:
        i, start, array = task
        masks[i, start : start + len(array)] = match_mask(array, query, regex=regex)

    workers = min(len(tasks), workers or os.cpu_count() or 1)
    if workers <= 1:
        for task in tasks:
            match(task)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(match, tasks))
    mask: NDArray[np.bool_] = np.logical_or.reduce(masks, axis=0)
    return mask


def has_case(query: str) -> bool:
    """Whether ``query`` has letters with case (else both matchers compare bytes exactly)."""
    return query.lower() != query.upper()
