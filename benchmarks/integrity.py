"""Integrity figures: selection reads under concurrent saves, and the cost of checking a
store's contract on open.

    python benchmarks/integrity.py STORE [--seconds 10]

STORE is any store of at least 550 points (it is copied; the copy gets the selections).
Part 1 runs three saver processes and one reader for ``--seconds`` each way: the old read
path (``np.load(mmap_mode="r")`` by name on a replaced ``.npy``) and ours
(``Store.selection``), and counts reads that are a mix of two saves. Part 2 times
``Store(path)`` with and without the contract check (median of 30).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OLD_SAVER = """
import io, os, sys, time, uuid
import numpy as np
from pathlib import Path
target, writer, until = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
i = 0
while time.time() < until:
    size = 1 + (i * 37 + writer * 101) % 500
    buf = io.BytesIO()
    np.save(buf, np.arange(size % 50, size % 50 + size))
    tmp = target.with_name(".tmp-" + uuid.uuid4().hex)
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, target)
    i += 1
"""

NEW_SAVER = """
import sys, time
import numpy as np
from pathlib import Path
from explorer.store.selections import save_selection
store, writer, until = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
i = 0
while time.time() < until:
    size = 1 + (i * 37 + writer * 101) % 500
    rows = np.arange(size % 50, size % 50 + size)
    save_selection(store, "shared", rows, int(sys.argv[4]), overwrite=True)
    i += 1
"""


def _is_one_save(rows: np.ndarray) -> bool:
    start = len(rows) % 50
    return bool(np.array_equal(rows, np.arange(start, start + len(rows))))


def concurrent_reads(store: Path, kind: str, seconds: float) -> tuple[int, int, int]:
    """(reads, spliced, errors) with three savers writing for ``seconds``."""
    import explorer
    from explorer.errors import StoreError
    from explorer.store.selections import save_selection

    opened = explorer.open_store(str(store))
    target = store / "selections" / "old-style.npy"
    target.parent.mkdir(exist_ok=True)
    if kind == "old":
        np.save(target, np.arange(1, 2))
    else:
        save_selection(store, "shared", np.arange(1, 2), opened.n_points, overwrite=True)
    until = time.time() + seconds
    code, arg = (OLD_SAVER, str(target)) if kind == "old" else (NEW_SAVER, str(store))
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", code, arg, str(w), str(until), str(opened.n_points)]
        )
        for w in range(3)
    ]
    reads = spliced = errors = 0
    while time.time() < until:
        try:
            if kind == "old":
                rows = np.asarray(np.load(target, mmap_mode="r", allow_pickle=False))
            else:
                rows = opened.selection("shared")
            spliced += not _is_one_save(rows)
        except (OSError, ValueError, EOFError, StoreError):
            errors += 1
        reads += 1
    for saver in savers:
        saver.wait()
    target.unlink(missing_ok=True)
    return reads, spliced, errors


def open_cost(store: Path) -> tuple[float, float]:
    """Median ms of ``Store(path)`` with and without the contract check."""
    from explorer.store import reader

    def median_ms() -> float:
        times = []
        for _ in range(30):
            t = time.perf_counter()
            reader.Store(store)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    reader.Store(store)
    with_check = median_ms()
    original = reader.Store._check_contract
    reader.Store._check_contract = lambda self: None  # type: ignore[method-assign]
    try:
        without = median_ms()
    finally:
        reader.Store._check_contract = original  # type: ignore[method-assign]
    return with_check, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "copy.store"
        shutil.copytree(args.store, store)
        print("| read path | seconds | reads | spliced | errors |\n|---|---|---|---|---|")
        for kind in ("old", "new"):
            reads, spliced, errors = concurrent_reads(store, kind, args.seconds)
            label = "np.load(mmap) by name" if kind == "old" else "Store.selection"
            print(f"| {label} | {args.seconds:.0f} | {reads} | {spliced} | {errors} |")
        with_check, without = open_cost(store)
        print(f"\nStore() open: {with_check:.2f} ms with the contract check, {without:.2f} without")


if __name__ == "__main__":
    main()
