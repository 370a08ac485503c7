"""Graph constructors: ordinary ``networkx.Graph`` objects declaring Boltzmann machines.

Each node carries ``role`` ("visible" | "hidden") and ``domain`` (a registered domain:
"binary", "spin", "multinary" with ``levels``, "finite" with ``values``, "gaussian", ...);
edges may carry an initial ``weight`` and nodes an initial ``bias`` and, for multinary,
finite and Gaussian units, an initial ``precision`` (a learned quadratic self-term). Pass
the result to :func:`pgm_boltz.compile`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Sequence

import networkx as nx

from .domains import parse_domain, parse_precision
from .errors import GraphError

__all__ = [
    "chain",
    "dbm",
    "fully_connected",
    "ladder",
    "lattice",
    "lattice_with_hidden",
    "random_sparse",
    "rbm",
    "triangular_lattice",
]

def _node_attrs(role: str, domain: str, levels: int | None,
                values: Sequence[float] | None = None,
                precision: float | None = None) -> dict:
    """The attributes of a node with ``role`` in ``domain`` (checked by the domain)."""
    attrs: dict = {"role": role, "domain": domain}
    if levels is not None:
        attrs["levels"] = levels
    if values is not None:
        attrs["values"] = [float(v) for v in values]
    if precision is not None:
        attrs["precision"] = precision
    tag = f"<{role} {domain}>"
    try:
        parse_precision(parse_domain(attrs, tag), attrs, tag)
    except GraphError as err:
        msg = str(err).replace(f"node {tag!r}: ", "").replace(f"node {tag!r} ", "")
        raise GraphError(f"{role} nodes: {msg}") from None
    return attrs


#: bytes a networkx graph holds per edge and per node (measured: about 1 KB each)
_BYTES_PER_EDGE = 1000
_BYTES_PER_NODE = 1000


def _memory_bytes() -> float:
    """This machine's physical memory (inf where it cannot be read)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def _check_size(what: str, n_nodes: int, n_edges: int) -> None:
    """Refuse, before building, a graph that cannot fit in this machine's memory."""
    need = _BYTES_PER_EDGE * float(n_edges) + _BYTES_PER_NODE * float(n_nodes)
    have = _memory_bytes()
    if need > 0.8 * have:
        raise GraphError(f"{what} would have {n_nodes:,} nodes and {n_edges:,} edges, about "
                         f"{need / 2**30:,.1f} GiB as a networkx graph, more than this "
                         f"machine's {have / 2**30:,.1f} GiB; build a smaller model")


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GraphError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def rbm(
    n_visible: int,
    n_hidden: int,
    domain: str = "binary",
    hidden_domain: str | None = None,
    levels: int | None = None,
    hidden_levels: int | None = None,
    values: Sequence[float] | None = None,
    hidden_values: Sequence[float] | None = None,
    precision: float | None = None,
    hidden_precision: float | None = None,
) -> nx.Graph:
    """A restricted Boltzmann machine: complete bipartite graph visible × hidden.

    Visible nodes are named ``"v0".."v{n_visible-1}"``, hidden ``"h0".."h{n_hidden-1}"``.
    Energy ``E(v, h) = -v^T W h - b^T v - c^T h (+ sum_i q_i s_i^2 / 2)``. ``levels`` /
    ``values`` (and their ``hidden_`` twins) declare multinary / finite units;
    ``precision`` / ``hidden_precision`` the initial precision of a quadratic self-term
    (multinary and finite units: optional, >= 0; Gaussian units: > 0, default 1).
    Hidden units default to the visible domain, except binary hidden units under
    multinary, finite or Gaussian visible ones (``domain="gaussian"`` is the
    Gaussian–Bernoulli RBM for real-valued data).

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> G = pb.graphs.rbm(3, 2)
    >>> G.number_of_nodes(), G.number_of_edges()
    (5, 6)
    >>> pb.graphs.rbm(2, 1, domain="gaussian").nodes["h0"]["domain"]
    'binary'
    """
    _check_count("n_visible", n_visible)
    _check_count("n_hidden", n_hidden, 0)
    _check_size("rbm", n_visible + n_hidden, n_visible * n_hidden)
    if hidden_domain is None:
        hidden_domain = "binary" if domain in ("multinary", "finite", "gaussian") else domain
    G = nx.Graph()
    vis = [f"v{i}" for i in range(n_visible)]
    hid = [f"h{j}" for j in range(n_hidden)]
    G.add_nodes_from(vis, **_node_attrs("visible", domain, levels, values, precision))
    G.add_nodes_from(hid, **_node_attrs("hidden", hidden_domain, hidden_levels,
                                        hidden_values, hidden_precision))
    G.add_edges_from((v, h) for v in vis for h in hid)
    return G


def fully_connected(n_visible: int, n_hidden: int = 0, domain: str = "binary",
                    levels: int | None = None,
                    values: Sequence[float] | None = None,
                    precision: float | None = None) -> nx.Graph:
    """A fully connected Boltzmann machine on ``n_visible + n_hidden`` units.

    Every pair of units is coupled: ``E(x) = -sum_{i<j} W_ij s_i s_j - sum_i b_i s_i``
    (``+ sum_i q_i s_i^2 / 2`` with ``precision``, multinary and finite units).

    >>> import pgm_boltz as pb
    >>> pb.graphs.fully_connected(4, 1).number_of_edges()
    10
    """
    _check_count("n_visible", n_visible)
    _check_count("n_hidden", n_hidden, 0)
    n = n_visible + n_hidden
    _check_size("fully_connected", n, n * (n - 1) // 2)
    G = nx.Graph()
    vis = [f"v{i}" for i in range(n_visible)]
    hid = [f"h{j}" for j in range(n_hidden)]
    G.add_nodes_from(vis, **_node_attrs("visible", domain, levels, values, precision))
    G.add_nodes_from(hid, **_node_attrs("hidden", domain, levels, values, precision))
    nodes = vis + hid
    G.add_edges_from((a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:])
    return G


def dbm(layer_sizes: Sequence[int], domain: str = "binary",
        levels: int | None = None, values: Sequence[float] | None = None,
        precision: float | None = None) -> nx.Graph:
    """A deep Boltzmann machine: layers wired as complete bipartite graphs in a chain.

    Layer 0 is visible (``"v{i}"``), layer l >= 1 hidden (``"h{l}_{i}"``). Even and odd
    layers are the two Gibbs blocks. ``precision`` gives every unit a quadratic
    self-term (multinary and finite units).

    >>> import pgm_boltz as pb
    >>> G = pb.graphs.dbm([4, 3, 2])
    >>> G.number_of_edges()
    18
    """
    if len(layer_sizes) < 2:
        raise GraphError("dbm needs at least two layer sizes (visible, hidden, ...)")
    for li, size in enumerate(layer_sizes):
        _check_count(f"layer_sizes[{li}]", size)
    _check_size("dbm", sum(layer_sizes),
                sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:])))
    layers = []
    G = nx.Graph()
    for li, size in enumerate(layer_sizes):
        names = [f"v{i}" for i in range(size)] if li == 0 else [
            f"h{li}_{i}" for i in range(size)]
        role = "visible" if li == 0 else "hidden"
        G.add_nodes_from(names, layer=li, **_node_attrs(role, domain, levels, values,
                                                        precision))
        layers.append(names)
    for a, b in zip(layers[:-1], layers[1:]):
        G.add_edges_from((u, v) for u in a for v in b)
    return G


def lattice(rows: int, cols: int, periodic: bool = False, domain: str = "spin",
            role: str = "visible", coupling: float | None = None) -> nx.Graph:
    """A square lattice (``networkx.grid_2d_graph``) of units named ``(r, c)``.

    With ``coupling`` every edge gets that initial weight (an Ising model at
    inverse temperature ``coupling`` for spins).

    >>> import pgm_boltz as pb
    >>> pb.graphs.lattice(4, 4, periodic=True).number_of_edges()
    32
    """
    _check_count("rows", rows)
    _check_count("cols", cols)
    _check_size("the lattice", rows * cols, 3 * rows * cols)
    G = nx.grid_2d_graph(rows, cols, periodic=periodic)
    return _decorate(G, domain, role, coupling)


def triangular_lattice(rows: int, cols: int, periodic: bool = False, domain: str = "spin",
                       role: str = "visible", coupling: float | None = None) -> nx.Graph:
    """A triangular lattice: the square lattice plus one diagonal per cell (3 colours).

    Node ``(r, c)`` is linked to ``(r, c+1)``, ``(r+1, c)`` and ``(r+1, c+1)``
    (indices modulo the size when ``periodic``; periodic sizes should be multiples of 3
    for a 3-colouring to exist).

    >>> import pgm_boltz as pb
    >>> pb.graphs.triangular_lattice(3, 3, periodic=True).number_of_edges()
    27
    """
    _check_count("rows", rows)
    _check_count("cols", cols)
    _check_size("the lattice", rows * cols, 3 * rows * cols)
    G = nx.Graph()
    G.add_nodes_from((r, c) for r in range(rows) for c in range(cols))
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1)):
                rr, cc = r + dr, c + dc
                if periodic:
                    rr, cc = rr % rows, cc % cols
                elif rr >= rows or cc >= cols:
                    continue
                if (rr, cc) != (r, c):
                    G.add_edge((r, c), (rr, cc))
    return _decorate(G, domain, role, coupling)


def _decorate(G: nx.Graph, domain: str, role: str, coupling: float | None,
              levels: int | None = None) -> nx.Graph:
    """Give every node ``role`` and ``domain`` (multinary: ``levels``, default 2) and every
    edge the weight ``coupling`` when given."""
    if role not in ("visible", "hidden"):
        raise GraphError(f"role must be 'visible' or 'hidden', got {role!r}")
    if levels is None and domain == "multinary":
        levels = 2
    attrs = _node_attrs(role, domain, levels)
    for n in G.nodes:
        G.nodes[n].update(attrs)
    if coupling is not None:
        for u, v in G.edges:
            G.edges[u, v]["weight"] = float(coupling)
    return G


def lattice_with_hidden(rows: int, cols: int, periodic: bool = False, domain: str = "spin",
                        hidden_domain: str = "binary", levels: int | None = None,
                        hidden_levels: int | None = None, visible_edges: bool = True,
                        coupling: float | None = None) -> nx.Graph:
    """A square lattice of visible units with one hidden unit per plaquette.

    Visible units ``(r, c)`` are linked as in :func:`lattice` (unless
    ``visible_edges=False``); the hidden unit of the plaquette whose top-left corner is
    ``(r, c)`` is named ``(r + 0.5, c + 0.5)`` (its centre) and coupled to the plaquette's
    four corners. An open ``rows x cols`` lattice has ``(rows-1)(cols-1)`` plaquettes, a
    periodic one ``rows * cols``. Summing a hidden unit out couples its four corners, so
    the treewidth stays about ``min(rows, cols) + 1``: exact elimination handles it.

    >>> import pgm_boltz as pb
    >>> G = pb.graphs.lattice_with_hidden(3, 4)
    >>> len(pb.graphs.node_names(G, "hidden")), G.number_of_edges()
    (6, 41)
    >>> sorted(G[(0.5, 0.5)])
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    _check_count("rows", rows, 2)
    _check_count("cols", cols, 2)
    _check_size("lattice_with_hidden", 2 * rows * cols, 6 * rows * cols)
    G = nx.grid_2d_graph(rows, cols, periodic=periodic)
    if not visible_edges:
        G.remove_edges_from(list(G.edges))
    vis = _node_attrs("visible", domain, levels)
    for v in G.nodes:
        G.nodes[v].update(vis)
    hid = _node_attrs("hidden", hidden_domain, hidden_levels)
    for r in range(rows if periodic else rows - 1):
        for c in range(cols if periodic else cols - 1):
            h = (r + 0.5, c + 0.5)
            G.add_node(h, **hid)
            for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
                G.add_edge(h, ((r + dr) % rows, (c + dc) % cols))
    if coupling is not None:
        for u, v in G.edges:
            G.edges[u, v]["weight"] = float(coupling)
    return G


def chain(n: int, periodic: bool = False, domain: str = "spin", role: str = "visible",
          levels: int | None = None, coupling: float | None = None) -> nx.Graph:
    """A chain of ``n`` units named ``0..n-1`` (a ring when ``periodic``; treewidth 1, or 2
    for a ring).

    >>> import pgm_boltz as pb
    >>> pb.graphs.chain(5).number_of_edges(), pb.graphs.chain(5, periodic=True).number_of_edges()
    (4, 5)
    """
    _check_count("n", n, 3 if periodic else 1)
    _check_size("the graph", 2 * n, 3 * n)
    G = nx.cycle_graph(n) if periodic else nx.path_graph(n)
    return _decorate(G, domain, role, coupling, levels)


def ladder(n: int, periodic: bool = False, domain: str = "spin", role: str = "visible",
           levels: int | None = None, coupling: float | None = None) -> nx.Graph:
    """A ladder: two chains of ``n`` units ``(0, c)`` and ``(1, c)`` joined by rungs (the
    2 x n lattice; a cylinder when ``periodic``). Treewidth 2 (3 periodic).

    >>> import pgm_boltz as pb
    >>> pb.graphs.ladder(4).number_of_edges(), pb.graphs.ladder(4, periodic=True).number_of_edges()
    (10, 12)
    """
    _check_count("n", n, 3 if periodic else 1)
    _check_size("the graph", 2 * n, 3 * n)
    G = nx.grid_2d_graph(2, n, periodic=(False, periodic))
    return _decorate(G, domain, role, coupling, levels)


def random_sparse(n: int, degree: int | None = 3, p: float | None = None,
                  seed: int | None = None, domain: str = "spin", role: str = "visible",
                  levels: int | None = None, coupling: float | None = None) -> nx.Graph:
    """A random sparse graph on units ``0..n-1``: random ``degree``-regular (needs
    ``n * degree`` even and ``degree < n``), or Erdős–Rényi ``G(n, p)`` when ``p`` is
    given. Seeded by ``seed`` (reproducible).

    >>> import pgm_boltz as pb
    >>> G = pb.graphs.random_sparse(10, degree=3, seed=0)
    >>> G.number_of_edges(), set(dict(G.degree).values())
    (15, {3})
    >>> pb.graphs.random_sparse(50, p=0.05, seed=1).number_of_nodes()
    50
    """
    _check_count("n", n)
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0 \
                or math.isnan(p):
            raise GraphError(f"p must be a probability in [0, 1], got {p!r}")
        _check_size("random_sparse", n, int(p * n * (n - 1) / 2))
        G = nx.fast_gnp_random_graph(n, float(p), seed=seed)
    else:
        if degree is None:
            raise GraphError("random_sparse needs degree=d (random regular) or p=... (G(n, p))")
        _check_count("degree", degree, 0)
        if degree >= n or (n * degree) % 2:
            raise GraphError(f"a random {degree}-regular graph on {n} nodes needs degree < n "
                             "and n * degree even; change n or degree, or pass p=")
        _check_size("random_sparse", n, n * degree // 2)
        G = nx.random_regular_graph(degree, n, seed=seed)
    H = nx.Graph()
    H.add_nodes_from(range(n))
    H.add_edges_from(G.edges)
    return _decorate(H, domain, role, coupling, levels)


def node_names(G: nx.Graph, role: str) -> list[Hashable]:
    """The names of the nodes with the given role, in graph order.

    >>> import pgm_boltz as pb
    >>> node_names(pb.graphs.rbm(2, 1), "hidden")
    ['h0']
    """
    return [n for n, r in G.nodes(data="role") if r == role]
