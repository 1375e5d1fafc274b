"""Per-node statistics and automatic names for a :class:`~explorer.compute.hierarchy.Tree`.

Everything is computed bottom-up from the leaves (every point lies in exactly one leaf, and
a node's points are the union of its children's), so each statistic costs O(n + m · depth)
rather than a pass over the points per node.

Names: for categorical metadata, the dominant values that distinguish a node from its
parent (``"label=3 · split=test"``); for a text column, the top class-based TF-IDF terms
as in BERTopic, with a node's siblings as the classes: ``w(t, v) = tf(t, v) ·
log(1 + A / f(t))``, ``tf`` the L1-normalised term counts of node ``v``, ``f(t)`` the count
of term ``t`` in the parent and ``A`` the parent's words per child.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from explorer.compute.hierarchy import Tree, node_positions
from explorer.compute.slices import error_flags
from explorer.errors import InputError

# A column with more distinct values than this is an id or free text, not a category.
_MAX_LEVELS = 200
# A name term needs this share in the node, and a share this many binomial standard errors
# above its share in the parent (so sampling noise in a small node names nothing).
_MIN_SHARE = 0.5
_MIN_Z = 3.0
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
    """For one column: per node score (share - parent share), eligible, term text, share."""
    codes, uniques = _factorize(values)
    n_codes = max(uniques.shape[0], 1)
    node, code, count = _code_counts(tree, codes, n_codes)
    dominant, dom_count, total, _ = _dominant(tree, node, code, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, dom_count / total, 0.0)
    # The parent's share of the node's dominant value, found by (node, code) key lookup.
    keys = node * n_codes + code
    parent = np.maximum(tree.parent.astype(np.int64), 0)
    query = parent * n_codes + np.maximum(dominant, 0)
    at = np.minimum(np.searchsorted(keys, query), keys.shape[0] - 1)
    parent_count = np.where((keys[at] == query) & (dominant >= 0), count[at], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        parent_share = np.where(total[parent] > 0, parent_count / total[parent], 0.0)
    score = np.where(dominant >= 0, share - parent_share, -np.inf)
    spread = np.sqrt(parent_share * (1.0 - parent_share) / np.maximum(total, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(spread > 0, (share - parent_share) / spread, 0.0)
    eligible = (share >= _MIN_SHARE) & (z >= _MIN_Z) & (dominant >= 0)
    text = [f"{values.name}={uniques[c]}" if c >= 0 else "" for c in dominant]
    return score, eligible, text, share


def _categorical_names(
    tree: Tree, table: pd.DataFrame, columns: list[str], max_terms: int
) -> list[str]:
    per_column = [_column_terms(tree, table[c]) for c in columns]
    scores = np.stack([p[0] for p in per_column], axis=1)
    eligible = np.stack([p[1] for p in per_column], axis=1)
    names = ["all"]
    for v in range(1, tree.n_nodes):
        ranked = np.argsort(-scores[v], kind="stable")
        terms = [per_column[c][2][v] for c in ranked if eligible[v, c]][:max_terms]
        if terms:
            names.append(_SEP.join(terms))
        elif ranked.size and scores[v, ranked[0]] > 0:
            best = per_column[ranked[0]]
            names.append(f"{best[2][v]} ({best[3][v]:.0%})")
        else:
            names.append(f"node {v}")
    return names


def _text_names(tree: Tree, texts: pd.Series, n_terms: int) -> list[str] | None:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words="english", max_features=50_000)
    try:
        counts = vectorizer.fit_transform(texts.fillna("").astype(str).to_numpy())
    except ValueError:  # sklearn's "empty vocabulary": no words, name by the categories
        return None
    vocab = vectorizer.get_feature_names_out()
    n_vocab = len(vocab)
    # Node-by-term counts: an (m, n) membership matrix (nnz = n · (depth + 1)) times (n, V).
    pos, owner = node_positions(tree, np.arange(tree.n_nodes, dtype=np.int64))
    member = sp.csr_matrix(
        (np.ones(pos.shape[0], dtype=np.float64), (owner, tree.order[pos])),
        shape=(tree.n_nodes, tree.n_points),
    )
    T = sp.csr_matrix(member @ counts)
    T.sum_duplicates()
    T.sort_indices()
    row = np.repeat(np.arange(tree.n_nodes, dtype=np.int64), np.diff(T.indptr))
    col = T.indices.astype(np.int64)
    val = T.data.astype(np.float64)
    words = np.asarray(T.sum(axis=1)).ravel()
    parent = np.maximum(tree.parent.astype(np.int64), 0)
    keys = row * n_vocab + col  # sorted: csr rows ascending, indices sorted within rows
    f_parent = val[np.searchsorted(keys, parent[row] * n_vocab + col)]
    n_kids = np.maximum(np.bincount(tree.parent[1:], minlength=tree.n_nodes), 1)
    avg_words = words[parent[row]] / n_kids[parent[row]]
    weight = val / np.maximum(words[row], 1.0) * np.log1p(avg_words / f_parent)
    weight = np.where(row == 0, val, weight)  # the root has no siblings: plain counts
    by = np.lexsort((-weight, row))
    run_start = np.searchsorted(row[by], row[by], side="left")
    top = (np.arange(by.shape[0]) - run_start) < n_terms
    names: list[list[str]] = [[] for _ in range(tree.n_nodes)]
    for r, c in zip(row[by][top], col[by][top], strict=True):
        names[r].append(str(vocab[c]))
    return [_SEP.join(t) if t else f"node {v}" for v, t in enumerate(names)]


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
    its siblings. Otherwise: up to ``max_terms`` ``column=value`` terms, the node's dominant
    values (share >= 50%) clearly more common than in the parent (by 3 binomial standard
    errors), most distinctive first;
    failing that the most lifted value with its share; failing that ``"node <id>"``.
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
