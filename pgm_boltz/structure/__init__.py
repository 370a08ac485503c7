"""Research on model structure: learn graphs from data, compare structures, prune.

* :func:`learn` — which units interact? L1-penalised pseudo-likelihood (``"plm"``,
  neighbourhood selection) or interaction screening (``"rise"``, ``"logrise"``), all
  units at once in torch, with the penalty chosen from the data, AND/OR symmetrisation,
  an unpenalised refit and a Wald test on the refitted weights; returns a
  ``networkx.Graph`` ready for :func:`pgm_boltz.compile`.
* :func:`path` — the whole regularisation path (edges entering as ``lam`` falls), with
  a plot.
* :func:`compare` — train candidate graphs on the same data and rank them by held-out
  NLL (exact, or AIS with the reverse-AIS bracket); :func:`plot_comparison` draws it.
* :func:`prune` — drop weak edges of a trained model (by magnitude or an L1-penalised
  refit) and measure the held-out cost.

>>> import pgm_boltz as pb
>>> truth = pb.graphs.lattice(3, 3, coupling=0.6)
>>> data = pb.compile(truth, seed=0).sample(3000, seed=1)   # columns: truth's nodes
>>> G = pb.structure.learn(data, "spin", names=list(truth.nodes), progress=False)
>>> set(map(frozenset, G.edges)) == set(map(frozenset, truth.edges))
True
"""

from __future__ import annotations

from .comparison import COLUMNS, ComparisonTable, compare, plot_comparison
from .learning import METHODS, learn, rule_lambda
from .paths import CrossValidation, RegularizationPath, path
from .pruning import PruneResult, prune

__all__ = [
    "COLUMNS",
    "METHODS",
    "ComparisonTable",
    "CrossValidation",
    "PruneResult",
    "RegularizationPath",
    "compare",
    "learn",
    "path",
    "plot_comparison",
    "prune",
    "rule_lambda",
]
