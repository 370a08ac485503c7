"""Arithmetic-progression domains: binary {0,1}, spin {-1,+1} and multinary (K levels).

Every one is an arithmetic progression of K values

    s = lo + step * k,        k = 0, ..., K-1

binary is (lo, step, K) = (0, 1, 2), spin is (-1, 2, 2) and multinary with K levels
is (0, 1/(K-1), K), so one closed form serves all three. Given the local field f of
a unit, its conditional is ``P(s) ∝ exp(f s)``, with log-normaliser

    A(f) = log sum_k exp(f (lo + step k)) = f lo + G_K(f step),
    G_K(a) = log sum_{k=0}^{K-1} exp(a k) = log((1 - e^{K a}) / (1 - e^{a})),

evaluated stably for every ``a`` (overflow-free closed forms in ``|a|`` with the
``(K-1) max(a, 0)`` term split off, and a Taylor series in ``K a`` near 0 whose switch
point depends on the dtype, so float32 stays accurate to ~1e-7) without a sum over the
K levels, so K = 256 costs what K = 2 does. Gradients are finite everywhere, a = 0
included; half-precision inputs are computed in float32.
Its derivative is the conditional mean ``E[s | f] = lo + step E_K[k](f step)``.

Data use *codes*: binary 0/1, spin -1/+1, multinary the integers 0..K-1.

A multinary unit declared with ``precision=λ`` (λ >= 0; binary and spin units take none)
also has the quadratic self-term ``λ s^2 / 2`` in the energy, so its conditional is the
discretised Gaussian ``P(k) ∝ exp(f v_k - λ v_k^2 / 2)``, which can peak at a middle
level; the families compute it from the value table (``logsumexp`` over the K levels,
fine up to a few hundred levels) whenever precisions ``q`` are given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import GraphError
from .base import ARITH, Domain, Family, KernelSpec, register_domain
from .table import TableMaths

__all__ = [
    "BINARY",
    "SPIN",
    "ArithDomain",
    "ArithFamily",
    "geometric_log_normalizer",
    "geometric_mean",
    "geometric_sample",
    "multinary",
]

# Near a = 0 the closed forms cancel (the mean loses ~log10(2/(K|a|)) digits), so a
# Taylor series in x = K a is used below a dtype-dependent switch |x| < _SERIES_X.
# The series of G_K is log K + (K-1) a/2 + sum_j B_2j / (2j (2j)!) (1 - K^-2j) x^2j
# (B_n the Bernoulli numbers: the cumulants of the uniform law on 0..K-1), with radius
# of convergence |x| < 2 pi; four terms leave a relative error below ~4e-8 |x|^9.
# float64 switches at |x| = 0.15 (series and closed form both ~1e-15 there), float32 at
# |x| = 1 (both ~1e-7); half precisions are computed in float32.
_SERIES_COEF = (1.0 / 24, -1.0 / 2880, 1.0 / 181440, -1.0 / 9676800)
_SERIES_X = {torch.float64: 0.15, torch.float32: 1.0}
# the sampler treats |x| below this as the uniform law (relative bias < _UNIFORM_X)
_UNIFORM_X = 1e-7




@dataclass(frozen=True)
class ArithDomain(Domain):
    """The values ``s = lo + step * k`` for ``k = 0..levels-1`` (binary, spin, multinary).

    Examples
    --------
    >>> from pgm_boltz.domains import SPIN, multinary
    >>> SPIN.values().tolist()
    [-1.0, 1.0]
    >>> multinary(3).values().tolist()
    [0.0, 0.5, 1.0]
    """

    name: str  # type: ignore[misc]
    lo: float
    step: float
    levels: int
    family: ClassVar[type[Family]]

    @property
    def precision_allowed(self) -> bool:
        """Multinary units may declare ``precision=`` (binary and spin may not)."""
        return self.name == "multinary"

    def values(self) -> np.ndarray:
        """The K values ``lo + step * k`` in level order."""
        return self.lo + self.step * np.arange(self.levels, dtype=np.float64)

    def value_range(self) -> tuple[float, float]:
        """``(lo, lo + step (K-1))`` ordered, in closed form (no list of K values)."""
        a, b = self.lo, self.lo + self.step * (self.levels - 1)
        return (min(a, b), max(a, b))

    def codes(self) -> np.ndarray:
        """The data codes in level order (spin: -1, +1; otherwise 0..K-1)."""
        if self.name == "spin":
            return np.array([-1.0, 1.0])
        return np.arange(self.levels, dtype=np.float64)

    def describe(self) -> str:
        """A short human-readable description, e.g. ``multinary(K=17)``."""
        return f"multinary(K={self.levels})" if self.name == "multinary" else self.name

    def codes_text(self) -> str:
        """The codes in words, for error messages: ``"-1 or +1"``, ``"0 or 1"``,
        ``"an integer in 0..K-1"``.

        >>> from pgm_boltz.domains import SPIN, multinary
        >>> SPIN.codes_text(), multinary(4).codes_text()
        ('-1 or +1', 'an integer in 0..3')
        """
        if self.name == "spin":
            return "-1 or +1"
        return "0 or 1" if self.name == "binary" else f"an integer in 0..{self.levels - 1}"

    def attrs(self) -> dict:
        """``{"domain": name}`` (and ``levels`` for multinary)."""
        if self.name == "multinary":
            return {"domain": "multinary", "levels": self.levels}
        return {"domain": self.name}

    def kernel_spec(self) -> KernelSpec:
        """ARITH: ``lo``, ``step`` and the values, unit weights."""
        return KernelSpec(ARITH, self.lo, self.step, tuple(self.values().tolist()),
                          (0.0,) * self.levels)


BINARY = ArithDomain("binary", 0.0, 1.0, 2)
SPIN = ArithDomain("spin", -1.0, 2.0, 2)


def multinary(levels: int) -> ArithDomain:
    """The multinary domain with ``levels`` values ``k/(levels-1)``; K = 2 is binary.

    >>> multinary(5).step
    0.25
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise GraphError(f"multinary levels must be an integer >= 2, got {levels!r}")
    levels = int(levels)
    return ArithDomain("multinary", 0.0, 1.0 / (levels - 1), levels)


def _no_extra(attrs: Mapping, node: Any, name: str, allowed: tuple[str, ...]) -> None:
    for key in ("levels", "values"):
        if key not in allowed and attrs.get(key) is not None:
            raise GraphError(f"node {node!r} has {key}={attrs[key]!r} but domain {name!r}; "
                             f"{key} applies to other domains only")


def _binary(attrs: Mapping, node: Any) -> ArithDomain:
    _no_extra(attrs, node, "binary", ())
    return BINARY


def _spin(attrs: Mapping, node: Any) -> ArithDomain:
    _no_extra(attrs, node, "spin", ())
    return SPIN


def _multinary(attrs: Mapping, node: Any) -> ArithDomain:
    _no_extra(attrs, node, "multinary", ("levels",))
    levels = attrs.get("levels")
    if levels is None:
        raise GraphError(f"node {node!r} has domain 'multinary' but no 'levels' attribute; "
                         "set levels=K (an integer >= 2)")
    try:
        return multinary(levels)
    except GraphError as err:
        raise GraphError(f"node {node!r}: {err}") from None


# ----------------------------------------------------------------------------------------
# the geometric sum G_K(a) = log sum_{k<K} exp(a k), its mean and its sampler (torch)
# ----------------------------------------------------------------------------------------


def _series_x(dtype: torch.dtype) -> float:
    return _SERIES_X.get(dtype, 1.0)


def _work_dtype(a: torch.Tensor) -> torch.dtype:
    """float64/float32 stay; half precisions (and integers) are computed in float32."""
    return a.dtype if a.dtype in (torch.float64, torch.float32) else torch.float32


def _split_at_zero(a: torch.Tensor, K: torch.Tensor | int, threshold: float) -> tuple:
    """The common start of :func:`geometric_log_normalizer`, :func:`geometric_mean` and
    :func:`geometric_sample`: ``a`` in its working precision, ``K`` as a tensor of that
    dtype (or the int), the mask ``|K a| < threshold`` where the near-zero form is used,
    ``|a|`` with 1 in the masked entries (so the closed forms see no 0), and the output
    dtype."""
    out_dtype = a.dtype
    a = a.to(_work_dtype(a))
    if torch.is_tensor(K):
        K = K.to(a.dtype)
    small = (K * a).abs() < threshold
    t_safe = torch.where(small, torch.ones_like(a), a.abs())
    return a, K, small, t_safe, out_dtype


def _series_coefs(K: torch.Tensor | int) -> list:
    """``d_j (1 - K^-2j)``, j = 1..4: python floats for an int K, tensors otherwise."""
    return [d * (1.0 - K ** (-2 * j)) for j, d in enumerate(_SERIES_COEF, start=1)]


def _series_g(x: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """``sum_j d_j (1 - K^-2j) x^2j`` by Horner's rule in x^2 (part of G_K)."""
    c1, c2, c3, c4 = _series_coefs(K)
    x2 = x * x
    return x2 * (c1 + x2 * (c2 + x2 * (c3 + x2 * c4)))


def _series_dg(x: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """The x-derivative of :func:`_series_g`: ``sum_j 2j d_j (1 - K^-2j) x^(2j-1)``."""
    c1, c2, c3, c4 = _series_coefs(K)
    x2 = x * x
    return x * (2 * c1 + x2 * (4 * c2 + x2 * (6 * c3 + x2 * (8 * c4))))


def geometric_log_normalizer(a: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """``G_K(a) = log sum_{k=0}^{K-1} exp(a k)``, stable for all a and large K.

    With ``t = |a|``: ``G_K(a) = (K-1) max(a, 0) + log(-expm1(-K t)) - log(-expm1(-t))``
    (no overflow for any a, no sum over the K levels). Near 0 (``|K a|`` below 0.15 in
    float64, 1 in float32) the Taylor series ``log K + (K-1) a/2 + (K^2-1) a^2/24 -
    (K^4-1) a^4/2880 + (K^6-1) a^6/181440 - (K^8-1) a^8/9676800`` is used instead.
    Differentiable everywhere (gradient = :func:`geometric_mean`, also at a = 0);
    ``K`` is an int or a tensor broadcasting against ``a`` (mixed domains).

    >>> import torch
    >>> float(geometric_log_normalizer(torch.tensor(0.0, dtype=torch.float64), 4))  # log 4
    1.3862943611198906
    """
    if isinstance(K, (int, np.integer)) and K == 2:
        return torch.nn.functional.softplus(a)
    a, K, small, t_safe, out_dtype = _split_at_zero(a, K, _series_x(_work_dtype(a)))
    # each branch sees only the inputs it is valid for, so no inf/NaN leaks into grads
    x = K * a
    closed = (K - 1) * torch.clamp(torch.where(small, 0.0, a), min=0) + torch.log(
        -torch.expm1(-K * t_safe)) - torch.log(-torch.expm1(-t_safe))
    x_safe = torch.where(small, x, torch.zeros_like(x))
    a_safe = torch.where(small, a, torch.zeros_like(a))
    logK = math.log(K) if not torch.is_tensor(K) else torch.log(K)
    series = logK + (K - 1) * a_safe / 2 + _series_g(x_safe, K)
    return torch.where(small, series, closed).to(out_dtype)


def geometric_mean(a: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """``E[k]`` under ``P(k) ∝ exp(a k)``, k = 0..K-1 (the derivative of G_K).

    Closed form ``m(t) = e^{-t}/(1 - e^{-t}) - K e^{-K t}/(1 - e^{-K t})`` for
    ``a < 0`` (t = |a|, no overflow, finite gradient), mirrored ``K-1-m(t)`` for a > 0,
    and near 0 the series ``(K-1)/2 + (K^2-1) a/12 - (K^4-1) a^3/720 + ...`` (the
    derivative of :func:`geometric_log_normalizer`'s). Differentiable.

    >>> import torch
    >>> float(geometric_mean(torch.tensor(0.0), 5))
    2.0
    """
    if isinstance(K, (int, np.integer)) and K == 2:
        return torch.sigmoid(a)
    a, K, small, t_safe, out_dtype = _split_at_zero(a, K, _series_x(_work_dtype(a)))
    x = K * a
    m = torch.exp(-t_safe) / (-torch.expm1(-t_safe)) - K * torch.exp(-K * t_safe) / (
        -torch.expm1(-K * t_safe))
    closed = torch.where(a > 0, K - 1 - m, m)
    x_safe = torch.where(small, x, torch.zeros_like(x))
    series = (K - 1) / 2 + K * _series_dg(x_safe, K)
    return torch.where(small, series, closed).to(out_dtype)


def geometric_sample(
    a: torch.Tensor, K: torch.Tensor | int, u: torch.Tensor
) -> torch.Tensor:
    """Draw ``k`` from ``P(k) ∝ exp(a k)``, k = 0..K-1, by the inverse CDF of uniforms ``u``.

    For ``a <= 0`` (t = -a) the CDF is ``F(k) = (1 - e^{-(k+1) t}) / (1 - e^{-K t})``, so
    ``k = floor(-log1p(-u (1 - e^{-K t})) / t)`` (clamped to 0..K-1 against rounding);
    for ``a > 0`` the mirror ``K-1-k`` of the draw at ``-a``; ``floor(u K)`` where
    ``|K a| < 1e-7``. ``u`` in [0, 1). Returns float levels 0..K-1.

    >>> import torch
    >>> geometric_sample(torch.tensor([-50.0, 50.0]), 4, torch.tensor([0.5, 0.5])).tolist()
    [0.0, 3.0]
    """
    if isinstance(K, (int, np.integer)) and K == 2:
        return (u < torch.sigmoid(a)).to(a.dtype)
    a, K, small, t_safe, out_dtype = _split_at_zero(a, K, _UNIFORM_X)
    u = u.to(a.dtype)
    c = -torch.expm1(-K * t_safe)
    k = torch.floor(-torch.log1p(-u * c) / t_safe)
    k = torch.minimum(torch.clamp(k, min=0), K - 1 + torch.zeros_like(k))
    k = torch.where(a > 0, K - 1 - k, k)
    k = torch.where(small, torch.minimum(torch.floor(u * K), K - 1 + torch.zeros_like(k)), k)
    return k.to(out_dtype)




class ArithFamily(Family):
    """Vectorised maths of arithmetic-progression units: per-unit ``lo``, ``step``, ``K``
    (scalars when all units share one domain), one closed form for all."""

    def __init__(self, domains: Sequence[Domain]) -> None:
        super().__init__(domains)
        ds: list[ArithDomain] = self.domains  # type: ignore[assignment]
        self.uniform = len(set(ds)) <= 1
        self._lo_np = np.array([d.lo for d in ds], dtype=np.float64)
        self._step_np = np.array([d.step for d in ds], dtype=np.float64)
        self._K_np = np.array([d.levels for d in ds], dtype=np.float64)
        self._spin_np = np.array([d.name == "spin" for d in ds], dtype=bool)
        self.max_levels = max((d.levels for d in ds), default=2)
        self._first = ds[0] if ds else BINARY
        self._cache: dict[tuple[torch.dtype, torch.device], tuple] = {}
        self._tables: TableMaths | None = None

    @property
    def table(self) -> TableMaths:
        """The value-table route, used when precisions ``q`` are given."""
        if self._tables is None:
            self._tables = TableMaths(self.domains)
        return self._tables

    def _params(self, like: torch.Tensor) -> tuple:
        if self.uniform:
            d = self._first
            return d.lo, d.step, d.levels
        key = (like.dtype, like.device)
        if key not in self._cache:
            dt = like.dtype if like.is_floating_point() else torch.float64
            self._cache[key] = tuple(torch.as_tensor(x, dtype=dt, device=like.device)
                                     for x in (self._lo_np, self._step_np, self._K_np))
        lo, step, K = self._cache[key]
        if self.max_levels == 2:  # binary and spin only: K is 2 everywhere
            K = 2
        return lo, step, K

    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """``A_i(f_i) = f_i lo_i + G_{K_i}(f_i step_i)``; with ``q``, ``logsumexp_k
        (f_i v_k - q_i v_k^2 / 2)``."""
        if q is not None:
            return self.table.log_normalizer(f, q)
        if self.uniform and self._first == BINARY:
            return torch.nn.functional.softplus(f)
        lo, step, K = self._params(f)
        return f * lo + geometric_log_normalizer(f * step, K)

    def mean(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``E[s_i | f_i] = lo_i + step_i E_K[k](f_i step_i)`` (with ``q``: from the
        value table)."""
        if q is not None:
            return self.table.moment(f, q, 1)
        lo, step, K = self._params(f)
        return lo + step * geometric_mean(f * step, K)

    def second_moment(self, f: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``E[s_i^2 | f_i]``: spins 1, binary the mean, multinary from the levels."""
        if q is not None:
            return self.table.moment(f, q, 2)
        if self.max_levels == 2:
            lo, step, _ = self._params(f)
            m = self.mean(f)
            # two levels l0, l1: s^2 = (l0 + l1) s - l0 l1
            return (2 * lo + step) * m - lo * (lo + step)
        return super().second_moment(f)

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None,
               q: torch.Tensor | None = None) -> torch.Tensor:
        """Inverse-CDF draws ``lo + step k`` (one uniform per unit; with ``q`` from the
        value table)."""
        if q is not None:
            return self.table.sample(f, q, generator)
        lo, step, K = self._params(f)
        u = torch.rand(f.shape, dtype=f.dtype, device=f.device, generator=generator)
        return lo + step * geometric_sample(f * step, K, u)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes to values: spins are their values, levels k become ``k step``."""
        if self.uniform:
            return codes if self._first.name == "spin" else codes * self._first.step
        lo, step, K = self._params(codes)
        is_spin = torch.as_tensor(self._spin_np, device=codes.device)
        return torch.where(is_spin, codes, codes * step)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to codes, rounded to exact levels."""
        if self.uniform:
            d = self._first
            return values if d.name == "spin" else torch.round(values / d.step)
        lo, step, K = self._params(values)
        is_spin = torch.as_tensor(self._spin_np, device=values.device)
        return torch.where(is_spin, values, torch.round(values / step))

    def invalid_codes(self, codes: Any) -> Any:
        """Spins not in {-1, +1}, other codes not an integer in ``0..K-1``."""
        if torch.is_tensor(codes):
            v = codes if codes.is_floating_point() else codes.to(torch.float64)
            top = torch.as_tensor(self._K_np - 1.0, dtype=v.dtype, device=v.device)
            spin = torch.as_tensor(self._spin_np, device=v.device)
            floor, where = torch.floor, torch.where
        else:
            v = np.asarray(codes, dtype=np.float64)
            top, spin, floor, where = self._K_np - 1.0, self._spin_np, np.floor, np.where
        if self.uniform and self.n and self.max_levels == 2:
            return (v != self._first.lo) & (v != 1.0)  # lo: 0 (binary) or -1 (spin)
        with np.errstate(invalid="ignore"):
            ok_code = (v >= 0) & (v <= top) & (floor(v) == v)
            if not spin.any():
                return ~ok_code
            return ~where(spin, abs(v) == 1, ok_code)

    def bias_for_mean(self, means: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Closed form ``logit((m - lo) / step) / step`` for two levels (the log-odds,
        ``atanh(m)`` for spins); bisection for more (and with ``q``)."""
        if q is not None:
            return Family.bias_for_mean(self, means, q)
        lo, step, _ = self._params(means)
        out = torch.logit((means - lo) / step) / step  # exact where K == 2
        if self.max_levels == 2:
            return out
        multi = torch.as_tensor(np.flatnonzero(self._K_np > 2), device=means.device)
        sub = ArithFamily([self.domains[i] for i in multi.tolist()])
        return out.index_copy(-1, multi, sub_bias(sub, means.index_select(-1, multi)))


def sub_bias(family: Family, means: torch.Tensor) -> torch.Tensor:
    """:meth:`Family.bias_for_mean`'s bisection (the generic route), for ``family``."""
    return Family.bias_for_mean(family, means)


ArithDomain.family = ArithFamily
register_domain("binary", _binary)
register_domain("spin", _spin)
register_domain("multinary", _multinary)
