"""AIS / reverse AIS against exact log Z; evaluation; sampler diagnostics.

The exact engine is the oracle: AIS estimates must land within a few of their own
standard errors (plus a small allowance for the Jensen bias) of the exact log Z, and
within a fixed bound that a wrong importance weight would break.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgm_boltz as pb
from pgm_boltz.inference import ais as estimate
from pgm_boltz.inference import scores


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and immune to a loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomise(model, w_std: float, b_mean: float = 0.0, b_std: float = 1.0,
               seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g,
                                       dtype=torch.float64) * w_std)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g,
                                     dtype=torch.float64) * b_std + b_mean)
    return model


def _exact(model) -> float:
    with torch.no_grad():
        value = float(model.log_partition())
    torch.set_num_threads(1)  # numba's OpenMP layer, started by the exact engine, resets it
    return value


def _close(est, exact: float, allowance: float = 0.03, bound: float = 0.15) -> None:
    err = est.value - exact
    assert math.isfinite(est.stderr) and est.stderr > 0
    assert abs(err) < 4 * est.stderr + allowance, (est, exact)
    assert abs(err) < bound, (est, exact)


@pytest.fixture(scope="module")
def rbm20():
    return _randomise(pb.compile(pb.graphs.rbm(20, 8), seed=0), 0.5, seed=1)


# ---------------------------------------------------------------------------------------
# AIS against the exact log Z
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("collapse, backend", [(True, "numba"), (True, "torch"),
                                               (False, "torch")])
def test_ais_rbm_matches_exact(rbm20, collapse, backend):
    exact = _exact(rbm20)
    est = rbm20.log_partition(method="ais", n_chains=100, n_betas=500, seed=0,
                              progress=False, collapse=collapse, backend=backend)
    assert isinstance(est, pb.LogPartition)
    _close(est, exact)


def _mixed_two_level_rbm():
    """An RBM whose visible units mix binary and spin, with spin hidden units: every
    unit two-level, so the numba kernel's ``lo``/``step`` algebra is exercised."""
    G = pb.graphs.rbm(12, 6, hidden_domain="spin")
    for k in range(0, 12, 3):
        G.nodes[f"v{k}"]["domain"] = "spin"
    return _randomise(pb.compile(G, seed=0), 0.4, b_std=0.5, seed=12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_ais_two_level_domains_both_backends(backend):
    """Both backends on binary/spin units against the exact log Z: forward AIS from the
    data base and reverse AIS from exact draws (the schedule walked from 1 to 0). Few
    betas on purpose: both estimators must still land within their own error bars."""
    m = _mixed_two_level_rbm()
    exact = _exact(m)
    data = m.sample(500, seed=3)
    fwd = m.log_partition(method="ais", data=data, n_chains=200, n_betas=100, seed=2,
                          progress=False, backend=backend)
    _close(fwd, exact)
    rev = m.log_partition(method="reverse-ais", start="exact", n_chains=200, n_betas=100,
                          seed=3, progress=False, backend=backend)
    _close(rev, exact)


def test_numba_and_torch_backends_agree_in_distribution(rbm20):
    """Over seeds the two backends' estimates share one mean (they are the same
    estimator drawn with different random streams): a bias in either one's weights or
    moves would separate them. At 30 betas the Jensen bias (~0.1) is shared too."""
    exact = _exact(rbm20)
    vals = {b: np.array([rbm20.log_partition(method="ais", n_chains=50, n_betas=30, seed=s,
                                             progress=False, backend=b).value
                         for s in range(12)]) for b in ("numba", "torch")}
    se = math.sqrt(sum(v.var(ddof=1) / len(v) for v in vals.values()))
    assert abs(vals["numba"].mean() - vals["torch"].mean()) < 4 * se + 0.01, vals
    for v in vals.values():
        assert exact - 0.5 < v.mean() < exact + 0.05


def test_numba_kernel_matches_exact_on_a_larger_visible_layer():
    """784 × 8 RBM with the visible layer larger than the kernel's blocks of work and
    weak couplings (exact log Z by summing out the visible layer)."""
    m = _randomise(pb.compile(pb.graphs.rbm(300, 8), seed=0), 0.08, b_mean=-1.0, seed=13)
    exact = _exact(m)
    est = m.log_partition(method="ais", n_chains=100, n_betas=200, seed=0, progress=False,
                          backend="numba")
    _close(est, exact)


def test_numba_is_reproducible_across_threads(rbm20):
    """One random stream per chain: the same seed gives the same estimate whether the
    chains run in one thread or are split over two."""
    kw = dict(method="ais", n_chains=64, n_betas=2000, seed=5, progress=False,
              backend="numba")
    one = rbm20.log_partition(**kw)
    torch.set_num_threads(2)
    try:
        two = rbm20.log_partition(**kw)
    finally:
        torch.set_num_threads(1)
    assert one == two
    other = rbm20.log_partition(**{**kw, "seed": 6})
    assert other != one


def test_numba_progress_chunks_continue_the_walk(rbm20, monkeypatch):
    """With a progress bar the kernel runs the schedule in stretches; the chains' states
    and streams carry over, so the estimate is the one-call estimate (up to rounding)."""
    kw = dict(method="ais", n_chains=20, n_betas=300, seed=9, backend="numba")
    whole = rbm20.log_partition(progress=False, **kw)
    monkeypatch.setattr(estimate, "_KERNEL_CHUNK", 20 * 20 * 12 * 7)  # 7 steps a call
    parts = rbm20.log_partition(progress=True, **kw)
    assert parts.value == pytest.approx(whole.value, abs=1e-9)


def test_backend_choice_and_errors(rbm20):
    assert estimate._Annealer(rbm20, rbm20.bias, True, "auto").kernel is not None
    assert estimate._Annealer(rbm20, rbm20.bias, True, "torch").kernel is None
    big = pb.compile(pb.graphs.rbm(6, estimate._KERNEL_MAX_SUMMED + 1), seed=0)
    assert estimate._Annealer(big, big.bias, True, "auto").kernel is None  # torch wins
    assert estimate._Annealer(big, big.bias, True, "numba").kernel is not None
    multi = pb.compile(pb.graphs.rbm(4, 2, domain="multinary", levels=3), seed=0)
    tri = pb.compile(pb.graphs.triangular_lattice(2, 3), engine="chromatic-gibbs", seed=0)
    sparse = pb.compile(pb.graphs.lattice(2, 3), storage="sparse", seed=0)
    for model, kw in [(multi, {}), (tri, {}), (sparse, {}), (rbm20, {"collapse": False})]:
        with pytest.raises(pb.ArgumentError, match="backend='numba'"):
            model.log_partition(method="ais", n_betas=10, backend="numba", progress=False,
                                **kw)
    with pytest.raises(pb.ArgumentError, match="unknown backend"):
        rbm20.log_partition(method="ais", backend="jax", progress=False)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_non_finite_parameters_are_reported(backend):
    m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    with torch.no_grad():
        m.weight[0] = math.nan
    with pytest.raises(pb.DataError, match="non-finite"):
        m.log_partition(method="ais", n_betas=10, backend=backend, progress=False)


@pytest.mark.parametrize("domain", ["binary", "spin"])
def test_base_bias_is_the_data_fitted_independent_model(domain):
    """The base model's visible biases reproduce the data's means (clipped away from the
    domain's ends), hidden biases are 0."""
    m = pb.compile(pb.graphs.rbm(4, 2, domain=domain), dtype=torch.float64, seed=0)
    lo = -1.0 if domain == "spin" else 0.0
    v = torch.tensor([[1, 1, 1, lo], [1, lo, 1, lo], [lo, lo, 1, lo], [1, lo, 1, lo]],
                     dtype=torch.float64)
    b0 = estimate.base_bias(m, v)
    vi = torch.as_tensor(m.visible_index)
    mean = m.visible_domains.mean(b0[vi].unsqueeze(0))[0]
    span = 1.0 - lo
    expected = v.mean(0).clamp(lo + 1e-3 * span, 1.0 - 1e-3 * span)
    assert torch.allclose(mean, expected, atol=1e-12)
    assert (b0[torch.as_tensor(m.hidden_index)] == 0).all()


def test_ais_with_data_base(rbm20):
    exact = _exact(rbm20)
    data = rbm20.sample(300, seed=2)
    est = rbm20.log_partition(method="ais", n_chains=100, n_betas=500, seed=1,
                              data=data, progress=False)
    _close(est, exact)


def test_ais_is_reproducible(rbm20):
    a = rbm20.log_partition(method="ais", n_chains=20, n_betas=50, seed=7, progress=False)
    b = rbm20.log_partition(method="ais", n_chains=20, n_betas=50, seed=7, progress=False)
    assert a == b


def test_ais_dbm_three_layers():
    m = _randomise(pb.compile(pb.graphs.dbm([8, 6, 4]), seed=0), 0.6, seed=2)
    exact = _exact(m)
    for collapse in (True, False):
        est = m.log_partition(method="ais", n_chains=100, n_betas=500, seed=3,
                              progress=False, collapse=collapse)
        _close(est, exact)


def test_ais_non_bipartite_chromatic_graph():
    G = pb.graphs.triangular_lattice(3, 4, domain="spin")
    m = _randomise(pb.compile(G, engine="chromatic-gibbs", seed=0), 0.4, b_std=0.3, seed=3)
    assert len(m.plan.blocks) >= 3
    est = m.log_partition(method="ais", n_chains=100, n_betas=500, seed=4, progress=False)
    _close(est, _exact(m))


def test_ais_sparse_lattice_with_hidden_and_multinary():
    G = pb.graphs.lattice(3, 4, domain="binary")
    for k, node in enumerate(list(G.nodes)):
        if k % 3 == 0:
            G.nodes[node]["role"] = "hidden"
        if k % 4 == 1:
            G.nodes[node]["domain"] = "multinary"
            G.nodes[node]["levels"] = 4
    m = _randomise(pb.compile(G, storage="sparse", seed=0), 0.8, seed=4)
    assert m.plan.storage == "sparse"
    exact = _exact(m)
    for collapse in (True, False):
        est = m.log_partition(method="ais", n_chains=100, n_betas=300, seed=5,
                              progress=False, collapse=collapse)
        _close(est, exact)


def test_wrong_weights_would_be_caught(rbm20):
    """A sanity check of the tolerance: too few betas from a poor base visibly miss."""
    exact = _exact(rbm20)
    est = rbm20.log_partition(method="ais", n_chains=100, n_betas=500, seed=0,
                              progress=False)
    # dropping the closed-form hidden sums' base term (log 2 per hidden unit) is an
    # error the bound must reject
    assert abs(est.value - 8 * math.log(2) - exact) > 0.15


# ---------------------------------------------------------------------------------------
# reverse AIS and the bracket
# ---------------------------------------------------------------------------------------


def test_reverse_ais_exact_start_matches(rbm20):
    exact = _exact(rbm20)
    est = rbm20.log_partition(method="reverse-ais", start="exact", n_chains=100,
                              n_betas=500, seed=0, progress=False)
    _close(est, exact)


def test_reverse_ais_from_data_matches(rbm20):
    exact = _exact(rbm20)
    data = rbm20.sample(500, seed=11)  # data the model fits exactly
    est = rbm20.log_partition(method="reverse-ais", data=data, n_chains=100, n_betas=500,
                              seed=1, progress=False)
    _close(est, exact, allowance=0.05)


def test_bracket_contains_exact_log_z():
    """With few betas and the full state carried (collapse=False) the two Jensen biases
    dominate: averaged over seeds AIS lands below the exact log Z and reverse AIS above."""
    m = _randomise(pb.compile(pb.graphs.rbm(16, 8), seed=0), 1.5, seed=6)
    exact = _exact(m)
    data = m.sample(400, seed=0)
    lows, highs = [], []
    for seed in range(12):
        br = estimate.log_partition_bracket(m, data, n_chains=50, n_betas=5, seed=seed,
                                            progress=False, collapse=False)
        assert isinstance(br, pb.Bracket)
        lows.append(br.lower.value)
        highs.append(br.upper.value)
    assert np.mean(lows) < exact - 0.3
    assert np.mean(highs) > exact + 0.3


# ---------------------------------------------------------------------------------------
# log_prob and evaluate
# ---------------------------------------------------------------------------------------


def test_log_prob_accepts_estimate(rbm20):
    v = rbm20.sample(5, seed=0)
    est = pb.LogPartition(3.5, 0.1)
    expected = -rbm20.free_energy(v) - 3.5
    assert torch.allclose(rbm20.log_prob(v, log_partition=est), expected)


def test_evaluate_exact_when_feasible(rbm20):
    data = rbm20.sample(50, seed=3)
    ev = pb.evaluate(rbm20, data, progress=False)
    assert ev.nll_method == "exact" and ev.nll_stderr == 0.0
    nll = float(-rbm20.log_prob(data).detach().double().mean())
    assert ev.nll == pytest.approx(nll, abs=1e-4)
    assert ev.nll_bracket is None and ev.n_rows == 50
    assert "exact" in str(ev) and set(ev.as_dict()) >= {"nll", "pseudo_log_likelihood"}


def test_evaluate_uses_ais_when_not_feasible(rbm20):
    big = pb.compile(pb.graphs.rbm(20, 8), max_exact_states=2**4, seed=0)
    assert not big.plan.exact_feasible
    big.load_state_dict(rbm20.state_dict())
    data = rbm20.sample(200, seed=4)
    with pytest.raises(pb.IntractableError):
        pb.evaluate(big, data, method="exact", progress=False)
    ev = pb.evaluate(big, data, n_chains=100, n_betas=500, seed=0, progress=False)
    assert ev.nll_method == "ais"
    exact_nll = float(-rbm20.log_prob(data).detach().double().mean())
    assert abs(ev.nll - exact_nll) < 4 * ev.nll_stderr + 0.05
    lo, hi = ev.nll_bracket
    assert lo == pytest.approx(ev.nll)
    assert abs(hi - exact_nll) < 4 * ev.log_partition_bracket.upper.stderr + 0.05
    given = pb.evaluate(big, data, log_partition=_exact(rbm20), progress=False)
    assert given.nll_method == "given"
    assert given.nll == pytest.approx(exact_nll, abs=1e-4)


def _brute_pll(model, v: torch.Tensor) -> torch.Tensor:
    """log P(v_i | v_-i) by exact log P over every level of unit i."""
    out = torch.empty(v.shape, dtype=torch.float64)
    for i, d in enumerate(model.visible_domains.domains):
        codes = torch.as_tensor(d.codes())
        lps = []
        for c in codes:
            w = v.clone()
            w[:, i] = c
            lps.append(model.log_prob(w).double())
        lps = torch.stack(lps)
        out[:, i] = model.log_prob(v).double() - torch.logsumexp(lps, 0)
    return out


@pytest.mark.parametrize("graph", [
    lambda: pb.graphs.rbm(5, 3),
    lambda: pb.graphs.rbm(4, 3, domain="spin"),
    lambda: pb.graphs.rbm(4, 2, domain="multinary", levels=3),
    lambda: pb.graphs.fully_connected(4, 2),  # hidden-hidden edges: enumerated path
    lambda: pb.graphs.fully_connected(5),  # no hidden units
])
def test_pseudo_log_likelihood_against_brute_force(graph):
    m = _randomise(pb.compile(graph(), dtype=torch.float64, seed=0), 0.7, seed=8)
    v = m.sample(12, seed=5)
    pll = scores.pseudo_log_likelihood(m, v)
    assert pll.shape == v.shape
    assert torch.allclose(pll.double(), _brute_pll(m, v), atol=1e-8)


def test_reconstruction_error_rbm():
    m = _randomise(pb.compile(pb.graphs.rbm(6, 4), dtype=torch.float64, seed=0), 0.7,
                   seed=9)
    v = m.sample(30, seed=0).double()
    W = m.weight.detach().view(6, 4)
    b, c = m.bias.detach()[:6], m.bias.detach()[6:]
    h = torch.sigmoid(c + v @ W)
    rec = torch.sigmoid(b + h @ W.t())
    expected = float(((rec - v) ** 2).mean())
    assert scores.reconstruction_error(m, v) == pytest.approx(expected, rel=1e-10)
    ev = pb.evaluate(m, v, progress=False)
    assert ev.reconstruction_error == pytest.approx(expected, rel=1e-10)
    assert ev.pseudo_log_likelihood == pytest.approx(
        float(scores.pseudo_log_likelihood(m, v).sum(-1).mean()), rel=1e-10)


# ---------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------


def test_diagnostics_iid_and_correlated():
    g = torch.Generator().manual_seed(0)
    iid = torch.randn(4, 500, generator=g, dtype=torch.float64)
    d = pb.diagnostics(iid)
    assert 1400 < float(d.ess["x"]) < 2700
    assert abs(float(d.r_hat["x"]) - 1.0) < 0.02 and d.converged
    # AR(1) with rho = 0.95: ESS ≈ n (1 - rho) / (1 + rho) ≈ 205 of n = 8000 draws
    rho = 0.95
    x = torch.zeros(4, 2000, dtype=torch.float64)
    noise = torch.randn(4, 2000, generator=g, dtype=torch.float64)
    for t in range(1, 2000):
        x[:, t] = rho * x[:, t - 1] + math.sqrt(1 - rho ** 2) * noise[:, t]
    d = pb.diagnostics(x)
    assert 100 < float(d.ess["x"]) < 400
    # chains stuck in two modes
    stuck = iid.clone()
    stuck[:2] += 3.0
    d = pb.diagnostics({"m": stuck})
    assert float(d.r_hat["m"]) > 1.1 and not d.converged


def test_diagnostics_of_model_chains():
    m = _randomise(pb.compile(pb.graphs.rbm(6, 4), seed=0), 0.3, seed=10)
    d = pb.diagnostics(m, n_chains=4, steps=300, burn_in=20, seed=0)
    assert d.ess["energy"].shape == () and d.ess["visible"].shape == (6,)
    assert d.max_r_hat < 1.1 and d.min_ess > 100
    assert "energy" in str(d)
    # a cold ferromagnet: chains freeze in the + and - states
    G = pb.graphs.lattice(4, 4, coupling=2.0)
    ferro = pb.compile(G, engine="block-gibbs", seed=0)
    d = pb.diagnostics(ferro, n_chains=6, steps=100, burn_in=20, seed=1)
    assert float(d.r_hat["visible"].nan_to_num(0).max()) > 1.1


# ---------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error", [
    (dict(method="nope"), pb.ArgumentError),
    (dict(n_chains=1), pb.ArgumentError),
    (dict(n_chains=2.5), pb.ArgumentError),
    (dict(n_betas=1), pb.ArgumentError),
    (dict(betas=[0.1, 1.0]), pb.ArgumentError),
    (dict(betas=[0.0, 0.6, 0.5, 1.0]), pb.ArgumentError),
    (dict(betas=[0.0, 1.0], n_betas=10), pb.ArgumentError),
    (dict(seed=-1), pb.ArgumentError),
    (dict(method="reverse-ais"), pb.ArgumentError),
    (dict(start="somewhere"), pb.ArgumentError),
    (dict(data=[[0, 1]]), pb.DataError),
])
def test_bad_arguments(rbm20, kwargs, error):
    method = kwargs.pop("method", "ais")
    with pytest.raises(error):
        rbm20.log_partition(method=method, progress=False, **kwargs)


def test_bad_diagnostics_and_evaluate(rbm20):
    with pytest.raises(pb.ArgumentError):
        pb.diagnostics(torch.randn(10))
    with pytest.raises(pb.ArgumentError):
        pb.diagnostics(torch.randn(3, 2))
    with pytest.raises(pb.ArgumentError):
        pb.diagnostics({"a": torch.randn(2, 10), "b": torch.randn(3, 10)})
    with pytest.raises(pb.ArgumentError):
        pb.diagnostics(rbm20, steps=0)
    with pytest.raises(pb.DataError):
        pb.evaluate(rbm20, [[0, 1]], progress=False)
    with pytest.raises(pb.ArgumentError):
        pb.evaluate(rbm20, rbm20.sample(3, seed=0), method="magic", progress=False)


def test_reverse_exact_start_needs_feasible_plan():
    m = pb.compile(pb.graphs.rbm(20, 8), max_exact_states=2**4, seed=0)
    with pytest.raises(pb.IntractableError):
        m.log_partition(method="reverse-ais", start="exact", progress=False)


# ---------------------------------------------------------------------------------------
# slower / device checks
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ais_trained_digits_rbm_default_schedule():
    train, _ = pb.datasets.load_digits()
    m = pb.compile(pb.graphs.rbm(64, 8), seed=0)
    m.fit(train, method="exact", epochs=20, lr=0.1, seed=0, progress=False)
    exact = _exact(m)
    br = estimate.log_partition_bracket(m, train, n_chains=100, n_betas=3000, seed=0,
                                        progress=False)
    _close(br.lower, exact, bound=0.1)
    _close(br.upper, exact, allowance=0.05, bound=0.1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ais_cuda_matches_exact():
    m = _randomise(pb.compile(pb.graphs.rbm(20, 8), seed=0), 0.5, seed=1)
    exact = _exact(m)
    mc = pb.compile(pb.graphs.rbm(20, 8), device="cuda", seed=0)
    mc.load_state_dict(m.state_dict())
    est = mc.log_partition(method="ais", n_chains=200, n_betas=500, seed=0, progress=False)
    _close(est, exact)
    G = pb.graphs.triangular_lattice(3, 4, domain="spin")
    m2 = _randomise(pb.compile(G, seed=0), 0.4, b_std=0.3, seed=3)
    m2c = pb.compile(G, device="cuda", seed=0)
    m2c.load_state_dict(m2.state_dict())
    est = m2c.log_partition(method="reverse-ais", start="exact", n_chains=200, n_betas=500,
                            seed=0, progress=False)
    _close(est, _exact(m2))
