"""Find points by their text or id: a case-insensitive substring or regex over string columns.

Two matchers give the same rows (``tests/store/test_search_buffer.py`` holds them equal on
hostile text):

- **Text buffers** for plain substrings, when the caller keeps a ``TextBuffer`` per column
  (the app does, in ``StoreResources``): the column's UTF-8 bytes with ASCII letters
  lower-cased, in one contiguous buffer with the row offsets. A numba kernel looks for the
  query's rarest two-byte pair eight bytes at a time (in a 64-bit word, "SWAR"), checks
  the whole query at each candidate, counts a hit only inside one row and then skips to
  the next row. About 4-8x less CPU than Arrow's matcher (``benchmarks/query.py``).
- **Arrow compute** (RE2, no Python loop over rows) for regular expressions, dictionary
  (categorical) columns, matched on their distinct values only, and queries the buffer
  cannot settle. Columns are cut into slices of ``SLICE_ROWS`` matched on a thread pool
  (Arrow releases the GIL).

Why the buffer gives Arrow's rows: Arrow's case-insensitive match (RE2's Unicode simple
case folding) lets an ASCII letter of the query match only itself in either case, plus
KELVIN SIGN (U+212A) for ``k`` and LONG S (U+017F) for ``s`` (checked over every code
point by the tests). Bytes of an ASCII query can only meet ASCII bytes of the text, never
the middle of a multi-byte character. So an ASCII query is found exactly in the lowered
buffer, except in the few rows holding one of those two signs, which Arrow checks. A query
without letters is matched exactly by both. Any other query is looked for by its longest
ASCII run in the buffer, and Arrow checks only the rows that hold it.

The jobs live in modules of their own: ``search_arrow`` (Arrow's matcher),
``search_buffer`` (building a text buffer) and ``search_kernels`` (its numba kernels);
this module plans a query over them. Only numpy, numba and pyarrow are imported: the app
uses these modules directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from explorer.errors import QueryError
from explorer.store.search_arrow import (
    as_text,
    check_pattern,
    has_case,
    id_mask,
    match_columns,
)
from explorer.store.search_buffer import (
    FOLDS_TO_ASCII,
    VERIFY_SHARE_MAX,
    TextBuffer,
    arrow_rows,
    text_buffer,
)


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


_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _buffer_mask(
    buffer: TextBuffer, query: str, *, workers: int | None
) -> NDArray[np.bool_] | None:
    """(n,) bool of the rows where Arrow's substring match would find ``query``, or None
    when Arrow should match the whole column."""
    ignore_case = has_case(query)
    if not ignore_case:  # no letters: an exact byte match, in either matcher
        return buffer.find(query.encode(), workers=workers)
    if query.isascii():
        needle = query.lower()
        mask = buffer.find(needle.encode(), workers=workers)
        if buffer.special.size and any(c in needle for c in FOLDS_TO_ASCII):
            mask[buffer.special] = arrow_rows(buffer, buffer.special, query)
        return mask
    run = max(_ASCII_RUN.findall(query), key=len, default="").lower()
    if len(run) < 2:
        return None
    candidates = buffer.find(run.encode(), workers=workers)
    if any(c in run for c in FOLDS_TO_ASCII):
        candidates[buffer.special] = True
    rows = np.flatnonzero(candidates)
    if rows.size > VERIFY_SHARE_MAX * buffer.n_rows:
        return None
    mask = np.zeros(buffer.n_rows, dtype=bool)
    mask[rows] = arrow_rows(buffer, rows, query)
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
    buffers: Callable[[str], TextBuffer | None] | None = None,
) -> SearchResult:
    """Rows of ``table`` where any of ``columns`` contains ``query`` (ignoring case).

    With ``regex=True`` the query is an RE2 regular expression (searched, not anchored),
    also case-insensitive. When ``id_column`` is given, rows whose id equals the query
    exactly match too. An empty query matches nothing. ``limit`` caps the rows returned,
    not ``count``. ``workers`` threads match slices of the columns at once (default: one
    per core). ``buffers(name)`` gives a column's ``TextBuffer`` (kept by the caller, e.g.
    ``StoreResources.search_buffer``) for the fast plain search; the rows are the same
    without it. Raises QueryError for a bad regex or an unknown column.
    """
    n = table.num_rows
    if not query:
        return SearchResult(np.empty(0, np.int64), 0)
    if regex:
        check_pattern(query)
    names = list(columns) + ([id_column] if id_column is not None else [])
    missing = [c for c in names if c not in table.column_names]
    if missing:
        msg = f"no column {missing[0]!r} to search (columns: {', '.join(table.column_names)})"
        raise QueryError(msg)
    mask = np.zeros(n, dtype=bool)
    by_arrow = []
    for name in columns:
        buffer = buffers(name) if buffers is not None and not regex else None
        found = None if buffer is None else _buffer_mask(buffer, query, workers=workers)
        if found is None:
            by_arrow.append(as_text(table.column(name), name))
        else:
            mask |= found
    if by_arrow:
        mask |= match_columns(by_arrow, query, n, regex=regex, workers=workers)
    if id_column is not None:
        same = id_mask(table.column(id_column), query)
        if same is not None:
            mask |= same.to_numpy()
    rows = np.flatnonzero(mask).astype(np.int64)
    count = int(rows.size)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    return SearchResult(rows, count)


__all__ = [
    "FOLDS_TO_ASCII",
    "SearchResult",
    "TextBuffer",
    "search_rows",
    "text_buffer",
]
