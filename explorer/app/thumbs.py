"""Thumbnails cut from the store's sprite sheets, as small PNG data URIs.

A cell's pixels are ``[row*size:(row+1)*size, col*size:(col+1)*size]`` of sheet
``cell // per_sheet`` with ``row, col = divmod(cell % per_sheet, per_side)`` (see
docs/store-format.md). Crops are cached by cell and sheets by number, so a hover costs
one dictionary look-up after the first time; all sessions of a process share the cache.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from explorer.store.reader import Store

_MAX_SHEETS = 4
_MAX_URIS = 8192


class Thumbnails:
    """Data URIs of point thumbnails from one store's sprite sheets."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.cells: NDArray[np.int32] = store.thumbnail_cells()
        summary = store.stage("thumbs").get("summary", {})
        self.size = int(summary["size"])
        self.per_sheet = int(summary["per_sheet"])
        self.per_side = math.isqrt(self.per_sheet)  # sheets are square
        self._sheets: OrderedDict[int, Image.Image] = OrderedDict()
        self._uris: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def has(self, row: int) -> bool:
        """Whether point ``row`` has a thumbnail."""
        return bool(self.cells[row] >= 0)

    def data_uri(self, row: int) -> str | None:
        """``data:image/png;base64,...`` of point ``row``'s thumbnail, or None without one."""
        cell = int(self.cells[row])
        if cell < 0:
            return None
        with self._lock:
            hit = self._uris.get(cell)
            if hit is not None:
                self._uris.move_to_end(cell)
                return hit
            uri = self._crop(cell)
            self._uris[cell] = uri
            while len(self._uris) > _MAX_URIS:
                self._uris.popitem(last=False)
        return uri

    def _sheet(self, sheet: int) -> Image.Image:
        img = self._sheets.get(sheet)
        if img is None:
            with Image.open(self._store.sprite_sheet_path(sheet)) as f:
                img = f.convert("RGBA")
            self._sheets[sheet] = img
            while len(self._sheets) > _MAX_SHEETS:
                self._sheets.popitem(last=False)
        else:
            self._sheets.move_to_end(sheet)
        return img

    def _crop(self, cell: int) -> str:
        sheet, slot = divmod(cell, self.per_sheet)
        img = self._sheet(sheet)
        row, col = divmod(slot, self.per_side)
        s = self.size
        tile = img.crop((col * s, row * s, (col + 1) * s, (row + 1) * s))
        buf = io.BytesIO()
        tile.save(buf, format="PNG", optimize=False)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
