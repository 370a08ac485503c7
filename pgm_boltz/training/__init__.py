"""Training: the loop and divergence guard (:mod:`.fit`), exact maximum likelihood
(:mod:`.exact`), CD-k and PCD (:mod:`.contrastive`). Methods are objectives in a
registry (:func:`register_objective`).

>>> from pgm_boltz.training import method_names
>>> method_names()
['auto', 'exact', 'cd', 'pcd']
"""

from . import contrastive, exact
from .exact import ExactObjective, exact_nll
from .fit import (
    DivergenceGuard,
    FitResult,
    fit,
    make_optimizer,
    method_names,
    register_objective,
)

__all__ = ["DivergenceGuard", "ExactObjective", "FitResult", "contrastive", "exact",
           "exact_nll", "fit", "make_optimizer", "method_names", "register_objective"]
