"""The elimination engine behind the engine seam: the plan picks it by cost, and every
exact call (log Z, moments, marginals, log P with hidden units, samples, conditioning,
exact training) agrees with the enumeration engine and brute force."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import brute_force, brute_force_visible, random_graphs
from hypothesis import given, settings

import pgm_boltz as pb
from pgm_boltz.engines import Limits, get_engine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(model, scale: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g,
                                       dtype=model.dtype) * scale)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g, dtype=model.dtype)
                         * scale)
    return model


def _with_engine(model, name: str):
    """The same model planned with one engine (by cost, through the seam)."""
    cost = get_engine(name).cost(model.problem, Limits(2**40, 2**40))
    assert cost is not None and cost.feasible
    model.plan.exact = cost
    return model


@settings(max_examples=25, deadline=None)
@given(random_graphs(n_min=3, n_max=9, max_states=1 << 12))
def test_both_engines_agree_with_brute_force(G: nx.Graph) -> None:
    """log Z, every mean and pair moment, marginals and log P(v) of every visible state
    (hidden units summed out), for random mixed-domain graphs, through both engines."""
    results = {}
    for name in ("elimination", "enumeration"):
        model = _with_engine(pb.compile(G, dtype=torch.float64), name)
        log_z, mean, second = brute_force(model)
        assert float(model.log_partition()) == pytest.approx(log_z, abs=1e-9)
        m, s = model.moments()
        torch.testing.assert_close(m, mean, atol=1e-9, rtol=0)
        torch.testing.assert_close(s, second, atol=1e-9, rtol=0)
        codes, logp = brute_force_visible(model)
        np.testing.assert_allclose(model.log_prob(codes).detach().numpy(), logp, atol=1e-9)
        results[name] = model.marginals()
    for node in results["elimination"]:
        np.testing.assert_allclose(results["elimination"][node],
                                   results["enumeration"][node], atol=1e-10)


def test_lattice_plans_elimination_and_explains_the_choice() -> None:
    model = pb.compile(pb.graphs.lattice(10, 10), seed=0)
    plan = model.plan
    assert plan.engine == "exact" and plan.exact_engine == "elimination"
    text = str(plan)
    for part in ("engine=exact (elimination)", "treewidth", "largest table",
                 "operations", "rejected enumeration", "matching bound"):
        assert part in text, (part, text)
    assert plan.exact.plan.treewidth <= 14
    with pytest.raises(pb.IntractableError, match="largest table"):
        pb.compile(pb.graphs.lattice(40, 40), engine="exact")


def test_hidden_lattice_free_energy_is_exact() -> None:
    """Hidden units forming their own coupled graph (a hidden chain under a visible row):
    the free energy sums them out per data row by elimination."""
    G = nx.Graph()
    vis = [f"v{i}" for i in range(6)]
    hid = [f"h{i}" for i in range(6)]
    G.add_nodes_from(vis, role="visible", domain="spin")
    G.add_nodes_from(hid, role="hidden", domain="binary")
    G.add_edges_from(zip(vis, hid))
    G.add_edges_from(zip(hid[:-1], hid[1:]))
    G.add_edges_from(zip(vis[:-1], vis[1:]))
    model = _randomise(pb.compile(G, dtype=torch.float64), 0.8, 1)
    assert model.plan.hidden is not None
    _with_engine(model, "elimination")
    model.plan.hidden = get_engine("elimination").cost(model._hidden_problem, Limits())
    codes, logp = brute_force_visible(model)
    np.testing.assert_allclose(model.log_prob(codes).detach().numpy(), logp, atol=1e-10)


def test_exact_samples_and_conditioning_on_a_lattice() -> None:
    model = _randomise(pb.compile(pb.graphs.lattice(4, 4), dtype=torch.float64), 0.5, 2)
    _with_engine(model, "elimination")
    n = 20_000
    x = model.sample(n, seed=0).numpy()
    marg = model.marginals()
    for c, node in enumerate(model.visible_nodes):
        p1 = marg[node][1]
        freq = float((x[:, c] == 1).mean())
        assert abs(freq - p1) < 5 * math.sqrt(p1 * (1 - p1) / n) + 1e-12
    cond = model.condition({(0, 0): 1, (3, 3): -1})
    log_z, _, _ = brute_force(model)
    X = np.array(np.meshgrid(*[[-1.0, 1.0]] * 16, indexing="ij")).reshape(16, -1).T
    b = model.bias.detach().numpy()
    J = model.coupling_matrix().detach().numpy()
    lw = X @ b + 0.5 * np.einsum("si,ij,sj->s", X, J, X)
    keep = (X[:, model.nodes.index((0, 0))] == 1) & (X[:, model.nodes.index((3, 3))] == -1)
    assert cond.log_partition() == pytest.approx(np.logaddexp.reduce(lw[keep]), abs=1e-10)
    assert cond.plan.engine == "exact"


@pytest.mark.slow
def test_exact_ml_recovers_a_10x10_lattice() -> None:
    """Exact maximum likelihood (through elimination) on exact samples of a known 10×10
    spin lattice recovers its couplings within statistical error."""
    G = pb.graphs.lattice(10, 10)
    teacher = pb.compile(G, dtype=torch.float64, seed=0)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        teacher.weight.copy_(torch.as_tensor(rng.uniform(-0.6, 0.6, len(teacher.edges))))
        teacher.bias.copy_(torch.as_tensor(rng.normal(0, 0.2, teacher.n_nodes)))
    assert teacher.plan.exact_engine == "elimination"
    data = teacher.sample(5000, seed=1)
    student = pb.compile(G, dtype=torch.float64, seed=1)
    student.fit(data, method="exact", epochs=150, lr=0.05, progress=False, seed=0)
    err = (student.weight - teacher.weight).detach().abs()
    # each coupling is estimated from 5000 rows: a standard error of ~0.015-0.02
    assert float(err.mean()) < 0.03, float(err.mean())
    assert float(err.max()) < 0.1, float(err.max())
