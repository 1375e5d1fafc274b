"""The export pane offers .h5ad for a store built from one; the file reads back in AnnData."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.app.exporter import export_bytes
from explorer.app.resources import StoreResources
from explorer.app.shell import build_app
from explorer.store.reader import Store
from tests.helpers import tiny_data

anndata = pytest.importorskip("anndata")

ROWS = np.array([0, 3, 7, 42, 99, 250, 333, 450, 598, 599], dtype=np.int64)


@pytest.fixture(scope="module")
def h5ad_resources(h5ad_store: Path) -> StoreResources:
    """The store built from the tiny dataset as AnnData (``tests/conftest.py``)."""
    return StoreResources(Store(h5ad_store))


def cells(values: pd.Series) -> list[object]:
    """A column's values as Python objects, every kind of missing value as None."""
    return [None if pd.isna(v) else v for v in values.astype(object)]


def read_back(data: bytes, tmp_path: Path) -> object:
    path = tmp_path / "back.h5ad"
    path.write_bytes(data)
    return anndata.read_h5ad(path)


def test_the_pane_exports_the_selection_as_h5ad(
    h5ad_resources: StoreResources, tmp_path: Path
) -> None:
    app = build_app(h5ad_resources)
    pane = app.pane("export")
    assert "h5ad" in pane.format.options.values()
    app.state.select(ROWS)
    pane.format.value = "h5ad"
    assert pane.download.filename == "selection.h5ad"
    assert pane.with_coords.disabled  # .h5ad holds every layout and the vectors anyway
    file = pane.export_file()
    assert isinstance(file, io.BytesIO)
    back = read_back(file.getvalue(), tmp_path)
    assert back.obs_names.tolist() == [f"cell{i:03d}" for i in ROWS]  # type: ignore[attr-defined]
    table = h5ad_resources.subset(ROWS)
    for column in ("label", "prediction", "note", "batch"):
        assert cells(back.obs[column]) == cells(table[column]), column  # type: ignore[attr-defined]
    np.testing.assert_array_equal(back.obs["size"], table["size"])  # type: ignore[attr-defined]
    vectors, _ = tiny_data()
    np.testing.assert_array_equal(np.asarray(back.X), vectors[ROWS])  # type: ignore[attr-defined]
    for name in h5ad_resources.store.layouts:
        np.testing.assert_array_equal(
            back.obsm[f"X_{name}"],  # type: ignore[attr-defined]
            np.asarray(h5ad_resources.store.layout(name))[ROWS],
        )
    pane.format.value = "csv"
    assert pane.download.filename == "selection.csv"
    assert not pane.with_coords.disabled


def test_a_large_h5ad_export_runs_in_the_worker_process(
    h5ad_resources: StoreResources, tmp_path: Path
) -> None:
    """From PROCESS_MIN_ROWS rows up the file is built in a spawned process: same file."""
    rows = np.arange(0, 600, 2, dtype=np.int64)
    there = read_back(export_bytes(h5ad_resources.store, rows, "h5ad", min_rows=0), tmp_path)
    here = anndata.read_h5ad(io.BytesIO(export_bytes(h5ad_resources.store, rows, "h5ad")))
    assert there.obs_names.tolist() == here.obs_names.tolist()  # type: ignore[attr-defined]
    assert there.obs_names.size == rows.size  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(there.obs, here.obs)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.asarray(there.X), np.asarray(here.X))  # type: ignore[attr-defined]


def test_other_stores_do_not_offer_h5ad(app: object) -> None:
    pane = app.pane("export")  # type: ignore[attr-defined]
    assert "h5ad" not in pane.format.options.values()
    assert set(pane.format.options.values()) == {"parquet", "csv", "jsonl"}
