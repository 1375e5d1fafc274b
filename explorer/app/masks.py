"""Filter masks, cached so the same filters always give the same read-only array.

The render path caches sorted copies of a mask by the array's identity, so handing every
session the same object for the same filters makes filtered frames as fast as plain ones.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

ColumnMask = Callable[[str, Any], NDArray[np.bool_]]

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


class FilterMasks:
    """The AND of each filter's column mask, least recently used kept up to ``size``."""

    def __init__(self, n_points: int, column_mask: ColumnMask, size: int = 16) -> None:
        self._n = n_points
        self._column_mask = column_mask
        self._size = size
        self._lock = threading.Lock()
        self._masks: OrderedDict[str, NDArray[np.bool_]] = OrderedDict()

    def get(self, filters: Mapping[str, Any]) -> NDArray[np.bool_] | None:
        """(n,) read-only bool of the points ``filters`` keep, or None for no filter."""
        if not filters:
            return None
        key = json.dumps(canonical_filters(filters), sort_keys=True)
        with self._lock:
            hit = self._masks.get(key)
            if hit is not None:
                self._masks.move_to_end(key)
                return hit
        mask = np.ones(self._n, bool)
        for column, value in filters.items():
            mask &= self._column_mask(column, value)
        mask.setflags(write=False)
        with self._lock:
            mask = self._masks.setdefault(key, mask)
            while len(self._masks) > self._size:
                self._masks.popitem(last=False)
        return mask
