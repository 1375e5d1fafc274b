"""Every kind of slice for one dataset, named by what it is and ranked causes-first.

:func:`find_slices` runs the metadata slices, one slice per hierarchy node, the Sliceline
search and the embedding-space mixture (the last two only with a per-point error), names
cluster and embedding slices by their dominant metadata values or, for text, by their
distinctive terms, and orders everything with
:func:`~explorer.compute.slice_ranking.explain_ranking`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from explorer.compute.hierarchy import Tree
from explorer.compute.slice_embedding import embedding_slices
from explorer.compute.slice_metadata import encode_predicates, metadata_slices
from explorer.compute.slice_ranking import dominant_values, explain_ranking, explained_name
from explorer.compute.slice_search import sliceline
from explorer.compute.slices import SliceSet, concat_slices, node_slices, sliced_nodes
from explorer.compute.terms import distinctive_terms, document_terms
from explorer.config import SliceConfig

# Components of the embedding-space mixture (fewer for tiny inputs: two points each).
EMBEDDING_SLICES = 16
_SEP = " · "


def _text_terms(slices: SliceSet, texts: Sequence[str], n_points: int) -> list[str]:
    """Per slice its distinctive terms against every other point ("" without words)."""
    found = document_terms(texts)
    if found is None or len(slices) == 0:
        return [""] * len(slices)
    docs, vocab = found
    owner = np.repeat(np.arange(len(slices)), np.diff(slices.offsets))
    member = sp.csr_matrix(
        (np.ones(owner.shape[0]), (owner, slices.members_flat)), shape=(len(slices), n_points)
    )
    total = np.asarray(docs.sum(axis=0)).ravel()
    sizes = np.diff(slices.offsets)
    # One slice at a time against the rest: slices overlap, so no word-sharing rule here.
    return [
        _SEP.join(distinctive_terms(member[i] @ docs, sizes[i : i + 1], total, n_points, vocab)[0])
        for i in range(len(slices))
    ]


def _rename(
    slices: SliceSet,
    table: pd.DataFrame,
    terms: Sequence[str] | None,
    quantile_bins: int,
) -> SliceSet:
    """Name each slice by its terms (text) and dominant metadata values, with its size."""
    if len(slices) == 0:
        return slices
    values = dominant_values(slices, encode_predicates(table, quantile_bins=quantile_bins))
    sizes = slices.table["size"].to_numpy()
    names = [
        explained_name(v, int(size), terms[i] if terms is not None else "")
        for i, (v, size) in enumerate(zip(values, sizes, strict=True))
    ]
    out = slices.table.copy()
    out["name"] = pd.Series(names, dtype=object)
    return SliceSet(out, slices.members_flat, slices.offsets, slices.examples)


def _cluster_slices(
    tree: Tree,
    errors: NDArray[np.float64] | None,
    node_terms: Sequence[str] | None,
    representatives: ArrayLike | None,
    cfg: SliceConfig,
) -> tuple[SliceSet, list[str] | None]:
    common: dict[str, Any] = {"alpha": cfg.alpha, "confidence": cfg.confidence}
    found = node_slices(
        tree, errors=errors, representatives=representatives, min_size=cfg.min_size, **common
    )
    if node_terms is None:
        return found, None
    # a node without distinctive words is named "node <id>": no terms to show
    named = [(int(v), node_terms[int(v)]) for v in sliced_nodes(tree, cfg.min_size)]
    return found, ["" if name == f"node {v}" else name for v, name in named]


def find_slices(
    table: pd.DataFrame,
    vectors: ArrayLike,
    tree: Tree,
    errors: NDArray[np.float64] | None,
    cfg: SliceConfig,
    *,
    texts: Sequence[str] | None = None,
    node_terms: Sequence[str] | None = None,
    representatives: ArrayLike | None = None,
    seed: int = 0,
) -> SliceSet:
    """Metadata, cluster, failure and embedding slices of one dataset, ranked.

    table : (n rows) the metadata to slice by; vectors : (n, d); errors : (n,) per-point
    error or None; texts : (n,) a text column, or None; node_terms : the hierarchy's text
    names per node (used for cluster slices of a text store).
    """
    common: dict[str, Any] = {"alpha": cfg.alpha, "confidence": cfg.confidence}
    n = len(table)
    parts = [
        metadata_slices(
            table, errors=errors, quantile_bins=cfg.quantile_bins, min_size=cfg.min_size, **common
        )
    ]
    clusters, cluster_terms = _cluster_slices(tree, errors, node_terms, representatives, cfg)
    parts.append(_rename(clusters, table, cluster_terms, cfg.quantile_bins))
    if errors is not None:
        found = sliceline(
            table,
            errors,
            min_support=cfg.min_size,
            max_predicates=cfg.max_predicates,
            quantile_bins=cfg.quantile_bins,
            **common,
        )
        # One-predicate conjunctions repeat the metadata slices of the same name.
        parts.append(found.take(np.flatnonzero(~found.table["name"].isin(parts[0].table["name"]))))
        emb = embedding_slices(
            vectors,
            errors,
            n_slices=max(1, min(EMBEDDING_SLICES, n // 2)),
            min_size=cfg.min_size,
            seed=seed,
            **common,
        )
        terms = None if texts is None else _text_terms(emb, texts, n)
        parts.append(_rename(emb, table, terms, cfg.quantile_bins))
    found = concat_slices(parts)
    table = found.table.copy()
    table["name"] = unique_names([str(name) for name in table["name"]])
    found = SliceSet(table, found.members_flat, found.offsets, found.examples)
    return explain_ranking(found, n, confidence=cfg.confidence)


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with a repeat numbered: ``["a", "a"]`` -> ``["a", "a (2)"]``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out
