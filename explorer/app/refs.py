"""Named selections: the one way a slice, a tree node, a saved selection, a score range, a
search or a SQL condition becomes ``state.select(...)``.

A reference is text, so the URL can carry it: ``saved:NAME``, ``slice:NAME``, ``node:ID``,
``range:COLUMN:LOW:HIGH``, ``search:TEXT``, ``regex:PATTERN`` or ``where:SQL CONDITION``.
Every pane that selects by name (the treemap, the slice table, the outlier threshold, the
intrinsic-dimension brush, the saved-selection list, the search and SQL boxes) and the URL
go through ``select_ref``, so "what the link opens" and "what the click selected"
can never differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from explorer.app.state import ExplorerState
from explorer.errors import StoreError

if TYPE_CHECKING:  # resources import this module (for SQL filters): only a type here
    from explorer.app.resources import StoreResources

KINDS = ("saved", "slice", "node", "range", "search", "regex", "where")


@dataclass(frozen=True)
class Ref:
    """A parsed reference. ``value`` is a name, a node id, or ``COLUMN:LOW:HIGH``."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def node(self) -> int:
        """The node id of a ``node:`` reference."""
        return int(self.value)

    @property
    def span(self) -> tuple[str, float, float]:
        """``(column, low, high)`` of a ``range:`` reference."""
        column, lo, hi = self.value.rsplit(":", 2)
        return column, float(lo), float(hi)


def parse_ref(text: str) -> Ref:
    """A reference from its text; ValueError (saying what is wrong) when it is not one."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS or not value:
        msg = f"{text[:80]!r} is not a selection reference ({', '.join(k + ':…' for k in KINDS)})"
        raise ValueError(msg)
    ref = Ref(kind, value)
    if kind == "node" and not value.isdigit():
        msg = f"node reference {value[:40]!r} is not a node number"
        raise ValueError(msg)
    if kind == "range":
        try:
            _, lo, hi = ref.span
        except ValueError:
            msg = f"range reference {value[:80]!r} is not COLUMN:LOW:HIGH"
            raise ValueError(msg) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            msg = f"range reference {value[:80]!r} needs finite LOW <= HIGH"
            raise ValueError(msg)
    return ref


def range_ref(column: str, lo: float, hi: float) -> str:
    """The text of a ``range:`` reference (shortest exact float text)."""
    return f"range:{column}:{float(lo)!r}:{float(hi)!r}"


def rows_of(res: StoreResources, ref: Ref) -> NDArray[np.int64]:
    """Sorted rows a reference names; an ExplorerError saying why when it names nothing."""
    if ref.kind == "node":
        if not res.hierarchy.available or not res.hierarchy.has_node(ref.node):
            msg = f"this store has no hierarchy node {ref.node}"
            raise StoreError(msg)
        return res.hierarchy.members(ref.node)
    if ref.kind == "range":
        column, lo, hi = ref.span
        if column not in res.store.scores and column not in res.names_of("numeric"):
            msg = f"cannot select a range of {column!r}: no such score or numeric column"
            raise StoreError(msg)
        return res.rows_in_range(column, lo, hi)
    if ref.kind == "slice":
        return res.slices.members(ref.value)
    if ref.kind in ("search", "regex"):
        return res.search(ref.value, regex=ref.kind == "regex")
    if ref.kind == "where":
        return where_rows(res, ref.value)
    return res.store.selection(ref.value)


def where_rows(res: StoreResources, clause: str) -> NDArray[np.int64]:
    """Rows where the SQL condition ``clause`` holds (DuckDB, read-only, one WHERE)."""
    if res.cluster is not None:  # DuckDB on the workers, over their partitions' rows
        return res.cluster.where_rows(clause)
    # DuckDB loads on the first query, not with the app (it is not needed to start).
    from explorer.store.query import point_query

    return point_query(res.store, res.table).rows(clause)


def select_ref(
    state: ExplorerState, res: StoreResources, text: str, *, origin: str, mode: str | None = None
) -> int:
    """Select what ``text`` names (combined by ``mode``); return how many rows it names.

    The selection remembers the reference (``state.selection_ref``) when it is exactly
    those rows, so a link reopens it.
    """
    ref = parse_ref(text)
    rows = np.asarray(rows_of(res, ref), dtype=np.int64)
    state.select(rows, source=origin, mode=mode, ref=str(ref))
    return int(rows.size)
