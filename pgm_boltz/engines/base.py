"""The engine seam: exact inference behind one protocol, chosen by cost.

An exact engine computes, for a pairwise model over a :class:`Problem` (units with
domains, edges between them) and parameters ``b`` (biases, batched over leading axes),
``w`` (one weight per edge) and optional precisions ``q`` (one per unit, 0 for units
without a quadratic self-term; ``quad=None`` for none at all),

    log Z(b, w, q) = log sum_x exp( sum_i b_i s_i + sum_(i,j) w_ij s_i s_j
                                    - sum_i q_i s_i^2 / 2 ),

(an integral over continuous units such as Gaussian ones) differentiably, so that
``d log Z / d b_i = <s_i>``, ``d log Z / d w_ij = <s_i s_j>`` and
``d log Z / d q_i = -<s_i^2> / 2`` (the exact moments, through autograd), plus exact
samples and single-node marginals. A batched ``b`` of shape (N, n) gives N
log-partition functions at once: the free energy of data rows is the log Z of the hidden
units with per-row biases.

Every method takes ``quad`` as a keyword (``None`` by default): callers pass it only for
models that have quadratic terms, and problems with continuous units always have it.

Engines first say what the work would cost (:meth:`ExactEngine.cost`: operations, the
largest table held, feasibility under the :class:`Limits`); the compiler asks every
registered engine and keeps the cheapest feasible one. A new engine is one module that
subclasses :class:`ExactEngine` and calls :func:`register_engine`.

>>> from pgm_boltz.domains import SPIN
>>> import numpy as np
>>> p = Problem([SPIN, SPIN], np.array([[0, 1]]))
>>> sorted(engine_names())
['elimination', 'enumeration']
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from ..domains import Domain, DomainVector
from ..errors import ArgumentError, IntractableError

__all__ = [
    "DEFAULT_MAX_EXACT_STATES",
    "DEFAULT_MAX_TABLE",
    "Cost",
    "ExactEngine",
    "Limits",
    "Problem",
    "check_quad",
    "engine_names",
    "get_engine",
    "register_engine",
]

#: Largest number of joint states the enumeration engine walks by default.
DEFAULT_MAX_EXACT_STATES = 2**22
#: Largest intermediate table (entries) an engine may hold by default (2^27 floats = 1 GiB).
DEFAULT_MAX_TABLE = 2**27


@dataclass(frozen=True)
class Limits:
    """Thresholds of exact work: ``max_exact_states`` (operations budget, in joint states
    of an enumeration or equivalent work) and ``max_table`` (entries of the largest table
    held at once)."""

    max_exact_states: int = DEFAULT_MAX_EXACT_STATES
    max_table: int = DEFAULT_MAX_TABLE


@dataclass
class Problem:
    """A pairwise model's structure: units with ``domains`` and ``edges`` (m, 2) between
    local indices ``0..n-1``; the parameters come separately."""

    domains: Sequence[Domain]
    edges: np.ndarray

    def __post_init__(self) -> None:
        self.domains = list(self.domains)
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)

    @property
    def n(self) -> int:
        return len(self.domains)

    @cached_property
    def dv(self) -> DomainVector:
        """The units' :class:`~pgm_boltz.domains.DomainVector`."""
        return DomainVector(self.domains)

    @cached_property
    def levels(self) -> np.ndarray:
        """K per unit (int64)."""
        return np.array([d.levels for d in self.domains], dtype=np.int64)

    def coupling_block(self, weight: torch.Tensor, rows: np.ndarray, cols: np.ndarray
                       ) -> torch.Tensor:
        """The couplings between node sets ``rows`` and ``cols`` as a dense
        (len(rows), len(cols)) matrix, built from the edge list (O(m + |rows| |cols|)
        memory, never n × n; differentiable in ``weight``).

        >>> from pgm_boltz.domains import BINARY
        >>> p = Problem([BINARY] * 3, np.array([[0, 1], [1, 2]]))
        >>> p.coupling_block(torch.tensor([2.0, 3.0]), np.array([1]), np.array([0, 2]))
        tensor([[2., 3.]])
        """
        rpos = np.full(self.n, -1)
        rpos[rows] = np.arange(len(rows))
        cpos = np.full(self.n, -1)
        cpos[cols] = np.arange(len(cols))
        out = torch.zeros(len(rows), len(cols), dtype=weight.dtype, device=weight.device)
        e = self.edges
        if not len(e):
            return out
        for a, b in ((0, 1), (1, 0)):  # each edge in both directions
            sel = np.flatnonzero((rpos[e[:, a]] >= 0) & (cpos[e[:, b]] >= 0))
            if len(sel):
                idx = torch.as_tensor(sel, device=weight.device)
                out = out.index_put((torch.as_tensor(rpos[e[sel, a]], device=weight.device),
                                     torch.as_tensor(cpos[e[sel, b]], device=weight.device)),
                                    weight[idx], accumulate=True)
        return out

    def coupling_matrix(self, weight: torch.Tensor) -> torch.Tensor:
        """Dense symmetric ``J`` (n × n, zero diagonal) from edge weights (differentiable)."""
        J = torch.zeros(self.n, self.n, dtype=weight.dtype, device=weight.device)
        if len(self.edges):
            u = torch.as_tensor(self.edges[:, 0], device=weight.device)
            v = torch.as_tensor(self.edges[:, 1], device=weight.device)
            J = J.index_put((u, v), weight).index_put((v, u), weight)
        return J


@dataclass
class Cost:
    """What one engine would spend on a problem.

    Attributes
    ----------
    engine: the engine's name.
    feasible: whether the work fits the limits.
    flops: estimated arithmetic operations of one ``log Z``.
    log2_table: log2 of the entries of the largest table held at once.
    summary: one line for ``str(plan)`` (what the engine would do).
    reason: why it is infeasible (empty when feasible).
    plan: the engine's own plan (e.g. which nodes to enumerate, an elimination order).
    """

    engine: str
    feasible: bool
    flops: float
    log2_table: float
    summary: str
    reason: str = ""
    plan: Any = field(default=None, repr=False)

    def require(self, what: str) -> None:
        """Raise IntractableError (naming ``what``, the cost and what to do) when
        infeasible."""
        if not self.feasible:
            raise IntractableError(
                f"{what} needs exact work that is too large: {self.summary}; {self.reason}. "
                "Use a Gibbs method (fit(method='pcd'), log_partition(method='ais')) or "
                "raise the thresholds in pb.compile (max_exact_states=...)")


class ExactEngine(ABC):
    """Exact inference on a :class:`Problem` (see the module text). Subclasses set
    ``name`` and implement :meth:`cost`, :meth:`log_partition` and :meth:`sample`;
    :meth:`moments` and :meth:`marginals` have generic defaults (autograd of the log
    partition function; clamping each node at each level)."""

    name: ClassVar[str]

    @abstractmethod
    def cost(self, problem: Problem, limits: Limits) -> Cost | None:
        """The cost of ``problem``'s exact work, or None when the engine cannot do it
        (e.g. a domain it cannot enumerate)."""

    @abstractmethod
    def log_partition(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                      weight: torch.Tensor, quad: torch.Tensor | None = None) -> torch.Tensor:
        """``log Z`` for biases (*batch, n), weights (m,) and precisions ``quad`` (n,) or
        None: shape (*batch,), differentiable in all three."""

    @abstractmethod
    def sample(self, cost: Cost, problem: Problem, bias: torch.Tensor, weight: torch.Tensor,
               n: int, generator: torch.Generator | None,
               quad: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` independent exact draws: joint values (n, problem.n), float64, CPU."""

    def moments(self, cost: Cost, problem: Problem, bias: torch.Tensor, weight: torch.Tensor,
                all_pairs: bool = False, quad: torch.Tensor | None = None
                ) -> tuple[float, np.ndarray, np.ndarray]:
        """``(log Z, <s_i>, <s_i s_j>)`` in float64: means (n,) and second moments
        (n, n) on every edge (on every pair with ``all_pairs``) and ``<s_i^2>`` on the
        diagonal.

        Default: the gradient of :meth:`log_partition` (the diagonal from the gradient in
        the precisions, ``<s_i^2> = -2 d log Z / d q_i``); other pairs of discrete units
        from the means of the model with node i clamped at each of its levels (pairs of
        two continuous units are left 0)."""
        b = bias.detach().double().requires_grad_(True)
        w = weight.detach().double().requires_grad_(True)
        q = (torch.zeros(problem.n, dtype=torch.float64) if quad is None
             else quad.detach().double().clone()).requires_grad_(True)
        logz = self.log_partition(cost, problem, b, w, quad=q)
        gb, gw, gq = torch.autograd.grad(logz, (b, w, q), allow_unused=True)
        mean = np.zeros(problem.n) if gb is None else gb.numpy().copy()
        second = np.zeros((problem.n, problem.n))
        if len(problem.edges):
            e = problem.edges
            gw_np = np.zeros(len(e)) if gw is None else gw.numpy()
            second[e[:, 0], e[:, 1]] = gw_np
            second[e[:, 1], e[:, 0]] = gw_np
        if all_pairs:
            marg_nodes = [i for i in range(problem.n) if problem.domains[i].discrete]
            marg = dict(zip(marg_nodes, self.marginals(cost, problem, bias, weight,
                                                        marg_nodes, quad=quad)))
            done = second != 0
            for i in marg_nodes:
                vals = problem.domains[i].values()
                cond = self._conditional_means(cost, problem, bias, weight, i, quad)
                row = (marg[i][:, None] * vals[:, None] * cond).sum(0)
                second[i, :] = np.where(done[i, :], second[i, :], row)
                second[:, i] = np.where(done[:, i], second[:, i], row)
        np.fill_diagonal(second, np.zeros(problem.n) if gq is None else -2.0 * gq.numpy())
        return float(logz.detach()), mean, second

    def clamped_cost(self, cost: Cost, problem: Problem, sub: Problem, i: int) -> Cost:
        """The cost (plan) of ``sub``, the problem with node ``i`` clamped and removed;
        by default planned afresh, without limits (the whole problem was feasible)."""
        out = self.cost(sub, Limits(2**62, 2**62))
        if out is None:
            raise IntractableError(f"engine {self.name!r} cannot plan the problem with node "
                                   f"{i} clamped")
        return out

    def _clamped(self, problem: Problem, bias: torch.Tensor, weight: torch.Tensor, i: int,
                 quad: torch.Tensor | None = None
                 ) -> tuple[Problem, np.ndarray, list[torch.Tensor], torch.Tensor]:
        """The problem with node i (discrete) removed, and for each of its levels ``v_k``
        the rest's biases ``b_rest + J[rest, i] v_k`` and the clamped term
        ``b_i v_k - q_i v_k^2 / 2``."""
        n = problem.n
        rest = np.setdiff1d(np.arange(n), [i])
        pos = np.full(n, -1)
        pos[rest] = np.arange(n - 1)
        e = problem.edges
        keep = (e[:, 0] != i) & (e[:, 1] != i) if len(e) else np.zeros(0, bool)
        sub = Problem([problem.domains[j] for j in rest], pos[e[keep]])
        b = bias.detach().double()
        J = problem.coupling_matrix(weight.detach().double())
        vals = problem.domains[i].values()
        biases = [b[rest] + J[rest, i] * float(v) for v in vals]
        v = torch.as_tensor(vals, dtype=torch.float64)
        const = b[i] * v
        if quad is not None:
            const = const - 0.5 * quad.detach().double()[i] * v * v
        return sub, rest, biases, const

    def marginals(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                  weight: torch.Tensor, nodes: Sequence[int] | None = None,
                  quad: torch.Tensor | None = None) -> list[np.ndarray]:
        """``P(s_i = level k)`` for every discrete node (or the listed ``nodes``, in that
        order; continuous nodes have no level marginals and are refused), from the log Z
        of the rest with node i clamped at each level:
        ``log Z_k = b_i v_k - q_i v_k^2 / 2 + log Z_rest(b_rest + J[rest, i] v_k)``."""
        out = []
        w = weight.detach().double()
        for i in _discrete_nodes(problem, nodes):
            if problem.n == 1:
                vals = torch.as_tensor(problem.domains[0].values(), dtype=torch.float64)
                lz = bias.detach().double()[0] * vals
                if quad is not None:
                    lz = lz - 0.5 * quad.detach().double()[0] * vals * vals
                out.append(torch.softmax(lz, 0).numpy())
                continue
            sub, rest, biases, const = self._clamped(problem, bias, weight, i, quad)
            keep = _kept_edges(problem, i)
            sub_cost = self.clamped_cost(cost, problem, sub, i)
            kw = {} if quad is None else {"quad": quad.detach().double()[rest]}
            with torch.no_grad():
                lz = torch.stack([self.log_partition(sub_cost, sub, b, w[keep], **kw)
                                  for b in biases]) + const
            out.append(torch.softmax(lz, 0).numpy())
        return out

    def _conditional_means(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                           weight: torch.Tensor, i: int, quad: torch.Tensor | None = None
                           ) -> np.ndarray:
        """``E[s_j | s_i = v_k]`` for every level k of node i and every node j (K_i, n)."""
        vals = problem.domains[i].values()
        out = np.zeros((len(vals), problem.n))
        out[:, i] = vals
        if problem.n == 1:
            return out
        sub, rest, biases, _ = self._clamped(problem, bias, weight, i, quad)
        keep = _kept_edges(problem, i)
        sub_cost = self.clamped_cost(cost, problem, sub, i)
        w = weight.detach().double()[keep]
        q_rest = None if quad is None else quad.detach().double()[rest]
        for k, b in enumerate(biases):
            _, mean, _ = self.moments(sub_cost, sub, b, w, quad=q_rest)
            out[k, rest] = mean
        return out


def _discrete_nodes(problem: Problem, nodes: Sequence[int] | None) -> list[int]:
    """``nodes`` (default all), refusing continuous ones (no level marginals)."""
    out = list(range(problem.n)) if nodes is None else [int(i) for i in nodes]
    for i in out:
        if not problem.domains[i].discrete:
            raise ArgumentError(f"node {i} is {problem.domains[i].describe()} (continuous): "
                                "it has no level marginals; use the moments instead")
    return out


def check_quad(problem: Problem, quad: torch.Tensor | None) -> None:
    """Refuse a problem with continuous units but no (positive) precisions for them."""
    if problem.dv.discrete:
        return
    cont = [i for i, d in enumerate(problem.domains) if not d.discrete]
    if quad is None:
        raise ArgumentError(f"the problem has continuous units ({len(cont)}, e.g. local "
                            f"node {cont[0]}) and needs their precisions: pass quad=")
    q = quad.detach()[torch.as_tensor(cont, device=quad.device)]
    if not bool((q > 0).all()):
        raise ArgumentError("continuous (Gaussian) units need positive precisions, got "
                            f"{q.min().item()!r}")


def _kept_edges(problem: Problem, i: int) -> torch.Tensor:
    e = problem.edges
    if not len(e):
        return torch.zeros(0, dtype=torch.long)
    return torch.as_tensor(np.flatnonzero((e[:, 0] != i) & (e[:, 1] != i)))


_ENGINES: dict[str, ExactEngine] = {}


def register_engine(engine: ExactEngine, *, replace: bool = False) -> None:
    """Add an exact engine (an instance) to the registry the compiler consults."""
    if engine.name in _ENGINES and not replace:
        raise ValueError(f"engine {engine.name!r} is registered already")
    _ENGINES[engine.name] = engine


def engine_names() -> list[str]:
    """Names of the registered exact engines."""
    return list(_ENGINES)


def get_engine(name: str) -> ExactEngine:
    """The registered engine called ``name``."""
    return _ENGINES[name]


def fmt_count(log2_count: float) -> str:
    """A count given by its log2, in words: ``65,536`` or ``2^80.0``."""
    if log2_count <= 60:
        return f"{2.0 ** log2_count:,.0f}"
    return f"2^{log2_count:.1f}"


def log2_states(domains: Sequence[Domain]) -> float:
    """``sum_i log2 K_i``: log2 of the number of joint states."""
    return float(sum(math.log2(d.levels) for d in domains))
