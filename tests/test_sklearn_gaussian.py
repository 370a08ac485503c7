"""pgm_boltz.sklearn.GaussianBernoulliRBM: scikit-learn's contract, exact log-densities,
conditionals, partial_fit continuation, scale equivariance and learning.

Oracles: numerical integration of exp(-E(v, h)) over the visible values with explicit
sums over the hidden states (from the estimator's attributes), the model's own energy and
log_prob, and a known Gaussian-Bernoulli RBM as the data source.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import pgm_boltz as pb  # noqa: E402
from pgm_boltz.sklearn import GaussianBernoulliRBM  # noqa: E402


def _normal(n=60, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _random_params(rbm, seed, scale=1.0):
    """Give a fitted estimator random parameters (precisions in [0.5, 2])."""
    rng = np.random.default_rng(seed)
    H, V = rbm.components_.shape
    rbm.components_ = rng.normal(scale=scale, size=(H, V))
    rbm.intercept_visible_ = rng.normal(size=V)
    rbm.intercept_hidden_ = rng.normal(size=H)
    rbm.precision_ = rng.uniform(0.5, 2.0, size=V)
    return rbm


def _hidden_states(H):
    return np.array(list(itertools.product((0.0, 1.0), repeat=H)))


def _neg_energy(rbm, v, hs):
    """-E(v, h) for rows v (N, V) and hidden states hs (S, H): (N, S), from attributes."""
    W = rbm.components_.T
    b, c, lam = rbm.intercept_visible_, rbm.intercept_hidden_, rbm.precision_
    return ((-0.5 * lam * v**2 + b * v).sum(1)[:, None] + v @ W @ hs.T + (hs @ c)[None])


def _numerical_log_density(rbm, v, half_width=14.0, n=1201):
    """log p(v) with log Z by a tensor-product trapezoid grid over the visible values
    (1 or 2 visible units) and an explicit sum over the hidden states."""
    V = rbm.components_.shape[1]
    hs = _hidden_states(rbm.components_.shape[0])
    axis = np.linspace(-half_width, half_width, n)
    grid = np.stack(np.meshgrid(*([axis] * V), indexing="ij"), -1).reshape(-1, V)
    w1 = np.full(n, axis[1] - axis[0])
    w1[[0, -1]] *= 0.5
    weights = np.prod(np.stack(np.meshgrid(*([w1] * V), indexing="ij"), -1).reshape(-1, V), 1)
    log_unnorm_grid = np.logaddexp.reduce(_neg_energy(rbm, grid, hs), axis=1)
    log_z = np.logaddexp.reduce(log_unnorm_grid + np.log(weights))
    return np.logaddexp.reduce(_neg_energy(rbm, v, hs), axis=1) - log_z


# ------------------------------------------------------------------ scikit-learn contract


@parametrize_with_checks([GaussianBernoulliRBM(n_components=8)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_pipeline_gridsearch_pickle_clone():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("rbm", GaussianBernoulliRBM(n_components=8, n_iter=30, random_state=0)),
                     ("logistic", LogisticRegression(max_iter=1000))])
    search = GridSearchCV(pipe, {"rbm__n_components": [4, 8]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.8
    fitted = search.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    rbm = fitted.named_steps["rbm"]
    rbm2 = pickle.loads(pickle.dumps(rbm))
    Z = StandardScaler().fit_transform(X)
    np.testing.assert_array_equal(rbm2.score_samples(Z), rbm.score_samples(Z))
    # the pickled estimator continues training exactly as the original does
    np.testing.assert_array_equal(rbm2.partial_fit(Z).components_,
                                  rbm.partial_fit(Z).components_)
    c = clone(rbm)
    assert c.get_params() == rbm.get_params() and not hasattr(c, "model_")
    assert rbm.model_.to_pyro().support is not None
    # GridSearchCV on the RBM alone uses its score (mean log-density)
    gs = GridSearchCV(GaussianBernoulliRBM(n_iter=20, random_state=0),
                      {"n_components": [2, 6]}, cv=3).fit(Z)
    assert np.isfinite(gs.best_score_)


def test_attributes_shapes_and_model():
    X = _normal(40, 4)
    rbm = GaussianBernoulliRBM(n_components=3, n_iter=2, random_state=0).fit(X)
    assert rbm.components_.shape == (3, 4)
    assert rbm.intercept_hidden_.shape == (3,) and rbm.intercept_visible_.shape == (4,)
    assert rbm.precision_.shape == (4,) and (rbm.precision_ > 0).all()
    np.testing.assert_allclose(rbm.sigma_, 1 / np.sqrt(rbm.precision_))
    assert rbm.h_samples_.shape == (100, 3) and rbm.n_features_in_ == 4
    assert isinstance(rbm.model_, pb.BoltzmannMachine)
    np.testing.assert_allclose(np.exp(rbm.model_.log_precision.detach().numpy()),
                               rbm.precision_)
    assert rbm.get_feature_names_out().tolist() == [
        f"gaussianbernoullirbm{i}" for i in range(3)]
    with pytest.raises(AttributeError):
        _ = GaussianBernoulliRBM().components_


def test_verbose_reports_each_pass(capsys):
    X = _normal(30, 2)
    GaussianBernoulliRBM(n_components=2, n_iter=2, verbose=1, random_state=0).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "Iteration 2, log-density = " in out[1]
    GaussianBernoulliRBM(n_components=30, n_iter=1, verbose=1, random_state=0).fit(X)
    assert "reconstruction MSE" in capsys.readouterr().out


# ------------------------------------------------------------------ exact maths


@pytest.mark.parametrize("V,H,seed", [(1, 3, 0), (2, 2, 1), (2, 4, 2)])
def test_exact_score_samples_against_integration_and_log_prob(V, H, seed):
    rbm = GaussianBernoulliRBM(n_components=H, n_iter=1, random_state=seed)
    rbm = _random_params(rbm.fit(_normal(20, V, seed)), seed, scale=0.8)
    v = np.random.default_rng(seed + 10).normal(size=(7, V)) * 1.5
    ours = rbm.score_samples(v)
    np.testing.assert_allclose(ours, _numerical_log_density(rbm, v, n=4001 if V == 1
                                                             else 801),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours, rbm.model_.log_prob(v).detach().numpy(),
                               rtol=0, atol=1e-10)
    assert rbm.score(v) == pytest.approx(ours.mean())


def test_ais_score_close_to_exact():
    X = _normal(60, 4, 3)
    rbm = GaussianBernoulliRBM(n_components=6, n_iter=5, random_state=0).fit(X)
    exact = rbm.score_samples(X)
    ais = rbm.set_params(score_method="ais", ais_options={"n_betas": 500}).score_samples(X)
    np.testing.assert_allclose(ais, exact, rtol=0, atol=0.05)
    assert not np.array_equal(ais, exact)


def test_transform_is_the_conditional_of_the_model():
    rbm = _random_params(GaussianBernoulliRBM(n_components=3, n_iter=1, random_state=0)
                         .fit(_normal(20, 2)), 5)
    v = _normal(5, 2, 7)
    # P(h_j = 1 | v) by enumerating h with the model's own energy
    m = rbm.model_
    hs = _hidden_states(3)
    x = np.zeros((5, len(hs), m.n_nodes))
    x[:, :, rbm._layout.vis] = v[:, None, :]
    x[:, :, rbm._layout.hid] = hs[None]
    logw = -m.energy(torch.as_tensor(x)).detach().numpy()          # (5, 8)
    post = np.exp(logw - np.logaddexp.reduce(logw, axis=1, keepdims=True))
    np.testing.assert_allclose(rbm.transform(v), post @ hs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rbm.fit_transform(v).shape, (5, 3))


def test_gibbs_draws_from_the_gaussian_conditional():
    rbm = _random_params(GaussianBernoulliRBM(n_components=3, n_iter=1, random_state=0)
                         .fit(_normal(20, 2)), 4, scale=0.7)
    v0 = np.array([[0.3, -0.8]])
    draws = rbm.gibbs(np.repeat(v0, 40000, axis=0))
    assert draws.dtype == np.float64 and draws.shape == (40000, 2)
    W, b, lam = rbm.components_.T, rbm.intercept_visible_, rbm.precision_
    p = rbm.transform(v0)[0]
    mean = (b + W @ p) / lam
    var = 1 / lam + (W**2 @ (p * (1 - p))) / lam**2     # law of total variance
    se = np.sqrt(var / 40000)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.05)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("params", [
    {"method": "pcd"}, {"method": "cd", "k": 2}, {"method": "exact"},
    {"method": "pcd", "optimizer": "sgd", "n_chains": 7},
    {"method": "pcd", "sampler": "tempering"},
])
def test_partial_fit_equals_fit(params):
    X = _normal(45, 3, 1) * 2 + 1
    kw = dict(n_components=4, batch_size=10, random_state=0, **params)
    # standardize=False: pieces cut at multiples of batch_size give one pass of fit
    a = GaussianBernoulliRBM(n_iter=1, standardize=False, **kw).fit(X)
    b = GaussianBernoulliRBM(standardize=False, **kw)
    b.partial_fit(X[:20]).partial_fit(X[20:30]).partial_fit(X[30:])
    attrs = ["components_", "intercept_visible_", "intercept_hidden_", "precision_"]
    if params["method"] != "exact":   # exact training draws fresh samples after each call
        attrs.append("h_samples_")
    for attr in attrs:
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=0, atol=1e-12)
    # default (standardize=True): n_iter passes of fit = n_iter calls of partial_fit(X)
    a = GaussianBernoulliRBM(n_iter=3, **kw).fit(X)
    b = GaussianBernoulliRBM(**kw)
    for _ in range(3):
        b.partial_fit(X)
    for attr in ("components_", "intercept_visible_", "intercept_hidden_", "precision_"):
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=0, atol=1e-10)
    assert not np.allclose(a.components_, GaussianBernoulliRBM(n_iter=2, **kw).fit(X)
                           .components_)


def test_training_is_equivariant_to_rescaling_the_features():
    rng = np.random.default_rng(0)
    U = StandardScaler().fit_transform(rng.normal(size=(80, 3)) @ rng.normal(size=(3, 3)))
    shift, scale = np.array([100.0, -3.0, 0.5]), np.array([20.0, 0.1, 1.0])
    X = U * scale + shift
    kw = dict(n_components=4, n_iter=5, random_state=0)
    a = GaussianBernoulliRBM(**kw).fit(U)
    b = GaussianBernoulliRBM(**kw).fit(X)
    np.testing.assert_allclose(b.transform(X), a.transform(U), atol=1e-8)
    np.testing.assert_allclose(b.score_samples(X), a.score_samples(U) - np.log(scale).sum(),
                               atol=1e-8)
    np.testing.assert_allclose(b.precision_, a.precision_ / scale**2, rtol=1e-8)


def test_learning_a_known_gbrbm_improves_held_out_density():
    # data from a known GB-RBM with lambda = 1, b = 0: a mixture of unit Gaussians at
    # W h with weights exp(c.h + |W h|^2 / 2); c = -|W_j|^2 / 2 balances the modes
    true = GaussianBernoulliRBM(n_components=2, n_iter=0, standardize=False).fit(
        np.zeros((2, 4)))
    W = np.random.default_rng(1).normal(scale=2.0, size=(2, 4))
    true.components_ = W
    true.intercept_hidden_ = -0.5 * (W**2).sum(1)
    true.intercept_visible_ = np.zeros(4)
    true.precision_ = np.ones(4)
    x = true.model_.sample(2000, seed=0, method="exact").numpy()
    train, test = x[:1000], x[1000:]
    rbm = GaussianBernoulliRBM(n_components=4, n_iter=0, random_state=0).fit(train)
    start = rbm.score(test)      # independent Gaussians fitted to the data (no coupling)
    best = true.score(test)
    assert best > start + 0.2
    rbm.set_params(n_iter=20).fit(train)
    assert start + 0.5 * (best - start) < rbm.score(test) < best + 0.05, \
        (start, rbm.score(test), best)


def test_learn_precision_false_keeps_precisions():
    X = _normal(40, 3) * 3
    rbm = GaussianBernoulliRBM(n_components=2, n_iter=3, learn_precision=False,
                               random_state=0).fit(X)
    np.testing.assert_allclose(rbm.precision_, 1 / X.var(0), rtol=1e-10)
    rbm.precision_ = np.array([1.0, 2.0, 3.0])
    rbm.partial_fit(X)
    np.testing.assert_allclose(rbm.precision_, [1.0, 2.0, 3.0], rtol=1e-12)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("params,match", [
    ({"n_components": 0}, "n_components"), ({"learning_rate": -1.0}, "learning_rate"),
    ({"method": "nope"}, "method"), ({"score_method": "pseudo-likelihood"}, "score_method"),
    ({"sampler": "nope"}, "sampler"), ({"standardize": "yes"}, "standardize"),
    ({"optimizer": 3}, "optimizer"),
])
def test_bad_parameters_raise_data_error(params, match):
    with pytest.raises(pb.DataError, match=match):
        GaussianBernoulliRBM(**params).fit(_normal(10, 2))


def test_intractable_and_bad_assignments():
    X = _normal(10, 2)
    with pytest.raises(pb.IntractableError):
        GaussianBernoulliRBM(n_components=40, n_iter=1, method="exact").fit(X)
    rbm = GaussianBernoulliRBM(n_components=40, n_iter=1, score_method="exact").fit(X)
    with pytest.raises(pb.IntractableError):
        rbm.score_samples(X)
    with pytest.raises(pb.DataError, match="precision_"):
        rbm.precision_ = np.array([1.0, -1.0])
    with pytest.raises(pb.DataError, match="components_"):
        rbm.components_ = np.zeros((2, 2))


def test_check_estimator_defaults_with_short_ais():
    # the defaults (256 hidden units, so scores by AIS) but 100 AIS temperatures
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(GaussianBernoulliRBM(ais_options={"n_betas": 100}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_exact_training_matches_cpu():
    # exact training draws nothing until its h_samples_, so the devices must agree
    X = _normal(40, 3, 2) * 3 + 1
    kw = dict(n_components=4, n_iter=3, method="exact", random_state=0)
    cpu = GaussianBernoulliRBM(**kw).fit(X)
    gpu = GaussianBernoulliRBM(device="cuda", **kw).fit(X)
    for attr in ("components_", "intercept_visible_", "intercept_hidden_", "precision_"):
        np.testing.assert_allclose(getattr(gpu, attr), getattr(cpu, attr), rtol=1e-6,
                                   atol=1e-8)
    np.testing.assert_allclose(gpu.score_samples(X), cpu.score_samples(X), atol=1e-6)
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), atol=1e-8)
    assert np.isfinite(GaussianBernoulliRBM(device="cuda", n_components=4, n_iter=1,
                                            random_state=0).fit(X).score(X))
