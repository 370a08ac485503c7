"""Regularisation paths and cross-validation of the node-wise L1 fits.

:func:`path` fits every node's penalised regression on a falling grid of ``lam``
(warm-started, the loadings ``omega_ij`` fixed at the bias-only fit) and records which
edges have entered at each value; :class:`RegularizationPath` answers "which edges, in
which order" and draws the coefficient paths. :func:`cross_validate` (used by
``learn(lam="cv")``) picks one ``lam`` per node by K-fold cross-validation of the node's
held-out loss.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch

from ..errors import ArgumentError, DataError
from ._common import (
    _KIND,
    RULE_C,
    _bar,
    _check_method,
    _null_fit,
    _Problem,
    _problem,
    default_alpha,
    finish,
    rule_lambda,
    select,
)
from ._solver import NodeObjective, check_positive, fista

__all__ = ["RegularizationPath", "cross_validate", "path"]


def _grid(obj: NodeObjective, omega: torch.Tensor, W0: torch.Tensor, b0: torch.Tensor,
          n_lambdas: int, lam_min_ratio: float) -> np.ndarray:
    """``n_lambdas`` values from ``lam_max`` (the smallest with every coupling at 0:
    ``max_ij |score_ij| / omega_ij`` at the bias-only fit) down to ``lam_max *
    lam_min_ratio``, evenly spaced in log."""
    score = obj.score(W0, b0).abs() / omega
    score.fill_diagonal_(0.0)
    lam_max = float(score.max())
    if not lam_max > 0:
        raise DataError("every score is zero at the bias-only fit: the columns carry no "
                        "pairwise information")
    return lam_max * np.geomspace(1.0, lam_min_ratio, n_lambdas)


def _run_path(obj: NodeObjective, omega: torch.Tensor, W0: torch.Tensor,
              b0: torch.Tensor, lambdas: np.ndarray, max_iter: int, tol: float, bar=None):
    """Warm-started fits along ``lambdas``; yields ``(k, W, b)`` (standardised units)."""
    W, b = W0, b0
    for k, lam in enumerate(lambdas):
        fit = fista(obj, float(lam) * omega, W, b, max_iter=max_iter, tol=tol)
        W, b = fit.W, fit.b
        if bar is not None:
            bar.update(1)
        yield k, W, b


@dataclass
class RegularizationPath:
    """Node-wise L1 fits along a falling grid of ``lam`` (see :func:`path`).

    Attributes
    ----------
    lambdas: (L,) decreasing penalty levels.
    names: the column names (node names).
    method: ``"plm"``, ``"rise"`` or ``"logrise"``.
    lam_rule: the level :func:`~pgm_boltz.structure.learn` would use with
        ``lam="auto"`` (``rule_lambda``), for reference.
    n_samples: the number of data rows.
    """

    lambdas: np.ndarray
    names: list[Hashable]
    method: str
    lam_rule: float
    n_samples: int
    _coefs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)
    _biases: np.ndarray = field(repr=False)
    _problem: _Problem = field(repr=False)

    def __len__(self) -> int:
        return len(self.lambdas)

    def _index(self, lam: Any) -> int:
        if lam is None:
            lam = self.lam_rule
        check_positive("lam", lam)
        # the last grid point at or above lam (the solution there is the one in force)
        above = np.flatnonzero(self.lambdas >= float(lam) * (1 - 1e-12))
        return int(above[-1]) if len(above) else 0

    def coefficients(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Node-wise coefficients at grid point ``k``: ``W`` (n, n) with row ``i`` node
        ``i``'s weights (units of the values; not symmetric) and biases (n,)."""
        n = len(self.names)
        rows, cols, vals = self._coefs[k]
        W = np.zeros((n, n))
        W[rows, cols] = vals
        return W, self._biases[k].copy()

    def edges(self, lam: Any = None, symmetrize: str = "and") -> list[tuple]:
        """The edges selected at penalty ``lam`` (default: the rule's), as name pairs.

        >>> import pgm_boltz as pb
        >>> data = pb.compile(pb.graphs.lattice(2, 3, coupling=0.8), seed=0).sample(
        ...     2000, seed=0)
        >>> p = pb.structure.path(data, "spin", n_lambdas=20, progress=False)
        >>> len(p.edges(p.lambdas[0])), len(p.edges(p.lambdas[-1], "or")) >= 7
        (0, True)
        """
        W, _ = self.coefficients(self._index(lam))
        return [(self.names[i], self.names[j]) for i, j in select(W, symmetrize).tolist()]

    def n_edges(self, symmetrize: str = "and") -> np.ndarray:
        """Number of selected edges at every grid point (L,)."""
        return np.array([len(select(self.coefficients(k)[0], symmetrize))
                         for k in range(len(self))])

    def entry(self, symmetrize: str = "and") -> dict[tuple, float]:
        """``{edge: lam}``: the largest grid ``lam`` at which each edge is selected,
        in order of entry (strongest evidence first)."""
        out: dict[tuple, float] = {}
        for k in range(len(self)):
            for i, j in select(self.coefficients(k)[0], symmetrize).tolist():
                key = (self.names[i], self.names[j])
                if key not in out:
                    out[key] = float(self.lambdas[k])
        return out

    def graph(self, lam: Any = None, symmetrize: str = "and", refit: bool = True,
              threshold: Any = None, alpha: float | None = None) -> nx.Graph:
        """The learned graph at penalty ``lam`` (default: the rule's), as
        :func:`~pgm_boltz.structure.learn` builds it (symmetrised, refitted; no Wald
        pruning unless ``threshold="auto"``)."""
        k = self._index(lam)
        W, b = self.coefficients(k)
        alpha = default_alpha(self.n_samples) if alpha is None else alpha
        info = {"method": self.method, "n_samples": self.n_samples,
                "lam": float(self.lambdas[k]), "lam_rule": "path", "alpha": alpha}
        return finish(self._problem, W, b, symmetrize=symmetrize, refit=refit,
                      threshold=threshold, alpha=alpha, info=info)

    def plot(self, ax: Any = None, symmetrize: str = "and", truth: Any = None,
             label_top: int = 0):
        """Draw the coefficient paths: one line per pair of units ever selected (the
        mean of its two node-wise coefficients) against ``lam`` falling to the right,
        the rule's ``lam`` dashed, the edge count on a second axis. ``truth`` (a graph
        or edge list) colours true edges blue and the others red. Returns the axes.
        Needs matplotlib.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise DataError("plot needs matplotlib: pip install matplotlib") from None
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        n = len(self.names)
        L = len(self)
        coef = np.zeros((L, n, n))
        for k in range(L):
            W, _ = self.coefficients(k)
            coef[k] = np.where((W != 0) & (W.T != 0), 0.5 * (W + W.T), W + W.T)
        ever = np.argwhere(np.triu((coef != 0).any(0), 1))
        true_set = None
        if truth is not None:
            pairs = truth.edges() if hasattr(truth, "edges") else truth
            true_set = {frozenset(e) for e in pairs}
        order = list(self.entry(symmetrize))
        for i, j in ever.tolist():
            key = frozenset((self.names[i], self.names[j]))
            colour = None if true_set is None else ("tab:blue" if key in true_set
                                                    else "tab:red")
            ax.plot(self.lambdas, coef[:, i, j], lw=1, color=colour,
                    alpha=0.8 if true_set is None or key in true_set else 0.6)
        for u, v in order[:label_top]:  # name the first edges to enter, at path's end
            i, j = sorted((self.names.index(u), self.names.index(v)))
            ax.annotate(f"{u}-{v}", (self.lambdas[-1], coef[-1, i, j]), fontsize=7)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.axvline(self.lam_rule, ls="--", color="k", lw=1)
        ax.set_xlabel("lam (falling →)")
        ax.set_ylabel("coupling (mean of the two node-wise fits)")
        ax2 = ax.twinx()
        ax2.step(self.lambdas, self.n_edges(symmetrize), color="0.5", where="post", lw=1)
        ax2.set_ylabel(f"edges selected ({symmetrize})", color="0.5")
        ax.set_title(f"{self.method} regularisation path ({self.n_samples} rows)")
        return ax


def path(data: Any, domain: Any = "spin", *, method: str = "plm", n_lambdas: int = 40,
         lam_min_ratio: float = 0.01, lambdas: Sequence[float] | None = None,
         levels: Any = None, values: Any = None, names: Sequence[Hashable] | None = None,
         c: float | None = None, alpha: float | None = None, max_iter: int = 5000,
         tol: float = 1e-5, dtype: torch.dtype | None = None, device: Any = None,
         progress: bool = True) -> RegularizationPath:
    """The full regularisation path of the node-wise L1 fits.

    For ``lam`` on a decreasing grid (``n_lambdas`` log-spaced values from ``lam_max``,
    where no coupling is selected, down to ``lam_max * lam_min_ratio``, or the given
    ``lambdas``), every node's penalised loss ``l_i + lam sum_j omega_ij |w_ij|`` is
    minimised, warm-started from the previous ``lam``; ``omega`` are the loadings of the
    bias-only fit (so the grid is one path). Edges enter as ``lam`` falls.
    Arguments as in :func:`~pgm_boltz.structure.learn`.

    >>> import pgm_boltz as pb
    >>> data = pb.compile(pb.graphs.lattice(3, 3, coupling=0.6), seed=0).sample(
    ...     2000, seed=1)
    >>> p = pb.structure.path(data, "spin", n_lambdas=15, progress=False)
    >>> n = p.n_edges()
    >>> int(n[0]), bool((np.diff(n) >= -1).all()), int(n[-1]) >= 12
    (0, True, True)
    """
    method = _check_method(method)
    check_positive("n_lambdas", n_lambdas, integer=True)
    if not 0.0 < lam_min_ratio < 1.0:
        raise ArgumentError(f"lam_min_ratio must be in (0, 1), got {lam_min_ratio!r}")
    prob = _problem(data, domain, levels, values, names, dtype, device)
    obj = prob.objective(_KIND[method])
    W0, b0 = _null_fit(obj)
    omega = obj.loadings(W0, b0)
    if lambdas is None:
        grid = _grid(obj, omega, W0, b0, n_lambdas, lam_min_ratio)
    else:
        grid = np.sort(np.asarray(lambdas, dtype=np.float64).reshape(-1))[::-1]
        if len(grid) == 0 or not (np.isfinite(grid).all() and (grid > 0).all()):
            raise ArgumentError("lambdas must be positive finite numbers")
    coefs, biases = [], []
    bar = _bar(progress, len(grid), f"{method} path")
    try:
        for _, W, b in _run_path(obj, omega, W0, b0, grid, max_iter, tol, bar):
            Wr, br = obj.to_raw(W, b)
            Wr = Wr.cpu().double().numpy()
            r, cidx = np.nonzero(Wr)
            coefs.append((r, cidx, Wr[r, cidx]))
            biases.append(br.cpu().double().numpy())
    finally:
        if bar is not None:
            bar.close()
    c = RULE_C[method] if c is None else c
    return RegularizationPath(lambdas=grid, names=list(prob.cols.names), method=method,
                              lam_rule=rule_lambda(prob.N, prob.cols.n, c, alpha),
                              n_samples=prob.N, _coefs=coefs, _biases=np.array(biases),
                              _problem=prob)


@dataclass
class CrossValidation:
    """What :func:`cross_validate` found."""

    lambdas: np.ndarray  # (L,) the grid
    node_lambdas: np.ndarray  # (n,) the lam chosen for each node
    mean_loss: np.ndarray  # (L, n) held-out loss per node, mean over folds
    se_loss: np.ndarray  # (L, n) its standard error
    W_raw: np.ndarray  # (n, n) node-wise coefficients at the chosen lam (full data)
    b_raw: np.ndarray  # (n,)


def cross_validate(prob: _Problem, kind: str, *, folds: int = 5, n_lambdas: int = 30,
                   lam_min_ratio: float = 0.01, rule: str = "min", seed: int | None = None,
                   max_iter: int = 5000, tol: float = 1e-5, progress: bool = False
                   ) -> CrossValidation:
    """Per-node K-fold cross-validation of the held-out node-wise loss.

    The grid comes from the full data (:func:`path`); for each fold the path is refitted
    on the other folds (their own bias-only loadings) and every node's loss is scored on
    the held-out rows, in the training folds' standardisation. Node ``i`` takes the
    ``lam`` minimising its mean held-out loss (``rule="min"``) or the largest ``lam``
    within one standard error of that minimum (``"1se"``); its coefficients are the
    full-data path's at that ``lam``.
    """
    check_positive("folds", folds, integer=True)
    if folds < 2:
        raise ArgumentError(f"folds must be >= 2, got {folds}")
    if 2 * folds > prob.N:
        raise DataError(f"cross-validation with {folds} folds needs at least {2 * folds} "
                        f"rows, got {prob.N}")
    obj = prob.objective(kind)
    W0, b0 = _null_fit(obj)
    omega = obj.loadings(W0, b0)
    grid = _grid(obj, omega, W0, b0, n_lambdas, lam_min_ratio)
    L, n = len(grid), obj.n
    bar = _bar(progress, L * (folds + 1), f"{kind} cv")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(prob.N)
    losses = np.zeros((folds, L, n))
    try:
        path_W, path_b = [], []
        for _, W, b in _run_path(obj, omega, W0, b0, grid, max_iter, tol, bar):
            path_W.append(W)
            path_b.append(b)
        for f, test_rows in enumerate(np.array_split(perm, folds)):
            train_rows = np.setdiff1d(perm, test_rows)
            tr = prob.objective(kind, rows=train_rows)
            te = prob.objective(kind, rows=test_rows, like=tr)
            Wt, bt = _null_fit(tr)
            om = tr.loadings(Wt, bt)
            for k, W, b in _run_path(tr, om, Wt, bt, grid, max_iter, tol, bar):
                losses[f, k] = te.loss_rows(W, b).cpu().double().numpy()
    finally:
        if bar is not None:
            bar.close()
    mean = losses.mean(0)
    se = losses.std(0, ddof=1) / math.sqrt(folds)
    best = mean.argmin(0)
    if rule == "1se":
        limit = mean[best, np.arange(n)] + se[best, np.arange(n)]
        best = np.array([int(np.flatnonzero(mean[:, i] <= limit[i])[0]) for i in range(n)])
    W = torch.stack([path_W[best[i]][i] for i in range(n)])
    b = torch.stack([path_b[best[i]][i] for i in range(n)])
    Wr, br = obj.to_raw(W, b)
    return CrossValidation(lambdas=grid, node_lambdas=grid[best], mean_loss=mean,
                           se_loss=se, W_raw=Wr.cpu().double().numpy(),
                           b_raw=br.cpu().double().numpy())
