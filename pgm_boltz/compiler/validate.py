"""Validation: a declared ``networkx.Graph`` becomes a :class:`Spec` (or a GraphError).

The checks: undirected, no multi-edges, no self-loops, at least one node and one visible
node, every node with a known ``role`` and a registered ``domain`` (its attributes
checked by the domain), a valid ``precision`` where one is declared (the initial
precision of a quadratic self-term: multinary, finite and Gaussian units), finite
numeric ``bias`` and ``weight``, and no edge between two continuous (Gaussian) units.
The declared graph is copied, never changed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ..domains import Domain, parse_domain, parse_precision
from ..errors import GraphError

__all__ = ["Spec", "validate"]


@dataclass
class Spec:
    """What a graph declares, in the canonical order the model uses.

    ``nodes`` keeps the graph's node order; ``edges`` are index pairs ``(i, j)`` ordered
    so that the edges between two Gibbs blocks form row-major runs. ``init_precision``
    holds each node's initial precision of its quadratic self-term ``q s^2 / 2`` (NaN for
    nodes without the term).
    """

    nodes: list[Hashable]
    roles: list[str]
    domains: list[Domain]
    edges: np.ndarray  # (m, 2) int64, node indices
    init_bias: np.ndarray  # (n,) float64, NaN where not declared
    init_weight: np.ndarray  # (m,) float64, NaN where not declared
    graph: nx.Graph  # a copy of the declared graph (attributes as given)
    init_precision: np.ndarray | None = None  # (n,) float64, NaN where no quadratic term

    def __post_init__(self) -> None:
        if self.init_precision is None:
            self.init_precision = np.full(len(self.nodes), np.nan)

    @property
    def visible(self) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == "visible"]

    @property
    def hidden(self) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == "hidden"]



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
    precision = np.full(len(nodes), np.nan)
    for i, n in enumerate(nodes):
        attrs = G.nodes[n]
        role = attrs.get("role")
        if role is None:
            raise GraphError(f"node {n!r} has no 'role' attribute; set role='visible' "
                             "or role='hidden'")
        if role not in ("visible", "hidden"):
            raise GraphError(f"node {n!r} has unknown role {role!r}; use 'visible' or "
                             "'hidden'")
        dom = parse_domain(attrs, n)
        p = parse_precision(dom, attrs, n)
        if p is not None:
            precision[i] = p
        domains.append(dom)
        roles.append(role)
        if attrs.get("bias") is not None:
            bias[i] = _finite_number(attrs["bias"], f"bias of node {n!r}")
    if "visible" not in roles:
        raise GraphError("the graph has no visible node: give at least one node "
                         "role='visible'")
    edges, weights = [], []
    for u, v, w in G.edges(data="weight"):
        i, j = index[u], index[v]
        if not domains[i].discrete and not domains[j].discrete:
            raise GraphError(
                f"edge ({u!r}, {v!r}) joins two continuous units ({domains[i].describe()} "
                f"and {domains[j].describe()}); their joint law need not be normalisable "
                "and is not supported: couple continuous units only to discrete ones (e.g. "
                "a Gaussian-Bernoulli RBM)")
        edges.append((min(i, j), max(i, j)))
        weights.append(np.nan if w is None else
                       _finite_number(w, f"weight of edge ({u!r}, {v!r})"))
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return Spec(nodes, roles, domains, e, bias, np.array(weights, dtype=np.float64),
                _copy_graph(G), precision)


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
