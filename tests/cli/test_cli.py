"""The command line in a subprocess: bad input exits 2 with one line; SIGKILL then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explorer
from explorer.ingest.dataset import InputSpec
from explorer.store.format import LOCK_FILE, MANIFEST
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def _bad_inputs(folder: Path) -> dict[str, list[str]]:
    """Each case: the build arguments for one kind of bad input."""
    folder.mkdir(exist_ok=True)
    good = pd.DataFrame(np.random.default_rng(0).normal(size=(8, 3)), columns=["a", "b", "c"])
    cases: dict[str, list[str]] = {"missing": [str(folder / "absent.parquet")]}
    (folder / "text.parquet").write_text("not parquet")
    cases["not_parquet"] = [str(folder / "text.parquet")]
    (folder / "empty.csv").write_text("a,b,c\n")
    cases["empty"] = [str(folder / "empty.csv")]
    good.head(4).to_csv(folder / "few.csv", index=False)
    cases["too_few"] = [str(folder / "few.csv")]
    good.assign(b=good.b.astype(object).where(good.index != 3, "x")).to_csv(
        folder / "word.csv", index=False
    )
    cases["non_numeric"] = [str(folder / "word.csv")]
    good.assign(c=good.c.where(good.index != 2, np.nan)).to_csv(folder / "nan.csv", index=False)
    cases["nan"] = [str(folder / "nan.csv")]
    good.assign(id=[1, 2, 3, 4, 5, 6, 7, 1]).to_csv(folder / "dupid.csv", index=False)
    cases["duplicate_ids"] = [str(folder / "dupid.csv"), "--id", "id"]
    good.to_csv(folder / "good.csv", index=False)
    pd.DataFrame({"m": range(3)}).to_csv(folder / "meta.csv", index=False)
    cases["meta_rows"] = [str(folder / "good.csv"), "--meta", str(folder / "meta.csv")]
    good.assign(img=["../../etc/passwd"] * 8).to_csv(folder / "img.csv", index=False)
    cases["image_escape"] = [
        str(folder / "img.csv"),
        "--image-col",
        "img",
        "--image-root",
        str(folder),
    ]
    cases["bad_layout"] = [str(folder / "good.csv"), "--layouts", "tsne"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"v": [[1.0, 2.0]] * 7 + [[3.0]]}), folder / "ragged.parquet")
    cases["ragged"] = [str(folder / "ragged.parquet")]
    return cases


def test_bad_inputs_exit_2_with_one_line_and_no_store(tmp_path: Path) -> None:
    cases = _bad_inputs(tmp_path / "in")
    # Run the cases in parallel: each subprocess mostly waits on imports.
    procs = {}
    for name, args in cases.items():
        out = tmp_path / f"{name}.store"
        procs[name] = (
            out,
            subprocess.Popen(
                [sys.executable, "-m", "explorer", "build", *args, "--out", str(out), "--quiet"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            ),
        )
    for name, (out, proc) in procs.items():
        _, err = proc.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, err)
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith("explorer: error: "), (name, err)
        assert "Traceback" not in err, name
        assert not out.exists(), name


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli(["--debug", "build", str(tmp_path / "absent.npy"), "--out", "x"])
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "InputError" in result.stderr


def test_help_reads_well() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    for command in ("build", "info", "export", "synth", "sample"):
        assert command in result.stdout
    build = run_cli(["build", "--help"])
    assert "--layouts" in build.stdout
    assert "(default: None)" not in build.stdout


def _build_args(spec: InputSpec, out: Path) -> list[str]:
    return [
        "build",
        str(spec.path),
        "--out",
        str(out),
        "--id",
        "pid",
        "--label",
        "label",
        "--prediction",
        "prediction",
        "--image-col",
        "image",
        "--image-root",
        str(spec.image_root),
        "--text-col",
        "note",
        "--umap-epochs",
        "60",
        "--seed",
        "0",
        "--quiet",
    ]


def test_sigkill_mid_build_then_rerun_equals_uninterrupted(
    tiny_input: InputSpec, tiny_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed.store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer", *_build_args(tiny_input, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (out / "knn" / "stage.json").exists():
        assert proc.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # UMAP's first fit in a new process takes seconds
    proc.wait()
    assert not (out / MANIFEST).exists()
    assert not (out / "umap").exists()
    with pytest.raises(explorer.errors.StoreIncompleteError):
        explorer.open_store(str(out))

    result = run_cli(_build_args(tiny_input, out))
    assert result.returncode == 0, result.stderr
    assert "reused" in result.stdout
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE]
    a, b = explorer.open_store(str(out)), explorer.open_store(str(tiny_store))
    assert a.stages == b.stages
    for stage in a.stages:
        assert a.stage(stage)["key"] == b.stage(stage)["key"], stage
        for fname in a.stage(stage)["files"]:
            if fname.endswith(".npy"):
                stem = fname.removesuffix(".npy")
                np.testing.assert_array_equal(a.array(stage, stem), b.array(stage, stem))
    pd.testing.assert_frame_equal(a.points, b.points)


def test_info_and_export(tiny_store: Path, tmp_path: Path) -> None:
    info = run_cli(["info", str(tiny_store)])
    assert info.returncode == 0, info.stderr
    assert "600 × 8" in info.stdout
    assert "trust:umap" in info.stdout
    as_json = json.loads(run_cli(["info", str(tiny_store), "--json"]).stdout)
    assert as_json["n_points"] == 600

    ids = tmp_path / "ids.txt"
    ids.write_text("p010\np003\np599\n")
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"subset.{fmt}"
        result = run_cli(["export", str(tiny_store), "--ids", str(ids), "--out", str(out)])
        assert result.returncode == 0, result.stderr
        if fmt == "parquet":
            table = pd.read_parquet(out)
        elif fmt == "csv":
            table = pd.read_csv(out)
        else:
            table = pd.read_json(out, lines=True)
        assert table["pid"].tolist() == ["p003", "p010", "p599"]

    ids.write_text("p010\nnope\n")
    bad = run_cli(["export", str(tiny_store), "--ids", str(ids), "--out", str(tmp_path / "x.csv")])
    assert bad.returncode == 2
    assert "id 'nope' is not in the store" in bad.stderr
    assert not (tmp_path / "x.csv").exists()


def test_synth_writes_a_buildable_file(tmp_path: Path) -> None:
    out = tmp_path / "synth.parquet"
    result = run_cli(["synth", "--n", "2000", "--dim", "8", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out)
    assert len(table) == 2000
    assert len(table["vector"].iloc[0]) == 8
    assert {"cluster", "colour", "size", "label", "prediction"} <= set(table.columns)
