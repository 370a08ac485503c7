"""The compiler: validation, colouring, sizing of the exact work, engine choice, plans."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import random_graph
from hypothesis import given, settings
from hypothesis import strategies as st

import pgm_boltz as pb
from pgm_boltz.compiler import DEFAULT_MAX_EXACT_STATES, analyse


def assert_proper(G: nx.Graph, blocks: list[list]) -> None:
    """Blocks partition the nodes and each block is an independent set of G."""
    flat = [u for b in blocks for u in b]
    assert sorted(map(str, flat)) == sorted(map(str, G.nodes))
    assert len(flat) == len(set(flat))
    for b in blocks:
        members = set(b)
        for u in b:
            assert not members.intersection(G.neighbors(u)), f"{u!r} shares a block " \
                "with a neighbour"


# ------------------------------------------------------------------ colouring


def test_rbm_classes_are_visible_and_hidden() -> None:
    model = pb.compile(pb.graphs.rbm(5, 3))
    plan = model.plan
    assert plan.bipartite
    assert plan.blocks == [[f"v{i}" for i in range(5)], [f"h{j}" for j in range(3)]]
    assert [list(ix) for ix in plan.block_index] == [[0, 1, 2, 3, 4], [5, 6, 7]]
    # the RBM's W is a zero-copy view of the weight vector
    (p, q, W), = model.block_weights()
    assert (p, q) == (0, 1)
    assert W.shape == (5, 3)
    assert W.data_ptr() == model.weight.data_ptr()
    J = model.coupling_matrix()
    torch.testing.assert_close(J[:5, 5:], W)


def test_rbm_classes_visible_first_even_when_hidden_layer_is_larger() -> None:
    plan = pb.compile(pb.graphs.rbm(2, 6)).plan
    assert plan.blocks[0] == ["v0", "v1"]
    assert sorted(plan.enumerated) == ["v0", "v1"]  # the smaller layer


def test_dbm_classes_are_even_and_odd_layers() -> None:
    G = pb.graphs.dbm([4, 3, 2, 2])
    plan = pb.compile(G).plan
    assert plan.bipartite
    layer = nx.get_node_attributes(G, "layer")
    parities = [{layer[u] % 2 for u in b} for b in plan.blocks]
    assert parities == [{0}, {1}]
    assert_proper(G, plan.blocks)


@pytest.mark.parametrize("rows, cols, periodic", [(3, 4, False), (4, 4, True), (2, 6, True)])
def test_lattice_is_two_coloured_by_parity(rows: int, cols: int, periodic: bool) -> None:
    G = pb.graphs.lattice(rows, cols, periodic=periodic)
    plan = pb.compile(G).plan
    assert plan.bipartite
    assert len(plan.blocks) == 2
    for b in plan.blocks:
        assert len({(r + c) % 2 for r, c in b}) == 1
    assert_proper(G, plan.blocks)


def test_odd_periodic_lattice_and_triangle_are_not_bipartite() -> None:
    for G in (pb.graphs.lattice(3, 3, periodic=True), pb.graphs.triangular_lattice(3, 3),
              pb.graphs.fully_connected(5)):
        plan = pb.compile(G).plan
        assert not plan.bipartite
        assert len(plan.blocks) >= 3
        assert "greedy colouring" in plan.colouring
        assert_proper(G, plan.blocks)
    assert len(pb.compile(pb.graphs.fully_connected(5)).plan.blocks) == 5


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(4, 30), st.floats(0.1, 0.9))
def test_greedy_colouring_is_proper_on_random_graphs(seed: int, n: int, p: float) -> None:
    G = nx.gnp_random_graph(n, p, seed=seed)
    G.add_edges_from([(0, 1), (1, 2), (0, 2)])  # an odd cycle: never bipartite
    nx.set_node_attributes(G, "visible", "role")
    plan = pb.compile(G, max_exact_states=2**12).plan
    assert not plan.bipartite
    assert_proper(G, plan.blocks)
    assert len(plan.blocks) <= max(d for _, d in G.degree) + 1


def test_graph_without_edges_is_one_block() -> None:
    G = nx.Graph()
    G.add_nodes_from("abc", role="visible")
    plan = pb.compile(G).plan
    assert plan.bipartite and plan.blocks == [["a", "b", "c"]]
    assert plan.enumerated == []


# ------------------------------------------------------------------ sizing


@pytest.mark.parametrize("n_v, n_h", [(6, 3), (3, 6), (10, 10), (64, 16)])
def test_rbm_enumerates_its_smaller_layer(n_v: int, n_h: int) -> None:
    plan = pb.compile(pb.graphs.rbm(n_v, n_h)).plan
    assert len(plan.enumerated) == min(n_v, n_h)
    assert plan.log2_exact_states == min(n_v, n_h)
    layer = "v" if n_v <= n_h else "h"
    assert all(u.startswith(layer) for u in plan.enumerated)
    assert plan.hidden_enumerated == []  # hidden units are independent given visible


@pytest.mark.parametrize("n", [2, 5, 12])
def test_fully_connected_enumerates_all_but_one(n: int) -> None:
    plan = pb.compile(pb.graphs.fully_connected(n)).plan
    assert len(plan.enumerated) == n - 1
    assert plan.exact_states == 2 ** (n - 1)


def test_sizing_counts_multinary_levels() -> None:
    G = nx.Graph()
    G.add_node("a", role="visible", domain="multinary", levels=5)
    G.add_node("b", role="visible", domain="multinary", levels=3)
    G.add_node("c", role="hidden", domain="spin")
    G.add_edges_from([("a", "b"), ("b", "c"), ("a", "c")])
    plan = pb.compile(G).plan
    # a triangle: enumerate the two cheapest nodes (spin and K=3), sum out K=5
    assert sorted(plan.enumerated) == ["b", "c"]
    assert plan.exact_states == pytest.approx(6.0)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_summed_out_nodes_are_independent_given_enumerated(data) -> None:
    G = random_graph(data.draw, n_min=3, n_max=14, max_states=1 << 30)
    plan = pb.compile(G, max_exact_states=2**40).plan
    enum_cost = next(c for c in plan.exact_costs if c.engine == "enumeration")
    enumerated = {plan.node_names[i] for i in enum_cost.plan.enum}
    for u in set(G.nodes) - enumerated:
        assert set(G.neighbors(u)) <= enumerated
    levels = {u: len(G.nodes[u]["values"]) if "values" in G.nodes[u]
              else G.nodes[u].get("levels", 2) for u in G.nodes}
    assert enum_cost.plan.log2_states == pytest.approx(
        sum(math.log2(levels[u]) for u in enumerated))
    hidden = {u for u in G.nodes if G.nodes[u]["role"] == "hidden"}
    if plan.hidden is not None and plan.hidden.engine != "enumeration":
        return  # the free energy's hidden part is eliminated, not enumerated
    h_enum = set(plan.hidden_enumerated)
    assert h_enum <= hidden
    for u in hidden - h_enum:  # summed out of F(v): no hidden neighbour outside h_enum
        assert {w for w in G.neighbors(u) if w in hidden} <= h_enum


# ------------------------------------------------------------------ engine choice


def test_engine_choice_under_and_over_the_threshold() -> None:
    assert DEFAULT_MAX_EXACT_STATES == 2**22
    # fully connected 23: 2^22 states, at the threshold -> exact
    assert pb.compile(pb.graphs.fully_connected(23)).plan.engine == "exact"
    plan = pb.compile(pb.graphs.fully_connected(24)).plan
    assert plan.engine == "chromatic-gibbs" and not plan.exact_feasible
    assert pb.compile(pb.graphs.rbm(30, 22)).plan.engine == "exact"
    assert pb.compile(pb.graphs.rbm(30, 23)).plan.engine == "block-gibbs"
    small = dict(max_exact_states=2**10)
    assert pb.compile(pb.graphs.fully_connected(11), **small).plan.engine == "exact"
    assert pb.compile(pb.graphs.fully_connected(12), **small).plan.engine == \
        "chromatic-gibbs"
    # a lattice: enumeration needs 2^32 states, elimination 4e4 operations (treewidth 10)
    plan = pb.compile(pb.graphs.lattice(8, 8), **small).plan
    assert plan.engine == "exact" and plan.exact_engine == "elimination"
    assert pb.compile(pb.graphs.lattice(40, 40)).plan.engine == "block-gibbs"


def test_plan_str_explains_the_choice() -> None:
    text = str(pb.compile(pb.graphs.rbm(6, 3)).plan)
    for part in ("Plan: engine=exact", "9 nodes (6 visible, 3 hidden)", "18 edges",
                 "bipartite", "2 colour classes of sizes [6, 3]", "enumerate 3 nodes",
                 "8 states", "threshold 4,194,304", "6 nodes summed out", "why:",
                 "dense storage"):
        assert part in text, (part, text)
    text = str(pb.compile(pb.graphs.rbm(40, 40)).plan)
    assert "engine=block-gibbs" in text and "over the threshold" in text
    assert "1,099,511,627,776 states" in text
    text = str(pb.compile(pb.graphs.fully_connected(30)).plan)
    assert "engine=chromatic-gibbs" in text and "not bipartite" in text
    assert "30 colour classes" in text
    text = str(pb.compile(pb.graphs.rbm(3, 2), engine="block-gibbs").plan)
    assert "engine 'block-gibbs' requested" in text and "oracle" in text


def test_forced_engines() -> None:
    tri = pb.graphs.fully_connected(3)
    with pytest.raises(pb.GraphError, match="bipartite"):
        pb.compile(tri, engine="block-gibbs")
    assert pb.compile(tri, engine="chromatic-gibbs").plan.engine == "chromatic-gibbs"
    assert pb.compile(pb.graphs.rbm(3, 2), engine="block-gibbs").plan.engine == \
        "block-gibbs"
    with pytest.raises(pb.IntractableError, match="8,388,608 states"):
        pb.compile(pb.graphs.fully_connected(24), engine="exact")
    with pytest.raises(pb.IntractableError, match="max_exact_states"):
        pb.compile(pb.graphs.rbm(12, 12), engine="exact", max_exact_states=100)
    assert pb.compile(pb.graphs.rbm(12, 12), engine="exact").plan.engine == "exact"


@pytest.mark.parametrize("kw, match", [
    ({"engine": "magic"}, "unknown engine"),
    ({"storage": "csr"}, "unknown storage"),
    ({"max_exact_states": 0}, "max_exact_states"),
    ({"max_exact_states": 2.5}, "max_exact_states"),
    ({"max_exact_states": True}, "max_exact_states"),
])
def test_bad_compile_options(kw: dict, match: str) -> None:
    with pytest.raises(pb.ArgumentError, match=match):
        pb.compile(pb.graphs.rbm(2, 2), **kw)


def test_storage_choice() -> None:
    assert pb.compile(pb.graphs.rbm(4, 2)).plan.storage == "dense"
    assert pb.compile(pb.graphs.rbm(4, 2), storage="sparse").plan.storage == "sparse"
    big = pb.graphs.lattice(40, 40)
    assert pb.compile(big).plan.storage == "sparse"
    # an RBM's visible x hidden block is complete: dense however few hidden units
    # (3200 nodes and 393,216 edges are fewer than n^2/16, the rule before this wave)
    wide = pb.compile(pb.graphs.rbm(3072, 128))
    assert wide.plan.storage == "dense"
    assert wide.plan.engine == "block-gibbs"
    # a sparse non-bipartite graph of many nodes stays sparse
    tri = pb.compile(pb.graphs.triangular_lattice(40, 40, periodic=True))
    assert tri.plan.storage == "sparse"


def test_declared_values_are_used_and_edge_order_is_consistent() -> None:
    G = nx.Graph()
    G.add_node("a", role="visible", bias=0.5)
    G.add_node("b", role="hidden", bias=-1.5)
    G.add_node("c", role="visible")
    G.add_edge("b", "a", weight=2.0)
    G.add_edge("c", "b", weight=-3.0)
    model = pb.compile(G, dtype=torch.float64)
    assert model.bias.tolist() == [0.5, -1.5, 0.0]
    got = {frozenset(e): w for e, w in zip(model.edges, model.weight.tolist())}
    assert got == {frozenset("ab"): 2.0, frozenset("bc"): -3.0}
    J = model.coupling_matrix()
    assert J[0, 1] == J[1, 0] == 2.0 and J[1, 2] == -3.0 and J[0, 2] == 0.0
    # undeclared weights are seeded N(0, init_scale^2) draws
    w1 = pb.compile(pb.graphs.rbm(3, 3), seed=4).weight
    w2 = pb.compile(pb.graphs.rbm(3, 3), seed=4).weight
    assert torch.equal(w1, w2)
    assert float(pb.compile(pb.graphs.rbm(30, 30), seed=0, init_scale=1.0).weight.std()) \
        == pytest.approx(1.0, abs=0.1)


def test_analyse_direct() -> None:
    spec, plan = analyse(pb.graphs.rbm(6, 3))
    assert spec.roles == ["visible"] * 6 + ["hidden"] * 3
    assert spec.edges.shape == (18, 2)
    assert plan.n_nodes == 9 and plan.n_edges == 18 and plan.n_visible == 6


# ------------------------------------------------------------------ bad declarations


def base_graph() -> nx.Graph:
    G = nx.Graph()
    G.add_node("a", role="visible")
    G.add_node("b", role="hidden")
    G.add_edge("a", "b")
    return G


def with_node(**attrs) -> nx.Graph:
    G = base_graph()
    G.add_node("bad_node", **attrs)
    G.add_edge("a", "bad_node")
    return G


@pytest.mark.parametrize("graph, match", [
    (nx.DiGraph([(0, 1)]), "directed"),
    (nx.MultiGraph([(0, 1), (0, 1)]), "multigraph"),
    (nx.Graph(), "no nodes"),
    (with_node(), "'bad_node' has no 'role'"),
    (with_node(role="observed"), "'bad_node' has unknown role 'observed'"),
    (with_node(role="visible", domain="ternary"), "'bad_node' has unknown domain 'ternary'"),
    (with_node(role="visible", domain="multinary"), "'bad_node'.*no 'levels'"),
    (with_node(role="visible", domain="multinary", levels=1), "'bad_node'.*levels"),
    (with_node(role="visible", domain="multinary", levels=2.5), "'bad_node'.*levels"),
    (with_node(role="visible", domain="multinary", levels=True), "'bad_node'.*levels"),
    (with_node(role="visible", levels=3), "'bad_node' has levels=3 but domain 'binary'"),
    (with_node(role="visible", domain="spin", levels=3), "'bad_node'.*domain 'spin'"),
    (with_node(role="visible", bias=float("nan")), "bias of node 'bad_node'.*finite"),
    (with_node(role="visible", bias=float("inf")), "bias of node 'bad_node'.*finite"),
    (with_node(role="visible", bias="0.5"), "bias of node 'bad_node'.*real number"),
    (with_node(role="visible", bias=True), "bias of node 'bad_node'"),
])
def test_bad_declarations_name_the_fault(graph, match: str) -> None:
    with pytest.raises(pb.GraphError, match=match):
        pb.compile(graph)


def test_bad_edges_and_roles() -> None:
    G = base_graph()
    G.add_edge("a", "a")
    with pytest.raises(pb.GraphError, match="self-loop on node 'a'"):
        pb.compile(G)
    G = base_graph()
    G.edges["a", "b"]["weight"] = float("-inf")
    with pytest.raises(pb.GraphError, match=r"weight of edge \('a', 'b'\).*finite"):
        pb.compile(G)
    G = base_graph()
    G.edges["a", "b"]["weight"] = "strong"
    with pytest.raises(pb.GraphError, match=r"weight of edge \('a', 'b'\)"):
        pb.compile(G)
    G = nx.Graph()
    G.add_nodes_from(["x", "y"], role="hidden")
    with pytest.raises(pb.GraphError, match="no visible node"):
        pb.compile(G)


@pytest.mark.parametrize("obj", [None, {"a": 1}, [(0, 1)], np.eye(2), "graph"])
def test_non_graph_objects(obj) -> None:
    with pytest.raises(pb.GraphError, match=r"expected a networkx\.Graph"):
        pb.compile(obj)


def test_graph_errors_are_value_errors_and_declaration_is_not_mutated() -> None:
    assert issubclass(pb.GraphError, pb.PgmBoltzError)
    assert issubclass(pb.PgmBoltzError, ValueError)
    G = pb.graphs.rbm(3, 2)
    before = nx.node_link_data(G, edges="links")
    pb.compile(G).fit([[0, 1, 1]], epochs=2, progress=False)
    assert nx.node_link_data(G, edges="links") == before


@pytest.mark.parametrize("call, match", [
    (lambda: pb.graphs.rbm(0, 2), "n_visible"),
    (lambda: pb.graphs.rbm(2, -1), "n_hidden"),
    (lambda: pb.graphs.rbm(2, 2, domain="ising"), "unknown domain"),
    (lambda: pb.graphs.rbm(2, 2, domain="multinary"), "levels"),
    (lambda: pb.graphs.dbm([4]), "at least two"),
    (lambda: pb.graphs.lattice(0, 3), "rows"),
    (lambda: pb.graphs.fully_connected(2.5), "n_visible"),
])
def test_constructor_arguments(call, match: str) -> None:
    with pytest.raises(pb.GraphError, match=match):
        call()
