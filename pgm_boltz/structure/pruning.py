"""Prune the weak edges of a trained model, and measure what it costs on held-out data."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch

from ..errors import ArgumentError
from ..machine import BoltzmannMachine
from ..machine import compile as compile_graph
from .comparison import _columns, fit_options_for, score, train_model

__all__ = ["PruneResult", "prune"]


@dataclass
class PruneResult:
    """What :func:`prune` did.

    Attributes
    ----------
    graph: the pruned graph, with the (refitted) weights and biases as attributes.
    model: the pruned model (compiled; refitted on ``train`` when ``refit=True``).
    dropped: the removed edges (name pairs), weakest first.
    kept: the number of edges kept.
    n_params_before, n_params_after: free parameters (biases + weights).
    test_nll_before, test_nll_after: held-out NLL (nats per row) of the model given and
        of the pruned one (None without ``test``).
    cost: ``test_nll_after - test_nll_before`` (positive: pruning lost likelihood).
    nll_method: ``"exact"`` or ``"ais"``.
    """

    graph: nx.Graph
    model: Any
    dropped: list[tuple]
    kept: int
    n_params_before: int
    n_params_after: int
    test_nll_before: float | None = None
    test_nll_after: float | None = None
    cost: float | None = None
    nll_method: str | None = None
    details: dict = field(default_factory=dict, repr=False)


def _check_fraction(fraction: Any) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or \
            not 0.0 <= float(fraction) <= 1.0:
        raise ArgumentError(f"fraction must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def _magnitude(w: np.ndarray, threshold: Any, fraction: Any, keep: Any) -> np.ndarray:
    """Mask of edges to drop, weakest ``|W|`` first."""
    given = [x is not None for x in (threshold, fraction, keep)]
    if sum(given) != 1:
        raise ArgumentError("prune(method='magnitude') needs exactly one of threshold= (drop "
                        "|W| below it), fraction= (drop that share of the edges) or keep= "
                        "(keep that many of the strongest)")
    mag = np.abs(w)
    order = np.argsort(mag, kind="stable")
    drop = np.zeros(len(w), dtype=bool)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
                not threshold >= 0:
            raise ArgumentError(f"threshold must be a number >= 0, got {threshold!r}")
        drop = mag < float(threshold)
    elif fraction is not None:
        drop[order[:round(_check_fraction(fraction) * len(w))]] = True
    else:
        if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 0:
            raise ArgumentError(f"keep must be an integer >= 0, got {keep!r}")
        drop[order[:max(0, len(w) - int(keep))]] = True
    return drop


def _l1_path(model, train: Any, lam: float, steps: int, lr: float, method: str,
             fit_options: Any, seed: int | None) -> np.ndarray:
    """Proximal gradient on ``NLL + lam sum_e |W_e|``: each step is one epoch of
    ``model.fit`` by SGD (step ``lr``) followed by soft-thresholding the weights by
    ``lr * lam``. Returns the final weights."""
    opts = fit_options_for(method, fit_options)
    opts.update(epochs=1, lr=lr, optimizer="sgd", momentum=0.0)
    for step in range(steps):
        model.fit(train, method=method, progress=False, init_bias="keep",
                  seed=None if seed is None else seed + step, **opts)
        with torch.no_grad():
            w = model.weight
            w.copy_(torch.sign(w) * (w.abs() - lr * lam).clamp_min(0.0))
    return model.weight.detach().cpu().double().numpy()


def prune(model, train: Any = None, test: Any = None, *, method: str = "magnitude",
          threshold: float | None = None, fraction: float | None = None,
          keep: int | None = None, lam: float | None = None, steps: int = 100,
          lr: float = 0.05, refit: bool = True, drop_isolated_hidden: bool = True,
          train_method: str = "auto", fit_options: Any = None, seed: int | None = 0,
          reverse: bool = True, progress: bool = True) -> PruneResult:
    """Drop the weak edges of a trained model; report the held-out cost.

    ``method="magnitude"`` drops the edges with the smallest ``|W_ij|``: those under
    ``threshold``, the weakest ``fraction`` of them, or all but the ``keep`` strongest.
    ``method="l1"`` runs a penalised refit first, proximal gradient on
    ``NLL(train) + lam sum_e |W_e|`` (``steps`` epochs of ``model.fit`` by SGD with step
    ``lr``, each followed by soft-thresholding ``W <- sign(W) max(|W| - lr lam, 0)``;
    exact gradients where the plan is exact-feasible, PCD otherwise), and drops the
    edges it sets to zero.

    The pruned graph keeps the learned weights and biases; with ``refit=True`` (and
    ``train``) it is compiled and retrained (same rules as
    :func:`~pgm_boltz.structure.compare`). Hidden nodes left without edges are removed
    (``drop_isolated_hidden``). With ``test`` the held-out NLL of both models is
    measured (exact or AIS) and ``cost = test_nll_after - test_nll_before``.
    The model given is not modified.

    >>> import pgm_boltz as pb
    >>> G = pb.graphs.lattice(2, 3, coupling=0.8)
    >>> G.add_edge((0, 0), (1, 2), weight=0.01)          # a weak extra coupling
    >>> m = pb.compile(G, seed=0)
    >>> res = prune(m, threshold=0.1, refit=False, progress=False)
    >>> [sorted(e) for e in res.dropped], res.kept
    ([[(0, 0), (1, 2)]], 7)
    """
    if not isinstance(model, BoltzmannMachine):
        raise ArgumentError(f"prune needs a compiled model (pb.compile(G)), got "
                        f"{type(model).__name__}")
    if method not in ("magnitude", "l1"):
        raise ArgumentError(f"unknown method {method!r}; use 'magnitude' or 'l1'")
    names = list(model.visible_nodes)
    tr = None if train is None else _columns(train, names, "train")
    te = None if test is None else _columns(test, names, "test")
    if refit and tr is None and method == "magnitude":
        refit = False
    details: dict = {}
    if method == "magnitude":
        w = model.weight.detach().cpu().double().numpy()
        drop = _magnitude(w, threshold, fraction, keep)
    else:
        if tr is None:
            raise ArgumentError("prune(method='l1') needs train data")
        if lam is None or isinstance(lam, bool) or not isinstance(lam, (int, float)) or \
                not lam > 0:
            raise ArgumentError(f"prune(method='l1') needs lam > 0 (the L1 strength), got "
                            f"{lam!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ArgumentError(f"steps must be a positive integer, got {steps!r}")
        work = copy.deepcopy(model)
        m = train_method if train_method != "auto" else (
            "exact" if work.plan.exact_feasible else "pcd")
        w = _l1_path(work, tr, float(lam), steps, float(lr), m, fit_options, seed)
        drop = w == 0
        details["l1_weights"] = w
    order = np.argsort(np.abs(model.weight.detach().cpu().double().numpy()), kind="stable")
    dropped = [model.edges[i] for i in order if drop[i]]
    G = model.to_networkx()
    G.remove_edges_from(dropped)
    if drop_isolated_hidden:
        G.remove_nodes_from([v for v in model.hidden_nodes if G.degree(v) == 0])
    n_before = int(model.n_nodes + len(model.edges))
    pruned = compile_graph(G, seed=seed, dtype=model.dtype)
    if refit:
        used, secs = train_model(pruned, tr, train_method, fit_options, seed, progress)
        details.update(refit_method=used, refit_seconds=secs)
        G = pruned.to_networkx()
    result = PruneResult(graph=G, model=pruned, dropped=dropped, kept=len(pruned.edges),
                         n_params_before=n_before,
                         n_params_after=int(pruned.n_nodes + len(pruned.edges)),
                         details=details)
    if te is not None:
        base = tr if tr is not None else te
        before = score(model, base, te, seed=seed, reverse=reverse)
        after = score(pruned, base, te, seed=seed, reverse=reverse)
        result.test_nll_before = before["test_nll"]
        result.test_nll_after = after["test_nll"]
        result.cost = after["test_nll"] - before["test_nll"]
        result.nll_method = after["nll_method"]
        details.update(before=before, after=after)
    return result
