"""The learned quadratic self-term ``q s^2 / 2`` (a precision) on multinary and finite
units, against brute force and the exact engine everywhere: the domain maths (torch and
numba), declarations, exact log Z / moments / marginals / log P(v) on random graphs
(hypothesis), the exact engine's product form with coefficients (chunked walks, many
summed nodes, huge fields), gradients against finite differences, Gibbs (both backends)
against exact moments, AIS, CD/PCD and exact ML learning the precision, conditioning,
save/load, to_networkx."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import (
    all_joint_states,
    brute_force,
    brute_force_visible,
    gibbs_moment_z,
    joint_log_weights,
    random_graphs,
)
from hypothesis import given, settings

import pgm_boltz as pb
from pgm_boltz.domains import (
    TABLE,
    DomainVector,
    FiniteDomain,
    multinary,
    parse_precision,
)
from pgm_boltz.domains import kernels as dk
from pgm_boltz.engines import enum_kernels as ex
from pgm_boltz.engines.enumeration import kernel_problem
from pgm_boltz.model import MIN_PRECISION
from pgm_boltz.samplers import gibbs_sampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = settings(max_examples=25, deadline=None)
F64 = torch.float64


def set_params(model: pb.BoltzmannMachine, scale: float, seed: int,
               log_q: tuple[float, float] | None = None) -> pb.BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g, dtype=F64) * scale)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g, dtype=F64) * scale)
        if log_q is not None and model.log_precision is not None:
            lo, hi = log_q
            model.log_precision.copy_(lo + (hi - lo) * torch.rand(
                model.log_precision.shape, generator=g, dtype=F64))
    return model


def quad_model(seed: int = 0, scale: float = 0.8) -> pb.BoltzmannMachine:
    """Multinary and finite units with and without precisions, a triangle (not
    bipartite), binary and spin neighbours."""
    G = nx.Graph()
    G.add_node("a", role="visible", domain="multinary", levels=5, precision=3.0)
    G.add_node("b", role="visible", domain="finite", values=[0.0, 0.5, 2.0], precision=1.0)
    G.add_node("c", role="visible", domain="multinary", levels=4)
    G.add_node("d", role="visible", domain="finite", values=[1.0, 0.0, -1.0], precision=2.0)
    G.add_node("h", role="hidden", domain="multinary", levels=3, precision=0.5)
    G.add_node("g", role="hidden", domain="binary")
    G.add_node("s", role="hidden", domain="spin")
    G.add_edges_from([("a", "b"), ("b", "c"), ("a", "c"), ("a", "h"), ("b", "g"),
                      ("c", "s"), ("d", "h"), ("d", "g"), ("a", "s")])
    return set_params(pb.compile(G, dtype=F64), scale, seed, (-1.0, 1.5))


def quad_rbm(n_v: int = 5, n_h: int = 3, levels: int = 5, seed: int = 0,
             scale: float = 0.7, precision: float = 2.0, **kw) -> pb.BoltzmannMachine:
    G = pb.graphs.rbm(n_v, n_h, domain="multinary", levels=levels, precision=precision)
    return set_params(pb.compile(G, dtype=F64, **kw), scale, seed, (0.0, 2.0))


def level_table(f: torch.Tensor, q: torch.Tensor, vals: np.ndarray) -> torch.Tensor:
    """Brute-force conditional law over one unit's levels."""
    v = torch.as_tensor(vals, dtype=F64)
    return torch.softmax(f[..., None] * v - 0.5 * q[..., None] * v * v, -1)


# ------------------------------------------------------------------ the domain maths


@pytest.mark.parametrize("dom", [multinary(6), FiniteDomain([0.0, 0.5, 2.0, -1.0]),
                                 FiniteDomain([1.0, 0.0, -1.0])])
def test_family_maths_with_precision_match_the_level_sum(dom) -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(50, 1, generator=g, dtype=F64) * 6
    q = torch.rand(50, 1, generator=g, dtype=F64) * 20
    dv = DomainVector([dom])
    v = torch.as_tensor(dom.values(), dtype=F64)
    p = level_table(f, q, dom.values())
    logits = f[..., None] * v - 0.5 * q[..., None] * v * v
    torch.testing.assert_close(dv.log_normalizer(f, q), torch.logsumexp(logits, -1))
    torch.testing.assert_close(dv.mean(f, q), (p * v).sum(-1))
    torch.testing.assert_close(dv.second_moment(f, q), (p * v * v).sum(-1))
    # the numba copy, as kernels see the unit (a value table with log-weights -q v^2/2)
    for r in range(0, 50, 7):
        kind, lo, step, K, V, LW = dv.kernel_arrays(q[r].numpy())
        assert kind[0] == TABLE
        args = (0, kind, lo, step, K, V, LW)
        fr = float(f[r, 0])
        assert dk.log_normalizer(fr, *args) == pytest.approx(float(dv.log_normalizer(
            f[r], q[r])[0]), abs=1e-12)
        assert dk.mean(fr, *args) == pytest.approx(float(dv.mean(f[r], q[r])[0]), abs=1e-12)
        assert dk.second_moment(fr, *args) == pytest.approx(
            float(dv.second_moment(f[r], q[r])[0]), abs=1e-12)


def test_sampling_with_precision_matches_the_law() -> None:
    dom = multinary(7)
    dv = DomainVector([dom])
    f = torch.full((40000, 1), 3.0, dtype=F64)
    q = torch.full((40000, 1), 6.0, dtype=F64)
    p = level_table(f[:1], q[:1], dom.values())[0, 0].numpy()
    x = dv.sample(f, torch.Generator().manual_seed(1), q)[:, 0].numpy()
    counts = np.bincount(np.rint(x * 6).astype(int), minlength=7)
    se = np.sqrt(p * (1 - p) / len(x))
    assert np.all(np.abs(counts / len(x) - p) < 5 * se + 1e-4)
    # numba draws from uniforms on a grid: the inverse CDF exactly
    kind, lo, step, K, V, LW = dv.kernel_arrays(np.array([6.0]))
    u = (np.arange(20000) + 0.5) / 20000
    draws = np.array([dk.draw(3.0, 0, kind, lo, step, K, V, LW, ui) for ui in u])
    freq = np.bincount(np.rint(draws * 6).astype(int), minlength=7) / len(u)
    assert np.abs(freq - p).max() < 1e-4


def test_a_precision_lets_a_unit_peak_at_a_middle_level() -> None:
    """The issue's point: without the term a multinary conditional is monotone in k;
    with it, P(k) ∝ exp(f v_k - q v_k^2/2) peaks near v = f/q."""
    dom = multinary(17)
    v = dom.values()
    for f in np.linspace(-30, 30, 13):
        p0 = level_table(torch.tensor(f, dtype=F64), torch.tensor(0.0, dtype=F64), v)
        d = np.diff(p0.numpy())
        assert np.all(d >= -1e-15) or np.all(d <= 1e-15)  # monotone
    p = level_table(torch.tensor(200.0, dtype=F64), torch.tensor(400.0, dtype=F64), v).numpy()
    assert int(np.argmax(p)) == 8 and p[8] > 0.4  # v = 0.5 = f/q, the middle level


def test_declarations_and_their_errors() -> None:
    assert parse_precision(multinary(3), {"precision": 0}, "x") == 0.0
    assert parse_precision(FiniteDomain([0, 1, 3]), {"precision": 2.5}, "x") == 2.5
    bad = [({"domain": "binary", "precision": 1.0}, "takes no quadratic term"),
           ({"domain": "spin", "precision": 1.0}, "takes no quadratic term"),
           ({"domain": "multinary", "levels": 3, "precision": -1.0}, ">= 0"),
           ({"domain": "multinary", "levels": 3, "precision": math.nan}, "finite real"),
           ({"domain": "multinary", "levels": 3, "precision": "big"}, "finite real"),
           ({"domain": "finite", "values": [0, 1], "precision": True}, "finite real")]
    for attrs, msg in bad:
        G = nx.Graph()
        G.add_node("x", role="visible", **attrs)
        with pytest.raises(pb.GraphError, match=msg) as err:
            pb.compile(G)
        assert "'x'" in str(err.value)
    with pytest.raises(pb.GraphError, match=r"visible nodes: .*precision"):
        pb.graphs.rbm(3, 2, domain="binary", precision=1.0)
    m = pb.compile(pb.graphs.rbm(3, 2, domain="multinary", levels=4, precision=2.0))
    assert m.quadratic_index.tolist() == [0, 1, 2]
    assert torch.allclose(m.precisions(), torch.tensor([2.0, 2, 2, 0, 0]))
    # no term: no parameter at all, as before
    plain = pb.compile(pb.graphs.rbm(3, 2, domain="multinary", levels=4))
    assert plain.log_precision is None and plain.precisions() is None
    assert [n for n, _ in plain.named_parameters()] == ["bias", "weight"]


def test_zero_precision_is_stored_small_and_documented() -> None:
    G = pb.graphs.rbm(2, 1, domain="multinary", levels=3, precision=0.0)
    m = pb.compile(G, dtype=F64)
    assert torch.allclose(m.log_precision, torch.full((2,), math.log(MIN_PRECISION),
                                                      dtype=F64))
    plain = pb.compile(pb.graphs.rbm(2, 1, domain="multinary", levels=3), dtype=F64)
    with torch.no_grad():
        plain.weight.copy_(m.weight)
    assert abs(float(m.log_partition()) - float(plain.log_partition())) < 1e-5


# ------------------------------------------------------------------ exact vs brute force


@SETTINGS
@given(random_graphs(domains=("binary", "spin", "multinary", "finite"), precision=0.7))
def test_exact_matches_brute_force_with_precisions(G: nx.Graph) -> None:
    model = pb.compile(G, dtype=F64)
    log_z, mean, second = brute_force(model)
    assert float(model.log_partition().detach()) == pytest.approx(log_z, abs=1e-10)
    m, s = model.moments()
    torch.testing.assert_close(m, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(s, second, atol=1e-10, rtol=0)  # diagonal <s^2> included
    states, logp = brute_force_visible(model)
    torch.testing.assert_close(model.log_prob(states).detach(),
                               torch.as_tensor(logp), atol=1e-9, rtol=0)
    marg = model.marginals()
    probs = np.exp(logp)
    for c, node in enumerate(model.visible_nodes):
        dom = model.spec.domains[model.visible_index[c]]
        exp = [probs[states[:, c] == code].sum() for code in dom.codes()]
        np.testing.assert_allclose(marg[node], exp, atol=1e-9)


@pytest.mark.parametrize("min_chunk", [2, 3, 8])
def test_chunked_walk_with_coefficients(min_chunk: int) -> None:
    """Small tables force chunks (enumerated nodes fixed per chunk): the per-level
    log-weights of the fixed nodes and the coefficients of the summed ones."""
    model = quad_model(seed=3)
    log_z, mean, second = brute_force(model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "_TABLE_STATES", min_chunk)
        prob = kernel_problem(model.problem, model.plan.exact.plan, model.bias, model.weight,
                              model.precisions())
        n_low, n_chunks = ex._split(prob)
        assert n_chunks > 1
        m, s = model.moments()
    assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-10)
    torch.testing.assert_close(m, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(s, second, atol=1e-10, rtol=0)


@pytest.mark.parametrize("scale,qmax", [(0.3, 1.0), (2.0, 40.0), (8.0, 500.0), (60.0, 5e4)])
def test_product_form_with_coefficients_on_many_summed_units(scale: float,
                                                             qmax: float) -> None:
    """An RBM whose many multinary visible units (with precisions) are summed out: the
    table walk (product form with coefficients, segments of the product, or the log form
    for huge fields) against the batched torch enumeration, value and gradients."""
    n_v, n_h, K = 300, 3, 17
    G = pb.graphs.rbm(n_v, n_h, domain="multinary", levels=K, precision=1.0)
    m = pb.compile(G, dtype=F64)
    assert m.plan.enumerated == ["h0", "h1", "h2"]
    rng = torch.Generator().manual_seed(int(scale))
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=rng, dtype=F64) * scale)
        m.bias.copy_(torch.randn(m.bias.shape, generator=rng, dtype=F64) * scale)
        q = torch.rand(n_v, generator=rng, dtype=F64) * qmax + 1e-3
        m.log_precision.copy_(torch.log(q))
    eng, cost = pb.engines.get_engine("enumeration"), m.plan.exact
    b1, w1, q1 = (t.detach().clone().requires_grad_(True) for t in
                  (m.bias, m.weight, m.precisions()))
    z1 = eng.log_partition(cost, m.problem, b1, w1, quad=q1)
    z1.backward()
    b2, q2 = m.bias.detach()[None].clone().requires_grad_(True), \
        m.precisions().detach().clone().requires_grad_(True)
    z2 = eng.log_partition(cost, m.problem, b2, m.weight.detach(), quad=q2)
    z2.sum().backward()
    assert float(z1) == pytest.approx(float(z2), rel=1e-13, abs=1e-10)
    torch.testing.assert_close(b1.grad, b2.grad[0], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(q1.grad, q2.grad, atol=1e-10, rtol=1e-10)


def test_gradients_match_finite_differences() -> None:
    """d log Z / d log q, and the exact NLL's gradient in (b, W, log q)."""
    model = quad_model(seed=5)
    data = model.sample(30, seed=1)
    nll = lambda: -model.log_prob(data).mean()
    model.zero_grad()
    nll().backward()
    grads = [p.grad.clone() for p in (model.bias, model.weight, model.log_precision)]
    h = 1e-6
    for p, g in zip((model.bias, model.weight, model.log_precision), grads):
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += h
                up = float(nll())
                p.view(-1)[i] -= 2 * h
                down = float(nll())
                p.view(-1)[i] += h
            assert (up - down) / (2 * h) == pytest.approx(float(g.view(-1)[i]), abs=1e-6)
    # d log Z / d q_i = -<s_i^2> / 2 through the model's log-precision
    model.zero_grad()
    model.log_partition().backward()
    _, second = model.moments()
    qi = model.quadratic_index
    q = torch.exp(model.log_precision.detach())
    torch.testing.assert_close(model.log_precision.grad, -0.5 * q * second.diag()[qi])


def test_exact_samples_match_exact_moments() -> None:
    model = quad_model(seed=7)
    x = model.sample(40000, seed=2, return_hidden=True)
    vals = model.domains.encode(x)
    mean, second = model.moments()
    se = vals.std(0) / math.sqrt(len(vals))
    assert ((vals.mean(0) - mean).abs() < 5 * se + 1e-3).all()
    se2 = (vals ** 2).std(0) / math.sqrt(len(vals))
    assert (((vals ** 2).mean(0) - second.diag()).abs() < 5 * se2 + 1e-3).all()


# ------------------------------------------------------------------ Gibbs, AIS


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_gibbs_matches_exact_moments(backend: str) -> None:
    model = quad_model(seed=1)
    assert gibbs_moment_z(model, gibbs_sampler(model, backend=backend)).max() < 5.0


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_gibbs_on_an_rbm_with_precisions(backend: str) -> None:
    model = quad_rbm(seed=2, engine="block-gibbs")
    assert gibbs_moment_z(model, gibbs_sampler(model, backend=backend)).max() < 5.0


@pytest.mark.parametrize("method", ["ais", "reverse-ais"])
def test_ais_lands_on_the_exact_log_partition(method: str) -> None:
    model = quad_rbm(seed=3)
    exact = float(model.log_partition())
    data = model.sample(200, seed=1)
    est = model.log_partition(method=method, n_chains=200, n_betas=400, data=data, seed=0,
                              progress=False)
    assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)
    with pytest.raises(pb.ArgumentError, match="no precisions"):
        model.log_partition(method="ais", backend="numba", n_betas=10, progress=False)


def test_ais_on_a_non_bipartite_model_with_precisions() -> None:
    model = quad_model(seed=4)
    exact = float(model.log_partition())
    est = model.log_partition(method="ais", n_chains=200, n_betas=500, seed=0,
                              progress=False)
    assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)


# ------------------------------------------------------------------ learning


def peaked_teacher(seed: int = 0) -> pb.BoltzmannMachine:
    """Visible units that peak at middle levels: large precisions, fields ~ q/2."""
    G = pb.graphs.rbm(6, 2, domain="multinary", levels=9, precision=1.0)
    m = set_params(pb.compile(G, dtype=F64), 0.8, seed)
    with torch.no_grad():
        m.log_precision.fill_(math.log(30.0))
        m.bias[:6] = 15.0 + torch.linspace(-3, 3, 6, dtype=F64)
    return m


@pytest.mark.parametrize("method", ["exact", "cd", "pcd"])
def test_training_learns_the_precision_and_lowers_the_nll(method: str) -> None:
    teacher = peaked_teacher()
    data = teacher.sample(600, seed=0)
    G = pb.graphs.rbm(6, 2, domain="multinary", levels=9, precision=1.0)
    student = pb.compile(G, dtype=F64, seed=1)
    # the student's starting NLL, after the data-fitted biases of a first fit
    student.fit(data, method="exact", epochs=1, lr=1e-9, progress=False)
    before = float(-student.log_prob(data).mean())
    q0 = float(torch.exp(student.log_precision).mean())
    kw = dict(epochs=60, lr=0.05, progress=False, seed=0) if method == "exact" else \
        dict(epochs=40, lr=0.05, batch_size=50, progress=False, seed=0, optimizer="adam")
    student.fit(data, method=method, **kw)
    after = float(-student.log_prob(data).mean())
    q1 = float(torch.exp(student.log_precision).mean())
    assert after < before - 1.5, (before, after)  # teacher 10.71, start 12.85
    assert q1 > 12 * q0, (q0, q1)  # the precision grows towards the teacher's 30


def test_cd_estimate_points_where_the_exact_gradient_points() -> None:
    """The PCD surrogate's gradient in log q (many chains, long runs) against the exact
    one, on an RBM whose hidden units also carry precisions (multinary hidden)."""
    G = pb.graphs.rbm(4, 2, domain="multinary", levels=4, precision=2.0,
                      hidden_domain="multinary", hidden_levels=3, hidden_precision=1.0)
    m = set_params(pb.compile(G, dtype=F64), 0.6, 3, (-0.5, 1.0))
    data = peaked_teacher().sample(300, seed=2)[:, :4].clamp(max=3)
    v = m.encode_data(data)
    m.zero_grad()
    (-m.log_prob(data).mean()).backward()
    exact = m.log_precision.grad.clone()
    from pgm_boltz.training.contrastive import PCDObjective
    obj = PCDObjective(m, train=v, generator=torch.Generator().manual_seed(0),
                       n_chains=4000, k=20)
    est = torch.zeros_like(exact)
    for _ in range(5):
        m.zero_grad()
        obj.loss(v, torch.Generator().manual_seed(len(est))).backward()
        est += m.log_precision.grad / 5
    cos = float(torch.dot(est, exact) / (est.norm() * exact.norm()))
    assert cos > 0.95, (est, exact)
    torch.testing.assert_close(est, exact, atol=0.05 * float(exact.abs().max()) + 0.02,
                               rtol=0.15)


# ------------------------------------------------------------------ conditioning, io


def test_conditioning_keeps_and_clamps_the_quadratic_terms() -> None:
    model = quad_model(seed=8)
    evidence = {"a": 2, "d": 0}
    cond = model.condition(evidence)
    Xs = all_joint_states(model)
    lw = joint_log_weights(model, Xs)
    ia, id_ = model.nodes.index("a"), model.nodes.index("d")
    keep = np.isclose(Xs[:, ia], 0.5) & np.isclose(Xs[:, id_], 1.0)
    assert cond.log_partition() == pytest.approx(np.logaddexp.reduce(lw[keep]), abs=1e-10)
    torch.testing.assert_close(cond.sub.log_precision,
                               model.log_precision[[1, 3]], atol=0, rtol=0)


def test_save_load_and_to_networkx_round_trip(tmp_path) -> None:
    model = quad_model(seed=9)
    path = tmp_path / "q.pt"
    pb.save(model, path)
    back = pb.load(path)
    assert torch.equal(back.log_precision.to(F64), model.log_precision)
    assert float(back.log_partition()) == float(model.log_partition())
    # a file from before log_precision existed: the declared precisions
    state = torch.load(path, weights_only=True)
    del state["log_precision"]
    torch.save(state, tmp_path / "old.pt")
    old = pb.load(tmp_path / "old.pt")
    assert torch.allclose(torch.exp(old.log_precision).double(),
                          torch.tensor([3.0, 1.0, 2.0, 0.5], dtype=F64))
    G = model.to_networkx()
    q = torch.exp(model.log_precision).tolist()
    assert [G.nodes[model.nodes[i]]["precision"] for i in model.quadratic_index] == q
    again = pb.compile(G, dtype=F64)
    assert float(again.log_partition()) == pytest.approx(float(model.log_partition()),
                                                         abs=1e-12)


# ------------------------------------------------------------------ the engine protocol


class _Generic(pb.engines.ExactEngine):
    """An engine with only log Z and samples (the enumeration's): moments and marginals
    come from the protocol's generic defaults (autograd, clamping)."""

    name = "generic-test"

    def __init__(self) -> None:
        self.inner = pb.engines.get_engine("enumeration")

    def cost(self, problem, limits):
        return self.inner.cost(problem, limits)

    def log_partition(self, cost, problem, bias, weight, quad=None):
        return self.inner.log_partition(cost, problem, bias, weight, quad=quad)

    def sample(self, cost, problem, bias, weight, n, generator, quad=None):
        return self.inner.sample(cost, problem, bias, weight, n, generator, quad=quad)


def test_generic_engine_defaults_with_quadratic_terms() -> None:
    """The protocol's default moments (the diagonal from d log Z / d q) and marginals
    (clamping with the clamped node's -q v^2/2) agree with the enumeration engine's."""
    from test_gaussian import mixed_model

    generic = _Generic()
    for model in (quad_model(seed=11), mixed_model(seed=11)):
        eng, cost = pb.engines.get_engine("enumeration"), model.plan.exact
        args = (model.problem, model.bias.detach(), model.weight.detach())
        q = model.precisions().detach()
        z1, m1, s1 = eng.moments(cost, *args, all_pairs=True, quad=q)
        z2, m2, s2 = generic.moments(cost, *args, all_pairs=True, quad=q)
        assert z1 == pytest.approx(z2, abs=1e-12)
        np.testing.assert_allclose(m1, m2, atol=1e-12)
        discrete = [i for i, d in enumerate(model.spec.domains) if d.discrete]
        cont = np.array([not d.discrete for d in model.spec.domains])
        pairs = ~(cont[:, None] & cont[None, :]) | np.eye(model.n_nodes, dtype=bool)
        np.testing.assert_allclose(s1[pairs], s2[pairs], atol=1e-10)  # G-G pairs: left 0
        for a, b in zip(eng.marginals(cost, *args, discrete, quad=q),
                        generic.marginals(cost, *args, discrete, quad=q)):
            np.testing.assert_allclose(a, b, atol=1e-12)
        if len(discrete) < model.n_nodes:
            with pytest.raises(pb.ArgumentError, match="continuous"):
                generic.marginals(cost, *args, quad=q)


# ---------------------------------------------------------------------------------------
# the compiled value-table route (domains/table.py + kernels.table_rows)
# ---------------------------------------------------------------------------------------

def _table_reference(tm, f, q, power=None, u=None):
    """The tensor route: softmax over the padded table (what the kernel replaces)."""
    from pgm_boltz.domains.base import table_sample
    with torch.enable_grad():       # requires_grad on f forces the tensor route
        f = f.clone().requires_grad_(True)
        lg, clean = tm.logits(f, q)
        if power is not None:
            return (torch.softmax(lg, -1) * clean ** power).sum(-1).detach()
        vals, levels = tm.table(f)
        gen = torch.Generator().manual_seed(u)
        return table_sample(lg.detach(), vals, levels, gen)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_table_rows_matches_tensor_route(dtype):
    """Moments and draws of discretised-Gaussian units from the compiled recurrence equal
    the softmax over the table: mixed level counts (2..40), precisions from 1e-6 to 1e4,
    fields up to ±1e4 (modes at either end and inside), one and many precision rows."""
    from pgm_boltz.domains.table import TableMaths
    rng = np.random.default_rng(0)
    doms = [multinary(int(k)) for k in rng.integers(2, 41, size=60)]
    tm = TableMaths(doms)
    assert tm._arith and tm._padded
    f = torch.as_tensor(rng.normal(0, 1, (50, 60)) * 10.0 ** rng.integers(-2, 5, (50, 60)),
                        dtype=dtype)
    q1 = torch.as_tensor(10.0 ** rng.uniform(-6, 4, 60), dtype=dtype)
    qrows = torch.as_tensor(10.0 ** rng.uniform(-6, 4, (50, 60)), dtype=dtype)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4,
                                                                          atol=2e-5)
    for q in (q1, qrows, torch.zeros(60, dtype=dtype)):
        assert tm._fast(f, q)
        for power in (1, 2):
            torch.testing.assert_close(tm.moment(f, q, power),
                                       _table_reference(tm, f, q, power), **tol)
        fast = tm.sample(f, q, torch.Generator().manual_seed(3))
        ref = _table_reference(tm, f, q, u=3)
        # the same uniforms: the same level except where u sits on a rounding boundary
        assert (fast != ref).double().mean() < (1e-3 if dtype == torch.float32 else 1e-9)
    # batch dimensions in front (tempering's replicas) keep their shape
    f3 = f.reshape(5, 10, 60)
    assert tm.moment(f3, q1, 1).shape == (5, 10, 60)


def test_table_rows_falls_back():
    """Gradients, negative precisions and non-progression value sets take the tensor
    route (the kernel's recurrence needs a concave, evenly spaced log-weight)."""
    from pgm_boltz.domains.table import TableMaths
    tm = TableMaths([multinary(5)] * 3)
    f = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    q = torch.ones(3, dtype=torch.float64)
    assert not tm._fast(f, q)
    tm.moment(f, q, 1).sum().backward()        # differentiable through the table
    assert f.grad is not None
    assert not tm._fast(f.detach(), -q)
    uneven = TableMaths([FiniteDomain([0.0, 1.0, 3.0])])
    assert not uneven._arith
