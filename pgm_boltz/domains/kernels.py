"""The one numba copy of the domains' maths, used by every compiled kernel.

A unit ``i`` is given to kernels as the arrays of
:meth:`pgm_boltz.domains.DomainVector.kernel_arrays`: ``kind[i]``, ``lo[i]``,
``step[i]``, ``K[i]`` and rows ``V[i]``, ``LW[i]`` of the value and log-weight tables.

- ``kind == ARITH`` (binary, spin, multinary): values ``lo + step k``, unit weights, and
  the closed forms of :mod:`pgm_boltz.domains.discrete`:
  ``A(f) = f lo + G_K(f step)``, ``G_K(a) = log sum_{k<K} e^{a k}``.
- ``kind == TABLE`` (any finite value set, optional per-level log-weights ``c_k``):
  ``A(f) = log sum_k exp(f v_k + c_k)``, the mean and the inverse-CDF draw by one pass
  over the K levels (max-shifted, so no overflow). Discrete units with a quadratic
  self-term come as tables with ``c_k = -q v_k^2 / 2``.
- ``kind == GAUSS`` (Gaussian units, precision ``q = step[i]``):
  ``A(f) = f^2 / (2q) + ½ log(2π/q)``, mean ``f/q``, draw ``f/q + Φ^{-1}(u)/√q``.

>>> import numpy as np
>>> V = np.array([[0.0, 1.0]]); LW = np.zeros((1, 2))
>>> round(log_normalizer(0.0, 0, np.array([0]), np.zeros(1), np.ones(1), np.array([2]),
...                      V, LW), 6)
0.693147
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .base import ARITH, GAUSS

__all__ = ["G", "Gmean", "draw", "draw_logistic", "log_normalizer", "mean", "ndtri_lower",
           "second_moment", "table_rows"]

_LOG_2PI = math.log(2.0 * math.pi)
# Acklam's rational approximation of the standard normal quantile (lower region and
# central region coefficients), refined by one Halley step with erfc: ~1e-15 relative.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
#: the smallest tail probability a Gaussian draw is given (|z| <= 5.45): the sweeps'
#: uniforms are float32, so a smaller one would only come from rounding u to 0
_P_MIN = 2.0 ** -26


@nb.njit(cache=True, inline="always")
def _series_coefs(K: int) -> tuple:
    """``d_j (1 - K^-2j)`` of G_K's Taylor series in ``x = K a`` (see discrete.py)."""
    k2 = 1.0 / (K * K)
    return ((1.0 - k2) / 24.0, -(1.0 - k2 ** 2) / 2880.0, (1.0 - k2 ** 3) / 181440.0,
            -(1.0 - k2 ** 4) / 9676800.0)


@nb.njit(cache=True, inline="always")
def G(a: float, K: int) -> float:
    """``G_K(a) = log sum_{k<K} exp(a k)`` (closed form; the series near 0)."""
    t = abs(a)
    pos = a if a > 0.0 else 0.0
    if K == 2:
        return pos + math.log1p(math.exp(-t))
    x = K * a
    if abs(x) < 0.15:  # the 4-term series of discrete.py (the closed form cancels near 0)
        x2 = x * x
        c1, c2, c3, c4 = _series_coefs(K)
        return math.log(K) + (K - 1) * a / 2.0 + x2 * (c1 + x2 * (c2 + x2 * (c3 + x2 * c4)))
    g = math.log(-math.expm1(-K * t)) - math.log(-math.expm1(-t))
    return (K - 1) * pos + g


@nb.njit(cache=True, inline="always")
def Gmean(a: float, K: int) -> float:
    """``E[k]`` under ``P(k) ∝ exp(a k)``, ``k < K`` (the derivative of :func:`G`)."""
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
def ndtri_lower(p: float) -> float:
    """``Φ^{-1}(p)`` for ``0 < p <= 0.5`` (the standard normal quantile, <= 0)."""
    if p < 0.02425:
        t = math.sqrt(-2.0 * math.log(p))
        z = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / \
            ((((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0)
    else:
        r = p - 0.5
        r2 = r * r
        z = (((((_A[0] * r2 + _A[1]) * r2 + _A[2]) * r2 + _A[3]) * r2 + _A[4]) * r2
             + _A[5]) * r / (((((_B[0] * r2 + _B[1]) * r2 + _B[2]) * r2 + _B[3]) * r2
                              + _B[4]) * r2 + 1.0)
    # one Halley step on Φ(z) - p, Φ(z) = erfc(-z/√2)/2
    e = 0.5 * math.erfc(-z / math.sqrt(2.0)) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * z * z)
    return z - u / (1.0 + 0.5 * z * u)


@nb.njit(cache=True, inline="always")
def _gauss_from_logistic(g: float) -> float:
    """A standard normal draw ``Φ^{-1}(u)`` from logistic noise ``g = logit(u)``, the
    tails taken from ``sigmoid(±g)`` directly (no cancellation), ``|z| <= 5.45``."""
    if g <= 0.0:
        p = math.exp(g) / (1.0 + math.exp(g)) if g > -700.0 else 0.0
        return ndtri_lower(max(p, _P_MIN))
    p = math.exp(-g) / (1.0 + math.exp(-g)) if g < 700.0 else 0.0
    return -ndtri_lower(max(p, _P_MIN))


@nb.njit(cache=True, inline="always")
def _table_max(f, i, K, V, LW):
    m = -math.inf
    for k in range(K[i]):
        e = f * V[i, k] + LW[i, k]
        if e > m:
            m = e
    return m


@nb.njit(cache=True, inline="always")
def log_normalizer(f, i, kind, lo, step, K, V, LW):
    """``A_i(f) = log sum_k exp(f v_k + c_k)`` of unit ``i`` (GAUSS: the integral)."""
    if kind[i] == ARITH:
        return f * lo[i] + G(f * step[i], K[i])
    if kind[i] == GAUSS:
        q = step[i]
        return 0.5 * f * f / q + 0.5 * (_LOG_2PI - math.log(q))
    m = _table_max(f, i, K, V, LW)
    s = 0.0
    for k in range(K[i]):
        s += math.exp(f * V[i, k] + LW[i, k] - m)
    return m + math.log(s)


@nb.njit(cache=True, inline="always")
def mean(f, i, kind, lo, step, K, V, LW):
    """``E[s_i | f]`` of unit ``i``."""
    if kind[i] == ARITH:
        return lo[i] + step[i] * Gmean(f * step[i], K[i])
    if kind[i] == GAUSS:
        return f / step[i]
    m = _table_max(f, i, K, V, LW)
    s = 0.0
    sv = 0.0
    for k in range(K[i]):
        p = math.exp(f * V[i, k] + LW[i, k] - m)
        s += p
        sv += p * V[i, k]
    return sv / s


@nb.njit(cache=True, inline="always")
def Gvar(a: float, K: int) -> float:
    """``Var[k]`` under ``P(k) ∝ exp(a k)``, ``k < K`` (the derivative of :func:`Gmean`):
    ``1 / (4 sinh^2(t/2)) - K^2 / (4 sinh^2(K t/2))`` with ``t = |a|``; near 0 the
    series ``K^2 (2 c1 + 12 c2 x^2 + 30 c3 x^4 + 56 c4 x^6)``, ``x = K a``."""
    x = K * a
    if abs(x) < 0.15:
        x2 = x * x
        c1, c2, c3, c4 = _series_coefs(K)
        return K * K * (2 * c1 + x2 * (12 * c2 + x2 * (30 * c3 + x2 * 56 * c4)))
    t = abs(a)
    s1 = math.sinh(0.5 * t)
    if K * t > 1400.0:  # the second term underflows (and sinh would overflow)
        return 1.0 / (4.0 * s1 * s1)
    sK = math.sinh(0.5 * K * t)
    return 1.0 / (4.0 * s1 * s1) - K * K / (4.0 * sK * sK)


@nb.njit(cache=True, inline="always")
def second_moment(f, i, kind, lo, step, K, V, LW):
    """``E[s_i^2 | f]`` of unit ``i`` (closed forms for progressions and GAUSS, else one
    pass over the levels)."""
    if kind[i] == GAUSS:
        q = step[i]
        return 1.0 / q + (f / q) * (f / q)
    if kind[i] == ARITH:
        a = f * step[i]
        m = lo[i] + step[i] * Gmean(a, K[i])
        return m * m + step[i] * step[i] * Gvar(a, K[i])
    m = _table_max(f, i, K, V, LW)
    s = 0.0
    sv = 0.0
    for k in range(K[i]):
        p = math.exp(f * V[i, k] + LW[i, k] - m)
        s += p
        sv += p * V[i, k] * V[i, k]
    return sv / s


@nb.njit(cache=True, inline="always")
def geometric_level(a: float, K: int, u: float, uniform_below: float = 1e-6) -> int:
    """The level ``k`` in 0..K-1 drawn from ``P(k) ∝ exp(a k)`` by the inverse CDF of the
    uniform ``u``: ``k = floor(-log1p(-u (1 - e^{-K t})) / t)`` with ``t = |a|``
    (mirrored for ``a > 0``; uniform when ``|K a| < uniform_below``). The one copy of the
    geometric draw, shared by the sweep, AIS and CD kernels.

    >>> geometric_level(0.0, 4, 0.6), geometric_level(50.0, 4, 0.5)
    (2, 3)
    """
    t = abs(a)
    if t * K < uniform_below:
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


@nb.njit(cache=True, inline="always")
def _draw_arith(a: float, lo: float, step: float, K: int, u: float) -> float:
    """Inverse CDF of ``P(k) ∝ exp(a k)`` (:func:`geometric_level`), as the value
    ``lo + step k``."""
    return lo + step * geometric_level(a, K, u)


@nb.njit(cache=True, inline="always")
def draw(f, i, kind, lo, step, K, V, LW, u):
    """A draw of unit ``i``'s value given field ``f`` and a uniform ``u`` in [0, 1)."""
    if kind[i] == GAUSS:
        q = step[i]
        z = ndtri_lower(max(u, _P_MIN)) if u <= 0.5 else -ndtri_lower(max(1.0 - u, _P_MIN))
        return f / q + z / math.sqrt(q)
    if kind[i] == ARITH:
        if K[i] == 2:
            a = f * step[i]
            p = 1.0 / (1.0 + math.exp(-a)) if a >= 0.0 else math.exp(a) / (1.0 + math.exp(a))
            return lo[i] + step[i] if u < p else lo[i]
        return _draw_arith(f * step[i], lo[i], step[i], K[i], u)
    m = _table_max(f, i, K, V, LW)
    s = 0.0
    for k in range(K[i]):
        s += math.exp(f * V[i, k] + LW[i, k] - m)
    target = u * s
    c = 0.0
    for k in range(K[i]):
        c += math.exp(f * V[i, k] + LW[i, k] - m)
        if target < c:
            return V[i, k]
    return V[i, K[i] - 1]


@nb.njit(cache=True, inline="always")
def draw_logistic(f, i, kind, lo, step, K, V, LW, g):
    """As :func:`draw` with logistic noise ``g = logit(u)``: for two-level progressions
    the draw ``[u < sigmoid(f step)] = [g < f step]`` is a comparison (no exp)."""
    if kind[i] == ARITH and K[i] == 2:
        return lo[i] + step[i] if g < f * step[i] else lo[i]
    if kind[i] == GAUSS:
        q = step[i]
        return f / q + _gauss_from_logistic(g) / math.sqrt(q)
    u = 1.0 / (1.0 + math.exp(-g))
    return draw(f, i, kind, lo, step, K, V, LW, u)


@nb.njit(cache=True, parallel=True)
def table_rows(F, Q, LO, ST, K, U, power, out):  # pragma: no cover - compiled
    """Discretised-Gaussian conditionals of many progression units at once, without the
    (rows, n, K) tables a tensor version builds.

    Unit ``i`` in row ``r`` has values ``v_k = LO[i] + ST[i] k`` (``k < K[i]``) and
    ``P(k) ∝ exp(l_k)``, ``l_k = F[r,i] v_k - Q[r',i] v_k^2 / 2`` (``r' = 0`` when ``Q``
    has one row, else ``r``; ``Q >= 0``). ``power`` 1 or 2 writes ``E[s^power]`` into
    ``out[r, i]``; ``power`` 0 writes the inverse-CDF draw at ``U[r, i]`` (the first level
    whose cumulative weight reaches ``U`` times the total, as
    :func:`pgm_boltz.domains.base.table_sample`).

    ``l`` is concave in ``k``, so the weights ``w_k = exp(l_k - l_m)`` fall away from the
    integer mode ``m`` (one of the two levels around ``v* = F / Q``), and consecutive
    ratios ``exp(l_{k+1} - l_k) = exp(d - Q ST^2 k)`` form a geometric sequence: three
    exponentials per unit, then one multiplication per level (no overflow: every factor
    is at most 1). Rows in parallel.

    >>> import numpy as np
    >>> F, Q = np.zeros((1, 1)), np.full((1, 1), 8.0)
    >>> lo, st, K, out = np.zeros(1), np.full(1, 0.5), np.array([3]), np.zeros((1, 1))
    >>> table_rows(F, Q, lo, st, K, F, 1, out); round(float(out[0, 0]), 4)  # v = 0, ½, 1
    0.1459
    """
    R, n = F.shape
    kmax = 1
    for i in range(n):
        kmax = max(kmax, K[i])
    q_step = 0 if Q.shape[0] == 1 else 1
    for r in nb.prange(R):
        w = np.empty(kmax)
        rq = r * q_step
        for i in range(n):
            f = F[r, i]
            h = 0.5 * Q[rq, i]
            lo = LO[i]
            st = ST[i]
            Ki = K[i]
            # the integer mode of l_k = f v_k - h v_k^2
            if h > 0.0:
                kc = (f / (2.0 * h) - lo) / st
                k0 = min(max(math.floor(kc), 0.0), Ki - 1.0)
            else:
                k0 = Ki - 1.0 if f * st > 0.0 else 0.0
            m = int(k0)
            if m + 1 < Ki:
                va, vb = lo + st * m, lo + st * (m + 1)
                if f * vb - h * vb * vb > f * va - h * va * va:
                    m += 1
            d = f * st - h * st * (2.0 * lo + st)      # l_{k+1} - l_k = d - 2 h st^2 k
            c = math.exp(-2.0 * h * st * st)
            w[m] = 1.0
            total = 1.0
            ratio = math.exp(d - 2.0 * h * st * st * m)
            for k in range(m + 1, Ki):
                w[k] = w[k - 1] * ratio
                total += w[k]
                ratio *= c
            ratio = math.exp(-(d - 2.0 * h * st * st * (m - 1)))
            for k in range(m - 1, -1, -1):
                w[k] = w[k + 1] * ratio
                total += w[k]
                ratio *= c
            if power == 0:
                t = U[r, i] * total
                cum = 0.0
                pick = Ki - 1
                for k in range(Ki):
                    cum += w[k]
                    if cum >= t:
                        pick = k
                        break
                out[r, i] = lo + st * pick
            else:
                acc = 0.0
                for k in range(Ki):
                    v = lo + st * k
                    acc += w[k] * (v if power == 1 else v * v)
                out[r, i] = acc / total
