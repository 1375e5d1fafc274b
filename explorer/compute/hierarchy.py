"""A DendroMap-style cluster tree built by recursive k-means, scaling to millions of points.

Each node is split into at most ``branching`` children: k-means (k-means++ seeding, then
Lloyd) on a subsample of the node, every point of the node assigned to its nearest centre,
so the cost is O(n · branching · depth). Over-split natural clusters are merged back: the
k centres are joined by Ward's criterion and the tree is cut at a merge whose cost jumps by
more than ``merge_gap`` times (three far-apart blobs become three children, not eight).
Tiny children are folded into their nearest sibling. A node stops splitting when it has
``leaf_size`` points or fewer, reaches ``max_depth``, or holds a single distinct point.

Nodes are numbered in DFS pre-order, so the points of every node are one contiguous range
``order[start:end]`` of a single permutation; node 0 is the root. The k-means pieces live
in :mod:`explorer.compute.kmeans`; per-node statistics and names in
:mod:`explorer.compute.hierarchy_stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from explorer.compute.kmeans import group_means, kmeans, nearest_centres, ward_cut
from explorer.config import HierarchyConfig
from explorer.errors import InputError

# Points a node's k-means sees: enough for stable centres, small enough that the top
# levels of a million-point tree cost a fraction of a second each.
_SAMPLE_MIN = 4096
_SAMPLE_PER_CLUSTER = 512
# Rows per block when reading points (bounds temporary copies of memory-mapped input).
_ASSIGN_BLOCK = 65536


@dataclass(frozen=True)
class Tree:
    """A cluster tree over ``n`` points with ``m`` nodes in DFS pre-order.

    order : (n,) int64, point ids sorted by leaf in DFS order
    parent : (m,) int32, -1 for the root (node 0)
    depth : (m,) int32, 0 for the root
    start, end : (m,) int64, the node's points are ``order[start:end]``
    size : (m,) int64, ``end - start``
    centroid : (m, d) float32, mean of the node's points
    leaf : (n,) int32, the leaf node of each point
    """

    order: NDArray[np.int64]
    parent: NDArray[np.int32]
    depth: NDArray[np.int32]
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    size: NDArray[np.int64]
    centroid: NDArray[np.float32]
    leaf: NDArray[np.int32]

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``m``."""
        return int(self.parent.shape[0])

    @property
    def n_points(self) -> int:
        """Number of points ``n``."""
        return int(self.order.shape[0])


def children(tree: Tree, node: int) -> NDArray[np.int64]:
    """Ids of the children of ``node`` in DFS order (largest first); empty for a leaf."""
    return np.flatnonzero(tree.parent == node).astype(np.int64)


def members(tree: Tree, node: int) -> NDArray[np.int64]:
    """Sorted point ids (int64) of ``node``."""
    return np.sort(tree.order[tree.start[node] : tree.end[node]])


def is_leaf(tree: Tree) -> NDArray[np.bool_]:
    """(m,) bool: True where a node has no children."""
    has_child = np.zeros(tree.n_nodes, dtype=bool)
    has_child[tree.parent[1:]] = True
    return ~has_child


def _check_points(X: ArrayLike) -> NDArray[np.floating]:
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        msg = f"points have shape {arr.shape}; need a non-empty (n, d) array"
        raise InputError(msg)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        msg = f"points row {row} is not finite; drop or impute it before clustering"
        raise InputError(msg)
    return arr


def _split_labels(
    Xn: NDArray[np.float32],
    branching: int,
    merge_gap: float | None,
    rng: np.random.Generator,
) -> NDArray[np.intp] | None:
    """Child label (0..c-1, largest child first) per point of a node, or None: no split."""
    n = Xn.shape[0]
    sample_size = max(_SAMPLE_MIN, _SAMPLE_PER_CLUSTER * branching)
    sample = Xn if n <= sample_size else Xn[np.sort(rng.choice(n, sample_size, replace=False))]
    if not (sample != sample[0]).any():
        # The sample holds one distinct point; split on all points if the node does not.
        if not (Xn != Xn[0]).any():
            return None
        sample = Xn
    centres = kmeans(sample, branching, rng)
    if centres.shape[0] < 2:
        return None
    nearest = nearest_centres(Xn, centres)
    counts = np.bincount(nearest, minlength=centres.shape[0])
    keep = counts > 0
    centres, nearest = centres[keep], np.cumsum(keep)[nearest] - 1
    counts = counts[keep]
    if centres.shape[0] < 2:
        return None
    identity = np.arange(centres.shape[0])
    min_child = max(2, n // (16 * branching))
    labels = None
    if merge_gap is not None:
        labels = _fold_tiny(Xn, centres, ward_cut(centres, counts, merge_gap), nearest, min_child)
    if labels is None:
        labels = _fold_tiny(Xn, centres, identity, nearest, min_child)
    if labels is None:
        # Only tiny children besides one big one (duplicates plus a few distinct points):
        # keep them, or the node could never split.
        labels = nearest
    sizes = np.bincount(labels)
    # Relabel so that child 0 is the largest (treemaps lay out large rectangles first).
    rank = np.empty(sizes.shape[0], dtype=np.intp)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(sizes.shape[0])
    return rank[labels]


def _fold_tiny(
    Xn: NDArray[np.float32],
    centres: NDArray[np.float32],
    group: NDArray[np.intp],
    nearest: NDArray[np.intp],
    min_child: int,
) -> NDArray[np.intp] | None:
    """Labels (0..c-1) after moving children under ``min_child`` points to the nearest
    centre of a larger sibling; None when fewer than two children would remain."""
    labels = group[nearest]
    sizes = np.bincount(labels)
    tiny = sizes < min_child
    if (~tiny).sum() < 2:
        return None
    if tiny.any():
        big_centres = np.flatnonzero(~tiny[group])
        moved = tiny[labels]
        labels[moved] = group[big_centres[nearest_centres(Xn[moved], centres[big_centres])]]
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.intp)


def _root_mean(X: NDArray[np.floating]) -> NDArray[np.float64]:
    total = np.zeros(X.shape[1], dtype=np.float64)
    for a in range(0, X.shape[0], _ASSIGN_BLOCK):
        total += X[a : a + _ASSIGN_BLOCK].sum(axis=0, dtype=np.float64)
    mean: NDArray[np.float64] = total / X.shape[0]
    return mean


class _Builder:
    """Grows the tree node by node in DFS pre-order; owns the permutation and the rng."""

    def __init__(
        self, X: NDArray[np.floating], seed: int, on_progress: Callable[[float], None] | None
    ) -> None:
        self.X = X
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(X.shape[0], dtype=np.int64)
        self.parent: list[int] = []
        self.depth: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.centroid: list[NDArray[np.float64]] = []
        self.on_progress = on_progress
        self.done = 0
        self.reported = 0.0

    def leaf_done(self, size: int) -> None:
        self.done += size
        fraction = self.done / self.X.shape[0]
        if self.on_progress is not None and fraction - self.reported >= 0.01:
            self.reported = fraction
            self.on_progress(fraction)

    def split(
        self, s: int, e: int, branching: int, merge_gap: float | None
    ) -> list[tuple[int, int, NDArray[np.float64]]]:
        """Split the node on ``order[s:e]``; reorder that range by child; return child ranges."""
        idx = self.order[s:e]
        Xn = np.asarray(self.X[idx], dtype=np.float32)
        labels = _split_labels(Xn, branching, merge_gap, self.rng)
        if labels is None:
            return []
        n_children = int(labels.max()) + 1
        means, counts = group_means(Xn, labels, n_children)
        self.order[s:e] = idx[np.argsort(labels, kind="stable")]
        bounds = s + np.concatenate([[0], np.cumsum(counts)])
        return [(int(bounds[c]), int(bounds[c + 1]), means[c]) for c in range(n_children)]


def recursive_kmeans(
    X: ArrayLike,
    *,
    branching: int = 8,
    leaf_size: int = 50,
    max_depth: int = 6,
    seed: int = 0,
    merge_gap: float | None = 5.0,
    on_progress: Callable[[float], None] | None = None,
) -> Tree:
    """Recursive k-means tree over the rows of ``X``.

    X : (n, d) float, finite. ``branching`` is the most children a node gets (fewer where
    k-means finds fewer distinct centres or Ward merges over-split clusters: ``merge_gap`` is
    the jump in Ward merge cost that counts as a natural cut; None always keeps every centre).
    Nodes with ``leaf_size`` points or fewer, at ``max_depth``, or of identical points are
    leaves. Deterministic for a ``seed``. ``on_progress`` receives the fraction of points
    already placed in leaves.
    """
    HierarchyConfig(branching=branching, leaf_size=leaf_size, max_depth=max_depth).check()
    arr = _check_points(X)
    b = _Builder(arr, seed, on_progress)
    # Stack entries: (start, end, parent, depth, centroid); popping the first child next
    # numbers the nodes in DFS pre-order.
    stack = [(0, arr.shape[0], -1, 0, _root_mean(arr))]
    while stack:
        s, e, parent, depth, mean = stack.pop()
        node = len(b.parent)
        b.parent.append(parent)
        b.depth.append(depth)
        b.start.append(s)
        b.end.append(e)
        b.centroid.append(mean)
        kids = (
            [] if e - s <= leaf_size or depth >= max_depth else b.split(s, e, branching, merge_gap)
        )
        if not kids:
            b.leaf_done(e - s)
        for cs, ce, cmean in reversed(kids):
            stack.append((cs, ce, node, depth + 1, cmean))
    start = np.asarray(b.start, dtype=np.int64)
    end = np.asarray(b.end, dtype=np.int64)
    parent_arr = np.asarray(b.parent, dtype=np.int32)
    has_child = np.zeros(parent_arr.shape[0], dtype=bool)
    has_child[parent_arr[1:]] = True
    leaves = np.flatnonzero(~has_child)
    leaf = np.empty(arr.shape[0], dtype=np.int32)
    leaf[b.order] = np.repeat(leaves.astype(np.int32), (end - start)[leaves])
    if on_progress is not None:
        on_progress(1.0)
    return Tree(
        order=b.order,
        parent=parent_arr,
        depth=np.asarray(b.depth, dtype=np.int32),
        start=start,
        end=end,
        size=end - start,
        centroid=np.asarray(b.centroid, dtype=np.float32).reshape(-1, arr.shape[1]),
        leaf=leaf,
    )


def node_representatives(X: ArrayLike, tree: Tree, n_representatives: int = 8) -> NDArray[np.int64]:
    """The ``r`` members of each node nearest its centroid, nearest first.

    Returns (m, r) int64 point ids, padded with -1 where a node has fewer than ``r`` points.
    """
    arr = np.asarray(X)
    r = int(n_representatives)
    out = np.full((tree.n_nodes, r), -1, dtype=np.int64)
    for level in range(int(tree.depth.max()) + 1):
        nodes = np.flatnonzero(tree.depth == level)
        pos, owner = node_positions(tree, nodes)
        d2 = np.empty(pos.shape[0], dtype=np.float64)
        for a in range(0, pos.shape[0], _ASSIGN_BLOCK):
            rows = np.asarray(arr[tree.order[pos[a : a + _ASSIGN_BLOCK]]], dtype=np.float32)
            diff = rows - tree.centroid[owner[a : a + _ASSIGN_BLOCK]]
            d2[a : a + _ASSIGN_BLOCK] = np.einsum("ij,ij->i", diff, diff)
        # Sort by (node, distance); the first r of each node's run are its representatives.
        by = np.lexsort((d2, owner))
        run_start = np.searchsorted(owner[by], owner[by], side="left")
        rank = np.arange(by.shape[0]) - run_start
        top = rank < r
        out[owner[by][top], rank[top]] = tree.order[pos[by][top]]
    return out


def node_positions(
    tree: Tree, nodes: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Positions into ``tree.order`` of the points of ``nodes``, and the node owning each.

    nodes : (k,) int64 node ids. Returns two (sum of sizes,) int64 arrays, node by node in
    the given order; a point appears once per listed node that contains it.
    """
    sizes = tree.size[nodes]
    owner = np.repeat(nodes, sizes)
    offsets = np.repeat(tree.start[nodes] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return np.arange(owner.shape[0], dtype=np.int64) + offsets, owner
