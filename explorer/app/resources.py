"""What all sessions of a server process share: the store and what is derived from it.

One ``StoreResources`` per store and process (``explorer.app.process``): the read-only
store (memory-mapped), a ``PointIndex`` per layout, colourings, filter masks, the points'
cards (``explorer.app.cards``) and the read models (hierarchy, slices, scores), each built
lazily on first use and then reused by every session. A session itself holds only its
``ExplorerState`` and its widgets, so it costs little memory.

Arrays handed out here are read-only and keep their identity between calls (the render
path caches sorted copies by identity), so never modify them: build new ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.app.cards import PointCards
from explorer.app.coloring import categorical_coloring, numeric_coloring
from explorer.app.columns import (
    ColumnInfo,
    describe_columns,
    factorize,
    first_rows,
    numeric_values,
)
from explorer.app.masks import WHERE_FILTER, FilterMasks, Mask, RemoteMask
from explorer.app.models.hierarchy import HierarchyModel
from explorer.app.models.scores import ScoreModel, finite_median
from explorer.app.models.slices import SliceModel
from explorer.app.refs import where_rows
from explorer.errors import ConfigError
from explorer.render.colors import CategoricalColor
from explorer.render.hittest import false_neighbours, points_in_box, points_in_polygon
from explorer.render.raster import NumericColor, PointIndex, nearest_point
from explorer.store.export import subset_table
from explorer.store.reader import Store
from explorer.store.search import TextBuffer, search_rows, text_buffer

if TYPE_CHECKING:
    from explorer.app.cluster import ClusterPoints

T = TypeVar("T")
_PAD = 0.03  # share of the extent left around the points in the initial view
DISK_LAYOUT = "hmds"  # a layout in the Poincaré (unit) disk: the map draws its boundary


def _frozen(arr: NDArray[Any]) -> NDArray[Any]:
    arr.setflags(write=False)
    return arr


class StoreResources:
    """The store of one process and its derived, shared, lazily built arrays."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.n_points = store.n_points
        self.roles: dict[str, str | None] = store.roles
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        self._item_locks: dict[tuple[str, str], threading.Lock] = {}
        self._table_thread: threading.Thread | None = None
        self._masks = FilterMasks(self.n_points, self._filter_mask)
        self.hierarchy = HierarchyModel(store)
        self.slices = SliceModel(store)
        self.scores = ScoreModel(store)
        # With ``explorer serve --dask``: the points live on the cluster (explorer.app.cluster)
        # and frames, hit-tests, filters, selection statistics and exports run there.
        self.cluster: ClusterPoints | None = None
        # One point's values as a card, a hover title or a gallery caption.
        self.cards = PointCards(self)

    def attach_cluster(self, cluster: ClusterPoints) -> None:
        """Answer from ``cluster`` from now on (``explorer serve --dask``): the web process
        then reads no column, score or point table (only single rows, from the workers)."""
        self.cluster = cluster
        self.scores.attach_cluster(cluster)
        self.hierarchy.attach_cluster(cluster)

    def _cached(self, kind: str, key: str, make: Callable[[], T]) -> T:
        # One lock per item: two sessions never build the same thing twice, and building
        # one thing (an index) does not hold up another (a colour) in another thread.
        with self._lock:
            item_lock = self._item_locks.setdefault((kind, key), threading.Lock())
        with item_lock:
            if (kind, key) not in self._cache:
                self._cache[kind, key] = make()
            value: T = self._cache[kind, key]
            return value

    # -- the table and its columns -------------------------------------------------
    @property
    def table(self) -> pa.Table:
        """The point table (id + metadata) as Arrow, loaded once per process.

        Arrow rather than pandas: strings stay in compact buffers (10M ids cost 0.5 s and
        200 MB, against 5 s and 700 MB as Python objects), and one row is a cheap slice.
        """
        return self._cached("table", "", lambda: pq.read_table(self._points_path))

    @property
    def has_table(self) -> bool:
        """Whether the whole table is loaded (else single columns are read as needed)."""
        return ("table", "") in self._cache

    @property
    def _points_path(self) -> Path:
        return self.store.table_path("validate", "points")

    def column_data(self, name: str) -> pa.ChunkedArray:
        """One column as Arrow: from the loaded table, or read alone from the file.

        The first image needs one column (the colour), not the whole table: reading 10M
        ids it does not need would double its time.
        """
        if self.has_table:
            return self.table.column(name)
        return pq.read_table(self._points_path, columns=[name]).column(name)

    def search_buffer(self, column: str) -> TextBuffer | None:
        """A text column made ready for fast substring search (``explorer.store.search``),
        built by the first search that needs it (one pass over the text, about 0.4 s of
        CPU at 10M short rows, plus ~0.5 s to load the kernels) and then shared; it holds
        the text again (about as many bytes) plus 4 bytes a row. None for a dictionary
        column."""
        return self._cached(
            "search", column, lambda: text_buffer(self.table.column(column), column)
        )

    def search(self, text: str, *, regex: bool = False) -> NDArray[np.int64]:
        """Sorted rows whose text or categorical columns contain ``text`` (ignoring case;
        ``regex``: an RE2 pattern), or whose id is ``text``: ``search_rows`` here, or on
        a cluster per partition on the workers."""
        columns = [c.name for c in self.columns.values() if c.kind in ("text", "categorical")]
        if self.cluster is not None:
            return self.cluster.search(text, columns=columns, regex=regex,
                                       id_column=self.id_column)  # fmt: skip
        found = search_rows(self.table, text, columns=columns, regex=regex,
                            id_column=self.id_column, buffers=self.search_buffer)  # fmt: skip
        return found.rows

    def rows_of_ids(self, ids: list[Any]) -> NDArray[np.int64]:
        """The row of each id (in the id column) in ``ids``' order, -1 when absent; on a
        cluster looked up by the workers."""
        if self.cluster is not None:
            return self.cluster.rows_of_ids(self.id_column, ids)
        index = pd.Index(self.column(self.id_column))
        return np.asarray(index.get_indexer(pd.Index(np.asarray(ids, dtype=object))), np.int64)

    @property
    def columns(self) -> dict[str, ColumnInfo]:
        """Every metadata column and its kind, by name (decided on the first 20,000 rows)."""

        def make() -> dict[str, ColumnInfo]:
            first = self.table if self.has_table else first_rows(self._points_path)
            return {c.name: c for c in describe_columns(first, self.roles)}

        return self._cached("columns", "", make)

    def names_of(self, kind: str) -> list[str]:
        """Column names of one kind, in table order."""
        return [c.name for c in self.columns.values() if c.kind == kind]

    @property
    def id_column(self) -> str:
        """The id column's name."""
        return self.roles.get("id") or next(iter(self.columns))

    @property
    def text_column(self) -> str | None:
        """The column shown as text in previews, if any."""
        text = self.names_of("text")
        return self.roles.get("text") or (text[0] if text else None)

    @property
    def color_options(self) -> list[str]:
        """Everything a map can be coloured by: categorical and numeric columns, scores."""
        return [*self.names_of("categorical"), *self.names_of("numeric"), *self.store.scores]

    def default_color(self) -> str:
        """The label column when there is one, else point density ('')."""
        label = self.roles.get("label")
        return label if label in self.names_of("categorical") else ""

    def column(self, name: str) -> NDArray[Any]:
        """A column's values as a NumPy array (strings as objects): for tests and scripts."""
        return np.asarray(self.column_data(name).to_numpy(zero_copy_only=False))

    def codes(self, column: str) -> tuple[NDArray[np.int32], list[str]]:
        """A categorical column's codes (n,) int32 and labels."""
        self._check_kind(column, "categorical")
        return self._cached("codes", column, lambda: _codes(self.column_data(column)))

    def category_counts(self, column: str) -> NDArray[np.int64]:
        """Points per code of a categorical column (its labels' order), over all points."""
        if self.cluster is not None:
            self._check_kind(column, "categorical")
            return self.cluster.category_counts(column)
        codes, labels = self.codes(column)
        return self._cached(
            "counts", column, lambda: _frozen(np.bincount(codes, minlength=len(labels)))
        )

    def labels(self, column: str) -> list[str]:
        """A categorical column's labels, in code order."""
        if self.cluster is not None:
            self._check_kind(column, "categorical")
            return list(self.cluster.summaries[column].labels)
        return self.codes(column)[1]

    def selected_counts(self, column: str, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        """Points per label of a categorical column among ``rows`` (sorted int64)."""
        if self.cluster is not None:
            self._check_kind(column, "categorical")
            return self.cluster.selected_counts([column], rows)[0]
        codes, labels = self.codes(column)
        return np.bincount(codes[rows], minlength=len(labels)).astype(np.int64)

    def selected_median(self, name: str, rows: NDArray[np.int64]) -> float:
        """Median of a numeric column or score over ``rows`` (finite values only)."""
        return self.selected_medians([name], rows)[0]

    def selected_medians(self, names: list[str], rows: NDArray[np.int64]) -> list[float]:
        """Medians of numeric columns or scores over ``rows`` (on a cluster: in one pass)."""
        if self.cluster is not None:
            return self.cluster.medians(names, rows)
        return [finite_median(self.values(name)[rows]) for name in names]

    def medians(self, names: list[str]) -> list[float]:
        """``median`` of each of ``names`` (on a cluster: the missing ones in one pass)."""
        if self.cluster is not None:
            missing = [n for n in names if ("median", n) not in self._cache]
            if missing:
                found = self.cluster.medians(missing, None)
                with self._lock:
                    for name, value in zip(missing, found, strict=True):
                        self._cache.setdefault(("median", name), value)
        return [self.median(name) for name in names]

    def error_rate(self, rows: NDArray[np.int64] | None) -> float | None:
        """Mean error over the known points among ``rows`` (all for None); None without
        errors in the store, NaN when none is known."""
        if not self.store.has_errors:
            return None
        if self.cluster is not None:
            return self.cluster.error_rate(rows)
        wrong = self.wrong_predictions()
        assert wrong is not None
        errors = wrong if rows is None else wrong[rows]
        known = errors[~np.isnan(errors)]
        return float(known.mean()) if known.size else float("nan")

    def values(self, name: str) -> NDArray[np.float32]:
        """A numeric column or a score as (n,) float32 (NaN = missing)."""
        if name in self.store.scores:
            return self._cached("values", name, lambda: _frozen(np.asarray(self.store.score(name))))
        self._check_kind(name, "numeric")
        return self._cached("values", name, lambda: _frozen(numeric_values(self.column_data(name))))

    def median(self, name: str) -> float:
        """Median of a numeric column or score over all points (computed once)."""
        if self.cluster is not None:
            cluster = self.cluster
            return self._cached("median", name, lambda: cluster.median(name, None))
        return self._cached("median", name, lambda: finite_median(self.values(name)))

    def value_range(self, name: str) -> tuple[float, float]:
        """(min, max) of a numeric column or score, ignoring NaN; (0, 0) when all missing."""

        def make() -> tuple[float, float]:
            if self.cluster is not None:
                return self.cluster.value_range(name)
            v = self.values(name)
            finite = v[np.isfinite(v)]
            return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)

        return self._cached("range", name, make)

    def rows_in_range(self, name: str, lo: float, hi: float) -> NDArray[np.int64]:
        """Sorted rows whose numeric column or score ``name`` lies in ``[lo, hi]``."""
        if self.cluster is not None:
            return self.cluster.rows_in_range(name, lo, hi)
        values = self.values(name)
        return np.flatnonzero((values >= lo) & (values <= hi)).astype(np.int64)

    def rows_below(self, name: str, threshold: float) -> NDArray[np.int64]:
        """Sorted rows whose numeric column or score ``name`` is under ``threshold``."""
        if self.cluster is not None:
            return self.cluster.rows_in_range(name, -np.inf, threshold, below=True)
        return np.flatnonzero(self.values(name) < threshold).astype(np.int64)

    def _check_kind(self, column: str, kind: str) -> None:
        info = self.columns.get(column)
        if info is None or info.kind != kind:
            have = ", ".join(self.names_of(kind)) or "none"
            msg = f"{column!r} is not a {kind} column of this store (those are: {have})"
            raise ConfigError(msg)

    # -- layouts -----------------------------------------------------------------------
    def index(self, layout: str) -> PointIndex:
        """The spatial index of one layout (built on first use, then shared)."""
        return self._cached(
            "index", layout, lambda: PointIndex.build(np.asarray(self.store.layout(layout)))
        )

    def prefetch(self, layout: str | None, color_by: str = "") -> threading.Thread:
        """Build ``layout``'s index in a thread while the caller reads what the first image
        needs (column kinds, the colour column); both mostly release the GIL."""

        def work() -> None:
            if layout and self.cluster is None:
                self.index(layout)

        thread = threading.Thread(target=work, name="explorer-prefetch", daemon=True)
        thread.start()
        _ = self.columns
        if color_by:
            self.color(color_by)
        return thread

    def load_table_soon(self) -> None:
        """Load the whole table in a background thread (once), for hover and export.

        Started after the first image: on a busy 2-core machine reading it alongside the
        first image's work made that image slower, not faster (measured).
        """
        with self._lock:
            if self._table_thread is not None or self.has_table or self.cluster is not None:
                return
            self._table_thread = threading.Thread(
                target=lambda: self.table, name="explorer-table", daemon=True
            )
        self._table_thread.start()

    def extent(self, layout: str) -> tuple[float, float, float, float]:
        """``(x0, x1, y0, y1)`` around a layout's finite points, padded a little."""

        def make() -> tuple[float, float, float, float]:
            if self.cluster is not None:
                g, side = self.cluster.grid(layout)
            else:
                g = self.index(layout).grid  # [xmin, side / width, ymin, side / height]
                side = self.index(layout).side
            x0, y0 = float(g[0]), float(g[2])
            w, h = side / float(g[1]), side / float(g[3])
            if layout == DISK_LAYOUT:  # show the whole Poincaré disk, not just its points
                x0, y0 = min(x0, -1.0), min(y0, -1.0)
                w, h = max(x0 + w, 1.0) - x0, max(y0 + h, 1.0) - y0
            return (x0 - _PAD * w, x0 + (1 + _PAD) * w, y0 - _PAD * h, y0 + (1 + _PAD) * h)

        return self._cached("extent", layout, make)

    # -- colour and filters ---------------------------------------------------------------
    def color(self, name: str) -> CategoricalColor | NumericColor | None:
        """The colouring for ``name`` ('' = density), built once and shared."""
        if not name:
            return None
        if self.cluster is not None:
            cluster = self.cluster
            if name not in cluster.summaries:
                self._check_kind(name, "categorical")
            return self._cached("color", name, lambda: cluster.coloring(name))
        if name in self.store.scores or (
            self.columns.get(name, None) is not None and (self.columns[name].kind == "numeric")
        ):
            return self._cached("color", name, lambda: numeric_coloring(name, self.values(name)))
        return self._cached(
            "color",
            name,
            lambda: categorical_coloring(*self.codes(name), self.category_counts(name)),
        )

    def mask(self, filters: Mapping[str, Any]) -> Mask | None:
        """(n,) bool of the points ``filters`` keep, or None for no filter; on a cluster a
        ``ClusterMask`` (the flags stay on the workers: ``explorer.app.masks``).

        The same filters give the same (read-only) object, so renders reuse their sorted
        copies of it.
        """
        if self.cluster is not None:
            return self.cluster.mask(filters, lambda clause: where_rows(self, clause))
        return self._masks.get(filters)

    # -- positions and hit-tests ------------------------------------------------------------
    def coords(self, layout: str) -> NDArray[np.float32]:
        """A layout's (n, 2) positions: the index's copy, or (on a cluster) the store's
        memory map, of which a lookup reads only the pages it touches."""
        if self.cluster is not None:
            return self.store.layout(layout)
        return self.index(layout).coords

    def points_in_box(
        self, layout: str, box: tuple[float, float, float, float],
        mask: Mask | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:  # fmt: skip
        """Sorted rows inside ``box`` ``(x0, x1, y0, y1)`` and their (k, 2) positions."""
        if self.cluster is not None:
            return self.cluster.box(layout, *box, mask=mask)
        assert not isinstance(mask, RemoteMask)
        index = self.index(layout)
        rows = points_in_box(index, *box, mask=mask)
        return rows, np.asarray(index.coords[rows], np.float32).reshape(-1, 2)

    def points_in_lasso(
        self, layout: str, px: NDArray[np.float64], py: NDArray[np.float64],
        mask: Mask | None = None,
    ) -> NDArray[np.int64]:  # fmt: skip
        """Sorted rows inside the polygon ``(px, py)`` (even-odd rule)."""
        if self.cluster is not None:
            return self.cluster.lasso(layout, px, py, mask=mask)
        assert not isinstance(mask, RemoteMask)
        return points_in_polygon(self.index(layout), px, py, mask=mask)

    def nearest(
        self, layout: str, x: float, y: float, radius: float,
        mask: Mask | None = None,
    ) -> int | None:  # fmt: skip
        """The row nearest ``(x, y)`` within ``radius`` data units (ties: smallest), or None."""
        if self.cluster is not None:
            return self.cluster.nearest(layout, x, y, radius, mask=mask)
        assert not isinstance(mask, RemoteMask)
        return nearest_point(self.index(layout), x, y, radius, mask=mask)

    def _filter_mask(self, column: str, value: Any) -> NDArray[np.bool_]:
        if column == WHERE_FILTER:
            keep = np.zeros(self.n_points, bool)
            keep[where_rows(self, str(value[0]) if value else "")] = True
            return keep
        info = self.columns.get(column)
        if info is None and column not in self.store.scores:
            msg = f"cannot filter on {column!r}: no such column or score in this store"
            raise ConfigError(msg)
        if info is not None and info.kind == "categorical":
            codes, labels = self.codes(column)
            allowed = np.isin(np.asarray(labels, dtype=object), [str(v) for v in value])
            return allowed[codes]
        lo, hi = (float(v) for v in value)
        v = self.values(column)
        return (v >= lo) & (v <= hi)

    def wrong_predictions(self) -> NDArray[np.float64] | None:
        """(n,) float64 error per point as the build computed it (``Store.error_values``):
        1 wrong, 0 right (or the loss), NaN unknown; None when the build had no errors.
        Rates leave the unknown points out, as the slice table does."""
        if not self.store.has_errors:
            return None
        return self._cached("wrong", "", lambda: _frozen(self.store.error_values()))

    # -- single points ----------------------------------------------------------------------
    def neighbors(self, row: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Point ``row``'s high-dimensional neighbours (itself excluded) and distances."""
        if not self.store.has_stage("knn"):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx, dist = self.store.knn()
        keep = np.asarray(idx[row]) != row
        return np.asarray(idx[row], np.int64)[keep], np.asarray(dist[row], np.float32)[keep]

    def false_neighbours(self, layout: str, row: int, true: NDArray[np.int64]) -> NDArray[np.int64]:
        """Among ``row``'s ``len(true)`` nearest points on the map, those not in ``true``
        (its nearest in the data), nearest first. In process ``hittest.false_neighbours``
        over the coordinates; on a cluster the nearest come from the workers."""
        if self.cluster is None:
            return false_neighbours(self.coords(layout), row, true)
        if true.size == 0:
            return np.zeros(0, np.int64)
        near = self.cluster.nearest_rows(layout, row, int(true.size))
        return near[~np.isin(near, true)].astype(np.int64)

    def neighbourhood(self, row: int) -> NDArray[np.int64]:
        """Point ``row`` and its high-dimensional neighbours: "points like this one"."""
        idx, _ = self.neighbors(row)
        return np.append(idx, row)

    def subset(
        self, rows: NDArray[np.int64], *, layouts: tuple[str, ...] = (), vectors: bool = False
    ) -> pd.DataFrame:
        """The point table at ``rows``, as ``explorer export`` writes it."""
        if self.cluster is not None:
            return self.cluster.subset(rows, layouts=layouts, vectors=vectors)
        return subset_table(self.store, rows, layouts=layouts, vectors=vectors, points=self.table)


def _codes(col: pa.ChunkedArray) -> tuple[NDArray[np.int32], list[str]]:
    codes, labels = factorize(col)
    return _frozen(codes), labels
