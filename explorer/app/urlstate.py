"""The view in the URL: ``?layout=umap&color_by=label&filters={...}&selection=NAME``.

``view_query(state)`` gives the query parameters of a state; ``parse_view(query, state)``
turns a (possibly hand-edited, possibly hostile) query back into parameter values,
keeping what is valid and saying what was not. ``bind_location`` keeps a session's state
and its browser URL in step. Filters are JSON: ``{"label": ["a", "b"], "size": [0, 0.5]}``
(a list of labels, or a numeric ``[low, high]``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from explorer.app.state import ExplorerState

KEYS = ("layout", "color_by", "filters", "selection")


def view_query(state: ExplorerState) -> dict[str, str]:
    """The query parameters that reproduce ``state``'s view (defaults left out)."""
    query: dict[str, str] = {}
    if state.layout:
        query["layout"] = state.layout
    query["color_by"] = state.color_by
    if state.filters:
        query["filters"] = json.dumps(_plain_filters(state.filters), separators=(",", ":"))
    if state.selection_name:
        query["selection"] = state.selection_name
    return query


def _plain_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in filters.items():
        if _is_range(value):
            out[column] = [float(value[0]), float(value[1])]
        else:
            out[column] = [str(v) for v in value]
    return out


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _first(value: Any) -> str:
    """One query value as text (Tornado gives lists of bytes)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value)


def parse_filters(text: str) -> tuple[dict[str, list[str] | tuple[float, float]], list[str]]:
    """Filters from their JSON text: (valid filters, problems)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return {}, [f"filters are not valid JSON: {text[:80]!r}"]
    if not isinstance(raw, dict):
        return {}, ["filters must be a JSON object of column -> values"]
    out: dict[str, list[str] | tuple[float, float]] = {}
    problems = []
    for column, value in raw.items():
        if _is_range(value):
            lo, hi = float(value[0]), float(value[1])
            if lo <= hi:
                out[str(column)] = (lo, hi)
                continue
        elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            out[str(column)] = [str(v) for v in value]
            continue
        problems.append(f"filter on {column!r} is not a list of labels or a [low, high] range")
    return out, problems


def parse_view(query: Mapping[str, Any], state: ExplorerState) -> tuple[dict[str, Any], list[str]]:
    """State updates from URL query parameters: (valid updates, problems).

    ``selection`` comes back as ``selection_name``; the caller loads it from the store.
    """
    updates: dict[str, Any] = {}
    problems: list[str] = []
    if "layout" in query:
        layout = _first(query["layout"])
        if layout in state.param.layout.objects:
            updates["layout"] = layout
        else:
            problems.append(f"this store has no layout {layout!r}")
    if "color_by" in query:
        color = _first(query["color_by"])
        if color in state.param.color_by.objects:
            updates["color_by"] = color
        else:
            problems.append(f"cannot colour by {color!r}: no such column or score")
    if "filters" in query:
        filters, bad = parse_filters(_first(query["filters"]))
        problems += bad
        if filters:
            updates["filters"] = filters
    if "selection" in query and _first(query["selection"]):
        updates["selection_name"] = _first(query["selection"])
    return updates, problems


def query_string(query: Mapping[str, str]) -> str:
    """``?a=1&b=2`` (or '' for no parameters)."""
    return "?" + urllib.parse.urlencode(query) if query else ""


def bind_location(
    state: ExplorerState,
    location: Any,
    *,
    on_problem: Callable[[str], None] | None = None,
    load_selection: Callable[[str], None] | None = None,
) -> None:
    """Apply ``location``'s query to ``state`` now, then mirror ``state`` into its URL.

    location : a ``panel.io.location.Location`` (anything with a writable ``search``).
    Invalid parts of the query are skipped and reported through ``on_problem``; a saved
    selection's name is handed to ``load_selection``.
    """
    # Our own parsing: Panel's query_params turns "123" into an int and drops empty values.
    query = urllib.parse.parse_qs((location.search or "").lstrip("?"), keep_blank_values=True)
    updates, problems = parse_view(query, state)
    name = updates.pop("selection_name", None)
    filters = updates.pop("filters", None)
    state.param.update(**updates)
    if filters:
        try:
            state.filters = filters
        except Exception as exc:  # noqa: BLE001 - a bad link must not break the app
            problems.append(f"filters not applied: {exc}")
            state.filters = {}
    if name and load_selection is not None:
        load_selection(name)
    for problem in problems:
        if on_problem is not None:
            on_problem(problem)

    def mirror(*_: Any) -> None:
        search = query_string(view_query(state))
        if location.search != search:
            location.search = search

    # Only on changes: the browser reports its own URL when the page opens, after this runs.
    state.param.watch(mirror, ["layout", "color_by", "filters", "selection_name"])
