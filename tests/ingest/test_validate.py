"""Every bad input gets one InputError naming the row and column, before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.errors import InputError
from explorer.ingest.dataset import InputSpec
from explorer.ingest.validate import duplicate_rows, load_dataset
from tests.helpers import write_vectors_parquet


def _csv(tmp_path: Path, text: str, name: str = "v.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _good_frame(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"]).assign(
        name=[f"n{i}" for i in range(n)]
    )


def test_npy_vectors_get_row_ids(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.arange(30, dtype=np.float64).reshape(10, 3))
    ds = load_dataset(InputSpec(path))
    assert ds.vectors.dtype == np.float32
    assert ds.vectors.shape == (10, 3)
    assert list(ds.points.columns) == ["id"]
    assert ds.points["id"].tolist() == list(range(10))


def test_csv_numeric_columns_become_vectors_rest_metadata(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    _good_frame().to_csv(path, index=False)
    ds = load_dataset(InputSpec(path, id="name"))
    assert ds.vectors.shape == (8, 3)
    assert list(ds.points.columns) == ["name"]
    assert ds.roles["id"] == "name"


def test_csv_prefix_selects_vector_columns(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    _good_frame().assign(score=1.5).to_csv(path, index=False)
    ds = load_dataset(InputSpec(path, vectors="x"))
    assert ds.vectors.shape == (8, 3)
    assert "score" in ds.points.columns


def test_parquet_list_column_and_meta_file(tmp_path: Path) -> None:
    vectors = np.random.default_rng(1).normal(size=(6, 4))
    path = write_vectors_parquet(tmp_path / "v.parquet", vectors, pd.DataFrame({"k": range(6)}))
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"colour": list("rgbrgb")}).to_csv(meta, index=False)
    ds = load_dataset(InputSpec(path, meta=meta))
    np.testing.assert_allclose(ds.vectors, vectors.astype(np.float32))
    assert list(ds.points.columns) == ["id", "k", "colour"]


def test_duplicates_are_counted_not_refused(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(size=(20, 3)).astype(np.float32)
    x[5] = x[2]
    x[9] = x[2]
    x[11] = -0.0
    x[12] = 0.0
    path = tmp_path / "v.npy"
    np.save(path, x)
    ds = load_dataset(InputSpec(path))
    assert ds.n_duplicates == 3
    assert ds.duplicate_of is not None
    assert ds.duplicate_of[[5, 9, 12]].tolist() == [2, 2, 11]


def test_duplicate_rows_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(300, 2)).astype(np.float32)
    got = duplicate_rows(x)
    for i in range(len(x)):
        earlier = [j for j in range(i) if (x[j] == x[i]).all()]
        assert got[i] == (earlier[0] if earlier else -1)


def _write_bad(tmp_path: Path, case: str) -> InputSpec:
    frame = _good_frame()
    if case == "missing":
        return InputSpec(tmp_path / "nope.parquet")
    if case == "not_parquet":
        return InputSpec(_csv(tmp_path, "hello", "v.parquet"))
    if case == "empty":
        return InputSpec(_csv(tmp_path, "x0,x1\n"))
    if case == "too_few":
        frame.head(3).to_csv(tmp_path / "v.csv", index=False)
        return InputSpec(tmp_path / "v.csv")
    if case == "non_numeric":
        lines = frame.to_csv(index=False).splitlines()
        cells = lines[5].split(",")  # line 0 is the header, so data row 4
        cells[1] = "abc"
        lines[5] = ",".join(cells)
        return InputSpec(_csv(tmp_path, "\n".join(lines) + "\n"))
    if case == "nan":
        frame.loc[3, "x2"] = np.nan
        frame.to_csv(tmp_path / "v.csv", index=False)
        return InputSpec(tmp_path / "v.csv")
    if case == "inf":
        x = np.ones((8, 3))
        x[6, 1] = np.inf
        np.save(tmp_path / "v.npy", x)
        return InputSpec(tmp_path / "v.npy")
    if case == "duplicate_ids":
        frame.loc[5, "name"] = "n2"
        frame.to_csv(tmp_path / "v.csv", index=False)
        return InputSpec(tmp_path / "v.csv", id="name")
    if case == "meta_rows":
        frame.to_csv(tmp_path / "v.csv", index=False)
        pd.DataFrame({"m": range(5)}).to_csv(tmp_path / "m.csv", index=False)
        return InputSpec(tmp_path / "v.csv", meta=tmp_path / "m.csv")
    if case == "ragged":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [[1.0, 2.0]] * 7 + [[1.0]]
        pq.write_table(pa.table({"emb": rows}), tmp_path / "v.parquet")
        return InputSpec(tmp_path / "v.parquet", vectors="emb")
    if case == "image_escape":
        frame["img"] = ["a.png"] * 7 + ["../../etc/passwd"]
        frame.to_csv(tmp_path / "v.csv", index=False)
        (tmp_path / "imgs").mkdir()
        return InputSpec(tmp_path / "v.csv", image_col="img", image_root=tmp_path / "imgs")
    if case == "unknown_column":
        frame.to_csv(tmp_path / "v.csv", index=False)
        return InputSpec(tmp_path / "v.csv", label="nope")
    raise AssertionError(case)


BAD_CASES = {
    "missing": "no such file",
    "not_parquet": "not a readable Parquet file",
    "empty": "no rows",
    "too_few": "at least 5",
    "non_numeric": "row 4, column 'x1': 'abc' is not a number",
    "nan": "row 3, 'x2': NaN",
    "inf": "row 6, 'dimension 1': an infinite value",
    "duplicate_ids": "id 'n2' (column 'name') appears twice, at rows 2 and 5",
    "meta_rows": "has 5 rows but the vectors have 8",
    "ragged": "row 7, column 'emb': vector has 1 values, but row 0 has 2",
    "image_escape": "row 7, column 'img': image path '../../etc/passwd' escapes",
    "unknown_column": "--label column 'nope' is not in the metadata",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_the_problem(tmp_path: Path, case: str) -> None:
    spec = _write_bad(tmp_path, case)
    with pytest.raises(InputError) as info:
        load_dataset(spec)
    assert BAD_CASES[case] in str(info.value)
    assert "\n" not in str(info.value)


def test_non_utf8_csv_is_read_as_latin1_with_a_note(tmp_path: Path) -> None:
    text = _good_frame().assign(name=["café"] * 8).to_csv(index=False)
    path = tmp_path / "v.csv"
    path.write_bytes(text.encode("latin-1"))
    ds = load_dataset(InputSpec(path))
    assert ds.points["name"].iloc[0] == "café"
    assert any("not valid UTF-8" in note and "Latin-1" in note for note in ds.notes)


def test_missing_images_are_a_note_not_an_error(tmp_path: Path) -> None:
    frame = _good_frame().assign(img=[f"{i}.png" for i in range(8)])
    frame.to_csv(tmp_path / "v.csv", index=False)
    (tmp_path / "imgs").mkdir()
    ds = load_dataset(InputSpec(tmp_path / "v.csv", image_col="img", image_root=tmp_path / "imgs"))
    assert any("8 image files are missing" in note for note in ds.notes)


def test_h5ad_vectors_from_x_or_obsm(tmp_path: Path) -> None:
    anndata = pytest.importorskip("anndata")
    rng = np.random.default_rng(4)
    obs = pd.DataFrame({"cell_type": list("abcab" * 4)}, index=[f"cell{i}" for i in range(20)])
    adata = anndata.AnnData(
        X=rng.normal(size=(20, 6)).astype(np.float32),
        obs=obs,
        obsm={"X_pca": rng.normal(size=(20, 3)).astype(np.float32)},
    )
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    ds = load_dataset(InputSpec(path, id="obs_name"))
    assert ds.vectors.shape == (20, 6)
    assert list(ds.points.columns) == ["obs_name", "cell_type"]
    ds = load_dataset(InputSpec(path, vectors="X_pca"))
    np.testing.assert_allclose(ds.vectors, adata.obsm["X_pca"])
    with pytest.raises(InputError, match=r"has no \.obsm\['nope'\]"):
        load_dataset(InputSpec(path, vectors="nope"))
