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
    check_components(n_components, d)
    sums = np.zeros(d, dtype=np.float64)
    gram = np.zeros((d, d), dtype=np.float64)
    steps = 2 * max(1, -(-n // chunk_rows))
    done = 0
    for s in range(0, n, chunk_rows):
        block_sums, block_gram = chunk_moments(x[s : s + chunk_rows])
        sums += block_sums
        gram += block_gram
        done += 1
        if on_progress is not None:
            on_progress(done / steps)
    axes = pca_axes(sums, gram, n, n_components)
    out = np.empty((n, n_components), dtype=np.float32)
    for s in range(0, n, chunk_rows):
        block = x[s : s + chunk_rows]
        out[s : s + len(block)] = pca_project(block, axes)
        done += 1
        if on_progress is not None:
            on_progress(done / steps)
    return PcaResult(
        vectors=out,
        components=axes.components.astype(np.float32),
        mean=axes.mean.astype(np.float32),
        explained_variance=axes.explained_variance,
        total_variance=axes.total_variance,
    )


@dataclass(frozen=True)
class PcaAxes:
    """The fitted axes in float64: mean (d,), components (p, d), their variances (p,)."""

    mean: NDArray[np.float64]
    components: NDArray[np.float64]
    explained_variance: NDArray[np.float32]
    total_variance: float


def check_components(n_components: int, d: int) -> None:
    """Refuse a reduction that does not reduce."""
    if n_components >= d:
        msg = f"--pca {n_components} must be smaller than the vectors' dimension {d}"
        raise ConfigError(msg)


def chunk_moments(block: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Column sums (d,) and Gram matrix (d, d) of one row chunk, in float64.

    Summed over chunks in row order they give exactly the moments ``pca_reduce`` uses,
    whichever process computed each chunk.
    """
    b = np.asarray(block, dtype=np.float64)
    return b.sum(axis=0), b.T @ b


def pca_axes(
    sums: NDArray[np.float64], gram: NDArray[np.float64], n: int, n_components: int
) -> PcaAxes:
    """The top ``n_components`` axes from the summed moments of ``n`` rows."""
    mean = sums / n
    cov = gram / n - np.outer(mean, mean)
    eigval, eigvec = np.linalg.eigh(cov)
    top = np.argsort(eigval)[::-1][:n_components]
    components = eigvec[:, top].T
    # A deterministic sign: the largest-magnitude loading of each axis is positive.
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    return PcaAxes(
        mean=mean,
        components=components,
        explained_variance=np.maximum(eigval[top], 0.0).astype(np.float32),
        total_variance=float(np.trace(cov)),
    )


def pca_project(block: NDArray[np.floating], axes: PcaAxes) -> NDArray[np.float32]:
    """One row chunk (rows, d) projected on the axes: (rows, p) float32."""
    b = np.asarray(block, dtype=np.float64)
    return ((b - axes.mean) @ axes.components.T).astype(np.float32)
