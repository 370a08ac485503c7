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

from collections.abc import Hashable, Sequence
from typing import Any

import networkx as nx
import torch

from ..errors import ArgumentError
from ._common import (
    _KIND,
    METHODS,
    RULE_C,
    SYMMETRIZE,
    _check_method,
    _fit_rule,
    _problem,
    default_alpha,
    finish,
    rule_lambda,
)
from ._solver import check_positive
from .paths import cross_validate

__all__ = ["METHODS", "default_alpha", "learn", "rule_lambda"]


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
