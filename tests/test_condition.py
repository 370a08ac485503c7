"""``model.condition(evidence)`` against the conditional computed by brute force."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import all_joint_states, joint_log_weights, random_graph

import pgm_boltz as pb
from pgm_boltz.samplers import gibbs_sampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def to_codes(model, X: np.ndarray) -> np.ndarray:
    return np.stack([d.code_of(X[:, i]) for i, d in enumerate(model.spec.domains)], axis=1)


def brute_conditional(model, evidence: dict):
    """Joint codes of all states consistent with the evidence, their conditional
    probabilities, and ``log sum exp(-E)`` over them."""
    X = all_joint_states(model)
    C = to_codes(model, X)
    keep = np.ones(len(X), dtype=bool)
    for node, code in evidence.items():
        keep &= C[:, model.nodes.index(node)] == code
    lw = joint_log_weights(model, X[keep])
    logz = np.logaddexp.reduce(lw)
    return C[keep], np.exp(lw - logz), float(logz)


def pick_evidence(model, rng, k: int) -> dict:
    idx = rng.choice(model.n_nodes, size=k, replace=False)
    ev = {}
    for i in idx:
        d = model.spec.domains[i]
        ev[model.nodes[i]] = float(rng.choice(d.codes()))
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_conditional_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = pb.compile(random_graph(rng, n_min=7, n_max=9, scale=0.8), seed=0,
                       dtype=torch.float64)
    ev = pick_evidence(model, rng, 3)
    cond = model.condition(ev)
    assert cond.plan.engine == "exact"
    C, p, logz = brute_conditional(model, ev)
    assert cond.log_partition() == pytest.approx(logz, abs=1e-8)
    marg = cond.marginals()
    assert list(marg) == cond.free_nodes
    for node in cond.free_nodes:
        i = model.nodes.index(node)
        codes = model.spec.domains[i].codes()
        want = np.array([p[C[:, i] == c].sum() for c in codes])
        np.testing.assert_allclose(marg[node], want, atol=1e-8)
    # exact samples: full joint codes, evidence in place, free frequencies ~ p
    n = 4000
    xs = cond.sample(n, seed=seed, return_hidden=True).numpy()
    assert xs.shape == (n, model.n_nodes)
    for node, code in ev.items():
        assert (xs[:, model.nodes.index(node)] == code).all()
    for node in cond.free_nodes:
        i = model.nodes.index(node)
        for c, q in zip(model.spec.domains[i].codes(), marg[node]):
            f = (xs[:, i] == c).mean()
            assert abs(f - q) < 5 * np.sqrt(q * (1 - q) / n) + 1e-3
    free = cond.sample(3, seed=0, free_only=True)
    assert free.shape == (3, len(cond.free_nodes))
    vis = cond.sample(3, seed=0)  # like model.sample: the visible units
    assert vis.shape == (3, model.n_visible)


def test_log_partition_gives_evidence_probability() -> None:
    rng = np.random.default_rng(7)
    model = pb.compile(random_graph(rng, n_min=6, n_max=7), seed=0, dtype=torch.float64)
    node = model.nodes[0]
    codes = model.spec.domains[0].codes()
    lz = [model.condition({node: float(c)}).log_partition() for c in codes]
    total = np.logaddexp.reduce(lz)
    assert total == pytest.approx(float(model.log_partition().detach()), abs=1e-8)
    marg = model.marginals()[node]
    np.testing.assert_allclose(np.exp(np.array(lz) - total), marg, atol=1e-8)


@pytest.mark.parametrize("seed", [3, 4])
def test_gibbs_conditional_matches_brute_force(seed: int) -> None:
    """With a threshold of 1 state the rest is sampled by Gibbs, evidence clamped."""
    rng = np.random.default_rng(seed)
    G = random_graph(rng, n_min=9, n_max=10, p_edge=0.5, scale=0.7)
    model = pb.compile(G, seed=0, dtype=torch.float64)
    ev = pick_evidence(model, rng, 3)
    cond = model.condition(ev, max_exact_states=1)
    assert cond.plan.engine in ("block-gibbs", "chromatic-gibbs")
    C, p, _ = brute_conditional(model, ev)
    n = 3000
    xs = cond.sample(n, seed=seed, steps=150, return_hidden=True).numpy()
    for node, code in ev.items():
        assert (xs[:, model.nodes.index(node)] == code).all()
    for node in cond.free_nodes:
        i = model.nodes.index(node)
        for c in model.spec.domains[i].codes():
            q = p[C[:, i] == c].sum()
            f = (xs[:, i] == c).mean()
            assert abs(f - q) < 5 * np.sqrt(q * (1 - q) / n) + 2e-3, (node, c, f, q)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_clamped_block_sampler_matches_brute_force(backend: str) -> None:
    """gibbs_sampler(clamped=...) (the positive phase of CD/PCD) with evidence written
    into the clamped columns samples the exact conditional, partial blocks included."""
    rng = np.random.default_rng(11)
    G = random_graph(rng, n_min=9, n_max=10, p_edge=0.5, scale=0.7)
    model = pb.compile(G, engine="block-gibbs" if nx.is_bipartite(G) else
                       "chromatic-gibbs", dtype=torch.float64)
    ev = pick_evidence(model, rng, 4)
    idx = np.array([model.nodes.index(u) for u in ev])
    C, p, _ = brute_conditional(model, ev)
    s = gibbs_sampler(model, clamped=idx, backend=backend)
    gen = torch.Generator().manual_seed(0)
    n = 3000
    x = s.init(n, gen)
    vals = torch.as_tensor(model.domains.encode(torch.as_tensor(
        [[ev.get(u, 0.0) for u in model.nodes]], dtype=torch.float64))[0, idx])
    x[:, torch.as_tensor(idx)] = vals
    s.sweep(x, 100, generator=gen)
    xs = model.domains.decode(x).numpy()
    for i in np.setdiff1d(np.arange(model.n_nodes), idx):
        for c in model.spec.domains[i].codes():
            q = p[C[:, i] == c].sum()
            f = (xs[:, i] == c).mean()
            assert abs(f - q) < 5 * np.sqrt(q * (1 - q) / n) + 2e-3


def test_condition_validates_evidence() -> None:
    G = pb.graphs.rbm(3, 2)
    G.nodes["v2"].update(domain="multinary", levels=3)
    G.nodes["h0"]["domain"] = "spin"
    model = pb.compile(G, seed=0)
    with pytest.raises(pb.DataError, match="'nope'"):
        model.condition({"nope": 1})
    with pytest.raises(pb.DataError, match=r"'v0'.*binary"):
        model.condition({"v0": 2})
    with pytest.raises(pb.DataError, match=r"'h0'.*spin"):
        model.condition({"h0": 0})
    with pytest.raises(pb.DataError, match=r"'v2'.*0\.\.2"):
        model.condition({"v2": 3})
    with pytest.raises(pb.DataError, match="'v1'"):
        model.condition({"v1": "a"})
    with pytest.raises(pb.DataError, match="mapping"):
        model.condition([("v0", 1)])
    assert model.condition({"v2": torch.tensor(2), "h0": np.int64(-1)}).free_nodes == \
        ["v0", "v1", "h1"]


def test_everything_clamped_and_nothing_clamped() -> None:
    model = pb.compile(pb.graphs.rbm(2, 1), seed=0, dtype=torch.float64)
    ev = {"v0": 1, "v1": 0, "h0": 1}
    cond = model.condition(ev)
    assert cond.free_nodes == [] and cond.marginals() == {}
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    assert cond.log_partition() == pytest.approx(float(-model.energy(x).detach()))
    assert cond.sample(2, seed=0, return_hidden=True).tolist() == [[1.0, 0.0, 1.0]] * 2
    assert cond.sample(2, seed=0).tolist() == [[1.0, 0.0]] * 2
    whole = model.condition({})
    assert whole.log_partition() == pytest.approx(float(model.log_partition().detach()))


def test_conditioned_log_prob_is_the_conditional_likelihood() -> None:
    """log P(v | evidence) with free hidden units summed out, against brute force; rows
    that contradict the evidence score -inf; probabilities sum to 1."""
    model = pb.compile(pb.graphs.rbm(4, 3), seed=0, dtype=torch.float64, init_scale=0.8)
    for ev in ({"v0": 1}, {"v1": 0, "h0": 1}, {"h2": 0}):
        cond = model.condition(ev)
        X = all_joint_states(model)
        b = model.bias.detach().numpy()
        J = model.coupling_matrix().detach().numpy()
        lw = X @ b + 0.5 * np.einsum("si,ij,sj->s", X, J, X)
        keep = np.ones(len(X), dtype=bool)
        for node, code in ev.items():
            keep &= X[:, model.nodes.index(node)] == code
        vis = X[:, model.visible_index]
        rows = np.unique(vis, axis=0)
        lp = cond.log_prob(rows).detach().numpy()
        log_ev = np.logaddexp.reduce(lw[keep])
        for r, got in zip(rows, lp):
            sel = keep & (vis == r).all(1)
            want = np.logaddexp.reduce(lw[sel]) - log_ev if sel.any() else -np.inf
            assert got == pytest.approx(want, abs=1e-10) or (got == want == -np.inf)
        assert float(np.exp(lp).sum()) == pytest.approx(1.0, abs=1e-10)
