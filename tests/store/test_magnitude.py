"""Magnitude of a selection through the store, and what the outliers stage stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.errors import ConfigError
from explorer.magnitude import magnitude, selection_magnitude


def test_store_magnitude_of_rows(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    t = float(store.stage("outliers")["summary"]["scale"])
    vectors = np.asarray(store.vectors(), dtype=np.float64)
    rows = np.arange(0, 600, 7)
    found = store.magnitude(rows)
    assert found.exact
    assert found.n_rows == found.sample_size == len(rows)
    assert found.scale == t
    assert found.value == pytest.approx(magnitude(vectors[rows], t))
    # repeated rows are one row
    assert store.magnitude(np.r_[rows, rows]).value == pytest.approx(found.value)
    everything = store.magnitude(np.arange(600), max_exact=300)
    assert not everything.exact
    assert everything.sample_size == 300
    assert everything.n_rows == 600
    assert everything.value == pytest.approx(magnitude(vectors, t), rel=0.15)
    assert store.magnitude(np.array([], dtype=np.int64)).value == 0.0
    with pytest.raises(ConfigError, match="rows must lie"):
        store.magnitude(np.array([600]))


def test_selection_magnitude_known_answers() -> None:
    far_apart = np.c_[np.arange(10) * 100.0, np.zeros(10)]
    assert selection_magnitude(far_apart, np.arange(10), 1.0).value == pytest.approx(10.0)
    same = np.zeros((50, 3))
    assert selection_magnitude(same, np.arange(50), 1.0).value == pytest.approx(1.0)
    # a large spread-out set: the estimate is clipped to at most the number of rows
    spaced = np.c_[np.arange(3000) * 100.0, np.zeros(3000)]
    big = selection_magnitude(spaced, np.arange(3000), 1.0, max_exact=500)
    assert big.value == pytest.approx(3000.0)
    assert big.sample_size == 500


def test_outliers_stage_stores_scores_and_scales(tiny_store: Path) -> None:
    store = explorer.open_store(str(tiny_store))
    assert {"outlier", "outlier_local"} <= set(store.scores)
    summary = store.stage("outliers")["summary"]
    scales = store.array("outliers", "scales")
    assert scales.dtype == np.float64
    assert len(scales) == store.stage("outliers")["params"]["n_samples"]
    np.testing.assert_allclose(summary["sample_scales"], scales, rtol=1e-5)
    assert int(np.argmax(store.score("outlier"))) == 599  # the planted outlier
    assert int(np.argmax(store.score("outlier_local"))) == 599
    assert summary["top_rows"][0] == 599
