"""Exact engine: enumerate a vertex cover, sum the rest out in closed form.

Split the nodes into an enumerated set E and a summed-out set S whose members have
all their neighbours in E (S is an independent set). Then

    log Z = logsumexp_{x_E} [ -E_E(x_E) + sum_{i in S} A_i(b_i + sum_{j in E} W_ij s_j) ]

with ``A_i`` the unit's log-normaliser (:mod:`pgm_boltz.domains`).

Quadratic self-terms ``-q_i s_i^2 / 2``: an enumerated node's enters its table weights as
per-level log-weights; a summed node of an arithmetic-progression domain keeps the
product form below as the polynomial ``sum_k c_k y^k`` with fixed coefficients
``c_k = e^{-q v_k^2 / 2}`` (Horner's rule with coefficients); others take the log form.
Gaussian summed nodes (whose neighbours are all enumerated) are integrated out before the
walk: ``∫ exp(-q s^2/2 + s (b + w.x)) ds = exp((b + w.x)^2 / (2q)) sqrt(2π/q)`` is a
pairwise term on the enumerated nodes, so they add ``w w^T / q`` to the couplings (its
diagonal as per-level log-weights), ``w b / q`` to the biases and a constant to log Z;
their moments follow from the enumerated nodes' (``<s> = (b + w.<x>)/q`` and so on).

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
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import torch

from .._numba import notice_first_compile
from ..domains import ARITH, GAUSS, TABLE, DomainVector
from ..domains.kernels import G, log_normalizer, mean, second_moment
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


@nb.njit(cache=True, inline="always")
def _summed_mu_sq(fS, kS, loS, stepS, KS, VS, LWS, mu, mu2):
    """As :func:`_summed_mu` (general domains), with the conditional second moments."""
    tot = 0.0
    for i in range(fS.shape[0]):
        tot += log_normalizer(fS[i], i, kS, loS, stepS, KS, VS, LWS)
        mu[i] = mean(fS[i], i, kS, loS, stepS, KS, VS, LWS)
        mu2[i] = second_moment(fS[i], i, kS, loS, stepS, KS, VS, LWS)
    return tot


@nb.njit(cache=True)
def _fix_top(c, n_low, VE, KE, LWE, bE, WEE, bS, WES, st, bL, bSc):
    """Fix the enumerated nodes ``n_low..`` at chunk ``c``'s levels (mixed radix, first
    fastest): their values ``st``, the biases they leave on the rest, and their constant
    log-weight ``b_T.s_T + s_T W_TT s_T / 2 + sum_T LW_T(level)``."""
    nE = KE.shape[0]
    nT = nE - n_low
    rem = c + 0
    const = 0.0
    for q in range(nT):
        K = KE[n_low + q]
        d = rem % K
        st[q] = VE[n_low + q, d]
        const += LWE[n_low + q, d]
        rem //= K
    for k in range(n_low):
        bL[k] = bE[k]
    for i in range(bS.shape[0]):
        bSc[i] = bS[i]
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


#: the product form's normaliser sum_k c_k y^k is a K-term Horner loop: past this many
#: levels the closed-form log G_K (one log per row and node) is cheaper and loops over
#: nothing (multinary units with huge K)
_POLY_LEVELS = 64
_SAFE_LOG = 300.0  # product form only while its factors stay within e^±300


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
def _table_weights(XT, baseL, FL, EB, mB, RB, EFLT, cS, rS, VL, spanL, KL, bL, bSc, kS, loS,
                   stepS, KS, VS, LWS, binS, polyS, want_mu, want_sq, lw, w, M, M2, fS, acc,
                   CF):
    """Weights of one chunk's table rows up to a common factor ``e^m``; returns ``m``.

    ``log p~(x) = x W_LL x / 2 + x.b_L + sum_s A_s(f_s(x))`` with ``f_s = (x W_LS)_s + b_S``
    (``baseL`` holds ``x W_LL x / 2`` plus the low nodes' per-level log-weights) and
    ``w[x] = p~(x) e^{-m}``; with ``want_mu``, ``M[s, x]`` is summed node s's conditional
    mean (and with ``want_sq``, ``M2[s, x]`` its conditional second moment). ``rS[s]`` is
    the log-range of ``EFLT[s]`` for summed nodes with per-level log-weights and -1 for
    the others; ``CF`` (nS, Kmax + 2) is scratch for a chunk's coefficients (their
    log-maximum ``U`` and log lower bound in the last two columns). Two forms give the
    same numbers:

    - product form (no ``exp`` per row; summed nodes of arithmetic-progression domains,
      ``polyS``): ``e^{x.b_L}`` is a product of per-node factors
      built by doubling over the table (one multiply per row), ``e^{x W_LL x / 2 + lo.f}``
      is the precomputed ``EB``, and with ``y_s = e^{step_s f_s} = EFLT[s, x] e^{a_s}``,
      ``A_s = lo_s f_s + log sum_{k<K} y_s^k`` (``1 + y`` for two levels), so a row's weight
      is ``EB * prod_k(...) * prod_s sum_k y_s^k``. A node with per-level log-weights
      ``LW_k`` (a quadratic self-term, ``rS[s] >= 0``) has ``sum_k e^{LW_k} y^k = e^{U}
      sum_k c_k r^k`` with ``r = EFLT[s, x] <= 1`` and this chunk's coefficients
      ``c_k = e^{LW_k + a k - U} <= 1`` (``U`` their log-maximum), a factor in
      ``[e^{lb_s}, K]``. Every factor is scaled to at most 1 (or bounded by
      ``e^{A_s(a_s)}``, or by K); used when the bounds keep them within
      ``e^{±_SAFE_LOG}``; products of the summed nodes are split into segments whose
      logs are taken once per row when one product could leave that range;
    - log form otherwise (huge fields): ``log p~`` per row, one ``exp`` per row and node.
    """
    n_low, nL = XT.shape
    nS = bSc.shape[0]
    jU = CF.shape[1] - 2  # the columns of U and of the lower bound
    fast = polyS
    for s in range(nS if polyS else 0):
        a = stepS[s] * bSc[s] + cS[s]
        if rS[s] >= 0.0:
            U = -np.inf
            for k in range(KS[s]):
                U = max(U, LWS[s, k] + a * k)
            lb = -np.inf
            for k in range(KS[s]):
                e = LWS[s, k] + a * k - U
                CF[s, k] = math.exp(e)
                lb = max(lb, e - k * rS[s])
            CF[s, jU] = U
            CF[s, jU + 1] = lb
            if lb < -_SAFE_LOG:
                fast = False
                break
        elif a * (KS[s] - 1) > _SAFE_LOG:
            fast = False
            break
    if not fast:
        for l in range(nL):
            lw[l] = baseL[l]
        _add_bias(lw, XT, bL)
        for l in range(nL):
            for s in range(nS):
                fS[s] = FL[l, s] + bSc[s]
            if want_sq:
                lw[l] += _summed_mu_sq(fS, kS, loS, stepS, KS, VS, LWS, acc, M2[:, l])
                for s in range(nS):
                    M[s, l] = acc[s]
            elif want_mu:
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
    bound = 0.0  # log-bounds of the open segment's product
    lbound = 0.0
    for s in range(nS):
        a = stepS[s] * bSc[s] + cS[s]
        K = KS[s]
        cf = rS[s] >= 0.0
        if cf:
            ghi = math.log(K)
            glo = CF[s, jU + 1]
        else:
            ghi = G(a, K)
            glo = 0.0
        if (bound + ghi > _SAFE_LOG and bound > 0.0) or (lbound + glo < -_SAFE_LOG
                                                           and lbound < 0.0):
            if not logs:
                for l in range(nL):
                    acc_l = math.log(w[l]) if w[l] > 0.0 else -np.inf
                    w[l] = acc_l
                logs = True
            for l in range(nL):
                w[l] += math.log(lw[l])
                lw[l] = 1.0
            bound = 0.0
            lbound = 0.0
        bound += ghi
        lbound += glo
        lo = loS[s]
        st = stepS[s]
        if cf:
            mE += CF[s, jU]
            top = CF[s, K - 1]
            for l in range(nL):
                r = EFLT[s, l]
                den = top
                num = (K - 1) * top
                num2 = (K - 1) * (K - 1) * top
                for k in range(K - 2, -1, -1):
                    c = CF[s, k]
                    den = c + r * den
                    num = k * c + r * num
                    if want_sq:
                        num2 = k * k * c + r * num2
                lw[l] *= den
                if want_mu:
                    ek = num / den
                    M[s, l] = lo + st * ek
                    if want_sq:
                        M2[s, l] = lo * lo + 2.0 * lo * st * ek + st * st * (num2 / den)
            continue
        ea = math.exp(a)
        if K == 2:
            if want_mu:
                for l in range(nL):
                    y = EFLT[s, l] * ea
                    q = 1.0 + y
                    lw[l] *= q
                    M[s, l] = lo + st * (y / q)
                if want_sq:  # two levels: s^2 = (v0 + v1) s - v0 v1
                    for l in range(nL):
                        M2[s, l] = (2.0 * lo + st) * M[s, l] - lo * (lo + st)
            else:
                for l in range(nL):
                    lw[l] *= 1.0 + EFLT[s, l] * ea
        else:
            for l in range(nL):
                y = EFLT[s, l] * ea
                den = 1.0
                num = 0.0
                num2 = 0.0
                for k in range(K - 1, 0, -1):
                    den = 1.0 + y * den
                    num = k + y * num
                    if want_sq:
                        num2 = k * k + y * num2
                num *= y  # sum_k k y^k
                lw[l] *= den
                if want_mu:
                    ek = num / den
                    M[s, l] = lo + st * ek
                    if want_sq:
                        M2[s, l] = lo * lo + 2.0 * lo * st * ek + st * st * (num2 * y / den)
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
def _table_groups(g0, g1, bounds, VE, spanE, KE, LWE, bE, WEE, kS, loS, stepS, KS, VS, LWS,
                  bS, WES, n_low, binS, polyS, moments, full_ss, want_sq, XT, baseL, FL,
                  EB, mB, RB, EFLT, cS, rS, out_logz,
                  out_C, H1, T, PL, AH, HH, BL, BH, SS, T2):
    """Groups ``g0..g1-1`` of chunks: chunk c fixes the enumerated nodes ``n_low..`` at
    its levels (``_fix_top``) and weighs all the rows of the table at once
    (``_table_weights``). Each group accumulates unnormalised sums relative to
    ``e^{out_logz[g]}`` (GIL released, so threads take disjoint group ranges; the merge is
    in group order, independent of the thread count).

    Per group: ``C = sum p``, ``H1 = sum p s_top``, ``T = sum p mu``, ``PL[x]`` = weight of
    table row x, ``AH = sum p s_top (x) s_low``, ``HH = sum p s_top (x) s_top``,
    ``BL = sum p s_low (x) mu``, ``BH = sum p s_top (x) mu``, with ``full_ss``
    ``SS = sum p mu (x) mu`` (upper triangle) and with ``want_sq`` ``T2 = sum p mu2`` (the
    summed nodes' conditional second moments).
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
    M2 = np.empty((nS, nL if want_sq else 1))
    CF = np.empty((nS, VS.shape[1] + 2))
    for g in range(g0, g1):
        shift = -np.inf
        for c in range(bounds[g], bounds[g + 1]):
            const = _fix_top(c, n_low, VE, KE, LWE, bE, WEE, bS, WES, st, bL, bSc)
            m = const + _table_weights(XT, baseL, FL, EB, mB, RB, EFLT, cS, rS, VL, spanL,
                                       KL, bL, bSc, kS, loS, stepS, KS, VS, LWS, binS, polyS,
                                       moments, want_sq, lw, w, M, M2, fS, acc, CF)
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
                    if want_sq:
                        T2[g] *= r
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
            if want_sq:
                for s in range(nS):
                    a2 = 0.0
                    for l in range(nL):
                        a2 += w[l] * M2[s, l]
                    T2[g, s] += a2
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
def _sample_kernel(VE, KE, LWE, bE, WEE, kS, loS, stepS, KS, VS, LWS, bS, WES, n_states,
                   logz, u):
    nE = KE.shape[0]
    n = u.shape[0]
    out = np.empty((n, nE))
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = VE[:, 0].copy()
    fE = np.empty(nE)
    fS = np.empty(bS.shape[0])
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    lwe = 0.0  # the enumerated nodes' per-level log-weights at their current levels
    for q in range(nE):
        lwe += LWE[q, 0]
    cum = 0.0
    ptr = 0
    for t in range(n_states):
        if t > 0:
            j = _next_digit(a, d, KE)
            a[j] += d[j]
            delta = VE[j, a[j]] - VE[j, a[j] - d[j]]
            s[j] += delta
            lwe += LWE[j, a[j]] - LWE[j, a[j] - d[j]]
            if t % _REFRESH_STEPS == 0:
                lwe = 0.0
                for q in range(nE):
                    s[q] = VE[q, a[q]]
                    lwe += LWE[q, a[q]]
                logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
            else:
                logwE += delta * fE[j]
                for k in range(nE):
                    fE[k] += delta * WEE[j, k]
                for i in range(fS.shape[0]):
                    fS[i] += delta * WES[j, i]
        cum += math.exp(logwE + lwe + _summed(fS, kS, loS, stepS, KS, VS, LWS) - logz)
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
    ``K`` levels, ``V`` value table, ``LW`` log-weights, quadratic self-terms included);
    ``LWE`` the enumerated nodes' per-level log-weights; ``spanE`` each enumerated
    node's value range; ``polyS`` says whether every summed node is an arithmetic
    progression (the product form applies), ``cfS`` which of them have per-level
    log-weights (coefficients in the product form). Gaussian nodes are integrated out
    already (``gauss``, ``qG``, ``bG``, ``JGE``: their indices, precisions, biases and
    couplings to E) and ``const`` is their part of log Z."""

    enum: np.ndarray
    summed: np.ndarray
    VE: np.ndarray
    spanE: np.ndarray
    KE: np.ndarray
    LWE: np.ndarray
    bE: np.ndarray
    WEE: np.ndarray
    kS: np.ndarray
    loS: np.ndarray
    stepS: np.ndarray
    KS: np.ndarray
    VS: np.ndarray
    LWS: np.ndarray
    cfS: np.ndarray
    bS: np.ndarray
    WES: np.ndarray
    n_states: int
    polyS: bool
    const: float = 0.0
    gauss: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    qG: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bG: np.ndarray = field(default_factory=lambda: np.zeros(0))
    JGE: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def summed_args(self) -> tuple:
        """The summed nodes' domain arrays, in the kernels' argument order."""
        return (self.kS, self.loS, self.stepS, self.KS, self.VS, self.LWS)


def build_problem(domains: DomainVector, bias: np.ndarray, WEE: np.ndarray,
                  WEO: np.ndarray, enum: np.ndarray, quad: np.ndarray | None = None
                  ) -> ExactProblem:
    """Slice a model into E and S and integrate its Gaussian nodes out: biases ``bias``
    (n,), the couplings among the enumerated nodes ``WEE`` (|E|, |E|, symmetric, zero
    diagonal) and from them to all Other nodes ``WEO`` (|E|, n - |E|, the others in
    increasing order), precisions ``quad`` (n,) or None. Gaussian nodes must be among the
    others with every neighbour enumerated (the caller checks). Never an n × n array."""
    n = bias.shape[0]
    mask = np.zeros(n, dtype=bool)
    mask[enum] = True
    others = np.flatnonzero(~mask)
    kind, lo, step, K, V, LW = domains.kernel_arrays(rows=enum)
    gauss = kind == GAUSS
    q = np.zeros(n) if quad is None else np.asarray(quad, dtype=np.float64).reshape(-1)
    cf = ~gauss & (q != 0)
    if cf.any():
        LW[cf] = LW[cf] - 0.5 * q[cf, None] * V[cf] ** 2
    kkind = np.where(cf, TABLE, kind)
    summed = np.flatnonzero(~mask & ~gauss)
    G_idx = np.flatnonzero(gauss)
    bE = bias[enum].astype(np.float64)
    WEE = np.asarray(WEE, dtype=np.float64)
    WEO = np.asarray(WEO, dtype=np.float64).reshape(len(enum), len(others))
    const = 0.0
    qG = q[G_idx]
    bG = bias[G_idx].astype(np.float64)
    JGE = np.ascontiguousarray(WEO[:, gauss[others]].T)  # (|G|, |E|)
    if len(G_idx):
        if (gauss & mask).any():
            raise ValueError("Gaussian units cannot be enumerated")
        if not (qG > 0).all():
            raise ValueError("Gaussian units need positive precisions")
        inv = 1.0 / qG
        add = (JGE.T * inv) @ JGE  # (nE, nE): w w^T / q summed over the Gaussian nodes
        d = np.diag(add).copy()
        np.fill_diagonal(add, 0.0)
        WEE = WEE + add
        bE = bE + JGE.T @ (bG * inv)
        LW[enum] = LW[enum] + 0.5 * d[:, None] * V[enum] ** 2
        const = float(np.sum(0.5 * bG * bG * inv + 0.5 * np.log(2.0 * np.pi * inv)))
    n_states = int(np.prod(K[enum], dtype=np.float64)) if len(enum) else 1
    c = np.ascontiguousarray
    span = np.zeros(n)
    for i in enum:
        span[i] = np.ptp(V[i, :K[i]])
    return ExactProblem(
        enum=enum, summed=summed, VE=c(V[enum]), spanE=c(span[enum]), KE=c(K[enum]),
        LWE=c(np.where(np.isfinite(LW[enum]), LW[enum], 0.0)), bE=c(bE), WEE=c(WEE),
        kS=c(kkind[summed]), loS=c(lo[summed]), stepS=c(step[summed]), KS=c(K[summed]),
        VS=c(V[summed]), LWS=c(LW[summed]), cfS=c(cf[summed]), bS=c(bias[summed]),
        WES=c(WEO[:, ~gauss[others]]), n_states=n_states,
        polyS=bool(np.all(kind[summed] == ARITH) and np.all(K[summed] <= _POLY_LEVELS)),
        const=const, gauss=G_idx, qG=qG, bG=bG, JGE=JGE)


def _split(problem: ExactProblem) -> tuple[int, int]:
    """``(n_low, n_chunks)``: the first ``n_low`` enumerated nodes form the table.

    The table holds every joint level of the low nodes (at most ``_TABLE_STATES`` rows,
    and at most ``_TABLE_FLOATS`` row-by-summed-node entries); each of the ``n_chunks``
    chunks fixes the remaining enumerated nodes at one joint level.
    """
    KE = problem.KE
    if len(KE) == 0:  # nothing enumerated: no table (callers sum in closed form)
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
    their values, ``baseL = x W_LL x / 2`` plus their per-level log-weights,
    ``FL = x W_LS`` (rows, |S|); for the product form ``EB = e^{baseL + lo.FL - mB}``
    with ``mB`` its log-maximum and ``RB`` its log-range, ``cS[s] = max_x step_s
    FL[x, s]``, ``rS[s]`` the log-range of ``step_s FL[x, s]`` for summed nodes with
    per-level log-weights (-1 for the others: they need no bound) and
    ``EFLT[s, x] = e^{step_s FL[x, s] - cS[s]}``."""
    KE = problem.KE[:n_low]
    rows = int(np.prod(KE))
    rem = np.arange(rows)
    XT = np.empty((n_low, rows))
    lwl = np.zeros(rows)
    for k in range(n_low):
        lev = rem % KE[k]
        XT[k] = problem.VE[k, lev]
        lwl += problem.LWE[k, lev]
        rem = rem // KE[k]
    baseL = 0.5 * np.einsum("kl,kl->l", problem.WEE[:n_low, :n_low] @ XT, XT) + lwl
    FL = np.ascontiguousarray(XT.T @ problem.WES[:n_low])
    b2 = baseL + FL @ problem.loS
    mB = float(b2.max())
    sFL = FL * problem.stepS
    cS = sFL.max(axis=0) if FL.shape[1] else np.zeros(0)
    rS = np.where(problem.cfS, cS - sFL.min(axis=0), -1.0) if FL.shape[1] else np.zeros(0)
    with np.errstate(under="ignore"):
        EB = np.exp(b2 - mB)
        EFLT = np.ascontiguousarray(np.exp(sFL - cS).T)
    return (XT, np.ascontiguousarray(baseL), FL, EB, mB, float(mB - b2.min()), EFLT,
            np.ascontiguousarray(cS), np.ascontiguousarray(rS))


def _binary_summed(problem: ExactProblem) -> bool:
    return problem.polyS and bool(np.all(problem.KS == 2)) and not bool(problem.cfS.any())


def _walk(problem: ExactProblem, moments: bool, full_ss: bool, squares: bool = False
          ) -> tuple:
    """Run the table kernel over all chunks; returns ``(n_low, XT, logZ, sums)`` with the
    groups' sums merged and normalised by ``Z`` (``sums`` empty without ``moments``;
    ``logZ`` without the Gaussian constant)."""
    n_low, n_chunks = _split(problem)
    table = _low_table(problem, n_low)
    XT = table[0]
    nT, nS, rows = len(problem.enum) - n_low, len(problem.summed), XT.shape[1]
    want_sq = bool(moments and squares)
    per_group = 2 + (rows + nT * (1 + n_low + nT + nS) + nS * (1 + n_low)
                     + (nS * nS if full_ss else 0) + (nS if want_sq else 0)
                     if moments else 0)
    G = max(1, min(n_chunks, _GROUPS, _GROUP_MEMORY // per_group))
    bounds = np.linspace(0, n_chunks, G + 1).round().astype(np.int64)
    z = np.zeros
    if moments:
        ss = nS if full_ss else 0
        sums = [z((G, nT)), z((G, nS)), z((G, rows)), z((G, nT, n_low)), z((G, nT, nT)),
                z((G, n_low, nS)), z((G, nT, nS)), z((G, ss, ss)),
                z((G, nS if want_sq else 0))]
    else:
        sums = [z((G, 0)), z((G, 0)), z((G, 0)), z((G, 0, 0)), z((G, 0, 0)), z((G, 0, 0)),
                z((G, 0, 0)), z((G, 0, 0)), z((G, 0))]
    shift, C = np.full(G, -np.inf), z(G)
    p = problem
    args = (bounds, p.VE, p.spanE, p.KE, p.LWE, p.bE, p.WEE, *p.summed_args(), p.bS, p.WES,
            n_low, _binary_summed(p), p.polyS, moments, full_ss, want_sq, *table, shift, C,
            *sums)
    notice_first_compile(_table_groups)
    run_split(lambda g0, g1: _table_groups(g0, g1, *args), G, nb.config.NUMBA_NUM_THREADS)
    logz_g = shift + np.log(C)
    logz = float(np.logaddexp.reduce(logz_g))
    scale = np.exp(shift - logz)  # group sums are relative to e^shift
    merged = [np.tensordot(scale, s, 1) for s in sums] if moments else []
    return n_low, XT, logz, merged


def exact_log_partition(problem: ExactProblem) -> float:
    """``log Z`` of the problem (float64): the table walk, split over threads when large,
    plus the integrated Gaussian nodes' constant."""
    if len(problem.enum) == 0:
        return float(_summed(problem.bS, *problem.summed_args())) + problem.const
    return _walk(problem, False, False)[2] + problem.const


@dataclass
class ExactMoments:
    """``log Z``, ``<s_i>`` and ``<s_i^2>`` (``diag``, 0 where not computed) for every
    node, and ``<s_i s_j>`` by rows: ``RA[r, j]`` for every row node ``R[r]`` (the
    enumerated nodes, then the Gaussian ones) and every node j; pairs of two summed
    nodes in ``SS`` (only with ``all_pairs``). Memory O((|E| + |G|) n + |S|^2 when
    asked), never n × n unless :meth:`dense` is called."""

    log_z: float
    mean: np.ndarray
    diag: np.ndarray
    R: np.ndarray
    RA: np.ndarray
    S: np.ndarray
    SS: np.ndarray | None = None

    def pairs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``<s_u s_v>`` for index arrays ``u``, ``v`` (``<s_u^2>`` where ``u == v``)."""
        n = len(self.mean)
        rpos = np.full(n, -1)
        rpos[self.R] = np.arange(len(self.R))
        spos = np.full(n, -1)
        spos[self.S] = np.arange(len(self.S))
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        out = np.zeros(len(u))
        a = rpos[u] >= 0
        out[a] = self.RA[rpos[u[a]], v[a]]
        b = ~a & (rpos[v] >= 0)
        out[b] = self.RA[rpos[v[b]], u[b]]
        ss = ~a & ~b
        if ss.any():
            if self.SS is None:
                raise ValueError("pairs of two summed-out nodes need all_pairs=True")
            out[ss] = self.SS[spos[u[ss]], spos[v[ss]]]
        same = u == v
        out[same] = self.diag[u[same]]
        return out

    def dense(self) -> np.ndarray:
        """The symmetric (n × n) matrix with ``<s_i^2>`` on the diagonal (summed–summed
        pairs left 0 without ``SS``)."""
        n = len(self.mean)
        second = np.zeros((n, n))
        if self.SS is not None:
            second[np.ix_(self.S, self.S)] = self.SS
        second[self.R] = self.RA
        second[:, self.R] = self.RA.T
        np.fill_diagonal(second, self.diag)
        return second


def exact_moments(problem: ExactProblem, n: int, all_pairs: bool = False,
                  squares: bool = False) -> ExactMoments:
    """Exact first and second moments in one walk. Pairs of two summed-out nodes are
    computed only with ``all_pairs=True`` (extra O(|S|^2) per state); edges never need
    them because the summed-out set is independent. ``<s_i^2>`` is computed for the
    enumerated, two-level, Gaussian and (with ``squares=True``, one more Horner chain per
    state) all other summed nodes; 0 where not computed."""
    E, S, G = problem.enum, problem.summed, problem.gauss
    mean = np.zeros(n)
    diag = np.zeros(n)
    EA = np.zeros((len(E), n))  # <s_e s_j>, e in E
    SS = None
    if len(E) == 0:
        mu, mu2 = np.empty(len(S)), np.empty(len(S))
        if squares:
            _summed_mu_sq(problem.bS, *problem.summed_args(), mu, mu2)
            diag[S] = mu2
        else:
            _summed_mu(problem.bS, *problem.summed_args(), mu, False)
        mean[S] = mu
        if all_pairs:
            SS = np.outer(mu, mu)
        logz = exact_log_partition(problem)
    else:
        n_low, XT, logz, (H1, T, PL, AH, HH, BL, BH, SSw, T2) = _walk(
            problem, True, all_pairs, squares)
        logz += problem.const
        low, top = np.arange(n_low), np.arange(n_low, len(E))
        mean[E[:n_low]] = XT @ PL
        mean[E[n_low:]] = H1
        mean[S] = T
        EE = np.zeros((len(E), len(E)))
        EE[np.ix_(low, low)] = (XT * PL) @ XT.T
        EE[np.ix_(top, low)] = AH
        EE[np.ix_(low, top)] = AH.T
        EE[np.ix_(top, top)] = HH
        diag[E] = np.diag(EE)
        EA[:, E] = EE
        EA[np.ix_(low, S)] = BL
        EA[np.ix_(top, S)] = BH
        if all_pairs:
            SS = SSw + SSw.T
        if squares:
            diag[S] = T2
    two = problem.KS == 2
    if two.any() and not squares:  # two levels v0, v1: s^2 = (v0 + v1) s - v0 v1
        v0, v1 = problem.VS[two, 0], problem.VS[two, 1]
        diag[S[two]] = (v0 + v1) * mean[S[two]] - v0 * v1
    GA = _gauss_moments(problem, mean, EA, diag) if len(G) else np.zeros((0, n))
    if len(G) and len(E):
        EA[:, G] = GA[:, E].T  # <s_e s_g> for the enumerated rows too (symmetric)
    return ExactMoments(logz, mean, diag, np.concatenate([E, G]), np.vstack([EA, GA]), S,
                        SS)


def _gauss_moments(problem: ExactProblem, mean: np.ndarray, EA: np.ndarray,
                   diag: np.ndarray) -> np.ndarray:
    """The integrated Gaussian nodes' moments from the enumerated nodes' (``mean`` and
    ``diag`` filled in place); returns their rows ``<s_g s_j>`` (|G|, n).

    Given the enumerated values x, node g is normal with mean ``f_g / q_g``,
    ``f_g = b_g + w_g.x``, and variance ``1/q_g``, independently of every other summed
    node, so ``<s_g> = (b_g + w_g.<x>)/q_g``, ``<s_g s_j> = (b_g <s_j> + w_g.<x s_j>)/q_g``
    (j not Gaussian), ``<s_g s_h> = <f_g f_h>/(q_g q_h)`` (g != h) and
    ``<s_g^2> = 1/q_g + <f_g^2>/q_g^2``."""
    E, G = problem.enum, problem.gauss
    q, b, W = problem.qG, problem.bG, problem.JGE  # (|G|,), (|G|,), (|G|, |E|)
    C = EA[:, E].copy()
    np.fill_diagonal(C, diag[E])
    mE = mean[E]
    Wm = W @ mE
    mean[G] = (b + Wm) / q
    ff = np.outer(b, b) + np.outer(b, Wm) + np.outer(Wm, b) + W @ C @ W.T  # <f_g f_h>
    diag[G] = 1.0 / q + np.diag(ff) / (q * q)
    GA = (np.outer(b, mean) + W @ EA) / q[:, None]  # E columns use C's diagonal below
    GA[:, E] = (np.outer(b, mE) + W @ C) / q[:, None]
    GA[:, G] = ff / np.outer(q, q)
    return GA


def exact_sample_enumerated(problem: ExactProblem, log_z: float, n: int,
                            generator: torch.Generator | None) -> np.ndarray:
    """``n`` exact draws of the enumerated nodes' values, in random order (``log_z`` as
    :func:`exact_log_partition` gives it)."""
    u = torch.rand(n, dtype=torch.float64, generator=generator).numpy()
    order = np.argsort(u, kind="stable")
    if len(problem.enum) == 0:
        return np.zeros((n, 0))
    p = problem
    draws = _sample_kernel(p.VE, p.KE, p.LWE, p.bE, p.WEE, *p.summed_args(), p.bS, p.WES,
                           p.n_states, log_z - p.const, np.ascontiguousarray(u[order]))
    out = np.empty_like(draws)
    out[order] = draws
    return out
