"""Exact engine: enumerate a vertex cover, sum the rest out in closed form.

Split the nodes into an enumerated set E and a summed-out set S whose members have
all their neighbours in E (S is an independent set). Then

    log Z = logsumexp_{x_E} [ -E_E(x_E) + sum_{i in S} A_i(b_i + sum_{j in E} W_ij s_j) ]

with ``A_i`` the unit's log-normaliser (:mod:`pgm_boltz.domains`). The numba kernels
walk the states of E in a reflected mixed-radix Gray code, so each step changes one
node by one level and updates the fields incrementally in O(|E| + |S|).

Moments (the gradient of log Z) come from the same walk at the same cost: a pair
``s_j s_k`` is constant between changes of j or k, so its weight is a difference of the
running cumulative weight ``C`` at two times, and ``C`` is monotone, so the start of the
current segment is ``max(C_at_last_change[j], C_at_last_change[k])``. Summed-out nodes
contribute their conditional means ``mu_i`` likewise through a running ``T_i = sum p mu_i``.

Large walks are split: the last enumerated nodes are fixed at each of their joint levels
(one chunk per level combination, at least ``_MIN_CHUNK_STATES`` states each) and the
chunks are walked in parallel (threads over GIL-free numba kernels). A chunk only updates
the fields and pair segments of its own free nodes, and its results merge exactly: with
``w_c = Z_c / Z``, ``<s_i s_j> = sum_c w_c <s_i s_j>_c``, where a fixed node's value is a
constant in its chunk. The merge is in chunk order, so results do not depend on the thread count.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch

from ..domains import DomainVector

__all__ = ["ExactProblem", "exact_log_partition", "exact_moments", "exact_sample_enumerated"]

_REFRESH_STEPS = 1 << 16  # recompute fields from scratch this often, against drift
_RESCALE_AT = 50.0  # rescale accumulators when the log-weight exceeds the shift by this
_MIN_CHUNK_STATES = 1 << 10  # a chunk walks at least this many states
# reassociation and contraction only (no finite-math assumptions): lets LLVM vectorise
_FAST = {"nsz", "arcp", "contract", "reassoc"}
_CHUNK_MEMORY = 1 << 23  # floats of per-chunk moment outputs at most (64 MiB)


@nb.njit(cache=True, inline="always")
def _series_coefs(K: int) -> tuple:
    """``d_j (1 - K^-2j)`` of G_K's Taylor series in ``x = K a`` (see domains.py)."""
    k2 = 1.0 / (K * K)
    return ((1.0 - k2) / 24.0, -(1.0 - k2 ** 2) / 2880.0, (1.0 - k2 ** 3) / 181440.0,
            -(1.0 - k2 ** 4) / 9676800.0)


@nb.njit(cache=True, inline="always")
def _G(a: float, K: int) -> float:
    """log sum_{k<K} exp(a k)."""
    t = abs(a)
    pos = a if a > 0.0 else 0.0
    if K == 2:
        return pos + math.log1p(math.exp(-t))
    x = K * a
    if abs(x) < 0.15:  # the 4-term series of domains.py (closed form cancels near 0)
        x2 = x * x
        c1, c2, c3, c4 = _series_coefs(K)
        return math.log(K) + (K - 1) * a / 2.0 + x2 * (c1 + x2 * (c2 + x2 * (c3 + x2 * c4)))
    g = math.log(-math.expm1(-K * t)) - math.log(-math.expm1(-t))
    return (K - 1) * pos + g


@nb.njit(cache=True, inline="always")
def _Gmean(a: float, K: int) -> float:
    """E[k] under P(k) ∝ exp(a k), k < K."""
    if K == 2:
        if a >= 0.0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    t = abs(a)
    x = K * a
    if abs(x) < 0.15:
        x2 = x * x
        c1, c2, c3, c4 = _series_coefs(K)
        return (K - 1) / 2.0 + K * x * (2 * c1 + x2 * (4 * c2 + x2 * (6 * c3 + x2 * 8 * c4)))
    m = 1.0 / math.expm1(t) - K / math.expm1(K * t)
    return K - 1 - m if a > 0.0 else m


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
def _summed(fS, loS, stepS, KS):
    tot = 0.0
    for i in range(fS.shape[0]):
        tot += fS[i] * loS[i] + _G(fS[i] * stepS[i], KS[i])
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
def _summed_mu(fS, loS, stepS, KS, mu, binS):
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
        x = fS[i] * stepS[i]
        tot += fS[i] * loS[i] + _G(x, KS[i])
        mu[i] = loS[i] + stepS[i] * _Gmean(x, KS[i])
    return tot


@nb.njit(cache=True, fastmath=_FAST)
def _logz_kernel(loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_states, binS):
    nE = loE.shape[0]
    nS = bS.shape[0]
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = loE.copy()
    fE = np.empty(nE)
    fS = np.empty(nS)
    mu = np.empty(nS)
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    shift = logwE + _summed_mu(fS, loS, stepS, KS, mu, binS)
    acc = 1.0
    for t in range(1, n_states):
        j = _next_digit(a, d, KE)
        a[j] += d[j]
        delta = stepE[j] * d[j]
        s[j] += delta
        if t % _REFRESH_STEPS == 0:
            for q in range(nE):
                s[q] = loE[q] + stepE[q] * a[q]
            logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
        else:
            logwE += delta * fE[j]
            for k in range(nE):
                fE[k] += delta * WEE[j, k]
            for i in range(nS):
                fS[i] += delta * WES[j, i]
        lw = logwE + _summed_mu(fS, loS, stepS, KS, mu, binS)
        if lw > shift + _RESCALE_AT:
            acc *= math.exp(shift - lw)
            shift = lw
        acc += math.exp(lw - shift)
    return shift + math.log(acc)


@nb.njit(cache=True, fastmath=_FAST)
def _moments_kernel(loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_states, full_ss,
                    binS):
    nE = loE.shape[0]
    nS = bS.shape[0]
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = loE.copy()
    fE = np.empty(nE)
    fS = np.empty(nS)
    mu = np.empty(nS)
    C = 0.0
    Cl = np.zeros(nE)
    A1 = np.zeros(nE)
    A2 = np.zeros((nE, nE))
    T = np.zeros(nS)
    Tl = np.zeros((nE, nS))
    B = np.zeros((nE, nS))
    SS = np.zeros((nS, nS)) if full_ss else np.zeros((1, 1))
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    shift = 0.0
    for t in range(n_states):
        if t > 0:
            j = _next_digit(a, d, KE)
            # close the segments that end with this change of node j; the pair (j, j)
            # collects garbage that is discarded at the end (a branch-free row update)
            sj = s[j]
            Clj = Cl[j]
            A1[j] += sj * (C - Clj)
            for k in range(nE):
                ck = Cl[k]
                A2[j, k] += sj * s[k] * (C - (ck if ck > Clj else Clj))
            Cl[j] = C
            for i in range(nS):
                B[j, i] += sj * (T[i] - Tl[j, i])
                Tl[j, i] = T[i]
            a[j] += d[j]
            delta = stepE[j] * d[j]
            s[j] += delta
            if t % _REFRESH_STEPS == 0:
                for q in range(nE):
                    s[q] = loE[q] + stepE[q] * a[q]
                logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
            else:
                logwE += delta * fE[j]
                for k in range(nE):
                    fE[k] += delta * WEE[j, k]
                for i in range(nS):
                    fS[i] += delta * WES[j, i]
        lw = logwE + _summed_mu(fS, loS, stepS, KS, mu, binS)
        if t == 0:
            shift = lw
        elif lw > shift + _RESCALE_AT:
            r = math.exp(shift - lw)
            C *= r
            Cl *= r
            A1 *= r
            A2 *= r
            T *= r
            Tl *= r
            B *= r
            SS *= r
            shift = lw
        p = math.exp(lw - shift)
        C += p
        for i in range(nS):
            T[i] += p * mu[i]
        if full_ss:
            for i in range(nS):
                pm = p * mu[i]
                for k in range(nS):
                    if k != i:
                        SS[i, k] += pm * mu[k]
    # flush the open segments
    for j in range(nE):
        A1[j] += s[j] * (C - Cl[j])
        A2[j, j] = 0.0
        for k in range(j + 1, nE):
            A2[j, k] += s[j] * s[k] * (C - max(Cl[j], Cl[k]))
        for i in range(nS):
            B[j, i] += s[j] * (T[i] - Tl[j, i])
    A2 = A2 + A2.T
    return shift + math.log(C), A1 / C, A2 / C, T / C, B / C, SS / C


@nb.njit(cache=True)
def _fix_top(c, n_low, loE, stepE, KE, bE, WEE, bS, WES, st, bL, bSc):
    """Fix the enumerated nodes ``n_low..`` at chunk ``c``'s levels (mixed radix, first
    fastest): their values ``st``, the biases they leave on the rest, and their constant
    log-weight ``b_T.s_T + s_T W_TT s_T / 2``."""
    nE = loE.shape[0]
    nT = nE - n_low
    rem = c + 0
    for q in range(nT):
        K = KE[n_low + q]
        st[q] = loE[n_low + q] + stepE[n_low + q] * (rem % K)
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


@nb.njit(cache=True, nogil=True)
def _logz_chunks(c0, c1, loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_low, binS,
                 out):
    """log Z of chunks ``c0..c1-1`` (top enumerated nodes fixed) into ``out``; releases
    the GIL, so threads can walk disjoint chunk ranges at once."""
    nT = loE.shape[0] - n_low
    nS = bS.shape[0]
    n_low_states = 1
    for k in range(n_low):
        n_low_states *= KE[k]
    WLL = np.ascontiguousarray(WEE[:n_low, :n_low])
    WLS = np.ascontiguousarray(WES[:n_low])
    st = np.empty(nT)
    bL = np.empty(n_low)
    bSc = np.empty(nS)
    for c in range(c0, c1):
        const = _fix_top(c, n_low, loE, stepE, KE, bE, WEE, bS, WES, st, bL, bSc)
        out[c] = const + _logz_kernel(loE[:n_low], stepE[:n_low], KE[:n_low], bL, WLL, loS,
                                      stepS, KS, bSc, WLS, n_low_states, binS)


@nb.njit(cache=True, nogil=True)
def _moments_chunks(c0, c1, loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_low,
                    full_ss, binS, logz, top, A1, A2, T, B, SS):
    """Per-chunk log Z and normalised moments of the low nodes for chunks ``c0..c1-1``,
    written into the output arrays (GIL released)."""
    nT = loE.shape[0] - n_low
    nS = bS.shape[0]
    n_low_states = 1
    for k in range(n_low):
        n_low_states *= KE[k]
    WLL = np.ascontiguousarray(WEE[:n_low, :n_low])
    WLS = np.ascontiguousarray(WES[:n_low])
    st = np.empty(nT)
    bL = np.empty(n_low)
    bSc = np.empty(nS)
    for c in range(c0, c1):
        const = _fix_top(c, n_low, loE, stepE, KE, bE, WEE, bS, WES, st, bL, bSc)
        lz, a1, a2, t_, b_, ss_ = _moments_kernel(
            loE[:n_low], stepE[:n_low], KE[:n_low], bL, WLL, loS, stepS, KS, bSc, WLS,
            n_low_states, full_ss, binS)
        logz[c] = const + lz
        top[c] = st
        A1[c] = a1
        A2[c] = a2
        T[c] = t_
        B[c] = b_
        SS[c] = ss_


_POOL: list = []  # [executor, workers, pid]: a lazily created pool shared by all models


def _run_chunks(kernel, n_chunks: int, args: tuple) -> None:
    """Run ``kernel(c0, c1, *args)`` over ``range(n_chunks)``, split into contiguous
    ranges across ``numba.config.NUMBA_NUM_THREADS`` threads (the kernels release the GIL)."""
    threads = max(1, min(nb.config.NUMBA_NUM_THREADS, n_chunks))
    if threads == 1:
        kernel(0, n_chunks, *args)
        return
    # a new pool when none, too small, or inherited through fork (its threads are gone)
    if not _POOL or _POOL[1] < threads or _POOL[2] != os.getpid():
        _POOL[:] = [ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgm_exact"),
                    threads, os.getpid()]
    bounds = np.linspace(0, n_chunks, threads + 1).astype(np.int64)
    futures = [_POOL[0].submit(kernel, int(bounds[i]), int(bounds[i + 1]), *args)
               for i in range(threads) if bounds[i + 1] > bounds[i]]
    for f in futures:
        f.result()


@nb.njit(cache=True)
def _sample_kernel(loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_states, logz, u):
    nE = loE.shape[0]
    n = u.shape[0]
    out = np.empty((n, nE))
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = loE.copy()
    fE = np.empty(nE)
    fS = np.empty(bS.shape[0])
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    cum = 0.0
    ptr = 0
    for t in range(n_states):
        if t > 0:
            j = _next_digit(a, d, KE)
            a[j] += d[j]
            delta = stepE[j] * d[j]
            s[j] += delta
            if t % _REFRESH_STEPS == 0:
                for q in range(nE):
                    s[q] = loE[q] + stepE[q] * a[q]
                logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
            else:
                logwE += delta * fE[j]
                for k in range(nE):
                    fE[k] += delta * WEE[j, k]
                for i in range(fS.shape[0]):
                    fS[i] += delta * WES[j, i]
        cum += math.exp(logwE + _summed(fS, loS, stepS, KS) - logz)
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
    """The arrays a kernel walks: enumerated set E and summed-out set S of a model."""

    enum: np.ndarray
    summed: np.ndarray
    loE: np.ndarray
    stepE: np.ndarray
    KE: np.ndarray
    bE: np.ndarray
    WEE: np.ndarray
    loS: np.ndarray
    stepS: np.ndarray
    KS: np.ndarray
    bS: np.ndarray
    WES: np.ndarray
    n_states: int

    def args(self) -> tuple:
        return (self.loE, self.stepE, self.KE, self.bE, self.WEE, self.loS, self.stepS,
                self.KS, self.bS, self.WES, self.n_states)


def build_problem(domains: DomainVector, bias: np.ndarray, J: np.ndarray,
                  enum: np.ndarray) -> ExactProblem:
    """Slice a model (biases ``bias``, dense symmetric couplings ``J``) into E and S."""
    n = bias.shape[0]
    mask = np.zeros(n, dtype=bool)
    mask[enum] = True
    summed = np.flatnonzero(~mask)
    lo, step, K = domains.kinds_array()
    n_states = int(np.prod(K[enum], dtype=np.float64)) if len(enum) else 1
    c = np.ascontiguousarray
    return ExactProblem(
        enum=enum, summed=summed, loE=c(lo[enum]), stepE=c(step[enum]), KE=c(K[enum]),
        bE=c(bias[enum]), WEE=c(J[np.ix_(enum, enum)]), loS=c(lo[summed]),
        stepS=c(step[summed]), KS=c(K[summed]), bS=c(bias[summed]),
        WES=c(J[np.ix_(enum, summed)]), n_states=n_states)


def _split(problem: ExactProblem, all_pairs: bool = False) -> tuple[int, int]:
    """``(n_low, n_chunks)``: fix the last enumerated nodes at each of their joint levels.

    Each of the ``n_chunks`` chunks walks the states of the first ``n_low`` nodes only, so
    a step updates ``n_low`` fields and pair segments instead of all ``|E|``; chunks run
    in parallel over numba's threads. Chunks hold at least ``_MIN_CHUNK_STATES`` states,
    and their per-chunk outputs stay under ``_CHUNK_MEMORY`` floats.
    """
    KE = problem.KE
    nS = len(problem.summed)
    n_low, n_chunks, low_states = len(KE), 1, problem.n_states
    while n_low > 1 and low_states // int(KE[n_low - 1]) >= _MIN_CHUNK_STATES:
        k = int(KE[n_low - 1])
        per_chunk = (n_low - 1) * (n_low - 1 + nS) + nS + (nS * nS if all_pairs else 0)
        if n_chunks * k * per_chunk > _CHUNK_MEMORY:
            break
        n_low -= 1
        n_chunks *= k
        low_states //= k
    return n_low, n_chunks


def _binary_summed(problem: ExactProblem) -> bool:
    return bool(np.all(problem.KS == 2))


def exact_log_partition(problem: ExactProblem) -> float:
    """``log Z`` by the Gray-code walk (float64), split into parallel chunks when large."""
    if len(problem.enum) == 0:
        return float(_summed(problem.bS, problem.loS, problem.stepS, problem.KS))
    binS = _binary_summed(problem)
    n_low, n_chunks = _split(problem)
    if n_chunks == 1:
        return float(_logz_kernel(*problem.args(), binS))
    parts = np.empty(n_chunks)
    _run_chunks(_logz_chunks, n_chunks, (*problem.args()[:-1], n_low, binS, parts))
    return float(np.logaddexp.reduce(parts))


@dataclass
class ExactMoments:
    """``log Z``, ``<s_i>`` for every node and ``<s_i s_j>`` for every pair (n × n)."""

    log_z: float
    mean: np.ndarray
    second: np.ndarray  # symmetric; diagonal holds <s_i^2> only where computed (else 0)


def exact_moments(problem: ExactProblem, n: int, all_pairs: bool = False) -> ExactMoments:
    """Exact first and second moments in one walk. Pairs of two summed-out nodes are
    filled only with ``all_pairs=True`` (extra O(|S|^2) per state); edges never need them
    because the summed-out set is independent."""
    E, S = problem.enum, problem.summed
    mean = np.zeros(n)
    second = np.zeros((n, n))
    if len(E) == 0:
        f = problem.bS
        mu = np.array([problem.loS[i] + problem.stepS[i] * _Gmean(
            f[i] * problem.stepS[i], int(problem.KS[i])) for i in range(len(S))])
        mean[S] = mu
        if all_pairs:
            second[np.ix_(S, S)] = np.outer(mu, mu)
            second[S, S] = 0.0
        return ExactMoments(exact_log_partition(problem), mean, second)
    binS = _binary_summed(problem)
    n_low, n_chunks = _split(problem, all_pairs)
    if n_chunks == 1:
        logz, m1E, m2EE, m1S, mSE, mSS = _moments_kernel(*problem.args(), all_pairs, binS)
    else:
        nT, nS = len(problem.enum) - n_low, len(problem.summed)
        ss = nS if all_pairs else 1
        parts = (np.empty(n_chunks), np.empty((n_chunks, nT)), np.empty((n_chunks, n_low)),
                 np.empty((n_chunks, n_low, n_low)), np.empty((n_chunks, nS)),
                 np.empty((n_chunks, n_low, nS)), np.empty((n_chunks, ss, ss)))
        _run_chunks(_moments_chunks, n_chunks,
                    (*problem.args()[:-1], n_low, all_pairs, binS, *parts))
        logz, m1E, m2EE, m1S, mSE, mSS = _combine_chunks(parts, n_low)
    mean[E] = m1E
    mean[S] = m1S
    second[np.ix_(E, E)] = m2EE
    second[np.ix_(E, S)] = mSE
    second[np.ix_(S, E)] = mSE.T
    if all_pairs:
        second[np.ix_(S, S)] = mSS
    return ExactMoments(float(logz), mean, second)


def _combine_chunks(parts: tuple, n_low: int) -> tuple:
    """Merge per-chunk results: chunk c has weight ``w_c = Z_c / Z``, its fixed (top)
    nodes are constant, so their moments are weighted values and products."""
    logz_c, top, A1, A2, T, B, SS = parts
    logz = float(np.logaddexp.reduce(logz_c))
    w = np.exp(logz_c - logz)
    nE = n_low + top.shape[1]
    wt = top * w[:, None]
    m1E = np.concatenate([w @ A1, w @ top])
    m2EE = np.zeros((nE, nE))
    m2EE[:n_low, :n_low] = np.tensordot(w, A2, 1)
    cross = wt.T @ A1  # <s_top s_low>
    m2EE[n_low:, :n_low] = cross
    m2EE[:n_low, n_low:] = cross.T
    m2EE[n_low:, n_low:] = wt.T @ top
    np.fill_diagonal(m2EE, 0.0)
    m1S = w @ T
    mSE = np.concatenate([np.tensordot(w, B, 1), wt.T @ T], axis=0)
    mSS = np.tensordot(w, SS, 1)
    return logz, m1E, m2EE, m1S, mSE, mSS


def exact_sample_enumerated(problem: ExactProblem, log_z: float, n: int,
                            generator: torch.Generator | None) -> np.ndarray:
    """``n`` exact draws of the enumerated nodes' values, in random order."""
    u = torch.rand(n, dtype=torch.float64, generator=generator).numpy()
    order = np.argsort(u, kind="stable")
    if len(problem.enum) == 0:
        return np.zeros((n, 0))
    draws = _sample_kernel(*problem.args(), log_z, np.ascontiguousarray(u[order]))
    out = np.empty_like(draws)
    out[order] = draws
    return out
