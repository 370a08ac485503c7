"""Numba kernel running whole epochs of CD-k / PCD-k with SGD for a bipartite model (RBM).

The model: visible units ``v`` (n_v) and hidden units ``h`` (n_h) coupled by a dense
``W`` (n_v, n_h), biases ``b_v``, ``b_h``, energy ``E(v, h) = -v W h - b_v v - b_h h``.
Every unit takes the values ``x = lo + step k``, ``k = 0..K-1`` (binary: lo 0, step 1,
K 2; spin: lo -1, step 2, K 2; multinary: lo 0, step 1/(K-1)); given the field ``f`` of
its neighbours, ``P(k) ∝ exp(f step k)``. Two levels: ``P(k=1) = sigmoid(f step)``,
drawn as ``k = [u < sigmoid(f step)]``; K levels: the inverse CDF of the truncated
geometric law (as the domains' numba kernels, :mod:`pgm_boltz.domains.kernels`), with
the conditional mean in closed form (:func:`pgm_boltz.domains.geometric_mean`).

One update on a batch ``V`` (B rows) with C negative chains (CD: C = B chains started
at the batch; PCD: C persistent chains):

- positive phase: ``H+ = E[h | V]`` (fields ``b_h + V W``);
- negative phase, k block-Gibbs steps. CD: ``h ~ P(h | v)`` from the batch first; each
  step draws ``v- ~ P(v | h)`` then ``h``'s fields ``b_h + v- W``; the last step keeps
  the mean ``H- = E[h | v-]`` (Rao-Blackwellised) and, for PCD, also draws ``h`` to carry
  on the chain (the chains keep ``v-`` and that draw);
- the CD/PCD estimate of the log-likelihood gradient (ascent direction)

      S_W = V^T H+ / B - V-^T H- / C,   S_bv = mean V - mean V-,   S_bh = mean H+ - mean H-

  (the gradient of the surrogate ``loss`` of :mod:`pgm_boltz.training.contrastive`'s RBM
  path is ``-S``);
- the step of ``torch.optim.SGD(lr, momentum, weight_decay)`` (dampening 0, no Nesterov)
  on every parameter ``θ`` with loss gradient ``g = -S_θ + weight_decay θ``:
  ``buf = momentum buf + g`` (``buf`` starts at zero, which equals torch's first
  ``buf = g``), ``θ -= lr buf``; without momentum ``θ -= lr g``.

Batches: the rows ``perm[e, b0:b0 + batch_size]`` for ``b0 = 0, batch_size, ...``, epoch
by epoch (the last batch of an epoch may be shorter), ``perm`` drawn by the caller.

Randomness: one xoroshiro128+ stream per negative chain (CD: the row's position in its
batch; PCD: the chain's index), ``rng[:, c]`` (:func:`chain_streams`, splitmix64-seeded
from the caller's ``torch.Generator``). Per update a chain draws, in this order: CD first
``n_h`` uniforms (its ``h`` given the batch row); then every Gibbs step ``n_v`` (``v-``)
and, unless it is CD's last step, ``n_h`` (``h``). A uniform is ``(r >> 11) 2^-53`` of a
64-bit output ``r`` in float64; in float32 one output gives two 24-bit uniforms,
``(r >> 40) 2^-24`` for unit ``i`` and ``((r >> 16) mod 2^24) 2^-24`` for unit ``i + 1``
(pairs restart for each group of ``n_v`` or ``n_h``). Two levels: ``k = [u (1 + e) <
1]``, ``e = exp(-f step)``, i.e. ``u < sigmoid(f step)``, in the parameters' dtype. The
kernel is serial and a chain's draws depend on nothing but its stream, so seeded runs
reproduce exactly whatever the thread count (and one call of E epochs equals E calls of
one); it releases the GIL.

Layout: chain-major. States, fields and uniforms are stored one row per unit and one
column per chain, so every inner loop runs over chains and vectorises (16 float32 lanes
with AVX-512; the columns are padded to multiples of 16, and the padding enters no
statistic and draws no random numbers): fields are rank-4 updates of whole rows, the
exponentials, means and draws elementwise passes, the streams of 8 chains advance in one
vector operation. The weights are kept transposed (one row per hidden unit) for the
run; the statistics and the SGD step go row by row of them: ``g = sum_r a_r H[j, r]
X[r]`` over the batch rows and the chains' visible rows, then the update of that row.
Arithmetic runs in the parameters' dtype (float32 or float64: fields, exponentials — a
float32 polynomial ``exp`` for float32, :func:`pgm_boltz.inference.ais_kernels._vexp` for
float64 —, means, statistics and the update). Cost per update: about
``(B + 2 C k + C) n_v n_h`` multiply-adds with no Python in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch
from numba import types
from numba.extending import overload

from ..domains.kernels import geometric_level
from ..errors import DataError
from ..inference.ais_kernels import _LANES, _fill_uniform, _vexp, seed_streams

__all__ = ["UnitArrays", "cd_epochs", "chain_streams", "reconstruction_error", "seed_streams",
           "streams_from_generator", "uniform_rows", "unit_arrays"]

#: layer kinds: every unit binary / every unit two-level / some unit with K > 2
_BINARY, _TWO_LEVEL, _GENERAL = 0, 1, 2
#: |K a| below this: the series of the geometric mean (see pgm_boltz.domains)
_SERIES_AT = 1e-2
_UNIFORM_AT = 1e-7


@dataclass(frozen=True)
class UnitArrays:
    """Per-unit level arrays of one layer: ``x = lo + step k``, ``k = 0..levels-1``,
    and ``kind`` (0 all binary, 1 all two-level, 2 some unit with more levels)."""

    lo: np.ndarray
    step: np.ndarray
    levels: np.ndarray
    kind: int


def unit_arrays(lo, step, levels) -> UnitArrays:
    """The :class:`UnitArrays` of a layer from per-unit ``lo``, ``step``, ``levels``
    (sequences or scalars broadcast to one length; at least one of them a sequence).

    >>> u = unit_arrays([0.0, -1.0], [1.0, 2.0], [2, 2])  # binary and spin
    >>> u.kind, u.levels.tolist()
    (1, [2, 2])
    """
    lo_a, step_a, lv_a = np.broadcast_arrays(np.asarray(lo, np.float64),
                                            np.asarray(step, np.float64),
                                            np.asarray(levels, np.int64))
    lo_a, step_a, lv_a = lo_a.ravel().copy(), step_a.ravel().copy(), lv_a.ravel().copy()
    if (lv_a < 2).any() or not (step_a > 0).all() or not np.isfinite(lo_a).all():
        raise DataError("unit_arrays: levels must be >= 2, steps > 0 and lo finite")
    if (lv_a == 2).all():
        kind = _BINARY if ((lo_a == 0).all() and (step_a == 1).all()) else _TWO_LEVEL
    else:
        kind = _GENERAL
    return UnitArrays(lo_a, step_a, lv_a, kind)


def chain_streams(n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """``n`` chain streams (2, n) uint64 for :func:`cd_epochs`: one xoroshiro128+ state per
    chain (column), splitmix64-expanded from integers drawn from ``generator`` (so a
    seeded torch generator gives a reproducible run).

    >>> s = chain_streams(3, torch.Generator().manual_seed(0))
    >>> s.shape, bool((s == chain_streams(3, torch.Generator().manual_seed(0))).all())
    ((2, 3), True)
    """
    seeds = torch.randint(0, 2**62, (int(n), 2), generator=generator)
    return np.ascontiguousarray(seed_streams(seeds.numpy())[:, :, 0].T)


def streams_from_generator(n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """``n`` stream slots (n, 2, 8) uint64 for :func:`uniform_rows` (eight interleaved
    xoroshiro128+ states a slot), seeded by integers drawn from ``generator``.

    >>> s = streams_from_generator(3, torch.Generator().manual_seed(0))
    >>> s.shape, bool((s == streams_from_generator(3, torch.Generator().manual_seed(0))).all())
    ((3, 2, 8), True)
    """
    seeds = torch.randint(0, 2**62, (int(n), 2), generator=generator)
    return seed_streams(seeds.numpy())


@nb.njit(cache=True, error_model="numpy")
def _geo_mean(a, K):  # pragma: no cover - compiled by numba
    """``E[k]`` under ``P(k) ∝ exp(a k)``, k = 0..K-1 (float64)."""
    x = K * a
    if abs(x) < _SERIES_AT:
        K2 = K * K
        return (K - 1) / 2.0 + (K2 - 1) * a / 12.0 - (K2 * K2 - 1) * a * a * a / 720.0
    t = abs(a)
    m = math.exp(-t) / (-math.expm1(-t)) - K * math.exp(-K * t) / (-math.expm1(-K * t))
    return K - 1 - m if a > 0 else m


@nb.njit(cache=True, error_model="numpy")
def _geo_draw(a, K, u):  # pragma: no cover - compiled by numba
    """``k`` drawn from ``P(k) ∝ exp(a k)`` by the inverse CDF of the uniform ``u`` (the
    domain kernels' :func:`~pgm_boltz.domains.kernels.geometric_level`, uniform below
    ``|K a| < 1e-7``)."""
    return geometric_level(a, K, u, _UNIFORM_AT)


_F32 = np.float32
_E32_LO, _E32_HI = _F32(-87.0), _F32(87.0)
_E32_LOG2E = _F32(1.4426950408889634)
_E32_LN2_HI, _E32_LN2_LO = _F32(0.693359375), _F32(-2.12194440e-4)
_E32_MAGIC = _F32(12582912.0)  # 1.5 * 2**23
_E32_MAGIC_BITS = np.int32(0x4B400000)
_E32_C = (_F32(1.9875691e-4), _F32(1.3981999e-3), _F32(8.333899e-3), _F32(4.1666573e-2),
          _F32(1.6666665e-1), _F32(0.5), _F32(1.0), _F32(1.0))


def _exp_into(src, out, tf, n) -> None:
    """``out[:n] = exp(src[:n])`` in the arrays' dtype (``tf`` scratch of that dtype).
    Compiled code gets the typed overload below; a Python call runs it compiled.

    >>> out, tf = np.empty(2, np.float32), np.empty(2, np.float32)
    >>> _exp_into(np.array([0.0, 1.0], np.float32), out, tf, 2)
    >>> np.allclose(out, [1.0, np.e], rtol=1e-6)
    True
    """
    _exp_into_compiled(src, out, tf, n)


@overload(_exp_into, jit_options={"fastmath": {"contract"}, "error_model": "numpy"})
def _exp_into_typed(src, out, tf, n):  # pragma: no cover - compiled by numba
    if src.dtype == types.float32:
        c0, c1, c2, c3, c4, c5, c6, c7 = _E32_C

        def exp32(src, out, tf, n):
            # float32: exp(y) = 2^m e^r, |r| <= ln2/2, e^r by a degree-7 polynomial
            # (relative error < 1e-7); arguments clamped to [-87, 87]
            ti = tf.view(np.int32)
            for i in range(n):
                y = min(max(src[i], _E32_LO), _E32_HI)
                tt = y * _E32_LOG2E + _E32_MAGIC
                m = tt - _E32_MAGIC
                r = (y - m * _E32_LN2_HI) - m * _E32_LN2_LO
                p = c0 * r + c1
                p = p * r + c2
                p = p * r + c3
                p = p * r + c4
                p = p * r + c5
                p = p * r + c6
                p = p * r + c7
                out[i] = p
                tf[i] = tt
            for i in range(n):
                ti[i] = (ti[i] - _E32_MAGIC_BITS + np.int32(127)) << np.int32(23)
            for i in range(n):
                out[i] *= tf[i]

        return exp32

    def exp64(src, out, tf, n):
        _vexp(src, out, tf, tf.view(np.int64), n)

    return exp64


@nb.njit(cache=True)
def _exp_into_compiled(src, out, tf, n):  # pragma: no cover - compiled by numba
    _exp_into(src, out, tf, n)


@nb.njit(cache=True, error_model="numpy")
def _uniforms(rng, slot, st, U, ubits, off, n):  # pragma: no cover - compiled by numba
    """``U[off:off + n]`` = the next ``n`` uniforms of stream slot ``slot``."""
    for lane in range(_LANES):
        st[0, lane] = rng[slot, 0, lane]
        st[1, lane] = rng[slot, 1, lane]
    _fill_uniform(st, ubits[off:], U[off:], n)
    for lane in range(_LANES):
        rng[slot, 0, lane] = st[0, lane]
        rng[slot, 1, lane] = st[1, lane]


# ---------------------------------------------------------------- the chain-major kernel
_U11, _U16, _U24, _U27 = np.uint64(11), np.uint64(16), np.uint64(24), np.uint64(27)
_U37, _U40 = np.uint64(37), np.uint64(40)
_M24 = np.uint64(0xFFFFFF)
_INV24 = np.float32(1.0 / (1 << 24))
_INV53 = 1.0 / float(1 << 53)


def _fill(S, U, n, C) -> None:
    """``U[i, c]`` for ``i < n``, ``c < C``: the next uniforms of chain ``c``'s stream, unit
    by unit (float32: two per 64-bit draw, for units ``i`` and ``i + 1``). Compiled code
    gets the typed overload below; a Python call runs it compiled.

    >>> S = chain_streams(3, torch.Generator().manual_seed(0))
    >>> U = np.empty((2, 3))
    >>> _fill(S, U, 2, 3)
    >>> bool(((U >= 0) & (U < 1)).all()), bool(U[0, 0] != U[1, 0])
    (True, True)
    """
    _fill_compiled(S, U, n, C)


@overload(_fill, jit_options={"error_model": "numpy"})
def _fill_typed(S, U, n, C):  # pragma: no cover - compiled by numba
    if U.dtype == types.float32:
        def fill32(S, U, n, C):
            s0a, s1a = S[0], S[1]
            i = 0
            while i < n:
                ua = U[i]
                ub = U[i + 1] if i + 1 < n else U[i]
                two = i + 1 < n
                for c in range(C):
                    s0 = s0a[c]
                    s1 = s1a[c]
                    r = s0 + s1
                    s1 = s1 ^ s0
                    s0a[c] = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
                    s1a[c] = (s1 << _U37) | (s1 >> _U27)
                    hi = np.float32(np.int32(r >> _U40)) * _INV24
                    lo = np.float32(np.int32((r >> _U16) & _M24)) * _INV24
                    if two:
                        ub[c] = lo
                    ua[c] = hi
                i += 2

        return fill32

    def fill64(S, U, n, C):
        s0a, s1a = S[0], S[1]
        for i in range(n):
            ua = U[i]
            for c in range(C):
                s0 = s0a[c]
                s1 = s1a[c]
                r = s0 + s1
                s1 = s1 ^ s0
                s0a[c] = ((s0 << _U24) | (s0 >> _U40)) ^ s1 ^ (s1 << _U16)
                s1a[c] = (s1 << _U37) | (s1 >> _U27)
                ua[c] = np.float64(np.int64(r >> _U11)) * _INV53

    return fill64


@nb.njit(cache=True)
def _fill_compiled(S, U, n, C):  # pragma: no cover - compiled by numba
    _fill(S, U, n, C)


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _fields_h(WT, b, X, out, C):  # pragma: no cover - compiled by numba
    """``out[j, c] = b[j] + sum_i WT[j, i] X[i, c]`` for ``c < C`` (four rows of X a
    pass)."""
    n_h, n_v = WT.shape
    for j in range(n_h):
        o = out[j]
        bj = b[j]
        for c in range(C):
            o[c] = bj
    i = 0
    while i + 4 <= n_v:
        x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
        for j in range(n_h):
            w = WT[j]
            a0, a1, a2, a3 = w[i], w[i + 1], w[i + 2], w[i + 3]
            o = out[j]
            for c in range(C):
                o[c] += (a0 * x0[c] + a1 * x1[c]) + (a2 * x2[c] + a3 * x3[c])
        i += 4
    while i < n_v:
        x0 = X[i]
        for j in range(n_h):
            a0 = WT[j, i]
            o = out[j]
            for c in range(C):
                o[c] += a0 * x0[c]
        i += 1


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _fields_v(WT, b, H, out, C):  # pragma: no cover - compiled by numba
    """``out[i, c] = b[i] + sum_j WT[j, i] H[j, c]`` for ``c < C`` (four rows of H a
    pass)."""
    n_h, n_v = WT.shape
    for i in range(n_v):
        o = out[i]
        bi = b[i]
        for c in range(C):
            o[c] = bi
        j = 0
        while j + 4 <= n_h:
            a0, a1, a2, a3 = WT[j, i], WT[j + 1, i], WT[j + 2, i], WT[j + 3, i]
            h0, h1, h2, h3 = H[j], H[j + 1], H[j + 2], H[j + 3]
            for c in range(C):
                o[c] += (a0 * h0[c] + a1 * h1[c]) + (a2 * h2[c] + a3 * h3[c])
            j += 4
        while j < n_h:
            a0 = WT[j, i]
            h0 = H[j]
            for c in range(C):
                o[c] += a0 * h0[c]
            j += 1


@nb.njit(cache=True, error_model="numpy")
def _transpose(X, XT, C):  # pragma: no cover - compiled by numba
    """``XT[c, i] = X[i, c]`` for ``c < C``, in 16 x 16 tiles."""
    n = X.shape[0]
    for i0 in range(0, n, 16):
        i1 = min(i0 + 16, n)
        for c0 in range(0, C, 16):
            c1 = min(c0 + 16, C)
            for i in range(i0, i1):
                for c in range(c0, c1):
                    XT[c, i] = X[i, c]


@nb.njit(cache=True, error_model="numpy")
def _transpose_rows(XR, X, B):  # pragma: no cover - compiled by numba
    """``X[i, r] = XR[r, i]`` for ``r < B``, in 16 x 16 tiles."""
    n = XR.shape[1]
    for r0 in range(0, B, 16):
        r1 = min(r0 + 16, B)
        for i0 in range(0, n, 16):
            i1 = min(i0 + 16, n)
            for r in range(r0, r1):
                for i in range(i0, i1):
                    X[i, r] = XR[r, i]


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _layer(F, n, C, lo, step, K, kind, mean, draw, U, want_mean, want_draw, arg, ex, tf,
           one):  # pragma: no cover - compiled by numba
    """For units ``i < n`` and chains ``c < C`` with fields ``F[i, c]``: conditional means
    into ``mean`` (if ``want_mean``; may be ``F``) and values drawn with the uniforms
    ``U[i, c]`` into ``draw`` (if ``want_draw``). Two levels, ``e = exp(-f step)``: mean
    ``lo + step / (1 + e)``, draw ``lo + step [u (1 + e) < 1]`` (in the dtype of ``F``);
    K levels: the closed-form mean and the inverse CDF (float64)."""
    for i in range(n):
        f = F[i]
        if kind == _GENERAL and K[i] > 2:
            Ki = K[i]
            for c in range(C):
                a = float(f[c]) * step[i]
                if want_draw:
                    draw[i, c] = lo[i] + step[i] * _geo_draw(a, Ki, float(U[i, c]))
                if want_mean:
                    mean[i, c] = lo[i] + step[i] * _geo_mean(a, Ki)
            continue
        tf[0] = step[i]  # the unit's step and lo in the fields' dtype
        tf[1] = lo[i]
        sd = tf[0]
        li = tf[1]
        for c in range(C):
            arg[c] = -f[c] * sd
        _exp_into(arg, ex, tf, C)
        if want_draw:
            d = draw[i]
            u = U[i]
            if kind == 0:
                for c in range(C):
                    d[c] = one if u[c] * (one + ex[c]) < one else 0 * one
            else:
                for c in range(C):
                    d[c] = li + sd * (u[c] * (one + ex[c]) < one)
        if want_mean:
            m = mean[i]
            if kind == 0:
                for c in range(C):
                    m[c] = one / (one + ex[c])
            else:
                for c in range(C):
                    m[c] = li + sd / (one + ex[c])


@nb.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _accumulate(g, A, rows, B, a):  # pragma: no cover - compiled by numba
    """``g += a sum_r A[r] rows[r]`` over ``r < B`` (``A`` weights, ``rows`` (B, n))."""
    n = g.shape[0]
    r = 0
    while r + 4 <= B:
        a0, a1, a2, a3 = a * A[r], a * A[r + 1], a * A[r + 2], a * A[r + 3]
        x0, x1, x2, x3 = rows[r], rows[r + 1], rows[r + 2], rows[r + 3]
        for i in range(n):
            g[i] += (a0 * x0[i] + a1 * x1[i]) + (a2 * x2[i] + a3 * x3[i])
        r += 4
    while r < B:
        a0 = a * A[r]
        x0 = rows[r]
        for i in range(n):
            g[i] += a0 * x0[i]
        r += 1


# no nnan/ninf flags here: the finiteness test must survive optimisation
@nb.njit(cache=True, fastmath={"contract", "reassoc", "arcp"}, error_model="numpy")
def _sgd_row(P, M, g, lr, mom, wd):  # pragma: no cover - compiled by numba
    """torch.optim.SGD on the row ``P`` with ascent statistics ``g`` (loss gradient
    ``-g + wd P``), momentum row ``M``; returns ``sum P * 0`` (0 when all finite)."""
    t = P[0] * 0
    if mom == 0:
        for i in range(P.shape[0]):
            P[i] -= lr * (wd * P[i] - g[i])
            t += P[i] * 0
    else:
        for i in range(P.shape[0]):
            M[i] = mom * M[i] + (wd * P[i] - g[i])
            P[i] -= lr * M[i]
            t += P[i] * 0
    return t


@nb.njit(cache=True, fastmath={"contract", "reassoc", "arcp"}, error_model="numpy")
def _update(WT, bv, bh, MT, mbv, mbh, XR, HP, B, VR, HN, C, a_pos, a_neg, lr, mom, wd, g
            ):  # pragma: no cover - compiled by numba
    """The statistics ``g_W[i, j] = a_pos sum_r XR[r, i] HP[j, r] + a_neg sum_c VR[c, i]
    HN[j, c]`` (XR, VR: rows of visible states; HP, HN: hidden means, one column a row)
    and the biases' sums, and ``torch.optim.SGD``'s step with them as minus the loss
    gradient, row by row of the transposed weights ``WT``; returns ``sum θ * 0``."""
    n_h, n_v = WT.shape
    tot = WT[0, 0] * 0
    for j in range(n_h):
        for i in range(n_v):
            g[i] = 0
        _accumulate(g, HP[j], XR, B, a_pos)
        _accumulate(g, HN[j], VR, C, a_neg)
        tot += _sgd_row(WT[j], MT[j if mom != 0 else 0], g, lr, mom, wd)
    for i in range(n_v):
        g[i] = 0
    for r in range(B):
        x = XR[r]
        for i in range(n_v):
            g[i] += x[i]
    for i in range(n_v):
        g[i] *= a_pos
    for c in range(C):
        x = VR[c]
        for i in range(n_v):
            g[i] += a_neg * x[i]
    tot += _sgd_row(bv, mbv, g, lr, mom, wd)
    for j in range(n_h):
        p = bh[0] * 0
        q = bh[0] * 0
        hp, hn = HP[j], HN[j]
        for r in range(B):
            p += hp[r]
        for c in range(C):
            q += hn[c]
        g[j] = a_pos * p + a_neg * q
    tot += _sgd_row(bh, mbh, g[:n_h], lr, mom, wd)
    return tot


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _cd_run(W, bv, bh, mW, mbv, mbh, data, perm, bs, k, persistent, cv, ch, lo_v, st_v, K_v,
            kind_v, lo_h, st_h, K_h, kind_h, lr_, mom_, wd_, S):  # pragma: no cover
    """The epochs loop (see ``cd_epochs``); ``S`` (2, slots) the chains' streams."""
    n_v, n_h = W.shape
    N = perm.shape[1]
    dt = W.dtype
    Cp = cv.shape[0]
    # columns padded to multiples of 16 (whole vectors): the padding columns hold finite
    # values that enter no statistic and draw no random numbers
    R = (max(bs, Cp) + 15) // 16 * 16
    sc = np.empty(6, dt)  # scalars in the parameters' dtype
    sc[0], sc[1], sc[2] = lr_, mom_, wd_
    lr, mom, wd = sc[0], sc[1], sc[2]
    one = np.ones(1, dt)[0]
    WT = np.ascontiguousarray(W.T)  # working copies, transposed: rows per hidden unit
    MT = np.ascontiguousarray(mW.T)
    XR = np.empty((bs, n_v), dt)  # the batch's rows
    XP = np.zeros((n_v, R), dt)  # ... and columns
    HP = np.zeros((n_h, R), dt)
    VT = np.zeros((n_v, R), dt)
    VR = np.empty((R, n_v), dt)
    HT = np.zeros((n_h, R), dt)
    FV = np.zeros((n_v, R), dt)
    FH = np.zeros((n_h, R), dt)
    HM = np.zeros((n_h, R), dt)
    U = np.zeros((max(n_v, n_h) + 1, R), dt)
    arg = np.empty(R + 16, dt)
    ex = np.empty(R + 16, dt)
    tf = np.empty(R + 16, dt)
    g = np.empty(max(n_v, n_h), dt)
    if persistent:
        for c in range(Cp):
            for i in range(n_v):
                VT[i, c] = cv[c, i]
            for j in range(n_h):
                HT[j, c] = ch[c, j]
    done = 0
    ok = True
    for e in range(perm.shape[0]):
        if not ok:
            break
        for b0 in range(0, N, bs):
            B = min(bs, N - b0)
            C = Cp if persistent else B
            Bq = (B + 15) // 16 * 16
            Cq = (C + 15) // 16 * 16
            for r in range(B):
                row = data[perm[e, b0 + r]]
                xr = XR[r]
                for i in range(n_v):
                    xr[i] = row[i]
            _transpose_rows(XR, XP, B)
            _fields_h(WT, bh, XP, HP, Bq)
            if not persistent:  # CD: the chains' h drawn given the batch
                _fill(S, U, n_h, B)
                _layer(HP, n_h, Bq, lo_h, st_h, K_h, kind_h, HP, HT, U, True, True, arg, ex,
                       tf, one)
            else:
                _layer(HP, n_h, Bq, lo_h, st_h, K_h, kind_h, HP, HT, U, True, False, arg,
                       ex, tf, one)
            for s in range(k):
                last = s == k - 1
                draw_h = persistent or not last
                _fill(S, U, n_v, C)
                _fields_v(WT, bv, HT, FV, Cq)
                _layer(FV, n_v, Cq, lo_v, st_v, K_v, kind_v, FV, VT, U, False, True, arg, ex,
                       tf, one)
                _fields_h(WT, bh, VT, FH, Cq)
                if draw_h:
                    _fill(S, U, n_h, C)
                _layer(FH, n_h, Cq, lo_h, st_h, K_h, kind_h, HM, HT, U, last, draw_h, arg,
                       ex, tf, one)
            _transpose(VT, VR, C)
            sc[3] = 1.0 / B
            sc[4] = -1.0 / C
            tot = _update(WT, bv, bh, MT, mbv, mbh, XR, HP, B, VR, HM, C, sc[3], sc[4], lr,
                          mom, wd, g)
            if not np.isfinite(tot):
                ok = False
                break
            done += 1
    for i in range(n_v):
        for j in range(n_h):
            W[i, j] = WT[j, i]
            if mom != 0:
                mW[i, j] = MT[j, i]
    if persistent:
        for c in range(Cp):
            for i in range(n_v):
                cv[c, i] = VT[i, c]
            for j in range(n_h):
                ch[c, j] = HT[j, c]
    return done


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _recon(W, bv, bh, V, lo_v, st_v, K_v, kind_v, lo_h, st_h, K_h, kind_h
           ):  # pragma: no cover - compiled by numba
    """One up-down mean-field pass over the rows of ``V``, chain-major (rows as columns),
    in 1024-row pieces; returns the sum of squared errors."""
    n_v, n_h = W.shape
    dt = W.dtype
    one = np.ones(1, dt)[0]
    WT = np.ascontiguousarray(W.T)
    P = 1024
    X = np.zeros((n_v, P), dt)
    FH = np.zeros((n_h, P), dt)
    FV = np.zeros((n_v, P), dt)
    U = np.zeros((1, P), dt)
    arg = np.empty(P + 16, dt)
    ex = np.empty(P + 16, dt)
    tf = np.empty(P + 16, dt)
    tot = 0.0
    for r0 in range(0, V.shape[0], P):
        B = min(P, V.shape[0] - r0)
        Bq = (B + 15) // 16 * 16
        for r in range(B):
            row = V[r0 + r]
            for i in range(n_v):
                X[i, r] = row[i]
        _fields_h(WT, bh, X, FH, Bq)
        _layer(FH, n_h, Bq, lo_h, st_h, K_h, kind_h, FH, FH, U, True, False, arg, ex, tf,
               one)
        _fields_v(WT, bv, FH, FV, Bq)
        _layer(FV, n_v, Bq, lo_v, st_v, K_v, kind_v, FV, FV, U, True, False, arg, ex, tf,
               one)
        for i in range(n_v):
            x, m = X[i], FV[i]
            for r in range(B):
                d = float(x[r]) - float(m[r])
                tot += d * d
    return tot


def reconstruction_error(W: np.ndarray, bv: np.ndarray, bh: np.ndarray, V: np.ndarray,
                         visible: UnitArrays | None = None,
                         hidden: UnitArrays | None = None) -> float:
    """Mean squared error of one up-down mean-field pass of an RBM over the rows ``V``
    (values): ``h = E[h | v]``, ``r = E[v | h]``, ``mean (v - r)^2`` (as
    :func:`pgm_boltz.inference.scores.reconstruction_error_values`), serial, in ``W``'s
    dtype (the sum in float64).

    >>> W = np.zeros((2, 1)); z = np.zeros(2)
    >>> reconstruction_error(W, z, np.zeros(1), np.array([[0.0, 1.0]]))
    0.25
    """
    n_v, n_h = W.shape
    vis = visible or unit_arrays(0.0, np.ones(n_v), 2)
    hid = hidden or unit_arrays(0.0, np.ones(n_h), 2)
    V = np.ascontiguousarray(V, dtype=W.dtype)
    return float(_recon(W, bv, bh, V, vis.lo, vis.step, vis.levels, vis.kind, hid.lo,
                        hid.step, hid.levels, hid.kind)) / (V.shape[0] * n_v)


@nb.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _mean_draw_rows(F, fld, foff, D, dld, doff, rng, k0, k1, n, lo, step, kind, wts,
                    want_draw, want_mean):  # pragma: no cover - compiled by numba
    """Rows ``k`` in ``[k0, k1)`` of two-level units' fields, row-major in flat buffers
    (row ``foff + k`` of ``F`` at ``(foff + k) fld``): values drawn into row ``doff + k``
    of ``D`` with the uniforms of stream slot ``k`` (``lo + step [u (1 + e) < 1]``,
    ``e = exp(-f step)``), and ``F``'s row replaced by ``wts[foff + k]`` times the
    conditional means ``lo + step / (1 + e)``."""
    dt = F.dtype
    one = np.ones(1, dt)[0]
    U = np.empty(n + _LANES)
    ubits = U.view(np.uint64)
    st = np.empty((2, _LANES), np.uint64)
    arg = np.empty(n, dt)
    ex = np.empty(n, dt)
    tf = np.empty(n + 16, dt)
    lo_d = np.empty(n, dt)
    st_d = np.empty(n, dt)
    for i in range(n):
        lo_d[i] = lo[i]
        st_d[i] = step[i]
    for k in range(k0, k1):
        fb = (foff + k) * fld
        f = F[fb:fb + n]
        if kind == 0:
            for i in range(n):
                arg[i] = -f[i]
        else:
            for i in range(n):
                arg[i] = -f[i] * st_d[i]
        _exp_into(arg, ex, tf, n)
        if want_draw:
            _uniforms(rng, k, st, U, ubits, 0, n)
            db = (doff + k) * dld
            d = D[db:db + n]
            if kind == 0:
                for i in range(n):
                    d[i] = one if U[i] * (one + ex[i]) < one else 0 * one
            else:
                for i in range(n):
                    d[i] = lo_d[i] + st_d[i] * (U[i] * (one + ex[i]) < one)
        if want_mean:
            w = wts[foff + k]
            if kind == 0:
                for i in range(n):
                    f[i] = w / (one + ex[i])
            else:
                for i in range(n):
                    f[i] = w * (lo_d[i] + st_d[i] / (one + ex[i]))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _uniform_rows(rng, out):  # pragma: no cover - compiled by numba
    R, n = out.shape
    U = np.empty(n + _LANES)
    ubits = U.view(np.uint64)
    st = np.empty((2, _LANES), np.uint64)
    for r in range(R):
        _uniforms(rng, r, st, U, ubits, 0, n)
        for i in range(n):
            out[r, i] = U[i]


def uniform_rows(rng: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (R, n), any float dtype and strides, with uniforms in [0, 1): row ``r``
    the next ``n`` of stream slot ``r`` of ``rng`` (R or more slots, :func:`seed_streams`).
    Releases the GIL; about 1 ns a value (torch's CPU ``uniform_`` takes 2-5 ns).

    >>> out = np.zeros((2, 3), np.float32)
    >>> uniform_rows(seed_streams(np.array([[0, 1], [2, 3]])), out)
    >>> bool(((out >= 0) & (out < 1)).all() and out[0, 0] != out[1, 0])
    True
    """
    if rng.ndim != 3 or rng.shape[0] < out.shape[0] or rng.dtype != np.uint64:
        raise DataError(f"uniform_rows: rng must hold at least {out.shape[0]} stream slots")
    _uniform_rows(rng, out)


def cd_epochs(W: np.ndarray, bv: np.ndarray, bh: np.ndarray, data: np.ndarray,
              perm: np.ndarray, rng: np.ndarray, *, batch_size: int, lr: float, k: int = 1,
              momentum: float = 0.0, weight_decay: float = 0.0,
              buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              chains: tuple[np.ndarray, np.ndarray] | None = None,
              visible: UnitArrays | None = None, hidden: UnitArrays | None = None) -> int:
    """Run CD-k (``chains=None``) or PCD-k (``chains=(v, h)``) with SGD over the epochs
    ``perm`` (E, N) — ``E * ceil(N / batch_size)`` updates — in place on ``W`` (n_v, n_h),
    ``bv``, ``bh``, the momentum ``buffers`` (shapes of W, bv, bh; zeros start like a fresh
    torch SGD; needed when ``momentum > 0``), the chains and the streams ``rng``.

    The maths is the module docstring's. ``W``, ``bv``, ``bh``, ``data`` (N, n_v values)
    and the chains (C, n_v), (C, n_h) (values) share one float dtype, C-contiguous;
    ``rng`` holds one xoroshiro128+ state per chain, (2, max(batch_size, C)) uint64 from
    :func:`chain_streams`. ``visible`` / ``hidden`` default to binary units.

    Returns the number of updates done: all of them, or the index of the first update
    after which some parameter was not finite (the run stops there; the parameters are
    then not finite and the caller restores its copy).

    >>> import numpy as np
    >>> rng0 = np.random.default_rng(0)
    >>> data = (rng0.random((20, 6)) < 0.3).astype(np.float64)
    >>> W, bv, bh = np.zeros((6, 3)), np.zeros(6), np.zeros(3)
    >>> perm = np.stack([rng0.permutation(20) for _ in range(5)])
    >>> streams = chain_streams(10, torch.Generator().manual_seed(0))
    >>> cd_epochs(W, bv, bh, data, perm, streams, batch_size=10, lr=0.1)
    10
    >>> bool((np.sign(bv) == np.sign(data.mean(0) - 0.5)).all())  # towards the data means
    True
    """
    n_v, n_h = W.shape
    dtype = W.dtype
    if dtype not in (np.float32, np.float64):
        raise DataError(f"cd_epochs: parameters must be float32 or float64, got {dtype}")
    for name, a, shape in (("bv", bv, (n_v,)), ("bh", bh, (n_h,)),
                           ("data", data, (data.shape[0], n_v))):
        if a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
            raise DataError(f"cd_epochs: {name} must be C-contiguous {dtype} of shape "
                             f"{shape}, got {a.dtype} {a.shape}")
    if not W.flags.c_contiguous:
        raise DataError("cd_epochs: W must be C-contiguous")
    perm = np.ascontiguousarray(perm, dtype=np.int64)
    if perm.ndim != 2 or perm.shape[1] == 0 or perm.min() < 0 or perm.max() >= data.shape[0]:
        raise DataError("cd_epochs: perm must be (epochs, n) row indices into data")
    bs, k = int(batch_size), int(k)
    if bs < 1 or k < 1:
        raise DataError("cd_epochs: batch_size and k must be positive")
    persistent = chains is not None
    if persistent:
        cv, ch = chains
        C = cv.shape[0]
        if cv.shape != (C, n_v) or ch.shape != (C, n_h) or cv.dtype != dtype \
                or ch.dtype != dtype or not (cv.flags.c_contiguous and ch.flags.c_contiguous):
            raise DataError("cd_epochs: chains must be C-contiguous (C, n_v), (C, n_h) "
                             f"{dtype} arrays")
    else:
        C = 0
        cv, ch = np.zeros((0, n_v), dtype), np.zeros((0, n_h), dtype)
    slots = max(min(bs, perm.shape[1]), C)
    if rng.dtype != np.uint64 or rng.ndim != 2 or rng.shape[0] != 2 or rng.shape[1] < slots \
            or not rng.flags.c_contiguous:
        raise DataError(f"cd_epochs: rng must be (2, {slots}) uint64 chain streams from "
                        "chain_streams")
    if buffers is None:
        if momentum != 0:
            raise DataError("cd_epochs: momentum > 0 needs buffers (zeros to start)")
        mW, mbv, mbh = np.zeros((1, 1), dtype), np.zeros(1, dtype), np.zeros(1, dtype)
    else:
        mW, mbv, mbh = buffers
        if mW.shape != W.shape or mbv.shape != bv.shape or mbh.shape != bh.shape or any(
                b.dtype != dtype or not b.flags.c_contiguous for b in buffers):
            raise DataError("cd_epochs: buffers must match W, bv, bh")
    vis = visible or unit_arrays(0.0, np.ones(n_v), 2)
    hid = hidden or unit_arrays(0.0, np.ones(n_h), 2)
    if vis.lo.shape != (n_v,) or hid.lo.shape != (n_h,):
        raise DataError("cd_epochs: visible/hidden unit arrays do not match W's shape")
    return int(_cd_run(W, bv, bh, mW, mbv, mbh, data, perm, bs, k, persistent, cv, ch,
                       vis.lo, vis.step, vis.levels, vis.kind, hid.lo, hid.step, hid.levels,
                       hid.kind, float(lr), float(momentum), float(weight_decay), rng))
