"""The store contract: every file declared once, checked by the writer and on open, and
documented; every damaged store refused in one line naming the file and what to do."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explorer
from explorer.cli import main
from explorer.errors import StoreCorruptError, StoreError
from explorer.store.contract import match_shape
from explorer.store.format import MANIFEST, STAGE_FILES
from explorer.store.writer import StoreWriter
from tests.helpers import ROOT

DOC = ROOT / "docs" / "store-format.md"


def test_every_declared_file_is_documented() -> None:
    text = DOC.read_text()
    documented = set(re.findall(r"`([a-z_]+/[A-Za-z0-9_*<>.\-/]+)`", text))
    missing = []
    placeholder = {"trust": "<layout>", "partitions": "<layout>", "imported": "<name>"}
    for stage, specs in STAGE_FILES.items():
        for spec in specs:
            name = spec.name.replace("*", placeholder.get(stage, "NNNN"))
            if spec.kind == "parts":
                name += "part-NNNNN.parquet"
            if f"{stage}/{name}" not in documented:
                missing.append(f"{stage}/{spec.name}")
    assert missing == [], f"declared in format.py but not in {DOC.name}: {missing}"


def test_every_file_of_a_built_store_is_declared(tiny_store: Path) -> None:
    manifest = json.loads((tiny_store / MANIFEST).read_text())
    for stage, record in manifest["stages"].items():
        for fname in record["files"]:
            assert any(
                re.fullmatch(spec.name.replace(".", r"\.").replace("*", ".*"), fname)
                for spec in STAGE_FILES[stage]
            ), f"{stage}/{fname}"


def test_shape_rules() -> None:
    bound = {"n": 10}
    assert match_shape(("n", "k"), (10, 5), bound) is None
    assert bound["k"] == 5
    assert match_shape(("n", "k"), (10, 6), bound) is not None  # k is bound now
    assert match_shape(("s+1",), (4,), bound) is None
    assert bound["s"] == 3
    assert match_shape(("s", "*"), (3, 99), bound) is None
    assert "expected" in (match_shape(("n",), (9,), bound) or "")
    assert "dimensions" in (match_shape(("n", 2), (10,), bound) or "")


def test_writer_refuses_a_stage_that_breaks_the_contract(tmp_path: Path) -> None:
    with StoreWriter(tmp_path / "s.store", {"n": 4, "d": 2}) as writer:
        table = pd.DataFrame({"id": ["a", "b", "c", "d"]})
        with pytest.raises(StoreError, match=r"vectors.npy has dtype float64, expected float32"):
            writer.write_stage(
                "validate",
                "k",
                arrays={"vectors": np.zeros((4, 2)), "duplicate_of": np.full(4, -1)},
                tables={"points": table},
            )
        with pytest.raises(StoreError, match=r"coords.npy has shape \(3, 2\)"):
            writer.write_stage("umap", "k", arrays={"coords": np.zeros((3, 2), np.float32)})
        with pytest.raises(StoreError, match=r"extra\.npy is not declared"):
            writer.write_stage(
                "outliers",
                "k",
                arrays={
                    "outlier": np.zeros(4, np.float32),
                    "outlier_local": np.zeros(4, np.float32),
                    "scales": np.ones(16),
                    "extra": np.zeros(4, np.float32),
                },
            )
        with pytest.raises(StoreError, match="stage 'mystery' is not declared"):
            writer.write_stage("mystery", "k", arrays={"x": np.zeros(4, np.float32)})
    assert sorted(p.name for p in (tmp_path / "s.store").iterdir()) == [".writer.lock"]


def _edit_manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        manifest = json.loads((path / MANIFEST).read_text())
        result = edit(manifest)
        (path / MANIFEST).write_text(json.dumps(manifest if result is None else result))

    return apply


def _garbage_parquet(path: Path) -> None:
    target = path / "validate" / "points.parquet"
    size = target.stat().st_size
    target.write_bytes(np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes())


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda m: m.__setitem__(key, value)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "n_points too small": (_edit_manifest(_set("n_points", 599)), "has shape (600"),
    "n_points too large": (_edit_manifest(_set("n_points", 601)), "has shape (600"),
    "manifest []": (_edit_manifest(lambda m: []), "manifest.json holds a JSON list"),
    "no stages": (_edit_manifest(lambda m: m.pop("stages") and None), "lists no stages"),
    "format_version 0": (_edit_manifest(_set("format_version", 0)), "format_version 0"),
    "format_version '1'": (_edit_manifest(_set("format_version", "1")), "format_version '1'"),
    "garbage parquet": (_garbage_parquet, "points.parquet cannot be read"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_store_is_one_line_naming_the_file(
    case: str, tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "copy.store"
    shutil.copytree(tiny_store, path)
    damage, expected = DAMAGE[case]
    damage(path)
    with pytest.raises(StoreError, match=re.escape(expected)):
        explorer.open_store(str(path))
    out = str(tmp_path / "x.csv")
    for command in (["info", str(path)], ["export", str(path), "--all", "--out", out]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert expected in err
        assert "rebuild" in err


def test_unreadable_file_is_one_line(
    tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "copy.store"
    shutil.copytree(tiny_store, path)
    target = path / "knn" / "indices.npy"
    original = Path.open

    def deny(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(StoreCorruptError, match=r"indices.npy cannot be read \(PermissionError"):
        explorer.open_store(str(path))


def test_verify_names_a_changed_file(tiny_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.store"
    shutil.copytree(tiny_store, path)
    target = path / "umap" / "coords.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["info", str(path)]) == 0  # headers and sizes are fine
    assert main(["info", str(path), "--verify"]) == 2
