"""Text buffers: a text column made ready for fast case-insensitive substring search.

A column's UTF-8 bytes with ASCII letters lower-cased, in one contiguous buffer with the
row offsets. A numba kernel (``explorer.store.search_kernels``) looks for the query's
rarest two-byte pair eight bytes at a time, checks the whole query at each candidate,
counts a hit only inside one row and then skips to the next row. About 4-8x less CPU than
Arrow's matcher (``benchmarks/query.py``). Why it finds Arrow's rows: see
``explorer.store.search``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from explorer.store.search_arrow import as_text, match_array
from explorer.store.search_kernels import find_bytes, find_pair

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
                find_pair(self.data, self._words, self.offsets, r0, r1, q, anchor, out)
            else:
                find_bytes(self.data, self.offsets, r0, r1, q, out)

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
    text = as_text(column, name)
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


def arrow_rows(buffer: TextBuffer, rows: NDArray[np.int64], query: str) -> NDArray[np.bool_]:
    """Arrow's case-insensitive match of ``query`` on ``rows`` of the column only."""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    picked = buffer.text.take(pa.array(rows)).combine_chunks()
    found = match_array(picked, query, regex=False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
