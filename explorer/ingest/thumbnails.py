"""Image thumbnails packed into sprite sheets, so the app never opens the originals.

A sheet is a PNG grid of ``per_side × per_side`` cells of ``size × size`` pixels; point
i's thumbnail is cell ``cell[i]`` (sheet ``cell // per_side²``, slot ``cell % per_side²``,
row-major), or -1 when it has no readable image.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from explorer.store.format import SPRITE_SHEET


def image_paths(column: pd.Series, root: Path) -> list[Path | None]:
    """Resolve each value of the image column under ``root`` (validated earlier)."""
    base = root.resolve()
    out: list[Path | None] = []
    for value in column:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        else:
            out.append((base / str(value)).resolve())
    return out


# Pillow refuses images above twice this many pixels (a "decompression bomb": a small
# file that decodes to gigabytes); we refuse anything above it, per image, and count it.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
MAX_FILE_BYTES = 64 << 20
READ_TIMEOUT_SECONDS = 10.0


# Reasons an image gives no thumbnail, counted in the build summary.
MISSING, UNREADABLE, NOT_REGULAR = "missing", "unreadable", "not a regular file"
TOO_LARGE, TIMED_OUT = "too large", "timed out"


class ImageProblem(Exception):
    """Why one image gives no thumbnail (a count in the build summary, not an error)."""


def _read_regular_file(path: Path) -> bytes:
    # O_NONBLOCK: opening a FIFO or device never waits; fstat on the open descriptor then
    # checks what was opened, so a file swapped for a FIFO after a check is still caught.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageProblem(MISSING) from None
    except OSError:
        raise ImageProblem(UNREADABLE) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageProblem(NOT_REGULAR)
        if info.st_size > MAX_FILE_BYTES:
            raise ImageProblem(TOO_LARGE)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError:
        raise ImageProblem(UNREADABLE) from None
    finally:
        os.close(fd)


def read_image_bytes(path: Path, timeout: float = READ_TIMEOUT_SECONDS) -> bytes:
    """A regular file's bytes, read in a daemon thread given ``timeout`` seconds (a hung
    network mount costs one image, not the build)."""
    box: list[bytes | ImageProblem] = []

    def work() -> None:
        try:
            box.append(_read_regular_file(path))
        except ImageProblem as exc:
            box.append(exc)

    reader = threading.Thread(target=work, name="explorer-image-read", daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise ImageProblem(TIMED_OUT)
    if isinstance(box[0], ImageProblem):
        raise box[0]
    return box[0]


def _thumbnail(path: Path, size: int) -> Image.Image:
    data = read_image_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            w, h = opened.size  # from the header, before decoding anything
            if w * h > MAX_PIXELS:
                raise ImageProblem(TOO_LARGE)
            im = opened.convert("RGBA")
    except Image.DecompressionBombError:
        raise ImageProblem(TOO_LARGE) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        raise ImageProblem(UNREADABLE) from None
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Small images (e.g. 8×8 digits) are enlarged with hard pixel edges.
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return im.resize(new, resample)


def write_sprite_sheets(
    paths: Sequence[Path | None],
    folder: Path,
    *,
    size: int = 48,
    per_side: int = 32,
    on_progress: Callable[[float], None] | None = None,
    problems: Counter[str] | None = None,
) -> NDArray[np.int32]:
    """Write sheets ``sheet-0000.png``… into ``folder``; return each point's cell (or -1).

    problems : counts, by reason, of the images that gave no thumbnail (missing, not a
               regular file, too large, unreadable, timed out).
    """
    per_sheet = per_side * per_side
    cells = np.full(len(paths), -1, dtype=np.int32)
    sheet: Image.Image | None = None
    sheet_no, slot = 0, 0
    for i, path in enumerate(paths):
        thumb = None
        if path is not None:
            try:
                thumb = _thumbnail(path, size)
            except ImageProblem as exc:
                if problems is not None:
                    problems[str(exc)] += 1
        if thumb is not None:
            if sheet is None:
                sheet = Image.new("RGBA", (per_side * size, per_side * size), (0, 0, 0, 0))
            r, c = divmod(slot, per_side)
            offset = ((size - thumb.width) // 2, (size - thumb.height) // 2)
            sheet.paste(thumb, (c * size + offset[0], r * size + offset[1]))
            cells[i] = sheet_no * per_sheet + slot
            slot += 1
            if slot == per_sheet:
                sheet.save(folder / SPRITE_SHEET.format(sheet_no), optimize=False)
                sheet, sheet_no, slot = None, sheet_no + 1, 0
        if on_progress is not None and i % 1000 == 0:
            on_progress(i / max(len(paths), 1))
    if sheet is not None:
        sheet.save(folder / SPRITE_SHEET.format(sheet_no), optimize=False)
    return cells
