"""Colour tiles (pb.datasets.colour_tiles) and the baselines / sample measures
(pgm_boltz.baselines): split by region without overlap, layout, determinism, code range;
categorical NLL by hand, the Gaussian baseline against torch / scipy, the dequantisation
bound against the exact discrete NLL, nearest neighbours and AA_TS against brute force."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

import pgm_boltz as pb
from pgm_boltz import baselines as bl


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (11, 23, 3), dtype=np.uint8),
            rng.integers(0, 256, (9, 17, 3), dtype=np.uint8)]


# --------------------------------------------------------------------------------------
# colour_tiles
# --------------------------------------------------------------------------------------

def test_tiles_shapes_codes_and_channel_last_layout():
    imgs = _images()
    size, K = 4, 5
    d = pb.datasets.colour_tiles(size=size, levels=K, stride=3, images=imgs,
                                 test_fraction=0.4, seed=1)
    assert d.train.dtype == np.int64 and d.train.shape[1] == size * size * 3 == d.n_visible
    assert d.test.shape[1] == d.n_visible
    assert d.train.min() >= 0 and d.train.max() <= K - 1
    assert d.test.min() >= 0 and d.test.max() <= K - 1
    assert d.names == ("array0", "array1") and d.image_shapes == ((11, 23), (9, 17))
    # every row is the quantised crop at its origin, flattened (row, column, channel)
    for x, origin in ((d.train, d.train_origin), (d.test, d.test_origin)):
        assert len(x) == len(origin)
        for row, (i, r, c) in zip(x, origin):
            crop = imgs[i][r:r + size, c:c + size].astype(np.int64) * K // 256
            np.testing.assert_array_equal(row, crop.reshape(-1))
            np.testing.assert_array_equal(row.reshape(size, size, 3)[1, 2], crop[1, 2])
    # the grid: one tile per (row, column) step inside each region
    n_train = n_test = 0
    for (h, w), s in zip(d.image_shapes, d.split_columns):
        assert s == w - round(0.4 * w)
        n_rows = len(range(0, h - size + 1, 3))
        n_train += n_rows * len(range(0, s - size + 1, 3))
        n_test += n_rows * len(range(s, w - size + 1, 3))
    assert (len(d.train), len(d.test)) == (n_train, n_test)


def test_split_by_region_has_no_shared_pixel():
    d = pb.datasets.colour_tiles(size=5, levels=4, stride=1, images=_images(),
                                 test_fraction=0.3)
    for i, ((h, w), s) in enumerate(zip(d.image_shapes, d.split_columns)):
        used = {"train": np.zeros((h, w), bool), "test": np.zeros((h, w), bool)}
        for part, origin in (("train", d.train_origin), ("test", d.test_origin)):
            for _, r, c in origin[origin[:, 0] == i]:
                used[part][r:r + 5, c:c + 5] = True
        assert not (used["train"] & used["test"]).any()
        assert not used["train"][:, s:].any() and not used["test"][:, :s].any()
        assert used["train"].any() and used["test"].any()


def test_seed_orders_rows_only():
    a = pb.datasets.colour_tiles(size=4, levels=8, images=_images(), seed=3)
    b = pb.datasets.colour_tiles(size=4, levels=8, images=_images(), seed=3)
    c = pb.datasets.colour_tiles(size=4, levels=8, images=_images(), seed=4)
    for part in ("train", "test", "train_origin", "test_origin"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.train, c.train)

    def key(x):
        return x[np.lexsort(x.T[::-1])]
    np.testing.assert_array_equal(key(a.train), key(c.train))
    np.testing.assert_array_equal(key(a.test_origin), key(c.test_origin))


def test_float_images_downsample_dtype_and_back_to_images():
    img = _images()[0]
    d8 = pb.datasets.colour_tiles(size=3, levels=16, stride=2, images=[img],
                                  dtype=np.uint8)
    df = pb.datasets.colour_tiles(size=3, levels=16, stride=2,
                                  images=[(img.astype(np.float64) + 0.5) / 256.0])
    assert d8.train.dtype == np.uint8
    np.testing.assert_array_equal(d8.train, df.train)
    # downsample = mean of 2×2 blocks, cropped to even size, then quantised
    d2 = pb.datasets.colour_tiles(size=2, levels=8, stride=2, images=[img], downsample=2)
    small = img[:10, :22].astype(np.float64).reshape(5, 2, 11, 2, 3).mean(axis=(1, 3))
    assert d2.image_shapes == ((5, 11),)
    for row, (_, r, c) in zip(d2.train, d2.train_origin):
        expect = np.floor(small[r:r + 2, c:c + 2] * 8 / 256).astype(np.int64)
        np.testing.assert_array_equal(row, expect.reshape(-1))
    im = d8.to_images(d8.train[:2])
    assert im.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(im, (d8.train[:2].reshape(2, 3, 3, 3) + 0.5) / 16)
    g = d8.grid(d8.train[:5], cols=2, pad=1)
    assert g.shape == (3 * 4 + 1, 2 * 4 + 1, 3) and g.min() >= 0 and g.max() <= 1
    np.testing.assert_allclose(g[1:4, 5:8], im[1])
    np.testing.assert_allclose(d8.codes_from_values(d8.train[:2] / 15.0), d8.train[:2])


@pytest.mark.parametrize("kwargs, match", [
    ({"levels": 1}, "levels"),
    ({"levels": 300}, "levels"),
    ({"size": 0}, "size"),
    ({"stride": 0}, "stride"),
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"size": 10}, "must each hold"),
    ({"images": ["no-such-photo"]}, "unknown photograph"),
    ({"images": [np.zeros((8, 8), np.uint8)]}, r"\(H, W, 3\)"),
    ({"images": [np.full((8, 8, 3), 1.5)]}, r"\[0, 1\]"),
    ({"images": []}, "empty"),
    ({"dtype": np.float64}, "dtype"),
    ({"levels": 256, "dtype": np.int8}, "dtype"),
])
def test_colour_tiles_errors(kwargs, match):
    args = {"size": 4, "images": _images(), **kwargs}
    with pytest.raises(pb.DataError, match=match):
        pb.datasets.colour_tiles(**args)


def test_named_photographs_from_scikit_image():
    pytest.importorskip("skimage")
    d = pb.datasets.colour_tiles(size=16, levels=8, stride=16, downsample=4)
    assert d.names == pb.datasets.DEFAULT_COLOUR_PHOTOS
    assert d.image_shapes[0] == (128, 128)          # astronaut 512 / 4
    assert len(d.train) > 50 and len(d.test) > 10
    assert d.train.max() <= 7 and d.train.shape[1] == 768
    tr_right = d.train_origin[:, 2] + 16
    split = np.asarray(d.split_columns)
    assert (tr_right <= split[d.train_origin[:, 0]]).all()
    assert (d.test_origin[:, 2] >= split[d.test_origin[:, 0]]).all()


def test_falls_back_to_scikit_learn_and_names_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.warns(UserWarning, match="pip install scikit-image"):
        d = pb.datasets.colour_tiles(size=16, levels=4, stride=32, downsample=4)
    assert d.names == ("china", "flower")
    with pytest.raises(pb.DataError, match="pip install scikit-image"):
        pb.datasets.colour_tiles(images=["astronaut"])
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(pb.DataError, match="scikit-image or scikit-learn"):
        pb.datasets.colour_tiles()


def test_matplotlib_face_photo():
    d = pb.datasets.colour_tiles(size=16, levels=4, stride=32, images=["grace_hopper"],
                                 downsample=4)
    assert d.image_shapes == ((150, 128),) and len(d.train) > 0


# --------------------------------------------------------------------------------------
# unit conversions
# --------------------------------------------------------------------------------------

def test_bits_per_dim_and_uniform_categorical():
    assert bl.bits_per_dim(10 * math.log(2), 10) == pytest.approx(1.0)
    np.testing.assert_allclose(bl.bits_per_dim(np.array([0.0, 2 * math.log(8)]), 2),
                               [0.0, 3.0])
    # an (almost) uniform categorical scores log2 K bits per dimension
    x = np.random.default_rng(0).integers(0, 5, (30, 7))
    m = bl.IndependentCategorical(5, alpha=1e12).fit(x)
    assert bl.bits_per_dim(m.nll(x).mean(), 7) == pytest.approx(math.log2(5), rel=1e-9)
    assert bl.discrete_nll_bound(1.0, 3, 1.0) == 1.0
    assert bl.discrete_nll_bound(1.0, 3, 0.25) == pytest.approx(1.0 + 3 * math.log(4))
    with pytest.raises(pb.DataError, match="dims"):
        bl.bits_per_dim(1.0, 0)
    with pytest.raises(pb.DataError, match="bin_width"):
        bl.discrete_nll_bound(1.0, 2, 0.0)


# --------------------------------------------------------------------------------------
# independent categorical
# --------------------------------------------------------------------------------------

def test_categorical_nll_by_hand():
    train = np.array([[0, 1, 2], [0, 2, 2], [1, 1, 2], [0, 1, 0]])
    test = np.array([[1, 0, 2], [0, 1, 1]])
    K, a, n = 3, 0.5, 4
    m = bl.IndependentCategorical(K, alpha=a).fit(train)
    expect = []
    for row in test:
        nll = 0.0
        for i, k in enumerate(row):
            count = sum(1 for t in train if t[i] == k)
            nll -= math.log((count + a) / (n + K * a))
        expect.append(nll)
    np.testing.assert_allclose(m.nll(test), expect, rtol=1e-12)
    np.testing.assert_allclose(m.nll(test, chunk_size=1), expect, rtol=1e-12)
    np.testing.assert_allclose(np.exp(m.log_probs_).sum(1), 1.0)
    np.testing.assert_allclose(m.nll(torch.as_tensor(test)), expect, rtol=1e-12)


def test_categorical_samples_follow_the_fitted_marginals():
    rng = np.random.default_rng(1)
    train = np.stack([rng.choice(4, 500, p=[0.1, 0.2, 0.3, 0.4]),
                      rng.choice(4, 500, p=[0.7, 0.1, 0.1, 0.1])], axis=1)
    m = bl.IndependentCategorical(4).fit(train)
    s = m.sample(20000, seed=2)
    assert s.shape == (20000, 2) and s.min() >= 0 and s.max() <= 3
    freq = np.stack([np.bincount(s[:, i], minlength=4) / len(s) for i in range(2)])
    p = np.exp(m.log_probs_)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(s)))
    np.testing.assert_array_equal(s, m.sample(20000, seed=2))


def test_categorical_errors():
    m = bl.IndependentCategorical(3)
    with pytest.raises(pb.DataError, match="not fitted"):
        m.nll([[0]])
    with pytest.raises(pb.DataError, match=r"codes\[1, 0\] = 3"):
        m.fit([[0], [3]])
    with pytest.raises(pb.DataError, match=r"codes\[0, 1\] = 0.5"):
        m.fit(np.array([[0.0, 0.5]]))
    m.fit([[0, 1]])
    with pytest.raises(pb.DataError, match="columns"):
        m.nll([[0, 1, 2]])
    with pytest.raises(pb.DataError, match="alpha"):
        bl.IndependentCategorical(3, alpha=0)


# --------------------------------------------------------------------------------------
# tile Gaussian
# --------------------------------------------------------------------------------------

def _correlated_codes(n: int, D: int, K: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1)) + 0.6 * rng.normal(size=(n, D))
    return np.clip(np.round(z * K / 5 + K / 2), 0, K - 1).astype(np.int64)


def test_gaussian_fit_matches_formula_and_ledoit_wolf():
    from sklearn.covariance import ledoit_wolf_shrinkage

    x = _correlated_codes(300, 6, 8, seed=0)
    g = bl.TileGaussian(8).fit(x, chunk_size=70)
    alpha = ledoit_wolf_shrinkage(x.astype(np.float64))
    assert g.shrinkage_ == pytest.approx(alpha, rel=1e-9, abs=1e-12)
    S = np.cov(x.T, bias=True)
    expect = (1 - alpha) * S + (alpha * np.trace(S) / 6 + 1 / 12) * np.eye(6)
    np.testing.assert_allclose(g.covariance_, expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.mean_, x.mean(0) + 0.5)
    g0 = bl.TileGaussian(8, shrinkage=0.3).fit(x)
    assert g0.shrinkage_ == 0.3
    np.testing.assert_allclose(
        g0.covariance_, 0.7 * S + (0.3 * np.trace(S) / 6 + 1 / 12) * np.eye(6), rtol=1e-10)


def test_gaussian_log_density_against_torch_and_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = _correlated_codes(200, 5, 6, seed=1)
    g = bl.TileGaussian(6, shrinkage=0.1).fit(x)
    y = np.random.default_rng(2).normal(3.0, 1.5, size=(40, 5))
    mvn = torch.distributions.MultivariateNormal(torch.as_tensor(g.mean_),
                                                 torch.as_tensor(g.covariance_))
    np.testing.assert_allclose(g.log_density(y, chunk_size=7),
                               mvn.log_prob(torch.as_tensor(y)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        g.log_density(y), scipy_stats.multivariate_normal(g.mean_, g.covariance_).logpdf(y),
        rtol=1e-10)


def test_gaussian_bound_is_the_expected_dequantised_nll():
    x = _correlated_codes(200, 4, 6, seed=3)
    g = bl.TileGaussian(6, shrinkage=0.05).fit(x)
    test = x[:5]
    mvn = torch.distributions.MultivariateNormal(torch.as_tensor(g.mean_),
                                                 torch.as_tensor(g.covariance_))
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(200_000, 1, 4, generator=gen, dtype=torch.float64)
    samples = -mvn.log_prob(torch.as_tensor(test, dtype=torch.float64) + u)  # (M, 5)
    mc, se = samples.mean(0).numpy(), (samples.std(0) / math.sqrt(len(samples))).numpy()
    bound = g.nll_bound(test, chunk_size=2)
    assert np.all(np.abs(bound - mc) < 5 * se + 1e-12), (bound, mc, se)


def test_gaussian_bound_bounds_the_exact_discrete_nll():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = _correlated_codes(150, 2, 5, seed=4)
    g = bl.TileGaussian(5, shrinkage=0.0).fit(x)
    dist = scipy_stats.multivariate_normal(g.mean_, g.covariance_)

    def cell_mass(k):
        (a, b), (c, d) = (k[0], k[0] + 1), (k[1], k[1] + 1)
        return (dist.cdf([b, d]) - dist.cdf([a, d]) - dist.cdf([b, c]) + dist.cdf([a, c]))
    codes = np.array([[i, j] for i in range(5) for j in range(5)])
    exact = -np.log([cell_mass(k) for k in codes])
    bound = g.nll_bound(codes)
    assert np.all(bound >= exact - 1e-6)
    # Jensen's gap is small where the data are (the density is flat over a cell there),
    # large only in the tails
    gap = (bound - exact).reshape(5, 5)[x[:, 0], x[:, 1]]
    assert 0 < gap.mean() < 0.2


def test_gaussian_samples_and_errors():
    x = _correlated_codes(300, 3, 16, seed=5)
    g = bl.TileGaussian(16).fit(x)
    s = g.sample(4000, seed=1)
    assert s.shape == (4000, 3) and s.min() >= 0 and s.max() <= 15
    np.testing.assert_array_equal(s, g.sample(4000, seed=1))
    assert np.abs(s.mean(0) - x.mean(0)).max() < 0.5
    with pytest.raises(pb.DataError, match="not fitted"):
        bl.TileGaussian(4).nll_bound([[0]])
    with pytest.raises(pb.DataError, match="shrinkage"):
        bl.TileGaussian(4, shrinkage=1.5)
    with pytest.raises(pb.DataError, match="columns"):
        g.nll_bound([[0, 1]])


def test_whitening_round_trip_and_change_of_density():
    x = _correlated_codes(300, 5, 8, seed=7)
    g = bl.TileGaussian(8, shrinkage=0.1).fit(x)
    y = x + np.random.default_rng(8).random(x.shape)
    z = g.whiten(y)
    np.testing.assert_allclose(g.unwhiten(z), y, rtol=1e-10, atol=1e-10)
    # z = Σ^(-1/2)(y - μ) with the symmetric root: Σ^(-1/2) Σ Σ^(-1/2) = I, so the
    # Gaussian's own draws whiten to N(0, I), and the density changes by |Σ|^(-1/2)
    Wt = g.whiten(np.eye(5) + g.mean_)                # rows: Σ^(-1/2) e_i
    np.testing.assert_allclose(Wt, Wt.T, atol=1e-10)
    np.testing.assert_allclose(Wt @ g.covariance_ @ Wt, np.eye(5), atol=1e-9)
    assert g.log_det == pytest.approx(np.linalg.slogdet(g.covariance_)[1], rel=1e-10)
    log_n01 = -0.5 * (z ** 2).sum(1) - 2.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(g.log_density(y), log_n01 - 0.5 * g.log_det, rtol=1e-10)
    # refitting replaces the cached roots
    g.fit(x[:100])
    np.testing.assert_allclose(g.unwhiten(g.whiten(y)), y, atol=1e-10)
    with pytest.raises(pb.DataError, match="not fitted"):
        bl.TileGaussian(4).whiten([[0.5]])
    with pytest.raises(pb.DataError, match="columns"):
        g.whiten([[0.5, 1.5]])
    with pytest.raises(pb.DataError, match="columns"):
        g.unwhiten(np.zeros((2, 4)))


def test_gaussian_rbm_over_whitened_rows_is_the_tile_gaussian_at_zero_couplings():
    """A Gaussian-visible RBM over z = Σ^(-1/2)(y - μ) with precision 1, zero biases and
    zero couplings has visible marginal N(0, I): its exact log-probability minus ½ log|Σ|
    is the tile Gaussian's log density. Non-zero couplings change it (the check can fail)."""
    x = _correlated_codes(200, 3, 6, seed=9)
    g = bl.TileGaussian(6).fit(x)
    y = x[:20] + np.random.default_rng(10).random((20, 3))
    model = pb.compile(pb.graphs.rbm(3, 2, domain="gaussian", precision=1.0), seed=0)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    z = torch.as_tensor(g.whiten(y), dtype=model.dtype)
    lp = model.log_prob(z).detach().double().numpy() - 0.5 * g.log_det
    np.testing.assert_allclose(lp, g.log_density(y), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        model.weight.fill_(0.5)
    lp = model.log_prob(z).detach().double().numpy() - 0.5 * g.log_det
    assert np.abs(lp - g.log_density(y)).max() > 0.01


def test_baseline_table_ranks_the_models():
    x = _correlated_codes(600, 8, 8, seed=6)
    r = bl.baseline_bits_per_dim(x[:400], x[400:], levels=8)
    assert r["uniform"] == 3.0
    # strongly correlated columns: the tile Gaussian beats independent columns
    assert r["gaussian_bound"] < r["categorical"] < r["uniform"]


# --------------------------------------------------------------------------------------
# nearest neighbours, AA_TS, diversity
# --------------------------------------------------------------------------------------

def _brute_nn(q, r, metric, exclude_self):
    q, r = np.asarray(q, float), np.asarray(r, float)
    if metric == "euclidean":
        d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    else:
        d = (q[:, None, :] != r[None, :, :]).sum(-1).astype(float)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(1), d.argmin(1)


@pytest.mark.parametrize("metric", ["euclidean", "hamming"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_neighbours_against_brute_force(metric, exclude_self):
    rng = np.random.default_rng(7)
    r = rng.integers(0, 4, (37, 6))
    q = r if exclude_self else rng.integers(0, 4, (23, 6))
    d, i = bl.nearest_neighbours(q, r, metric=metric, exclude_self=exclude_self,
                                 chunk_size=5)
    bd, bi = _brute_nn(q, r, metric, exclude_self)
    np.testing.assert_allclose(d, bd, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(i, bi)         # ties: lowest index, as numpy argmin
    with pytest.raises(pb.DataError, match="metric"):
        bl.nearest_neighbours(q, r, metric="cosine")


def _aats_by_argmin(real, synth):
    """AA_TS halves the way rbms.metrics.aats computes them: one joint distance matrix,
    self-distances infinite, rows of the real half searched with the synthetic columns
    first (ties count as 'nearest is the other set')."""
    x = np.concatenate([real, synth]).astype(float)
    n = len(real)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    d[:n] = d[:n, ::-1]
    closest = d.argmin(1)
    return (closest[:n] >= n).mean(), (closest[n:] >= n).mean()


def test_adversarial_accuracy_against_the_joint_matrix_definition():
    rng = np.random.default_rng(8)
    for _ in range(5):                            # small integer grids: many ties
        real, synth = rng.integers(0, 3, (40, 3)), rng.integers(0, 3, (40, 3))
        synth[:10] = real[:10]
        aa = bl.adversarial_accuracy(real, synth, chunk_size=7)
        assert (aa.real, aa.synthetic) == pytest.approx(_aats_by_argmin(real, synth))


def test_adversarial_accuracy_limits():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(1000, 5)), rng.normal(size=(1000, 5))
    same = bl.adversarial_accuracy(a, b)
    assert abs(same.real - 0.5) < 0.06 and abs(same.synthetic - 0.5) < 0.06
    assert bl.adversarial_accuracy(a, a.copy()).score == 0.0     # exact copies
    far = bl.adversarial_accuracy(a, b + 50.0)
    assert (far.real, far.synthetic) == (1.0, 1.0)
    # in high dimension, noise rows are nearer the real cluster than each other
    noise = bl.adversarial_accuracy(rng.normal(size=(300, 200)),
                                    3 * rng.normal(size=(300, 200)))
    assert noise.real > 0.95 and noise.synthetic < 0.05          # score ≈ 0.5, misleading
    sub = bl.adversarial_accuracy(a, b[:100])
    assert sub == bl.adversarial_accuracy(a[:100], b[:100])
    with pytest.raises(pb.DataError, match="n must be"):
        bl.adversarial_accuracy(a, b, n=2000)


def test_privacy_loss_and_sample_diversity():
    rng = np.random.default_rng(10)
    train, test = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    fresh = rng.normal(size=(200, 4))
    assert abs(bl.privacy_loss(train, test, fresh)) < 0.12
    assert bl.privacy_loss(train, test, train + 1e-3) > 0.4
    r = bl.sample_diversity(train + 1e-3, train, test)
    assert r["nn_gen_train"] == pytest.approx(1e-3 * 2, rel=1e-6)   # sqrt(4) · 1e-3
    assert r["nn_gen_test"] > 10 * r["nn_gen_train"]
    assert r["aats_train"] == 0.0 and r["privacy_loss"] > 0.4
    assert r["aats_train"] == pytest.approx(0.5 * (r["aa_train_real"] +
                                                   r["aa_train_synthetic"]))
    r = bl.sample_diversity(fresh, train, test, n=150)
    assert r["nn_gen_gen"] == pytest.approx(r["nn_test_test"], rel=0.25)
    assert abs(r["aats_test"] - 0.5) < 0.1


def test_colour_pipeline_end_to_end_small():
    """Tiles → both baselines → a diversity report, at a small realistic shape."""
    imgs = [np.random.default_rng(11).integers(0, 256, (24, 48, 3), dtype=np.uint8)]
    d = pb.datasets.colour_tiles(size=8, levels=4, stride=4, images=imgs)
    r = bl.baseline_bits_per_dim(d.train, d.test, levels=4)
    # i.i.d. uniform pixels: nothing beats log2 4 = 2 bits/dim by much
    assert 1.9 < r["categorical"] < 2.2 and r["gaussian_bound"] > 1.9
    cat = bl.IndependentCategorical(4).fit(d.train)
    div = bl.sample_diversity(cat.sample(len(d.test), seed=0), d.train, d.test)
    assert set(div) >= {"nn_gen_train", "aats_test", "privacy_loss"}
