"""Search and SQL filter latency over synthetic point tables (issue 12's targets).

    nice python benchmarks/query.py --sizes 1e6,1e7 --repeats 7 [--workers 1]

Search: ``search_rows`` over one column of short texts (four words from a 25-word
vocabulary, ~20 bytes a row): a common word (~15% of rows), a rare pair (~0.5%), a regex,
a word or an id, and an id alone; target p50 <= 300 ms at 10M rows. Each plain search is
timed twice: through the column's ``TextBuffer`` (what the app does; the time to build the
buffer is printed first) and by Arrow alone (the fallback, and the matcher of regexes).
SQL: ``PointQuery.rows`` for ``label = '7' AND outlier > 0.9`` over a table with a
10-value label, two float32 scores and the texts; target <= 500 ms at 10M rows. Prints one
line per case: rows, hits, p50, p90 (ms), after one warm-up run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.store.query import PointQuery  # noqa: E402
from explorer.store.search import search_rows, text_buffer  # noqa: E402

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
    "Zebra",
]


def synthetic_table(n: int, seed: int = 0) -> pa.Table:
    """``n`` rows: id, text (4 words), label ('0'..'9'), outlier and lid (float32)."""
    rng = np.random.default_rng(seed)
    vocab = pa.array(WORDS)
    parts = [vocab.take(pa.array(rng.integers(0, len(WORDS), n))) for _ in range(4)]
    text = pc.binary_join_element_wise(*parts, " ")
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "text": text,
            "label": pa.array(rng.integers(0, 10, n).astype(str)),
            "outlier": pa.array(rng.random(n, dtype=np.float32)),
            "lid": pa.array(rng.gamma(4.0, 2.0, n).astype(np.float32)),
        }
    )


def timed(fn: Callable[[], int], repeats: int) -> tuple[int, float, float]:
    """(hits, p50 ms, p90 ms) over ``repeats`` runs after one warm-up."""
    hits = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return hits, float(np.percentile(times, 50)), float(np.percentile(times, 90))


def run(n: int, repeats: int, workers: int | None) -> None:
    """Print the search and SQL timings for one table size."""
    start = time.perf_counter()
    table = synthetic_table(n)
    print(f"{n:,} rows made in {time.perf_counter() - start:.1f} s ({os.cpu_count()} cores)")
    start, cpu = time.perf_counter(), time.process_time()
    buffer = text_buffer(table.column("text"), "text")
    assert buffer is not None
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  text buffer built in {wall * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU), "
          f"{buffer.nbytes / 1e6:.0f} MB")  # fmt: skip
    searches = {
        "search 'zebra'": ("zebra", False, ["text"], None),
        "search 'omega zeta'": ("omega zeta", False, ["text"], None),
        "search 'ta' (73% of rows)": ("ta", False, ["text"], None),
        "search 'zébra' (not ASCII)": ("zébra", False, ["text"], None),
        "search regex '^alpha.*z'": ("^alpha.*z", True, ["text"], None),
        "search 'zebra' or id": ("zebra", False, ["text"], "id"),
        "id only '123456'": ("123456", False, [], "id"),
    }
    for label, (query, regex, columns, id_col) in searches.items():
        ways = [("buffer", {"text": buffer}), ("arrow", None)] if not regex else [("arrow", None)]
        for how, buffers in ways:
            hits, p50, p90 = timed(
                lambda q=query, r=regex, c=columns, i=id_col, b=buffers: (
                    search_rows(table, q, columns=c, regex=r, id_column=i, workers=workers,
                                buffers=None if b is None else b.get).count
                ),
                repeats,
            )  # fmt: skip
            print(f"  {label:<30} {how:<6} {hits:>10,} hits  p50 {p50:7.1f} ms  p90 {p90:7.1f} ms")
    start = time.perf_counter()
    query = PointQuery(table)
    print(f"  sql connection ready in {(time.perf_counter() - start) * 1000:.0f} ms")
    for clause in ["label = '7' AND outlier > 0.9", "lid > 20 OR text LIKE 'zeta%'"]:
        hits, p50, p90 = timed(lambda c=clause: len(query.rows(c)), repeats)
        print(f"  sql {clause!r:<30} {hits:>10,} hits  p50 {p50:7.1f} ms  p90 {p90:7.1f} ms")


def main() -> None:
    """Parse the sizes and run each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, help="search threads (default: one per core)")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        run(int(float(size)), args.repeats, args.workers)


if __name__ == "__main__":
    main()
