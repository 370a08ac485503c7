"""CD-k and PCD training (pgm_boltz.training.contrastive) against the exact engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pgm_boltz as pb
from pgm_boltz.inference.scores import reconstruction_error_values as reconstruction_error
from pgm_boltz.training import exact_nll
from pgm_boltz.training.contrastive import CDObjective, PCDObjective

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _teacher_data(n_visible: int, n_prototypes: int, n: int, seed: int) -> np.ndarray:
    """Noisy copies (10% of bits flipped) of a few random binary prototypes: data with
    strong pairwise structure that independent units cannot model."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 2, size=(n_prototypes, n_visible))
    rows = protos[rng.integers(0, n_prototypes, size=n)]
    flip = rng.random(rows.shape) < 0.1
    return np.where(flip, 1 - rows, rows).astype(np.float64)


def _nll(model, data) -> float:
    with torch.no_grad():
        return float(exact_nll(model, model.encode_data(data)))


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_cd_and_pcd_lower_the_exact_nll(method: str) -> None:
    data = _teacher_data(8, 3, 400, seed=0)
    model = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=1)
    before = _nll(model, data)
    hist = model.fit(data, method=method, epochs=25, lr=0.1, batch_size=20,
                     optimizer="sgd", momentum=0.5, seed=0, progress=False)
    assert [h["epoch"] for h in hist] == list(range(1, 26))
    assert {"recon_error", "nll"} <= set(hist[-1])
    # the data's own log-odds already help (init_bias); learning must do clearly better
    assert hist[-1]["nll"] < hist[0]["nll"] - 0.3
    assert hist[-1]["nll"] < before - 0.5
    assert hist[-1]["nll"] == pytest.approx(_nll(model, data), abs=1e-4)
    assert hist[-1]["recon_error"] < hist[0]["recon_error"]


def test_dbm_training_with_clamped_positive_phase_lowers_nll() -> None:
    data = _teacher_data(6, 3, 200, seed=2)
    model = pb.compile(pb.graphs.dbm([6, 4, 2]), engine="block-gibbs", seed=0,
                       init_scale=0.1)
    obj = PCDObjective(model, train=model.encode_data(data), batch_size=10)
    assert not obj.analytic and not obj.layout.ok  # the clamped-sampling path
    hist = model.fit(data, method="pcd", epochs=15, lr=0.2, batch_size=10,
                     optimizer="sgd", momentum=0.5, seed=0, progress=False,
                     validation_data=data[:50])
    assert hist[-1]["nll"] < hist[0]["nll"] - 0.3
    assert "val_nll" in hist[-1]


def test_spin_lattice_without_hidden_units_trains() -> None:
    rng = np.random.default_rng(0)
    base = rng.choice([-1.0, 1.0], size=(1, 9))
    sign = rng.choice([-1.0, 1.0], size=(200, 1))  # the whole pattern or its negative
    data = np.where(rng.random((200, 9)) < 0.9, base, -base) * sign
    model = pb.compile(pb.graphs.lattice(3, 3, domain="spin"), engine="block-gibbs", seed=0)
    hist = model.fit(data, method="cd", k=2, epochs=15, lr=0.05, batch_size=20,
                     optimizer="sgd", seed=0, progress=False)
    assert hist[-1]["nll"] < hist[0]["nll"] - 0.2


def _exact_grad(model, values) -> torch.Tensor:
    model.zero_grad()
    exact_nll(model, values).backward()
    g = torch.cat([model.bias.grad, model.weight.grad]).clone()
    model.zero_grad()
    return g


def _objective_grad(model, obj, values, seed: int) -> torch.Tensor:
    model.zero_grad()
    obj.loss(values, torch.Generator().manual_seed(seed)).backward()
    g = torch.cat([model.bias.grad, model.weight.grad]).clone()
    model.zero_grad()
    return g


@pytest.mark.parametrize("graph", ["rbm", "dbm"])
def test_gradient_estimates_point_along_the_exact_gradient(graph: str) -> None:
    """With many chains the PCD estimate (chains run to equilibrium) and the CD-1
    estimate have cosine > 0.9 with the exact gradient of mean NLL; the surrogate's
    value is mean E(pos) - mean E(neg)."""
    G = pb.graphs.rbm(6, 3) if graph == "rbm" else pb.graphs.dbm([5, 3, 2])
    model = pb.compile(G, engine="block-gibbs", seed=0)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g) * 0.5)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g) * 0.3)
    data = (torch.rand(20000, model.n_visible, generator=g) < 0.3).float()
    values = model.encode_data(data)
    exact = _exact_grad(model, values)
    pcd = PCDObjective(model, train=values, n_chains=20000, k=30, positive_sweeps=30)
    est = _objective_grad(model, pcd, values, seed=1)
    cos = float(torch.nn.functional.cosine_similarity(exact, est, dim=0))
    print(f"cosine with the exact gradient: PCD {cos:.4f}", end=" ")
    assert cos > 0.97, cos
    cd = CDObjective(model, train=values, k=1, positive_sweeps=30)
    cos_cd = float(torch.nn.functional.cosine_similarity(
        exact, _objective_grad(model, cd, values, seed=2), dim=0))
    print(f"CD-1 {cos_cd:.4f}")
    assert cos_cd > 0.9, cos_cd
    # a sign error (data and model sides swapped) points the other way
    assert float(torch.nn.functional.cosine_similarity(exact, -est, dim=0)) < -0.9


def test_surrogate_value_is_the_energy_difference() -> None:
    model = pb.compile(pb.graphs.rbm(5, 3), engine="block-gibbs", seed=0)
    with torch.no_grad():
        model.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    v = (torch.rand(7, 5, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    obj = CDObjective(model, train=v)
    # the generic path's surrogate equals mean E(x_pos) - mean E(x_neg) on joint states
    xp = torch.cat([v, torch.rand(7, 3)], 1)
    xn = (torch.rand(9, 8) < 0.5).float()
    loss = obj._surrogate(obj._stats(xp), obj._stats(xn))
    with torch.no_grad():
        ref = model.energy(xp).mean() - model.energy(xn).mean()
    assert float(loss.detach()) == pytest.approx(float(ref), abs=1e-5)


def testpersistent_chains_and_options() -> None:
    data = _teacher_data(6, 2, 60, seed=3)
    model = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0)
    model.fit(data, method="pcd", n_chains=37, batch_size=10, epochs=2, seed=0,
              progress=False, optimizer="sgd")
    assert model.persistent_chains.shape == (37, 9)
    chains = model.persistent_chains
    model.fit(data, method="pcd", n_chains=37, batch_size=10, epochs=1, seed=1,
              progress=False, optimizer="sgd")
    assert model.persistent_chains is chains  # continued, not restarted
    assert len(model.history) == 3
    h = model.fit(data, method="pcd", epochs=1, progress=False, monitor_nll=False)
    assert "nll" not in h[-1] and "recon_error" in h[-1]
    assert PCDObjective(model, train=model.encode_data(data), batch_size=10).n_chains == 100
    big = model.encode_data(_teacher_data(6, 2, 250, seed=3))
    assert PCDObjective(model, train=big, batch_size=200).n_chains == 200
    assert PCDObjective(model, train=big, batch_size=None).n_chains == 250


def test_no_exact_nll_over_the_threshold() -> None:
    model = pb.compile(pb.graphs.rbm(12, 12), max_exact_states=2**6, seed=0)
    assert model.plan.engine == "block-gibbs" and not model.plan.exact_feasible
    data = _teacher_data(12, 2, 50, seed=4)
    h = model.fit(data, method="pcd", epochs=2, progress=False, validation_data=data[:10])
    assert "nll" not in h[-1] and "val_recon_error" in h[-1]
    assert h[-1]["method"] == "pcd"
    assert model.fit(data, epochs=1, progress=False)[-1]["method"] == "pcd"  # auto


@pytest.mark.parametrize("options", [
    {"k": 0}, {"k": 1.5}, {"n_chains": 0}, {"positive_sweeps": 0}, {"monitor_nll": "yes"},
    {"chains": 10}, {"n_chain": 5},
])
def test_bad_options_raise_argument_error(options: dict) -> None:
    model = pb.compile(pb.graphs.rbm(3, 2), engine="block-gibbs", seed=0)
    with pytest.raises(pb.ArgumentError):
        model.fit([[0, 1, 1]], method="pcd", epochs=1, progress=False, **options)


def test_cd_rejects_n_chains() -> None:
    model = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    with pytest.raises(pb.ArgumentError, match="n_chains"):
        model.fit([[0, 1, 1]], method="cd", n_chains=4, epochs=1, progress=False)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_divergence_stops_and_keeps_finite_parameters(method: str) -> None:
    model = pb.compile(pb.graphs.rbm(4, 3), engine="block-gibbs", seed=0)
    data = (np.random.default_rng(0).random((40, 4)) < 0.5).astype(float)
    with pytest.raises(pb.DivergenceError, match="diverged"):
        model.fit(data, method=method, lr=3e38, epochs=20, batch_size=5, optimizer="sgd",
                  progress=False, seed=0)
    assert torch.isfinite(model.weight).all() and torch.isfinite(model.bias).all()


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_seeded_training_is_reproducible(method: str) -> None:
    data = _teacher_data(6, 2, 80, seed=5)

    def run(seed: int):
        m = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0)
        h = m.fit(data, method=method, epochs=3, batch_size=16, seed=seed, progress=False)
        return m.weight.detach().clone(), h

    (w1, h1), (w2, h2), (w3, _) = run(0), run(0), run(1)
    assert torch.equal(w1, w2) and h1 == h2
    assert not torch.equal(w1, w3)


def test_reconstruction_error_matches_definition() -> None:
    model = pb.compile(pb.graphs.rbm(5, 3), seed=0)
    with torch.no_grad():
        model.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    v = (torch.rand(11, 5, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    W = model.weight.detach().view(5, 3)
    h = torch.sigmoid(v @ W + model.bias[5:].detach())
    rec = torch.sigmoid(h @ W.t() + model.bias[:5].detach())
    assert reconstruction_error(model, v) == pytest.approx(float(((v - rec) ** 2).mean()),
                                                           rel=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pcd_on_cuda_lowers_nll() -> None:
    data = _teacher_data(8, 3, 400, seed=0)
    model = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", device="cuda", seed=1)
    hist = model.fit(data, method="pcd", epochs=25, lr=0.1, batch_size=20,
                     optimizer="sgd", momentum=0.5, seed=0, progress=False)
    assert model.weight.device.type == "cuda"
    assert hist[-1]["nll"] < hist[0]["nll"] - 0.3
    v = model.sample(50, steps=20, seed=0)
    assert v.device.type == "cuda" and v.shape == (50, 8)


# ---------------------------------------------------------------------------------------
# centering
# ---------------------------------------------------------------------------------------

def test_centred_statistics_and_the_sgd_step() -> None:
    """``_centred`` equals the explicit ``(V-μ)^T (w (H-λ))``; one SGD step through the
    surrogate and ``after_step`` moves (W, b, c) by lr times the centred gradient
    ``(S_c, dv - S_c λ, dh - S_c^T μ)`` of Melchior et al."""
    model = pb.compile(pb.graphs.rbm(5, 3), engine="block-gibbs", seed=0)
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(40, 5, generator=g) < 0.8).float()
    obj = PCDObjective(model, train=train, n_chains=12, centering=True)
    V = (torch.rand(22, 5, generator=g) < 0.7).float()
    H = torch.rand(22, 3, generator=g)
    w = obj._row_weights(10, 12)
    S, dv, dh = V.t() @ (H * w[:, None]), w @ V, w @ H
    Sc = obj._centred(S, dv, dh, H[:10])
    mu, lam0 = train.mean(0), H[:10].mean(0)
    torch.testing.assert_close(Sc, (V - mu).t() @ ((H - lam0) * w[:, None]))
    torch.testing.assert_close(obj._offsets[1], lam0)   # slid towards the same means
    # one step: the statistics the surrogate used, from the same generator, replayed
    obj2 = PCDObjective(model, train=train, n_chains=12, centering=True)
    batch = train[:10]
    W0, b0 = model.weight.detach().clone().view(5, 3), model.bias.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    obj2.loss(batch, torch.Generator().manual_seed(1)).backward()
    gW = -model.weight.grad.view(5, 3).clone()
    gb, gc = -model.bias.grad[:5].clone(), -model.bias.grad[5:].clone()
    # the offsets the step used (after_step slides λ once it has mapped the step back)
    mu2, lam2 = obj2._offsets[0].clone(), obj2._offsets[1].clone()
    opt.step()
    obj2.after_step()
    with torch.no_grad():
        dW = model.weight.view(5, 3) - W0
        torch.testing.assert_close(dW, 0.5 * gW)
        torch.testing.assert_close(model.bias[:5] - b0[:5], 0.5 * (gb - gW @ lam2))
        torch.testing.assert_close(model.bias[5:] - b0[5:], 0.5 * (gc - gW.t() @ mu2))


def test_centering_learns_uncentred_data_to_the_exact_optimum() -> None:
    """Data with visible means near 0.85: after 30 epochs centred PCD (Adam, the autograd
    path) is clearly ahead of plain PCD with the same steps, and 60 more epochs bring it
    within 0.05 nats of exact maximum likelihood on the same RBM (the same fixed
    points)."""
    rng = np.random.default_rng(3)
    protos = np.array([[1, 1, 1, 1, 0, 1, 1, 1], [1, 0, 1, 1, 1, 1, 1, 0],
                       [1, 1, 0, 1, 1, 1, 0, 1]])
    rows = protos[rng.integers(0, 3, 600)]
    data = np.where(rng.random(rows.shape) < 0.05, 1 - rows, rows).astype(float)
    ml = pb.compile(pb.graphs.rbm(8, 4), seed=0)
    ml.fit(data, method="exact", epochs=400, lr=0.05, progress=False, seed=0)
    best = _nll(ml, data)
    models, out = {}, {}
    opts = dict(method="pcd", epochs=30, lr=0.01, optimizer="adam", batch_size=20,
                n_chains=100, seed=0, progress=False)
    for centering in (True, False):
        models[centering] = m = pb.compile(pb.graphs.rbm(8, 4), engine="block-gibbs", seed=0)
        m.fit(data, centering=centering, **opts)
        out[centering] = _nll(m, data)
    print(f"exact ML {best:.4f}, 30 epochs: centred PCD {out[True]:.4f}, plain PCD "
          f"{out[False]:.4f}", end=" ")
    assert out[True] < out[False] - 0.05
    models[True].fit(data, centering=True, **{**opts, "epochs": 60})
    final = _nll(models[True], data)
    print(f"90 epochs centred {final:.4f}")
    assert final < best + 0.05


def test_centering_needs_an_rbm() -> None:
    """Centring takes any sampler on an RBM (PT-PCD here) and refuses other graphs."""
    data = [[0, 1, 1], [1, 1, 0]]
    with pytest.raises(pb.ArgumentError, match="centering"):
        pb.compile(pb.graphs.dbm([3, 2, 2]), engine="block-gibbs", seed=0).fit(
            data, method="pcd", epochs=1, progress=False, centering=True)
    h = pb.compile(pb.graphs.rbm(3, 2), engine="block-gibbs", seed=0).fit(
        data, method="pcd", epochs=2, progress=False, centering=True, sampler="tempering",
        sampler_options={"n_replicas": 3}, n_chains=10)
    assert "swap_rate_mean" in h[-1]
    with pytest.raises(pb.ArgumentError, match="centering"):
        pb.compile(pb.graphs.rbm(3, 2), engine="block-gibbs", seed=0).fit(
            data, method="pcd", epochs=1, progress=False, centering="yes")


def test_chain_init_data_starts_pcd_chains_at_training_rows() -> None:
    """``chain_init="data"``: every new persistent chain's visible part is a training row
    (all rows once before any repeats), hidden units drawn given it; CD refuses it."""
    model = pb.compile(pb.graphs.rbm(6, 3), engine="block-gibbs", seed=0)
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(10, 6, generator=g) < 0.5).float()
    train[:, 0] = torch.arange(10.0) % 2       # keep rows distinct
    train[:, 1] = (torch.arange(10) // 2 % 2).float()
    train[:, 2] = (torch.arange(10) // 4 % 2).float()
    train[:, 3] = (torch.arange(10) // 8 % 2).float()
    for C in (7, 25):
        obj = PCDObjective(model, train=train, n_chains=C, chain_init="data")
        x = obj._init_chains(torch.Generator().manual_seed(1))
        vis = x[:, :6]
        rows = [int(torch.nonzero((train == v).all(1))[0]) for v in vis]
        assert len(rows) == C
        first = rows[:min(C, 10)]
        assert len(set(first)) == len(first)            # no repeats before all rows
        assert set(x[:, 6:].unique().tolist()) <= {0.0, 1.0}
    hist = model.fit(train, method="pcd", epochs=2, n_chains=12, chain_init="data",
                     progress=False, seed=0)
    assert len(hist) == 2
    with pytest.raises(pb.ArgumentError, match="chain_init"):
        model.fit(train, method="cd", epochs=1, chain_init="data", progress=False)
    with pytest.raises(pb.ArgumentError, match="chain_init"):
        model.fit(train, method="pcd", epochs=1, chain_init="rows", progress=False)
