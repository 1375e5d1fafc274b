"""Domino-style slices of the embedding space, for failures no metadata column names.

An error-aware mixture model in PCA space (Domino, Eyuboglu et al., 2022): diagonal
Gaussians over the PCA coordinates whose components also model the per-point error as a
Bernoulli, its log-likelihood counted ``error_weight`` times, fitted by EM on a sample. The
error term steers where components go; membership then uses the embedding alone, so a slice
is a region (it also places unlabelled points, and a component that merely split a cluster's
errors from the rest of it does not keep them). Components are ranked like failure slices,
by the corrected lower bound of their error rate; a slice's examples are its most probable
members, as Domino scores precision@10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from explorer.compute.slices import N_EXAMPLES, SliceSet, check_errors, make_slices
from explorer.errors import InputError
from explorer.jit import njit, prange

_EM_ITERS = 100
_EM_TOL = 1e-4  # nats per point, as sklearn's GaussianMixture measures convergence
_BLOCK = 65536
# Rows x components x dims above which the threaded kernels pay for starting threads.
_PARALLEL_WORK = 1 << 22


@dataclass(frozen=True)
class _Mixture:
    """Diagonal Gaussians over PCA coordinates, each with a Bernoulli error rate."""

    log_weight: NDArray[np.float64]  # (K,)
    mean: NDArray[np.float64]  # (K, p)
    var: NDArray[np.float64]  # (K, p)
    rate: NDArray[np.float64]  # (K,) error probability per component


@njit
def _gauss_rows(Z, mean, inv, log_norm, out, lo, hi):  # type: ignore[no-untyped-def]
    for i in range(lo, hi):
        for k in range(mean.shape[0]):
            acc = 0.0
            for j in range(Z.shape[1]):
                diff = Z[i, j] - mean[k, j]
                acc += diff * diff * inv[k, j]
            out[i, k] = log_norm[k] - 0.5 * acc


@njit(parallel=True)
def _gauss_blocks(Z, mean, inv, log_norm, out, block):  # type: ignore[no-untyped-def]
    for b in prange((Z.shape[0] + block - 1) // block):
        _gauss_rows(Z, mean, inv, log_norm, out, b * block, min(Z.shape[0], (b + 1) * block))


@njit
def _moment_cols(Z, resp, s0, s1, s2, k_lo, k_hi):  # type: ignore[no-untyped-def]
    for k in range(k_lo, k_hi):
        for i in range(Z.shape[0]):
            r = resp[i, k]
            s0[k] += r
            for j in range(Z.shape[1]):
                z = Z[i, j]
                s1[k, j] += r * z
                s2[k, j] += r * z * z


@njit(parallel=True)
def _moment_all(Z, resp, s0, s1, s2):  # type: ignore[no-untyped-def]
    for k in prange(resp.shape[1]):  # one component per thread: no shared sums
        _moment_cols(Z, resp, s0, s1, s2, k, k + 1)


def _threaded(work: int) -> bool:
    # Numba kernels rather than BLAS: BLAS threads spin on a busy machine (a 3,000-point
    # fit took 7 s instead of 0.1 s under load); small calls skip thread start-up too.
    return work >= _PARALLEL_WORK


def _log_gauss(Z: NDArray[np.float32], mix: _Mixture) -> NDArray[np.float64]:
    """(n, K) log-density of each row under each diagonal Gaussian."""
    out = np.empty((Z.shape[0], mix.mean.shape[0]), dtype=np.float64)
    log_norm = -0.5 * np.log(2 * np.pi * mix.var).sum(axis=1)
    args = (np.ascontiguousarray(Z), mix.mean, 1.0 / mix.var, log_norm, out)
    if _threaded(out.size * Z.shape[1]):
        _gauss_blocks(*args, 1024)
    else:
        _gauss_rows(*args, 0, Z.shape[0])
    return out


def _log_resp(
    Z: NDArray[np.float32], e: NDArray[np.float64], mix: _Mixture, weight: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(n, K) log responsibilities and (n,) log-likelihood; NaN errors use the embedding only."""
    log_p = _log_gauss(Z, mix) + mix.log_weight
    known = ~np.isnan(e)
    ek = np.where(known, e, 0.0)[:, None]
    bern = ek * np.log(mix.rate) + (1.0 - ek) * np.log1p(-mix.rate)
    log_p += weight * np.where(known[:, None], bern, 0.0)
    top = log_p.max(axis=1, keepdims=True)
    total = top[:, 0] + np.log(np.exp(log_p - top).sum(axis=1))
    return log_p - total[:, None], total


def _m_step(
    Z: NDArray[np.float32], e: NDArray[np.float64], resp: NDArray[np.float64], reg: float
) -> _Mixture:
    K = resp.shape[1]
    s0, s1, s2 = np.zeros(K), np.zeros((K, Z.shape[1])), np.zeros((K, Z.shape[1]))
    args = (np.ascontiguousarray(Z), np.ascontiguousarray(resp), s0, s1, s2)
    if _threaded(resp.size * Z.shape[1]):
        _moment_all(*args)
    else:
        _moment_cols(*args, 0, K)
    nk = s0 + 1e-10
    mean = s1 / nk[:, None]
    var = s2 / nk[:, None] - mean**2
    known = ~np.isnan(e)
    rate = (resp[known] * e[known][:, None]).sum(axis=0) / (resp[known].sum(axis=0) + 1e-10)
    return _Mixture(
        log_weight=np.log(nk / nk.sum()),
        mean=mean,
        var=np.maximum(var, 0.0) + reg,
        rate=np.clip(rate, 1e-3, 1 - 1e-3),
    )


def _fit_mixture(
    Z: NDArray[np.float32],
    e: NDArray[np.float64],
    n_slices: int,
    weight: float,
    rng: np.random.Generator,
) -> _Mixture:
    """EM from a hard start: k-means++ seeds on the embedding with the error appended."""
    from sklearn.cluster import kmeans_plusplus

    spread = float(np.sqrt(Z.var(axis=0).sum()))
    # Errors (unknown: 0.5) as one more coordinate pull k-means++ seeds apart by outcome.
    extra = spread * np.nan_to_num(e, nan=0.5)
    joint = np.hstack([Z, extra[:, None]]).astype(np.float32)
    seed = int(rng.integers(2**31 - 1))
    centres, _ = kmeans_plusplus(joint, n_slices, random_state=seed)
    nearest = np.argmin((centres**2).sum(axis=1) - 2.0 * (joint @ centres.T), axis=1)
    resp = np.eye(n_slices)[nearest]
    # floored: identical points have no variance, and a zero variance has no density
    reg = max(1e-3 * float(Z.var(axis=0).mean()), 1e-12)
    mix = _m_step(Z, e, resp, reg)
    last = -np.inf
    for _ in range(_EM_ITERS):
        log_r, total = _log_resp(Z, e, mix, weight)
        mix = _m_step(Z, e, np.exp(log_r), reg)
        if total.mean() - last < _EM_TOL:
            break
        last = float(total.mean())
    return mix


def _pca(
    X: NDArray[np.floating], sample: NDArray[np.int64], n_components: int, seed: int
) -> NDArray[np.float32]:
    """(n, p) PCA coordinates, the basis fitted on the ``sample`` rows."""
    from sklearn.decomposition import PCA

    p = max(1, min(n_components, X.shape[1], sample.shape[0] - 1))
    # The d x d covariance route is exact and one BLAS call when rows far outnumber dims.
    solver = "covariance_eigh" if X.shape[1] <= 2048 else "randomized"
    pca = PCA(n_components=p, svd_solver=solver, random_state=seed)
    pca.fit(np.asarray(X[sample], dtype=np.float32))
    out = np.empty((X.shape[0], p), dtype=np.float32)
    for a in range(0, X.shape[0], _BLOCK):
        out[a : a + _BLOCK] = pca.transform(np.asarray(X[a : a + _BLOCK], dtype=np.float32))
    return out


def _assign(Z: NDArray[np.float32], mix: _Mixture) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
    """Hard component per row, and (K, N_EXAMPLES) most probable rows per component.

    Rows rank by responsibility, then by Gaussian density (centrality) to break the ties of
    saturated responsibilities; -1 pads components with fewer rows.
    """
    K = mix.rate.shape[0]
    label = np.empty(Z.shape[0], dtype=np.intp)
    best_key = np.full((K, 0), -np.inf)
    best_row = np.zeros((K, 0), dtype=np.int64)
    unknown = np.full(min(_BLOCK, Z.shape[0]), np.nan)
    for a in range(0, Z.shape[0], _BLOCK):
        # Membership by the embedding alone: a slice is a region, which also places rows
        # without a label, and a component that only split off a cluster's errors does not
        # keep them (its region is shared with the cluster's other component).
        log_r, _ = _log_resp(Z[a : a + _BLOCK], unknown[: Z[a : a + _BLOCK].shape[0]], mix, 0.0)
        label[a : a + _BLOCK] = np.argmax(log_r, axis=1)
        # Rounded responsibility first, density second, as one sortable key.
        key = np.round(np.exp(log_r), 6).T * 1e6 + np.tanh(
            _log_gauss(Z[a : a + _BLOCK], mix).T / 1e4
        )
        rows = np.broadcast_to(np.arange(a, a + key.shape[1]), key.shape)
        key = np.hstack([best_key, key])
        rows = np.hstack([best_row, rows])
        if key.shape[1] > N_EXAMPLES:  # only the best few need sorting
            cut = np.argpartition(-key, N_EXAMPLES - 1, axis=1)[:, :N_EXAMPLES]
            key, rows = np.take_along_axis(key, cut, axis=1), np.take_along_axis(rows, cut, axis=1)
        keep = np.lexsort((rows, -key), axis=1)
        best_key = np.take_along_axis(key, keep, axis=1)
        best_row = np.take_along_axis(rows, keep, axis=1)
    examples = np.full((K, N_EXAMPLES), -1, dtype=np.int64)
    examples[:, : best_row.shape[1]] = best_row
    return label, examples


def embedding_slices(
    X: ArrayLike,
    errors: ArrayLike | None,
    *,
    n_slices: int = 16,
    pca_components: int = 32,
    error_weight: float = 5.0,
    sample_size: int = 20_000,
    min_size: int = 10,
    seed: int = 0,
    alpha: float = 0.6,
    confidence: float = 0.95,
) -> SliceSet:
    """Domino-style slices of the embedding space (kind ``embedding``), worst first.

    X : (n, d) embeddings; errors : (n,) as for :func:`sliceline`, or None (plain clusters).
    A mixture of ``n_slices`` diagonal Gaussians on ``pca_components`` PCA coordinates, each
    also modelling the error as a Bernoulli whose log-likelihood counts ``error_weight``
    times, is fitted by EM on ``sample_size`` rows; every row joins its most probable
    component. Slices with ``min_size`` members are ranked by the corrected lower bound of
    their error rate (``n_tried = n_slices``); ``examples`` are each component's most probable
    rows. Deterministic for a ``seed``.
    """
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[0] < 2 * n_slices:
        msg = f"embeddings have shape {arr.shape}; need (n, d) with n >= 2 * n_slices"
        raise InputError(msg)
    if errors is None:
        e, weight = np.full(arr.shape[0], np.nan), 0.0
    else:
        e, weight = check_errors(errors, arr.shape[0])[0], float(error_weight)
    rng = np.random.default_rng(seed)
    n_fit = min(sample_size, arr.shape[0])
    sample = np.sort(rng.choice(arr.shape[0], n_fit, replace=False)).astype(np.int64)
    if not np.asarray(arr[sample]).var(axis=0).any():  # identical points: no regions
        return make_slices([], [], kind="embedding", errors=errors, n_tried=n_slices)
    Z = _pca(arr, sample, pca_components, seed)
    mix = _fit_mixture(Z[sample], e[sample], n_slices, weight, rng)
    label, examples = _assign(Z, mix)
    comps = [c for c in range(n_slices) if (label == c).sum() >= min_size]
    p = Z.shape[1]
    found = make_slices(
        [f"embedding slice {c}" for c in comps],
        [np.flatnonzero(label == c) for c in comps],
        kind="embedding",
        descriptions=[f"mixture component {c} of {n_slices} on {p} PCA dims" for c in comps],
        errors=errors,
        n_tried=n_slices,
        examples=examples[comps],
        alpha=alpha,
        confidence=confidence,
    )
    t = found.table
    rank = np.nan_to_num(t["lower_bound"].to_numpy(), nan=-1.0)
    return found.take(np.lexsort((-t["size"].to_numpy(), -rank)))
