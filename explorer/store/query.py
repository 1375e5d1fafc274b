"""SQL filters: a ``WHERE`` clause over the point table and the per-point scores, by DuckDB.

The table ``points`` holds every column of the store's point table (as written by the
``validate`` stage), one column per stored score and ``__row``, the 0-based row number.
Score names become SQL identifiers (``score_identifier``): lower case, every character
other than a letter, digit or ``_`` replaced by ``_`` (``trust:umap`` -> ``trust_umap``),
and ``score_`` in front when that name is already a point column or starts with a digit.

Only a ``WHERE`` clause over that one table may run, enforced three ways:
1. the clause is wrapped as ``SELECT __row FROM points WHERE (<clause>)`` and DuckDB's own
   parser must find exactly one plain SELECT of that shape: no second statement, no set
   operation, CTE, subquery, GROUP BY, ORDER BY or LIMIT;
2. the connection is in memory, holds only the registered Arrow table, and is locked
   down after registering it (no file or network access, no extension loading, no Python
   replacement scans; ``lock_configuration`` stops a clause from switching them back);
3. every DuckDB error comes back as a one-line QueryError, and a clause that runs longer
   than ``TIMEOUT_S`` is interrupted.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.errors import QueryError
from explorer.store.reader import Store

TABLE_NAME = "points"
ROW_COLUMN = "__row"
TIMEOUT_S = 10.0
"""A clause still running after this long is stopped: the connection serves every session."""

# Set at connect time: these cannot be changed on an open connection.
_CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "memory_limit": "2GB",
}
# Set after the table is registered (registering needs them), then locked.
_LOCKDOWN = (
    "SET enable_external_access = false",
    "SET allow_persistent_secrets = false",
    "SET lock_configuration = true",
)


def score_identifier(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """The SQL column name of score ``name`` (``trust:umap`` -> ``trust_umap``).

    ``taken`` are the point table's column names (compared without case, as DuckDB does):
    a clash, or a leading digit, puts ``score_`` in front.
    """
    ident = re.sub(r"[^0-9a-z_]", "_", name.lower())
    lowered = {t.lower() for t in taken}
    if not ident or ident[0].isdigit() or ident in lowered or ident == ROW_COLUMN:
        ident = f"score_{ident}"
    return ident


def sql_columns(store: Store, columns: list[str]) -> dict[str, str]:
    """Score name -> SQL identifier for every score in ``store``, given the point columns."""
    taken = set(columns)
    out: dict[str, str] = {}
    for name in store.scores:
        ident = score_identifier(name, taken)
        taken.add(ident)
        out[name] = ident
    return out


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _walk(node: Any) -> Any:
    """Every dict inside a parsed statement (DuckDB's JSON form), depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _refusal(select: dict[str, Any]) -> str | None:
    """Why a parsed statement is not exactly ``SELECT __row FROM points WHERE (...)``."""
    if select.get("type") != "SELECT_NODE":
        return "only a WHERE clause can run (found a set operation such as UNION)"
    source = select.get("from_table") or {}
    if source.get("type") != "BASE_TABLE" or source.get("table_name") != TABLE_NAME:
        return "only a WHERE clause over the point table can run"
    extras = (
        select.get("modifiers")
        or select.get("group_expressions")
        or select.get("group_sets")
        or select.get("having")
        or select.get("qualify")
        or select.get("sample")
        or source.get("sample")
        or (select.get("cte_map") or {}).get("map")
        or len(select.get("select_list") or []) != 1
    )
    if extras:
        return "only a WHERE clause can run (no GROUP BY, ORDER BY, LIMIT, WITH or SAMPLE)"
    for node in _walk(select.get("where_clause")):
        if node.get("class") == "SUBQUERY" or "subquery" in node:
            return "subqueries are not allowed in a filter; use the point table's columns"
    return None


class PointQuery:
    """A locked-down DuckDB connection over one store's point table and scores."""

    def __init__(self, table: pa.Table, columns: dict[str, str] | None = None) -> None:
        """``table`` is the point table with the score columns already added;
        ``columns`` maps score names to their identifiers (for the caller to show)."""
        self.columns = dict(columns or {})
        table = table.append_column(ROW_COLUMN, pa.array(np.arange(table.num_rows)))
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:", config=_CONNECT_CONFIG)
        self._con.register(TABLE_NAME, table)
        for statement in _LOCKDOWN:
            self._con.execute(statement)

    @classmethod
    def for_store(cls, store: Store, points: pa.Table | None = None) -> PointQuery:
        """Over the store's point table (``points`` when the caller holds it) and scores."""
        if points is None:
            points = pq.read_table(store.table_path("validate", "points"))
        columns = sql_columns(store, points.column_names)
        for name, ident in columns.items():
            values = np.asarray(store.score(name), dtype=np.float32)
            points = points.append_column(ident, pa.array(values))
        return cls(points, columns)

    def check(self, clause: str) -> str:
        """The full SELECT for ``clause``, or a QueryError saying why it cannot run."""
        if not clause.strip():
            msg = "the filter is empty; write a condition such as label = 'a'"
            raise QueryError(msg)
        # The newlines keep a trailing "-- comment" from swallowing the closing parenthesis.
        sql = f"SELECT {ROW_COLUMN} FROM {TABLE_NAME} WHERE (\n{clause}\n)"
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from exc
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            msg = "only one WHERE clause can run (found ';' or a second statement)"
            raise QueryError(msg)
        row = self._con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
        parsed: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
        if parsed.get("error") or len(parsed.get("statements", [])) != 1:
            msg = str(parsed.get("error_message") or "the filter could not be parsed")
            raise QueryError(_one_line(Exception(msg)))
        reason = _refusal(parsed["statements"][0]["node"])
        if reason is not None:
            raise QueryError(reason)
        return sql

    def rows(self, clause: str, *, timeout_s: float = TIMEOUT_S) -> NDArray[np.int64]:
        """Sorted int64 rows where ``clause`` is true (NULL counts as false)."""
        sql = self.check(clause)
        # An interrupt that arrives after the query ended is harmless: DuckDB clears it
        # when the next query starts.
        timer = threading.Timer(timeout_s, self._con.interrupt)
        try:
            with self._lock:  # a DuckDB connection serves one query at a time
                timer.start()
                found = self._con.execute(sql).fetchnumpy()[ROW_COLUMN]
        except duckdb.InterruptException as exc:
            msg = f"the filter ran for more than {timeout_s:g} s and was stopped; simplify it"
            raise QueryError(msg) from exc
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from exc
        finally:
            timer.cancel()
        return np.sort(np.asarray(found, dtype=np.int64))


_QUERIES: weakref.WeakKeyDictionary[Store, PointQuery] = weakref.WeakKeyDictionary()
_QUERIES_LOCK = threading.Lock()


def point_query(store: Store, points: pa.Table | None = None) -> PointQuery:
    """The store's PointQuery, made on first use and kept while the Store lives.

    ``points``: the point table as Arrow, when the caller holds it already (the app does),
    so it is not read from Parquet a second time.
    """
    with _QUERIES_LOCK:
        query = _QUERIES.get(store)
        if query is None:
            query = _QUERIES[store] = PointQuery.for_store(store, points)
        return query


def where_rows(store: Store, clause: str, *, timeout_s: float = TIMEOUT_S) -> NDArray[np.int64]:
    """Rows of ``store`` where the SQL ``clause`` holds, e.g. ``label = '7' AND outlier > 0.9``.

    Raises QueryError (one line) for a clause that does not parse, does not run, or is
    anything but a WHERE condition over the point table, or one still running after
    ``timeout_s`` seconds.
    """
    return point_query(store).rows(clause, timeout_s=timeout_s)
