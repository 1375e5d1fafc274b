"""Text buffers give exactly Arrow's rows: hostile Unicode, nulls, empty rows, row edges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from explorer.store import search, search_buffer
from explorer.store.search import FOLDS_TO_ASCII, TextBuffer, search_rows, text_buffer

# Pieces that fold, change length when lower-cased, or decompose: KELVIN SIGN, LONG S,
# sharp s, dotted/dotless i, final sigma, a combining accent, CJK, NUL, emoji.
PIECES = [
    "k", "K", "\u212a", "s", "S", "\u017f", "ß", "ẞ", "ss", "İ", "ı", "i", "I", "é", "É",
    "e\u0301", "Σ", "σ", "ς", "日本", "\x00", " ", "a", "b", "A", "B", "ab", "Ǆ", "ǅ", "ǆ",
    "😀", "Ω", "\u2126", "µ", "μ",
]  # fmt: skip
QUERIES = [
    "k", "K", "s", "S", "sk", "KS", "ab", "ba", "bA", "é", "É", "e\u0301", "ß", "ẞ", "ss",
    "σ", "Σ", "ς", "日", "本日", "\x00", " ", "a b", "İ", "i", "ı", "ǆ", "ǅ", "😀", "Ω",
    "\u2126", "µ", "μ", "ab \u212a", "sé", "zz", "a", "abab",
]  # fmt: skip


def hostile_table(n: int, seed: int = 0) -> pa.Table:
    """``n`` rows of 0-5 pieces, some null or empty, over chunks of uneven sizes (one empty,
    one a slice), so rows end everywhere inside the buffer's 8-byte words."""
    rng = np.random.default_rng(seed)
    texts: list[str | None] = []
    for _ in range(n):
        k = int(rng.integers(0, 6))
        texts.append(None if rng.random() < 0.05 else "".join(rng.choice(PIECES, k)))
    cut = sorted(rng.integers(0, n, 3).tolist())
    whole = pa.array(texts, pa.string())
    chunks = [whole[: cut[0]], pa.array([], pa.string()), whole[cut[0] : cut[1]]]
    chunks += [pa.concat_arrays([pa.array(["pad"]), whole[cut[1] :]]).slice(1)]
    return pa.table({"t": pa.chunked_array(chunks, pa.string())})


def both(table: pa.Table, query: str, buffer: TextBuffer | None) -> tuple[list[int], list[int]]:
    """(rows by the buffer, rows by Arrow alone)."""
    fast = search_rows(table, query, columns=["t"], buffers=lambda _: buffer)
    slow = search_rows(table, query, columns=["t"])
    assert fast.count == fast.rows.size
    return fast.rows.tolist(), slow.rows.tolist()


def test_arrow_folds_ascii_letters_as_the_buffer_assumes() -> None:
    """An ASCII letter matches only itself in either case, plus KELVIN SIGN for k and
    LONG S for s: over every code point below U+1F000 (all cased letters are there)."""
    points = [c for c in range(0x1F000) if not 0xD800 <= c <= 0xDFFF]
    every = pa.array([chr(c) for c in points])
    codes = np.array(points)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        found = pc.match_substring(every, letter.upper(), ignore_case=True)
        matched = set(codes[found.to_numpy(zero_copy_only=False)].tolist())
        extra = {ord(FOLDS_TO_ASCII[letter])} if letter in FOLDS_TO_ASCII else set()
        assert matched == {ord(letter), ord(letter.upper()), *extra}, letter


@pytest.mark.parametrize("pair_share_max", [0.0, 1.0])  # byte-at-a-time, word-at-a-time
def test_hostile_text_gives_arrows_rows(
    monkeypatch: pytest.MonkeyPatch, pair_share_max: float
) -> None:
    monkeypatch.setattr(search_buffer, "PAIR_SHARE_MAX", pair_share_max)
    monkeypatch.setattr(search_buffer, "TASK_ROWS", 97)  # many tasks: rows split between threads
    table = hostile_table(3000)
    buffer = text_buffer(table.column("t"))
    assert buffer is not None
    assert buffer.n_rows == table.num_rows
    assert buffer.special.size > 0  # rows with KELVIN SIGN or LONG S, checked by Arrow
    for query in QUERIES:
        fast, slow = both(table, query, buffer)
        assert fast == slow, query
        fast3 = search_rows(table, query, columns=["t"], workers=3, buffers=lambda _: buffer)
        assert fast3.rows.tolist() == slow, query


def test_matches_never_span_rows() -> None:
    table = pa.table({"t": ["xa", "bx", "", "a", "b", None, "AB", "k", "\u212a"]})
    buffer = text_buffer(table.column("t"))
    assert both(table, "ab", buffer) == ([6], [6])  # "xa" + "bx" and "a" + "b" do not count
    assert both(table, "ak", buffer)[0] == []
    assert both(table, "k", buffer)[0] == [7, 8]  # KELVIN SIGN folds to k, as in Arrow
    assert both(table, "", buffer)[0] == []


def test_random_ascii_rows_and_queries_match_arrow() -> None:
    """Many short rows (every row edge inside a word) and random queries, both kernels."""
    rng = np.random.default_rng(7)
    letters = np.array(list("abAB ks"))
    texts = ["".join(rng.choice(letters, int(rng.integers(0, 12)))) for _ in range(4000)]
    table = pa.table({"t": texts})
    buffer = text_buffer(table.column("t"))
    for _ in range(60):
        query = "".join(rng.choice(letters, int(rng.integers(1, 5))))
        fast, slow = both(table, query, buffer)
        assert fast == slow, query


def test_the_buffer_is_used_for_plain_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table(
        {"t": ["café au lait", "Café", None, "CAFÉ", "Kelvin \u212a 日本"] + ["tea"] * 50}
    )
    buffer = text_buffer(table.column("t"))

    def no_arrow(*args: object, **kw: object) -> None:
        raise AssertionError("Arrow matched the whole column")

    expected = {q: both(table, q, buffer)[1] for q in ("AFÉ", "k", "日本", "é au")}
    assert expected == {"AFÉ": [0, 1, 3], "k": [4], "日本": [4], "é au": [0]}
    monkeypatch.setattr(search, "match_columns", no_arrow)
    for query, rows in expected.items():  # non-ASCII (by its ASCII run), ASCII, no case
        got = search_rows(table, query, columns=["t"], buffers=lambda _: buffer)
        assert got.rows.tolist() == rows, query


def test_numbers_dictionaries_and_regex_keep_their_rows() -> None:
    table = pa.table(
        {
            "score": [0.5, 1.5, None, 5.5],
            "tag": pa.array(["fox", "sea", None, "Fox"]).dictionary_encode(),
            "t": ["Red Fox", "x", None, "fox-trot"],
        }
    )
    buffers = {name: text_buffer(table.column(name), name) for name in table.column_names}
    assert buffers["tag"] is None  # matched on its distinct values by Arrow
    cases = [("5.5", ["score"], False), ("fox", ["tag", "t"], False), ("^fox", ["t"], True)]
    for query, columns, regex in cases:
        fast = search_rows(table, query, columns=columns, regex=regex, buffers=buffers.get)
        slow = search_rows(table, query, columns=columns, regex=regex)
        assert fast.rows.tolist() == slow.rows.tolist(), query
    assert search_rows(table, "5.5", columns=["score"], buffers=buffers.get).rows.tolist() == [3]


def test_empty_and_all_null_columns() -> None:
    for values in ([], [None, None], ["", ""]):
        table = pa.table({"t": pa.array(values, pa.string())})
        buffer = text_buffer(table.column("t"))
        assert buffer is not None
        assert both(table, "a", buffer) == ([], [])


def test_dictionary_columns_with_nulls_and_no_match() -> None:
    values = ["Fox", None, "sea", "fox", None, "ICE"] * 3
    tag = pa.chunked_array(
        [pa.array(values[:7]).dictionary_encode(), pa.array(values[7:]).dictionary_encode()]
    )
    table = pa.table({"tag": tag})
    expected = [i for i, v in enumerate(values) if v is not None and "fox" in v.lower()]
    assert search_rows(table, "FOX", columns=["tag"]).rows.tolist() == expected
    assert search_rows(table, "zzz", columns=["tag"]).count == 0
    empty = pa.table({"tag": pa.array([None, None], pa.string()).dictionary_encode()})
    assert search_rows(empty, "a", columns=["tag"]).count == 0
