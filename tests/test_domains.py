"""Unit domains: the geometric log-normaliser, mean and sampler against direct sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pgm_boltz.domains import (
    BINARY,
    SPIN,
    DomainVector,
    geometric_log_normalizer,
    geometric_mean,
    geometric_sample,
    multinary,
)
from pgm_boltz.errors import GraphError

A_VALUES = [0.0, 1e-12, -1e-12, 1e-8, -1e-8, 1e-5, -1e-5, 1e-3, -1e-3, 0.02, -0.02, 0.3,
            -0.3, 1.0, -1.0, 3.7, -3.7, 50.0, -50.0, 700.0, -700.0, 1e4, -1e4]
K_VALUES = [2, 3, 4, 5, 7, 17, 256]


def direct(a: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logsumexp over the levels k = 0..K-1 of a k, the mean E[k] and the probabilities."""
    k = torch.arange(K, dtype=torch.float64)
    logits = a[:, None] * k
    lse = torch.logsumexp(logits, dim=1)
    p = torch.exp(logits - lse[:, None])
    return lse, p @ k, p


@pytest.mark.parametrize("K", K_VALUES)
def test_log_normalizer_and_mean_match_direct_sums(K: int) -> None:
    a = torch.tensor(A_VALUES, dtype=torch.float64)
    lse, mean, _ = direct(a, K)
    for k_arg in (K, torch.full_like(a, K)):
        g = geometric_log_normalizer(a, k_arg)
        m = geometric_mean(a, k_arg)
        assert torch.isfinite(g).all() and torch.isfinite(m).all()
        torch.testing.assert_close(g, lse, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m, mean, rtol=1e-9, atol=1e-9)
        assert ((m >= 0) & (m <= K - 1)).all()


@pytest.mark.parametrize("K", K_VALUES)
def test_mean_is_the_derivative_and_gradients_are_finite(K: int) -> None:
    a = torch.tensor(A_VALUES, dtype=torch.float64, requires_grad=True)
    g = geometric_log_normalizer(a, K)
    (grad,) = torch.autograd.grad(g.sum(), a)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, geometric_mean(a.detach(), K), rtol=1e-8, atol=1e-8)
    m = geometric_mean(a, K)
    (grad2,) = torch.autograd.grad(m.sum(), a)
    assert torch.isfinite(grad2).all()
    # d mean / d a is the variance of k: check it where the closed form is smooth
    _, mean, p = direct(a.detach(), K)
    var = p @ torch.arange(K, dtype=torch.float64) ** 2 - mean ** 2
    torch.testing.assert_close(grad2, var, rtol=1e-5, atol=1e-6)
    # at a = 0 exactly: mean (K-1)/2, variance (K^2-1)/12
    z = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (gz,) = torch.autograd.grad(geometric_log_normalizer(z, K).sum(), z)
    assert float(gz) == pytest.approx((K - 1) / 2, rel=1e-12)


def test_float32_is_finite_at_the_extremes() -> None:
    a = torch.tensor(A_VALUES, dtype=torch.float32)
    for K in K_VALUES:
        lse, mean, _ = direct(a.double(), K)
        g = geometric_log_normalizer(a, K)
        m = geometric_mean(a, K)
        assert torch.isfinite(g).all() and torch.isfinite(m).all()
        torch.testing.assert_close(g.double(), lse, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.double(), mean, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("K", [2, 3, 5, 17])
@pytest.mark.parametrize("a", [0.0, 1e-8, -1e-3, 0.7, -1.3, 4.0, -50.0])
def test_sample_frequencies_match_probabilities(K: int, a: float) -> None:
    n = 20_000
    gen = torch.Generator().manual_seed(K * 1000 + int(abs(a) * 100))
    u = torch.rand(n, dtype=torch.float64, generator=gen)
    at = torch.full((n,), a, dtype=torch.float64)
    k = geometric_sample(at, K, u)
    assert set(k.unique().tolist()) <= set(range(K))
    _, _, p = direct(torch.tensor([a], dtype=torch.float64), K)
    p = p[0].numpy()
    counts = np.bincount(k.long().numpy(), minlength=K)
    expected = p * n
    keep = expected > 5
    if keep.sum() >= 2:
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        obs, exp = obs[exp > 0], exp[exp > 0]
        stat = ((obs - exp) ** 2 / exp).sum()
        assert stat < stats.chi2.ppf(1 - 1e-6, len(exp) - 1), (counts, expected)
    else:  # essentially deterministic: the mode every time, within rounding
        assert counts[np.argmax(p)] >= n - 5


def test_sample_uses_uniforms_monotonically() -> None:
    """Inverse-CDF sampling: k is non-decreasing in u for a <= 0, and mirrored for a > 0."""
    u = torch.linspace(0.0, 1.0 - 1e-12, 1001, dtype=torch.float64)
    for a in (-0.8, 0.0, 0.8):
        k = geometric_sample(torch.full_like(u, a), 6, u)
        assert (torch.diff(k) >= 0).all() if a <= 0 else (torch.diff(k) <= 0).all()


def test_domains_values_codes_and_errors() -> None:
    assert BINARY.values().tolist() == [0.0, 1.0]
    assert SPIN.values().tolist() == [-1.0, 1.0]
    assert SPIN.codes().tolist() == [-1.0, 1.0]
    d = multinary(5)
    assert d.values().tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert d.codes().tolist() == [0, 1, 2, 3, 4]
    assert d.describe() == "multinary(K=5)"
    assert multinary(2).values().tolist() == BINARY.values().tolist()
    for bad in (1, 0, 2.5, True, "3"):
        with pytest.raises(GraphError):
            multinary(bad)


def test_domain_vector_against_direct_sums() -> None:
    doms = [BINARY, SPIN, multinary(3), multinary(6), SPIN]
    dv = DomainVector(doms)
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(50, len(doms), dtype=torch.float64, generator=gen) * 3
    f[0] = 0.0
    logn = dv.log_normalizer(f)
    mean = dv.mean(f)
    for i, d in enumerate(doms):
        vals = torch.as_tensor(d.values())
        logits = f[:, i:i + 1] * vals
        torch.testing.assert_close(logn[:, i], torch.logsumexp(logits, 1))
        torch.testing.assert_close(mean[:, i], torch.softmax(logits, 1) @ vals)
    # sampling: values in the domain, frequencies near the conditional mean
    fb = f[1].expand(40_000, -1)
    s = dv.sample(fb, gen)
    for i, d in enumerate(doms):
        assert set(s[:, i].unique().tolist()) <= set(d.values().tolist())
        vals = torch.as_tensor(d.values())
        p = torch.softmax(f[1, i] * vals, 0)
        sd = math.sqrt(float(p @ vals ** 2 - (p @ vals) ** 2))
        assert abs(float(s[:, i].mean()) - float(p @ vals)) < 5 * sd / math.sqrt(40_000) + 1e-12
    # codes <-> values
    codes = torch.tensor([[1.0, -1.0, 2.0, 5.0, 1.0]])
    values = dv.encode(codes)
    torch.testing.assert_close(values, torch.tensor([[1.0, -1.0, 1.0, 1.0, 1.0]]))
    torch.testing.assert_close(dv.decode(values), codes)
    bad = dv.invalid_codes(np.array([[2.0, 0.0, 1.5, 6.0, np.nan], [1, 1, 2, 5, -1]]))
    assert bad.tolist() == [[True, True, True, True, True], [False, False, False, False, False]]
    assert dv.log_size() == pytest.approx(math.log(2 * 2 * 3 * 6 * 2))
    # uniform vectors take the scalar fast path and agree
    uni = DomainVector([SPIN] * 3)
    torch.testing.assert_close(uni.log_normalizer(f[:, :3]),
                               torch.log(2 * torch.cosh(f[:, :3])))
    torch.testing.assert_close(uni.mean(f[:, :3]), torch.tanh(f[:, :3]))


@pytest.mark.parametrize("K", K_VALUES)
def test_numba_kernel_closed_forms_match_direct_sums(K: int) -> None:
    """The numba copies of G_K and its mean (domains/kernels.py)."""
    from pgm_boltz.domains.kernels import G as _G
    from pgm_boltz.domains.kernels import Gmean as _Gmean

    a = torch.tensor(A_VALUES, dtype=torch.float64)
    lse, mean, _ = direct(a, K)
    got_g = np.array([_G(float(x), K) for x in A_VALUES])
    got_m = np.array([_Gmean(float(x), K) for x in A_VALUES])
    assert np.isfinite(got_g).all() and np.isfinite(got_m).all()
    np.testing.assert_allclose(got_g, lse.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_m, mean.numpy(), rtol=1e-9, atol=1e-9)


def test_invalid_codes_marks_exactly_the_out_of_domain_entries() -> None:
    """The vectorised check against a plain per-entry reference, mixed domains, with
    NaN, infinities, fractions and out-of-range levels."""
    from pgm_boltz.domains import BINARY, SPIN, Domain, DomainVector, multinary

    doms = [BINARY, SPIN, multinary(3), multinary(5), SPIN]
    dv = DomainVector(doms)
    rng = np.random.default_rng(0)
    pool = np.array([-2, -1, 0, 0.5, 1, 2, 3, 4, 5, np.nan, np.inf, -np.inf])
    codes = rng.choice(pool, size=(200, len(doms)))

    def ok(x: float, d: Domain) -> bool:
        if d.name == "spin":
            return x in (-1.0, 1.0)
        return bool(np.isfinite(x)) and 0 <= x <= d.levels - 1 and x == int(x)

    expected = np.array([[not ok(x, d) for x, d in zip(row, doms)] for row in codes])
    np.testing.assert_array_equal(dv.invalid_codes(codes), expected)
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(DomainVector([SPIN] * 3).invalid_codes(codes[:, :3]),
                                  np.isin(codes[:, :3], [-1, 1], invert=True))


def test_data_bias_inverts_the_conditional_mean() -> None:
    """``bias_for_mean`` (closed form for two-level units, bisection for multinary)
    gives biases whose independent-unit means are the clipped data means."""
    from pgm_boltz.domains import BINARY, SPIN, DomainVector, multinary

    dv = DomainVector([BINARY, SPIN, multinary(4), BINARY, SPIN, multinary(9)])
    lo = torch.tensor([0.0, -1.0, 0.0, 0.0, -1.0, 0.0], dtype=torch.float64)
    hi = torch.ones(6, dtype=torch.float64)
    for means in (torch.tensor([0.3, -0.2, 0.7, 0.999999, -1.0, 0.05], dtype=torch.float64),
                  torch.tensor([0.5, 0.0, 0.5, 0.0, 1.0, 1.0], dtype=torch.float64)):
        b = dv.bias_for_mean(means)
        assert torch.isfinite(b).all()
        span = hi - lo
        target = torch.minimum(torch.maximum(means, lo + 1e-3 * span), hi - 1e-3 * span)
        torch.testing.assert_close(dv.mean(b.unsqueeze(0))[0], target, atol=1e-12, rtol=0)
