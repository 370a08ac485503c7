"""Gaussian units (``domain="gaussian"``, a learned precision) against numerical
integration: the closed forms (torch and numba), log Z, moments, log-densities,
marginals and conditioning of small mixed models against a fine grid over the Gaussian
coordinates (summing the discrete ones), exact samples, Gibbs (both backends), AIS,
gradients against finite differences, CD/PCD and exact ML on a Gaussian–Bernoulli RBM
fitted to a teacher's data, Pyro, save/load, and the errors."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import gibbs_moment_z, random_graph

import pgm_boltz as pb
from pgm_boltz.domains import GAUSS, GAUSSIAN, DomainVector
from pgm_boltz.domains import kernels as dk
from pgm_boltz.samplers import gibbs_sampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F64 = torch.float64
GRID = np.linspace(-16.0, 16.0, 801)  # trapezoid rule: spectrally accurate for Gaussians
STEP = GRID[1] - GRID[0]


def mixed_model(seed: int = 0, scale: float = 0.6, **kw) -> pb.BoltzmannMachine:
    """Gaussian units visible (g1) and hidden (g2, coupled to a hidden binary unit, so the
    free energy needs the engine), a multinary unit with a precision, binary and spin
    units, a triangle (not bipartite)."""
    G = nx.Graph()
    G.add_node("g1", role="visible", domain="gaussian", precision=1.5)
    G.add_node("m", role="visible", domain="multinary", levels=3, precision=2.0)
    G.add_node("s", role="visible", domain="spin")
    G.add_node("g2", role="hidden", domain="gaussian", precision=0.7)
    G.add_node("b", role="hidden", domain="binary")
    G.add_edges_from([("g1", "b"), ("g1", "m"), ("g1", "s"), ("g2", "b"), ("g2", "s"),
                      ("m", "b"), ("b", "s"), ("m", "s")])
    m = pb.compile(G, dtype=F64, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=F64) * scale)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=F64) * scale)
    return m


def gb_rbm(n_v: int = 4, n_h: int = 3, seed: int = 0, scale: float = 0.5,
           precision: float = 1.0, **kw) -> pb.BoltzmannMachine:
    m = pb.compile(pb.graphs.rbm(n_v, n_h, domain="gaussian", precision=precision),
                   dtype=F64, seed=seed, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=F64) * scale)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=F64) * scale)
    return m


def grid_oracle(model: pb.BoltzmannMachine, fixed: dict | None = None,
                grid: np.ndarray = GRID) -> tuple[float, np.ndarray, np.ndarray]:
    """``log ∫ sum exp(-E)``, means and all second moments (diagonal ``<s^2>``) by a
    trapezoid grid over every Gaussian coordinate (at most two) and a sum over the
    discrete ones; ``fixed`` {node index: value} clamps nodes (their weight included)."""
    fixed = fixed or {}
    step = grid[1] - grid[0]
    n = model.n_nodes
    b = model.bias.detach().double().numpy()
    J = model.coupling_matrix().detach().double().numpy()
    q = model.precisions().detach().double().numpy()
    gauss = [i for i in range(n) if not model.spec.domains[i].discrete and i not in fixed]
    disc = [i for i in range(n) if model.spec.domains[i].discrete and i not in fixed]
    grids = np.meshgrid(*([grid] * len(gauss)), indexing="ij")
    pts = np.stack([g.reshape(-1) for g in grids], 1) if gauss else np.zeros((1, 0))
    logs, first, second = [], np.zeros(n), np.zeros((n, n))
    for st in itertools.product(*[model.spec.domains[i].values() for i in disc]):
        X = np.zeros((len(pts), n))
        X[:, gauss] = pts
        X[:, disc] = st
        for i, v in fixed.items():
            X[:, i] = v
        lw = X @ b + 0.5 * np.einsum("si,ij,sj->s", X, J, X) - 0.5 * (X * X) @ q
        lw = lw + len(gauss) * math.log(step)
        logs.append((lw, X))
    top = max(lw.max() for lw, _ in logs)
    Z = 0.0
    for lw, X in logs:
        w = np.exp(lw - top)
        Z += w.sum()
        first += w @ X
        second += (X * w[:, None]).T @ X
    return top + math.log(Z), first / Z, second / Z


# ------------------------------------------------------------------ the domain


def test_closed_forms_match_numerical_integration() -> None:
    dv = DomainVector([GAUSSIAN])
    for f, q in [(0.0, 1.0), (2.0, 0.5), (-4.0, 7.0), (1e-3, 50.0)]:
        lw = f * GRID - 0.5 * q * GRID ** 2
        m = lw.max()
        w = np.exp(lw - m)
        A = m + math.log(w.sum() * STEP)
        ft, qt = torch.tensor([f], dtype=F64), torch.tensor([q], dtype=F64)
        assert float(dv.log_normalizer(ft, qt)[0]) == pytest.approx(A, abs=1e-10)
        assert float(dv.mean(ft, qt)[0]) == pytest.approx((w * GRID).sum() / w.sum(),
                                                          abs=1e-10)
        assert float(dv.second_moment(ft, qt)[0]) == pytest.approx(
            (w * GRID ** 2).sum() / w.sum(), abs=1e-10)
        # autograd: d A / d f = mean, d A / d q = -<s^2>/2
        ft.requires_grad_(True)
        qt.requires_grad_(True)
        dv.log_normalizer(ft, qt).sum().backward()
        assert float(ft.grad[0]) == pytest.approx(f / q, abs=1e-12)
        assert float(qt.grad[0]) == pytest.approx(-0.5 * (1 / q + (f / q) ** 2), abs=1e-12)
        assert float(dv.bias_for_mean(torch.tensor([f / q], dtype=F64),
                                      q=torch.tensor([q], dtype=F64))[0]) == pytest.approx(f)
        kind, lo, step, K, V, LW = dv.kernel_arrays(np.array([q]))
        assert kind[0] == GAUSS and step[0] == q
        args = (0, kind, lo, step, K, V, LW)
        assert dk.log_normalizer(f, *args) == pytest.approx(A, abs=1e-10)
        assert dk.mean(f, *args) == pytest.approx(f / q)
        assert dk.second_moment(f, *args) == pytest.approx(1 / q + (f / q) ** 2)
    with pytest.raises(pb.ArgumentError, match="precisions"):
        dv.mean(torch.zeros(1))


def test_draws_are_normal() -> None:
    dv = DomainVector([GAUSSIAN])
    x = dv.sample(torch.full((200000, 1), 3.0, dtype=F64), torch.Generator().manual_seed(0),
                  torch.tensor([4.0], dtype=F64))[:, 0]
    assert float(x.mean()) == pytest.approx(0.75, abs=5 * 0.5 / math.sqrt(len(x)))
    assert float(x.var()) == pytest.approx(0.25, rel=0.02)
    # numba: the quantile transform of a grid of uniforms (and of logistic noise)
    for p in [1e-12, 1e-6, 0.01, 0.02425, 0.1, 0.3, 0.5]:
        z = dk.ndtri_lower(p)
        assert 0.5 * math.erfc(-z / math.sqrt(2)) == pytest.approx(p, rel=1e-12)
    kind, lo, step, K, V, LW = dv.kernel_arrays(np.array([4.0]))
    u = (np.arange(100000) + 0.5) / 100000
    d = np.array([dk.draw(3.0, 0, kind, lo, step, K, V, LW, ui) for ui in u])
    assert d.mean() == pytest.approx(0.75, abs=1e-6)
    assert d.var() == pytest.approx(0.25, rel=2e-3)  # the grid truncates the tails
    g = np.log(u) - np.log1p(-u)
    dl = np.array([dk.draw_logistic(3.0, 0, kind, lo, step, K, V, LW, gi) for gi in g])
    np.testing.assert_allclose(dl, d, atol=1e-9)
    # float32 noise can round u to 0: the draw stays finite (|z| <= 5.5)
    assert abs(dk.draw_logistic(0.0, 0, kind, lo, step, K, V, LW, -math.inf)) < 3.0


def test_declarations_and_errors() -> None:
    G = nx.Graph()
    G.add_node("a", role="visible", domain="gaussian")
    G.add_node("b", role="hidden", domain="gaussian")
    G.add_edge("a", "b")
    with pytest.raises(pb.GraphError, match=r"edge \('a', 'b'\) joins two continuous"):
        pb.compile(G)
    for attrs, msg in [({"precision": 0.0}, "> 0"), ({"precision": -2.0}, "> 0"),
                       ({"levels": 4}, "real-valued"), ({"values": [0, 1]}, "real-valued"),
                       ({"precision": "x"}, "finite real")]:
        H = nx.Graph()
        H.add_node("g", role="visible", domain="gaussian", **attrs)
        with pytest.raises(pb.GraphError, match=msg):
            pb.compile(H)
    m = pb.compile(pb.graphs.rbm(3, 2, domain="gaussian"))  # precision 1 by default
    assert m.quadratic_index.tolist() == [0, 1, 2]
    assert torch.allclose(m.log_precision, torch.zeros(3))
    assert [m.spec.domains[i].describe() for i in (0, 3)] == ["gaussian", "binary"]
    assert m.plan.enumerated == ["h0", "h1"]  # Gaussian units are always summed out
    # a Gaussian's neighbours are enumerated even when the cover would prefer otherwise
    big = pb.compile(pb.graphs.rbm(2, 12, domain="gaussian"))
    assert len(big.plan.enumerated) == 12
    assert "gaussian" in pb.domains.domain_names()


def test_data_are_real_values() -> None:
    m = gb_rbm()
    assert torch.allclose(m.encode_data([[0.3, -1.2, 2.5, 1e3]]),
                          torch.tensor([[0.3, -1.2, 2.5, 1e3]], dtype=F64))
    with pytest.raises(pb.DataError, match=r"column 2 \(node 'v2'\).*finite real number"):
        m.log_prob([[0.0, 1.0, math.nan, 0.0]])
    with pytest.raises(pb.DataError, match="finite real"):
        m.log_prob([[0.0, 1.0, math.inf, 0.0]])


# ------------------------------------------------------------------ exact vs the grid


def test_exact_matches_the_grid_on_a_mixed_model() -> None:
    model = mixed_model()
    assert model.plan.engine == "exact" and sorted(model.plan.enumerated) == ["b", "m", "s"]
    log_z, mean, second = grid_oracle(model)
    assert float(model.log_partition().detach()) == pytest.approx(log_z, abs=1e-9)
    m, s = model.moments()
    np.testing.assert_allclose(m.numpy(), mean, atol=1e-9)
    np.testing.assert_allclose(s.numpy(), second, atol=1e-9)  # all pairs, <s^2> on the diag
    marg = model.marginals()
    assert sorted(marg) == ["b", "m", "s"]  # Gaussian nodes have no level marginals
    im = model.nodes.index("m")
    p_m = [grid_oracle(model, {im: v})[0] for v in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(marg["m"], np.exp(np.array(p_m) - log_z), atol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_random_mixed_graphs_match_the_grid(seed: int) -> None:
    """Random discrete graphs (all domains, some precisions) with one or two Gaussian
    units attached to random discrete nodes: log Z and every moment against the grid."""
    rng = np.random.default_rng(seed)
    G = random_graph(rng, n_min=3, n_max=5, precision=0.5, max_states=100)
    discrete = list(G.nodes)
    for g in range(1 + seed % 2):
        name = f"g{g}"
        G.add_node(name, role=str(rng.choice(["visible", "hidden"])), domain="gaussian",
                   precision=float(rng.uniform(0.5, 3.0)), bias=float(rng.normal()))
        k = int(rng.integers(1, len(discrete) + 1))
        for u in rng.choice(discrete, size=k, replace=False):
            G.add_edge(name, str(u), weight=float(rng.normal(0, 0.8)))
    model = pb.compile(G, dtype=F64)
    log_z, mean, second = grid_oracle(model, grid=np.linspace(-14.0, 14.0, 141))
    assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-9)
    m, s = model.moments()
    np.testing.assert_allclose(m.numpy(), mean, atol=1e-9)
    np.testing.assert_allclose(s.numpy(), second, atol=1e-9)
    x = model.sample(3, seed=0)  # log P(v) of a few visible rows is finite and consistent
    lp = model.log_prob(x)
    assert torch.isfinite(lp).all()


def test_gb_rbm_log_z_and_moments_match_the_grid() -> None:
    model = gb_rbm(n_v=2, n_h=3, seed=4, scale=0.8)
    with torch.no_grad():
        model.log_precision.copy_(torch.log(torch.tensor([0.6, 2.5], dtype=F64)))
    log_z, mean, second = grid_oracle(model)
    assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-9)
    m, s = model.moments()
    np.testing.assert_allclose(m.numpy(), mean, atol=1e-9)
    np.testing.assert_allclose(s.numpy(), second, atol=1e-9)


def test_log_prob_is_a_normalised_log_density() -> None:
    """∫ dg1 sum_{m, s} P(g1, m, s) = 1, and log P(v) matches the grid (the hidden
    Gaussian integrated numerically, the hidden binary summed)."""
    model = mixed_model(seed=2)
    codes = [(m, s) for m in (0, 1, 2) for s in (-1, 1)]
    rows = torch.tensor([[g, m, s] for g in GRID for m, s in codes], dtype=F64)
    lp = model.log_prob(rows).detach().numpy()
    assert np.exp(lp).sum() * STEP == pytest.approx(1.0, abs=1e-9)
    log_z = grid_oracle(model)[0]
    ig1, im, is_ = (model.nodes.index(k) for k in ("g1", "m", "s"))
    for g, m, s in [(0.3, 1, -1), (-2.0, 2, 1), (1.7, 0, 1)]:
        ref = grid_oracle(model, {ig1: g, im: m / 2, is_: s})[0] - log_z
        assert float(model.log_prob([[g, m, s]])) == pytest.approx(ref, abs=1e-9)


def test_free_energy_with_gaussian_hidden_units() -> None:
    """Binary visible units, Gaussian hidden ones (summed out by A(f) in closed form)."""
    G = pb.graphs.rbm(3, 2, domain="binary", hidden_domain="gaussian", hidden_precision=2.0)
    model = pb.compile(G, dtype=F64, seed=1)
    with torch.no_grad():
        model.weight.normal_(0, 0.7, generator=torch.Generator().manual_seed(0))
    states = torch.tensor(list(itertools.product([0, 1], repeat=3)), dtype=F64)
    lp = model.log_prob(states).detach()
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    log_z = grid_oracle(model)[0]
    for r in range(8):
        ref = grid_oracle(model, dict(enumerate(states[r].tolist())))[0] - log_z
        assert float(lp[r]) == pytest.approx(ref, abs=1e-9)


def test_conditioning_on_and_off_gaussian_units() -> None:
    model = mixed_model(seed=3)
    ig1, is_ = model.nodes.index("g1"), model.nodes.index("s")
    cond = model.condition({"g1": 0.7, "s": -1})
    assert cond.free_nodes == ["m", "g2", "b"]
    assert cond.log_partition() == pytest.approx(
        grid_oracle(model, {ig1: 0.7, is_: -1.0})[0], abs=1e-9)
    # the discrete nodes clamped: the Gaussians are free and independent normals
    ev = {"m": 2, "s": 1, "b": 1}
    c2 = model.condition(ev)
    mean, second = c2.moments()
    fixed = {model.nodes.index(k): float(model.spec.domains[model.nodes.index(k)].values()[
        int(v) if k != "s" else 1]) for k, v in ev.items()}
    x = torch.zeros(model.n_nodes, dtype=F64)
    for i, v in fixed.items():
        x[i] = v
    f = model.fields(x[None])[0].detach()
    q = model.precisions().detach()
    gi = [model.nodes.index("g1"), model.nodes.index("g2")]
    torch.testing.assert_close(mean, (f / q)[gi])
    torch.testing.assert_close(second.diag(), (1 / q + (f / q) ** 2)[gi])
    assert c2.log_partition() == pytest.approx(grid_oracle(model, fixed)[0], abs=1e-9)
    draws = c2.sample(20000, seed=0, free_only=True)
    assert ((draws.mean(0) - (f / q)[gi]).abs() < 5 / math.sqrt(20000) / q[gi].sqrt()).all()


def test_exact_samples_match_the_exact_moments() -> None:
    model = mixed_model(seed=4)
    x = model.sample(40000, seed=1, return_hidden=True)
    vals = model.domains.encode(x)
    mean, second = model.moments()
    se = vals.std(0) / math.sqrt(len(vals))
    assert ((vals.mean(0) - mean).abs() < 5 * se + 1e-12).all()
    se2 = (vals ** 2).std(0) / math.sqrt(len(vals))  # 0 for the spin: s^2 = 1
    assert (((vals ** 2).mean(0) - second.diag()).abs() < 5 * se2 + 1e-12).all()


def test_gradients_match_finite_differences() -> None:
    model = mixed_model(seed=5)
    with torch.no_grad():
        model.log_precision.add_(torch.tensor([0.2, -0.3, 0.1], dtype=F64))
    data = model.sample(25, seed=3)
    nll = lambda: -model.log_prob(data).mean()
    model.zero_grad()
    nll().backward()
    h = 1e-6
    for p in (model.bias, model.weight, model.log_precision):
        g = p.grad.clone()
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += h
                up = float(nll())
                p.view(-1)[i] -= 2 * h
                down = float(nll())
                p.view(-1)[i] += h
            assert (up - down) / (2 * h) == pytest.approx(float(g.view(-1)[i]), abs=1e-6)


# ------------------------------------------------------------------ Gibbs, AIS


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_gibbs_matches_exact_moments(backend: str) -> None:
    model = mixed_model(seed=6)
    assert gibbs_moment_z(model, gibbs_sampler(model, backend=backend)).max() < 5.0


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_gibbs_on_a_gb_rbm(backend: str) -> None:
    model = gb_rbm(seed=7, scale=0.6, engine="block-gibbs")
    with torch.no_grad():
        model.log_precision.copy_(torch.log(torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64)))
    assert gibbs_moment_z(model, gibbs_sampler(model, backend=backend)).max() < 5.0


@pytest.mark.parametrize("method", ["ais", "reverse-ais"])
def test_ais_on_a_gb_rbm(method: str) -> None:
    model = gb_rbm(n_v=6, n_h=4, seed=8, scale=0.6)
    exact = float(model.log_partition())
    data = model.sample(200, seed=1)
    est = model.log_partition(method=method, n_chains=200, n_betas=400, data=data, seed=0,
                              progress=False)
    assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)


def test_ais_on_a_non_bipartite_mixed_model() -> None:
    model = mixed_model(seed=9)
    exact = float(model.log_partition())
    for collapse in (True, False):
        est = model.log_partition(method="ais", n_chains=200, n_betas=500, seed=0,
                                  progress=False, collapse=collapse)
        assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)


# ------------------------------------------------------------------ learning


def teacher_data(n: int = 500) -> tuple[pb.BoltzmannMachine, torch.Tensor]:
    teacher = gb_rbm(n_v=5, n_h=3, seed=10, scale=1.0, precision=2.0)
    with torch.no_grad():
        teacher.bias[:5] = torch.tensor([1.0, -1.0, 0.5, 2.0, 0.0], dtype=F64)
    return teacher, teacher.sample(n, seed=0)


@pytest.mark.parametrize("method", ["exact", "cd", "pcd"])
def test_gb_rbm_training_lowers_the_exact_nll(method: str) -> None:
    teacher, data = teacher_data()
    student = gb_rbm(n_v=5, n_h=3, seed=11, scale=0.01, precision=1.0)
    start = float(-student.log_prob(data).mean())
    kw = dict(epochs=80, lr=0.05, progress=False, seed=0) if method == "exact" else \
        dict(epochs=40, lr=0.02, batch_size=50, progress=False, seed=0)
    hist = student.fit(data, method=method, **kw)
    end = float(-student.log_prob(data).mean())
    best = float(-teacher.log_prob(data).mean())
    assert end < start - 0.5, (start, end, best)  # start 9.08, the teacher's NLL 5.71
    assert end < best + 0.2, (end, best)
    assert math.isfinite(hist[-1]["recon_error" if method != "exact" else "nll"])
    q = torch.exp(student.log_precision)
    assert float(q.mean()) > 1.35  # learned towards the teacher's precision 2


# ------------------------------------------------------------------ Pyro, io, scores


def test_pyro_support_and_scores() -> None:
    from pyro.distributions import constraints

    model = gb_rbm()
    d = model.to_pyro()
    assert d.support is constraints.real_vector and not d.support.is_discrete
    assert not d.has_enumerate_support
    with pytest.raises(pb.IntractableError, match="continuous"):
        d.enumerate_support()
    x = torch.randn(6, 4, dtype=F64)
    torch.testing.assert_close(d.log_prob(x), model.log_prob(x))
    assert d.sample((7,)).shape == (7, 4)
    mixed = mixed_model().to_pyro()
    sup = mixed.support
    assert not sup.is_discrete
    assert sup.check(torch.tensor([[0.3, 2.0, -1.0], [0.3, 0.5, -1.0]])).tolist() == \
        [True, False]
    # means of the codes: the Gaussian's value, the multinary level (value * 2), the spin
    torch.testing.assert_close(mixed.mean, mixed_model().moments()[0][:3]
                               * torch.tensor([1.0, 2.0, 1.0], dtype=F64))
    # parameters as sample sites, the log-precision included
    lp = model.log_precision.detach().clone().requires_grad_(True)
    dd = pb.pyro.boltzmann_with_params(model, model.bias.detach(), model.weight.detach(),
                                       log_precision=lp)
    dd.log_prob(x).sum().backward()
    model.zero_grad()
    model.log_prob(x).sum().backward()
    torch.testing.assert_close(lp.grad, model.log_precision.grad)
    with pytest.raises(pb.DataError, match="no quadratic terms"):
        pb.pyro.boltzmann_with_params(pb.compile(pb.graphs.rbm(2, 1)), torch.zeros(3),
                                      torch.zeros(2), log_precision=torch.zeros(1))


def test_save_load_round_trip(tmp_path) -> None:
    model = mixed_model(seed=12)
    with torch.no_grad():
        model.log_precision.copy_(torch.tensor([0.1, -0.4, 0.9], dtype=F64))
    pb.save(model, tmp_path / "g.pt")
    back = pb.load(tmp_path / "g.pt")
    assert torch.equal(back.log_precision, model.log_precision)
    assert float(back.log_partition()) == float(model.log_partition())
    G = model.to_networkx()
    assert G.nodes["g1"]["precision"] == pytest.approx(math.exp(0.1))
    assert float(pb.compile(G, dtype=F64).log_partition()) == pytest.approx(
        float(model.log_partition()), abs=1e-12)


def test_scores_of_gaussian_visible_units() -> None:
    model = gb_rbm()
    data = model.sample(50, seed=0)
    with pytest.raises(pb.ArgumentError, match="continuous"):
        pb.inference.scores.pseudo_log_likelihood(model, data)
    ev = pb.evaluate(model, data, progress=False)
    assert math.isnan(ev.pseudo_log_likelihood)
    assert ev.nll == pytest.approx(float(-model.log_prob(data).mean()), abs=1e-9)
    assert ev.reconstruction_error >= 0


def test_float32_gb_rbm_runs() -> None:
    m = pb.compile(pb.graphs.rbm(6, 4, domain="gaussian"), seed=0)
    data = torch.randn(64, 6)
    m.fit(data, method="pcd", epochs=2, progress=False, seed=0)
    assert torch.isfinite(m.log_prob(data)).all()
    x = m.sample(10, method="gibbs", steps=5, seed=0)
    assert torch.isfinite(x).all() and x.dtype == torch.float32
