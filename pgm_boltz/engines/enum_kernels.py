"""Exact engine: enumerate a vertex cover, sum the rest out in closed form.

Split the nodes into an enumerated set E and a summed-out set S whose members have
all their neighbours in E (S is an independent set). Then

    log Z = logsumexp_{x_E} [ -E_E(x_E) + sum_{i in S} A_i(b_i + sum_{j in E} W_ij s_j) ]

with ``A_i`` the unit's log-normaliser (:mod:`pgm_boltz.domains`).

log Z and the moments (its gradient) are computed in blocks. E is split into low nodes L
(the first ones, at most ``_TABLE_STATES`` joint levels) and top nodes T. A table holds,
for every joint level ``x`` of L, its values, ``x W_LL x / 2`` and its fields on S
(``x W_LS``). Each chunk fixes T at one joint level (chunk order: mixed radix), which
turns into biases on L and S; the chunk then weighs every table row at once,

    log p~(x, t) = const(t) + x.b_L(t) + x W_LL x / 2 + sum_{i in S} A_i(x W_LS + b_S(t))_i,

in tight loops over the rows (one ``exp`` per row and summed node). Moments are sums
of ``p`` times products, accumulated per chunk without re-walking: ``sum p x`` per table
row gives the L-L block as ``X^T diag(P_L) X`` once at the end, ``X^T w`` per chunk gives
the L-T block, and the summed nodes' conditional means ``mu_i`` give the S blocks.

Chunks are split into at most ``_GROUPS`` contiguous groups with their own (rescaled)
sums, walked in parallel (threads over GIL-free numba kernels) and merged in group
order, so results do not depend on the thread count. Exact sampling walks E in a
reflected mixed-radix Gray code instead, each step changing one node by one level and
updating the fields incrementally in O(|E| + |S|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch

from .._numba import notice_first_compile
from ..domains import ARITH, DomainVector
from ..domains.kernels import G, log_normalizer, mean
from .threads import run_split

__all__ = ["ExactProblem", "exact_log_partition", "exact_moments", "exact_sample_enumerated"]

_REFRESH_STEPS = 1 << 16  # recompute fields from scratch this often, against drift
_RESCALE_AT = 50.0  # rescale accumulators when the log-weight exceeds the shift by this
_TABLE_STATES = 1 << 10  # rows of the low-state table at most
_TABLE_FLOATS = 1 << 18  # table rows x summed-out nodes at most (2 MiB per array)
_GROUPS = 64  # chunk groups with their own sums (merged in order: thread-count free)
# reassociation and contraction only (no finite-math assumptions): lets LLVM vectorise
_FAST = {"nsz", "arcp", "contract", "reassoc"}
_GROUP_MEMORY = 1 << 24  # floats of per-group sums at most (128 MiB)


@nb.njit(cache=True)
def _fields(s, bE, WEE, bS, WES, fE, fS):
    nE = s.shape[0]
    nS = bS.shape[0]
    logwE = 0.0
    for j in range(nE):
        fE[j] = bE[j]
    for i in range(nS):
        fS[i] = bS[i]
    for j in range(nE):
        sj = s[j]
        if sj != 0.0:
            for k in range(nE):
                fE[k] += WEE[j, k] * sj
            for i in range(nS):
                fS[i] += WES[j, i] * sj
    # E-part of -energy: b.s + 1/2 s W s  (W symmetric, zero diagonal)
    for j in range(nE):
        logwE += s[j] * (bE[j] + 0.5 * (fE[j] - bE[j]))
    return logwE


@nb.njit(cache=True)
def _summed(fS, kS, loS, stepS, KS, VS, LWS):
    """``sum_i A_i(f_i)`` over the summed-out nodes (the domains' own maths)."""
    tot = 0.0
    for i in range(fS.shape[0]):
        tot += log_normalizer(fS[i], i, kS, loS, stepS, KS, VS, LWS)
    return tot


@nb.njit(cache=True, inline="always")
def _next_digit(a, d, KE):
    j = 0
    while True:
        nd = a[j] + d[j]
        if 0 <= nd < KE[j]:
            return j
        d[j] = -d[j]
        j += 1


@nb.njit(cache=True, inline="always")
def _summed_mu(fS, kS, loS, stepS, KS, VS, LWS, mu, binS):
    """``sum_i A_i(f_i)`` over the summed-out nodes, and their conditional means ``mu``.

    With two-level nodes only (``binS``) one ``exp`` per node serves both:
    ``A = f lo + max(x, 0) + log(1 + e^{-|x|})`` with ``x = f step``, and the logs are
    taken once per 512 nodes of the running product of ``1 + e^{-|x|}`` (each <= 2).
    """
    tot = 0.0
    nS = fS.shape[0]
    if binS:
        prod = 1.0
        for i in range(nS):
            x = fS[i] * stepS[i]
            tot += fS[i] * loS[i]
            if x > 0.0:
                tot += x
                e = math.exp(-x)
            else:
                e = math.exp(x)
            q = 1.0 + e
            prod *= q
            r = 1.0 / q
            mu[i] = loS[i] + stepS[i] * (r if x > 0.0 else 1.0 - r)
            if (i & 511) == 511:
                tot += math.log(prod)
                prod = 1.0
        return tot + math.log(prod)
    for i in range(nS):
        tot += log_normalizer(fS[i], i, kS, loS, stepS, KS, VS, LWS)
        mu[i] = mean(fS[i], i, kS, loS, stepS, KS, VS, LWS)
    return tot


@nb.njit(cache=True)
def _fix_top(c, n_low, VE, KE, bE, WEE, bS, WES, st, bL, bSc):
    """Fix the enumerated nodes ``n_low..`` at chunk ``c``'s levels (mixed radix, first
    fastest): their values ``st``, the biases they leave on the rest, and their constant
    log-weight ``b_T.s_T + s_T W_TT s_T / 2``."""
    nE = KE.shape[0]
    nT = nE - n_low
    rem = c + 0
    for q in range(nT):
        K = KE[n_low + q]
        st[q] = VE[n_low + q, rem % K]
        rem //= K
    for k in range(n_low):
        bL[k] = bE[k]
    for i in range(bS.shape[0]):
        bSc[i] = bS[i]
    const = 0.0
    for q in range(nT):
        sq = st[q]
        row = n_low + q
        const += sq * bE[row]
        for r in range(nT):
            const += 0.5 * sq * WEE[row, n_low + r] * st[r]
        for k in range(n_low):
            bL[k] += WEE[row, k] * sq
        for i in range(bS.shape[0]):
            bSc[i] += WES[row, i] * sq
    return const


_SAFE_LOG = 300.0  # product form only while its factors stay within e^±300
#: the product form's normaliser sum_k y^k is a K-term Horner loop: past this many levels
#: the closed-form log G_K (one log per row and node) is cheaper and loops over nothing
_POLY_LEVELS = 64


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _add_bias(lw, XT, bL):
    """``lw[x] += x . b_L`` for every table row x (vectorised over rows)."""
    for k in range(XT.shape[0]):
        b = bL[k]
        for l in range(XT.shape[1]):
            lw[l] += XT[k, l] * b


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _exp_from_max(lw, w):
    """``w = e^{lw - m}`` with ``m = max lw``; returns ``m``."""
    m = lw[0]
    for l in range(1, lw.shape[0]):
        m = max(m, lw[l])
    for l in range(lw.shape[0]):
        w[l] = math.exp(lw[l] - m)
    return m


@nb.njit(cache=True, fastmath=_FAST)
def _table_weights(XT, baseL, FL, EB, mB, RB, EFLT, cS, VL, spanL, KL, bL, bSc, kS, loS,
                   stepS, KS, VS, LWS, binS, polyS, want_mu, lw, w, M, fS, acc):
    """Weights of one chunk's table rows up to a common factor ``e^m``; returns ``m``.

    ``log p~(x) = x W_LL x / 2 + x.b_L + sum_s A_s(f_s(x))`` with ``f_s = (x W_LS)_s + b_S``
    and ``w[x] = p~(x) e^{-m}``; with ``want_mu``, ``M[s, x]`` is summed node s's
    conditional mean. Two forms give the same numbers:

    - product form (no ``exp`` per row; summed nodes of arithmetic-progression domains,
      ``polyS``): ``e^{x.b_L}`` is a product of per-node factors
      built by doubling over the table (one multiply per row), ``e^{x W_LL x / 2 + lo.f}``
      is the precomputed ``EB``, and with ``y_s = e^{step_s f_s} = EFLT[s, x] e^{a_s}``,
      ``A_s = lo_s f_s + log sum_{k<K} y_s^k`` (``1 + y`` for two levels), so a row's weight
      is ``EB * prod_k(...) * prod_s sum_k y_s^k``. Every factor is scaled to at most 1
      (or bounded by ``e^{A_s(a_s)}``); used when the bounds keep them within
      ``e^{±_SAFE_LOG}``; products of the summed nodes are split into segments whose
      logs are taken once per row when one product could exceed that;
    - log form otherwise (huge fields): ``log p~`` per row, one ``exp`` per row and node.
    """
    n_low, nL = XT.shape
    nS = bSc.shape[0]
    fast = polyS
    for s in range(nS if polyS else 0):
        if (stepS[s] * bSc[s] + cS[s]) * (KS[s] - 1) > _SAFE_LOG:
            fast = False
            break
    if not fast:
        for l in range(nL):
            lw[l] = baseL[l]
        _add_bias(lw, XT, bL)
        for l in range(nL):
            for s in range(nS):
                fS[s] = FL[l, s] + bSc[s]
            if want_mu:
                lw[l] += _summed_mu(fS, kS, loS, stepS, KS, VS, LWS, acc, binS)
                for s in range(nS):
                    M[s, l] = acc[s]
            else:
                lw[l] += _summed(fS, kS, loS, stepS, KS, VS, LWS)
        return _exp_from_max(lw, w)
    # E part: e^{x.b_L + x W_LL x / 2 + lo.(x W_LS)} / e^{mE}
    R = RB
    for k in range(n_low):
        R += abs(bL[k]) * spanL[k]
    if R <= _SAFE_LOG:
        w[0] = 1.0
        size = 1
        mE = mB
        for k in range(n_low):
            b = bL[k]
            mk = -np.inf
            for d in range(KL[k]):
                mk = max(mk, b * VL[k, d])
            mE += mk
            for d in range(KL[k] - 1, -1, -1):  # block 0 (the source) is written last
                fd = math.exp(b * VL[k, d] - mk)
                o = d * size
                for l in range(size):
                    w[o + l] = w[l] * fd
            size *= KL[k]
        for l in range(nL):
            w[l] *= EB[l]
    else:
        for l in range(nL):
            lw[l] = baseL[l]
        for s in range(nS):
            for l in range(nL):
                lw[l] += loS[s] * FL[l, s]
        _add_bias(lw, XT, bL)
        mE = _exp_from_max(lw, w)
    # S part: prod_s sum_k y_s^k, in segments of bounded size
    for s in range(nS):
        mE += loS[s] * bSc[s]
    for l in range(nL):
        lw[l] = 1.0  # the running product of the open segment
    logs = False
    bound = 0.0
    for s in range(nS):
        a = stepS[s] * bSc[s] + cS[s]
        K = KS[s]
        g = G(a, K)
        if bound + g > _SAFE_LOG and bound > 0.0:
            if not logs:
                for l in range(nL):
                    acc_l = math.log(w[l]) if w[l] > 0.0 else -np.inf
                    w[l] = acc_l
                logs = True
            for l in range(nL):
                w[l] += math.log(lw[l])
                lw[l] = 1.0
            bound = 0.0
        bound += g
        ea = math.exp(a)
        lo = loS[s]
        st = stepS[s]
        if K == 2:
            if want_mu:
                for l in range(nL):
                    y = EFLT[s, l] * ea
                    q = 1.0 + y
                    lw[l] *= q
                    M[s, l] = lo + st * (y / q)
            else:
                for l in range(nL):
                    lw[l] *= 1.0 + EFLT[s, l] * ea
        else:
            for l in range(nL):
                y = EFLT[s, l] * ea
                den = 1.0
                num = 0.0
                for k in range(K - 1, 0, -1):
                    den = 1.0 + y * den
                    num = k + y * num
                num *= y  # sum_k k y^k
                lw[l] *= den
                if want_mu:
                    M[s, l] = lo + st * (num / den)
    if not logs:
        for l in range(nL):
            w[l] *= lw[l]
        return mE
    for l in range(nL):
        lw[l] = w[l] + math.log(lw[l])
    return mE + _exp_from_max(lw, w)


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _table_dot(v, tmp, VL, KL, out):
    """``out[k] = sum_x x_k v[x]`` for every low node k of the table, by folding: the
    slowest node's levels are contiguous blocks, so their block sums give its term, and
    adding the blocks together leaves the same problem for the remaining nodes on a
    table K times smaller (about 3 adds per row in all, against n_low multiply-adds)."""
    n = v.shape[0]
    for x in range(n):
        tmp[x] = v[x]
    for k in range(KL.shape[0] - 1, -1, -1):
        K = KL[k]
        sz = n // K
        acc = 0.0
        for d in range(K):
            bs = 0.0
            o = d * sz
            for x in range(sz):
                bs += tmp[o + x]
            acc += VL[k, d] * bs
        out[k] = acc
        for d in range(1, K):
            o = d * sz
            for x in range(sz):
                tmp[x] += tmp[o + x]
        n = sz


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def _table_groups(g0, g1, bounds, VE, spanE, KE, bE, WEE, kS, loS, stepS, KS, VS, LWS, bS,
                  WES, n_low, binS, polyS, moments, full_ss, XT, baseL, FL, EB, mB, RB, EFLT,
                  cS, out_logz,
                  out_C, H1, T, PL, AH, HH, BL, BH, SS):
    """Groups ``g0..g1-1`` of chunks: chunk c fixes the enumerated nodes ``n_low..`` at
    its levels (``_fix_top``) and weighs all the rows of the table at once
    (``_table_weights``). Each group accumulates unnormalised sums relative to
    ``e^{out_logz[g]}`` (GIL released, so threads take disjoint group ranges; the merge is
    in group order, independent of the thread count).

    Per group: ``C = sum p``, ``H1 = sum p s_top``, ``T = sum p mu``, ``PL[x]`` = weight of
    table row x, ``AH = sum p s_top (x) s_low``, ``HH = sum p s_top (x) s_top``,
    ``BL = sum p s_low (x) mu``, ``BH = sum p s_top (x) mu`` and, with ``full_ss``,
    ``SS = sum p mu (x) mu`` (upper triangle).
    """
    nE = KE.shape[0]
    nT = nE - n_low
    nS = bS.shape[0]
    nL = baseL.shape[0]
    VL, spanL, KL = VE[:n_low], spanE[:n_low], KE[:n_low]
    st = np.empty(nT)
    bL = np.empty(n_low)
    bSc = np.empty(nS)
    lw = np.empty(nL)
    w = np.empty(nL)
    fS = np.empty(nS)
    acc = np.empty(nS)
    u = np.empty(n_low)
    u2 = np.empty(n_low)
    tmp = np.empty(nL)
    tmu = np.empty(nS)
    M = np.empty((nS, nL if moments else 1))
    for g in range(g0, g1):
        shift = -np.inf
        for c in range(bounds[g], bounds[g + 1]):
            const = _fix_top(c, n_low, VE, KE, bE, WEE, bS, WES, st, bL, bSc)
            m = const + _table_weights(XT, baseL, FL, EB, mB, RB, EFLT, cS, VL, spanL, KL,
                                       bL, bSc, kS, loS, stepS, KS, VS, LWS, binS, polyS,
                                       moments, lw, w, M, fS, acc)
            if m > shift + _RESCALE_AT:  # rescale the group's sums to a larger shift
                r = math.exp(shift - m) if shift > -np.inf else 0.0
                out_C[g] *= r
                if moments:
                    H1[g] *= r
                    T[g] *= r
                    PL[g] *= r
                    AH[g] *= r
                    HH[g] *= r
                    BL[g] *= r
                    BH[g] *= r
                    SS[g] *= r
                shift = m
            f = math.exp(m - shift)
            zc = 0.0
            for l in range(nL):
                zc += w[l]
            out_C[g] += f * zc
            if not moments:
                continue
            zc *= f
            for l in range(nL):
                w[l] *= f
                PL[g, l] += w[l]
            _table_dot(w, tmp, VL, KL, u)
            if full_ss:
                for s in range(nS):
                    for t in range(s + 1, nS):
                        a = 0.0
                        for l in range(nL):
                            a += w[l] * M[s, l] * M[t, l]
                        SS[g, s, t] += a
            for s in range(nS):  # M := p mu (rows scaled by w), then its sums
                a = 0.0
                for l in range(nL):
                    v = w[l] * M[s, l]
                    M[s, l] = v
                    a += v
                tmu[s] = a
                T[g, s] += a
                _table_dot(M[s], tmp, VL, KL, u2)
                for k in range(n_low):
                    BL[g, k, s] += u2[k]
            for q in range(nT):
                sq = st[q]
                H1[g, q] += sq * zc
                for k in range(n_low):
                    AH[g, q, k] += sq * u[k]
                for r2 in range(nT):
                    HH[g, q, r2] += sq * st[r2] * zc
                for s in range(nS):
                    BH[g, q, s] += sq * tmu[s]
        out_logz[g] = shift


@nb.njit(cache=True)
def _sample_kernel(VE, KE, bE, WEE, kS, loS, stepS, KS, VS, LWS, bS, WES, n_states, logz,
                   u):
    nE = KE.shape[0]
    n = u.shape[0]
    out = np.empty((n, nE))
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = VE[:, 0].copy()
    fE = np.empty(nE)
    fS = np.empty(bS.shape[0])
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    cum = 0.0
    ptr = 0
    for t in range(n_states):
        if t > 0:
            j = _next_digit(a, d, KE)
            a[j] += d[j]
            delta = VE[j, a[j]] - VE[j, a[j] - d[j]]
            s[j] += delta
            if t % _REFRESH_STEPS == 0:
                for q in range(nE):
                    s[q] = VE[q, a[q]]
                logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
            else:
                logwE += delta * fE[j]
                for k in range(nE):
                    fE[k] += delta * WEE[j, k]
                for i in range(fS.shape[0]):
                    fS[i] += delta * WES[j, i]
        cum += math.exp(logwE + _summed(fS, kS, loS, stepS, KS, VS, LWS) - logz)
        while ptr < n and u[ptr] < cum:
            out[ptr, :] = s
            ptr += 1
        if ptr == n:
            break
    while ptr < n:  # rounding at the very end: the last state
        out[ptr, :] = s
        ptr += 1
    return out


@dataclass
class ExactProblem:
    """The arrays a kernel walks: enumerated set E and summed-out set S of a model.

    Per node (E or S): the domain arrays of
    :meth:`~pgm_boltz.domains.DomainVector.kernel_arrays` (``k`` kind, ``lo``, ``step``,
    ``K`` levels, ``V`` value table, ``LW`` log-weights); ``spanE`` is each enumerated
    node's value range; ``polyS`` says whether every summed node is an arithmetic
    progression (the product form applies)."""

    enum: np.ndarray
    summed: np.ndarray
    VE: np.ndarray
    spanE: np.ndarray
    KE: np.ndarray
    bE: np.ndarray
    WEE: np.ndarray
    kS: np.ndarray
    loS: np.ndarray
    stepS: np.ndarray
    KS: np.ndarray
    VS: np.ndarray
    LWS: np.ndarray
    bS: np.ndarray
    WES: np.ndarray
    n_states: int
    polyS: bool

    def summed_args(self) -> tuple:
        """The summed nodes' domain arrays, in the kernels' argument order."""
        return (self.kS, self.loS, self.stepS, self.KS, self.VS, self.LWS)


def build_problem(domains: DomainVector, bias: np.ndarray, WEE: np.ndarray,
                  WES: np.ndarray, enum: np.ndarray) -> ExactProblem:
    """Slice a model into E and S: biases ``bias`` (n,), the couplings among the
    enumerated nodes ``WEE`` (|E|, |E|, symmetric, zero diagonal) and from them to the
    summed ones ``WES`` (|E|, |S|, S = the other nodes in increasing order)."""
    n = bias.shape[0]
    mask = np.zeros(n, dtype=bool)
    mask[enum] = True
    summed = np.flatnonzero(~mask)
    kind, lo, step, K, V, LW = domains.kernel_arrays(rows=enum)
    n_states = int(np.prod(K[enum], dtype=np.float64)) if len(enum) else 1
    c = np.ascontiguousarray
    span = np.zeros(n)
    for i in enum:
        span[i] = np.ptp(V[i, :K[i]])
    return ExactProblem(
        enum=enum, summed=summed, VE=c(V[enum]), spanE=c(span[enum]), KE=c(K[enum]),
        bE=c(bias[enum]), WEE=c(WEE), kS=c(kind[summed]),
        loS=c(lo[summed]), stepS=c(step[summed]), KS=c(K[summed]), VS=c(V[summed]),
        LWS=c(LW[summed]), bS=c(bias[summed]), WES=c(WES),
        n_states=n_states,
        polyS=bool(np.all(kind[summed] == ARITH) and np.all(K[summed] <= _POLY_LEVELS)))


def _split(problem: ExactProblem) -> tuple[int, int]:
    """``(n_low, n_chunks)``: the first ``n_low`` enumerated nodes form the table.

    The table holds every joint level of the low nodes (at most ``_TABLE_STATES`` rows,
    and at most ``_TABLE_FLOATS`` row-by-summed-node entries); each of the ``n_chunks``
    chunks fixes the remaining enumerated nodes at one joint level. Nothing enumerated:
    ``(0, 1)``.
    """
    KE = problem.KE
    if len(KE) == 0:
        return 0, 1
    nS = max(len(problem.summed), 1)
    n_low, rows = 1, int(KE[0])
    while n_low < len(KE):
        k = int(KE[n_low])
        if rows * k > _TABLE_STATES or rows * k * nS > _TABLE_FLOATS:
            break
        rows *= k
        n_low += 1
    return n_low, problem.n_states // rows


def _low_table(problem: ExactProblem, n_low: int) -> tuple:
    """The table of the low nodes' joint levels (first node fastest): ``XT`` (n_low, rows)
    their values, ``baseL = x W_LL x / 2``, ``FL = x W_LS`` (rows, |S|); for the product
    form ``EB = e^{baseL + lo.FL - mB}`` with ``mB`` its log-maximum and ``RB`` its
    log-range, ``cS[s] = max_x step_s FL[x, s]`` and
    ``EFLT[s, x] = e^{step_s FL[x, s] - cS[s]}``."""
    KE = problem.KE[:n_low]
    rows = int(np.prod(KE))
    rem = np.arange(rows)
    XT = np.empty((n_low, rows))
    for k in range(n_low):
        XT[k] = problem.VE[k, rem % KE[k]]
        rem = rem // KE[k]
    baseL = 0.5 * np.einsum("kl,kl->l", problem.WEE[:n_low, :n_low] @ XT, XT)
    FL = np.ascontiguousarray(XT.T @ problem.WES[:n_low])
    b2 = baseL + FL @ problem.loS
    mB = float(b2.max())
    sFL = FL * problem.stepS
    cS = sFL.max(axis=0) if FL.shape[1] else np.zeros(0)
    with np.errstate(under="ignore"):
        EB = np.exp(b2 - mB)
        EFLT = np.ascontiguousarray(np.exp(sFL - cS).T)
    return (XT, np.ascontiguousarray(baseL), FL, EB, mB, float(mB - b2.min()), EFLT,
            np.ascontiguousarray(cS))


def _binary_summed(problem: ExactProblem) -> bool:
    return problem.polyS and bool(np.all(problem.KS == 2))


def _walk(problem: ExactProblem, moments: bool, full_ss: bool) -> tuple:
    """Run the table kernel over all chunks; returns ``(n_low, XT, logZ, sums)`` with the
    groups' sums merged and normalised by ``Z`` (``sums`` empty without ``moments``)."""
    n_low, n_chunks = _split(problem)
    table = _low_table(problem, n_low)
    XT = table[0]
    nT, nS, rows = len(problem.enum) - n_low, len(problem.summed), XT.shape[1]
    per_group = 2 + (rows + nT * (1 + n_low + nT + nS) + nS * (1 + n_low)
                     + (nS * nS if full_ss else 0) if moments else 0)
    G = max(1, min(n_chunks, _GROUPS, _GROUP_MEMORY // per_group))
    bounds = np.linspace(0, n_chunks, G + 1).round().astype(np.int64)
    z = np.zeros
    if moments:
        ss = nS if full_ss else 0
        sums = [z((G, nT)), z((G, nS)), z((G, rows)), z((G, nT, n_low)), z((G, nT, nT)),
                z((G, n_low, nS)), z((G, nT, nS)), z((G, ss, ss))]
    else:
        sums = [z((G, 0)), z((G, 0)), z((G, 0)), z((G, 0, 0)), z((G, 0, 0)), z((G, 0, 0)),
                z((G, 0, 0)), z((G, 0, 0))]
    shift, C = np.full(G, -np.inf), z(G)
    p = problem
    args = (bounds, p.VE, p.spanE, p.KE, p.bE, p.WEE, *p.summed_args(), p.bS, p.WES,
            n_low, _binary_summed(p), p.polyS, moments, full_ss, *table, shift, C, *sums)
    notice_first_compile(_table_groups)
    run_split(lambda g0, g1: _table_groups(g0, g1, *args), G, nb.config.NUMBA_NUM_THREADS)
    logz_g = shift + np.log(C)
    logz = float(np.logaddexp.reduce(logz_g))
    scale = np.exp(shift - logz)  # group sums are relative to e^shift
    merged = [np.tensordot(scale, s, 1) for s in sums] if moments else []
    return n_low, XT, logz, merged


def exact_log_partition(problem: ExactProblem) -> float:
    """``log Z`` of the problem (float64): the table walk, split over threads when large."""
    if len(problem.enum) == 0:
        return float(_summed(problem.bS, *problem.summed_args()))
    return _walk(problem, False, False)[2]


@dataclass
class ExactMoments:
    """``log Z``, ``<s_i>`` for every node and ``<s_i s_j>`` by blocks: ``EE`` among the
    enumerated nodes ``E``, ``ES`` between them and the summed ones ``S`` and, when asked
    for, ``SS`` among the summed ones (memory O(|E| n), never n × n unless
    :meth:`dense` is called)."""

    log_z: float
    mean: np.ndarray
    E: np.ndarray
    S: np.ndarray
    EE: np.ndarray
    ES: np.ndarray
    SS: np.ndarray | None = None

    def pairs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``<s_u s_v>`` for index arrays ``u``, ``v`` (pairs of two summed nodes need
        ``SS``; a node with itself gives 0: the diagonal is not computed here)."""
        n = len(self.mean)
        pos = np.full(n, -1)
        pos[self.E] = np.arange(len(self.E))
        spos = np.full(n, -1)
        spos[self.S] = np.arange(len(self.S))
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        out = np.zeros(len(u))
        ee = (pos[u] >= 0) & (pos[v] >= 0)
        out[ee] = self.EE[pos[u[ee]], pos[v[ee]]]
        es = (pos[u] >= 0) & (spos[v] >= 0)
        out[es] = self.ES[pos[u[es]], spos[v[es]]]
        se = (spos[u] >= 0) & (pos[v] >= 0)
        out[se] = self.ES[pos[v[se]], spos[u[se]]]
        ss = (spos[u] >= 0) & (spos[v] >= 0)
        if ss.any():
            if self.SS is None:
                raise ValueError("pairs of two summed-out nodes need all_pairs=True")
            out[ss] = self.SS[spos[u[ss]], spos[v[ss]]]
        out[u == v] = 0.0
        return out

    def dense(self) -> np.ndarray:
        """The symmetric (n × n) matrix, zero diagonal (summed–summed pairs left 0
        without ``SS``)."""
        n = len(self.mean)
        second = np.zeros((n, n))
        E, S = self.E, self.S
        second[np.ix_(E, E)] = self.EE
        second[np.ix_(E, S)] = self.ES
        second[np.ix_(S, E)] = self.ES.T
        if self.SS is not None:
            second[np.ix_(S, S)] = self.SS
        np.fill_diagonal(second, 0.0)
        return second


def exact_moments(problem: ExactProblem, n: int, all_pairs: bool = False) -> ExactMoments:
    """Exact first and second moments in one walk. Pairs of two summed-out nodes are
    computed only with ``all_pairs=True`` (extra O(|S|^2) per state); edges never need
    them because the summed-out set is independent."""
    E, S = problem.enum, problem.summed
    mean = np.zeros(n)
    if len(E) == 0:
        mu = np.empty(len(S))
        _summed_mu(problem.bS, *problem.summed_args(), mu, False)
        mean[S] = mu
        SS = None
        if all_pairs:
            SS = np.outer(mu, mu)
            np.fill_diagonal(SS, 0.0)
        return ExactMoments(exact_log_partition(problem), mean, E, S, np.zeros((0, 0)),
                            np.zeros((0, len(S))), SS)
    n_low, XT, logz, (H1, T, PL, AH, HH, BL, BH, SS) = _walk(problem, True, all_pairs)
    low, top = np.arange(n_low), np.arange(n_low, len(E))
    mean[E[:n_low]] = XT @ PL
    mean[E[n_low:]] = H1
    mean[S] = T
    EE = np.zeros((len(E), len(E)))
    EE[np.ix_(low, low)] = (XT * PL) @ XT.T
    EE[np.ix_(top, low)] = AH
    EE[np.ix_(low, top)] = AH.T
    EE[np.ix_(top, top)] = HH
    np.fill_diagonal(EE, 0.0)
    ES = np.zeros((len(E), len(S)))
    ES[low] = BL
    ES[top] = BH
    SSm = SS + SS.T if all_pairs else None
    return ExactMoments(logz, mean, E, S, EE, ES, SSm)


def exact_sample_enumerated(problem: ExactProblem, log_z: float, n: int,
                            generator: torch.Generator | None) -> np.ndarray:
    """``n`` exact draws of the enumerated nodes' values, in random order."""
    u = torch.rand(n, dtype=torch.float64, generator=generator).numpy()
    order = np.argsort(u, kind="stable")
    if len(problem.enum) == 0:
        return np.zeros((n, 0))
    p = problem
    draws = _sample_kernel(p.VE, p.KE, p.bE, p.WEE, *p.summed_args(), p.bS, p.WES,
                           p.n_states, log_z, np.ascontiguousarray(u[order]))
    out = np.empty_like(draws)
    out[order] = draws
    return out
