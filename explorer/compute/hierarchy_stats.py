"""Per-node statistics and automatic names for a :class:`~explorer.compute.hierarchy.Tree`.

Everything is computed bottom-up from the leaves (every point lies in exactly one leaf, and
a node's points are the union of its children's), so each statistic costs O(n + m · depth)
rather than a pass over the points per node.

Names say what sets a node apart from its siblings (the parent's other children). For
categorical metadata: up to two ``column=value`` terms, each column's value most lifted
over the siblings (share >= 25%, lift >= 1.5, 3 binomial standard errors above the
siblings' share; the share is shown when under half), columns ordered by
``share · log(lift)``. For a text column: class-based TF-IDF terms scored against the
siblings (:mod:`explorer.compute.terms`), no word in two siblings' names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from explorer.compute.hierarchy import Tree, node_positions
from explorer.compute.slices import error_flags
from explorer.compute.terms import distinctive_terms, document_terms
from explorer.errors import InputError

# A column with more distinct values than this is an id or free text, not a category.
_MAX_LEVELS = 200
# A name term's share is shown below this share; it must stand this many binomial standard
# errors above its share among the siblings (so sampling noise in a small node names nothing).
_MIN_SHARE = 0.5
_MIN_Z = 3.0
# A value that names a node by lift over its siblings: at least this share, this lift.
_MIN_LIFT_SHARE = 0.25
_MIN_LIFT = 1.5
_SEP = " · "


def _accumulate_up(tree: Tree, per_node: NDArray[np.float64]) -> NDArray[np.float64]:
    """Add every node's values into its ancestors, deepest level first. (m, ...) -> (m, ...)."""
    out = per_node.copy()
    for level in range(int(tree.depth.max()), 0, -1):
        nodes = np.flatnonzero(tree.depth == level)
        np.add.at(out, tree.parent[nodes], out[nodes])
    return out


def _per_node_sums(tree: Tree, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum of a per-point value over each node's points: (n,) -> (m,) float64."""
    leaf_sums = np.bincount(tree.leaf, weights=values, minlength=tree.n_nodes).astype(np.float64)
    return _accumulate_up(tree, leaf_sums)


def node_means(tree: Tree, values: ArrayLike) -> NDArray[np.float32]:
    """Mean of a per-point value over each node, ignoring NaN: (n,) -> (m,) float32.

    A node whose values are all NaN gets NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (tree.n_points,):
        msg = f"values have shape {v.shape}; need ({tree.n_points},), one per point"
        raise InputError(msg)
    known = ~np.isnan(v)
    sums = _per_node_sums(tree, np.where(known, v, 0.0))
    counts = _per_node_sums(tree, known.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)


def _factorize(values: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.generic]]:
    """Codes (-1 for missing) and sorted distinct values of a categorical column."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    try:
        codes, uniques = pd.factorize(series, sort=True)
    except TypeError:  # mixed types that do not sort: keep first-seen order
        codes, uniques = pd.factorize(series, sort=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques)


def _code_counts(
    tree: Tree, codes: NDArray[np.int64], n_codes: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Sparse (node, code, count) for every node, sorted by node then code; -1 codes skipped."""
    valid = codes >= 0
    keys = tree.leaf[valid].astype(np.int64) * n_codes + codes[valid]
    keys, counts = np.unique(keys, return_counts=True)
    found_keys, found_counts = [keys], [counts]
    # Push the (node, code) rows of each level up to the parents, deepest level first.
    pending = keys, counts
    for level in range(int(tree.depth.max()), 0, -1):
        k_all, c_all = pending
        at_level = tree.depth[k_all // n_codes] == level
        up = tree.parent[k_all[at_level] // n_codes].astype(np.int64) * n_codes + (
            k_all[at_level] % n_codes
        )
        up_keys, inverse = np.unique(up, return_inverse=True)
        up_counts = np.bincount(inverse, weights=c_all[at_level]).astype(np.int64)
        found_keys.append(up_keys)
        found_counts.append(up_counts)
        # Rows not yet at this level (shallower leaves) stay pending with the new parents.
        pending = (
            np.concatenate([k_all[~at_level], up_keys]),
            np.concatenate([c_all[~at_level], up_counts]),
        )
    keys = np.concatenate(found_keys)
    counts = np.concatenate(found_counts)
    by = np.argsort(keys, kind="stable")
    return keys[by] // n_codes, keys[by] % n_codes, counts[by]


def _dominant(
    tree: Tree, node: NDArray[np.int64], code: NDArray[np.int64], count: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Per node: dominant code (-1 none; ties to the lowest code), its count, total, entropy."""
    m = tree.n_nodes
    total = np.bincount(node, weights=count, minlength=m).astype(np.int64)
    by = np.lexsort((code, -count, node))
    first = np.ones(by.shape[0], dtype=bool)
    first[1:] = node[by][1:] != node[by][:-1]
    dominant = np.full(m, -1, dtype=np.int64)
    dom_count = np.zeros(m, dtype=np.int64)
    dominant[node[by][first]] = code[by][first]
    dom_count[node[by][first]] = count[by][first]
    p = count / np.maximum(total[node], 1)
    entropy = np.bincount(node, weights=-p * np.log2(p), minlength=m).astype(np.float64)
    return dominant, dom_count, total, entropy


def node_label_stats(
    tree: Tree,
    labels: ArrayLike | None,
    predictions: ArrayLike | None = None,
    *,
    correct: ArrayLike | None = None,
) -> dict[str, NDArray[np.generic]]:
    """Label mix and error rate per node.

    labels : (n,) any hashable values, missing (NaN/None) ignored; or None.
    predictions : (n,) same kind as labels, or ``correct`` : (n,) bool (NaN unknown).
    Returns ``classes`` (L,) the distinct labels, sorted; per node (m,): ``dominant``
    int32 index into ``classes`` (-1 where no labelled point), ``dominant_share`` float32,
    ``entropy`` float32 (bits), ``n_labeled`` int64; ``n_scored`` int64 points with a known
    error flag, ``errors`` int64 and ``error_rate`` float32 (NaN without a prediction source).
    """
    m = tree.n_nodes
    out: dict[str, NDArray[np.generic]] = {}
    if labels is not None:
        codes, classes = _factorize(labels)
        if codes.shape != (tree.n_points,):
            msg = f"labels have {codes.shape[0]} rows; the tree has {tree.n_points} points"
            raise InputError(msg)
        node, code, count = _code_counts(tree, codes, max(classes.shape[0], 1))
        dominant, dom_count, total, entropy = _dominant(tree, node, code, count)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, dom_count / total, np.nan)
        out["classes"] = classes.astype(str) if classes.dtype == object else classes
        out["dominant"] = dominant.astype(np.int32)
        out["dominant_share"] = share.astype(np.float32)
        out["entropy"] = np.where(total > 0, entropy + 0.0, np.nan).astype(np.float32)
        out["n_labeled"] = total
    flags = error_flags(labels, predictions, correct)
    if flags is None:
        out["n_scored"] = np.zeros(m, dtype=np.int64)
        out["errors"] = np.zeros(m, dtype=np.int64)
        out["error_rate"] = np.full(m, np.nan, dtype=np.float32)
        return out
    known = ~np.isnan(flags)
    scored = _per_node_sums(tree, known.astype(np.float64))
    errors = _per_node_sums(tree, np.where(known, flags, 0.0))
    out["n_scored"] = np.rint(scored).astype(np.int64)
    out["errors"] = np.rint(errors).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["error_rate"] = np.where(scored > 0, errors / scored, np.nan).astype(np.float32)
    return out


def _default_categoricals(table: pd.DataFrame, skip: str | None) -> list[str]:
    """Columns that look categorical: not float, 2 to ``_MAX_LEVELS`` distinct values."""
    out = []
    for name in table.columns:
        col = table[name]
        if name == skip or pd.api.types.is_float_dtype(col):
            continue
        if 2 <= col.nunique(dropna=True) <= _MAX_LEVELS:
            out.append(str(name))
    return out


def _column_terms(
    tree: Tree, values: pd.Series
) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[str], NDArray[np.float64]]:
    """For one column, per node: score, eligible, term text and share of its best value.

    The best value is the one most lifted over the node's siblings (the parent's other
    points): share ``>= _MIN_LIFT_SHARE``, lift ``>= _MIN_LIFT`` and ``_MIN_Z`` binomial
    standard errors above the siblings' share. Its score ``share · log(lift)`` ranks
    columns against each other.
    """
    codes, uniques = _factorize(values)
    n_codes = max(uniques.shape[0], 1)
    node, code, count = _code_counts(tree, codes, n_codes)
    m = tree.n_nodes
    if node.shape[0] == 0:  # every value missing: nothing names a node
        return np.full(m, -np.inf), np.zeros(m, dtype=bool), [""] * m, np.zeros(m)
    total = np.bincount(node, weights=count, minlength=m).astype(np.float64)
    keys = node * n_codes + code  # sorted: _code_counts sorts by node, then code
    parent = np.maximum(tree.parent.astype(np.int64), 0)[node]
    query = parent * n_codes + code
    at = np.minimum(np.searchsorted(keys, query), keys.shape[0] - 1)
    parent_count = np.where(keys[at] == query, count[at], 0)
    share = count / np.maximum(total[node], 1.0)
    # Siblings: the parent's points outside this node, smoothed by half a point.
    sib = (parent_count - count + 0.5) / (np.maximum(total[parent] - total[node], 0.0) + 1.0)
    lift = share / sib
    z = (share - sib) / np.sqrt(sib * (1.0 - np.minimum(sib, 0.999)) / np.maximum(total[node], 1))
    ok = (share >= _MIN_LIFT_SHARE) & (lift >= _MIN_LIFT) & (z >= _MIN_Z) & (node > 0)
    best = np.full(m, -1, dtype=np.int64)
    rows = np.flatnonzero(ok)
    rows = rows[np.lexsort((-lift[rows], node[rows]))]  # per node, most lifted first
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = node[rows][1:] != node[rows][:-1]
    best[node[rows][first]] = rows[first]
    has = best >= 0
    score = np.full(m, -np.inf)
    score[has] = share[best[has]] * np.log(lift[best[has]])
    best_share = np.zeros(m)
    best_share[has] = share[best[has]]
    text = [f"{values.name}={uniques[code[b]]}" if b >= 0 else "" for b in best]
    return score, has, text, best_share


def _categorical_names(
    tree: Tree, table: pd.DataFrame, columns: list[str], max_terms: int
) -> list[str]:
    per_column = [_column_terms(tree, table[c]) for c in columns]
    scores = np.stack([p[0] for p in per_column], axis=1)
    eligible = np.stack([p[1] for p in per_column], axis=1)
    names = ["all"]
    for v in range(1, tree.n_nodes):
        ranked = [c for c in np.argsort(-scores[v], kind="stable") if eligible[v, c]]
        terms = []
        for c in ranked[:max_terms]:
            text, share = per_column[c][2][v], per_column[c][3][v]
            terms.append(text if share >= _MIN_SHARE else f"{text} ({share:.0%})")
        names.append(_SEP.join(terms) if terms else f"node {v}")
    return names


def _text_names(tree: Tree, texts: pd.Series, n_terms: int) -> list[str] | None:
    """c-TF-IDF names against each node's siblings; None when the texts hold no words."""
    found = document_terms(texts.fillna("").astype(str).tolist())
    if found is None:
        return None
    if tree.n_nodes == 1:
        return ["all"]
    docs, vocab = found
    # Node-by-term document counts: an (m, n) membership matrix (nnz = n · (depth + 1)).
    pos, owner = node_positions(tree, np.arange(tree.n_nodes, dtype=np.int64))
    member = sp.csr_matrix(
        (np.ones(pos.shape[0], dtype=np.float64), (owner, tree.order[pos])),
        shape=(tree.n_nodes, tree.n_points),
    )
    node_df = sp.csr_matrix(member @ docs)
    names = ["all"] + [f"node {v}" for v in range(1, tree.n_nodes)]
    by_parent = np.argsort(tree.parent[1:], kind="stable") + 1
    parents, first = np.unique(tree.parent[by_parent], return_index=True)
    for p, kids in zip(parents, np.split(by_parent, first[1:]), strict=True):
        terms = distinctive_terms(
            node_df[kids],
            tree.size[kids],
            node_df[int(p)].toarray().ravel(),
            float(tree.size[int(p)]),
            vocab,
            n_terms,
        )
        for v, t in zip(kids, terms, strict=True):
            if t:
                names[v] = _SEP.join(t)
    return names


def node_names(
    tree: Tree,
    table: pd.DataFrame,
    text_column: str | None = None,
    categorical_columns: list[str] | None = None,
    *,
    max_terms: int = 2,
) -> list[str]:
    """An automatic name per node (m names; the root is ``"all"`` with categorical names).

    With ``text_column``: the node's top ``max_terms + 1`` class-based TF-IDF terms against
    its siblings (an empty text column falls back to the categories). Otherwise: up to
    ``max_terms`` ``column=value`` terms, each column's value most lifted over the
    siblings (see the module docstring); failing that ``"node <id>"``.
    ``categorical_columns`` defaults to every non-float column with 2–200 distinct values.
    """
    if len(table) != tree.n_points:
        msg = f"table has {len(table)} rows; the tree has {tree.n_points} points"
        raise InputError(msg)
    table = table.reset_index(drop=True)
    if text_column is not None:
        if text_column not in table.columns:
            msg = f"text column {text_column!r} is not in the table: {list(table.columns)}"
            raise InputError(msg)
        named = _text_names(tree, table[text_column], max_terms + 1)
        if named is not None:
            return named
        table = table.drop(columns=[text_column])
    columns = (
        _default_categoricals(table, None) if categorical_columns is None else categorical_columns
    )
    missing = [c for c in columns if c not in table.columns]
    if missing:
        msg = f"categorical columns {missing} are not in the table"
        raise InputError(msg)
    if not columns:
        return ["all"] + [f"node {v}" for v in range(1, tree.n_nodes)]
    return _categorical_names(tree, table, list(columns), max_terms)
