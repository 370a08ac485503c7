"""Sampler diagnostics: effective sample sizes and split R-hat (``pyro.ops.stats``).

>>> import torch
>>> d = diagnostics(torch.randn(4, 200, generator=torch.Generator().manual_seed(0)))
>>> d.converged
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._validation import check_bool, check_int, check_seed, make_generator, progress_bar
from ..errors import ArgumentError
from ..model import EnergyModel
from ..results import Diagnostics
from ..samplers import make_sampler

__all__ = ["diagnostics"]


def _stats_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from pyro.ops.stats import effective_sample_size, split_gelman_rubin

    x = x.double().cpu()
    shape = x.shape[2:]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    # a statistic constant within a chain has no ESS (0/0); pyro's batched ESS would turn
    # every column NaN, so such columns are left out and reported as NaN. R-hat is
    # infinite for columns constant within every chain but different between chains
    # (chains frozen in different modes), NaN for columns constant everywhere.
    var = flat.var(dim=1)
    ok_ess = (var > 0).all(0)
    ok_rhat = (var > 0).any(0)
    ess = torch.full((flat.shape[2],), math.nan, dtype=torch.float64)
    rhat = torch.full((flat.shape[2],), math.nan, dtype=torch.float64)
    if ok_ess.any():
        ess[ok_ess] = effective_sample_size(flat[:, :, ok_ess], chain_dim=0, sample_dim=1)
    if ok_rhat.any():
        rhat[ok_rhat] = split_gelman_rubin(flat[:, :, ok_rhat], chain_dim=0, sample_dim=1)
    frozen = ~ok_rhat & (flat.mean(1).var(0, correction=0) > 0)
    rhat[frozen] = math.inf
    return ess.reshape(shape), rhat.reshape(shape)


def diagnostics(samples_or_model: Any, *, n_chains: int = 8, steps: int = 1000,
                burn_in: int = 100, seed: int | None = None, progress: bool = False,
                sampler: str = "gibbs", **sampler_options: Any) -> Diagnostics:
    """ESS and split R-hat (``pyro.ops.stats``) of chain statistics, or of a model's chains.

    - Given a tensor/array of shape ``(n_chains, n_steps, ...)`` (one statistic recorded
      per chain and step): ESS and R-hat of each trailing element, under the name ``"x"``.
    - Given a dict of such tensors: the same, per name.
    - Given a model: runs ``n_chains`` chains of ``sampler`` (default Gibbs; options
      such as ``backend`` pass through) from uniform (over-dispersed) starts for
      ``burn_in + steps`` sweeps and records, after the burn-in, the joint energy
      ``E(x)`` (``"energy"``) and every visible unit's value (``"visible"``, shape
      (n_visible,)) at each sweep. What the sampler records about its chains (parallel
      tempering's swap rates and round trips) is ``sampler_statistics``.

    ESS counts the draws worth of independent samples over all chains (≈ n_chains ×
    n_steps for independent draws); split R-hat ≈ 1 for mixed chains and > 1.1 when chains
    disagree, e.g. stuck in different modes.

    >>> import torch
    >>> d = diagnostics(torch.randn(4, 200, generator=torch.Generator().manual_seed(0)))
    >>> 600 < float(d.ess["x"]) < 1000, abs(float(d.r_hat["x"]) - 1) < 0.05
    (True, True)
    """
    if isinstance(samples_or_model, EnergyModel):
        return _model_diagnostics(samples_or_model, n_chains=n_chains, steps=steps,
                                  burn_in=burn_in, seed=seed, progress=progress,
                                  sampler=sampler, sampler_options=sampler_options)
    stats = samples_or_model if isinstance(samples_or_model, dict) else {
        "x": samples_or_model}
    tensors = {}
    for name, val in stats.items():
        try:
            t = torch.as_tensor(np.asarray(val.detach().cpu() if torch.is_tensor(val)
                                           else val, dtype=np.float64))
        except (TypeError, ValueError):
            raise ArgumentError(f"statistic {name!r} is not a numeric array") from None
        if t.ndim < 2:
            raise ArgumentError(f"statistic {name!r} must have shape (n_chains, n_steps, ...), "
                            f"got {tuple(t.shape)}")
        if t.shape[1] < 4:
            raise ArgumentError(f"statistic {name!r} has {t.shape[1]} steps; split R-hat needs "
                            "at least 4")
        if not torch.isfinite(t).all():
            raise ArgumentError(f"statistic {name!r} contains non-finite values")
        tensors[name] = t
    if not tensors:
        raise ArgumentError("diagnostics needs at least one statistic")
    shapes = {tuple(t.shape[:2]) for t in tensors.values()}
    if len(shapes) != 1:
        raise ArgumentError(f"statistics disagree on (n_chains, n_steps): {sorted(shapes)}")
    ess, rhat = {}, {}
    for name, t in tensors.items():
        ess[name], rhat[name] = _stats_of(t)
    nc, ns = shapes.pop()
    return Diagnostics(ess, rhat, nc, ns, tensors)


def _model_diagnostics(model: EnergyModel, n_chains: int, steps: int, burn_in: int,
                       seed: int | None, progress: bool, sampler: str,
                       sampler_options: dict) -> Diagnostics:
    n_chains = check_int("n_chains", n_chains, 1)
    steps = check_int("steps", steps, 4)
    burn_in = check_int("burn_in", burn_in, 0)
    check_bool("progress", progress)
    gen = make_generator(check_seed(seed), model.device)
    s = make_sampler(model, sampler, **sampler_options)
    x = s.init(n_chains, gen)
    vi = model.index("visible")
    energy = torch.empty(n_chains, steps, dtype=torch.float64)
    visible = torch.empty(n_chains, steps, model.n_visible, dtype=torch.float64)
    bar = progress_bar(burn_in + steps, "diagnostics", progress)
    with torch.no_grad():
        for t in range(burn_in + steps):
            s.sweep(x, 1, generator=gen)
            bar.update(1)
            if t >= burn_in:
                energy[:, t - burn_in] = model.energy(x).double().cpu()
                visible[:, t - burn_in] = x[:, vi].double().cpu()
    bar.close()
    stats = {"energy": energy, "visible": visible}
    ess, rhat = {}, {}
    for name, t in stats.items():
        ess[name], rhat[name] = _stats_of(t)
    return Diagnostics(ess, rhat, n_chains, steps, stats, s.statistics(x))
