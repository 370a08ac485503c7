"""fit's fused CD/PCD epochs (training/fused.py) against the autograd + torch.optim path.

A saturated RBM (biases of +-60 fix every conditional, so draws and means are 0 or 1 and
the estimate is deterministic) trained with ``optimizer="sgd"`` (fused: the numba kernel,
or the torch path when forced) and with a ``torch.optim.SGD`` instance (the surrogate,
autograd and the optimiser, step by step) must end with the same parameters, momentum
and weight decay included, in binary and spin domains. Then: which path fit takes,
seeded runs repeat and do not depend on the thread count, PCD chains continue across
calls, divergence restores the last good epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import saturated_rbm

import pgm_boltz as pb
import pgm_boltz.training.fused as fused_mod
from pgm_boltz.training.contrastive import CDObjective, PCDObjective
from pgm_boltz.training.fit import _batch_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int, n_v: int, domain: str) -> np.ndarray:
    x = (np.random.default_rng(1).random((n, n_v)) < 0.4).astype(np.float64)
    return 2 * x - 1 if domain == "spin" else x


def _train(model, data, method, optimizer, **kw):
    if optimizer == "torch":
        optimizer = torch.optim.SGD([model.bias, model.weight], lr=0.01, momentum=0.9,
                                    weight_decay=0.05)
    extra = {"n_chains": 6} if method == "pcd" else {}
    return model.fit(data, method=method, epochs=3, lr=0.01, batch_size=7, momentum=0.9,
                     weight_decay=0.05, optimizer=optimizer, init_bias="keep",
                     progress=False, seed=0, **extra, **kw)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("domain", ["binary", "spin"])
@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_fused_epochs_equal_the_autograd_path(method, domain, backend, monkeypatch):
    monkeypatch.setattr(fused_mod, "choose_cd_backend", lambda *a, **k: backend)
    data = _data(25, 5, domain)  # batches of 7, 7, 7, 4
    fused, plain = saturated_rbm(domain), saturated_rbm(domain)
    h1 = _train(fused, data, method, "sgd")
    h2 = _train(plain, data, method, "torch")
    for a, b in ((fused.weight, plain.weight), (fused.bias, plain.bias)):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-10)
    assert [h["recon_error"] for h in h1] == pytest.approx([h["recon_error"] for h in h2])
    start = saturated_rbm(domain)
    assert (fused.weight - start.weight).abs().max() > 1e-3  # training moved W


def test_fit_takes_the_fused_path_only_where_it_applies():
    m = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0)
    train = m.encode_data((np.random.default_rng(0).random((20, 6)) < 0.5).astype(float))
    plan = _batch_plan(20, 5, None)
    obj = PCDObjective(m, train=train, batch_size=5, generator=torch.Generator())
    runner = obj.fused(lr=0.1, momentum=0.0, weight_decay=0.0, batches=plan)
    assert isinstance(runner, fused_mod.FusedRBM) and runner.backend == "numba"
    assert obj.chains is not None and obj.chains.shape == (100, 9)
    big = pb.compile(pb.graphs.rbm(784, 500), seed=0)
    big_train = torch.zeros(200, 784)
    r2 = CDObjective(big, train=big_train, batch_size=100).fused(
        lr=0.1, momentum=0.0, weight_decay=0.0, batches=_batch_plan(200, 100, None))
    assert r2.backend == "torch"
    # another sampler, a DBM, a finite (value-table) domain: no fused runner
    assert PCDObjective(m, train=train, sampler="sequential").fused(
        lr=0.1, momentum=0.0, weight_decay=0.0, batches=plan) is None
    dbm = pb.compile(pb.graphs.dbm([4, 3, 2]), engine="block-gibbs", seed=0)
    assert PCDObjective(dbm, train=dbm.encode_data(np.zeros((4, 4)))).fused(
        lr=0.1, momentum=0.0, weight_decay=0.0, batches=plan) is None
    G = pb.graphs.rbm(3, 2)
    for n, a in G.nodes(data=True):
        if a["role"] == "visible":
            G.nodes[n].update(domain="finite", values=[-1.0, 0.0, 2.0])
    fin = pb.compile(G, engine="block-gibbs", seed=0)
    assert PCDObjective(fin, train=fin.encode_data(np.zeros((4, 3)))).fused(
        lr=0.1, momentum=0.0, weight_decay=0.0, batches=plan) is None


def test_seeded_fused_runs_repeat_whatever_the_thread_count():
    data = (np.random.default_rng(2).random((60, 12)) < 0.3).astype(float)

    def run(threads: int, seed: int):
        torch.set_num_threads(threads)
        m = pb.compile(pb.graphs.rbm(12, 5), engine="block-gibbs", seed=0)
        h = m.fit(data, method="pcd", epochs=3, batch_size=10, lr=0.1, momentum=0.5,
                  seed=seed, progress=False)
        return m.weight.detach().clone(), m.persistent_chains.clone(), h

    a, b, c = run(1, 0), run(2, 0), run(1, 1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert not torch.equal(a[0], c[0])


def test_pcd_chains_continue_and_move_across_fits():
    data = (np.random.default_rng(3).random((40, 8)) < 0.4).astype(float)
    m = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=0)
    m.fit(data, method="pcd", epochs=1, batch_size=10, n_chains=16, progress=False, seed=0)
    chains = m.persistent_chains
    before = chains.clone()
    m.fit(data, method="pcd", epochs=1, batch_size=10, n_chains=16, progress=False, seed=1)
    assert m.persistent_chains is chains and not torch.equal(before, chains)
    vals = torch.unique(chains)
    assert set(vals.tolist()) <= {0.0, 1.0}


def test_divergence_restores_the_last_good_epoch():
    m = pb.compile(pb.graphs.rbm(4, 3), engine="block-gibbs", seed=0)
    data = (np.random.default_rng(0).random((40, 4)) < 0.5).astype(float)
    m.fit(data, method="cd", epochs=2, batch_size=5, lr=0.1, progress=False, seed=0)
    good = [p.detach().clone() for p in (m.bias, m.weight)]
    with pytest.raises(pb.DivergenceError, match="last good epoch"):
        m.fit(data, method="cd", epochs=3, batch_size=5, lr=3e38, progress=False, seed=0)
    assert torch.isfinite(m.weight).all() and torch.isfinite(m.bias).all()
    assert torch.equal(m.weight.detach(), good[1]) and torch.equal(m.bias.detach(), good[0])


@pytest.mark.parametrize("kind", ["binary", "multinary-spin"])
def test_kernel_reconstruction_error_matches_the_definition(kind):
    from pgm_boltz.inference.scores import reconstruction_error_values

    G = pb.graphs.rbm(6, 3) if kind == "binary" else pb.graphs.rbm(
        5, 3, domain="multinary", levels=4, hidden_domain="spin")
    m = pb.compile(G, engine="block-gibbs", seed=0, init_scale=1.0)
    with torch.no_grad():
        m.bias.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    top = 2 if kind == "binary" else 4
    v = m.encode_data(np.random.default_rng(0).integers(0, top, (50, m.n_visible)))
    obj = PCDObjective(m, train=v, generator=torch.Generator())
    runner = obj.fused(lr=0.1, momentum=0.0, weight_decay=0.0,
                       batches=_batch_plan(50, 10, None))
    assert runner.backend == "numba"
    assert runner.recon(v) == pytest.approx(reconstruction_error_values(m, v), rel=1e-6)
    assert obj._recon(v) == runner.recon(v)


def test_models_with_precisions_take_the_autograd_path_and_score_right():
    """Fused epochs know nothing of quadratic self-terms: a multinary RBM with precisions
    must take the generic path (its precisions move); the two-matmul reconstruction error
    and the block free energy include the precisions (generic error; brute-force sum over
    the hidden states)."""
    from pgm_boltz.training.contrastive import _RBMLayout

    G = pb.graphs.rbm(3, 2, domain="multinary", levels=4, precision=2.0)
    m = pb.compile(G, engine="block-gibbs", dtype=torch.float64, seed=0)
    assert not fused_mod.fusable(m, _RBMLayout(m), "gibbs")
    q0 = m.log_precision.detach().clone()
    codes = np.random.default_rng(0).integers(0, 4, (40, 3))
    m.fit(codes, method="pcd", epochs=2, lr=0.1, batch_size=10, seed=0, progress=False)
    assert not torch.equal(q0, m.log_precision.detach())
    # the two-matmul reconstruction error of the history equals the generic one
    from pgm_boltz.inference.scores import reconstruction_error_values

    generic = reconstruction_error_values(m, m.encode_data(codes, "v"))
    assert abs(m.history[-1]["recon_error"] - generic) < 1e-10
    # free energy against the sum over the 4 hidden states (binary hidden units)
    v = m.encode_data(codes[:5], "v")
    q = torch.exp(m.log_precision).detach()
    qv = m.precisions_at("visible", q)
    W = m.weight.detach().view(3, 2)
    b = m.bias.detach()
    bv, bh = b[m.visible_index], b[m.hidden_index]
    hs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    e = (-(v @ W @ hs.t()) - (v @ bv)[:, None] - (hs @ bh)[None, :]
         + (0.5 * qv * v * v).sum(-1)[:, None])
    expected = -torch.logsumexp(-e, dim=1)
    assert torch.allclose(m.free_energy(codes[:5]).detach(), expected, atol=1e-10)
