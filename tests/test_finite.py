"""The finite domain (any K distinct real values, codes 0..K-1), written as one file
through the domain seam, against brute force and the exact engine everywhere the other
domains work: exact enumeration (enumerated and summed out), block and sequential Gibbs,
CD/PCD, AIS, conditioning, Pyro, save/load, to_networkx; and a domain registered from
outside the package."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import brute_force, brute_force_visible, gibbs_moment_z

import pgm_boltz as pb
from pgm_boltz.domains import (
    ARITH,
    TABLE,
    DomainVector,
    FiniteDomain,
    parse_domain,
    register_domain,
)
from pgm_boltz.samplers import gibbs_sampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VALUES = [0.0, 0.5, 2.0]  # unequally spaced: a value table for the kernels
SPACED = [1.0, 0.0, -1.0]  # equally spaced (descending): an arithmetic progression


def finite_model(seed: int = 0, scale: float = 0.7, **compile_kw) -> pb.BoltzmannMachine:
    """A small graph mixing finite units (visible and hidden) with the other domains,
    with a triangle (not bipartite) and random parameters."""
    rng = np.random.default_rng(seed)
    G = nx.Graph()
    G.add_node("a", role="visible", domain="finite", values=VALUES)
    G.add_node("b", role="visible", domain="finite", values=SPACED)
    G.add_node("c", role="visible", domain="spin")
    G.add_node("d", role="visible", domain="multinary", levels=3)
    G.add_node("h", role="hidden", domain="finite", values=[-1.0, 0.25, 1.0, 0.5])
    G.add_node("g", role="hidden", domain="binary")
    G.add_edges_from([("a", "b"), ("b", "c"), ("a", "c"), ("a", "h"), ("b", "h"),
                      ("c", "g"), ("d", "g"), ("d", "h"), ("a", "g")])
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.normal(0, scale))
    for u in G.nodes:
        G.nodes[u]["bias"] = float(rng.normal(0, scale))
    return pb.compile(G, dtype=torch.float64, **compile_kw)


def finite_rbm(n_v: int = 5, n_h: int = 3, seed: int = 0, scale: float = 0.6,
               **compile_kw) -> pb.BoltzmannMachine:
    G = pb.graphs.rbm(n_v, n_h, domain="finite", values=VALUES, hidden_domain="finite",
                      hidden_values=[-1.0, 0.0, 1.0])
    m = pb.compile(G, dtype=torch.float64, seed=seed, **compile_kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * scale)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64) * scale)
    return m


# ------------------------------------------------------------------ the domain itself


def test_values_codes_and_kernel_kinds() -> None:
    d = FiniteDomain(VALUES)
    assert d.levels == 3 and d.values().tolist() == VALUES
    assert d.codes().tolist() == [0.0, 1.0, 2.0]
    assert d.attrs() == {"domain": "finite", "values": VALUES}
    assert d.kernel_spec().kind == TABLE
    spaced = FiniteDomain(SPACED).kernel_spec()
    assert spaced.kind == ARITH and (spaced.lo, spaced.step) == (1.0, -1.0)
    assert FiniteDomain(VALUES) == FiniteDomain(VALUES)
    assert len({FiniteDomain(VALUES), FiniteDomain(VALUES)}) == 1
    assert FiniteDomain(VALUES) != FiniteDomain(SPACED)
    assert d.code_of(np.array([2.0, 0.0, 0.5])).tolist() == [2.0, 0.0, 1.0]


@pytest.mark.parametrize("attrs, match", [
    ({"domain": "finite"}, "no 'values'"),
    ({"domain": "finite", "values": [1.0]}, "at least 2"),
    ({"domain": "finite", "values": [1.0, 1.0]}, "distinct"),
    ({"domain": "finite", "values": [0.0, math.nan]}, "finite real"),
    ({"domain": "finite", "values": [0.0, "x"]}, "finite real"),
    ({"domain": "finite", "values": "01"}, "sequence"),
    ({"domain": "finite", "values": [0, 1], "levels": 3}, "levels=3 but 2 values"),
    ({"domain": "binary", "values": [0, 1]}, "values applies to other domains"),
    ({"domain": "multinary", "levels": 3, "values": [0, 1, 2]}, "values applies"),
])
def test_bad_declarations_name_the_node(attrs: dict, match: str) -> None:
    with pytest.raises(pb.GraphError, match=match):
        parse_domain(attrs, "x")
    G = nx.Graph()
    G.add_node("x", role="visible", **attrs)
    with pytest.raises(pb.GraphError, match="'x'"):
        pb.compile(G)


def test_vectorised_maths_against_direct_sums() -> None:
    doms = [FiniteDomain(VALUES), FiniteDomain(SPACED), pb.domains.SPIN,
            pb.domains.multinary(4), FiniteDomain([-2.0, 3.0])]
    dv = DomainVector(doms)
    g = torch.Generator().manual_seed(0)
    f = torch.randn(500, len(doms), generator=g, dtype=torch.float64) * 5
    for i, d in enumerate(doms):
        v = torch.as_tensor(d.values())
        lw = f[:, i:i + 1] * v
        p = torch.softmax(lw, -1)
        torch.testing.assert_close(dv.log_normalizer(f)[:, i], torch.logsumexp(lw, -1))
        torch.testing.assert_close(dv.mean(f)[:, i], (p * v).sum(-1))
        torch.testing.assert_close(dv.second_moment(f)[:, i], (p * v * v).sum(-1))
    # codes <-> values and the validity mask
    codes = torch.tensor([[2.0, 0.0, -1.0, 3.0, 1.0]])
    vals = dv.encode(codes)
    assert vals.tolist() == [[2.0, 1.0, -1.0, 1.0, 3.0]]
    assert torch.equal(dv.decode(vals), codes)
    bad = np.array([[3.0, 0.5, 0.0, 4.0, -1.0]])
    assert dv.invalid_codes(bad).tolist() == [[True, True, True, True, True]]
    assert not dv.invalid_codes(codes.numpy()).any()
    # bias_for_mean inverts the mean (values in any order)
    means = torch.tensor([1.2, -0.3, 0.4, 0.6, 1.0], dtype=torch.float64)
    b = dv.bias_for_mean(means)
    torch.testing.assert_close(dv.mean(b), means, atol=1e-10, rtol=0)


def test_sample_frequencies_match_the_softmax() -> None:
    d = FiniteDomain([0.0, 0.5, 2.0, -1.0])
    dv = DomainVector([d])
    f = torch.full((200_000, 1), 0.7, dtype=torch.float64)
    draws = dv.sample(f, torch.Generator().manual_seed(1))[:, 0]
    v = torch.as_tensor(d.values())
    p = torch.softmax(0.7 * v, 0)
    freq = torch.stack([(draws == x).double().mean() for x in v])
    assert ((freq - p).abs() / (p * (1 - p) / len(draws)).sqrt()).max() < 5


# ------------------------------------------------------------------ exact engine


@pytest.mark.parametrize("engine", ["auto", "chromatic-gibbs"])
def test_exact_work_matches_brute_force(engine: str) -> None:
    """Finite units enumerated (the hidden one) and summed out (visible ones): log Z,
    every moment, marginals, the gradient of log Z, log P(v) of every visible state."""
    model = finite_model(engine=engine)
    assert model.plan.exact_feasible
    log_z, mean, second = brute_force(model)
    assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-10)
    m, s = model.moments()
    torch.testing.assert_close(m, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(s, second, atol=1e-10, rtol=0)
    model.zero_grad()
    model.log_partition().backward()
    torch.testing.assert_close(model.bias.grad, mean, atol=1e-10, rtol=0)
    e = model.edge_array
    torch.testing.assert_close(model.weight.grad, second[e[:, 0], e[:, 1]], atol=1e-10,
                               rtol=0)
    codes, logp = brute_force_visible(model)
    np.testing.assert_allclose(model.log_prob(codes).detach().numpy(), logp, atol=1e-10)
    marg = model.marginals()
    X = np.array(list(itertools.product(*[d.values() for d in model.spec.domains])))
    lw = X @ model.bias.detach().numpy()
    J = model.coupling_matrix().detach().numpy()
    lw = lw + 0.5 * np.einsum("si,ij,sj->s", X, J, X)
    p = np.exp(lw - np.logaddexp.reduce(lw))
    for i, node in enumerate(model.nodes):
        ref = [p[X[:, i] == v].sum() for v in model.spec.domains[i].values()]
        np.testing.assert_allclose(marg[node], ref, atol=1e-12)


def test_exact_samples_are_draws_of_the_model() -> None:
    model = finite_model(seed=3)
    n = 20_000
    x = model.sample(n, seed=0, return_hidden=True).numpy()  # codes of every node
    marg = model.marginals()
    for i, node in enumerate(model.nodes):
        level = {c: k for k, c in enumerate(model.spec.domains[i].codes().tolist())}
        idx = np.array([level[c] for c in x[:, i].tolist()])
        freq = np.bincount(idx, minlength=model.spec.domains[i].levels) / n
        se = np.sqrt(marg[node] * (1 - marg[node]) / n)
        assert (np.abs(freq - marg[node]) / (se + 1e-12)).max() < 5, node


# ------------------------------------------------------------------ Gibbs, AIS, training


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_gibbs_moments_match_exact(backend: str) -> None:
    model = finite_model(seed=1, engine="chromatic-gibbs")
    s = gibbs_sampler(model, backend=backend)
    assert s.backend == backend
    assert gibbs_moment_z(model, s).max() < 5.0


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_block_gibbs_on_a_finite_rbm(backend: str) -> None:
    model = finite_rbm(engine="block-gibbs")
    assert gibbs_moment_z(model, gibbs_sampler(model, backend=backend)).max() < 5.0


@pytest.mark.parametrize("method", ["ais", "reverse-ais"])
def test_ais_lands_on_the_exact_log_partition(method: str) -> None:
    model = finite_rbm(seed=2)
    exact = float(model.log_partition())
    data = model.sample(200, seed=1)
    est = model.log_partition(method=method, n_chains=200, n_betas=400, data=data, seed=0,
                              progress=False)
    assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)


def test_ais_on_a_non_bipartite_finite_model() -> None:
    model = finite_model(seed=4)
    exact = float(model.log_partition())
    est = model.log_partition(method="ais", n_chains=200, n_betas=500, seed=0,
                              progress=False)
    assert abs(est.value - exact) < 4 * est.stderr + 0.05, (est, exact)


@pytest.mark.parametrize("method", ["exact", "cd", "pcd"])
def test_training_lowers_the_exact_nll(method: str) -> None:
    teacher = finite_rbm(n_v=5, n_h=2, seed=5, scale=1.2)
    data = teacher.sample(400, seed=0)
    student = finite_rbm(n_v=5, n_h=2, seed=6, scale=0.01)
    before = float(-student.log_prob(data).mean())
    student.fit(data, method=method, epochs=30, lr=0.05 if method == "exact" else 0.1,
                batch_size=50, seed=0, progress=False)
    after = float(-student.log_prob(data).mean())
    teacher_nll = float(-teacher.log_prob(data).mean())
    assert after < before - 0.3 * (before - teacher_nll), (before, after, teacher_nll)


# ------------------------------------------------------------------ conditioning, Pyro, files


def test_conditioning_on_finite_evidence() -> None:
    model = finite_model(seed=7)
    cond = model.condition({"a": 2, "h": 1})  # a = 2.0, h = 0.25
    X = np.array(list(itertools.product(*[d.values() for d in model.spec.domains])))
    b = model.bias.detach().numpy()
    J = model.coupling_matrix().detach().numpy()
    lw = X @ b + 0.5 * np.einsum("si,ij,sj->s", X, J, X)
    ia, ih = model.nodes.index("a"), model.nodes.index("h")
    keep = (X[:, ia] == 2.0) & (X[:, ih] == 0.25)
    assert cond.log_partition() == pytest.approx(np.logaddexp.reduce(lw[keep]), abs=1e-10)
    draws = cond.sample(2000, seed=0, return_hidden=True)
    assert (draws[:, ia] == 2).all() and (draws[:, ih] == 1).all()
    with pytest.raises(pb.DataError, match=r"'a'.*finite"):
        model.condition({"a": 3})


def test_pyro_support_log_prob_and_moments() -> None:
    import pyro.distributions  # noqa: F401

    model = finite_model(seed=8)
    d = model.to_pyro()
    support = d.enumerate_support()
    assert bool(d.support.check(support).all())
    assert not bool(d.support.check(torch.tensor([[3.0, 0.0, 1.0, 0.0]])).all())
    total = float(d.log_prob(support).exp().sum())
    assert total == pytest.approx(1.0, abs=1e-10)
    codes, logp = brute_force_visible(model)
    p = np.exp(logp)
    ref_mean = (p[:, None] * codes).sum(0)
    torch.testing.assert_close(d.mean, torch.as_tensor(ref_mean), atol=1e-10, rtol=0)
    ref_var = (p[:, None] * codes ** 2).sum(0) - ref_mean ** 2
    torch.testing.assert_close(d.variance, torch.as_tensor(ref_var), atol=1e-10, rtol=0)


def test_save_load_and_to_networkx(tmp_path) -> None:
    model = finite_model(seed=9)
    G = model.to_networkx()
    assert G.nodes["a"]["values"] == VALUES and G.nodes["a"]["domain"] == "finite"
    path = tmp_path / "finite.pt"
    pb.save(model, path)
    back = pb.load(path)
    assert back.spec.domains == model.spec.domains
    assert float(back.log_partition()) == pytest.approx(float(model.log_partition()),
                                                        abs=1e-12)
    assert pb.compile(G, dtype=torch.float64).spec.domains == model.spec.domains


# ------------------------------------------------------------------ a domain from outside


class Ternary(FiniteDomain):
    """A domain declared outside the package: {-1, 0, +1} with codes -1, 0, +1."""

    name = "test_ternary"

    def __init__(self) -> None:
        super().__init__([-1.0, 0.0, 1.0])

    def codes(self) -> np.ndarray:
        return np.array([-1.0, 0.0, 1.0])

    def codes_text(self) -> str:
        return "-1, 0 or +1"

    def attrs(self) -> dict:
        return {"domain": "test_ternary"}


class TernaryFamily(pb.domains.FiniteFamily):
    """Codes are the values themselves."""

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        return torch.round(values)

    def invalid_codes(self, codes):
        if torch.is_tensor(codes):
            return ~((codes == -1) | (codes == 0) | (codes == 1))
        c = np.asarray(codes, dtype=np.float64)
        return ~np.isin(c, [-1.0, 0.0, 1.0])


Ternary.family = TernaryFamily


def test_a_domain_registered_from_outside_works_everywhere() -> None:
    register_domain("test_ternary", lambda attrs, node: Ternary(), replace=True)
    G = pb.graphs.fully_connected(4, 1, domain="test_ternary")
    model = pb.compile(G, dtype=torch.float64, seed=0)
    with torch.no_grad():
        model.weight.mul_(40)
    log_z, mean, second = brute_force(model)
    assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-10)
    draws = model.sample(300, seed=0)
    assert set(np.unique(draws.numpy())) <= {-1.0, 0.0, 1.0}
    with pytest.raises(pb.DataError, match=r"-1, 0 or \+1"):
        model.log_prob([[0.5, 0, 0, 0]])
    h = model.fit(draws, method="exact", epochs=3, progress=False)
    assert np.isfinite(h[-1]["nll"])
    assert gibbs_moment_z(model, gibbs_sampler(model, backend="numba")).max() < 5.0
