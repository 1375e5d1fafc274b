"""Panes benchmark (issue 8): a click in one pane until every pane has updated.

    nice .venv/bin/python benchmarks/panes.py --n 1e7 [--repeats 7] [--tmp DIR] [--store DIR]

On a synthetic store of ``--n`` points (``benchmarks/panes_store.py``: ``benchmarks/app.py``'s
store plus predictions, outlier / local-ID / trust scores, a quadtree hierarchy and slices),
in one process, with sessions built by ``build_app`` (no Bokeh server: every pane's watcher
runs synchronously inside the call, so a call's wall time is "until every pane updated"):

- clicking a treemap cell of ~n/10 points (select it and drill into it);
- a drill-down: focusing a node so its children are drawn, without changing the selection,
  and a click on a small cell (select + drill);
- clicking a slice-table row of ~n/10 points;
- a second session's lasso (``map.select_geometry``) alone, and while a thread in the first
  session exports 1M rows to Parquet in a loop;
- where a click's time goes: the same selection set on a bare state with one pane at a time.

Each figure is the median and p95 over ``--repeats`` runs, alternating between two targets
so that no pane can answer from "nothing changed".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app import write_store
from panes_store import add_pane_stages
from render import lasso

from explorer.app.process import open_resources
from explorer.app.registry import available_panes
from explorer.app.resources import StoreResources
from explorer.app.shell import ExplorerApp, build_app
from explorer.app.state import ExplorerState
from explorer.render.raster import warm_up
from explorer.store.format import MANIFEST
from explorer.store.reader import Store

Timings = np.ndarray


def timed(
    actions: list[Callable[[], Any]], repeats: int, before: Callable[[], Any] | None = None
) -> Timings:
    """Milliseconds of each call, cycling through ``actions`` after one untimed round;
    ``before`` runs untimed before each call."""
    for act in actions:
        if before is not None:
            before()
        act()
    out = []
    for i in range(repeats):
        if before is not None:
            before()
        t = time.perf_counter()
        actions[i % len(actions)]()
        out.append((time.perf_counter() - t) * 1e3)
    return np.array(out)


def fmt(ms: Timings) -> str:
    return f"{np.median(ms):.0f} / {np.percentile(ms, 95):.0f} ms"


def nearest(sizes: np.ndarray, target: float, candidates: np.ndarray) -> list[int]:
    """The two candidates whose size is nearest ``target``."""
    best = candidates[np.argsort(np.abs(sizes[candidates] - target))]
    return [int(v) for v in best[:2]]


def tree_nodes(res: StoreResources) -> tuple[list[int], list[int]]:
    """Two big cells (~n/10, with children) and two small ones (~n/1000, with children)."""
    nodes = res.hierarchy.nodes
    size, parent = nodes["size"].to_numpy(), nodes["parent"].to_numpy()
    inner = np.unique(parent[parent >= 0])
    return nearest(size, res.n_points / 10, inner), nearest(size, res.n_points / 1000, inner)


def slice_rows(app: ExplorerApp) -> list[int]:
    """Two rows of the slice table with ~n/10 members."""
    frame = app.pane("slices").frame
    size = frame["size"].to_numpy()
    return nearest(size, app.resources.n_points / 10, np.arange(len(frame)))


def treemap_rows(app: ExplorerApp, args: argparse.Namespace) -> list[tuple[str, str]]:
    tree, res = app.pane("treemap"), app.resources
    big, small = tree_nodes(res)
    sizes = res.hierarchy.nodes["size"]

    def top() -> None:  # back to the top (untimed), so each click drills down again
        app.state.focus_node = None

    def click(node: int) -> Callable[[], None]:
        return lambda: tree.click(node)

    def focus(node: int) -> Callable[[], None]:
        return lambda: setattr(app.state, "focus_node", node)

    app.state.clear_selection()
    return [
        (f"treemap cell click, {sizes[big[0]]:,} / {sizes[big[1]]:,} points (select + drill)",
         fmt(timed([click(v) for v in big], args.repeats, top))),
        ("drill-down: focus a node, children drawn, selection unchanged",
         fmt(timed([focus(v) for v in big], args.repeats))),
        (f"small cell click, {sizes[small[0]]:,} / {sizes[small[1]]:,} points (select + drill)",
         fmt(timed([click(v) for v in small], args.repeats, top))),
    ]  # fmt: skip


def slice_row(app: ExplorerApp, args: argparse.Namespace) -> tuple[str, str]:
    pane = app.pane("slices")
    rows = slice_rows(app)
    sizes = pane.frame["size"].to_numpy()
    ms = timed([lambda r=r: pane.click(r) for r in rows], args.repeats)
    return f"slice row click, {sizes[rows[0]]:,} / {sizes[rows[1]]:,} points", fmt(ms)


def lasso_rows(
    res: StoreResources, first: ExplorerApp, args: argparse.Namespace
) -> list[tuple[str, str]]:
    """A second session's lasso, alone and beside a looping 1M-row export in the first."""
    second = build_app(res)
    rng = np.random.default_rng(args.seed)
    coords = res.index(second.state.layout).coords
    loops = [lasso(coords, rng) for _ in range(4)]

    def select(px: np.ndarray, py: np.ndarray) -> Callable[[], None]:
        return lambda: second.map.select_geometry({"type": "poly", "x": px, "y": py})

    actions = [select(px, py) for px, py in loops]
    cpu = time.thread_time()
    alone = timed(actions, args.repeats)
    cpu_alone = (time.thread_time() - cpu) * 1e3 / (args.repeats + len(actions))
    first.state.select(np.sort(rng.choice(res.n_points, min(10**6, res.n_points), replace=False)))
    export = first.pane("export")
    export.format.value = "parquet"
    stop, exports = threading.Event(), []

    def loop() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            export.export_bytes()
            exports.append(time.perf_counter() - t)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(0.5)
    cpu = time.thread_time()
    busy = timed(actions, args.repeats)
    cpu_ms = (time.thread_time() - cpu) * 1e3 / (args.repeats + len(actions))
    stop.set()
    thread.join()
    share = second.state.n_selected / res.n_points
    ratio = np.median(busy) / np.median(alone)
    return [
        (f"second session's lasso (~{share:.0%} selected), alone", fmt(alone)),
        (f"the same while the first session exports {first.state.n_selected:,} rows to "
         f"Parquet in a loop ({len(exports)} exports, median {np.median(exports):.1f} s each)",
         fmt(busy)),
        ("lasso delayed by the export (p50 ratio)", f"{ratio:.2f}×"),
        ("(the lasso thread's own CPU time per lasso, alone / beside the export: the rest "
         "of the wall time is waiting for the GIL or a core)",
         f"{cpu_alone:.0f} / {cpu_ms:.0f} ms"),
    ]  # fmt: skip


def breakdown_rows(res: StoreResources, args: argparse.Namespace) -> list[tuple[str, str]]:
    """One pane at a time on a bare state: what setting a ~n/10 node selection costs it."""
    big, _ = tree_nodes(res)
    members = [res.hierarchy.members(v) for v in big]
    rows = []
    for spec in [None, *available_panes(res)]:
        state = ExplorerState(
            n_points=res.n_points, layouts=res.store.layouts,
            color_options=res.color_options, color_by=res.default_color(), mask_for=res.mask,
        )  # fmt: skip
        if spec is not None:
            spec.make(res, state)
        acts = [
            lambda s=state, m=m, v=v: s.select(m, source="treemap", ref=f"node:{v}")
            for m, v in zip(members, big, strict=True)
        ]
        name = "no pane (the state alone)" if spec is None else f"pane {spec.name!r} alone"
        label = f"{name}: select a node of ~{res.n_points // 10:,}"
        rows.append((label, fmt(timed(acts, args.repeats))))
    return rows


def measure(store: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    warm_up()
    res = open_resources(store)
    t = time.perf_counter()
    app = build_app(res)
    res.table  # noqa: B018  (the whole table, for export, as load_table_soon does)
    rows = [("(open the session and load the point table)", f"{time.perf_counter() - t:.1f} s")]
    rows += treemap_rows(app, args)
    rows.append(slice_row(app, args))
    app.state.clear_selection()
    rows += lasso_rows(res, app, args)
    if args.breakdown:
        rows += breakdown_rows(res, args)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=float, default=1e7, help="points in the synthetic store")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="where the temporary store goes")
    parser.add_argument("--store", default=None,
                        help="keep the store here (reused when it exists)")  # fmt: skip
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the one-pane-at-a-time rows")  # fmt: skip
    args = parser.parse_args()
    n = int(args.n)
    print(f"$ .venv/bin/python benchmarks/panes.py {' '.join(sys.argv[1:])}".rstrip())
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        store = Path(args.store or Path(tmp) / "panes.store")
        t = time.perf_counter()
        if not (store / MANIFEST).exists():
            write_store(store, n, args.seed)
            add_pane_stages(store, args.seed)
        n = Store(store).n_points
        wrote = time.perf_counter() - t
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"{n:,} points (store written in {wrote:.0f} s), {args.repeats} runs per "
              f"figure; load average {load}\n")  # fmt: skip
        print(f"| {n:,}-point store | p50 / p95 |\n|---|---|")
        for name, value in measure(store, args):
            print(f"| {name} | {value} |", flush=True)


if __name__ == "__main__":
    main()
