"""MCMC samplers behind one seam (:mod:`.base`): ``init``, ``sweep(x, n, beta)``.

- ``"block-gibbs"``: :class:`BlockGibbs`, torch, one draw per colour class (CPU/CUDA);
- ``"sequential"``: :class:`SequentialGibbs`, numba single-site sweeps (CPU);
- ``"gibbs"``: whichever of the two is faster for the model;
- ``"tempering"``: :class:`TemperingSampler`, parallel tempering (replica exchange) over
  either of them.

>>> from pgm_boltz.samplers import sampler_names
>>> sorted(sampler_names())
['block-gibbs', 'gibbs', 'sequential', 'tempering']
"""

from .base import (
    Beta,
    Block,
    Sampler,
    make_sampler,
    register_sampler,
    sampler_names,
    sampler_options,
)
from .block_gibbs import BlockGibbs
from .sequential import BACKENDS, SequentialGibbs, gibbs_sampler
from .tempering import TemperingSampler, TemperingState, tempering_statistics

__all__ = ["BACKENDS", "Beta", "Block", "BlockGibbs", "Sampler", "SequentialGibbs",
           "TemperingSampler", "TemperingState", "gibbs_sampler", "make_sampler",
           "register_sampler", "sampler_names", "sampler_options", "tempering_statistics"]
