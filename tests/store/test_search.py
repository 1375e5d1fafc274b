"""search_rows: substring and regex over text columns, ids, limits, errors; exact rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from explorer.errors import ExplorerError, QueryError
from explorer.store import search_arrow
from explorer.store.search import search_rows

TABLE = pa.table(
    {
        "id": pa.array([10, 11, 12, 13, 14, 15], pa.int64()),
        "title": ["Red Fox", "blue whale", None, "Arctic FOX", "fox-trot", "cat"],
        "tag": pa.array(["fox", "sea", "sea", "ice", "dance", "fox"]).dictionary_encode(),
        "score": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
    }
)


def rows_of(query: str, **kw: object) -> list[int]:
    kw.setdefault("columns", ["title"])
    return search_rows(TABLE, query, **kw).rows.tolist()  # type: ignore[arg-type]


def test_substring_ignores_case_and_skips_nulls() -> None:
    assert rows_of("fox") == [0, 3, 4]
    assert rows_of("FOX") == [0, 3, 4]
    assert rows_of("whale") == [1]
    assert rows_of("nothing") == []
    assert rows_of("") == []


def test_regex_is_searched_not_anchored_and_ignores_case() -> None:
    assert rows_of("^fox", regex=True) == [4]
    assert rows_of("fox$", regex=True) == [0, 3]
    assert rows_of("r.d|wh", regex=True) == [0, 1]
    assert rows_of("^fox") == []  # a plain search takes ^ literally


def test_several_columns_dictionary_and_numbers() -> None:
    assert rows_of("fox", columns=["title", "tag"]) == [0, 3, 4, 5]
    assert rows_of("sea", columns=["tag"]) == [1, 2]
    assert rows_of("5.5", columns=["score"]) == [5]  # numbers are searched as text


def test_exact_id_match_adds_to_text_hits() -> None:
    assert rows_of("13", id_column="id") == [3]
    assert rows_of("1", id_column="id") == []  # ids match whole, not as substrings
    assert rows_of("fox", id_column="id") == [0, 3, 4]  # not a number: no id hit
    named = pa.table({"pid": ["a1", "a10", "b1"], "text": ["x", "a1 y", "z"]})
    result = search_rows(named, "a1", columns=["text"], id_column="pid")
    assert result.rows.tolist() == [0, 1]


def test_limit_caps_rows_not_count() -> None:
    result = search_rows(TABLE, "fox", columns=["title"], limit=2)
    assert result.rows.tolist() == [0, 3]
    assert result.count == 3
    assert result.truncated
    assert result.rows.dtype == np.int64


def test_bad_regex_and_unknown_column_are_one_line_errors() -> None:
    with pytest.raises(QueryError, match="bad regular expression") as info:
        search_rows(TABLE, "fox(", columns=["title"], regex=True)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ExplorerError)
    with pytest.raises(QueryError, match="no column 'nope'"):
        search_rows(TABLE, "x", columns=["nope"])


def test_many_chunks_and_slices_match_a_plain_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_arrow, "SLICE_ROWS", 7)  # many slices on the thread pool
    rng = np.random.default_rng(3)
    words = np.array(["apple", "Banana", "cherry", "date", "élan", "ÉLAN"])
    texts = [" ".join(rng.choice(words, 2)) for _ in range(200)]
    table = pa.table({"t": pa.chunked_array([texts[:50], texts[50:131], texts[131:]])})
    for query in ["banana", "élan", "an"]:
        expected = [i for i, t in enumerate(texts) if query.casefold() in t.casefold()]
        assert search_rows(table, query, columns=["t"]).rows.tolist() == expected
        assert search_rows(table, query, columns=["t"], workers=1).rows.tolist() == expected
    assert search_rows(table, "x", columns=[]).count == 0  # no columns, no id: nothing
