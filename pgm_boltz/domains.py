"""Unit domains: binary {0,1}, spin {-1,+1} and multinary (K equally spaced levels).

Every domain is an arithmetic progression of K values

    s = lo + step * k,        k = 0, ..., K-1

binary is (lo, step, K) = (0, 1, 2), spin is (-1, 2, 2) and multinary with K levels
is (0, 1/(K-1), K), so one closed form serves all three. Given the local field f of
a unit (its bias plus the couplings to its neighbours), its conditional is
``P(s) ∝ exp(f s)``, with log-normaliser

    A(f) = log sum_k exp(f (lo + step k)) = f lo + G_K(f step),
    G_K(a) = log sum_{k=0}^{K-1} exp(a k) = log((1 - e^{K a}) / (1 - e^{a})),

evaluated stably for every ``a`` (overflow-free closed forms in ``|a|`` with the
``(K-1) max(a, 0)`` term split off, and a Taylor series in ``K a`` near 0 whose switch
point depends on the dtype, so float32 stays accurate to ~1e-7) without a sum over the
K levels, so K = 256 costs what K = 2 does. Gradients are finite everywhere, a = 0
included; half-precision inputs are computed in float32.
Its derivative is the conditional mean ``E[s | f] = lo + step E_K[k](f step)``.

Data use *codes*: binary 0/1, spin -1/+1, multinary the integers 0..K-1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import GraphError

__all__ = [
    "BINARY",
    "SPIN",
    "Domain",
    "DomainVector",
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
class Domain:
    """The values a unit takes: ``s = lo + step * k`` for ``k = 0..levels-1``.

    Examples
    --------
    >>> from pgm_boltz.domains import SPIN, multinary
    >>> SPIN.values().tolist()
    [-1.0, 1.0]
    >>> multinary(3).values().tolist()
    [0.0, 0.5, 1.0]
    """

    name: str
    lo: float
    step: float
    levels: int

    def values(self) -> np.ndarray:
        """The K values ``lo + step * k`` in level order."""
        return self.lo + self.step * np.arange(self.levels, dtype=np.float64)

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


BINARY = Domain("binary", 0.0, 1.0, 2)
SPIN = Domain("spin", -1.0, 2.0, 2)


def multinary(levels: int) -> Domain:
    """The multinary domain with ``levels`` values ``k/(levels-1)``; K = 2 is binary.

    >>> multinary(5).step
    0.25
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise GraphError(f"multinary levels must be an integer >= 2, got {levels!r}")
    levels = int(levels)
    return Domain("multinary", 0.0, 1.0 / (levels - 1), levels)


def parse_domain(name: object, levels: object, node: object) -> Domain:
    """The Domain for a node's ``domain``/``levels`` attributes (GraphError names the node)."""
    if name is None or name == "binary":
        return BINARY
    if name == "spin":
        return SPIN
    if name == "multinary":
        if levels is None:
            raise GraphError(
                f"node {node!r} has domain 'multinary' but no 'levels' attribute; "
                "set levels=K (an integer >= 2)"
            )
        try:
            return multinary(levels)  # type: ignore[arg-type]
        except GraphError as err:
            raise GraphError(f"node {node!r}: {err}") from None
    raise GraphError(
        f"node {node!r} has unknown domain {name!r}; use 'binary', 'spin' or 'multinary'"
    )


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


class DomainVector:
    """The domains of an ordered set of units, for vectorised conditionals.

    Stores per-unit ``lo``, ``step`` and ``levels`` (scalars when all units share
    one domain) and evaluates, for a field tensor ``f`` of shape (..., n):

    - ``log_normalizer(f)``: ``A_i(f_i) = f_i lo_i + G_{K_i}(f_i step_i)``
    - ``mean(f)``: ``E[s_i | f_i]``
    - ``sample(f, generator)``: a draw of ``s_i`` from ``P(s_i) ∝ exp(f_i s_i)``

    >>> import torch
    >>> from pgm_boltz.domains import DomainVector, BINARY, SPIN
    >>> dv = DomainVector([BINARY, SPIN])
    >>> dv.mean(torch.zeros(2)).tolist()
    [0.5, 0.0]
    """

    def __init__(self, domains: Sequence[Domain]) -> None:
        self.domains = list(domains)
        self.n = len(self.domains)
        unique = set(self.domains)
        self.uniform = len(unique) <= 1
        # per unit, float64: lo, step, K; whether the codes are spins (±1), the top code
        self._lo_np = np.array([d.lo for d in self.domains], dtype=np.float64)
        self._step_np = np.array([d.step for d in self.domains], dtype=np.float64)
        self._K_np = np.array([d.levels for d in self.domains], dtype=np.float64)
        self._spin_np = np.array([d.name == "spin" for d in self.domains], dtype=bool)
        if self.uniform:
            d = self.domains[0] if self.domains else BINARY
            self._lo: float | torch.Tensor = d.lo
            self._step: float | torch.Tensor = d.step
            self._K: int | torch.Tensor = d.levels
        else:
            self._cache: dict[tuple[torch.dtype, torch.device], tuple] = {}
        self.max_levels = max((d.levels for d in self.domains), default=2)

    def _params(self, like: torch.Tensor):
        if self.uniform:
            return self._lo, self._step, self._K
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = tuple(
                torch.as_tensor(x, dtype=like.dtype, device=like.device)
                for x in (self._lo_np, self._step_np, self._K_np)
            )
        lo, step, K = self._cache[key]
        if self.max_levels == 2:  # binary and spin only: K is 2 everywhere
            K = 2
        return lo, step, K

    def log_normalizer(self, f: torch.Tensor) -> torch.Tensor:
        """``A_i(f_i) = log sum_s exp(f_i s)`` elementwise over the last axis."""
        lo, step, K = self._params(f)
        return f * lo + geometric_log_normalizer(f * step, K)

    def mean(self, f: torch.Tensor) -> torch.Tensor:
        """``E[s_i | f_i]`` elementwise over the last axis."""
        lo, step, K = self._params(f)
        return lo + step * geometric_mean(f * step, K)

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw of each ``s_i`` from ``P(s_i) ∝ exp(f_i s_i)`` (values, not codes)."""
        lo, step, K = self._params(f)
        u = torch.rand(f.shape, dtype=f.dtype, device=f.device, generator=generator)
        return lo + step * geometric_sample(f * step, K, u)

    # -- codes <-> values ------------------------------------------------------------
    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data codes to values (spin codes are the values; levels k become k/(K-1))."""
        lo, step, K = self._params(codes)
        if self.uniform:
            d = self.domains[0] if self.domains else BINARY
            return codes if d.name == "spin" else codes * step
        is_spin = torch.as_tensor(
            [d.name == "spin" for d in self.domains], device=codes.device
        )
        return torch.where(is_spin, codes, codes * step)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to data codes (the inverse of :meth:`encode`), rounded to exact levels."""
        lo, step, K = self._params(values)
        if self.uniform:
            d = self.domains[0] if self.domains else BINARY
            return values if d.name == "spin" else torch.round(values / step)
        is_spin = torch.as_tensor(
            [d.name == "spin" for d in self.domains], device=values.device
        )
        return torch.where(is_spin, values, torch.round(values / step))

    def invalid_codes(self, codes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Boolean mask (same shape as ``codes``, last axis = units) of codes outside the
        domain: spins not in {-1, +1}, other codes not an integer in ``0..K-1`` (NaN and
        infinities included). One vectorised pass over all columns; a numpy array gives
        a numpy mask, a tensor a tensor mask on its device.

        >>> from pgm_boltz.domains import DomainVector, BINARY, SPIN
        >>> DomainVector([BINARY, SPIN]).invalid_codes(np.array([[1.0, 0.0]])).tolist()
        [[False, True]]
        """
        if torch.is_tensor(codes):
            v = codes if codes.is_floating_point() else codes.to(torch.float64)
            top = torch.as_tensor(self._K_np - 1.0, dtype=v.dtype, device=v.device)
            spin = torch.as_tensor(self._spin_np, device=v.device)
            floor, where = torch.floor, torch.where
        else:
            v = np.asarray(codes, dtype=np.float64)
            top, spin, floor, where = self._K_np - 1.0, self._spin_np, np.floor, np.where
        if self.uniform and self.n and self.max_levels == 2:
            return (v != self.domains[0].lo) & (v != 1.0)  # lo: 0 (binary) or -1 (spin)
        with np.errstate(invalid="ignore"):
            ok_code = (v >= 0) & (v <= top) & (floor(v) == v)
            if not spin.any():
                return ~ok_code
            return ~where(spin, abs(v) == 1, ok_code)

    def kinds_array(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo, step, levels) as numpy arrays (float64, float64, int64), for numba
        kernels (fresh copies: the caller may write to them)."""
        return self._lo_np.copy(), self._step_np.copy(), self._K_np.astype(np.int64)

    def log_size(self) -> float:
        """``sum_i log K_i``: the log of the number of joint states."""
        return float(sum(math.log(d.levels) for d in self.domains))
