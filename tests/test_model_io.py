"""Model data checks, intractable requests, save/load and to_networkx."""

from __future__ import annotations

import os
import pickle

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import random_graph

import pgm_boltz as pb
from pgm_boltz import io as pb_io


def mixed_model() -> pb.BoltzmannMachine:
    G = nx.Graph()
    G.add_node("b", role="visible", domain="binary")
    G.add_node("s", role="visible", domain="spin")
    G.add_node("m", role="visible", domain="multinary", levels=4)
    G.add_node("h", role="hidden")
    G.add_edges_from([("b", "h"), ("s", "h"), ("m", "h")])
    return pb.compile(G, dtype=torch.float64, seed=0)


# ------------------------------------------------------------------ data errors


@pytest.mark.parametrize("data, match", [
    ([[0, 1, 2, 0]], r"shape \(1, 4\); expected \(n_samples, 3\)"),
    ([[[0, 1, 2]]], r"shape \(1, 1, 3\)"),
    (np.zeros((0, 3)), "no rows"),
    ([[2, 1, 0]], r"column 0 \(node 'b'\) has value 2.0; the node's domain binary takes 0 or 1"),
    ([[1, 0, 0]], r"column 1 \(node 's'\) has value 0.0; the node's domain spin takes -1 or"),
    ([[1, 1, 1.5]], r"column 2 \(node 'm'\) has value 1.5.*multinary\(K=4\).*0..3"),
    ([[1, 1, 4]], r"column 2 \(node 'm'\)"),
    ([[1, 1, -1]], r"column 2 \(node 'm'\)"),
    ([[0, 1, 0], [np.nan, 1, 0]], r"row 1, column 0 \(node 'b'\) has value nan"),
    ([[0, np.inf, 0]], r"column 1 \(node 's'\)"),
    ([["a", 1, 0]], "not numeric"),
    ({"b": [0], "s": [1]}, "lacks visible node 'm'"),
    ({"b": [0], "s": [1], "m": [0], "h": [1]}, "key 'h', which is not a visible node"),
    ({"b": [0, 1], "s": [1], "m": [0]}, "equal length"),
])
def test_bad_data_raises_data_error_naming_the_column(data, match: str) -> None:
    model = mixed_model()
    with pytest.raises(pb.DataError, match=match):
        model.log_prob(data)
    with pytest.raises(pb.DataError, match=match):
        model.fit(data, epochs=1, progress=False)


def test_good_data_forms_agree() -> None:
    model = mixed_model()
    rows = np.array([[0, -1, 3], [1, 1, 0]])
    with torch.no_grad():
        a = model.log_prob(rows)
        b = model.log_prob(torch.as_tensor(rows))
        c = model.log_prob({"b": rows[:, 0], "s": torch.as_tensor(rows[:, 1]),
                            "m": list(rows[:, 2])})
        d = model.log_prob(rows[0])  # one row as a 1-D array
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    torch.testing.assert_close(a[:1], d)
    values = model.encode_data(rows)
    torch.testing.assert_close(values, torch.tensor([[0.0, -1.0, 1.0], [1.0, 1.0, 0.0]],
                                                    dtype=torch.float64))
    torch.testing.assert_close(model.decode_visible(values), torch.as_tensor(
        rows, dtype=torch.float64))


def test_validation_data_errors_name_validation_data() -> None:
    model = mixed_model()
    with pytest.raises(pb.DataError, match="validation_data row 0, column 0"):
        model.fit([[0, 1, 0]], epochs=1, progress=False, validation_data=[[5, 1, 0]])


# ------------------------------------------------------------------ intractable


def test_log_partition_on_a_too_large_model() -> None:
    model = pb.compile(pb.graphs.rbm(40, 30))
    assert model.plan.engine == "block-gibbs"
    for call in (model.log_partition, model.moments, model.marginals,
                 lambda: model.log_prob([[0] * 40]),
                 lambda: model.sample(2, method="exact"),
                 lambda: model.fit([[0] * 40], method="exact", epochs=1, progress=False)):
        with pytest.raises(pb.IntractableError) as info:
            call()
        msg = str(info.value)
        assert "1,073,741,824 states" in msg, msg
        assert "Gibbs" in msg and "ais" in msg
    # log P(v) with a given log Z still works (free energy sums the hidden out)
    with torch.no_grad():
        lp = model.log_prob([[0] * 40], log_partition=12.5)
    assert torch.isfinite(lp).all()


def test_threshold_is_respected_by_free_energy_enumeration() -> None:
    G = pb.graphs.fully_connected(3, 20)
    model = pb.compile(G, max_exact_states=2**10)
    assert len(model.plan.hidden_enumerated) == 19
    with pytest.raises(pb.IntractableError, match="over the threshold"):
        model.free_energy([[0, 1, 0]])


# ------------------------------------------------------------------ save / load


def lattice_model() -> pb.BoltzmannMachine:
    G = pb.graphs.lattice(3, 3, periodic=False, coupling=0.3)
    G.nodes[(1, 1)]["role"] = "hidden"
    G.nodes[(0, 0)]["bias"] = 0.7
    model = pb.compile(G, engine="block-gibbs", storage="sparse", max_exact_states=2**12,
                       dtype=torch.float64, seed=3)
    with torch.no_grad():
        model.weight.add_(torch.linspace(-1, 1, model.weight.numel(), dtype=torch.float64))
        model.bias.add_(torch.linspace(0.5, -0.5, model.n_nodes, dtype=torch.float64))
    return model


def assert_same_model(a: pb.BoltzmannMachine, b: pb.BoltzmannMachine) -> None:
    assert a.nodes == b.nodes
    assert a.edges == b.edges
    assert a.visible_nodes == b.visible_nodes
    assert [d for d in a.spec.domains] == [d for d in b.spec.domains]
    assert torch.equal(a.bias, b.bias)
    assert torch.equal(a.weight, b.weight)
    assert a.dtype == b.dtype
    assert a.plan.engine == b.plan.engine
    assert a.plan.storage == b.plan.storage
    assert a.plan.max_exact_states == b.plan.max_exact_states
    assert a.plan.blocks == b.plan.blocks
    assert str(a.plan) == str(b.plan)
    ga, gb = a.spec.graph, b.spec.graph
    assert dict(ga.nodes(data=True)) == dict(gb.nodes(data=True))


def test_save_load_round_trip_with_tuple_names(tmp_path) -> None:
    model = lattice_model()
    path = tmp_path / "lattice.pt"
    pb.save(model, path)
    loaded = pb.load(path)
    assert_same_model(model, loaded)
    assert loaded.nodes[4] == (1, 1) and isinstance(loaded.nodes[4], tuple)
    assert float(loaded.log_partition().detach()) == float(model.log_partition().detach())


def test_save_load_round_trip_random_graphs(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for k in range(5):
        G = random_graph(rng)
        model = pb.compile(G, dtype=torch.float64 if k % 2 else torch.float32, seed=k)
        model.fit(model.sample(20, seed=k), epochs=2, progress=False, seed=k)
        path = tmp_path / f"m{k}.pt"
        pb.save(model, str(path))
        loaded = pb.load(path)
        assert_same_model(model, loaded)


def test_save_load_mixed_name_types(tmp_path) -> None:
    G = nx.Graph()
    names = ["v", 3, 2.5, ("t", 1, ("nested", 2)), True]
    for n in names:
        G.add_node(n, role="visible", domain="spin")
    G.add_edges_from([(names[0], names[1]), (names[3], names[4]), (names[2], names[3])])
    model = pb.compile(G, dtype=torch.float64, seed=1)
    pb.save(model, tmp_path / "names.pt")
    loaded = pb.load(tmp_path / "names.pt")
    assert loaded.nodes == names
    assert_same_model(model, loaded)


def test_unsaveable_names_and_targets(tmp_path) -> None:
    G = nx.Graph()
    G.add_node(frozenset({1}), role="visible")
    with pytest.raises(pb.DataError, match="cannot save node name"):
        pb.save(pb.compile(G), tmp_path / "x.pt")
    assert not any(tmp_path.iterdir())
    with pytest.raises(pb.DataError, match="BoltzmannMachine"):
        pb.save({"bias": 1}, tmp_path / "x.pt")
    with pytest.raises(pb.DataError, match="does not exist"):
        pb.save(mixed_model(), tmp_path / "no" / "x.pt")
    with pytest.raises(pb.DataError, match="no model file"):
        pb.load(tmp_path / "missing.pt")


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch) -> None:
    path = tmp_path / "model.pt"
    old = mixed_model()
    pb.save(old, path)
    before = path.read_bytes()

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"partial garbage")  # half-written, then the disk fails
        raise OSError("disk full")

    monkeypatch.setattr(pb_io.torch, "save", broken_save)
    new = lattice_model()
    with pytest.raises(OSError, match="disk full"):
        pb.save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
    assert_same_model(old, pb.load(path))


def test_loading_arbitrary_pickles_is_refused(tmp_path) -> None:
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(pb.DataError, match="not a readable pgm_boltz model file"):
        pb.load(path)
    assert not marker.exists()
    torch.save(Evil(), tmp_path / "evil2.pt")
    with pytest.raises(pb.DataError):
        pb.load(tmp_path / "evil2.pt")
    assert not marker.exists()
    # plain data that is not a model file
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(pb.DataError, match="not a pgm_boltz model file"):
        pb.load(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00\x01 not a zip")
    with pytest.raises(pb.DataError):
        pb.load(tmp_path / "garbage.pt")


# ------------------------------------------------------------------ to_networkx


def test_to_networkx_carries_learned_values() -> None:
    model = lattice_model()
    G = model.to_networkx()
    assert G is not model.spec.graph
    for node, b in zip(model.nodes, model.bias.tolist()):
        assert G.nodes[node]["bias"] == b
        assert G.nodes[node]["role"] == model.spec.graph.nodes[node]["role"]
    for (u, v), w in zip(model.edges, model.weight.tolist()):
        assert G.edges[u, v]["weight"] == w
    # recompiling the exported graph gives the same model
    again = pb.compile(G, dtype=torch.float64)
    assert float(again.log_partition().detach()) == pytest.approx(
        float(model.log_partition().detach()), abs=1e-12)
    # the declared graph is untouched
    assert model.spec.graph.nodes[(0, 1)].get("bias") is None


def test_loaded_trained_model_keeps_history_and_learned_biases(tmp_path) -> None:
    model = pb.compile(pb.graphs.rbm(4, 2), dtype=torch.float64, seed=0)
    data = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
    model.fit(data, epochs=5, lr=0.1, progress=False, seed=0)
    with torch.no_grad():
        model.bias[:4] = torch.tensor([2.0, -2.0, 1.0, -1.0], dtype=torch.float64)
    pb.save(model, tmp_path / "trained.pt")
    loaded = pb.load(tmp_path / "trained.pt")
    assert loaded.history == model.history
    # continuing to train must not re-initialise the learned visible biases from the data
    loaded.fit(data, epochs=1, lr=1e-9, optimizer="sgd", progress=False, seed=0)
    torch.testing.assert_close(loaded.bias[:4].detach(), model.bias[:4].detach(), atol=1e-6,
                               rtol=0)
    assert len(loaded.history) == 6


def test_save_load_keeps_visible_init(tmp_path):
    """Chains of a loaded trained model start from the same data marginals."""
    m = pb.compile(pb.graphs.rbm(4, 2), seed=0, dtype=torch.float64)
    m.fit([[0, 1, 1, 1], [1, 1, 0, 1]], method="exact", epochs=2, progress=False, seed=0)
    assert m.visible_init is not None
    path = tmp_path / "m.pt"
    pb.save(m, path)
    m2 = pb.load(path)
    assert torch.equal(m2.visible_init, m.visible_init)
    fresh = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    pb.save(fresh, path)
    assert pb.load(path).visible_init is None
