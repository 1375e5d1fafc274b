"""Layout stages: each reads the store's kNN graph and writes ``<name>/coords.npy``."""

from __future__ import annotations

from explorer.compute.hmds import hmds_layout
from explorer.compute.largevis import largevis_layout
from explorer.compute.umap_layout import umap_layout
from explorer.pipeline.stage import BuildContext, Stage, StageResult


def _layout_result(coords, **summary) -> StageResult:  # type: ignore[no-untyped-def]
    return StageResult(arrays={"coords": coords}, summary=summary)


def _umap(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.umap
    indices, distances = ctx.knn()
    coords = umap_layout(
        ctx.vectors(),
        indices,
        distances,
        metric=ctx.config.knn.metric,
        min_dist=cfg.min_dist,
        spread=cfg.spread,
        n_epochs=cfg.n_epochs,
        seed=ctx.config.seed,
    )
    return _layout_result(coords)


def _largevis(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.largevis
    indices, distances = ctx.knn()
    coords = largevis_layout(
        indices,
        distances,
        perplexity=cfg.perplexity,
        samples_per_point=cfg.samples_per_point,
        n_negatives=cfg.n_negatives,
        gamma=cfg.gamma,
        learning_rate=cfg.learning_rate,
        seed=ctx.seed,
        # Hogwild threads are not bit-reproducible: a --seed build runs on one thread.
        parallel=cfg.parallel and not ctx.config.reproducible,
        on_progress=ctx.progress,
    )
    return _layout_result(coords)


def _hmds(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.hmds
    indices, distances = ctx.knn()
    result = hmds_layout(
        ctx.vectors(),
        indices,
        distances,
        n_landmarks=cfg.n_landmarks,
        distance=cfg.distance,
        refine_steps=cfg.refine_steps,
        seed=ctx.seed,
        on_progress=ctx.progress,
    )
    return StageResult(
        arrays={"coords": result.coords, "landmarks": result.landmarks},
        summary={
            "geometry": "poincare",
            "tau": result.tau,
            "distortion": round(result.distortion, 4),
            "distortion_plain_hmds": round(result.distortion_mds, 4),
        },
    )


def layout_stages() -> list[Stage]:
    """One stage per layout; each runs only when named in ``--layouts``."""
    return [
        Stage(
            "umap",
            _umap,
            requires=("vectors", "knn"),
            params=lambda ctx: {**ctx.config.umap.as_dict(), "seed": ctx.config.seed},
            enabled=lambda ctx: "umap" in ctx.config.layouts,
            libraries=("umap-learn", "numba"),
            title="UMAP layout",
        ),
        Stage(
            "largevis",
            _largevis,
            requires=("knn",),
            params=lambda ctx: {**ctx.config.largevis.as_dict(), "seed": ctx.config.seed},
            enabled=lambda ctx: "largevis" in ctx.config.layouts,
            libraries=("numba", "scipy"),
            title="LargeVis layout",
        ),
        Stage(
            "hmds",
            _hmds,
            requires=("vectors", "knn"),
            params=lambda ctx: {**ctx.config.hmds.as_dict(), "seed": ctx.config.seed},
            enabled=lambda ctx: "hmds" in ctx.config.layouts,
            libraries=("numpy", "scipy", "numba"),
            title="hyperbolic h-MDS layout (Poincaré disk)",
        ),
    ]
