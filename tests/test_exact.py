"""The exact engine against brute force (plain enumeration of every joint state).

Random graphs (hypothesis) with mixed roles and domains (binary, spin, multinary K=3..5),
3..8 nodes, parameters of scale ~1: log Z, log P(v) over every visible state, free energy,
moments, marginals, autograd gradients against central finite differences, and exact
samples against exact probabilities (chi-square).
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import (
    all_joint_states,
    brute_force,
    brute_force_visible,
    joint_log_weights,
    random_graph,
    random_graphs,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import pgm_boltz as pb
from pgm_boltz.engines import Limits, get_engine
from pgm_boltz.engines import enum_kernels as ex
from pgm_boltz.engines.enumeration import kernel_problem


def enum_plan(model):
    """The enumeration engine's plan for the model (whichever engine the plan chose)."""
    return get_engine("enumeration").cost(model.problem, Limits(2**40, 2**40)).plan

SETTINGS = settings(max_examples=25, deadline=None)


def compiled(G: nx.Graph, **kw) -> pb.BoltzmannMachine:
    return pb.compile(G, dtype=torch.float64, **kw)


def check_against_brute_force(model: pb.BoltzmannMachine, atol: float = 1e-10,
                              **logz_approx: float) -> tuple:
    """Assert the model's log Z (``pytest.approx(**logz_approx)``, default ``abs=atol``)
    and all its moments (``atol``) equal plain enumeration's; return the oracle."""
    log_z, mean, second = brute_force(model)
    approx = pytest.approx(log_z, **(logz_approx or {"abs": atol}))
    assert float(model.log_partition().detach()) == approx
    m, s = model.moments()
    torch.testing.assert_close(m, mean, atol=atol, rtol=0)
    torch.testing.assert_close(s, second, atol=atol, rtol=0)
    return log_z, mean, second


def chi2_ok(counts: np.ndarray, probs: np.ndarray, alpha: float = 1e-6) -> tuple[bool, str]:
    """Pearson chi-square goodness of fit, pooling cells with expectation < 5."""
    n = counts.sum()
    exp = probs * n
    big = exp >= 5
    obs_c = np.append(counts[big], counts[~big].sum())
    exp_c = np.append(exp[big], exp[~big].sum())
    keep = exp_c > 0
    obs_c, exp_c = obs_c[keep], exp_c[keep]
    stat = float(((obs_c - exp_c) ** 2 / exp_c).sum())
    df = max(len(exp_c) - 1, 1)
    crit = float(stats.chi2.ppf(1 - alpha, df))
    return stat < crit, f"chi2={stat:.1f} (df={df}, critical {crit:.1f})"


# ------------------------------------------------------------------ log Z and moments


@SETTINGS
@given(random_graphs())
def test_log_partition_and_moments_match_brute_force(G: nx.Graph) -> None:
    model = compiled(G)
    log_z, mean, second = check_against_brute_force(model)
    # all_pairs=False leaves only pairs of two summed-out nodes at 0
    m2, s2 = model.moments(all_pairs=False)
    torch.testing.assert_close(m2, mean, atol=1e-10, rtol=0)
    summed = np.setdiff1d(np.arange(model.n_nodes), model.plan.enum_index)
    keep = torch.ones(model.n_nodes, model.n_nodes, dtype=torch.bool)
    keep[np.ix_(summed, summed)] = False
    keep[np.arange(model.n_nodes), np.arange(model.n_nodes)] = True
    torch.testing.assert_close(s2[keep], second[keep], atol=1e-10, rtol=0)


@settings(max_examples=20, deadline=None)
@given(random_graphs(n_min=5, n_max=8), st.sampled_from([2, 3, 8, 64]))
def test_parallel_chunked_walk_matches_brute_force(G: nx.Graph, min_chunk: int) -> None:
    """Small tables force the chunked walk (last enumerated nodes fixed per chunk, mixed
    radix included) on small graphs; results must not depend on the split."""
    model = compiled(G)
    log_z, mean, second = brute_force(model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "_TABLE_STATES", min_chunk)
        prob = kernel_problem(model.problem, enum_plan(model), model.bias, model.weight)
        n_low, n_chunks = ex._split(prob)
        assert n_chunks == int(np.prod(prob.KE[n_low:]))
        assert ex.exact_log_partition(prob) == pytest.approx(log_z, abs=1e-10)
        m, s = model.moments()
        z = model.log_partition()
        z.backward()
    torch.testing.assert_close(m, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(s, second, atol=1e-10, rtol=0)
    e = model.edge_array
    torch.testing.assert_close(model.bias.grad, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(model.weight.grad, second[e[:, 0], e[:, 1]], atol=1e-10,
                               rtol=0)


@SETTINGS
@given(random_graphs())
def test_marginals_match_brute_force(G: nx.Graph) -> None:
    model = compiled(G)
    X = all_joint_states(model)
    lw = joint_log_weights(model, X)
    p = np.exp(lw - np.logaddexp.reduce(lw))
    marg = model.marginals()
    assert list(marg) == model.nodes
    for i, node in enumerate(model.nodes):
        vals = model.spec.domains[i].values()
        expected = np.array([p[X[:, i] == v].sum() for v in vals])
        np.testing.assert_allclose(marg[node], expected, atol=1e-10, rtol=0)
        assert marg[node].sum() == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(random_graphs())
def test_log_prob_and_free_energy_over_all_visible_states(G: nx.Graph) -> None:
    model = compiled(G)
    states, logp = brute_force_visible(model)
    log_z, _, _ = brute_force(model)
    with torch.no_grad():
        got = model.log_prob(states).numpy()
        free = model.free_energy(states).numpy()
    np.testing.assert_allclose(got, logp, atol=1e-10, rtol=0)
    assert np.logaddexp.reduce(got) == pytest.approx(0.0, abs=1e-10)  # sums to 1
    # F(v) = -log sum_h exp(-E(v, h)) = -(log P(v) + log Z)
    np.testing.assert_allclose(free, -(logp + log_z), atol=1e-10, rtol=0)
    # the mapping form names columns by node
    mapping = {node: states[:, c] for c, node in enumerate(model.visible_nodes)}
    with torch.no_grad():
        np.testing.assert_allclose(model.log_prob(mapping).numpy(), logp, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(random_graphs(n_max=6))
def test_log_partition_gradient_is_moments_and_matches_finite_differences(G) -> None:
    model = compiled(G)
    _, mean, second = brute_force(model)
    model.zero_grad()
    model.log_partition().backward()
    e = model.edge_array
    torch.testing.assert_close(model.bias.grad, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(model.weight.grad, second[e[:, 0], e[:, 1]], atol=1e-10,
                               rtol=0)
    fd_b, fd_w = finite_differences(model, lambda: float(model.log_partition().detach()))
    torch.testing.assert_close(model.bias.grad, fd_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.weight.grad, fd_w, atol=1e-6, rtol=0)


@settings(max_examples=15, deadline=None)
@given(random_graphs(n_max=6), st.integers(0, 2**31 - 1))
def test_log_likelihood_gradient_matches_finite_differences(G, seed) -> None:
    model = compiled(G)
    states, logp = brute_force_visible(model)
    rng = np.random.default_rng(seed)
    data = states[rng.integers(0, len(states), size=7)]
    model.zero_grad()
    ll = model.log_prob(data).mean()
    ll.backward()

    def value() -> float:
        with torch.no_grad():
            return float(model.log_prob(data).mean())

    fd_b, fd_w = finite_differences(model, value)
    torch.testing.assert_close(model.bias.grad, fd_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.weight.grad, fd_w, atol=1e-6, rtol=0)


def finite_differences(model, f, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of ``f()`` in every bias and weight (float64)."""
    out = []
    for p in (model.bias, model.weight):
        g = torch.zeros_like(p)
        for k in range(p.numel()):
            with torch.no_grad():
                old = p[k].item()
                p[k] = old + eps
                up = f()
                p[k] = old - eps
                down = f()
                p[k] = old
            g[k] = (up - down) / (2 * eps)
        out.append(g)
    return out[0], out[1]


# ------------------------------------------------------------------ sampling


@settings(max_examples=6, deadline=None)
@given(random_graphs(n_max=6), st.integers(0, 2**31 - 1))
def test_exact_samples_follow_the_exact_distribution(G, seed) -> None:
    model = compiled(G)
    n = 20_000
    # visible states against the brute-force visible marginal
    states, logp = brute_force_visible(model)
    draws = model.sample(n, seed=seed).numpy()
    assert draws.shape == (n, model.n_visible)
    index = {tuple(s): k for k, s in enumerate(states.tolist())}
    counts = np.bincount([index[tuple(r)] for r in draws.tolist()], minlength=len(states))
    ok, msg = chi2_ok(counts, np.exp(logp))
    assert ok, msg
    # joint states (hidden included) against the joint distribution
    joint = model.sample(n, seed=seed + 1, return_hidden=True).numpy()
    X = all_joint_states(model)
    lw = joint_log_weights(model, X)
    p = np.exp(lw - np.logaddexp.reduce(lw))
    codes = np.stack([d.code_of(X[:, i]) for i, d in enumerate(model.spec.domains)],
                     axis=1)
    jindex = {tuple(s): k for k, s in enumerate(codes.tolist())}
    jcounts = np.bincount([jindex[tuple(r)] for r in joint.tolist()], minlength=len(X))
    ok, msg = chi2_ok(jcounts, p)
    assert ok, msg


def test_sampling_is_seeded_and_marginals_within_standard_errors() -> None:
    model = compiled(random_graph(np.random.default_rng(3), n_min=6, n_max=6,
                                  domains=("binary", "spin")))
    a = model.sample(5000, seed=11)
    b = model.sample(5000, seed=11)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.sample(5000, seed=12))
    marg = model.marginals()
    for c, node in enumerate(model.visible_nodes):
        p1 = marg[node][1]
        d = model.spec.domains[model.visible_index[c]]
        freq = float(((a[:, c] - d.codes()[0]) / (d.codes()[1] - d.codes()[0])).mean())
        se = math.sqrt(p1 * (1 - p1) / 5000)
        assert abs(freq - p1) < 5 * se + 1e-12


def test_sample_rejects_bad_arguments() -> None:
    model = compiled(pb.graphs.rbm(3, 2))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(pb.ArgumentError):
            model.sample(bad)
    with pytest.raises(pb.ArgumentError, match="unknown sampling method"):
        model.sample(3, method="magic")


# ------------------------------------------------------------------ special structures


@pytest.mark.parametrize("domain", ["binary", "spin"])
def test_rbm_sums_out_larger_layer(domain: str) -> None:
    G = pb.graphs.rbm(7, 3, domain=domain)
    model = compiled(G, seed=1, init_scale=1.0)
    assert sorted(model.plan.enumerated) == ["h0", "h1", "h2"]
    check_against_brute_force(model)


def test_large_couplings_rescale_and_refresh_paths() -> None:
    """Many states (128 chunks of the table walk) and log-weights spanning > 50 nats
    (the groups' sums are rescaled)."""
    rng = np.random.default_rng(0)
    G = pb.graphs.fully_connected(18, domain="spin")
    model = compiled(G)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(rng.normal(0, 3.0, model.weight.shape)))
        model.bias.copy_(torch.as_tensor(rng.normal(0, 5.0, 18)))
    assert len(model.plan.enumerated) == 17  # 131,072 states
    check_against_brute_force(model, atol=1e-9, rel=1e-12)


def test_multinary_enumerated_mixed_radix_walk() -> None:
    """A fully connected multinary machine: mixed-radix table rows and chunks."""
    rng = np.random.default_rng(5)
    G = nx.complete_graph(6)
    for i in G.nodes:
        G.nodes[i].update(role="visible", domain="multinary", levels=3 + i % 3,
                          bias=float(rng.normal()))
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.normal())
    model = compiled(G)
    check_against_brute_force(model)


def test_no_edges_everything_summed_out() -> None:
    G = nx.Graph()
    G.add_node("a", role="visible", domain="spin", bias=0.3)
    G.add_node("b", role="hidden", domain="multinary", levels=4, bias=-1.2)
    G.add_node("c", role="visible", bias=2.0)
    model = compiled(G)
    assert model.plan.enumerated == []
    check_against_brute_force(model, atol=1e-12)
    states, logp = brute_force_visible(model)
    with torch.no_grad():
        np.testing.assert_allclose(model.log_prob(states).numpy(), logp, atol=1e-12)
    draws = model.sample(4000, seed=0, return_hidden=True)
    assert set(draws[:, 1].tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_hidden_vertex_cover_enumerated_in_free_energy() -> None:
    """Hidden units coupled to each other: log P(v) enumerates a hidden vertex cover."""
    G = pb.graphs.dbm([3, 3, 2])
    for u, v in [("h1_0", "h1_1"), ("h2_0", "h2_1")]:
        G.add_edge(u, v)  # hidden-hidden edges
    model = compiled(G, seed=4, init_scale=1.0)
    assert model.plan.hidden_enumerated
    states, logp = brute_force_visible(model)
    with torch.no_grad():
        np.testing.assert_allclose(model.log_prob(states).numpy(), logp, atol=1e-10)


def test_forced_gibbs_engine_still_exact_oracle() -> None:
    G = random_graph(np.random.default_rng(7), n_min=6, n_max=6)
    model = compiled(G, engine="chromatic-gibbs")
    assert model.plan.engine == "chromatic-gibbs"
    log_z, mean, _ = brute_force(model)
    assert float(model.log_partition().detach()) == pytest.approx(log_z, abs=1e-10)
    torch.testing.assert_close(model.moments()[0], mean, atol=1e-10, rtol=0)


def test_float32_model_agrees_with_float64() -> None:
    G = random_graph(np.random.default_rng(8), n_min=7, n_max=7)
    m32 = pb.compile(G, dtype=torch.float32)
    m64 = compiled(G)
    z32 = m32.log_partition()
    assert z32.dtype == torch.float32
    assert float(z32) == pytest.approx(float(m64.log_partition().detach()), abs=1e-5)
    states, _ = brute_force_visible(m64)
    with torch.no_grad():
        np.testing.assert_allclose(m32.log_prob(states).double().numpy(),
                                   m64.log_prob(states).numpy(), atol=1e-4)


def test_kernel_functions_directly() -> None:
    """The ExactProblem API: log Z, moments and enumerated draws."""
    model = compiled(random_graph(np.random.default_rng(9), n_min=5, n_max=5,
                                  domains=("spin",), p_edge=1.0, hidden=False))
    prob = kernel_problem(model.problem, enum_plan(model), model.bias, model.weight)
    log_z, mean, second = brute_force(model)
    assert ex.exact_log_partition(prob) == pytest.approx(log_z, abs=1e-12)
    mom = ex.exact_moments(prob, model.n_nodes, all_pairs=True)
    off = ~np.eye(model.n_nodes, dtype=bool)
    np.testing.assert_allclose(mom.dense()[off], second.numpy()[off], atol=1e-12)
    draws = ex.exact_sample_enumerated(prob, log_z, 50, torch.Generator().manual_seed(0))
    assert draws.shape == (50, len(prob.enum))
    assert set(np.unique(draws)) <= {-1.0, 1.0}


def test_brute_force_helper_itself() -> None:
    """The oracle: two independent spins with biases b have log Z = sum log 2cosh b."""
    G = nx.Graph()
    for name, b in (("x", 0.3), ("y", -0.7)):
        G.add_node(name, role="visible", domain="spin", bias=b)
    model = compiled(G)
    log_z, mean, second = brute_force(model)
    assert log_z == pytest.approx(math.log(2 * math.cosh(0.3)) + math.log(2 * math.cosh(0.7)))
    np.testing.assert_allclose(mean.numpy(), np.tanh([0.3, -0.7]))
    assert float(second[0, 1]) == pytest.approx(math.tanh(0.3) * math.tanh(-0.7))
    assert [tuple(s) for s in all_joint_states(model)] == list(
        itertools.product([-1.0, 1.0], repeat=2))


# ------------------------------------------------------------------ table walk: all forms


@settings(max_examples=15, deadline=None)
@given(random_graphs(n_min=4, n_max=8, scale=150.0), st.sampled_from([2, 4, 1 << 10]))
def test_huge_parameters_take_the_log_form_and_stay_exact(G: nx.Graph, table: int) -> None:
    """Fields of hundreds of nats push the table walk off the product form (its factors
    would leave e^±300) onto the log form; rescaled sums must still match brute force."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "_TABLE_STATES", table)
        check_against_brute_force(compiled(G), atol=1e-9, rel=1e-12, abs=1e-9)


def _rbm_reference(W: np.ndarray, bv: np.ndarray, bh: np.ndarray,
                   levels: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """log Z, <v>, <h>, <v h^T> of an RBM with binary hidden units and visible units of
    ``levels`` levels k/(K-1), k < K, by enumerating the hidden layer in plain numpy."""
    nh = len(bh)
    H = np.array(list(itertools.product([0.0, 1.0], repeat=nh)))
    F = H @ W.T + bv  # (2^nh, nv) visible fields
    k = np.arange(levels) / (levels - 1)
    lse = np.logaddexp.reduce(F[:, :, None] * k, axis=2)
    mu = (np.exp(F[:, :, None] * k - lse[:, :, None]) * k).sum(2)
    lw = H @ bh + lse.sum(1)
    log_z = float(np.logaddexp.reduce(lw))
    p = np.exp(lw - log_z)
    return log_z, p @ mu, p @ H, (mu * p[:, None]).T @ H


@pytest.mark.parametrize("levels", [2, 4])
def test_many_summed_units_with_strong_fields_split_the_product(levels: int) -> None:
    """600 summed-out visible units with fields of ~+6 nats: the product of their
    normalisers (e^{~3600}) is taken in segments, each within e^300."""
    rng = np.random.default_rng(3)
    nv, nh = 600, 3
    domain = "binary" if levels == 2 else "multinary"
    model = compiled(pb.graphs.rbm(nv, nh, domain=domain, hidden_domain="binary", **(
        {"levels": levels} if levels > 2 else {})))
    W = rng.normal(0, 0.5, (nv, nh))
    bv = rng.normal(6.0, 1.0, nv)
    bh = rng.normal(0, 1.0, nh)
    vi, hi = model.visible_index, model.hidden_index
    with torch.no_grad():
        b = np.zeros(model.n_nodes)
        b[vi], b[hi] = bv, bh
        model.bias.copy_(torch.as_tensor(b))
        e = model.edge_array
        J = np.zeros((model.n_nodes, model.n_nodes))
        J[np.ix_(vi, hi)] = W
        J = J + J.T
        model.weight.copy_(torch.as_tensor(J[e[:, 0], e[:, 1]]))
    log_z, mv, mh, vh = _rbm_reference(W, bv, bh, levels)
    assert float(model.log_partition().detach()) == pytest.approx(log_z, rel=1e-13)
    m, s = model.moments(all_pairs=False)
    np.testing.assert_allclose(m.numpy()[vi], mv, atol=1e-10)
    np.testing.assert_allclose(m.numpy()[hi], mh, atol=1e-10)
    np.testing.assert_allclose(s.numpy()[np.ix_(vi, hi)], vh, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(random_graphs(n_min=6, n_max=8))
def test_groups_and_threads_do_not_change_the_numbers(G: nx.Graph) -> None:
    """Many chunks in few groups, walked by one thread or two: identical results (the
    groups merge in order), equal to brute force."""
    model = compiled(G)
    log_z, mean, second = brute_force(model)
    prob = kernel_problem(model.problem, enum_plan(model), model.bias, model.weight)
    results = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "_TABLE_STATES", 2)
        mp.setattr(ex, "_GROUPS", 3)
        for threads in (1, 2):
            mp.setattr(ex.nb.config, "NUMBA_NUM_THREADS", threads)
            results.append(ex.exact_moments(prob, model.n_nodes, all_pairs=True))
    a, b = results
    assert a.log_z == b.log_z
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.dense(), b.dense())
    assert a.log_z == pytest.approx(log_z, abs=1e-10)
    np.testing.assert_allclose(a.mean, mean.numpy(), atol=1e-10)
    off = ~np.eye(model.n_nodes, dtype=bool)  # the engine leaves <s_i^2> to the model
    np.testing.assert_allclose(a.dense()[off], second.numpy()[off], atol=1e-10)
