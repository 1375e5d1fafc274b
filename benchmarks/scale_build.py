"""Building on Dask (issue 11): one process against ``--dask local:N`` on the same data.

For each n, on the synthetic mixture of ``explorer synth`` (64-d by default), each build in
a fresh process (both pay numba's compilation):
  - ``explorer build`` in one process: per-stage seconds, kNN recall, trust;
  - the same with ``--dask local:N``: the kNN graph from overlapping k-means partitions,
    UMAP fitted on a sample (``--sample-share`` of n, as 1M of 10M) and the rest placed.
Then, against the in-process store's kNN graph (the same graph for both layouts): the mean
trust of the in-process layout (fitted on all points) and of the placed one.

    python benchmarks/scale_build.py --sizes 1e5,2e5 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["knn", "umap", "trust", "intrinsic", "outliers", "hierarchy", "slices"]


def _child_build(data: str, out: str, dask: str, opts: str, layouts: str) -> dict[str, object]:
    from explorer.config import BuildConfig
    from explorer.ingest.dataset import InputSpec
    from explorer.pipeline.distributed import DaskOptions
    from explorer.pipeline.runner import build_store

    options = DaskOptions(dask, **json.loads(opts)) if dask != "none" else None
    t0 = time.perf_counter()
    report = build_store(
        InputSpec(Path(data), label="label", prediction="prediction"),
        out,
        BuildConfig(layouts=tuple(layouts.split(","))),
        show_progress=False,
        dask=options,
    )
    total = time.perf_counter() - t0
    knn = next(s.summary for s in report.stages if s.name == "knn")
    # Peak resident memory: this process, and the largest of its reaped children (the
    # LocalCluster's workers, closed by now). ru_maxrss is in KiB on Linux.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "total": total,
        "rss_gib": round(own, 2),
        "worker_rss_gib": round(kids, 2),
        "stages": {s.name: s.seconds for s in report.stages},
        "recall": knn["recall"],
        "method": knn["method"],
        "partitions": knn.get("partitions", 1),
    }


def _run_child(args: list[str]) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _trusts(plain: Path, placed: Path) -> dict[str, tuple[float, float]]:
    """Each layout in both stores: its mean trust in each, against the first's kNN graph."""
    import numpy as np

    from explorer.compute.trust import layout_trust
    from explorer.store.reader import Store

    a, b = Store(plain), Store(placed)
    indices = np.asarray(a.knn()[0])
    out = {}
    for name in a.layouts:
        if name in b.layouts:
            fitted = float(layout_trust(np.asarray(a.layout(name)), indices).mean())
            moved = float(layout_trust(np.asarray(b.layout(name)), indices).mean())
            out[name] = (fitted, moved)
    return out


def _sampled_trustworthiness(
    plain: Path, placed: Path, samples: int = 3, size: int = 5_000
) -> dict[str, tuple[float, float]]:
    """sklearn's trustworthiness (k = 15) of each layout in both stores, the median over
    ``samples`` seeded samples of ``size`` points (neighbours ranked within each sample: the
    exact measure is quadratic in n)."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    from explorer.store.reader import Store

    a, b = Store(plain), Store(placed)
    vectors = a.vectors(reduced=False)
    rng = np.random.default_rng(0)
    picks = [
        np.sort(rng.choice(a.n_points, min(size, a.n_points), replace=False))
        for _ in range(samples)
    ]

    def median(store: Store, name: str) -> float:
        xy = store.layout(name)
        scores = [trustworthiness(vectors[r], np.asarray(xy[r]), n_neighbors=15) for r in picks]
        return float(np.median(scores))

    return {name: (median(a, name), median(b, name)) for name in a.layouts if name in b.layouts}


def _write_low_dim(path: Path, n: int, intrinsic: int, dim: int) -> None:
    """explorer synth's mixture drawn in ``intrinsic`` dimensions, turned into ``dim``.

    Isotropic clusters in 64-d leave a 2-D layout little to keep (trust about 0.02-0.04);
    real embeddings have a much lower intrinsic dimension than their width.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from explorer.datasets.synth import synth_mixture

    low, meta = synth_mixture(n, intrinsic, seed=0)
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, intrinsic)))
    x = np.empty((n, dim), dtype=np.float32)
    step = 1_000_000  # in blocks: 10M x 64 float64 would be 5 GB at once
    for s in range(0, n, step):
        block = low[s : s + step]
        noise = rng.normal(scale=0.01, size=(len(block), dim))
        x[s : s + step] = block @ basis.T + noise
    table = pa.Table.from_pandas(meta, preserve_index=False)
    flat = pa.array(x.reshape(-1), type=pa.float32())
    table = table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, dim))
    pq.write_table(table, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,2e5", help="comma list of point counts")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="--dask local:N")
    parser.add_argument(
        "--sample-share", type=float, default=0.1, help="layout fitted on this share of n"
    )
    parser.add_argument(
        "--partitions", type=int, default=10, help="kNN partitions (each point in 2)"
    )
    parser.add_argument(
        "--intrinsic",
        type=int,
        default=0,
        metavar="D",
        help="draw the mixture in D dimensions and rotate it into --dim (default: 0, "
        "explorer synth's full-dimensional mixture)",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the data, the stores and each build's figures (JSON) in DIR; a rerun "
        "reuses the data and resumes an interrupted build from its checkpoints",
    )
    parser.add_argument(
        "--builds",
        default="one,dask",
        help="which builds to run: 'one' (one process), 'dask' (--dask local:N), or both",
    )
    parser.add_argument(
        "--layouts", default="umap", help="layouts to build (a rerun with --keep adds them)"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="with --keep: run nothing, print the table from the figures kept in DIR",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child_build(*args.child[1:])))
        return
    builds = {b.strip() for b in args.builds.split(",")}
    rows: list[tuple[Any, ...]] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(args.keep)
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for size in [int(float(s)) for s in args.sizes.split(",")]:
            data = tmp / f"synth-{size}-{args.dim}-{args.intrinsic}.parquet"
            if not data.exists() and not args.report:
                if args.intrinsic:
                    _write_low_dim(data, size, args.intrinsic, args.dim)
                else:
                    synth = [sys.executable, "-m", "explorer", "synth", "--n", str(size)]
                    synth += ["--dim", str(args.dim), "--out", str(data)]
                    subprocess.run(synth, check=True, capture_output=True, cwd=ROOT)
            opts = {
                "layout_sample": max(10, int(size * args.sample_share)),
                "partition_rows": max(2, 2 * size // args.partitions),
                "shard_rows": max(1, size // 10),
            }
            plain, on_dask = tmp / f"p-{size}.store", tmp / f"d-{size}.store"
            one = many = None
            if args.report:
                one, many = _kept(tmp, f"p-{size}"), _kept(tmp, f"d-{size}")
            elif "one" in builds:
                one = _run_child(["build", str(data), str(plain), "none", "{}", args.layouts])
                _record(tmp, f"p-{size}", one)
            if "dask" in builds and not args.report:
                many = _run_child(
                    [
                        "build",
                        str(data),
                        str(on_dask),
                        f"local:{args.workers}",
                        json.dumps(opts),
                        args.layouts,
                    ]
                )
                _record(tmp, f"d-{size}", many)
            trusts: dict[str, tuple[float, float]] = {}
            sampled: dict[str, tuple[float, float]] = {}
            if one is not None and many is not None:
                trusts = _trusts(plain, on_dask)
                sampled = _sampled_trustworthiness(plain, on_dask)
            rows.append((size, one, many, trusts, sampled, opts))
            _print_table(rows, args)


def _kept(folder: Path, name: str) -> dict[str, object] | None:
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    out: dict[str, object] = json.loads(path.read_text())
    return out


def _record(folder: Path, name: str, run: dict[str, object]) -> None:
    (folder / f"{name}.json").write_text(json.dumps(run, indent=1))


def _print_table(rows: list[tuple[Any, ...]], args: argparse.Namespace) -> None:
    print()
    print(
        f"command: python benchmarks/scale_build.py --sizes {args.sizes} --dim {args.dim} "
        f"--workers {args.workers} --sample-share {args.sample_share} "
        f"--partitions {args.partitions}"
        + (f" --intrinsic {args.intrinsic}" if args.intrinsic else "")
        + (f" --layouts {args.layouts}" if args.layouts != "umap" else "")
        + (f" --builds {args.builds}" if args.builds != "one,dask" else "")
    )
    head = ["n", "build", *[f"{s} s" for s in STAGES], "other s", "total s"]
    head += ["peak RSS GiB (build / worker)", "kNN recall", "umap trust"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    notes = []
    for size, one, many, trusts, sampled, opts in rows:
        runs = []
        fitted, placed = trusts.get("umap", (None, None))
        if one is not None:
            trust = f"{fitted:.4f} (fitted on all)" if fitted is not None else "-"
            runs.append(("one process", one, trust))
        if many is not None:
            trust = f"fitted on {opts['layout_sample']:,}, placed"
            if placed is not None and fitted is not None:
                trust = f"{placed:.4f} ({trust}; {placed - fitted:+.4f})"
            runs.append((f"local:{args.workers}", many, trust))
        for label, run, trust in runs:
            stages = run["stages"]
            other = sum(v for k, v in stages.items() if k not in STAGES)
            cells = [
                f"{size:,}",
                label,
                *[f"{stages.get(s, 0.0):.1f}" for s in STAGES],
                f"{other:.1f}",
                f"{run['total']:.1f}",
                f"{run.get('rss_gib', 0):.1f} / {run.get('worker_rss_gib', 0):.1f}",
                f"{run['recall']:.3f} ({run['method']}, {run['partitions']} part.)",
                trust,
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
            rest = {k: round(v, 1) for k, v in stages.items() if k not in STAGES}
            notes.append(f"{size:,} {label}, other stages (s): {rest}")
        for name, (fit, moved) in trusts.items():
            if name != "umap":
                notes.append(
                    f"{size:,} {name} trust: {fit:.4f} fitted on all, {moved:.4f} on "
                    f"local:{args.workers} ({moved - fit:+.4f})"
                )
        for name, (fit, moved) in sampled.items():
            notes.append(
                f"{size:,} {name} sklearn trustworthiness (k 15, median of 3 samples of "
                f"5,000): {fit:.4f} fitted on all, {moved:.4f} on local:{args.workers} "
                f"({moved - fit:+.4f})"
            )
    for line in notes:
        print(f"- {line}")


if __name__ == "__main__":
    main()
