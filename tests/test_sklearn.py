"""pgm_boltz.sklearn.BernoulliRBM: scikit-learn's contract, its PCD step, exact scores.

Oracles: scikit-learn's own ``BernoulliRBM._fit`` step fed the same uniform variates,
brute-force enumeration of the joint states of small RBMs, and the exact engine.
"""

from __future__ import annotations

import copy
import functools
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import BernoulliRBM as SkRBM  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import pgm_boltz as pb  # noqa: E402
from pgm_boltz.sklearn import BernoulliRBM  # noqa: E402


def _data(n=60, d=7, seed=0, binary=True):
    rng = np.random.default_rng(seed)
    p = rng.random(d) * 0.8 + 0.1
    X = rng.random((n, d))
    return (p > X).astype(np.float64) if binary else X


def _all_states(d):
    return np.array([[(s >> (d - 1 - i)) & 1 for i in range(d)] for s in range(2 ** d)],
                    dtype=np.float64)


def _brute_log_prob(rbm, X):
    """log P(v) of rows X by enumerating every (v, h) of the RBM in float64."""
    W = rbm.components_.T.astype(np.float64)
    b = rbm.intercept_visible_.astype(np.float64)
    c = rbm.intercept_hidden_.astype(np.float64)
    V, H = W.shape
    vs, hs = _all_states(V), _all_states(H)
    log_w = vs @ W @ hs.T + (vs @ b)[:, None] + (hs @ c)[None, :]   # -E(v, h)
    log_z = np.logaddexp.reduce(log_w.ravel())
    neg_e = X @ W @ hs.T + (X @ b)[:, None] + (hs @ c)[None, :]
    return np.logaddexp.reduce(neg_e, axis=1) - log_z


def _params(rbm):
    return rbm.components_.copy(), rbm.intercept_visible_.copy(), rbm.intercept_hidden_.copy()


def _assert_same_params(a, b, atol=0.0):
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ------------------------------------------------------------------ scikit-learn contract


def test_check_estimator_default():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the out-of-[0, 1] data warning
        check_estimator(BernoulliRBM())


@pytest.mark.slow
@pytest.mark.parametrize("params", [
    {"method": "cd", "k": 2, "sampler": "torch", "optimizer": "adam", "n_components": 8},
    {"method": "exact", "n_components": 3},
    {"method": "pcd", "n_chains": 7, "score_method": "pseudo-likelihood"},
])
def test_check_estimator_other_methods(params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_estimator(BernoulliRBM(**params))


def test_import_pgm_boltz_does_not_import_sklearn():
    code = ("import sys, pgm_boltz as pb; assert 'sklearn' not in sys.modules; "
            "pb.sklearn.BernoulliRBM; assert 'sklearn' in sys.modules")
    root = os.path.dirname(os.path.dirname(os.path.abspath(pb.__file__)))  # this checkout
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_pipeline_gridsearch_pickle_clone():
    X = _data(80, 8, seed=1)
    y = (X[:, 0] + X[:, 1] > 0.5).astype(int)
    pipe = Pipeline([("rbm", BernoulliRBM(n_components=4, n_iter=3, random_state=0)),
                     ("clf", LogisticRegression())])
    grid = GridSearchCV(pipe, {"rbm__n_components": [2, 4], "rbm__learning_rate": [0.05, 0.1]},
                        cv=2).fit(X, y)
    assert grid.best_params_["rbm__n_components"] in (2, 4)
    rbm = grid.best_estimator_.named_steps["rbm"]
    again = pickle.loads(pickle.dumps(rbm))
    np.testing.assert_array_equal(again.transform(X), rbm.transform(X))
    np.testing.assert_array_equal(again.score_samples(X), rbm.score_samples(X))
    fresh = clone(rbm)
    assert not hasattr(fresh, "model_") and fresh.get_params() == rbm.get_params()
    # GridSearchCV on the RBM alone uses score(): the mean exact log-likelihood
    g2 = GridSearchCV(BernoulliRBM(n_iter=5, random_state=0), {"n_components": [1, 6]},
                      cv=2).fit(X)
    assert np.isfinite(g2.best_score_) and g2.best_score_ < 0


def test_attributes_match_sklearn_shapes_and_dtypes():
    X = _data(30, 5).astype(np.float32)
    ours = BernoulliRBM(n_components=3, batch_size=4, random_state=0).fit(X)
    theirs = SkRBM(n_components=3, batch_size=4, random_state=0).fit(X)
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        assert getattr(ours, name).shape == getattr(theirs, name).shape, name
        assert getattr(ours, name).dtype == np.float32, name
    assert ours.transform(X).dtype == np.float32
    assert ours.gibbs(X).dtype == theirs.gibbs(X).dtype == np.bool_
    assert list(ours.get_feature_names_out()) == [f"bernoullirbm{i}" for i in range(3)]
    assert isinstance(ours.model_, pb.BoltzmannMachine)
    ours.model_.to_pyro()   # the underlying model is a full pgm_boltz model


# ------------------------------------------------------------------ training semantics


class _FixedUniforms:
    """A RandomState stand-in whose ``uniform(size=...)`` hands out given variates."""

    def __init__(self, u):
        self.u, self.pos = u, 0

    def uniform(self, size):
        n = int(np.prod(size))
        out = self.u[self.pos:self.pos + n].reshape(size)
        self.pos += n
        return out


def test_pcd_step_equals_sklearn_step_with_the_same_variates():
    """Our PCD-1 equals scikit-learn's ``_fit`` step for step, fed the same uniforms
    (visible draws C x V, then hidden draws C x H, per step), on real-valued data."""
    X = _data(40, 6, seed=2, binary=False)
    ours = BernoulliRBM(n_components=5, batch_size=10, learning_rate=0.3, random_state=0)
    ours.partial_fit(X)                     # leave the start: non-trivial chains
    theirs = SkRBM(n_components=5, batch_size=10, learning_rate=0.3)
    theirs.components_, theirs.intercept_visible_, theirs.intercept_hidden_ = _params(ours)
    theirs.h_samples_ = ours.h_samples_.copy()
    u = copy.deepcopy(ours._rng).random(4 * 10 * (6 + 5))   # the next pass's variates
    rng = _FixedUniforms(u)
    for s in range(4):
        theirs._fit(X[10 * s:10 * s + 10], rng)
    before = _params(ours)
    ours.partial_fit(X)
    assert rng.pos == len(u)
    _assert_same_params(ours, theirs, atol=1e-12)
    np.testing.assert_array_equal(ours.h_samples_, theirs.h_samples_)
    # and the pass did move the parameters (the comparison is not of a frozen model)
    assert np.abs(ours.components_ - before[0]).max() > 1e-3


@pytest.mark.parametrize("method,k,n_chains", [("pcd", 1, None), ("pcd", 3, 7), ("cd", 1, None),
                                                ("cd", 2, None)])
def test_numba_and_torch_backends_walk_the_same_chains(method, k, n_chains):
    X = _data(57, 9, seed=3, binary=False)   # last batch smaller
    kw = dict(n_components=6, batch_size=8, n_iter=3, learning_rate=0.2, random_state=4,
              method=method, k=k, n_chains=n_chains)
    a = BernoulliRBM(sampler="numba", **kw).fit(X)
    b = BernoulliRBM(sampler="torch", **kw).fit(X)
    _assert_same_params(a, b, atol=1e-10)
    np.testing.assert_array_equal(a.h_samples_, b.h_samples_)
    c = BernoulliRBM(sampler="numba", **{**kw, "random_state": 5}).fit(X)
    assert np.abs(a.components_ - c.components_).max() > 1e-3   # the seed matters


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_partial_fit_continues_fit_exactly(dtype):
    X = _data(95, 8, seed=5).astype(dtype)
    kw = dict(n_components=5, batch_size=10, learning_rate=0.1, random_state=0)
    full = BernoulliRBM(n_iter=3, **kw).fit(X)
    inc = BernoulliRBM(**kw)
    for _ in range(3):
        inc.partial_fit(X)
    _assert_same_params(full, inc)
    np.testing.assert_array_equal(full.h_samples_, inc.h_samples_)
    # one pass = partial_fit over pieces cut at multiples of batch_size
    one = BernoulliRBM(n_iter=1, **kw).fit(X)
    pieces = BernoulliRBM(**kw)
    for a, b in [(0, 30), (30, 40), (40, 90), (90, 95)]:
        pieces.partial_fit(X[a:b])
    _assert_same_params(one, pieces)
    # pieces not aligned with batch_size make other batches: a different schedule
    other = BernoulliRBM(**kw)
    for a, b in [(0, 35), (35, 95)]:
        other.partial_fit(X[a:b])
    assert np.abs(other.components_ - one.components_).max() > 1e-6


def test_partial_fit_carries_optimizer_state():
    X = _data(60, 6, seed=6)
    momentum = functools.partial(torch.optim.SGD, momentum=0.9)
    kw = dict(n_components=4, batch_size=10, learning_rate=0.05, random_state=0,
              optimizer=momentum)
    full = BernoulliRBM(n_iter=2, **kw).fit(X)
    inc = BernoulliRBM(**kw).partial_fit(X).partial_fit(X)
    _assert_same_params(full, inc, atol=1e-12)
    # dropping the momentum buffer between calls changes the result, so the state matters
    reset = BernoulliRBM(**kw).partial_fit(X)
    reset.optimizer_ = None
    reset.partial_fit(X)
    assert np.abs(reset.components_ - full.components_).max() > 1e-5


def test_learning_rate_is_read_at_every_partial_fit():
    X = _data(40, 5, seed=7)
    a = BernoulliRBM(n_components=3, random_state=0, sampler="torch").partial_fit(X)
    b = clone(a).partial_fit(X)
    a.set_params(learning_rate=1e-9).partial_fit(X)
    b.set_params(learning_rate=0.5).partial_fit(X)
    assert np.abs(a.components_ - b.components_).max() > 1e-3


def test_exact_training_step_is_the_exact_gradient():
    """One full-batch SGD step of method='exact' moves the parameters by lr times
    (data moments - model moments), the model moments by brute-force enumeration."""
    X = _data(20, 4, seed=8)
    rbm = BernoulliRBM(n_components=3, n_iter=1, batch_size=20, learning_rate=0.5,
                       random_state=0, method="exact")
    rbm.set_params(n_iter=0).fit(X)
    Wt0, b0, c0 = _params(rbm)
    W0 = Wt0.T
    rbm.partial_fit(X)
    vs, hs = _all_states(4), _all_states(3)
    logw = vs @ W0 @ hs.T + (vs @ b0)[:, None] + (hs @ c0)[None, :]
    P = np.exp(logw - np.logaddexp.reduce(logw.ravel()))
    model_vh = vs.T @ P @ hs
    model_v, model_h = P.sum(1) @ vs, P.sum(0) @ hs
    hp = 1 / (1 + np.exp(-(X @ W0 + c0)))
    data_vh, data_v, data_h = X.T @ hp / 20, X.mean(0), hp.mean(0)
    W1, b1, c1 = _params(rbm)
    np.testing.assert_allclose(W1.T, W0 + 0.5 * (data_vh - model_vh), atol=1e-12)
    np.testing.assert_allclose(b1, b0 + 0.5 * (data_v - model_v), atol=1e-12)
    np.testing.assert_allclose(c1, c0 + 0.5 * (data_h - model_h), atol=1e-12)
    assert rbm.h_samples_.shape == (20, 3)


def test_exact_training_raises_likelihood_and_auto_picks_it():
    X = _data(100, 6, seed=9)
    small = BernoulliRBM(n_components=4, method="auto", n_iter=30, batch_size=100,
                         learning_rate=0.5, optimizer="adam", random_state=0)
    before = small.set_params(n_iter=0).fit(X).score(X)
    after = small.set_params(n_iter=30).fit(X).score(X)
    assert small._resolved_method() == "exact"
    assert after > before + 0.5
    big = BernoulliRBM(n_components=30, method="auto", n_iter=0, random_state=0).fit(
        _data(10, 30))
    assert big._resolved_method() == "pcd"


# ------------------------------------------------------------------ scores


def test_exact_score_samples_against_brute_force_and_the_engine():
    X = _data(50, 5, seed=10)
    rbm = BernoulliRBM(n_components=4, n_iter=20, learning_rate=0.2, random_state=1).fit(X)
    states = _all_states(5)
    lp = rbm.score_samples(states)
    np.testing.assert_allclose(lp, _brute_log_prob(rbm, states), atol=1e-9)
    engine = rbm.model_.log_prob(states).detach().double().numpy()
    np.testing.assert_allclose(lp, engine, atol=1e-9)
    assert abs(np.logaddexp.reduce(lp)) < 1e-9
    assert rbm.score(X) == pytest.approx(lp[[int("".join(map(str, r)), 2)
                                            for r in X.astype(int)]].mean(), abs=1e-9)


def test_real_valued_score_is_a_lower_bound_of_the_expected_log_likelihood():
    X = _data(30, 4, seed=11, binary=False)
    rbm = BernoulliRBM(n_components=3, n_iter=10, learning_rate=0.2, random_state=0).fit(X)
    states = _all_states(4)
    lp_states = _brute_log_prob(rbm, states)
    q = np.prod(np.where(states[None] == 1, X[:, None], 1 - X[:, None]), axis=2)   # (N, 16)
    expected = q @ lp_states
    ours = rbm.score_samples(X)
    assert np.all(ours <= expected + 1e-9)
    assert np.all(ours > expected - 3.0)


def test_pseudo_likelihood_is_exact_and_sklearns_is_its_one_flip_estimate():
    X = _data(40, 6, seed=12)
    rbm = BernoulliRBM(n_components=4, n_iter=10, learning_rate=0.2, random_state=0,
                       score_method="pseudo-likelihood").fit(X)
    pl = rbm.score_samples(X)
    # against the package's own pseudo-log-likelihood
    ref = pb.inference.pseudo_log_likelihood(rbm.model_, X).sum(1).double().numpy()
    np.testing.assert_allclose(pl, ref, atol=1e-9)
    # against the definition: log P(v_i | v_-i) from brute-force log P of the flipped rows
    brute = np.zeros(len(X))
    for i in range(6):
        flipped = X.copy()
        flipped[:, i] = 1 - flipped[:, i]
        brute += _brute_log_prob(rbm, X) - np.logaddexp(_brute_log_prob(rbm, X),
                                                        _brute_log_prob(rbm, flipped))
    np.testing.assert_allclose(pl, brute, atol=1e-9)
    # scikit-learn's score_samples flips one random unit i per row and returns
    # D log P(v_i | v_-i): its average over the D units is exactly our sum
    sk = SkRBM(n_components=4)
    sk.components_, sk.intercept_visible_, sk.intercept_hidden_ = _params(rbm)
    fe = sk._free_energy(X)
    one_flip = []
    for i in range(6):
        flipped = X.copy()
        flipped[:, i] = 1 - flipped[:, i]
        one_flip.append(-6 * np.logaddexp(0, -(sk._free_energy(flipped) - fe)))
    np.testing.assert_allclose(np.mean(one_flip, axis=0), pl, atol=1e-9)
    assert np.std(one_flip, axis=0).mean() > 0.1   # a single flip is a noisy estimate


def test_ais_score_close_to_exact():
    X = _data(200, 10, seed=13)
    rbm = BernoulliRBM(n_components=8, n_iter=10, learning_rate=0.1, random_state=0).fit(X)
    exact = rbm.score_samples(X)
    ais = rbm.set_params(score_method="ais")
    est = ais.score_samples(X)
    np.testing.assert_allclose(est, exact, atol=0.05)
    assert not np.array_equal(est, exact)
    # cached: the same numbers on a second call, and no change to the estimator's dict
    keys = set(ais.__dict__)
    np.testing.assert_array_equal(ais.score_samples(X), est)
    assert set(ais.__dict__) == keys


def test_score_method_exact_refuses_large_models():
    rbm = BernoulliRBM(n_components=30, n_iter=0, score_method="exact", random_state=0)
    rbm.fit(_data(10, 30))
    with pytest.raises(pb.IntractableError, match="exact"):
        rbm.score_samples(_data(10, 30))
    with pytest.raises(pb.IntractableError, match="pcd"):
        BernoulliRBM(n_components=30, method="exact").fit(_data(10, 30))


# ------------------------------------------------------------------ data and errors


def test_transform_and_sparse_input():
    from scipy import sparse

    X = _data(30, 6, seed=14, binary=False)
    X[X < 0.5] = 0
    dense = BernoulliRBM(n_components=4, random_state=0).fit(X)
    sp = BernoulliRBM(n_components=4, random_state=0).fit(sparse.csr_matrix(X))
    _assert_same_params(dense, sp)
    W, b, c = _params(dense)
    np.testing.assert_allclose(dense.transform(X), 1 / (1 + np.exp(-(X @ W.T + c))),
                               atol=1e-12)
    np.testing.assert_allclose(sp.transform(sparse.csr_matrix(X)), dense.transform(X))


def test_out_of_range_values_warn_and_bad_values_raise():
    X = _data(20, 4)
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        BernoulliRBM(n_components=2, n_iter=1).fit(X * 3)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BernoulliRBM(n_components=2).fit(X_nan)


@pytest.mark.parametrize("params,match", [
    ({"n_components": 0}, "n_components"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"method": "sml"}, "method"),
    ({"sampler": "gpu"}, "sampler"),
    ({"k": 0}, "k"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"sampler": "numba", "optimizer": "adam"}, "sampler='numba'"),
    ({"score_method": "pl"}, "score_method"),
])
def test_bad_parameters_raise_data_error(params, match):
    with pytest.raises(pb.DataError, match=match):
        BernoulliRBM(**params).fit(_data(10, 3))


def test_learning_rate_overflowing_float32_is_refused():
    with pytest.raises(pb.DataError, match="float32"):
        BernoulliRBM(n_components=2, learning_rate=1e39).fit(_data(10, 3).astype(np.float32))


def test_divergence_restores_parameters():
    X = _data(40, 5)
    rbm = BernoulliRBM(n_components=3, n_iter=1, random_state=0).fit(X)
    before = _params(rbm)
    rbm.set_params(learning_rate=1e308, optimizer="adam")   # Adam steps ~lr: overflow
    with pytest.raises(pb.DivergenceError, match="learning_rate"):
        rbm.partial_fit(X)
    for a, b in zip(before, _params(rbm)):
        np.testing.assert_array_equal(a, b)


def test_parameter_setters_write_into_the_model():
    X = _data(10, 4)
    rbm = BernoulliRBM(n_components=2, n_iter=0, random_state=0).fit(X)
    rbm.components_ = np.zeros((2, 4))
    rbm.intercept_hidden_ = np.array([0.0, 2.0])
    np.testing.assert_allclose(rbm.transform(X), np.tile(1 / (1 + np.exp([0.0, -2.0])),
                                                         (10, 1)))
    rbm.intercept_visible_ = np.full(4, 50.0)
    assert rbm.gibbs(X).all()
    with pytest.raises(pb.DataError, match="shape"):
        rbm.components_ = np.zeros((4, 2))
    with pytest.raises(AttributeError):
        BernoulliRBM().components_  # noqa: B018
    rbm.h_samples_ = np.zeros((3, 5))
    with pytest.raises(pb.DataError, match="h_samples_"):
        rbm.partial_fit(X)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_torch_backend():
    X = _data(64, 12, seed=15, binary=False)
    kw = dict(n_components=7, n_iter=3, batch_size=16, learning_rate=0.1, random_state=0,
              sampler="torch")
    cpu = BernoulliRBM(**kw).fit(X)
    gpu = BernoulliRBM(device="cuda", **kw).fit(X)
    assert gpu.model_.device.type == "cuda"
    _assert_same_params(cpu, gpu, atol=1e-9)
    np.testing.assert_allclose(gpu.score_samples(X), cpu.score_samples(X), atol=1e-8)


def test_from_sklearn_continues_sklearns_training():
    X = _data(40, 6, seed=16, binary=False)
    sk = SkRBM(n_components=5, batch_size=10, learning_rate=0.2, n_iter=3,
               random_state=0).fit(X)
    ours = BernoulliRBM.from_sklearn(sk)
    assert ours.get_params()["learning_rate"] == 0.2 and ours.n_features_in_ == 6
    np.testing.assert_allclose(ours.transform(X), sk.transform(X), atol=1e-12)
    np.testing.assert_array_equal(ours.h_samples_, sk.h_samples_)
    u = copy.deepcopy(ours._rng).random(4 * 10 * (6 + 5))
    for s in range(4):
        sk._fit(X[10 * s:10 * s + 10], _FixedUniforms(u[s * 110:(s + 1) * 110]))
    ours.partial_fit(X)
    _assert_same_params(ours, sk, atol=1e-12)
    assert ours.score(X) < 0   # exact log-likelihood of the migrated model
