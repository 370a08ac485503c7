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

__all__ = ["Bracket", "Diagnostics", "Evaluation", "LogPartition", "TemperingStats"]


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
    #: what the sampler records about its chains (parallel tempering:
    #: :class:`TemperingStats`), None for samplers that keep nothing
    sampler_statistics: object = None

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
        if self.sampler_statistics is not None:
            lines.append(str(self.sampler_statistics))
        return "\n".join(lines)


@dataclass
class TemperingStats:
    """What a parallel-tempering sampler records about its chains: swap rates since the
    (adaptive) ladder last moved, the rest since its number of levels last changed.

    Attributes
    ----------
    betas: the ladder ``1 = β_0 > ... > β_R`` (R + 1,).
    swap_rates: accepted / attempted exchanges of each neighbouring pair ``(r, r + 1)``
        (R,); NaN for a pair not yet attempted. swap_attempts: the attempts (R,).
    round_trips: completed trips ``β_0 → β_R → β_0`` of replicas, over all chains.
    sweeps: sweeps counted; n_chains: the chains (each with R + 1 replicas).
    flow: per level, the fraction of replicas (of those that have visited an end) whose
        last end was ``β_0`` (R + 1,): 1 at β_0, 0 at β_R, in between a straight line
        for a well-spaced ladder (Katzgraber et al. 2006).
    adapting: whether an adaptive ladder is still adapting.

    >>> import torch
    >>> s = TemperingStats(torch.tensor([1.0, 0.0]), torch.tensor([0.4]),
    ...                    torch.tensor([100.0]), 3, 200, 1, torch.tensor([1.0, 0.0]), False)
    >>> s.round_trip_rate
    0.015
    """

    betas: torch.Tensor
    swap_rates: torch.Tensor
    swap_attempts: torch.Tensor
    round_trips: int
    sweeps: int
    n_chains: int
    flow: torch.Tensor
    adapting: bool = False

    @property
    def n_levels(self) -> int:
        """Replicas per chain, ``R + 1``."""
        return len(self.betas)

    @property
    def round_trip_rate(self) -> float:
        """Round trips per chain per sweep (NaN before any sweep)."""
        return self.round_trips / (self.n_chains * self.sweeps) if self.sweeps else math.nan

    def __str__(self) -> str:
        rates = ", ".join(f"{float(r):.2f}" for r in self.swap_rates)
        betas = ", ".join(f"{float(b):.3g}" for b in self.betas)
        return (f"parallel tempering: {self.n_levels} levels per chain × {self.n_chains} "
                f"chains, {self.sweeps} sweeps{' (adapting)' if self.adapting else ''}\n"
                f"  betas [{betas}]\n  swap rates [{rates}]\n"
                f"  round trips {self.round_trips} ({self.round_trip_rate:.2e} per chain "
                "per sweep)")
