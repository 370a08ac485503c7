"""Training: maximum likelihood by the exact gradient, or by CD-k / PCD estimates.

All methods lower ``KL(P0 || P)``, i.e. the negative log-likelihood of the data, whose
gradient with respect to a parameter θ with energy term ``-θ φ(s)`` is

    -d/dθ mean log P(v) = <φ>_model - <φ>_data,

the model correlation minus the data correlation. ``method="exact"`` computes both
sides exactly (the model side through the exact engine's autograd function);
``"cd"`` and ``"pcd"`` estimate the model side by block Gibbs sampling
(:mod:`pgm_boltz.training_gibbs`). Every method feeds a scalar surrogate loss to a torch
optimiser, so any optimiser works; a non-finite loss or parameter stops training with
:class:`~pgm_boltz.errors.DivergenceError` and restores the last good parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .domains import DomainVector
from .errors import DataError, DivergenceError

__all__ = ["data_bias", "fit", "make_optimizer"]

METHODS = ("auto", "exact", "cd", "pcd")


def data_bias(domains: DomainVector, mean_values: torch.Tensor, clip: float = 1e-3
              ) -> torch.Tensor:
    """Biases whose independent-unit model has the given means: ``E[s_i | b_i] = m_i``.

    For two-level units (binary, spin, or any ``{lo, lo + step}``) this is the closed form
    ``logit((m - lo) / step) / step`` (the log-odds for binary units, ``atanh(m)`` for
    spins); for multinary units it is found by bisection on the (monotone) conditional
    mean. Means are clipped ``clip`` away from the domain's ends so biases stay finite.

    >>> import torch
    >>> from pgm_boltz.domains import DomainVector, BINARY
    >>> b = data_bias(DomainVector([BINARY]), torch.tensor([0.5]))
    >>> abs(float(b[0])) < 1e-6
    True
    """
    dt = mean_values.dtype
    lo_t = torch.as_tensor([d.lo for d in domains.domains], dtype=dt)
    step_t = torch.as_tensor([d.step for d in domains.domains], dtype=dt)
    K = torch.as_tensor([d.levels for d in domains.domains])
    span = step_t * (K - 1).to(dt)
    m = torch.minimum(torch.maximum(mean_values.cpu(), lo_t + clip * span),
                      lo_t + (1.0 - clip) * span)
    out = torch.logit((m - lo_t) / span) / step_t  # exact where K == 2
    multi = torch.nonzero(K > 2).flatten()
    if len(multi):
        sub = DomainVector([domains.domains[i] for i in multi.tolist()])
        mm = m[multi]
        a = torch.full_like(mm, -60.0)
        b = torch.full_like(mm, 60.0)
        for _ in range(80):  # bisection: the mean is increasing in the field
            mid = (a + b) / 2
            below = sub.mean(mid.unsqueeze(0))[0] < mm
            a = torch.where(below, mid, a)
            b = torch.where(below, b, mid)
        out[multi] = (a + b) / 2
    return out.to(mean_values.device)


def make_optimizer(params: list[torch.nn.Parameter], optimizer: Any, lr: float,
                   momentum: float = 0.0, weight_decay: float = 0.0
                   ) -> torch.optim.Optimizer:
    """An optimiser by name (``"adam"``, ``"sgd"``), a class, or a ready instance.

    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(2))]
    >>> type(make_optimizer(p, "sgd", 0.1)).__name__
    'SGD'
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    raise DataError(f"unknown optimizer {optimizer!r}; use 'adam', 'sgd', a "
                    "torch.optim.Optimizer class or instance")


def _check_positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")


def _check_number(name: str, value: Any, minimum: float = 0.0, strict: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
        value, bool) and math.isfinite(float(value))
    if not ok or float(value) < minimum or (strict and float(value) == minimum):
        rel = ">" if strict else ">="
        raise DataError(f"{name} must be a finite number {rel} {minimum}, got {value!r}")


def exact_nll(model, values: torch.Tensor, log_z: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Mean exact negative log-likelihood ``mean F(v) + log Z`` of visible values."""
    if log_z is None:
        log_z = model.log_partition()
    return model._free_energy_values(values).mean() + log_z


class ExactObjective:
    """Exact ML: ``loss = mean_batch F(v) + log Z``, gradient = model - data moments."""

    name = "exact"

    def __init__(self, model, **_: Any) -> None:
        self.model = model
        model.plan.require_exact("fit(method='exact')")

    def loss(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return exact_nll(self.model, batch)

    def after_step(self) -> None:
        pass

    def epoch_metrics(self, train: torch.Tensor, val: torch.Tensor | None) -> dict:
        with torch.no_grad():
            log_z = self.model.log_partition()
            out = {"nll": float(exact_nll(self.model, train, log_z))}
            if val is not None:
                out["val_nll"] = float(exact_nll(self.model, val, log_z))
        return out


_OBJECTIVES: dict[str, Callable[..., Any]] = {"exact": ExactObjective}


def register_objective(name: str, factory: Callable[..., Any]) -> None:
    """Register a training method (used by the Gibbs-based methods' module)."""
    _OBJECTIVES[name] = factory


def _resolve_method(model, method: str) -> str:
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; use one of {METHODS}")
    if method == "auto":
        method = "exact" if model.plan.engine == "exact" else "pcd"
    if method in ("cd", "pcd") and method not in _OBJECTIVES:
        from . import training_gibbs  # noqa: F401  registers cd / pcd
    return method


def fit(model, data: Any, method: str = "auto", epochs: int = 100, lr: float = 0.05,
        batch_size: int | None = None, optimizer: Any = None, momentum: float = 0.0,
        weight_decay: float = 0.0, seed: int | None = None, progress: bool = True,
        validation_data: Any = None, init_bias: str = "data", **method_options: Any
        ) -> list[dict]:
    """Fit ``model`` to visible ``data`` by lowering ``KL(P0 || P)``.

    Parameters
    ----------
    data: (N, n_visible) codes, or a mapping from visible node to column.
    method: ``"exact"`` (exact gradient; the default when the plan is exact), ``"cd"``,
        ``"pcd"`` (the default otherwise); ``"auto"`` picks.
    epochs, lr, batch_size: passes over the data, step size, rows per step
        (``None`` = full batch).
    optimizer: ``"adam"``, ``"sgd"`` (with ``momentum``), or any torch optimiser class
        or instance; ``None`` picks Adam for exact training and SGD for CD/PCD (whose noisy
        gradients Adam's normalisation amplifies: on the digits, PCD with Adam at
        lr=0.05 ends about 6 nats worse than SGD)
        or instance; ``weight_decay`` is L2 on all parameters.
    seed: seeds batch order and Gibbs chains (runs are reproducible on CPU).
    validation_data: held-out rows, scored every epoch.
    init_bias: ``"data"`` sets undeclared visible biases to the data's log-odds
        (its :func:`data_bias`) on the first fit; ``"keep"`` leaves them.
    method_options: options of the Gibbs methods (``k``, ``n_chains``, ...).

    Returns
    -------
    The history: one dict per epoch with ``epoch`` and the method's metrics (``nll`` and
    ``val_nll`` for exact training). It is also stored as ``model.history``.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(3), seed=0)
    >>> h = m.fit([[0, 1, 1], [1, 1, 0]], epochs=5, progress=False)
    >>> h[-1]["nll"] < h[0]["nll"]
    True
    """
    method = _resolve_method(model, method)
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size, allow_none=True)
    _check_number("lr", lr, strict=True)
    _check_number("momentum", momentum)
    _check_number("weight_decay", weight_decay)
    big = torch.finfo(model.dtype).max
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if float(value) > big:
            raise DataError(f"{name}={value!r} overflows the model's {model.dtype} "
                            f"(largest {big:.3g}); use a smaller {name}")
    if init_bias not in ("data", "keep"):
        raise DataError(f"init_bias must be 'data' or 'keep', got {init_bias!r}")
    train = model.encode_data(data, "data")
    val = None if validation_data is None else model.encode_data(
        validation_data, "validation_data")
    seed = int(torch.seed() % 2**31) if seed is None else int(seed)
    gen = torch.Generator(device=model.device)
    gen.manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed)

    with torch.no_grad():
        visible_bias = data_bias(model.visible_domains, train.mean(0))
        model.visible_init = visible_bias.detach().clone()
        if init_bias == "data" and model.history is None:
            undeclared = np.isnan(model.spec.init_bias[model.visible_index])
            vi = torch.as_tensor(model.visible_index[undeclared], device=model.device)
            model.bias[vi] = visible_bias[torch.as_tensor(np.flatnonzero(undeclared),
                                                          device=model.device)]

    objective = _OBJECTIVES[method](model, train=train, generator=gen, seed=seed,
                                    batch_size=batch_size, **method_options)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        optimizer = "adam" if method == "exact" else "sgd"
    opt = make_optimizer(params, optimizer, lr, momentum, weight_decay)
    N = train.shape[0]
    bs = N if batch_size is None else min(int(batch_size), N)
    history: list[dict] = list(model.history or [])
    start_epoch = len(history)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=f"fit[{method}]", leave=True)
    last_good = [p.detach().clone() for p in params]
    try:
        for epoch in range(epochs):
            perm = torch.randperm(N, generator=cpu_gen).to(model.device)
            for b0 in range(0, N, bs):
                batch = train[perm[b0:b0 + bs]]
                opt.zero_grad(set_to_none=True)
                loss = objective.loss(batch, gen)
                if not torch.isfinite(loss):
                    _restore(params, last_good)
                    raise DivergenceError(
                        f"{method} training diverged at epoch {start_epoch + epoch + 1}: the "
                        f"loss is {float(loss.detach())}; parameters restored to their last finite "
                        "values: lower lr or add weight_decay")
                loss.backward()
                opt.step()
                if not _all_finite(params):
                    _restore(params, last_good)
                    raise DivergenceError(
                        f"{method} training diverged at epoch {start_epoch + epoch + 1}: "
                        "parameters became non-finite; restored to their last finite "
                        "values: lower lr or add weight_decay")
                for p, g in zip(params, last_good):
                    g.copy_(p.detach())
                objective.after_step()
            record = {"epoch": start_epoch + epoch + 1, "method": method}
            record.update(objective.epoch_metrics(train, val))
            history.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                 if isinstance(v, float)})
    finally:
        if bar is not None:
            bar.close()
        model.history = history
    return history


def _all_finite(params: list[torch.nn.Parameter]) -> bool:
    """Whether every entry is finite: NaN propagates through min/max, so one aminmax pass
    per tensor decides it (10x cheaper than ``isfinite(p).all()`` on large tensors)."""
    with torch.no_grad():
        ends = torch.stack([e for p in params if p.numel() for e in torch.aminmax(p)])
    return bool(torch.isfinite(ends).all())


def _restore(params: list[torch.nn.Parameter], saved: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
