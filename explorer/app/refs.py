"""Named selections: the one way a slice, a tree node, a saved selection or a score range
becomes ``state.select(...)``.

A reference is text, so the URL can carry it: ``saved:NAME``, ``slice:NAME``, ``node:ID``
or ``range:COLUMN:LOW:HIGH``. Every pane that selects by name (the treemap, the slice
table, the outlier threshold, the intrinsic-dimension brush, the saved-selection list) and
the URL go through ``select_ref``, so "what the link opens" and "what the click selected"
can never differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from explorer.app.state import ExplorerState

KINDS = ("saved", "slice", "node", "range")


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


class RowSource(Protocol):
    """What resolves references to rows (``StoreResources``)."""

    def rows_of(self, ref: Ref) -> NDArray[np.int64]:
        """Sorted int64 rows of ``ref``; raise ExplorerError/ValueError when it does not exist."""


def select_ref(
    state: ExplorerState, source: RowSource, text: str, *, origin: str, mode: str | None = None
) -> int:
    """Select what ``text`` names (combined by ``mode``); return how many rows it names.

    The selection remembers the reference (``state.selection_ref``) when it is exactly
    those rows, so a link reopens it.
    """
    ref = parse_ref(text)
    rows = np.asarray(source.rows_of(ref), dtype=np.int64)
    state.select(rows, source=origin, mode=mode, ref=str(ref))
    return int(rows.size)
