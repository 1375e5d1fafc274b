"""The cluster hierarchy (treemap-ready) and the slices, with their statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.compute.hierarchy import Tree, node_representatives, recursive_kmeans
from explorer.compute.hierarchy_stats import node_label_stats, node_means, node_names
from explorer.compute.outliers import group_magnitude
from explorer.compute.slice_finder import find_slices
from explorer.pipeline.core_stages import has_errors
from explorer.pipeline.stage import BuildContext, Stage, StageResult
from explorer.store.format import error_values

TREE_ARRAYS = ("order", "parent", "depth", "start", "end", "size", "centroid", "leaf")
# Magnitude (an effective number of distinct points) is exact on a sample of each node;
# nodes this deep or shallower get it (the treemap's first screens).
MAGNITUDE_DEPTH = 2
MAGNITUDE_SAMPLE = 500


def _tree_from(ctx: BuildContext) -> Tree:
    return Tree(**{name: np.asarray(ctx.array("hierarchy", name)) for name in TREE_ARRAYS})


def _errors(ctx: BuildContext) -> np.ndarray | None:
    """The errors stage's per-point error (1 wrong, 0 right, NaN unknown, or the loss)."""
    if not has_errors(ctx):
        return None
    loss = ctx.array("errors", "loss") if ctx.roles.get("loss") else None
    return error_values(ctx.array("errors", "error"), loss)


def _node_magnitudes(ctx: BuildContext, tree: Tree) -> np.ndarray:
    x = ctx.vectors()
    t = float(ctx.record("outliers")["summary"]["scale"])
    out = np.full(tree.n_nodes, np.nan)
    for depth in range(MAGNITUDE_DEPTH + 1):
        nodes = np.flatnonzero(tree.depth == depth)
        groups = np.full(tree.n_points, -1, dtype=np.int64)
        for g, v in enumerate(nodes):
            groups[tree.order[tree.start[v] : tree.end[v]]] = g
        out[nodes] = group_magnitude(
            x, groups, t, max_size=MAGNITUDE_SAMPLE, seed=ctx.seed, n_groups=len(nodes)
        )
    return out


def _names(ctx: BuildContext, tree: Tree) -> list[str]:
    """Node names from the sliceable metadata, or from the text column's top terms."""
    table, _ = _sliceable(ctx, _errors(ctx))
    text = ctx.roles.get("text")
    if text is not None:
        table = table.assign(**{text: ctx.dataset.points[text].astype(str)})
    return node_names(tree, table, text)


def _node_table(ctx: BuildContext, tree: Tree) -> pd.DataFrame:
    points, roles = ctx.dataset.points, ctx.roles
    label = points[roles["label"]] if roles.get("label") else None
    prediction = points[roles["prediction"]] if roles.get("prediction") else None
    stats = node_label_stats(tree, label, prediction)
    lid_raw = np.asarray(ctx.array("intrinsic", "lid_raw"), dtype=np.float64)
    inverse = node_means(tree, np.where(lid_raw > 0, 1.0 / np.maximum(lid_raw, 1e-12), np.nan))
    m = tree.n_nodes
    classes = stats.get("classes", np.array([]))
    dominant = np.asarray(stats.get("dominant", np.full(m, -1)))
    nan = np.full(m, np.nan, dtype=np.float32)
    table = pd.DataFrame(
        {
            "node": np.arange(tree.n_nodes, dtype=np.int64),
            "parent": tree.parent,
            "depth": tree.depth,
            "size": tree.size,
            "name": _names(ctx, tree),
            "dominant_label": [str(classes[d]) if d >= 0 else None for d in dominant],
            "dominant_share": stats.get("dominant_share", nan),
            "label_entropy": stats.get("entropy", nan),
            "errors": stats["errors"],
            "error_rate": stats["error_rate"],
            "intrinsic_dim": np.where(inverse > 0, 1.0 / inverse, np.nan).astype(np.float32),
            "mean_local_dim": node_means(tree, ctx.array("intrinsic", "lid")),
            "mean_outlier": node_means(tree, ctx.array("outliers", "outlier")),
            "magnitude": _node_magnitudes(ctx, tree).astype(np.float32),
        }
    )
    if roles.get("loss"):
        table["mean_loss"] = node_means(tree, pd.to_numeric(points[roles["loss"]]).to_numpy())
    return table


def _hierarchy(ctx: BuildContext) -> StageResult:
    cfg = ctx.config.hierarchy
    x = ctx.vectors()
    tree = recursive_kmeans(
        x,
        branching=cfg.branching,
        leaf_size=cfg.leaf_size,
        max_depth=cfg.max_depth,
        seed=ctx.seed,
        on_progress=lambda f: ctx.progress(0.7 * f),
    )
    reps = node_representatives(x, tree, cfg.n_representatives)
    table = _node_table(ctx, tree)
    arrays: dict[str, np.ndarray] = {name: getattr(tree, name) for name in TREE_ARRAYS}
    arrays["representatives"] = reps
    leaves = int((np.bincount(tree.parent[1:], minlength=tree.n_nodes) == 0).sum())
    return StageResult(
        arrays=arrays,
        tables={"nodes": table},
        summary={
            "n_nodes": tree.n_nodes,
            "n_leaves": leaves,
            "max_depth": int(tree.depth.max()),
            "root_children": int((tree.parent == 0).sum()),
            "median_leaf_size": int(np.median(tree.size[tree.size > 0][-leaves:])),
        },
    )


# A column "leaks" the error when it is a function of it (e.g. a `correct` or `loss`
# column made from the predictions): slicing on it finds only the errors themselves.
LEAK_AUROC = 0.97
LEAK_OVERLAP = 0.95


def leaky_columns(table: pd.DataFrame, errors: np.ndarray) -> list[str]:
    """Columns whose values (nearly) determine the error, so slicing on them says nothing."""
    from sklearn.metrics import roc_auc_score

    known = ~np.isnan(errors)
    wrong = errors[known] > 0.5
    if wrong.all() or not wrong.any():
        return []
    out = []
    for column in table.columns:
        values = table[column][known]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ok = values.notna().to_numpy()
            if len(np.unique(wrong[ok])) == 2:
                auc = roc_auc_score(wrong[ok], values[ok].to_numpy(dtype=float))
                if max(auc, 1.0 - auc) >= LEAK_AUROC:
                    out.append(str(column))
            continue
        counts = pd.crosstab(values.astype(str).to_numpy(), wrong)
        if True not in counts.columns:
            continue
        hits = counts[True]
        precision = hits / counts.sum(axis=1)
        recall = hits / wrong.sum()
        if bool(((precision >= LEAK_OVERLAP) & (recall >= LEAK_OVERLAP)).any()):
            out.append(str(column))
    return out


def _sliceable(ctx: BuildContext, errors: np.ndarray | None) -> tuple[pd.DataFrame, list[str]]:
    """The metadata worth slicing and naming by, and the leaky columns left out of it."""
    roles, points = ctx.roles, ctx.dataset.points
    skip = [c for c in (roles["id"], roles.get("image"), roles.get("text")) if c]
    skip += [c for c in (roles.get("prediction"), roles.get("loss")) if c]
    skip += [c for c in ctx.config.slices.ignore if c in points.columns]
    table = points.drop(columns=list(dict.fromkeys(skip)))
    leaks = leaky_columns(table, errors) if errors is not None else []
    return table.drop(columns=leaks), leaks


def _slices(ctx: BuildContext) -> StageResult:
    errors = _errors(ctx)
    table, leaks = _sliceable(ctx, errors)
    text = ctx.roles.get("text")
    texts = None if text is None else ctx.dataset.points[text].fillna("").astype(str).tolist()
    nodes = ctx.table("hierarchy", "nodes")
    ctx.progress(0.1)
    found = find_slices(
        table,
        ctx.vectors(),
        _tree_from(ctx),
        errors,
        ctx.config.slices,
        texts=texts,
        node_terms=None if text is None else [str(v) for v in nodes["name"]],
        representatives=ctx.array("hierarchy", "representatives"),
        seed=ctx.seed,
    )
    out = found.table
    return StageResult(
        arrays={
            "members": found.members_flat,
            "offsets": found.offsets,
            "examples": found.examples,
        },
        tables={"slices": out},
        summary={
            "n_slices": len(out),
            "by_kind": {str(k): int(v) for k, v in out["kind"].value_counts().items()},
            "has_errors": errors is not None,
            "leaky_columns": leaks,
        },
        notes=[
            f"left out of slicing, as they determine the error: {', '.join(leaks)} "
            "(--slice-ignore names more)"
        ]
        if leaks
        else [],
    )


def structure_stages() -> list[Stage]:
    """hierarchy, then slices (which use the hierarchy's nodes)."""
    return [
        Stage(
            "hierarchy",
            _hierarchy,
            requires=("vectors", "errors", "intrinsic", "outliers"),
            params=lambda ctx: {
                **ctx.config.hierarchy.as_dict(),
                "seed": ctx.config.seed,
                # node names are made from the same columns the slices use
                "slice_ignore": list(ctx.config.slices.ignore),
                # names against siblings (issue 9): a store built before recomputes them
                "names": "siblings",
            },
            libraries=("numpy", "numba", "scikit-learn"),
            title="cluster hierarchy (recursive k-means)",
        ),
        Stage(
            "slices",
            _slices,
            requires=("validate", "errors", "vectors", "hierarchy"),
            params=lambda ctx: {
                **ctx.config.slices.as_dict(),
                "seed": ctx.config.seed,
                # named and ranked causes-first (issue 9): older stores recompute the stage
                "ranking": "explained",
            },
            libraries=("numpy", "pandas", "numba"),
            title="metadata, cluster, failure and embedding slices",
        ),
    ]
