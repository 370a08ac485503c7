"""Training: the loop and divergence guard (:mod:`.fit`), exact maximum likelihood
(:mod:`.exact`), CD-k and PCD (:mod:`.contrastive`), and their closed-form RBM updates
run as fused epochs (:mod:`.fused`: the numba kernel :mod:`.cd_kernels` and the torch
path :mod:`.cd_torch`). Methods are objectives in a registry
(:func:`register_objective`); under a ``torch.distributed`` process group ``fit`` trains
data-parallel (:mod:`pgm_boltz.distributed`).

>>> from pgm_boltz.training import method_names
>>> method_names()
['auto', 'exact', 'cd', 'pcd']
"""

from . import exact  # registers "exact" before "cd" and "pcd"

# isort: split
from . import contrastive
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
