"""Reference models and sample measures for data in integer codes (e.g. colour tiles).

Held-out negative log-likelihoods are reported on the data's own discretisation: codes
``k_i`` in ``0..K-1`` for each of ``D`` columns, so every model (RBM, baseline) is scored
on the same events and the numbers compare directly. :func:`bits_per_dim` turns nats per
row into bits per dimension, ``nll / (D ln 2)``; ``log2 K`` bits/dim is the uniform model.

Baselines
    :class:`IndependentCategorical`: every column its own K-way categorical, fitted with
    add-alpha (Laplace) smoothing. Exact discrete NLL.

    :class:`TileGaussian`: one multivariate Gaussian over the whole tile (full covariance,
    Ledoit-Wolf shrinkage), fitted to uniformly dequantised codes ``y = k + u``,
    ``u ~ U[0, 1)^D``, and scored by the expected negative log density of dequantised test
    data, an upper bound on the discrete NLL of the model ``Q(k) = ∫_{[k, k+1)} p`` (see
    :meth:`TileGaussian.nll_bound`). :func:`discrete_nll_bound` carries the same bound to
    data in other units (bin width ``Δ``): add ``-D log Δ`` nats.
    :meth:`TileGaussian.whiten` / :meth:`TileGaussian.unwhiten` map rows to and from its
    whitened coordinates ``z = Σ^{-1/2} (y - μ)``; a density model of ``z`` (e.g. a
    Gaussian-visible RBM) scores on the tiles' discretisation by adding ``½ log|Σ|``.

Sample measures (all inputs in the same units, e.g. codes)
    :func:`nearest_neighbours`: each query row's nearest reference row (Euclidean or
    Hamming), chunked over query rows.
    :func:`adversarial_accuracy`: the nearest-neighbour adversarial accuracy AA_TS of
    Yale et al. 2020, as the ``rbms`` package reports it (``rbms.metrics.aats``).
    :func:`privacy_loss`: AA_TS(test) - AA_TS(train).
    :func:`sample_diversity`: medians of the nearest-neighbour distances of generated rows
    to the training, test and generated sets, with the AA_TS scores.

Memory grows with ``chunk_size × rows`` (distances) and ``D²`` (the Gaussian), never with
``rows²``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .errors import DataError

__all__ = [
    "AdversarialAccuracy",
    "IndependentCategorical",
    "TileGaussian",
    "adversarial_accuracy",
    "baseline_bits_per_dim",
    "bits_per_dim",
    "discrete_nll_bound",
    "nearest_neighbours",
    "privacy_loss",
    "sample_diversity",
]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------
# checks and unit conversions
# --------------------------------------------------------------------------------------

def _check_levels(levels: object) -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    return int(levels)


def _check_chunk(chunk_size: object) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or \
            chunk_size < 1:
        raise DataError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _codes(x: object, levels: int, name: str, dims: int | None = None) -> np.ndarray:
    """``x`` as an int64 array (n, D) of codes 0..levels-1, or a DataError naming the
    first bad entry."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (rows, columns) of codes, got shape "
                        f"{a.shape}")
    if dims is not None and a.shape[1] != dims:
        raise DataError(f"{name} has {a.shape[1]} columns but the model was fitted on "
                        f"{dims}")
    if a.dtype.kind not in "uif" and a.dtype != bool:
        raise DataError(f"{name} must hold integer codes, got dtype {a.dtype}")
    if a.size:
        bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a > levels - 1) \
            if a.dtype.kind == "f" else (a < 0) | (a > levels - 1)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(f"{name}[{r}, {c}] = {a[r, c].item()!r} is not a code in "
                            f"0..{levels - 1}")
    return a.astype(np.int64)


def _rows(x: object, name: str, dims: int | None = None) -> torch.Tensor:
    """``x`` as a float64 tensor (n, D) of finite numbers (``D == dims`` when given)."""
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x,
                                   dtype=np.float64))
    if t.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (rows, columns), got shape "
                        f"{tuple(t.shape)}")
    if dims is not None and t.shape[1] != dims:
        raise DataError(f"{name} has {t.shape[1]} columns but the model was fitted on "
                        f"{dims}")
    if not torch.isfinite(t).all():
        raise DataError(f"{name} has non-finite entries")
    return t


def bits_per_dim(nll_nats: float | np.ndarray, dims: int) -> float | np.ndarray:
    """Negative log-likelihood in nats per row → bits per dimension,
    ``nll / (dims · ln 2)``.

    >>> bits_per_dim(3 * math.log(16), 3)   # a uniform 16-level model of 3 columns
    4.0
    """
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims < 1:
        raise DataError(f"dims must be a positive integer, got {dims!r}")
    out = np.asarray(nll_nats, dtype=np.float64) / (int(dims) * math.log(2.0))
    return float(out) if out.ndim == 0 else out


def discrete_nll_bound(density_nll_nats: float | np.ndarray, dims: int,
                       bin_width: float) -> float | np.ndarray:
    """Upper bound on a discrete NLL from a density's NLL on uniformly dequantised data.

    With bins of width ``Δ`` per dimension, a density ``p`` gives the cell of code ``k``
    the mass ``Q(k) = ∫_cell p = Δ^D E_u[p(x_k + Δ u)]``, ``u ~ U[0, 1)^D``, so by Jensen

        -log Q(k) = -D log Δ - log E_u[p] ≤ -D log Δ + E_u[-log p(x_k + Δ u)].

    Given ``density_nll_nats = E_u[-log p]`` per row, this returns
    ``density_nll_nats - dims · log(bin_width)`` (nats per row). ``Q`` sums to at most 1
    over the codes (mass outside the grid is lost), so the bound also holds for the
    renormalised discrete model. For codes (``Δ = 1``) it adds nothing; for multinary
    values ``k / (K - 1)`` use ``Δ = 1 / (K - 1)``.

    >>> round(discrete_nll_bound(10.0, dims=2, bin_width=0.5), 6)   # 10 + 2 log 2
    11.386294
    """
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims < 1:
        raise DataError(f"dims must be a positive integer, got {dims!r}")
    if not isinstance(bin_width, (int, float, np.floating)) or not bin_width > 0 or \
            not math.isfinite(bin_width):
        raise DataError(f"bin_width must be a positive finite number, got {bin_width!r}")
    out = np.asarray(density_nll_nats, dtype=np.float64) - int(dims) * math.log(bin_width)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------

class IndependentCategorical:
    """Every column an independent K-way categorical with add-``alpha`` smoothing:
    ``P_i(k) = (n_ik + α) / (n + K α)`` from the counts ``n_ik`` of code ``k`` in column
    ``i`` of the ``n`` training rows; ``NLL(x) = -Σ_i log P_i(x_i)`` nats (exact).

    >>> m = IndependentCategorical(levels=3, alpha=1.0).fit([[0, 2], [0, 1]])
    >>> np.exp(m.log_probs_[0]).round(3).tolist()      # (2+1)/5, 1/5, 1/5
    [0.6, 0.2, 0.2]
    >>> round(float(m.nll([[0, 1]])[0]), 6)             # -log(0.6) - log(0.4)
    1.427116
    """

    def __init__(self, levels: int, alpha: float = 1.0) -> None:
        self.levels = _check_levels(levels)
        if not isinstance(alpha, (int, float, np.floating)) or isinstance(alpha, bool) or \
                not alpha > 0 or not math.isfinite(alpha):
            raise DataError(f"alpha must be a positive finite number, got {alpha!r}")
        self.alpha = float(alpha)
        self.log_probs_: np.ndarray | None = None

    @property
    def dims(self) -> int:
        """Columns of the fitted data."""
        return self._fitted().shape[0]

    def _fitted(self) -> np.ndarray:
        if self.log_probs_ is None:
            raise DataError("this IndependentCategorical is not fitted; call fit(codes)")
        return self.log_probs_

    def fit(self, codes: object) -> IndependentCategorical:
        """Count the codes of every column; sets ``log_probs_`` (D, K)."""
        x = _codes(codes, self.levels, "codes")
        n, D = x.shape
        if n == 0:
            raise DataError("codes has no rows to fit")
        K = self.levels
        counts = np.bincount((x + np.arange(D) * K).ravel(), minlength=D * K)
        counts = counts.reshape(D, K).astype(np.float64)
        self.log_probs_ = np.log(counts + self.alpha) - math.log(n + K * self.alpha)
        return self

    def nll(self, codes: object, chunk_size: int = 4096) -> np.ndarray:
        """Negative log-likelihood of each row in nats, shape (n,)."""
        lp = self._fitted()
        x = _codes(codes, self.levels, "codes", dims=lp.shape[0])
        chunk = _check_chunk(chunk_size)
        cols = np.arange(lp.shape[0])
        out = np.empty(len(x))
        for s in range(0, len(x), chunk):
            out[s:s + chunk] = -lp[cols, x[s:s + chunk]].sum(axis=1)
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` independent rows of codes (int64), by inverse CDF per column."""
        lp = self._fitted()
        cdf = np.cumsum(np.exp(lp), axis=1)
        cdf[:, -1] = np.inf
        rng = np.random.default_rng(seed)
        u = rng.random((int(n), lp.shape[0]))
        out = np.empty_like(u, dtype=np.int64)
        for i in range(lp.shape[0]):
            out[:, i] = np.searchsorted(cdf[i], u[:, i], side="right")
        return out


class TileGaussian:
    """One multivariate Gaussian over the whole row (tile), fitted to uniformly
    dequantised codes and scored as an upper bound on the discrete NLL.

    Fit: with ``S`` the (biased, 1/n) covariance and ``m`` the mean of the training codes,
    the dequantised data ``y = k + u``, ``u ~ U[0, 1)^D`` independent, have mean
    ``μ = m + 1/2`` and covariance ``S + I/12`` exactly. The covariance is shrunk towards
    ``(tr S / D) I`` with intensity ``α`` (``shrinkage``; ``"ledoit-wolf"`` computes
    Ledoit & Wolf's 2004 estimate from the codes, the formula of
    ``sklearn.covariance.ledoit_wolf_shrinkage``):

        Σ = (1 - α) S + α (tr S / D) I + I / 12,

    positive definite for any α (eigenvalues ≥ 1/12).

    Score: the expected negative log density of dequantised test rows has a closed form,
    with ``d = k + 1/2 - μ`` and ``E[(u - 1/2)(u - 1/2)^T] = I/12``,

        E_u[-log N(k + u; μ, Σ)] = ½ [D log 2π + log|Σ| + d^T Σ^{-1} d + tr(Σ^{-1}) / 12],

    which bounds the discrete NLL ``-log Q(k)`` of ``Q(k) = ∫_{[k, k+1)} N(y; μ, Σ) dy``
    from above (Jensen; bin width 1 in code units, see :func:`discrete_nll_bound`).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 4, size=(200, 3))
    >>> g = TileGaussian(levels=4, shrinkage=0.0).fit(x)
    >>> bool(np.allclose(g.covariance_, np.cov(x.T, bias=True) + np.eye(3) / 12))
    True
    >>> bool(g.nll_bound(x).mean() > IndependentCategorical(4).fit(x).nll(x).mean() - 0.2)
    True
    """

    def __init__(self, levels: int, shrinkage: float | str = "ledoit-wolf") -> None:
        self.levels = _check_levels(levels)
        if shrinkage != "ledoit-wolf" and (
                isinstance(shrinkage, (bool, str)) or
                not isinstance(shrinkage, (int, float, np.floating)) or
                not 0.0 <= float(shrinkage) <= 1.0):
            raise DataError(f"shrinkage must be 'ledoit-wolf' or a number in [0, 1], got "
                            f"{shrinkage!r}")
        self.shrinkage = shrinkage
        self.mean_: np.ndarray | None = None
        self.covariance_: np.ndarray | None = None
        self.shrinkage_: float | None = None
        self._chol: torch.Tensor | None = None
        self._zca: tuple[torch.Tensor, torch.Tensor] | None = None
        self._logdet = 0.0
        self._trace_inv = 0.0

    @property
    def dims(self) -> int:
        """Columns of the fitted data."""
        return self._fitted_chol().shape[0]

    def _fitted_chol(self) -> torch.Tensor:
        if self._chol is None:
            raise DataError("this TileGaussian is not fitted; call fit(codes)")
        return self._chol

    def fit(self, codes: object, chunk_size: int = 4096) -> TileGaussian:
        """Fit ``mean_`` (μ), ``covariance_`` (Σ) and ``shrinkage_`` (α) as above."""
        x = _codes(codes, self.levels, "codes")
        chunk = _check_chunk(chunk_size)
        n, D = x.shape
        if n == 0:
            raise DataError("codes has no rows to fit")
        m = torch.as_tensor(x.mean(axis=0, dtype=np.float64))
        S = torch.zeros(D, D, dtype=torch.float64)
        fourth = 0.0                                   # Σ_rows ||x - m||^4
        for s in range(0, n, chunk):
            xc = torch.as_tensor(x[s:s + chunk], dtype=torch.float64) - m
            S.addmm_(xc.T, xc)
            fourth += float((xc.square().sum(1) ** 2).sum())
        S /= n
        mu_s = float(torch.diagonal(S).sum()) / D
        if self.shrinkage == "ledoit-wolf":
            frob2 = float(S.square().sum())            # ||S||_F^2
            delta = (frob2 - D * mu_s ** 2) / D        # ||S - mu I||^2 / D
            beta = min((fourth / n - frob2) / (D * n), delta)
            alpha = 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta
        else:
            alpha = float(self.shrinkage)
        sigma = (1.0 - alpha) * S
        sigma.diagonal().add_(alpha * mu_s + 1.0 / 12.0)
        L = torch.linalg.cholesky(sigma)
        self._chol = L
        self._zca = None
        self._logdet = 2.0 * float(torch.log(torch.diagonal(L)).sum())
        self._trace_inv = float(torch.cholesky_inverse(L).diagonal().sum())
        self.mean_ = (m + 0.5).numpy()
        self.covariance_ = sigma.numpy()
        self.shrinkage_ = alpha
        return self

    @property
    def log_det(self) -> float:
        """``log |Σ|`` of the fitted covariance (nats)."""
        self._fitted_chol()
        return self._logdet

    def _zca_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Σ^{-1/2}, Σ^{1/2})``, both symmetric, from one eigendecomposition (cached
        until the next ``fit``)."""
        self._fitted_chol()
        if self._zca is None:
            evals, U = torch.linalg.eigh(torch.as_tensor(self.covariance_))
            self._zca = ((U * evals.rsqrt()) @ U.T, (U * evals.sqrt()) @ U.T)
        return self._zca

    def whiten(self, y: object) -> np.ndarray:
        """ZCA whitening of continuous rows ``y`` (code units, e.g. dequantised codes
        ``k + u``): ``z = Σ^{-1/2} (y - μ)``, shape (n, D), float64.

        A density ``p_z`` for the whitened rows is a density for the tiles,

            p(y) = p_z(Σ^{-1/2} (y - μ)) · |Σ|^{-1/2},   -log p(y) = -log p_z(z) + ½ log|Σ|

        (``log_det`` = ``log |Σ|``), so any model of ``z`` scores on the tiles' own
        discretisation. Under this Gaussian itself ``z ~ N(0, I)``: a Gaussian-visible RBM
        over ``z`` with precision 1, zero biases and zero couplings *is* this model, and
        its hidden units can only add to it. The symmetric (ZCA) root keeps every ``z_i``
        tied to pixel ``i``, so couplings over ``z`` stay images.

        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 8, size=(500, 3))
        >>> g = TileGaussian(levels=8).fit(x)
        >>> y = x + rng.random(x.shape)
        >>> z = g.whiten(y)
        >>> std_normal = -0.5 * (z ** 2).sum(1) - 1.5 * np.log(2 * np.pi)   # log N(z; 0, I)
        >>> bool(np.allclose(g.log_density(y), std_normal - 0.5 * g.log_det))
        True
        >>> bool(np.abs(np.cov(z.T) - np.eye(3)).max() < 0.1)
        True
        """
        W, _ = self._zca_pair()
        t = _rows(y, "y", dims=W.shape[0])
        return ((t - torch.as_tensor(self.mean_)) @ W).numpy()

    def unwhiten(self, z: object) -> np.ndarray:
        """The inverse of :meth:`whiten`: ``y = μ + Σ^{1/2} z`` (code units), shape (n, D).

        >>> g = TileGaussian(levels=4).fit([[0, 1], [3, 2], [1, 1], [2, 3]])
        >>> y = np.array([[0.5, 1.5], [2.5, 3.25]])
        >>> bool(np.allclose(g.unwhiten(g.whiten(y)), y))
        True
        """
        _, C = self._zca_pair()
        t = _rows(z, "z", dims=C.shape[0])
        return (torch.as_tensor(self.mean_) + t @ C).numpy()

    def _mahalanobis(self, y: torch.Tensor) -> torch.Tensor:
        """``(y - μ)^T Σ^{-1} (y - μ)`` per row."""
        L = self._fitted_chol()
        z = torch.linalg.solve_triangular(L, (y - torch.as_tensor(self.mean_)).T,
                                          upper=False)
        return z.square().sum(0)

    def log_density(self, y: object, chunk_size: int = 4096) -> np.ndarray:
        """``log N(y; μ, Σ)`` of continuous rows ``y`` (code units), shape (n,)."""
        D = self.dims
        t = _rows(y, "y", dims=D)
        chunk = _check_chunk(chunk_size)
        out = np.empty(len(t))
        for s in range(0, len(t), chunk):
            q = self._mahalanobis(t[s:s + chunk])
            out[s:s + chunk] = (-0.5 * (D * _LOG_2PI + self._logdet + q)).numpy()
        return out

    def nll_bound(self, codes: object, chunk_size: int = 4096) -> np.ndarray:
        """Per row, ``E_u[-log N(k + u; μ, Σ)]`` in nats (closed form above), an upper
        bound on the discrete NLL; shape (n,)."""
        D = self.dims
        x = _codes(codes, self.levels, "codes", dims=D)
        chunk = _check_chunk(chunk_size)
        const = D * _LOG_2PI + self._logdet + self._trace_inv / 12.0
        out = np.empty(len(x))
        for s in range(0, len(x), chunk):
            y = torch.as_tensor(x[s:s + chunk], dtype=torch.float64) + 0.5
            out[s:s + chunk] = (0.5 * (const + self._mahalanobis(y))).numpy()
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` rows of codes: ``y ~ N(μ, Σ)``, ``k = clip(floor(y), 0, K - 1)``."""
        L = self._fitted_chol()
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(int(n), L.shape[0], generator=gen, dtype=torch.float64)
        y = torch.as_tensor(self.mean_) + z @ L.T
        return torch.clamp(torch.floor(y), 0, self.levels - 1).to(torch.int64).numpy()


def baseline_bits_per_dim(train: object, test: object, levels: int,
                          alpha: float = 1.0,
                          shrinkage: float | str = "ledoit-wolf") -> dict[str, float]:
    """Held-out NLL in bits/dim of both baselines fitted on ``train``, scored on ``test``:
    ``{"categorical": ..., "gaussian_bound": ..., "uniform": log2 K}``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 4, size=(300, 5))
    >>> r = baseline_bits_per_dim(x[:200], x[200:], levels=4)
    >>> r["uniform"], 1.9 < r["categorical"] < 2.1
    (2.0, True)
    """
    tr = _codes(train, _check_levels(levels), "train")
    te = _codes(test, levels, "test", dims=tr.shape[1])
    D = tr.shape[1]
    cat = IndependentCategorical(levels, alpha).fit(tr).nll(te).mean()
    gau = TileGaussian(levels, shrinkage).fit(tr).nll_bound(te).mean()
    return {"categorical": bits_per_dim(float(cat), D),
            "gaussian_bound": bits_per_dim(float(gau), D),
            "uniform": math.log2(levels)}


# --------------------------------------------------------------------------------------
# nearest neighbours and adversarial accuracy
# --------------------------------------------------------------------------------------

def nearest_neighbours(queries: object, reference: object, *, metric: str = "euclidean",
                       exclude_self: bool = False, chunk_size: int = 512
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For every query row, the distance to its nearest reference row and that row's
    index: ``(distances (n_q,), indices (n_q,))``.

    ``metric="euclidean"``: ``||q - r||_2``, from ``|q|² + |r|² - 2 q·r`` in float64
    (exact for integer codes); ``"hamming"``: the number of differing columns.
    ``exclude_self=True`` (queries and reference the same set, row for row) skips the
    pair ``(i, i)``, as in a leave-one-out nearest neighbour; duplicates elsewhere still
    count at distance 0. Work is chunked over query rows (``chunk_size × n_ref``
    distances at a time). Ties go to the lowest reference index.

    >>> d, i = nearest_neighbours([[0, 0], [3, 4]], [[3, 3], [0, 1]])
    >>> d.tolist(), i.tolist()
    ([1.0, 1.0], [1, 0])
    >>> nearest_neighbours([[0, 0], [0, 1], [5, 5]], [[0, 0], [0, 1], [5, 5]],
    ...                    metric="hamming", exclude_self=True)[0].tolist()
    [1.0, 1.0, 2.0]
    """
    if metric not in ("euclidean", "hamming"):
        raise DataError(f"metric must be 'euclidean' or 'hamming', got {metric!r}")
    q = _rows(queries, "queries")
    r = _rows(reference, "reference")
    chunk = _check_chunk(chunk_size)
    if q.shape[1] != r.shape[1]:
        raise DataError(f"queries have {q.shape[1]} columns, reference {r.shape[1]}")
    if len(r) == 0 or (exclude_self and len(r) < 2):
        raise DataError("reference needs at least one row (two with exclude_self=True)")
    if exclude_self and q.shape != r.shape:
        raise DataError("exclude_self=True needs queries and reference to be the same set "
                        f"(same shape), got {tuple(q.shape)} and {tuple(r.shape)}")
    r_sq = r.square().sum(1) if metric == "euclidean" else None
    dist = torch.empty(len(q), dtype=torch.float64)
    idx = torch.empty(len(q), dtype=torch.int64)
    for s in range(0, len(q), chunk):
        qc = q[s:s + chunk]
        if metric == "euclidean":
            d = (qc.square().sum(1)[:, None] + r_sq[None, :] - 2.0 * (qc @ r.T)).clamp_min_(0)
        else:
            d = torch.cdist(qc, r, p=0.0)
        if exclude_self:
            rows = torch.arange(len(qc))
            d[rows, rows + s] = torch.inf
        v, i = d.min(dim=1)
        dist[s:s + chunk] = v.sqrt() if metric == "euclidean" else v
        idx[s:s + chunk] = i
    return dist.numpy(), idx.numpy()


class AdversarialAccuracy(NamedTuple):
    """The two halves of AA_TS: ``real`` is the fraction of real rows whose nearest other
    row is real, ``synthetic`` the fraction of synthetic rows whose nearest other row is
    synthetic; ``score`` is their mean, AA_TS."""

    real: float
    synthetic: float

    @property
    def score(self) -> float:
        """AA_TS = (real + synthetic) / 2."""
        return 0.5 * (self.real + self.synthetic)


def adversarial_accuracy(real: object, synthetic: object, *, n: int | None = None,
                         metric: str = "euclidean", chunk_size: int = 512
                         ) -> AdversarialAccuracy:
    """Nearest-neighbour adversarial accuracy (Yale et al. 2020, "Generation and
    evaluation of privacy preserving synthetic health data", Neurocomputing 416):

        AA_TS = ½ [ 1/n Σ_i 1(d_TS(i) > d_TT(i)) + 1/n Σ_i 1(d_ST(i) > d_SS(i)) ],

    with ``d_TS(i)`` the distance from real row ``i`` to its nearest synthetic row,
    ``d_TT(i)`` to its nearest *other* real row, and ``d_ST``, ``d_SS`` likewise for
    synthetic rows. The first ``n`` rows of each set are used (default: the smaller set's
    size), as ``rbms.metrics.aats.compute_aats(real, synthetic, n)`` does; that function
    returns the two halves, which are this tuple's ``real`` and ``synthetic`` (ties count
    as "nearest is the other set" in both). About 0.5 each when the sets are drawn from
    one distribution; near 1 when they are far apart (under-fit); near 0 when the
    synthetic rows copy the real ones (over-fit). Read both halves: noise-like synthetic
    rows, far from everything, give ``real ≈ 1`` and ``synthetic ≈ 0``, a score of 0.5.

    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(100, 2))
    >>> adversarial_accuracy(a, a + 0.001).score          # copies: nearest is the twin
    0.0
    >>> adversarial_accuracy(a, a + 100.0).score          # far apart
    1.0
    """
    t = _rows(real, "real")
    s = _rows(synthetic, "synthetic")
    m = min(len(t), len(s)) if n is None else n
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2 or \
            m > min(len(t), len(s)):
        raise DataError(f"n must be an integer in 2..{min(len(t), len(s))} (both sets "
                        f"need n rows), got {m!r}")
    t, s = t[:m], s[:m]
    kw = {"metric": metric, "chunk_size": chunk_size}
    d_tt = nearest_neighbours(t, t, exclude_self=True, **kw)[0]
    d_ts = nearest_neighbours(t, s, **kw)[0]
    d_ss = nearest_neighbours(s, s, exclude_self=True, **kw)[0]
    d_st = nearest_neighbours(s, t, **kw)[0]
    return AdversarialAccuracy(real=float(np.mean(d_ts > d_tt)),
                               synthetic=float(np.mean(d_st > d_ss)))


def privacy_loss(train: object, test: object, synthetic: object, *, n: int | None = None,
                 metric: str = "euclidean", chunk_size: int = 512) -> float:
    """Yale et al.'s privacy loss, ``AA_TS(test, synthetic) - AA_TS(train, synthetic)``:
    near 0 when the synthetic rows are no closer to the training rows than to unseen
    ones, positive when they copy training rows. ``n`` defaults to the smallest set.

    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    >>> privacy_loss(train, test, train + 0.001) > 0.4    # copies of the training rows
    True
    """
    m = min(len(train), len(test), len(synthetic)) if n is None else n  # type: ignore[arg-type]
    kw = {"n": m, "metric": metric, "chunk_size": chunk_size}
    return adversarial_accuracy(test, synthetic, **kw).score - \
        adversarial_accuracy(train, synthetic, **kw).score


def sample_diversity(generated: object, train: object, test: object, *,
                     n: int | None = None, metric: str = "euclidean",
                     chunk_size: int = 512) -> dict[str, float]:
    """Nearest-neighbour summary of generated rows against the real ones (all in the
    same units, e.g. codes):

    - ``nn_gen_train``, ``nn_gen_test``: median distance of a generated row to its
      nearest training / test row;
    - ``nn_test_train``: the same for real held-out rows (what a fresh real row scores:
      ``nn_gen_train`` well below it suggests copies of training rows);
    - ``nn_gen_gen``, ``nn_test_test``: median distance to the nearest *other* row of the
      same set (``nn_gen_gen`` well below ``nn_test_test`` suggests few modes);
    - ``aats_train``, ``aats_test``: :func:`adversarial_accuracy` scores against the
      first ``n`` training / test rows, and ``privacy_loss`` = their difference;
    - ``aa_train_real``, ``aa_train_synthetic``, ``aa_test_real``, ``aa_test_synthetic``:
      the halves of those scores. Read them, not only the score: noise-like samples far
      from every real row give ``real ≈ 1, synthetic ≈ 0``, a score of 0.5 that looks
      like a perfect match.

    ``n`` (default: the smallest set) rows of each set are used throughout.

    >>> rng = np.random.default_rng(0)
    >>> r = sample_diversity(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)),
    ...                      rng.normal(size=(60, 4)))
    >>> sorted(r)[:4], 0.2 < r["aats_test"] < 0.8
    (['aa_test_real', 'aa_test_synthetic', 'aa_train_real', 'aa_train_synthetic'], True)
    """
    g, tr, te = _rows(generated, "generated"), _rows(train, "train"), _rows(test, "test")
    m = min(len(g), len(tr), len(te)) if n is None else n
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2 or \
            m > min(len(g), len(tr), len(te)):
        raise DataError(f"n must be an integer in 2..{min(len(g), len(tr), len(te))}, "
                        f"got {m!r}")
    g, tr, te = g[:m], tr[:m], te[:m]
    kw = {"metric": metric, "chunk_size": chunk_size}

    def med(q: torch.Tensor, r: torch.Tensor, self_: bool = False) -> float:
        return float(np.median(nearest_neighbours(q, r, exclude_self=self_, **kw)[0]))

    a_tr = adversarial_accuracy(tr, g, n=m, **kw)
    a_te = adversarial_accuracy(te, g, n=m, **kw)
    return {"nn_gen_train": med(g, tr), "nn_gen_test": med(g, te),
            "nn_test_train": med(te, tr), "nn_gen_gen": med(g, g, True),
            "nn_test_test": med(te, te, True), "aats_train": a_tr.score,
            "aats_test": a_te.score, "privacy_loss": a_te.score - a_tr.score,
            "aa_train_real": a_tr.real, "aa_train_synthetic": a_tr.synthetic,
            "aa_test_real": a_te.real, "aa_test_synthetic": a_te.synthetic}
