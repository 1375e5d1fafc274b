"""What runs on the Dask workers to answer the panes (``explorer.app.cluster``): filter
masks asked about by row, score histograms, top rows, rows in a value range, sums, points
and positions per hierarchy leaf, a few rows of the point table. Each takes a partition
(x, y and the columns, indexed by row) and small arguments and sends back row ids, counts
or a few values, never a column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.app.cluster_tasks import KEEP_META, as_flags, in_sorted, keep_of, opened_store
from explorer.app.models.scores import bin_numbers, top_rows


def keep_of_rows(
    part: pd.DataFrame, tests: tuple[tuple[str, str, Any], ...], rows: NDArray[np.int64]
) -> pd.Series:
    """``keep_of``'s tests, and only among ``rows`` (sorted unique: a SQL condition's rows)."""
    keep = keep_of(part, tests).to_numpy(bool) & in_sorted(part.index.to_numpy(np.int64), rows)
    return pd.Series(keep, index=part.index, name=KEEP_META.name)


def kept_count(keep: pd.Series) -> int:
    return int(np.count_nonzero(keep.to_numpy(bool)))


def kept_among(keep: pd.Series, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """The partition's kept rows among ``rows`` (sorted unique)."""
    index = keep.index.to_numpy(np.int64)
    take = keep.to_numpy(bool) & in_sorted(index, rows)
    return index[take]


def kept_except(keep: pd.Series, rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """The partition's kept rows that are not among ``rows`` (sorted unique)."""
    index = keep.index.to_numpy(np.int64)
    take = keep.to_numpy(bool) & ~in_sorted(index, rows)
    return index[take]


def leaf_stats(
    part: pd.DataFrame, keep: pd.Series | None, rows: NDArray[np.int64] | None, path: str,
    n_nodes: int, *, sums: bool = False,
) -> NDArray[np.float64]:  # fmt: skip
    """Per hierarchy node, of the partition's points that ``keep`` keeps and are among
    ``rows`` (None: all), counted at each point's leaf: (1, n_nodes) counts, or with
    ``sums`` (4, n_nodes) counts, finite positions, sum of x, sum of y."""
    index = part.index.to_numpy(np.int64)
    take = np.ones(index.size, bool)
    flags = as_flags(keep)
    if flags is not None:
        take &= flags
    if rows is not None:
        take &= in_sorted(index, rows)
    leaf = np.asarray(opened_store(path).array("hierarchy", "leaf")[index[take]], np.int64)
    counts = np.bincount(leaf, minlength=n_nodes).astype(np.float64)
    if not sums:
        return counts[None]
    x = part["x"].to_numpy(np.float64)[take]
    y = part["y"].to_numpy(np.float64)[take]
    ok = np.isfinite(x) & np.isfinite(y)
    at = leaf[ok]
    return np.stack([
        counts, np.bincount(at, minlength=n_nodes).astype(np.float64),
        np.bincount(at, weights=x[ok], minlength=n_nodes),
        np.bincount(at, weights=y[ok], minlength=n_nodes),
    ])  # fmt: skip


def _values(part: pd.DataFrame, key: str, rows: NDArray[np.int64] | None) -> NDArray[Any]:
    v = part[key].to_numpy()
    return v if rows is None else v[in_sorted(part.index.to_numpy(np.int64), rows)]


def hist_counts(
    part: pd.DataFrame, rows: NDArray[np.int64] | None, key: str, edges: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Counts per bin of ``edges`` of the partition's finite values (among ``rows``)."""
    bins = bin_numbers(_values(part, key, rows), edges)
    return np.bincount(bins[bins >= 0], minlength=edges.size - 1).astype(np.int64)


def top_in_part(
    part: pd.DataFrame, key: str, count: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The partition's ``count`` rows with the highest value (``top_rows``'s order)."""
    v = part[key].to_numpy(np.float32)
    local = top_rows(v, count)
    return part.index.to_numpy(np.int64)[local], v[local]


def rows_in_range(
    part: pd.DataFrame, key: str, lo: float, hi: float, *, below: bool = False
) -> NDArray[np.int64]:
    """Rows whose value lies in ``[lo, hi]`` (``below``: under ``hi``), in the partition."""
    v = part[key].to_numpy()
    take = v < hi if below else (v >= lo) & (v <= hi)
    out: NDArray[np.int64] = part.index.to_numpy(np.int64)[take]
    return out


def value_sums(part: pd.DataFrame, key: str, threshold: float) -> tuple[float, int, int]:
    """(sum, count) of the partition's finite values, and how many are below ``threshold``."""
    v = part[key].to_numpy()
    v = v[np.isfinite(v)]
    return float(v.sum(dtype=np.float64)), int(v.size), int(np.count_nonzero(v < threshold))


def point_rows(path: str, rows: NDArray[np.int64]) -> list[dict[str, Any]]:
    """The point table's rows ``rows`` (sorted unique) with every score, as Python values:
    only the row groups that hold them are read."""
    store = opened_store(path)
    pf = pq.ParquetFile(store.table_path("validate", "points"))
    meta = pf.metadata
    sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
    ends = np.cumsum(sizes)
    groups = np.unique(np.searchsorted(ends, rows, side="right"))
    table = pf.read_row_groups([int(g) for g in groups])
    starts = ends - sizes
    # each row's place in the concatenated groups
    before = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])
    place = rows - starts[np.searchsorted(ends, rows, side="right")]
    place += before[np.searchsorted(groups, np.searchsorted(ends, rows, side="right"))]
    out: list[dict[str, Any]] = table.take(pa.array(place)).to_pylist()
    for name in store.scores:
        values = np.asarray(store.score(name)[rows], np.float32)
        for record, value in zip(out, values, strict=True):
            record[name] = float(value)
    return out
