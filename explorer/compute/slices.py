"""Slices: named sets of points with error statistics, and metadata predicates.

A slice is a metadata value or a conjunction of them, a hierarchy node, a region found in
embedding space, or a saved selection. A :class:`SliceSet` holds many: a table with one row
per slice, and the members of all of them as one concatenated int64 array plus offsets (so
millions of member ids store as two ``.npy`` files).

With a per-point error (1 wrong / 0 right, or a loss scaled into [0, 1]; NaN unknown) each
slice gets its error count and rate, the lift over the overall rate ``ē``, the Sliceline
score ``α·(ē_S/ē − 1) − (1 − α)·(n/|S| − 1)``, a one-sided p-value for "rate above ``ē``"
and a Wilson lower bound on its rate at a level corrected (Bonferroni) for ``n_tried``, the
number of slices examined to find it. Failure slices are ranked by that lower bound, so a
slice of two points with two errors cannot outrank a large slice with a solid elevated rate.
The lattice search and the embedding-space finder live in :mod:`explorer.compute.slice_search`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from explorer.compute.hierarchy import Tree
from explorer.errors import InputError

KINDS = ("metadata", "cluster", "failure", "embedding", "saved")
STAT_COLUMNS = (
    "n_scored",
    "errors",
    "error_rate",
    "lift",
    "lower_bound",
    "lower_lift",
    "p_value",
    "p_adjusted",
    "n_tried",
    "score",
)
COLUMNS = ("name", "kind", "description", "size", *STAT_COLUMNS)
# Member ids kept per slice for display: the most typical or the failing ones first.
N_EXAMPLES = 10
# Auto-selected categorical columns with more distinct values than this are ids or text.
MAX_LEVELS = 50


@dataclass(frozen=True)
class SliceSet:
    """Slices and their members.

    table : one row per slice, columns ``COLUMNS`` (statistics NaN without errors)
    members_flat : (total,) int64, each slice's sorted members, slice after slice
    offsets : (n_slices + 1,) int64, slice i is ``members_flat[offsets[i]:offsets[i + 1]]``
    examples : (n_slices, N_EXAMPLES) int64, members to show first, -1 padded
    """

    table: pd.DataFrame
    members_flat: NDArray[np.int64]
    offsets: NDArray[np.int64]
    examples: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.table)

    def members(self, i: int) -> NDArray[np.int64]:
        """Sorted int64 point ids of slice ``i``."""
        return self.members_flat[self.offsets[i] : self.offsets[i + 1]]

    def take(self, rows: ArrayLike) -> SliceSet:
        """The slices at positions ``rows``, in that order."""
        idx = np.asarray(rows, dtype=np.int64)
        parts = [self.members(int(i)) for i in idx]
        return SliceSet(
            table=self.table.iloc[idx].reset_index(drop=True),
            members_flat=_flat(parts),
            offsets=_offsets(parts),
            examples=self.examples[idx],
        )


def _flat(parts: Sequence[NDArray[np.int64]]) -> NDArray[np.int64]:
    return np.concatenate([np.zeros(0, dtype=np.int64), *parts]).astype(np.int64)


def _offsets(parts: Sequence[NDArray[np.int64]]) -> NDArray[np.int64]:
    return np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)


def error_flags(
    labels: ArrayLike | None = None,
    predictions: ArrayLike | None = None,
    correct: ArrayLike | None = None,
) -> NDArray[np.float64] | None:
    """Per-point error indicator (n,) float64: 1 wrong, 0 right, NaN unknown; None if no source.

    From ``correct`` (bool, or float with NaN for unknown) when given, else from
    ``labels != predictions`` where both are present.
    """
    if correct is not None:
        c = pd.Series(correct)
        flags = np.where(c.isna(), np.nan, 1.0 - c.fillna(0).to_numpy(dtype=np.float64))
        return np.asarray(flags, dtype=np.float64)
    if labels is None or predictions is None:
        return None
    y, y_hat = pd.Series(labels), pd.Series(predictions)
    if y.shape != y_hat.shape:
        msg = f"labels ({y.shape[0]}) and predictions ({y_hat.shape[0]}) differ in length"
        raise InputError(msg)
    wrong = (y.to_numpy() != y_hat.to_numpy()).astype(np.float64)
    return np.where(y.isna().to_numpy() | y_hat.isna().to_numpy(), np.nan, wrong)


def error_codes(errors: ArrayLike) -> NDArray[np.int8]:
    """Per-point codes (n,) int8 from errors or a loss: 1 wrong (> 0), 0 right, -1 unknown."""
    e = np.asarray(errors, dtype=np.float64)
    return np.where(np.isnan(e), -1, e > 0).astype(np.int8)


def check_errors(errors: ArrayLike, n: int) -> tuple[NDArray[np.float64], float]:
    """Errors as float64 in [0, 1] (NaN unknown) and the scale they were divided by.

    A loss above 1 is divided by its maximum, so the bounds below (which assume values in
    [0, 1]) stay valid: a [0, 1] variable's variance is at most ``p(1 − p)``.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.shape != (n,):
        msg = f"errors have shape {e.shape}; need ({n},), one per row"
        raise InputError(msg)
    if np.isinf(e).any() or (e < 0).any():
        row = int(np.flatnonzero(np.isinf(e) | (e < 0))[0])
        msg = f"errors row {row} is {e[row]}; errors must be finite and >= 0 (NaN = unknown)"
        raise InputError(msg)
    top = float(np.nanmax(e)) if (~np.isnan(e)).any() else 0.0
    scale = top if top > 1.0 else 1.0
    return e / scale, scale


def wilson_lower(rate: ArrayLike, n: ArrayLike, z: float) -> NDArray[np.float64]:
    """Wilson score lower bound on a proportion (NaN where ``n`` is 0)."""
    p = np.asarray(rate, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = p + z * z / (2 * m)
        spread = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
        out = (centre - spread) / (1 + z * z / m)
    return np.where(m > 0, np.clip(out, 0.0, 1.0), np.nan)


def corrected_z(confidence: float, n_tried: int) -> float:
    """One-sided normal quantile at level ``1 − (1 − confidence) / n_tried`` (Bonferroni)."""
    return float(stats.norm.isf((1.0 - confidence) / max(int(n_tried), 1)))


def sliceline_score(
    rate: ArrayLike, size: ArrayLike, overall: float, n: int, alpha: float
) -> NDArray[np.float64]:
    """Sliceline's ``α·(ē_S/ē − 1) − (1 − α)·(n/|S| − 1)`` (−inf for empty slices)."""
    r = np.asarray(rate, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = alpha * (r / overall - 1.0) - (1.0 - alpha) * (n / s - 1.0)
    return np.where(s > 0, out, -np.inf)


def _segment_sums(values: NDArray[np.float64], offsets: NDArray[np.int64]) -> NDArray[np.float64]:
    total = np.concatenate([[0.0], np.cumsum(values)])
    sums: NDArray[np.float64] = total[offsets[1:]] - total[offsets[:-1]]
    return sums


def _sorted_unique(ids: ArrayLike) -> NDArray[np.int64]:
    arr = np.asarray(ids, dtype=np.int64).ravel()
    if arr.shape[0] < 2 or bool((arr[1:] > arr[:-1]).all()):
        return arr  # already sorted and unique: skip the sort (slices of millions of ids)
    return np.unique(arr)


def _stats(
    flat: NDArray[np.int64],
    offsets: NDArray[np.int64],
    errors: ArrayLike | None,
    n_tried: int,
    alpha: float,
    confidence: float,
) -> dict[str, NDArray[np.float64]]:
    """The ``STAT_COLUMNS`` for slices given as flat members + offsets."""
    k = offsets.shape[0] - 1
    tried = np.full(k, float(n_tried))
    if errors is None:
        nan = np.full(k, np.nan)
        out = {c: nan.copy() for c in STAT_COLUMNS}
        out["n_scored"] = np.zeros(k)
        out["n_tried"] = tried
        return out
    e, scale = check_errors(errors, len(np.asarray(errors)))
    known = ~np.isnan(e)
    p0 = float(e[known].mean()) if known.any() else np.nan
    n_scored = _segment_sums(known[flat].astype(np.float64), offsets)
    err = _segment_sums(np.where(known, e, 0.0)[flat], offsets)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_scored > 0, err / n_scored, np.nan)
        lift = rate / p0 if p0 > 0 else np.full(k, np.nan)
        if np.isin(e[known], (0.0, 1.0)).all():
            p_value = stats.binom.sf(np.rint(err) - 1, n_scored, p0)
        else:  # a [0, 1] variable has variance <= p0 (1 - p0): a conservative normal test
            p_value = stats.norm.sf((rate - p0) / np.sqrt(p0 * (1 - p0) / n_scored))
    lower = wilson_lower(rate, n_scored, corrected_z(confidence, n_tried))
    return {
        "n_scored": n_scored,
        "errors": err * scale,
        "error_rate": rate * scale,
        "lift": lift,
        "lower_bound": lower * scale,
        "lower_lift": lower / p0 if p0 > 0 else np.full(k, np.nan),
        "p_value": np.where(n_scored > 0, p_value, np.nan),
        "p_adjusted": np.minimum(np.where(n_scored > 0, p_value, np.nan) * n_tried, 1.0),
        "n_tried": tried,
        "score": np.where(
            n_scored > 0, sliceline_score(rate, n_scored, p0, known.sum(), alpha), np.nan
        ),
    }


def _failing_first(
    parts: Sequence[NDArray[np.int64]], errors: ArrayLike | None
) -> NDArray[np.int64]:
    """(k, N_EXAMPLES) members per slice, largest error first (then by id), -1 padded."""
    out = np.full((len(parts), N_EXAMPLES), -1, dtype=np.int64)
    e = None if errors is None else np.nan_to_num(np.asarray(errors, np.float64), nan=-1.0)
    for i, part in enumerate(parts):
        if e is None or part.shape[0] <= N_EXAMPLES:
            pick = part[:N_EXAMPLES]
        else:
            # The N-th largest error, then everything above it and enough ties, in O(size).
            vals = e[part]
            cut = np.partition(vals, vals.shape[0] - N_EXAMPLES)[vals.shape[0] - N_EXAMPLES]
            above = part[vals > cut]
            pick = np.concatenate([above, part[vals == cut][: N_EXAMPLES - above.shape[0]]])
        if e is not None:
            pick = pick[np.lexsort((pick, -e[pick]))]
        out[i, : pick.shape[0]] = pick
    return out


def make_slices(
    names: Sequence[str],
    members: Sequence[ArrayLike],
    *,
    kind: str,
    descriptions: Sequence[str] | None = None,
    errors: ArrayLike | None = None,
    n_tried: int | None = None,
    examples: ArrayLike | None = None,
    alpha: float = 0.6,
    confidence: float = 0.95,
) -> SliceSet:
    """A :class:`SliceSet` from names and member ids (any order; sorted and deduplicated here).

    errors : (n,) per-point error (see :func:`check_errors`) or None for no statistics.
    n_tried : how many slices were examined to choose these (default: their number); it
    sets the Bonferroni-corrected level of ``lower_bound`` and ``p_adjusted``.
    examples : (k, <= N_EXAMPLES) ids to show first; default: failing members first.
    """
    if kind not in KINDS:
        msg = f"slice kind {kind!r} is not one of {', '.join(KINDS)}"
        raise InputError(msg)
    if len(names) != len(members):
        msg = f"{len(names)} slice names for {len(members)} member lists"
        raise InputError(msg)
    parts = [_sorted_unique(m) for m in members]
    flat, offsets = _flat(parts), _offsets(parts)
    tried = len(parts) if n_tried is None else max(int(n_tried), len(parts))
    table = pd.DataFrame(
        {
            "name": pd.Series(list(names), dtype=object),
            "kind": kind,
            "description": pd.Series(list(descriptions or names), dtype=object),
            "size": np.diff(offsets),
            **_stats(flat, offsets, errors, tried, alpha, confidence),
        }
    )
    if examples is None:
        shown = _failing_first(parts, errors)
    else:
        shown = np.full((len(parts), N_EXAMPLES), -1, dtype=np.int64)
        if parts:  # reshape(0, -1) is ambiguous: no slices, nothing to copy
            given = np.asarray(examples, dtype=np.int64).reshape(len(parts), -1)[:, :N_EXAMPLES]
            shown[:, : given.shape[1]] = given
    return SliceSet(table=table, members_flat=flat, offsets=offsets, examples=shown)


def concat_slices(sets: Sequence[SliceSet]) -> SliceSet:
    """One :class:`SliceSet` holding every slice of ``sets``, in order."""
    if not sets:
        return make_slices([], [], kind="saved")
    shift = np.cumsum([0, *[len(s.members_flat) for s in sets[:-1]]])
    offsets = np.concatenate([[0], *[s.offsets[1:] + d for s, d in zip(sets, shift, strict=True)]])
    return SliceSet(
        table=pd.concat([s.table for s in sets], ignore_index=True),
        members_flat=np.concatenate([s.members_flat for s in sets]).astype(np.int64),
        offsets=offsets.astype(np.int64),
        examples=np.concatenate([s.examples for s in sets]).astype(np.int64),
    )


def significant(table: pd.DataFrame, confidence: float = 0.95) -> NDArray[np.bool_]:
    """(k,) bool: the corrected lower bound exceeds the overall rate and the corrected
    p-value is at most ``1 − confidence`` (Wilson alone is lenient on a handful of points)."""
    above = (table["lower_lift"] > 1.0) & (table["p_adjusted"] <= 1.0 - confidence)
    return above.to_numpy(dtype=bool)


def rank_failures(
    slices: SliceSet,
    *,
    min_size: int = 10,
    significant_only: bool = True,
    confidence: float = 0.95,
) -> SliceSet:
    """Failure slices first: sorted by corrected lower bound, then lift, then size.

    Drops slices with fewer than ``min_size`` scored points and, with ``significant_only``,
    those not :func:`significant` at ``confidence``.
    """
    t = slices.table
    keep = ((t["n_scored"] >= min_size) & t["lower_bound"].notna()).to_numpy()
    if significant_only:
        keep = keep & significant(t, confidence)
    rows = np.flatnonzero(keep)
    sub = t.iloc[rows]
    by = np.lexsort(
        (-sub["size"].to_numpy(), -sub["lift"].to_numpy(), -sub["lower_bound"].to_numpy())
    )
    return slices.take(rows[by])


def sliced_nodes(tree: Tree, min_size: int) -> NDArray[np.int64]:
    """Ids of the nodes :func:`node_slices` makes slices of: not the root, ``min_size`` points."""
    return np.flatnonzero((tree.size >= min_size) & (np.arange(tree.n_nodes) > 0)).astype(np.int64)


def node_slices(
    tree: Tree,
    names: Sequence[str] | None = None,
    *,
    errors: ArrayLike | None = None,
    representatives: ArrayLike | None = None,
    min_size: int = 10,
    alpha: float = 0.6,
    confidence: float = 0.95,
) -> SliceSet:
    """One slice per hierarchy node (root excluded) with ``min_size`` points (kind ``cluster``).

    The description is ``"node <id>, depth <d>"``; ``representatives`` (m, r) become examples.
    """
    nodes = sliced_nodes(tree, min_size)
    labels = [names[int(v)] if names is not None else f"node {v}" for v in nodes]
    parts = [np.sort(tree.order[tree.start[v] : tree.end[v]]) for v in nodes]
    shown = None if representatives is None else np.asarray(representatives)[nodes]
    return make_slices(
        labels,
        parts,
        kind="cluster",
        descriptions=[f"node {v}, depth {tree.depth[v]}" for v in nodes],
        errors=errors,
        examples=shown,
        alpha=alpha,
        confidence=confidence,
    )
