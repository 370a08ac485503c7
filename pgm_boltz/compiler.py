"""Compiler: validate a declared graph, colour it, size the exact work, choose an engine.

:func:`analyse` turns a ``networkx.Graph`` into a :class:`Spec` (nodes, domains, edges in
a canonical order, initial values) and a :class:`Plan` (the engine and why).
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Hashable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .domains import Domain, parse_domain
from .errors import GraphError, IntractableError

__all__ = ["DEFAULT_MAX_EXACT_STATES", "Plan", "Spec", "analyse"]

#: Largest number of joint states the exact engine enumerates by default.
DEFAULT_MAX_EXACT_STATES = 2**22
ENGINES = ("auto", "exact", "block-gibbs", "chromatic-gibbs")
STORAGES = ("auto", "dense", "sparse")


@dataclass
class Spec:
    """What a graph declares, in the canonical order the model uses.

    ``nodes`` keeps the graph's node order; ``edges`` are index pairs ``(i, j)`` ordered
    so that the edges between two Gibbs blocks form row-major runs.
    """

    nodes: list[Hashable]
    roles: list[str]
    domains: list[Domain]
    edges: np.ndarray  # (m, 2) int64, node indices
    init_bias: np.ndarray  # (n,) float64, NaN where not declared
    init_weight: np.ndarray  # (m,) float64, NaN where not declared
    graph: nx.Graph  # a copy of the declared graph (attributes as given)

    @property
    def visible(self) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == "visible"]

    @property
    def hidden(self) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == "hidden"]


@dataclass
class Plan:
    """The compiler's choice, readable with ``print(model.plan)``.

    Attributes
    ----------
    engine: ``"exact"``, ``"block-gibbs"`` or ``"chromatic-gibbs"``.
    bipartite: whether the graph is 2-colourable.
    blocks: node names per colour class (each class is one Gibbs block).
    reason: one sentence on why this engine.
    storage: ``"dense"`` or ``"sparse"`` couplings.
    enumerated: nodes the exact engine enumerates for log Z (the rest are summed out).
    hidden_enumerated: hidden nodes enumerated per data row for log P(v).
    log2_exact_states: log2 of the number of states for exact log Z.
    max_exact_states: the threshold in force.
    """

    engine: str
    bipartite: bool
    blocks: list[list[Hashable]]
    reason: str
    storage: str
    enumerated: list[Hashable]
    hidden_enumerated: list[Hashable]
    log2_exact_states: float
    max_exact_states: int
    n_nodes: int
    n_edges: int
    n_visible: int
    colouring: str = ""
    exact_bound_only: bool = False
    block_index: list[np.ndarray] = field(default_factory=list, repr=False)
    enum_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    hidden_enum_index: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def exact_feasible(self) -> bool:
        """Whether exact log Z fits under the threshold."""
        return self.log2_exact_states <= math.log2(self.max_exact_states) + 1e-9

    @property
    def exact_states(self) -> float:
        """The number of states exact log Z enumerates."""
        return 2.0 ** self.log2_exact_states

    def require_exact(self, what: str) -> None:
        """Raise IntractableError when exact work is over the threshold."""
        if not self.exact_feasible:
            raise IntractableError(
                f"{what} needs exact enumeration of {_fmt_states(self.log2_exact_states)} "
                f"states ({len(self.enumerated)} nodes), over the threshold of "
                f"{self.max_exact_states:,}; use a Gibbs method (e.g. fit(method='pcd'), "
                "log_partition(method='ais')) or raise max_exact_states in pb.compile"
            )

    def __str__(self) -> str:
        lines = [
            f"Plan: engine={self.engine}",
            f"  graph: {self.n_nodes} nodes ({self.n_visible} visible, "
            f"{self.n_nodes - self.n_visible} hidden), {self.n_edges} edges, "
            f"{'bipartite' if self.bipartite else 'not bipartite'}",
            f"  blocks: {len(self.blocks)} colour classes of sizes "
            f"{[len(b) for b in self.blocks]}"
            + (f" ({self.colouring})" if self.colouring else ""),
            f"  couplings: {self.storage} storage",
            (f"  exact work: at least {_fmt_states(self.log2_exact_states)} states for "
             f"log Z (a matching bound; far over the threshold of "
             f"{self.max_exact_states:,}, so no cover was searched)"
             if self.exact_bound_only else
             f"  exact work: enumerate {len(self.enumerated)} nodes = "
             f"{_fmt_states(self.log2_exact_states)} states for log Z "
             f"(threshold {self.max_exact_states:,}); "
             f"{self.n_nodes - len(self.enumerated)} nodes summed out in closed form"),
            f"  why: {self.reason}",
        ]
        return "\n".join(lines)


def _fmt_states(log2_states: float) -> str:
    if log2_states <= 60:
        return f"{2.0 ** log2_states:,.0f}"
    return f"2^{log2_states:.1f}"


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _finite_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GraphError(f"{what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise GraphError(f"{what} must be finite, got {value!r}")
    return value


def validate(G: object) -> Spec:
    """Check a declared graph and return its :class:`Spec` (GraphError names the fault).

    >>> import pgm_boltz as pb
    >>> spec = validate(pb.graphs.rbm(2, 1))
    >>> spec.roles
    ['visible', 'visible', 'hidden']
    """
    if not isinstance(G, nx.Graph):
        raise GraphError(
            f"expected a networkx.Graph, got {type(G).__name__}; build one with "
            "networkx or pgm_boltz.graphs")
    if G.is_directed():
        raise GraphError("the graph is directed; Boltzmann machines are undirected: "
                         "pass G.to_undirected()")
    if G.is_multigraph():
        raise GraphError("multigraphs are not supported: merge parallel edges into one "
                         "weighted edge (nx.Graph(G))")
    if G.number_of_nodes() == 0:
        raise GraphError("the graph has no nodes")
    loops = list(nx.selfloop_edges(G))
    if loops:
        raise GraphError(f"self-loop on node {loops[0][0]!r}: remove it "
                         "(a unit's self-coupling is its bias)")
    nodes = list(G.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    roles, domains = [], []
    bias = np.full(len(nodes), np.nan)
    for i, n in enumerate(nodes):
        attrs = G.nodes[n]
        role = attrs.get("role")
        if role is None:
            raise GraphError(f"node {n!r} has no 'role' attribute; set role='visible' "
                             "or role='hidden'")
        if role not in ("visible", "hidden"):
            raise GraphError(f"node {n!r} has unknown role {role!r}; use 'visible' or "
                             "'hidden'")
        dom_name = attrs.get("domain")
        levels = attrs.get("levels")
        if levels is not None and dom_name != "multinary":
            raise GraphError(f"node {n!r} has levels={levels!r} but domain "
                             f"{dom_name or 'binary'!r}; levels applies to "
                             "domain='multinary' only")
        domains.append(parse_domain(dom_name, levels, n))
        roles.append(role)
        if attrs.get("bias") is not None:
            bias[i] = _finite_number(attrs["bias"], f"bias of node {n!r}")
    if "visible" not in roles:
        raise GraphError("the graph has no visible node: give at least one node "
                         "role='visible'")
    edges, weights = [], []
    for u, v, w in G.edges(data="weight"):
        i, j = index[u], index[v]
        edges.append((min(i, j), max(i, j)))
        weights.append(np.nan if w is None else
                       _finite_number(w, f"weight of edge ({u!r}, {v!r})"))
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return Spec(nodes, roles, domains, e, bias, np.array(weights, dtype=np.float64),
                _copy_graph(G))


def _copy_graph(G: nx.Graph) -> nx.Graph:
    """``G.copy()`` (attribute dicts copied one level deep), built directly for a plain
    ``nx.Graph``: about 4x faster than networkx's ``add_edges_from`` on large RBMs.

    >>> H = _copy_graph(nx.path_graph(3))
    >>> sorted(H.edges), H.adj[0][1] is H.adj[1][0]
    ([(0, 1), (1, 2)], True)
    """
    if type(G) is not nx.Graph:
        return G.copy()
    H = nx.Graph()
    H.graph.update(G.graph)
    node = H._node
    adj = H._adj
    for n, d in G._node.items():
        node[n] = d.copy()
        adj[n] = {}
    for u, nbrs in G._adj.items():
        au = adj[u]
        for v, d in nbrs.items():
            if v not in au:
                dd = d.copy()
                au[v] = dd
                adj[v][u] = dd
    return H


# ---------------------------------------------------------------------------------------
# colouring
# ---------------------------------------------------------------------------------------


def colour(G: nx.Graph, spec: Spec) -> tuple[bool, list[list[int]], str]:
    """Colour classes (node indices) of the graph: 2 when bipartite, greedy otherwise.

    In a bipartite graph each connected component is oriented so that its visible
    nodes fall in class 0 where possible (an RBM's classes are visible / hidden).
    """
    index = {n: i for i, n in enumerate(spec.nodes)}
    n = len(spec.nodes)
    if G.number_of_edges() == 0:
        return True, [list(range(n))], "no edges: one block"
    try:  # one BFS 2-colouring of the whole graph (raises on an odd cycle)
        c_all = nx.bipartite.color(G)
    except nx.NetworkXError:
        c_all = None
    if c_all is not None:
        col = np.zeros(n, dtype=np.int64)
        for comp in nx.connected_components(G):
            c = c_all
            vis_in_1 = sum(1 for u in comp if c[u] == 1 and spec.roles[index[u]] == "visible")
            vis_in_0 = sum(1 for u in comp if c[u] == 0 and spec.roles[index[u]] == "visible")
            flip = vis_in_1 > vis_in_0
            for u in comp:
                col[index[u]] = c[u] ^ int(flip)
        blocks = [list(np.flatnonzero(col == k)) for k in (0, 1)]
        return True, [b for b in blocks if b], "bipartite 2-colouring"
    best: dict | None = None
    best_name = ""
    strategies = ["DSATUR", "largest_first", "smallest_last"]
    if n <= 300:  # networkx's independent_set strategy is quadratic or worse
        strategies.append("independent_set")
    for strategy in strategies:
        c = _dsatur(G) if strategy == "DSATUR" else nx.greedy_color(G, strategy=strategy)
        if best is None or max(c.values()) < max(best.values()):
            best, best_name = c, strategy
    assert best is not None
    k = max(best.values()) + 1
    blocks = [[] for _ in range(k)]
    for u in spec.nodes:
        blocks[best[u]].append(index[u])
    return False, blocks, f"greedy colouring ({best_name}), {k} colours"


def _dsatur(G: nx.Graph) -> dict:
    """DSATUR greedy colouring (Brelaz): colour next the node whose neighbours already
    use the most colours (ties: highest degree), with the smallest free colour.

    A heap with lazy entries makes it O((n + m) log n), unlike networkx's O(n^2) version;
    it 3-colours triangular lattices and usually beats the static orders on sparse graphs.
    """
    nodes = list(G.nodes)
    pos = {u: i for i, u in enumerate(nodes)}
    adj = [[pos[v] for v in G[u]] for u in nodes]
    colour = [-1] * len(nodes)
    sat: list[set] = [set() for _ in nodes]
    heap = [(0, -len(a), i) for i, a in enumerate(adj)]
    heapq.heapify(heap)
    while heap:
        s, _, u = heapq.heappop(heap)
        if colour[u] >= 0 or -s != len(sat[u]):
            continue  # stale entry
        c = 0
        while c in sat[u]:
            c += 1
        colour[u] = c
        for v in adj[u]:
            if colour[v] < 0 and c not in sat[v]:
                sat[v].add(c)
                heapq.heappush(heap, (-len(sat[v]), -len(adj[v]), v))
    return {u: colour[i] for i, u in enumerate(nodes)}


# ---------------------------------------------------------------------------------------
# sizing the exact work
# ---------------------------------------------------------------------------------------


def _weighted_independent_set(G: nx.Graph, weight: dict) -> set:
    """A large-weight independent set: exact (min-cut) on bipartite graphs, greedy otherwise."""
    if G.number_of_nodes() == 0:
        return set()
    if G.number_of_edges() == 0:
        return set(G.nodes)
    best: set = set()
    if nx.is_bipartite(G) and G.number_of_edges() <= 200_000:
        # max-weight independent set = complement of min-weight vertex cover (Koenig)
        F = nx.DiGraph()
        for comp in nx.connected_components(G):
            sub = G.subgraph(comp)
            c = nx.bipartite.color(sub)
            for u in comp:
                if c[u] == 0:
                    F.add_edge("_s", ("n", u), capacity=weight[u])
                else:
                    F.add_edge(("n", u), "_t", capacity=weight[u])
            for u, v in sub.edges:
                a, b = (u, v) if c[u] == 0 else (v, u)
                F.add_edge(("n", a), ("n", b))  # infinite capacity
        _, (reach, _) = nx.minimum_cut(F, "_s", "_t")
        cover = set()
        for u in G.nodes:
            if G.degree(u) == 0:
                continue
            on_source_side = ("n", u) in reach
            # source-side nodes of class 1 and sink-side nodes of class 0 are cut
            if F.has_edge("_s", ("n", u)):
                if not on_source_side:
                    cover.add(u)
            elif on_source_side:
                cover.add(u)
        best = set(G.nodes) - cover
    # greedy: repeatedly take the node with the best weight per neighbourhood size
    H = G.copy()
    greedy = set()
    while H.number_of_nodes():
        u = max(H.nodes, key=lambda x: (weight[x] / (H.degree(x) + 1), -H.degree(x)))
        greedy.add(u)
        H.remove_nodes_from([*H.neighbors(u), u])
    if sum(weight[u] for u in greedy) > sum(weight[u] for u in best):
        best = greedy
    return best


def _cover_lower_bound(G: nx.Graph, weight: dict) -> float:
    """A cheap lower bound on the min-weight vertex cover: a greedy maximal matching."""
    used = set()
    total = 0.0
    for u, v in G.edges:
        if u not in used and v not in used:
            used.update((u, v))
            total += min(weight[u], weight[v])
    return total


def _cover_lower_bound_edges(edges: np.ndarray, weight: dict) -> float:
    """:func:`_cover_lower_bound` straight from an (m, 2) edge array (no graph built)."""
    used: set = set()
    total = 0.0
    for u, v in edges.tolist():
        if u not in used and v not in used:
            used.update((u, v))
            total += min(weight[u], weight[v])
    return total


def size_exact(spec: Spec, max_states: int) -> tuple[list[int], list[int], float]:
    """The nodes to enumerate for log Z and (hidden only) for log P(v), and log2 states.

    A node is summed out in closed form when all its neighbours are enumerated, so the
    summed-out nodes form an independent set; the enumerated ones are its complement.
    """
    n = len(spec.nodes)
    weight = {i: math.log2(spec.domains[i].levels) for i in range(n)}
    limit = math.log2(max_states)
    bound = _cover_lower_bound_edges(spec.edges, weight)
    too_large = bound > limit + 20 or n > 20_000
    G = nx.Graph()
    G.add_nodes_from(range(n))
    if too_large:
        enum = list(range(n))  # far too large: skip the search, report the bound
        log2_states = max(bound, 0.0)
        hidden = set(spec.hidden)
        G.add_edges_from((int(i), int(j)) for i, j in spec.edges
                         if i in hidden and j in hidden)
    else:
        G.add_edges_from(map(tuple, spec.edges.tolist()))
        free = _weighted_independent_set(G, weight)
        enum = [i for i in range(n) if i not in free]
        log2_states = sum(weight[i] for i in enum)
    hidden = spec.hidden
    Gh = G.subgraph(hidden)
    if not hidden:
        h_enum: list[int] = []
    elif _cover_lower_bound(Gh, weight) > limit + 20 or len(hidden) > 20_000:
        h_enum = list(hidden)
    else:
        free_h = _weighted_independent_set(Gh, weight)
        h_enum = [i for i in hidden if i not in free_h]
    return enum, h_enum, log2_states


# ---------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------


def _order_edges(spec: Spec, block_of: np.ndarray, pos_in_block: np.ndarray) -> np.ndarray:
    """A permutation putting edges in (block_u, block_v, pos_u, pos_v) row-major order."""
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


def analyse(G: object, engine: str = "auto", storage: str = "auto",
            max_exact_states: int = DEFAULT_MAX_EXACT_STATES) -> tuple[Spec, Plan]:
    """Validate, colour and size a declared graph, and choose its engine.

    Parameters
    ----------
    G: the declared ``networkx.Graph``.
    engine: ``"auto"`` (exact under the threshold, else block-gibbs for bipartite
        graphs, else chromatic-gibbs), or one of those three forced.
    storage: ``"auto"`` (dense unless the graph is large and sparse), ``"dense"``,
        ``"sparse"``.
    max_exact_states: the exact engine's threshold on enumerated states.

    >>> import pgm_boltz as pb
    >>> spec, plan = analyse(pb.graphs.rbm(6, 3))
    >>> plan.engine, plan.bipartite, len(plan.enumerated)
    ('exact', True, 3)
    """
    if engine not in ENGINES:
        raise GraphError(f"unknown engine {engine!r}; use one of {ENGINES}")
    if storage not in STORAGES:
        raise GraphError(f"unknown storage {storage!r}; use one of {STORAGES}")
    if isinstance(max_exact_states, bool) or not isinstance(max_exact_states, int) or \
            max_exact_states < 1:
        raise GraphError(f"max_exact_states must be a positive integer, got "
                         f"{max_exact_states!r}")
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

    enum, h_enum, log2_states = size_exact(spec, max_exact_states)
    feasible = log2_states <= math.log2(max_exact_states) + 1e-9
    if storage == "auto":
        storage = "sparse" if (n > 1024 and m < n * n / 16) else "dense"
    states_txt = _fmt_states(log2_states)
    if engine == "auto":
        if feasible:
            chosen = "exact"
            reason = (f"exact log Z needs {states_txt} states, under the threshold "
                      f"({max_exact_states:,}): exact likelihood and gradients")
        elif bipartite:
            chosen = "block-gibbs"
            reason = (f"exact work ({states_txt} states) is over the threshold; the graph "
                      "is bipartite, so two blocks are sampled alternately")
        else:
            chosen = "chromatic-gibbs"
            reason = (f"exact work ({states_txt} states) is over the threshold and the "
                      f"graph is not bipartite: {len(blocks_idx)} colour blocks")
    else:
        chosen = engine
        if engine == "exact" and not feasible:
            raise IntractableError(
                f"engine='exact' needs {states_txt} states ({len(enum)} enumerated nodes), "
                f"over the threshold of {max_exact_states:,}; use engine='auto' (Gibbs) or "
                "raise max_exact_states")
        if engine == "block-gibbs" and not bipartite:
            raise GraphError(
                "engine='block-gibbs' needs a bipartite graph, and this one has an odd "
                "cycle; use engine='chromatic-gibbs'")
        reason = f"engine {engine!r} requested"
        if engine != "exact":
            reason += (f"; exact work would need {states_txt} states"
                       + (" (still usable as an oracle)" if feasible else ""))
    names = spec.nodes
    plan = Plan(
        engine=chosen, bipartite=bipartite,
        blocks=[[names[i] for i in b] for b in blocks_idx], reason=reason,
        storage=storage, enumerated=[names[i] for i in enum],
        hidden_enumerated=[names[i] for i in h_enum], log2_exact_states=log2_states,
        max_exact_states=max_exact_states, n_nodes=n, n_edges=m,
        n_visible=len(spec.visible), colouring=colouring,
        block_index=[np.asarray(b, dtype=np.int64) for b in blocks_idx],
        enum_index=np.asarray(enum, dtype=np.int64),
        hidden_enum_index=np.asarray(h_enum, dtype=np.int64),
        exact_bound_only=len(enum) == n and log2_states < sum(
            math.log2(d.levels) for d in spec.domains) - 1e-9,
    )
    return spec, plan
