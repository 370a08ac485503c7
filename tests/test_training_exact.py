"""Exact maximum-likelihood training, the seed example and the CLI."""

from __future__ import annotations

import math
import re

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import brute_force, brute_force_visible, random_graph

import pgm_boltz as pb
from pgm_boltz.cli import main
from pgm_boltz.examples_seed import COUNTS, PATTERNS, format_table, kl, run, seed_data


def analytic_seed_solution() -> dict[str, float]:
    """ML parameters of P(x) ∝ exp(b1 x1 + b2 x2 + W x1 x2) with P = P0 (log-ratios)."""
    p0 = dict(zip(PATTERNS, np.array(COUNTS) / sum(COUNTS)))
    lp = {k: math.log(v) for k, v in p0.items()}
    pp, pm, mp, mm = lp[(1, 1)], lp[(1, -1)], lp[(-1, 1)], lp[(-1, -1)]
    return {"b1": (pp + pm - mp - mm) / 4, "b2": (pp + mp - pm - mm) / 4,
            "W": (pp + mm - pm - mp) / 4}


@pytest.fixture(scope="module")
def seed_result() -> dict:
    return run(epochs=500, lr=0.05, verbose=False)


def test_seed_hebbian_parameters(seed_result: dict) -> None:
    h = seed_result["hebbian"]
    assert h["b1"] == pytest.approx(0.2, abs=1e-12)
    assert h["b2"] == pytest.approx(0.0, abs=1e-12)
    assert h["W"] == pytest.approx(0.4, abs=1e-12)
    p0 = np.array(COUNTS) / 10
    np.testing.assert_allclose(seed_result["p0"], p0)
    assert seed_result["kl_hebbian"] == pytest.approx(kl(p0, seed_result["p_hebbian"]))
    assert seed_result["kl_hebbian"] > 1e-3  # the Hebbian rule is not the ML solution


def test_seed_training_reaches_the_analytic_ml_solution(seed_result: dict) -> None:
    assert seed_result["kl_fit"] < 1e-6
    np.testing.assert_allclose(seed_result["p_fit"], seed_result["p0"], atol=1e-5)
    exact = analytic_seed_solution()
    assert exact["W"] == pytest.approx(0.4479398673, abs=1e-9)
    for k, v in exact.items():
        assert seed_result["fitted"][k] == pytest.approx(v, abs=1e-4), k
    table = format_table(seed_result)
    assert "Hebbian parameters: b1=0.200 b2=0.000 W=0.400" in table
    assert f"W={exact['W']:.3f}" in table


def test_nll_history_decreases_to_the_data_entropy() -> None:
    data = seed_data()
    G = pb.hopfield.hebbian(data, names=["x1", "x2"])
    model = pb.compile(G, dtype=torch.float64)
    hist = model.fit(data, method="exact", epochs=200, lr=0.5, optimizer="sgd",
                     init_bias="keep", progress=False, seed=0)
    nll = np.array([r["nll"] for r in hist])
    assert len(hist) == 200 and hist[-1]["epoch"] == 200
    assert all(r["method"] == "exact" for r in hist)
    assert np.all(np.diff(nll) <= 1e-12)  # full-batch exact gradient, small step
    p0 = np.array(COUNTS) / 10
    entropy = float(-(p0 * np.log(p0)).sum())
    assert nll[0] > entropy + 1e-3
    assert nll[-1] == pytest.approx(entropy, abs=1e-6)
    assert model.history is not None and len(model.history) == 200
    # continuing training appends to the history
    model.fit(data, epochs=3, lr=0.5, optimizer="sgd", progress=False, seed=0)
    assert [r["epoch"] for r in model.history[-3:]] == [201, 202, 203]


def test_history_nll_and_val_nll_are_exact() -> None:
    rng = np.random.default_rng(1)
    model = pb.compile(random_graph(rng, n_min=6, n_max=6), dtype=torch.float64, seed=0)
    train = model.sample(40, seed=1).numpy()
    val = model.sample(15, seed=2).numpy()
    hist = model.fit(train, epochs=4, lr=0.05, batch_size=8, progress=False, seed=0,
                     validation_data=val)
    assert {"epoch", "method", "nll", "val_nll"} <= set(hist[-1])
    states, logp = brute_force_visible(model)
    index = {tuple(s): k for k, s in enumerate(states.tolist())}
    exact_val = -np.mean([logp[index[tuple(r)]] for r in val.tolist()])
    exact_train = -np.mean([logp[index[tuple(r)]] for r in train.tolist()])
    assert hist[-1]["val_nll"] == pytest.approx(exact_val, abs=1e-9)
    assert hist[-1]["nll"] == pytest.approx(exact_train, abs=1e-9)
    assert "val_nll" not in model.fit(train, epochs=1, progress=False)[-1]


def test_exact_gradient_is_model_minus_data_moments() -> None:
    """The training loss's gradient for a fully visible model: <s>_model - <s>_data."""
    rng = np.random.default_rng(2)
    G = random_graph(rng, n_min=5, n_max=5, hidden=False)
    model = pb.compile(G, dtype=torch.float64)
    states, _ = brute_force_visible(model)
    data = states[rng.integers(0, len(states), 30)]
    from pgm_boltz.training import exact_nll

    values = model.encode_data(data)
    model.zero_grad()
    exact_nll(model, values).backward()
    _, mean, second = brute_force(model)
    e = model.edge_array
    torch.testing.assert_close(model.bias.grad, mean - values.mean(0), atol=1e-10, rtol=0)
    data_pairs = (values[:, e[:, 0]] * values[:, e[:, 1]]).mean(0)
    torch.testing.assert_close(model.weight.grad, second[e[:, 0], e[:, 1]] - data_pairs,
                               atol=1e-10, rtol=0)


def test_init_bias_from_data() -> None:
    data = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]])
    model = pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64)
    model.fit(data, epochs=1, lr=1e-12, optimizer="sgd", progress=False)
    m = np.clip(data.mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(model.bias[:3].detach().numpy(), np.log(m / (1 - m)), atol=1e-6)
    np.testing.assert_allclose(model.visible_init.numpy(), np.log(m / (1 - m)), atol=1e-9)
    # a declared bias is kept; init_bias="keep" keeps all
    G = pb.graphs.rbm(3, 2)
    G.nodes["v0"]["bias"] = -0.25
    declared = pb.compile(G, dtype=torch.float64)
    declared.fit(data, epochs=1, lr=1e-12, optimizer="sgd", progress=False)
    assert float(declared.bias[0].detach()) == pytest.approx(-0.25)
    kept = pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64)
    kept.fit(data, epochs=1, lr=1e-12, optimizer="sgd", progress=False, init_bias="keep")
    assert float(kept.bias[:3].detach().abs().max()) < 1e-9


def test_divergence_restores_last_finite_parameters() -> None:
    """Non-finite steps (no NLL monitored: PCD without monitoring) stop the run with the
    parameters of the last finite step; the finished epochs are kept."""
    data = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1]])

    def fresh(dtype: torch.dtype) -> pb.BoltzmannMachine:
        return pb.compile(pb.graphs.rbm(3, 2), dtype=dtype, seed=0, engine="block-gibbs")

    kw = dict(method="pcd", optimizer="sgd", progress=False, seed=0, monitor_nll=False,
              n_chains=4)
    for dtype, lr in ((torch.float32, 3e38), (torch.float64, 1e308)):
        model = fresh(dtype)
        with pytest.raises(pb.DivergenceError, match=r"restored.*lower lr") as info:
            model.fit(data, epochs=50, lr=lr, **kw)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        epoch = int(re.search(r"at epoch (\d+)", str(info.value)).group(1))
        assert len(model.history or []) == epoch - 1  # the finished epochs are kept
        if epoch >= 2:  # the restored values are those of a run stopped an epoch earlier
            reference = fresh(dtype)
            reference.fit(data, epochs=epoch - 1, lr=lr, **kw)
            for p, q in zip(model.parameters(), reference.parameters()):
                assert torch.equal(p.detach(), q.detach())


def test_divergence_by_a_growing_nll() -> None:
    """A learning rate that blows the NLL up (finite all along) stops the run at the
    first bad epoch, with the parameters at the end of the last good one."""
    data = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0]])
    model = pb.compile(pb.graphs.fully_connected(3), dtype=torch.float64, seed=0)
    start = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(pb.DivergenceError, match=r"NLL grew from .* to .*restored"):
        model.fit(data, epochs=50, lr=300.0, optimizer="sgd", progress=False, seed=0,
                  init_bias="keep")
    # full batch: the first step already blows up, so the last good parameters are the
    # starting ones
    for p, q in zip(model.parameters(), start):
        assert torch.equal(p.detach(), q)
    assert model.history is None
    # a sane rate on the same data trains normally
    h = model.fit(data, epochs=20, lr=0.1, progress=False, seed=0)
    assert h[-1]["nll"] < h[0]["nll"]


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"lr": -1}, "lr"),
    ({"lr": 0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"lr": 1e39}, "lr=1e\\+39 overflows the model's torch.float32"),
    ({"weight_decay": 1e300}, "weight_decay"),
    ({"batch_size": 0}, "batch_size"),
    ({"momentum": -0.5}, "momentum"),
    ({"weight_decay": float("inf")}, "weight_decay"),
    ({"optimizer": "adamw"}, "unknown optimizer"),
    ({"method": "mcmc"}, "unknown method"),
    ({"init_bias": "zeros"}, "init_bias"),
])
def test_bad_fit_arguments(kw: dict, match: str) -> None:
    model = pb.compile(pb.graphs.rbm(3, 2))
    with pytest.raises(pb.ArgumentError, match=match):
        model.fit([[0, 1, 1]], progress=False, **kw)
    assert model.history is None


def test_seeded_runs_are_identical() -> None:
    G = pb.graphs.rbm(4, 3)
    data = pb.compile(G, seed=9, init_scale=1.0).sample(30, seed=0)

    def trained(seed: int) -> list[torch.Tensor]:
        m = pb.compile(G, dtype=torch.float64, seed=1)
        m.fit(data, epochs=3, lr=0.1, batch_size=7, seed=seed, progress=False)
        return [p.detach().clone() for p in m.parameters()]

    a, b, c = trained(5), trained(5), trained(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_optimizers_and_auto_method() -> None:
    data = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [1, 1, 0]])
    for opt in ("adam", "sgd", torch.optim.RMSprop):
        m = pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64, seed=0)
        hist = m.fit(data, method="auto", epochs=30, lr=0.05, optimizer=opt, progress=False,
                     momentum=0.0, seed=0)
        assert hist[0]["method"] == "exact"
        assert hist[-1]["nll"] < hist[0]["nll"]
    m = pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64, seed=0)
    inst = torch.optim.SGD(m.parameters(), lr=0.1)
    m.fit({"v0": [1, 0], "v1": [0, 0], "v2": [1, 1]}, epochs=2, optimizer=inst,
          progress=False)
    assert len(m.history) == 2


def test_exact_training_on_a_gibbs_plan_model() -> None:
    """method='exact' works whenever exact work is feasible, whatever the plan's engine."""
    G = nx.cycle_graph(5)
    nx.set_node_attributes(G, "visible", "role")
    model = pb.compile(G, engine="chromatic-gibbs", dtype=torch.float64)
    hist = model.fit([[0, 1, 0, 1, 0], [1, 1, 0, 0, 1]], method="exact", epochs=10,
                     progress=False)
    assert hist[-1]["nll"] < hist[0]["nll"]


def test_progress_bar_runs(capsys, monkeypatch) -> None:
    """Bars show on a terminal (forced here: tests capture stderr) and stay off when the
    output is not one."""
    model = pb.compile(pb.graphs.rbm(3, 2))
    model.fit([[0, 1, 1]], epochs=2, progress=True)
    assert "nll" not in capsys.readouterr().err  # not a terminal: no bar
    monkeypatch.setenv("PGM_BOLTZ_PROGRESS", "1")
    model.fit([[0, 1, 1]], epochs=2, progress=True)
    assert "nll" in capsys.readouterr().err


def test_cli_seed_prints_the_table(capsys) -> None:
    assert main(["seed", "--epochs", "50"]) == 0
    out = capsys.readouterr().out
    assert "pattern    P0      P_hebbian  P_trained" in out
    assert "(-1, -1)   0.3000  0.2769" in out
    assert "Hebbian parameters: b1=0.200 b2=0.000 W=0.400" in out
    assert "Trained parameters:" in out


def test_cli_plan(tmp_path, capsys) -> None:
    path = tmp_path / "g.graphml"
    nx.write_graphml(pb.graphs.rbm(4, 2), path)
    assert main(["plan", str(path)]) == 0
    assert "Plan: engine=exact" in capsys.readouterr().out
    assert main(["plan", str(tmp_path / "missing.graphml")]) == 2
    G = nx.Graph()
    G.add_node("a", role="observed")
    nx.write_graphml(G, tmp_path / "bad.graphml")
    assert main(["plan", str(tmp_path / "bad.graphml")]) == 2
    assert "unknown role 'observed'" in capsys.readouterr().err
