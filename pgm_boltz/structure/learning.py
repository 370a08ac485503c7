"""Learn a visible Boltzmann machine's graph from data.

:func:`learn` estimates every unit's neighbourhood at once by L1-penalised node-wise
regression and returns a ``networkx.Graph`` ready for :func:`pgm_boltz.compile`. Three
node-wise losses (see :mod:`pgm_boltz.structure._solver`):

* ``method="plm"``: pseudo-likelihood (neighbourhood selection: Meinshausen & Bühlmann
  2006, Ravikumar, Wainwright & Lafferty 2010; "plm" after Ekeberg et al. 2013);
* ``method="rise"``: regularised interaction screening (Vuffray, Misra, Lokhov &
  Chertkov 2016), centred as in GRISE (Vuffray et al. 2019) for any value set;
* ``method="logrise"``: its logarithm (Lokhov, Vuffray, Misra & Chertkov 2018).

The pipeline has three stages:

1. **Screen.** The penalty on coefficient ``w_ij`` (standardised features) is
   ``lam * omega_ij`` with ``omega_ij = sqrt(mean_t (g_ti F_tj)^2)`` the standard
   deviation of one row's contribution to the score ``d l_i / d w_ij`` at the bias-only
   fit (``g_ti`` the derivative of row t's loss in its field, ``F_tj`` the standardised
   value of unit j), so ``lam sqrt(N)`` is the z-score a coefficient's score must reach
   to enter (self-normalised penalty loadings, Belloni, Chen, Chernozhukov & Hansen
   2012). The default level is ``lam = c Phi^{-1}(1 - alpha / (2 n (n-1))) / sqrt(N)``
   with ``c = 1/2``: half the Bonferroni bound over the ``n (n-1)`` coefficients, a
   generous screen that the test below makes strict. ``lam="cv"`` picks one ``lam``
   per node by K-fold cross-validation instead.
2. **Symmetrise and refit.** Node-wise supports are combined (``"and"``: both ends
   select the edge; ``"or"``: either does) and the weights on the chosen edges are
   re-estimated by unpenalised joint pseudo-likelihood (one weight per edge, Newton's
   method), so they are not shrunk.
3. **Test.** Backward elimination: while the weakest edge has a Wald statistic
   ``|w_e| / se_e`` (sandwich standard errors of the pseudo-likelihood estimator) under
   ``Phi^{-1}(1 - alpha / (n (n-1)))`` (Bonferroni over all ``n (n-1) / 2`` pairs, which
   the screen looked at), drop it and refit. The default level
   ``alpha = min(0.05, N^{-1/2})`` shrinks with the sample size, so the edge set is
   consistent (recovered exactly with probability -> 1).
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
from ._data import MIN_ROWS, Columns, compress_rows, normal_quantile, prepare
from ._solver import (
    NodeObjective,
    check_positive,
    fista,
    null_bias,
    pl_standard_errors,
    refit_symmetric,
)

__all__ = ["METHODS", "default_alpha", "learn", "rule_lambda"]

METHODS = ("plm", "rise", "logrise")
_KIND = {"plm": "pl", "rise": "rise", "logrise": "logrise"}
#: the constant c of the default rule, per method (see :func:`rule_lambda`)
RULE_C = {"plm": 0.5, "rise": 0.5, "logrise": 0.5}
SYMMETRIZE = ("and", "or")


def default_alpha(n_samples: int) -> float:
    """The default level ``min(0.05, N^{-1/2})``: 0.05 up to 400 rows, then shrinking,
    so the Wald test's threshold grows like ``sqrt(log N)`` (a consistent selection).

    >>> default_alpha(100), default_alpha(10000)
    (0.05, 0.01)
    """
    return min(0.05, 1.0 / math.sqrt(n_samples))


def rule_lambda(n_samples: int, n_units: int, c: float = 0.5,
                alpha: float | None = None) -> float:
    """The default penalty level ``c Phi^{-1}(1 - alpha / (2 n (n-1))) / sqrt(N)``
    (``alpha`` defaults to :func:`default_alpha`).

    A coefficient with no true effect has a score whose z-value exceeds
    ``Phi^{-1}(1 - alpha / (2 n (n-1)))`` with probability ``alpha / (n (n-1))``, so with
    ``c >= 1`` all ``n (n-1)`` null coefficients stay out with probability about
    ``1 - alpha`` at the truth (Belloni et al. 2012); ``c = 1/2`` screens generously and
    leaves the decision to the Wald test.

    >>> round(rule_lambda(1000, 16, c=1.0, alpha=0.05), 4)   # z = 3.71 over sqrt(1000)
    0.1173
    """
    check_positive("n_samples", n_samples, integer=True)
    check_positive("c", c)
    alpha = default_alpha(n_samples) if alpha is None else alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or \
            not 0.0 < alpha < 1.0:
        raise ArgumentError(f"alpha must be in (0, 1), got {alpha!r}")
    n = max(int(n_units), 2)
    z = normal_quantile(1.0 - alpha / (2.0 * n * (n - 1)))
    return c * z / math.sqrt(n_samples)


@dataclass
class _Problem:
    """One data set prepared for the solvers."""

    S: np.ndarray  # (N, n) values
    codes: np.ndarray  # (N, n) level index of every entry
    cols: Columns
    N: int
    dtype: torch.dtype
    device: torch.device
    _cache: dict = field(default_factory=dict, repr=False)

    def objective(self, kind: str, rows: np.ndarray | None = None,
                  dtype: torch.dtype | None = None, like: NodeObjective | None = None
                  ) -> NodeObjective:
        """The node-wise objective ``kind`` on all rows (cached) or on ``rows``."""
        dtype = dtype or self.dtype
        key = (kind, dtype)
        if rows is None and like is None and key in self._cache:
            return self._cache[key]
        S = self.S if rows is None else self.S[rows]
        codes = self.codes if rows is None else self.codes[rows]
        first, counts = compress_rows(codes, self.cols.levels)
        U = S if first is None else S[first]
        t = lambda a: torch.as_tensor(a, dtype=dtype, device=self.device)
        V, mask = self.cols.value_matrix()
        obj = NodeObjective(t(U), t(counts / counts.sum()), t(V),
                            torch.as_tensor(mask, device=self.device), kind, like=like)
        if bool((obj.sd <= 0).any()):
            j = int(torch.nonzero(obj.sd <= 0)[0])
            raise DataError(f"column {self.cols.names[j]!r} is constant in a "
                            "cross-validation fold; use fewer folds or more data")
        if rows is None and like is None:
            self._cache[key] = obj
        return obj


def _problem(data: Any, domain: Any, levels: Any, values: Any,
             names: Sequence[Hashable] | None, dtype: torch.dtype | None,
             device: Any, min_rows: int = MIN_ROWS) -> _Problem:
    S, codes, cols = prepare(data, domain, levels=levels, values=values, names=names,
                             min_rows=min_rows)
    dtype = dtype or torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise ArgumentError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    return _Problem(S=S, codes=codes, cols=cols, N=S.shape[0], dtype=dtype, device=device)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ArgumentError(f"unknown method {method!r}; use one of {METHODS}")
    return method


def _null_fit(obj: NodeObjective) -> tuple[torch.Tensor, torch.Tensor]:
    """Biases only (every coupling at 0): ``(W = 0, b)``."""
    n = obj.n
    return torch.zeros(n, n, dtype=obj.F.dtype, device=obj.F.device), null_bias(obj)


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def select(W: np.ndarray, symmetrize: str) -> np.ndarray:
    """Edges ``(i, j)``, ``i < j``, chosen by the node-wise supports ``W != 0``:
    ``"and"`` needs both ``W_ij`` and ``W_ji``, ``"or"`` either.

    >>> select(np.array([[0, 1.0, 0], [0.5, 0, 2.0], [0, 0, 0]]), "and").tolist()
    [[0, 1]]
    """
    if symmetrize not in SYMMETRIZE:
        raise ArgumentError(f"symmetrize must be 'and' or 'or', got {symmetrize!r}")
    sel = W != 0
    sym = (sel & sel.T) if symmetrize == "and" else (sel | sel.T)
    return np.argwhere(np.triu(sym, 1)).astype(np.int64)


def _average(W: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """One weight per edge from the node-wise estimates: the mean of the non-zero ones."""
    a, b = W[edges[:, 0], edges[:, 1]], W[edges[:, 1], edges[:, 0]]
    cnt = (a != 0).astype(float) + (b != 0).astype(float)
    return (a + b) / np.maximum(cnt, 1.0)


def build_graph(prob: _Problem, edges: np.ndarray, bias: np.ndarray, weight: np.ndarray,
                info: dict) -> nx.Graph:
    """The learned graph: one visible node per column, fitted biases and weights."""
    cols = prob.cols
    G = nx.Graph()
    for i, name in enumerate(cols.names):
        G.add_node(name, **cols.node_attrs(i), bias=float(bias[i]))
    for (i, j), w in zip(edges.tolist(), weight.tolist()):
        G.add_edge(cols.names[i], cols.names[j], weight=float(w))
    G.graph["structure"] = info
    return G


def finish(prob: _Problem, W_raw: np.ndarray, b_raw: np.ndarray, *, symmetrize: str,
           refit: bool, threshold: Any, alpha: float, info: dict,
           pl: NodeObjective | None = None) -> nx.Graph:
    """Symmetrise node-wise estimates (raw units), refit, test or threshold the edges,
    and build the graph.

    ``threshold="auto"``: backward elimination on the Wald statistics ``|w_e| / se_e``
    (sandwich standard errors, :func:`~pgm_boltz.structure._solver.pl_standard_errors`):
    while some edge is under ``Phi^{-1}(1 - alpha / (n (n-1)))``, drop the failing edges
    weakest first, at most one per node per round, and refit. A number drops the
    edges with ``|w_e| < threshold`` (then refits). ``None`` keeps every selected edge.
    """
    edges = select(W_raw, symmetrize)
    w_avg = _average(W_raw, edges)
    b_avg = b_raw.copy()
    # the refit and its standard errors always run in float64
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=prob.device)
    np64 = lambda a: a.detach().cpu().numpy().astype(np.float64)
    b, w = b_avg, w_avg
    dropped = 0
    if refit or threshold is not None:
        if pl is None or pl.S.dtype != torch.float64:
            pl = prob.objective("pl", dtype=torch.float64)  # cached: the screen's if plm
        wald = threshold == "auto"
        n = prob.cols.n
        z_crit = normal_quantile(1.0 - alpha / (n * (n - 1)))
        Hm = None
        for _ in range(len(edges) + 1):
            bt, wt, se, Hm = refit_symmetric(pl, edges, t(b), t(w), hessian=Hm,
                                             n_samples=prob.N if wald else None)
            b, w = np64(bt), np64(wt)
            if threshold is None or len(edges) == 0:
                break
            if wald:
                if se is None:
                    se = pl_standard_errors(pl, edges, bt, wt, prob.N)
                # backward elimination against Bonferroni over all n(n-1)/2 pairs (the
                # screen saw them all): drop the failing edges weakest first, but at most
                # one per node per round (edges that share a node compete for the same
                # signal, so the survivor may pass once its rival is gone); refit; repeat
                z = np.abs(w) / np.maximum(np64(se), 1e-300)
                keep = np.ones(len(edges), dtype=bool)
                used: set[int] = set()
                for e in np.argsort(z, kind="stable"):
                    if z[e] >= z_crit:
                        break
                    i, j = int(edges[e, 0]), int(edges[e, 1])
                    if i not in used and j not in used:
                        keep[e] = False
                        used.update((i, j))
            else:
                keep = np.abs(w) >= float(threshold)
            if keep.all():
                break
            dropped += int((~keep).sum())
            if Hm is not None:
                kp = torch.as_tensor(np.concatenate([np.arange(n), n + np.flatnonzero(keep)]),
                                     device=Hm.device)
                Hm = Hm[kp][:, kp]
            edges, w, w_avg = edges[keep], w[keep], w_avg[keep]
        if not refit:
            b, w = b_avg, w_avg
    info = dict(info, n_edges=len(edges), symmetrize=symmetrize, refit=bool(refit),
                threshold=threshold, n_dropped=dropped)
    return build_graph(prob, edges, b, w, info)


def learn(data: Any, domain: Any = "spin", *, method: str = "plm", lam: Any = "auto",
          symmetrize: str = "and", refit: bool = True, threshold: Any = "auto",
          alpha: float | None = None, c: float | None = None, levels: Any = None,
          values: Any = None, names: Sequence[Hashable] | None = None, folds: int = 5,
          n_lambdas: int = 30, cv_rule: str = "min", max_iter: int = 5000,
          tol: float = 1e-5, dtype: torch.dtype | None = None, device: Any = None,
          seed: int | None = None, progress: bool = True) -> nx.Graph:
    """Learn which units of ``data`` interact; return the fitted visible graph.

    Every unit's conditional law ``P(s_i = v | s_-i) ∝ exp(v (b_i + sum_j W_ij s_j))``
    (a softmax over the unit's value set, one weight per neighbour whatever the number
    of values) is fitted by an L1-penalised node-wise loss, all units at once in torch
    (``method``: ``"plm"`` pseudo-likelihood ``-log P(s_ti | s_t,-i)``, ``"rise"`` /
    ``"logrise"`` interaction screening); the node-wise supports are symmetrised; the
    weights on the chosen edges are refitted by unpenalised joint pseudo-likelihood; and
    edges whose refitted weight is not significant are removed by backward elimination
    with Wald tests (see the module docstring for the formulas).

    Parameters
    ----------
    data: (N, n) codes: an array, tensor, pandas DataFrame (column names kept) or a
        mapping name -> column. Codes: binary 0/1, spin -1/+1, multinary and finite
        0..K-1.
    domain: ``"spin"``, ``"binary"``, ``"multinary"`` (with ``levels=K``: values
        ``k/(K-1)``) or ``"finite"`` (with ``values=[v_0, ..., v_{K-1}]``, the value of
        each code); one for all columns, a sequence (one per column) or a mapping
        name -> domain. ``levels`` and ``values`` broadcast alike (a mapping for
        ``values`` gives one list per column).
    method: ``"plm"`` (default), ``"rise"`` or ``"logrise"``.
    lam: the screening penalty: ``"auto"`` (:func:`rule_lambda` with ``c`` and
        ``alpha``), ``"cv"`` (one ``lam`` per node by ``folds``-fold cross-validation of
        the node's held-out loss over ``n_lambdas`` values, ``cv_rule="min"`` or
        ``"1se"``, rows split with ``seed``) or a positive number.
    symmetrize: ``"and"`` (both ends select an edge) or ``"or"`` (either does).
    refit: return the unpenalised joint pseudo-likelihood weights (``False``: the mean
        of the node-wise penalised estimates; the test still uses refitted ones).
    threshold: ``"auto"`` (Wald backward elimination at level ``alpha``), a number
        (drop ``|W_ij| < threshold``, refit) or ``None`` (keep every selected edge).
    alpha: the level of the screen and the test; default ``min(0.05, N^{-1/2})``.
    c: the screen's multiplier (default 1/2).
    names: column names (default: the DataFrame's or mapping's keys, else 0..n-1).
    max_iter, tol: solver limits (``tol`` bounds each node's KKT violation).
    dtype, device: torch precision of the screen (float64 default; the refit and test
        always run in float64) and device (e.g. ``"cuda"``).
    progress: show a progress bar.

    Returns
    -------
    A ``networkx.Graph``: one node per column (``role="visible"``, its domain with
    ``levels`` or ``values``, the fitted ``bias``), one edge per selected pair (the
    fitted ``weight``); ``G.graph["structure"]`` records the method, ``lam``, ``alpha``
    and counts.

    Raises
    ------
    pgm_boltz.DataError: non-numeric or non-finite data, codes outside a column's domain,
        a constant column, fewer than 10 rows or 2 columns.
    pgm_boltz.ArgumentError: bad options (unknown method, lam, alpha, dtype, ...).
    pgm_boltz.DivergenceError: the solver met non-finite values (e.g. separable data).

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> truth = pb.graphs.lattice(3, 3, coupling=0.6)
    >>> gen = pb.compile(truth, seed=0)
    >>> data = gen.sample(3000, seed=1)          # columns follow gen.visible_nodes
    >>> G = pb.structure.learn(data, "spin", names=gen.visible_nodes, progress=False)
    >>> set(map(frozenset, G.edges)) == set(map(frozenset, truth.edges))
    True
    >>> model = pb.compile(G)                    # ready to train, sample, score
    """
    method = _check_method(method)
    if cv_rule not in ("min", "1se"):
        raise ArgumentError(f"cv_rule must be 'min' or '1se', got {cv_rule!r}")
    if symmetrize not in SYMMETRIZE:
        raise ArgumentError(f"symmetrize must be 'and' or 'or', got {symmetrize!r}")
    if isinstance(threshold, str):
        if threshold != "auto":
            raise ArgumentError(f"threshold must be 'auto', a positive number or None, got "
                            f"{threshold!r}")
    elif threshold is not None:
        check_positive("threshold", threshold)
    if not isinstance(refit, bool):
        raise ArgumentError(f"refit must be True or False, got {refit!r}")
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol)
    if c is not None:
        check_positive("c", c)
    prob = _problem(data, domain, levels, values, names, dtype, device)
    kind = _KIND[method]
    n, N = prob.cols.n, prob.N
    c = RULE_C[method] if c is None else c
    alpha = default_alpha(N) if alpha is None else alpha
    rule_lambda(N, n, c, alpha)  # checks alpha
    info: dict[str, Any] = {"method": method, "n_samples": N, "alpha": alpha}
    if isinstance(lam, str) and lam == "auto":
        lam_val = rule_lambda(N, n, c, alpha)
        W_raw, b_raw = _fit_rule(prob, kind, lam_val, max_iter, tol, progress)
        info.update(lam=lam_val, lam_rule="auto", c=c)
    elif isinstance(lam, str) and lam == "cv":
        from .paths import cross_validate

        cv = cross_validate(prob, kind, folds=folds, n_lambdas=n_lambdas, rule=cv_rule,
                            seed=seed, max_iter=max_iter, tol=tol, progress=progress)
        W_raw, b_raw = cv.W_raw, cv.b_raw
        info.update(lam=cv.node_lambdas.tolist(), lam_rule=f"cv-{cv_rule}", folds=folds)
    elif isinstance(lam, str):
        raise ArgumentError(f"lam must be 'auto', 'cv' or a positive number, got {lam!r}")
    else:
        check_positive("lam", lam)
        W_raw, b_raw = _fit_rule(prob, kind, float(lam), max_iter, tol, progress)
        info.update(lam=float(lam), lam_rule="given")
    return finish(prob, W_raw, b_raw, symmetrize=symmetrize, refit=refit,
                  threshold=threshold, alpha=alpha, info=info)


def _fit_rule(prob: _Problem, kind: str, lam: float, max_iter: int, tol: float,
              progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The screen: every node's penalised fit at ``lam`` with the loadings of the
    bias-only fit; node-wise coefficients and biases in the units of the values."""
    obj = prob.objective(kind)
    W0, b0 = _null_fit(obj)
    omega = obj.loadings(W0, b0)
    bar = _bar(progress, obj.n, f"{kind} lam={lam:.3g}")
    try:
        fit = fista(obj, lam * omega, W0, b0, max_iter=max_iter, tol=tol, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    Wr, br = obj.to_raw(fit.W, fit.b)
    return Wr.cpu().double().numpy(), br.cpu().double().numpy()
