"""where_rows: a WHERE clause over points and scores gives exact rows; nothing else runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.errors import ExplorerError, QueryError
from explorer.store.query import point_query, score_identifier, where_rows
from explorer.store.reader import Store


@pytest.fixture(scope="module")
def store(tiny_store: Path) -> Store:
    return Store(tiny_store)


def test_score_identifiers() -> None:
    assert score_identifier("trust:umap") == "trust_umap"
    assert score_identifier("Outlier") == "outlier"
    assert score_identifier("lid", {"LID"}) == "score_lid"  # DuckDB ignores case
    assert score_identifier("2d-trust") == "score_2d_trust"


def test_columns_name_every_score(store: Store) -> None:
    columns = point_query(store).columns
    assert set(columns) == set(store.scores)
    assert columns["outlier"] == "outlier"
    assert columns["trust:umap"] == "trust_umap"


def test_clause_gives_the_exact_rows(store: Store) -> None:
    points = store.points
    outlier = np.asarray(store.score("outlier"))
    cut = float(np.quantile(outlier, 0.9))
    expected = np.flatnonzero((points["label"] == "a").to_numpy() & (outlier > cut))
    rows = where_rows(store, f"label = 'a' AND outlier > {cut!r}")
    assert rows.dtype == np.int64
    assert rows.tolist() == expected.tolist()
    assert where_rows(store, "__row < 3").tolist() == [0, 1, 2]
    assert where_rows(store, "pid IN ('p001', 'p599')").tolist() == [1, 599]
    trust = np.asarray(store.score("trust:umap"))
    assert where_rows(store, "trust_umap < 0.5 OR trust_umap IS NULL").tolist() == (
        np.flatnonzero(trust < 0.5).tolist()
    )
    # a trailing comment cannot swallow the wrapper's closing parenthesis
    assert where_rows(store, "__row = 7 -- )").tolist() == [7]
    assert where_rows(store, "note LIKE '%<script>%'").tolist() == list(range(0, 600, 50))


@pytest.mark.parametrize(
    ("clause", "says"),
    [
        ("nope > 1", 'column "nope" not found'),
        ("label = ", "syntax error"),
        ("label > 'a' AND", "syntax error"),
        ("", "empty"),
    ],
)
def test_bad_clause_is_one_line(store: Store, clause: str, says: str) -> None:
    with pytest.raises(QueryError, match=says) as info:
        where_rows(store, clause)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ExplorerError)


@pytest.mark.parametrize(
    "clause",
    [
        "1=1; DROP TABLE points",
        "1=1); DROP TABLE points; SELECT (1",
        "1=1) UNION SELECT __row FROM points WHERE (1=1",
        "1=1) UNION ALL SELECT 1 WHERE (1=1",
        "read_csv('/etc/passwd') IS NOT NULL",
        "EXISTS (SELECT * FROM read_csv('/etc/passwd'))",
        "__row IN (SELECT 1)",
        "__row IN (FROM read_parquet('x.parquet') SELECT 1)",
        "1=1) ORDER BY (1",
        "1=1) LIMIT (1",
        "1=1) GROUP BY __row HAVING (1=1",
        "1=1)); ATTACH 'x.db' AS y; SELECT ((1",
        "1=1); COPY points TO '/tmp/out.csv'; SELECT (1",
        "1=1); INSTALL httpfs; LOAD httpfs; SELECT (1",
        "1=1); PRAGMA version; SELECT (1",
        "1=1); SET enable_external_access = true; SELECT (1",
        "1=1); CREATE TABLE t AS SELECT 1; SELECT (1",
    ],
)
def test_anything_but_a_where_clause_is_refused(store: Store, clause: str) -> None:
    with pytest.raises(QueryError) as info:
        where_rows(store, clause)
    assert "\n" not in str(info.value)
    # the table is still there and whole
    assert len(where_rows(store, "1=1")) == store.n_points


def test_files_stay_out_of_reach_even_unparsed(store: Store) -> None:
    """The second line of defence: the connection itself refuses file access."""
    con = point_query(store)._con
    with pytest.raises(Exception, match=r"disabled by configuration|Permission"):
        con.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(Exception, match="locked"):
        con.execute("SET enable_external_access = true")


def test_a_long_clause_is_stopped() -> None:
    """A clause that takes seconds over 1M rows, with a 50 ms limit, is stopped in one line."""
    import pyarrow as pa

    from explorer.store.query import PointQuery

    words = pa.array(["alpha beta", "gamma zeta", "eta theta z"] * 333_334)
    query = PointQuery(pa.table({"text": words}))
    slow = "regexp_matches(repeat(text, 30), '(alpha|beta|gamma).*(zeta|eta).*z$')"
    with pytest.raises(QueryError, match=r"ran for more than 0\.05 s and was stopped"):
        query.rows(slow, timeout_s=0.05)
    assert query.rows("text = 'eta theta z' AND __row < 6").tolist() == [2, 5]
