"""Analytic stages: intrinsic dimension and outlier scores, from the stored kNN graph."""

from __future__ import annotations

import numpy as np

from explorer.compute.intrinsic import (
    local_intrinsic_dim,
    mle_global_dimension,
    smooth_over_neighbors,
    twonn_dimension,
)
from explorer.compute.intrinsic_bias import CALIBRATION_POINTS, corrected_global_dimension
from explorer.compute.outliers import choose_scale, outlier_scores, validate_approximation
from explorer.compute.subsample_weights import subsample_weight_scores
from explorer.pipeline.stage import BuildContext, Stage, StageResult

TOP_OUTLIERS = 20


def _intrinsic(ctx: BuildContext) -> StageResult:
    raw = local_intrinsic_dim(ctx.knn()[1], ctx.config.intrinsic.n_neighbors)
    return intrinsic_result(ctx, raw)


def intrinsic_result(ctx: BuildContext, raw: np.ndarray) -> StageResult:
    """The intrinsic stage from the local estimates ``raw`` (however they were computed)."""
    cfg = ctx.config.intrinsic
    indices, distances = ctx.knn()
    local = smooth_over_neighbors(raw, indices) if cfg.smooth else raw
    ctx.progress(0.3)
    sample_raw, corrected = corrected_global_dimension(
        ctx.vectors(), cfg.n_neighbors or distances.shape[1], ctx.config.knn.metric, seed=ctx.seed
    )
    summary = {
        "global_mle": round(mle_global_dimension(raw), 3),
        "global_corrected": round(corrected, 3),
        "sample_mle": round(sample_raw, 3),
        "calibration_points": min(CALIBRATION_POINTS, int(distances.shape[0])),
        "twonn": round(twonn_dimension(distances), 3),
        "median_local": round(float(np.median(local)), 3),
        "p10_local": round(float(np.percentile(local, 10)), 3),
        "p90_local": round(float(np.percentile(local, 90)), 3),
    }
    notes = []
    if summary["global_corrected"] > 10:
        notes.append(
            f"intrinsic dimension is high ({summary['global_corrected']:.1f} bias-corrected, "
            f"{summary['global_mle']:.1f} raw): 2-D layouts distort such data most"
        )
    return StageResult(
        arrays={"lid": local, "lid_raw": raw},
        provides={"scores": {"lid": "lid"}},
        summary=summary,
        notes=notes,
    )


def _outliers(ctx: BuildContext) -> StageResult:
    indices, distances = ctx.knn()
    t = outlier_scale(ctx)
    local = outlier_scores(indices, distances, t, on_progress=lambda f: ctx.progress(0.2 * f))
    return outliers_result(ctx, local, t)


def outlier_scale(ctx: BuildContext) -> float:
    """The local score's scale: ``--outlier-scale``, else from the kNN distances."""
    cfg = ctx.config.outliers
    return cfg.scale if cfg.scale is not None else choose_scale(ctx.knn()[1])


def outliers_result(ctx: BuildContext, local: np.ndarray, t: float) -> StageResult:
    """The outliers stage from the local (kNN spread) scores at scale ``t``."""
    cfg = ctx.config.outliers
    summary: dict[str, object] = {"scale": t}
    if cfg.exact_sample >= 3:
        corr = validate_approximation(
            ctx.vectors(), local, t, sample=cfg.exact_sample, seed=ctx.seed
        )
        summary["spearman_vs_exact"] = round(corr, 4)
    ctx.progress(0.4)
    found = subsample_weight_scores(
        ctx.vectors(),
        n_samples=cfg.n_samples,
        sample_size=cfg.sample_size,
        share=cfg.share,
        metric=ctx.config.knn.metric,
        seed=ctx.seed,
        on_progress=lambda f: ctx.progress(0.4 + 0.6 * f),
    )
    scores = found.scores
    summary["sample_scales"] = [round(float(s), 6) for s in found.scales]
    summary["standard_error_p99"] = round(float(np.percentile(found.standard_error, 99)), 4)
    top = np.argsort(-scores, kind="stable")[:TOP_OUTLIERS]
    summary["top_rows"] = [int(i) for i in top]
    return StageResult(
        arrays={"outlier": scores, "outlier_local": local, "scales": found.scales},
        provides={"scores": {"outlier": "outlier", "outlier_local": "outlier_local"}},
        summary=summary,
    )


def analytic_stages() -> list[Stage]:
    """intrinsic, outliers (the hierarchy and slices follow them)."""
    return [
        Stage(
            "intrinsic",
            _intrinsic,
            requires=("vectors", "knn"),
            params=lambda ctx: {
                **ctx.config.intrinsic.as_dict(),
                "seed": ctx.config.seed,
                "metric": ctx.config.knn.metric,
            },
            libraries=("numpy", "scikit-learn"),
            title="local and global intrinsic dimension",
        ),
        Stage(
            "outliers",
            _outliers,
            requires=("vectors", "knn"),
            params=lambda ctx: {
                **ctx.config.outliers.as_dict(),
                "seed": ctx.config.seed,
                "metric": ctx.config.knn.metric,
            },
            libraries=("numpy", "scipy", "numba"),
            title="magnitude weighting-vector outlier scores (points and groups)",
        ),
    ]
