"""The numba kernels of ``TextBuffer.find`` (``explorer.store.search_buffer``): which rows
of a text buffer hold a byte string, one byte at a time or eight at a time ("SWAR")."""

from __future__ import annotations

import numpy as np

from explorer.jit import njit


@njit
def find_bytes(data, offsets, r0, r1, q, out):  # type: ignore[no-untyped-def]
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
def find_pair(data, words, offsets, r0, r1, q, a, out):  # type: ignore[no-untyped-def]
    """As ``find_bytes``, testing eight positions at once for the pair ``q[a], q[a + 1]``.

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
        find_bytes(data, offsets, r_tail, r1, q, out)
