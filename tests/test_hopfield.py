"""Tests of pgm_boltz.hopfield: Hebbian storage, recall dynamics, energy, input checks."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgm_boltz.errors import DataError, GraphError, PgmBoltzError
from pgm_boltz.hopfield import RecallResult, energy, hebbian, recall

SEED_PATTERNS = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
SEED_COUNTS = [3, 1, 2, 4]


def seed_data() -> np.ndarray:
    return np.repeat(SEED_PATTERNS, SEED_COUNTS, axis=0)


def spin_graph(W: np.ndarray, b: np.ndarray) -> nx.Graph:
    """A fully connected spin graph with couplings W (upper triangle) and biases b."""
    n = len(b)
    G = nx.Graph()
    for i in range(n):
        G.add_node(i, role="visible", domain="spin", bias=float(b[i]))
    for i, j in itertools.combinations(range(n), 2):
        G.add_edge(i, j, weight=float(W[i, j]))
    return G


def random_network(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    A = rng.normal(size=(n, n))
    W = (A + A.T) / 2
    np.fill_diagonal(W, 0.0)
    return W, rng.normal(scale=0.5, size=n)


def energy_ref(W: np.ndarray, b: np.ndarray, s: np.ndarray) -> float:
    """E(s) = -sum_{i<j} W_ij s_i s_j - sum_i b_i s_i, written as the definition."""
    n = len(s)
    pair = sum(W[i, j] * s[i] * s[j] for i in range(n) for j in range(i + 1, n))
    return float(-pair - sum(b[i] * s[i] for i in range(n)))


# ---------------------------------------------------------------------------------------
# hebbian
# ---------------------------------------------------------------------------------------


def test_seed_hebbian_parameters_exact() -> None:
    G = hebbian(seed_data(), names=["x1", "x2"])
    assert list(G.nodes) == ["x1", "x2"]
    assert G.nodes["x1"]["bias"] == 0.2
    assert G.nodes["x2"]["bias"] == 0.0
    assert G.edges["x1", "x2"]["weight"] == 0.4
    for u in G.nodes:
        assert G.nodes[u]["role"] == "visible"
        assert G.nodes[u]["domain"] == "spin"


def test_seed_hebbian_accepts_lists_ints_and_tensors() -> None:
    torch = pytest.importorskip("torch")
    data = seed_data()
    for variant in (data.tolist(), data.astype(np.int8), data.astype(np.float32),
                    torch.tensor(data, dtype=torch.float64, requires_grad=True)):
        G = hebbian(variant)
        assert list(G.nodes) == ["x0", "x1"]
        assert G.nodes["x0"]["bias"] == 0.2
        assert G.nodes["x1"]["bias"] == 0.0
        assert G.edges["x0", "x1"]["weight"] == 0.4


def test_hebbian_is_the_data_means_on_random_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.choice([-1, 1], size=(37, 6))
    G = hebbian(X)
    assert G.number_of_edges() == 6 * 5 // 2
    assert nx.number_of_selfloops(G) == 0
    names = list(G.nodes)
    for i, u in enumerate(names):
        assert G.nodes[u]["bias"] == pytest.approx(X[:, i].mean(), abs=1e-15)
        for j in range(i + 1, 6):
            w = G.edges[u, names[j]]["weight"]
            assert w == pytest.approx((X[:, i] * X[:, j]).mean(), abs=1e-15)


def test_hebbian_single_unit_has_no_edges() -> None:
    G = hebbian([[1], [1], [-1], [1]])
    assert G.nodes["x0"]["bias"] == 0.5
    assert G.number_of_edges() == 0


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.ones(3), ["2-D", "1-D"]),
        (np.ones((2, 2, 2)), ["2-D", "3-D"]),
        (np.ones((0, 3)), ["no rows"]),
        (np.ones((4, 0)), ["no columns", "at least 1 unit"]),
        (np.array([[1, -1], [1, 0]]), ["row 1, column 1", "'x1'", "value 0", "-1 or +1"]),
        (np.array([[1, -1], [np.nan, 1]]), ["row 1, column 0", "NaN"]),
        (np.array([[1.0, 0.5]]), ["row 0, column 1", "0.5"]),
        (np.array([[True, False]]), ["boolean", "-1/+1"]),
        (np.array([["1", "-1"]]), ["numeric"]),
        ([[1, -1], [1]], ["array"]),
    ],
)
def test_hebbian_bad_data(data: object, words: list[str]) -> None:
    with pytest.raises(DataError) as info:
        hebbian(data)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)


def test_hebbian_bad_names() -> None:
    with pytest.raises(DataError, match="names has 3 entries but data have 2 columns"):
        hebbian(seed_data(), names=["a", "b", "c"])
    with pytest.raises(GraphError, match="'a' appears twice"):
        hebbian(seed_data(), names=["a", "a"])
    with pytest.raises(DataError, match="node 'b'"):
        hebbian([[1, 3]], names=["a", "b"])


# ---------------------------------------------------------------------------------------
# energy
# ---------------------------------------------------------------------------------------


def test_energy_matches_definition_on_all_states() -> None:
    rng = np.random.default_rng(1)
    W, b = random_network(rng, 5)
    G = spin_graph(W, b)
    states = np.array(list(itertools.product([-1, 1], repeat=5)), dtype=float)
    got = energy(G, states)
    assert got.shape == (32,)
    expected = [energy_ref(W, b, s) for s in states]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert energy(G, states[3]).shape == ()
    assert float(energy(G, states[3])) == pytest.approx(expected[3])


def test_energy_missing_attributes_count_as_zero() -> None:
    G = nx.Graph()
    G.add_node("a", domain="spin", bias=1.5)
    G.add_node("b", domain="spin")
    G.add_edge("a", "b")
    G.add_node("c", domain="spin")
    G.add_edge("b", "c", weight=2.0)
    # E = -2 s_b s_c - 1.5 s_a
    assert float(energy(G, [1, 1, -1])) == pytest.approx(2.0 - 1.5)


# ---------------------------------------------------------------------------------------
# async recall: energy descent, against a Python reference
# ---------------------------------------------------------------------------------------


def async_reference(W: np.ndarray, b: np.ndarray, s0: np.ndarray,
                    max_steps: int) -> tuple[np.ndarray, int, bool, list[float]]:
    """Plain-Python async sweeps in index order; the energy after every single update."""
    s = s0.astype(float).copy()
    trace = [energy_ref(W, b, s)]
    for sweep in range(1, max_steps + 1):
        changed = False
        for i in range(len(s)):
            h = b[i] + sum(W[i, j] * s[j] for j in range(len(s)) if j != i)
            new = 1.0 if h > 0 else (-1.0 if h < 0 else s[i])
            changed |= new != s[i]
            s[i] = new
            trace.append(energy_ref(W, b, s))
        if not changed:
            return s, sweep, True, trace
    return s, max_steps, False, trace


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), n_probes=st.integers(1, 4))
def test_async_energy_never_increases_and_matches_reference(seed: int, n: int,
                                                            n_probes: int) -> None:
    rng = np.random.default_rng(seed)
    W, b = random_network(rng, n)
    probes = rng.choice([-1.0, 1.0], size=(n_probes, n))
    res = recall(spin_graph(W, b), probes, max_steps=50)
    for p in range(n_probes):
        s, steps, conv, trace = async_reference(W, b, probes[p], 50)
        assert all(e1 <= e0 + 1e-12 for e0, e1 in itertools.pairwise(trace))
        np.testing.assert_array_equal(res.states[p], s)
        assert res.steps[p] == steps
        assert res.converged[p] == conv
        assert res.energies[p] == pytest.approx(trace[-1], abs=1e-9)


@pytest.mark.parametrize("seed", [None, 7])
def test_async_energy_non_increasing_sweep_by_sweep(seed: int | None) -> None:
    rng = np.random.default_rng(2)
    W, b = random_network(rng, 40)
    G = spin_graph(W, b)
    probes = rng.choice([-1, 1], size=(6, 40))
    energies = [energy(G, probes)]
    for k in range(1, 12):
        energies.append(recall(G, probes, max_steps=k, seed=seed).energies)
    diffs = np.diff(np.array(energies), axis=0)
    assert (diffs <= 1e-9).all()
    final = recall(G, probes, max_steps=200, seed=seed)
    assert final.converged.all()
    # a fixed point: every unit agrees with the sign of its field
    h = final.states @ W + b
    assert (h * final.states >= 0).all()


def test_seeded_order_is_reproducible_and_batch_independent() -> None:
    rng = np.random.default_rng(3)
    W, b = random_network(rng, 30)
    G = spin_graph(W, b)
    probes = rng.choice([-1, 1], size=(5, 30))
    a = recall(G, probes, seed=11)
    again = recall(G, probes, seed=11)
    np.testing.assert_array_equal(a.states, again.states)
    np.testing.assert_array_equal(a.steps, again.steps)
    for p in range(5):
        alone = recall(G, probes[p], seed=11)
        np.testing.assert_array_equal(alone.states, a.states[p])
        assert alone.steps == a.steps[p]


def test_ties_keep_the_current_value_despite_rounding() -> None:
    # unit 0 sees 0.1 + 0.2 - 0.3, a tie that floating point evaluates as 5.6e-17;
    # units 1..3 are pinned by large biases
    G = nx.Graph()
    G.add_node(0, domain="spin")
    for k, (w, bias) in enumerate([(0.1, 5.0), (0.2, 5.0), (0.3, -5.0)], start=1):
        G.add_node(k, domain="spin", bias=bias)
        G.add_edge(0, k, weight=w)
    for mode in ("async", "sync"):
        res = recall(G, [[-1, 1, 1, -1], [1, 1, 1, -1]], mode=mode)
        np.testing.assert_array_equal(res.states, [[-1, 1, 1, -1], [1, 1, 1, -1]])
        assert res.converged.all()
        assert (res.steps == 1).all()


# ---------------------------------------------------------------------------------------
# storing and recalling patterns
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored() -> tuple[nx.Graph, np.ndarray]:
    rng = np.random.default_rng(4)
    patterns = rng.choice([-1, 1], size=(3, 50))
    return hebbian(patterns), patterns


@pytest.mark.parametrize(("mode", "seed"), [("async", None), ("async", 5), ("sync", None)])
def test_stored_patterns_are_fixed_points(stored: tuple[nx.Graph, np.ndarray], mode: str,
                                          seed: int | None) -> None:
    G, patterns = stored
    res = recall(G, patterns, mode=mode, seed=seed)
    np.testing.assert_array_equal(res.states, patterns)
    assert res.converged.all()
    assert (res.steps == 1).all()
    np.testing.assert_allclose(res.energies, energy(G, patterns))


@pytest.mark.parametrize(("mode", "seed"), [("async", None), ("async", 5), ("sync", None)])
def test_noisy_probes_recall_their_pattern(stored: tuple[nx.Graph, np.ndarray], mode: str,
                                           seed: int | None) -> None:
    G, patterns = stored
    rng = np.random.default_rng(5)
    probes = np.repeat(patterns, 4, axis=0).astype(float)
    for row in probes:
        row[rng.choice(50, size=5, replace=False)] *= -1  # 10% of the units flipped
    res = recall(G, probes, mode=mode, seed=seed)
    np.testing.assert_array_equal(res.states, np.repeat(patterns, 4, axis=0))
    assert res.converged.all()
    assert (res.energies < energy(G, probes)).all()


def test_single_probe_keeps_its_shape(stored: tuple[nx.Graph, np.ndarray]) -> None:
    G, patterns = stored
    res = recall(G, patterns[1])
    assert isinstance(res, RecallResult)
    assert res.states.shape == (50,)
    assert res.energies.shape == res.steps.shape == res.converged.shape == ()
    np.testing.assert_array_equal(res.states, patterns[1])
    assert bool(res.converged)
    assert res.steps.dtype.kind == "i" and res.converged.dtype == np.bool_
    with pytest.raises(AttributeError):
        res.states = patterns[0]  # type: ignore[misc]


def test_seed_example_recall() -> None:
    res = recall(hebbian(seed_data()), [[-1, 1], [-1, -1], [1, 1]])
    # fields: h1 = 0.2 + 0.4 s2, h2 = 0.4 s1; (-1,-1) is a local minimum
    np.testing.assert_array_equal(res.states, [[1, 1], [-1, -1], [1, 1]])
    np.testing.assert_allclose(res.energies, [-0.6, -0.2, -0.6])


def test_recall_accepts_a_model_with_to_networkx(stored: tuple[nx.Graph, np.ndarray]) -> None:
    G, patterns = stored

    class Model:
        def to_networkx(self) -> nx.Graph:
            return G

    res = recall(Model(), patterns)
    np.testing.assert_array_equal(res.states, patterns)
    np.testing.assert_allclose(energy(Model(), patterns), res.energies)


def test_recall_accepts_a_compiled_model() -> None:
    import pgm_boltz as pb

    rng = np.random.default_rng(6)
    patterns = rng.choice([-1, 1], size=(2, 8))
    G = hebbian(patterns)
    model = pb.compile(G)
    probes = np.vstack([patterns, rng.choice([-1, 1], size=(3, 8))])
    from_model, from_graph = recall(model, probes), recall(G, probes)
    np.testing.assert_array_equal(from_model.states, from_graph.states)
    np.testing.assert_allclose(from_model.energies, from_graph.energies, atol=1e-6)


# ---------------------------------------------------------------------------------------
# sync oscillation and step limits
# ---------------------------------------------------------------------------------------


def test_sync_two_cycle_reports_not_converged() -> None:
    G = nx.Graph()
    G.add_nodes_from(["a", "b"], domain="spin")
    G.add_edge("a", "b", weight=1.0)
    res = recall(G, [[1, -1], [1, 1]], mode="sync", max_steps=50)
    assert res.converged.tolist() == [False, True]
    assert res.steps.tolist() == [2, 1]  # the 2-cycle is detected on its return
    np.testing.assert_array_equal(res.states, [[1, -1], [1, 1]])
    # asynchronous updates of the same network settle
    res = recall(G, [1, -1])
    assert bool(res.converged)
    np.testing.assert_array_equal(res.states, [-1, -1])
    assert float(res.energies) == -1.0


def test_max_steps_cuts_the_run_short() -> None:
    G = nx.Graph()
    G.add_nodes_from(range(3), domain="spin")
    G.add_edges_from([(0, 1), (1, 2)], weight=1.0)
    # in index order unit 0 copies unit 1 and unit 1 copies unit 0: one sweep reaches
    # (-1,-1,-1), and a second sweep is needed to confirm it
    res = recall(G, [1, -1, -1], max_steps=1)
    assert not bool(res.converged) and int(res.steps) == 1
    np.testing.assert_array_equal(res.states, [-1, -1, -1])
    res = recall(G, [1, -1, -1], max_steps=2)
    assert bool(res.converged) and int(res.steps) == 2


# ---------------------------------------------------------------------------------------
# recall input checks
# ---------------------------------------------------------------------------------------


def test_recall_bad_probes(stored: tuple[nx.Graph, np.ndarray]) -> None:
    G, patterns = stored
    with pytest.raises(DataError, match=r"50 units.*\(n_probes, 50\)"):
        recall(G, patterns[:, :40])
    with pytest.raises(DataError, match=r"\(n_probes, 50\)"):
        recall(G, patterns[None])
    bad = patterns.astype(float)
    bad[2, 7] = 0.0
    with pytest.raises(DataError, match=r"probes row 2, column 7 \(node 'x7'\) has value 0"):
        recall(G, bad)
    bad[2, 7] = np.nan
    with pytest.raises(DataError, match="NaN"):
        recall(G, bad)
    with pytest.raises(DataError, match=r"states have shape \(3,\)"):
        energy(G, [1, 1, 1])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mode": "gibbs"}, ["unknown mode 'gibbs'", "'async' or 'sync'"]),
        ({"max_steps": 0}, ["max_steps", "positive integer"]),
        ({"max_steps": -3}, ["max_steps"]),
        ({"max_steps": 2.5}, ["max_steps"]),
        ({"max_steps": True}, ["max_steps"]),
        ({"seed": "x"}, ["seed"]),
    ],
)
def test_recall_bad_arguments(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(PgmBoltzError) as info:
        recall(hebbian(seed_data()), [1, 1], **kwargs)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


def test_recall_bad_graphs() -> None:
    G = nx.Graph()
    G.add_node("a", domain="spin")
    G.add_node("b", role="visible")  # binary by default
    G.add_edge("a", "b", weight=1.0)
    with pytest.raises(GraphError, match=r"node 'b' has domain 'binary'.*domain='spin'"):
        recall(G, [1, 1])
    G.nodes["b"]["domain"] = "multinary"
    with pytest.raises(GraphError, match="node 'b' has domain 'multinary'"):
        recall(G, [1, 1])
    G.nodes["b"]["domain"] = "spin"
    G.edges["a", "b"]["weight"] = float("inf")
    with pytest.raises(GraphError, match=r"weight of edge \('a', 'b'\)"):
        recall(G, [1, 1])
    G.edges["a", "b"]["weight"] = 1.0
    G.nodes["a"]["bias"] = "big"
    with pytest.raises(GraphError, match="bias of node 'a'"):
        recall(G, [1, 1])
    with pytest.raises(GraphError, match="directed"):
        recall(nx.DiGraph(hebbian(seed_data())), [1, 1])
    with pytest.raises(GraphError, match="no nodes"):
        recall(nx.Graph(), [1])
    with pytest.raises(GraphError, match="to_networkx"):
        recall(np.eye(2), [1, 1])
    loop = hebbian(seed_data())
    loop.add_edge("x0", "x0", weight=1.0)
    with pytest.raises(GraphError, match="self-loop on node 'x0'"):
        recall(loop, [1, 1])
