"""Unit domains: binary {0,1}, spin {-1,+1} and multinary (K equally spaced levels).

Every domain is an arithmetic progression of K values

    s = lo + step * k,        k = 0, ..., K-1

binary is (lo, step, K) = (0, 1, 2), spin is (-1, 2, 2) and multinary with K levels
is (0, 1/(K-1), K), so one closed form serves all three. Given the local field f of
a unit (its bias plus the couplings to its neighbours), its conditional is
``P(s) ∝ exp(f s)``, with log-normaliser

    A(f) = log sum_k exp(f (lo + step k)) = f lo + G_K(f step),
    G_K(a) = log sum_{k=0}^{K-1} exp(a k) = log((1 - e^{K a}) / (1 - e^{a})),

evaluated stably for every ``a`` (a series near 0, the mirrored form for a > 0)
without a sum over the K levels, so K = 256 costs what K = 2 does.
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

# below this value of t * K the closed forms lose accuracy and a series is used
_SERIES_TK = 1e-3


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


def geometric_log_normalizer(a: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """``G_K(a) = log sum_{k=0}^{K-1} exp(a k)``, stable for all a and large K.

    With ``t = |a|``: ``G_K(a) = (K-1) max(a, 0) + log(-expm1(-K t)) - log(-expm1(-t))``,
    and ``log K - (K-1) t/2 + (K^2-1) t^2/24`` when ``t K`` is tiny. Differentiable.

    >>> import torch
    >>> float(geometric_log_normalizer(torch.tensor(0.0), 4))  # log 4
    1.3862943611198906
    """
    if isinstance(K, int) and K == 2:
        return torch.nn.functional.softplus(a)
    K = torch.as_tensor(K, dtype=a.dtype, device=a.device)
    t = a.abs()
    small = t * K < _SERIES_TK
    t_safe = torch.where(small, torch.ones_like(t), t)
    closed = torch.log(-torch.expm1(-K * t_safe)) - torch.log(-torch.expm1(-t_safe))
    series = torch.log(K) - (K - 1) * t / 2 + (K * K - 1) * t * t / 24
    return (K - 1) * torch.clamp(a, min=0) + torch.where(small, series, closed)


def geometric_mean(a: torch.Tensor, K: torch.Tensor | int) -> torch.Tensor:
    """``E[k]`` under ``P(k) ∝ exp(a k)``, k = 0..K-1 (the derivative of G_K).

    Closed form ``m(t) = 1/expm1(t) - K/expm1(K t)`` for ``a < 0`` (t = |a|),
    mirrored ``K-1-m(t)`` for ``a > 0``, series ``(K-1)/2 + (K^2-1) a/12`` near 0.

    >>> import torch
    >>> float(geometric_mean(torch.tensor(0.0), 5))
    2.0
    """
    if isinstance(K, int) and K == 2:
        return torch.sigmoid(a)
    K = torch.as_tensor(K, dtype=a.dtype, device=a.device)
    t = a.abs()
    small = t * K < _SERIES_TK
    t_safe = torch.where(small, torch.ones_like(t), t)
    m = 1.0 / torch.expm1(t_safe) - K / torch.expm1(K * t_safe)
    closed = torch.where(a > 0, K - 1 - m, m)
    series = (K - 1) / 2 + (K * K - 1) * a / 12
    return torch.where(small, series, closed)


def geometric_sample(
    a: torch.Tensor, K: torch.Tensor | int, u: torch.Tensor
) -> torch.Tensor:
    """Draw ``k`` from ``P(k) ∝ exp(a k)``, k = 0..K-1, by the inverse CDF of uniforms ``u``.

    For ``a <= 0`` (t = -a): ``k = floor(-log1p(-u (1 - e^{-K t})) / t)``; for ``a > 0``
    the mirror ``K-1-k`` of the draw at ``-a``. Returns float levels 0..K-1.

    >>> import torch
    >>> geometric_sample(torch.tensor([-50.0, 50.0]), 4, torch.tensor([0.5, 0.5])).tolist()
    [0.0, 3.0]
    """
    if isinstance(K, int) and K == 2:
        return (u < torch.sigmoid(a)).to(a.dtype)
    K = torch.as_tensor(K, dtype=a.dtype, device=a.device)
    t = a.abs()
    small = t * K < 1e-6
    t_safe = torch.where(small, torch.ones_like(t), t)
    c = -torch.expm1(-K * t_safe)
    k = torch.floor(-torch.log1p(-u * c) / t_safe)
    k = torch.where(small, torch.floor(u * K), k)
    k = torch.minimum(torch.clamp(k, min=0), K - 1)
    return torch.where(a > 0, K - 1 - k, k)


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
        if self.uniform:
            d = self.domains[0] if self.domains else BINARY
            self._lo: float | torch.Tensor = d.lo
            self._step: float | torch.Tensor = d.step
            self._K: int | torch.Tensor = d.levels
        else:
            self._lo_np = np.array([d.lo for d in self.domains])
            self._step_np = np.array([d.step for d in self.domains])
            self._K_np = np.array([d.levels for d in self.domains], dtype=np.float64)
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

    def invalid_codes(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask (same shape as ``codes``, last axis = units) of codes outside the domain."""
        bad = ~np.isfinite(codes)
        for i, d in enumerate(self.domains):
            col = codes[..., i]
            if d.name == "spin":
                ok = (col == -1) | (col == 1)
            else:
                ok = (col >= 0) & (col <= d.levels - 1) & (np.floor(col) == col)
            bad[..., i] |= ~ok
        return bad

    def kinds_array(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo, step, levels) as float64 numpy arrays, for numba kernels."""
        lo = np.array([d.lo for d in self.domains], dtype=np.float64)
        step = np.array([d.step for d in self.domains], dtype=np.float64)
        K = np.array([d.levels for d in self.domains], dtype=np.int64)
        return lo, step, K

    def log_size(self) -> float:
        """``sum_i log K_i``: the log of the number of joint states."""
        return float(sum(math.log(d.levels) for d in self.domains))
