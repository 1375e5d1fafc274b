"""Find on the cluster (``explorer.app.cluster``): text search, SQL conditions and id
lookups run on the workers, each over its partitions' rows of the point table with the
in-process kernels (``explorer.store.search``, DuckDB through ``explorer.store.query``), and
send back row ids. The web process never loads the point table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.app import cluster_queries as queries
from explorer.app.cluster_view import ClusterView


class ClusterFind(ClusterView):
    """Search, SQL and ids over the point table, partition by partition on the workers."""

    def search(
        self, query: str, *, columns: Sequence[str], regex: bool = False,
        id_column: str | None = None,
    ) -> NDArray[np.int64]:  # fmt: skip
        """Sorted rows where any of ``columns`` contains ``query`` (``search_rows``'s rules;
        a bad pattern or column raises its QueryError)."""
        if not query:
            return np.zeros(0, np.int64)
        found = self._per_part(
            queries.search_part, self._path, query, tuple(columns), regex, id_column
        )
        return _sorted(r for r, _ in found)

    def where_rows(self, clause: str) -> NDArray[np.int64]:
        """Sorted rows where the SQL ``clause`` holds (``PointQuery``'s rules, per partition)."""
        found = self._per_part(queries.where_part, self._path, clause)
        return _sorted(found)

    def rows_of_ids(self, column: str, ids: Sequence[Any]) -> NDArray[np.int64]:
        """The row of each of ``ids`` in ``column`` (in their order; -1 when absent; the
        first row of an id that repeats)."""
        wanted = list(dict.fromkeys(ids))
        found = self._per_part(queries.rows_of_ids, self._path, column, wanted)
        first: dict[Any, int] = {}
        for rows, values in found:
            for row, value in zip(rows.tolist(), values, strict=True):
                first[value] = min(first.get(value, row), row)
        return np.array([first.get(v, -1) for v in ids], np.int64)


def _sorted(parts: Any) -> NDArray[np.int64]:
    arrays = [np.asarray(p, np.int64) for p in parts]
    return np.sort(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)
