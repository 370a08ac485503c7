"""Numba kernels for annealed importance sampling of collapsed bipartite models on CPU.

The model has two colour classes: ``a`` (carried by the chains, e.g. an RBM's visible
layer) and ``s`` (summed out in closed form), coupled by a dense ``W`` (n_a, n_s), and
every unit has two levels, ``x_i = lo_i + step_i t_i`` with ``t_i ∈ {0, 1}`` (binary:
lo 0, step 1; spin: lo -1, step 2). The intermediate model at inverse temperature β has
class-``a`` biases ``b0_a + β db_a`` and, with ``d(x) = db_s + x W`` (``db = b - b0``),

    log f_β(x) = (b0_a + β db_a)·x + sum_j A_j(b0_s_j + β d_j(x)),
    A_j(F) = F lo_j + softplus(F step_j).

One annealing step from ``β_o`` to ``β_n`` adds ``log f_{β_n}(x) - log f_{β_o}(x)``

    (β_n - β_o) (db_a·x + sum_j d_j lo_j) + sum_j [softplus(step_j F_j(β_n))
                                                 - softplus(step_j F_j(β_o))]

to the chain's log weight (float64), then moves ``x`` by one block-Gibbs sweep at
``β_n``: ``t_j ~ Bernoulli(sigmoid(step_j F_j(β_n)))`` for the summed class, then
``t_i ~ Bernoulli(sigmoid(step_i (b0_a_i + β_n (db_a_i + (W s)_i))))``.

Each chain runs the whole stretch of the schedule on its own (chain-major: its state,
``d`` and the field stay in cache). The field of class ``a`` sums the rows of ``W`` of
the summed units that are on; ``d`` and ``db_a·x`` are updated by the rows of the units
that flipped when few flip, else recomputed (vectorised dot products). The exponentials
of a step are taken in loops LLVM vectorises (:func:`_vexp`, accurate to 2e-16), the logs
of the softplus terms as one log of a product per step. Everything is float64.

Randomness: per chain, eight interleaved xoroshiro128+ streams, seeded by
:func:`seed_streams` from integers the caller draws from a ``torch.Generator``, so a
seeded run reproduces exactly whatever the number of threads (the kernel releases the
GIL; callers split the chains over threads).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["anneal_two_level", "seed_streams"]

_U1 = np.uint64(1)
_U12 = np.uint64(12)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U27 = np.uint64(27)
_U30 = np.uint64(30)
_U31 = np.uint64(31)
_U37 = np.uint64(37)
_U40 = np.uint64(40)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_ONE_BITS = np.uint64(0x3FF0000000000000)  # the bits of 1.0
_LANES = 8  # independent xoroshiro128+ streams per chain, interleaved (ILP / SIMD)


@nb.njit(cache=True, inline="always")
def _splitmix(z):  # pragma: no cover - compiled by numba
    """One splitmix64 step (Steele, Lea & Flood 2014): a well-mixed 64-bit value."""
    z = z + _GOLDEN
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@nb.njit(cache=True)
def _seed(seeds: np.ndarray, lanes: int) -> np.ndarray:  # pragma: no cover - compiled by numba
    out = np.empty((seeds.shape[0], 2, lanes), dtype=np.uint64)
    for c in range(seeds.shape[0]):
        z = np.uint64(seeds[c, 0]) ^ (np.uint64(seeds[c, 1]) << _U31)
        for lane in range(lanes):
            z = _splitmix(z)
            s0 = z
            z = _splitmix(z)
            s1 = z
            if s0 == 0 and s1 == 0:
                s1 = _U1
            out[c, 0, lane] = s0
            out[c, 1, lane] = s1
    return out


def seed_streams(seeds: np.ndarray) -> np.ndarray:
    """Per-chain random streams (n, 2, 8) uint64 — 8 interleaved xoroshiro128+ states per
    chain — from ``n`` pairs of non-negative int64 seeds (splitmix64-expanded).

    >>> s = seed_streams(np.array([[1, 2], [1, 3]], dtype=np.int64))
    >>> s.dtype, s.shape, bool((s[0] != s[1]).any())
    (dtype('uint64'), (2, 2, 8), True)
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.int64)
    return _seed(seeds, _LANES)


@nb.njit(cache=True)
def _fill_uniform(st, ubits, uf, n):  # pragma: no cover - compiled by numba
    """``uf[:n]`` = uniforms in [0, 1) (52 bits) from the chain's streams ``st`` (2, L);
    ``ubits`` is ``uf`` viewed as uint64 (length a multiple of L)."""
    for b in range(0, n, _LANES):
        for lane in range(_LANES):
            s0 = st[0, lane]
            s1 = st[1, lane]
            r = s0 + s1
            s1 = s1 ^ s0
            st[0, lane] = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
            st[1, lane] = (s1 << _U37) | (s1 >> _U27)
            ubits[b + lane] = (r >> _U12) | _ONE_BITS  # a double in [1, 2)
    for i in range(n):
        uf[i] -= 1.0


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the low bits
_MAGIC_BITS = 0x4338000000000000


@nb.njit(cache=True, fastmath={"contract"})
def _vexp(src, out, tf, ti, n):  # pragma: no cover - compiled by numba
    """``out[:n] = exp(src[:n])`` (arguments clamped to [-708, 708]), in loops LLVM can
    vectorise: ``exp(y) = 2^m e^r``, ``m = round(y / ln 2)``, ``|r| <= ln 2 / 2``, ``e^r``
    by its degree-12 Taylor polynomial (relative error < 2e-16), ``2^m`` built in the
    exponent bits. ``tf`` is a float64 scratch array and ``ti`` the same memory as int64."""
    for i in range(n):
        y = min(max(src[i], -708.0), 708.0)
        tt = y * _LOG2E + _MAGIC
        m = tt - _MAGIC
        r = (y - m * _LN2_HI) - m * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[i] = p
        tf[i] = tt
    for i in range(n):
        ti[i] = (ti[i] - _MAGIC_BITS + 1023) << 52
    for i in range(n):
        out[i] *= tf[i]


_FOLD = 256  # units per partial product of softplus ratios (each ratio lies in [1/2, 2])


@nb.njit(cache=True, fastmath=True)
def _dot(M, j, x):  # pragma: no cover - compiled by numba
    """``M[j] . x`` (reassociated: vectorised)."""
    acc = 0.0
    for i in range(x.shape[0]):
        acc += M[j, i] * x[i]
    return acc


@nb.njit(cache=True, fastmath=True)
def _flips(a, b):  # pragma: no cover - compiled by numba
    """The number of entries where the 0/1 vectors ``a`` and ``b`` differ."""
    n = 0.0
    for i in range(a.shape[0]):
        n += abs(a[i] - b[i])
    return n


# contraction (FMA) only: _vexp's rounding trick must not be reassociated away
@nb.njit(cache=True, fastmath={"contract"})
def _chain(c, t, lw, rng, betas, k0, k1, k_last, Wv, WvT, WhT, b0a, ga, g0, base_a, d0,
           b0s, lo_s, step_s, step_a):  # pragma: no cover - compiled by numba
    n_a, n_s = Wv.shape
    L = _LANES
    pad = max(n_a, 2 * n_s) + L
    x = np.empty(n_a)  # levels t in {0, 1} of the carried class, as floats
    d = np.empty(n_s)
    acc = np.empty(n_a)
    arg = np.empty(pad)
    ex = np.empty(pad)
    tf = np.empty(pad)
    ti = tf.view(np.int64)
    uf = np.empty(pad)
    ubits = uf.view(np.uint64)
    st = np.empty((2, L), np.uint64)
    for lane in range(L):
        st[0, lane] = rng[c, 0, lane]
        st[1, lane] = rng[c, 1, lane]
    # d = d0 + t Wv (the summed class's coupling field), g = ga . t
    for i in range(n_a):
        x[i] = t[c, i]
    g = g0[0] + _dot(ga.reshape((1, n_a)), 0, x)
    for j in range(n_s):
        d[j] = d0[j] + _dot(WvT, j, x)
    w = lw[c]
    for k in range(k0, k1):
        bo = betas[k - 1]
        bn = betas[k]
        db = bn - bo
        # log f_bn(x) - log f_bo(x): softplus(a) = max(a, 0) + log(1 + exp(-|a|)); the
        # logs of each block of units are taken at once, as the log of a product
        inc = db * g
        for j in range(n_s):
            a_o = step_s[j] * (b0s[j] + bo * d[j])
            a_n = step_s[j] * (b0s[j] + bn * d[j])
            inc += db * d[j] * lo_s[j] + max(a_n, 0.0) - max(a_o, 0.0)
            arg[j] = -abs(a_o)
            arg[n_s + j] = -abs(a_n)
        _vexp(arg, ex, tf, ti, 2 * n_s)
        for j0 in range(0, n_s, _FOLD):
            num = 1.0
            den = 1.0
            for j in range(j0, min(j0 + _FOLD, n_s)):
                num *= 1.0 + ex[n_s + j]
                den *= 1.0 + ex[j]
            inc += math.log(num) - math.log(den)
        w += inc
        if k == k_last:
            continue
        # the summed class at beta_n, given x; then the carried class's field
        _fill_uniform(st, ubits, uf, n_s)
        for i in range(n_a):
            acc[i] = base_a[i]
        for j in range(n_s):
            e = ex[n_s + j]
            p = 1.0 / (1.0 + e) if b0s[j] + bn * d[j] >= 0.0 else e / (1.0 + e)
            if uf[j] < p:
                for i in range(n_a):
                    acc[i] += WhT[j, i]
        # the carried class at beta_n: u < sigmoid(a) = 1 / (1 + exp(-a))
        for i in range(n_a):
            arg[i] = -step_a[i] * (b0a[i] + bn * acc[i])
        _vexp(arg, ex, tf, ti, n_a)
        _fill_uniform(st, ubits, uf, n_a)
        for i in range(n_a):  # (acc now holds the new levels)
            acc[i] = 1.0 if uf[i] * (1.0 + ex[i]) < 1.0 else 0.0
        # few flips: add their rows of Wv to d; many: recompute d
        if 4 * _flips(acc, x) < n_a:
            for i in range(n_a):
                if acc[i] != x[i]:
                    dx = acc[i] - x[i]
                    g += dx * ga[i]
                    for j in range(n_s):
                        d[j] += dx * Wv[i, j]
                    x[i] = acc[i]
        else:
            for i in range(n_a):
                x[i] = acc[i]
            g = g0[0] + _dot(ga.reshape((1, n_a)), 0, x)
            for j in range(n_s):
                d[j] = d0[j] + _dot(WvT, j, x)
    for i in range(n_a):
        t[c, i] = np.uint8(x[i])
    for lane in range(L):
        rng[c, 0, lane] = st[0, lane]
        rng[c, 1, lane] = st[1, lane]
    lw[c] = w


@nb.njit(cache=True, nogil=True)
def _serial(t, lw, rng, betas, k0, k1, k_last, Wv, WvT, WhT, b0a, ga, g0, base_a, d0, b0s, lo_s,
            step_s, step_a):  # pragma: no cover - compiled by numba
    for c in range(t.shape[0]):
        _chain(c, t, lw, rng, betas, k0, k1, k_last, Wv, WvT, WhT, b0a, ga, g0, base_a, d0, b0s,
               lo_s, step_s, step_a)


class TwoLevelProblem:
    """The float64 arrays the kernel needs, prepared once per model and base.

    ``W`` (n_a, n_s) couples the carried class ``a`` to the summed class ``s``; ``b``/``b0``
    are the target's and the base's biases; ``lo``/``step`` the units' levels.
    """

    def __init__(self, W: np.ndarray, b_a: np.ndarray, b0_a: np.ndarray, b_s: np.ndarray,
                 b0_s: np.ndarray, lo_a: np.ndarray, step_a: np.ndarray, lo_s: np.ndarray,
                 step_s: np.ndarray) -> None:
        f = lambda v: np.ascontiguousarray(v, dtype=np.float64)
        W = f(W)
        b_a, b0_a, b_s, b0_s = f(b_a), f(b0_a), f(b_s), f(b0_s)
        lo_a, step_a, lo_s, step_s = f(lo_a), f(step_a), f(lo_s), f(step_s)
        self.n_a, self.n_s = W.shape
        dba, dbs = b_a - b0_a, b_s - b0_s
        # in the levels t: x_a = lo_a + step_a t_a, so d = dbs + lo_a W + t (step_a W)
        self.Wv = np.ascontiguousarray(W * step_a[:, None])
        self.WvT = np.ascontiguousarray(self.Wv.T)
        self.WhT = np.ascontiguousarray((W * step_s[None, :]).T)
        self.d0 = dbs + lo_a @ W
        self.ga = dba * step_a  # db_a . x = g0 + ga . t
        self.g0 = np.array([dba @ lo_a])
        self.base_a = dba + W @ lo_s
        self.b0a, self.b0s = b0_a, b0_s
        self.lo_s, self.step_s, self.step_a = lo_s, step_s, step_a
        #: whether every parameter is finite (the kernel assumes it)
        self.finite = bool(all(np.isfinite(v).all() for v in (W, b_a, b0_a, b_s, b0_s)))


def anneal_two_level(prob: TwoLevelProblem, t: np.ndarray, lw: np.ndarray,
                     rng: np.ndarray, betas: np.ndarray, k0: int, k1: int) -> None:
    """Steps ``k0 .. k1-1`` of the schedule ``betas`` (step k goes from ``betas[k-1]`` to
    ``betas[k]``), in place on every chain's levels ``t`` (C, n_a) uint8, log weight
    ``lw`` (C,) float64 and random streams ``rng`` (C, 2, 8) uint64 (:func:`seed_streams`).
    The last step of the schedule (k = len(betas) - 1) only weighs, without moving.

    The kernel releases the GIL: callers run disjoint row ranges of the chains in
    threads (each chain's result does not depend on how the chains are split).

    >>> import numpy as np
    >>> z, o = np.zeros(2), np.ones(2)
    >>> prob = TwoLevelProblem(np.zeros((2, 2)), z, z, z, z, z, o, z, o)
    >>> t, lw = np.zeros((3, 2), np.uint8), np.zeros(3)
    >>> anneal_two_level(prob, t, lw, seed_streams(np.arange(6).reshape(3, 2)),
    ...                  np.array([0.0, 0.5, 1.0]), 1, 3)
    >>> lw.tolist()  # W = 0 and equal biases: every weight is 1
    [0.0, 0.0, 0.0]
    """
    p = prob
    _serial(t, lw, rng, betas, int(k0), int(k1), len(betas) - 1, p.Wv, p.WvT, p.WhT, p.b0a,
            p.ga, p.g0, p.base_a, p.d0, p.b0s, p.lo_s, p.step_s, p.step_a)
