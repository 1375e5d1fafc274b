"""The intrinsic and outliers stages on degenerate inputs: finite results, never a crash."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from explorer.compute.knn import knn_graph
from explorer.config import BuildConfig
from explorer.pipeline.analytic_stages import _intrinsic, _outliers


@dataclass
class FakeContext:
    """What the two stages read of a BuildContext, over arrays in memory."""

    x: np.ndarray
    config: BuildConfig = field(default_factory=BuildConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        graph = knn_graph(self.x.astype(np.float32), self.config.knn.n_neighbors, seed=0)
        self._knn = (graph.indices, graph.distances)

    def knn(self) -> tuple[np.ndarray, np.ndarray]:
        return self._knn

    def vectors(self) -> np.ndarray:
        return self.x.astype(np.float32)

    def progress(self, fraction: float) -> None:
        assert 0.0 <= fraction <= 1.0


def _sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "5 points": rng.normal(size=(5, 4)),
        "25 points": rng.normal(size=(25, 4)),
        "100 points": rng.normal(size=(100, 16)),
        "all identical": np.ones((60, 8)),
        "two distinct repeated": np.r_[np.zeros((40, 8)), np.ones((40, 8))],
        "one tight cluster": 1e-6 * rng.normal(size=(80, 8)) + 3.0,
        "duplicates": np.r_[rng.normal(size=(40, 8)), np.repeat(rng.normal(size=(2, 8)), 30, 0)],
    }


def _finite(value: object) -> bool:
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return bool(np.isfinite(value))
    return True


@pytest.mark.parametrize("name", list(_sets()))
def test_intrinsic_and_outliers_stay_finite(name: str) -> None:
    x = _sets()[name]
    ctx = FakeContext(x)
    for stage in (_intrinsic, _outliers):
        result = stage(ctx)  # type: ignore[arg-type]
        for stem, arr in result.arrays.items():
            assert np.isfinite(arr).all(), (stage.__name__, stem)
            if stem != "scales":
                assert arr.shape == (len(x),)
        # the validation correlation is NaN when either side is constant: that is its answer
        summary = {k: v for k, v in result.summary.items() if k != "spearman_vs_exact"}
        assert all(_finite(v) for v in summary.values()), (stage.__name__, summary)


def test_too_few_points_for_intrinsic_is_a_clear_error() -> None:
    from explorer.errors import ExplorerError

    ctx = FakeContext(np.random.default_rng(1).normal(size=(3, 4)))
    with pytest.raises(ExplorerError, match="neighbours"):
        _intrinsic(ctx)  # type: ignore[arg-type]
