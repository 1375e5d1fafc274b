"""UMAP on the precomputed kNN graph: neighbours are computed once, never again."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray


def umap_layout(
    x: NDArray[np.float32],
    knn_indices: NDArray[np.int32],
    knn_distances: NDArray[np.float32],
    *,
    metric: str = "euclidean",
    min_dist: float = 0.1,
    spread: float = 1.0,
    n_epochs: int | None = None,
    seed: int | None = 0,
) -> NDArray[np.float32]:
    """A 2-D UMAP layout, (n, 2) float32, from the store's kNN graph.

    ``x`` is only used for its shape and for umap-learn's checks: the graph comes from
    ``knn_indices`` / ``knn_distances`` (column 0 is the point itself, as umap expects).
    With a seed umap-learn runs single-threaded and is reproducible; ``seed=None``
    optimises on every core (about twice as fast on two) but differs run to run.
    """
    import umap

    k = knn_indices.shape[1]
    model = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        metric=metric,
        min_dist=min_dist,
        spread=spread,
        n_epochs=n_epochs,
        random_state=seed,
        # umap-learn writes into the graph (it marks disconnected vertices): give it copies
        precomputed_knn=(np.array(knn_indices), np.array(knn_distances)),
        verbose=False,
    )
    with warnings.catch_warnings():
        # We never call transform(), so umap's lack of a search index does not matter.
        warnings.filterwarnings("ignore", message="precomputed_knn\\[2\\]")
        warnings.filterwarnings("ignore", message="n_jobs value")
        warnings.filterwarnings("ignore", message=".*disconnected", category=UserWarning)
        # Tiny inputs: the graph holds every point, and umap truncates k itself.
        warnings.filterwarnings("ignore", message="n_neighbors is larger than the dataset")
        # Identical points have no spectrum: umap falls back to a random start by itself.
        warnings.filterwarnings("ignore", message="Spectral initialisation failed")
        # Well-separated clusters make a disconnected graph; umap lays each part out.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        fitted = model.fit_transform(np.asarray(x))
    coords: NDArray[np.float32] = np.asarray(fitted, dtype=np.float32)
    if not np.isfinite(coords).all():
        # umap leaves isolated vertices (e.g. many exact duplicates) at NaN: put them on
        # their first neighbour that has a position.
        coords = _fill_nonfinite(coords, knn_indices)
    return coords


def _fill_nonfinite(
    coords: NDArray[np.float32], knn_indices: NDArray[np.int32]
) -> NDArray[np.float32]:
    bad = np.asarray(~np.isfinite(coords).all(axis=1), dtype=bool)
    good_center = np.nanmedian(np.where(bad[:, None], np.nan, coords), axis=0)
    for i in np.flatnonzero(bad):
        neighbours = [j for j in knn_indices[i, 1:] if not bad[j]]
        coords[i] = coords[neighbours[0]] if neighbours else good_center
    return coords
