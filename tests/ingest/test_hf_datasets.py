"""Hugging Face ``datasets`` folders (save_to_disk) as build input; nothing is downloaded."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.errors import InputError
from explorer.ingest.dataset import InputSpec
from explorer.ingest.validate import load_dataset
from explorer.store.reader import Store
from tests.helpers import TINY_CONFIG, tiny_data

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset as a datasets.Dataset (vectors a list column), saved to disk."""
    vectors, meta = tiny_data()
    ds = datasets.Dataset.from_dict(
        {
            "pid": meta["pid"].tolist(),
            "label": meta["label"].tolist(),
            "embedding": vectors.tolist(),
        }
    )
    folder = tmp_path_factory.mktemp("hf") / "tiny_ds"
    ds.save_to_disk(str(folder))
    return folder


def test_reads_vectors_and_columns(saved: Path) -> None:
    ds = load_dataset(InputSpec(saved, id="pid", label="label"))
    vectors, meta = tiny_data()
    np.testing.assert_allclose(ds.vectors, vectors)
    assert list(ds.points.columns) == ["pid", "label"]
    assert ds.points["pid"].tolist() == meta["pid"].tolist()
    assert ds.source["format"] == "hf-datasets"


def test_builds_a_store(saved: Path, tmp_path: Path) -> None:
    from explorer.pipeline.runner import build_store

    out = tmp_path / "hf.store"
    build_store(InputSpec(saved, id="pid", label="label"), out, TINY_CONFIG, show_progress=False)
    store = Store(out)
    assert store.n_points == 600
    assert store.points["pid"].tolist() == [f"p{i:03d}" for i in range(600)]
    assert store.manifest["source"]["format"] == "hf-datasets"
    assert len(store.manifest["source"]["sha256"]) == 64


def test_dataset_dict_and_missing_package_are_one_line(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = datasets.DatasetDict({"train": datasets.load_from_disk(str(saved))})
    splits.save_to_disk(str(tmp_path / "splits"))
    with pytest.raises(InputError, match=r"several splits; give one split's folder"):
        load_dataset(InputSpec(tmp_path / "splits"))
    assert len(load_dataset(InputSpec(tmp_path / "splits" / "train")).points) == 600
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(InputError, match=r"needs the datasets package") as info:
        load_dataset(InputSpec(saved))
    assert "\n" not in str(info.value)
