"""Build benchmark: each stage's wall time and the build's peak memory, beside bare UMAP.

For each n, on the same synthetic 64-d mixture (explorer synth), in one run:
  - ``explorer build`` (validate + knn + umap + trust), each stage timed, peak RSS;
  - bare ``umap.UMAP(n_neighbors=15).fit(X)`` (its own kNN inside), time and peak RSS.
Each runs in a fresh process, so both pay numba's compilation and neither inherits memory.

    python benchmarks/build.py --sizes 1e4,1e5,1e6
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM), in KB.

    Not ``getrusage``: Linux keeps ``ru_maxrss`` across ``exec``, so a child would report
    its parent's peak if that was higher. VmHWM belongs to the new address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child_build(data: str, out: str, layouts: str) -> dict[str, object]:
    from explorer.config import BuildConfig, parse_layouts
    from explorer.ingest.dataset import InputSpec
    from explorer.pipeline.runner import build_store

    t0 = time.perf_counter()
    report = build_store(
        InputSpec(Path(data), label="label", prediction="prediction"),
        out,
        BuildConfig(layouts=parse_layouts(layouts)),
        show_progress=False,
    )
    total = time.perf_counter() - t0
    stages = {s.name: s.seconds for s in report.stages}
    recall = next(s.summary.get("recall") for s in report.stages if s.name == "knn")
    return {"total": total, "stages": stages, "recall": recall}


def _child_umap(data: str) -> dict[str, object]:
    import numpy as np
    import pyarrow.parquet as pq
    import umap

    table = pq.read_table(data, columns=["vector"])
    column = table.column("vector").combine_chunks()
    x = column.flatten().to_numpy().reshape(len(column), -1).astype(np.float32)
    t0 = time.perf_counter()
    umap.UMAP(n_neighbors=15).fit(x)
    return {"total": time.perf_counter() - t0}


def _run_child(args: list[str]) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_gb(kb: float) -> str:
    return f"{kb / 1024 / 1024:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5", help="comma list of point counts")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (median shown)")
    parser.add_argument("--layouts", default="umap")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = _child_build(*rest) if kind == "build" else _child_umap(*rest)
        result["peak_rss_kb"] = peak_rss_kb()
        print(json.dumps(result))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(float(s)) for s in args.sizes.split(",")]:
            data = Path(tmp) / f"synth-{size}.parquet"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "explorer",
                    "synth",
                    "--n",
                    str(size),
                    "--dim",
                    str(args.dim),
                    "--out",
                    str(data),
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            builds, bares = [], []
            for r in range(args.repeats):
                out = Path(tmp) / f"s-{size}-{r}.store"
                builds.append(_run_child(["build", str(data), str(out), args.layouts]))
                bares.append(_run_child(["umap", str(data)]))
            rows.append((size, builds, bares))
            _print_table(rows, args)


def _median(values: list[float]) -> float:
    return statistics.median(values)


CORE = ["validate", "knn", "umap", "trust"]
ANALYTICS = ["intrinsic", "outliers", "hierarchy", "slices"]


def _print_table(rows: list[tuple[int, list, list]], args: argparse.Namespace) -> None:
    stage_names = CORE + ANALYTICS
    print()
    print("core = validate + knn + umap + trust (what bare umap-learn also does); the analytic")
    print("stages follow; build GB is the whole build's peak RSS, analytics included")
    print(
        f"command: python benchmarks/build.py --sizes {args.sizes} --dim {args.dim} "
        f"--repeats {args.repeats} --layouts {args.layouts}"
    )
    head = [
        "n",
        *[f"{s} s" for s in stage_names],
        "core s",
        "recall",
        "build GB",
        "bare umap s",
        "bare GB",
        "core / bare time",
        "build / bare memory",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for size, builds, bares in rows:
        st = [_median([b["stages"].get(s, 0.0) for b in builds]) for s in stage_names]
        total = _median([sum(b["stages"].get(s, 0.0) for s in CORE) for b in builds])
        bare = _median([b["total"] for b in bares])
        mem = _median([b["peak_rss_kb"] for b in builds])
        bare_mem = _median([b["peak_rss_kb"] for b in bares])
        recall = _median([b["recall"] for b in builds])
        cells = [
            f"{size:,}",
            *[f"{v:.1f}" for v in st],
            f"{total:.1f}",
            f"{recall:.3f}",
            _fmt_gb(mem),
            f"{bare:.1f}",
            _fmt_gb(bare_mem),
            f"{total / bare:.2f}",
            f"{mem / bare_mem:.2f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
