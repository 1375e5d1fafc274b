"""One writer at a time, and saved selections bound to their data, never read spliced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.cli import main
from explorer.errors import (
    SelectionExistsError,
    StaleSelectionError,
    StoreLockedError,
)
from explorer.ingest.dataset import InputSpec
from explorer.store.format import LOCK_FILE, MANIFEST, SELECTIONS_DIR, TMP_PREFIX
from explorer.store.lock import store_lock
from explorer.store.selections import save_selection
from explorer.store.writer import StoreWriter
from tests.helpers import ROOT, run_cli

CONCURRENT_SECONDS = 30.0


def _copy(store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy.store"
    shutil.copytree(store, dst)
    return dst


def test_second_writer_is_refused_and_live_temporaries_are_kept(
    tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("explorer.store.selections.LOCK_WAIT_SECONDS", 0.1)
    path = _copy(tiny_store, tmp_path)
    with StoreWriter(path):
        live = path / f"{TMP_PREFIX}umap-live"
        live.mkdir()  # the first writer's stage in progress
        with pytest.raises(StoreLockedError, match=rf"process {os.getpid()} on .*since"):
            StoreWriter(path)
        assert live.is_dir()  # the refused writer removed nothing
        with pytest.raises(StoreLockedError, match="before saving selection"):
            save_selection(path, "x", np.array([1]), 600)
    with StoreWriter(path):  # the first is gone: its leftovers now are
        assert not live.exists()
    explorer.open_store(str(path)).verify()


def test_lock_is_released_when_its_holder_dies(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    code = (
        "import sys, time; from pathlib import Path; from explorer.store.lock import StoreLock;"
        "lock = StoreLock(Path(sys.argv[1]), 'test').acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match=f"process {holder.pid}"):
            StoreWriter(path)
    finally:
        holder.kill()
        holder.wait()
    StoreWriter(path).close()  # SIGKILL released it


@pytest.mark.slow
def test_two_builds_into_one_store(
    tiny_input: InputSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "race.store"
    args = [
        "build", str(tiny_input.path), "--out", str(out), "--id", "pid", "--label", "label",
        "--prediction", "prediction", "--seed", "0", "--umap-epochs", "30", "--quiet",
    ]  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, "-m", "explorer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # wait until the first build holds the lock
            try:
                if json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"is being written by process {first.pid}" in err
        assert err.count("\n") == 1
        _, first_err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    store = explorer.open_store(str(out))
    store.verify()
    assert store.n_points == 600


def test_saving_over_a_name_needs_overwrite(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    save_selection(path, "mine", np.array([1, 2]), 600)
    with pytest.raises(SelectionExistsError, match="exists already"):
        save_selection(path, "mine", np.array([3]), 600)
    assert explorer.open_store(str(path)).selection("mine").tolist() == [1, 2]
    save_selection(path, "mine", np.array([3]), 600, overwrite=True)
    assert explorer.open_store(str(path)).selection("mine").tolist() == [3]


def _rebuild_from_other_input(path: Path) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["source"]["sha256"] = "0" * 64  # same point count, other input
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_selection_is_refused_after_a_rebuild_from_other_input(
    tiny_store: Path, tmp_path: Path
) -> None:
    path = _copy(tiny_store, tmp_path)
    before = explorer.open_store(str(path))
    save_selection(path, "old", np.array([5, 6]), 600)
    _rebuild_from_other_input(path)
    store = explorer.open_store(str(path))
    with pytest.raises(StaleSelectionError, match="saved on other data"):
        store.selection("old")
    assert store.selections() == []
    assert "old.npz was saved on other data" in store.selection_problems()[0]
    # A session opened before the rebuild cannot save its (old) rows into the new store.
    with pytest.raises(StaleSelectionError, match="rebuilt from other data"):
        save_selection(path, "late", np.array([1]), 600, made_on=before.data_id)


def test_bad_files_in_selections_are_skipped_with_a_warning(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(tiny_store, tmp_path)
    save_selection(path, "good", np.array([1, 2, 3]), 600)
    folder = path / SELECTIONS_DIR
    (folder / "garbage.npz").write_bytes(b"\x00not a zip" * 10)
    np.save(folder / "legacy.npy", np.array([1, 2]))
    store = explorer.open_store(str(path))
    assert store.selections() == ["good"]
    assert len(store.selection_problems()) == 2
    assert list(store.slices(kind="saved")["name"]) == ["good"]
    assert main(["info", str(path)]) == 0
    assert main(["slices", str(path), "--kind", "saved"]) == 0
    out, err = capsys.readouterr()
    assert "garbage.npz is not a readable saved selection" in err
    assert "legacy.npy" in err
    assert "good" in out
    assert "Traceback" not in err


SAVER = """
import sys, time
from pathlib import Path
import numpy as np
from explorer.errors import StoreLockedError
from explorer.store.selections import save_selection
store, writer, until = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
i = 0
while time.time() < until:
    size = 1 + (i * 37 + writer * 101) % 500
    try:
        save_selection(store, "shared", np.arange(size % 50, size % 50 + size), 600,
                       overwrite=True)
    except StoreLockedError:  # the others held it past the wait (a loaded machine): again
        continue
    i += 1
print(i)
"""


@pytest.mark.slow
def test_three_savers_and_a_reader_never_splice(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    save_selection(path, "shared", np.arange(1, 2), 600)
    until = time.time() + CONCURRENT_SECONDS
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path), str(w), str(until)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for w in range(3)
    ]
    store = explorer.open_store(str(path))
    reads, sizes = 0, set()
    try:
        while time.time() < until:
            rows = store.selection("shared")
            size = len(rows)
            start = size % 50
            # Every save is self-describing: a mix of two saves cannot pass this.
            np.testing.assert_array_equal(rows, np.arange(start, start + size))
            sizes.add(size)
            reads += 1
        results = [s.communicate(timeout=60) for s in savers]
    finally:
        for s in savers:
            s.kill()
    assert all(s.returncode == 0 for s in savers), [err for _, err in results]
    saves = sum(int(out) for out, _ in results)
    assert saves > 30
    assert reads > 100
    assert len(sizes) > 3  # the reader did see the saves land
    assert store.selections() == ["shared"]


def test_readers_never_need_the_lock(tiny_store: Path, tmp_path: Path) -> None:
    path = _copy(tiny_store, tmp_path)
    with store_lock(path, "test"):
        assert run_cli(["info", str(path)]).returncode == 0


def test_an_unwritable_store_is_one_clear_error(tmp_path: Path) -> None:
    from explorer.errors import StoreError
    from explorer.store.lock import StoreLock

    with pytest.raises(StoreError, match="cannot open the writer lock"):
        StoreLock(tmp_path / "not-there", "saving").acquire()
