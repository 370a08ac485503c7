"""The domain seam: what a unit's values are, and the maths every engine asks of them.

A **domain** is the set of values ``s`` a unit takes with, for a local field ``f``, the
conditional law ``P(s | f) ∝ w(s) exp(f s)`` (``w`` = 1 for plain discrete domains) and
its log-normaliser ``A(f) = log sum_s w(s) exp(f s)``, whose derivative is the
conditional mean ``E[s | f]``. Data use *codes* (e.g. spins ±1, levels 0..K-1) that a
domain maps to values and back.

Two pieces make a domain:

- a :class:`Domain` subclass (one unit's facts: its values, codes, how a graph declares
  it, its numba representation :class:`KernelSpec`), registered under a name with
  :func:`register_domain` so that ``G.add_node(..., domain="name", **attrs)`` finds it;
- a :class:`Family` subclass (the vectorised torch maths for many units of that kind at
  once: ``log_normalizer``, ``mean``, ``sample``, codes ↔ values), named by the domain
  class's ``family`` attribute.

:class:`DomainVector` gathers the units of a model (or a block) and runs each family on
its own units, so models may mix domains freely.

The numba kernels (exact enumeration, Gibbs sweeps) read domains through
:class:`KernelSpec` arrays and one numba copy of the maths in
:mod:`pgm_boltz.domains.kernels`: arithmetic-progression domains (closed forms) and
value tables (any finite set of values with optional per-level log-weights). A new
discrete domain that fits a value table needs no kernel change.

Registering a domain from outside the package:

>>> import numpy as np
>>> from pgm_boltz.domains import FiniteDomain, register_domain
>>> class Ternary(FiniteDomain):
...     name = "ternary_example"
...     def __init__(self) -> None:
...         super().__init__([-1.0, 0.0, 1.0])
...     def attrs(self) -> dict:
...         return {"domain": "ternary_example"}
...     @classmethod
...     def from_attrs(cls, attrs: dict, node: object) -> "Ternary":
...         return cls()
>>> register_domain("ternary_example", Ternary.from_attrs, replace=True)
>>> from pgm_boltz.domains import parse_domain
>>> parse_domain({"domain": "ternary_example"}, "x").values().tolist()
[-1.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import GraphError, IntractableError

__all__ = [
    "ARITH",
    "TABLE",
    "Domain",
    "DomainVector",
    "Family",
    "KernelSpec",
    "domain_names",
    "parse_domain",
    "register_domain",
]

#: numba kind of a domain whose values are ``lo + step k`` (closed-form maths)
ARITH = 0
#: numba kind of a domain given by a table of values and per-level log-weights
TABLE = 1


@dataclass(frozen=True)
class KernelSpec:
    """How numba kernels see one unit: ``kind`` (:data:`ARITH` or :data:`TABLE`), the
    progression ``lo``, ``step`` (ARITH), and the level table ``values`` with per-level
    log-weights ``log_weights`` (both length K, used by every kind for enumeration)."""

    kind: int
    lo: float
    step: float
    values: tuple[float, ...]
    log_weights: tuple[float, ...]


class Domain(ABC):
    """One unit's domain: a finite set of ``levels`` values in level order, their data
    codes, and its numba representation. Subclasses are immutable and hashable (equal
    domains compare equal) and name their vectorised :class:`Family` in ``family``."""

    #: the registry name (the node attribute ``domain``)
    name: str
    #: the :class:`Family` subclass holding the vectorised maths
    family: ClassVar[type[Family]]
    #: whether the unit takes finitely many values (engines that enumerate need this)
    discrete: ClassVar[bool] = True
    levels: int

    @abstractmethod
    def values(self) -> np.ndarray:
        """The ``levels`` values in level order (float64)."""

    @abstractmethod
    def codes(self) -> np.ndarray:
        """The data codes in level order (float64)."""

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable description, e.g. ``multinary(K=17)``."""

    @abstractmethod
    def codes_text(self) -> str:
        """The codes in words, for error messages (``"-1 or +1"``)."""

    @abstractmethod
    def attrs(self) -> dict:
        """The node attributes that declare this domain (``{"domain": ..., ...}``)."""

    @abstractmethod
    def kernel_spec(self) -> KernelSpec:
        """The unit as numba kernels see it."""

    def code_of(self, values: np.ndarray) -> np.ndarray:
        """Codes of the nearest levels to ``values`` (numpy, elementwise).

        >>> from pgm_boltz.domains import multinary
        >>> multinary(3).code_of(np.array([0.0, 0.5, 1.0])).tolist()
        [0.0, 1.0, 2.0]
        """
        vals = self.values()
        idx = np.abs(np.asarray(values, dtype=np.float64)[..., None] - vals).argmin(-1)
        return self.codes()[idx]

    def log_size(self) -> float:
        """``log K``: the log of the number of values."""
        return math.log(self.levels)

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest value (without listing them where a closed form
        exists)."""
        v = self.values()
        return float(v.min()), float(v.max())


class Family(ABC):
    """Vectorised maths of the units of one domain family, for fields ``f`` of shape
    (..., n) whose last axis runs over ``domains`` (all of this family)."""

    def __init__(self, domains: Sequence[Domain]) -> None:
        self.domains = list(domains)
        self.n = len(self.domains)

    @abstractmethod
    def log_normalizer(self, f: torch.Tensor) -> torch.Tensor:
        """``A_i(f_i) = log sum_s w_i(s) exp(f_i s)`` elementwise (differentiable)."""

    @abstractmethod
    def mean(self, f: torch.Tensor) -> torch.Tensor:
        """``E[s_i | f_i]`` elementwise."""

    @abstractmethod
    def sample(self, f: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A draw of each ``s_i`` from ``P(s_i | f_i)`` (values)."""

    @abstractmethod
    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data codes to values."""

    @abstractmethod
    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to data codes (exact levels)."""

    @abstractmethod
    def invalid_codes(self, codes: Any) -> Any:
        """Boolean mask of codes outside the domains (numpy in, numpy out; torch likewise)."""

    def bias_for_mean(self, means: torch.Tensor) -> torch.Tensor:
        """Fields ``f`` with ``E[s_i | f_i] = m_i`` (``means`` strictly inside the value
        range), by bisection on the increasing conditional mean; families with a closed
        form override it."""
        span = torch.as_tensor([d.value_range()[1] - d.value_range()[0]
                                for d in self.domains],
                               dtype=means.dtype, device=means.device)
        a = -60.0 / span + torch.zeros_like(means)
        b = 60.0 / span + torch.zeros_like(means)
        for _ in range(80):
            mid = (a + b) / 2
            below = self.mean(mid) < means
            a = torch.where(below, mid, a)
            b = torch.where(below, b, mid)
        return (a + b) / 2

    def second_moment(self, f: torch.Tensor) -> torch.Tensor:
        """``E[s_i^2 | f_i]`` elementwise (by default from the value table)."""
        vals = _value_table(self.domains, f)
        logp = _table_log_probs(f, vals, self.domains)
        return (logp.exp() * torch.nan_to_num(vals) ** 2).sum(-1)


# ----------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[Mapping, Any], Domain]] = {}


def register_domain(name: str, factory: Callable[[Mapping, Any], Domain], *,
                    replace: bool = False) -> None:
    """Make ``domain=name`` declarable: ``factory(node_attrs, node)`` returns the node's
    :class:`Domain` (raising :class:`~pgm_boltz.errors.GraphError` naming the node for bad
    attributes). ``replace=True`` overrides an existing registration.

    >>> "spin" in domain_names()
    True
    """
    if not isinstance(name, str) or not name:
        raise GraphError(f"a domain name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise GraphError(f"domain {name!r} is registered already; pass replace=True to "
                         "override it")
    _REGISTRY[name] = factory


def domain_names() -> list[str]:
    """The registered domain names, in registration order."""
    return list(_REGISTRY)


def parse_domain(attrs: Mapping, node: Any) -> Domain:
    """The :class:`Domain` a node's attributes declare (``domain``, default ``"binary"``);
    GraphError names the node and the registered domains.

    >>> parse_domain({"domain": "spin"}, "a").describe()
    'spin'
    """
    name = attrs.get("domain")
    name = "binary" if name is None else name
    factory = _REGISTRY.get(name) if isinstance(name, str) else None
    if factory is None:
        raise GraphError(f"node {node!r} has unknown domain {name!r}; use one of "
                         f"{domain_names()} (or register one with "
                         "pgm_boltz.domains.register_domain)")
    return factory(attrs, node)


# ----------------------------------------------------------------------------------------
# value tables (shared by the table family and the default second moment)
# ----------------------------------------------------------------------------------------


def _value_table(domains: Sequence[Domain], like: torch.Tensor) -> torch.Tensor:
    """(n, Kmax) values, NaN padding, in ``like``'s dtype and device."""
    kmax = max((d.levels for d in domains), default=1)
    tab = np.full((len(domains), kmax), np.nan)
    for i, d in enumerate(domains):
        tab[i, :d.levels] = d.values()
    return torch.as_tensor(tab, dtype=like.dtype, device=like.device)


def _table_log_probs(f: torch.Tensor, vals: torch.Tensor,
                     domains: Sequence[Domain], logw: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``log P(s_i = level k | f_i)`` (..., n, Kmax), -inf on padding."""
    lw = f.unsqueeze(-1) * torch.nan_to_num(vals)
    if logw is not None:
        lw = lw + logw
    lw = lw.masked_fill(torch.isnan(vals), -math.inf)
    return lw - torch.logsumexp(lw, -1, keepdim=True)


#: entries of a value table at most (kernels' V and LW arrays)
_TABLE_LIMIT = 1 << 26


def _is_arith(d: Domain) -> bool:
    """Whether ``d`` is an arithmetic progression with unit weights, asked without
    listing its values (``lo``/``step`` attributes), else from its kernel spec."""
    if hasattr(d, "lo") and hasattr(d, "step"):
        return True
    return d.kernel_spec().kind == ARITH


def _arith_spec(d: Domain) -> KernelSpec:
    """The ARITH spec of a progression unit without its value list."""
    if hasattr(d, "lo") and hasattr(d, "step"):
        return KernelSpec(ARITH, float(d.lo), float(d.step), (), ())  # type: ignore[attr-defined]
    return d.kernel_spec()


# ----------------------------------------------------------------------------------------
# many units of mixed domains
# ----------------------------------------------------------------------------------------


class DomainVector:
    """The domains of an ordered set of units, for vectorised conditionals.

    Units are grouped by family; each family computes on its own units, so a field
    tensor ``f`` of shape (..., n) gives

    - ``log_normalizer(f)``: ``A_i(f_i)``,
    - ``mean(f)``: ``E[s_i | f_i]``,
    - ``sample(f, generator)``: a draw of each ``s_i`` (values),
    - ``encode`` / ``decode``: codes ↔ values, ``invalid_codes``: a mask of bad codes,
    - ``bias_for_mean(m)``: fields whose conditional means are ``m``,
    - ``kernel_arrays()``: the per-unit arrays numba kernels take.

    >>> import torch
    >>> from pgm_boltz.domains import DomainVector, BINARY, SPIN
    >>> dv = DomainVector([BINARY, SPIN])
    >>> dv.mean(torch.zeros(2)).tolist()
    [0.5, 0.0]
    """

    def __init__(self, domains: Sequence[Domain]) -> None:
        self.domains = list(domains)
        self.n = len(self.domains)
        self.uniform = len(set(self.domains)) <= 1
        self.max_levels = max((d.levels for d in self.domains), default=2)
        self.discrete = all(d.discrete for d in self.domains)
        groups: dict[type, list[int]] = {}
        for i, d in enumerate(self.domains):
            groups.setdefault(d.family, []).append(i)
        self._groups = [(fam([self.domains[i] for i in idx]), np.asarray(idx, np.int64))
                        for fam, idx in groups.items()]
        self._single = self._groups[0][0] if len(self._groups) == 1 else None
        # the concatenated group outputs, put back in unit order
        order = np.concatenate([i for _, i in self._groups]) if self._groups else \
            np.zeros(0, np.int64)
        self._inverse = np.argsort(order, kind="stable")
        self._index_cache: dict[torch.device, tuple] = {}

    @property
    def families(self) -> list[Family]:
        """The family objects, one per family present."""
        return [g for g, _ in self._groups]

    def _idx(self, device: torch.device) -> tuple:
        if device not in self._index_cache:
            self._index_cache[device] = (
                [torch.as_tensor(i, device=device) for _, i in self._groups],
                torch.as_tensor(self._inverse, device=device))
        return self._index_cache[device]

    def _map(self, fn: str, x: torch.Tensor, *args: Any) -> torch.Tensor:
        if self._single is not None:
            return getattr(self._single, fn)(x, *args)
        idxs, inverse = self._idx(x.device)
        parts = [getattr(fam, fn)(x.index_select(-1, idx), *args)
                 for (fam, _), idx in zip(self._groups, idxs)]
        return torch.cat(parts, -1).index_select(-1, inverse)

    def log_normalizer(self, f: torch.Tensor) -> torch.Tensor:
        """``A_i(f_i) = log sum_s w_i(s) exp(f_i s)`` elementwise over the last axis."""
        return self._map("log_normalizer", f)

    def mean(self, f: torch.Tensor) -> torch.Tensor:
        """``E[s_i | f_i]`` elementwise over the last axis."""
        return self._map("mean", f)

    def second_moment(self, f: torch.Tensor) -> torch.Tensor:
        """``E[s_i^2 | f_i]`` elementwise over the last axis."""
        return self._map("second_moment", f)

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """A draw of each ``s_i`` from ``P(s_i | f_i)`` (values, not codes)."""
        return self._map("sample", f, generator)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data codes to values."""
        return self._map("encode", codes)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to data codes (the inverse of :meth:`encode`), at exact levels."""
        return self._map("decode", values)

    def bias_for_mean(self, means: torch.Tensor, clip: float = 1e-3) -> torch.Tensor:
        """Fields whose conditional means are ``means``: the biases of the independent-unit
        model with those means. Means are first clipped ``clip`` (a fraction of each
        unit's value range) away from the ends, so the fields stay finite.

        >>> import torch
        >>> from pgm_boltz.domains import DomainVector, BINARY, SPIN
        >>> DomainVector([BINARY, SPIN]).bias_for_mean(torch.tensor([0.5, 0.0])).tolist()
        [0.0, 0.0]
        """
        if not hasattr(self, "_range_np"):
            ranges = [d.value_range() for d in self.domains]
            self._range_np = (np.array([r[0] for r in ranges]),
                              np.array([r[1] for r in ranges]))
        lo = torch.as_tensor(self._range_np[0], dtype=means.dtype, device=means.device)
        hi = torch.as_tensor(self._range_np[1], dtype=means.dtype, device=means.device)
        span = hi - lo
        m = torch.minimum(torch.maximum(means, lo + clip * span), hi - clip * span)
        return self._map("bias_for_mean", m)

    def invalid_codes(self, codes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Boolean mask (same shape as ``codes``, last axis = units) of codes outside the
        domains, NaN and infinities included; numpy in, numpy out (torch likewise).

        >>> from pgm_boltz.domains import DomainVector, BINARY, SPIN
        >>> DomainVector([BINARY, SPIN]).invalid_codes(np.array([[1.0, 0.0]])).tolist()
        [[False, True]]
        """
        if self._single is not None:
            return self._single.invalid_codes(codes)
        if torch.is_tensor(codes):
            out = torch.zeros(codes.shape, dtype=torch.bool, device=codes.device)
            for (fam, _), idx in zip(self._groups, self._idx(codes.device)[0]):
                out[..., idx] = fam.invalid_codes(codes.index_select(-1, idx))
            return out
        arr = np.asarray(codes, dtype=np.float64)
        out_np = np.zeros(arr.shape, dtype=bool)
        for fam, idx in self._groups:
            out_np[..., idx] = fam.invalid_codes(arr[..., idx])
        return out_np

    def kernel_arrays(self, rows: Sequence[int] | np.ndarray | None = None
                      ) -> tuple[np.ndarray, ...]:
        """``(kind, lo, step, K, V, LW)`` for numba kernels: int64 kinds, float64
        progressions, int64 level counts, and (n, Kmax) float64 value and log-weight
        tables (fresh arrays; padding 0 and -inf).

        The tables are filled for the units in ``rows`` (default: all) and for every
        value-table unit; arithmetic-progression units outside ``rows`` need none (their
        kernels use closed forms), so a unit with a billion levels costs nothing there.
        Tables over ``2**26`` entries are refused (IntractableError)."""
        n = len(self.domains)
        fill = np.ones(n, dtype=bool) if rows is None else np.zeros(n, dtype=bool)
        if rows is not None:
            fill[np.asarray(rows, dtype=np.int64)] = True
        kinds = np.array([ARITH if _is_arith(d) else d.kernel_spec().kind
                          for d in self.domains], dtype=np.int64)
        fill |= kinds != ARITH
        kmax = max((self.domains[i].levels for i in np.flatnonzero(fill)), default=1)
        if kmax * max(1, int(fill.sum())) > _TABLE_LIMIT:
            big = max(np.flatnonzero(fill), key=lambda i: self.domains[i].levels)
            raise IntractableError(
                f"a value table of {int(fill.sum())} units × {kmax:,} levels is too large "
                f"(unit {int(big)}: {self.domains[big].describe()}); units with that many "
                "levels work through their closed forms only (sampling, summing out), not "
                "where every level is listed (enumeration, marginals)")
        V = np.zeros((n, kmax))
        LW = np.full((n, kmax), -np.inf)
        specs: list[KernelSpec | None] = [self.domains[i].kernel_spec() if fill[i] else None
                                          for i in range(n)]
        for i, s in enumerate(specs):
            if s is not None:
                V[i, :len(s.values)] = s.values
                LW[i, :len(s.values)] = s.log_weights
        specs = [s if s is not None else _arith_spec(self.domains[i])
                 for i, s in enumerate(specs)]
        return (np.array([s.kind for s in specs], dtype=np.int64),
                np.array([s.lo for s in specs], dtype=np.float64),
                np.array([s.step for s in specs], dtype=np.float64),
                np.array([d.levels for d in self.domains], dtype=np.int64), V, LW)

    def all_arith(self) -> bool:
        """Whether every unit is an arithmetic progression with unit weights (the closed
        forms and the fast two-level kernels apply)."""
        return all(_is_arith(d) for d in self.domains)

    def kinds_array(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo, step, levels) as numpy arrays for kernels that take arithmetic-progression
        units only (:meth:`all_arith` must hold)."""
        kind, lo, step, K, _, _ = self.kernel_arrays(rows=[])
        return lo, step, K

    def log_size(self) -> float:
        """``sum_i log K_i``: the log of the number of joint states."""
        return float(sum(d.log_size() for d in self.domains))
