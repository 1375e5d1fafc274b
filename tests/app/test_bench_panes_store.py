"""The panes benchmark's synthetic store is a valid store that every analytic pane opens."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from explorer.app.process import open_resources
from explorer.app.registry import available_panes
from explorer.store.reader import Store

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    """A benchmark script by path (``app`` would clash with ``tests.app`` by name)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_store_has_a_consistent_tree_and_slices(tmp_path: Path) -> None:
    path = tmp_path / "bench.store"
    _load("app").write_store(path, 20_000, seed=0)
    panes_store = _load("panes_store")
    panes_store.add_pane_stages(path, seed=0)
    store = Store(path)
    store.verify()
    nodes = store.hierarchy()
    parent, size = nodes["parent"].to_numpy(), nodes["size"].to_numpy()
    assert size[0] == 20_000
    assert parent[0] == -1
    assert (parent[1:] < np.arange(1, len(nodes))).all()  # DFS pre-order: parents first
    inner = np.unique(parent[1:])
    child_sum = np.bincount(parent[1:], weights=size[1:], minlength=len(nodes))
    assert (child_sum[inner] == size[inner]).all()  # children partition their parent
    node = int(inner[-1])
    members = store.node_members(node)
    assert members.size == size[node]
    labels = store.points["label"].cat.codes.to_numpy()
    hot = store.slice_members(f"label = class {panes_store.HOT_CLASS}")
    assert hot.tolist() == np.flatnonzero(labels == panes_store.HOT_CLASS).tolist()
    wrong = store.points["label"].astype(str) != store.points["prediction"].astype(str)
    assert 0.08 < wrong.mean() < 0.15
    names = {spec.name for spec in available_panes(open_resources(path))}
    assert {"treemap", "slices", "outliers", "intrinsic", "trust", "selection"} <= names
