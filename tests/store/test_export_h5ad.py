"""Export as .h5ad: a store built from AnnData goes back to AnnData (obs ids, X, obsm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.errors import InputError
from explorer.store.export import FORMATS, export_rows, formats_for
from explorer.store.reader import Store
from tests.helpers import run_cli, tiny_data

anndata = pytest.importorskip("anndata")

ROWS = np.array([0, 3, 7, 42, 99, 250, 333, 450, 598, 599], dtype=np.int64)


def test_h5ad_export_round_trips(h5ad_store: Path, tmp_path: Path) -> None:
    store = Store(h5ad_store)
    assert "h5ad" in formats_for(store)
    out = tmp_path / "subset.h5ad"
    assert export_rows(store, ROWS, out, "h5ad") == 10
    back = anndata.read_h5ad(out)
    assert back.obs_names.tolist() == [f"cell{i:03d}" for i in ROWS]
    vectors, meta = tiny_data()
    np.testing.assert_array_equal(np.asarray(back.X), vectors[ROWS])
    assert back.obs["label"].astype(str).tolist() == meta["label"].iloc[ROWS].tolist()
    assert back.obs["note"].astype(str).tolist() == meta["note"].iloc[ROWS].tolist()
    assert sorted(back.obsm.keys()) == sorted(f"X_{name}" for name in store.layouts)
    for name in store.layouts:
        np.testing.assert_array_equal(back.obsm[f"X_{name}"], np.asarray(store.layout(name))[ROWS])
    batch = back.obs["batch"]
    assert batch.isna().tolist() == [i == 7 for i in ROWS]  # a missing value stays missing
    assert batch.astype(str).tolist()[:2] == ["b1", "b2"]
    assert back.uns["explorer"] == {"source": "cells.h5ad", "vectors": "X"}


def test_cli_exports_h5ad(h5ad_store: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("cell005\ncell001\n")
    out = tmp_path / "two.h5ad"
    result = run_cli(["export", str(h5ad_store), "--ids", str(ids), "--out", str(out)])
    assert result.returncode == 0, result.stderr
    assert anndata.read_h5ad(out).obs_names.tolist() == ["cell001", "cell005"]


def test_other_stores_refuse_h5ad(tiny_store: Path, tmp_path: Path) -> None:
    store = Store(tiny_store)
    assert formats_for(store) == tuple(f for f in FORMATS if f != "h5ad")
    with pytest.raises(InputError, match=r"only stores built from \.h5ad"):
        export_rows(store, ROWS, tmp_path / "x.h5ad", "h5ad")
    assert not (tmp_path / "x.h5ad").exists()


def test_missing_anndata_is_one_clear_error(
    h5ad_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from explorer.errors import ExplorerError

    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata -> ImportError
    with pytest.raises(ExplorerError, match=r"needs the anndata package"):
        export_rows(Store(h5ad_store), ROWS, tmp_path / "x.h5ad", "h5ad")
