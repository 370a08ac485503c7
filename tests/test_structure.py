"""pb.structure: learning graphs from data, comparing structures, pruning.

Oracles: exact samples of known sparse models (the exact engine, or brute-force
enumeration for the finite domain), the exact distribution itself as weighted data (every
consistent node-wise estimator must return the true parameters), an independent autograd
implementation of the joint pseudo-likelihood and its sandwich covariance, and the KKT
conditions of the L1 problems.
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pgm_boltz as pb
from pgm_boltz.structure import _solver
from pgm_boltz.structure._common import _problem
from pgm_boltz.structure._data import compress_rows, prepare

# --------------------------------------------------------------------------- helpers


def _edge_set(G) -> set:
    return {frozenset(e) for e in G.edges}


def _mixed_lattice(rows: int, cols: int, seed: int) -> nx.Graph:
    """A spin lattice with couplings of random sign, |J| in [0.4, 0.7], fields in
    [-0.2, 0.2]."""
    rng = np.random.default_rng(seed)
    G = pb.graphs.lattice(rows, cols)
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.choice([-1, 1]) * rng.uniform(0.4, 0.7))
    for n in G.nodes:
        G.nodes[n]["bias"] = float(rng.uniform(-0.2, 0.2))
    return G


def _random_regular(n: int, seed: int, domain: str = "spin") -> nx.Graph:
    """A random 3-regular graph, couplings of random sign with |J| in [0.4, 0.8] and
    fields in [-0.3, 0.3] (spin units; binary units get the equivalent parameters)."""
    rng = np.random.default_rng(seed)
    H = nx.random_regular_graph(3, n, seed=seed)
    G = nx.Graph()
    J = {e: float(rng.choice([-1, 1]) * rng.uniform(0.4, 0.8)) for e in H.edges}
    h = {v: float(rng.uniform(-0.3, 0.3)) for v in H.nodes}
    G.add_nodes_from(sorted(H.nodes), role="visible", domain=domain)
    if domain == "spin":
        for v in G.nodes:
            G.nodes[v]["bias"] = h[v]
        for (u, v), w in J.items():
            G.add_edge(u, v, weight=w)
    else:  # s = 2x - 1: W_x = 4 J, b_x = 2 h - 2 sum_j J_ij
        for v in G.nodes:
            G.nodes[v]["bias"] = 2 * h[v] - 2 * sum(w for e, w in J.items() if v in e)
        for (u, v), w in J.items():
            G.add_edge(u, v, weight=4 * w)
    return G


def _sample(G, n: int, seed: int) -> tuple[np.ndarray, list]:
    model = pb.compile(G, seed=0, dtype=torch.float64)
    assert model.plan.engine == "exact"
    return model.sample(n, seed=seed).numpy(), list(model.visible_nodes)


def _weights(G) -> dict:
    return {frozenset(e): G.edges[e]["weight"] for e in G.edges}


def _coupling_z(learned, truth, data, names, domain="spin", **kw) -> np.ndarray:
    """(estimate - truth) / sandwich standard error for every true edge."""
    prob = _problem(data, domain, kw.get("levels"), kw.get("values"), names, None, None)
    index = {c: i for i, c in enumerate(prob.cols.names)}
    edges = np.array(sorted(sorted((index[u], index[v])) for u, v in truth.edges))
    b = torch.tensor([learned.nodes[c]["bias"] for c in prob.cols.names],
                     dtype=torch.float64)
    lw = _weights(learned)
    est = np.array([lw[frozenset((prob.cols.names[i], prob.cols.names[j]))]
                    for i, j in edges])
    true = np.array([_weights(truth)[frozenset((prob.cols.names[i], prob.cols.names[j]))]
                     for i, j in edges])
    se = _solver.pl_standard_errors(prob.objective("pl"), edges, b,
                                    torch.tensor(est), prob.N).numpy()
    return (est - true) / se


def _brute_sample(values: list[np.ndarray], edges: list, W: list, b: np.ndarray, n: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact draws (codes) of ``P(s) ∝ exp(b.s + sum_e W_e s_u s_v)`` by enumeration;
    also every state's codes and probability."""
    codes = np.array(list(itertools.product(*[range(len(v)) for v in values])))
    S = np.stack([values[i][codes[:, i]] for i in range(len(values))], axis=1)
    logp = S @ b
    for (u, v), w in zip(edges, W):
        logp = logp + w * S[:, u] * S[:, v]
    p = np.exp(logp - logp.max())
    p /= p.sum()
    rng = np.random.default_rng(seed)
    return codes[rng.choice(len(codes), size=n, p=p)].astype(float), codes, p


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("data", "kwargs", "match"), [
    ([[1.0, np.nan]] + [[1, -1], [-1, 1]] * 10, {}, "row 0, column 1 is nan"),
    ([[1, 0]] + [[1, -1], [-1, 1]] * 10, {}, "takes -1 or \\+1"),
    ([[2, 0]] + [[1, 0], [0, 1]] * 10, {"domain": "binary"}, "takes 0 or 1"),
    ([[1, 0], [0, 1]] * 10, {"domain": "multinary"}, "no levels"),
    ([[3, 0], [0, 1]] * 10, {"domain": "multinary", "levels": 3}, "0..2"),
    ([[1.5, 0], [0, 1]] * 10, {"domain": "multinary", "levels": 3}, "0..2"),
    ([[1, 0], [0, 1]] * 10, {"domain": "finite"}, "no values"),
    ([[1, 0], [0, 1]] * 10, {"domain": "finite", "values": [0, 0]}, "distinct"),
    ([[1, 0], [0, 1]] * 10, {"domain": "finite", "values": [0, np.inf]}, "distinct"),
    ([[1, 1], [1, -1]] * 10, {}, "column 0 is constant"),
    ([[1, -1], [-1, 1]] * 4, {}, "8 rows"),
    ([[1], [-1]] * 10, {}, "at least two"),
    ([[1, -1], [-1, 1]] * 10, {"domain": "gaussian"}, "unknown domain"),
    ([["a", "b"]] * 20, {}, "not numeric"),
    (np.ones((20, 2, 2)), {}, "shape"),
    ([[1, -1], [-1, 1]] * 10, {"names": ["a"]}, "names has 1"),
    ([[1, -1], [-1, 1]] * 10, {"names": ["a", "a"]}, "more than once"),
    ([[1, -1], [-1, 1]] * 10, {"domain": ["spin"]}, "1 entries for 2 columns"),
    ({"a": [1, -1] * 10, "b": [1, -1]}, {}, "equal length"),
    ([[1, 0], [0, 1]] * 10, {"domain": {"x": "binary"}}, "lacks column 0"),
    ([[1, 0], [0, 1]] * 10, {"domain": "multinary", "levels": 1}, "integer >= 2"),
])
def test_bad_data_raises_data_error(data, kwargs, match):
    kwargs = dict(kwargs)
    domain = kwargs.pop("domain", "spin")
    with pytest.raises(pb.DataError, match=match):
        pb.structure.learn(data, domain, progress=False, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "lasso"}, "unknown method"),
    ({"lam": "bic"}, "lam must be"),
    ({"lam": -0.1}, "lam must be a positive"),
    ({"lam": float("nan")}, "lam must be a positive"),
    ({"symmetrize": "both"}, "symmetrize"),
    ({"threshold": "wald"}, "threshold must be"),
    ({"threshold": -1.0}, "threshold must be"),
    ({"cv_rule": "max"}, "cv_rule"),
    ({"alpha": 1.5}, "alpha must be"),
    ({"c": 0}, "c must be"),
    ({"dtype": torch.int64}, "dtype"),
    ({"max_iter": 0}, "max_iter"),
    ({"refit": "yes"}, "refit must be"),
    ({"lam": "cv", "folds": 1}, "folds must be >= 2"),
])
def test_bad_options_raise_argument_error(kwargs, match):
    data = np.where(np.random.default_rng(0).random((50, 3)) < 0.5, -1, 1)
    with pytest.raises(pb.ArgumentError, match=match):
        pb.structure.learn(data, "spin", progress=False, **kwargs)


def test_errors_are_the_package_own():
    assert issubclass(pb.DataError, pb.PgmBoltzError)
    with pytest.raises(pb.PgmBoltzError):
        pb.structure.learn(np.zeros((20, 3)), "spin", progress=False)


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("method", ["plm", "rise", "logrise"])
def test_recovers_mixed_sign_lattice(method):
    """4x4 lattice, mixed signs: the edge set exactly and the couplings at the
    statistical level (each within 4.5 standard errors, mean squared z below 3)."""
    truth = _mixed_lattice(4, 4, seed=1)
    data, names = _sample(truth, 4000, seed=2)
    G = pb.structure.learn(data, "spin", method=method, names=names, progress=False)
    assert _edge_set(G) == _edge_set(truth)
    z = _coupling_z(G, truth, data, names)
    assert np.abs(z).max() < 4.5, z
    assert np.mean(z ** 2) < 3.0, z
    for n in truth.nodes:
        assert abs(G.nodes[n]["bias"] - truth.nodes[n]["bias"]) < 0.15
    assert G.nodes[names[0]]["role"] == "visible" and G.nodes[names[0]]["domain"] == "spin"


@pytest.mark.parametrize("method", ["plm", "rise", "logrise"])
def test_recovers_random_regular_graph(method):
    truth = _random_regular(16, seed=3)
    data, names = _sample(truth, 5000, seed=4)
    G = pb.structure.learn(data, "spin", method=method, names=names, progress=False)
    assert _edge_set(G) == _edge_set(truth)
    z = _coupling_z(G, truth, data, names)
    assert np.abs(z).max() < 4.5, z


def test_recovers_binary_random_regular_graph():
    """The same law on {0, 1} units (weights four times the spin couplings)."""
    truth = _random_regular(16, seed=3, domain="binary")
    data, names = _sample(truth, 5000, seed=4)
    G = pb.structure.learn(data, "binary", names=names, progress=False)
    assert _edge_set(G) == _edge_set(truth)
    z = _coupling_z(G, truth, data, names, domain="binary")
    assert np.abs(z).max() < 4.5, z
    assert all(G.nodes[v]["domain"] == "binary" for v in G.nodes)


def test_recovers_multinary_graph():
    """Five-level units (values k/4): one weight per edge, softmax conditionals."""
    G0 = nx.cycle_graph(6)
    G0.add_edge(0, 3)
    rng = np.random.default_rng(5)
    truth = nx.Graph()
    truth.add_nodes_from(G0.nodes, role="visible", domain="multinary", levels=5)
    for v in truth.nodes:
        truth.nodes[v]["bias"] = float(rng.uniform(-1, 1))
    for u, v in G0.edges:
        truth.add_edge(u, v, weight=float(rng.choice([-1, 1]) * rng.uniform(1.5, 2.5)))
    data, names = _sample(truth, 6000, seed=6)
    G = pb.structure.learn(data, "multinary", levels=5, names=names, progress=False)
    assert _edge_set(G) == _edge_set(truth)
    z = _coupling_z(G, truth, data, names, domain="multinary", levels=5)
    assert np.abs(z).max() < 4.5, z
    assert G.nodes[0]["levels"] == 5
    assert pb.compile(G).plan.engine == "exact"


@pytest.mark.parametrize("method", ["plm", "logrise"])
def test_recovers_finite_domain_graph(method):
    """Units taking the values (-1, 0.5, 2) (codes 0..2), sampled by enumeration."""
    values = np.array([-1.0, 0.5, 2.0])
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4), (1, 3)]
    W = [0.5, -0.4, 0.45, 0.35, -0.5, 0.4]
    b = np.array([0.2, -0.3, 0.1, 0.0, -0.1])
    data, _, _ = _brute_sample([values] * 5, edges, W, b, 6000, seed=7)
    G = pb.structure.learn(data, "finite", values=values.tolist(), method=method,
                           progress=False)
    assert _edge_set(G) == {frozenset(e) for e in edges}
    for (u, v), w in zip(edges, W):
        assert abs(G.edges[u, v]["weight"] - w) < 0.08
    assert G.nodes[0]["domain"] == "finite" and G.nodes[0]["values"] == values.tolist()


def test_exact_distribution_gives_true_parameters():
    """With the exact law as weighted rows, pseudo-likelihood and both interaction
    screening objectives (unpenalised) are minimised at the true parameters, for binary,
    spin, multinary and finite units alike (RISE needs each node's value centred)."""
    values = [np.array([-1.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0]),
              np.array([-1.0, 0.5, 2.0])]
    edges = [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2)]
    W = [0.6, -0.8, 0.7, 0.3, -0.5]
    b = np.array([0.2, -0.4, 0.5, -0.3])
    _, codes, p = _brute_sample(values, edges, W, b, 1, seed=0)
    S = np.stack([values[i][codes[:, i]] for i in range(4)], axis=1)
    K = max(len(v) for v in values)
    V = np.zeros((4, K))
    mask = np.zeros((4, K), dtype=bool)
    for i, v in enumerate(values):
        V[i, :len(v)] = v
        mask[i, :len(v)] = True
    J = np.zeros((4, 4))
    for (u, v), w in zip(edges, W):
        J[u, v] = J[v, u] = w
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    for kind in ("pl", "rise", "logrise"):
        obj = _solver.NodeObjective(t(S), t(p), t(V), torch.as_tensor(mask), kind)
        zero = torch.zeros(4, 4, dtype=torch.float64)
        fit = _solver.fista(obj, zero, zero, _solver.null_bias(obj), max_iter=20000,
                            tol=1e-9)
        assert bool(fit.converged.all()), kind
        Wr, br = obj.to_raw(fit.W, fit.b)
        np.testing.assert_allclose(Wr.numpy(), J, atol=1e-6, err_msg=kind)
        np.testing.assert_allclose(br.numpy(), b, atol=1e-6, err_msg=kind)


# --------------------------------------------------------------------------- solvers


def _direct_node_loss(kind, S, rw, V, mask, W, b, F=None):
    """Independent per-node losses (autograd-able): logsumexp over each value table;
    fields from features ``F`` (default the values ``S``): ``h_ti = b_i + sum_j W_ij F_tj``
    (W with zero diagonal)."""
    H = b + (S if F is None else F) @ W.T
    if kind == "pl":
        logits = torch.where(mask, H[:, :, None] * V, torch.tensor(-math.inf,
                                                                   dtype=H.dtype))
        return rw @ (torch.logsumexp(logits, -1) - S * H)
    vbar = (V * mask).sum(1) / mask.sum(1)
    iso = rw @ torch.exp(-(S - vbar) * H)
    return iso if kind == "rise" else torch.log(iso)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 6), N=st.integers(30, 200),
       kind=st.sampled_from(["pl", "rise", "logrise"]),
       domain=st.sampled_from(["spin", "binary", "multinary"]),
       lam=st.floats(0.01, 0.3))
def test_fista_solution_satisfies_kkt(seed, n, N, kind, domain, lam):
    """At the returned point, for every node: zero bias gradient, and for each
    coefficient |g_ij| <= P_ij where w_ij = 0 and g_ij = -sign(w_ij) P_ij otherwise
    (gradients from an independent autograd implementation, in standardised units)."""
    rng = np.random.default_rng(seed)
    K = {"spin": 2, "binary": 2, "multinary": 3}[domain]
    codes = rng.integers(0, K, size=(N, n))
    codes[0], codes[1] = 0, K - 1  # no constant column
    if domain == "spin":
        codes = 2 * codes - 1
    kw = {"levels": 3} if domain == "multinary" else {}
    prob = _problem(codes, domain, kw.get("levels"), None, None, None, None)
    obj = prob.objective(kind)
    W0, b0 = torch.zeros(n, n, dtype=torch.float64), _solver.null_bias(obj)
    omega = obj.loadings(W0, b0)
    P = lam * omega
    fit = _solver.fista(obj, P, W0, b0, max_iter=20000, tol=1e-9)
    W = fit.W.clone().requires_grad_(True)
    bb = fit.b.clone().requires_grad_(True)
    loss = _direct_node_loss(kind, obj.S, obj.rw, obj.V, obj.Vmask, W, bb, F=obj.F).sum()
    gW, gb = torch.autograd.grad(loss, (W, bb))
    scale = 1e-6
    assert gb.abs().max() < scale
    off = ~torch.eye(n, dtype=torch.bool)
    zero = (fit.W == 0) & off
    nz = (fit.W != 0) & off
    assert bool((gW[zero].abs() <= P[zero] + scale).all())
    assert torch.allclose(gW[nz], -torch.sign(fit.W[nz]) * P[nz], atol=scale)
    assert bool((fit.W.diagonal() == 0).all())


def _joint_pl(S, V, mask, rw, edges, b, w):
    n = S.shape[1]
    W = torch.zeros(n, n, dtype=S.dtype)
    W = W.index_put((edges[:, 0], edges[:, 1]), w).index_put((edges[:, 1], edges[:, 0]), w)
    return _direct_node_loss("pl", S, rw, V, mask, W, b).sum()


def test_refit_and_sandwich_match_autograd():
    """The Newton refit minimises the joint pseudo-likelihood (checked against autograd's
    gradient) and its sandwich standard errors equal H^-1 J H^-1 / N computed from
    autograd's Hessian and per-row score Jacobian."""
    rng = np.random.default_rng(11)
    N, n = 400, 5
    data = np.stack([2 * rng.integers(0, 2, N) - 1, rng.integers(0, 2, N),
                     rng.integers(0, 3, N), rng.integers(0, 2, N),
                     2 * rng.integers(0, 2, N) - 1], axis=1).astype(float)
    data[:, 1] = np.where(rng.random(N) < 0.7, (data[:, 0] + 1) / 2, data[:, 1])
    doms = ["spin", "binary", "multinary", "binary", "spin"]
    prob = _problem(data, doms, [None, None, 3, None, None], None, None, None, None)
    obj = prob.objective("pl")
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 4], [3, 4]])
    b, w, se, _ = _solver.refit_symmetric(obj, edges, torch.zeros(n, dtype=torch.float64),
                                          torch.zeros(5, dtype=torch.float64),
                                          n_samples=N, l2=0.0)
    e = torch.as_tensor(edges)
    S, V, mask, rw = obj.S, obj.V, obj.Vmask, obj.rw
    theta = torch.cat([b, w]).clone().requires_grad_(True)
    f = lambda th: _joint_pl(S, V, mask, rw, e, th[:n], th[n:])
    (grad,) = torch.autograd.grad(f(theta), theta)
    assert grad.abs().max() < 1e-5  # a wrong gradient or loss would leave ~1e-2
    Hm = torch.autograd.functional.hessian(f, theta.detach())
    # per-row scores (rows are the distinct rows, weighted by their share rw)
    assert len(rw) < N
    rows = []
    for t in range(len(rw)):
        ft = lambda th, t=t: _joint_pl(S[t:t + 1], V, mask, torch.ones(1, dtype=S.dtype),
                                       e, th[:n], th[n:])
        rows.append(torch.autograd.grad(ft(theta), theta)[0])
    Psi = torch.stack(rows)
    Jm = (Psi * rw[:, None]).T @ Psi
    cov = torch.linalg.solve(Hm, torch.linalg.solve(Hm, Jm).T).T / N
    # the biases' parameterisation differs (b vs centred c); the weights' block does not
    np.testing.assert_allclose(se.numpy(), cov.diagonal()[n:].sqrt().numpy(), rtol=1e-6)


def test_large_problem_fallbacks_agree():
    """Above ``dense_limit`` parameters the refit runs L-BFGS and the standard errors use
    the diagonal sandwich: the same optimum, standard errors of the same size."""
    truth = _mixed_lattice(3, 3, seed=30)
    data, names = _sample(truth, 3000, seed=31)
    prob = _problem(data, "spin", None, None, names, None, None)
    obj = prob.objective("pl")
    index = {c: i for i, c in enumerate(names)}
    edges = np.array(sorted(sorted((index[u], index[v])) for u, v in truth.edges))
    z = lambda k: torch.zeros(k, dtype=torch.float64)
    b1, w1, se1, _ = _solver.refit_symmetric(obj, edges, z(9), z(12), n_samples=3000)
    b2, w2, _, _ = _solver.refit_symmetric(obj, edges, z(9), z(12), dense_limit=1)
    assert torch.allclose(w1, w2, atol=1e-5) and torch.allclose(b1, b2, atol=1e-5)
    se2 = _solver.pl_standard_errors(obj, edges, b1, w1, 3000, dense_limit=1)
    ratio = (se2 / se1).numpy()
    assert (ratio > 0.5).all() and (ratio < 2.0).all(), ratio


def test_compress_rows_is_exact():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2, size=(500, 4))
    first, counts = compress_rows(codes, [2, 2, 2, 2])
    assert first is not None and counts.sum() == 500
    for f, c in zip(first, counts):
        assert (codes == codes[f]).all(1).sum() == c
    S, _, _ = prepare(2 * codes - 1, "spin")
    G1 = pb.structure.learn(S, "spin", progress=False, threshold=None)
    G2 = pb.structure.learn(np.repeat(S[:1], 1, 0).tolist() + S[1:].tolist(), "spin",
                            progress=False, threshold=None)
    assert _edge_set(G1) == _edge_set(G2)


# --------------------------------------------------------------------------- options


def test_symmetrize_refit_and_threshold_options():
    truth = _mixed_lattice(3, 3, seed=8)
    data, names = _sample(truth, 600, seed=9)
    kw = {"names": names, "progress": False, "threshold": None}
    g_and = pb.structure.learn(data, "spin", symmetrize="and", **kw)
    g_or = pb.structure.learn(data, "spin", symmetrize="or", **kw)
    assert _edge_set(g_and) <= _edge_set(g_or)
    shrunk = pb.structure.learn(data, "spin", refit=False, **kw)
    assert _edge_set(shrunk) == _edge_set(g_and)
    w_ref = np.array([abs(g_and.edges[e]["weight"]) for e in g_and.edges])
    w_l1 = np.array([abs(shrunk.edges[e]["weight"]) for e in g_and.edges])
    assert (w_l1 <= w_ref + 1e-9).mean() > 0.8 and w_l1.sum() < w_ref.sum()
    big = pb.structure.learn(data, "spin", threshold=0.35, names=names, progress=False)
    assert all(abs(big.edges[e]["weight"]) >= 0.35 for e in big.edges)
    tested = pb.structure.learn(data, "spin", names=names, progress=False)
    assert _edge_set(tested) <= _edge_set(g_and)
    info = tested.graph["structure"]
    assert info["method"] == "plm" and info["n_edges"] == tested.number_of_edges()


def test_names_from_mapping_dataframe_and_mixed_domains():
    truth = _mixed_lattice(2, 3, seed=12)
    data, names = _sample(truth, 3000, seed=13)
    labels = [f"x{r}{c}" for r, c in names]
    mapping = {lab: data[:, i] for i, lab in enumerate(labels)}
    G = pb.structure.learn(mapping, "spin", progress=False)
    assert list(G.nodes) == labels
    assert G.number_of_edges() == truth.number_of_edges()
    pd = pytest.importorskip("pandas")
    Gd = pb.structure.learn(pd.DataFrame(mapping), "spin", progress=False)
    assert list(Gd.nodes) == labels and _edge_set(Gd) == _edge_set(G)
    # mixed domains per column: recode two spin columns as binary
    mixed = dict(mapping)
    mixed[labels[0]] = (mapping[labels[0]] + 1) / 2
    doms = {lab: "spin" for lab in labels} | {labels[0]: "binary"}
    Gm = pb.structure.learn(mixed, doms, progress=False)
    assert Gm.nodes[labels[0]]["domain"] == "binary"
    assert {frozenset(e) for e in Gm.edges} == _edge_set(G)
    model = pb.compile(Gm)
    assert model.plan.engine == "exact"
    assert torch.isfinite(model.log_prob(np.stack([mixed[c] for c in labels], 1)[:5])).all()


def test_cross_validation_is_seeded_and_recovers():
    truth = _mixed_lattice(3, 3, seed=14)
    data, names = _sample(truth, 2000, seed=15)
    G1 = pb.structure.learn(data, "spin", lam="cv", seed=0, names=names, progress=False)
    G2 = pb.structure.learn(data, "spin", lam="cv", seed=0, names=names, progress=False)
    assert _edge_set(G1) == _edge_set(truth)
    assert G1.graph["structure"]["lam"] == G2.graph["structure"]["lam"]
    assert len(G1.graph["structure"]["lam"]) == 9
    G3 = pb.structure.learn(data, "spin", lam="cv", cv_rule="1se", seed=0, names=names,
                            progress=False)
    assert all(a >= b for a, b in zip(G3.graph["structure"]["lam"],
                                      G1.graph["structure"]["lam"]))


def test_regularization_path_order_and_plot(tmp_path):
    truth = _mixed_lattice(3, 3, seed=16)
    data, names = _sample(truth, 3000, seed=17)
    p = pb.structure.path(data, "spin", names=names, n_lambdas=25, progress=False)
    counts = p.n_edges()
    assert counts[0] == 0 and counts[-1] >= 12
    entry = list(p.entry())
    # the 12 true edges enter before any other pair
    assert {frozenset(e) for e in entry[:12]} == _edge_set(truth)
    G = p.graph()  # at the rule's lam, refitted
    assert _edge_set(G) >= _edge_set(truth)
    assert p.edges(p.lambdas[0]) == []
    import matplotlib

    matplotlib.use("Agg")
    ax = p.plot(truth=truth, label_top=3)
    ax.figure.savefig(tmp_path / "path.png")
    assert (tmp_path / "path.png").stat().st_size > 1000
    with pytest.raises(pb.ArgumentError):
        pb.structure.path(data, "spin", lam_min_ratio=2.0, progress=False)


def test_progress_bar_and_float32_run():
    truth = _mixed_lattice(3, 3, seed=18)
    data, names = _sample(truth, 2000, seed=19)
    G = pb.structure.learn(data, "spin", names=names, progress=True, dtype=torch.float32)
    assert _edge_set(G) == _edge_set(truth)


def test_learned_graph_compiles_and_trains():
    truth = _mixed_lattice(3, 3, seed=20)
    data, names = _sample(truth, 2000, seed=21)
    G = pb.structure.learn(data, "spin", names=names, progress=False)
    model = pb.compile(G, dtype=torch.float64)
    nll0 = float(-model.log_prob(data).mean())
    model.fit(data, epochs=50, lr=0.01, progress=False)
    nll1 = float(-model.log_prob(data).mean())
    # the pseudo-likelihood estimate is already close to maximum likelihood
    assert nll1 <= nll0 + 1e-6 and nll0 - nll1 < 0.01


@pytest.mark.slow
def test_recovers_larger_graph_from_gibbs_samples():
    """A 30-node random 3-regular graph sampled by long Gibbs runs."""
    truth = _random_regular(30, seed=22)
    model = pb.compile(truth, seed=0, engine="chromatic-gibbs")
    assert model.plan.engine == "chromatic-gibbs"
    data = model.sample(6000, seed=23, steps=3000).numpy()
    G = pb.structure.learn(data, "spin", names=list(model.visible_nodes), progress=False)
    assert _edge_set(G) == _edge_set(truth)


# --------------------------------------------------------------------------- compare


def _study():
    truth = _mixed_lattice(3, 3, seed=24)
    gen = pb.compile(truth, seed=0, dtype=torch.float64)
    train, test = gen.sample(400, seed=25), gen.sample(20000, seed=26)
    true_g = nx.Graph()  # the structure only: no weights or biases declared
    true_g.add_nodes_from(truth.nodes, role="visible", domain="spin")
    true_g.add_edges_from(truth.edges)
    weights = sorted(truth.edges, key=lambda e: abs(truth.edges[e]["weight"]))
    sub = true_g.copy()
    sub.remove_edges_from(weights[:2])  # drop the two weakest true edges
    sup = true_g.copy()
    sup.add_edges_from([((0, 0), (1, 1)), ((0, 2), (2, 0)), ((1, 0), (2, 2))])
    return {"true": true_g, "sub": sub, "super": sup}, train, test


def test_compare_ranks_generating_graph_first():
    cands, train, test = _study()
    table = pb.structure.compare(cands, train, test, as_frame=False, progress=False)
    assert isinstance(table, pb.structure.ComparisonTable)
    assert table.best["name"] == "true"
    rows = {r["name"]: r for r in table}
    assert rows["true"]["rank"] == 1
    assert rows["true"]["test_nll"] < rows["super"]["test_nll"] < rows["sub"]["test_nll"]
    assert rows["super"]["train_nll"] < rows["true"]["train_nll"]  # overfits
    for r in table:
        assert set(pb.structure.COLUMNS) == set(r)
        assert r["method"] == "exact" and r["nll_method"] == "exact"
        assert r["n_params"] == 9 + r["n_edges"]
        assert r["test_nll_low"] == r["test_nll_high"] == r["test_nll"]


def test_compare_dataframe_plot_and_models(tmp_path):
    pd = pytest.importorskip("pandas")
    cands, train, test = _study()
    cands = {k: cands[k] for k in ("true", "sub")}
    model = pb.compile(cands["sub"], seed=3)
    table, models = pb.structure.compare({"true": cands["true"], "sub model": model},
                                         train, test, progress=False, return_models=True)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(pb.structure.COLUMNS)
    assert models["sub model"] is not model and model.history is None  # copied
    import matplotlib

    matplotlib.use("Agg")
    ax = pb.structure.plot_comparison(table)
    ax.figure.savefig(tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def test_compare_uses_pcd_and_ais_when_exact_is_off():
    cands, train, test = _study()
    cands = {k: cands[k] for k in ("true", "sub")}
    opts = {"compile_options": {"max_exact_states": 4}, "as_frame": False,
            "progress": False, "fit_options": {"pcd": {"epochs": 3}},
            "evaluate_options": {"n_betas": 500, "n_chains": 50}}
    t1 = pb.structure.compare(cands, train, test[:2000], seed=5, **opts)
    t2 = pb.structure.compare(cands, train, test[:2000], seed=5, **opts)
    for r1, r2 in zip(t1, t2):
        assert r1["method"] == "pcd" and r1["nll_method"] == "ais"
        assert r1["test_nll_low"] <= r1["test_nll_high"]
        assert r1["test_nll"] == r2["test_nll"]  # seeded


def test_compare_bad_input():
    cands, train, test = _study()
    with pytest.raises(pb.ArgumentError, match="mapping"):
        pb.structure.compare([cands["true"]], train, test)
    with pytest.raises(pb.ArgumentError, match="empty"):
        pb.structure.compare({}, train, test)
    with pytest.raises(pb.ArgumentError, match="networkx"):
        pb.structure.compare({"a": 3}, train, test)
    other = pb.graphs.lattice(2, 2)
    with pytest.raises(pb.DataError, match="visible nodes"):
        pb.structure.compare({"a": cands["true"], "b": other}, train, test)
    with pytest.raises(pb.DataError, match="shape"):
        pb.structure.compare({"a": cands["true"]}, train[:, :4], test)
    with pytest.raises(pb.ArgumentError, match="unknown method"):
        pb.structure.compare({"a": cands["true"]}, train, test, method="sgd")
    bad = cands["true"].copy()
    bad.nodes[(0, 0)]["role"] = "observer"
    with pytest.raises(pb.GraphError, match="candidate 'a'"):
        pb.structure.compare({"a": bad}, train, test)


# --------------------------------------------------------------------------- prune


def test_prune_magnitude_reports_heldout_cost():
    cands, train, test = _study()
    _, models = pb.structure.compare({"super": cands["super"]}, train, test,
                                     as_frame=False, progress=False, return_models=True)
    sup = models["super"]
    res = pb.structure.prune(sup, train, test, keep=12, progress=False)
    assert res.kept == 12 and len(res.dropped) == 3
    assert _edge_set(res.graph) == _edge_set(cands["true"])  # the spurious ones go
    assert res.n_params_after == res.n_params_before - 3
    assert res.cost is not None and res.cost < 0.01  # pruning spurious edges is free
    assert res.test_nll_after == pytest.approx(res.test_nll_before + res.cost)
    res2 = pb.structure.prune(sup, train, test, fraction=0.5, progress=False)
    assert res2.kept == 15 - 8 and res2.cost > 0.05  # true edges gone: costly
    assert sup.weight.numel() == 15  # the model given is untouched


def test_prune_l1_drops_spurious_edges():
    cands, train, test = _study()
    _, models = pb.structure.compare({"super": cands["super"]}, train, test,
                                     as_frame=False, progress=False, return_models=True)
    res = pb.structure.prune(models["super"], train, test, method="l1", lam=0.15,
                             steps=60, lr=0.1, progress=False)
    dropped = {frozenset(e) for e in res.dropped}
    assert dropped and dropped <= _edge_set(cands["super"]) - _edge_set(cands["true"])
    assert res.cost is not None and res.cost < 0.01


def test_prune_bad_input():
    model = pb.compile(pb.graphs.lattice(2, 2, coupling=0.5), seed=0)
    with pytest.raises(pb.ArgumentError, match="exactly one"):
        pb.structure.prune(model)
    with pytest.raises(pb.ArgumentError, match="exactly one"):
        pb.structure.prune(model, threshold=0.1, keep=2)
    with pytest.raises(pb.ArgumentError, match="fraction"):
        pb.structure.prune(model, fraction=2)
    with pytest.raises(pb.ArgumentError, match="needs train"):
        pb.structure.prune(model, method="l1", lam=0.1)
    with pytest.raises(pb.ArgumentError, match="lam > 0"):
        pb.structure.prune(model, np.ones((5, 4)), method="l1")
    with pytest.raises(pb.ArgumentError, match="compiled model"):
        pb.structure.prune(pb.graphs.lattice(2, 2), threshold=0.1)
    with pytest.raises(pb.ArgumentError, match="unknown method"):
        pb.structure.prune(model, method="random")


@pytest.mark.slow
def test_structure_study_example_quick(tmp_path, capsys):
    """examples/structure_study.py --quick runs end to end and writes its figure."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "structure_study.py"
    spec = importlib.util.spec_from_file_location("structure_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "study.png"
    mod.main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    text = capsys.readouterr().out
    for name in ("RBM 64x16", "DBM 64-16-4", "local RBM", "learned pixel graph"):
        assert name in text
