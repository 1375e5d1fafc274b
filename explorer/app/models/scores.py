"""Per-point scores (outlier, local intrinsic dimension, layout trust) for the panes.

Histograms are computed over stored bin edges, once for all points and again for the
selection only (``np.bincount`` over precomputed bin numbers: one pass over the selection).
With the points on a Dask cluster (``attach_cluster``) every answer is computed there and
only the small result comes back (bin counts, top rows, a quantile, sums): the web process
reads no score array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from explorer.app.models.cache import BoundedCache
from explorer.magnitude import SelectionMagnitude
from explorer.store.reader import Store

if TYPE_CHECKING:
    from explorer.app.cluster import ClusterPoints

OUTLIER = "outlier"
LOCAL_ID = "lid"
N_BINS = 40


@dataclass(frozen=True, eq=False)
class Histogram:
    """Bin edges (m+1,) and counts (m,) of a score over every point with a value."""

    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    bins: NDArray[np.int16] | None  # (n,) each point's bin, -1 missing; None on a cluster


def finite_median(values: NDArray[np.floating]) -> float:
    """The median of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def bin_numbers(values: NDArray[np.floating], edges: NDArray[np.float64]) -> NDArray[np.int16]:
    """Each value's bin among ``edges`` (m+1,): 0..m-1, the last bin closed; -1 for NaN."""
    finite = np.isfinite(values)
    bins = np.full(values.size, -1, np.int16)
    m = edges.size - 1
    bins[finite] = np.clip(np.searchsorted(edges, values[finite], side="right") - 1, 0, m - 1)
    return bins


def top_rows(values: NDArray[np.floating], count: int) -> NDArray[np.int64]:
    """Positions of the ``count`` highest values, highest first; ties: lower position
    first (so the answer is the same however the values are split); NaN never."""
    key = np.where(np.isnan(values), -np.inf, np.asarray(values, np.float64))
    count = min(count, key.size)
    if count == 0:
        return np.zeros(0, np.int64)
    threshold = key[np.argpartition(-key, count - 1)[:count]].min()
    above = np.flatnonzero(key > threshold)
    tied = np.flatnonzero(key == threshold)[: count - above.size]
    idx = np.concatenate([above, tied])
    idx = idx[~np.isnan(values[idx])]
    out: NDArray[np.int64] = idx[np.lexsort((idx, -key[idx]))].astype(np.int64)
    return out


class ScoreModel:
    """Histograms, ranges and top points of the stored per-point scores."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._hists: BoundedCache[Histogram] = BoundedCache(8)
        # Answers over all points, kept: the scores never change while the server runs,
        # and on a cluster each is a pass over every partition.
        self._whole_set: BoundedCache[Any] = BoundedCache(64)
        self._whole: SelectionMagnitude | None = None
        self.cluster: ClusterPoints | None = None

    def attach_cluster(self, cluster: ClusterPoints) -> None:
        """Answer from ``cluster`` from now on (``explorer serve --dask``)."""
        self.cluster = cluster
        self._hists.clear()

    def has(self, name: str) -> bool:
        """Whether the store has the per-point score ``name``."""
        return name in self._store.scores

    def values(self, name: str) -> NDArray[np.float32]:
        """(n,) float32 values of a score (NaN = none)."""
        return np.asarray(self._store.score(name))

    def histogram(self, name: str) -> Histogram:
        """The score's histogram over all points (``N_BINS`` equal bins over its range)."""

        def make() -> Histogram:
            if self.cluster is not None:
                lo, hi = self.cluster.value_range(name)
                edges = _edges(lo, hi, finite=self.cluster.finite_count(name) > 0)
                return Histogram(edges, self.cluster.histogram(name, None, edges), None)
            v = self.values(name)
            finite = np.isfinite(v)
            lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0, 1)
            edges = _edges(lo, hi, finite=bool(finite.any()))
            bins = bin_numbers(v, edges)
            counts = np.bincount(bins[finite], minlength=N_BINS).astype(np.int64)
            return Histogram(edges, counts, bins)

        return self._hists.get(name, make)

    def selected_counts(self, name: str, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """(N_BINS,) histogram counts of the rows ``rows``."""
        hist = self.histogram(name)
        if rows.size == 0:  # nothing selected: no pass over anything
            return np.zeros(N_BINS, np.int64)
        if self.cluster is not None or hist.bins is None:
            assert self.cluster is not None
            return self.cluster.histogram(name, rows, hist.edges)
        bins = hist.bins[rows]
        counts: NDArray[np.int64] = np.bincount(bins[bins >= 0], minlength=N_BINS).astype(np.int64)
        return counts

    def top(self, name: str, count: int) -> NDArray[np.int64]:
        """The ``count`` rows with the highest score, highest first (ties: lower row
        first; NaN never)."""
        cluster = self.cluster
        if cluster is not None:
            found: NDArray[np.int64] = self._whole_set.get(
                ("top", name, count), lambda: cluster.top(name, count)
            )
            found.setflags(write=False)  # shared by every session
            return found
        return top_rows(self.values(name), count)

    def values_at(self, name: str, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        """The score of each of ``rows`` (sorted unique or not: in their order)."""
        rows = np.asarray(rows, np.int64)
        if self.cluster is not None:
            return self.cluster.values_of(name, rows)
        return np.asarray(self.values(name)[rows], np.float32)

    def quantile(self, name: str, q: float) -> float:
        """``np.quantile`` of the score's finite values at ``q`` (NaN when there are none)."""
        cluster = self.cluster
        if cluster is not None:
            if cluster.finite_count(name) == 0:
                return float("nan")
            value: float = self._whole_set.get(
                ("quantile", name, q), lambda: cluster.percentiles(name, (100 * q,))[0]
            )
            return value
        v = self.values(name)
        finite = v[np.isfinite(v)]
        # q as an array: interpolated in float64, as the cluster's percentiles are
        return float(np.quantile(finite, [q])[0]) if finite.size else float("nan")

    def share_below(self, name: str, threshold: float) -> tuple[float, float] | None:
        """(mean, share of points under ``threshold``) of the finite values; None if none."""
        cluster = self.cluster
        if cluster is not None:
            total, count, below = self._whole_set.get(
                ("sums", name, threshold), lambda: cluster.value_sums(name, threshold)
            )
        else:
            v = self.values(name)
            v = v[np.isfinite(v)]
            total = float(v.sum(dtype=np.float64))
            count, below = int(v.size), int(np.count_nonzero(v < threshold))
        return (total / count, below / count) if count else None

    def median(self, name: str, rows: NDArray[np.int64]) -> float:
        """Median of the score over ``rows``, ignoring NaN (the whole set's: resources)."""
        if self.cluster is not None:
            return self.cluster.median(name, rows)
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


def _edges(lo: float, hi: float, *, finite: bool) -> NDArray[np.float64]:
    """``N_BINS`` equal bins over ``[lo, hi]`` (``[0, 1]`` without a finite value)."""
    if not finite:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, N_BINS + 1)
