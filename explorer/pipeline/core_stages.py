"""The stages every build runs: validate, errors, pca, knn, trust, thumbs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from explorer.compute.knn import knn_graph, knn_recall
from explorer.compute.pca import pca_reduce
from explorer.compute.slices import check_errors, error_codes, error_flags
from explorer.compute.trust import layout_trust
from explorer.config import LAYOUTS
from explorer.ingest.thumbnails import image_paths, write_sprite_sheets
from explorer.pipeline.stage import BuildContext, Stage, StageResult
from explorer.store.format import IMPORTED_STAGE

RECALL_TARGET = 0.9


def _validate(ctx: BuildContext) -> StageResult:
    ds = ctx.dataset
    dup = ds.duplicate_of if ds.duplicate_of is not None else np.full(ds.n_points, -1)
    notes = list(ds.notes)
    if ds.n_duplicates:
        notes.append(
            f"{ds.n_duplicates} points repeat an earlier point's vector exactly "
            f"({ds.n_duplicates / ds.n_points:.1%}); they are kept"
        )
    return StageResult(
        arrays={"vectors": ds.vectors, "duplicate_of": dup.astype(np.int64)},
        tables={"points": ds.points},
        summary={
            "n_points": ds.n_points,
            "dim": ds.dim,
            "n_duplicates": ds.n_duplicates,
            "columns": [str(c) for c in ds.points.columns],
        },
        notes=notes,
    )


def has_errors(ctx: BuildContext) -> bool:
    """Whether the build can tell errors: a --loss column, or a label and a prediction."""
    roles = ctx.roles
    return bool(roles.get("loss") or (roles.get("label") and roles.get("prediction")))


def _errors(ctx: BuildContext) -> StageResult:
    """THE per-point error, once: codes (1 wrong, 0 right, -1 unknown) and the loss."""
    points, roles = ctx.dataset.points, ctx.roles
    arrays: dict[str, np.ndarray] = {}
    if roles.get("loss"):
        loss = np.asarray(pd.to_numeric(points[roles["loss"]], errors="coerce"), dtype=float)
        check_errors(loss, len(loss))  # a negative or infinite loss is refused here
        arrays["loss"] = loss.astype(np.float32)
        values = arrays["loss"].astype(np.float64)
    else:
        flags = error_flags(points[roles["label"]], points[roles["prediction"]])
        assert flags is not None
        values = flags
    codes = error_codes(values)
    arrays["error"] = codes
    known = codes >= 0
    return StageResult(
        arrays=arrays,
        summary={
            "source": "loss" if roles.get("loss") else "label != prediction",
            "n_wrong": int((codes == 1).sum()),
            "n_unknown": int((~known).sum()),
            "error_rate": round(float(np.nanmean(values)), 6) if known.any() else None,
        },
    )


def _pca(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.pca
    assert cfg.n_components is not None
    result = pca_reduce(
        ctx.array("validate", "vectors"),
        cfg.n_components,
        chunk_rows=cfg.chunk_rows,
        on_progress=ctx.progress,
    )
    total = result.total_variance
    kept = float(result.explained_variance.sum()) / total if total > 0 else 1.0
    return StageResult(
        arrays={
            "vectors": result.vectors,
            "components": result.components,
            "mean": result.mean,
            "explained_variance": result.explained_variance,
        },
        summary={"n_components": cfg.n_components, "variance_kept": round(min(kept, 1.0), 4)},
    )


def _knn(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.knn
    x = ctx.vectors()
    graph = knn_graph(
        x,
        cfg.n_neighbors,
        cfg.metric,
        seed=ctx.config.seed,
        n_iters=cfg.n_iters,
        max_candidates=cfg.max_candidates,
        n_trees=cfg.n_trees,
        build_factor=cfg.build_factor,
        on_progress=lambda f: ctx.progress(0.8 * f),
    )
    recall = knn_recall(x, graph.indices, cfg.metric, sample=cfg.recall_sample, seed=ctx.seed)
    ctx.progress(1.0)
    notes = []
    if graph.method == "nndescent" and recall < RECALL_TARGET:
        notes.append(
            f"kNN recall is {recall:.2f} (< {RECALL_TARGET}); for a better graph raise "
            f"--knn-build-factor (now {graph.params['build_neighbors']} candidates kept "
            f"for k={graph.params['n_neighbors']}) or --knn-candidates "
            f"(now {graph.params['max_candidates']})"
        )
    return StageResult(
        arrays={"indices": graph.indices, "distances": graph.distances},
        summary={"method": graph.method, "recall": round(recall, 4), **graph.params},
        notes=notes,
    )


def _trust(ctx: BuildContext) -> StageResult:
    indices, _ = ctx.knn()
    arrays, provides, summary = {}, {}, {}
    layouts = ctx.layouts()
    for i, (name, coords) in enumerate(layouts.items()):
        arrays[name] = layout_trust(coords, indices)
        provides[f"trust:{name}"] = name
        summary[f"mean_{name}"] = round(float(arrays[name].mean()), 4)
        ctx.progress((i + 1) / len(layouts))
    return StageResult(arrays=arrays, provides={"scores": provides}, summary=summary)


def _thumbs(ctx: BuildContext) -> StageResult:
    ds = ctx.dataset
    column = ctx.roles["image"]
    assert column is not None
    assert ds.image_root is not None
    paths = image_paths(ds.points[column], ds.image_root)
    cfg = ctx.config.thumbs
    summary: dict[str, Any] = {"size": cfg.size, "per_sheet": cfg.per_sheet_side**2}
    notes: list[str] = []

    def write(folder):  # type: ignore[no-untyped-def]
        problems: Counter[str] = Counter()
        cells = write_sprite_sheets(
            paths,
            folder,
            size=cfg.size,
            per_side=cfg.per_sheet_side,
            on_progress=ctx.progress,
            problems=problems,
        )
        np.save(folder / "cell.npy", cells, allow_pickle=False)
        # The sheets are written when the stage is stored, so the counts are filled in
        # then: the runner reads this summary and these notes after ``extra`` has run.
        summary["images_skipped"] = dict(sorted(problems.items()))
        if problems:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(problems.items()))
            notes.append(
                f"{sum(problems.values())} images gave no thumbnail ({why}); those points show none"
            )

    return StageResult(extra=write, summary=summary, notes=notes)


def core_stages() -> list[Stage]:
    """validate, pca, knn: what every later stage reads."""
    return [
        Stage(
            "validate",
            _validate,
            params=lambda ctx: {"source": ctx.dataset.source},
            libraries=("numpy", "pandas", "pyarrow"),
            title="read and check the input",
        ),
        Stage(
            "errors",
            _errors,
            requires=("validate",),
            params=lambda ctx: {r: ctx.roles.get(r) for r in ("label", "prediction", "loss")},
            enabled=has_errors,
            libraries=("numpy", "pandas"),
            title="wrong / right / unknown per point, and the loss",
        ),
        Stage(
            "pca",
            _pca,
            requires=("validate",),
            params=lambda ctx: ctx.config.pca.as_dict(),
            enabled=lambda ctx: ctx.config.pca.n_components is not None,
            title="reduce the vectors",
        ),
        Stage(
            "knn",
            _knn,
            requires=("vectors",),
            params=lambda ctx: {**ctx.config.knn.as_dict(), "seed": ctx.config.seed},
            libraries=("numpy", "pynndescent", "numba"),
            title="k-nearest-neighbour graph",
        ),
    ]


def _trust_params(ctx: BuildContext) -> dict[str, Any]:
    params: dict[str, Any] = {"layouts": list(ctx.config.layouts)}
    if ctx.dataset.layouts:  # (absent otherwise, so older stores' trust keys still match)
        params["imported"] = list(ctx.dataset.layouts)
    return params


def trust_stage() -> Stage:
    """Per-layout neighbourhood preservation; runs after every layout."""
    return Stage(
        "trust",
        _trust,
        requires=("knn", IMPORTED_STAGE, *LAYOUTS),
        params=_trust_params,
        libraries=("numpy", "scipy", "numba"),
        title="neighbourhood preservation per layout",
    )


def thumbs_stage() -> Stage:
    """Sprite sheets of the images, when the dataset has an image column."""
    return Stage(
        "thumbs",
        _thumbs,
        requires=("validate",),
        params=lambda ctx: {**ctx.config.thumbs.as_dict(), "root": str(ctx.dataset.image_root)},
        enabled=lambda ctx: ctx.roles.get("image") is not None,
        libraries=("pillow",),
        title="image thumbnails",
    )
