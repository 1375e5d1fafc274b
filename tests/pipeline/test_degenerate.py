"""Degenerate inputs never crash a stage: a complete store, or one line and exit 2.

Tiny point counts, identical vectors, two distinct vectors repeated, one tight cluster, no
labels, one label, every prediction right or wrong, an empty text column, very high
dimension. Most cases run the pipeline in-process (a new process pays ~20 s of numba
compilation); one runs the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import explorer
from explorer.config import BuildConfig, UmapConfig
from explorer.errors import ExplorerError
from explorer.ingest.dataset import InputSpec
from explorer.pipeline.runner import build_store
from tests.helpers import write_vectors_parquet

FAST = BuildConfig(seed=0, umap=UmapConfig(n_epochs=20))
ALL_LAYOUTS = BuildConfig(
    seed=0, layouts=("umap", "largevis", "hmds"), umap=UmapConfig(n_epochs=20)
)


def _vectors(shape: str, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    if shape == "identical":
        return np.ones((n, dim))
    if shape == "two_distinct":
        return np.repeat(np.arange(2.0)[:, None] * np.ones(dim), (n + 1) // 2, axis=0)[:n]
    if shape == "tight":
        return 3.0 + 1e-6 * rng.normal(size=(n, dim))
    return rng.normal(size=(n, dim))


def _metadata(
    n: int, labels: str, predictions: str, text: str, rng: np.random.Generator
) -> pd.DataFrame:
    meta = pd.DataFrame({"pid": [f"p{i}" for i in range(n)], "group": rng.choice(["a", "b"], n)})
    if labels != "none":
        meta["label"] = "x" if labels == "one" else rng.choice(["x", "y"], n)
        wrong = {"right": 0.0, "wrong": 1.0, "mixed": 0.3}[predictions]
        meta["prediction"] = np.where(rng.random(n) < wrong, "z", meta["label"])
    if text == "empty":
        meta["text"] = ""
    elif text == "words":
        meta["text"] = [f"topic{i % 3} words here" for i in range(n)]
    return meta


def _spec(folder: Path, x: np.ndarray, meta: pd.DataFrame) -> InputSpec:
    path = write_vectors_parquet(folder / "in.parquet", x.astype(np.float32), meta)
    labelled = "label" in meta.columns
    return InputSpec(
        path=path,
        id="pid",
        label="label" if labelled else None,
        prediction="prediction" if labelled else None,
        text_col="text" if "text" in meta.columns else None,
    )


def _build_completes_or_says_why(spec: InputSpec, out: Path, config: BuildConfig) -> None:
    """The build ends with a complete store, or with an ExplorerError of one line."""
    message = None
    try:
        build_store(spec, out, config, show_progress=False)
    except ExplorerError as exc:
        message = str(exc)
    if message is not None:
        assert "\n" not in message
        return
    store = explorer.open_store(str(out))
    assert {"hierarchy", "slices", "intrinsic", "outliers"} <= set(store.stages)
    assert len(store.hierarchy()) >= 1
    slices = store.slices()
    assert slices["name"].is_unique
    for name in slices["name"].head(3):
        assert store.slice_members(str(name)).shape[0] == int(
            slices.loc[slices["name"] == name, "size"].iloc[0]
        )


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    n=st.integers(5, 100),
    dim=st.integers(1, 6),
    shape=st.sampled_from(["random", "identical", "two_distinct", "tight"]),
    labels=st.sampled_from(["none", "one", "two"]),
    predictions=st.sampled_from(["mixed", "right", "wrong"]),
    text=st.sampled_from(["none", "empty", "words"]),
)
def test_any_degenerate_build_completes_or_fails_in_one_line(
    n: int, dim: int, shape: str, labels: str, predictions: str, text: str
) -> None:
    rng = np.random.default_rng(n * 7 + dim)
    x = _vectors(shape, n, dim, rng)
    meta = _metadata(n, labels, predictions, text, rng)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _build_completes_or_says_why(_spec(folder, x, meta), folder / "s.store", FAST)


@pytest.mark.parametrize(
    ("shape", "n"),
    [("random", 5), ("random", 25), ("identical", 1000), ("two_distinct", 60), ("tight", 40)],
)
def test_named_degenerate_cases_build_every_layout(tmp_path: Path, shape: str, n: int) -> None:
    rng = np.random.default_rng(n)
    x = _vectors(shape, n, 8, rng)
    spec = _spec(tmp_path, x, _metadata(n, "two", "mixed", "words", rng))
    build_store(spec, tmp_path / "s.store", ALL_LAYOUTS, show_progress=False)
    store = explorer.open_store(str(tmp_path / "s.store"))
    assert set(store.layouts) == {"umap", "largevis", "hmds"}
    for name in store.layouts:
        assert np.isfinite(np.asarray(store.layout(name))).all(), name
    # a slice needs min_size (10) points: five points have none, the others some
    assert (len(store.slices()) >= 1) == (n >= 20)


def test_empty_text_column_names_nodes_by_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    meta = _metadata(60, "two", "mixed", "empty", rng)
    build_store(
        _spec(tmp_path, _vectors("random", 60, 4, rng), meta),
        tmp_path / "s",
        FAST,
        show_progress=False,
    )
    names = explorer.open_store(str(tmp_path / "s")).hierarchy()["name"]
    assert names.iloc[0] == "all"


@pytest.mark.slow
def test_cli_builds_ten_points_of_100k_dimensions(tmp_path: Path) -> None:
    """One real subprocess: the command line on 10 points of 100,000 dimensions."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 100_000)).astype(np.float32)
    np.save(tmp_path / "wide.npy", x)
    out = tmp_path / "wide.store"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "explorer", "build", str(tmp_path / "wide.npy")),
            *("--out", str(out), "--quiet", "--seed", "0", "--layouts", "umap,largevis,hmds"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=600,
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    store = explorer.open_store(str(out))
    assert store.n_points == 10
    assert {"hierarchy", "slices"} <= set(store.stages)
