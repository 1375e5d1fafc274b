"""Slices that explain: names from what the members share, and a ranking causes-first.

A cluster or embedding slice is named by its dominant metadata values, with their share of
the slice (``"scanner=B 96% · 50 points"``): a value is dominant when at least half the
slice has it and its share stands ``min_z`` binomial standard errors above its share in
the whole data (so a value common everywhere names nothing). Failing that the name says
``"no dominant value · 50 points"``.

Ranking: by the corrected lower bound of the error rate, then lift, then size, as
:func:`~explorer.compute.slices.rank_failures`; but a slice whose members lie mostly
(``contained``) inside a broader slice, and whose lower bound does not exceed the broader
slice's upper bound (their corrected intervals overlap: it is not credibly worse), is
*explained* by it: it is listed as related (``parent_slice``) and never ranks above it.
So a degraded metadata group comes before the clusters, embedding regions and
conjunctions that are its subsets, even where those were picked for their errors (the
error-aware mixture's regions are, and their small sizes let chance lift their rates).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from explorer.compute.slice_metadata import Predicates
from explorer.compute.slices import SliceSet, corrected_z, wilson_lower

# A slice is "inside" a broader one when most, this share, of its members are.
CONTAINED = 0.7
# Slices checked for a broader one that explains them (the best by their own key): the
# overlap product costs members × slices-per-point, so it is bounded at scale.
MAX_CHECKED = 500
# When two slices are mostly the same set, the one of the earlier kind is the explanation.
_KIND_PRIORITY = {"metadata": 4, "failure": 3, "cluster": 2, "embedding": 1, "saved": 0}
_SEP = " · "


def dominant_values(
    slices: SliceSet,
    pred: Predicates,
    *,
    min_share: float = 0.5,
    min_z: float = 3.0,
    max_values: int = 2,
) -> list[list[tuple[str, float]]]:
    """Per slice, up to ``max_values`` (level text, share) pairs that dominate it, most
    lifted first: share >= ``min_share`` and ``min_z`` standard errors above the overall
    share."""
    k = len(slices)
    owner = np.repeat(np.arange(k, dtype=np.int64), np.diff(slices.offsets))
    sizes = np.maximum(np.diff(slices.offsets), 1).astype(np.float64)
    found: list[list[tuple[float, str, float]]] = [[] for _ in range(k)]
    n = max(pred.codes.shape[0], 1)
    for j, levels in enumerate(pred.levels):
        codes = pred.codes[:, j].astype(np.int64)
        L = len(levels)
        overall = np.bincount(codes[codes >= 0], minlength=L) / n
        member_codes = codes[slices.members_flat]
        ok = member_codes >= 0
        counts = np.bincount(owner[ok] * L + member_codes[ok], minlength=k * L).reshape(k, L)
        best = np.argmax(counts, axis=1)  # share >= 0.5: at most one candidate per column
        share = counts[np.arange(k), best] / sizes
        base = overall[best]
        spread = np.sqrt(np.maximum(base * (1 - base), 1e-12) / sizes)
        good = (share >= min_share) & ((share - base) / spread >= min_z)
        for s in np.flatnonzero(good):
            lift = share[s] / max(base[s], 1e-12)
            found[s].append((lift, levels[int(best[s])], float(share[s])))
    return [[(t, sh) for _, t, sh in sorted(f, key=lambda x: -x[0])][:max_values] for f in found]


def points_label(size: int) -> str:
    """``"1 point"``, ``"50 points"``."""
    return f"{size:,} point" + ("" if size == 1 else "s")


def explained_name(values: Sequence[tuple[str, float]], size: int, terms: str = "") -> str:
    """``"scanner=B 96% · 50 points"``; ``terms`` (text) first; no value: says so."""
    parts = [terms] if terms else []
    parts += [f"{text} {share:.0%}" for text, share in values]
    if not parts:
        parts = ["no dominant value"]
    return _SEP.join([*parts, points_label(size)])


def _membership(slices: SliceSet, n_points: int) -> sp.csr_matrix:
    k = len(slices)
    data = np.ones(slices.members_flat.shape[0], dtype=np.float32)
    return sp.csr_matrix((data, slices.members_flat, slices.offsets), shape=(k, max(n_points, 1)))


def _own_key(t: pd.DataFrame) -> NDArray[np.float64]:
    key: NDArray[np.float64] = np.nan_to_num(t["lower_bound"].to_numpy(dtype=np.float64), nan=-1.0)
    return key


def _may_explain(
    s: NDArray[np.int64],
    b: NDArray[np.int64],
    common: NDArray[np.float64],
    contained: float,
    size: NDArray[np.int64],
    prio: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Pairs where ``b`` holds most of ``s`` and is broader, or (the same set, both ways
    mostly) of an earlier kind, then larger, then earlier in the table."""
    inside = (b != s) & (size[s] > 0) & (common >= contained * size[s])
    mutual = common >= contained * size[b]
    earlier = (prio[b] > prio[s]) | (
        (prio[b] == prio[s]) & ((size[b] > size[s]) | ((size[b] == size[s]) & (b < s)))
    )
    ok: NDArray[np.bool_] = inside & np.where(mutual, earlier, size[b] > size[s])
    return ok


def _upper_bounds(t: pd.DataFrame, confidence: float) -> NDArray[np.float64]:
    """Wilson upper bound on each slice's error rate, at its own corrected level."""
    rate = t["error_rate"].to_numpy(dtype=np.float64)
    n = t["n_scored"].to_numpy(dtype=np.float64)
    tried = t["n_tried"].fillna(1).to_numpy(dtype=np.int64)
    scale = np.where(rate > 1.0, rate, 1.0)  # losses above 1: bound the rate scaled to [0, 1]
    upper = np.full(rate.shape[0], np.nan)
    for k in np.unique(tried):
        at = tried == k
        z = corrected_z(confidence, int(k))
        upper[at] = 1.0 - wilson_lower(1.0 - rate[at] / scale[at], n[at], z)
    out: NDArray[np.float64] = upper * scale
    return out


def _parents(
    slices: SliceSet, n_points: int, contained: float, confidence: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(k,) int64 parent row (-1 none) and (k,) float share of each slice inside it."""
    t = slices.table
    k = len(slices)
    parent = np.full(k, -1, dtype=np.int64)
    overlap = np.full(k, np.nan)
    if k < 2:
        return parent, overlap
    key = _own_key(t)
    checked = np.argsort(-key, kind="stable")[:MAX_CHECKED]
    M = _membership(slices, n_points)
    inter = sp.csr_matrix(M[checked] @ M.T)
    size = t["size"].to_numpy(dtype=np.int64)
    prio = np.array([_KIND_PRIORITY.get(str(x), 0) for x in t["kind"]], dtype=np.int64)
    rate = t["error_rate"].to_numpy(dtype=np.float64)
    no_errors = bool(np.isnan(rate).all())
    upper = np.nan_to_num(_upper_bounds(t, confidence), nan=-1.0)
    coo = inter.tocoo()
    child, b, common = checked[coo.row], coo.col.astype(np.int64), coo.data.astype(np.float64)
    ok = _may_explain(child, b, common, contained, size, prio)
    if not no_errors:  # not credibly worse than the broader slice (the intervals overlap)
        ok &= key[child] <= upper[b]
    child, b, common = child[ok], b[ok], common[ok]
    # per child the best explanation: highest lower bound, then largest
    by = np.lexsort((size[b], key[b], child))
    last = np.ones(by.shape[0], dtype=bool)
    last[:-1] = child[by][1:] != child[by][:-1]
    pick = by[last]
    parent[child[pick]] = b[pick]
    overlap[child[pick]] = common[pick] / size[child[pick]]
    return _break_cycles(parent), overlap


def _break_cycles(parent: NDArray[np.int64]) -> NDArray[np.int64]:
    out = parent.copy()
    for start in range(out.shape[0]):
        seen = {start}
        v = int(out[start])
        while v >= 0:
            if v in seen:
                out[start] = -1
                break
            seen.add(v)
            v = int(out[v])
    return out


def _depth_and_effective(
    parent: NDArray[np.int64], key: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Depth in the explains-relation and the key capped by every ancestor's."""
    k = parent.shape[0]
    depth = np.zeros(k, dtype=np.int64)
    eff = key.copy()
    for s in range(k):
        v = int(parent[s])
        while v >= 0:
            depth[s] += 1
            eff[s] = min(eff[s], key[v])
            v = int(parent[v])
    return depth, eff


def _related_text(table: pd.DataFrame) -> list[str]:
    """``"in scanner=B (96%)"`` for an explained slice, ``"explains 3"`` for its parent."""
    parent = table["parent_slice"].to_numpy()
    share = table["parent_overlap"].to_numpy()
    names = table["name"].astype(str).to_numpy()
    n_explained = np.bincount(parent[parent >= 0], minlength=len(table))
    out = []
    for i in range(len(table)):
        parts = [f"in {names[parent[i]]} ({share[i]:.0%})"] if parent[i] >= 0 else []
        if n_explained[i]:
            parts.append(f"explains {n_explained[i]}")
        out.append("; ".join(parts))
    return out


def explain_ranking(
    slices: SliceSet, n_points: int, *, contained: float = CONTAINED, confidence: float = 0.95
) -> SliceSet:
    """The slices in display order, with ``rank`` (1 first), ``parent_slice``,
    ``parent_overlap`` and ``related`` columns.

    ``parent_slice`` is the row (in the returned order) of the broader slice that explains
    this one, or -1; ``parent_overlap`` the share of this slice's members inside it;
    ``related`` says both in words (``"in scanner=B (96%)"``, ``"explains 3"``).
    """
    parent, overlap = _parents(slices, n_points, contained, confidence)
    t = slices.table
    key = _own_key(t)
    depth, eff = _depth_and_effective(parent, key)
    order = np.lexsort(
        (
            np.arange(len(slices)),
            -t["size"].to_numpy(dtype=np.float64),
            -np.nan_to_num(t["lift"].to_numpy(dtype=np.float64), nan=-1.0),
            -key,
            depth,
            -eff,
        )
    )
    ranked = slices.take(order)
    new_row = np.empty(len(slices), dtype=np.int64)
    new_row[order] = np.arange(len(slices))
    old_parent = parent[order]
    table = ranked.table.copy()
    table["rank"] = np.arange(1, len(slices) + 1, dtype=np.int64)
    table["parent_slice"] = np.where(old_parent >= 0, new_row[np.maximum(old_parent, 0)], -1)
    table["parent_overlap"] = overlap[order].astype(np.float32)
    table["related"] = _related_text(table)
    return SliceSet(table, ranked.members_flat, ranked.offsets, ranked.examples)
