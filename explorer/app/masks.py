"""Filter masks, cached so the same filters always give the same read-only mask.

In process a mask is an (n,) bool array: the render path caches sorted copies of it by the
array's identity, so handing every session the same object for the same filters makes
filtered frames as fast as plain ones. With the points on a Dask cluster a mask is a
``RemoteMask``: the filters, their key and how many points they keep, the flags staying on
the workers; it answers only what a session asks (which of these rows are kept, the kept
rows outside the selection, points per hierarchy leaf). ``MaskCache`` is the one lookup
both kinds share: a key per spelling of the filters, least recently used dropped first.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

ColumnMask = Callable[[str, Any], NDArray[np.bool_]]
T = TypeVar("T")

# The filter key of a SQL condition (``filters={"sql:where": ["label = '7'"]}``): no column
# name of a store holds a ':' followed by this word by accident.
WHERE_FILTER = "sql:where"


def canonical_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Filters in one spelling: numeric ranges as two floats, category sets sorted."""
    out: dict[str, Any] = {}
    for column, value in filters.items():
        if (
            isinstance(value, tuple | list)
            and len(value) == 2
            and not any(isinstance(v, str) for v in value)
        ):
            out[column] = [float(value[0]), float(value[1])]
        else:
            out[column] = sorted(str(v) for v in value)
    return out


def filters_key(filters: Mapping[str, Any]) -> str:
    """The cache key of ``filters``: one text per meaning, whatever the spelling."""
    return json.dumps(canonical_filters(filters), sort_keys=True)


class MaskCache(Generic[T]):
    """What each set of filters made, by ``filters_key``, least recently used dropped first."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        """The item made for ``key`` (now the most recently used), or None."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: str, item: T) -> T:
        """Keep ``item`` for ``key``; the one already kept wins a race (same object for all)."""
        with self._lock:
            item = self._items.setdefault(key, item)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return item

    def items(self) -> list[tuple[str, T]]:
        """A snapshot of the kept (key, item) pairs, oldest first."""
        with self._lock:
            return list(self._items.items())


class RemoteMask(ABC):
    """A filter mask whose flags live elsewhere (on a Dask cluster).

    filters : the canonical filters; key : their ``filters_key``; count : points kept;
    n_points : points in the store.
    """

    def __init__(self, filters: Mapping[str, Any], count: int, n_points: int) -> None:
        self.filters = canonical_filters(filters)
        self.key = filters_key(filters)
        self.count = int(count)
        self.n_points = int(n_points)

    @abstractmethod
    def kept(self, rows: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of ``rows`` (sorted unique) the filters keep, (m,) bool."""

    @abstractmethod
    def kept_except(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """Every kept row not in ``rows`` (sorted unique), sorted."""

    @abstractmethod
    def leaf_counts(self, n_nodes: int) -> NDArray[np.int64]:
        """Kept points per hierarchy node, counted at each point's leaf, (n_nodes,)."""

    @abstractmethod
    def to_array(self) -> NDArray[np.bool_]:
        """The whole (n,) bool mask, gathered here: for tests and scripts, never the app."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        return self.to_array() if dtype is None else self.to_array().astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key}: {self.count:,} of {self.n_points:,})"


Mask = NDArray[np.bool_] | RemoteMask


def count_kept(mask: Mask) -> int:
    """How many points ``mask`` keeps."""
    return mask.count if isinstance(mask, RemoteMask) else int(np.count_nonzero(mask))


def kept_among(mask: Mask, rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which of ``rows`` (sorted unique int64) ``mask`` keeps."""
    if isinstance(mask, RemoteMask):
        return mask.kept(rows)
    kept: NDArray[np.bool_] = mask[rows]
    return kept


class FilterMasks:
    """The AND of each filter's column mask, least recently used kept up to ``size``."""

    def __init__(self, n_points: int, column_mask: ColumnMask, size: int = 16) -> None:
        self._n = n_points
        self._column_mask = column_mask
        self._cache: MaskCache[NDArray[np.bool_]] = MaskCache(size)

    def get(self, filters: Mapping[str, Any]) -> NDArray[np.bool_] | None:
        """(n,) read-only bool of the points ``filters`` keep, or None for no filter."""
        if not filters:
            return None
        key = filters_key(filters)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        mask = np.ones(self._n, bool)
        for column, value in filters.items():
            mask &= self._column_mask(column, value)
        mask.setflags(write=False)
        return self._cache.put(key, mask)
