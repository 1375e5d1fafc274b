"""Per-point scores (outlier, local intrinsic dimension, layout trust) for the panes.

Histograms are computed over stored bin edges, once for all points and again for the
selection only (``np.bincount`` over precomputed bin numbers: one pass over the selection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app.models.cache import BoundedCache
from explorer.magnitude import SelectionMagnitude
from explorer.store.reader import Store

OUTLIER = "outlier"
LOCAL_ID = "lid"
N_BINS = 40


@dataclass(frozen=True, eq=False)
class Histogram:
    """Bin edges (m+1,) and counts (m,) of a score over every point with a value."""

    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    bins: NDArray[np.int16]  # (n,) each point's bin, -1 for a missing value


def finite_median(values: NDArray[np.floating]) -> float:
    """The median of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


class ScoreModel:
    """Histograms, ranges and top points of the stored per-point scores."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._hists: BoundedCache[Histogram] = BoundedCache(8)
        self._whole: SelectionMagnitude | None = None

    def has(self, name: str) -> bool:
        """Whether the store has the per-point score ``name``."""
        return name in self._store.scores

    def values(self, name: str) -> NDArray[np.float32]:
        """(n,) float32 values of a score (NaN = none)."""
        return np.asarray(self._store.score(name))

    def histogram(self, name: str) -> Histogram:
        """The score's histogram over all points (``N_BINS`` equal bins over its range)."""

        def make() -> Histogram:
            v = self.values(name)
            finite = np.isfinite(v)
            lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0, 1)
            if hi <= lo:
                hi = lo + 1.0
            edges = np.linspace(lo, hi, N_BINS + 1)
            bins = np.full(v.size, -1, np.int16)
            bins[finite] = np.clip(
                np.searchsorted(edges, v[finite], side="right") - 1, 0, N_BINS - 1
            )
            counts = np.bincount(bins[finite], minlength=N_BINS).astype(np.int64)
            return Histogram(edges, counts, bins)

        return self._hists.get(name, make)

    def selected_counts(self, name: str, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """(N_BINS,) histogram counts of the rows ``rows``."""
        bins = self.histogram(name).bins[rows]
        counts: NDArray[np.int64] = np.bincount(bins[bins >= 0], minlength=N_BINS).astype(np.int64)
        return counts

    def top(self, name: str, count: int) -> NDArray[np.int64]:
        """The ``count`` rows with the highest score, highest first (NaN never)."""
        v = np.nan_to_num(self.values(name).astype(np.float64), nan=-np.inf)
        count = min(count, v.size)
        if count == 0:
            return np.zeros(0, np.int64)
        part = np.argpartition(-v, count - 1)[:count]
        return part[np.argsort(-v[part], kind="stable")].astype(np.int64)

    def median(self, name: str, rows: NDArray[np.int64]) -> float:
        """Median of the score over ``rows``, ignoring NaN (the whole set's: resources)."""
        return finite_median(self.values(name)[rows])

    def summary(self, stage: str) -> dict[str, Any]:
        """A stage's stored summary (global ID, outlier scale, ...), {} without the stage."""
        if not self._store.has_stage(stage):
            return {}
        summary: dict[str, Any] = self._store.stage(stage).get("summary", {})
        return summary

    def magnitude(self, rows: NDArray[np.int64] | None) -> SelectionMagnitude | None:
        """The magnitude (effective number of distinct points) of ``rows``, or of all points
        when None (computed once); None when the store has no outliers stage (no scale)."""
        if not self._store.has_stage("outliers") or (rows is not None and rows.size == 0):
            return None
        if rows is None:
            if self._whole is None:
                self._whole = self._store.magnitude(np.arange(self._store.n_points))
            return self._whole
        return self._store.magnitude(rows)
