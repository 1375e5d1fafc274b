"""Partitioned stores: each layout's points as Parquet parts tiled by its coordinates.

The parts hold every row exactly once with the same coordinates, columns and scores as
the unpartitioned store; a view reads exactly the parts whose bounds meet it; a crash
mid-write leaves no half stage; a missing part or a wrong count is refused in one line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from explorer.config import PARTITION_MIN_POINTS, BuildConfig, PartitionConfig
from explorer.datasets.synth import write_scale_store
from explorer.errors import StageMissingError, StoreCorruptError, StoreError
from explorer.ingest.dataset import InputSpec
from explorer.store.format import MANIFEST, PART_POINT_PREFIX, PARTITIONS_STAGE, TMP_PREFIX
from explorer.store.partitions import (
    PartColumn,
    default_rows_per_part,
    point_columns,
    write_partitions,
)
from explorer.store.reader import Store
from explorer.store.writer import StoreWriter
from tests.helpers import TINY_CONFIG

ROWS_PER_PART = 70
PARTITIONED = BuildConfig(
    seed=TINY_CONFIG.seed,
    umap=TINY_CONFIG.umap,
    partitions=PartitionConfig(enabled=True, rows_per_part=ROWS_PER_PART),
)


def _partition(src: Path, dst: Path, spec: InputSpec, config: BuildConfig = PARTITIONED) -> Path:
    """A copy of a built store, rebuilt with partitions: only the new stage runs."""
    from explorer.pipeline.runner import build_store

    shutil.copytree(src, dst)
    report = build_store(spec, dst, config, show_progress=False)
    ran = {s.name for s in report.stages if s.status == "ran"}
    assert ran == {PARTITIONS_STAGE}
    return dst


@pytest.fixture(scope="module")
def part_store(
    tiny_store: Path, tiny_input: InputSpec, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _partition(tiny_store, tmp_path_factory.mktemp("parts") / "p.store", tiny_input)


def _all_rows(store: Store, layout: str) -> pd.DataFrame:
    return store.partition_frame(layout).sort_values("row").reset_index(drop=True)


def test_parts_hold_every_row_once_with_the_store_values(part_store: Path) -> None:
    store = Store(part_store)
    store.verify()  # every part is in the manifest with its checksum
    assert store.partitioned_layouts == store.layouts == ["umap"]
    assert store.is_partitioned("umap")
    frame = _all_rows(store, "umap")
    n = store.n_points
    assert frame["row"].dtype == np.int64
    np.testing.assert_array_equal(frame["row"].to_numpy(), np.arange(n))  # each row once
    coords = np.asarray(store.layout("umap"))
    assert frame["x"].dtype == frame["y"].dtype == np.float32
    np.testing.assert_array_equal(frame["x"].to_numpy(), coords[:, 0])
    np.testing.assert_array_equal(frame["y"].to_numpy(), coords[:, 1])
    for name in store.scores:
        np.testing.assert_array_equal(frame[name].to_numpy(), np.asarray(store.score(name)))
    points = store.points
    assert isinstance(frame["label"].dtype, pd.CategoricalDtype)
    assert list(frame["label"].astype(str)) == list(points["label"].astype(str))
    assert list(frame["prediction"].astype(str)) == list(points["prediction"].astype(str))
    np.testing.assert_array_equal(frame["size"].to_numpy(), points["size"].to_numpy())
    # the id, image and text columns stay in the point table only
    for col in ("pid", "image", "note"):
        assert col not in frame.columns


def test_parts_are_tiles_of_the_target_size(part_store: Path) -> None:
    store = Store(part_store)
    parts = store.partitions("umap")
    assert list(parts.columns) == ["part", "file", "rows", "x0", "x1", "y0", "y1", "path"]
    assert parts["rows"].sum() == store.n_points
    assert len(parts) == 9  # 600 points / 70 a part -> 9 tiles, 3 x 3
    assert parts["rows"].max() <= 2 * ROWS_PER_PART
    coords = np.asarray(store.layout("umap"))
    for part in parts.itertuples():
        rows = pd.read_parquet(part.path, columns=["row"])["row"].to_numpy()
        xy = coords[rows]
        assert (part.x0, part.x1) == (xy[:, 0].min(), xy[:, 0].max())
        assert (part.y0, part.y1) == (xy[:, 1].min(), xy[:, 1].max())
        assert np.all(np.diff(rows) > 0)  # ascending inside a part


def test_partitions_in_is_exactly_the_parts_a_box_meets(part_store: Path) -> None:
    store = Store(part_store)
    parts = store.partitions("umap")
    coords = np.asarray(store.layout("umap"), dtype=np.float64)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    rng = np.random.default_rng(3)
    for _ in range(40):
        x0, x1 = np.sort(rng.uniform(lo[0] - 1, hi[0] + 1, 2))
        y0, y1 = np.sort(rng.uniform(lo[1] - 1, hi[1] + 1, 2))
        got = store.partitions_in("umap", x0, x1, y0, y1)
        meets = (parts.x1 >= x0) & (parts.x0 <= x1) & (parts.y1 >= y0) & (parts.y0 <= y1)
        assert list(got["part"]) == list(parts.loc[meets, "part"])
        # every point in the box is in a part that was returned
        inside = (
            (coords[:, 0] >= x0)
            & (coords[:, 0] <= x1)
            & (coords[:, 1] >= y0)
            & (coords[:, 1] <= y1)
        )
        frame = store.partition_frame("umap", ["row"], x0, x1, y0, y1)
        assert set(np.flatnonzero(inside)) <= set(frame["row"])
        assert len(frame) == got["rows"].sum()
    assert len(store.partitions_in("umap", hi[0] + 1, hi[0] + 2)) == 0
    assert len(store.partitions_in("umap")) == len(parts)
    empty = store.partition_frame("umap", ["row", "x", "label"], x0=hi[0] + 1)
    assert len(empty) == 0
    assert list(empty.columns) == ["row", "x", "label"]
    assert isinstance(empty["label"].dtype, pd.CategoricalDtype)


def test_partition_ddf_equals_the_frame(part_store: Path) -> None:
    store = Store(part_store)
    coords = np.asarray(store.layout("umap"))
    x0, x1 = np.quantile(coords[:, 0], [0.2, 0.5])
    cols = ["row", "x", "y", "label", "trust:umap"]
    ddf = store.partition_ddf("umap", cols, x0=float(x0), x1=float(x1))
    assert ddf.npartitions == len(store.partitions_in("umap", float(x0), float(x1)))
    assert ddf["label"].cat.known
    got = ddf.compute(scheduler="sync").reset_index(drop=True)
    want = store.partition_frame("umap", cols, x0=float(x0), x1=float(x1))
    assert list(got.columns) == cols
    assert got["row"].tolist() == want["row"].tolist()
    np.testing.assert_array_equal(got["x"].to_numpy(), want["x"].to_numpy())
    assert list(got["label"].astype(str)) == list(want["label"].astype(str))
    assert list(got["label"].cat.categories) == list(want["label"].cat.categories)
    assert store.partition_ddf("umap", ["row"], x0=1e9).compute(scheduler="sync").empty


def test_partition_columns_describe_kinds_and_dtypes(part_store: Path) -> None:
    columns = Store(part_store).partition_columns("umap")
    assert columns["row"] == {"kind": "row", "dtype": "int64"}
    assert columns["x"]["kind"] == "coord"
    assert columns["x"]["dtype"] == "float32"
    assert columns["label"]["kind"] == "point"
    assert columns["label"]["dtype"] == "category"
    assert columns["label"]["categories"] == ["a", "b", "c"]
    assert columns["trust:umap"] == {"kind": "score", "source": "trust:umap", "dtype": "float32"}
    with pytest.raises(StageMissingError, match="no column"):
        Store(part_store).partition_frame("umap", ["row", "nope"])


def test_unpartitioned_store_says_how_to_partition(tiny_store: Path) -> None:
    store = Store(tiny_store)
    assert store.partitioned_layouts == []
    assert not store.is_partitioned("umap")
    with pytest.raises(StageMissingError, match="--partition"):
        store.partitions("umap")


def test_partitions_are_on_by_default_from_the_documented_size() -> None:
    assert not PartitionConfig().active(PARTITION_MIN_POINTS - 1)
    assert PartitionConfig().active(PARTITION_MIN_POINTS)
    assert not PartitionConfig(enabled=False).active(10**9)
    assert PartitionConfig(enabled=True).active(10)
    assert default_rows_per_part(100_000_000) == 2_000_000  # 50 parts at 100M
    assert default_rows_per_part(10_000_000) == 625_000
    assert default_rows_per_part(1_000) == 250_000  # one part


def test_tiles_are_balanced_on_clustered_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xy = np.vstack([rng.normal(0, 1, (15_000, 2)), rng.normal(8, 0.1, (5_000, 2))])
    table = write_partitions(tmp_path, "l", xy.astype(np.float32), [], rows_per_part=1_000)
    assert table["rows"].sum() == 20_000
    assert len(table) == 20  # 5 slabs by x, each cut in 4 by y, of equal count
    assert table["rows"].min() >= 700
    assert table["rows"].max() <= 1_300


def test_reserved_names_and_free_text_in_point_columns() -> None:
    n = 1_200  # "words" has more distinct values than MAX_CATEGORIES: free text
    points = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": np.zeros(n),
            "kind": ["a", "b", None] * (n // 3),
            "words": [f"w{i}" for i in range(n)],
            "flag": [True, False, True] * (n // 3),
        }
    )
    cols = {c.name: c for c in point_columns(points, {"id": "id"})}
    assert set(cols) == {f"{PART_POINT_PREFIX}x", "kind", "flag"}
    assert cols["kind"].categories == ("a", "b")
    assert cols["kind"].values.tolist()[:3] == [0, 1, -1]  # missing stays missing
    arrow = cols["kind"].take(np.arange(3))
    assert arrow.to_pylist() == ["a", "b", None]


def test_a_crash_mid_write_leaves_no_half_stage(
    part_store: Path,
    tiny_input: InputSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from explorer.pipeline.runner import build_store

    store = tmp_path / "s.store"
    shutil.copytree(part_store, store)
    shutil.rmtree(store / PARTITIONS_STAGE)
    written: list[str] = []
    real = pq.write_table

    def crash_on_third(table: pa.Table, where: Path, **kw: object) -> None:
        if "part-" in str(where):
            written.append(str(where))
            if len(written) == 3:
                raise KeyboardInterrupt
        real(table, where, **kw)

    monkeypatch.setattr("explorer.store.partitions.pq.write_table", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_store(tiny_input, store, PARTITIONED, show_progress=False)
    assert len(written) == 3
    assert not (store / PARTITIONS_STAGE).exists()
    assert not [p for p in store.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not (store / MANIFEST).exists()  # incomplete until the rerun
    monkeypatch.setattr("explorer.store.partitions.pq.write_table", real)
    report = build_store(tiny_input, store, PARTITIONED, show_progress=False)
    assert [s.name for s in report.stages if s.status == "ran"] == [PARTITIONS_STAGE]
    assert len(Store(store).partition_frame("umap", ["row"])) == Store(store).n_points


def _damaged_copy(part_store: Path, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    store = tmp_path / "d.store"
    shutil.copytree(part_store, store)
    return store, json.loads((store / MANIFEST).read_text())


def _rewrite_table(store: Path, manifest: dict, table: pd.DataFrame) -> None:  # type: ignore[type-arg]
    """Replace umap's partition table and record its new size, so only the contract sees it."""
    path = store / PARTITIONS_STAGE / "umap.parquet"
    table.to_parquet(path, index=False)
    manifest["stages"][PARTITIONS_STAGE]["files"]["umap.parquet"]["bytes"] = path.stat().st_size
    (store / MANIFEST).write_text(json.dumps(manifest))


def test_a_missing_part_is_refused(part_store: Path, tmp_path: Path) -> None:
    store, _ = _damaged_copy(part_store, tmp_path)
    (store / PARTITIONS_STAGE / "umap" / "part-00001.parquet").unlink()
    with pytest.raises(StoreCorruptError, match=r"part-00001\.parquet is missing"):
        Store(store)


def _count_off(table: pd.DataFrame) -> pd.DataFrame:
    table.loc[0, "rows"] += 1
    return table


def _bounds_too_small(table: pd.DataFrame) -> pd.DataFrame:
    table.loc[2, "x1"] = table.loc[2, "x0"]
    return table


def _first_unlisted(table: pd.DataFrame) -> pd.DataFrame:
    return table.iloc[1:]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_count_off, r"part-00000\.parquet has \d+ rows but its par"),
        (_bounds_too_small, r"part-00002\.parquet has x in .* outside its"),
        (_first_unlisted, r"part-00000\.parquet is not listed in umap"),
    ],
    ids=["count mismatch", "part outside its bounds", "part not listed"],
)
def test_a_partition_table_that_lies_about_its_parts_is_refused(
    part_store: Path, tmp_path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame], match: str
) -> None:
    store, manifest = _damaged_copy(part_store, tmp_path)
    table = pd.read_parquet(store / PARTITIONS_STAGE / "umap.parquet")
    _rewrite_table(store, manifest, edit(table))
    with pytest.raises(StoreCorruptError, match=match):
        Store(store)


def test_the_writer_refuses_parts_that_miss_points(tmp_path: Path) -> None:
    xy = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)

    def fifty_points(folder: Path) -> None:
        write_partitions(folder, "umap", xy, [], rows_per_part=20)

    with StoreWriter(tmp_path / "s.store", {"n": 60, "d": 2}) as writer:
        with pytest.raises(StoreError, match=r"umap\.parquet lists parts holding 50 rows in all"):
            writer.write_stage(
                PARTITIONS_STAGE,
                "k",
                extra=fifty_points,
            )
        with pytest.raises(StoreError, match=r"lists parts but umap/ has none"):
            writer.write_stage(
                PARTITIONS_STAGE,
                "k",
                extra=lambda f: pd.DataFrame(
                    {"part": [0], "file": ["umap/part-00000.parquet"], "rows": [60]}
                    | {k: [0.0] for k in ("x0", "x1", "y0", "y1")}
                ).to_parquet(f / "umap.parquet"),
            )
        assert not (tmp_path / "s.store" / PARTITIONS_STAGE).exists()


def test_scale_store_is_a_valid_partitioned_store(tmp_path: Path) -> None:
    out = tmp_path / "scale.store"
    stages: list[str] = []
    write_scale_store(
        out, 5_003, seed=1, chunk=1_000, rows_per_part=600, on_stage=lambda s, _: stages.append(s)
    )
    assert stages == ["validate", "umap", "trust", PARTITIONS_STAGE]
    store = Store(out)
    store.verify()
    assert store.n_points == 5_003
    assert store.layouts == ["umap"]
    assert store.scores == ["trust:umap"]
    points = store.points
    assert list(points.columns) == ["id", "label", "value"]
    assert points["label"].nunique() == 10
    frame = _all_rows(store, "umap")
    np.testing.assert_array_equal(frame["row"].to_numpy(), np.arange(5_003))
    np.testing.assert_array_equal(frame["x"].to_numpy(), np.asarray(store.layout("umap"))[:, 0])
    np.testing.assert_array_equal(frame["value"].to_numpy(), points["value"].to_numpy())
    np.testing.assert_array_equal(frame["trust:umap"].to_numpy(), store.score("trust:umap"))
    assert list(frame["label"].astype(str)) == list(points["label"].astype(str))
    assert len(store.partitions("umap")) == 9
    # the same seed and chunking give the same store, whatever the chunk size
    again = tmp_path / "again.store"
    write_scale_store(again, 5_003, seed=1, chunk=1_000, rows_per_part=600)
    np.testing.assert_array_equal(Store(again).layout("umap"), store.layout("umap"))


def test_part_column_take_keeps_numbers(tmp_path: Path) -> None:
    col = PartColumn("v", pd.Series([1.5, np.nan, 3.0]), "v", "point")
    assert col.take(np.array([2, 1])).to_pylist() == [3.0, None]


def test_part_names_are_matched_inside_their_stage_folder() -> None:
    from explorer.store.format import file_spec

    assert file_spec(PARTITIONS_STAGE, "umap/part-00003.parquet") is not None
    assert file_spec(PARTITIONS_STAGE, "umap.parquet") is not None
    for bad in ("../x/part-00000.parquet", "umap/sub/part-00000.parquet", "umap/other.parquet"):
        assert file_spec(PARTITIONS_STAGE, bad) is None, bad
