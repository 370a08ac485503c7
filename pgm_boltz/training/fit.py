"""The training loop: argument checks, initial biases, epochs, the divergence guard.

Every method lowers ``KL(P0 || P)``, i.e. the negative log-likelihood of the data, whose
gradient with respect to a parameter θ with energy term ``-θ φ(s)`` is

    -d/dθ mean log P(v) = <φ>_model - <φ>_data,

the model correlation minus the data correlation. A method is an *objective*
(registered with :func:`register_objective`): per batch it returns a scalar surrogate
whose gradient is that difference (exact, or estimated by sampling), and a torch
optimiser steps on it, so any optimiser works. A diverging run (non-finite loss or
parameters) stops with :class:`~pgm_boltz.errors.DivergenceError` and the parameters of
the last good step are restored.

Learned state is set here only: the parameters, and the model's ``visible_init`` (the
independent-unit biases of the training data's visible means). The history and the
objective's persistent state (PCD chains) are returned in a :class:`FitResult` for the
caller to keep and pass back to continue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_seed,
    make_generator,
    progress_bar,
)
from ..errors import ArgumentError, DivergenceError

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["DivergenceGuard", "FitResult", "fit", "make_optimizer", "method_names",
           "register_objective"]

_OBJECTIVES: dict[str, Callable[..., Any]] = {}
#: fit's own keyword arguments (the rest go to the method's objective)
FIT_ARGS = ("epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "seed",
            "progress", "validation_data", "init_bias")


def register_objective(name: str, factory: Callable[..., Any], *,
                       replace: bool = False) -> None:
    """Register a training method: ``factory(model, train=, generator=, seed=,
    batch_size=, state=, **options)`` returns an objective with ``loss(batch,
    generator)``, ``after_step()``, ``epoch_metrics(train, val)`` and ``state()`` (what a
    continued fit passes back as ``state``)."""
    if name in _OBJECTIVES and not replace:
        raise ArgumentError(f"training method {name!r} is registered already")
    _OBJECTIVES[name] = factory


def method_names() -> list[str]:
    """The registered training methods (and ``"auto"``)."""
    return ["auto", *_OBJECTIVES]


@dataclass
class FitResult:
    """What :func:`fit` returns: the ``history`` (one dict per epoch, continuing the one
    passed in) and the objective's ``state`` for a continued fit (PCD's chains)."""

    history: list[dict]
    state: Any = field(default=None, repr=False)


def make_optimizer(params: list[torch.nn.Parameter], optimizer: Any, lr: float,
                   momentum: float = 0.0, weight_decay: float = 0.0
                   ) -> torch.optim.Optimizer:
    """An optimiser by name (``"adam"``, ``"sgd"``), a class, or a ready instance.

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
    raise ArgumentError(f"unknown optimizer {optimizer!r}; use 'adam', 'sgd', a "
                        "torch.optim.Optimizer class or instance")


class DivergenceGuard:
    """Keeps the last good parameters and stops a diverging run.

    After every step: a non-finite loss or parameter restores the parameters of the last
    good step and raises :class:`~pgm_boltz.errors.DivergenceError` saying when and what
    to do. ``NaN`` propagates through min/max, so one ``aminmax`` per tensor decides
    finiteness (10x cheaper than ``isfinite(p).all()`` on large tensors).

    After every epoch (:meth:`check_epoch`): a non-finite metric, or a training NLL grown
    far past the best one seen (by more than ``max(GROWTH_NATS, GROWTH_FRACTION × |best|)``:
    an NLL that doubles, or grows by 5 nats, is no noisy step but a run that left its
    basin) restores the parameters at the end of the last good epoch and raises.
    """

    #: an epoch's NLL this far above the best one is divergence
    GROWTH_NATS = 5.0
    GROWTH_FRACTION = 1.0

    def __init__(self, params: list[torch.nn.Parameter], method: str,
                 limit: float = math.inf) -> None:
        self.params = params
        self.method = method
        self.limit = limit
        self.good = [p.detach().clone() for p in params]
        self.epoch_good = [p.detach().clone() for p in params]
        self.best_nll: float | None = None

    def check_epoch(self, record: dict, epoch: int) -> None:
        """Stop on a non-finite metric or a far-grown NLL (parameters restored to the end
        of the last good epoch), else remember this epoch's parameters as good."""
        bad = [k for k, v in record.items()
               if isinstance(v, float) and not math.isfinite(v)]
        nll = record.get("nll")
        what = None
        if bad:
            what = f"{', '.join(bad)} became {record[bad[0]]}"
        elif isinstance(nll, float) and self.best_nll is not None and nll > self.best_nll + \
                max(self.GROWTH_NATS, self.GROWTH_FRACTION * abs(self.best_nll)):
            what = f"the training NLL grew from {self.best_nll:.4g} to {nll:.4g}"
        if what is not None:
            with torch.no_grad():
                for p, s in zip(self.params, self.epoch_good):
                    p.copy_(s)
                for g, s in zip(self.good, self.epoch_good):
                    g.copy_(s)
            raise DivergenceError(
                f"{self.method} training diverged at epoch {epoch}: {what}; parameters "
                "restored to those at the end of the last good epoch: lower lr or add "
                "weight_decay")
        if isinstance(nll, float):
            self.best_nll = nll if self.best_nll is None else min(self.best_nll, nll)
        with torch.no_grad():
            for p, g in zip(self.params, self.epoch_good):
                g.copy_(p.detach())

    def _fail(self, epoch: int, what: str) -> None:
        self.restore()
        raise DivergenceError(
            f"{self.method} training diverged at epoch {epoch}: {what}; parameters "
            "restored to those of the last good step: lower lr or add weight_decay")

    def restore(self) -> None:
        """Put the last good parameters back."""
        with torch.no_grad():
            for p, s in zip(self.params, self.good):
                p.copy_(s)

    def check_loss(self, loss: torch.Tensor, epoch: int) -> None:
        """Stop on a non-finite loss (before the step)."""
        if not torch.isfinite(loss):
            self._fail(epoch, f"the loss is {float(loss.detach())}")

    def check_step(self, epoch: int) -> None:
        """Stop on non-finite parameters after a step, or on parameters past ``limit``
        in magnitude (no model stays meaningful there: its conditionals are all 0 or 1
        and its sums overflow), else remember them as good."""
        with torch.no_grad():
            ends = torch.stack([e for p in self.params if p.numel()
                                for e in torch.aminmax(p)])
            if not bool(torch.isfinite(ends).all()):
                self._fail(epoch, "parameters became non-finite")
            big = float(ends.abs().max()) if ends.numel() else 0.0
            if big > self.limit:
                self._fail(epoch, f"a parameter reached {big:.3g} (over {self.limit:.3g})")
            for p, g in zip(self.params, self.good):
                g.copy_(p.detach())


def _resolve_method(model: EnergyModel, method: str) -> str:
    check_choice("method", method, method_names(), where="fit")
    if method == "auto":
        method = "exact" if model.plan.engine == "exact" else "pcd"
    return method


def fit(model: EnergyModel, data: Any, method: str = "auto", epochs: int = 100,
        lr: float = 0.05, batch_size: int | None = None, optimizer: Any = None,
        momentum: float = 0.0, weight_decay: float = 0.0, seed: int | None = None,
        progress: bool = True, validation_data: Any = None, init_bias: str = "data", *,
        history: list[dict] | None = None, first_fit: bool | None = None, state: Any = None,
        **method_options: Any) -> FitResult:
    """Fit ``model`` to visible ``data`` by lowering ``KL(P0 || P)``.

    Parameters
    ----------
    data: (N, n_visible) codes, a mapping from visible node to column, or a DataFrame.
    method: ``"exact"`` (exact gradient; the default when the plan is exact), ``"cd"``,
        ``"pcd"`` (the default otherwise); ``"auto"`` picks.
    epochs, lr, batch_size: passes over the data, step size, rows per step
        (``None`` = full batch).
    optimizer: ``"adam"``, ``"sgd"`` (with ``momentum``), or any torch optimiser class
        or instance; ``None`` picks Adam for exact training and SGD for CD/PCD (whose
        noisy gradients Adam's normalisation amplifies: on the digits, PCD with Adam at
        lr=0.05 ends about 6 nats worse than SGD); ``weight_decay`` is L2 on all
        parameters.
    seed: seeds batch order and Gibbs chains (runs are reproducible on CPU).
    validation_data: held-out rows, scored every epoch.
    init_bias: ``"data"`` sets undeclared visible biases to the data's log-odds (the
        biases of the independent model with the data's means) on a first fit;
        ``"keep"`` leaves them.
    history, state: a previous fit's :class:`FitResult` fields, to continue it (epoch
        numbers continue; PCD continues its chains when their number is unchanged). The
        epochs' records are appended to ``history`` in place as they finish, so a run
        stopped by an error keeps them. ``first_fit`` (default: ``history`` is None or
        empty) says whether this is the model's first fit.
    method_options: options of the method (``k``, ``n_chains``, ...).

    Returns
    -------
    :class:`FitResult`: the history (one dict per epoch with ``epoch``, ``method`` and the
    method's metrics, e.g. ``nll`` and ``val_nll``) and the objective's state.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(3), seed=0)
    >>> r = fit(m, [[0, 1, 1], [1, 1, 0]], epochs=5, progress=False)
    >>> r.history[-1]["nll"] < r.history[0]["nll"]
    True
    """
    method = _resolve_method(model, method)
    epochs = check_int("epochs", epochs, 1, where="fit")
    batch_size = check_int("batch_size", batch_size, 1, allow_none=True, where="fit")
    lr = check_number("lr", lr, 0.0, strict=True, where="fit")
    momentum = check_number("momentum", momentum, 0.0, where="fit")
    weight_decay = check_number("weight_decay", weight_decay, 0.0, where="fit")
    check_bool("progress", progress, where="fit")
    check_choice("init_bias", init_bias, ("data", "keep"), where="fit")
    big = torch.finfo(model.dtype).max
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if value > big:
            raise ArgumentError(f"fit: {name}={value!r} overflows the model's {model.dtype} "
                                f"(largest {big:.3g}); use a smaller {name}")
    train = model.encode_data(data, "data")
    val = None if validation_data is None else model.encode_data(
        validation_data, "validation_data")
    seed = check_seed(seed, where="fit")
    seed = int(torch.seed() % 2**31) if seed is None else seed
    gen = make_generator(seed, model.device)
    cpu_gen = make_generator(seed)

    first = not history if first_fit is None else check_bool("first_fit", first_fit)
    _set_initial_biases(model, train, init_bias == "data" and first)
    objective = _OBJECTIVES[method](model, train=train, generator=gen, seed=seed,
                                    batch_size=batch_size, state=state, **method_options)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        optimizer = "adam" if method == "exact" else "sgd"
    opt = make_optimizer(params, optimizer, lr, momentum, weight_decay)
    N = train.shape[0]
    bs = N if batch_size is None else min(batch_size, N)
    out: list[dict] = [] if history is None else history
    start_epoch = len(out)
    guard = DivergenceGuard(params, method, limit=_parameter_limit(model))
    # the starting NLL (where monitored) is the baseline growth is measured from
    guard.best_nll = objective.epoch_metrics(train, None).get("nll")
    bar = progress_bar(epochs, f"fit[{method}]", progress, leave=True, unit="epoch")
    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            perm = torch.randperm(N, generator=cpu_gen).to(model.device)
            for b0 in range(0, N, bs):
                batch = train[perm[b0:b0 + bs]]
                opt.zero_grad(set_to_none=True)
                loss = objective.loss(batch, gen)
                guard.check_loss(loss, epoch)
                loss.backward()
                opt.step()
                guard.check_step(epoch)
                objective.after_step()
            record = {"epoch": epoch, "method": method}
            record.update(objective.epoch_metrics(train, val))
            guard.check_epoch(record, epoch)
            out.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                             if isinstance(v, float)})
    finally:
        bar.close()
    return FitResult(out, objective.state())


#: parameters times squared unit values beyond this are a diverged run
PARAMETER_LIMIT = 1e8


def _parameter_limit(model: EnergyModel) -> float:
    """``PARAMETER_LIMIT`` in the model's units: divided by the largest squared value a
    unit takes (a coupling of 1e8 between spins makes every conditional 0 or 1);
    continuous units count as 1 (their data are in units of their standard deviation)."""
    ranges = [max(abs(r) for r in d.value_range()) for d in model.spec.domains]
    vmax = max((r for r in ranges if math.isfinite(r)), default=1.0)  # Gaussian: in sd
    return PARAMETER_LIMIT / max(vmax * vmax, 1e-300)


def _set_initial_biases(model: EnergyModel, train: torch.Tensor, set_biases: bool) -> None:
    """The data's independent-unit biases (given the visible units' precisions) become the
    model's ``visible_init`` (learned state: Gibbs chains and AIS base models start from
    it) and, on a first fit, the undeclared visible biases."""
    with torch.no_grad():
        q_v = model.precisions_at("visible")
        q_v = None if q_v is None else q_v.detach().double().cpu()
        visible_bias = model.visible_domains.bias_for_mean(train.double().mean(0).cpu(),
                                                           q=q_v)
        visible_bias = visible_bias.to(model.device, model.dtype)
        model.visible_init = visible_bias.detach().clone()
        if set_biases:
            undeclared = np.isnan(model.spec.init_bias[model.visible_index])
            vi = model.index(model.visible_index[undeclared])
            sel = torch.as_tensor(np.flatnonzero(undeclared), device=model.device)
            model.bias[vi] = visible_bias[sel]
