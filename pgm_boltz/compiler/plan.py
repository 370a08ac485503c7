"""The plan: colour classes, coupling storage, and the exact engine chosen by cost.

:func:`analyse` validates a declared graph, colours it, orders its edges so that the
edges between two colour classes form row-major runs, and asks every registered exact
engine (:mod:`pgm_boltz.engines`) for the cost of two problems: ``log Z`` of the whole
model, and the free energy's hidden part (the hidden units with their hidden–hidden
edges; none when hidden units only touch visible ones, which sums them out in closed
form). The cheapest feasible engine serves each; the engine the plan names is ``exact``
when log Z is feasible, else block Gibbs (bipartite) or chromatic Gibbs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from .. import engines as _engines
from ..engines import Cost, Limits, Problem
from ..errors import ArgumentError, GraphError, IntractableError
from .colour import colour
from .validate import Spec, validate

__all__ = ["DEFAULT_MAX_EXACT_STATES", "ENGINES", "STORAGES", "Plan", "analyse"]

#: Largest number of joint states the enumeration engine walks by default.
DEFAULT_MAX_EXACT_STATES = _engines.DEFAULT_MAX_EXACT_STATES
ENGINES = ("auto", "exact", "block-gibbs", "chromatic-gibbs")
STORAGES = ("auto", "dense", "sparse")


@dataclass
class Plan:
    """The compiler's choice, readable with ``print(model.plan)``.

    Attributes
    ----------
    engine: ``"exact"``, ``"block-gibbs"`` or ``"chromatic-gibbs"``.
    exact_engine: the exact engine that serves ``log Z`` (``"enumeration"``, ...), the
        cheapest feasible one; the cheapest infeasible one when none fits.
    bipartite: whether the graph is 2-colourable.
    blocks: node names per colour class (each class is one Gibbs block).
    reason: one sentence on why this engine.
    storage: ``"dense"`` or ``"sparse"`` couplings.
    exact: the chosen engine's :class:`~pgm_boltz.engines.Cost` for log Z;
        exact_costs: every engine's cost (the rejected ones included).
    hidden: the cost of the free energy's hidden part (None: closed form).
    requested_engine: the ``engine`` argument of ``compile``; limits: the thresholds.
    """

    engine: str
    bipartite: bool
    blocks: list[list[Hashable]]
    reason: str
    storage: str
    n_nodes: int
    n_edges: int
    n_visible: int
    limits: Limits
    exact: Cost | None
    exact_costs: list[Cost]
    hidden: Cost | None
    requested_engine: str = "auto"
    colouring: str = ""
    block_index: list[np.ndarray] = field(default_factory=list, repr=False)
    node_names: list[Hashable] = field(default_factory=list, repr=False)
    hidden_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64),
                                     repr=False)

    # -- exact work ------------------------------------------------------------------------
    @property
    def exact_engine(self) -> str | None:
        """The exact engine serving log Z (None when no engine can handle the model)."""
        return None if self.exact is None else self.exact.engine

    @property
    def exact_feasible(self) -> bool:
        """Whether exact log Z fits under the thresholds."""
        return self.exact is not None and self.exact.feasible

    @property
    def max_exact_states(self) -> int:
        """The enumeration threshold in force."""
        return self.limits.max_exact_states

    def _enum_plan(self, cost: Cost | None):
        return cost.plan if cost is not None and cost.engine == "enumeration" else None

    @property
    def enum_index(self) -> np.ndarray:
        """Nodes the enumeration engine enumerates for log Z (empty for other engines)."""
        p = self._enum_plan(self.exact)
        return np.zeros(0, np.int64) if p is None else p.enum

    @property
    def enumerated(self) -> list[Hashable]:
        """Names of :attr:`enum_index` (the rest is summed out in closed form)."""
        return [self.node_names[i] for i in self.enum_index]

    @property
    def hidden_enum_index(self) -> np.ndarray:
        """Hidden nodes enumerated per data row for the free energy (enumeration)."""
        p = self._enum_plan(self.hidden)
        return np.zeros(0, np.int64) if p is None else self.hidden_index[p.enum]

    @property
    def hidden_enumerated(self) -> list[Hashable]:
        """Names of :attr:`hidden_enum_index`."""
        return [self.node_names[i] for i in self.hidden_enum_index]

    @property
    def log2_exact_states(self) -> float:
        """log2 of the states the enumeration of log Z walks (a bound when too large)."""
        costs = [c for c in self.exact_costs if c.engine == "enumeration"]
        return costs[0].plan.log2_states if costs else math.inf

    @property
    def exact_states(self) -> float:
        """The number of states an enumeration of log Z walks."""
        return 2.0 ** self.log2_exact_states

    def require_exact(self, what: str) -> None:
        """Raise IntractableError when no exact engine can do log Z under the thresholds
        (the message gives every engine's cost and why it is refused)."""
        if self.exact is None:
            raise IntractableError(f"{what} needs exact inference, and no exact engine can "
                                   "handle this model's domains; use a Gibbs method")
        if not self.exact.feasible:
            raise IntractableError(f"{what} needs exact work that is too large: "
                                   f"{_refusals(self.exact_costs)}. Use a Gibbs method "
                                   "(fit(method='pcd'), log_partition(method='ais')) or raise "
                                   "the thresholds in pb.compile (max_exact_states=...)")

    def require_exact_free_energy(self, what: str) -> None:
        """Raise IntractableError when the free energy's hidden part is infeasible."""
        if self.hidden is not None:
            self.hidden.require(what)

    def __str__(self) -> str:
        exact_line = "  exact work: "
        if self.exact is None:
            exact_line += "no exact engine handles these domains"
        else:
            exact_line += (f"{self.exact.engine}: {self.exact.summary} "
                           f"(threshold {self.limits.max_exact_states:,} states; tables up "
                           f"to {self.limits.max_table:,} entries)")
            if not self.exact.feasible:
                exact_line += f" — {self.exact.reason}"
        lines = [
            f"Plan: engine={self.engine}"
            + (f" ({self.exact_engine})" if self.engine == "exact" else ""),
            f"  graph: {self.n_nodes} nodes ({self.n_visible} visible, "
            f"{self.n_nodes - self.n_visible} hidden), {self.n_edges} edges, "
            f"{'bipartite' if self.bipartite else 'not bipartite'}",
            f"  blocks: {len(self.blocks)} colour classes of sizes "
            f"{[len(b) for b in self.blocks]}"
            + (f" ({self.colouring})" if self.colouring else ""),
            f"  couplings: {self.storage} storage",
            exact_line,
        ]
        for c in self.exact_costs:
            if self.exact is not None and c is not self.exact:
                why = "infeasible: " + c.reason if not c.feasible else "costlier"
                lines.append(f"    rejected {c.engine}: {c.summary} ({why})")
        if self.hidden is not None:
            lines.append(f"  free energy: hidden units coupled among themselves; "
                         f"{self.hidden.engine}: {self.hidden.summary} per data row")
        lines.append(f"  why: {self.reason}")
        return "\n".join(lines)


def _refusals(costs: list[Cost]) -> str:
    """Every engine's cost and reason, for messages."""
    return "; ".join(f"{c.engine} would {c.summary} ({c.reason})" for c in costs)


def _order_edges(spec: Spec, block_of: np.ndarray, pos_in_block: np.ndarray) -> np.ndarray:
    """A permutation putting edges in (block_u, block_v, pos_u, pos_v) row-major order
    (and each edge oriented from the lower block, or the lower index within a block)."""
    if len(spec.edges) == 0:
        return np.zeros(0, dtype=np.int64)
    e = spec.edges.copy()
    swap = (block_of[e[:, 0]] > block_of[e[:, 1]]) | (
        (block_of[e[:, 0]] == block_of[e[:, 1]]) & (e[:, 0] > e[:, 1]))
    e[swap] = e[swap][:, ::-1]
    spec.edges = e
    keys = (pos_in_block[e[:, 1]], pos_in_block[e[:, 0]], block_of[e[:, 1]],
            block_of[e[:, 0]])
    return np.lexsort(keys)


def _choose(problem: Problem, limits: Limits) -> tuple[Cost | None, list[Cost]]:
    """Every engine's cost, and the cheapest feasible one (else the cheapest)."""
    costs = []
    for name in _engines.engine_names():
        c = _engines.get_engine(name).cost(problem, limits)
        if c is not None:
            costs.append(c)
    if not costs:
        return None, costs
    feasible = [c for c in costs if c.feasible]
    pool = feasible or costs
    return min(pool, key=lambda c: (c.flops, c.log2_table)), costs


def hidden_problem(spec: Spec) -> tuple[Problem | None, np.ndarray]:
    """The hidden units and their hidden–hidden edges (local indices), or None when no
    two hidden units are coupled (then they are summed out in closed form)."""
    hidden = np.asarray(spec.hidden, dtype=np.int64)
    if len(hidden) == 0 or len(spec.edges) == 0:
        return None, hidden
    pos = np.full(len(spec.nodes), -1)
    pos[hidden] = np.arange(len(hidden))
    e = spec.edges
    both = (pos[e[:, 0]] >= 0) & (pos[e[:, 1]] >= 0)
    if not both.any():
        return None, hidden
    return Problem([spec.domains[i] for i in hidden], pos[e[both]]), hidden


def _auto_storage(n: int, edges: np.ndarray, block_of: np.ndarray,
                  block_sizes: list[int]) -> str:
    """``"sparse"`` when the graph is large (over 1024 nodes) and its edges fill less
    than 1/16 of the dense blocks that would hold them, else ``"dense"``.

    Dense storage keeps one ``|B_p| × |B_q|`` matrix per pair of colour classes joined by
    an edge, so the comparison is with those blocks' entries, not with ``n^2``: an RBM's
    complete visible-hidden block is dense however few hidden units it has.

    >>> import numpy as np
    >>> rbm = np.array([(i, 3000 + j) for i in range(3000) for j in range(100)])
    >>> _auto_storage(3100, rbm, np.repeat([0, 1], [3000, 100]), [3000, 100])
    'dense'
    >>> ring = np.array([(i, (i + 1) % 4000) for i in range(4000)])
    >>> _auto_storage(4000, ring, np.arange(4000) % 2, [2000, 2000])
    'sparse'
    """
    if n <= 1024 or len(edges) == 0:
        return "dense"
    pairs = {tuple(sorted(p)) for p in np.unique(
        np.stack([block_of[edges[:, 0]], block_of[edges[:, 1]]], 1), axis=0).tolist()}
    entries = sum(block_sizes[p] * block_sizes[q] for p, q in pairs)
    return "sparse" if len(edges) < entries / 16 else "dense"


def analyse(G: object, engine: str = "auto", storage: str = "auto",
            max_exact_states: int = DEFAULT_MAX_EXACT_STATES) -> tuple[Spec, Plan]:
    """Validate, colour and cost a declared graph, and choose its engine.

    Parameters
    ----------
    G: the declared ``networkx.Graph``.
    engine: ``"auto"`` (exact when some exact engine fits the thresholds, else
        block-gibbs for bipartite graphs, else chromatic-gibbs), or one of those forced.
    storage: ``"auto"`` (dense unless the graph is large and its colour-class blocks
        are sparse: :func:`_auto_storage`), ``"dense"``, ``"sparse"``.
    max_exact_states: the threshold of exact work (enumerated states).

    >>> import pgm_boltz as pb
    >>> spec, plan = analyse(pb.graphs.rbm(6, 3))
    >>> plan.engine, plan.exact_engine, plan.bipartite, len(plan.enumerated)
    ('exact', 'enumeration', True, 3)
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ArgumentError(f"unknown engine {engine!r}; use one of {ENGINES}")
    if not isinstance(storage, str) or storage not in STORAGES:
        raise ArgumentError(f"unknown storage {storage!r}; use one of {STORAGES}")
    if isinstance(max_exact_states, bool) or not isinstance(
            max_exact_states, (int, np.integer)) or max_exact_states < 1:
        raise ArgumentError(f"max_exact_states must be a positive integer, got "
                            f"{max_exact_states!r}")
    limits = Limits(max_exact_states=int(max_exact_states))
    spec = validate(G)
    n, m = len(spec.nodes), len(spec.edges)
    bipartite, blocks_idx, colouring = colour(spec.graph, spec)  # the validated copy
    block_of = np.zeros(n, dtype=np.int64)
    pos_in_block = np.zeros(n, dtype=np.int64)
    for b, idx in enumerate(blocks_idx):
        block_of[idx] = b
        pos_in_block[idx] = np.arange(len(idx))
    order = _order_edges(spec, block_of, pos_in_block)
    spec.edges = spec.edges[order]
    spec.init_weight = spec.init_weight[order]

    exact, costs = _choose(Problem(spec.domains, spec.edges), limits)
    hp, hidden_idx = hidden_problem(spec)
    hidden = _choose(hp, limits)[0] if hp is not None else None
    feasible = exact is not None and exact.feasible
    if storage == "auto":
        storage = _auto_storage(n, spec.edges, block_of, [len(b) for b in blocks_idx])
    work = exact.summary if exact is not None else "no exact engine"
    if engine == "auto":
        if feasible:
            assert exact is not None
            chosen = "exact"
            reason = (f"exact work fits the thresholds ({exact.engine}: {work}): exact "
                      "likelihood and gradients")
        elif bipartite:
            chosen = "block-gibbs"
            reason = (f"exact work ({work}) is over the threshold; the graph is bipartite, "
                      "so two blocks are sampled alternately")
        else:
            chosen = "chromatic-gibbs"
            reason = (f"exact work ({work}) is over the threshold and the graph is not "
                      f"bipartite: {len(blocks_idx)} colour blocks")
    else:
        chosen = engine
        if engine == "exact" and not feasible:
            raise IntractableError(
                "engine='exact' needs exact work that is too large: "
                + (_refusals(costs) if costs else "no exact engine handles these domains")
                + "; use engine='auto' (Gibbs) or raise max_exact_states")
        if engine == "block-gibbs" and not bipartite:
            raise GraphError(
                "engine='block-gibbs' needs a bipartite graph, and this one has an odd "
                "cycle; use engine='chromatic-gibbs'")
        reason = f"engine {engine!r} requested"
        if engine != "exact":
            reason += (f"; exact work would be: {work}"
                       + (" (still usable as an oracle)" if feasible else ""))
    names = list(spec.nodes)
    plan = Plan(
        engine=chosen, bipartite=bipartite,
        blocks=[[names[i] for i in b] for b in blocks_idx], reason=reason,
        storage=storage, n_nodes=n, n_edges=m, n_visible=len(spec.visible),
        limits=limits, exact=exact, exact_costs=costs, hidden=hidden,
        requested_engine=engine, colouring=colouring,
        block_index=[np.asarray(b, dtype=np.int64) for b in blocks_idx],
        node_names=names, hidden_index=hidden_idx,
    )
    return spec, plan
