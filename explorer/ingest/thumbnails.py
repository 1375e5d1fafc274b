"""Image thumbnails packed into sprite sheets, so the app never opens the originals.

A sheet is a PNG grid of ``per_side × per_side`` cells of ``size × size`` pixels; point
i's thumbnail is cell ``cell[i]`` (sheet ``cell // per_side²``, slot ``cell % per_side²``,
row-major), or -1 when it has no readable image.
"""

from __future__ import annotations

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


def _thumbnail(path: Path, size: int) -> Image.Image | None:
    try:
        with Image.open(path) as opened:
            im = opened.convert("RGBA")
            w, h = im.size
            scale = size / max(w, h)
            new = (max(1, round(w * scale)), max(1, round(h * scale)))
            # Small images (e.g. 8×8 digits) are enlarged with hard pixel edges.
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            return im.resize(new, resample)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def write_sprite_sheets(
    paths: Sequence[Path | None],
    folder: Path,
    *,
    size: int = 48,
    per_side: int = 32,
    on_progress: Callable[[float], None] | None = None,
) -> NDArray[np.int32]:
    """Write sheets ``sheet-0000.png``… into ``folder``; return each point's cell (or -1)."""
    per_sheet = per_side * per_side
    cells = np.full(len(paths), -1, dtype=np.int32)
    sheet: Image.Image | None = None
    sheet_no, slot = 0, 0
    for i, path in enumerate(paths):
        thumb = None if path is None else _thumbnail(path, size)
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
