"""Linear reduction of wide vectors (e.g. 768-d text embeddings), streaming over rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from explorer.errors import ConfigError


@dataclass(frozen=True)
class PcaResult:
    """vectors (n, p) float32; components (p, d); mean (d,); explained_variance (p,);
    total_variance: the input's variance summed over all d dimensions."""

    vectors: NDArray[np.float32]
    components: NDArray[np.float32]
    mean: NDArray[np.float32]
    explained_variance: NDArray[np.float32]
    total_variance: float


def pca_reduce(
    x: NDArray[np.float32],
    n_components: int,
    *,
    chunk_rows: int = 65536,
    on_progress: Callable[[float], None] | None = None,
) -> PcaResult:
    """Project ``x`` (n, d), possibly a memory map, on its top ``n_components`` axes.

    Two passes over row chunks: the covariance (float64, d × d), then the projection.
    Written by hand rather than with sklearn's IncrementalPCA because one covariance
    pass is exact and several times faster than an SVD per batch; memory is d² + n·p.
    """
    n, d = x.shape
    if n_components >= d:
        msg = f"--pca {n_components} must be smaller than the vectors' dimension {d}"
        raise ConfigError(msg)
    total = 0.0
    sums = np.zeros(d, dtype=np.float64)
    gram = np.zeros((d, d), dtype=np.float64)
    steps = 2 * max(1, -(-n // chunk_rows))
    done = 0
    for s in range(0, n, chunk_rows):
        block = np.asarray(x[s : s + chunk_rows], dtype=np.float64)
        sums += block.sum(axis=0)
        gram += block.T @ block
        total += len(block)
        done += 1
        if on_progress is not None:
            on_progress(done / steps)
    mean = sums / total
    cov = gram / total - np.outer(mean, mean)
    eigval, eigvec = np.linalg.eigh(cov)
    top = np.argsort(eigval)[::-1][:n_components]
    components = eigvec[:, top].T
    # A deterministic sign: the largest-magnitude loading of each axis is positive.
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    out = np.empty((n, n_components), dtype=np.float32)
    for s in range(0, n, chunk_rows):
        block = np.asarray(x[s : s + chunk_rows], dtype=np.float64)
        out[s : s + len(block)] = (block - mean) @ components.T
        done += 1
        if on_progress is not None:
            on_progress(done / steps)
    return PcaResult(
        vectors=out,
        components=components.astype(np.float32),
        mean=mean.astype(np.float32),
        explained_variance=np.maximum(eigval[top], 0.0).astype(np.float32),
        total_variance=float(np.trace(cov)),
    )
