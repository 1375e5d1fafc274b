"""The one shared, mutable state of a browser session; panes talk only through it.

``ExplorerState`` imports only ``param`` and ``numpy`` (and ``explorer.app.masks``): it
knows point counts, names and index arrays, never the store. What needs the store (turning
``filters`` into a mask) is injected as the ``mask_for`` callable, so the state stays
testable without one. A mask is an (n,) bool array, or with the points on a Dask cluster a
``RemoteMask`` that keeps its flags there and answers only what the state asks.

Selections are sorted unique int64 row indices. They change only through ``select``,
``clear_selection`` and ``invert_selection``, which normalise them, respect the filter
mask and set ``selection``, ``selection_source`` and ``selection_ref`` together.

``LINKED`` marks the parameters a shared link reproduces; ``explorer.app.urlstate`` turns
exactly those into URL keys, so a new linked parameter is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import param
from numpy.typing import ArrayLike, NDArray

from explorer.app.masks import Mask, RemoteMask, count_kept, kept_among

SELECT_MODES = ("replace", "add", "subtract")

# A filter is a list of allowed category labels, or a (low, high) numeric range.
FilterValue = list[str] | tuple[float, float]
MaskFn = Callable[[Mapping[str, Any]], Mask | None]

_EMPTY = np.zeros(0, np.int64)


def _as_rows(indices: ArrayLike, n_points: int) -> NDArray[np.int64]:
    """Sorted unique int64 rows; raise ValueError for rows outside ``[0, n_points)``."""
    rows = np.array(indices, dtype=np.int64).ravel()  # a copy: the selection is read-only
    # Hit-tests already give sorted unique rows: checking is cheap, np.unique is not
    # (1.2 s for 2M rows with numpy 2's hash-based unique, measured).
    if rows.size > 1 and not bool(np.all(rows[1:] > rows[:-1])):
        rows = np.sort(rows)
        keep = np.empty(rows.size, bool)
        keep[0] = True
        np.not_equal(rows[1:], rows[:-1], out=keep[1:])
        rows = rows[keep]
    if rows.size and (rows[0] < 0 or rows[-1] >= n_points):
        msg = f"selection holds rows outside 0..{n_points - 1}; it belongs to another store"
        raise ValueError(msg)
    return rows


def _combined(
    selection: NDArray[np.int64], rows: NDArray[np.int64], n_points: int, *, add: bool
) -> NDArray[np.int64]:
    """``selection`` with ``rows`` added (or taken away), both sorted unique.

    A flag per point beats union1d / setdiff1d (which sort) by far at millions; when the
    rows are few beside the points (a billion on a cluster), merging the two sorted runs
    costs less time and memory than n flags.
    """
    if 8 * (selection.size + rows.size) >= n_points:
        flags = np.zeros(n_points, bool)
        flags[selection] = True
        flags[rows] = add
        return np.flatnonzero(flags).astype(np.int64)
    if not add:
        out: NDArray[np.int64] = selection[~_in_sorted(selection, rows)]
        return out
    both = np.concatenate([selection, rows])
    both.sort(kind="stable")  # two sorted runs: one merge
    keep = np.ones(both.size, bool)
    np.not_equal(both[1:], both[:-1], out=keep[1:])
    merged: NDArray[np.int64] = both[keep]
    return merged


def _in_sorted(rows: NDArray[np.int64], sorted_rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    if sorted_rows.size == 0:
        return np.zeros(rows.size, bool)
    pos = np.minimum(np.searchsorted(sorted_rows, rows), sorted_rows.size - 1)
    hit: NDArray[np.bool_] = sorted_rows[pos] == rows
    return hit


class ExplorerState(param.Parameterized):
    """Layout, colour, filters, selection and the focused points of one session.

    selection : (m,) int64 sorted unique row indices (always inside ``mask``).
    mask : (n,) bool of the points the filters keep (a ``RemoteMask`` on a cluster), or
        None when nothing is filtered.
    """

    n_points = param.Integer(default=0, bounds=(0, None), constant=True, doc="points in the store")
    layout: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=True, doc="the 2-D layout drawn"
    )
    color_by: param.Selector[str] = param.Selector(
        default="", objects=[""], doc="column or score to colour by; '' = point density"
    )
    split = param.Boolean(default=False, doc="show a second map beside the first")
    layout2: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, doc="the second map's layout"
    )
    color_by2: param.Selector[str] = param.Selector(
        default="", objects=[""], doc="the second map's colour ('' = point density)"
    )
    filters = param.Dict(default={}, doc="column -> allowed labels (list) or (low, high) range")
    mask = param.ClassSelector(
        class_=(np.ndarray, RemoteMask), default=None, allow_None=True,
        doc="(n,) bool from filters (a RemoteMask on a cluster), or None",
    )  # fmt: skip
    mask_for = param.Callable(default=None, allow_None=True, constant=True, doc="filters -> mask")
    selection = param.Array(default=_EMPTY, doc="(m,) int64 sorted unique row indices")
    selection_source = param.String(default="", doc="who set the selection (stops feedback loops)")
    selection_ref = param.String(
        default="",
        doc="what the selection is, while it is unchanged: 'saved:NAME', 'slice:NAME', "
        "'node:ID' or 'range:COLUMN:LOW:HIGH' (see explorer.app.refs); '' otherwise",
    )
    select_mode: param.Selector[str] = param.Selector(default="replace", objects=list(SELECT_MODES))
    hovered = param.Integer(default=None, allow_None=True, doc="row under the cursor")
    pinned = param.Integer(default=None, allow_None=True, doc="row clicked on the map")
    focus_node = param.Integer(default=None, allow_None=True, doc="treemap's focused node")
    centre = param.Integer(default=None, allow_None=True, doc="row the map was asked to centre on")
    show_labels = param.Boolean(default=True, doc="draw cluster names on the map")
    flag_low_trust = param.Boolean(default=False, doc="highlight points the layout misplaces")
    trust_threshold = param.Number(
        default=0.3,
        bounds=(0.0, 1.0),
        doc="a point is low-trust below this share of kept neighbours",
    )

    # The parameters a shared link carries (``explorer.app.urlstate`` encodes each by type).
    LINKED: ClassVar[tuple[str, ...]] = (
        "layout", "color_by", "filters", "selection_ref", "focus_node", "show_labels",
        "flag_low_trust", "trust_threshold", "split", "layout2", "color_by2",
    )  # fmt: skip
    # Linked parameters that only matter while another one is on (left out of links then).
    LINKED_WHEN: ClassVar[dict[str, str]] = {"layout2": "split", "color_by2": "split"}

    def __init__(
        self,
        *,
        layouts: list[str] | None = None,
        color_options: list[str] | None = None,
        **params: Any,
    ) -> None:
        # The choices must exist before values are checked against them.
        chosen = {k: params.pop(k) for k in ("layout", "color_by", "layout2", "color_by2")
                  if k in params}  # fmt: skip
        super().__init__(**params)  # type: ignore[no-untyped-call]
        colors = ["", *[c for c in (color_options or []) if c]]
        for name in ("layout", "layout2"):
            self.param[name].objects = list(layouts or [])
        for name in ("color_by", "color_by2"):
            self.param[name].objects = colors
        if layouts and chosen.get("layout") is None:
            chosen["layout"] = layouts[0]
        if layouts and chosen.get("layout2") is None:
            # A second layout when there is one; else the same layout, to colour differently.
            chosen["layout2"] = layouts[1] if len(layouts) > 1 else layouts[0]
        self.param.update(**chosen)
        if self.filters:
            self._apply_filters()

    # -- derived -------------------------------------------------------------------
    @property
    def n_selected(self) -> int:
        """Number of selected points."""
        return int(self.selection.size)

    @property
    def n_selectable(self) -> int:
        """Number of points the filters keep (all of them when nothing is filtered)."""
        return self.n_points if self.mask is None else count_kept(self.mask)

    def selected_mask(self) -> NDArray[np.bool_]:
        """(n,) bool, True for selected rows."""
        out: NDArray[np.bool_] = np.zeros(self.n_points, bool)
        out[self.selection] = True
        return out

    # -- selection -----------------------------------------------------------------
    def select(
        self,
        indices: ArrayLike,
        source: str = "",
        *,
        mode: str | None = None,
        ref: str = "",
    ) -> None:
        """Combine ``indices`` with the selection by ``mode`` (default: ``select_mode``).

        Rows the filters hide are dropped. ``ref`` says what was selected (a slice, a node,
        a saved selection, a score range: for the URL) when the result is exactly that; a
        combined selection, and any later change, forgets it.
        """
        mode = mode or self.select_mode
        if mode not in SELECT_MODES:
            msg = f"selection mode {mode!r} is not one of {', '.join(SELECT_MODES)}"
            raise ValueError(msg)
        rows = self._visible(_as_rows(indices, self.n_points))
        if mode != "replace":
            rows = _combined(self.selection, rows, self.n_points, add=mode == "add")
            ref = ""
        self._set_selection(rows, source, ref)

    def clear_selection(self, source: str = "") -> None:
        """Select nothing."""
        self._set_selection(_EMPTY.copy(), source, "")

    def invert_selection(self, source: str = "") -> None:
        """Select every point the filters keep that is not selected now."""
        if isinstance(self.mask, RemoteMask):  # the flags stay where they are
            self._set_selection(self.mask.kept_except(self.selection), source, "")
            return
        keep = np.ones(self.n_points, bool) if self.mask is None else self.mask.copy()
        keep[self.selection] = False
        self._set_selection(np.flatnonzero(keep).astype(np.int64), source, "")

    def _visible(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        if self.mask is None or rows.size == 0:
            return rows
        kept: NDArray[np.int64] = rows[kept_among(self.mask, rows)]
        return kept

    def _set_selection(self, rows: NDArray[np.int64], source: str, ref: str) -> None:
        rows.setflags(write=False)  # shared with panes and renders: never edit in place
        self.param.update(selection=rows, selection_source=source, selection_ref=ref)

    def pin(self, row: int, *, centre: bool = False) -> None:
        """Pin point ``row`` (its card and neighbours show); ``centre`` moves the map to it."""
        self.pinned = int(row)
        if centre:
            if self.centre == row:
                self.param.trigger("centre")
            else:
                self.centre = int(row)

    # -- filters -------------------------------------------------------------------
    @param.depends("filters", watch=True)
    def _apply_filters(self) -> None:
        """Recompute ``mask``; drop hidden rows from the selection and the focused points."""
        mask = self.mask_for(self.filters) if self.mask_for is not None else None
        if isinstance(mask, RemoteMask):
            if mask.n_points != self.n_points:
                msg = f"mask_for returned a mask of {mask.n_points} points, not {self.n_points}"
                raise ValueError(msg)
        elif mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.n_points,):
                msg = f"mask_for returned shape {mask.shape}, expected ({self.n_points},)"
                raise ValueError(msg)
        updates: dict[str, Any] = {"mask": mask}
        if mask is not None:
            kept = self.selection[kept_among(mask, self.selection)]
            if kept.size != self.selection.size:
                kept.setflags(write=False)
                updates.update(selection=kept, selection_source="filters", selection_ref="")
            focused = {f: getattr(self, f) for f in ("hovered", "pinned")}
            rows = np.unique(np.array([r for r in focused.values() if r is not None], np.int64))
            hidden = set(rows[~kept_among(mask, rows)].tolist()) if rows.size else set()
            for focus, row in focused.items():
                if row is not None and row in hidden:
                    updates[focus] = None
        self.param.update(**updates)

    def set_filter(self, column: str, value: FilterValue | None) -> None:
        """Set (or with None remove) one column's filter."""
        filters = dict(self.filters)
        if value is None:
            filters.pop(column, None)
        else:
            filters[column] = value
        self.filters = filters

    def view(self) -> dict[str, Any]:
        """What a shared link reproduces: the values of the ``LINKED`` parameters."""
        return {name: getattr(self, name) for name in self.LINKED}
