"""Slices that explain: a planted degraded group ranks above its subsets; names say what
each slice is; hierarchy names say what sets a node apart from its siblings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.compute.hierarchy import Tree, children, recursive_kmeans
from explorer.compute.hierarchy_stats import node_names
from explorer.compute.slice_finder import find_slices
from explorer.compute.slice_metadata import encode_predicates
from explorer.compute.slice_ranking import dominant_values, explain_ranking, explained_name
from explorer.compute.slices import SliceSet, concat_slices, error_flags, make_slices
from explorer.compute.terms import distinctive_terms, document_terms
from explorer.config import SliceConfig
from explorer.datasets.planted import TOPICS, planted_subgroup, planted_topics


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("group_size", [60, 185, 400])
def test_planted_group_ranks_in_top_two_above_its_subsets(group_size: int, seed: int) -> None:
    x, meta, group = planted_subgroup(3000, group_size, seed=seed)
    errors = error_flags(meta["label"], meta["prediction"])
    tree = recursive_kmeans(x, seed=0)
    table = meta.drop(columns=["pid", "prediction"])
    found = find_slices(table, x, tree, errors, SliceConfig(), seed=0)
    t = found.table
    assert t["rank"].tolist() == list(range(1, len(found) + 1))
    at = int(np.flatnonzero(t["name"] == "scanner=B")[0])
    assert at < 2, t[["name", "lower_bound"]].head(4)
    inside = np.array([group[found.members(i)].mean() for i in range(len(found))])
    subsets = np.flatnonzero((inside >= 0.7) & (np.arange(len(found)) != at))
    assert (subsets > at).all()
    if group_size < 185:
        return  # ten points a blob: no cluster or region isolates part of the group
    assert subsets.size >= 2  # the clusters and regions did find parts of the group
    # the subsets the group explains name it as their parent, and say they are in it
    explained = subsets[t["parent_slice"].to_numpy()[subsets] == at]
    assert explained.size >= 1
    for i in explained:
        assert "scanner=B" in t["name"].iloc[i]
        assert " points" in t["name"].iloc[i]  # repeats get " (2)"
        assert t["parent_overlap"].iloc[i] >= 0.7


def _slice_set(members: list[list[int]], errors: np.ndarray | None, kinds: list[str]) -> SliceSet:
    sets = [
        make_slices([f"s{i}"], [m], kind=k, errors=errors, n_tried=len(members))
        for i, (m, k) in enumerate(zip(members, kinds, strict=True))
    ]
    return concat_slices(sets)


def test_explained_subset_follows_its_parent_and_credibly_worse_one_does_not() -> None:
    n = 1000
    errors = np.zeros(n)
    errors[:100] = np.arange(100) % 5 < 2  # group 0..99 and its part 0..29: 40% errors
    errors[200:215] = 1.0  # an unrelated slice 200..249: 30%
    errors[100:120] = 1.0  # slice 100..119 inside a broad 100..599 (4%): all wrong
    broad, worse = list(range(100, 600)), list(range(100, 120))
    s = _slice_set(
        [list(range(30)), list(range(200, 250)), list(range(100)), broad, worse],
        errors,
        ["embedding", "cluster", "metadata", "metadata", "cluster"],
    )
    ranked = explain_ranking(s, n)
    t = ranked.table
    names = t["name"].tolist()
    # the 30-point part is no worse than its 100-point group: it follows it, as related
    assert names.index("s2") < names.index("s0")
    assert t["parent_slice"].iloc[names.index("s0")] == names.index("s2")
    assert t["related"].iloc[names.index("s0")] == "in s2 (100%)"
    assert t["related"].iloc[names.index("s2")] == "explains 1"
    # the all-wrong 20 points are credibly worse than their broad 4% slice: not explained
    assert t["parent_slice"].iloc[names.index("s4")] == -1
    assert names.index("s4") < names.index("s3")
    assert t["parent_slice"].iloc[names.index("s1")] == -1


def test_without_errors_a_subset_is_listed_under_the_broader_slice() -> None:
    s = _slice_set([list(range(10, 20)), list(range(50))], None, ["cluster", "metadata"])
    t = explain_ranking(s, 100).table
    assert t["name"].tolist() == ["s1", "s0"]
    assert t["parent_slice"].tolist() == [-1, 0]
    assert t["parent_overlap"].iloc[1] == pytest.approx(1.0)


def test_dominant_values_and_names() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "scanner": np.where(np.arange(1000) < 60, "B", rng.choice(["A", "C"], 1000)),
            "site": rng.choice(["s1", "s2"], 1000, p=[0.9, 0.1]),  # common everywhere
        }
    )
    s = make_slices(["b", "mixed"], [np.arange(2, 52), np.arange(500, 550)], kind="cluster")
    values = dominant_values(s, encode_predicates(table))
    assert values[0] == [("scanner=B", 1.0)]  # site=s1 is 90% here too: not dominant
    assert values[1] == []
    assert explained_name(values[0], 50) == "scanner=B 100% · 50 points"
    assert explained_name(values[1], 50) == "no dominant value · 50 points"
    assert explained_name([], 1, "diffusion · denoising") == "diffusion · denoising · 1 point"


@pytest.fixture(scope="module")
def topics() -> tuple[Tree, pd.DataFrame]:
    x, meta = planted_topics(80, seed=0)
    return recursive_kmeans(x, seed=0, leaf_size=20), meta


def test_text_names_carry_each_topic_word(topics: tuple[Tree, pd.DataFrame]) -> None:
    tree, meta = topics
    names = node_names(tree, meta, text_column="abstract")
    assert names[0] == "all"
    top = children(tree, 0)
    assert len(top) == len(TOPICS)
    for v in top:
        topic = meta["topic"].iloc[tree.order[tree.start[v] : tree.end[v]]].mode()[0]
        assert topic in names[v].split(" · "), (topic, names[v])
        assert not {"data", "model", "models", "learning"} & set(names[v].split())


def test_no_word_names_two_siblings(topics: tuple[Tree, pd.DataFrame]) -> None:
    tree, meta = topics
    names = node_names(tree, meta, text_column="abstract")
    for p in np.unique(tree.parent[1:]):
        seen: set[str] = set()
        for v in children(tree, int(p)):
            words = set(names[v].replace(" · ", " ").split()) - {"node", str(v)}
            assert not words & seen, (int(p), names[v])
            seen |= words


def test_categorical_names_pick_the_value_that_differs_from_siblings() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (300, 4)), rng.normal(12, 1, (300, 4))])
    # site=s1 is the most common value in both blobs; scanner=B marks blob 2 (40% vs 2%)
    site = rng.choice(["s1", "s2"], 600, p=[0.7, 0.3])
    in_two = np.arange(600) >= 300
    scanner = np.where(rng.random(600) < np.where(in_two, 0.4, 0.02), "B", "A")
    tree = recursive_kmeans(x, seed=0, leaf_size=400)
    names = node_names(tree, pd.DataFrame({"site": site, "scanner": scanner}))
    kids = children(tree, 0)
    second = next(v for v in kids if in_two[tree.order[tree.start[v]]])
    assert names[second].startswith("scanner=B (")  # shown with its share (under half)
    assert "site" not in names[second]


def test_bigrams_name_where_they_beat_their_words() -> None:
    # the bigram always comes together: it ties with "diffusion" and is the better name
    filler = [f"w{i % 10}" for i in range(40)]
    texts = [f"diffusion models {w}" for w in filler[:20]]
    texts += [f"language models {w}" for w in filler[20:]]
    docs, vocab = document_terms(texts) or (None, None)
    assert docs is not None
    assert vocab is not None
    member = np.zeros((2, 40))
    member[0, :20], member[1, 20:] = 1, 1
    class_df = member @ docs.toarray()
    terms = distinctive_terms(class_df, [20, 20], class_df.sum(axis=0), 40, vocab, n_terms=2)
    assert "diffusion models" in terms[0]
    assert "models" not in terms[0]
    assert "diffusion" not in terms[0]
    assert not set(" ".join(terms[0]).split()) & set(" ".join(terms[1]).split())


def test_no_words_gives_none() -> None:
    assert document_terms(["", " ", "the and of"] * 10) is None
