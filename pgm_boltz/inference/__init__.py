"""Inference on compiled models: sampling (:mod:`.sampling`), log Z by AIS
(:mod:`.ais`), scores (:mod:`.scores`) and sampler diagnostics (:mod:`.diagnostics`).

>>> from pgm_boltz.inference import evaluate, diagnostics, log_partition_bracket
"""

from .ais import log_partition, log_partition_bracket, schedule
from .diagnostics import diagnostics
from .sampling import DEFAULT_STEPS, run_chains, sample
from .scores import evaluate, pseudo_log_likelihood, reconstruction_error

__all__ = ["DEFAULT_STEPS", "diagnostics", "evaluate", "log_partition",
           "log_partition_bracket", "pseudo_log_likelihood", "reconstruction_error",
           "run_chains", "sample", "schedule"]
