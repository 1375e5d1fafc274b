"""A large synthetic Gaussian mixture with metadata, for scale tests and benchmarks.

Clusters sit inside super-clusters (two levels), with categorical and numeric metadata,
a label (the cluster's class) and a prediction whose errors are planted in one subgroup
(``colour == "red"`` and ``size == "small"``), so failure slices have a known answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

COLOURS = np.array(["red", "green", "blue", "yellow", "purple"])
SIZES = np.array(["small", "medium", "large"])


def synth_mixture(
    n: int,
    dim: int = 64,
    *,
    n_clusters: int = 20,
    n_super: int = 4,
    seed: int = 0,
    chunk: int = 1_000_000,
) -> tuple[NDArray[np.float32], pd.DataFrame]:
    """``n`` points in ``dim`` dimensions and their metadata table (same row order)."""
    rng = np.random.default_rng(seed)
    super_centres = rng.normal(scale=8.0, size=(n_super, dim))
    parent = rng.integers(0, n_super, size=n_clusters)
    centres = super_centres[parent] + rng.normal(scale=3.0, size=(n_clusters, dim))
    spreads = rng.uniform(0.5, 1.5, size=n_clusters)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    cluster = rng.choice(n_clusters, size=n, p=weights)
    vectors = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        c = cluster[s : s + chunk]
        noise = rng.standard_normal((len(c), dim), dtype=np.float32)
        vectors[s : s + chunk] = centres[c] + noise * spreads[c, None].astype(np.float32)
    colour = COLOURS[rng.integers(0, len(COLOURS), size=n)]
    size = SIZES[rng.integers(0, len(SIZES), size=n)]
    label = cluster % 10
    wrong = rng.random(n) < np.where((colour == "red") & (size == "small"), 0.45, 0.03)
    prediction = np.where(wrong, (label + rng.integers(1, 10, size=n)) % 10, label)
    table = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(
                cluster, categories=pd.Index([f"c{c:02d}" for c in range(n_clusters)])
            ),
            "group": pd.Categorical.from_codes(
                parent[cluster], categories=pd.Index([f"g{p}" for p in range(n_super)])
            ),
            "colour": pd.Categorical(colour),
            "size": pd.Categorical(size),
            "score": rng.normal(size=n).astype(np.float32),
            "weight": rng.gamma(2.0, size=n).astype(np.float32),
            "label": label.astype(np.int64),
            "prediction": prediction.astype(np.int64),
        }
    )
    return vectors, table
