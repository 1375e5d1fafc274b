"""Squarified treemap rectangles for a node's children (and grandchildren) of the hierarchy.

``treemap_rects`` wraps the ``squarify`` package (Bruls, Huizing & van Wijk's squarified
layout) so rectangles come back in the caller's order and zero-size children are allowed.
``treemap_layout`` lays out two levels below a focus node from the hierarchy's ``parent``
and ``size`` arrays, with padding so nested rectangles stay distinguishable.
Rectangles are ``[x, y, width, height]`` with ``(x, y)`` the lower-left corner (Bokeh's
y axis points up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import squarify
from numpy.typing import NDArray

from explorer.errors import InputError


def treemap_rects(
    sizes: NDArray[np.floating] | NDArray[np.integer],
    x: float,
    y: float,
    w: float,
    h: float,
) -> NDArray[np.float64]:
    """Squarified rectangles filling ``[x, x + w] × [y, y + h]``, areas proportional to sizes.

    sizes : (k,) non-negative; returns (k, 4) float64 ``[x, y, width, height]`` in the
    order of ``sizes``. A zero-size child gets ``[x, y, 0, 0]``; all zero (or an empty
    box) gives all such rows.
    """
    sizes = np.asarray(sizes, dtype=np.float64).ravel()
    if not np.isfinite(sizes).all() or (sizes < 0).any():
        msg = "treemap sizes must be finite and >= 0"
        raise InputError(msg)
    out = np.zeros((sizes.size, 4))
    out[:, 0], out[:, 1] = x, y
    positive = np.flatnonzero(sizes > 0)
    if positive.size == 0 or w <= 0 or h <= 0:
        return out
    # squarify wants positive sizes in descending order, summing to the box's area.
    order = positive[np.argsort(-sizes[positive], kind="stable")]
    scaled = sizes[order] * (w * h / sizes[order].sum())
    rects = squarify.squarify(scaled.tolist(), x, y, w, h)
    out[order] = [[r["x"], r["y"], r["dx"], r["dy"]] for r in rects]
    return out


@dataclass(frozen=True, eq=False)
class TreemapLayout:
    """Rectangles of the nodes below a focus node, parents before their children.

    nodes : (m,) int64 node ids; rects : (m, 4) float64 ``[x, y, width, height]``;
    depth : (m,) int8, 1 for children of the focus node, 2 for grandchildren.
    """

    nodes: NDArray[np.int64]
    rects: NDArray[np.float64]
    depth: NDArray[np.int8]


def children_index(parent: NDArray[np.integer]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """CSR of the tree: children of node ``i`` are ``order[offsets[i]:offsets[i + 1]]``.

    parent : (n_nodes,) int, -1 for the root(s). Children keep their id order.
    """
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.size
    if n and (parent.max() >= n or parent.min() < -1):
        msg = f"parent ids must lie in [-1, {n}); the hierarchy arrays do not match"
        raise InputError(msg)
    has = parent >= 0
    order = np.flatnonzero(has)[np.argsort(parent[has], kind="stable")]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(parent[has], minlength=n), out=offsets[1:])
    return order.astype(np.int64), offsets


def _inset(rect: NDArray[np.float64], pad: float, header: float) -> tuple[float, ...]:
    """``rect`` shrunk by ``pad`` on every side and ``header`` more at the top."""
    x, y, w, h = (float(v) for v in rect)
    inner_w = max(w - 2 * pad, 0.0)
    inner_h = max(h - 2 * pad - header, 0.0)
    return x + min(pad, w / 2), y + min(pad, h / 2), inner_w, inner_h


def treemap_layout(
    parent: NDArray[np.integer],
    size: NDArray[np.floating] | NDArray[np.integer],
    node: int,
    *,
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    pad: float = 0.004,
    header: float = 0.0,
) -> TreemapLayout:
    """Two levels of squarified rectangles below ``node``: its children and grandchildren.

    parent : (n_nodes,) int, -1 for the root; size : (n_nodes,) points per node.
    box : ``(x, y, width, height)`` for the children. Each child's children fill the child
    rectangle inset by ``pad`` (and ``header`` at its top, room for a label).
    """
    size = np.asarray(size, dtype=np.float64)
    parent = np.asarray(parent)
    if size.shape != parent.shape:
        msg = f"size has shape {size.shape} but parent has {parent.shape}; pass one per node"
        raise InputError(msg)
    if not 0 <= node < parent.size:
        msg = f"node {node} is not in the hierarchy (0..{parent.size - 1})"
        raise InputError(msg)
    order, offsets = children_index(parent)
    kids = order[offsets[node] : offsets[node + 1]]
    kid_rects = treemap_rects(size[kids], *box)
    nodes, rects, depth = [kids], [kid_rects], [np.ones(kids.size, np.int8)]
    for kid, rect in zip(kids, kid_rects, strict=True):
        grand = order[offsets[kid] : offsets[kid + 1]]
        if grand.size:
            nodes.append(grand)
            rects.append(treemap_rects(size[grand], *_inset(rect, pad, header)))
            depth.append(np.full(grand.size, 2, np.int8))
    return TreemapLayout(
        np.concatenate(nodes).astype(np.int64), np.concatenate(rects), np.concatenate(depth)
    )
