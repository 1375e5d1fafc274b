"""The stored slices and the saved selections, as the slice table reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.app.models.cache import BoundedCache
from explorer.store.reader import Store

# Columns the table shows, in order, when the store has them.
# What tells slices apart first; the longer text last (the table scrolls sideways).
TABLE_COLUMNS = (
    "name", "size", "error_rate", "lift", "lower_bound", "kind", "description", "related",
)  # fmt: skip


class SliceModel:
    """Slices ranked best first, with saved selections; members by name."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._members: BoundedCache[NDArray[np.int64]] = BoundedCache(64)

    @property
    def available(self) -> bool:
        """Whether the store has a slices stage (saved selections are listed either way)."""
        return self._store.has_stage("slices")

    def table(self, kind: str | None = None) -> pd.DataFrame:
        """The ranked slices (and saved selections, re-read: another session may save)."""
        if self.available:
            table = self._store.slices(kind)
        else:
            names = self._store.selections()
            sizes = [len(self._store.selection(s)) for s in names]
            table = pd.DataFrame({"name": names, "kind": "saved", "size": sizes})
            if kind is not None:
                table = table[table["kind"] == kind]
        cols = [c for c in TABLE_COLUMNS if c in table.columns]
        return table[cols].reset_index(drop=True)

    def kinds(self) -> list[str]:
        """The kinds of slice present (metadata, conjunction, cluster, embedding, saved...)."""
        return sorted(set(self.table()["kind"]))

    def members(self, name: str) -> NDArray[np.int64]:
        """Sorted int64 rows of a slice (or of a saved selection) by name."""
        if not self.available:
            return self._store.selection(name)
        return self._members.get(name, lambda: self._store.slice_members(name))

    def forget_saved(self) -> None:
        """Drop cached members (a saved selection may have been replaced)."""
        self._members.clear()
