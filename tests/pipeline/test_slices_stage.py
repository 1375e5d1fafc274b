"""The slices stage on a planted degraded group: it ranks first or second, named subsets
follow it as related, and the stored table carries the ranking columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.config import BuildConfig, UmapConfig
from explorer.datasets.planted import planted_subgroup
from explorer.ingest.dataset import InputSpec
from explorer.pipeline.runner import build_store
from explorer.store.format import SLICE_COLUMNS
from tests.helpers import write_vectors_parquet

pytestmark = pytest.mark.slow


def test_stage_ranks_the_planted_group_above_its_subsets(tmp_path: Path) -> None:
    x, meta, group = planted_subgroup(3000, 185, seed=1)
    path = write_vectors_parquet(tmp_path / "planted.parquet", x, meta)
    spec = InputSpec(path=path, id="pid", label="label", prediction="prediction")
    config = BuildConfig(seed=0, umap=UmapConfig(n_epochs=20))
    build_store(spec, tmp_path / "s.store", config, show_progress=False)
    store = explorer.open_store(str(tmp_path / "s.store"))
    slices = store.slices()
    assert set(SLICE_COLUMNS) <= set(slices.columns)
    assert "scanner=B" in slices["name"].head(2).tolist()
    at = int(slices.index[slices["name"] == "scanner=B"][0])
    row = int(slices["slice"].iloc[at])
    inside = [group[store.slice_members(str(n))].mean() for n in slices["name"]]
    subsets = [i for i, share in enumerate(inside) if share >= 0.7 and i != at]
    assert subsets
    assert min(subsets) > at
    related = slices[slices["parent_slice"] == row]
    assert len(related) >= 1
    assert related["name"].str.contains("scanner=B").all()
    assert np.all(related["rank"] > slices["rank"].iloc[at])
