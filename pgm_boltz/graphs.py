"""Graph constructors: ordinary ``networkx.Graph`` objects declaring Boltzmann machines.

Each node carries ``role`` ("visible" | "hidden") and ``domain`` (a registered domain:
"binary", "spin", "multinary" with ``levels``, "finite" with ``values``, "gaussian", ...);
edges may carry an initial ``weight`` and nodes an initial ``bias`` and, for multinary,
finite and Gaussian units, an initial ``precision`` (a learned quadratic self-term). Pass
the result to :func:`pgm_boltz.compile`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx

from .domains import parse_domain, parse_precision
from .errors import GraphError

__all__ = ["dbm", "fully_connected", "lattice", "rbm", "triangular_lattice"]

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
    layers = []
    G = nx.Graph()
    for li, size in enumerate(layer_sizes):
        _check_count(f"layer_sizes[{li}]", size)
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


def _decorate(G: nx.Graph, domain: str, role: str, coupling: float | None) -> nx.Graph:
    if role not in ("visible", "hidden"):
        raise GraphError(f"role must be 'visible' or 'hidden', got {role!r}")
    attrs = _node_attrs(role, domain, None if domain != "multinary" else 2)
    for n in G.nodes:
        G.nodes[n].update(attrs)
    if coupling is not None:
        for u, v in G.edges:
            G.edges[u, v]["weight"] = float(coupling)
    return G


def node_names(G: nx.Graph, role: str) -> list[Hashable]:
    """The names of the nodes with the given role, in graph order.

    >>> import pgm_boltz as pb
    >>> node_names(pb.graphs.rbm(2, 1), "hidden")
    ['h0']
    """
    return [n for n, r in G.nodes(data="role") if r == role]
