"""Frames on a big partitioned store: in-process against ``--dask local:N`` (issue 11).

    nice .venv/bin/python benchmarks/scale.py --n 1e8 [--workers 2] [--repeats 10] [--tmp DIR]

A synthetic partitioned store of ``--n`` points (``explorer.datasets.synth.
write_scale_store``: one layout tiled into Parquet parts, a 10-category label, a number;
written once under ``--tmp`` and reused) is opened in two fresh processes, as
``explorer serve`` opens it: in-process (memory-mapped layout, ``PointIndex``) and with a
``LocalCluster`` of ``--workers`` (``explorer.app.process.attach_cluster``: the parts
persisted on the workers). Then the same ``--repeats`` random 800 × 600 views (full view,
25–100% of the extent, and 1% of its area), density and categorical frames, p50 / p95.

For the cluster, each frame's time is split with Dask's task stream
(``distributed.get_task_stream``): **compute** (the slowest worker's summed task compute
time: per-partition Datashader aggregation and the tree additions), **transfer** (time the
workers spent moving partial aggregates), and **the rest** (scheduling, the round trips and
the shading in the web process: wall time minus the first two). Also the tasks per frame
and the partitions a view touched.
On one 2-core machine the cluster shares the cores with the server: it cannot win here;
the table shows how its cost splits, for docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES = (("density", ""), ("categorical", "label"))


def views(extent: tuple[float, float, float, float], repeats: int, seed: int) -> list[Any]:
    """(kind, x0, x1, y0, y1): the full view, then random wide and 1%-of-area views."""
    x0, x1, y0, y1 = extent
    rng = np.random.default_rng(seed)
    out: list[Any] = [("full", x0, x1, y0, y1)]
    for kind, lo, hi in (("wide", 0.5, 1.0), ("1% zoom", 0.1, 0.1)):
        for _ in range(repeats):
            f = rng.uniform(lo, hi)
            w, h = (x1 - x0) * f, (y1 - y0) * f
            cx, cy = rng.uniform(x0 + w / 2, x1 - w / 2), rng.uniform(y0 + h / 2, y1 - h / 2)
            out.append((kind, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2))
    return out


def split(stream: list[dict[str, Any]]) -> tuple[float, float, int]:
    """(compute s of the busiest worker, transfer s of the busiest worker, tasks)."""
    compute: dict[str, float] = {}
    transfer: dict[str, float] = {}
    for task in stream:
        for ss in task.get("startstops", ()):
            span = ss["stop"] - ss["start"]
            book = compute if ss["action"] == "compute" else transfer
            if ss["action"] in ("compute", "transfer"):
                book[task["worker"]] = book.get(task["worker"], 0.0) + span
    return max(compute.values(), default=0.0), max(transfer.values(), default=0.0), len(stream)


def child(store: str, workers: int, repeats: int, seed: int) -> dict[str, Any]:
    """In a fresh process: open the store (with a cluster when ``workers``), time frames."""
    from explorer.app.frames import FrameRequest, draw_frame
    from explorer.app.process import attach_cluster, open_resources

    out: dict[str, Any] = {}
    t = time.perf_counter()
    res = open_resources(store)
    if workers:
        attach_cluster(res, f"local:{workers}")
    out["start_s"] = time.perf_counter() - t
    layout = res.store.layouts[0]
    x0, x1, y0, y1 = res.extent(layout)
    t = time.perf_counter()
    draw_frame(res, FrameRequest(layout, x0, x1, y0, y1, 800, 600, color_by="label"))
    out["first_s"] = time.perf_counter() - t
    rows = []
    stream_of: Any = None
    if workers:
        from distributed import get_task_stream

        stream_of = get_task_stream
    for name, color in FRAMES:
        # Once untimed: each kind of frame compiles its aggregation on first use.
        draw_frame(res, FrameRequest(layout, x0, x1, y0, y1, 800, 600, color_by=color))
        for kind, a, b, c, d in views((x0, x1, y0, y1), repeats, seed):
            req = FrameRequest(layout, a, b, c, d, 800, 600, color_by=color)
            if stream_of is None:
                t = time.perf_counter()
                draw_frame(res, req)
                rows.append([name, kind, (time.perf_counter() - t) * 1e3, 0, 0, 0])
                continue
            with stream_of(client=res.cluster.client) as ts:
                t = time.perf_counter()
                draw_frame(res, req)
                wall = time.perf_counter() - t
            comp, move, n_tasks = split(ts.data)
            rows.append([name, kind, wall * 1e3, comp * 1e3, move * 1e3, n_tasks])
    out["rows"] = rows
    return out


def run_child(store: Path, workers: int, repeats: int, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(store), "--workers", str(workers),
           "--repeats", str(repeats), "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--store", default=None, help="an existing partitioned store to use")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workers, args.repeats, args.seed)))
        return
    n = int(args.n)
    store = Path(args.store) if args.store else Path(args.tmp) / f"scale-{n}.store"
    if not (store / "manifest.json").exists():
        from explorer.datasets.synth import write_scale_store

        t = time.perf_counter()
        write_scale_store(store, n, seed=0)
        print(f"wrote {store} in {time.perf_counter() - t:.0f} s", flush=True)
    local = run_child(store, 0, args.repeats, args.seed)
    cluster = run_child(store, args.workers, args.repeats, args.seed)
    print(f"\n`{' '.join(['python', *sys.argv])}`\n")
    head = f"| {n:,} points | in-process p50 ms | p95 | --dask local:{args.workers} p50 ms | p95"
    print(head + " | compute (busiest worker) p50 | transfer p50 | the rest p50 | tasks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _ in FRAMES:
        for kind in ("full", "wide", "1% zoom"):
            a = np.array([r[2] for r in local["rows"] if r[0] == name and r[1] == kind])
            c = np.array([r[2:] for r in cluster["rows"] if r[0] == name and r[1] == kind])
            rest = c[:, 0] - c[:, 1] - c[:, 2]
            print(f"| {name}, {kind} | {np.median(a):.0f} | {np.percentile(a, 95):.0f} "
                  f"| {np.median(c[:, 0]):.0f} | {np.percentile(c[:, 0], 95):.0f} "
                  f"| {np.median(c[:, 1]):.0f} | {np.median(c[:, 2]):.0f} "
                  f"| {np.median(rest):.0f} | {np.median(c[:, 3]):.0f} |")  # fmt: skip
    opened = "open the store (with --dask: cluster up, parts persisted), s"
    print(f"| {opened} | {local['start_s']:.1f} | | {cluster['start_s']:.1f} | | | | | |")
    print(f"| first categorical frame, s | {local['first_s']:.2f} | | {cluster['first_s']:.2f} "
          "| | | | | |")  # fmt: skip


if __name__ == "__main__":
    main()
