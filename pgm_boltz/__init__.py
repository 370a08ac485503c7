"""pgm_boltz: graph-first Boltzmann machines.

Draw the model as a ``networkx.Graph`` (nodes with ``role`` and ``domain``), compile it,
and train, sample, score it, or use it as a Pyro distribution.

>>> import pgm_boltz as pb
>>> model = pb.compile(pb.graphs.rbm(6, 3), seed=0)
>>> model.plan.engine
'exact'
"""

from __future__ import annotations

from typing import Any

import torch

from . import datasets, graphs, hopfield
from .compiler import DEFAULT_MAX_EXACT_STATES, Plan
from .compiler import analyse as _analyse
from .errors import DataError, DivergenceError, GraphError, IntractableError, PgmBoltzError
from .io import load, save
from .model import BoltzmannMachine, LogPartition

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_EXACT_STATES",
    "BoltzmannMachine",
    "DataError",
    "DivergenceError",
    "GraphError",
    "IntractableError",
    "LogPartition",
    "PgmBoltzError",
    "Plan",
    "compile",
    "datasets",
    "diagnostics",
    "evaluate",
    "graphs",
    "hopfield",
    "load",
    "pyro",
    "save",
]


def compile(
    G: Any,
    engine: str = "auto",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    *,
    storage: str = "auto",
    max_exact_states: int = DEFAULT_MAX_EXACT_STATES,
    seed: int | None = None,
    init_scale: float = 0.01,
) -> BoltzmannMachine:
    """Compile a declared graph into a :class:`BoltzmannMachine`.

    The compiler validates the graph, colours it (2 classes when bipartite, greedy
    otherwise), sizes the exact work (enumerate a vertex cover, sum the independent rest
    out in closed form) and picks the engine: ``exact`` under ``max_exact_states``
    enumerated states, else ``block-gibbs`` (bipartite) or ``chromatic-gibbs``.
    Weights not declared on edges start as ``N(0, init_scale^2)`` draws (seeded); biases
    not declared start at 0.

    Parameters
    ----------
    G: ``networkx.Graph`` with node attributes ``role`` and optional ``domain``,
        ``levels``, ``bias``, and optional edge ``weight``.
    engine: ``"auto"``, ``"exact"``, ``"block-gibbs"`` or ``"chromatic-gibbs"``.
    device, dtype: where the parameters live (float32 on CPU by default).
    storage: couplings ``"dense"``, ``"sparse"`` or ``"auto"``.
    max_exact_states: the exact engine's threshold.
    seed: seed of the initial weights.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.lattice(3, 3), seed=0)
    >>> print(model.plan)  # doctest: +ELLIPSIS
    Plan: engine=exact
    ...
    """
    spec, plan = _analyse(G, engine=engine, storage=storage,
                          max_exact_states=max_exact_states)
    if device is not None and torch.device(device).type == "cuda" and \
            not torch.cuda.is_available():
        raise GraphError("device='cuda' was asked for but torch sees no CUDA device; "
                         "use device='cpu'")
    model = BoltzmannMachine(spec, plan, device=device, dtype=dtype, seed=seed,
                             init_scale=init_scale)
    model._requested_engine = engine
    return model


def __getattr__(name: str) -> Any:
    """Lazy public names: ``pb.pyro`` (imports Pyro), ``pb.estimate``, ``pb.structure``,
    ``pb.evaluate``, ``pb.diagnostics``."""
    if name in ("pyro", "estimate", "structure"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("evaluate", "diagnostics"):
        from . import estimate

        return getattr(estimate, name)
    raise AttributeError(f"module 'pgm_boltz' has no attribute {name!r}")
