"""A point as the app shows it: its card (heading, record, text, thumbnail) and captions.

In process the values come from the loaded point table; with ``explorer serve --dask`` a
worker reads the row (the row group that holds it) and the last ``POINTS_KEPT`` rows asked
for are kept here, so a hover card or a gallery costs one round trip, not one per field.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from explorer.app.columns import display_value
from explorer.app.thumbs import Thumbnails

if TYPE_CHECKING:
    from explorer.app.resources import StoreResources

TITLE_NAMES = ("title", "name", "headline", "caption", "subject")
SCORE_LABELS = {"trust": "layout trust", "lid": "local ID", "outlier": "outlier score"}
POINTS_KEPT = 256  # rows' values kept from the workers (hover cards, galleries)


class PointCards:
    """Single points of one store, for every session of the process."""

    def __init__(self, resources: StoreResources) -> None:
        self._res = resources
        self._lock = threading.Lock()
        self._points: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._sheets: Thumbnails | None = None

    @property
    def thumbnails(self) -> Thumbnails | None:
        """The sprite-sheet thumbnails, when the store has them."""
        if not self._res.store.has_thumbnails:
            return None
        with self._lock:
            if self._sheets is None:
                self._sheets = Thumbnails(self._res.store)
            return self._sheets

    def thumbnail(self, row: int) -> str | None:
        """A PNG data URI of point ``row``'s thumbnail, or None."""
        return None if self.thumbnails is None else self.thumbnails.data_uri(row)

    @property
    def title_column(self) -> str | None:
        """A short, title-like text column to lead a point's card with (text stores)."""
        for info in self._res.columns.values():
            if info.kind in ("text", "categorical") and info.name.lower() in TITLE_NAMES:
                return info.name
        return None

    def point(self, row: int) -> dict[str, Any]:
        """Point ``row``'s point-table values and scores (Python values), by name.

        In process a slice of the loaded table; on a cluster read by a worker (the row
        group that holds it) and kept among the last ``POINTS_KEPT`` rows asked for.
        """
        if self._res.cluster is None:
            out: dict[str, Any] = self._res.table.slice(row, 1).to_pylist()[0]
            for name in self._res.store.scores:
                out[name] = float(self._res.values(name)[row])
            return out
        with self._lock:
            hit = self._points.get(row)
            if hit is not None:
                self._points.move_to_end(row)
                return hit
        self.fetch_points(np.array([row], np.int64))
        with self._lock:
            return self._points[row]

    def fetch_points(self, rows: NDArray[np.int64]) -> None:
        """On a cluster: read ``rows``' values in one trip (a gallery's), for ``point``."""
        if self._res.cluster is None:
            return
        with self._lock:
            wanted = np.unique(np.asarray(rows, np.int64)[:POINTS_KEPT])
            wanted = np.array([r for r in wanted.tolist() if r not in self._points], np.int64)
        if wanted.size == 0:
            return
        found = self._res.cluster.point_rows(wanted)
        with self._lock:
            for r, values in zip(wanted.tolist(), found, strict=True):
                self._points[r] = values
            while len(self._points) > POINTS_KEPT:
                self._points.popitem(last=False)

    def _value(self, row: int, column: str) -> Any:
        if self._res.cluster is not None:
            return self.point(row)[column]
        return self._res.table.column(column)[row].as_py()

    def heading(self, row: int) -> str:
        """What a point is called: its title when the store has one, else its id."""
        column = self.title_column
        if column is not None:
            value = display_value(self._value(row, column))
            if value:
                return value if len(value) <= 120 else value[:119] + "…"
        return self.label_of(row)

    def record(self, row: int) -> dict[str, str]:
        """Point ``row``'s metadata and scores as text, id first.

        Image paths, the title (the card's heading) and the text (shown above the table)
        are left out, so nothing is said twice.
        """
        values = self.point(row)
        out = {self._res.id_column: display_value(values[self._res.id_column])}
        skip = {self.title_column, self._res.text_column}
        for info in self._res.columns.values():
            if info.kind not in ("id", "image") and info.name not in skip:
                out[info.name] = display_value(values[info.name])
        for name in self._res.store.scores:
            value = float(values[name])
            kind, _, layout = name.partition(":")
            label = SCORE_LABELS.get(kind, kind) + (f" ({layout})" if layout else "")
            out[label] = (
                f"{value:.3g}" if np.isfinite(value) else "n/a"
            )  # fmt: skip
        return out

    def text(self, row: int, limit: int = 300) -> str | None:
        """The start of point ``row``'s text column, or None without one."""
        column = self._res.text_column
        if column is None:
            return None
        text = display_value(self._value(row, column))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def label_of(self, row: int) -> str:
        """Point ``row``'s id as text."""
        return display_value(self._value(row, self._res.id_column))
