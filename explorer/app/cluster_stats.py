"""Statistics on the cluster (``explorer.app.cluster``): what the panes show, computed by
tasks per partition that send back counts, a few values or row ids.

Legend colours (category counts, value spans), points per label and error rates of a
selection, exact medians and percentiles (radix histograms over float32 bit patterns: no
value leaves the workers), score histograms, top rows, rows in a value range, one row's
values, and the export of a selection's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.app import cluster_queries as queries
from explorer.app import cluster_tasks as tasks
from explorer.app.cluster_base import ColumnSummary
from explorer.app.cluster_masks import ClusterMasks
from explorer.app.coloring import TOP_CATEGORIES
from explorer.app.models.scores import top_rows
from explorer.render.colors import DEFAULT_PALETTE, OTHER_COLOR, CategoricalColor
from explorer.render.raster import NumericColor

_RADIX_BITS = (11, 11, 10)  # an exact order statistic of float32 values in three rounds


class ClusterStats(ClusterMasks):
    """Colours, counts, medians, score statistics and exports, computed on the workers."""

    _extents: dict[str, tuple[float, float, int]]

    # -- colour ------------------------------------------------------------------------------
    def category_counts(self, column: str) -> NDArray[np.int64]:
        """Points per label of a categorical column over all points (counted once)."""
        summary = self.summaries[column]
        if summary.counts is None:
            counts = self.selected_counts([column], None)[0]
            counts.setflags(write=False)
            summary = ColumnSummary(summary.key, summary.kind, summary.labels, counts)
            self.summaries[column] = summary
        assert summary.counts is not None
        return summary.counts

    def coloring(self, name: str) -> CategoricalColor | NumericColor | None:
        """The map's colouring of ``name`` as the in-process path makes it, without the
        per-point arrays (those stay on the workers): legend slots, or the value span."""
        summary = self.summaries.get(name)
        if not name or summary is None:
            return None
        if summary.kind == "numeric":
            lo, hi = self.percentiles(name, (1.0, 99.0))
            reduction: Literal["mean", "max", "min"] = (
                "max" if name.startswith("outlier") else "mean"
            )
            empty = np.zeros(0, np.float32)
            return NumericColor(empty, span=(lo, max(hi, lo)), reduction=reduction)
        counts = self.category_counts(name)
        order = np.argsort(-counts, kind="stable")
        shown = order[: min(TOP_CATEGORIES, len(summary.labels))]
        names = [summary.labels[c] for c in shown]
        colors = list(DEFAULT_PALETTE[: len(shown)])
        if len(summary.labels) > len(shown):
            names.append("other")
            colors.append(OTHER_COLOR)
        return CategoricalColor(
            np.zeros(0, np.uint8), np.arange(len(names)), tuple(names), tuple(colors)
        )

    def _slot_of_code(self, name: str) -> NDArray[np.intp]:
        summary = self.summaries[name]
        counts = self.category_counts(name)
        shown = np.argsort(-counts, kind="stable")[: min(TOP_CATEGORIES, len(summary.labels))]
        slot_of_code = np.full(len(summary.labels), len(shown), np.intp)
        slot_of_code[shown] = np.arange(len(shown))
        return slot_of_code

    def slots_of(self, column: str, rows: NDArray[np.int64]) -> NDArray[np.intp]:
        """The legend slot of each of ``rows`` (sorted unique) coloured by ``column``."""
        key = self.summaries[column].key
        rows = np.asarray(rows, np.int64)
        found = self._per_part(tasks.values_at, rows, key)
        got = np.concatenate([r for r, _ in found]) if found else np.zeros(0, np.int64)
        codes = np.concatenate([v for _, v in found]) if found else np.zeros(0, np.int32)
        codes = codes[np.argsort(got, kind="stable")]
        out: NDArray[np.intp] = self._slot_of_code(column)[codes]
        return out

    # -- statistics ----------------------------------------------------------------------------
    def selected_counts(
        self, columns: Sequence[str], rows: NDArray[np.int64] | None
    ) -> list[NDArray[np.int64]]:
        """Per categorical column, points per label among ``rows`` (all points for None)."""
        keys = tuple((self.summaries[c].key, len(self.summaries[c].labels)) for c in columns)
        sel = self._rows_future(rows)
        per_part = self._per_part(tasks.code_counts, sel, keys)
        return [
            np.sum([counts[i] for counts in per_part], axis=0).astype(np.int64)
            if per_part else np.zeros(n, np.int64)
            for i, (_, n) in enumerate(keys)
        ]  # fmt: skip

    def error_rate(self, rows: NDArray[np.int64] | None) -> float:
        """Mean error over the known points among ``rows`` (NaN when none is known)."""
        if not self.store.has_errors:
            return float("nan")
        sel = self._rows_future(rows)
        sums = self._per_part(tasks.error_sums, sel)
        total, count = sum(s for s, _ in sums), sum(c for _, c in sums)
        return total / count if count else float("nan")

    def order_statistics(
        self,
        names: Sequence[str],
        rows: NDArray[np.int64] | None,
        ranks: Callable[[int], list[int]],
    ) -> list[tuple[int, list[float]]]:
        """Per column: its number of finite values among ``rows`` (all for None) and the
        values at the 0-based ``ranks(count)`` in sorted order.

        Exact, and no value leaves the workers: three rounds of radix histograms over the
        float32 bit patterns (2048 bins a round), every column in the same tasks.
        """
        keys = [self.summaries[name].key for name in names]
        sel = self._rows_future(rows)
        # per column: (prefix, bits used, rank left) of each wanted rank
        targets: list[list[tuple[int, int, int]]] = [[(0, 0, -1)] for _ in keys]
        counts: list[int] = []
        for bits in _RADIX_BITS:
            wanted = tuple(
                (key, tuple(dict.fromkeys((p, u) for p, u, _ in t)))
                for key, t in zip(keys, targets, strict=True)
            )
            hists = self._per_part(tasks.digit_hist, sel, wanted, bits)
            nxt = []
            for c, (_, prefixes) in enumerate(wanted):
                total = {
                    pu: np.sum([h[c][i] for h in hists], axis=0) for i, pu in enumerate(prefixes)
                }
                if not counts or len(counts) <= c:
                    n = int(total[0, 0].sum()) if hists else 0
                    counts.append(n)
                    targets[c] = [(0, 0, r) for r in (ranks(n) if n else [])]
                column = []
                for prefix, used, rank in targets[c]:
                    cum = np.cumsum(total[prefix, used])
                    digit = int(np.searchsorted(cum, rank, side="right"))
                    below = int(cum[digit - 1]) if digit else 0
                    column.append(((prefix << bits) | digit, used + bits, rank - below))
                nxt.append(column)
            targets = nxt
        return [
            (n, [tasks.key_value(p) for p, _, _ in t]) for n, t in zip(counts, targets, strict=True)
        ]

    def medians(self, names: Sequence[str], rows: NDArray[np.int64] | None) -> list[float]:
        """``finite_median`` of each column among ``rows`` (all points for None)."""
        found = self.order_statistics(names, rows, lambda n: sorted({(n - 1) // 2, n // 2}))
        return [
            float(np.median(np.array(values, np.float32))) if n else float("nan")
            for n, values in found
        ]

    def median(self, name: str, rows: NDArray[np.int64] | None) -> float:
        """``finite_median`` of ``name`` among ``rows`` (all points for None)."""
        return self.medians([name], rows)[0]

    def percentiles(self, name: str, qs: tuple[float, ...]) -> tuple[float, ...]:
        """``np.percentile`` of the finite values of ``name`` at ``qs`` (over all points)."""
        h = np.true_divide(np.asarray(qs, np.float64), 100)

        def ranks(n: int) -> list[int]:
            virtual = h * (n - 1)
            low = np.floor(virtual).astype(np.int64)
            return sorted({*low.tolist(), *np.minimum(low + 1, n - 1).tolist()})

        ((count, values),) = self.order_statistics([name], None, ranks)
        if count == 0:
            return tuple(0.0 if q < 50 else 1.0 for q in qs)
        at = dict(zip(ranks(count), values, strict=True))
        out = []
        for v in h * (count - 1):
            lo = int(np.floor(v))
            pair = np.array([at[lo], at[min(lo + 1, count - 1)]], np.float32)
            out.append(float(np.quantile(pair, v - lo)))
        return tuple(out)

    def value_range(self, name: str) -> tuple[float, float]:
        """(min, max) of the finite values of ``name``; (0, 0) when none."""
        lo, hi, count = self._extent(name)
        return (lo, hi) if count else (0.0, 0.0)

    def _extent(self, name: str) -> tuple[float, float, int]:
        """(min, max, count) of the finite values of ``name``, in one round (kept: the
        values never change while the server runs)."""
        with self._lock:
            hit = self._extents.get(name)
        if hit is not None:
            return hit
        key = self.summaries[name].key
        found = self._per_part(queries.value_extent, key)
        found = [f for f in found if f[2]]
        extent = (
            (min(f[0] for f in found), max(f[1] for f in found), sum(f[2] for f in found))
            if found else (0.0, 0.0, 0)
        )  # fmt: skip
        with self._lock:
            self._extents[name] = extent
        return extent

    # -- scores and numeric columns: what the analytic panes show ---------------------------
    def histogram(
        self, name: str, rows: NDArray[np.int64] | None, edges: NDArray[np.float64]
    ) -> NDArray[np.int64]:
        """Counts per bin of ``edges`` of the finite values of ``name`` among ``rows``
        (all points for None), binned as ``models.scores.bin_numbers`` bins them."""
        key = self.summaries[name].key
        sel = self._rows_future(rows)
        edges = np.asarray(edges, np.float64)
        found = self._per_part(queries.hist_counts, sel, key, edges)
        return (
            np.sum(found, axis=0).astype(np.int64) if found else np.zeros(edges.size - 1, np.int64)
        )

    def top(self, name: str, count: int) -> NDArray[np.int64]:
        """The ``count`` rows with the highest value of ``name`` (``top_rows``'s order)."""
        key = self.summaries[name].key
        found = self._per_part(queries.top_in_part, key, count)
        rows = np.concatenate([r for r, _ in found]) if found else np.zeros(0, np.int64)
        values = np.concatenate([v for _, v in found]) if found else np.zeros(0, np.float32)
        order = np.argsort(rows, kind="stable")  # ties go to the lower row, as in process
        rows, values = rows[order], values[order]
        return rows[top_rows(values, count)]

    def values_of(self, name: str, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        """The value of ``name`` at each of ``rows`` (in their order)."""
        rows = np.asarray(rows, np.int64)
        wanted = np.unique(rows)
        key = self.summaries[name].key
        found = self._per_part(tasks.values_at, wanted, key)
        got = np.concatenate([r for r, _ in found]) if found else np.zeros(0, np.int64)
        values = np.concatenate([v for _, v in found]) if found else np.zeros(0, np.float32)
        values = np.asarray(values, np.float32)[np.argsort(got, kind="stable")]
        return values[np.searchsorted(wanted, rows)]

    def rows_in_range(
        self, name: str, lo: float, hi: float, *, below: bool = False
    ) -> NDArray[np.int64]:
        """Sorted rows whose value of ``name`` lies in ``[lo, hi]`` (``below``: under ``hi``)."""
        key = self.summaries[name].key
        found = self._per_part(queries.rows_in_range, key, lo, hi, below=below)
        return np.sort(np.concatenate(found)).astype(np.int64) if found else np.zeros(0, np.int64)

    def value_sums(self, name: str, threshold: float) -> tuple[float, int, int]:
        """(sum, count) of the finite values of ``name``, and how many are under ``threshold``."""
        key = self.summaries[name].key
        found = self._per_part(queries.value_sums, key, threshold)
        return (
            float(sum(s for s, _, _ in found)),
            sum(c for _, c, _ in found),
            sum(b for _, _, b in found),
        )

    def finite_count(self, name: str) -> int:
        """How many points have a finite value of ``name``."""
        return self._extent(name)[2]

    def point_rows(self, rows: NDArray[np.int64]) -> list[dict[str, Any]]:
        """The point table's ``rows`` (sorted unique) with their scores, read by a worker
        (only the row groups that hold them): a hover card's or a gallery's values."""
        from dask.delayed import delayed

        rows = np.unique(np.asarray(rows, np.int64))
        if rows.size == 0:
            return []
        found: list[dict[str, Any]] = self._run([delayed(queries.point_rows)(self._path, rows)])[0]
        return found

    # -- export ------------------------------------------------------------------------------
    def subset(
        self, rows: NDArray[np.int64], *, layouts: tuple[str, ...] = (), vectors: bool = False
    ) -> pd.DataFrame:
        """The point table at ``rows`` as ``explorer export`` writes it, gathered from the
        workers (each reads its partition's rows)."""
        from dask.delayed import delayed

        rows = np.unique(np.asarray(rows, np.int64))
        if rows.size == 0:
            empty: pd.DataFrame = self._run(
                [delayed(tasks.export_part)(self._path, 0, rows, layouts, vectors)]
            )[0]
            return empty
        sel = self._rows_future(rows)
        found = self._per_part(tasks.export_in_part, sel, self._path, layouts, vectors)
        found = [(r, t) for r, t in found if t is not None]
        got = np.concatenate([r for r, _ in found])
        table: pd.DataFrame = pd.concat([t for _, t in found], ignore_index=True)
        order = np.argsort(got, kind="stable")  # row order, whatever the partitioning
        if not np.array_equal(order, np.arange(order.size)):
            table = table.iloc[order].reset_index(drop=True)
        return table
