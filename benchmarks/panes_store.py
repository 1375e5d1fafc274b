"""A synthetic store with everything the analytic panes read, for ``benchmarks/panes.py``.

On top of ``benchmarks/app.py``'s store (id, 10-category label, a numeric column, one
layout of 2-D blobs) it adds a prediction wrong for ~10% of points (25% in one class),
per-point ``outlier``, ``lid`` and ``trust:umap`` scores, a ``hierarchy`` stage and a
``slices`` stage, each written through ``StoreWriter`` with the arrays and tables the
pipeline writes (``explorer/pipeline/structure_stages.py``). Everything is vectorised.

The hierarchy is a region quadtree over the layout: a node at depth L is a non-empty cell
of a 2^L × 2^L grid, split while it holds more than ``LEAF_SIZE`` points, up to depth
``MAX_DEPTH``. Sorting the points by their Z-order (Morton) code puts every node's points in
one contiguous run of ``order``, as the real hierarchy stage stores them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.store.format import MANIFEST
from explorer.store.manifest import store_manifest
from explorer.store.writer import StoreWriter

MAX_DEPTH = 8
LEAF_SIZE = 2_000
N_REPRESENTATIVES = 6
N_EXAMPLES = 10
WRONG_RATE, HOT_CLASS, HOT_RATE = 0.10, 3, 0.25


def _morton(xy: np.ndarray) -> np.ndarray:
    """Z-order code of each point's cell in a 2^MAX_DEPTH grid over the layout's extent."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    side = 1 << MAX_DEPTH
    cells = ((xy - lo) / (hi - lo) * side).astype(np.int64).clip(0, side - 1)
    code = np.zeros(len(xy), np.int64)
    for bit in range(MAX_DEPTH):
        code |= ((cells[:, 0] >> bit) & 1) << (2 * bit + 1)
        code |= ((cells[:, 1] >> bit) & 1) << (2 * bit)
    return code


def quadtree(xy: np.ndarray) -> dict[str, np.ndarray]:
    """The tree arrays the hierarchy stage writes (DFS pre-order, node 0 the root)."""
    code = _morton(xy)
    order = np.argsort(code, kind="stable").astype(np.int64)
    sorted_code = code[order]
    n = len(xy)
    depths, starts, ends, keys = [], [], [], []
    for level in range(MAX_DEPTH + 1):
        prefix = sorted_code >> (2 * (MAX_DEPTH - level))
        first = np.flatnonzero(np.r_[True, prefix[1:] != prefix[:-1]])
        starts.append(first)
        ends.append(np.r_[first[1:], n])
        keys.append(prefix[first] << (2 * (MAX_DEPTH - level)))
        depths.append(np.full(first.size, level))
    start, end = np.concatenate(starts), np.concatenate(ends)
    depth, key = np.concatenate(depths), np.concatenate(keys)
    # DFS pre-order: by the first code a node covers, parents (shallower) first.
    pre = np.lexsort((depth, key))
    start, end, depth = start[pre], end[pre], depth[pre]
    parent = np.full(start.size, -1, np.int64)
    stack_at = np.full(MAX_DEPTH + 1, -1, np.int64)
    keep = np.ones(start.size, bool)
    # One pass over the nodes (tens of thousands, not points): parents and the leaf cut.
    for i in range(start.size):
        d = depth[i]
        stack_at[d] = i
        if d > 0:
            parent[i] = p = stack_at[d - 1]
            keep[i] = keep[p] and end[p] - start[p] > LEAF_SIZE
    new_id = np.cumsum(keep) - 1
    parent = np.where(parent[keep] >= 0, new_id[np.maximum(parent[keep], 0)], -1)
    start, end, depth = start[keep], end[keep], depth[keep]
    leaf = np.zeros(n, np.int32)
    for d in range(MAX_DEPTH + 1):  # deeper nodes overwrite: each point ends at its leaf
        for i in np.flatnonzero(depth == d):
            leaf[order[start[i] : end[i]]] = i
    return {
        "order": order,
        "parent": parent.astype(np.int32),
        "depth": depth.astype(np.int32),
        "start": start.astype(np.int64),
        "end": end.astype(np.int64),
        "size": (end - start).astype(np.int64),
        "centroid": _run_means(xy, order, start, end).astype(np.float32),
        "leaf": leaf,
    }


def _run_sums(values: np.ndarray, order: np.ndarray, start: np.ndarray, end: np.ndarray) -> Any:
    csum = np.zeros((order.size + 1, *values.shape[1:]))
    np.cumsum(values[order], axis=0, out=csum[1:])
    return csum[end] - csum[start]


def _run_means(values: np.ndarray, order: np.ndarray, start: np.ndarray, end: np.ndarray) -> Any:
    size = np.maximum(end - start, 1).astype(np.float64)
    sums = _run_sums(values.astype(np.float64), order, start, end)
    return sums / (size[:, None] if sums.ndim == 2 else size)


def node_table(
    tree: dict[str, np.ndarray], labels: np.ndarray, wrong: np.ndarray, scores: dict[str, Any]
) -> pd.DataFrame:
    """The columns of ``nodes.parquet`` that the app reads."""
    order, start, end, size = tree["order"], tree["start"], tree["end"], tree["size"]
    counts = np.stack(
        [_run_sums((labels == c).astype(np.float64), order, start, end) for c in range(10)], 1
    )
    dominant = counts.argmax(axis=1)
    share = counts.max(axis=1) / np.maximum(size, 1)
    errors = _run_sums(wrong.astype(np.float64), order, start, end)
    magnitude = np.where(tree["depth"] <= 2, 0.6 * size, np.nan)  # stored for shallow nodes only
    return pd.DataFrame(
        {
            "node": np.arange(size.size, dtype=np.int64),
            "parent": tree["parent"],
            "depth": tree["depth"],
            "size": size,
            "name": [f"class {d} ({s:.0%})" for d, s in zip(dominant, share, strict=True)],
            "dominant_label": [f"class {d}" for d in dominant],
            "dominant_share": share.astype(np.float32),
            "errors": errors.astype(np.int64),
            "error_rate": (errors / np.maximum(size, 1)).astype(np.float32),
            "mean_local_dim": _run_means(scores["lid"], order, start, end).astype(np.float32),
            "mean_outlier": _run_means(scores["outlier"], order, start, end).astype(np.float32),
            "magnitude": magnitude.astype(np.float32),
        }
    )


def representatives(tree: dict[str, np.ndarray]) -> np.ndarray:
    """(m, N_REPRESENTATIVES) int64: each node's first points in ``order``, -1 padded."""
    idx = tree["start"][:, None] + np.arange(N_REPRESENTATIVES)
    inside = idx < tree["end"][:, None]
    return np.where(inside, tree["order"][np.minimum(idx, tree["order"].size - 1)], -1)


def slice_set(
    tree: dict[str, np.ndarray], labels: np.ndarray, numeric: np.ndarray, wrong: np.ndarray
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Metadata (one per class, ~n/10 each), cluster (the root's children), a quartile of
    the numeric column and a failure conjunction: table and members/offsets/examples."""
    names, kinds, parts = [], [], []
    by_label = np.argsort(labels, kind="stable").astype(np.int64)
    bounds = np.searchsorted(labels[by_label], np.arange(11))
    for c in range(10):
        names.append(f"label = class {c}")
        kinds.append("metadata")
        parts.append(by_label[bounds[c] : bounds[c + 1]])
    names.append("score ≥ 0.75")
    kinds.append("metadata")
    parts.append(np.flatnonzero(numeric >= 0.75))
    names.append(f"label = class {HOT_CLASS} & score < 0.5")
    kinds.append("failure")
    parts.append(np.flatnonzero((labels == HOT_CLASS) & (numeric < 0.5)))
    for node in np.flatnonzero(tree["parent"] == 0):
        names.append(f"node {node}")
        kinds.append("cluster")
        parts.append(np.sort(tree["order"][tree["start"][node] : tree["end"][node]]))
    size = np.array([p.size for p in parts])
    errors = np.array([int(wrong[p].sum()) for p in parts])
    rate = errors / np.maximum(size, 1)
    overall = float(wrong.mean())
    # Wilson-style lower bound, roughly: enough for the table to rank the slices.
    lower = rate - 3 * np.sqrt(rate * (1 - rate) / np.maximum(size, 1))
    table = pd.DataFrame(
        {
            "name": names, "kind": kinds, "description": names, "size": size,
            "n_scored": size, "errors": errors, "error_rate": rate, "lift": rate / overall,
            "lower_bound": lower, "lower_lift": lower / overall, "p_value": 0.5,
            "p_adjusted": 1.0, "n_tried": len(parts), "score": rate / overall - 1,
        }
    )  # fmt: skip
    examples = np.full((len(parts), N_EXAMPLES), -1, np.int64)
    for i, p in enumerate(parts):
        examples[i, : min(N_EXAMPLES, p.size)] = p[:N_EXAMPLES]
    offsets = np.r_[0, np.cumsum(size)].astype(np.int64)
    arrays = {"members": np.concatenate(parts).astype(np.int64), "offsets": offsets,
              "examples": examples}  # fmt: skip
    return table, arrays


def add_pane_stages(path: Path, seed: int) -> None:
    """Turn ``benchmarks/app.py``'s store at ``path`` into one the panes can read."""
    manifest = json.loads((path / MANIFEST).read_text())
    points = pd.read_parquet(path / "validate" / "points.parquet")
    xy = np.load(path / "umap" / "coords.npy")
    n = len(points)
    rng = np.random.default_rng(seed + 2)
    labels = points["label"].cat.codes.to_numpy().astype(np.int64)
    hot = np.where(labels == HOT_CLASS, HOT_RATE, WRONG_RATE)
    wrong = rng.random(n) < hot
    predicted = np.where(wrong, (labels + rng.integers(1, 10, n)) % 10, labels)
    points["prediction"] = pd.Categorical.from_codes(predicted, points["label"].cat.categories)
    lid = rng.gamma(8.0, 1.0, n).astype(np.float32)
    scores = {"lid": lid, "outlier": rng.exponential(1.0, n).astype(np.float32)}
    trust = rng.beta(8.0, 2.0, n).astype(np.float32)
    tree = quadtree(xy)
    table, slice_arrays = slice_set(tree, labels, points["score"].to_numpy(), wrong)
    stages: dict[str, dict[str, Any]] = {
        # The store contract wants validate's vectors: the 2-D points stand in for them.
        "validate": {
            "arrays": {"vectors": xy, "duplicate_of": np.full(n, -1, np.int64)},
            "tables": {"points": points},
            "summary": {"dim": 2},
        },
        "errors": {"arrays": {"error": wrong.astype(np.int8)}, "summary": {"has_errors": True}},
        "intrinsic": {
            "arrays": {"lid": lid, "lid_raw": lid},
            "summary": {"global_mle": 7.9, "twonn": 7.4, "ambient_dim": 2},
        },
        "outliers": {
            "arrays": {"outlier": scores["outlier"], "outlier_local": scores["outlier"],
                       "scales": np.ones(16)},
            "summary": {"scale": 1.0},
        },
        "trust": {"arrays": {"umap": trust}, "summary": {"mean_umap": float(trust.mean())}},
        "hierarchy": {
            "arrays": {**tree, "representatives": representatives(tree)},
            "tables": {"nodes": node_table(tree, labels, wrong, scores)},
            "summary": {"n_nodes": len(tree["size"]), "max_depth": int(tree["depth"].max())},
        },
        "slices": {"arrays": slice_arrays, "tables": {"slices": table},
                   "summary": {"n_slices": len(table), "has_errors": True}},
    }  # fmt: skip
    provides = {"intrinsic": {"lid": "lid"}, "outliers": {"outlier": "outlier"},
                "trust": {"trust:umap": "umap"}}  # fmt: skip
    with StoreWriter(path) as writer:
        for name, parts in stages.items():
            manifest["stages"][name] = writer.write_stage(
                name,
                "bench",
                arrays=parts.get("arrays"),
                tables=parts.get("tables"),
                record={"summary": parts["summary"],
                        "provides": {"scores": provides.get(name, {})}},
            )  # fmt: skip
        writer.write_manifest(
            store_manifest(
                n_points=n, dim=2, source=manifest["source"],
                roles={**manifest["roles"], "prediction": "prediction"},
                stages=manifest["stages"], layouts=manifest["layouts"],
            )
        )  # fmt: skip
