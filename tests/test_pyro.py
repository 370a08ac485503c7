"""Tests of pgm_boltz.pyro: Boltzmann machines as Pyro distributions.

Oracles: brute-force enumeration of every joint state (tests/conftest.py) for log P(v),
the exact engine's moments for gradients and means, exact probabilities for sample
frequencies. The three examples run with reduced steps.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import brute_force_visible, random_graph
from pyro.infer import Predictive

import pgm_boltz as pb
from pgm_boltz.domains import BINARY, SPIN, multinary
from pgm_boltz.pyro import BoltzmannDistribution, VisibleCodes, boltzmann_with_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def _rbm(n_v: int = 3, n_h: int = 2, domain: str = "binary", **kw) -> pb.BoltzmannMachine:
    return pb.compile(pb.graphs.rbm(n_v, n_h, domain=domain, **kw), dtype=torch.float64,
                      seed=0, init_scale=0.7)


@pytest.fixture(autouse=True)
def _fresh_pyro():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


# ------------------------------------------------------------------ shapes


def test_event_and_batch_shapes():
    d = _rbm().to_pyro()
    assert isinstance(d, dist.TorchDistribution)
    assert d.event_shape == (3,) and d.batch_shape == ()
    e = d.expand([4, 2])
    assert e.batch_shape == (4, 2) and e.event_shape == (3,)
    assert e.model is d.model and e.support is not None
    assert e.sample().shape == (4, 2, 3)
    assert e.sample((5,)).shape == (5, 4, 2, 3)
    assert d.sample((6, 1)).shape == (6, 1, 3)
    assert d.sample().shape == (3,)
    assert d.sample((0,)).shape == (0, 3)
    assert e.expand([7, 4, 2]).batch_shape == (7, 4, 2)
    with pytest.raises(pb.DataError, match="cannot expand"):
        e.expand([3, 2])
    # pyro.plate expands the site's batch shape
    with pyro.plate("rows", 9):
        assert pyro.sample("v", d).shape == (9, 3)


def test_enumerate_support_shapes_and_values():
    m = _rbm(3, 1)
    d = m.to_pyro().expand([4, 2])
    assert d.has_enumerate_support
    assert d.enumerate_support(expand=False).shape == (8, 1, 1, 3)
    assert d.enumerate_support(expand=True).shape == (8, 4, 2, 3)
    flat = m.to_pyro().enumerate_support()
    assert flat.shape == (8, 3)
    assert {tuple(r) for r in flat.tolist()} == set(itertools.product([0.0, 1.0], repeat=3))
    # mixed domains: the cartesian product of each unit's codes
    G = pb.graphs.rbm(2, 1)
    G.nodes["v0"].update(domain="spin")
    G.nodes["v1"].update(domain="multinary", levels=3)
    s = pb.compile(G).to_pyro().enumerate_support()
    assert {tuple(r) for r in s.tolist()} == set(itertools.product([-1.0, 1.0],
                                                                   [0.0, 1.0, 2.0]))
    # log_prob of an enumerated value keeps the leading (enumeration) dims
    lp = d.log_prob(d.enumerate_support(expand=False))
    assert lp.shape == (8, 4, 2)


def test_enumerate_support_too_many_states():
    d = _rbm(6, 1).to_pyro(max_enumerate_states=32)
    assert not d.has_enumerate_support
    with pytest.raises(pb.IntractableError, match="64 visible configurations"):
        d.enumerate_support()


# ------------------------------------------------------------------ supports


def test_support_constraints_per_domain():
    binary = _rbm(3, 1).to_pyro().support
    spin = _rbm(3, 1, domain="spin").to_pyro().support
    levels = _rbm(3, 1, domain="multinary", levels=4).to_pyro().support
    for c in (binary, spin, levels):
        assert c.event_dim == 1 and c.is_discrete
    assert binary.check(torch.tensor([[0.0, 1.0, 1.0], [0.0, 2.0, 1.0]])).tolist() == [
        True, False]
    assert spin.check(torch.tensor([[-1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])).tolist() == [
        True, False]
    assert repr(spin) == "SpinVector()"
    assert levels.check(torch.tensor([[0.0, 3.0, 2.0], [0.0, 4.0, 1.0],
                                      [0.5, 1.0, 1.0]])).tolist() == [True, False, False]
    mixed = VisibleCodes([BINARY, SPIN, multinary(3)])
    assert mixed.event_dim == 1 and mixed.is_discrete
    v = torch.tensor([[1.0, -1.0, 2.0], [1.0, 0.0, 2.0], [-1.0, 1.0, 0.0],
                      [0.0, 1.0, 3.0]])
    assert mixed.check(v).tolist() == [True, False, False, False]
    assert mixed.check(v.reshape(2, 2, 3)).shape == (2, 2)
    G = pb.graphs.rbm(3, 1)
    G.nodes["v1"].update(domain="spin")
    G.nodes["v2"].update(domain="multinary", levels=3)
    assert isinstance(pb.compile(G).to_pyro().support, VisibleCodes)


def test_validate_args():
    m = _rbm(3, 1, domain="spin")
    d = m.to_pyro(validate_args=True)
    with pytest.raises(ValueError, match=r"node 'v1'.*spin takes -1 or \+1"):
        d.log_prob(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]))
    with pytest.raises(pb.DataError, match="does not broadcast"):
        d.expand([4]).log_prob(torch.ones(3, 3))
    # without validation an out-of-support value is not checked (Pyro's convention)
    m.to_pyro(validate_args=False).log_prob(torch.tensor([1.0, 0.0, 1.0]))
    # a wrong event size is always an error, named at the door
    with pytest.raises(pb.DataError, match="last dimension must be the 3 visible units"):
        m.to_pyro(validate_args=False).log_prob(torch.ones(2, 4))
    with pytest.raises(pb.DataError, match="must be a tensor"):
        d.log_prob([1.0, 1.0, 1.0])
    # scoring an observed site in a Pyro trace raises as well

    def model() -> None:
        with pyro.plate("r", 2):
            pyro.sample("x", d, obs=torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0]]))

    trace = pyro.poutine.trace(model).get_trace()
    with pytest.raises(ValueError, match="outside the support"):
        trace.log_prob_sum()


@pytest.mark.parametrize("kwargs, message", [
    ({"burn_in": 0}, "burn_in"), ({"thin": 1.5}, "thin"), ({"num_chains": 0}, "num_chains"),
    ({"sampler": "metropolis"}, "sampler"), ({"log_partition": [1.0, 2.0]}, "log_partition"),
    ({"log_partition": torch.ones(2)}, "scalar"), ({"log_partition": math.inf}, "finite"),
    ({"max_enumerate_states": -1}, "max_enumerate_states"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(pb.ArgumentError, match=message):
        _rbm().to_pyro(**kwargs)


def test_bad_model_and_params():
    with pytest.raises(pb.DataError, match="BoltzmannMachine"):
        BoltzmannDistribution(torch.nn.Linear(2, 2))
    m = _rbm()
    with pytest.raises(pb.DataError, match=r"bias has shape \(3,\); expected \(5,\)"):
        boltzmann_with_params(m, torch.zeros(3), m.weight)
    with pytest.raises(pb.DataError, match="batched parameters"):
        boltzmann_with_params(m, m.bias, torch.zeros(2, 6))


# ------------------------------------------------------------------ log_prob


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_log_prob_normalised_and_exact(seed):
    m = pb.compile(random_graph(np.random.default_rng(seed), n_min=3, n_max=6),
                   dtype=torch.float64)
    d = m.to_pyro()
    states = d.enumerate_support()
    lp = d.log_prob(states).detach()
    assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-10)
    assert torch.allclose(lp, m.log_prob(states).detach(), atol=1e-10)
    codes, ref = brute_force_visible(m)
    got = d.log_prob(torch.as_tensor(codes)).detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_log_prob_broadcasts_leading_dims():
    m = _rbm(3, 2)
    d = m.to_pyro().expand([5])
    v = m.to_pyro().enumerate_support()
    lp = d.log_prob(v.reshape(8, 1, 3))
    assert lp.shape == (8, 5)
    assert torch.allclose(lp[:, 0], m.log_prob(v))
    assert torch.equal(lp[:, 0], lp[:, 4])
    assert d.log_prob(v[:5]).shape == (5,)
    assert m.to_pyro().log_prob(v[0]).shape == ()
    assert m.to_pyro().log_prob(torch.ones(0, 3)).shape == (0,)


def test_gradient_reaches_model_parameters():
    m = _rbm(3, 2)
    data = m.to_pyro().enumerate_support()[[1, 3, 3, 6, 7]]
    loss = -m.to_pyro().log_prob(data).mean()
    loss.backward()
    gb, gw = m.bias.grad.clone(), m.weight.grad.clone()
    # exact gradient: model moments minus data moments (hidden units at their conditionals)
    mean, second = m.moments()
    x = torch.zeros(len(data), m.n_nodes, dtype=torch.float64)
    x[:, m.visible_index] = data
    hid = torch.as_tensor(m.hidden_index)
    x[:, hid] = torch.sigmoid(m.fields(x, hid)).detach()
    u, v = m.edge_index
    assert torch.allclose(gb, mean - x.mean(0), atol=1e-10)
    assert torch.allclose(gw, second[u, v] - (x[:, u] * x[:, v]).mean(0), atol=1e-10)


def test_boltzmann_with_params_matches_model_and_differentiates():
    m = _rbm(3, 2, domain="spin")
    b = torch.randn(m.n_nodes, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                    requires_grad=True)
    w = torch.randn(len(m.edges), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1), requires_grad=True)
    d = boltzmann_with_params(m, b, w)
    states = d.enumerate_support()
    lp = d.log_prob(states)
    assert float(torch.logsumexp(lp.detach(), 0)) == pytest.approx(0.0, abs=1e-10)
    ref = pb.compile(pb.graphs.rbm(3, 2, domain="spin"), dtype=torch.float64)
    with torch.no_grad():
        ref.bias.copy_(b)
        ref.weight.copy_(w)
    assert torch.allclose(lp.detach(), ref.log_prob(states).detach(), atol=1e-10)
    lp[[0, 5]].sum().backward()
    ref.log_prob(states[[0, 5]]).sum().backward()
    assert torch.allclose(b.grad, ref.bias.grad) and torch.allclose(w.grad, ref.weight.grad)
    assert m.bias.grad is None  # the model's own parameters are untouched
    # sampling and moments use the substituted parameters too
    assert torch.allclose(d.mean, ref.to_pyro().mean)
    pyro.set_rng_seed(3)
    a = d.sample((4,))
    pyro.set_rng_seed(3)
    assert torch.equal(a, ref.to_pyro().sample((4,)))


def test_mean_and_variance_exact():
    G = pb.graphs.rbm(3, 2)
    G.nodes["v0"].update(domain="spin")
    G.nodes["v2"].update(domain="multinary", levels=4)
    m = pb.compile(G, dtype=torch.float64, seed=0, init_scale=0.8)
    d = m.to_pyro()
    s = d.enumerate_support()
    p = d.log_prob(s).detach().exp()
    mean = p @ s
    var = p @ (s - mean) ** 2
    assert torch.allclose(d.mean, mean, atol=1e-10)
    assert torch.allclose(d.variance, var, atol=1e-10)
    assert d.expand([2]).mean.shape == (2, 3)


# ------------------------------------------------------------------ large models


def test_intractable_without_log_partition():
    m = pb.compile(pb.graphs.lattice(40, 40), seed=0)  # 1600 spins: treewidth ~40
    assert not m.plan.exact_feasible
    d = m.to_pyro()
    v = torch.ones(2, 1600)
    with pytest.raises(pb.IntractableError, match=r"log_partition\(method='ais'\)"):
        d.log_prob(v)
    assert not d.has_enumerate_support
    with pytest.raises(pb.IntractableError, match="too large"):
        d.enumerate_support()
    with pytest.raises(pb.IntractableError):
        _ = d.mean
    # with a supplied log Z: log P(v) = -E(v) - log Z (fully visible: F = E)
    for logz in (123.5, torch.tensor(123.5), pb.LogPartition(123.5, 0.2)):
        lp = m.to_pyro(log_partition=logz).log_prob(v)
        assert torch.allclose(lp, -m.energy(v) - 123.5)
    lp = m.to_pyro(log_partition=100.0).log_prob(v).sum()
    lp.backward()
    assert m.weight.grad is not None and float(m.weight.grad.abs().sum()) > 0


def test_gibbs_sampling_of_a_large_model_is_seeded():
    m = pb.compile(pb.graphs.lattice(12, 12), seed=0)
    d = m.to_pyro(sampler="gibbs", burn_in=5, thin=2, num_chains=3).expand([2])
    pyro.set_rng_seed(7)
    a = d.sample((4,))
    pyro.set_rng_seed(7)
    b = d.sample((4,))
    assert a.shape == (4, 2, 144) and torch.equal(a, b)
    assert bool(d.support.check(a).all())
    pyro.set_rng_seed(8)
    assert not torch.equal(a, d.sample((4,)))


def _frequency_check(draws: torch.Tensor, d: BoltzmannDistribution, z: float) -> None:
    states = d.enumerate_support()
    p = d.log_prob(states).detach().exp()
    counts = (draws[:, None, :] == states[None]).all(-1).double().sum(0)
    n = len(draws)
    se = (p * (1 - p) / n).sqrt()
    assert float(((counts / n - p).abs() / se).max()) < z


def test_exact_samples_follow_the_distribution():
    m = _rbm(3, 2, domain="spin")
    d = m.to_pyro()
    pyro.set_rng_seed(0)
    _frequency_check(d.sample((20000,)), d, z=4.5)


def test_gibbs_samples_follow_the_distribution():
    m = pb.compile(pb.graphs.fully_connected(4, domain="spin"), dtype=torch.float64,
                   seed=0, init_scale=0.5)
    d = m.to_pyro(sampler="gibbs", burn_in=50, thin=3, num_chains=500)
    pyro.set_rng_seed(0)
    draws = d.sample((10000,))
    # successive draws of a chain are 3 sweeps apart: allow for their correlation
    _frequency_check(draws, d, z=6.0)


# ------------------------------------------------------------------ Pyro inference


def test_svi_example_lands_on_exact_ml():
    import pyro_svi

    out = pyro_svi.run(steps=150, lr=0.05, verbose=False)
    assert out["max_error"] < 1e-2
    assert np.allclose(out["p_fit"], out["p0"], atol=1e-2)
    assert out["losses"][-1] < out["losses"][0]


def test_bayesian_example_posterior_near_ml():
    import pyro_bayesian

    out = pyro_bayesian.run(n_data=1000, warmup=60, samples=100, verbose=False)
    sd = out["sd"]
    # with 1000 rows the posterior mean is the ML estimate to O(1/N); the tolerance is
    # the Monte Carlo error of the mean (ESS >= ~30 draws) with a margin
    assert torch.all((out["mean"] - out["ml"]).abs() < 0.5 * sd)
    ratio = sd / out["laplace_sd"]
    assert torch.all((ratio > 0.6) & (ratio < 1.6))
    assert torch.all((out["ml"] - out["true"]).abs() < 5 * out["laplace_sd"])


def test_enumeration_example_marginal_likelihood():
    import pyro_enumeration

    out = pyro_enumeration.run(n_data=200, steps=40, verbose=False)
    assert out["enum_log_lik"] == pytest.approx(out["brute_log_lik"], abs=1e-8)
    assert out["losses"][-1] < out["losses"][0]
    assert out["draws"]["z"].shape == (50, 200, 3)
    assert out["draws"]["x"].shape == (50, 200)


def test_enumerated_elbo_gradient_matches_brute_force():
    import pyro_enumeration as pe

    rbm = pe.make_prior(seed=3, scale=1.0)
    mu = torch.tensor(pe.TRUE_MU, dtype=torch.float64)
    sigma = torch.tensor(0.5, dtype=torch.float64)
    x = torch.tensor([0.1, 1.2, -0.4, 2.9], dtype=torch.float64)
    model = pe.make_model(rbm, mu, sigma)
    loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(
        model, pe.guide, x)
    loss.backward()
    # brute force log p(x) in torch, differentiated w.r.t. the RBM's parameters
    b = rbm.bias.detach().clone().requires_grad_(True)
    w = rbm.weight.detach().clone().requires_grad_(True)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=rbm.n_nodes)),
                          dtype=torch.float64)
    u, v = rbm.edge_index
    logw = states @ b + (states[:, u] * states[:, v]) @ w
    log_joint = logw - torch.logsumexp(logw, 0)
    z = states[:, torch.as_tensor(rbm.visible_index)]
    ll = dist.Normal(z @ mu, sigma).log_prob(x[:, None]) + log_joint
    brute = -torch.logsumexp(ll, 1).sum()
    brute.backward()
    assert float(loss.detach()) == pytest.approx(float(brute.detach()), abs=1e-9)
    assert torch.allclose(rbm.bias.grad, b.grad, atol=1e-9)
    assert torch.allclose(rbm.weight.grad, w.grad, atol=1e-9)


@pytest.mark.parametrize("parallel", [False, True])
def test_predictive_draws_from_a_model_with_a_machine(parallel):
    m = _rbm(3, 2, domain="spin")

    def model(n: int) -> None:
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("rows", n):
            v = pyro.sample("v", m.to_pyro())
            pyro.sample("y", dist.Normal(loc + v.sum(-1), 1.0))

    pyro.set_rng_seed(0)
    out = Predictive(model, num_samples=7, parallel=parallel)(n=5)
    assert out["v"].shape == (7, 5, 3)
    assert out["y"].shape == (7, 5)
    assert bool(((out["v"] == 1) | (out["v"] == -1)).all())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_distribution_on_cuda():
    m = pb.compile(pb.graphs.rbm(4, 3), device="cuda", seed=0)
    d = m.to_pyro().expand([3])
    pyro.set_rng_seed(0)
    v = d.sample((2,))
    assert v.device.type == "cuda" and v.shape == (2, 3, 4)
    lp = d.log_prob(d.enumerate_support(expand=False))
    assert lp.shape == (16, 3) and lp.device.type == "cuda"
    assert float(lp[:, 0].exp().sum()) == pytest.approx(1.0, abs=1e-5)
    lp.sum().backward()
    assert m.weight.grad is not None
    big = pb.compile(pb.graphs.lattice(12, 12), device="cuda", seed=0)
    draws = big.to_pyro(burn_in=3).sample((4,))
    assert draws.device.type == "cuda" and draws.shape == (4, 144)
