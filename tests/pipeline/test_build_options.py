"""Build options end to end: --pca, --metric cosine, --layouts; stale stages are removed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.config import BuildConfig, PcaConfig, UmapConfig
from explorer.errors import ConfigError
from explorer.ingest.dataset import InputSpec
from explorer.pipeline.runner import build_store

pytestmark = pytest.mark.slow

FAST = BuildConfig(seed=0, umap=UmapConfig(n_epochs=30))


def test_pca_cosine_and_two_layouts(tiny_input: InputSpec, tmp_path: Path) -> None:
    from explorer.config import KnnConfig

    config = replace(
        FAST,
        layouts=("umap", "largevis"),
        pca=PcaConfig(n_components=4),
        knn=KnnConfig(metric="cosine"),
    )
    out = tmp_path / "opts.store"
    build_store(
        replace(tiny_input, image_col=None, image_root=None), out, config, show_progress=False
    )
    store = explorer.open_store(str(out))
    assert store.vectors().shape == (600, 4)
    assert store.vectors(reduced=False).shape == (600, 8)
    assert store.layouts == ["umap", "largevis"]
    assert store.scores[:2] == ["trust:umap", "trust:largevis"]
    _, distances = store.knn()
    assert distances.max() <= 2.0  # cosine distance
    assert not store.has_stage("thumbs")

    # Dropping a layout removes its stage; everything upstream is reused.
    report = build_store(
        replace(tiny_input, image_col=None, image_root=None),
        out,
        replace(config, layouts=("umap",)),
        show_progress=False,
    )
    statuses = {s.name: s.status for s in report.stages}
    assert statuses["knn"] == statuses["umap"] == "reused"
    assert statuses["trust"] == "ran"
    store = explorer.open_store(str(out))
    assert store.layouts == ["umap"]
    assert not (out / "largevis").exists()


def test_bad_config_is_refused_before_writing(tiny_input: InputSpec, tmp_path: Path) -> None:
    out = tmp_path / "never.store"
    for bad in (
        replace(FAST, layouts=("tsne",)),
        replace(FAST, pca=PcaConfig(n_components=1)),
        replace(FAST, layouts=("umap", "umap")),
    ):
        with pytest.raises(ConfigError):
            build_store(tiny_input, out, bad, show_progress=False)
    assert not out.exists()
    with pytest.raises(ConfigError, match="smaller than"):
        build_store(
            tiny_input, out, replace(FAST, pca=PcaConfig(n_components=8)), show_progress=False
        )
    assert not (out / "manifest.json").exists()


def test_many_duplicates_do_not_break_any_stage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    x[:200] = x[0]
    np.save(tmp_path / "dups.npy", x)
    out = tmp_path / "dups.store"
    report = build_store(
        InputSpec(tmp_path / "dups.npy"),
        out,
        replace(FAST, layouts=("umap", "largevis")),
        show_progress=False,
    )
    assert any("199 points repeat" in note for note in report.notes)
    store = explorer.open_store(str(out))
    for name in store.layouts:
        assert np.isfinite(store.layout(name)).all()
    for name in store.scores:
        assert np.isfinite(store.score(name)).all(), name
