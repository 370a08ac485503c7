"""The domain seam: what a unit's values are, and the maths every engine asks of them.

A **domain** is the set of values ``s`` a unit takes with, for a local field ``f`` and
a quadratic self-term ``q`` (the unit's *precision*, 0 for units without one), the
conditional law ``P(s | f, q) ∝ w(s) exp(f s - q s^2 / 2)`` (``w`` = 1 for plain discrete
domains; a density for continuous domains such as ``gaussian``) and its log-normaliser
``A(f; q) = log sum_s w(s) exp(f s - q s^2 / 2)`` (an integral for continuous domains),
whose derivative in ``f`` is the conditional mean ``E[s | f, q]`` and in ``q`` is
``-E[s^2 | f, q] / 2``. Data use *codes* (e.g. spins ±1, levels 0..K-1, real values for
Gaussian units) that a domain maps to values and back.

Every conditional method takes ``q`` as an optional argument that broadcasts like ``f``
(``None``: no quadratic term). Units declared with ``precision=`` (multinary and finite
units, optionally; Gaussian units always) carry the term; :func:`parse_precision` reads
and checks the declaration.

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
value tables (any finite set of values with optional per-level log-weights) and
Gaussian units (closed forms). A new discrete domain that fits a value table needs no
kernel change; units with a quadratic term are given to kernels as value tables with the
log-weights ``-q v_k^2 / 2`` (:meth:`DomainVector.kernel_arrays`).

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
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import GraphError, IntractableError

__all__ = [
    "ARITH",
    "GAUSS",
    "TABLE",
    "Domain",
    "DomainVector",
    "Family",
    "KernelSpec",
    "domain_names",
    "parse_domain",
    "parse_precision",
    "register_domain",
]

#: numba kind of a domain whose values are ``lo + step k`` (closed-form maths)
ARITH = 0
#: numba kind of a domain given by a table of values and per-level log-weights
TABLE = 1
#: numba kind of a Gaussian unit (closed forms; its ``step`` array entry holds the
#: precision ``q``)
GAUSS = 2


@dataclass(frozen=True)
class KernelSpec:
    """How numba kernels see one unit: ``kind`` (:data:`ARITH`, :data:`TABLE` or
    :data:`GAUSS`), the progression ``lo``, ``step`` (ARITH), and the level table
    ``values`` with per-level log-weights ``log_weights`` (both length K, used by every
    discrete kind for enumeration; one dummy level for GAUSS)."""

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
    #: whether the unit takes finitely many values (engines that enumerate need this;
    #: continuous units have ``levels == 1`` by convention and no value table)
    discrete: ClassVar[bool] = True
    #: the precision a unit of this domain gets when its node declares none: ``None``
    #: (no quadratic term unless declared) or a number (the term is always present)
    default_precision: ClassVar[float | None] = None
    levels: int

    @property
    def precision_allowed(self) -> bool:
        """Whether a node of this domain may declare ``precision=`` (a learned quadratic
        self-term ``q s^2 / 2``); binary and spin units may not (``s^2`` is linear or
        constant there)."""
        return self.default_precision is not None

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
        """The smallest and largest value (``(-inf, inf)`` for continuous units; without
        listing the values where a closed form exists)."""
        if not self.discrete:
            return (-math.inf, math.inf)
        v = self.values()
        return float(v.min()), float(v.max())


class Family(ABC):
    """Vectorised maths of the units of one domain family, for fields ``f`` of shape
    (..., n) whose last axis runs over ``domains`` (all of this family), and optional
    precisions ``q`` broadcasting like ``f`` (``None``: no quadratic term)."""

    def __init__(self, domains: Sequence[Domain]) -> None:
        self.domains = list(domains)
        self.n = len(self.domains)

    @abstractmethod
    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """``A_i(f_i; q_i) = log sum_s w_i(s) exp(f_i s - q_i s^2 / 2)`` elementwise
        (differentiable in ``f`` and ``q``)."""

    @abstractmethod
    def mean(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``E[s_i | f_i, q_i]`` elementwise."""

    @abstractmethod
    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None,
               q: torch.Tensor | None = None) -> torch.Tensor:
        """A draw of each ``s_i`` from ``P(s_i | f_i, q_i)`` (values)."""

    @abstractmethod
    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data codes to values."""

    @abstractmethod
    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to data codes (exact levels)."""

    @abstractmethod
    def invalid_codes(self, codes: Any) -> Any:
        """Boolean mask of codes outside the domains (numpy in, numpy out; torch likewise)."""

    def bias_for_mean(self, means: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Fields ``f`` with ``E[s_i | f_i, q_i] = m_i`` (``means`` strictly inside the
        value range), by bisection on the increasing conditional mean; families with a
        closed form override it."""
        ranges = [d.value_range() for d in self.domains]
        span = torch.as_tensor([hi - lo for lo, hi in ranges], dtype=means.dtype,
                               device=means.device)
        reach = 60.0 / span + torch.zeros_like(means)
        if q is not None:  # the quadratic term pulls towards 0: widen by q max|v|
            vmax = torch.as_tensor([max(abs(lo), abs(hi)) for lo, hi in ranges],
                                   dtype=means.dtype, device=means.device)
            reach = reach + q.abs() * vmax
        a, b = -reach, reach.clone()
        for _ in range(100):
            mid = (a + b) / 2
            below = self.mean(mid, q) < means
            a = torch.where(below, mid, a)
            b = torch.where(below, b, mid)
        return (a + b) / 2

    def second_moment(self, f: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``E[s_i^2 | f_i, q_i]`` elementwise (by default from the value table)."""
        vals = _value_table(self.domains, f)
        logp = _table_log_probs(f, vals, self.domains, _quad_log_weights(vals, q))
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


def parse_precision(domain: Domain, attrs: Mapping, node: Any) -> float | None:
    """The initial precision ``q`` of a node's quadratic self-term ``q s^2 / 2``, or None
    when it has none: the node's ``precision`` attribute (``>= 0`` for discrete domains,
    ``> 0`` for continuous ones), else the domain's ``default_precision`` (1 for Gaussian
    units, None otherwise). GraphError names the node for a bad value or a domain that
    takes no precision (binary, spin).

    >>> from pgm_boltz.domains import multinary
    >>> parse_precision(multinary(5), {"precision": 2}, "x"), parse_precision(
    ...     multinary(5), {}, "x")
    (2.0, None)
    """
    value = attrs.get("precision")
    if value is None:
        return domain.default_precision
    if not domain.precision_allowed:
        raise GraphError(f"node {node!r} has precision={value!r} but domain "
                         f"{domain.describe()}, which takes no quadratic term; precision "
                         "applies to multinary, finite and gaussian units")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(float(value)):
        raise GraphError(f"node {node!r} has precision={value!r}; it must be a finite real "
                         "number")
    value = float(value)
    if value < 0 or (value == 0 and not domain.discrete):
        need = ">= 0" if domain.discrete else "> 0 (a Gaussian unit's variance is 1/precision)"
        raise GraphError(f"node {node!r} has precision={value!r}; it must be {need}")
    return value


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


def _quad_log_weights(vals: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor | None:
    """Per-level log-weights ``-q_i v_k^2 / 2`` (..., n, Kmax) of a value table (n, Kmax)
    (None without ``q``)."""
    if q is None:
        return None
    return -0.5 * torch.as_tensor(q, dtype=vals.dtype, device=vals.device).unsqueeze(-1) \
        * torch.nan_to_num(vals) ** 2


def _table_logits(f: torch.Tensor, vals: torch.Tensor, logw: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """``f_i v_k + c_ik`` (..., n, Kmax), -inf on padding (NaN entries of ``vals``)."""
    lw = f.unsqueeze(-1) * torch.nan_to_num(vals)
    if logw is not None:
        lw = lw + logw
    return lw.masked_fill(torch.isnan(vals), -math.inf)


def _table_log_probs(f: torch.Tensor, vals: torch.Tensor,
                     domains: Sequence[Domain], logw: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``log P(s_i = level k | f_i)`` (..., n, Kmax), -inf on padding."""
    lw = _table_logits(f, vals, logw)
    return lw - torch.logsumexp(lw, -1, keepdim=True)


def table_sample(logits: torch.Tensor, vals: torch.Tensor, levels: torch.Tensor,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Inverse-CDF draws from ``softmax(logits)`` over each unit's levels (one uniform per
    unit): ``logits`` (..., n, Kmax) with -inf padding, ``vals`` (n, Kmax) the values,
    ``levels`` (n,) the level counts. Returns values (...,  n)."""
    cdf = torch.softmax(logits, -1).cumsum(-1)
    shape = logits.shape[:-1]
    u = torch.rand(shape, dtype=logits.dtype, device=logits.device, generator=generator)
    k = (cdf < u.unsqueeze(-1)).sum(-1, keepdim=True)
    top = (levels.to(logits.device).long() - 1).expand(shape).unsqueeze(-1)
    k = torch.minimum(k, top)
    V = torch.nan_to_num(vals).expand((*shape, vals.shape[-1]))
    return torch.gather(V, -1, k).squeeze(-1)


#: entries of a value table at most (kernels' V and LW arrays)
_TABLE_LIMIT = 1 << 26
#: progressions with more levels than this get no table row unless one is asked for
_FILL_LEVELS = 1 << 16


def _is_arith(d: Domain) -> bool:
    """Whether ``d`` is an arithmetic progression with unit weights, asked without
    listing its values (``lo``/``step`` attributes), else from its kernel spec."""
    if hasattr(d, "lo") and hasattr(d, "step"):
        return True
    return d.kernel_spec().kind == ARITH


def _arith_spec(d: Domain) -> KernelSpec:
    """The spec of a unit without its value list where it is a progression."""
    if hasattr(d, "lo") and hasattr(d, "step"):
        return KernelSpec(ARITH, float(d.lo), float(d.step), (), ())  # type: ignore[attr-defined]
    return d.kernel_spec()


# ----------------------------------------------------------------------------------------
# many units of mixed domains
# ----------------------------------------------------------------------------------------


class DomainVector:
    """The domains of an ordered set of units, for vectorised conditionals.

    Units are grouped by family; each family computes on its own units, so a field
    tensor ``f`` of shape (..., n) and optional precisions ``q`` (broadcasting like
    ``f``; None for no quadratic term) give

    - ``log_normalizer(f, q)``: ``A_i(f_i; q_i)``,
    - ``mean(f, q)``: ``E[s_i | f_i, q_i]``, ``second_moment(f, q)``: ``E[s_i^2 | ...]``,
    - ``sample(f, generator, q)``: a draw of each ``s_i`` (values),
    - ``encode`` / ``decode``: codes ↔ values, ``invalid_codes``: a mask of bad codes,
    - ``bias_for_mean(m, q=q)``: fields whose conditional means are ``m``,
    - ``kernel_arrays(q)``: the per-unit arrays numba kernels take.

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

    def _map(self, fn: str, x: torch.Tensor, *args: Any, q: torch.Tensor | None = None
             ) -> torch.Tensor:
        if q is not None and not torch.is_tensor(q):
            q = torch.as_tensor(q, dtype=x.dtype, device=x.device)
        kw = {} if q is None else {"q": q}
        if self._single is not None:
            return getattr(self._single, fn)(x, *args, **kw)
        idxs, inverse = self._idx(x.device)
        parts = []
        for (fam, _), idx in zip(self._groups, idxs):
            kw_g = kw if q is None else {"q": q.index_select(-1, idx.to(q.device))}
            parts.append(getattr(fam, fn)(x.index_select(-1, idx), *args, **kw_g))
        return torch.cat(parts, -1).index_select(-1, inverse)

    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``A_i(f_i; q_i) = log sum_s w_i(s) exp(f_i s - q_i s^2 / 2)`` elementwise over
        the last axis (``q`` broadcasts like ``f``; None: no quadratic term)."""
        return self._map("log_normalizer", f, q=q)

    def mean(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``E[s_i | f_i, q_i]`` elementwise over the last axis."""
        return self._map("mean", f, q=q)

    def second_moment(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``E[s_i^2 | f_i, q_i]`` elementwise over the last axis."""
        return self._map("second_moment", f, q=q)

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None,
               q: torch.Tensor | None = None) -> torch.Tensor:
        """A draw of each ``s_i`` from ``P(s_i | f_i, q_i)`` (values, not codes)."""
        return self._map("sample", f, generator, q=q)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Data codes to values."""
        return self._map("encode", codes)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values to data codes (the inverse of :meth:`encode`), at exact levels."""
        return self._map("decode", values)

    def bias_for_mean(self, means: torch.Tensor, clip: float = 1e-3,
                      q: torch.Tensor | None = None) -> torch.Tensor:
        """Fields whose conditional means (with precisions ``q``) are ``means``: the biases
        of the independent-unit model with those means. Means of discrete units are first
        clipped ``clip`` (a fraction of each unit's value range) away from the ends, so
        the fields stay finite; continuous units are not clipped.

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
        finite = torch.isfinite(lo)
        if bool(finite.all()):
            span = hi - lo
            m = torch.minimum(torch.maximum(means, lo + clip * span), hi - clip * span)
        else:
            lo_f, hi_f = torch.where(finite, lo, 0.0), torch.where(finite, hi, 0.0)
            span = hi_f - lo_f
            m = torch.where(finite, torch.minimum(torch.maximum(means, lo_f + clip * span),
                                                  hi_f - clip * span), means)
        return self._map("bias_for_mean", m, q=q)

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

    def kernel_arrays(self, q: np.ndarray | None = None,
                      rows: Sequence[int] | np.ndarray | None = None
                      ) -> tuple[np.ndarray, ...]:
        """``(kind, lo, step, K, V, LW)`` for numba kernels: int64 kinds, float64
        progressions, int64 level counts, and (n, Kmax) float64 value and log-weight
        tables (fresh arrays; padding 0 and -inf).

        With precisions ``q`` (n,): discrete units with ``q_i != 0`` become value tables
        (kind :data:`TABLE`, their ``lo``/``step`` kept) with log-weights
        ``LW[i, k] = c_ik - q_i v_ik^2 / 2``, and Gaussian units (:data:`GAUSS`) hold
        ``q_i`` in ``step``.

        Every unit's row is filled except arithmetic progressions of more than 2^16
        levels (their kernels use closed forms, so a unit with a billion levels costs
        nothing), unless listed in ``rows`` (the enumerated units of an exact walk).
        Tables over ``2**26`` entries are refused (IntractableError).

        >>> import numpy as np
        >>> from pgm_boltz.domains import DomainVector, multinary
        >>> kind, lo, step, K, V, LW = DomainVector([multinary(3)]).kernel_arrays(
        ...     np.array([2.0]))
        >>> int(kind[0]) == TABLE, LW[0].tolist()
        (True, [0.0, -0.25, -1.0])
        """
        n = len(self.domains)
        qa = None if q is None else np.asarray(q, dtype=np.float64).reshape(-1)
        levels = np.array([d.levels for d in self.domains], dtype=np.int64)
        arith = np.array([_is_arith(d) for d in self.domains], dtype=bool)
        # every unit's row is filled, except progressions too long to list (their
        # kernels use closed forms) unless ``rows`` or a quadratic term asks for them
        fill = ~arith | (levels <= _FILL_LEVELS)
        if rows is not None:
            fill[np.asarray(rows, dtype=np.int64)] = True
        if qa is not None:
            fill |= qa != 0
        kmax = max((int(levels[i]) for i in np.flatnonzero(fill)), default=1) or 1
        if kmax * max(1, int(fill.sum())) > _TABLE_LIMIT:  # before listing any values
            big = max(np.flatnonzero(fill), key=lambda i: int(levels[i]))
            raise IntractableError(
                f"a value table of {int(fill.sum())} units × {kmax:,} levels is too large "
                f"(unit {int(big)}: {self.domains[big].describe()}); units with that many "
                "levels work through their closed forms only (sampling, summing out), not "
                "where every level is listed (enumeration, marginals)")
        specs: list[KernelSpec] = [self.domains[i].kernel_spec() if fill[i] else
                                   _arith_spec(self.domains[i]) for i in range(n)]
        V = np.zeros((n, kmax))
        LW = np.full((n, kmax), -np.inf)
        for i, s in enumerate(specs):
            if fill[i]:
                V[i, :len(s.values)] = s.values
                LW[i, :len(s.values)] = s.log_weights
        kind = np.array([s.kind for s in specs], dtype=np.int64)
        step = np.array([s.step for s in specs], dtype=np.float64)
        if qa is not None:
            gauss = kind == GAUSS
            step[gauss] = qa[gauss]
            quad = ~gauss & (qa != 0)
            if quad.any():
                LW[quad] = LW[quad] - 0.5 * qa[quad, None] * V[quad] ** 2
                kind[quad] = TABLE
        return (kind, np.array([s.lo for s in specs], dtype=np.float64), step, levels, V, LW)

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
