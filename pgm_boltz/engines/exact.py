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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch

from ..domains import DomainVector

__all__ = ["ExactProblem", "exact_log_partition", "exact_moments", "exact_sample_enumerated"]

_REFRESH = 1 << 16  # recompute fields from scratch this often, against drift
_RESCALE = 50.0  # rescale accumulators when the log-weight exceeds the shift by this


@nb.njit(cache=True, inline="always")
def _G(a: float, K: int) -> float:
    """log sum_{k<K} exp(a k)."""
    t = abs(a)
    pos = a if a > 0.0 else 0.0
    if K == 2:
        return pos + math.log1p(math.exp(-t))
    if t * K < 1e-3:
        g = math.log(K) - (K - 1) * t / 2.0 + (K * K - 1) * t * t / 24.0
    else:
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
    if t * K < 1e-3:
        return (K - 1) / 2.0 + (K * K - 1) * a / 12.0
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


@nb.njit(cache=True)
def _next_digit(a, d, KE):
    j = 0
    while True:
        nd = a[j] + d[j]
        if 0 <= nd < KE[j]:
            return j
        d[j] = -d[j]
        j += 1


@nb.njit(cache=True)
def _logz_kernel(loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_states):
    nE = loE.shape[0]
    a = np.zeros(nE, np.int64)
    d = np.ones(nE, np.int64)
    s = loE.copy()
    fE = np.empty(nE)
    fS = np.empty(bS.shape[0])
    logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
    shift = logwE + _summed(fS, loS, stepS, KS)
    acc = 1.0
    for t in range(1, n_states):
        j = _next_digit(a, d, KE)
        a[j] += d[j]
        delta = stepE[j] * d[j]
        s[j] += delta
        if t % 65536 == 0:
            for q in range(nE):
                s[q] = loE[q] + stepE[q] * a[q]
            logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
        else:
            logwE += delta * fE[j]
            for k in range(nE):
                fE[k] += delta * WEE[j, k]
            for i in range(fS.shape[0]):
                fS[i] += delta * WES[j, i]
        lw = logwE + _summed(fS, loS, stepS, KS)
        if lw > shift + 50.0:
            acc *= math.exp(shift - lw)
            shift = lw
        acc += math.exp(lw - shift)
    return shift + math.log(acc)


@nb.njit(cache=True)
def _moments_kernel(loE, stepE, KE, bE, WEE, loS, stepS, KS, bS, WES, n_states, full_ss):
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
            # close the segments that end with this change of node j
            sj = s[j]
            A1[j] += sj * (C - Cl[j])
            for k in range(nE):
                if k != j:
                    A2[j, k] += sj * s[k] * (C - max(Cl[j], Cl[k]))
            Cl[j] = C
            for i in range(nS):
                B[j, i] += sj * (T[i] - Tl[j, i])
                Tl[j, i] = T[i]
            a[j] += d[j]
            delta = stepE[j] * d[j]
            s[j] += delta
            if t % 65536 == 0:
                for q in range(nE):
                    s[q] = loE[q] + stepE[q] * a[q]
                logwE = _fields(s, bE, WEE, bS, WES, fE, fS)
            else:
                logwE += delta * fE[j]
                for k in range(nE):
                    fE[k] += delta * WEE[j, k]
                for i in range(nS):
                    fS[i] += delta * WES[j, i]
        lw = logwE
        for i in range(nS):
            x = fS[i] * stepS[i]
            lw += fS[i] * loS[i] + _G(x, KS[i])
            mu[i] = loS[i] + stepS[i] * _Gmean(x, KS[i])
        if t == 0:
            shift = lw
        elif lw > shift + 50.0:
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
        for k in range(j + 1, nE):
            A2[j, k] += s[j] * s[k] * (C - max(Cl[j], Cl[k]))
        for i in range(nS):
            B[j, i] += s[j] * (T[i] - Tl[j, i])
    A2 = A2 + A2.T
    return shift + math.log(C), A1 / C, A2 / C, T / C, B / C, SS / C


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
            if t % 65536 == 0:
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


def exact_log_partition(problem: ExactProblem) -> float:
    """``log Z`` by the Gray-code walk (float64)."""
    if len(problem.enum) == 0:
        return float(_summed(problem.bS, problem.loS, problem.stepS, problem.KS))
    return float(_logz_kernel(*problem.args()))


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
    logz, m1E, m2EE, m1S, mSE, mSS = _moments_kernel(*problem.args(), all_pairs)
    mean[E] = m1E
    mean[S] = m1S
    second[np.ix_(E, E)] = m2EE
    second[np.ix_(E, S)] = mSE
    second[np.ix_(S, E)] = mSE.T
    if all_pairs:
        second[np.ix_(S, S)] = mSS
    return ExactMoments(float(logz), mean, second)


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
