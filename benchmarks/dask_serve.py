"""Serving on a Dask cluster against in-process: frame times and what the web process holds.

    .venv/bin/python benchmarks/dask_serve.py --size 1e7 --workers 2 [--repeats 10]
    .venv/bin/python benchmarks/dask_serve.py --panes --store S [--code OLD_CHECKOUT]
    .venv/bin/python benchmarks/dask_serve.py --sql --store S

``--panes``: what the web process holds with the analytic panes. From the store ``S`` (e.g.
``benchmarks/make_scale_store.py``'s) a sibling store is made beside it (its stages linked,
the partitions left out, an ``outliers`` stage of synthetic scores added), then for each
checkout (``--code``, default this one; give an older checkout to compare) a fresh process
opens it with ``--dask local:N``, opens a session (every pane, the outliers pane among
them), sets a filter, selects above the outlier threshold, and reads a hover card: its
VmRSS after each step and its peak.

On a synthetic store (``benchmarks/app.py``'s: id, a 10-category label, a numeric column,
one layout of blobs) written to a temporary folder, two fresh processes each open the
store as ``explorer serve`` does, one in-process and one with ``--dask local:N``
(``explorer.app.process.attach_cluster``), open one session (``build_app``: the first
image), then measure over the same ``--repeats`` random 800 × 600 viewports: frames
(density, categorical, numeric, with a selection highlighted, with a filter), a box
hit-test, the selection pane's statistics and a 100,000-row export; and the web process's
memory (VmRSS and peak) at the end, beside the workers' (with ``--dask``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (
    ("density", "", False, False),
    ("categorical", "label", False, False),
    ("numeric", "score", False, False),
    ("categorical + selection", "label", True, False),
    ("categorical, filtered", "label", False, True),
)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(store: str, dask: str | None, repeats: int) -> dict[str, Any]:
    """In a fresh process: one session over the store, then the measurements."""
    from explorer.app.frames import FrameRequest, draw_frame
    from explorer.app.process import attach_cluster, open_resources
    from explorer.app.shell import build_app

    out: dict[str, Any] = {}
    t = time.perf_counter()
    res = open_resources(store)
    if dask is not None:
        attach_cluster(res, dask)
    out["start_s"] = time.perf_counter() - t
    out["rss_started_mb"] = _rss_mb("VmRSS")
    out["peak_started_mb"] = _rss_mb("VmHWM")
    t = time.perf_counter()
    app = build_app(res)
    out["first_image_s"] = time.perf_counter() - t
    out["rss_first_image_mb"] = _rss_mb("VmRSS")
    out["peak_first_image_mb"] = _rss_mb("VmHWM")
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = res.extent("umap")
    views = []
    for _ in range(repeats):
        w = (x1 - x0) * rng.uniform(0.25, 1.0)
        h = (y1 - y0) * rng.uniform(0.25, 1.0)
        a, b = rng.uniform(x0, x1 - w), rng.uniform(y0, y1 - h)
        views.append((a, a + w, b, b + h))
    selection = np.sort(rng.choice(res.n_points, res.n_points // 10, replace=False))
    mask = res.mask({"label": ["class 1", "class 2", "class 3"]})
    out["rss_views_mb"] = _rss_mb("VmRSS")
    for name, color, highlighted, filtered in FRAMES:
        out[f"rss before frames {name}"] = _rss_mb("VmRSS")
        times = []
        for k, (a, b, c, d) in enumerate([views[0], *views]):
            req = FrameRequest(
                "umap", a, b, c, d, 800, 600, color_by=color,
                mask=mask if filtered else None, highlight=selection if highlighted else None,
            )  # fmt: skip
            t = time.perf_counter()
            draw_frame(res, req)
            if k:  # the first, repeated, loads what the colour needs
                times.append((time.perf_counter() - t) * 1e3)
        out[f"frame {name}"] = times
    box_ms = []
    for a, b, c, d in views:
        t = time.perf_counter()
        res.points_in_box("umap", (a, (a + b) / 2, c, (c + d) / 2))
        box_ms.append((time.perf_counter() - t) * 1e3)
    out["rss after frames"] = _rss_mb("VmRSS")
    out["box hit-test"] = box_ms
    app.state.select(selection)
    pane = app.pane("selection")
    t = time.perf_counter()
    pane.top_values("label")
    pane.numeric_medians()
    out["selection statistics"] = [(time.perf_counter() - t) * 1e3]
    rows = selection[:100_000]
    t = time.perf_counter()
    res.subset(rows)
    out["export 100k rows"] = [(time.perf_counter() - t) * 1e3]
    out["rss_mb"] = _rss_mb("VmRSS")
    out["peak_rss_mb"] = _rss_mb("VmHWM")  # ru_maxrss would include the parent's (exec keeps it)
    if res.cluster is not None:
        import psutil

        per_worker = res.cluster.client.run(lambda: psutil.Process().memory_info().rss / 2**20)
        out["workers_rss_mb"] = sorted(per_worker.values())
        res.cluster.close()
    return out


PANE_STEPS = (
    ("opened (cluster up, points persisted)", "rss_open"),
    ("session built (map, outliers, trust, selection, filters panes)", "rss_app"),
    ("filter set (3 of 10 labels)", "rss_filter"),
    ("selected above the outlier threshold", "rss_select"),
    ("hover card read", "rss_hover"),
)


def _held_mb() -> float:
    """What the process holds live (Python objects and NumPy buffers, tracemalloc), MB."""
    import gc
    import tracemalloc

    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20


def panes_child(store: str, dask: str) -> dict[str, Any]:
    """In a fresh process: a session with a filter and the outliers pane over ``--dask``.

    RSS (VmRSS) moves with imports, compiled kernels and the allocator's spare pages as
    much as with data, so beside it each step records what is live (tracemalloc, started
    once the cluster is up: what the session itself allocated and still holds), and the
    largest live allocations at the end.
    """
    import tracemalloc

    from explorer.app.process import attach_cluster, open_resources
    from explorer.app.shell import build_app

    out: dict[str, Any] = {}

    def step(name: str, t: float) -> None:
        out["t_" + name], out["rss_" + name] = time.perf_counter() - t, _rss_mb("VmRSS")
        out["held_" + name] = _held_mb()

    t = time.perf_counter()
    res = open_resources(store)
    attach_cluster(res, dask)
    tracemalloc.start()
    step("open", t)
    t = time.perf_counter()
    app = build_app(res)
    step("app", t)
    t = time.perf_counter()
    app.state.set_filter("label", ["class 1", "class 2", "class 3"])
    step("filter", t)
    pane = app.pane("outliers")
    t = time.perf_counter()
    out["selected"] = pane.select_above(float(pane.threshold.value))
    step("select", t)
    row = int(app.state.selection[0]) if app.state.selection.size else 0
    t = time.perf_counter()
    res.cards.record(row)
    res.cards.heading(row)
    step("hover", t)
    out["peak_rss_mb"] = _rss_mb("VmHWM")
    out["peak_held_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    top = tracemalloc.take_snapshot().statistics("lineno")[:6]
    out["largest"] = [f"{s.size / 2**20:.0f} MB {s.traceback[0].filename.split('/explorer/')[-1]}"
                      f":{s.traceback[0].lineno}" for s in top]  # fmt: skip
    assert res.cluster is not None
    res.cluster.close()
    return out


SQL_CLAUSE = "label = 'class 1' AND value > 0.5"


def sql_child(store: str, how: str) -> dict[str, Any]:
    """In a fresh process: one SQL condition the way ``how`` runs it, and the RSS it costs.

    ``table``: ``explorer.store.query.PointQuery`` as the in-process app runs it (the point
    table and the scores registered with DuckDB as Arrow); ``stream``: DuckDB's own
    ``read_parquet`` scan of the point table (the scores, .npy files, cannot be scanned so).
    """
    import duckdb

    from explorer.store.query import point_query
    from explorer.store.reader import Store

    out: dict[str, Any] = {"rss_before": _rss_mb("VmRSS")}
    t = time.perf_counter()
    opened = Store(store)  # kept open: the app keeps its PointQuery while the Store lives
    if how == "table":
        rows = point_query(opened).rows(SQL_CLAUSE)
    else:
        path = opened.table_path("validate", "points")
        con = duckdb.connect(":memory:", config={"memory_limit": "2GB"})
        sql = (f"SELECT file_row_number AS r FROM read_parquet('{path}', "
               f"file_row_number=true) WHERE {SQL_CLAUSE}")  # fmt: skip
        rows = con.execute(sql).fetchnumpy()["r"]
    out.update(s=time.perf_counter() - t, rows=int(rows.size), rss=_rss_mb("VmRSS"),
               peak=_rss_mb("VmHWM"))  # fmt: skip
    return out


def sql_main(args: argparse.Namespace) -> None:
    store = Path(args.store)
    print(f"condition: {SQL_CLAUSE}\n")
    print("| DuckDB in the web process | rows | s | RSS before, MB | after | peak |")
    print("|---|---|---|---|---|---|")
    for how, label in (("table", "PointQuery (Arrow table + scores)"),
                       ("stream", "read_parquet scan (no scores)")):  # fmt: skip
        cmd = [sys.executable, __file__, "--child", str(store), "--sql", how]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {label} | {r['rows']:,} | {r['s']:.2f} | {r['rss_before']:.0f} | "
              f"{r['rss']:.0f} | {r['peak']:.0f} |")  # fmt: skip


def scored_store(base: Path, seed: int) -> Path:
    """``base``'s sibling with its stages linked, no partitions, and an outliers stage."""
    out = base.with_name(base.name.removesuffix(".store") + "-scored.store")
    if (out / "manifest.json").exists():
        return out
    manifest = json.loads((base / "manifest.json").read_text())
    n = int(manifest["n_points"])
    out.mkdir(parents=True, exist_ok=True)
    for stage in manifest["stages"]:
        if stage != "partitions" and not (out / stage).exists():
            (out / stage).symlink_to((base / stage).resolve())
    manifest["stages"].pop("partitions", None)
    manifest.pop("partitions", None)
    folder = out / "outliers"
    folder.mkdir(exist_ok=True)
    files = {}
    rng = np.random.default_rng(seed)
    for name in ("outlier", "outlier_local"):
        arr = np.lib.format.open_memmap(folder / f"{name}.npy", "w+", np.float32, (n,))
        for a in range(0, n, 1_000_000):
            arr[a : a + 1_000_000] = rng.beta(1.0, 20.0, min(1_000_000, n - a))
        arr.flush()
        del arr
        files[f"{name}.npy"] = {"bytes": (folder / f"{name}.npy").stat().st_size, "sha256": ""}
    np.save(folder / "scales.npy", np.ones(4))
    files["scales.npy"] = {"bytes": (folder / "scales.npy").stat().st_size, "sha256": ""}
    scores = {"outlier": "outlier", "outlier_local": "outlier_local"}
    manifest["stages"]["outliers"] = {
        "stage": "outliers", "key": "bench", "files": files, "summary": {"scale": 1.0},
        "provides": {"scores": scores},
    }  # fmt: skip
    for name in scores:
        manifest["scores"][name] = {"stage": "outliers", "file": name}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def panes_main(args: argparse.Namespace) -> None:
    store = scored_store(Path(args.store), args.seed)
    codes = [ROOT] if not args.code else [Path(c).resolve() for c in args.code]
    local = f"local:{args.workers}"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    found = [run_child(store, local, 0, code=code, panes=True) for code in codes]
    n = json.loads((store / "manifest.json").read_text())["n_points"]
    print(f"{n:,} points, --dask {local}; load average {load}\n")
    names = " | ".join(f"{c.name}: held MB | RSS MB | s" for c in codes)
    print(f"| web process after | {names} |")
    print("|---|" + "---|---|---|" * len(codes))
    for label, key in PANE_STEPS:
        name = key[4:]
        cells = " | ".join(
            f"{r['held_' + name]:.1f} | {r[key]:.0f} | {r['t_' + name]:.2f}" for r in found
        )
        print(f"| {label} | {cells} |")
    print("| peak | " + " | ".join(
        f"{r['peak_held_mb']:.0f} | {r['peak_rss_mb']:.0f} | " for r in found) + "|")  # fmt: skip
    for code, r in zip(codes, found, strict=True):
        print(f"\n{code.name}: largest live allocations at the end: " + "; ".join(r["largest"]))


def run_child(
    store: Path, dask: str | None, repeats: int, *, code: Path = ROOT, panes: bool = False
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(store), "--repeats", str(repeats)]
    if dask is not None:
        cmd += ["--dask", dask]
    if panes:
        cmd += ["--panes"]
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=code, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _fmt(values: list[float]) -> tuple[str, str]:
    if len(values) == 1:
        return f"{values[0]:.0f}", "—"
    return f"{np.median(values):.0f}", f"{np.percentile(values, 95):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=float, default=1e7, help="points in the store")
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers")
    parser.add_argument("--repeats", type=int, default=10, help="viewports per measurement")
    parser.add_argument("--store", default=None, help="reuse (or write) the store here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dask", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--panes", action="store_true", help="RSS with the analytic panes")
    parser.add_argument("--code", action="append", help="a checkout to run (repeatable)")
    parser.add_argument("--sql", nargs="?", const="all", help="DuckDB's RSS in process")
    args = parser.parse_args()
    if args.child and args.sql:
        print(json.dumps(sql_child(args.child, args.sql)))
        return
    if args.sql:
        print(f"$ .venv/bin/python benchmarks/dask_serve.py {' '.join(sys.argv[1:])}".rstrip())
        sql_main(args)
        return
    if args.child and args.panes:
        print(json.dumps(panes_child(args.child, args.dask)))
        return
    if args.child:
        print(json.dumps(child(args.child, args.dask, args.repeats)))
        return
    if args.panes:
        print(f"$ .venv/bin/python benchmarks/dask_serve.py {' '.join(sys.argv[1:])}".rstrip())
        panes_main(args)
        return
    print(f"$ .venv/bin/python benchmarks/dask_serve.py {' '.join(sys.argv[1:])}".rstrip())
    n = int(args.size)
    with tempfile.TemporaryDirectory(prefix="explorer-dask-bench-") as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "bench.store"
        if not (store / "manifest.json").exists():
            # benchmarks/app.py puts this checkout first on sys.path: only here, not in
            # the children (--code picks theirs)
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from app import write_store

            t = time.perf_counter()
            write_store(store, n, args.seed)
            print(f"(wrote a {n:,}-point store in {time.perf_counter() - t:.0f} s)")
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"{n:,} points, {args.repeats} viewports of 800×600; load average {load}\n")
        plain = run_child(store, None, args.repeats)
        local = f"local:{args.workers}"
        dask = run_child(store, local, args.repeats)
    print(f"| {n:,} points | in-process p50 ms | p95 | --dask {local} p50 ms | p95 |")
    print("|---|---|---|---|---|")
    for key, value in plain.items():
        if isinstance(value, list):
            a50, a95 = _fmt(value)
            b50, b95 = _fmt(dask[key])
            print(f"| {key} | {a50} | {a95} | {b50} | {b95} |")
    print(f"| start (open; with --dask: cluster up, points persisted), s | "
          f"{plain['start_s']:.1f} | | {dask['start_s']:.1f} | |")  # fmt: skip
    print(f"| first image, s | {plain['first_image_s']:.2f} | | {dask['first_image_s']:.2f} | |")
    for key, label in (
        ("rss_started_mb", "after opening the store"),
        ("rss_first_image_mb", "after the first image"),
        ("rss after frames", "after the frames"),
        ("rss_mb", "at the end"),
    ):
        print(f"| web process RSS {label}, MB | {plain[key]:.0f} | | {dask[key]:.0f} | |")
    print(f"| web process peak RSS, MB | {plain['peak_rss_mb']:.0f} | | "
          f"{dask['peak_rss_mb']:.0f} | |")  # fmt: skip
    workers = " + ".join(f"{v:.0f}" for v in dask["workers_rss_mb"])
    print(f"| workers' RSS, MB | — | | {workers} | |")


if __name__ == "__main__":
    main()
