"""The view in the URL: ``?layout=umap&color_by=label&filters={...}&slice=NAME``.

The keys are the state's parameters marked for the link (``ExplorerState.LINKED``), each
encoded by its kind: selectors and strings as text, numbers and node ids as numbers,
switches as 1/0, filters as JSON (``{"label": ["a", "b"], "size": [0, 0.5]}``: a list of
labels, or a numeric ``[low, high]``). The selection's reference is spelled by its kind:
``?slice=NAME``, ``?node=12``, ``?selection=NAME`` (a saved selection) or
``?range=COLUMN:LOW:HIGH``.

``view_query(state)`` gives the query of a state; ``parse_view(query, state)`` turns a
(possibly hand-edited, possibly hostile) query back into parameter values, keeping what is
valid and saying what was not. ``bind_location`` keeps a session's state and its browser
URL in step.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import param

from explorer.app.refs import parse_ref
from explorer.app.state import ExplorerState

SELECTION_PARAM = "selection_ref"
# The URL key of each kind of selection reference ("saved" keeps the older "selection").
REF_KEYS = {
    "saved": "selection", "slice": "slice", "node": "node", "range": "range",
    "search": "search", "regex": "regex", "where": "where",
}  # fmt: skip


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


def _encode(p: param.Parameter[Any], value: Any) -> str | None:
    """A parameter value as URL text (None: leave the key out)."""
    if value is None:
        return None
    if isinstance(p, param.Dict):
        return json.dumps(_plain_filters(value), separators=(",", ":")) if value else None
    if isinstance(p, param.Boolean):
        return "1" if value else "0"
    return str(value)


def view_query(state: ExplorerState) -> dict[str, str]:
    """The query parameters that reproduce ``state``'s view (defaults left out)."""
    query: dict[str, str] = {}
    for name in state.LINKED:
        p, value = state.param[name], getattr(state, name)
        if name == SELECTION_PARAM:
            if value:
                ref = parse_ref(value)
                query[REF_KEYS[ref.kind]] = ref.value
            continue
        if name != "color_by" and value == p.default:
            continue  # color_by always: '' (density) differs from the store's default
        if name in state.LINKED_WHEN and not getattr(state, state.LINKED_WHEN[name]):
            continue
        text = _encode(p, value)
        if text is not None:
            query[name] = text
    return query


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
        problems.append(
            f"filter on {str(column)[:80]!r} is not a list of labels or a [low, high] range"
        )
    return out, problems


def _decode(state: ExplorerState, name: str, text: str) -> tuple[Any, str | None]:
    """(value, problem) for one linked parameter's URL text."""
    p = state.param[name]
    if isinstance(p, param.Selector):
        if text in p.objects:
            return text, None
        what = "layout" if name == "layout" else "column or score to colour by"
        return None, f"this store has no {what} {text[:80]!r}"
    if isinstance(p, param.Boolean):
        if text in ("1", "0", "true", "false"):
            return text in ("1", "true"), None
        return None, f"{name} must be 1 or 0, not {text[:20]!r}"
    if isinstance(p, param.Integer):
        if text.isdigit():
            return int(text), None
        return None, f"{name} must be a whole number, not {text[:20]!r}"
    if isinstance(p, param.Number):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        lo, hi = p.bounds or (None, None)
        if math.isfinite(value) and (lo is None or value >= lo) and (hi is None or value <= hi):
            return value, None
        return None, f"{name} must be a number in {lo}..{hi}, not {text[:20]!r}"
    return text, None


def parse_view(query: Mapping[str, Any], state: ExplorerState) -> tuple[dict[str, Any], list[str]]:
    """State updates from URL query parameters: (valid updates, problems).

    The selection comes back as ``selection_ref`` text; the caller resolves it (it may
    name a slice the store does not have).
    """
    updates: dict[str, Any] = {}
    problems: list[str] = []
    for name in state.LINKED:
        if name == SELECTION_PARAM or name not in query:
            continue
        text = _first(query[name])
        if name == "filters":
            filters, bad = parse_filters(text)
            problems += bad
            if filters:
                updates["filters"] = filters
            continue
        value, problem = _decode(state, name, text)
        if problem is None:
            updates[name] = value
        else:
            problems.append(problem)
    for kind, key in REF_KEYS.items():
        if key in query and _first(query[key]):
            try:
                updates[SELECTION_PARAM] = str(parse_ref(f"{kind}:{_first(query[key])}"))
            except ValueError as exc:
                problems.append(str(exc))
    return updates, problems


def query_string(query: Mapping[str, str]) -> str:
    """``?a=1&b=2`` (or '' for no parameters)."""
    return "?" + urllib.parse.urlencode(query) if query else ""


def apply_filters(state: ExplorerState, filters: Mapping[str, Any]) -> list[str]:
    """Set the filters that apply, one at a time: a bad one never drops the good ones."""
    problems = []
    good: dict[str, Any] = {}
    for column, value in filters.items():
        try:
            state.filters = {**good, column: value}
        except Exception as exc:  # noqa: BLE001 - a bad link must not break the app
            problems.append(f"filter on {str(column)[:80]!r} not applied: {exc}")
            state.filters = dict(good)
        else:
            good[column] = value
    return problems


def bind_location(
    state: ExplorerState,
    location: Any,
    *,
    on_problem: Callable[[str], None] | None = None,
    select: Callable[[str], int] | None = None,
) -> None:
    """Apply ``location``'s query to ``state`` now, then mirror ``state`` into its URL.

    location : a ``panel.io.location.Location`` (anything with a writable ``search``).
    Invalid parts of the query are skipped and reported through ``on_problem``; the
    selection reference is handed to ``select``.
    """
    # Our own parsing: Panel's query_params turns "123" into an int and drops empty values.
    query = urllib.parse.parse_qs((location.search or "").lstrip("?"), keep_blank_values=True)
    updates, problems = parse_view(query, state)
    ref = updates.pop(SELECTION_PARAM, None)
    filters = updates.pop("filters", None)
    state.param.update(**updates)
    if filters:
        problems += apply_filters(state, filters)
    if ref and select is not None:
        try:
            select(ref)
        except Exception as exc:  # noqa: BLE001 - a bad link must not break the app
            problems.append(f"could not select {ref[:80]!r}: {exc}")
    for problem in problems:
        if on_problem is not None:
            on_problem(problem)

    def mirror(*_: Any) -> None:
        search = query_string(view_query(state))
        if location.search != search:
            location.search = search

    # Only on changes: the browser reports its own URL when the page opens, after this runs.
    state.param.watch(mirror, list(state.LINKED))
