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

Randomness: one stream *slot* per negative chain (CD: the row's position in its batch;
PCD: the chain's index), each slot eight interleaved xoroshiro128+ streams
(:func:`pgm_boltz.inference.ais_kernels.seed_streams`, seeded by :func:`streams_from_generator`
from the caller's ``torch.Generator``). Per update a slot draws, in this order (each a call
of ``_fill_uniform`` with that many uniforms): CD first ``n_h`` (its ``h`` from the batch
row); then one call per Gibbs step of ``n_v + n_h`` uniforms (``v-``, then ``h``), or
``n_v`` at CD's last step, which draws no ``h``. Two levels: ``k = [u (1 + e) < 1]``,
``e = exp(-f step)``, i.e. ``u < sigmoid(f step)`` (compared in float64). The kernel is
serial and a chain's draws depend on nothing but its slot's stream, so seeded runs
reproduce exactly (and one call of E epochs equals E calls of one); it releases the GIL.

Layout: per update the positive rows, then each Gibbs step layer by layer over all C
chains (fields chain by chain, then one pass of exponentials and draws over the C x n
block, which vectorises), then the statistics and the SGD step. Arithmetic runs in the
parameters' dtype (float32 or float64: fields, exponentials — a float32 polynomial
``exp`` for float32, :func:`pgm_boltz.inference.ais_kernels._vexp` for float64 —, means,
statistics and the update). Zero entries of ``v`` and ``h`` are skipped in the fields
and statistics (binary data are sparse), ``W`` is kept transposed as well for the
visible fields. Cost per update: about ``(B + 2 C k + C) n_v n_h`` multiply-adds times
the density of nonzero units, with no Python in between: a 64 x 16 RBM at batch 10 runs
an update in under 10 µs (PCD with 100 chains: about 40 µs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch
from numba import types
from numba.extending import overload

from ..errors import DataError
from ..inference.ais_kernels import _LANES, _fill_uniform, _vexp, seed_streams

__all__ = ["UnitArrays", "cd_epochs", "seed_streams", "streams_from_generator", "uniform_rows",
           "unit_arrays"]

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
    lo_a, step_a = np.ascontiguousarray(lo_a.ravel()), np.ascontiguousarray(step_a.ravel())
    lv_a = np.ascontiguousarray(lv_a.ravel())
    if (lv_a < 2).any() or not (step_a > 0).all() or not np.isfinite(lo_a).all():
        raise DataError("unit_arrays: levels must be >= 2, steps > 0 and lo finite")
    if (lv_a == 2).all():
        kind = _BINARY if ((lo_a == 0).all() and (step_a == 1).all()) else _TWO_LEVEL
    else:
        kind = _GENERAL
    return UnitArrays(lo_a, step_a, lv_a, kind)


def streams_from_generator(n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """``n`` stream slots (n, 2, 8) uint64 for :func:`cd_epochs`, seeded by integers drawn
    from ``generator`` (so a seeded torch generator gives a reproducible run).

    >>> s = streams_from_generator(3, torch.Generator().manual_seed(0))
    >>> s.shape, bool((s == streams_from_generator(3, torch.Generator().manual_seed(0))).all())
    ((3, 2, 8), True)
    """
    seeds = torch.randint(0, 2**62, (int(n), 2), generator=generator)
    return seed_streams(seeds.numpy())


# ---------------------------------------------------------------- small vector helpers
@nb.njit(cache=True, error_model="numpy", inline="always")
def _nonzero(x, idx):  # pragma: no cover - compiled by numba
    """Indices of the nonzero entries of ``x`` into ``idx`` (branch-free); their number."""
    n = 0
    for i in range(x.shape[0]):
        idx[n] = i
        n += x[i] != 0
    return n


@nb.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _field(M, b, x, idx, nz, out):  # pragma: no cover - compiled by numba
    """``out = b + x M`` over the ``nz`` nonzero entries ``idx`` of ``x`` (M's rows), four
    rows of ``M`` per pass over ``out``."""
    n = out.shape[0]
    for j in range(n):
        out[j] = b[j]
    t = 0
    while t + 4 <= nz:
        i0, i1, i2, i3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
        x0, x1, x2, x3 = x[i0], x[i1], x[i2], x[i3]
        for j in range(n):
            out[j] += (x0 * M[i0, j] + x1 * M[i1, j]) + (x2 * M[i2, j] + x3 * M[i3, j])
        t += 4
    while t < nz:
        i = idx[t]
        xi = x[i]
        for j in range(n):
            out[j] += xi * M[i, j]
        t += 1


@nb.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _outer_acc(G, g_x, g_h, x, idx, nz, hm, a):  # pragma: no cover - compiled by numba
    """``G += a x^T hm``, ``g_x += a x``, ``g_h += a hm`` (x's nonzero entries ``idx``)."""
    n_h = hm.shape[0]
    for t in range(nz):
        i = idx[t]
        c = a * x[i]
        g_x[i] += c
        for j in range(n_h):
            G[i, j] += c * hm[j]
    for j in range(n_h):
        g_h[j] += a * hm[j]


@nb.njit(cache=True, error_model="numpy")
def _transpose(W, WT):  # pragma: no cover - compiled by numba
    """``WT = W^T`` (in 64-row tiles of W when large)."""
    n_v, n_h = W.shape
    for i0 in range(0, n_v, 64):
        i1 = min(i0 + 64, n_v)
        for j in range(n_h):
            for i in range(i0, i1):
                WT[j, i] = W[i, j]


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
    """``k`` drawn from ``P(k) ∝ exp(a k)`` by the inverse CDF of the uniform ``u``."""
    t = abs(a)
    if t * K < _UNIFORM_AT:
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
    return k


_F32 = np.float32
_E32_LO, _E32_HI = _F32(-87.0), _F32(87.0)
_E32_LOG2E = _F32(1.4426950408889634)
_E32_LN2_HI, _E32_LN2_LO = _F32(0.693359375), _F32(-2.12194440e-4)
_E32_MAGIC = _F32(12582912.0)  # 1.5 * 2**23
_E32_MAGIC_BITS = np.int32(0x4B400000)
_E32_C = (_F32(1.9875691e-4), _F32(1.3981999e-3), _F32(8.333899e-3), _F32(4.1666573e-2),
          _F32(1.6666665e-1), _F32(0.5), _F32(1.0), _F32(1.0))


def _exp_into(src, out, tf, n):  # pragma: no cover - typed by the overload below
    """``out[:n] = exp(src[:n])`` in the arrays' dtype (``tf`` scratch of that dtype)."""
    raise NotImplementedError


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


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _layer(F, rows, n, lo, step, K, kind, mean, draw, U, ustride, uoff, want_mean, want_draw,
           arg, ex, tf, one):  # pragma: no cover - compiled by numba
    """For ``rows`` rows of fields ``F`` (flat, ``n`` units a row): ``mean`` = conditional
    means (if ``want_mean``), ``draw`` = values drawn with the uniforms
    ``U[c * ustride + uoff + i]`` (if ``want_draw``); outputs flat like ``F``. Two levels:
    with ``e = exp(-f step)``, mean ``lo + step / (1 + e)``, draw ``k = [u (1 + e) < 1]``.
    ``arg``/``ex``/``tf`` are scratch of ``F``'s dtype, at least ``rows * n`` long; ``one``
    is 1 in that dtype (so float32 work stays float32)."""
    m = rows * n
    if kind == _GENERAL:
        for c in range(rows):
            for i in range(n):
                e = c * n + i
                a = float(F[e]) * step[i]
                Ki = K[i]
                if Ki == 2:
                    q = math.exp(-min(max(a, -708.0), 708.0))
                    if want_mean:
                        mean[e] = lo[i] + step[i] / (1.0 + q)
                    if want_draw:
                        u = U[c * ustride + uoff + i]
                        draw[e] = lo[i] + step[i] if u * (1.0 + q) < 1.0 else lo[i]
                else:
                    if want_mean:
                        mean[e] = lo[i] + step[i] * _geo_mean(a, Ki)
                    if want_draw:
                        u = U[c * ustride + uoff + i]
                        draw[e] = lo[i] + step[i] * _geo_draw(a, Ki, u)
        return
    # the per-row loops run on 1-D slices, inline: LLVM vectorises them (4x faster than
    # 2-D indexing or a call per row)
    if kind == _BINARY:
        for e in range(m):
            arg[e] = -F[e]
    else:
        for c in range(rows):
            fr, ar = F[c * n:(c + 1) * n], arg[c * n:(c + 1) * n]
            for i in range(n):
                ar[i] = -fr[i] * step[i]
    _exp_into(arg, ex, tf, m)  # (out of place: aliasing would stop the vectorising)
    if want_mean:
        if kind == _BINARY:
            for e in range(m):
                mean[e] = one / (one + ex[e])
        else:
            for c in range(rows):
                er, mr = ex[c * n:(c + 1) * n], mean[c * n:(c + 1) * n]
                for i in range(n):
                    mr[i] = lo[i] + step[i] / (one + er[i])
    if want_draw:  # k = [u (1 + e) < 1], compared in float64
        for c in range(rows):
            b = c * ustride + uoff
            ur, er, dr = U[b:b + n], ex[c * n:(c + 1) * n], draw[c * n:(c + 1) * n]
            if kind == _BINARY:
                for i in range(n):
                    dr[i] = ur[i] * (1.0 + er[i]) < 1.0
            else:
                for i in range(n):
                    dr[i] = lo[i] + step[i] * (ur[i] * (1.0 + er[i]) < 1.0)


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


# no nnan/ninf flags here: the finiteness test below must survive optimisation
@nb.njit(cache=True, fastmath={"contract", "reassoc", "arcp"}, error_model="numpy")
def _sgd(P, M, G, lr, mom, wd):  # pragma: no cover - compiled by numba
    """torch.optim.SGD on the flat parameter ``P`` with ascent statistics ``G`` (loss
    gradient ``-G + wd P``), momentum buffer ``M``; returns ``sum P * 0``: 0 when every
    new entry is finite, NaN otherwise."""
    s = P[0] * 0
    if mom == 0:
        for i in range(P.shape[0]):
            P[i] -= lr * (wd * P[i] - G[i])
            s += P[i] * 0
    else:
        for i in range(P.shape[0]):
            M[i] = mom * M[i] + (wd * P[i] - G[i])
            P[i] -= lr * M[i]
            s += P[i] * 0
    return s


@nb.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _cd_run(W, bv, bh, mW, mbv, mbh, data, perm, bs, k, persistent, cv, ch, lo_v, st_v, K_v,
            kind_v, lo_h, st_h, K_h, kind_h, lr_, mom_, wd_, rng):  # pragma: no cover
    n_v, n_h = W.shape
    N = perm.shape[1]
    dt = W.dtype
    R = max(bs, cv.shape[0])  # chain rows
    sc = np.empty(4, dt)  # scalars in the parameters' dtype
    sc[0], sc[1], sc[2] = lr_, mom_, wd_
    lr, mom, wd = sc[0], sc[1], sc[2]
    one = np.ones(1, dt)[0]
    WT = np.empty((n_h, n_v), dt)
    _transpose(W, WT)
    G = np.zeros((n_v, n_h), dt)
    gv = np.zeros(n_v, dt)
    gh = np.zeros(n_h, dt)
    Gf, Wf, mWf = G.reshape(-1), W.reshape(-1), mW.reshape(-1)
    # chain states (CD: scratch; PCD: the chains), fields, means (flat, row-major)
    Vc = cv if persistent else np.empty((bs, n_v), dt)
    Hc = ch if persistent else np.empty((bs, n_h), dt)
    Vf, Hf = Vc.reshape(-1), Hc.reshape(-1)
    FP = np.empty(bs * n_h, dt)  # positive fields -> means
    FV = np.empty(R * n_v, dt)
    FH = np.empty(R * n_h, dt)
    HM = np.empty(R * n_h, dt)
    pad = R * max(n_v, n_h) + _LANES
    arg = np.empty(pad, dt)
    ex = np.empty(pad, dt)
    tf = np.empty(pad, dt)
    ustride = n_v + n_h + _LANES
    U = np.empty(R * ustride)
    ubits = U.view(np.uint64)
    st = np.empty((2, _LANES), np.uint64)
    IV = np.empty((R + bs, n_v), np.int64)  # nonzero visible entries per row
    NV = np.empty(R + bs, np.int64)
    ih = np.empty(n_h, np.int64)
    done = 0
    for e in range(perm.shape[0]):
        for b0 in range(0, N, bs):
            B = min(bs, N - b0)
            C = cv.shape[0] if persistent else B
            G[:] = 0
            gv[:] = 0
            gh[:] = 0
            sc[3] = 1.0 / B
            a_pos = sc[3]
            sc[3] = -1.0 / C
            a_neg = sc[3]
            # positive phase: E[h | v] for the batch (CD: and h drawn from it)
            for r in range(B):
                x = data[perm[e, b0 + r]]
                NV[R + r] = _nonzero(x, IV[R + r])
                _field(W, bh, x, IV[R + r], NV[R + r], FP[r * n_h:(r + 1) * n_h])
            if not persistent:
                for r in range(B):
                    _uniforms(rng, r, st, U, ubits, r * ustride, n_h)
            _layer(FP, B, n_h, lo_h, st_h, K_h, kind_h, FP, Hf, U, ustride, 0, True,
                   not persistent, arg, ex, tf, one)
            for r in range(B):
                _outer_acc(G, gv, gh, data[perm[e, b0 + r]], IV[R + r], NV[R + r],
                           FP[r * n_h:(r + 1) * n_h], a_pos)
            # negative phase: k block-Gibbs steps on C chains, layer by layer
            for s in range(k):
                last = s == k - 1
                draw_h = persistent or not last
                nu = n_v + n_h if draw_h else n_v
                for c in range(C):
                    _uniforms(rng, c, st, U, ubits, c * ustride, nu)
                    hc = Hc[c]
                    _field(WT, bv, hc, ih, _nonzero(hc, ih), FV[c * n_v:(c + 1) * n_v])
                _layer(FV, C, n_v, lo_v, st_v, K_v, kind_v, FV, Vf, U, ustride, 0, False,
                       True, arg, ex, tf, one)
                for c in range(C):
                    vc = Vc[c]
                    NV[c] = _nonzero(vc, IV[c])
                    _field(W, bh, vc, IV[c], NV[c], FH[c * n_h:(c + 1) * n_h])
                _layer(FH, C, n_h, lo_h, st_h, K_h, kind_h, HM, Hf, U, ustride, n_v, last,
                       draw_h, arg, ex, tf, one)
            for c in range(C):
                _outer_acc(G, gv, gh, Vc[c], IV[c], NV[c], HM[c * n_h:(c + 1) * n_h], a_neg)
            tot = _sgd(Wf, mWf, Gf, lr, mom, wd)
            tot += _sgd(bv, mbv, gv, lr, mom, wd)
            tot += _sgd(bh, mbh, gh, lr, mom, wd)
            if not np.isfinite(tot):
                return done
            _transpose(W, WT)
            done += 1
    return done


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
    ``rng`` holds one slot per chain, (max(batch_size, C), 2, 8) uint64 from
    :func:`seed_streams`. ``visible`` / ``hidden`` default to binary units.

    Returns the number of updates done: all of them, or the index of the first update
    after which some parameter was not finite (the run stops there; the parameters are
    then not finite and the caller restores its copy).

    >>> import numpy as np
    >>> rng0 = np.random.default_rng(0)
    >>> data = (rng0.random((20, 6)) < 0.3).astype(np.float64)
    >>> W, bv, bh = np.zeros((6, 3)), np.zeros(6), np.zeros(3)
    >>> perm = np.stack([rng0.permutation(20) for _ in range(5)])
    >>> streams = seed_streams(np.arange(20).reshape(10, 2))
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
    if rng.dtype != np.uint64 or rng.ndim != 3 or rng.shape[0] < slots \
            or rng.shape[1:] != (2, _LANES):
        raise DataError(f"cd_epochs: rng must be ({slots}, 2, {_LANES}) uint64 streams "
                         "from seed_streams")
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
