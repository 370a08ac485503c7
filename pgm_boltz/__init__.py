"""pgm_boltz: graph-first Boltzmann machines.

Draw the model as a ``networkx.Graph`` (nodes with ``role`` and ``domain``), compile it,
and train, sample, score it, or use it as a Pyro distribution.

>>> import pgm_boltz as pb
>>> model = pb.compile(pb.graphs.rbm(6, 3), seed=0)
>>> model.plan.engine
'exact'
"""

from __future__ import annotations

import importlib
from typing import Any

from . import (
    datasets,
    distributed,
    domains,
    engines,
    graphs,
    hopfield,
    inference,
    samplers,
    training,
)
from ._version import __version__
from .compiler import DEFAULT_MAX_EXACT_STATES, Plan
from .errors import (
    ArgumentError,
    DataError,
    DivergenceError,
    FileError,
    GraphError,
    IntractableError,
    PgmBoltzError,
    PgmBoltzWarning,
)
from .inference import diagnostics, evaluate
from .io import load, save
from .machine import BoltzmannMachine, compile
from .results import Bracket, Diagnostics, Evaluation, LogPartition

__all__ = [
    "DEFAULT_MAX_EXACT_STATES",
    "ArgumentError",
    "BoltzmannMachine",
    "Bracket",
    "DataError",
    "Diagnostics",
    "DivergenceError",
    "Evaluation",
    "FileError",
    "GraphError",
    "IntractableError",
    "LogPartition",
    "PgmBoltzError",
    "PgmBoltzWarning",
    "Plan",
    "__version__",
    "compile",
    "datasets",
    "diagnostics",
    "distributed",
    "domains",
    "engines",
    "evaluate",
    "graphs",
    "hopfield",
    "inference",
    "load",
    "pyro",
    "samplers",
    "save",
    "sklearn",
    "training",
]

#: imported on first use (Pyro is slow, scikit-learn optional, structure learning large)
_LAZY = ("pyro", "sklearn", "structure")


def __getattr__(name: str) -> Any:
    """Lazy public modules: ``pb.pyro`` (imports Pyro), ``pb.sklearn`` (imports
    scikit-learn), ``pb.structure`` (structure learning)."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pgm_boltz' has no attribute {name!r}")
