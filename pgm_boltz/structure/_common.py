"""What learning, paths and cross-validation share: the methods and their default
level, the prepared problem, the bias-only start, and the last stages of :func:`~pgm_boltz.
structure.learn` (symmetrise, refit, test, build the graph)."""

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

__all__ = ["METHODS", "RULE_C", "SYMMETRIZE", "default_alpha", "finish", "rule_lambda",
           "select"]


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
