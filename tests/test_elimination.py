"""Exact inference by variable elimination (pgm_boltz.engines.elimination).

Oracles: brute-force enumeration of every joint state (random small graphs with mixed
domains, hypothesis), an independent row-transfer-matrix computation on a 12 x 12 lattice,
and a chi-square test of exact samples against the enumerated probabilities.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgm_boltz as pb
from pgm_boltz.engines import elimination as el
from pgm_boltz.errors import DataError, GraphError, IntractableError

BACKENDS = ("numba", "numba-log", "torch")


@contextlib.contextmanager
def backend_mode(name: str):
    """Select a backend of log_partition; "numba-log" forces the kernels' log-space mode."""
    saved = el._FORCE_LOG_SPACE
    el._FORCE_LOG_SPACE = name == "numba-log"
    try:
        yield "numba" if name == "numba-log" else name
    finally:
        el._FORCE_LOG_SPACE = saved

# value sets of the node domains under test: binary, spin, multinary k/(K-1), arbitrary
DOMAINS = (
    [0.0, 1.0],
    [-1.0, 1.0],
    [0.0, 0.5, 1.0],
    [0.0, 1 / 3, 2 / 3, 1.0],
    [-1.0, 0.0, 1.0],
    [0.0, 0.5, 2.0],
    [-2.5, 0.3],
)


# ------------------------------------------------------------------ oracles


def brute(vals: list[list[float]], edges: np.ndarray, b: np.ndarray, w: np.ndarray,
          lw: np.ndarray | None = None) -> dict:
    """Enumerate every joint level assignment (float64): log Z, <v_i>, <v_i v_j>, P(x_i=k),
    the covariance of the biases' statistics and the probability of each state."""
    n = len(vals)
    X = np.array(list(itertools.product(*[range(len(v)) for v in vals])), dtype=np.int64)
    X = X.reshape(-1, n)
    V = np.stack([np.asarray(vals[i])[X[:, i]] for i in range(n)], 1) if n else X * 0.0
    logp = V @ b
    if lw is not None:
        logp = logp + sum(lw[i, X[:, i]] for i in range(n))
    for k, (i, j) in enumerate(edges):
        logp = logp + w[k] * V[:, i] * V[:, j]
    log_z = float(np.logaddexp.reduce(logp))
    p = np.exp(logp - log_z)
    mean = p @ V
    pair = np.array([p @ (V[:, i] * V[:, j]) for i, j in edges])
    marg = [np.array([p[X[:, i] == k].sum() for k in range(len(vals[i]))]) for i in range(n)]
    cov = (V * p[:, None]).T @ V - np.outer(mean, mean)
    return {"log_z": log_z, "mean": mean, "pair": pair, "marg": marg, "cov": cov, "X": X,
            "p": p}


def pack(vals: list[list[float]]) -> tuple[torch.Tensor, np.ndarray]:
    """Value table (n, Kmax) padded with NaN (padding must be ignored) and levels."""
    levels = np.array([len(v) for v in vals], dtype=np.int64)
    kmax = int(levels.max()) if len(vals) else 1
    table = torch.full((len(vals), kmax), float("nan"), dtype=torch.float64)
    for i, v in enumerate(vals):
        table[i, :len(v)] = torch.tensor(v, dtype=torch.float64)
    return table, levels


@st.composite
def problems(draw, max_nodes: int = 6) -> dict:
    """A random graph with mixed domains and random parameters (edges in random
    orientation and order)."""
    n = draw(st.integers(1, max_nodes))
    vals = [DOMAINS[draw(st.integers(0, len(DOMAINS) - 1))] for _ in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    edges = [(j, i) if draw(st.booleans()) else (i, j) for i, j in chosen]
    edges = np.array(edges, dtype=np.int64).reshape(-1, 2)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    kmax = max(len(v) for v in vals)
    return {
        "vals": vals, "edges": edges, "b": rng.normal(0, scale, n),
        "w": rng.normal(0, scale, len(edges)),
        "lw": np.where(np.arange(kmax)[None] < np.array([len(v) for v in vals])[:, None],
                       rng.normal(0, 1, (n, kmax)), np.nan),
        "use_lw": draw(st.booleans()),
    }


def grads(plan, table, levels, edges, b, w, lw, backend, dtype=torch.float64):
    """log Z and its gradients w.r.t. bias, weight, log-weights."""
    bt = torch.tensor(b, dtype=dtype, requires_grad=True)
    wt = torch.tensor(w, dtype=dtype, requires_grad=True)
    lwt = None if lw is None else torch.tensor(lw, dtype=dtype, requires_grad=True)
    lz = el.log_partition(plan, table, levels, edges, bt, wt, lwt, backend=backend)
    ins = [bt, wt] + ([lwt] if lwt is not None else [])
    g = torch.autograd.grad(lz, ins, allow_unused=True)
    return lz.detach(), g


# ------------------------------------------------------------------ brute force


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_log_z_moments_and_marginals_match_brute_force(prob):
    vals, edges = prob["vals"], prob["edges"]
    lw = prob["lw"] if prob["use_lw"] else None
    table, levels = pack(vals)
    ref = brute(vals, edges, prob["b"], prob["w"], None if lw is None else np.nan_to_num(lw))
    plan = el.plan_elimination(len(vals), edges, levels)
    lw_t = None if lw is None else torch.tensor(lw)  # NaN padding: must be ignored
    for name in BACKENDS:
        bt = torch.tensor(prob["b"], requires_grad=True)
        wt = torch.tensor(prob["w"], requires_grad=True)
        lwt = None if lw_t is None else lw_t.clone().requires_grad_(True)
        with backend_mode(name) as backend:
            lz = el.log_partition(plan, table, levels, edges, bt, wt, lwt, backend=backend)
            lz.backward()
        assert abs(lz.item() - ref["log_z"]) < 1e-9 * max(1.0, abs(ref["log_z"])), backend
        np.testing.assert_allclose(bt.grad.numpy(), ref["mean"], atol=1e-9, err_msg=backend)
        if len(edges):
            np.testing.assert_allclose(wt.grad.numpy(), ref["pair"], atol=1e-9,
                                       err_msg=backend)
        if lwt is not None:
            for i, m in enumerate(ref["marg"]):
                np.testing.assert_allclose(lwt.grad[i, :len(m)].numpy(), m, atol=1e-9)
                assert torch.all(lwt.grad[i, len(m):] == 0)
    p = el.marginals(plan, table, levels, edges, torch.tensor(prob["b"]),
                     torch.tensor(prob["w"]), lw_t)
    for got, want in zip(p, ref["marg"]):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(problems(max_nodes=5), st.integers(1, 4), st.integers(1, 3))
def test_batched_bias_matches_rowwise_brute_force(prob, rows, cols):
    vals, edges = prob["vals"], prob["edges"]
    table, levels = pack(vals)
    plan = el.plan_elimination(len(vals), edges, levels)
    rng = np.random.default_rng(len(vals) * 7 + rows)
    B = rng.normal(0, 1.0, (rows, cols, len(vals)))
    for name in BACKENDS:
        bt = torch.tensor(B, requires_grad=True)
        wt = torch.tensor(prob["w"], requires_grad=True)
        g = torch.randn(rows, cols, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(rows))
        with backend_mode(name) as backend:
            lz = el.log_partition(plan, table, levels, edges, bt, wt, backend=backend)
            assert lz.shape == (rows, cols)
            (lz * g).sum().backward()
        want_w = np.zeros(len(edges))
        for r in range(rows):
            for c in range(cols):
                ref = brute(vals, edges, B[r, c], prob["w"])
                assert abs(lz[r, c].item() - ref["log_z"]) < 1e-9 * max(1, abs(ref["log_z"]))
                np.testing.assert_allclose(bt.grad[r, c].numpy(), g[r, c].item() * ref["mean"],
                                           atol=1e-9)
                want_w += g[r, c].item() * ref["pair"]
        if len(edges):
            np.testing.assert_allclose(wt.grad.numpy(), want_w, atol=1e-8)


def test_many_rows_split_over_threads_match_single_rows():
    G = pb.graphs.random_sparse(14, degree=3, seed=3)
    edges = np.array(G.edges)
    table, levels = pack([[-1.0, 1.0]] * 7 + [[0.0, 0.5, 1.0]] * 7)
    plan = el.plan_elimination(14, edges, levels)
    rng = np.random.default_rng(0)
    B = rng.normal(0, 1, (37, 14))
    B[::5] *= 2000.0  # these rows' exp-space unary tables underflow: log space
    B = torch.tensor(B, requires_grad=True)
    w = torch.tensor(rng.normal(0, 0.5, len(edges)), requires_grad=True)
    lz = el.log_partition(plan, table, levels, edges, B, w)
    lz.sum().backward()
    gw = torch.zeros(len(edges), dtype=torch.float64)
    _, mode, *_ = el._numba_forward(plan, el._values_np(plan, table), B.detach().numpy(),
                                    w.detach().numpy(), np.zeros((14, 3)), False)
    assert mode.tolist() == [int(r % 5 == 0) for r in range(37)]
    for r in (0, 17, 36, 35):
        br = B.detach()[r].clone().requires_grad_(True)
        wr = w.detach().clone().requires_grad_(True)
        one = el.log_partition(plan, table, levels, edges, br, wr, backend="torch")
        one.backward()
        assert abs(one.item() - lz[r].item()) < 1e-10 * max(1.0, abs(one.item()))
        np.testing.assert_allclose(br.grad.numpy(), B.grad[r].numpy(), atol=1e-10)
    for r in range(37):
        wr = w.detach().clone().requires_grad_(True)
        el.log_partition(plan, table, levels, edges, B.detach()[r], wr,
                         backend="torch").backward()
        gw += wr.grad
    np.testing.assert_allclose(w.grad.numpy(), gw.numpy(), atol=1e-9)


def test_second_derivative_is_the_covariance():
    vals = [[-1.0, 1.0], [0.0, 0.5, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0]]
    edges = np.array([[0, 1], [1, 2], [3, 2], [0, 3]])
    rng = np.random.default_rng(5)
    b, w = rng.normal(size=4), rng.normal(size=4)
    table, levels = pack(vals)
    plan = el.plan_elimination(4, edges, levels)
    ref = brute(vals, edges, b, w)
    for name in BACKENDS:
        bt = torch.tensor(b, requires_grad=True)
        with backend_mode(name) as backend:
            lz = el.log_partition(plan, table, levels, edges, bt, torch.tensor(w),
                                  backend=backend)
            (g,) = torch.autograd.grad(lz, bt, create_graph=True)
            H = torch.stack([torch.autograd.grad(g[i], bt, retain_graph=True)[0]
                             for i in range(4)])
        np.testing.assert_allclose(H.numpy(), ref["cov"], atol=1e-9, err_msg=name)


# ------------------------------------------------------------------ samples


def chi2_pvalue(stat: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (regularised upper incomplete gamma)."""
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                         torch.tensor(stat / 2.0, dtype=torch.float64)))


@pytest.mark.parametrize("name", BACKENDS)
def test_exact_samples_pass_chi_square(name):
    with backend_mode(name) as backend:
        exact_samples_pass_chi_square(backend)


def exact_samples_pass_chi_square(backend):
    vals = [[-1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 2.0], [0.0, 1.0], [-1.0, 0.0, 1.0]]
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 1], [4, 2]])
    rng = np.random.default_rng(11)
    b, w = rng.normal(0, 1, 5), rng.normal(0, 1.5, len(edges))
    lw = rng.normal(0, 0.5, (5, 3))
    table, levels = pack(vals)
    plan = el.plan_elimination(5, edges, levels)
    ref = brute(vals, edges, b, w, lw)
    n = 40000
    x = el.sample(plan, table, levels, edges, torch.tensor(b), torch.tensor(w), n,
                  generator=torch.Generator().manual_seed(0), log_weights=torch.tensor(lw),
                  backend=backend)
    assert x.shape == (n, 5) and x.dtype == torch.long
    radix = np.cumprod([1, *levels[::-1][:-1]])[::-1]  # row-major state index
    idx = (x.numpy() * radix).sum(1)
    counts = np.bincount(idx, minlength=len(ref["p"]))
    expected = n * ref["p"]
    stat = float(((counts - expected) ** 2 / expected).sum())
    p_value = chi2_pvalue(stat, len(expected) - 1)
    assert p_value > 1e-4, (stat, p_value)
    # and the test can fail: samples of a different model are rejected
    other = el.sample(plan, table, levels, edges, torch.tensor(b) + 0.3, torch.tensor(w), n,
                      generator=torch.Generator().manual_seed(0), log_weights=torch.tensor(lw),
                      backend=backend)
    c2 = np.bincount((other.numpy() * radix).sum(1), minlength=len(ref["p"]))
    assert chi2_pvalue(float(((c2 - expected) ** 2 / expected).sum()), len(expected) - 1) < 1e-6


def test_numba_and_torch_samplers_agree_draw_for_draw():
    # the same uniforms go through the same conditionals: identical draws except where a
    # uniform falls within rounding of a CDF boundary
    L = 6
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges = np.array([(index[a], index[c]) for a, c in G.edges])
    rng = np.random.default_rng(8)
    vals = [DOMAINS[k] for k in rng.integers(0, len(DOMAINS), L * L)]
    table, levels = pack(vals)
    plan = el.plan_elimination(L * L, edges, levels)
    b, w = torch.tensor(rng.normal(0, 1, L * L)), torch.tensor(rng.normal(0, 1, len(edges)))
    draws = {}
    for name in BACKENDS:
        with backend_mode(name) as backend:
            draws[name] = el.sample(plan, table, levels, edges, b, w, 3000,
                                    torch.Generator().manual_seed(1), backend=backend)
    for name in ("numba-log", "torch"):
        same = (draws[name] == draws["numba"]).all(1).float().mean()
        assert same > 0.999, (name, same)


def test_samples_are_reproducible_and_cover_disconnected_parts():
    table, levels = pack([[-1.0, 1.0]] * 5)
    edges = np.array([[0, 1], [2, 3]])  # node 4 isolated
    plan = el.plan_elimination(5, edges, levels)
    b = torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    w = torch.tensor([4.0, -4.0], dtype=torch.float64)
    a = el.sample(plan, table, levels, edges, b, w, 2000, torch.Generator().manual_seed(3))
    c = el.sample(plan, table, levels, edges, b, w, 2000, torch.Generator().manual_seed(3))
    assert torch.equal(a, c)
    assert (a[:, 0] == a[:, 1]).float().mean() > 0.99  # ferromagnetic pair
    assert (a[:, 2] != a[:, 3]).float().mean() > 0.99  # antiferromagnetic pair
    assert abs(a[:, 4].float().mean() - 1 / (1 + math.exp(-4.0))) < 0.03


# ------------------------------------------------------------------ numerics


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_float32_strong_couplings_stay_finite_and_accurate(backend):
    vals = [[-1.0, 1.0], [0.0, 1.0], [-1.0, 0.0, 1.0], [-1.0, 1.0], [0.0, 0.5, 2.0],
            [-1.0, 1.0]]
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 3], [1, 4]])
    rng = np.random.default_rng(2)
    b = rng.normal(0, 30, 6)
    w = rng.choice([-1.0, 1.0], len(edges)) * rng.uniform(25, 35, len(edges))
    table, levels = pack(vals)
    plan = el.plan_elimination(6, edges, levels)
    ref = brute(vals, edges, b, w)
    lz, (gb, gw) = grads(plan, table, levels, edges, b, w, None, backend, torch.float32)
    assert lz.dtype == torch.float32 and torch.isfinite(lz)
    assert abs(float(lz) - ref["log_z"]) <= 1e-5 * abs(ref["log_z"]) + 1e-3
    np.testing.assert_allclose(gb.numpy(), ref["mean"], atol=2e-3)
    np.testing.assert_allclose(gw.numpy(), ref["pair"], atol=2e-3)


def test_strong_couplings_on_a_lattice_run_in_log_space_and_stay_exact():
    L = 8
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges = np.array([(index[a], index[c]) for a, c in G.edges])
    rng = np.random.default_rng(4)
    w = rng.choice([-1.0, 1.0], len(edges)) * 100.0  # frustrated: rescaled tables fail
    b = rng.normal(0, 1, L * L)
    table, levels = pack([[-1.0, 1.0]] * (L * L))
    plan = el.plan_elimination(L * L, edges, levels)
    vn = el._values_np(plan, table)
    _, mode, *_ = el._numba_forward(plan, vn, b[None], w, np.zeros((L * L, 2)), False)
    assert mode.tolist() == [1]  # the rescaled pass failed: this row ran in log space
    _, mode, *_ = el._numba_forward(plan, vn, b[None], w / 100, np.zeros((L * L, 2)), False)
    assert mode.tolist() == [0]
    lz64, (gb64, _) = grads(plan, table, levels, edges, b, w, None, "auto")
    lz32, (gb32, gw32) = grads(plan, table, levels, edges, b, w, None, "auto", torch.float32)
    assert torch.isfinite(lz32) and torch.isfinite(gb32).all() and torch.isfinite(gw32).all()
    assert abs(float(lz32) - float(lz64)) <= 1e-6 * abs(float(lz64))
    np.testing.assert_allclose(gb32.numpy(), gb64.numpy(), atol=1e-2)
    lz_t = el.log_partition(plan, table, levels, edges, torch.tensor(b), torch.tensor(w),
                            backend="torch")
    assert abs(float(lz_t) - float(lz64)) < 1e-9 * abs(float(lz64))


# ------------------------------------------------------------------ transfer matrix


def transfer_matrix_log_z(h: np.ndarray, jr: np.ndarray, jd: np.ndarray) -> float:
    """log Z of an open L x L spin lattice by the row transfer matrix (float64 numpy).

    ``h[r, c]`` fields, ``jr[r, c]`` coupling of (r, c)-(r, c+1), ``jd[r, c]`` coupling of
    (r, c)-(r+1, c). A row state is one of 2^L spin configurations; the vertical transfer
    factorises over columns, applied one column axis at a time to the row vector.
    """
    L = h.shape[1]
    s = 1 - 2 * ((np.arange(2**L)[:, None] >> np.arange(L)[::-1]) & 1)  # (2^L, L) spins
    spins = np.array([-1.0, 1.0])

    def row_weight(r: int) -> np.ndarray:
        return s @ h[r] + (s[:, :-1] * s[:, 1:]) @ jr[r]

    logv = row_weight(0)
    shift = 0.0
    for r in range(1, h.shape[0]):
        m = logv.max()
        shift += m
        v = np.exp(logv - m).reshape((2,) * L)
        # s = +1 is bit 0 in the code above: axis value a -> spin (1 - 2a); reorder
        for c in range(L):
            M = np.exp(jd[r - 1, c] * np.outer(spins[::-1], spins[::-1]))  # a, a'
            v = np.moveaxis(np.tensordot(v, M, axes=([c], [0])), -1, c)
        logv = np.log(v.reshape(-1)) + row_weight(r)
    return float(shift + np.logaddexp.reduce(logv))


def lattice_problem(L: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    h = rng.normal(0, 0.3, (L, L))
    jr = rng.normal(0, 0.6, (L, L - 1))
    jd = rng.normal(0, 0.6, (L - 1, L))
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges, w = [], []
    for (r, c), (r2, c2) in G.edges:
        edges.append((index[(r, c)], index[(r2, c2)]))
        lo = min((r, c), (r2, c2))
        w.append(jr[lo] if r == r2 else jd[lo])
    b = np.array([h[v] for v in G.nodes])
    return h, jr, jd, np.array(edges), np.array(w), b


def test_12x12_lattice_matches_row_transfer_matrix():
    L = 12
    h, jr, jd, edges, w, b = lattice_problem(L, seed=7)
    want = transfer_matrix_log_z(h, jr, jd)
    table, levels = pack([[-1.0, 1.0]] * (L * L))
    plan = el.plan_elimination(L * L, edges, levels)
    assert plan.treewidth <= L + 1
    bt = torch.tensor(b, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    lz = el.log_partition(plan, table, levels, edges, bt, wt)
    lz.backward()
    assert abs(lz.item() - want) < 1e-9 * abs(want)
    lz_t = el.log_partition(plan, table, levels, edges, torch.tensor(b), torch.tensor(w),
                            backend="torch")
    assert abs(float(lz_t) - want) < 1e-9 * abs(want)
    # moments: central differences of the transfer-matrix log Z
    eps = 1e-5
    for node in (0, 77, 143):
        r, c = divmod(node, L)
        hp, hm = h.copy(), h.copy()
        hp[r, c] += eps
        hm[r, c] -= eps
        fd = (transfer_matrix_log_z(hp, jr, jd) - transfer_matrix_log_z(hm, jr, jd)) / (2 * eps)
        assert abs(fd - float(bt.grad[node])) < 1e-6
    r, c = 5, 6  # the coupling (5, 6)-(5, 7)
    k = int(np.flatnonzero((edges[:, 0] == r * L + c) & (edges[:, 1] == r * L + c + 1))[0])
    jp, jm = jr.copy(), jr.copy()
    jp[r, c] += eps
    jm[r, c] -= eps
    fd = (transfer_matrix_log_z(h, jp, jd) - transfer_matrix_log_z(h, jm, jd)) / (2 * eps)
    assert abs(fd - float(wt.grad[k])) < 1e-6


def test_transfer_matrix_reference_is_right_on_a_small_lattice():
    h, jr, jd, edges, w, b = lattice_problem(3, seed=1)
    want = brute([[-1.0, 1.0]] * 9, edges, b, w)["log_z"]
    assert abs(transfer_matrix_log_z(h, jr, jd) - want) < 1e-10


# ------------------------------------------------------------------ costs and limits


@pytest.mark.parametrize("L", [3, 5, 8, 10])
def test_lattice_costs_are_sane(L):
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges = np.array([(index[a], index[c]) for a, c in G.edges])
    plan = el.plan_elimination(L * L, edges, np.full(L * L, 2))
    # the treewidth of the L x L grid is L; a heuristic order may trade a larger table for
    # fewer operations (min-fill on 10 x 10: treewidth 13, 20% fewer flops than a sweep)
    assert L <= plan.treewidth <= L + 4
    assert plan.log2_max_table == plan.treewidth + 1  # binary: 2^(clique size)
    rcm = el.plan_elimination(L * L, edges, np.full(L * L, 2), methods=("rcm",))
    assert rcm.treewidth == L and rcm.method == "rcm"  # the sweep order is optimal here
    assert plan.flops <= min(c[2] for c in plan.candidates.values()) * el._FLOPS_SLACK
    assert plan.flops <= rcm.flops
    assert L**2 * 2**L <= rcm.flops <= 20 * L**2 * 2 ** (L + 1)
    three = el.plan_elimination(L * L, edges, np.full(L * L, 3), methods=("rcm",))
    assert three.log2_max_table == pytest.approx((L + 1) * math.log2(3))


def test_chain_ladder_and_hidden_lattice_treewidths():
    def plan_of(G):
        index = {v: i for i, v in enumerate(G.nodes)}
        edges = np.array([(index[a], index[c]) for a, c in G.edges]).reshape(-1, 2)
        return el.plan_elimination(len(index), edges, np.full(len(index), 2))

    assert plan_of(pb.graphs.chain(30)).treewidth == 1
    assert plan_of(pb.graphs.chain(30, periodic=True)).treewidth == 2
    assert plan_of(pb.graphs.ladder(20)).treewidth == 2
    for L in (4, 6, 8, 12):
        plan = plan_of(pb.graphs.lattice_with_hidden(L, L))
        assert L + 1 <= plan.treewidth <= 2 * L  # plaquettes couple diagonals: >= L + 1
        assert plan.log2_max_table <= 26


def test_too_large_plan_is_refused_before_allocation():
    n = 40
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if (i + j) % 7])
    levels = np.full(n, 2)
    plan = el.plan_elimination(n, edges, levels)  # never raises for size
    assert plan.log2_max_table > 30
    with pytest.raises(IntractableError, match=r"2\^\d+.*treewidth"):
        el.check_feasible(plan)
    table, _ = pack([[0.0, 1.0]] * n)
    t0 = time.perf_counter()
    with pytest.raises(IntractableError, match="Gibbs"):
        el.log_partition(plan, table, levels, edges, torch.zeros(n, dtype=torch.float64),
                         torch.zeros(len(edges), dtype=torch.float64))
    with pytest.raises(IntractableError):
        el.sample(plan, table, levels, edges, torch.zeros(n, dtype=torch.float64),
                  torch.zeros(len(edges), dtype=torch.float64), 10)
    assert time.perf_counter() - t0 < 1.0
    assert "kernel" not in plan._cache  # no schedule arrays were built


def test_dense_graphs_are_costed_quickly_and_refused():
    for nv, nh in ((784, 500), (300, 40)):  # an MNIST-sized RBM; one past the bound
        edges = np.array([(i, nv + j) for i in range(nv) for j in range(nh)])
        t0 = time.perf_counter()
        plan = el.plan_elimination(nv + nh, edges, np.full(nv + nh, 2))
        assert time.perf_counter() - t0 < 5.0
        assert plan.treewidth >= nh and plan.log2_max_table >= nh + 1
        with pytest.raises(IntractableError, match="2\\^"):
            el.check_feasible(plan)
    # a narrow RBM is exact: sum the visible units out, the hidden ones form the clique
    edges = np.array([(i, 300 + j) for i in range(300) for j in range(6)])
    plan = el.plan_elimination(306, edges, np.full(306, 2))
    assert plan.treewidth == 6 and plan.exact_cost


def test_gradient_storage_limit():
    L = 10
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges = np.array([(index[a], index[c]) for a, c in G.edges])
    table, levels = pack([[-1.0, 1.0]] * (L * L))
    plan = el.plan_elimination(L * L, edges, levels)
    b = torch.zeros(L * L, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(len(edges), dtype=torch.float64)
    with pytest.raises(IntractableError, match="gradient"):
        el.log_partition(plan, table, levels, edges, b, w, max_log2_stored=5.0)
    with torch.no_grad():  # no gradient: no limit on kept messages
        lz = el.log_partition(plan, table, levels, edges, b, w, max_log2_stored=5.0)
    assert float(lz) == pytest.approx(L * L * math.log(2))


# ------------------------------------------------------------------ edge cases, errors


@pytest.mark.parametrize("name", BACKENDS)
def test_trivial_graphs(name):
    with backend_mode(name) as backend:
        trivial_graphs(backend)


def trivial_graphs(backend):
    # one node
    table, levels = pack([[0.0, 0.5, 2.0]])
    plan = el.plan_elimination(1, np.zeros((0, 2)), levels)
    bt = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    lz = el.log_partition(plan, table, levels, np.zeros((0, 2)), bt,
                          torch.zeros(0, dtype=torch.float64), backend=backend)
    lz.backward()
    want = brute([[0.0, 0.5, 2.0]], np.zeros((0, 2), int), np.array([0.7]), np.zeros(0))
    assert lz.item() == pytest.approx(want["log_z"], abs=1e-12)
    assert float(bt.grad[0]) == pytest.approx(want["mean"][0], abs=1e-12)
    # isolated nodes and two components
    vals = [[-1.0, 1.0], [0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    edges = np.array([[0, 1], [3, 2]])
    table, levels = pack(vals)
    plan = el.plan_elimination(5, edges, levels)
    b, w = np.array([0.1, -0.4, 0.3, 0.9, -2.0]), np.array([1.3, -0.8])
    lz, (gb, gw) = grads(plan, table, levels, edges, b, w, None, backend)
    ref = brute(vals, edges, b, w)
    assert float(lz) == pytest.approx(ref["log_z"], abs=1e-12)
    np.testing.assert_allclose(gb.numpy(), ref["mean"], atol=1e-12)
    np.testing.assert_allclose(gw.numpy(), ref["pair"], atol=1e-12)
    # no nodes: log Z = 0; no rows: empty result
    empty = el.plan_elimination(0, np.zeros((0, 2)), np.zeros(0, np.int64))
    assert float(el.log_partition(empty, torch.zeros(0, 1), np.zeros(0, np.int64),
                                  np.zeros((0, 2)), torch.zeros(0),
                                  torch.zeros(0), backend=backend)) == 0.0
    out = el.log_partition(plan, table, levels, edges, torch.zeros(0, 5, dtype=torch.float64),
                           torch.tensor(w), backend=backend)
    assert out.shape == (0,)


def test_bad_structure_is_a_graph_error():
    lv = np.array([2, 2, 2])
    with pytest.raises(GraphError, match="self-loop"):
        el.plan_elimination(3, np.array([[0, 0]]), lv)
    with pytest.raises(GraphError, match="more than once"):
        el.plan_elimination(3, np.array([[0, 1], [1, 0]]), lv)
    with pytest.raises(GraphError, match="outside"):
        el.plan_elimination(3, np.array([[0, 3]]), lv)
    with pytest.raises(GraphError, match=r"shape \(m, 2\)"):
        el.plan_elimination(3, np.array([0, 1]), lv)
    with pytest.raises(GraphError, match="levels"):
        el.plan_elimination(3, np.array([[0, 1]]), np.array([2, 0, 2]))
    with pytest.raises(GraphError, match="levels"):
        el.plan_elimination(3, np.array([[0, 1]]), np.array([2, 2]))
    with pytest.raises(GraphError, match="unknown elimination order"):
        el.plan_elimination(3, np.array([[0, 1]]), lv, methods=("magic",))


def test_bad_arrays_are_data_errors():
    edges = np.array([[0, 1], [1, 2]])
    table, levels = pack([[-1.0, 1.0]] * 3)
    plan = el.plan_elimination(3, edges, levels)
    b, w = torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    with pytest.raises(DataError, match="bias must have shape"):
        el.log_partition(plan, table, levels, edges, torch.zeros(4, dtype=torch.float64), w)
    with pytest.raises(DataError, match="weight must have shape"):
        el.log_partition(plan, table, levels, edges, b, torch.zeros(3))
    with pytest.raises(DataError, match="levels do not match"):
        el.log_partition(plan, table, np.array([2, 3, 2]), edges, b, w)
    with pytest.raises(DataError, match="edges do not match"):
        el.log_partition(plan, table, levels, np.array([[0, 1], [0, 2]]), b, w)
    with pytest.raises(DataError, match="values must have shape"):
        el.log_partition(plan, table[:, :1], levels, edges, b, w)
    bad = table.clone()
    bad[1, 0] = float("inf")
    with pytest.raises(DataError, match="finite"):
        el.log_partition(plan, bad, levels, edges, b, w)
    with pytest.raises(DataError, match="floating"):
        el.log_partition(plan, table, levels, edges, torch.zeros(3, dtype=torch.long), w)
    with pytest.raises(DataError, match="log_weights must have shape"):
        el.log_partition(plan, table, levels, edges, b, w, log_weights=torch.zeros(3, 1))
    with pytest.raises(DataError, match="backend"):
        el.log_partition(plan, table, levels, edges, b, w, backend="gpu")
    with pytest.raises(DataError, match="n_samples"):
        el.sample(plan, table, levels, edges, b, w, -1)


def test_torch_path_chunks_rows(monkeypatch):
    G = pb.graphs.random_sparse(12, degree=3, seed=1)
    edges = np.array(G.edges)
    table, levels = pack([[0.0, 1.0]] * 12)
    plan = el.plan_elimination(12, edges, levels)
    rng = np.random.default_rng(0)
    B = torch.tensor(rng.normal(0, 1, (9, 12)))
    w = torch.tensor(rng.normal(0, 1, len(edges)))
    whole = el.log_partition(plan, table, levels, edges, B, w, backend="torch")
    monkeypatch.setattr(el, "_CHUNK_ELEMENTS", 2 ** (plan.log2_max_table + 1))
    chunked = el.log_partition(plan, table, levels, edges, B, w, backend="torch")
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ graph constructors


def test_lattice_with_hidden_structure():
    G = pb.graphs.lattice_with_hidden(4, 5, periodic=False, coupling=0.2)
    hidden = pb.graphs.node_names(G, "hidden")
    assert len(hidden) == 3 * 4
    assert all(G.degree(h) == 4 for h in hidden)
    assert all(G.nodes[h]["domain"] == "binary" for h in hidden)
    assert all(G.nodes[v]["domain"] == "spin" for v in pb.graphs.node_names(G, "visible"))
    assert all(d["weight"] == 0.2 for _, _, d in G.edges(data=True))
    P = pb.graphs.lattice_with_hidden(4, 5, periodic=True, visible_edges=False,
                                      hidden_domain="multinary", hidden_levels=3)
    assert P.number_of_edges() == 4 * 20 and len(pb.graphs.node_names(P, "hidden")) == 20
    assert P.nodes[(3.5, 4.5)]["levels"] == 3
    assert set(P[(3.5, 4.5)]) == {(3, 4), (3, 0), (0, 4), (0, 0)}
    model = pb.compile(pb.graphs.lattice_with_hidden(3, 3))
    assert len(model.hidden_nodes) == 4
    with pytest.raises(GraphError):
        pb.graphs.lattice_with_hidden(1, 5)
    with pytest.raises(GraphError, match="levels"):
        pb.graphs.lattice_with_hidden(3, 3, domain="multinary")


def test_chain_ladder_random_sparse():
    assert nx.is_isomorphic(pb.graphs.chain(6), nx.path_graph(6))
    assert nx.is_isomorphic(pb.graphs.ladder(5), nx.ladder_graph(5))
    assert pb.graphs.chain(4, domain="multinary", levels=4).nodes[0]["levels"] == 4
    a = pb.graphs.random_sparse(30, degree=4, seed=5)
    b = pb.graphs.random_sparse(30, degree=4, seed=5)
    assert sorted(a.edges) == sorted(b.edges) and set(dict(a.degree).values()) == {4}
    assert list(a.nodes) == list(range(30))
    er = pb.graphs.random_sparse(200, p=0.02, seed=2, role="hidden")
    assert er.number_of_nodes() == 200 and 200 < er.number_of_edges() < 600
    assert er.nodes[0]["role"] == "hidden"
    with pytest.raises(GraphError, match="even"):
        pb.graphs.random_sparse(5, degree=3)
    with pytest.raises(GraphError, match="probability"):
        pb.graphs.random_sparse(5, p=1.5)
    with pytest.raises(GraphError, match="role"):
        pb.graphs.chain(3, role="latent")
    with pytest.raises(GraphError):
        pb.graphs.chain(2, periodic=True)
