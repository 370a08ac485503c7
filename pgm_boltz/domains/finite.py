"""Finite domains: a unit takes one of K given distinct real values.

Declared with ``domain="finite", values=[v_0, ..., v_{K-1}]`` (e.g. ``[-1, 0, 1]`` or
``[0, 0.5, 2]``). Data codes are the level indices ``0..K-1`` (code k means value
``v_k``). Given the local field ``f``, the unit's conditional is the softmax

    P(s = v_k | f) = exp(f v_k) / sum_l exp(f v_l),
    A(f) = log sum_k exp(f v_k),      E[s | f] = sum_k v_k P(v_k | f),

computed max-shifted (no overflow for any ``f``). Numba kernels see equally spaced
values as an arithmetic progression (closed forms, fast two-level paths) and others as a
value table (:mod:`pgm_boltz.domains.kernels`). A node declared with ``precision=λ``
(λ >= 0) adds ``λ s^2 / 2`` to the energy: ``P(v_k | f) ∝ exp(f v_k - λ v_k^2 / 2)``.

>>> import torch
>>> d = FiniteDomain([0.0, 0.5, 2.0])
>>> d.describe(), d.codes().tolist()
('finite([0, 0.5, 2])', [0.0, 1.0, 2.0])
>>> from pgm_boltz.domains import DomainVector
>>> float(DomainVector([d]).log_normalizer(torch.zeros(1, dtype=torch.float64))[0])  # log 3
1.0986122886681098
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import GraphError
from .base import ARITH, TABLE, Domain, Family, KernelSpec, register_domain

__all__ = ["FiniteDomain", "FiniteFamily"]


class FiniteDomain(Domain):
    """A unit taking one of the distinct finite real ``values`` (codes 0..K-1).

    >>> FiniteDomain([-1, 0, 1]).values().tolist()
    [-1.0, 0.0, 1.0]
    """

    name: ClassVar[str] = "finite"
    family: ClassVar[type[Family]]

    def __init__(self, values: Sequence[float]) -> None:
        vals = _check_values(values, "finite domain")
        self._values = vals
        self.levels = len(vals)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values == self._values  # type: ignore

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values))

    def __repr__(self) -> str:
        return f"FiniteDomain({list(self._values)})"

    @property
    def precision_allowed(self) -> bool:
        """Finite units may declare ``precision=`` (a quadratic self-term)."""
        return True

    def values(self) -> np.ndarray:
        """The K values in level (declaration) order."""
        return np.array(self._values, dtype=np.float64)

    def codes(self) -> np.ndarray:
        """The codes ``0..K-1``."""
        return np.arange(self.levels, dtype=np.float64)

    def describe(self) -> str:
        """``finite([v_0, ...])``."""
        return "finite([" + ", ".join(f"{v:g}" for v in self._values) + "])"

    def codes_text(self) -> str:
        """``an integer in 0..K-1 (indexing the values [...])``."""
        return (f"an integer in 0..{self.levels - 1} (indexing the values "
                f"{[float(v) for v in self._values]})")

    def attrs(self) -> dict:
        """``{"domain": "finite", "values": [...]}``."""
        return {"domain": "finite", "values": [float(v) for v in self._values]}

    def kernel_spec(self) -> KernelSpec:
        """ARITH when the values are equally spaced (closed forms), else TABLE."""
        v = self._values
        step = v[1] - v[0]
        spaced = all(math.isclose(v[k + 1] - v[k], step, rel_tol=0, abs_tol=1e-12 *
                                  max(1.0, abs(step))) for k in range(len(v) - 1))
        kind = ARITH if spaced else TABLE
        return KernelSpec(kind, v[0], step if spaced else 0.0, tuple(v), (0.0,) * len(v))


def _check_values(values: Any, what: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise GraphError(f"{what}: values must be a sequence of at least 2 distinct real "
                         f"numbers, got {values!r}")
    out = []
    for v in np.asarray(values, dtype=object).reshape(-1).tolist():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise GraphError(f"{what}: values must be finite real numbers, got {v!r} in "
                             f"{list(values)!r}")
        out.append(float(v))
    if len(out) < 2:
        raise GraphError(f"{what}: values must hold at least 2 distinct numbers, got {out}")
    if len(set(out)) != len(out):
        raise GraphError(f"{what}: values must be distinct, got {out}")
    return tuple(out)


def _finite(attrs: Mapping, node: Any) -> FiniteDomain:
    values = attrs.get("values")
    if values is None:
        raise GraphError(f"node {node!r} has domain 'finite' but no 'values' attribute; set "
                         "values=[v_0, ..., v_K-1] (distinct real numbers)")
    try:
        dom = FiniteDomain(values)
    except GraphError as err:
        raise GraphError(f"node {node!r}: {err}") from None
    levels = attrs.get("levels")
    if levels is not None and levels != dom.levels:
        raise GraphError(f"node {node!r} has levels={levels!r} but {dom.levels} values; drop "
                         "levels (it follows from values)")
    return dom


class FiniteFamily(Family):
    """Vectorised softmax maths over a padded (n, Kmax) value table."""

    def __init__(self, domains: Sequence[Domain]) -> None:
        super().__init__(domains)
        self.kmax = max((d.levels for d in self.domains), default=1)
        tab = np.zeros((self.n, self.kmax))
        pad = np.ones((self.n, self.kmax), dtype=bool)
        for i, d in enumerate(self.domains):
            tab[i, :d.levels] = d.values()
            pad[i, :d.levels] = False
        self._tab_np, self._pad_np = tab, pad
        self._K_np = np.array([d.levels for d in self.domains], dtype=np.float64)
        self._cache: dict[tuple[torch.dtype, torch.device], tuple] = {}

    def _table(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dt = like.dtype if like.is_floating_point() else torch.float64
        key = (dt, like.device)
        if key not in self._cache:
            self._cache[key] = (torch.as_tensor(self._tab_np, dtype=dt, device=like.device),
                                torch.as_tensor(self._pad_np, device=like.device))
        return self._cache[key]

    def _logits(self, f: torch.Tensor, q: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        V, pad = self._table(f)
        lg = f.unsqueeze(-1) * V
        if q is not None:
            lg = lg - 0.5 * torch.as_tensor(q, dtype=V.dtype, device=V.device).unsqueeze(-1) \
                * V * V
        return lg.masked_fill(pad, -math.inf), V

    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """``A_i(f_i; q_i) = logsumexp_k (f_i v_ik - q_i v_ik^2 / 2)``."""
        return torch.logsumexp(self._logits(f, q)[0], -1)

    def mean(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``E[s_i | f_i, q_i] = sum_k v_ik softmax_k(f_i v_i - q_i v_i^2 / 2)``."""
        lg, V = self._logits(f, q)
        return (torch.softmax(lg, -1) * V).sum(-1)

    def second_moment(self, f: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``E[s_i^2 | f_i, q_i]``."""
        lg, V = self._logits(f, q)
        return (torch.softmax(lg, -1) * V * V).sum(-1)

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None,
               q: torch.Tensor | None = None) -> torch.Tensor:
        """Inverse CDF of the softmax with one uniform per unit."""
        lg, V = self._logits(f, q)
        cdf = torch.softmax(lg, -1).cumsum(-1)
        u = torch.rand(f.shape, dtype=f.dtype, device=f.device, generator=generator)
        k = (cdf < u.unsqueeze(-1)).sum(-1, keepdim=True)
        top = torch.as_tensor(self._K_np - 1, device=f.device).long()
        k = torch.minimum(k, top.unsqueeze(-1).expand_as(k))
        return torch.gather(V.expand((*f.shape, self.kmax)), -1, k).squeeze(-1)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes k to values ``v_k``."""
        V, _ = self._table(codes)
        idx = codes.long().clamp(0, self.kmax - 1).unsqueeze(-1)
        return torch.gather(V.expand((*codes.shape, self.kmax)), -1, idx).squeeze(-1)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to the codes of the nearest levels."""
        V, pad = self._table(values)
        d = (values.unsqueeze(-1) - V).abs().masked_fill(pad, math.inf)
        return d.argmin(-1).to(values.dtype)

    def invalid_codes(self, codes: Any) -> Any:
        """Codes that are not an integer in ``0..K_i-1``."""
        if torch.is_tensor(codes):
            v = codes if codes.is_floating_point() else codes.to(torch.float64)
            top = torch.as_tensor(self._K_np - 1.0, dtype=v.dtype, device=v.device)
            return ~((v >= 0) & (v <= top) & (torch.floor(v) == v))
        v = np.asarray(codes, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return ~((v >= 0) & (v <= self._K_np - 1.0) & (np.floor(v) == v))

    def bias_for_mean(self, means: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Bisection on the mean, which increases with ``f`` towards the largest value
        (the values may be given in any order)."""
        return super().bias_for_mean(means, q)


FiniteDomain.family = FiniteFamily
register_domain("finite", _finite)
