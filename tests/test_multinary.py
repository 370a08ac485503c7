"""Multinary units (K equally spaced levels): domain maths, exact engine, Gibbs, training.

References are computed independently: the log-normaliser as a float64 logsumexp over
the K levels, the model quantities by brute-force enumeration of every joint state.
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch

import pgm_boltz as pb
from pgm_boltz.domains import (
    BINARY,
    SPIN,
    DomainVector,
    geometric_log_normalizer,
    geometric_mean,
    geometric_sample,
    multinary,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------


def ref_logsumexp(a: torch.Tensor, K: int) -> torch.Tensor:
    """log sum_k exp(a k) as a float64 logsumexp over the K levels (differentiable)."""
    k = torch.arange(K, dtype=torch.float64)
    return torch.logsumexp(a.double()[..., None] * k, dim=-1)


def ref_probs(a: torch.Tensor, K: int) -> torch.Tensor:
    k = torch.arange(K, dtype=torch.float64)
    return torch.softmax(a.double()[..., None] * k, dim=-1)


def field_grid(K: int) -> torch.Tensor:
    """Fields from exactly 0 over the series/closed-form switch to |a| = 1e4."""
    mags = torch.cat([torch.logspace(-12, 4, 161, dtype=torch.float64),
                      torch.tensor([0.15, 1.0]) / K * (1 + torch.tensor([-1e-9, 1e-9]))])
    return torch.cat([torch.zeros(1, dtype=torch.float64), mags, -mags])


def brute_force(model: pb.BoltzmannMachine):
    """Every joint state (values), its log weight, log Z; by explicit enumeration."""
    vals = [torch.as_tensor(d.values()) for d in model.spec.domains]
    X = torch.cartesian_prod(*vals).reshape(-1, model.n_nodes).to(model.dtype)
    with torch.no_grad():
        lw = -model.energy(X)
    return X, lw, torch.logsumexp(lw, 0)


def brute_free_energy(model: pb.BoltzmannMachine, v_values: torch.Tensor) -> torch.Tensor:
    X, lw, _ = brute_force(model)
    vi = torch.as_tensor(model.visible_index)
    out = []
    for row in v_values:
        match = (X[:, vi] - row).abs().max(1).values < 1e-9
        out.append(-torch.logsumexp(lw[match], 0))
    return torch.stack(out)


def random_params(model: pb.BoltzmannMachine, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.bias.copy_(torch.randn(model.bias.shape, generator=g, dtype=model.dtype) * scale)
        model.weight.copy_(torch.randn(model.weight.shape, generator=g,
                                       dtype=model.dtype) * scale)


def compile64(G: nx.Graph, **kwargs) -> pb.BoltzmannMachine:
    """Compile in float64 (the exact comparisons below are at 1e-12)."""
    return pb.compile(G, dtype=torch.float64, **kwargs)


def mixed_graph() -> nx.Graph:
    """Visible: binary, spin, K=3, K=5; hidden: K=4, binary, spin; bipartite, not complete."""
    G = nx.Graph()
    G.add_node("a", role="visible")
    G.add_node("s", role="visible", domain="spin")
    G.add_node("m3", role="visible", domain="multinary", levels=3)
    G.add_node("m5", role="visible", domain="multinary", levels=5)
    G.add_node("h4", role="hidden", domain="multinary", levels=4)
    G.add_node("hb", role="hidden", domain="binary")
    G.add_node("hs", role="hidden", domain="spin")
    G.add_edges_from([("a", "h4"), ("s", "h4"), ("m3", "h4"), ("m5", "h4"), ("a", "hb"),
                      ("m5", "hb"), ("m3", "hs"), ("s", "hs"), ("m5", "hs")])
    return G


# ----------------------------------------------------------------------------------------
# 1. the geometric log-normaliser, its mean and its sampler
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [3, 17, 256])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_normalizer_values_and_gradients(K, dtype):
    a = field_grid(K).to(dtype).requires_grad_()
    g = geometric_log_normalizer(a, K)
    assert g.dtype == dtype
    g.sum().backward()
    a64 = a.detach().double().requires_grad_()  # the same (rounded) inputs, in float64
    ref = ref_logsumexp(a64, K)
    ref.sum().backward()
    ref_mean = (ref_probs(a64.detach(), K) * torch.arange(K, dtype=torch.float64)).sum(-1)
    rtol = 1e-14 if dtype == torch.float64 else 3e-7
    scale = ref.detach().abs().clamp(min=1.0)
    assert torch.isfinite(g).all() and torch.isfinite(a.grad).all()
    err = ((g.double() - ref.detach()) / scale).abs().max()
    assert err < 4 * rtol, f"G_K relative error {err:.3g}"
    mscale = ref_mean.abs().clamp(min=1.0)
    # gradient of the closed form = the reference's mean (softmax-weighted levels)
    gerr = ((a.grad.double() - ref_mean) / mscale).abs().max()
    assert gerr < 40 * rtol, f"dG_K/da relative error {gerr:.3g}"
    assert ((a64.grad - ref_mean) / mscale).abs().max() < 1e-9  # the reference itself
    m = geometric_mean(a.detach(), K)
    merr = ((m.double() - ref_mean) / mscale).abs().max()
    assert merr < 40 * rtol, f"mean relative error {merr:.3g}"


@pytest.mark.parametrize("K", [3, 17, 256])
def test_gradient_at_zero_and_large_fields(K):
    a = torch.tensor([0.0, 1e4, -1e4, 700.0, -700.0], dtype=torch.float64,
                     requires_grad=True)
    geometric_log_normalizer(a, K).sum().backward()
    assert a.grad.tolist() == pytest.approx([(K - 1) / 2, K - 1, 0.0, K - 1, 0.0], abs=1e-12)
    # the mean's own gradient (the variance) is finite too
    b = a.detach().clone().requires_grad_()
    geometric_mean(b, K).sum().backward()
    var0 = (K * K - 1) / 12
    assert torch.isfinite(b.grad).all()
    assert float(b.grad[0]) == pytest.approx(var0, rel=1e-12)
    assert b.grad[1:].abs().max() < 1e-12
    # the values at |a| = 1e4: (K-1) max(a, 0) + log(1 + ~0)
    g = geometric_log_normalizer(a.detach(), K)
    assert g.tolist() == pytest.approx([math.log(K), (K - 1) * 1e4, 0.0, (K - 1) * 700.0, 0.0],
                                       rel=1e-14, abs=1e-14)


def test_k2_is_softplus_and_half_precision():
    a = torch.linspace(-30, 30, 61, dtype=torch.float64)
    ref = torch.nn.functional.softplus(a)
    assert torch.allclose(geometric_log_normalizer(a, 2), ref)
    # K = 2 as a tensor (mixed domains) goes through the general formula
    assert torch.allclose(geometric_log_normalizer(a, torch.tensor(2.0)), ref, atol=1e-14)
    assert torch.allclose(geometric_mean(a, torch.tensor(2.0)), torch.sigmoid(a), atol=1e-14)
    h = geometric_log_normalizer(a[:5].to(torch.bfloat16), 17)
    assert h.dtype == torch.bfloat16 and torch.isfinite(h).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_domain_vector_mixed(dtype):
    doms = [BINARY, SPIN, multinary(3), multinary(256), multinary(2), multinary(17)]
    dv = DomainVector(doms)
    f = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [3.0, -2.0, 1e-5, -0.4, 1e4, -1e4],
                      [-1e3, 1e3, -50.0, 1e-9, -7.0, 2.5]], dtype=dtype)
    ln = dv.log_normalizer(f)
    mean = dv.mean(f)
    for i, d in enumerate(doms):
        vals = torch.as_tensor(d.values())
        logits = f[:, i].double()[:, None] * vals
        ref = torch.logsumexp(logits, -1)
        refm = (torch.softmax(logits, -1) * vals).sum(-1)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        assert torch.allclose(ln[:, i].double(), ref, rtol=tol, atol=tol), d
        assert torch.allclose(mean[:, i].double(), refm, rtol=tol, atol=tol), d


def _check_frequencies(draws: torch.Tensor, probs: torch.Tensor, n_sigma: float = 6.0):
    """Per-level frequencies within n_sigma binomial standard errors (+ 3/N slack)."""
    N = draws.shape[0]
    K = probs.shape[-1]
    counts = torch.zeros(K, dtype=torch.float64).index_add_(
        0, draws.long(), torch.ones(N, dtype=torch.float64))
    freq = counts / N
    se = (probs * (1 - probs) / N).sqrt()
    excess = (freq - probs).abs() - (n_sigma * se + 3.0 / N)
    assert (excess <= 0).all(), (
        f"level {int(excess.argmax())}: freq {float(freq[excess.argmax()]):.5f} vs "
        f"p {float(probs[excess.argmax()]):.5f}")
    # and a chi-square over levels with expected count >= 5 (pooled tail)
    expected = probs * N
    big = expected >= 5
    if big.sum() >= 2:
        obs = torch.cat([counts[big], counts[~big].sum().reshape(1)])
        exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
        keep = exp > 0
        chi2 = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
        dof = int(keep.sum()) - 1
        # mean dof, sd sqrt(2 dof): 6 sd above is p < 1e-6
        assert chi2 < dof + 6 * math.sqrt(2 * dof) + 10, f"chi2 {float(chi2):.1f}, dof {dof}"


@pytest.mark.parametrize("K", [3, 17, 256])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sampler_frequencies(K, dtype):
    N = 20000
    gen = torch.Generator().manual_seed(K)
    for a in [0.0, 1e-9, 0.3 / K, -0.3 / K, 2.0 / K, -5.0 / K, 0.05, -0.5, 3.0, -40.0, 1e4]:
        at = torch.full((N,), a, dtype=dtype)
        u = torch.rand(N, generator=gen, dtype=dtype)
        k = geometric_sample(at, K, u)
        assert k.dtype == dtype
        assert bool(((k >= 0) & (k <= K - 1) & (k == k.floor())).all())
        _check_frequencies(k, ref_probs(torch.tensor(float(at[0])), K))


def test_sampler_edges():
    K = 17
    a = torch.tensor([0.0, -3.0, 3.0, 1e4, -1e4, 1e-30], dtype=torch.float64)
    for u0 in [0.0, 1 - 2.0 ** -53]:
        k = geometric_sample(a, K, torch.full_like(a, u0))
        assert bool(((k >= 0) & (k <= K - 1)).all())
    # u = 0 is the lowest level for a <= 0 and the highest for a > 0 (the mirror)
    assert geometric_sample(a, K, torch.zeros_like(a)).tolist() == [0, 0, 16, 16, 0, 0]
    top = geometric_sample(a, K, torch.full_like(a, 1 - 2.0 ** -53)).tolist()
    # at a = -3 levels above 12 have probability e^-39 < 2^-53: u = 1 - 2^-53 gives 12
    assert top == [16, 12, 4, 16, 0, 16]
    # the inverse CDF at exact CDF values lands at the level boundary
    t = 0.7
    cdf = (1 - torch.exp(-t * torch.arange(1, K + 1, dtype=torch.float64))) / (
        1 - math.exp(-K * t))
    mid = torch.cat([torch.zeros(1, dtype=torch.float64), cdf[:-1]]) + torch.diff(
        torch.cat([torch.zeros(1, dtype=torch.float64), cdf])) / 2
    k = geometric_sample(torch.full((K,), -t, dtype=torch.float64), K, mid)
    assert k.tolist() == list(range(K))


# ----------------------------------------------------------------------------------------
# 2. declaring multinary models
# ----------------------------------------------------------------------------------------


def test_declaration_errors():
    G = pb.graphs.rbm(2, 1)
    G.nodes["v0"]["domain"] = "multinary"
    with pytest.raises(pb.GraphError, match=r"'v0'.*levels"):
        compile64(G)
    for bad in [1, 0, 2.5, True, "3"]:
        G.nodes["v0"]["levels"] = bad
        with pytest.raises(pb.GraphError, match="v0"):
            compile64(G)
    G.nodes["v0"]["levels"] = 3
    m = compile64(G, seed=0)
    with pytest.raises(pb.DataError, match=r"node 'v0'.*multinary\(K=3\).*0\.\.2"):
        m.log_prob([[3, 0]])
    with pytest.raises(pb.DataError, match="'v0'"):
        m.log_prob([[0.5, 0]])
    with pytest.raises(pb.GraphError, match="levels"):
        pb.graphs.rbm(3, 2, domain="multinary")


def test_k2_multinary_equals_binary():
    mb = compile64(pb.graphs.rbm(5, 3), seed=1)
    mm = compile64(pb.graphs.rbm(5, 3, domain="multinary", levels=2,
                                  hidden_domain="multinary", hidden_levels=2), seed=1)
    random_params(mb, 1.0, 0)
    mm.load_state_dict(mb.state_dict())
    data = torch.tensor(list(itertools.product([0, 1], repeat=5)), dtype=torch.float64)
    assert float(mm.log_partition().detach()) == float(mb.log_partition().detach())
    assert torch.equal(mm.log_prob(data), mb.log_prob(data))
    assert torch.equal(mm.free_energy(data), mb.free_energy(data))
    m1, s1 = mb.moments()
    m2, s2 = mm.moments()
    assert torch.allclose(m1, m2, atol=1e-13) and torch.allclose(s1, s2, atol=1e-13)


# ----------------------------------------------------------------------------------------
# 3. the exact engine against brute force
# ----------------------------------------------------------------------------------------


def _check_against_brute_force(model: pb.BoltzmannMachine, rows: int = 12, seed: int = 0):
    X, lw, logz = brute_force(model)
    assert float(model.log_partition().detach()) == pytest.approx(float(logz), rel=1e-12, abs=1e-12)
    # visible data: random valid codes
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, d.levels, rows) if d.name != "spin"
                      else rng.choice([-1.0, 1.0], rows)
                      for d in model.visible_domains.domains], axis=1).astype(float)
    v = model.encode_data(codes)
    fe = model.free_energy(codes)
    assert torch.allclose(fe, brute_free_energy(model, v), rtol=1e-12, atol=1e-11)
    assert torch.allclose(model.log_prob(codes), -brute_free_energy(model, v) - logz,
                          rtol=1e-12, atol=1e-11)
    # moments and marginals
    p = torch.softmax(lw, 0)
    mean_ref = (p[:, None] * X).sum(0)
    second_ref = (p[:, None, None] * X[:, :, None] * X[:, None, :]).sum(0)
    mean, second = model.moments()
    assert torch.allclose(mean, mean_ref, rtol=1e-10, atol=1e-11)
    assert torch.allclose(second, second_ref, rtol=1e-10, atol=1e-11)
    marg = model.marginals()
    for i, node in enumerate(model.nodes):
        d = model.spec.domains[i]
        level = torch.round((X[:, i] - d.lo) / d.step).long()
        ref = torch.zeros(d.levels, dtype=p.dtype).index_add_(0, level, p)
        assert np.allclose(marg[node], ref.numpy(), rtol=1e-10, atol=1e-12), node
    # the gradient of log Z is the exact moments
    model.zero_grad()
    model.log_partition().backward()
    eu, ev = model.edge_array[:, 0], model.edge_array[:, 1]
    assert torch.allclose(model.bias.grad, mean_ref, rtol=1e-10, atol=1e-11)
    assert torch.allclose(model.weight.grad, second_ref[eu, ev], rtol=1e-10, atol=1e-11)
    # the gradient of log P(v) = data moments - model moments, through the free energy
    model.zero_grad()
    model.log_prob(codes[:3]).sum().backward()
    gb = model.bias.grad.clone()
    model.zero_grad()

    def f():
        with torch.no_grad():
            return float(model.log_prob(codes[:3]).sum())
    eps = 1e-6
    for k in range(len(model.bias)):
        with torch.no_grad():
            model.bias[k] += eps
        up = f()
        with torch.no_grad():
            model.bias[k] -= 2 * eps
        down = f()
        with torch.no_grad():
            model.bias[k] += eps
        assert (up - down) / (2 * eps) == pytest.approx(float(gb[k]), abs=1e-6)


@pytest.mark.parametrize("scale", [0.0, 0.7, 3.0])
def test_exact_mixed_domains(scale):
    model = compile64(mixed_graph(), seed=0)
    assert model.plan.engine == "exact"
    random_params(model, scale, seed=3)
    _check_against_brute_force(model)


def test_exact_non_bipartite_with_enumerated_hidden():
    G = mixed_graph()
    G.add_edge("h4", "hb")  # hidden-hidden edge: a hidden vertex cover is enumerated per row
    G.add_edge("m3", "m5")
    model = compile64(G, seed=0)
    assert not model.plan.bipartite and len(model.plan.hidden_enumerated) >= 1
    random_params(model, 1.0, seed=4)
    _check_against_brute_force(model)


def test_exact_k256_summed_out_and_enumerated():
    # a K=256 hidden unit summed out (its neighbours enumerated) ...
    G = nx.Graph()
    G.add_node("x", role="visible", domain="multinary", levels=256)
    G.add_node("b", role="visible")
    G.add_node("h", role="hidden", domain="multinary", levels=256)
    G.add_node("g", role="hidden", domain="multinary", levels=3)
    G.add_edges_from([("x", "h"), ("b", "h"), ("x", "g"), ("b", "g")])
    model = compile64(G, seed=0)
    random_params(model, 2.0, seed=5)
    _check_against_brute_force(model, rows=6)
    # ... and two adjacent K=256 units: one of them is enumerated
    G2 = nx.Graph()
    G2.add_node("x", role="visible", domain="multinary", levels=256)
    G2.add_node("y", role="visible", domain="multinary", levels=256)
    G2.add_node("h", role="hidden", domain="spin")
    G2.add_edges_from([("x", "y"), ("y", "h"), ("x", "h")])
    m2 = compile64(G2, seed=0)
    assert len(m2.plan.enumerated) == 2 and m2.plan.exact_states == 256 * 2
    random_params(m2, 3.0, seed=6)
    _check_against_brute_force(m2, rows=6)


def test_exact_threshold_counts_levels():
    G = pb.graphs.fully_connected(4, domain="multinary", levels=256)
    plan = compile64(G, engine="auto").plan
    # a complete graph: all but one node enumerated, 256^3 = 2^24 states
    assert plan.exact_states == 256.0 ** 3 and plan.engine == "chromatic-gibbs"
    assert not plan.exact_feasible
    with pytest.raises(pb.IntractableError):
        compile64(G, engine="exact")
    assert compile64(G, max_exact_states=2 ** 24).plan.engine == "exact"
    # the 17-level digits RBM enumerates its 2^16 binary hidden states
    plan = compile64(pb.graphs.rbm(64, 16, domain="multinary", levels=17)).plan
    assert plan.engine == "exact" and plan.exact_states == 2 ** 16
    assert plan.enumerated == [f"h{j}" for j in range(16)]


def test_free_energy_multinary_hidden_summed_out():
    G = pb.graphs.rbm(3, 4, domain="multinary", levels=5, hidden_domain="multinary",
                      hidden_levels=17)
    model = compile64(G, seed=0)
    assert model.plan.hidden_enumerated == []  # summed out analytically
    random_params(model, 1.5, seed=7)
    codes = np.array(list(itertools.product(range(5), repeat=3)), dtype=float)
    v = model.encode_data(codes)
    # brute force over the 17^4 hidden states per row
    hv = torch.as_tensor(multinary(17).values())
    H = torch.cartesian_prod(hv, hv, hv, hv)
    W = model.weight.detach().view(3, 4)
    b, c = model.bias.detach()[:3], model.bias.detach()[3:]
    ref = -(v @ b) - torch.logsumexp(v @ W @ H.T + H @ c, dim=1)
    assert torch.allclose(model.free_energy(codes), ref, rtol=1e-12, atol=1e-12)
    # and log P sums to one over all visible states
    assert float(model.log_prob(codes).detach().exp().sum()) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------------------
# 4. Gibbs samplers against the exact marginals
# ----------------------------------------------------------------------------------------


def _gibbs_marginals_match(model: pb.BoltzmannMachine, n_chains: int, steps: int, seed: int):
    x = pb.inference.run_chains(model, n_chains, steps=steps, seed=seed)
    codes = model.domains.decode(x)
    marg = model.marginals()
    for i, node in enumerate(model.nodes):
        d = model.spec.domains[i]
        col = codes[:, i].double()
        idx = (col + 1) / 2 if d.name == "spin" else col
        _check_frequencies(idx, torch.as_tensor(marg[node]), n_sigma=5.0)


def test_block_gibbs_multinary_marginals():
    G = pb.graphs.rbm(4, 3, domain="multinary", levels=4, hidden_domain="multinary",
                      hidden_levels=3)
    model = compile64(G, engine="block-gibbs", seed=0)
    assert model.plan.engine == "block-gibbs" and model.plan.exact_feasible
    random_params(model, 0.8, seed=8)
    _gibbs_marginals_match(model, n_chains=6000, steps=60, seed=1)
    # the mixed-domain graph too (through model.sample)
    m2 = compile64(mixed_graph(), engine="block-gibbs", seed=0)
    random_params(m2, 0.8, seed=9)
    _gibbs_marginals_match(m2, n_chains=6000, steps=60, seed=2)


def test_chromatic_gibbs_multinary_marginals():
    G = mixed_graph()
    G.add_edge("h4", "hb")
    G.add_edge("m3", "m5")
    G.add_edge("a", "s")
    model = compile64(G, engine="chromatic-gibbs", seed=0)
    assert model.plan.engine == "chromatic-gibbs" and len(model.plan.blocks) >= 3
    random_params(model, 0.8, seed=10)
    _gibbs_marginals_match(model, n_chains=6000, steps=60, seed=3)


def test_sample_returns_codes():
    model = compile64(pb.graphs.rbm(3, 2, domain="multinary", levels=17), seed=0)
    random_params(model, 1.0, seed=11)
    for method in ["exact", "gibbs"]:
        kw = {"steps": 5} if method == "gibbs" else {}
        s = model.sample(50, seed=0, method=method, **kw)
        assert s.shape == (50, 3)
        assert bool(((s >= 0) & (s <= 16) & (s == s.round())).all())
    # exact samples follow the exact marginals
    s = model.sample(20000, seed=1, method="exact")
    marg = model.marginals()
    for i in range(3):
        _check_frequencies(s[:, i].double(), torch.as_tensor(marg[f"v{i}"]))


# ----------------------------------------------------------------------------------------
# 5. training
# ----------------------------------------------------------------------------------------


def _tiny_data(seed: int = 0) -> np.ndarray:
    """Correlated 4-pixel, 5-level data: two groups of pixels that move together."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, 400)
    base = np.where(z[:, None] == 1, [4, 4, 0, 0], [0, 0, 4, 4])
    noise = rng.integers(-1, 2, (400, 4))
    return np.clip(base + noise, 0, 4).astype(float)


def test_exact_training_multinary_learns_dependence():
    data = _tiny_data()
    model = compile64(pb.graphs.rbm(4, 2, domain="multinary", levels=5), seed=0)
    hist = model.fit(data, method="exact", epochs=150, lr=0.05, progress=False, seed=0)
    # the independent model with the data's means (the fit's starting biases)
    ind = compile64(pb.graphs.rbm(4, 0, domain="multinary", levels=5), seed=0)
    with torch.no_grad():
        ind.bias.copy_(model.visible_init)
    nll_ind = float(-ind.log_prob(data).detach().mean())
    assert hist[-1]["nll"] < nll_ind - 0.5  # the hidden units capture the two groups
    assert hist[-1]["nll"] == pytest.approx(float(-model.log_prob(data).detach().mean()),
                                            rel=1e-10)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_gibbs_training_multinary(method):
    data = _tiny_data(1)
    model = compile64(pb.graphs.rbm(4, 2, domain="multinary", levels=5), seed=0)
    ind = compile64(pb.graphs.rbm(4, 0, domain="multinary", levels=5), seed=0)
    model.fit(data, method=method, epochs=60, lr=0.05, batch_size=50, progress=False,
              seed=0, optimizer="adam")
    with torch.no_grad():
        ind.bias.copy_(model.visible_init)
    nll = float(-model.log_prob(data).detach().mean())  # exact: the model is small
    assert nll < float(-ind.log_prob(data).detach().mean()) - 0.3


# ----------------------------------------------------------------------------------------
# 6. the examples run (quick mode)
# ----------------------------------------------------------------------------------------


def _load_example(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_digits_multinary_quick(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    ex = _load_example("digits_multinary")
    out = ex.main(["--quick", "--out", str(tmp_path / "digits.png")])
    assert (tmp_path / "digits.png").stat().st_size > 1000
    assert math.isfinite(out["test_nll"]) and out["test_nll"] > 0
