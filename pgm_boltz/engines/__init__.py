"""Exact inference engines behind one seam (:mod:`.base`): the compiler asks each for its
cost and keeps the cheapest feasible one.

- :mod:`.enumeration`: enumerate a vertex cover, sum the rest out in closed form;
- :mod:`.elimination`: variable elimination over a tree decomposition (lattices and
  other sparse graphs of small treewidth).

>>> from pgm_boltz.engines import engine_names
>>> "enumeration" in engine_names()
True
"""

from . import elimination, enumeration
from .base import (
    DEFAULT_MAX_EXACT_STATES,
    DEFAULT_MAX_TABLE,
    Cost,
    ExactEngine,
    Limits,
    Problem,
    engine_names,
    get_engine,
    register_engine,
)

__all__ = [
    "DEFAULT_MAX_EXACT_STATES",
    "DEFAULT_MAX_TABLE",
    "Cost",
    "ExactEngine",
    "Limits",
    "Problem",
    "elimination",
    "engine_names",
    "enumeration",
    "get_engine",
    "register_engine",
]
