"""Block Gibbs on bipartite graphs: plans, and samples against the exact engine.

The statistical checks run many independent chains; each chain's time average of a
statistic is one independent draw of it, so the standard error comes from the spread of
the chain averages (autocorrelation included). A statistic fails when it sits more than
``Z_TOL`` standard errors from the exact value.
"""

from __future__ import annotations

import pytest
import torch
from conftest import gibbs_moment_z

import pgm_boltz as pb
from pgm_boltz.inference import DEFAULT_STEPS
from pgm_boltz.samplers import gibbs_sampler

Z_TOL = 5.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(model, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.bias.copy_(torch.randn(model.bias.shape, generator=g) * scale)
        model.weight.copy_(torch.randn(model.weight.shape, generator=g) * scale)


MODELS = {
    "rbm": lambda: pb.graphs.rbm(6, 4),
    "dbm": lambda: pb.graphs.dbm([3, 3, 2]),
    "lattice": lambda: pb.graphs.lattice(4, 4, domain="spin"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_block_gibbs_matches_exact_moments(name: str) -> None:
    model = pb.compile(MODELS[name](), engine="block-gibbs", seed=0)
    assert model.plan.engine == "block-gibbs" and len(model.plan.blocks) == 2
    _randomise(model, 0.5 if name == "lattice" else 0.8, seed=1)
    z = gibbs_moment_z(model, gibbs_sampler(model))
    assert z.max() < Z_TOL, (name, float(z.max()))


@pytest.mark.parametrize("name", ["rbm"])
def test_a_wrong_sampler_fails_the_check(name: str) -> None:
    """The check has power: a sampler that skips the second block is caught."""
    model = pb.compile(MODELS[name](), engine="block-gibbs", seed=0)
    _randomise(model, 0.8, seed=1)
    s = gibbs_sampler(model, backend="torch")
    s.blocks = s.blocks[:1]
    assert gibbs_moment_z(model, s).max() > 3 * Z_TOL


def test_clamped_sampler_matches_exact_conditional() -> None:
    """Visible units clamped: hidden means of a DBM match the exact posterior given v."""
    model = pb.compile(pb.graphs.dbm([3, 3, 2]), engine="block-gibbs", seed=0)
    _randomise(model, 1.0, seed=2)
    v = torch.tensor([1.0, 0.0, 1.0])
    s = gibbs_sampler(model, clamped=model.visible_index)
    g = torch.Generator().manual_seed(0)
    chains, keep = 2000, 40
    x = s.init(chains, g, visible_values=v.expand(chains, -1))
    s.sweep(x, 30, generator=g)
    acc = torch.zeros(chains, model.n_nodes, dtype=torch.float64)
    for _ in range(keep):
        s.sweep(x, generator=g)
        acc += x.double()
    acc /= keep
    assert torch.equal(x[:, model.visible_index], v.expand(chains, -1))
    # exact posterior by enumeration of the 5 hidden units
    hid = model.hidden_index
    H = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * len(hid))
    X = torch.zeros(len(H), model.n_nodes)
    X[:, model.visible_index] = v
    X[:, hid] = H
    with torch.no_grad():
        p = torch.softmax(-model.energy(X).double(), 0)
    exact = p @ H.double()
    est = acc[:, hid]
    z = (est.mean(0) - exact).abs() / (est.std(0) / chains ** 0.5 + 1e-4)
    assert z.max() < Z_TOL


def test_plans_say_block_gibbs_over_the_threshold() -> None:
    for G in (pb.graphs.rbm(100, 40), pb.graphs.dbm([30, 25, 20]),
              pb.graphs.lattice(40, 40)):
        m = pb.compile(G)
        assert m.plan.engine == "block-gibbs" and m.plan.bipartite
        assert "engine=block-gibbs" in str(m.plan)
        assert "bipartite" in str(m.plan)
    rbm = pb.compile(pb.graphs.rbm(100, 40))
    vis = set(rbm.visible_nodes)
    assert [set(b) == vis for b in rbm.plan.blocks] == [True, False]


def test_model_sample_gibbs_defaults_and_reproducibility() -> None:
    model = pb.compile(pb.graphs.rbm(6, 4), engine="block-gibbs", seed=0)
    _randomise(model, 0.8, seed=3)
    a = model.sample(50, steps=20, seed=7)
    b = model.sample(50, steps=20, seed=7)
    c = model.sample(50, steps=20, seed=8)
    assert a.dtype == torch.float32 and a.shape == (50, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert DEFAULT_STEPS >= 100
    full = model.sample(5, steps=3, seed=0, return_hidden=True)
    assert full.shape == (5, 10)


def test_model_sample_marginals_match_exact() -> None:
    model = pb.compile(pb.graphs.rbm(6, 4), engine="block-gibbs", seed=0)
    _randomise(model, 0.8, seed=4)
    n = 4000
    v = model.sample(n, steps=100, seed=0).double()
    exact = torch.tensor([model.marginals()[u][1] for u in model.visible_nodes])
    se = (exact * (1 - exact) / n).sqrt()
    assert ((v.mean(0) - exact).abs() / se).max() < Z_TOL


def test_chains_start_from_the_data_marginals_after_a_fit() -> None:
    """A sticky model (couplings so strong that a chain keeps its start) shows where the
    chains start: at the data's marginals after a fit, uniform before."""
    model = pb.compile(pb.graphs.rbm(1, 1), engine="block-gibbs", seed=0)
    model.fit([[1]] * 9 + [[0]], method="pcd", epochs=1, lr=1e-9, progress=False, seed=0,
              optimizer="sgd", monitor_nll=False)
    assert model.visible_init is not None
    with torch.no_grad():
        model.weight.fill_(12.0)  # states (0, 0) and (1, 1) equally likely, rarely left
        model.bias.fill_(-6.0)
    n = 4000
    assert abs(float(model.sample(n, steps=1, seed=1).mean()) - 0.9) < 0.03
    model.visible_init = None
    assert abs(float(model.sample(n, steps=1, seed=1).mean()) - 0.5) < 0.04


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_gibbs_on_cuda_matches_exact() -> None:
    model = pb.compile(pb.graphs.rbm(6, 4), engine="block-gibbs", device="cuda", seed=0)
    _randomise(model, 0.8, seed=1)
    g = torch.Generator(device="cuda").manual_seed(0)
    s = gibbs_sampler(model)
    x = s.init(4000, g)
    s.sweep(x, 100, generator=g)
    assert x.device.type == "cuda" and x.dtype == torch.float32
    mean, _ = model.moments()
    se = (mean * (1 - mean) / 4000).sqrt().cpu()
    assert ((x.mean(0).cpu() - mean.cpu()).abs() / se).max() < Z_TOL
    v = model.sample(100, steps=10, seed=3)
    assert v.device.type == "cuda" and torch.equal(v, model.sample(100, steps=10, seed=3))
