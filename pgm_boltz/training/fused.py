"""Fused CD/PCD epochs for RBMs: the fit loop's way around per-update dispatch.

For an RBM (two colour classes, visible and hidden, one complete coupling block, units
in arithmetic-progression domains) trained by CD-k or PCD-k with SGD and the Gibbs
sampler, the update is known in closed form (:mod:`.cd_kernels` gives the maths), so an
epoch needs no autograd graph, no optimiser object and no Python per update:

- on CPU, small and medium models run whole epochs in the numba kernel
  (:func:`.cd_kernels.cd_epochs`; per-chain random streams, serial, so results do not
  depend on the thread count);
- large models, other devices and data-parallel training run :class:`.cd_torch.TorchCD`
  (a few matmuls into preallocated buffers per update; data-parallel, one
  ``all_reduce`` of the statistics per update);

chosen by :func:`.cd_torch.choose_cd_backend`. Both work in place on the model's
parameters (``W`` is a view of ``model.weight``, the biases views of ``model.bias``)
and on the objective's persistent chains. The SGD rule is ``torch.optim.SGD``'s
(dampening 0, no Nesterov, weight decay on every parameter); momentum starts at zero in
every ``fit`` call, as a fresh torch optimiser does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .cd_kernels import cd_epochs, chain_streams, reconstruction_error, unit_arrays
from .cd_torch import TorchCD, choose_cd_backend

if TYPE_CHECKING:
    from ..model import EnergyModel
    from .fit import BatchPlan

__all__ = ["FusedRBM", "fusable"]


def fusable(model: EnergyModel, layout: Any, sampler: str) -> bool:
    """Whether CD/PCD of ``model`` can run fused: an RBM layout, the Gibbs sampler,
    hidden units, every unit an arithmetic progression without a quadratic self-term
    (precision), float32/float64 parameters.

    >>> import pgm_boltz as pb
    >>> from pgm_boltz.training.contrastive import _RBMLayout
    >>> m = pb.compile(pb.graphs.rbm(4, 2), engine="block-gibbs")
    >>> fusable(m, _RBMLayout(m), "gibbs"), fusable(m, _RBMLayout(m), "sequential")
    (True, False)
    """
    return (bool(layout.ok) and sampler == "gibbs" and model.n_hidden > 0
            and model.visible_domains.all_arith() and model.hidden_domains.all_arith()
            and model.log_precision is None and model.dtype in (torch.float32, torch.float64))


class FusedRBM:
    """A fit runner: ``runner(perm)`` does one epoch of CD-k / PCD-k SGD updates over the
    training rows in the order ``perm`` (this rank's rows, CPU tensor) and returns the
    number of updates done (fewer than the epoch's: the parameters became non-finite).

    ``chains`` (PCD) are the objective's joint-state chains (C, n_nodes), updated in
    place after every epoch; ``world`` (data-parallel) with ``neg_total`` chains on all
    ranks.
    """

    def __init__(self, model: EnergyModel, layout: Any, train: torch.Tensor, *, k: int,
                 lr: float, momentum: float, weight_decay: float, batches: BatchPlan,
                 generator: torch.Generator | None, chains: torch.Tensor | None = None,
                 world: Any = None, neg_total: int | None = None) -> None:
        n_v, n_h = layout.shape
        self.layout, self.batches, self.chains, self.world = layout, batches, chains, world
        self.model = model
        self.train = train.contiguous()
        bs = max(b1 - b0 for b0, b1 in batches.bounds)
        self.bs = bs
        persistent = chains is not None
        C = chains.shape[0] if persistent else None
        self.backend = "torch" if world is not None else choose_cd_backend(
            n_v, n_h, bs, model.device, n_chains=C)
        W = model.weight.detach().view(n_v, n_h)
        bv, bh = model.bias.detach()[layout.vs], model.bias.detach()[layout.hs]
        vis = unit_arrays(*model.visible_domains.kinds_array())
        hid = unit_arrays(*model.hidden_domains.kinds_array())
        self.max_value = float(max(np.abs(np.concatenate([u.lo, u.lo + u.step * (u.levels - 1)]))
                                   .max() for u in (vis, hid)))
        self.cv = chains[:, layout.vs].contiguous() if persistent else None
        self.ch = chains[:, layout.hs].contiguous() if persistent else None
        if self.backend == "numba":
            self.np_args = (W.numpy(), bv.numpy(), bh.numpy(), self.train.numpy())
            self.rng = chain_streams(max(bs, C or 0), generator)
            self.buffers = None if momentum == 0 else tuple(
                np.zeros(a.shape, a.dtype) for a in self.np_args[:3])
            self.kw = dict(batch_size=bs, lr=lr, k=k, momentum=momentum,
                           weight_decay=weight_decay, visible=vis, hidden=hid,
                           chains=None if not persistent else (self.cv.numpy(),
                                                               self.ch.numpy()))
        else:
            bufs = None if momentum == 0 else (torch.zeros_like(W), torch.zeros_like(bv),
                                               torch.zeros_like(bh))
            self.cd = TorchCD(W, bv, bh, batch_size=bs, lr=lr, k=k, momentum=momentum,
                              weight_decay=weight_decay,
                              chains=None if not persistent else (self.cv, self.ch),
                              momentum_buffers=bufs, visible=vis, hidden=hid,
                              generator=generator,
                              reduce=None if world is None else world.sum_,
                              neg_total=neg_total)

    def __call__(self, perm: torch.Tensor) -> int:
        if self.backend == "numba":
            W, bv, bh, data = self.np_args
            done = cd_epochs(W, bv, bh, data, perm.numpy()[None], self.rng,
                             buffers=self.buffers, **self.kw)
        elif self.world is None:
            done = self.cd.run(self.train, perm[None])
        else:
            done = self.cd.run_steps(self.train, perm, self.batches.bounds,
                                     self.batches.totals)
        if self.chains is not None:
            with torch.no_grad():
                self.chains[:, self.layout.vs] = self.cv
                self.chains[:, self.layout.hs] = self.ch
        if done == self.batches.steps and not self._energy_finite():
            return 0
        return done

    def recon(self, values: torch.Tensor) -> float | None:
        """The reconstruction error of ``values`` (rows of visible values) in the numba
        kernel when this runner uses it (small models: no torch thread hand-offs for a
        few small products), else None."""
        if self.backend != "numba":
            return None
        W, bv, bh, _ = self.np_args
        V = values.detach().cpu().numpy()
        return reconstruction_error(W, bv, bh, V, self.kw["visible"], self.kw["hidden"])

    def _energy_finite(self) -> bool:
        """Whether ``|E(x)| <= M^2 sum|W| + M sum|b|`` (``M`` the largest unit value)
        stays finite in the parameters' dtype: the fused path has no surrogate loss whose
        overflow would flag a run that blew up, so the bound stands in for it."""
        W, b = self.model.weight.detach(), self.model.bias.detach()
        bound = W.abs().sum() * self.max_value ** 2 + b.abs().sum() * self.max_value
        return bool(torch.isfinite(bound))
