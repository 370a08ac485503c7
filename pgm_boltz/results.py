"""Result records returned by estimation and evaluation: plain data, no behaviour beyond
printing. Every layer may import them.

>>> LogPartition(1.5, 0.0).value
1.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

__all__ = ["Bracket", "Diagnostics", "Evaluation", "LogPartition"]


class LogPartition(NamedTuple):
    """A log-partition value with its standard error (0 when exact)."""

    value: float
    stderr: float


class Bracket(NamedTuple):
    """``log Z`` bracketed by AIS (``lower``, a stochastic lower bound) and reverse AIS
    (``upper``, a stochastic upper bound); both are :class:`LogPartition` estimates."""

    lower: LogPartition
    upper: LogPartition


@dataclass
class Evaluation:
    """What :func:`evaluate` measures (means over the data rows).

    Attributes
    ----------
    nll: mean ``-log P(v)`` per row (nats), ``= mean F(v) + log Z``.
    nll_method: how log Z was obtained: ``"exact"``, ``"ais"`` or ``"given"``.
    nll_stderr: the standard error of ``nll`` from the log Z estimate (0 when exact).
    nll_bracket: ``(low, high)`` NLL from AIS and reverse AIS (None unless ``"ais"``
        with ``reverse=True``).
    log_partition: the log Z used; log_partition_bracket: the :class:`Bracket` or None.
    pseudo_log_likelihood: mean over rows of ``sum_i log P(v_i | v_-i)``.
    reconstruction_error: mean squared error of one up-down mean-field pass.
    n_rows: number of data rows.
    """

    nll: float
    nll_method: str
    nll_stderr: float
    log_partition: LogPartition
    pseudo_log_likelihood: float
    reconstruction_error: float
    n_rows: int
    nll_bracket: tuple[float, float] | None = None
    log_partition_bracket: Bracket | None = None

    def as_dict(self) -> dict:
        """A plain dict of the fields (tuples kept as tuples)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        lines = [f"NLL {self.nll:.4f} nats/row ({self.nll_method}"
                 + (f", ± {self.nll_stderr:.4f}" if self.nll_stderr else "") + ")"]
        if self.nll_bracket is not None:
            lines.append(f"  bracket [{self.nll_bracket[0]:.4f}, {self.nll_bracket[1]:.4f}] "
                         "(AIS, reverse AIS)")
        lines.append(f"log Z {self.log_partition.value:.4f}")
        lines.append(f"pseudo-log-likelihood {self.pseudo_log_likelihood:.4f} nats/row")
        lines.append(f"reconstruction error {self.reconstruction_error:.5f} (MSE)")
        return "\n".join(lines)


@dataclass
class Diagnostics:
    """Effective sample sizes and split R-hat of per-step statistics of many chains.

    ``ess[name]`` and ``r_hat[name]`` have the statistic's own shape (a scalar for the
    energy, (n_visible,) for the visible units). ESS is NaN for a statistic constant
    within some chain (no variance, nothing to measure); R-hat is NaN for one constant
    everywhere and infinite for one constant within each chain but not across chains.
    """

    ess: dict[str, torch.Tensor]
    r_hat: dict[str, torch.Tensor]
    n_chains: int
    n_steps: int
    statistics: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def min_ess(self) -> float:
        """The smallest ESS over all statistics (NaNs ignored)."""
        vals = [t[torch.isfinite(t)] for t in self.ess.values()]
        vals = [v for v in vals if v.numel()]
        return float(torch.cat([v.flatten() for v in vals]).min()) if vals else math.nan

    @property
    def max_r_hat(self) -> float:
        """The largest split R-hat over all statistics (NaNs ignored; inf kept)."""
        vals = [t[~torch.isnan(t)] for t in self.r_hat.values()]
        vals = [v for v in vals if v.numel()]
        return float(torch.cat([v.flatten() for v in vals]).max()) if vals else math.nan

    @property
    def converged(self) -> bool:
        """``max_r_hat < 1.1`` (the conventional threshold)."""
        return bool(self.max_r_hat < 1.1)

    def __str__(self) -> str:
        lines = [f"{self.n_chains} chains × {self.n_steps} steps"]
        for name in self.ess:
            e, r = self.ess[name], self.r_hat[name]
            if e.numel() == 1:
                lines.append(f"  {name}: ESS {float(e):.1f}, R-hat {float(r):.3f}")
            else:
                lines.append(f"  {name}: ESS min {float(e.nan_to_num(math.inf).min()):.1f} "
                             f"/ median {float(e.nanmedian()):.1f}, "
                             f"R-hat max {float(r.nan_to_num(0, posinf=math.inf).max()):.3f}")
        lines.append(f"  converged (max R-hat < 1.1): {self.converged}")
        return "\n".join(lines)
