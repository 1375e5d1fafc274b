"""Bring your own layout: ``--layout NAME=COLX,COLY`` or ``NAME=obsm:KEY`` imports a 2-D
layout that is stored, scored, partitioned and listed like a computed one; ``--layouts
none`` skips computing any; bad columns are refused in one line naming the first bad row."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.cli import main
from explorer.config import BuildConfig, PartitionConfig, UmapConfig
from explorer.ingest.dataset import InputSpec, LayoutSource
from explorer.store.format import IMPORTED_STAGE
from explorer.store.reader import Store
from tests.helpers import tiny_data

N = 120


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vectors = np.vstack([rng.normal(0, 1, (N // 2, 4)), rng.normal(6, 1, (N // 2, 4))])
    table = pd.DataFrame(vectors, columns=[f"v{i}" for i in range(4)])
    table["ux"] = vectors[:, 0] * 3 + 1
    table["uy"] = vectors[:, 1] - 2
    table["label"] = ["a"] * (N // 2) + ["b"] * (N // 2)
    return table


@pytest.fixture(scope="module")
def h5ad_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, pd.DataFrame]:
    """An .h5ad input with .obsm['X_umap'] (3 columns) and obs columns ux, uy, built with
    --layouts none, both imported, partitioned."""
    import anndata

    from explorer.pipeline.runner import build_store

    folder = tmp_path_factory.mktemp("byo")
    vectors, meta = tiny_data()
    obs = pd.DataFrame(
        {"label": meta["label"].to_numpy(), "ux": vectors[:, 2] * 2, "uy": vectors[:, 3]},
        index=[f"cell{i}" for i in range(len(meta))],
    )
    obsm = np.column_stack([vectors[:, 0], vectors[:, 1], vectors[:, 2]]).astype(np.float64)
    path = folder / "cells.h5ad"
    anndata.AnnData(X=vectors, obs=obs, obsm={"X_umap": obsm}).write_h5ad(path)
    spec = InputSpec(
        path=path,
        label="label",
        layouts=(LayoutSource.parse("mine=obsm:X_umap"), LayoutSource.parse("cols=ux,uy")),
    )
    config = BuildConfig(
        seed=0,
        layouts=(),
        umap=UmapConfig(n_epochs=30),
        partitions=PartitionConfig(enabled=True, rows_per_part=150),
    )
    out = folder / "cells.store"
    build_store(spec, out, config, show_progress=False)
    return out, obsm, obs


def test_imported_layouts_are_stored_scored_and_partitioned(
    h5ad_store: tuple[Path, np.ndarray, pd.DataFrame],
) -> None:
    path, obsm, obs = h5ad_store
    store = Store(path)
    assert store.layouts == ["mine", "cols"]
    assert not store.has_stage("umap")  # --layouts none: nothing computed
    np.testing.assert_array_equal(store.layout("mine"), obsm[:, :2].astype(np.float32))
    want = obs[["ux", "uy"]].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(store.layout("cols"), want)
    layouts = store.manifest["layouts"]
    assert layouts["mine"] == {
        "stage": IMPORTED_STAGE,
        "file": "mine",
        "imported": {"obsm": "X_umap"},
    }
    assert layouts["cols"]["imported"] == {"columns": ["ux", "uy"]}
    assert store.stage(IMPORTED_STAGE)["params"]["layouts"]["cols"] == {"columns": ["ux", "uy"]}
    for name in ("mine", "cols"):
        trust = store.score(f"trust:{name}")
        assert trust.shape == (store.n_points,)
        assert 0.0 <= float(trust.min()) <= float(trust.max()) <= 1.0
    # the layout columns are the layout's, not metadata
    assert "ux" not in store.points.columns
    assert "uy" not in store.points.columns
    assert store.partitioned_layouts == ["mine", "cols"]
    frame = store.partition_frame("cols").sort_values("row")
    np.testing.assert_array_equal(frame["x"].to_numpy(), want[:, 0])
    assert "trust:cols" in frame.columns


def _build(tmp_path: Path, table: pd.DataFrame, *args: str) -> tuple[int, Path]:
    csv = tmp_path / "in.csv"
    table.to_csv(csv, index=False)
    out = tmp_path / "out.store"
    code = main(["build", str(csv), "--out", str(out), "--quiet", "--seed", "0", *args])
    return code, out


def test_cli_imports_columns_and_keeps_them_out_of_the_vectors(tmp_path: Path) -> None:
    table = _table()
    code, out = _build(
        tmp_path, table, "--layouts", "none", "--layout", "given=ux,uy", "--label", "label"
    )
    assert code == 0
    store = Store(out)
    assert store.manifest["dim"] == 4  # v0..v3; ux, uy are the layout
    assert store.layouts == ["given"]
    np.testing.assert_array_equal(
        store.layout("given"), table[["ux", "uy"]].to_numpy().astype(np.float32)
    )
    assert store.scores[0] == "trust:given"
    assert not store.partitioned_layouts  # 120 points: below the default threshold


def _bad(table: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    out = table.copy()
    out[column] = out[column].astype(object)
    out.loc[row, column] = value
    return out


@pytest.mark.parametrize(
    ("args", "table", "message"),
    [
        (
            ["--layout", "xy=ux,nope"],
            None,
            r"'nope' is not in the input \(columns: ux, label; taken as vectors: v0, v1, v2, "
            r"v3, uy\)",
        ),
        (["--layout", "xy=ux,uy,v0"], None, r"name two columns, x then y"),
        (["--layout", "xy"], None, r"write NAME=COLX,COLY or NAME=obsm:KEY"),
        (["--layout", "xy=ux,label"], None, r"row 0, column 'label' .*'a' is not a number"),
        (["--layout", "xy=ux,uy"], ("uy", 37, "abc"), r"row 37, column 'uy' .*'abc' is not a num"),
        (["--layout", "xy=ux,uy"], ("ux", 7, np.nan), r"row 7, 'ux' \(--layout xy=ux,uy\): NaN"),
        (["--layout", "xy=ux,uy"], ("uy", 4, np.inf), r"row 4, 'uy' .*: an infinite value"),
        (["--layout", "umap=ux,uy"], None, r"'umap' is the name of a computed layout"),
        (["--layout", "a=ux,uy", "--layout", "a=uy,ux"], None, r"names 'a' twice"),
        (["--layout", "9x=ux,uy"], None, r"invalid layout name '9x'"),
        (["--layout", "xy=obsm:X_umap"], None, r"an \.obsm key needs an \.h5ad input"),
        (["--layouts", "none"], None, r"no layout to build: --layouts none needs"),
    ],
)
def test_bad_layouts_are_refused_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    table: tuple[str, int, object] | None,
    message: str,
) -> None:
    data = _table() if table is None else _bad(_table(), *table)
    code, out = _build(tmp_path, data, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()  # refused before anything was written
