"""Numba kernels for sequential (single-site) Gibbs sweeps on CPU.

Updating the nodes of one colour class one after another is the same Markov chain as
updating them together (they are conditionally independent), so one kernel serves every
graph: it visits the free nodes in block order and draws each from its conditional

    f_i = b_i + sum_j W_ij s_j,        P(s_i = lo_i + step_i k) ∝ exp(f_i s_i),  k < K_i,

reading the neighbours' current values. Two layouts of the couplings:

- **CSR** (sparse graphs: lattices, random regular graphs): per node the slice
  ``indptr[i]:indptr[i+1]`` of ``indices`` (neighbours) and ``data`` (weights);
  O(degree) per update, memory O(m).
- **dense** ``J`` (n × n, zero diagonal; dense graphs such as a fully connected machine,
  where blocks are single nodes): O(n) per update, a contiguous row dot product.

Draws use noise pre-drawn by the caller from a ``torch.Generator``: logistic variates
``g = logit(u)`` of uniforms ``u``, shape (sweeps, chains, free nodes), so seeded runs
reproduce exactly whatever the number of threads, and a two-level draw
``[u < sigmoid(a)] = [g < a]`` is a comparison (no ``exp`` per update; torch takes the
logits vectorised).

Two layouts of the chains: chain-major ``x`` (chains, n) for few chains, each chain
swept on its own; and node-major ``x`` (n, chains) for many chains, where one node is
updated in all chains at once — the inner loops run over contiguous chains, so LLVM
vectorises the field accumulation and the comparison (SIMD across chains). Chains run
in parallel (``prange`` over chains or chunks of chains) when the work is large.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["csr_sweeps", "csr_sweeps_node_major", "dense_sweeps", "dense_sweeps_node_major",
           "draw"]


@nb.njit(cache=True, inline="always")
def draw(f: float, lo: float, step: float, K: int, g: float) -> float:
    """The value ``lo + step k`` with ``k`` drawn from ``P(k) ∝ exp(f step k)``, given
    logistic noise ``g = logit(u)`` of a uniform ``u``.

    Two levels: ``k = [u < sigmoid(f step)] = [g < f step]`` — a comparison, no
    transcendental function in the loop (the logit is taken, vectorised, by torch).
    K levels: ``u = sigmoid(g)`` and the inverse CDF of
    :func:`pgm_boltz.domains.geometric_sample`: with ``t = |f step|``,
    ``k = floor(-log1p(-u (1 - e^{-K t})) / t)`` for ``f step <= 0``, mirrored otherwise.

    >>> draw(50.0, -1.0, 2.0, 2, 0.0)
    1.0
    """
    a = f * step
    if K == 2:
        return lo + step if g < a else lo
    u = 1.0 / (1.0 + math.exp(-g))
    t = abs(a)
    if t * K < 1e-6:
        k = math.floor(u * K)
    else:
        c = -math.expm1(-K * t)
        k = math.floor(-math.log1p(-u * c) / t)
    if k < 0:
        k = 0
    if k > K - 1:
        k = K - 1
    if a > 0.0:
        k = K - 1 - k
    return lo + step * k


@nb.njit(cache=True)
def _csr_chain(x, c, order, indptr, indices, data, bias, lo, step, K, u):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            f = bias[i]
            for p in range(indptr[i], indptr[i + 1]):
                f += data[p] * x[c, indices[p]]
            x[c, i] = draw(f, lo[i], step[i], K[i], u[s, c, t])


@nb.njit(cache=True)
def _csr_serial(x, order, indptr, indices, data, bias, lo, step, K, u):
    for c in range(x.shape[0]):
        _csr_chain(x, c, order, indptr, indices, data, bias, lo, step, K, u)


@nb.njit(cache=True, parallel=True)
def _csr_parallel(x, order, indptr, indices, data, bias, lo, step, K, u):
    for c in nb.prange(x.shape[0]):
        _csr_chain(x, c, order, indptr, indices, data, bias, lo, step, K, u)


@nb.njit(cache=True, fastmath=True)
def _dot(J, i, x, c):
    acc = 0.0
    for j in range(x.shape[1]):
        acc += J[i, j] * x[c, j]
    return acc


@nb.njit(cache=True)
def _dense_chain(x, c, order, J, bias, lo, step, K, u):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            f = bias[i] + _dot(J, i, x, c)
            x[c, i] = draw(f, lo[i], step[i], K[i], u[s, c, t])


@nb.njit(cache=True)
def _dense_serial(x, order, J, bias, lo, step, K, u):
    for c in range(x.shape[0]):
        _dense_chain(x, c, order, J, bias, lo, step, K, u)


@nb.njit(cache=True, parallel=True)
def _dense_parallel(x, order, J, bias, lo, step, K, u):
    for c in nb.prange(x.shape[0]):
        _dense_chain(x, c, order, J, bias, lo, step, K, u)


def _parallel(x: np.ndarray, u: np.ndarray) -> bool:
    # threads pay off once each chain-chunk of work is well above the launch cost
    return x.shape[0] > 1 and u.shape[0] * u.shape[1] * u.shape[2] >= 4096


def csr_sweeps(x: np.ndarray, order: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
               data: np.ndarray, bias: np.ndarray, lo: np.ndarray, step: np.ndarray,
               K: np.ndarray, u: np.ndarray) -> None:
    """``u.shape[0]`` sequential sweeps, in place on ``x`` (chains, n), CSR couplings.

    ``order`` lists the free nodes in update order (clamped nodes are left out and keep
    their values); ``u`` (sweeps, chains, len(order)) holds logistic noise
    ``logit(uniform)``; ``bias``,
    ``data``, ``lo``, ``step`` share ``x``'s dtype; ``K`` is int64 per node.

    >>> import numpy as np
    >>> x = np.zeros((1, 2)); ip = np.array([0, 1, 2]); ix = np.array([1, 0])
    >>> csr_sweeps(x, np.array([0, 1]), ip, ix, np.ones(2), np.full(2, 60.0),
    ...            np.zeros(2), np.ones(2), np.full(2, 2), np.full((1, 1, 2), 0.0))
    >>> x.tolist()
    [[1.0, 1.0]]
    """
    fn = _csr_parallel if _parallel(x, u) else _csr_serial
    fn(x, order, indptr, indices, data, bias, lo, step, K, u)


def dense_sweeps(x: np.ndarray, order: np.ndarray, J: np.ndarray, bias: np.ndarray,
                 lo: np.ndarray, step: np.ndarray, K: np.ndarray, u: np.ndarray) -> None:
    """``u.shape[0]`` sequential sweeps, in place on ``x`` (chains, n), dense couplings
    ``J`` (n × n, symmetric, zero diagonal): ``f_i = b_i + J[i] . x``.

    >>> import numpy as np
    >>> x = np.zeros((1, 2)); J = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> dense_sweeps(x, np.array([0, 1]), J, np.full(2, -60.0), np.zeros(2), np.ones(2),
    ...              np.full(2, 2), np.full((1, 1, 2), 0.0))
    >>> x.tolist()
    [[0.0, 0.0]]
    """
    fn = _dense_parallel if _parallel(x, u) else _dense_serial
    fn(x, order, J, bias, lo, step, K, u)


# ------------------------------------------------------------------ node-major layout
@nb.njit(cache=True)
def _nm_update(x, i, f, c0, c1, lo, step, K, g, s, t):
    st = step[i]
    l0 = lo[i]
    l1 = l0 + st
    if K[i] == 2:
        for c in range(c0, c1):
            x[i, c] = l1 if g[s, t, c] < f[c] * st else l0
    else:
        for c in range(c0, c1):
            x[i, c] = draw(f[c], l0, st, K[i], g[s, t, c])


@nb.njit(cache=True)
def _csr_nm_chunk(x, c0, c1, order, indptr, indices, data, bias, lo, step, K, g):
    f = np.empty(x.shape[1], dtype=x.dtype)
    for s in range(g.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            b = bias[i]
            for c in range(c0, c1):
                f[c] = b
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                w = data[p]
                for c in range(c0, c1):
                    f[c] += w * x[j, c]
            _nm_update(x, i, f, c0, c1, lo, step, K, g, s, t)


@nb.njit(cache=True)
def _csr_nm_serial(x, order, indptr, indices, data, bias, lo, step, K, g, n_chunks):
    _csr_nm_chunk(x, 0, x.shape[1], order, indptr, indices, data, bias, lo, step, K, g)


@nb.njit(cache=True, parallel=True)
def _csr_nm_parallel(x, order, indptr, indices, data, bias, lo, step, K, g, n_chunks):
    B = x.shape[1]
    size = (B + n_chunks - 1) // n_chunks
    for k in nb.prange(n_chunks):
        c0 = k * size
        c1 = min(B, c0 + size)
        if c0 < c1:
            _csr_nm_chunk(x, c0, c1, order, indptr, indices, data, bias, lo, step, K, g)


def _chunks(B: int, g: np.ndarray) -> int:
    """Chain chunks for threads. The kernel costs a few ns per update against ~10-20 for
    drawing the noise (serial in torch), so threads pay off only for many chains."""
    threads = nb.config.NUMBA_NUM_THREADS  # get_num_threads() would reset torch's
    if threads < 2 or B < 256 or g.size < (1 << 18):
        return 1
    return min(threads, B // 16)


def csr_sweeps_node_major(x: np.ndarray, order: np.ndarray, indptr: np.ndarray,
                          indices: np.ndarray, data: np.ndarray, bias: np.ndarray,
                          lo: np.ndarray, step: np.ndarray, K: np.ndarray,
                          g: np.ndarray) -> None:
    """As :func:`csr_sweeps` with node-major states ``x`` (n, chains) and noise ``g``
    (sweeps, len(order), chains): each node is updated in all chains at once (SIMD).

    >>> import numpy as np
    >>> x = np.zeros((2, 3)); ip = np.array([0, 1, 2]); ix = np.array([1, 0])
    >>> csr_sweeps_node_major(x, np.array([0, 1]), ip, ix, np.ones(2), np.full(2, 60.0),
    ...                       np.zeros(2), np.ones(2), np.full(2, 2), np.zeros((1, 2, 3)))
    >>> x.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    k = _chunks(x.shape[1], g)
    fn = _csr_nm_parallel if k > 1 else _csr_nm_serial
    fn(x, order, indptr, indices, data, bias, lo, step, K, g, k)


def dense_sweeps_node_major(x: np.ndarray, order: np.ndarray, J: np.ndarray,
                            bias: np.ndarray, lo: np.ndarray, step: np.ndarray,
                            K: np.ndarray, g: np.ndarray) -> None:
    """As :func:`dense_sweeps` with node-major states ``x`` (n, chains) and noise ``g``
    (sweeps, len(order), chains): :func:`csr_sweeps_node_major` on the nonzeros of ``J``
    (the same sums in the same order as a dense row that skips zero couplings; the O(n^2)
    conversion is small next to the O(n^2 chains sweeps) of the sweeps).

    >>> import numpy as np
    >>> x = np.zeros((2, 3)); J = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> dense_sweeps_node_major(x, np.array([0, 1]), J, np.full(2, 60.0), np.zeros(2),
    ...                         np.ones(2), np.full(2, 2), np.zeros((1, 2, 3)))
    >>> x.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    rows, cols = np.nonzero(J)  # row-major: each node's neighbours in ascending order
    indptr = np.zeros(J.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=J.shape[0]), out=indptr[1:])
    csr_sweeps_node_major(x, order, indptr, cols, J[rows, cols], bias, lo, step, K, g)
