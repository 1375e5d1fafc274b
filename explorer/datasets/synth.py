"""A large synthetic Gaussian mixture with metadata, for scale tests and benchmarks.

Clusters sit inside super-clusters (two levels), with categorical and numeric metadata,
a label (the cluster's class) and a prediction whose errors are planted in one subgroup
(``colour == "red"`` and ``size == "small"``), so failure slices have a known answer.

``write_scale_store`` writes a big partitioned store of 2-D points directly (no pipeline),
in chunks, for the scale benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

COLOURS = np.array(["red", "green", "blue", "yellow", "purple"])
SIZES = np.array(["small", "medium", "large"])


def synth_mixture(
    n: int,
    dim: int = 64,
    *,
    n_clusters: int = 20,
    n_super: int = 4,
    seed: int = 0,
    chunk: int = 1_000_000,
) -> tuple[NDArray[np.float32], pd.DataFrame]:
    """``n`` points in ``dim`` dimensions and their metadata table (same row order)."""
    rng = np.random.default_rng(seed)
    super_centres = rng.normal(scale=8.0, size=(n_super, dim))
    parent = rng.integers(0, n_super, size=n_clusters)
    centres = super_centres[parent] + rng.normal(scale=3.0, size=(n_clusters, dim))
    spreads = rng.uniform(0.5, 1.5, size=n_clusters)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    cluster = rng.choice(n_clusters, size=n, p=weights)
    vectors = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        c = cluster[s : s + chunk]
        noise = rng.standard_normal((len(c), dim), dtype=np.float32)
        vectors[s : s + chunk] = centres[c] + noise * spreads[c, None].astype(np.float32)
    colour = COLOURS[rng.integers(0, len(COLOURS), size=n)]
    size = SIZES[rng.integers(0, len(SIZES), size=n)]
    label = cluster % 10
    wrong = rng.random(n) < np.where((colour == "red") & (size == "small"), 0.45, 0.03)
    prediction = np.where(wrong, (label + rng.integers(1, 10, size=n)) % 10, label)
    table = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(
                cluster, categories=pd.Index([f"c{c:02d}" for c in range(n_clusters)])
            ),
            "group": pd.Categorical.from_codes(
                parent[cluster], categories=pd.Index([f"g{p}" for p in range(n_super)])
            ),
            "colour": pd.Categorical(colour),
            "size": pd.Categorical(size),
            "score": rng.normal(size=n).astype(np.float32),
            "weight": rng.gamma(2.0, size=n).astype(np.float32),
            "label": label.astype(np.int64),
            "prediction": prediction.astype(np.int64),
        }
    )
    return vectors, table


# -- a big synthetic partitioned store, written in chunks (benchmarks/make_scale_store.py) --
SCALE_LAYOUT = "umap"
SCALE_CATEGORIES = 10


def _scale_centres(seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-20, 20, size=(SCALE_CATEGORIES, 2)), rng.uniform(0.5, 3.0, SCALE_CATEGORIES)


def scale_chunk(
    seed: int, index: int, size: int
) -> tuple[NDArray[np.float32], NDArray[np.int8], NDArray[np.float32], NDArray[np.float32]]:
    """Chunk ``index`` of a scale store: xy (m, 2), label codes, value, score (m,) each.

    Ten Gaussian blobs of unequal spread, one per label; the same (seed, index) always
    gives the same chunk, so stages regenerate what they need instead of holding it.
    """
    centres, spreads = _scale_centres(seed)
    rng = np.random.default_rng([seed, index])
    codes = rng.integers(0, SCALE_CATEGORIES, size=size).astype(np.int8)
    xy = centres[codes] + rng.standard_normal((size, 2)) * spreads[codes, None]
    value = (xy[:, 0] * 0.05 + rng.standard_normal(size)).astype(np.float32)
    score = rng.beta(5.0, 2.0, size=size).astype(np.float32)
    return xy.astype(np.float32), codes, value, score


def _chunks(n: int, chunk: int) -> list[tuple[int, int, int]]:
    return [(i, s, min(n, s + chunk)) for i, s in enumerate(range(0, n, chunk))]


def write_scale_store(
    out: str | Path,
    n: int,
    *,
    seed: int = 0,
    chunk: int = 1_000_000,
    rows_per_part: int | None = None,
    on_stage: Callable[[str, float], None] | None = None,
) -> None:
    """A valid partitioned store of ``n`` synthetic points, streamed ``chunk`` at a time.

    Stages: validate (points.parquet: int64 id, 10-category ``label``, float32 ``value``;
    the 2-D points stand in for the vectors), ``umap`` (the layout), ``trust`` (score
    ``trust:umap``) and ``partitions`` (of ``umap``). No pipeline runs: nothing is
    computed but the tiling. Memory: a few bytes a point (tile ids, one permutation,
    the label codes and values) plus one chunk, about 3 GB at 100M points.
    """
    import pyarrow.parquet as pq

    from explorer.store.partitions import default_rows_per_part, write_partitions
    from explorer.store.writer import StoreWriter

    path = Path(out)
    parts = _chunks(n, chunk)
    rows = rows_per_part or default_rows_per_part(n)
    records: dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        records[name] = fn()
        if on_stage is not None:
            on_stage(name, time.perf_counter() - t0)

    with StoreWriter(path, {"n": n, "d": 2}) as writer:

        def validate(folder: Path) -> None:
            vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, 2))
            dup = np.lib.format.open_memmap(folder / "duplicate_of.npy", "w+", np.int64, (n,))
            labels = pa.array([f"class {c}" for c in range(SCALE_CATEGORIES)])
            with pq.ParquetWriter(folder / "points.parquet", _points_schema()) as points:
                for i, s, e in parts:
                    xy, codes, value, _ = scale_chunk(seed, i, e - s)
                    vectors[s:e] = xy
                    dup[s:e] = -1
                    label = pa.DictionaryArray.from_arrays(pa.array(codes), labels)
                    ids = pa.array(np.arange(s, e, dtype=np.int64))
                    points.write_table(
                        pa.table({"id": ids, "label": label, "value": pa.array(value)})
                    )
            vectors.flush()
            dup.flush()
            del vectors, dup

        def layout(folder: Path) -> None:
            source = _open(path / "validate" / "vectors.npy")
            coords = np.lib.format.open_memmap(folder / "coords.npy", "w+", np.float32, (n, 2))
            for _, s, e in parts:
                coords[s:e] = source[s:e]
            coords.flush()
            del coords

        def trust(folder: Path) -> None:
            score = np.lib.format.open_memmap(
                folder / f"{SCALE_LAYOUT}.npy", "w+", np.float32, (n,)
            )
            for i, s, e in parts:
                score[s:e] = scale_chunk(seed, i, e - s)[3]
            score.flush()
            del score

        timed("validate", lambda: writer.write_stage("validate", "scale", extra=validate))
        timed(SCALE_LAYOUT, lambda: writer.write_stage(SCALE_LAYOUT, "scale", extra=layout))
        scores = {"trust:umap": SCALE_LAYOUT}
        timed(
            "trust",
            lambda: writer.write_stage(
                "trust", "scale", extra=trust, record={"provides": {"scores": scores}}
            ),
        )
        columns = _scale_columns(path)
        layouts: dict[str, Any] = {}
        summary = {
            "rows_per_part": rows,
            "columns": {c.name: c.describe() for c in columns},
            "layouts": layouts,
        }

        def partitions(folder: Path) -> None:
            coords = _open(path / SCALE_LAYOUT / "coords.npy")
            table = write_partitions(folder, SCALE_LAYOUT, coords, columns, rows_per_part=rows)
            layouts[SCALE_LAYOUT] = {
                "parts": len(table),
                "largest_part": int(table["rows"].max()),
            }

        provides = {"partitions": {SCALE_LAYOUT: f"{SCALE_LAYOUT}.parquet"}}
        timed(
            "partitions",
            lambda: writer.write_stage(
                "partitions",
                "scale",
                extra=partitions,
                record={"provides": provides, "summary": summary},
            ),
        )
        writer.write_manifest(_scale_manifest(n, seed, records))


def _points_schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.int64()),
            ("label", pa.dictionary(pa.int8(), pa.string())),
            ("value", pa.float32()),
        ]
    )


def _open(path: Path) -> NDArray[Any]:
    from explorer.store.files import map_npy

    return map_npy(path)


def _scale_columns(store: Path) -> list[Any]:
    """The partition columns, read back from the written stages (label codes, value, score)."""
    import pyarrow.parquet as pq

    from explorer.store.partitions import PartColumn

    table = pq.read_table(store / "validate" / "points.parquet", columns=["label", "value"])
    label = table.column("label").unify_dictionaries()
    categories = tuple(label.chunk(0).dictionary.to_pylist()) if label.num_chunks else ()
    codes = np.concatenate([c.indices.to_numpy() for c in label.chunks]).astype(np.int8)
    value = table.column("value").to_numpy()
    del table
    return [
        PartColumn("label", codes, "label", "point", categories),
        PartColumn("value", value, "value", "point"),
        PartColumn(
            "trust:umap", _open(store / "trust" / f"{SCALE_LAYOUT}.npy"), "trust:umap", "score"
        ),
    ]


def _scale_manifest(n: int, seed: int, records: dict[str, Any]) -> dict[str, Any]:
    from explorer.store.manifest import layout_entry, store_manifest

    return store_manifest(
        n_points=n,
        dim=2,
        source={"path": f"explorer.datasets.synth.write_scale_store (seed {seed})"},
        roles={"id": "id", "label": "label"},
        stages=records,
        layouts={SCALE_LAYOUT: layout_entry(SCALE_LAYOUT)},
    )
