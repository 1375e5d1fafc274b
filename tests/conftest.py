"""Session fixtures: small datasets and stores built once by the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from explorer.ingest.dataset import InputSpec
from tests.helpers import TINY_CONFIG, hostile_data, tiny_data, write_vectors_parquet


@pytest.fixture(scope="session")
def tiny_input(tmp_path_factory: pytest.TempPathFactory) -> InputSpec:
    """The tiny dataset as Parquet, with a PNG per point."""
    folder = tmp_path_factory.mktemp("tiny")
    vectors, meta = tiny_data()
    (folder / "img").mkdir()
    for i in range(len(meta)):
        shade = int(255 * i / len(meta))
        Image.new("L", (6, 6), shade).save(folder / "img" / f"{i:03d}.png")
    path = write_vectors_parquet(folder / "tiny.parquet", vectors, meta)
    return InputSpec(
        path=path,
        id="pid",
        label="label",
        prediction="prediction",
        image_col="image",
        image_root=folder,
        text_col="note",
    )


@pytest.fixture(scope="session")
def tiny_store(tiny_input: InputSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset built once by the real pipeline."""
    from explorer.pipeline.runner import build_store

    out = tmp_path_factory.mktemp("stores") / "tiny.store"
    build_store(tiny_input, out, TINY_CONFIG, show_progress=False)
    return out


@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store whose labels and a column name are HTML/script payloads."""
    from explorer.pipeline.runner import build_store

    folder = tmp_path_factory.mktemp("hostile")
    vectors, meta = hostile_data()
    path = write_vectors_parquet(folder / "hostile.parquet", vectors, meta)
    spec = InputSpec(path=path, id="pid", label="label", prediction="prediction")
    out = folder / "hostile.store"
    build_store(spec, out, TINY_CONFIG, show_progress=False)
    return out


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """One 2-worker ``distributed.LocalCluster`` (single-threaded worker processes) and its
    client, for every test that serves from a cluster."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=40,
    )  # fmt: skip
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits sample (1,797 images, labels, predictions) built once by the pipeline."""
    from explorer.datasets.digits import make_digits_sample
    from explorer.ingest.dataset import InputSpec
    from explorer.pipeline.runner import build_store
    from tests.helpers import TINY_CONFIG

    folder = tmp_path_factory.mktemp("digits")
    path = make_digits_sample(folder)
    spec = InputSpec(path=path, id="id", label="label", prediction="prediction",
                     image_col="image", image_root=folder)  # fmt: skip
    out = folder / "digits.store"
    build_store(spec, out, TINY_CONFIG, show_progress=False)
    return out


@pytest.fixture(scope="session")
def h5ad_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset as AnnData (X = vectors, obs = metadata with a missing value, cell
    names as ids), built once."""
    anndata = pytest.importorskip("anndata")
    import pandas as pd

    from explorer.pipeline.runner import build_store

    vectors, meta = tiny_data()
    obs = meta[["label", "prediction", "size", "note"]].copy()
    obs["batch"] = pd.Series(["b1", "b2"] * 300, dtype=object).where(meta.index != 7, None)
    obs.index = pd.Index([f"cell{i:03d}" for i in range(len(meta))])
    folder = tmp_path_factory.mktemp("h5ad")
    path = folder / "cells.h5ad"
    anndata.AnnData(X=vectors, obs=obs).write_h5ad(path)
    out = folder / "cells.store"
    spec = InputSpec(path, id="obs_name", label="label")
    build_store(spec, out, TINY_CONFIG, show_progress=False)
    return out
