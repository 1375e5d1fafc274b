"""Analytic stages: accuracy on known answers, and time and memory at scale.

    python benchmarks/analytics.py --sizes 1e5,1e6

Accuracy: intrinsic dimension of manifolds of known dimension (raw and bias-corrected);
outlier AUROC for scattered points and for tight far-off groups, separately, beside
scikit-learn's LocalOutlierFactor and IsolationForest on planted outliers; the rank of a
planted failure slice and Domino's precision@10 for one planted in embedding space only.
Scale: each stage's compute on a synthetic 64-d mixture, each in a fresh process (time,
and the process's peak memory, its inputs and imported libraries included).
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
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.build import peak_rss_kb  # noqa: E402


def _exact_knn(x: np.ndarray, k: int = 15) -> tuple[np.ndarray, np.ndarray]:
    from explorer.compute.knn import knn_graph

    g = knn_graph(x.astype(np.float32), k)
    return g.indices, g.distances


def intrinsic_accuracy() -> list[tuple[str, int, float, float, float]]:
    """(manifold, true dimension, MLE, TwoNN, bias-corrected) at 4,000 points, k = 15."""
    from explorer.compute.intrinsic import mle_global_dimension, twonn_dimension
    from explorer.compute.intrinsic_bias import corrected_global_dimension

    rng = np.random.default_rng(0)
    n = 4000
    theta = rng.uniform(0, 2 * np.pi, n)
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))

    def sphere(dim: int) -> np.ndarray:
        s = rng.normal(size=(n, dim + 1))
        return s / np.linalg.norm(s, axis=1, keepdims=True)

    cases = {
        "circle in R^2": (np.c_[np.cos(theta), np.sin(theta)], 1),
        "sphere S^2 in R^10": (np.c_[sphere(2), np.zeros((n, 7))] @ rotation, 2),
        "cube [0,1]^5": (rng.uniform(size=(n, 5)), 5),
        "cube [0,1]^10": (rng.uniform(size=(n, 10)), 10),
        "cube [0,1]^20": (rng.uniform(size=(n, 20)), 20),
        "Gaussian in R^10": (rng.normal(size=(n, 10)), 10),
        "Gaussian in R^20": (rng.normal(size=(n, 20)), 20),
        "sphere S^10 in R^11": (sphere(10), 10),
        "sphere S^20 in R^21": (sphere(20), 20),
    }
    rows = []
    for name, (x, true) in cases.items():
        _, dist = _exact_knn(x, 15)
        _, corrected = corrected_global_dimension(x, 15)
        rows.append((name, true, mle_global_dimension(dist), twonn_dimension(dist), corrected))
    return rows


def outlier_accuracy() -> list[tuple[str, str, float, float]]:
    """(planted set, method, AUROC scattered points, AUROC group members) vs inliers."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from explorer.compute.outliers import choose_scale, outlier_scores
    from explorer.compute.subsample_weights import subsample_weight_scores
    from explorer.datasets.planted_outliers import auroc_by_kind, planted_outliers

    sets = {
        "3k: clusters 100-1,500, 60 scattered, groups of 30 and 45": {},
        "20k: clusters 900-8,000, 100 scattered, groups of 15, 30, 45": {
            "sizes": (8000, 5000, 4000, 2000, 900),
            "n_scattered": 100,
            "groups": (15, 30, 45),
        },
    }
    rows = []
    for name, options in sets.items():
        for seed in (0, 1):
            x, kind = planted_outliers(seed, **options)  # type: ignore[arg-type]
            idx, dist = _exact_knn(x, 15)
            scores = {
                "ours: outlier (weight beside random samples)": subsample_weight_scores(
                    x, seed=seed
                ).scores,
                "ours: outlier_local (kNN spread)": outlier_scores(idx, dist, choose_scale(dist)),
                "LocalOutlierFactor (k=20)": -LocalOutlierFactor(20)
                .fit(x)
                .negative_outlier_factor_,
                "IsolationForest": -IsolationForest(random_state=0).fit(x).score_samples(x),
            }
            for method, s in scores.items():
                rows.append((f"{name}, seed {seed}", method, *auroc_by_kind(kind, s)))
    return rows


def magnitude_timing(n_rows: int = 100_000) -> list[tuple[str, int, float, float]]:
    """(what, rows, seconds, magnitude): Store.magnitude's solver on a 64-d mixture."""
    from explorer.datasets.synth import synth_mixture
    from explorer.magnitude import selection_magnitude

    x, _ = synth_mixture(n_rows, 64, seed=0)
    rows = []
    for m in (1000, 2000, n_rows):
        t0 = time.perf_counter()
        found = selection_magnitude(x, np.arange(m), 0.5)
        seconds = time.perf_counter() - t0
        label = "exact" if found.exact else f"sampled ({found.sample_size:,} rows)"
        rows.append((label, m, seconds, found.value))
    return rows


def slice_recovery() -> list[tuple[str, str, float]]:
    """(planted slice, its rank among failure slices, precision@10)."""
    from explorer.compute.slice_embedding import embedding_slices
    from explorer.compute.slice_search import sliceline
    from explorer.datasets.synth import synth_mixture

    x, meta = synth_mixture(100_000, 32, seed=3)
    errors = (meta["label"] != meta["prediction"]).to_numpy(dtype=float)
    table = meta.drop(columns=["prediction"])
    found = sliceline(table, errors)
    names = found.table["name"].tolist()
    target = "colour=red & size=small"
    rank = names.index(target) + 1 if target in names else 0
    rows = [(f"metadata: {target}", str(rank or "not found"), float("nan"))]
    # A failure defined only in embedding space: a small blob whose points err 60% of the time.
    rng = np.random.default_rng(4)
    blob = rng.choice(len(x), 1500, replace=False)
    x = x.copy()
    x[blob] = rng.normal(25.0, 0.5, size=(len(blob), x.shape[1]))
    errors = np.where(rng.random(len(x)) < 0.03, 1.0, 0.0)
    errors[blob] = (rng.random(len(blob)) < 0.6).astype(float)
    emb = embedding_slices(x, errors, seed=0)
    first = emb.examples[0]
    precision = float(np.isin(first[first >= 0][:10], blob).mean())
    rows.append(("embedding-only blob (1.5% of points)", "1", precision))
    return rows


# -- slices that explain, names that differ (issue 9, items 2 and 5) ------------------
def slice_ranking_rows(seeds: tuple[int, ...] = (0, 1, 2, 3, 4)) -> list[tuple[int, int, str, str]]:
    """(group size, seed, rank and subsets above it: old order, new order) on planted data.

    The old order sorts every slice by lower bound, lift, size (the store's order before
    slices had a rank); the new one is :func:`explain_ranking`'s.
    """
    from explorer.compute.hierarchy import recursive_kmeans
    from explorer.compute.slice_finder import find_slices
    from explorer.compute.slices import error_flags
    from explorer.config import SliceConfig
    from explorer.datasets.planted import planted_subgroup

    rows = []
    for size in (60, 185, 400):
        for seed in seeds:
            x, meta, group = planted_subgroup(3000, size, seed=seed)
            errors = error_flags(meta["label"], meta["prediction"])
            tree = recursive_kmeans(x, seed=0)
            table = meta.drop(columns=["pid", "prediction"])
            found = find_slices(table, x, tree, errors, SliceConfig(), seed=0)
            t = found.table
            inside = np.array([group[found.members(i)].mean() for i in range(len(found))])
            old = np.lexsort(
                (
                    -t["size"].to_numpy(),
                    -t["lift"].fillna(-1).to_numpy(),
                    -t["lower_bound"].fillna(-1).to_numpy(),
                )
            )
            cells = []
            for order in (old, np.arange(len(found))):
                names = t["name"].to_numpy()[order]
                at = int(np.flatnonzero(names == "scanner=B")[0])
                above = int((inside[order][:at] >= 0.8).sum())
                cells.append(f"{at + 1} ({above})")
            rows.append((size, seed, cells[0], cells[1]))
    return rows


def _abstracts(folder: Path) -> list[str]:
    """Paragraphs of 400+ characters in the text files of ``folder`` (paper abstracts)."""
    out: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        out += [line.strip() for line in path.read_text().splitlines() if len(line) >= 400]
    return list(dict.fromkeys(out))


def _sibling_groups_sharing_a_word(tree: Any, names: list[str]) -> tuple[int, int]:
    from explorer.compute.hierarchy import children

    shared, groups = 0, 0
    for p in np.unique(tree.parent[1:]):
        kids = children(tree, int(p))
        words = [set(names[k].replace(" · ", " ").split()) - {"node", str(k)} for k in kids]
        groups += 1
        shared += any(a & b for i, a in enumerate(words) for b in words[i + 1 :])
    return shared, groups


def topic_name_rows(abstracts: Path | None) -> list[tuple[str, str, str, str]]:
    """(texts, the root's children's names, words in two of them, sibling groups that
    share a word at any level)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from explorer.compute.hierarchy import children, recursive_kmeans
    from explorer.compute.hierarchy_stats import node_names
    from explorer.datasets.planted import planted_topics

    x, meta = planted_topics(80, seed=0)
    cases = [("planted topics (5 x 80 texts)", x, meta["abstract"].tolist())]
    if abstracts is not None:
        texts = _abstracts(abstracts)
        tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(texts)
        vec = TruncatedSVD(64, random_state=0).fit_transform(tfidf)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        cases.append((f"paper abstracts ({len(texts)})", vec, texts))
    rows = []
    for name, vectors, texts in cases:
        tree = recursive_kmeans(np.asarray(vectors, dtype=np.float32), seed=0, leaf_size=20)
        names = node_names(tree, pd.DataFrame({"text": texts}), text_column="text")
        top = [names[k] for k in children(tree, 0)]
        words = [set(n.replace(" · ", " ").split()) for n in top]
        shared = sorted({w for i, a in enumerate(words) for b in words[i + 1 :] for w in a & b})
        bad, groups = _sibling_groups_sharing_a_word(tree, names)
        rows.append((name, " / ".join(top), ", ".join(shared) or "none", f"{bad} of {groups}"))
    return rows


# -- scale: one stage per child process ------------------------------------------------
STAGES = ("intrinsic", "outliers", "hierarchy", "slices", "umap")


def _child(stage: str, data: str) -> dict[str, float]:
    arrays = np.load(data)
    x, idx, dist = arrays["x"], arrays["idx"], arrays["dist"]
    meta = pd.read_parquet(Path(data).with_suffix(".parquet"))
    t0 = time.perf_counter()
    if stage == "intrinsic":
        from explorer.compute.intrinsic import (
            local_intrinsic_dim,
            mle_global_dimension,
            smooth_over_neighbors,
            twonn_dimension,
        )
        from explorer.compute.intrinsic_bias import corrected_global_dimension

        raw = local_intrinsic_dim(dist)
        smooth_over_neighbors(raw, idx)
        mle_global_dimension(raw)
        twonn_dimension(dist)
        corrected_global_dimension(x, 15)
    elif stage == "outliers":
        from explorer.compute.outliers import choose_scale, outlier_scores, validate_approximation
        from explorer.compute.subsample_weights import subsample_weight_scores

        t = choose_scale(dist)
        validate_approximation(x, outlier_scores(idx, dist, t), t, sample=2000)
        subsample_weight_scores(x)
    elif stage == "hierarchy":
        from explorer.compute.hierarchy import node_representatives, recursive_kmeans
        from explorer.compute.hierarchy_stats import node_label_stats, node_names

        tree = recursive_kmeans(x, seed=0)
        node_representatives(x, tree)
        node_label_stats(tree, meta["label"], meta["prediction"])
        node_names(tree, meta.drop(columns=["prediction"]))
    elif stage == "umap":
        from explorer.compute.umap_layout import umap_layout

        umap_layout(x, idx, dist, seed=None)
    else:
        from explorer.compute.hierarchy import recursive_kmeans
        from explorer.compute.slice_finder import find_slices
        from explorer.config import SliceConfig

        tree = recursive_kmeans(x, seed=0)  # the hierarchy stage's work: not timed here
        t0 = time.perf_counter()
        errors = (meta["label"] != meta["prediction"]).to_numpy(dtype=float)
        table = meta.drop(columns=["prediction"])
        find_slices(table, x, tree, errors, SliceConfig(), seed=0)
    seconds = time.perf_counter() - t0
    peak = peak_rss_kb()
    inputs = x.nbytes + idx.nbytes + dist.nbytes
    return {"seconds": seconds, "peak_gb": peak / 1024**2, "inputs_gb": inputs / 1024**3}


def scale_rows(sizes: list[int]) -> list[tuple[int, str, float, float, float]]:
    from explorer.compute.knn import knn_graph
    from explorer.datasets.synth import synth_mixture

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            x, meta = synth_mixture(n, 64, seed=0)
            g = knn_graph(x, 15, build_factor=1.0)  # graph quality barely matters here
            data = Path(tmp) / f"d{n}.npz"
            np.savez(data, x=x, idx=g.indices, dist=g.distances)
            meta.to_parquet(data.with_suffix(".parquet"))
            for stage in STAGES:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", stage, str(data)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((n, stage, r["seconds"], r["peak_gb"], r["inputs_gb"]))
                print(f"  {n:,} {stage}: {r['seconds']:.1f} s, {r['peak_gb']:.2f} GB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5", help="comma list of point counts for scale")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--abstracts", type=Path, help="a folder of .txt files of paper abstracts to name"
    )
    parser.add_argument(
        "--slices-only", action="store_true", help="only the slice ranking and names tables"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    if args.slices_only:
        print_slice_tables(args.abstracts)
        return
    print(f"command: python benchmarks/analytics.py --sizes {args.sizes}\n")
    print_intrinsic_table()
    print_outlier_tables()
    print("\n| planted slice | rank | precision@10 |\n|---|---|---|")
    for name, rank, p10 in slice_recovery():
        print(f"| {name} | {rank} | {'' if p10 != p10 else f'{p10:.2f}'} |")
    print_slice_tables(args.abstracts)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    rows = scale_rows(sizes)
    print("\n| n | stage | seconds | process peak RSS (GB) | of which inputs (GB) |")
    print("|---|---|---|---|---|")
    for n, stage, s, gb, inputs in rows:
        print(f"| {n:,} | {stage} | {s:.1f} | {gb:.2f} | {inputs:.2f} |")
    print_outlier_umap_ratio(rows)


def print_slice_tables(abstracts: Path | None) -> None:
    """The planted group's rank (old and new order) and the sibling names (issue 9)."""
    print(
        "\n| planted group (of 3,000) | seed | rank, old order (subsets above it) "
        "| rank, new order (subsets above it) |\n|---|---|---|---|"
    )
    for size, seed, old, new in slice_ranking_rows():
        print(f"| scanner=B, {size} points | {seed} | {old} | {new} |")
    print(
        "\n| texts | names of the root's children | words in two of them "
        "| sibling groups sharing a word |\n|---|---|---|---|"
    )
    for name, names, shared, groups in topic_name_rows(abstracts):
        print(f"| {name} | {names} | {shared} | {groups} |")


def print_intrinsic_table() -> None:
    print("| manifold | true dimension | MLE | TwoNN | bias-corrected | error |")
    print("|---|---|---|---|---|---|")
    for name, true, mle, two, corrected in intrinsic_accuracy():
        error = (corrected - true) / true
        print(f"| {name} | {true} | {mle:.2f} | {two:.2f} | {corrected:.2f} | {error:+.1%} |")


def print_outlier_tables() -> None:
    print("\n| planted set | method | AUROC scattered points | AUROC group members |")
    print("|---|---|---|---|")
    for name, method, points, groups in outlier_accuracy():
        print(f"| {name} | {method} | {points:.4f} | {groups:.4f} |")
    print("\n| Store.magnitude | rows | seconds | magnitude (t = 0.5) |\n|---|---|---|---|")
    for label, m, seconds, value in magnitude_timing():
        print(f"| {label} | {m:,} | {seconds:.2f} | {value:.1f} |")


def print_outlier_umap_ratio(rows: list[tuple[int, str, float, float, float]]) -> None:
    seconds = {(n, stage): s for n, stage, s, _, _ in rows}
    print("\n| n | outliers s | umap s | outliers / umap |\n|---|---|---|---|")
    for n in sorted({n for n, _, _, _, _ in rows}):
        if (n, "outliers") in seconds and (n, "umap") in seconds:
            ratio = seconds[n, "outliers"] / seconds[n, "umap"]
            print(
                f"| {n:,} | {seconds[n, 'outliers']:.1f} | {seconds[n, 'umap']:.1f} | {ratio:.1%} |"
            )


if __name__ == "__main__":
    main()
