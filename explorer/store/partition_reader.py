"""Reading a store's partitioned points: the parts of a layout that a view touches.

``Store`` inherits these methods; they read ``partitions/<layout>.parquet`` (the partition
table) and the parts it lists (see ``explorer.store.partitions`` and
docs/store-format.md, "The partitions stage").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from explorer.errors import StageMissingError
from explorer.store.format import PART_ROW, PART_X, PART_Y, PARTITIONS_STAGE
from explorer.store.partitions import empty_frame, parts_in, read_part, read_partition_table

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pyarrow as pa


class PartitionReader:
    """The partitioned-points half of ``Store`` (reads its ``path`` and ``manifest``)."""

    path: Path
    manifest: dict[str, Any]

    def _described_columns(self) -> dict[str, dict[str, Any]]:
        """The partitions stage's ``summary.columns``: source, kind, categories by name."""
        record = self.manifest["stages"][PARTITIONS_STAGE]
        columns: dict[str, dict[str, Any]] = record["summary"]["columns"]
        return columns

    def _partition_cache(self) -> dict[tuple[str, str], Any]:
        cache: dict[tuple[str, str], Any] = self.__dict__.setdefault("_partition_cache_", {})
        return cache

    # -- partitioned points (the partitions stage) -------------------------------------
    @property
    def partitioned_layouts(self) -> list[str]:
        """Layouts whose points are also stored as Parquet parts tiled by their coordinates."""
        return list(self.manifest.get("partitions", {}))

    def is_partitioned(self, layout: str) -> bool:
        """Whether ``layout``'s points are stored in parts (``partitions``, ``partition_ddf``)."""
        return layout in self.manifest.get("partitions", {})

    def _check_partitioned(self, layout: str) -> None:
        if not self.is_partitioned(layout):
            have = ", ".join(self.partitioned_layouts) or "none"
            msg = (
                f"store {self.path} has no partitions of layout {layout!r} (partitioned: "
                f"{have}); rebuild it with explorer build --partition"
            )
            raise StageMissingError(msg)

    def partitions(self, layout: str) -> pd.DataFrame:
        """One row per part of ``layout``: ``part`` int32, ``file`` (relative to the stage
        folder), ``rows`` int64, bounds ``x0, x1, y0, y1`` float64 (the exact extent of the
        part's points) and ``path`` (absolute, str)."""
        cache = self._partition_cache()
        if ("table", layout) not in cache:
            self._check_partitioned(layout)
            cache["table", layout] = read_partition_table(self.path / PARTITIONS_STAGE, layout)
        table: pd.DataFrame = cache["table", layout]
        return table

    def partitions_in(
        self,
        layout: str,
        x0: float | None = None,
        x1: float | None = None,
        y0: float | None = None,
        y1: float | None = None,
    ) -> pd.DataFrame:
        """The rows of ``partitions(layout)`` whose bounds meet the box (closed intervals;
        None leaves a side open): the only parts a view of that box must read."""
        return parts_in(self.partitions(layout), x0, x1, y0, y1)

    def partition_columns(self, layout: str) -> dict[str, dict[str, Any]]:
        """Each column of ``layout``'s parts, in order: ``{name: {"kind", "dtype", ...}}``.

        kind: ``row`` (int64 row number), ``coord`` (x, y float32), ``point`` (a point-table
        column; ``source`` names it) or ``score`` (float32); dtype: the pandas dtype the
        readers return; categorical columns also carry their ``categories`` (stored
        dictionary-encoded, read as pandas ``category`` with exactly these categories).
        """
        meta = empty_frame(self._part_schema(layout), None, self._part_categories(layout))
        described = self._described_columns()
        kinds = {PART_ROW: "row", PART_X: "coord", PART_Y: "coord"}
        return {
            str(name): {
                "kind": kinds.get(str(name)),
                **described.get(name, {}),
                "dtype": str(meta[name].dtype),
            }
            for name in meta.columns
        }

    def _part_schema(self, layout: str) -> pa.Schema:
        import pyarrow.parquet as pq

        cache = self._partition_cache()
        if ("schema", layout) not in cache:
            cache["schema", layout] = pq.read_schema(self.partitions(layout)["path"].iloc[0])
        schema: pa.Schema = cache["schema", layout]
        return schema

    def _part_categories(self, layout: str) -> dict[str, list[Any]]:
        described = self._described_columns()
        return {k: v["categories"] for k, v in described.items() if "categories" in v}

    def _part_columns(self, layout: str, columns: list[str] | None) -> list[str] | None:
        if columns is None:
            return None
        have = self._part_schema(layout).names
        unknown = [c for c in columns if c not in have]
        if unknown:
            msg = (
                f"the partitions of layout {layout!r} have no column(s) {', '.join(unknown)} "
                f"(they have: {', '.join(have)})"
            )
            raise StageMissingError(msg)
        return list(columns)

    def _box_read(
        self,
        layout: str,
        columns: list[str] | None,
        box: tuple[float | None, float | None, float | None, float | None],
    ) -> _BoxRead:
        """What reading the box ``(x0, x1, y0, y1)`` of ``layout`` takes: the columns
        (checked), the categories, the empty frame of those columns and the touched parts."""
        cols = self._part_columns(layout, columns)
        cats = self._part_categories(layout)
        meta = empty_frame(self._part_schema(layout), cols, cats)
        paths = [str(p) for p in self.partitions_in(layout, *box)["path"]]
        return _BoxRead(cols, cats, meta, paths)

    def partition_frame(
        self,
        layout: str,
        columns: list[str] | None = None,
        x0: float | None = None,
        x1: float | None = None,
        y0: float | None = None,
        y1: float | None = None,
    ) -> pd.DataFrame:
        """The rows of the parts of ``layout`` that meet the box, as one pandas frame.

        Every row of each touched part (a part is read whole: rows outside the box come
        too), parts in ``part`` order, rows ascending inside a part; ``columns`` (default
        all) in the order given.
        """
        read = self._box_read(layout, columns, (x0, x1, y0, y1))
        if not read.paths:
            return read.meta
        frames = [read_part(p, read.columns, read.categories) for p in read.paths]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def partition_ddf(
        self,
        layout: str,
        columns: list[str] | None = None,
        x0: float | None = None,
        x1: float | None = None,
        y0: float | None = None,
        y1: float | None = None,
    ) -> dd.DataFrame:
        """Like ``partition_frame`` but lazy: a ``dask.dataframe`` with one partition per
        touched part (read by ``explorer.store.partitions.read_part`` on the workers), its
        categorical columns with known categories, so Datashader can aggregate it. Dask
        pushes column selections down: ``ddf[["x", "y"]]`` reads only x and y."""
        import dask.dataframe as dd

        read = self._box_read(layout, columns, (x0, x1, y0, y1))
        if not read.paths:
            empty: dd.DataFrame = dd.from_pandas(read.meta, npartitions=1)  # type: ignore[no-untyped-call]
            return empty
        ddf: dd.DataFrame = dd.from_map(  # type: ignore[no-untyped-call]
            read_part, read.paths, columns=read.columns, categories=read.categories,
            meta=read.meta, label="explorer-part",
        )  # fmt: skip
        return ddf


@dataclass(frozen=True)
class _BoxRead:
    """The plan of one read of a box of partitioned points (``PartitionReader._box_read``)."""

    columns: list[str] | None
    categories: dict[str, list[Any]]
    meta: pd.DataFrame  # the empty frame: the columns with the dtypes the parts read as
    paths: list[str]  # the touched parts, in ``part`` order
