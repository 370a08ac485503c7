"""Parallel tempering against the exact engine.

The hard case is a Curie-Weiss ferromagnet in its ordered phase with a small field: two
modes (magnetisation ±) of unequal weight separated by a barrier that single-site and
block Gibbs cross only after thousands of sweeps. Plain Gibbs chains keep the mode they
fall into, so their mode weights are wrong; the tests assert that they are (the check
has power) and that tempering, for the same number of sweeps, gets the mode weight, the
magnetisation and the pair correlations within statistical error. Final states of
independent chains are independent draws, so standard errors come from their spread.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import all_joint_states, gibbs_moment_z, joint_log_weights, random_graph

import pgm_boltz as pb
from pgm_boltz.samplers import (
    TemperingSampler,
    gibbs_sampler,
    make_sampler,
    sampler_options,
    tempering_statistics,
)
from pgm_boltz.samplers import tempering as tempering_module
from pgm_boltz.training.contrastive import PCDObjective
from pgm_boltz.training.exact import exact_nll

pytestmark = pytest.mark.usefixtures("one_torch_thread")

Z_TOL = 4.5
N_CW, J_CW, H_CW = 20, 2.0, 0.03


def curie_weiss(n: int = N_CW, J: float = J_CW, h: float = H_CW, **kw) -> pb.BoltzmannMachine:
    """``E = -(J/n) sum_{i<j} s_i s_j - h sum_i s_i`` over spins (ordered for J > 1)."""
    G = pb.graphs.fully_connected(n, domain="spin")
    for u, v in G.edges:
        G.edges[u, v]["weight"] = J / n
    for u in G.nodes:
        G.nodes[u]["bias"] = h
    return pb.compile(G, seed=0, **kw)


def curie_weiss_exact(n: int = N_CW, J: float = J_CW, h: float = H_CW
                      ) -> tuple[float, float, float]:
    """Closed form over the magnetisation M: ``P(M > 0)`` (M = 0 counted half), mean
    ``<s_i>`` and pair correlation ``<s_i s_j>``."""
    k = np.arange(n + 1)
    M = 2 * k - n
    logw = np.array([math.lgamma(n + 1) - math.lgamma(a + 1) - math.lgamma(n - a + 1)
                     for a in k]) + J / n * (M**2 - n) / 2 + h * M
    p = np.exp(logw - logw.max())
    p /= p.sum()
    pos = float(p[M > 0].sum() + 0.5 * p[M == 0].sum())
    return pos, float(p @ M) / n, float(p @ ((M**2 - n) / (n * (n - 1))))


def draw_stats(x: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Per-draw statistics of spin draws (C, n): estimate and standard error."""
    x = x.double()
    n = x.shape[1]
    M = x.sum(1)
    per = {"P(M>0)": (M > 0).double() + 0.5 * (M == 0).double(), "mean": M / n,
           "pair": (M**2 - n) / (n * (n - 1))}
    return {k: (float(v.mean()), float(v.std() / len(v) ** 0.5)) for k, v in per.items()}


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bimodal_mode_weights_right_where_gibbs_is_wrong(backend: str) -> None:
    model = curie_weiss()
    pos, mean, pair = curie_weiss_exact()
    m1, m2 = model.moments()  # the exact engine agrees with the closed form
    iu = np.triu_indices(N_CW, 1)
    assert abs(float(m1.mean()) - mean) < 1e-5
    assert abs(float(m2[iu].mean()) - pair) < 1e-5
    exact = {"P(M>0)": pos, "mean": mean, "pair": pair}
    C, steps = 2000, 200
    pt = draw_stats(model.sample(C, method="tempering", steps=steps, seed=1,
                                 backend=backend, n_replicas=5, adapt_sweeps=100))
    for k, (est, se) in pt.items():
        assert abs(est - exact[k]) < Z_TOL * se, (k, est, exact[k], se)
    # plain Gibbs with the same sweeps, and with as many sweeps as all 5 replicas took
    for gibbs_steps in (steps, 5 * steps):
        gb = draw_stats(model.sample(C, method="gibbs", steps=gibbs_steps, seed=1,
                                     backend=backend))
        est, se = gb["P(M>0)"]
        assert abs(est - pos) > 6 * se, (gibbs_steps, est, pos, se)


def non_bipartite(seed: int) -> pb.BoltzmannMachine:
    import networkx as nx

    rng = np.random.default_rng(seed)
    while True:
        G = random_graph(rng, n_min=7, n_max=11, p_edge=0.4, scale=1.0, max_states=1 << 14)
        if not nx.is_bipartite(G):
            return pb.compile(G, engine="chromatic-gibbs", dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_random_models_match_exact_moments(seed: int, backend: str) -> None:
    """Mixed domains, hidden units, odd cycles; a random base model on odd seeds (the
    swap rule must use ``D = E + b0 . x``)."""
    model = non_bipartite(seed)
    b0 = None
    if seed % 2:
        b0 = torch.randn(model.n_nodes, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    s = TemperingSampler(model, backend=backend, base_bias=b0, n_replicas=4,
                         ladder="linear")
    assert s.backend == backend
    z = gibbs_moment_z(model, s, chains=800, burn=40, keep=30, seed=seed)
    assert z.max() < 5.0, float(z.max())


def test_random_model_with_wrong_swap_rule_fails_the_check(monkeypatch) -> None:
    """Power: the acceptance with the base term left out (``D = E``) is caught."""
    model = non_bipartite(1)
    b0 = 2.0 * torch.randn(model.n_nodes, generator=torch.Generator().manual_seed(1),
                           dtype=torch.float64)
    s = TemperingSampler(model, base_bias=b0, n_replicas=4, ladder="linear")
    monkeypatch.setattr(s, "_energies", lambda Y: model.energy(Y).double())
    z = gibbs_moment_z(model, s, chains=800, burn=40, keep=30, seed=1)
    assert z.max() > 2 * 5.0, float(z.max())


def test_tempered_sweeps_sample_the_tempered_law() -> None:
    """``sweep(x, beta=b)`` runs the whole ladder at ``b * β_r``: its β = 1 chains sample
    ``p_b ∝ exp(-(1 - b) E_0 - b E)``, the model with biases ``(1 - b) b0 + b b`` and
    weights ``b W``."""
    model = non_bipartite(2)
    b0 = torch.randn(model.n_nodes, generator=torch.Generator().manual_seed(7),
                     dtype=torch.float64)
    beta = 0.6
    s = TemperingSampler(model, base_bias=b0, n_replicas=3, ladder="linear")
    oracle = pb.compile(model.spec.graph, engine="chromatic-gibbs", dtype=torch.float64)
    with torch.no_grad():
        oracle.bias.copy_((1 - beta) * b0 + beta * model.bias)
        oracle.weight.copy_(beta * model.weight)

    class AtBeta:
        def init(self, n, g):
            return s.init(n, g)

        def sweep(self, x, k=1, generator=None):
            per_chain = torch.full((x.shape[0],), beta, dtype=torch.float64)
            return s.sweep(x, k, beta=per_chain, generator=generator)

    z = gibbs_moment_z(oracle, AtBeta(), chains=800, burn=40, keep=30, seed=3)
    assert z.max() < 5.0, float(z.max())


def test_swap_rate_is_the_exact_acceptance() -> None:
    """Ladder [1, 0] on a 4-node model with a random base: the measured swap rate is
    ``E[min(1, exp(D(x) - D(y)))]`` with ``x ~ p_1``, ``y ~ p_0``, by enumeration."""
    G = random_graph(np.random.default_rng(4), n_min=4, n_max=4, domains=("binary",),
                     p_edge=1.0, scale=1.0, hidden=False)
    model = pb.compile(G, dtype=torch.float64)
    b0 = torch.tensor([0.5, -1.0, 0.3, 1.2], dtype=torch.float64)
    X = all_joint_states(model)
    lw1 = joint_log_weights(model, X)
    p1 = np.exp(lw1 - np.logaddexp.reduce(lw1))
    lw0 = X @ b0.numpy()
    p0 = np.exp(lw0 - np.logaddexp.reduce(lw0))
    D = -lw1 + lw0
    expected = float(p1 @ np.minimum(1.0, np.exp(D[:, None] - D[None, :])) @ p0)
    s = TemperingSampler(model, base_bias=b0, betas=[1.0, 0.0])
    g = torch.Generator().manual_seed(0)
    x = s.init(4000, g)
    s.sweep(x, 20, generator=g)
    s.metrics(x)  # restart the window after the burn-in
    s.sweep(x, 100, generator=g)
    rate = s.metrics(x)["swap_rate_mean"]
    assert abs(rate - expected) < 0.01, (rate, expected)
    st = s.statistics(x)
    assert st.swap_attempts.tolist() == [4000 * 60.0]  # every other sweep (one pair)


def test_round_trips_and_flow_follow_the_labels() -> None:
    """A zero model accepts every swap (D = 0): the replicas move as an odd-even
    transposition sort; round trips and flow counted by a plain loop agree."""
    G = pb.graphs.rbm(3, 2)
    model = pb.compile(G, seed=0, init_scale=0.0)
    L, C, steps = 5, 3, 37
    s = TemperingSampler(model, n_replicas=L, ladder="linear")
    g = torch.Generator().manual_seed(0)
    x = s.init(C, g)
    s.sweep(x, steps, generator=g)
    st = s.statistics(x)
    assert st.swap_rates.tolist() == [1.0] * (L - 1)
    # the oracle: a loop over swap steps with the definitions of TemperingState
    at = list(range(L))  # replica at each level
    last = {w: 1 if w == 0 else 2 if w == L - 1 else 0 for w in range(L)}
    cold = {w: w == 0 for w in range(L)}
    trips, up, seen = 0, np.zeros(L), np.zeros(L)
    for t in range(steps):
        for r in range(t % 2, L - 1, 2):
            at[r], at[r + 1] = at[r + 1], at[r]
        w0, wr = at[0], at[L - 1]
        if last[w0] == 2 and cold[w0]:
            trips += 1
        last[w0], cold[w0], last[wr] = 1, True, 2
        for r in range(L):
            up[r] += last[at[r]] == 1
            seen[r] += last[at[r]] != 0
    assert st.round_trips == C * trips and trips > 0
    np.testing.assert_allclose(st.flow.numpy(), up / seen)
    assert st.sweeps == steps and st.n_levels == L and st.round_trip_rate == trips / steps


def test_adaptive_ladder_reaches_equal_swap_rates() -> None:
    model = curie_weiss()
    g = torch.Generator().manual_seed(0)
    s = TemperingSampler(model, target_rate=0.4, adapt_sweeps=300)
    x = s.init(200, g)
    s.sweep(x, 600, generator=g)
    st = s.statistics(x)
    assert not st.adapting and st.sweeps > 0
    rates = st.swap_rates.numpy()
    assert rates.min() > 0.25 and rates.max() < 0.75, rates
    assert rates.max() - rates.min() < 0.2, rates
    betas = st.betas.numpy()
    assert betas[0] == 1.0 and betas[-1] == 0.0 and np.all(np.diff(betas) < 0)
    flow = st.flow.numpy()
    assert flow[0] == 1.0 and flow[-1] == 0.0 and np.all(np.diff(flow) < 0)
    # a higher target needs more levels
    s2 = TemperingSampler(model, target_rate=0.7, adapt_sweeps=300)
    x2 = s2.init(200, g)
    s2.sweep(x2, 400, generator=g)
    assert s2.statistics(x2).n_levels > st.n_levels
    # a fixed count is kept and its rates equalised
    s3 = TemperingSampler(model, n_replicas=6, adapt_sweeps=300)
    x3 = s3.init(200, g)
    s3.sweep(x3, 500, generator=g)
    r3 = s3.statistics(x3).swap_rates.numpy()
    assert len(r3) == 5 and r3.max() - r3.min() < 0.2, r3


def test_pt_pcd_gradient_is_exact_in_expectation_where_pcd_is_biased() -> None:
    """Visible-only ferromagnet: the PT-PCD estimate (model side from the β = 1
    replicas) lies within 5 standard errors of the exact gradient in every component
    (spins: each chain's statistic has variance <= 1, so se <= 1/sqrt(C)); plain PCD
    with the same sweeps misses the mode weights."""
    n = 12
    model = curie_weiss(n, J=2.2, h=0.05, dtype=torch.float64)
    rng = np.random.default_rng(0)
    data = np.where(rng.random((500, n)) < 0.6, 1.0, -1.0)
    values = model.encode_data(data)

    def grad(obj, seed):
        model.zero_grad()
        obj.loss(values, torch.Generator().manual_seed(seed)).backward()
        g = torch.cat([model.bias.grad, model.weight.grad]).clone()
        model.zero_grad()
        return g

    model.zero_grad()
    exact_nll(model, values).backward()
    exact = torch.cat([model.bias.grad, model.weight.grad]).clone()
    C = 4000
    pt = PCDObjective(model, train=values, n_chains=C, k=150, sampler="tempering",
                      sampler_options={"n_replicas": 5, "ladder": "linear"})
    err = (grad(pt, 1) - exact).abs().max().item()
    assert err < 5 / C**0.5, err
    pcd = PCDObjective(model, train=values, n_chains=C, k=150)
    err_pcd = (grad(pcd, 1) - exact).abs().max().item()
    assert err_pcd > 10 / C**0.5, err_pcd


def test_pt_pcd_gradient_on_an_rbm() -> None:
    """Hidden units summed out in the positive phase, the tempering sampler's negative
    phase on the RBM path (``_sampler_negative``): the estimate is within 5 standard
    errors (binary: se <= 1/(2 sqrt(C))) of exact, and so is the centred W gradient (10
    standard errors: it also carries the offsets' terms)."""
    model = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0,
                       dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g, dtype=torch.float64))
        model.bias.copy_(0.5 * torch.randn(model.bias.shape, generator=g, dtype=torch.float64))
    values = model.encode_data((torch.rand(300, 6, generator=g) < 0.3).double())
    model.zero_grad()
    exact_nll(model, values).backward()
    exact = torch.cat([model.bias.grad, model.weight.grad]).clone()
    model.zero_grad()
    C = 4000
    pt = PCDObjective(model, train=values, n_chains=C, k=40, sampler="tempering",
                      sampler_options={"n_replicas": 3})
    pt.loss(values, torch.Generator().manual_seed(2)).backward()
    est = torch.cat([model.bias.grad, model.weight.grad])
    assert pt.fast
    assert (est - exact).abs().max().item() < 5 / (2 * C**0.5)
    # centred: the surrogate's W gradient is the centred statistic, the plain one minus
    # the offset terms; compare it with the same terms of the exact gradient
    model.zero_grad()
    ptc = PCDObjective(model, train=values, n_chains=C, k=40, sampler="tempering",
                       sampler_options={"n_replicas": 3}, centering=True)
    ptc.loss(values, torch.Generator().manual_seed(2)).backward()
    mu, lam = ptc._offsets[0], ptc._offsets[1]
    gb, gW = exact[:model.bias.numel()], exact[model.bias.numel():].view(6, 3)
    # exact centred W gradient: dL/dW_c = dL/dW - mu dL/dc^T - dL/db lam^T
    exact_c = gW - torch.outer(mu, gb[6:]) - torch.outer(gb[:6], lam)
    est_c = model.weight.grad.view(6, 3)
    assert (est_c - exact_c).abs().max().item() < 10 / (2 * C**0.5)


def test_pt_pcd_fit_records_swaps_and_continues_the_replicas() -> None:
    rng = np.random.default_rng(1)
    pattern = rng.random(120)[:, None] < 0.5  # two correlated patterns, 10% noise
    data = np.where(pattern, [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1])
    data = np.abs(data - (rng.random((120, 6)) < 0.1)).astype(float)
    model = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0, init_scale=0.3)
    opts = {"n_replicas": 4, "ladder": "linear"}
    h = model.fit(data, method="pcd", sampler="tempering", sampler_options=opts, epochs=12,
                  batch_size=20, lr=0.3, n_chains=30, seed=0, progress=False)
    assert h[-1]["nll"] < h[0]["nll"] - 0.5, [r["nll"] for r in h]
    for key in ("swap_rate_min", "swap_rate_mean", "round_trips", "replicas"):
        assert key in h[-1]
    assert h[-1]["replicas"] == 4.0 and 0.0 < h[-1]["swap_rate_min"] <= 1.0
    chains = model.persistent_chains
    state = tempering_module._STATES[chains]
    swept = state.total_sweeps
    assert swept == 12 * 6 and tempering_statistics(chains).n_chains == 30
    model.fit(data, method="pcd", sampler="tempering", sampler_options=opts, epochs=1,
              batch_size=20, lr=0.1, n_chains=30, seed=1, progress=False)
    assert model.persistent_chains is chains
    assert tempering_module._STATES[chains] is state and state.total_sweeps == swept + 6
    # an adaptive ladder that keeps adapting (windows shorter than an epoch) still
    # reports each epoch's swap rates, and round trips across its moves
    m2 = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0, init_scale=0.3)
    h2 = m2.fit(data, method="pcd", sampler="tempering", epochs=6, batch_size=5, lr=0.1,
                n_chains=200, seed=0, progress=False,
                sampler_options={"n_replicas": 4, "adapt_sweeps": 10**6})
    assert all(0 < r["swap_rate_min"] <= 1 for r in h2)
    assert sum(r["round_trips"] for r in h2) > 0
    assert tempering_module._STATES[m2.persistent_chains].moves >= 6
    # the visible biases of the base are the data's: the hot end samples its marginals
    s = make_sampler(model, "tempering")
    expect = torch.zeros(model.n_nodes)
    expect[:6] = model.visible_init
    assert torch.allclose(s.base_bias, expect)


def test_model_sample_passes_options_and_reproduces() -> None:
    model = pb.compile(pb.graphs.rbm(5, 3), seed=0)
    assert {"n_replicas", "betas", "ladder", "target_rate", "adapt_sweeps",
            "swap_every", "base", "beta_min"} <= set(sampler_options("tempering"))
    a = model.sample(7, method="tempering", steps=15, seed=3, n_replicas=3, swap_every=2)
    b = model.sample(7, method="tempering", steps=15, seed=3, n_replicas=3, swap_every=2)
    assert a.shape == (7, 5) and torch.equal(a, b)
    full = model.sample(7, method="tempering", steps=5, seed=3, return_hidden=True,
                        betas=[1.0, 0.3, 0.0], backend="numba")
    assert full.shape == (7, 8)


def test_conditioning_uses_tempering() -> None:
    """Evidence on one spin of the ferromagnet: the conditional law is still bimodal."""
    model = curie_weiss()
    cond = model.condition({"v0": -1})
    exact = float(np.mean([cond.marginals()[k][1] * 2 - 1 for k in cond.free_nodes]))
    x = cond.sample(2000, method="tempering", steps=200, seed=0, free_only=True,
                    n_replicas=5, ladder="linear").double()
    m = x.mean(1)
    assert abs(float(m.mean()) - exact) < Z_TOL * float(m.std()) / 2000**0.5


def test_pyro_samples_by_tempering() -> None:
    import pyro

    model = curie_weiss()
    pos = curie_weiss_exact()[0]
    d = model.to_pyro(sampler="tempering", burn_in=200,
                      sampler_options={"n_replicas": 5, "ladder": "linear"})
    pyro.set_rng_seed(0)
    x = d.sample((2000,))
    est = float((x.sum(1) > 0).double().mean())
    assert x.shape == (2000, N_CW) and abs(est - pos) < Z_TOL * (pos * (1 - pos) / 2000) ** 0.5


@pytest.mark.slow
def test_diagnostics_drive_tempering() -> None:
    """Split R-hat over 8 chains: converged with tempering, not with plain Gibbs (chains
    in different modes); the tempering statistics come with the diagnostics."""
    model = curie_weiss()
    pt = pb.diagnostics(model, sampler="tempering", n_chains=8, steps=600, burn_in=100,
                        seed=0, n_replicas=5, ladder="linear")
    gb = pb.diagnostics(model, sampler="gibbs", n_chains=8, steps=600, burn_in=100, seed=0)
    assert pt.converged and not gb.converged, (pt.max_r_hat, gb.max_r_hat)
    st = pt.sampler_statistics
    assert st.n_chains == 8 and st.round_trips > 0 and st.sweeps == 700
    assert "swap rates" in str(pt) and gb.sampler_statistics is None


def test_fresh_tensor_restarts_and_edits_of_x_are_respected() -> None:
    model = curie_weiss(8)
    s = TemperingSampler(model, n_replicas=3, ladder="linear")
    g = torch.Generator().manual_seed(0)
    x = s.init(4, g)
    s.sweep(x, 3, generator=g)
    y = x.clone()
    assert tempering_statistics(y) is None and tempering_statistics(x).sweeps == 3
    # another ladder on the same tensor starts over
    TemperingSampler(model, n_replicas=4, ladder="linear").sweep(x, 1, generator=g)
    assert tempering_statistics(x).n_levels == 4
    # clamped nodes stay at the values in x
    c = TemperingSampler(model, clamped=np.array([0, 1]), n_replicas=3, ladder="linear")
    x[:, :2] = torch.tensor([1.0, -1.0])
    c.sweep(x, 10, generator=g)
    assert torch.equal(x[:, :2], torch.tensor([1.0, -1.0]).expand(4, 2))
    assert torch.equal(tempering_module._STATES[x].Y[:, :2],
                       torch.tensor([1.0, -1.0]).expand(12, 2))


@pytest.mark.parametrize("options", [
    {"n_replicas": 1}, {"betas": [0.5, 0.0]}, {"betas": [1.0, 0.5, 0.7]},
    {"betas": [1.0, -0.1]}, {"betas": "hot"}, {"ladder": "cubic"},
    {"ladder": "geometric", "beta_min": 0.0}, {"target_rate": 1.5}, {"swap_every": 0},
    {"adapt_sweeps": -1}, {"base": "data"}, {"base": torch.zeros(3)},
    {"betas": [1.0, 0.0], "n_replicas": 3}, {"backend": "jax"},
])
def test_bad_options_raise_argument_error(options: dict) -> None:
    model = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    with pytest.raises(pb.ArgumentError):
        model.sample(3, method="tempering", steps=2, seed=0, **options)


def test_bad_calls_raise_argument_error() -> None:
    model = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    with pytest.raises(pb.ArgumentError, match="n_replica"):
        model.sample(3, method="tempering", steps=2, n_replica=3)
    s = TemperingSampler(model, n_replicas=2)
    with pytest.raises(pb.ArgumentError, match="beta has 2 values for 3 chains"):
        s.sweep(torch.zeros(3, 6), 1, beta=torch.ones(2))
    with pytest.raises(pb.ArgumentError, match="shape"):
        s.sweep(torch.zeros(3, 5), 1)


def test_geometric_ladder_and_default_counts() -> None:
    model = curie_weiss(16)
    s = TemperingSampler(model, ladder="geometric", n_replicas=4, beta_min=0.125)
    np.testing.assert_allclose(s.betas, [1.0, 0.5, 0.25, 0.125])
    assert len(TemperingSampler(model, ladder="linear").betas) == 4  # ceil(sqrt(16))
    assert tempering_module.default_replicas(10**6) == 32


def test_inner_sampler_is_plain_gibbs_at_beta_one() -> None:
    """The β = 1 conditionals (fields, mean fields) are the inner Gibbs sampler's."""
    model = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    s = TemperingSampler(model)
    gs = gibbs_sampler(model)
    x = s.init(5, torch.Generator().manual_seed(0))
    for k in range(len(s.blocks)):
        assert torch.equal(s.block_field(x, k), gs.block_field(x, k))
        assert torch.equal(s.mean_field(x, k), gs.mean_field(x, k))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tempering_on_cuda_gets_the_mode_weights() -> None:
    model = curie_weiss(device="cuda")
    pos = curie_weiss_exact()[0]
    x = model.sample(2000, method="tempering", steps=200, seed=1, n_replicas=5,
                     adapt_sweeps=100)
    assert x.device.type == "cuda"
    est, se = draw_stats(x.cpu())["P(M>0)"]
    assert abs(est - pos) < Z_TOL * se


def quadratic_model() -> pb.BoltzmannMachine:
    """Gaussian units (visible and hidden), a multinary unit with a precision, a triangle:
    the quadratic self-terms are not tempered, so they must cancel in the swap rule."""
    import networkx as nx

    G = nx.Graph()
    G.add_node("g1", role="visible", domain="gaussian", precision=0.8)
    G.add_node("m", role="visible", domain="multinary", levels=5, precision=3.0)
    G.add_node("s", role="visible", domain="spin")
    G.add_node("g2", role="hidden", domain="gaussian", precision=0.5)
    G.add_node("b", role="hidden", domain="binary")
    G.add_edges_from([("g1", "b"), ("g1", "m"), ("g1", "s"), ("g2", "b"), ("g2", "s"),
                      ("m", "b"), ("b", "s"), ("m", "s")])
    m = pb.compile(G, dtype=torch.float64, engine="chromatic-gibbs")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * 0.5)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64) * 0.5)
    return m


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_quadratic_terms_match_exact_moments(backend: str) -> None:
    model = quadratic_model()
    b0 = torch.randn(model.n_nodes, generator=torch.Generator().manual_seed(2),
                     dtype=torch.float64)
    s = TemperingSampler(model, backend=backend, base_bias=b0, n_replicas=4,
                         ladder="linear")
    z = gibbs_moment_z(model, s, chains=800, burn=40, keep=30, seed=3)
    assert z.max() < 5.0, float(z.max())


def test_quadratic_terms_in_the_swap_rule_fail_the_check(monkeypatch) -> None:
    """Power: tempering the quadratic terms in the swaps (``D = E + b0 . x``, Q kept)
    while the sweeps do not is caught."""
    model = quadratic_model()
    b0 = torch.randn(model.n_nodes, generator=torch.Generator().manual_seed(2),
                     dtype=torch.float64)
    s = TemperingSampler(model, base_bias=b0, n_replicas=4, ladder="linear")
    monkeypatch.setattr(s, "_energies",
                        lambda Y: (model.energy(Y) + Y @ b0).double())
    z = gibbs_moment_z(model, s, chains=800, burn=40, keep=30, seed=3)
    assert z.max() > 2 * 5.0, float(z.max())
