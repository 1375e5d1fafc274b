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
Only numpy, numba and pyarrow are imported: the app uses this module directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from explorer.errors import QueryError
from explorer.jit import njit

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
    ignore_case = _has_case(query)
    if regex:
        found = pc.match_substring_regex(array, pattern=query, ignore_case=ignore_case)
    else:
        found = pc.match_substring(array, pattern=query, ignore_case=ignore_case)
    return pc.fill_null(found, False)


def _match_mask(array: pa.Array, query: str, *, regex: bool) -> NDArray[np.bool_]:
    """``_match_array`` as a NumPy mask; a dictionary's matching values are looked up by
    code in NumPy (at 10M rows a third of the CPU of Arrow's take, fill and unpack)."""
    if not isinstance(array, pa.DictionaryArray):
        found = _match_array(array, query, regex=regex).to_numpy(zero_copy_only=False)
        return np.asarray(found, dtype=bool)
    on_values = _match_mask(array.dictionary, query, regex=regex)
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
        masks[i, start : start + len(array)] = _match_mask(array, query, regex=regex)

    workers = min(len(tasks), workers or os.cpu_count() or 1)
    if workers <= 1:
        for task in tasks:
            match(task)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(match, tasks))
    mask: NDArray[np.bool_] = np.logical_or.reduce(masks, axis=0)
    return mask


# -- text buffers ---------------------------------------------------------------------------

FOLDS_TO_ASCII = {"k": "\u212a", "s": "\u017f"}
"""Non-ASCII characters RE2's case folding matches to an ASCII letter (KELVIN SIGN, LONG S)."""
PAD_BYTES = 64
"""Zero bytes after the last row, so the kernel's 64-bit reads never leave the buffer."""
PAIR_SHARE_MAX = 1 / 24
"""The word-at-a-time kernel is used when the query's rarest byte pair is at most this
share of the text's pairs; else too many words hold a candidate and the byte-at-a-time
kernel is faster (10M rows, CPU time: ``eta``, rarest pair 3.2%, 187 against 250 ms;
``ta``, 5.7%, 265 against 162 ms)."""
VERIFY_SHARE_MAX = 0.25
"""A non-ASCII query whose ASCII run is in more rows than this share is matched by Arrow
over the whole column (checking the candidates would cost more)."""
TASK_ROWS = 1 << 18
"""Rows per kernel task: threads only for columns long enough to gain from them."""
_SAMPLE_SLICES = 16
_SAMPLE_BYTES = 1 << 16


@njit
def _find_bytes(data, offsets, r0, r1, q, out):  # type: ignore[no-untyped-def]
    """out[r] = True for rows r0..r1-1 whose bytes hold ``q``, testing each byte in turn."""
    m = q.size
    first = q[0]
    r = r0
    i = offsets[r0]
    last = offsets[r1] - m  # the last start a match could have
    while i <= last:
        if data[i] == first:
            while offsets[r + 1] <= i:
                r += 1
            if i + m <= offsets[r + 1]:  # a match must end inside the row
                k = 1
                while k < m and data[i + k] == q[k]:
                    k += 1
                if k == m:
                    out[r] = True
                    i = offsets[r + 1]  # one hit is enough: on to the next row
                    continue
        i += 1


@njit
def _find_pair(data, words, offsets, r0, r1, q, a, out):  # type: ignore[no-untyped-def]
    """As ``_find_bytes``, testing eight positions at once for the pair ``q[a], q[a + 1]``.

    ``words`` is ``data`` read as uint64 (little-endian); a word's bytes equal to the pair
    are found with the "has zero byte" trick, which may flag extra bytes (each candidate
    is checked in full) but never misses one.
    """
    m = q.size
    ones = np.uint64(0x0101010101010101)
    high = np.uint64(0x8080808080808080)
    want_a = np.uint64(q[a]) * ones
    want_b = np.uint64(q[a + 1]) * ones
    first = offsets[r0] + a  # anchor positions: first..last
    last = offsets[r1] - m + a
    r = r0
    w = first >> 3
    stop = min(last >> 3, words.size - 2)
    while w <= stop:
        x = words[w]
        y = (x >> np.uint64(8)) | (words[w + 1] << np.uint64(56))  # the bytes one further on
        v = (x ^ want_a) | (y ^ want_b)
        flags = (v - ones) & ~v & high
        if flags == 0:
            w += 1
            continue
        after = w + 1
        for b in range(8):
            if (flags >> np.uint64(8 * b + 7)) & np.uint64(1) == 0:
                continue
            i = (w << 3) + b
            if i < first or i > last:
                continue
            start = i - a
            while offsets[r + 1] <= start:
                r += 1
            if out[r] or start + m > offsets[r + 1]:
                continue
            k = 0
            while k < m and data[start + k] == q[k]:
                k += 1
            if k == m:
                out[r] = True
                after = max(after, (offsets[r + 1] + a) >> 3)  # on to the next row
        w = after
    if (stop + 1) << 3 <= last:  # a buffer without padding: the last bytes one by one
        r_tail = r
        while r_tail < r1 and offsets[r_tail + 1] - m + a < (stop + 1) << 3:
            r_tail += 1
        _find_bytes(data, offsets, r_tail, r1, q, out)


@dataclass(frozen=True)
class TextBuffer:
    """One text column made ready for fast case-insensitive substring search.

    data      : (bytes,) uint8, the column's UTF-8 text, ASCII letters lower-cased, rows
                one after another (nulls as empty), then ``PAD_BYTES`` zero bytes
    offsets   : (n + 1,) int32 or int64, row ``r`` is ``data[offsets[r]:offsets[r + 1]]``
    special   : sorted int64 rows holding KELVIN SIGN or LONG S (Arrow checks those)
    pair_share: (65536,) float64, share of each byte pair in a sample of the text
    text      : the column as text (Arrow), for the rows Arrow checks
    """

    data: NDArray[np.uint8]
    offsets: NDArray[Any]
    special: NDArray[np.int64]
    pair_share: NDArray[np.float64]
    text: pa.ChunkedArray
    _words: NDArray[np.uint64]

    @property
    def n_rows(self) -> int:
        """Rows of the column."""
        return int(self.offsets.size - 1)

    @property
    def nbytes(self) -> int:
        """Memory the buffer holds (text, offsets; the Arrow column is the caller's)."""
        return int(self.data.nbytes + self.offsets.nbytes + self.special.nbytes)

    def find(self, needle: bytes, *, workers: int | None = None) -> NDArray[np.bool_]:
        """(n,) bool: rows whose buffer bytes hold ``needle`` (already lower-cased)."""
        n = self.n_rows
        out = np.zeros(n, dtype=bool)
        if not needle or n == 0:
            return out
        q = np.frombuffer(needle, dtype=np.uint8).copy()
        anchor = -1
        if q.size >= 2:
            codes = q[:-1].astype(np.int64) * 256 + q[1:]
            shares = self.pair_share[codes]
            if shares.min() <= PAIR_SHARE_MAX:
                anchor = int(np.argmin(shares))
        tasks = max(1, min(_workers(workers), -(-n // TASK_ROWS)))
        bounds = np.linspace(0, n, tasks + 1).astype(np.int64)

        def scan(j: int) -> None:
            r0, r1 = int(bounds[j]), int(bounds[j + 1])
            if anchor >= 0:
                _find_pair(self.data, self._words, self.offsets, r0, r1, q, anchor, out)
            else:
                _find_bytes(self.data, self.offsets, r0, r1, q, out)

        _run(scan, tasks)
        return out


def _workers(workers: int | None) -> int:
    if workers:
        return max(1, workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run(task: Callable[[int], None], n_tasks: int) -> None:
    """``task(0..n_tasks - 1)``: on a thread pool when more than one (the kernels drop the
    GIL), the first in this thread."""
    if n_tasks <= 1:
        task(0)
        return
    with ThreadPoolExecutor(n_tasks - 1) as pool:
        futures = [pool.submit(task, j) for j in range(1, n_tasks)]
        task(0)
        for future in futures:
            future.result()


def text_buffer(column: pa.ChunkedArray, name: str = "column") -> TextBuffer | None:
    """``column`` as a ``TextBuffer``; None for a dictionary column (Arrow matches its
    values). Costs about one pass over the text (``benchmarks/query.py`` prints it).
    Raises QueryError for a column that cannot be read as text."""
    if pa.types.is_dictionary(column.type):
        return None
    text = _as_text(column, name)
    if isinstance(text, pa.Array):
        text = pa.chunked_array([text])
    sizes = sum(chunk.buffers()[2].size for chunk in text.chunks if chunk.buffers()[2])
    kind = pa.large_string() if sizes + PAD_BYTES >= 2**31 - 1 else pa.string()
    pad = pa.array(["\0" * PAD_BYTES], type=kind)
    chunks = [c.cast(kind) for c in pc.fill_null(text, "").chunks]
    lowered = pc.ascii_lower(pa.chunked_array([*chunks, pad], type=kind)).combine_chunks()
    n = len(text)
    buffers = lowered.buffers()
    width = 8 if kind == pa.large_string() else 4
    offsets = np.frombuffer(
        buffers[1], dtype=np.int64 if width == 8 else np.int32, count=len(lowered) + 1,
        offset=lowered.offset * width,
    )[: n + 1]  # fmt: skip
    data = np.frombuffer(buffers[2], dtype=np.uint8)
    words = np.frombuffer(buffers[2], dtype=np.uint64, count=data.size // 8)
    data = data[: int(offsets[-1]) + PAD_BYTES]
    partial = TextBuffer(data, offsets, np.zeros(0, np.int64), _pair_share(data), text, words)
    special = np.zeros(n, dtype=bool)
    for sign in FOLDS_TO_ASCII.values():
        special |= partial.find(sign.encode())
    return TextBuffer(
        data, offsets, np.flatnonzero(special).astype(np.int64), partial.pair_share, text, words
    )


def _pair_share(data: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Share of each byte pair (first * 256 + second) in slices spread over ``data``."""
    size = data.size - PAD_BYTES
    if size < 2:
        return np.zeros(65536)
    step = max(_SAMPLE_BYTES, size // _SAMPLE_SLICES)
    counts = np.zeros(65536, dtype=np.int64)
    for start in range(0, size - 1, step):
        part = data[start : min(size, start + _SAMPLE_BYTES)].astype(np.int64)
        counts += np.bincount(part[:-1] * 256 + part[1:], minlength=65536)
    return counts / max(1, int(counts.sum()))


_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _buffer_mask(
    buffer: TextBuffer, query: str, *, workers: int | None
) -> NDArray[np.bool_] | None:
    """(n,) bool of the rows where Arrow's substring match would find ``query``, or None
    when Arrow should match the whole column."""
    ignore_case = _has_case(query)
    if not ignore_case:  # no letters: an exact byte match, in either matcher
        return buffer.find(query.encode(), workers=workers)
    if query.isascii():
        needle = query.lower()
        mask = buffer.find(needle.encode(), workers=workers)
        if buffer.special.size and any(c in needle for c in FOLDS_TO_ASCII):
            mask[buffer.special] = _arrow_rows(buffer, buffer.special, query)
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
    mask[rows] = _arrow_rows(buffer, rows, query)
    return mask


def _arrow_rows(buffer: TextBuffer, rows: NDArray[np.int64], query: str) -> NDArray[np.bool_]:
    """Arrow's case-insensitive match of ``query`` on ``rows`` of the column only."""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    picked = buffer.text.take(pa.array(rows)).combine_chunks()
    found = _match_array(picked, query, regex=False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _has_case(query: str) -> bool:
    """Whether ``query`` has letters with case (else both matchers compare bytes exactly)."""
    return query.lower() != query.upper()


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
        _check_pattern(query)
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
            by_arrow.append(_as_text(table.column(name), name))
        else:
            mask |= found
    if by_arrow:
        mask |= _match_columns(by_arrow, query, n, regex=regex, workers=workers)
    if id_column is not None:
        same = _id_mask(table.column(id_column), query)
        if same is not None:
            mask |= same.to_numpy()
    rows = np.flatnonzero(mask).astype(np.int64)
    count = int(rows.size)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    return SearchResult(rows, count)
