"""Compiler: validate a declared graph (:mod:`.validate`), colour it (:mod:`.colour`),
cost its exact work with every engine and choose (:mod:`.plan`).

>>> import pgm_boltz as pb
>>> spec, plan = analyse(pb.graphs.rbm(4, 2))
>>> plan.engine
'exact'
"""

from .colour import colour
from .plan import DEFAULT_MAX_EXACT_STATES, ENGINES, STORAGES, Plan, analyse, hidden_problem
from .validate import Spec, validate

__all__ = ["DEFAULT_MAX_EXACT_STATES", "ENGINES", "STORAGES", "Plan", "Spec", "analyse",
           "colour", "hidden_problem", "validate"]
