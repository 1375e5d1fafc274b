"""The digits sample is real and deterministic; the synthetic mixture plants its failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from explorer.datasets.digits import make_digits_sample
from explorer.datasets.synth import synth_mixture


def test_digits_sample_is_deterministic_and_has_real_errors(tmp_path: Path) -> None:
    a = pd.read_parquet(make_digits_sample(tmp_path / "a", seed=0))
    b = pd.read_parquet(make_digits_sample(tmp_path / "b", seed=0))
    assert len(a) == 1797
    pd.testing.assert_frame_equal(a.drop(columns="embedding"), b.drop(columns="embedding"))
    np.testing.assert_array_equal(np.stack(a.embedding), np.stack(b.embedding))
    errors = int((~a.correct).sum())
    assert 20 <= errors <= 300  # a real, imperfect classifier
    assert (a.correct == (a.label == a.prediction)).all()
    assert (tmp_path / "a" / "images" / "1796.png").exists()


def test_synth_plants_a_failure_subgroup() -> None:
    x, meta = synth_mixture(20_000, 16, seed=1)
    assert x.shape == (20_000, 16)
    assert x.dtype == np.float32
    wrong = meta.label != meta.prediction
    planted = (meta.colour == "red") & (meta["size"] == "small")
    assert wrong[planted].mean() > 5 * wrong[~planted].mean()
    x2, meta2 = synth_mixture(20_000, 16, seed=1)
    np.testing.assert_array_equal(x, x2)
    pd.testing.assert_frame_equal(meta, meta2)
