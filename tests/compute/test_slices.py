"""Known answers for slices: statistics, metadata levels, Sliceline and embedding slices."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explorer.compute.hierarchy import recursive_kmeans
from explorer.compute.slice_embedding import embedding_slices
from explorer.compute.slice_metadata import encode_predicates, metadata_slices
from explorer.compute.slice_search import sliceline
from explorer.compute.slices import (
    COLUMNS,
    N_EXAMPLES,
    concat_slices,
    corrected_z,
    error_flags,
    make_slices,
    node_slices,
    rank_failures,
    wilson_lower,
)
from explorer.errors import InputError


def _planted_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Metadata with a planted failure subgroup colour=red & size=small (50% vs 5% errors)."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue", "black"], n),
            "size": rng.choice(["small", "medium", "large"], n),
            "shape": rng.choice(["circle", "square"], n),
            "age": rng.normal(40, 10, n),
            "split": rng.choice(["train", "test"], n, p=[0.8, 0.2]),
            "site": rng.integers(0, 6, n),
        }
    )
    planted = ((table["colour"] == "red") & (table["size"] == "small")).to_numpy()
    errors = rng.random(n) < np.where(planted, 0.5, 0.05)
    return table, errors, planted


def test_statistics_known_answers() -> None:
    errors = np.zeros(100, dtype=bool)
    errors[[0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]] = True
    s = make_slices(
        ["a", "b"],
        [[9, 3, 0, 1, 2, 4, 5, 6, 7, 8, 3], range(50, 60)],
        kind="saved",
        errors=errors,
        n_tried=5,
    )
    assert list(s.table.columns) == list(COLUMNS)
    assert s.members(0).tolist() == list(range(10))  # sorted, duplicates dropped
    assert s.offsets.tolist() == [0, 10, 20]
    assert s.members_flat.dtype == np.int64
    row = s.table.iloc[0]
    assert (row["size"], row["errors"], row["n_tried"]) == (10, 4, 5)
    assert row["error_rate"] == pytest.approx(0.4)
    assert row["lift"] == pytest.approx(0.4 / 0.2)
    z = stats.norm.isf(0.05 / 5)
    p, n = 0.4, 10
    wilson = (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )
    assert row["lower_bound"] == pytest.approx(wilson)
    assert row["p_value"] == pytest.approx(stats.binom.sf(3, 10, 0.2))
    assert row["p_adjusted"] == pytest.approx(min(1.0, 5 * stats.binom.sf(3, 10, 0.2)))
    assert row["score"] == pytest.approx(0.6 * (2 - 1) - 0.4 * (100 / 10 - 1))
    assert s.table.iloc[1]["errors"] == 0
    assert s.examples.shape == (2, N_EXAMPLES)
    assert s.examples[0, :4].tolist() == [0, 1, 2, 3]  # failing members shown first


def test_tiny_perfect_slice_does_not_outrank_a_solid_one() -> None:
    rng = np.random.default_rng(0)
    errors = rng.random(5000) < 0.1
    errors[:2] = True  # slice "tiny": 2 errors out of 2
    errors[1000:1500] = rng.random(500) < 0.4  # slice "solid": 500 points at 40%
    s = make_slices(
        ["tiny", "solid"], [[0, 1], range(1000, 1500)], kind="saved", errors=errors, n_tried=50
    )
    assert s.table["error_rate"].tolist()[0] == 1.0
    ranked = rank_failures(s, min_size=1, significant_only=False)
    assert ranked.table["name"].tolist() == ["solid", "tiny"]
    assert rank_failures(s, min_size=1).table["name"].tolist() == [
        "solid"
    ]  # tiny is not significant


def test_no_labels_metadata_slices_with_nan_failure_columns() -> None:
    table = pd.DataFrame(
        {"colour": ["red"] * 30 + ["blue"] * 20 + ["green"] * 5, "x": np.arange(55.0)}
    )
    s = metadata_slices(table, min_size=10)
    names = s.table["name"].tolist()
    assert {"colour=red", "colour=blue"} <= set(names)
    assert "colour=green" not in names  # under min_size
    for col in ("error_rate", "lift", "lower_bound", "p_value", "score", "errors"):
        assert s.table[col].isna().all()
    assert (s.table["n_scored"] == 0).all()


def test_metadata_levels_and_quantile_bins() -> None:
    n = 400
    table = pd.DataFrame(
        {
            "value": np.arange(n, dtype=float),  # 4 quantile bins of 100
            "flag": np.arange(n) % 2 == 0,
            "id": [f"row{i}" for i in range(n)],  # too many levels: skipped
            "city": ["a", None] * (n // 2),  # missing values form a level
            "const": 1,
        }
    )
    pred = encode_predicates(table, quantile_bins=4)
    assert pred.columns == ["value", "flag", "city"]
    s = metadata_slices(table, quantile_bins=4, min_size=10)
    by_name = dict(zip(s.table["name"], s.table["size"], strict=True))
    assert by_name["value < 99.75"] == 100
    assert by_name["99.75 <= value < 199.5"] == 100
    assert by_name["value >= 299.2"] == 100
    assert by_name["city is missing"] == 200
    assert by_name["flag=True"] == 200
    members = s.members(s.table["name"].tolist().index("99.75 <= value < 199.5"))
    assert members.tolist() == list(range(100, 200))


def test_planted_metadata_subgroup_ranks_first() -> None:
    table, errors, planted = _planted_table(20_000, seed=1)
    found = sliceline(table, errors, max_predicates=3, k=10)
    assert found.table["name"].iloc[0] == "colour=red & size=small"
    assert np.array_equal(found.members(0), np.flatnonzero(planted))
    assert (found.table["kind"] == "failure").all()
    assert (found.table["lower_lift"] > 1).all()
    # Among all failure slices, metadata levels included, it still comes first.
    every = concat_slices([metadata_slices(table, errors=errors), found])
    assert rank_failures(every).table["name"].iloc[0] == "colour=red & size=small"


def test_sliceline_score_mode_finds_the_planted_subgroup() -> None:
    table, errors, _ = _planted_table(20_000, seed=2)
    found = sliceline(table, errors, rank_by="score", alpha=0.95, k=5)
    assert found.table["name"].iloc[0] == "colour=red & size=small"
    assert (found.table["score"] > 0).all()
    assert np.all(np.diff(found.table["score"].to_numpy()) <= 0)


@pytest.mark.parametrize("rank_by", ["lower_bound", "score"])
def test_pruned_search_matches_brute_force(rank_by: str) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    table = pd.DataFrame(
        {c: rng.choice(list("abcd")[: 2 + i % 3], n) for i, c in enumerate("pqrst")}
    )
    risk = 0.05 + 0.3 * (table["p"] == "a") * (table["r"] != "b") + 0.2 * (table["t"] == "c")
    errors = rng.random(n) < risk.to_numpy()
    found = sliceline(
        table, errors, max_predicates=2, min_support=20, rank_by=rank_by, alpha=0.9, k=5
    )
    assert len(found) > 0
    z = corrected_z(0.95, int(found.table["n_tried"].iloc[0]))
    p0, best = errors.mean(), -np.inf
    for cols in [
        *itertools.combinations(table.columns, 1),
        *itertools.combinations(table.columns, 2),
    ]:
        for group in table.groupby(list(cols)).indices.values():
            m = len(group)
            if m < 20:
                continue
            rate = errors[group].mean()
            value = (
                wilson_lower(rate, m, z)
                if rank_by == "lower_bound"
                else 0.9 * (rate / p0 - 1) - 0.1 * (n / m - 1)
            )
            best = max(best, float(value))
    assert found.table[rank_by].iloc[0] == pytest.approx(best)


def test_errors_with_unknowns_and_losses() -> None:
    table, errors, planted = _planted_table(5000, seed=4)
    flags = errors.astype(float)
    flags[:500] = np.nan  # unlabelled rows: members, but not scored
    found = sliceline(table, flags, k=3)
    top = found.table.iloc[0]
    assert top["name"] == "colour=red & size=small"
    assert top["size"] == planted.sum()
    assert top["n_scored"] == planted[500:].sum()
    loss = np.where(errors, 3.0, 0.0)  # a loss above 1 reports in its own units
    s = make_slices(["all"], [np.arange(5000)], kind="saved", errors=loss)
    assert s.table["error_rate"].iloc[0] == pytest.approx(loss.mean())


def test_error_flags() -> None:
    flags = error_flags(pd.Series(["a", "b", None, "c"]), pd.Series(["a", "c", "a", None]))
    np.testing.assert_array_equal(flags, [0.0, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(error_flags(correct=[True, False]), [0.0, 1.0])
    assert error_flags(labels=[1, 2]) is None


def test_bad_input_raises() -> None:
    with pytest.raises(InputError, match="row 1"):
        make_slices(["a"], [[0]], kind="saved", errors=[0.0, -1.0])
    with pytest.raises(InputError, match="kind"):
        make_slices(["a"], [[0]], kind="favourite")
    with pytest.raises(InputError, match="not in the table"):
        metadata_slices(pd.DataFrame({"a": [1]}), columns=["b"])


def _planted_blob(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 Gaussian clusters in 32-D plus a 150-point blob beside cluster 0 (80% vs 10% errors)."""
    rng = np.random.default_rng(seed)
    n, d, n_blob = 3000, 32, 150
    centres = rng.normal(size=(10, d)) * 4 / np.sqrt(2)
    background = centres[rng.integers(0, 10, n - n_blob)] + rng.normal(size=(n - n_blob, d))
    u = rng.normal(size=d)
    blob = centres[0] + 2.0 * u / np.linalg.norm(u) + 0.7 * rng.normal(size=(n_blob, d))
    planted = np.r_[np.zeros(n - n_blob, dtype=bool), np.ones(n_blob, dtype=bool)]
    errors = rng.random(n) < np.where(planted, 0.8, 0.1)
    return np.vstack([background, blob]).astype(np.float32), errors, planted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedding_slice_finds_planted_blob(seed: int) -> None:
    X, errors, planted = _planted_blob(seed)
    found = embedding_slices(X, errors, n_slices=16, seed=seed)
    assert (found.table["kind"] == "embedding").all()
    top10 = found.examples[0][found.examples[0] >= 0]
    assert len(top10) == 10
    assert planted[top10].mean() >= 0.8  # Domino's precision@10
    assert np.isin(top10, found.members(0)).all()
    # Every point belongs to exactly one component (those kept have >= min_size members).
    assert len(np.unique(found.members_flat)) == len(found.members_flat)


def test_embedding_slices_deterministic_and_unlabelled() -> None:
    X, errors, _ = _planted_blob(0)
    a = embedding_slices(X, errors, n_slices=8, seed=3)
    b = embedding_slices(X, errors, n_slices=8, seed=3)
    assert np.array_equal(a.members_flat, b.members_flat)
    plain = embedding_slices(X, None, n_slices=8, seed=3)
    assert plain.table["error_rate"].isna().all()
    assert plain.table["size"].sum() == len(X)


def test_cluster_slices_rank_the_failing_node_first() -> None:
    X, errors, planted = _planted_blob(0)
    X[planted] += 8.0  # move the blob away so that the tree isolates it
    tree = recursive_kmeans(X, leaf_size=50, seed=0)
    s = node_slices(tree, errors=errors, min_size=20)
    assert (s.table["kind"] == "cluster").all()
    top = rank_failures(s)
    best = top.members(0)
    assert planted[best].mean() >= 0.9
    assert top.table["description"].iloc[0].startswith("node ")


def test_concat_and_take_keep_members_aligned() -> None:
    a = make_slices(["x", "y"], [[5, 1], [2]], kind="saved")
    b = make_slices(["z"], [[7, 8, 9]], kind="metadata")
    both = concat_slices([a, b])
    assert both.offsets.tolist() == [0, 2, 3, 6]
    assert both.members(2).tolist() == [7, 8, 9]
    picked = both.take([2, 0])
    assert picked.table["name"].tolist() == ["z", "x"]
    assert picked.members(1).tolist() == [1, 5]
    assert picked.examples.shape == (2, N_EXAMPLES)
