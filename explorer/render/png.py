"""A minimal, fast PNG writer for frames (the browser decodes it; no points leave the server).

Pillow's PNG encoder picks a filter per row, which costs ~55 ms for an 800 × 800 frame
even at ``compress_level=1``; our frames are mostly flat colour and transparent zeros,
so filter type 0 ("None") with zlib level 1 is both faster (~14 ms) and smaller (300 KB
against 450 KB for a dense 10-category frame, measured). The file is a plain 8-bit RGBA
PNG: signature, IHDR, one IDAT, IEND.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgba: NDArray[np.uint32], *, compress_level: int = 1) -> bytes:
    """PNG bytes of a frame (h, w) uint32, top row first.

    The frame's row 0 is the bottom of the view (Bokeh's ``image_rgba`` layout), so rows
    are flipped. ``compress_level`` is zlib's 0-9; 1 is the fast setting.
    """
    h, w = rgba.shape
    rows = np.zeros((h, w * 4 + 1), np.uint8)  # a leading 0 per row: filter "None"
    rows[:, 1:] = rgba.view(np.uint8).reshape(h, w * 4)[::-1]
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level))
        + _chunk(b"IEND", b"")
    )
