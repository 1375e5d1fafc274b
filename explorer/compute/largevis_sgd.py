"""LargeVis's optimiser: alias tables over the edges, and the lock-free SGD kernel.

``optimise_layout`` (the driver: passes, threads' random streams, progress) runs
``_sgd_pass`` (the numba kernel: one chunk of edge samples per thread) over a layout;
``largevis_layout`` calls it on all points, ``placement.largevis_refine`` on one tile
with the rest of the layout held still.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from explorer.jit import njit, prange

# Number of chunks the driver splits the samples into (progress reports, rate updates).
_N_PASSES = 50
_GRAD_CLIP = 5.0
_MIN_RATE = 1e-4  # as the reference: the rate never falls below 1e-4 ρ_0
_XORSHIFT_MUL = np.uint64(0x2545F4914F6CDD1D)


@njit
def _alias_table(weights):  # type: ignore[no-untyped-def]
    """Vose's alias table over ``weights`` (m,): draw a bucket ``b`` uniformly, keep it when
    a uniform 31-bit integer is below ``threshold[b]``, else take ``alias[b]``.

    Returns threshold : (m,) int64 in [0, 2^31), alias : (m,) int64.
    """
    m = weights.shape[0]
    prob = weights * (m / weights.sum())
    alias = np.arange(m)
    small = np.empty(m, dtype=np.int64)
    large = np.empty(m, dtype=np.int64)
    n_small = 0
    n_large = 0
    for b in range(m):
        if prob[b] < 1.0:
            small[n_small] = b
            n_small += 1
        else:
            large[n_large] = b
            n_large += 1
    while n_small > 0 and n_large > 0:
        s = small[n_small - 1]
        g = large[n_large - 1]
        n_small -= 1
        alias[s] = g
        prob[g] = prob[g] + prob[s] - 1.0
        if prob[g] < 1.0:
            small[n_small] = g
            n_small += 1
            n_large -= 1
    # A bucket at prob >= 1 (leftovers are 1 up to rounding) is its own alias, so capping its
    # threshold below 2^31 (to fit int32) changes nothing.
    threshold = np.empty(m, dtype=np.int64)
    for b in range(m):
        threshold[b] = min(np.int64(prob[b] * 2147483648.0), 2147483647)
    return threshold, alias


def _sampling_tables(weights: sp.coo_matrix) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Packed alias tables, one row per bucket so that a draw touches one cache line.

    Returns edges : (E, 5) int32 ``[threshold, from, to, alias from, alias to]`` over the
    directed edges (both directions of each weight), and negatives : (n, 2) int32
    ``[threshold, alias]`` over ``deg(j)^0.75``, deg the weighted degree.
    """
    threshold, alias = _alias_table(weights.data.astype(np.float64))
    rows, cols = weights.row.astype(np.int64), weights.col.astype(np.int64)
    edges = np.stack([threshold, rows, cols, rows[alias], cols[alias]], axis=1)
    degree = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel() ** 0.75
    negatives = np.stack(_alias_table(degree), axis=1)
    return edges.astype(np.int32), negatives.astype(np.int32)


@njit(inline="always")
def _xorshift(state):  # type: ignore[no-untyped-def]
    """One xorshift64* step: the new state and a 64-bit output."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, state * _XORSHIFT_MUL


@njit(inline="always")
def _draw(r, table):  # type: ignore[no-untyped-def]
    """Alias draw from output ``r``: high 32 bits pick the bucket, low 31 bits accept it."""
    b = np.int64(((r >> np.uint64(32)) * np.uint64(table.shape[0])) >> np.uint64(32))
    keep = np.int64(r & np.uint64(0x7FFFFFFF)) < table[b, 0]
    return b, keep


@njit(inline="always")
def _draw_edge(r, edges):  # type: ignore[no-untyped-def]
    """The (from, to) of the edge that output ``r`` picks; all four reads share a row."""
    e, keep = _draw(r, edges)
    x, y, x_alias, y_alias = edges[e, 1], edges[e, 2], edges[e, 3], edges[e, 4]
    return (x, y) if keep else (x_alias, y_alias)


@njit(inline="always")
def _clip(g):  # type: ignore[no-untyped-def]
    return min(max(g, -_GRAD_CLIP), _GRAD_CLIP)


@njit(parallel=True)
def _sgd_pass(  # type: ignore[no-untyped-def]
    coords, edges, negatives, states, n_per_thread, t_start, t_total, rho0, gamma, n_negatives,
    moving,
):  # fmt: skip
    """Run ``n_per_thread`` edge samples on each of ``states.shape[0]`` threads, lock-free.

    Only the points with ``moving[i]`` move (all of them in a layout; one tile's points in
    ``largevis_refine``, the rest of the layout held still around them).

    Threads update ``coords`` in place without locks (Hogwild, as the paper): races lose an
    occasional update on sparse, rarely shared rows. Thread t draws from ``states[t]``.
    """
    n_threads = states.shape[0]
    for t in prange(n_threads):
        state, r = _xorshift(states[t])
        x_next, y_next = _draw_edge(r, edges)
        for s in range(n_per_thread):
            progress = (t_start + s * n_threads + t) / t_total
            rho = rho0 * max(1.0 - progress, _MIN_RATE)
            x, y_pos = x_next, y_next
            # Read the next sample's edge now: the table is large and read at random, so its
            # cache miss overlaps this sample's work instead of stalling the next one.
            state, r = _xorshift(state)
            x_next, y_next = _draw_edge(r, edges)
            gx0 = 0.0
            gx1 = 0.0
            for m in range(n_negatives + 1):
                y = y_pos
                if m > 0:
                    state, r = _xorshift(state)
                    b, keep = _draw(r, negatives)
                    y = b if keep else negatives[b, 1]
                    if y in (y_pos, x):
                        continue
                d0 = coords[x, 0] - coords[y, 0]
                d1 = coords[x, 1] - coords[y, 1]
                f = d0 * d0 + d1 * d1
                if m == 0:  # d/dy_x of log 1/(1+f)
                    g = -2.0 / (1.0 + f)
                else:  # d/dy_x of γ log f/(1+f); 0.1 keeps it finite at f = 0
                    g = 2.0 * gamma / ((1.0 + f) * (0.1 + f))
                c0 = _clip(g * d0) * rho
                c1 = _clip(g * d1) * rho
                gx0 += c0
                gx1 += c1
                if moving[y]:
                    coords[y, 0] -= c0
                    coords[y, 1] -= c1
            if moving[x]:
                coords[x, 0] += gx0
                coords[x, 1] += gx1
        states[t] = state  # read and written once per pass: no false sharing


def optimise_layout(
    coords: NDArray[np.float32],
    weights: sp.coo_matrix,
    moving: NDArray[np.bool_],
    total: int,
    rng: np.random.Generator,
    sgd: tuple[float, float, int, bool],
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """LargeVis's optimiser: ``total`` edge samples of ``weights`` (COO, (m, m)) in 50
    passes, moving ``coords`` (m, 2) in place where ``moving``; negatives are drawn by
    weighted degree. sgd = (learning_rate, gamma, n_negatives, parallel)."""
    learning_rate, gamma, n_negatives, parallel = sgd
    edges, negatives = _sampling_tables(weights)
    n_threads = numba.get_num_threads() if parallel else 1
    # One xorshift stream per thread, each seeded from ``rng`` (nonzero, as xorshift needs).
    states = rng.integers(1, 2**63, size=n_threads, dtype=np.uint64)
    n_passes = min(_N_PASSES, total)
    per_thread = math.ceil(total / (n_passes * n_threads))
    done = 0
    for p in range(n_passes):
        _sgd_pass(
            coords, edges, negatives, states, per_thread, done, total, learning_rate, gamma,
            n_negatives, moving,
        )  # fmt: skip
        done += per_thread * n_threads
        if on_progress is not None:
            on_progress((p + 1) / n_passes)
