"""Numba kernels for sequential (single-site) Gibbs sweeps on CPU.

Updating the nodes of one colour class one after another is the same Markov chain as
updating them together (they are conditionally independent), so one kernel serves every
graph: it visits the free nodes in block order and draws each from its conditional

    f_i = b_i + sum_j W_ij s_j,      f_i(β) = (1 - β) b0_i + β f_i,      s_i ~ P(s_i | f_i(β)),

reading the neighbours' current values; ``β`` (per chain) and the base biases ``b0``
give the tempered laws ``p_β ∝ exp(-(1-β) E_0 - β E)`` of annealing and parallel
tempering (``tempered=False`` skips that step: β = 1). Each unit's law comes from the
one numba copy of the domain maths, :mod:`pgm_boltz.domains.kernels` (the domain arrays
``dom = (kind, lo, step, K, V, LW)``, with the units' quadratic self-terms in them:
per-level log-weights of discrete units, the precision of Gaussian units, never
tempered). Two layouts of the couplings:

- **CSR** (sparse graphs: lattices, random regular graphs): per node the slice
  ``indptr[i]:indptr[i+1]`` of ``indices`` (neighbours) and ``data`` (weights);
  O(degree) per update, memory O(m).
- **dense** ``J`` (n × n, zero diagonal; dense graphs such as a fully connected machine,
  where blocks are single nodes): O(n) per update, a contiguous row dot product.

Draws use noise pre-drawn by the caller from a ``torch.Generator``: logistic variates
``g = logit(u)``, so seeded runs reproduce exactly whatever the number of threads, and a
two-level draw ``[u < sigmoid(a)] = [g < a]`` is a comparison.

Two layouts of the chains: chain-major ``x`` (chains, n) for few chains, each chain
swept on its own; and node-major ``x`` (n, chains) for many chains, where one node is
updated in all chains at once — the inner loops run over contiguous chains, so LLVM
vectorises the field accumulation and the comparison (SIMD across chains). Chains run
in parallel (``prange`` over chains or chunks of chains) when the work is large.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..domains import ARITH
from ..domains.kernels import draw_logistic

__all__ = ["csr_sweeps", "csr_sweeps_node_major", "dense_sweeps", "dense_sweeps_node_major"]


@nb.njit(cache=True, inline="always")
def _update(x, c, i, f, dom, u, temp, tempered):
    if tempered:
        beta, b0 = temp
        f = b0[i] + beta[c] * (f - b0[i])
    kind, lo, step, K, V, LW = dom
    x[c, i] = draw_logistic(f, i, kind, lo, step, K, V, LW, u)


# Two-level progressions (binary, spin): the draw is a comparison, written out in the loop
# body. Kept apart from the general kernels because a call to the general draw in the
# loop (even one never taken, or the update in a helper) made LLVM emit code about 4x
# slower per update (measured: 64x64 lattice, one chain, 15 vs 60 ns).
@nb.njit(cache=True)
def _csr_chain2(x, c, order, indptr, indices, data, bias, lo, step, u, temp, tempered):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            f = bias[i]
            for p in range(indptr[i], indptr[i + 1]):
                f += data[p] * x[c, indices[p]]
            if tempered:
                beta, b0 = temp
                f = b0[i] + beta[c] * (f - b0[i])
            x[c, i] = lo[i] + step[i] if u[s, c, t] < f * step[i] else lo[i]


@nb.njit(cache=True)
def _csr_serial2(x, order, indptr, indices, data, bias, lo, step, u, temp, tempered):
    for c in range(x.shape[0]):
        _csr_chain2(x, c, order, indptr, indices, data, bias, lo, step, u, temp, tempered)


@nb.njit(cache=True, parallel=True)
def _csr_parallel2(x, order, indptr, indices, data, bias, lo, step, u, temp, tempered):
    for c in nb.prange(x.shape[0]):
        _csr_chain2(x, c, order, indptr, indices, data, bias, lo, step, u, temp, tempered)


@nb.njit(cache=True)
def _csr_chain(x, c, order, indptr, indices, data, bias, dom, u, temp, tempered):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            f = bias[i]
            for p in range(indptr[i], indptr[i + 1]):
                f += data[p] * x[c, indices[p]]
            _update(x, c, i, f, dom, u[s, c, t], temp, tempered)


@nb.njit(cache=True)
def _csr_serial(x, order, indptr, indices, data, bias, dom, u, temp, tempered):
    for c in range(x.shape[0]):
        _csr_chain(x, c, order, indptr, indices, data, bias, dom, u, temp, tempered)


@nb.njit(cache=True, parallel=True)
def _csr_parallel(x, order, indptr, indices, data, bias, dom, u, temp, tempered):
    for c in nb.prange(x.shape[0]):
        _csr_chain(x, c, order, indptr, indices, data, bias, dom, u, temp, tempered)


@nb.njit(cache=True, fastmath=True)
def _dot(J, i, x, c):
    acc = 0.0
    for j in range(x.shape[1]):
        acc += J[i, j] * x[c, j]
    return acc


@nb.njit(cache=True)
def _dense_chain(x, c, order, J, bias, dom, u, temp, tempered):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            _update(x, c, i, bias[i] + _dot(J, i, x, c), dom, u[s, c, t], temp, tempered)


@nb.njit(cache=True)
def _dense_chain2(x, c, order, J, bias, lo, step, u, temp, tempered):
    for s in range(u.shape[0]):
        for t in range(order.shape[0]):
            i = order[t]
            f = bias[i] + _dot(J, i, x, c)
            if tempered:
                beta, b0 = temp
                f = b0[i] + beta[c] * (f - b0[i])
            x[c, i] = lo[i] + step[i] if u[s, c, t] < f * step[i] else lo[i]


@nb.njit(cache=True)
def _dense_serial2(x, order, J, bias, lo, step, u, temp, tempered):
    for c in range(x.shape[0]):
        _dense_chain2(x, c, order, J, bias, lo, step, u, temp, tempered)


@nb.njit(cache=True, parallel=True)
def _dense_parallel2(x, order, J, bias, lo, step, u, temp, tempered):
    for c in nb.prange(x.shape[0]):
        _dense_chain2(x, c, order, J, bias, lo, step, u, temp, tempered)


@nb.njit(cache=True)
def _dense_serial(x, order, J, bias, dom, u, temp, tempered):
    for c in range(x.shape[0]):
        _dense_chain(x, c, order, J, bias, dom, u, temp, tempered)


@nb.njit(cache=True, parallel=True)
def _dense_parallel(x, order, J, bias, dom, u, temp, tempered):
    for c in nb.prange(x.shape[0]):
        _dense_chain(x, c, order, J, bias, dom, u, temp, tempered)


def _two_level(dom: tuple, order: np.ndarray) -> bool:
    """Whether every node to update is a two-level arithmetic progression."""
    kind, K = dom[0], dom[3]
    return bool((kind[order] == ARITH).all() and (K[order] == 2).all())


def _parallel(x: np.ndarray, u: np.ndarray) -> bool:
    # threads pay off once each chain-chunk of work is well above the launch cost
    return x.shape[0] > 1 and u.shape[0] * u.shape[1] * u.shape[2] >= 4096


def csr_sweeps(x: np.ndarray, order: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
               data: np.ndarray, bias: np.ndarray, dom: tuple, u: np.ndarray,
               temp: tuple, tempered: bool) -> None:
    """``u.shape[0]`` sequential sweeps, in place on ``x`` (chains, n), CSR couplings.

    ``order`` lists the free nodes in update order (clamped nodes keep their values);
    ``u`` (sweeps, chains, len(order)) holds logistic noise ``logit(uniform)``; ``dom`` the
    domain arrays; ``temp = (beta (chains,), b0 (n,))`` used when ``tempered``.

    >>> import numpy as np
    >>> from pgm_boltz.domains import DomainVector, BINARY
    >>> dom = DomainVector([BINARY, BINARY]).kernel_arrays()
    >>> x = np.zeros((1, 2)); ip = np.array([0, 1, 2]); ix = np.array([1, 0])
    >>> csr_sweeps(x, np.array([0, 1]), ip, ix, np.ones(2), np.full(2, 60.0), dom,
    ...            np.zeros((1, 1, 2)), (np.ones(1), np.zeros(2)), False)
    >>> x.tolist()
    [[1.0, 1.0]]
    """
    par = _parallel(x, u)
    if _two_level(dom, order):
        fn2 = _csr_parallel2 if par else _csr_serial2
        fn2(x, order, indptr, indices, data, bias, dom[1], dom[2], u, temp, tempered)
        return
    fn = _csr_parallel if par else _csr_serial
    fn(x, order, indptr, indices, data, bias, dom, u, temp, tempered)


def dense_sweeps(x: np.ndarray, order: np.ndarray, J: np.ndarray, bias: np.ndarray,
                 dom: tuple, u: np.ndarray, temp: tuple, tempered: bool) -> None:
    """As :func:`csr_sweeps` with dense couplings ``J`` (n × n, symmetric, zero
    diagonal): ``f_i = b_i + J[i] . x``.

    >>> import numpy as np
    >>> from pgm_boltz.domains import DomainVector, BINARY
    >>> dom = DomainVector([BINARY, BINARY]).kernel_arrays()
    >>> x = np.zeros((1, 2)); J = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> dense_sweeps(x, np.array([0, 1]), J, np.full(2, -60.0), dom,
    ...              np.zeros((1, 1, 2)), (np.ones(1), np.zeros(2)), False)
    >>> x.tolist()
    [[0.0, 0.0]]
    """
    par = _parallel(x, u)
    if _two_level(dom, order):
        fn2 = _dense_parallel2 if par else _dense_serial2
        fn2(x, order, J, bias, dom[1], dom[2], u, temp, tempered)
        return
    fn = _dense_parallel if par else _dense_serial
    fn(x, order, J, bias, dom, u, temp, tempered)


# ------------------------------------------------------------------ node-major layout
@nb.njit(cache=True)
def _nm_update(x, i, f, c0, c1, dom, g, s, t, temp, tempered):
    kind, lo, step, K, V, LW = dom
    if tempered:
        beta, b0 = temp
        for c in range(c0, c1):
            f[c] = b0[i] + beta[c] * (f[c] - b0[i])
    if kind[i] == ARITH and K[i] == 2:
        st = step[i]
        l0 = lo[i]
        l1 = l0 + st
        for c in range(c0, c1):
            x[i, c] = l1 if g[s, t, c] < f[c] * st else l0
    else:
        for c in range(c0, c1):
            x[i, c] = draw_logistic(f[c], i, kind, lo, step, K, V, LW, g[s, t, c])


@nb.njit(cache=True)
def _csr_nm_chunk(x, c0, c1, order, indptr, indices, data, bias, dom, g, temp, tempered):
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
            _nm_update(x, i, f, c0, c1, dom, g, s, t, temp, tempered)


@nb.njit(cache=True)
def _csr_nm_chunk2(x, c0, c1, order, indptr, indices, data, bias, lo, step, g, temp,
                   tempered):
    """:func:`_csr_nm_chunk` for two-level progressions, the draw written out (see
    :func:`_csr_chain2`)."""
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
            if tempered:
                beta, b0 = temp
                for c in range(c0, c1):
                    f[c] = b0[i] + beta[c] * (f[c] - b0[i])
            st = step[i]
            l0 = lo[i]
            l1 = l0 + st
            for c in range(c0, c1):
                x[i, c] = l1 if g[s, t, c] < f[c] * st else l0


@nb.njit(cache=True)
def _csr_nm_serial2(x, order, indptr, indices, data, bias, lo, step, g, temp, tempered,
                    n_chunks):
    _csr_nm_chunk2(x, 0, x.shape[1], order, indptr, indices, data, bias, lo, step, g, temp,
                   tempered)


@nb.njit(cache=True, parallel=True)
def _csr_nm_parallel2(x, order, indptr, indices, data, bias, lo, step, g, temp, tempered,
                      n_chunks):
    B = x.shape[1]
    size = (B + n_chunks - 1) // n_chunks
    for k in nb.prange(n_chunks):
        c0 = k * size
        c1 = min(B, c0 + size)
        if c0 < c1:
            _csr_nm_chunk2(x, c0, c1, order, indptr, indices, data, bias, lo, step, g, temp,
                           tempered)


@nb.njit(cache=True)
def _csr_nm_serial(x, order, indptr, indices, data, bias, dom, g, temp, tempered, n_chunks):
    _csr_nm_chunk(x, 0, x.shape[1], order, indptr, indices, data, bias, dom, g, temp,
                  tempered)


@nb.njit(cache=True, parallel=True)
def _csr_nm_parallel(x, order, indptr, indices, data, bias, dom, g, temp, tempered,
                     n_chunks):
    B = x.shape[1]
    size = (B + n_chunks - 1) // n_chunks
    for k in nb.prange(n_chunks):
        c0 = k * size
        c1 = min(B, c0 + size)
        if c0 < c1:
            _csr_nm_chunk(x, c0, c1, order, indptr, indices, data, bias, dom, g, temp,
                          tempered)


def _chunks(B: int, g: np.ndarray) -> int:
    """Chain chunks for threads. The kernel costs a few ns per update against ~10-20 for
    drawing the noise (serial in torch), so threads pay off only for many chains."""
    threads = nb.config.NUMBA_NUM_THREADS  # get_num_threads() would reset torch's
    if threads < 2 or B < 256 or g.size < (1 << 18):
        return 1
    return min(threads, B // 16)


def csr_sweeps_node_major(x: np.ndarray, order: np.ndarray, indptr: np.ndarray,
                          indices: np.ndarray, data: np.ndarray, bias: np.ndarray,
                          dom: tuple, g: np.ndarray, temp: tuple, tempered: bool) -> None:
    """As :func:`csr_sweeps` with node-major states ``x`` (n, chains) and noise ``g``
    (sweeps, len(order), chains): each node is updated in all chains at once (SIMD).

    >>> import numpy as np
    >>> from pgm_boltz.domains import DomainVector, BINARY
    >>> dom = DomainVector([BINARY, BINARY]).kernel_arrays()
    >>> x = np.zeros((2, 3)); ip = np.array([0, 1, 2]); ix = np.array([1, 0])
    >>> csr_sweeps_node_major(x, np.array([0, 1]), ip, ix, np.ones(2), np.full(2, 60.0),
    ...                       dom, np.zeros((1, 2, 3)), (np.ones(3), np.zeros(2)), False)
    >>> x.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    k = _chunks(x.shape[1], g)
    if _two_level(dom, order):
        fn2 = _csr_nm_parallel2 if k > 1 else _csr_nm_serial2
        fn2(x, order, indptr, indices, data, bias, dom[1], dom[2], g, temp, tempered, k)
        return
    fn = _csr_nm_parallel if k > 1 else _csr_nm_serial
    fn(x, order, indptr, indices, data, bias, dom, g, temp, tempered, k)


def dense_sweeps_node_major(x: np.ndarray, order: np.ndarray, J: np.ndarray,
                            bias: np.ndarray, dom: tuple, g: np.ndarray, temp: tuple,
                            tempered: bool) -> None:
    """As :func:`dense_sweeps` with node-major states ``x`` (n, chains) and noise ``g``
    (sweeps, len(order), chains): :func:`csr_sweeps_node_major` on the nonzeros of ``J``
    (the same sums in the same order as a dense row that skips zero couplings).

    >>> import numpy as np
    >>> from pgm_boltz.domains import DomainVector, BINARY
    >>> dom = DomainVector([BINARY, BINARY]).kernel_arrays()
    >>> x = np.zeros((2, 3)); J = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> dense_sweeps_node_major(x, np.array([0, 1]), J, np.full(2, 60.0), dom,
    ...                         np.zeros((1, 2, 3)), (np.ones(3), np.zeros(2)), False)
    >>> x.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    rows, cols = np.nonzero(J)  # row-major: each node's neighbours in ascending order
    indptr = np.zeros(J.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=J.shape[0]), out=indptr[1:])
    csr_sweeps_node_major(x, order, indptr, cols, J[rows, cols], bias, dom, g, temp,
                          tempered)
