"""Exact maximum likelihood: ``loss = mean_batch F(v) + log Z``.

Its gradient is exactly ``<φ>_model - <φ>_data``: the data side through the free
energy (hidden units summed out), the model side through the exact engine's ``log Z``,
whose autograd gradient is the exact moments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._validation import check_kwargs
from .fit import mean_over_ranks, register_objective

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["ExactObjective", "exact_nll"]


def exact_nll(model: EnergyModel, values: torch.Tensor, log_z: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Mean exact negative log-likelihood ``mean F(v) + log Z`` of visible values.

    >>> import pgm_boltz as pb, torch
    >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
    >>> float(exact_nll(m, torch.zeros(1, 2))) > 0
    True
    """
    if log_z is None:
        log_z = model.exact_log_partition()
    return model.free_energy_values(values).mean() + log_z


class ExactObjective:
    """Exact ML: ``loss = mean_batch F(v) + log Z``, gradient = model - data moments.
    ``model.fit(data, method="exact")``; no options.

    Data-parallel (``world``): this rank's share of a step is ``share * loss`` (``share``
    = its rows over the step's rows on all ranks), so the gradients summed over ranks
    are those of the mean over the union of the batches; ``nll`` / ``val_nll`` are the
    means over all ranks' rows."""

    name = "exact"
    data_parallel = True

    def __init__(self, model: EnergyModel, state: Any = None, world: Any = None,
                 **kwargs: Any) -> None:
        extra = {k: v for k, v in kwargs.items()
                 if k not in ("train", "generator", "seed", "batch_size")}
        check_kwargs("fit(method='exact')", extra)
        self.model = model
        self.world = world
        model.plan.require_exact("fit(method='exact')")
        model.plan.require_exact_free_energy("fit(method='exact')")

    def loss(self, batch: torch.Tensor, generator: torch.Generator | None,
             share: float | None = None) -> torch.Tensor:
        loss = exact_nll(self.model, batch)
        return loss if share is None else loss * share

    def after_step(self) -> None:
        pass

    def epoch_metrics(self, train: torch.Tensor, val: torch.Tensor | None) -> dict:
        m = self.model
        with torch.no_grad():
            log_z = float(m.exact_log_partition())
            pairs = {"nll": (float(m.free_energy_values(train).mean()), train.shape[0])}
            if val is not None:
                pairs["val_nll"] = (float(m.free_energy_values(val).mean()), val.shape[0])
        return {k: v + log_z for k, v in mean_over_ranks(self.world, pairs).items()}

    def state(self) -> None:
        """Exact training keeps no state between fits."""
        return None


register_objective("exact", ExactObjective)
