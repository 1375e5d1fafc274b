"""Write a big synthetic partitioned store for the scale benchmarks, and time it.

    python benchmarks/make_scale_store.py --n 1e8 --out /data/scale-1e8.store

N points in ten Gaussian blobs (layout ``umap``), a 10-category ``label``, a float32
``value`` and a score ``trust:umap``, partitioned by the layout
(``explorer.datasets.synth.write_scale_store``). Streams in chunks: peak memory is a few
bytes a point plus one chunk. Prints a table: seconds and size per stage, peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

from explorer.datasets.synth import write_scale_store
from explorer.store.reader import Store


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, required=True, help="points, e.g. 1e8")
    parser.add_argument("--out", type=Path, required=True, help="the store directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=float, default=1e6, help="points per chunk (1e6)")
    parser.add_argument("--rows-per-part", type=float, help="default: n/16 within [250k, 2M]")
    args = parser.parse_args()
    n = int(args.n)
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def on_stage(name: str, s: float) -> None:
        seconds[name] = s
        peaks[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    t0 = time.perf_counter()
    write_scale_store(
        args.out,
        n,
        seed=args.seed,
        chunk=int(args.chunk),
        rows_per_part=int(args.rows_per_part) if args.rows_per_part else None,
        on_stage=on_stage,
    )
    total = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t1 = time.perf_counter()
    store = Store(args.out)
    open_ms = (time.perf_counter() - t1) * 1000
    parts = store.partitions("umap")
    print(f"$ python {' '.join(sys.argv)}")
    print(f"{n:,} points -> {args.out}")
    print("| stage | seconds | size | peak RSS so far |\n|---|---|---|---|")
    for name, s in seconds.items():
        size = _size(args.out / name) / 2**30
        print(f"| {name} | {s:.1f} | {size:.2f} GiB | {peaks[name]:.2f} GiB |")
    print(f"| total | {total:.1f} | {_size(args.out) / 2**30:.2f} GiB | {peak_gb:.2f} GiB |")
    print(
        f"peak RSS {peak_gb:.2f} GiB; {len(parts)} parts of {int(parts['rows'].min()):,}-"
        f"{int(parts['rows'].max()):,} rows; Store() opens in {open_ms:.0f} ms"
    )
    _read_figures(store, parts)


def _read_figures(store: Store, parts: Any) -> None:
    """Reading back: the whole layout, and a view inside one part (x, y, label)."""
    cols = ["x", "y", "label"]
    one = parts.iloc[len(parts) // 2]
    cx, cy = (one.x0 + one.x1) / 2, (one.y0 + one.y1) / 2
    wx, wy = (one.x1 - one.x0) / 20, (one.y1 - one.y0) / 20
    box = (cx - wx, cx + wx, cy - wy, cy + wy)
    for what, bounds in (("whole layout", (None,) * 4), ("a zoom inside one part", box)):
        t = time.perf_counter()
        frame = store.partition_frame("umap", cols, *bounds)
        ms = (time.perf_counter() - t) * 1000
        touched = len(store.partitions_in("umap", *bounds))
        print(
            f"partition_frame({cols}) of {what}: {touched} parts, {len(frame):,} rows, {ms:.0f} ms"
        )


if __name__ == "__main__":
    main()
