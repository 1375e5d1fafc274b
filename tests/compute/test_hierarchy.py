"""Known answers for the recursive k-means tree, its statistics and its names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.compute.hierarchy import (
    Tree,
    children,
    is_leaf,
    members,
    node_representatives,
    recursive_kmeans,
)
from explorer.compute.hierarchy_stats import node_label_stats, node_means, node_names
from explorer.errors import ConfigError, InputError

SIZES = (300, 200, 100)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three far-apart 16-D Gaussian blobs of 300, 200 and 100 points, and the blob id."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    X = np.concatenate([rng.normal(size=(s, 16)) + centres[i] for i, s in enumerate(SIZES)])
    return X.astype(np.float32), np.repeat(np.arange(3), SIZES)


@pytest.fixture(scope="module")
def tree(blobs: tuple[np.ndarray, np.ndarray]) -> Tree:
    return recursive_kmeans(blobs[0], branching=8, leaf_size=20, max_depth=6, seed=0)


def _check_structure(t: Tree, leaf_size: int, max_depth: int, X: np.ndarray) -> None:
    n, m = t.n_points, t.n_nodes
    assert np.array_equal(np.sort(t.order), np.arange(n))
    assert (t.parent[0], t.depth[0], t.start[0], t.end[0]) == (-1, 0, 0, n)
    assert np.all(t.parent[1:] < np.arange(1, m))  # pre-order: a parent precedes its children
    assert np.array_equal(t.depth[1:], t.depth[t.parent[1:]] + 1)
    assert np.array_equal(t.size, t.end - t.start)
    leaves = is_leaf(t)
    for v in np.flatnonzero(~leaves):
        kids = children(t, v)
        # The children tile the parent's range in order: union of ranges, sizes add up.
        assert (t.start[kids[0]], t.end[kids[-1]]) == (t.start[v], t.end[v])
        assert np.array_equal(t.start[kids[1:]], t.end[kids[:-1]])
        assert t.size[kids].sum() == t.size[v]
        assert len(kids) >= 2
        assert np.all(np.diff(t.size[kids]) <= 0)  # largest child first
    for v in np.flatnonzero(leaves):
        pts = t.order[t.start[v] : t.end[v]]
        assert np.all(t.leaf[pts] == v)
        identical = not (X[pts] != X[pts[0]]).any()
        assert t.size[v] <= leaf_size or t.depth[v] == max_depth or identical
    for v in range(0, m, max(1, m // 10)):
        np.testing.assert_allclose(t.centroid[v], X[members(t, v)].mean(axis=0), atol=1e-4)


def test_root_children_are_the_three_blobs(
    tree: Tree, blobs: tuple[np.ndarray, np.ndarray]
) -> None:
    _, blob = blobs
    kids = children(tree, 0)
    assert len(kids) == 3  # Ward merging undoes the over-split into 8
    for kid, want in zip(kids, range(3), strict=True):  # largest child first
        assert np.array_equal(members(tree, kid), np.flatnonzero(blob == want))


def test_fixed_branching_without_merging_finds_the_blobs(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, blob = blobs
    t = recursive_kmeans(X, branching=3, leaf_size=20, merge_gap=None, seed=1)
    got = sorted(tuple(members(t, k)) for k in children(t, 0))
    assert got == sorted(tuple(np.flatnonzero(blob == b)) for b in range(3))


def test_structure_invariants(tree: Tree, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    _check_structure(tree, leaf_size=20, max_depth=6, X=blobs[0])
    dtypes = [a.dtype for a in (tree.order, tree.parent, tree.leaf, tree.centroid)]
    assert dtypes == [np.int64, np.int32, np.int32, np.float32]


def test_depth_cap_and_uniform_data_structure() -> None:
    X = np.random.default_rng(3).uniform(size=(2000, 5))
    t = recursive_kmeans(X, branching=4, leaf_size=10, max_depth=3, seed=0)
    _check_structure(t, leaf_size=10, max_depth=3, X=X)
    assert t.depth.max() == 3


def test_identical_points_make_one_leaf() -> None:
    t = recursive_kmeans(np.ones((500, 4), dtype=np.float32), leaf_size=10, seed=0)
    assert (t.n_nodes, t.size[0]) == (1, 500)
    assert np.all(t.leaf == 0)
    assert node_representatives(np.ones((500, 4)), t, 3).shape == (1, 3)


def test_duplicates_and_a_lone_outlier() -> None:
    X = np.zeros((300, 3), dtype=np.float32)
    X[-1] = 50.0  # one distinct point among duplicates still splits off
    t = recursive_kmeans(X, leaf_size=10, seed=0)
    _check_structure(t, leaf_size=10, max_depth=6, X=X)
    assert sorted(t.size[children(t, 0)]) == [1, 299]
    # Among a real blob, a single far point is folded into a sibling, not a 1-point child.
    rng = np.random.default_rng(0)
    Y = np.concatenate([rng.normal(size=(1000, 8)), np.full((1, 8), 30.0)])
    t2 = recursive_kmeans(Y, leaf_size=20, seed=0)
    assert t2.size[children(t2, 0)].min() > 1


def test_deterministic_for_a_seed(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X = np.random.default_rng(5).normal(size=(1500, 8)).astype(np.float32)
    a = recursive_kmeans(X, leaf_size=30, seed=7)
    b = recursive_kmeans(X, leaf_size=30, seed=7)
    for field in ("order", "parent", "start", "end", "centroid", "leaf"):
        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_progress_is_monotone_and_finishes(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    seen: list[float] = []
    recursive_kmeans(blobs[0], leaf_size=20, seed=0, on_progress=seen.append)
    assert seen[-1] == 1.0
    assert np.all(np.diff(seen) >= 0)
    assert len(seen) <= 102


def test_bad_input_raises() -> None:
    with pytest.raises(InputError, match="row 2"):
        recursive_kmeans(np.array([[0.0, 1.0], [1.0, 0.0], [np.nan, 0.0]]))
    with pytest.raises(ConfigError, match="branching"):
        recursive_kmeans(np.zeros((10, 2)), branching=1)


def test_representatives_are_nearest_members(
    tree: Tree, blobs: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = blobs
    reps = node_representatives(X, tree, n_representatives=5)
    assert reps.shape == (tree.n_nodes, 5)
    assert reps.dtype == np.int64
    for v in range(tree.n_nodes):
        pts = members(tree, v)
        got = reps[v][reps[v] >= 0]
        assert len(got) == min(5, len(pts))
        assert np.isin(got, pts).all()
        dist = ((X[pts] - tree.centroid[v]) ** 2).sum(axis=1)
        got_dist = ((X[got] - tree.centroid[v]) ** 2).sum(axis=1)
        np.testing.assert_allclose(got_dist, np.sort(dist)[: len(got)], rtol=1e-4, atol=1e-4)


def test_label_stats_known_answers(tree: Tree, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    _, blob = blobs
    labels = np.array(["a", "b", "c"])[blob]
    predictions = labels.copy()
    predictions[blob == 2] = "a"  # every point of the smallest blob is wrong
    stats = node_label_stats(tree, labels, predictions)
    assert list(stats["classes"]) == ["a", "b", "c"]
    p = np.array(SIZES) / 600
    assert stats["entropy"][0] == pytest.approx(-(p * np.log2(p)).sum(), rel=1e-5)
    assert stats["dominant"][0] == 0
    assert stats["dominant_share"][0] == pytest.approx(0.5)
    kids = children(tree, 0)
    assert list(stats["dominant"][kids]) == [0, 1, 2]
    assert np.all(stats["dominant_share"][kids] == 1.0)
    assert np.all(stats["entropy"][kids] == 0)
    assert stats["error_rate"][0] == pytest.approx(100 / 600)
    assert list(stats["error_rate"][kids]) == [0.0, 0.0, 1.0]
    assert stats["errors"][is_leaf(tree)].sum() == 100


def test_label_stats_missing_and_correct_flag(tree: Tree) -> None:
    labels = pd.Series([None] * 10 + [1] * (tree.n_points - 10))
    correct = np.ones(tree.n_points, dtype=bool)
    correct[:60] = False
    stats = node_label_stats(tree, labels, correct=correct)
    assert stats["n_labeled"][0] == tree.n_points - 10
    assert stats["error_rate"][0] == pytest.approx(60 / tree.n_points)
    none = node_label_stats(tree, labels)
    assert np.isnan(none["error_rate"]).all()


def test_node_means_ignore_nan(tree: Tree) -> None:
    values = np.arange(tree.n_points, dtype=np.float64)
    first_leaf = tree.leaf[0]
    values[tree.leaf == first_leaf] = np.nan
    means = node_means(tree, values)
    assert means.dtype == np.float32
    assert np.isnan(means[first_leaf])
    assert means[0] == pytest.approx(np.nanmean(values), rel=1e-6)
    for v in children(tree, 0):
        assert means[v] == pytest.approx(np.nanmean(values[members(tree, v)]), rel=1e-6)


def test_names_pick_the_planted_category(tree: Tree, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    _, blob = blobs
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {
            "colour": np.array(["red", "green", "blue"])[blob],
            "split": rng.choice(["train", "test"], size=blob.size),  # noise: names no blob
            "score": rng.normal(size=blob.size),  # float: never a category
        }
    )
    names = node_names(tree, table)
    assert names[0] == "all"
    assert [names[k] for k in children(tree, 0)] == ["colour=red", "colour=green", "colour=blue"]
    assert len(names) == tree.n_nodes


def test_text_names_use_class_tfidf(tree: Tree, blobs: tuple[np.ndarray, np.ndarray]) -> None:
    _, blob = blobs
    rng = np.random.default_rng(2)
    vocab = np.array([["cat", "kitten"], ["engine", "wheel"], ["forest", "leaf"]])
    text = [" ".join(rng.choice(vocab[b], 4)) + " the photo shows" for b in blob]
    names = node_names(tree, pd.DataFrame({"caption": text}), text_column="caption", max_terms=1)
    for kid, b in zip(children(tree, 0), range(3), strict=True):
        assert set(names[kid].split(" · ")) == set(vocab[b])  # not the shared "photo shows"
