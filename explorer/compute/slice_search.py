"""Failure slices from metadata: a Sliceline lattice search over conjunctions of levels.

:func:`sliceline` finds conjunctions of up to ``max_predicates`` metadata levels (see
:mod:`explorer.compute.slice_metadata`), searched level by level as in Sliceline
(Sagadeeva & Boehm, 2021). A column combination is evaluated in one pass (every cell at
once, by grouping rows on a mixed-radix key), only from parent cells that can still matter:
at least ``min_support`` rows, some errors, and an upper bound on any descendant's
objective (from the parent's size, error sum and largest error, probed at the critical
sizes) that reaches the current top-k. The objective is Sliceline's score, or the
Bonferroni-corrected Wilson lower bound on the error rate (failure ranking).

Slices found in embedding space live in :mod:`explorer.compute.slice_embedding`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from explorer.compute.slice_metadata import Predicates, encode_predicates
from explorer.compute.slices import (
    SliceSet,
    check_errors,
    corrected_z,
    make_slices,
    significant,
    sliceline_score,
    wilson_lower,
)
from explorer.errors import ConfigError


@dataclass
class _Cells:
    """Evaluated cells of one column combination: sorted keys and their sizes and errors."""

    keys: NDArray[np.int64]
    size: NDArray[np.float64]
    err: NDArray[np.float64]
    top: NDArray[np.float64]  # largest error in the cell


class _Lattice:
    """Level-wise search state: the encoded rows, the objective and the running top-k."""

    def __init__(
        self,
        pred: Predicates,
        e: NDArray[np.float64],
        objective: Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]],
        floor: float,
        min_support: int,
        k: int,
    ) -> None:
        self.codes, self.e = pred.codes, e
        # One contiguous array per column: row selections read columns, not strided rows.
        self.cols = [
            np.ascontiguousarray(pred.codes[:, j]).astype(np.int64)
            for j in range(pred.codes.shape[1])
        ]
        self.radix = [len(levels) for levels in pred.levels]
        self.level_size = [
            np.bincount(col[col >= 0], minlength=r)
            for col, r in zip(self.codes.T, self.radix, strict=True)
        ]
        self.objective, self.floor = objective, floor
        self.min_support, self.k = min_support, k
        self.binary = bool(np.isin(e, (0.0, 1.0)).all())
        self.tried = 0
        # Pool of good cells: (objective values, combo, keys, error rates).
        self.found: list[
            tuple[NDArray[np.float64], tuple[int, ...], NDArray[np.int64], NDArray[np.float64]]
        ] = []
        self.threshold = floor

    def bound(self, c: _Cells) -> NDArray[np.float64]:
        """Upper bound of the objective over every sub-slice of each cell (size >= support)."""
        sigma = float(self.min_support)
        best = np.full(c.keys.shape[0], -np.inf)
        top = np.maximum(c.top, 1e-12)
        for s in (np.full_like(c.size, sigma), np.clip(c.err / top, sigma, c.size), c.size):
            s = np.maximum(s, sigma)
            best = np.maximum(best, self.objective(np.minimum(c.err, s * top) / s, s))
        return best

    def record(self, combo: tuple[int, ...], c: _Cells) -> None:
        """Count the cells as tried; keep those that beat the threshold in the top-k pool."""
        self.tried += c.keys.shape[0]
        value = self.objective(c.err / c.size, c.size)
        good = value > self.threshold
        if good.any():
            self.found.append((value[good], combo, c.keys[good], (c.err / c.size)[good]))
            values = np.concatenate([f[0] for f in self.found])
            if values.shape[0] >= self.k:
                self.threshold = max(self.floor, float(np.partition(values, -self.k)[-self.k]))

    def extendable(self, c: _Cells) -> NDArray[np.bool_]:
        return (c.size >= self.min_support) & (c.err > 0) & (self.bound(c) > self.threshold)

    def evaluate(self, combo: tuple[int, ...], mask: NDArray[np.bool_]) -> _Cells:
        """Group the rows in ``mask`` by their levels in ``combo`` (mixed-radix keys)."""
        key = np.zeros(int(mask.sum()), dtype=np.int64)
        for j in combo:
            key = key * self.radix[j] + self.cols[j][mask]
        e = self.e[mask]
        space = int(np.prod([self.radix[j] for j in combo], dtype=np.float64))
        if space <= 4 * key.shape[0] + 4096:  # small key space: count without sorting
            size_all = np.bincount(key, minlength=space)
            keys = np.flatnonzero(size_all)
            size = size_all[keys].astype(np.float64)
            err = np.bincount(key, weights=e, minlength=space)[keys].astype(np.float64)
        else:
            keys, inverse = np.unique(key, return_inverse=True)
            size = np.bincount(inverse).astype(np.float64)
            err = np.bincount(inverse, weights=e).astype(np.float64)
        if self.binary:
            top = (err > 0).astype(np.float64)
        else:
            top = np.zeros(keys.shape[0])
            np.maximum.at(top, np.searchsorted(keys, key), e)
        keep = size >= self.min_support
        return _Cells(keys[keep], size[keep], err[keep], top[keep])

    def row_keys(self, combo: tuple[int, ...]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        key = np.zeros(self.codes.shape[0], dtype=np.int64)
        valid = np.ones(self.codes.shape[0], dtype=bool)
        for j in combo:
            key = key * self.radix[j] + self.cols[j]
            valid &= self.cols[j] >= 0
        return key, valid


def _member_of(keys: NDArray[np.int64], sorted_keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """(n,) bool: which ``keys`` are in ``sorted_keys`` (a lookup table when keys are small)."""
    if sorted_keys.shape[0] == 0:
        return np.zeros(keys.shape[0], dtype=bool)
    top = int(sorted_keys[-1])
    if top <= 4 * keys.shape[0] + 4096:
        table = np.zeros(top + 1, dtype=bool)
        table[sorted_keys] = True
        return table[np.clip(keys, 0, top)] & (keys <= top) & (keys >= 0)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.shape[0] - 1)
    found: NDArray[np.bool_] = sorted_keys[at] == keys
    return found


def _size_of(keys: NDArray[np.int64], cells: _Cells) -> NDArray[np.float64]:
    at = np.minimum(np.searchsorted(cells.keys, keys), cells.keys.shape[0] - 1)
    return np.where(cells.keys[at] == keys, cells.size[at], -1.0)


def _subset(c: _Cells, keep: NDArray[np.bool_]) -> _Cells:
    return _Cells(c.keys[keep], c.size[keep], c.err[keep], c.top[keep])


def _extend(
    lat: _Lattice,
    parent: tuple[int, ...],
    pcells: _Cells,
    in_parent: NDArray[np.bool_],
    j: int,
    ok_level: NDArray[np.bool_],
) -> _Cells:
    """Evaluate ``parent`` + column ``j`` on rows of extendable parent cells and levels.

    in_parent : (n,) rows in an extendable cell of ``parent``; ok_level : (levels of j,).
    """
    code = lat.cols[j]
    rows = in_parent & np.concatenate([ok_level, [False]])[code]  # code -1 reads the False
    cells = lat.evaluate((*parent, j), rows)
    # A conjunction with the same rows as one of its two parents adds nothing: drop it.
    same = (cells.size == _size_of(cells.keys // lat.radix[j], pcells)) | (
        cells.size == lat.level_size[j][cells.keys % lat.radix[j]]
    )
    return _subset(cells, ~same)


def _search(lat: _Lattice, max_predicates: int) -> None:
    """Run the level-wise search, filling ``lat.found`` and ``lat.tried``."""
    n_cols = lat.codes.shape[1]
    singles = {j: lat.evaluate((j,), lat.cols[j] >= 0) for j in range(n_cols)}
    level: dict[tuple[int, ...], _Cells] = {}
    for j, cells in singles.items():
        lat.record((j,), cells)
        level[(j,)] = cells
    for depth in range(2, max_predicates + 1):
        # Parents are re-filtered with the threshold reached so far (it only rises).
        ext = {c: _subset(v, lat.extendable(v)) for c, v in level.items()}
        ext = {c: v for c, v in ext.items() if v.keys.shape[0] > 0}
        ok_level = {}
        for j, v in singles.items():
            ok_level[j] = np.zeros(lat.radix[j], dtype=bool)
            ok_level[j][v.keys[lat.extendable(v)]] = True
        level = {}
        for parent, pcells in ext.items():
            pkey, pvalid = lat.row_keys(parent)
            in_parent = pvalid & _member_of(pkey, pcells.keys)
            for j in range(parent[-1] + 1, n_cols):
                combo = (*parent, j)
                subs = itertools.combinations(combo, depth - 1)
                if not ok_level[j].any() or any(sub not in ext for sub in subs):
                    continue
                cells = _extend(lat, parent, pcells, in_parent, j, ok_level[j])
                lat.record(combo, cells)
                level[combo] = cells


def _decode(lat: _Lattice, combo: tuple[int, ...], key: int) -> list[tuple[int, int]]:
    """(column, level) pairs of a mixed-radix cell key."""
    out = []
    for j in reversed(combo):
        out.append((j, key % lat.radix[j]))
        key //= lat.radix[j]
    return out[::-1]


def sliceline(
    table: pd.DataFrame,
    errors: ArrayLike,
    *,
    columns: Sequence[str] | None = None,
    alpha: float = 0.6,
    min_support: int = 10,
    max_predicates: int = 3,
    k: int = 20,
    quantile_bins: int = 4,
    rank_by: str = "lower_bound",
    confidence: float = 0.95,
) -> SliceSet:
    """Top-``k`` conjunctions of up to ``max_predicates`` metadata levels (kind ``failure``).

    errors : (n,) bool or float >= 0 (NaN: unknown, left out of the search). ``rank_by``:
    ``"lower_bound"`` (default; the corrected Wilson lower bound on the error rate, only
    :func:`~explorer.compute.slices.significant` slices) or ``"score"`` (Sliceline's score, only
    positive scores, as in the paper). ``n_tried`` in the table counts every evaluated
    slice with ``min_support`` rows; the statistics are corrected for it.
    """
    _check_options(rank_by, max_predicates)
    e_all, _ = check_errors(errors, len(table))
    known = ~np.isnan(e_all)
    pred = encode_predicates(table, columns, quantile_bins=quantile_bins)
    e = e_all[known]
    p0 = float(e.mean()) if e.size else 0.0
    if p0 <= 0.0 or not pred.columns:
        return make_slices(
            [], [], kind="failure", errors=errors, alpha=alpha, confidence=confidence
        )
    known_pred = Predicates(pred.columns, pred.codes[known], pred.levels)
    n_known = int(known.sum())

    def objective(rate: NDArray[np.float64], size: NDArray[np.float64]) -> NDArray[np.float64]:
        if rank_by == "score":
            return sliceline_score(rate, size, p0, n_known, alpha)
        # The search corrects for the slices tried so far (fewer than in the end): a
        # smaller z, looser bounds, so it errs towards searching more; the table's final
        # statistics use the final count.
        return wilson_lower(rate, size, corrected_z(confidence, max(lat.tried, 1)))

    floor = 0.0 if rank_by == "score" else p0
    lat = _Lattice(known_pred, e, objective, floor, min_support, max(k, 1) * 2)
    _search(lat, max_predicates)
    names, parts = _candidates(lat, pred, 2 * max(k, 1), by_rate=rank_by == "lower_bound")
    found = make_slices(
        names,
        parts,
        kind="failure",
        errors=errors,
        n_tried=lat.tried,
        alpha=alpha,
        confidence=confidence,
    )
    return _best(found, rank_by, confidence, k)


def _check_options(rank_by: str, max_predicates: int) -> None:
    if rank_by not in ("lower_bound", "score"):
        msg = f"rank_by {rank_by!r} is not 'lower_bound' or 'score'"
        raise ConfigError(msg)
    if not 1 <= max_predicates <= 4:
        msg = f"max_predicates = {max_predicates} is out of range [1, 4]"
        raise ConfigError(msg)


def _best(found: SliceSet, rank_by: str, confidence: float, k: int) -> SliceSet:
    """The best ``k`` slices by ``rank_by`` (then lift, then size) that qualify: significant
    for the lower bound, a positive score for Sliceline's score."""
    t = found.table
    value = t[rank_by].to_numpy()
    good = significant(t, confidence) if rank_by == "lower_bound" else (t["score"] > 0.0).to_numpy()
    keep = np.flatnonzero(good)
    by = np.lexsort((-t["size"].to_numpy()[keep], -t["lift"].to_numpy()[keep], -value[keep]))
    return found.take(keep[by][:k])


def _candidates(
    lat: _Lattice, pred: Predicates, limit: int, *, by_rate: bool
) -> tuple[list[str], list[NDArray[np.int64]]]:
    """Names and members (over all rows) of the best ``limit`` pooled cells.

    Cells that add a predicate explaining nothing are dropped first (``_non_redundant``;
    ``by_rate`` for lower-bound ranking).
    """
    values = np.concatenate([f[0] for f in lat.found]) if lat.found else np.zeros(0)
    rates = np.concatenate([f[3] for f in lat.found]) if lat.found else np.zeros(0)
    cells = [_decode(lat, combo, int(key)) for _, combo, keys, _ in lat.found for key in keys]
    bar = rates if by_rate else values
    rows = np.flatnonzero(_non_redundant(values, bar, [frozenset(c) for c in cells]))
    rows = rows[np.argsort(-values[rows], kind="stable")][:limit]
    names = [" & ".join(pred.levels[j][lv] for j, lv in cells[i]) for i in rows]
    parts = [
        np.flatnonzero(np.logical_and.reduce([pred.codes[:, j] == lv for j, lv in cells[i]]))
        for i in rows
    ]
    return names, parts


def _non_redundant(
    value: NDArray[np.float64], bar: NDArray[np.float64], terms: list[frozenset[tuple[int, int]]]
) -> NDArray[np.bool_]:
    """False where a parent in the pool (one predicate fewer) reaches the slice's value.

    ``bar`` is what a parent must reach: its own value (Sliceline's score), or its error
    rate (lower-bound ranking: a refinement must be credibly worse than the slice it
    refines, not merely luckier among many sub-slices).
    """
    reach = dict(zip(terms, bar, strict=True))
    keep = np.ones(len(terms), dtype=bool)
    for i, (t, v) in enumerate(zip(terms, value, strict=True)):
        if len(t) > 1 and any(reach.get(t - {x}, -np.inf) >= v for x in t):
            keep[i] = False
    return keep
