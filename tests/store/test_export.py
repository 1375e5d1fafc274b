"""Exports: formulas neutralised in CSV, floats exact in CSV and JSONL, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explorer
from explorer.cli import main
from explorer.store.export import table_bytes

FORMULAS = ['=HYPERLINK("http://x","y")', "@SUM(1)", "+2+3", "-2+3", "\tx", "\rx"]


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_csv_neutralises_formulas_but_not_numbers() -> None:
    table = pd.DataFrame(
        {
            "text": [*FORMULAS, "plain", None],
            "number": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "=evil()": ["a"] * 8,
        }
    )
    header, *rows = _csv_rows(table_bytes(table, "csv"))
    assert header == ["text", "number", "'=evil()"]
    assert [r[0] for r in rows[:6]] == ["'" + f for f in FORMULAS]
    assert rows[6][0] == "plain"
    assert rows[7][0] == ""
    assert [float(r[1]) for r in rows] == table["number"].tolist()
    raw_header, *raw = _csv_rows(table_bytes(table, "csv", raw=True))
    assert raw_header[2] == "=evil()"
    assert [r[0] for r in raw[:6]] == FORMULAS


def test_csv_and_jsonl_round_trip_floats_exactly() -> None:
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "f64": rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n),
            "umap_x": rng.normal(size=n).astype(np.float32),
        }
    )
    table.loc[3, "f64"] = np.nan
    vectors = rng.normal(size=(n, 5)).astype(np.float32)
    table["vector"] = list(vectors)
    # float_precision="round_trip": pandas' default float parser is not exact itself
    back = pd.read_csv(io.BytesIO(table_bytes(table, "csv")), float_precision="round_trip")
    np.testing.assert_array_equal(back["f64"].to_numpy(), table["f64"].to_numpy())
    np.testing.assert_array_equal(back["umap_x"].astype(np.float32), table["umap_x"])
    csv_vectors = np.array([v.split() for v in back["vector"]], dtype=np.float32)
    np.testing.assert_array_equal(csv_vectors, vectors)
    records = [json.loads(line) for line in table_bytes(table, "jsonl").decode().splitlines()]
    assert records[3]["f64"] is None  # NaN is null: valid JSON
    got = np.array([r["f64"] for r in records], dtype=np.float64)
    np.testing.assert_array_equal(got, table["f64"].to_numpy())
    np.testing.assert_array_equal(
        np.array([r["vector"] for r in records], dtype=np.float32), vectors
    )
    np.testing.assert_array_equal(
        np.array([r["umap_x"] for r in records], dtype=np.float32), table["umap_x"]
    )


def test_export_errors_are_one_line(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tiny_store)
    binary = tmp_path / "ids.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    wide = tmp_path / "wide.csv"
    wide.write_text("name,score\np001,1\np002,2\n")
    cases = {
        "the folder": ["--all", "--out", str(tmp_path / "no" / "such" / "x.csv")],
        "is a directory": ["--all", "--out", str(tmp_path), "--format", "csv"],
        "not a UTF-8 text file": ["--ids", str(binary), "--out", str(tmp_path / "a.csv")],
        "none is the store's id column 'pid'": [
            "--ids", str(wide), "--out", str(tmp_path / "b.csv"),
        ],
    }  # fmt: skip
    for expected, args in cases.items():
        assert main(["export", store, *args]) == 2, expected
        err = capsys.readouterr().err
        assert expected in err
        assert err.count("\n") == 1
        assert "Traceback" not in err


def test_export_reads_the_id_column_and_the_errors(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("note,pid\nx,p001\ny,p007\nz,p003\n")
    out = tmp_path / "out.csv"
    assert main(["export", str(tiny_store), "--ids", str(ids), "--out", str(out), "--errors"]) == 0
    table = pd.read_csv(out)
    assert table["pid"].tolist() == ["p001", "p003", "p007"]
    codes, _ = explorer.open_store(str(tiny_store)).errors()
    names = {1: "wrong", 0: "right", -1: "unknown"}
    assert table["error"].tolist() == [names[int(codes[i])] for i in (1, 3, 7)]
    capsys.readouterr()
