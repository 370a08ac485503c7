"""Exact maximum likelihood: ``loss = mean_batch F(v) + log Z``.

Its gradient is exactly ``<φ>_model - <φ>_data``: the data side through the free
energy (hidden units summed out), the model side through the exact engine's ``log Z``,
whose autograd gradient is the exact moments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._validation import check_kwargs
from .fit import register_objective

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
    ``model.fit(data, method="exact")``; no options."""

    name = "exact"

    def __init__(self, model: EnergyModel, state: Any = None, **kwargs: Any) -> None:
        extra = {k: v for k, v in kwargs.items()
                 if k not in ("train", "generator", "seed", "batch_size")}
        check_kwargs("fit(method='exact')", extra)
        self.model = model
        model.plan.require_exact("fit(method='exact')")
        model.plan.require_exact_free_energy("fit(method='exact')")

    def loss(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return exact_nll(self.model, batch)

    def after_step(self) -> None:
        pass

    def epoch_metrics(self, train: torch.Tensor, val: torch.Tensor | None) -> dict:
        with torch.no_grad():
            log_z = self.model.exact_log_partition()
            out = {"nll": float(exact_nll(self.model, train, log_z))}
            if val is not None:
                out["val_nll"] = float(exact_nll(self.model, val, log_z))
        return out

    def state(self) -> None:
        """Exact training keeps no state between fits."""
        return None


register_objective("exact", ExactObjective)
