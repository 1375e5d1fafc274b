"""Partitioned points: per layout, the points as Parquet parts tiled by its coordinates.

A view of a layout reads only the parts whose bounds it touches, so a server (in process
or on a Dask cluster) aggregates, filters and hit-tests without the rest of the store.

Tiling is sort-tile-recursive: the points are cut into ``nx`` vertical slabs of equal
count by x, and each slab into ``ny`` tiles of equal count by y (cut points from a seeded
sample of at most ``SAMPLE`` points), so the tiles do not overlap and hold about
``rows_per_part`` points each even where the layout is dense. A part's recorded bounds are
the exact extent of its points. Rows inside a part are in ascending row order.

Writing streams: coordinates and columns may be memory maps; memory is the tile of each
point (int16/int32), one permutation (int64) and one part's rows at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.store.format import (
    PART_FILE,
    PART_POINT_PREFIX,
    PART_RESERVED,
    PART_ROW,
    PART_X,
    PART_Y,
    PARTITION_TABLE,
    PARTITION_TABLE_COLUMNS,
)

# Default size of a part: n/16, at least 250k and at most 2M rows (50 parts at 100M points).
MIN_ROWS_PER_PART = 250_000
MAX_ROWS_PER_PART = 2_000_000
TARGET_PARTS = 16
SAMPLE = 1_000_000  # points the tile cuts are estimated from
CHUNK = 4_000_000  # points assigned to tiles at a time
# A text column with more distinct values is free text: not stored. Above the app's 256
# (it decides on a sample of rows), so every column the app colours by is in the parts.
MAX_CATEGORIES = 1024
ROW_GROUP = 1 << 20  # rows per Parquet row group inside a part

TABLE_DTYPES = {name: dtype for name, (dtype, _) in PARTITION_TABLE_COLUMNS.items()}


def default_rows_per_part(n_points: int) -> int:
    """Rows per part when the build does not say: n/16 within [250k, 2M]."""
    return int(min(MAX_ROWS_PER_PART, max(MIN_ROWS_PER_PART, math.ceil(n_points / TARGET_PARTS))))


@dataclass(frozen=True)
class PartColumn:
    """One column of the parts besides row, x and y.

    values     : (n,) numbers, or (n,) integer codes (-1 missing) when ``categories`` is set.
    categories : the dictionary of a categorical column (stored dictionary-encoded).
    source     : the point-table column or score it holds; kind: "point" or "score".
    """

    name: str
    values: Any
    source: str
    kind: str
    categories: tuple[Any, ...] | None = None

    def take(self, rows: NDArray[np.int64]) -> pa.Array:
        """The values at ``rows`` as an Arrow array."""
        if self.categories is None:
            values = self.values
            picked = values.iloc[rows] if isinstance(values, pd.Series) else values[rows]
            return pa.array(picked, from_pandas=True)
        codes = np.asarray(self.values[rows])
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes < 0), pa.array(list(self.categories))
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what the column holds (the stage's summary keeps it)."""
        out: dict[str, Any] = {"source": self.source, "kind": self.kind}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


def _codes_dtype(n_categories: int) -> type[np.signedinteger[Any]]:
    if n_categories < 2**7:
        return np.int8
    return np.int16 if n_categories < 2**15 else np.int32


def categorical_column(name: str, values: pd.Series, source: str) -> PartColumn:
    """A point column stored dictionary-encoded (its categories sorted, missing as null)."""
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    categories = tuple(cat.cat.categories.tolist())
    codes = cat.cat.codes.to_numpy().astype(_codes_dtype(len(categories)), copy=False)
    return PartColumn(name, codes, source, "point", categories)


def point_columns(
    points: pd.DataFrame, roles: Mapping[str, str | None], taken: Iterable[str] = ()
) -> list[PartColumn]:
    """The point-table columns a server colours and filters by, ready for the parts.

    Numbers and booleans as they are; categorical columns, and text columns with at most
    ``MAX_CATEGORIES`` distinct values (any number for a label or prediction), dictionary-
    encoded. The id, image and text columns and free text are left out. A column whose
    name is reserved (row, x, y) or in ``taken`` is stored as ``point:<name>``.
    """
    skip = {roles.get(r) for r in ("id", "image", "text")} - {None}
    categorical_roles = {roles.get(r) for r in ("label", "prediction")} - {None}
    used = {*PART_RESERVED, *taken}
    out = []
    for source in points.columns:
        if source in skip:
            continue
        name = f"{PART_POINT_PREFIX}{source}" if source in used else str(source)
        if name in used:
            continue
        col = points[source]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out.append(categorical_column(name, col, str(source)))
        elif pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
            out.append(PartColumn(name, col, str(source), "point"))
        elif pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype):
            if source in categorical_roles or col.nunique(dropna=True) <= MAX_CATEGORIES:
                out.append(categorical_column(name, col.astype("string"), str(source)))
            else:
                continue
        else:
            continue
        used.add(name)
    return out


def score_columns(scores: Mapping[str, Any]) -> list[PartColumn]:
    """Per-point scores ((n,) float32 each), stored under their names (``trust:umap``)."""
    return [PartColumn(name, values, name, "score") for name, values in scores.items()]


# -- tiling ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tiling:
    """Sort-tile-recursive cuts: ``x_cuts`` (nx-1,), ``y_cuts`` (nx, ny-1)."""

    x_cuts: NDArray[np.float64]
    y_cuts: NDArray[np.float64]

    @property
    def n_tiles(self) -> int:
        """nx * ny."""
        return int((len(self.x_cuts) + 1) * (self.y_cuts.shape[1] + 1))

    def assign(self, x: NDArray[np.floating], y: NDArray[np.floating]) -> NDArray[np.int32]:
        """The tile of each point, slab-major: slab * ny + cell."""
        ny = self.y_cuts.shape[1] + 1
        slab = np.searchsorted(self.x_cuts, x, side="right")
        cell = np.empty(len(x), dtype=np.int64)
        for s in range(len(self.x_cuts) + 1):
            mine = slab == s
            cell[mine] = np.searchsorted(self.y_cuts[s], y[mine], side="right")
        tiles: NDArray[np.int32] = (slab * ny + cell).astype(np.int32)
        return tiles


def plan_tiling(
    coords: NDArray[np.floating], n_tiles: int, *, seed: int = 0, sample: int = SAMPLE
) -> Tiling:
    """Cuts into about ``n_tiles`` tiles of equal count, from a seeded sample of the points."""
    n = len(coords)
    nx = max(1, math.ceil(math.sqrt(n_tiles)))
    ny = max(1, math.ceil(n_tiles / nx))
    if n <= sample:
        xy = np.asarray(coords, dtype=np.float64)
    else:
        rows = np.sort(np.random.default_rng(seed).integers(0, n, size=sample))
        xy = np.asarray(coords[rows], dtype=np.float64)
    qx = np.arange(1, nx) / nx
    x_cuts = np.quantile(xy[:, 0], qx) if nx > 1 else np.empty(0)
    slab = np.searchsorted(x_cuts, xy[:, 0], side="right")
    qy = np.arange(1, ny) / ny
    y_cuts = np.zeros((nx, ny - 1))
    for s in range(nx):
        ys = xy[slab == s, 1]
        if ny > 1 and len(ys):
            y_cuts[s] = np.quantile(ys, qy)
    return Tiling(np.asarray(x_cuts, dtype=np.float64), y_cuts)


def assign_tiles(
    coords: NDArray[np.floating], tiling: Tiling, chunk: int = CHUNK
) -> NDArray[np.integer]:
    """The tile of every point, computed ``chunk`` points at a time (int16 when it fits)."""
    dtype = np.int16 if tiling.n_tiles < 2**15 else np.int32
    tiles: NDArray[np.integer] = np.empty(len(coords), dtype=dtype)
    for start in range(0, len(coords), chunk):
        block = np.asarray(coords[start : start + chunk])
        tiles[start : start + chunk] = tiling.assign(block[:, 0], block[:, 1])
    return tiles


# -- writing --------------------------------------------------------------------------------
def write_partitions(
    folder: Path,
    layout: str,
    coords: NDArray[np.floating],
    columns: Sequence[PartColumn],
    *,
    rows_per_part: int,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Write ``folder/<layout>/part-NNNNN.parquet`` and ``folder/<layout>.parquet``.

    coords : (n, 2) float32 (a memory map is fine); columns: the rest of each row.
    Returns the partition table (part, file, rows, x0, x1, y0, y1).
    """
    n = len(coords)
    n_parts = max(1, math.ceil(n / max(1, rows_per_part)))
    tiling = plan_tiling(coords, n_parts, seed=seed)
    tiles = assign_tiles(coords, tiling)
    # Stable: each tile's rows stay in ascending row order.
    order = np.argsort(tiles, kind="stable")
    counts = np.bincount(tiles, minlength=tiling.n_tiles)
    del tiles
    ends = np.cumsum(counts)
    (folder / layout).mkdir(parents=True, exist_ok=True)
    records: list[tuple[int, str, int, float, float, float, float]] = []
    # Parquet encoding is about half of the time. Writing parts on a second thread while
    # the next is gathered gave no gain here (1e7 points, medians of 3: 11.8 s serial,
    # 11.7 s and 12.9 s with one and two writer threads), so parts are written in turn.
    for tile in np.flatnonzero(counts):
        rows = order[ends[tile] - counts[tile] : ends[tile]].astype(np.int64)
        xy = np.asarray(coords[rows], dtype=np.float32)
        arrays = {PART_ROW: pa.array(rows), PART_X: pa.array(xy[:, 0]), PART_Y: pa.array(xy[:, 1])}
        for col in columns:
            arrays[col.name] = col.take(rows)
        fname = f"{layout}/{PART_FILE.format(len(records))}"
        pq.write_table(pa.table(arrays), folder / fname, row_group_size=ROW_GROUP)
        records.append((len(records), fname, len(rows), *_bounds(xy)))
        if on_progress is not None:
            on_progress(float(ends[tile]) / n)
    table = pd.DataFrame.from_records(records, columns=list(PARTITION_TABLE_COLUMNS))
    table = table.astype({k: v for k, v in TABLE_DTYPES.items() if v != "str"})
    table.to_parquet(folder / PARTITION_TABLE.format(layout), index=False)
    return table


def _bounds(xy: NDArray[np.float32]) -> tuple[float, float, float, float]:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


# -- reading --------------------------------------------------------------------------------
def read_partition_table(stage_dir: Path, layout: str) -> pd.DataFrame:
    """The partition table of ``layout`` with an absolute ``path`` column added."""
    table = pd.read_parquet(stage_dir / PARTITION_TABLE.format(layout))
    table["path"] = [str(stage_dir / f) for f in table["file"]]
    return table


def parts_in(
    table: pd.DataFrame,
    x0: float | None = None,
    x1: float | None = None,
    y0: float | None = None,
    y1: float | None = None,
) -> pd.DataFrame:
    """The rows of ``table`` whose bounds meet the box (closed; None: unbounded)."""
    keep = np.ones(len(table), dtype=bool)
    if x0 is not None:
        keep &= table["x1"].to_numpy() >= x0
    if x1 is not None:
        keep &= table["x0"].to_numpy() <= x1
    if y0 is not None:
        keep &= table["y1"].to_numpy() >= y0
    if y1 is not None:
        keep &= table["y0"].to_numpy() <= y1
    return table[keep].reset_index(drop=True)


def read_part(
    path: str, columns: list[str] | None, categories: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """One part as pandas; categorical columns get exactly ``categories[name]``.

    Module-level (and plain arguments) so that Dask workers can run it.
    """
    frame: pd.DataFrame = pq.read_table(path, columns=columns).to_pandas()
    for name, cats in categories.items():
        if name in frame.columns:
            frame[name] = frame[name].cat.set_categories(list(cats))
    return frame


def empty_frame(
    schema: pa.Schema, columns: list[str] | None, categories: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """A frame with no rows and the parts' columns and dtypes (Dask's ``meta``)."""
    names = schema.names if columns is None else columns
    frame: pd.DataFrame = schema.empty_table().select(names).to_pandas()
    for name, cats in categories.items():
        if name in frame.columns:
            frame[name] = pd.Categorical([], categories=list(cats))
    return frame
