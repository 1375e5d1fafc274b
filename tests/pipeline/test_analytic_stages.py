"""The analytic stages on the tiny store: hierarchy, intrinsic, outliers, slices, and the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import explorer
from explorer.pipeline.structure_stages import leaky_columns
from tests.helpers import run_cli, tiny_data


def test_hierarchy_finds_the_three_blobs(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    nodes = store.hierarchy()
    assert nodes["node"].tolist() == list(range(len(nodes)))
    assert nodes.loc[0, "parent"] == -1
    assert nodes.loc[0, "size"] == 600
    _, meta = tiny_data()
    top = nodes[nodes["parent"] == 0]
    big = top[top["size"] >= 100]
    assert len(big) == 3
    for node in big["node"]:
        labels = meta["label"].to_numpy()[store.node_members(int(node))]
        assert pd.Series(labels).value_counts(normalize=True).iloc[0] >= 0.95
    assert set(big["dominant_label"]) == {"a", "b", "c"}
    # children's sizes add up to their parent's
    for node in nodes["node"]:
        kids = nodes[nodes["parent"] == node]
        if len(kids):
            assert kids["size"].sum() == nodes.loc[node, "size"]
    for column in ("name", "error_rate", "intrinsic_dim", "mean_outlier", "magnitude"):
        assert column in nodes.columns
    # the sparser blob c (spread 2) has the larger magnitude per point than a (spread 1)
    per_point = (
        big.set_index("dominant_label")["magnitude"] / big.set_index("dominant_label")["size"]
    )
    assert per_point["c"] > per_point["a"]


def test_failure_slice_ranks_the_planted_subgroup_first(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    slices = store.slices()
    # other session-scoped tests save selections into the same store ("saved" rows)
    assert {"metadata", "cluster", "failure", "embedding", "saved"} >= set(slices["kind"])
    assert list(slices.columns[:3]) == ["slice", "name", "kind"]
    _, meta = tiny_data()
    best = store.slice_members(str(slices.iloc[0]["name"]))
    assert (meta["label"].to_numpy()[best] == "b").mean() >= 0.8
    metadata = store.slices(kind="metadata")
    assert metadata.iloc[0]["name"] == "label=b"
    assert metadata.iloc[0]["lift"] > 2  # 30% errors against 11% overall
    members = store.slice_members("label=b")
    np.testing.assert_array_equal(members, np.flatnonzero(meta["label"] == "b"))


def test_scores_and_global_dimension(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    lid = store.score("lid")
    assert np.isfinite(lid).all()
    assert 3 < float(np.median(lid)) < 10  # 8-d Gaussian blobs read a little low
    outlier = store.score("outlier")
    assert int(np.argmax(outlier)) == 599


def test_export_a_stored_slice(tiny_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.csv"
    result = run_cli(["export", str(tiny_store), "--slice", "label=b", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    assert (pd.read_csv(out)["label"] == "b").all()
    listing = run_cli(["slices", str(tiny_store), "--kind", "metadata", "--top", "3"])
    assert listing.returncode == 0
    assert "label=b" in listing.stdout


def test_leaky_columns_are_found() -> None:
    rng = np.random.default_rng(0)
    errors = (rng.random(500) < 0.2).astype(float)
    table = pd.DataFrame(
        {
            "correct": errors == 0,
            "loss": errors * 2 + rng.random(500) * 0.1,
            "colour": rng.choice(["r", "g"], 500),
            "size": rng.random(500),
        }
    )
    assert leaky_columns(table, errors) == ["correct", "loss"]
