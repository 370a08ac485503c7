"""Bad or unusual inputs across graphs, data and arguments: each gets the right answer or
the package's own error, whose message names the culprit (files and the CLI are in
tests/test_bad_inputs_io_cli.py). Plus property tests: every exact engine matches brute
force or refuses, over random graphs, domains and parameter magnitudes."""

from __future__ import annotations

import math
import warnings

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import brute_force, random_graphs
from hypothesis import given, settings
from hypothesis import strategies as st

import pgm_boltz as pb
from pgm_boltz.engines import Limits, get_engine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rbm(**kw) -> pb.BoltzmannMachine:
    return pb.compile(pb.graphs.rbm(3, 2), seed=0, **kw)


def graph_with(**node_attrs) -> nx.Graph:
    G = nx.Graph()
    G.add_node("a", role="visible")
    G.add_node("x", role="visible", **node_attrs)
    G.add_edge("a", "x")
    return G


# ------------------------------------------------------------------ graphs


@pytest.mark.parametrize("build, error, match", [
    (lambda: pb.compile(graph_with(domain="finite")), pb.GraphError, "'x'.*values"),
    (lambda: pb.compile(graph_with(domain="finite", values=[1, 1])), pb.GraphError,
     "'x'.*distinct"),
    (lambda: pb.compile(graph_with(domain="finite", values=[0, math.inf])), pb.GraphError,
     "'x'.*finite"),
    (lambda: pb.compile(graph_with(domain="spin", values=[0, 1])), pb.GraphError,
     "'x'.*values"),
    (lambda: pb.compile(graph_with(domain=3)), pb.GraphError, "'x'.*unknown domain"),
    (lambda: pb.compile(graph_with(bias=1e300), dtype=torch.float32), pb.GraphError,
     "bias of node 'x'.*overflows"),
    (lambda: pb.compile(graph_with(), init_scale=math.nan), pb.ArgumentError, "init_scale"),
    (lambda: pb.compile(graph_with(), init_scale=-1.0), pb.ArgumentError, "init_scale"),
    (lambda: pb.compile(graph_with(), dtype=torch.int32), pb.ArgumentError, "dtype"),
    (lambda: pb.compile(graph_with(), dtype=torch.float16), pb.ArgumentError,
     "too coarse"),
    (lambda: pb.compile(graph_with(), dtype="float8"), pb.ArgumentError, "dtype"),
    (lambda: pb.compile(graph_with(), device="tpu"), pb.ArgumentError, "device"),
    (lambda: pb.compile(graph_with(), device=3.5), pb.ArgumentError, "device"),
    (lambda: pb.compile(graph_with(), seed="one"), pb.ArgumentError, "seed"),
    (lambda: pb.compile(graph_with(), seed=2**70), pb.ArgumentError, "seed"),
    (lambda: pb.compile(graph_with(), seed=-3), pb.ArgumentError, "seed"),
    (lambda: pb.compile(graph_with(), seed=1.5), pb.ArgumentError, "seed"),
    (lambda: pb.compile(graph_with(), engine=None), pb.ArgumentError, "engine"),
    (lambda: pb.compile(graph_with(), max_exact_states=np.int64(0)), pb.ArgumentError,
     "max_exact_states"),
    (lambda: pb.graphs.rbm(10**6, 10**6), pb.GraphError, "GiB"),
    (lambda: pb.graphs.lattice(10**5, 10**5), pb.GraphError, "GiB"),
    (lambda: pb.graphs.random_sparse(9, degree=3), pb.GraphError, "even"),
    (lambda: pb.graphs.random_sparse(10, p=1.5), pb.GraphError, "probability"),
    (lambda: pb.graphs.rbm(2, 2, domain="finite"), pb.GraphError, "values"),
    (lambda: pb.graphs.chain(0), pb.GraphError, "n"),
])
def test_bad_graphs_and_compile_options(build, error, match: str) -> None:
    with pytest.raises(error, match=match):
        build()


def test_numpy_counts_are_accepted_and_large_graphs_plan_right() -> None:
    m = pb.compile(pb.graphs.rbm(3, 2), seed=np.int64(3), max_exact_states=np.int64(2**10))
    assert m.sample(np.int64(4), seed=np.uint32(1)).shape == (4, 3)
    # past 20,000 visible units exact work stays exact (16 hidden states) and right
    big = pb.compile(pb.graphs.rbm(20_001, 4), dtype=torch.float64, seed=0)
    assert big.plan.engine == "exact" and "enumerate 4 nodes = 16 states" in str(big.plan)
    with torch.no_grad():
        big.weight.zero_()
        big.bias.zero_()
    assert float(big.log_partition()) == pytest.approx(20_005 * math.log(2), rel=1e-12)


# ------------------------------------------------------------------ data


@pytest.mark.parametrize("data, error, match", [
    ([[0, 1]], pb.DataError, r"shape \(1, 2\)"),
    ([[0, 1, 2]], pb.DataError, "column 2.*'v2'.*0 or 1"),
    ([[0, 1, math.nan]], pb.DataError, "column 2"),
    ([["a", "b", "c"]], pb.DataError, "not numeric"),
    (np.zeros((0, 3)), pb.DataError, "no rows"),
    ({"v0": [0], "v1": [1]}, pb.DataError, "lacks visible node 'v2'"),
    ({"v0": [0], "v1": [1], "v2": [1], "zz": [0]}, pb.DataError, "key 'zz'"),
    ({"v0": [0, 1], "v1": [1], "v2": [1]}, pb.DataError, "equal length"),
    (torch.ones(2, 3, 1), pb.DataError, "shape"),
])
def test_bad_data(data, error, match: str) -> None:
    with pytest.raises(error, match=match):
        rbm().log_prob(data)


def test_dataframes_and_mappings_are_read_by_name() -> None:
    pd = pytest.importorskip("pandas")
    m = pb.compile(pb.graphs.rbm(3, 2), seed=0, dtype=torch.float64, init_scale=0.5)
    rows = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    want = m.log_prob(rows)
    df = pd.DataFrame(rows, columns=["v0", "v1", "v2"])
    torch.testing.assert_close(m.log_prob(df), want)
    torch.testing.assert_close(m.log_prob(df[["v2", "v0", "v1"]]), want)  # reordered
    torch.testing.assert_close(m.log_prob({"v1": rows[:, 1], "v2": rows[:, 2],
                                           "v0": rows[:, 0]}), want)
    with pytest.raises(pb.DataError, match="column 'extra'"):
        m.log_prob(df.assign(extra=0))
    with pytest.raises(pb.DataError, match="lacks visible node 'v1'"):
        m.log_prob(df.drop(columns=["v1"]))
    h = m.fit(df[["v1", "v0", "v2"]], epochs=2, progress=False)
    assert len(h) == 2


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize("call, match", [
    (lambda m: m.sample(0), "n"),
    (lambda m: m.sample(2.0), "n"),
    (lambda m: m.sample(True), "n"),
    (lambda m: m.sample(2, seed="x"), "seed"),
    (lambda m: m.sample(2, method="exact", steps=10), "steps"),
    (lambda m: m.sample(2, method="gibbs", steps=0), "steps"),
    (lambda m: m.sample(2, method="gibbs", stepz=10), "stepz"),
    (lambda m: m.sample(2, method="nope"), "unknown sampling method"),
    (lambda m: m.sample(2, return_hidden="yes"), "return_hidden"),
    (lambda m: m.log_partition(method="exact", n_chains=3), "n_chains"),
    (lambda m: m.log_partition(method="ais", nchains=3), "nchains"),
    (lambda m: m.log_partition(method="bogus"), "log-partition method"),
    (lambda m: m.log_prob([[0, 1, 1]], log_partition="big"), "log_partition"),
    (lambda m: m.log_prob([[0, 1, 1]], log_partition=math.nan), "log_partition"),
    (lambda m: m.fit([[0, 1, 1]], epochs=np.int64(0)), "epochs"),
    (lambda m: m.fit([[0, 1, 1]], lr=1e39), "overflows"),
    (lambda m: m.fit([[0, 1, 1]], method="pcd", kk=1), "kk"),
    (lambda m: m.fit([[0, 1, 1]], method="exact", k=1), "k"),
    (lambda m: m.fit([[0, 1, 1]], progress="no"), "progress"),
    (lambda m: m.fit([[0, 1, 1]], history=[]), "history"),
    (lambda m: m.condition({"v0": 1}, engin="exact"), "engin"),
    (lambda m: m.condition({"v0": 1}, engine="fast"), "engine"),
    (lambda m: m.to_pyro(burnin=3), "burnin"),
    (lambda m: m.to_pyro(sampler="metropolis"), "sampler"),
    (lambda m: m.moments(all_pairs=1), "all_pairs"),
    (lambda m: pb.evaluate(m, [[0, 1, 1]], method="bogus"), "evaluation method"),
    (lambda m: pb.evaluate(m, [[0, 1, 1]], n_chains=1), "n_chains"),
    (lambda m: pb.diagnostics(m, steps=2), "steps"),
    (lambda m: pb.diagnostics(m, sampler="nope"), "sampler"),
    (lambda m: pb.inference.run_chains(m, 2, init=torch.zeros(3, 5)), "init"),
])
def test_bad_arguments_are_argument_errors_naming_the_argument(call, match: str) -> None:
    with pytest.raises(pb.ArgumentError, match=match):
        call(rbm())


def test_sample_with_steps_works_whatever_the_plan() -> None:
    small = rbm()
    assert small.plan.engine == "exact"
    assert small.sample(3, steps=50, seed=0).shape == (3, 3)  # exact draws: steps unused
    big = pb.compile(pb.graphs.rbm(30, 30), seed=0)
    assert big.plan.engine == "block-gibbs"
    assert big.sample(3, steps=5, seed=0).shape == (3, 30)


def test_pyro_warns_on_a_constant_log_partition_while_training() -> None:
    m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    v = torch.zeros(2, 4)
    d = m.to_pyro(log_partition=5.0)
    with pytest.warns(pb.PgmBoltzWarning, match="fixed log Z"):
        d.log_prob(v).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            m.to_pyro(log_partition=5.0).log_prob(v)  # scoring only: no warning
        m.to_pyro().log_prob(v)  # exact, differentiable log Z: no warning


def test_huge_multinary_levels_answer_in_closed_form_or_refuse_fast() -> None:
    m = pb.compile(pb.graphs.rbm(3, 2, domain="multinary", levels=10**9), seed=0,
                   dtype=torch.float64)
    assert math.isfinite(float(m.log_partition()))  # visible units summed out: closed form
    assert m.sample(3, seed=0).shape == (3, 3)
    assert m.sample(3, seed=0, method="gibbs", steps=2).shape == (3, 3)
    assert math.isfinite(float(m.log_prob([[0, 5, 10**9 - 1]])[0]))
    for call in (m.marginals, lambda: pb.evaluate(m, [[0, 1, 2]], progress=False)):
        with pytest.raises(pb.IntractableError, match="levels"):
            call()


def test_extreme_parameters_are_refused_not_wrong() -> None:
    m = pb.compile(pb.graphs.fully_connected(5, domain="spin"), dtype=torch.float64, seed=0)
    with torch.no_grad():
        m.weight.copy_(torch.linspace(-1, 1, 10, dtype=torch.float64) * 1e299)
    assert math.isfinite(float(m.log_partition()))  # within float64: computed, right
    with torch.no_grad():
        m.weight.mul_(1e5)
    with pytest.raises(pb.DataError, match="too large for exact work"):
        m.log_partition()
    with torch.no_grad():
        m.weight[0] = math.nan
    with pytest.raises(pb.DataError, match="too large for exact work"):
        m.marginals()


# ------------------------------------------------------------------ property tests


@settings(max_examples=30, deadline=None)
@given(random_graphs(n_min=2, n_max=7, max_states=1 << 11),
       st.sampled_from([1e-3, 1.0, 30.0, 1e4, 1e150]),
       st.sampled_from(["enumeration", "elimination"]))
def test_every_engine_matches_brute_force_or_refuses(G: nx.Graph, scale: float,
                                                     engine: str) -> None:
    """Over random graphs, domains and parameter magnitudes (tiny to 1e150): log Z and
    the means are right, or the package refuses with its own error — never a wrong
    number or a raw crash."""
    model = pb.compile(G, dtype=torch.float64, seed=0)
    g = torch.Generator().manual_seed(len(G) + int(math.log10(scale) + 10))
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g,
                                       dtype=torch.float64) * scale)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g, dtype=torch.float64)
                         * scale)
    model.plan.exact = get_engine(engine).cost(model.problem, Limits(2**30, 2**30))
    try:
        log_z = float(model.log_partition())
        mean, _ = model.moments(all_pairs=False)
    except pb.PgmBoltzError:
        assert scale >= 1e150  # only astronomically large parameters may be refused
        return
    ref_log_z, ref_mean, _ = brute_force(model)
    assert math.isfinite(log_z)
    assert log_z == pytest.approx(ref_log_z, rel=1e-10, abs=1e-9)
    # means: exact up to float64 rounding of the log-weights (relative to their scale)
    tol = 1e-8 if scale <= 30 else 1e-6
    torch.testing.assert_close(mean, ref_mean, atol=tol, rtol=0)
