"""Thumbnails from untrusted image folders: bombs, FIFOs, junk and hangs are counted, not
fatal, and never block the build."""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.ingest import thumbnails
from explorer.ingest.dataset import InputSpec
from explorer.ingest.thumbnails import ImageProblem, read_image_bytes, write_sprite_sheets
from tests.helpers import TINY_CONFIG, write_vectors_parquet


def bomb_png(path: Path, side: int = 40_000) -> Path:
    """A tiny PNG whose header claims ``side`` × ``side`` pixels."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", side, side)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def hostile_folder(root: Path) -> list[Path | None]:
    Image.new("RGB", (4, 4), "red").save(root / "good.png")
    bomb_png(root / "bomb.png")
    os.mkfifo(root / "fifo.png")
    (root / "junk.png").write_bytes(b"not an image at all")
    (root / "folder.png").mkdir()
    names = ["good.png", "bomb.png", "fifo.png", "junk.png", "folder.png", "gone.png"]
    return [*(root / n for n in names), None]


def test_bad_images_are_counted_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    problems: Counter[str] = Counter()
    cells = write_sprite_sheets(
        hostile_folder(tmp_path), tmp_path / "out", size=8, per_side=2, problems=problems
    )
    assert cells.tolist() == [0, -1, -1, -1, -1, -1, -1]
    assert problems == {
        "too large": 1,
        "not a regular file": 2,
        "unreadable": 1,
        "missing": 1,
    }
    assert Image.MAX_IMAGE_PIXELS == thumbnails.MAX_PIXELS


def test_a_hung_read_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow.png").write_bytes(b"x")
    monkeypatch.setattr(thumbnails, "_read_regular_file", lambda _: time.sleep(5) or b"")
    with pytest.raises(ImageProblem, match="timed out"):
        read_image_bytes(tmp_path / "slow.png", timeout=0.2)


def test_build_summary_counts_bad_images(tmp_path: Path) -> None:
    from explorer.pipeline.runner import build_store

    paths = hostile_folder(tmp_path)
    n = 60
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, 4)).astype(np.float32)
    images = ([p.name if p is not None else None for p in paths] * 9)[:n]
    meta = pd.DataFrame({"pid": [f"i{i}" for i in range(n)], "image": images})
    spec = InputSpec(
        path=write_vectors_parquet(tmp_path / "v.parquet", vectors, meta),
        id="pid",
        image_col="image",
        image_root=tmp_path,
    )
    report = build_store(spec, tmp_path / "s.store", TINY_CONFIG, show_progress=False)
    thumbs = next(s for s in report.stages if s.name == "thumbs")
    skipped = thumbs.summary["images_skipped"]
    assert skipped["too large"] == images.count("bomb.png")
    assert skipped["not a regular file"] == images.count("fifo.png") + images.count("folder.png")
    assert skipped["missing"] == images.count("gone.png")
    assert any("gave no thumbnail" in note for note in report.notes)
