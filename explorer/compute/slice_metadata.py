"""Metadata as predicates: each categorical value and numeric quantile bin, and its slices.

:func:`encode_predicates` turns a table into per-column level codes, the predicates that
:func:`metadata_slices` lists one by one and :func:`~explorer.compute.slice_search.sliceline`
combines into conjunctions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from explorer.compute.slices import MAX_LEVELS, SliceSet, make_slices
from explorer.errors import InputError


@dataclass(frozen=True)
class Predicates:
    """Metadata columns encoded as predicate levels.

    columns : names of the encoded columns, C of them
    codes : (n, C) int32, the level of each row in each column (-1: no level)
    levels : per column, the text of each level (``"colour=red"``, ``"0.5 <= age < 2"``)
    """

    columns: list[str]
    codes: NDArray[np.int32]
    levels: list[list[str]]


def _categorical_levels(col: pd.Series, cap: int) -> tuple[NDArray[np.int64], list[str]]:
    """Codes and level texts; beyond the ``cap`` most frequent values rows get -1."""
    try:
        codes, uniques = pd.factorize(col, sort=True)
    except TypeError:  # mixed types that do not sort
        codes, uniques = pd.factorize(col, sort=False)
    codes = np.asarray(codes, dtype=np.int64)
    if len(uniques) > cap:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        kept = np.sort(np.argsort(-counts, kind="stable")[:cap])
        remap = np.full(len(uniques), -1, dtype=np.int64)
        remap[kept] = np.arange(kept.size)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        uniques = uniques[kept]
    return codes, [f"{col.name}={u}" for u in uniques]


def _binned_levels(col: pd.Series, bins: int) -> tuple[NDArray[np.int64], list[str]]:
    """Quantile bins of a numeric column (ties may merge bins); NaN rows get -1."""
    v = col.to_numpy(dtype=np.float64, na_value=np.nan)
    edges = np.unique(np.nanquantile(v, np.linspace(0, 1, bins + 1)))[1:-1]
    codes = np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right"))
    name = col.name
    if edges.size == 0:
        return codes, [f"{name}={np.nanmin(v):.4g}"]
    texts = [f"{name} < {edges[0]:.4g}"]
    texts += [f"{a:.4g} <= {name} < {b:.4g}" for a, b in itertools.pairwise(edges)]
    return codes, [*texts, f"{name} >= {edges[-1]:.4g}"]


def encode_predicates(
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    quantile_bins: int = 4,
    max_levels: int = MAX_LEVELS,
) -> Predicates:
    """Encode metadata as predicate levels: each categorical value, numeric quantile bins.

    Categorical: non-numeric and bool columns, and integer columns with at most
    ``max(quantile_bins, 10)`` values; a numeric column with at most ``quantile_bins``
    distinct values keeps its values. Missing values form a level ``"<col> is missing"``.
    Without ``columns``, columns with more than ``max_levels`` categories (ids, free text)
    and constant columns are skipped; listed columns keep their ``max_levels`` most frequent.
    """
    names = [str(c) for c in table.columns] if columns is None else [str(c) for c in columns]
    missing = [c for c in names if c not in table.columns]
    if missing:
        msg = f"slice columns {missing} are not in the table: {list(table.columns)}"
        raise InputError(msg)
    kept, all_codes, all_levels = [], [], []
    for name in names:
        col = table[name].reset_index(drop=True)
        distinct = col.nunique(dropna=True)
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        few = distinct <= (
            max(quantile_bins, 10) if pd.api.types.is_integer_dtype(col) else quantile_bins
        )
        if numeric and not few:
            codes, levels = _binned_levels(col, quantile_bins)
        elif columns is None and distinct > max_levels:
            continue
        else:
            codes, levels = _categorical_levels(col, max_levels)
        if col.isna().any():
            codes = np.where(col.isna().to_numpy(), len(levels), codes)
            levels = [*levels, f"{name} is missing"]
        if columns is None and len(levels) < 2:
            continue
        kept.append(name)
        all_codes.append(codes.astype(np.int32))
        all_levels.append(levels)
    codes_2d = np.stack(all_codes, axis=1) if all_codes else np.zeros((len(table), 0), np.int32)
    return Predicates(columns=kept, codes=codes_2d, levels=all_levels)


def metadata_slices(
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    errors: ArrayLike | None = None,
    quantile_bins: int = 4,
    min_size: int = 10,
    alpha: float = 0.6,
    confidence: float = 0.95,
) -> SliceSet:
    """One slice per metadata level with at least ``min_size`` rows (kind ``metadata``)."""
    pred = encode_predicates(table, columns, quantile_bins=quantile_bins)
    names: list[str] = []
    parts: list[NDArray[np.int64]] = []
    for j, levels in enumerate(pred.levels):
        codes = pred.codes[:, j]
        counts = np.bincount(codes[codes >= 0], minlength=len(levels))
        rows = np.argsort(codes, kind="stable")  # rows of each level, ascending
        bounds = np.concatenate([[0], np.cumsum(counts)]) + (codes < 0).sum()
        for level in np.flatnonzero(counts >= min_size):
            names.append(levels[level])
            parts.append(rows[bounds[level] : bounds[level + 1]].astype(np.int64))
    return make_slices(
        names, parts, kind="metadata", errors=errors, alpha=alpha, confidence=confidence
    )
