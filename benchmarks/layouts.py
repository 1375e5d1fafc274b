"""Layout benchmark: UMAP, LargeVis and h-MDS on the same kNN graph, cost and quality.

For each dataset the kNN graph (k = 15, as the build) is computed once and saved; each
layout then runs in a fresh process that loads it (as a build stage does), so each pays its
own imports and none inherits another's memory. Per layout: wall and CPU time of the call
(after a small warm-up call, whose time is shown as "first call": numba compilation or cache
loading that every build process pays once), peak RSS, trustworthiness (scikit-learn, k = 10,
5k subsample), kNN recall in 2-D (share of each point's 14 graph neighbours among its 14
nearest in the layout: the mean of the build's ``trust:<layout>`` score). For h-MDS both
are also given with Poincaré distances. On the hierarchical data: Spearman correlation
between tree distance (levels to the common ancestor) and layout distance on random pairs
and on pairs balanced over tree distances, with PCA-2D and the 32-d data itself as references.

    .venv/bin/python benchmarks/layouts.py --datasets digits,mixture,tree --n-mixture 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("umap", "largevis", "hmds")
N_NEIGHBORS = 15
TRUST_K = 10
SUBSAMPLE = 5000
N_PAIRS = 20000
PICTURE_SIZE = 600


# ---------------------------------------------------------------- child: one layout
def _run_layout(name: str, x: np.ndarray, ind: np.ndarray, dist: np.ndarray, **kw: object):  # type: ignore[no-untyped-def]
    """The call the pipeline stage makes (pipeline/layout_stages.py) in a build without --seed."""
    if name == "umap":
        from explorer.compute.umap_layout import umap_layout

        return umap_layout(x, ind, dist, seed=None, **kw), {}  # type: ignore[arg-type]
    if name == "largevis":
        from explorer.compute.largevis import largevis_layout

        return largevis_layout(ind, dist, seed=0, parallel=True, **kw), {}  # type: ignore[arg-type]
    from explorer.compute.hmds import hmds_layout

    r = hmds_layout(x, ind, dist, seed=0, **kw)  # type: ignore[arg-type]
    extra = {"tau": r.tau, "distortion": r.distortion, "distortion_mds": r.distortion_mds}
    return r.coords, extra


def _memory_kb() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process; ru_maxrss would carry the parent's peak."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {ln.split(":")[0]: int(ln.split()[1]) for ln in lines if ln.startswith("Vm")}


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _child(name: str, work: str) -> dict[str, object]:
    from explorer.compute.knn import knn_graph

    folder = Path(work)
    # Warm-up on 400 points: numba compiles (or loads from its cache) once per process.
    rng = np.random.default_rng(0)
    tiny = rng.normal(size=(400, 8)).astype(np.float32)
    g = knn_graph(tiny, N_NEIGHBORS, seed=0)
    small = {"largevis": {"samples_per_point": 200}, "hmds": {"n_landmarks": 100}}
    t0 = time.perf_counter()
    _run_layout(name, tiny, g.indices, g.distances, **small.get(name, {}))
    first = time.perf_counter() - t0
    x = np.load(folder / "x.npy", mmap_mode="r")
    ind = np.load(folder / "indices.npy", mmap_mode="r")
    dist = np.load(folder / "distances.npy", mmap_mode="r")
    before_kb = _memory_kb()["VmRSS"]
    c0, t0 = _cpu(), time.perf_counter()
    coords, extra = _run_layout(name, x, ind, dist)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    np.save(folder / f"{name}.npy", np.asarray(coords, dtype=np.float32))
    peak_kb = _memory_kb()["VmHWM"]
    return {
        "wall": wall,
        "cpu": cpu,
        "first": first,
        "peak_kb": peak_kb,
        "before_kb": before_kb,
        **extra,
    }


def _run_child(name: str, work: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", name, str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------- data
def tree_data(
    n: int, dim: int = 32, *, branching: int = 4, levels: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters within clusters: (n, dim) float32 vectors and (n, levels) int path.

    Each node's centre is its parent's plus N(0, s²) with s = 8, 4, 2, 1 from the top level
    down; points are their leaf centre plus N(0, 1). Branch sizes vary (Dirichlet(4) shares).
    path[i, l] is the child index taken at level l (top level first).
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((1, dim))
    leaf_p = np.ones(1)
    for level in range(levels):
        scale = 8.0 * 0.5**level
        centres = np.repeat(centres, branching, axis=0)
        centres += rng.normal(scale=scale, size=centres.shape)
        share = rng.dirichlet(np.full(branching, 4.0), size=leaf_p.size)
        leaf_p = (leaf_p[:, None] * share).reshape(-1)
    leaf = rng.choice(leaf_p.size, size=n, p=leaf_p)
    x = (centres[leaf] + rng.normal(size=(n, dim))).astype(np.float32)
    path = np.stack(
        [(leaf // branching ** (levels - 1 - lv)) % branching for lv in range(levels)], axis=1
    )
    return x, path


def _load(name: str, args: argparse.Namespace, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32, per-point label codes or tree paths)."""
    if name == "digits":
        import pyarrow.parquet as pq

        from explorer.datasets.digits import make_digits_sample

        table = pq.read_table(make_digits_sample(work / "digits"), columns=["embedding", "label"])
        col = table.column("embedding").combine_chunks()
        x = col.flatten().to_numpy().reshape(len(col), -1).astype(np.float32)
        return x, table.column("label").to_numpy().astype(np.int64)
    if name == "mixture":
        from explorer.datasets.synth import synth_mixture

        x, points = synth_mixture(args.n_mixture, 64)
        return x, points["group"].cat.codes.to_numpy().astype(np.int64)
    return tree_data(args.n_tree)


# ---------------------------------------------------------------- quality
def _trust_precomputed(dist_x: np.ndarray, dist_y: np.ndarray, k: int) -> float:
    """sklearn's trustworthiness formula on two (n, n) distance matrices."""
    n = dist_x.shape[0]
    dx, dy = dist_x.copy(), dist_y.copy()
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    rank = np.empty((n, n), dtype=np.int64)
    rank[np.arange(n)[:, None], np.argsort(dx, axis=1)] = np.arange(1, n + 1)
    nn_y = np.argsort(dy, axis=1)[:, :k]
    r = rank[np.arange(n)[:, None], nn_y] - k
    return float(1.0 - r[r > 0].sum() * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def _sampled_recall(coords: np.ndarray, ind: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Recall@(k-1) on ``rows`` by brute force: (Poincaré distance, Euclidean in the disk)."""
    from explorer.compute.hyperbolic import poincare_distance

    p = coords.astype(np.float64)
    k = ind.shape[1] - 1
    out: dict[str, list[float]] = {"poincare": [], "euclid": []}
    for s in range(0, rows.size, 64):
        r = rows[s : s + 64]
        d_h = poincare_distance(p[r][:, None, :], p[None, :, :])
        d_e = ((p[r][:, None, :] - p[None, :, :]) ** 2).sum(axis=2)
        for key, d in (("poincare", d_h), ("euclid", d_e)):
            d[np.arange(r.size), r] = np.inf
            nn = np.argpartition(d, k, axis=1)[:, :k]
            for a, i in enumerate(r):
                high = set(ind[i].tolist()) - {int(i)}
                out[key].append(len(high & set(nn[a].tolist())) / max(len(high), 1))
    return float(np.mean(out["poincare"])), float(np.mean(out["euclid"]))


def _tree_distance(path: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    same = np.cumprod(path[i] == path[j], axis=1)  # 1 while the prefixes agree
    out: np.ndarray = path.shape[1] - same.sum(axis=1)
    return out


def _pairs(path: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, ...]]:
    """Random pairs, and pairs with each tree distance 0..levels equally often."""
    n, levels = path.shape
    i, j = rng.integers(0, n, size=(2, N_PAIRS))
    keep = i != j
    pairs: dict[str, tuple[np.ndarray, ...]] = {"random": (i[keep], j[keep])}
    bi, bj = [], []
    per = N_PAIRS // (levels + 1)
    for t in range(levels + 1):
        code = np.zeros(n, dtype=np.int64)
        for lv in range(levels - t):  # points sharing the first levels - t steps
            code = code * (path.max() + 1) + path[:, lv]
        order = np.argsort(code, kind="stable")
        sorted_code = code[order]
        got_i: list[np.ndarray] = []
        got_j: list[np.ndarray] = []
        while sum(a.size for a in got_i) < per:
            a = rng.integers(0, n, size=4 * per)
            lo = np.searchsorted(sorted_code, code[a], "left")
            hi = np.searchsorted(sorted_code, code[a], "right")
            b = order[lo + (rng.random(a.size) * (hi - lo)).astype(np.int64)]
            ok = (a != b) & (_tree_distance(path, a, b) == t)
            got_i.append(a[ok])
            got_j.append(b[ok])
        bi.append(np.concatenate(got_i)[:per])
        bj.append(np.concatenate(got_j)[:per])
    pairs["balanced"] = (np.concatenate(bi), np.concatenate(bj))
    return pairs


def _spearman(path: np.ndarray, pairs: dict, dist_fn) -> dict[str, float]:  # type: ignore[no-untyped-def, type-arg]
    from scipy.stats import spearmanr

    return {
        kind: float(spearmanr(_tree_distance(path, i, j), dist_fn(i, j)).statistic)
        for kind, (i, j) in pairs.items()
    }


def _quality(x: np.ndarray, ind: np.ndarray, coords: dict[str, np.ndarray]) -> list[dict]:  # type: ignore[type-arg]
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import pairwise_distances

    from explorer.compute.hyperbolic import pairwise_poincare_distances
    from explorer.compute.trust import layout_trust

    n = x.shape[0]
    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(n, size=min(n, SUBSAMPLE), replace=False))
    rows = []
    for name, c in coords.items():
        label = {"umap": "UMAP", "largevis": "LargeVis", "hmds": "h-MDS, Euclidean in the disk"}
        tw = trustworthiness(x[sub], c[sub], n_neighbors=TRUST_K)
        recall = float(layout_trust(c, ind).mean())
        rows.append({"layout": label[name], "trust": tw, "recall": recall, "recall_of": "all n"})
        if name == "hmds":
            dx = pairwise_distances(x[sub])
            tw_h = _trust_precomputed(dx, pairwise_poincare_distances(c[sub]), TRUST_K)
            rec_h, rec_e = _sampled_recall(c, ind, sub)
            rows.append(
                {
                    "layout": "h-MDS, Poincaré distance",
                    "trust": tw_h,
                    "recall": rec_h,
                    "recall_of": f"{sub.size:,} sampled (disk Euclidean there: {rec_e:.3f})",
                }
            )
    return rows


def _tree_rows(x: np.ndarray, path: np.ndarray, coords: dict[str, np.ndarray]) -> list[dict]:  # type: ignore[type-arg]
    from sklearn.decomposition import PCA

    from explorer.compute.hyperbolic import poincare_distance

    pairs = _pairs(path, np.random.default_rng(2))
    pca = PCA(2, random_state=0).fit_transform(x)
    coords = {**coords, "pca": pca}

    def euclid(c: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda i, j: np.linalg.norm(np.asarray(c[i], float) - c[j], axis=1)

    table = [("data itself (32-d Euclidean)", euclid(x)), ("PCA-2D", euclid(pca))]
    table += [("UMAP", euclid(coords["umap"])), ("LargeVis", euclid(coords["largevis"]))]
    if "hmds" in coords:
        h = coords["hmds"]
        table.append(("h-MDS, Poincaré distance", lambda i, j: poincare_distance(h[i], h[j])))
        table.append(("h-MDS, Euclidean in the disk", euclid(h)))
    return [{"layout": name, **_spearman(path, pairs, fn)} for name, fn in table]


# ---------------------------------------------------------------- pictures
def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * min(max(v, 0.0), 1.0)):02x}" for v in rgb)


def _tree_colours(branching: int = 4) -> tuple[list[str], list[tuple[str, str]]]:
    """Top level = hue; second level = shade of that hue (dark to light)."""
    base = [(0.12, 0.40, 0.75), (0.90, 0.45, 0.05), (0.15, 0.60, 0.20), (0.80, 0.15, 0.20)]
    keys = []
    for b in base[:branching]:
        for f in np.linspace(-0.45, 0.45, branching):
            mix = (1.0, 1.0, 1.0) if f > 0 else (0.0, 0.0, 0.0)
            keys.append(_hex(tuple(v + abs(f) * (m - v) for v, m in zip(b, mix, strict=True))))  # type: ignore[arg-type]
    legend = [(f"top {chr(65 + t)}", keys[t * branching + 1]) for t in range(branching)]
    return keys, [*legend, ("shade: 2nd level", "#444444")]


def picture(
    coords: np.ndarray,
    codes: np.ndarray,
    keys: list[str],
    out: Path,
    title: str,
    legend: list[tuple[str, str]],
    *,
    disk: bool = False,
) -> None:
    """A PICTURE_SIZE² PNG: Datashader points by category, Pillow title, legend, unit circle."""
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd
    from PIL import Image, ImageDraw, ImageFont

    top, bottom = 30, 28
    side = PICTURE_SIZE - top - bottom
    if disk:
        lo_x = lo_y = -1.03
        half = 1.03
    else:
        mid = (coords.min(axis=0) + coords.max(axis=0)) / 2
        half = float(np.ptp(coords, axis=0).max()) * 0.53
        lo_x, lo_y = mid - half
    cvs = ds.Canvas(side, side, x_range=(lo_x, lo_x + 2 * half), y_range=(lo_y, lo_y + 2 * half))
    df = pd.DataFrame(
        {
            "x": coords[:, 0],
            "y": coords[:, 1],
            "c": pd.Categorical.from_codes(codes, categories=pd.Index(range(len(keys)))),
        }
    )
    agg = cvs.points(df, "x", "y", ds.by("c", ds.count()))
    img = tf.spread(tf.shade(agg, color_key=keys, min_alpha=160), px=2 if len(df) < 5000 else 1)
    canvas = Image.new("RGB", (PICTURE_SIZE, PICTURE_SIZE), "white")
    left = (PICTURE_SIZE - side) // 2
    layer = img.to_pil()
    canvas.paste(layer, (left, top), layer)
    draw = ImageDraw.Draw(canvas)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 15)
    except OSError:  # no DejaVu: Pillow's own font (it lacks some accents)
        font = ImageFont.load_default(size=15)
    if disk:  # the unit circle, the boundary at infinite hyperbolic distance
        r = side / 2 / 1.03
        cx, cy = left + side / 2, top + side / 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline="#555555", width=1)
    draw.text((10, 6), title, fill="black", font=font)
    x0 = 10
    for text, colour in legend:
        draw.text((x0, PICTURE_SIZE - bottom + 5), text, fill=colour, font=font)
        x0 += int(draw.textlength(text, font=font)) + 14
    canvas.save(out, optimize=True)


def _pictures(name: str, labels: np.ndarray, coords: dict[str, np.ndarray], img: Path) -> None:
    import colorcet as cc

    titles = {
        "umap": "UMAP",
        "largevis": "LargeVis",
        "hmds": "h-MDS (Poincaré disk)",
    }
    if name == "digits":
        keys = list(cc.palette["glasbey_category10"][:10])
        legend = [(str(d), keys[d]) for d in range(10)]
        codes, what = labels, "digits sample, coloured by label"
    elif name == "tree":
        keys, legend = _tree_colours()
        codes, what = labels[:, 0] * 4 + labels[:, 1], "4-level tree data"
    else:
        return
    for layout, c in coords.items():
        out = img / f"layout-{name}-{layout}.png"
        picture(c, codes, keys, out, f"{titles[layout]}: {what}", legend, disk=layout == "hmds")
    if name == "tree":  # the top-level branch pushed farthest out, moved to the centre
        h = coords["hmds"].astype(np.float64)
        radius = np.linalg.norm(h, axis=1)
        far = max(range(4), key=lambda t: float(np.median(radius[labels[:, 0] == t])))
        title = f"h-MDS, top {chr(65 + far)} moved to the centre (an isometry)"
        out = img / "layout-tree-hmds-recentred.png"
        picture(recentre(h, labels[:, 0] == far), codes, keys, out, title, legend, disk=True)


def recentre(coords: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Möbius-translate the disk so that a central member of ``members`` sits at the origin.

    coords : (n, 2) Poincaré; members : (n,) bool. An isometry: hyperbolic distances stay.
    The centre is the sampled member with the smallest median distance to the others.
    """
    from explorer.compute.hyperbolic import poincare_distance

    rng = np.random.default_rng(0)
    ids = np.flatnonzero(members)
    s = rng.choice(ids, size=min(300, ids.size), replace=False)
    d = poincare_distance(coords[s][:, None, :], coords[s][None, :, :])
    z = coords[:, 0] + 1j * coords[:, 1]
    a = z[s[int(np.argmin(np.median(d, axis=1)))]]
    w = (z - a) / (1.0 - np.conj(a) * z)
    return np.stack([w.real, w.imag], axis=1)


# ---------------------------------------------------------------- driver and tables
def _dataset(name: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    from explorer.compute.knn import knn_graph, knn_recall

    work.mkdir()
    x, labels = _load(name, args, work)
    t0 = time.perf_counter()
    graph = knn_graph(x, N_NEIGHBORS, seed=0)
    knn_s = time.perf_counter() - t0
    recall = knn_recall(x, graph.indices, sample=1000)
    for stem, arr in (("x", x), ("indices", graph.indices), ("distances", graph.distances)):
        np.save(work / f"{stem}.npy", arr)
    cost = {}
    for layout in LAYOUTS:
        print(f"  {name}: {layout} ...", file=sys.stderr, flush=True)
        cost[layout] = _run_child(layout, work)
    coords = {layout: np.load(work / f"{layout}.npy") for layout in LAYOUTS}
    info = {
        "name": name,
        "n": x.shape[0],
        "dim": x.shape[1],
        "knn_s": knn_s,
        "knn_recall": recall,
        "knn_method": graph.method,
        "cost": cost,
        "quality": _quality(x, graph.indices, coords),
    }
    if name == "tree":
        info["tree"] = _tree_rows(x, labels, coords)
    if args.images:
        _pictures(name, labels, coords, Path(args.images))
    return info


def _print_tables(results: list[dict], args: argparse.Namespace, load: tuple) -> None:  # type: ignore[type-arg]
    print(
        f"\ncommand: .venv/bin/python benchmarks/layouts.py --datasets {args.datasets} "
        f"--n-mixture {args.n_mixture} --n-tree {args.n_tree}"
        + (f" --images {args.images}" if args.images else "")
    )
    print(
        f"load average (1 min) at start {load[0]:.1f}, at end {load[1]:.1f}; "
        f"{os.cpu_count()} cores\n"
    )
    print(
        "| data | n × d | kNN graph | layout | wall s | CPU s | first call s | peak GB "
        "| Δ GB | wall / UMAP | CPU / UMAP |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        knn = f"{r['knn_method']} {r['knn_s']:.1f} s, recall {r['knn_recall']:.3f}"
        base = r["cost"]["umap"]
        for layout, c in r["cost"].items():
            gb = c["peak_kb"] / 2**20
            dgb = (c["peak_kb"] - c["before_kb"]) / 2**20
            print(
                f"| {r['name']} | {r['n']:,} × {r['dim']} | {knn} | {layout} | {c['wall']:.1f} "
                f"| {c['cpu']:.1f} | {c['first']:.1f} | {gb:.2f} | {dgb:.2f} "
                f"| {c['wall'] / base['wall']:.2f} | {c['cpu'] / base['cpu']:.2f} |"
            )
    print(
        "\n| data | UMAP+LargeVis+h-MDS / UMAP (wall) | (CPU) | UMAP+LargeVis / UMAP (wall) "
        "| UMAP+h-MDS / UMAP (wall) |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        c = r["cost"]
        w = {k: v["wall"] for k, v in c.items()}
        cpu = sum(v["cpu"] for v in c.values()) / c["umap"]["cpu"]
        print(
            f"| {r['name']} | {sum(w.values()) / w['umap']:.2f} | {cpu:.2f} "
            f"| {(w['umap'] + w['largevis']) / w['umap']:.2f} "
            f"| {(w['umap'] + w['hmds']) / w['umap']:.2f} |"
        )
    print(
        f"\n| data | layout | trustworthiness (k={TRUST_K}, {SUBSAMPLE:,} sample) "
        f"| kNN recall in 2-D ({N_NEIGHBORS - 1} of {N_NEIGHBORS - 1}) | recall over |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        for q in r["quality"]:
            print(
                f"| {r['name']} | {q['layout']} | {q['trust']:.3f} | {q['recall']:.3f} "
                f"| {q['recall_of']} |"
            )
    print("\n| data | h-MDS τ | distortion (held-out pairs) | plain h-MDS distortion |")
    print("|---|---|---|---|")
    for r in results:
        h = r["cost"]["hmds"]
        print(
            f"| {r['name']} | {h['tau']:.4g} | {h['distortion']:.3f} | {h['distortion_mds']:.3f} |"
        )
    for r in results:
        if "tree" in r:
            print(
                f"\nSpearman(tree distance, layout distance), {r['n']:,} points, {N_PAIRS:,} pairs"
            )
            print("\n| layout | random pairs | pairs balanced over tree distance 0-4 |")
            print("|---|---|---|")
            for t in r["tree"]:
                print(f"| {t['layout']} | {t['random']:.3f} | {t['balanced']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mixture,tree")
    parser.add_argument("--n-mixture", type=int, default=100_000)
    parser.add_argument("--n-tree", type=int, default=30_000)
    parser.add_argument("--images", default="", help="folder for the PNG pictures (none if empty)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    load0 = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(_dataset(name, args, Path(tmp) / name))
    _print_tables(results, args, (load0, os.getloadavg()[0]))
    print("\n```json\n" + json.dumps(results, default=float) + "\n```")


if __name__ == "__main__":
    main()
