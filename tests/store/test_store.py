"""The store: round trip, refusal of incomplete/newer/damaged stores, atomic stages, resume."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.errors import (
    StageMissingError,
    StoreCorruptError,
    StoreError,
    StoreIncompleteError,
    StoreVersionError,
)
from explorer.ingest.dataset import InputSpec
from explorer.pipeline import registry
from explorer.pipeline.runner import build_store
from explorer.pipeline.stage import Stage
from explorer.store.format import MANIFEST, TMP_PREFIX
from explorer.store.selections import save_selection
from explorer.store.writer import StoreWriter
from tests.helpers import TINY_CONFIG, tiny_data


def test_round_trip(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    vectors, meta = tiny_data()
    assert store.n_points == 600
    assert list(store.points["pid"]) == list(meta["pid"])
    assert store.points.columns[0] == "pid"
    assert store.layouts == ["umap"]
    coords = store.layout("umap")
    assert isinstance(coords, np.memmap)
    assert coords.dtype == np.float32
    assert coords.shape == (600, 2)
    assert np.isfinite(coords).all()
    indices, distances = store.knn()
    assert indices.dtype == np.int32
    assert distances.dtype == np.float32
    assert indices.shape == distances.shape == (600, 15)
    assert (indices[:, 0] == np.arange(600)).all()
    assert (distances[:, 0] == 0).all()
    np.testing.assert_array_equal(store.vectors(), vectors)
    trust = store.score("trust:umap")
    assert trust.shape == (600,)
    assert 0.0 <= trust.min() <= trust.max() <= 1.0
    assert store.roles["label"] == "label"
    assert store.scores == ["trust:umap", "lid", "outlier", "outlier_local"]
    # the planted far outlier (the last row) is the top outlier
    assert int(np.argmax(store.score("outlier"))) == 599
    assert 3.0 < store.global_intrinsic_dimension() < 9.0


def test_manifest_records_each_stage(tiny_store: Path) -> None:
    manifest = json.loads((tiny_store / MANIFEST).read_text())
    assert manifest["format_version"] == 1
    assert manifest["n_points"] == 600
    assert list(manifest["stages"]) == [
        "validate",
        "knn",
        "umap",
        "trust",
        "intrinsic",
        "outliers",
        "hierarchy",
        "slices",
        "thumbs",
    ]
    for record in manifest["stages"].values():
        assert len(record["key"]) == 32
        assert record["seconds"] >= 0
        assert "numpy" in record["versions"]
        for info in record["files"].values():
            assert len(info["sha256"]) == 64
    assert manifest["stages"]["knn"]["summary"]["recall"] == 1.0
    assert manifest["source"]["sha256"]
    explorer.open_store(str(tiny_store)).verify()


def test_thumbnails_are_packed(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    cells = store.thumbnail_cells()
    assert (cells >= 0).all()
    assert len(np.unique(cells)) == 600
    assert store.sprite_sheet_path(0).exists()


def _copy(store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy.store"
    shutil.copytree(store, dst)
    return dst


def test_incomplete_store_is_refused(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    (path / MANIFEST).unlink()
    with pytest.raises(StoreIncompleteError, match="rerun the same explorer build"):
        explorer.open_store(str(path))


def test_newer_format_is_refused(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = 99
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreVersionError, match="upgrade explorer"):
        explorer.open_store(str(path))


def test_truncated_array_is_refused(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    target = path / "umap" / "coords.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreCorruptError, match="truncated"):
        explorer.open_store(str(path))


def test_changed_array_fails_verify(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    target = path / "knn" / "distances.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    store = explorer.open_store(str(path))  # same size: opening is cheap and passes
    with pytest.raises(StoreCorruptError, match="checksum"):
        store.verify()


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such directory"):
        explorer.open_store(str(tmp_path / "nothing"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("mine")
    with pytest.raises(StoreError, match="is not a projection store"):
        StoreWriter(tmp_path / "junk")
    assert (tmp_path / "junk" / "file.txt").read_text() == "mine"


def test_missing_layout_and_score_are_clear(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    with pytest.raises(StageMissingError, match="has no layout 'hmds'"):
        store.layout("hmds")
    with pytest.raises(StageMissingError, match=r"it has: trust:umap, lid, outlier"):
        store.score("nope")


def _counting(monkeypatch: pytest.MonkeyPatch, calls: dict[str, int], fail: str | None) -> None:
    """Wrap every stage so that runs are counted and stage ``fail`` raises Ctrl-C."""
    original = registry.all_stages

    def wrapped() -> list[Stage]:
        out = []
        for stage in original():

            def run(ctx, _stage=stage):  # type: ignore[no-untyped-def]
                calls[_stage.name] = calls.get(_stage.name, 0) + 1
                if _stage.name == fail:
                    raise KeyboardInterrupt
                return _stage.run(ctx)

            out.append(Stage(stage.name, run, stage.requires, stage.params, stage.enabled))
        return out

    monkeypatch.setattr("explorer.pipeline.runner.all_stages", wrapped)


def test_interrupt_leaves_no_partial_stage_and_rerun_resumes(
    tiny_input: InputSpec, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resume.store"
    calls: dict[str, int] = {}
    _counting(monkeypatch, calls, fail="trust")
    with pytest.raises(KeyboardInterrupt):
        build_store(tiny_input, out, TINY_CONFIG, show_progress=False)
    assert not (out / MANIFEST).exists()
    assert not (out / "trust").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert (out / "umap" / "stage.json").exists()

    calls.clear()
    _counting(monkeypatch, calls, fail=None)
    report = build_store(tiny_input, out, TINY_CONFIG, show_progress=False)
    assert calls == {
        "trust": 1,
        "intrinsic": 1,
        "outliers": 1,
        "hierarchy": 1,
        "slices": 1,
        "thumbs": 1,
    }
    assert [s.status for s in report.stages] == ["reused"] * 3 + ["ran"] * 6
    fresh, reference = explorer.open_store(str(out)), explorer.open_store(str(tiny_store))
    np.testing.assert_array_equal(fresh.layout("umap"), reference.layout("umap"))
    np.testing.assert_array_equal(fresh.score("trust:umap"), reference.score("trust:umap"))

    calls.clear()
    build_store(tiny_input, out, TINY_CONFIG, show_progress=False)
    assert calls == {}


def test_changed_parameter_reruns_downstream_only(
    tiny_input: InputSpec, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _copy(tiny_store, tmp_path)
    calls: dict[str, int] = {}
    _counting(monkeypatch, calls, fail=None)
    from dataclasses import replace

    from explorer.config import UmapConfig

    config = replace(TINY_CONFIG, umap=UmapConfig(n_epochs=61))
    build_store(tiny_input, out, config, show_progress=False)
    assert calls == {"umap": 1, "trust": 1}


def test_selections_save_and_load(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    name = save_selection(path, " cluster a ", np.array([5, 3, 3, 9]), 600)
    assert name == "cluster a"
    store = explorer.open_store(str(path))
    assert store.selections() == ["cluster a"]
    np.testing.assert_array_equal(store.selection("cluster a"), [3, 5, 9])
    for bad in ["", "../evil", ".hidden", "a/b", "x" * 81]:
        with pytest.raises(StoreError, match="invalid selection name"):
            save_selection(path, bad, np.array([1]), 600)
    with pytest.raises(StoreError, match="outside"):
        save_selection(path, "big", np.array([600]), 600)


def test_concurrent_saves_lose_nothing(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    rng = np.random.default_rng(0)
    wanted = {f"s{i}": np.unique(rng.integers(0, 600, 50)) for i in range(16)}

    def save(name: str) -> None:
        for _ in range(5):
            save_selection(path, name, wanted[name], 600)

    threads = [threading.Thread(target=save, args=(n,)) for n in wanted]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = explorer.open_store(str(path))
    assert store.selections() == sorted(wanted)
    for name, rows in wanted.items():
        np.testing.assert_array_equal(store.selection(name), rows)


def test_slice_ignore_reruns_hierarchy_names_and_slices(
    tiny_input: InputSpec, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _copy(tiny_store, tmp_path)
    calls: dict[str, int] = {}
    _counting(monkeypatch, calls, fail=None)
    from dataclasses import replace

    from explorer.config import SliceConfig

    config = replace(TINY_CONFIG, slices=SliceConfig(ignore=("size",)))
    build_store(tiny_input, out, config, show_progress=False)
    assert calls == {"hierarchy": 1, "slices": 1}
    names = explorer.open_store(str(out)).slices()["name"]
    assert not names.str.startswith("size").any()
