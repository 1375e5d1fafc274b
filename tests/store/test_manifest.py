"""The one manifest builder: what it writes opens as a store, and its scores and partitions
are exactly what the stage records provide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.store.format import FORMAT_NAME, FORMAT_VERSION, MANIFEST
from explorer.store.manifest import ROLES, layout_entry, provided, store_manifest
from explorer.store.reader import Store
from explorer.store.writer import StoreWriter


def test_a_written_manifest_opens_with_its_roles_layouts_and_scores(tmp_path: Path) -> None:
    n = 50
    xy = np.random.default_rng(0).random((n, 2), dtype=np.float32)
    points = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "size": np.arange(n)})
    path = tmp_path / "small.store"
    with StoreWriter(path, {"n": n, "d": 2}) as writer:
        stages = {
            "validate": writer.write_stage(
                "validate", "k", arrays={"vectors": xy, "duplicate_of": np.full(n, -1)},
                tables={"points": points},
            ),
            "umap": writer.write_stage("umap", "k", arrays={"coords": xy}),
            "trust": writer.write_stage(
                "trust", "k", arrays={"umap": xy[:, 0].copy()},
                record={"provides": {"scores": {"trust:umap": "umap"}}},
            ),
        }  # fmt: skip
        writer.write_manifest(
            store_manifest(
                n_points=n, dim=2, source={"path": "test"}, roles={"id": "id"},
                stages=stages, layouts={"umap": layout_entry("umap")}, build_seconds=1.23456,
            )
        )  # fmt: skip
    manifest = json.loads((path / MANIFEST).read_text())
    assert (manifest["format"], manifest["format_version"]) == (FORMAT_NAME, FORMAT_VERSION)
    assert manifest["roles"] == {"id": "id", **dict.fromkeys(ROLES[1:])}
    assert list(manifest["stages"]) == ["validate", "umap", "trust"]  # the order they ran
    assert manifest["scores"] == {"trust:umap": {"stage": "trust", "file": "umap"}}
    assert "partitions" not in manifest
    assert manifest["build_seconds"] == 1.235
    store = Store(path)
    assert store.layouts == ["umap"]
    assert np.asarray(store.layout("umap")).tolist() == xy.tolist()


def test_provided_names_the_stage_of_each_score_and_partition() -> None:
    stages = {
        "validate": {"files": {}},
        "outliers": {"provides": {"scores": {"outlier": "outlier"}}},
        "partitions": {"provides": {"partitions": {"umap": "umap.parquet"}}},
    }
    assert provided(stages, "scores") == {"outlier": {"stage": "outliers", "file": "outlier"}}
    assert provided(stages, "partitions") == {
        "umap": {"stage": "partitions", "table": "umap.parquet"}
    }


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column role"):
        store_manifest(n_points=1, dim=2, source={}, roles={"colour": "c"}, stages={}, layouts={})
