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

Two ways around the per-step loop. An objective may offer *fused* epochs (its
``fused(...)`` returns a runner): CD/PCD of an RBM with SGD, whose gradient is known in
closed form, runs whole epochs in compiled code (:mod:`.cd_kernels`) or in a few
preallocated matmuls per update (:mod:`.cd_torch`), with no autograd or optimiser
dispatch; the guard then checks the parameters once per epoch. And under a
``torch.distributed`` default group the loop trains data-parallel
(:mod:`pgm_boltz.distributed`): each rank passes its part of the data, every step's
gradient is summed over ranks with weights that make it the mean over the union of the
ranks' batches, and everything derived from the data is computed over all parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import distributed as _dist
from .._validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_seed,
    make_generator,
    progress_bar,
)
from ..errors import ArgumentError, DataError, DivergenceError

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["BatchPlan", "DivergenceGuard", "FitResult", "fit", "make_optimizer",
           "mean_over_ranks", "method_names", "register_objective"]

_OBJECTIVES: dict[str, Callable[..., Any]] = {}
#: fit's own keyword arguments (the rest go to the method's objective)
FIT_ARGS = ("epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "seed",
            "progress", "validation_data", "init_bias", "distributed")


def register_objective(name: str, factory: Callable[..., Any], *,
                       replace: bool = False) -> None:
    """Register a training method: ``factory(model, train=, generator=, seed=,
    batch_size=, state=, **options)`` returns an objective with ``loss(batch,
    generator)``, ``after_step()``, ``epoch_metrics(train, val)`` and ``state()`` (what a
    continued fit passes back as ``state``).

    Optional: ``fused(lr=, momentum=, weight_decay=, batches=)`` returning ``None`` or a
    runner ``run(perm) -> updates done`` that does an epoch's SGD updates itself (used
    when the optimiser is SGD). A factory with ``data_parallel = True`` also takes
    ``world=`` (a :class:`pgm_boltz.distributed.World`) under a process group; its
    ``loss(batch, generator, share=)`` must then return this rank's share of the step's
    surrogate (``share`` = this rank's rows over the step's rows on all ranks), whose
    gradients summed over ranks are the step's gradient, and its ``epoch_metrics`` must
    return the metrics of all parts.

    >>> class Null:
    ...     def __init__(self, model, **kwargs): self.model = model
    >>> register_objective("null-demo", Null)
    >>> "null-demo" in method_names()
    True
    >>> del _OBJECTIVES["null-demo"]
    """
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
        progress: bool = True, validation_data: Any = None, init_bias: str = "data",
        distributed: bool | None = None, *, history: list[dict] | None = None,
        first_fit: bool | None = None, state: Any = None,
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
    distributed: data-parallel training over ``torch.distributed``. ``None`` (default):
        whenever a default process group of two or more processes is initialised (e.g.
        under ``torchrun``); then ``data`` and ``validation_data`` are this process's
        parts (:func:`pgm_boltz.distributed.shard`), ``batch_size`` and ``n_chains``
        count all ranks' rows and chains together, the data statistics, gradients and
        metrics are those of all parts, the parameters stay identical on every rank, PCD
        chains are split across ranks and only rank 0 shows a progress bar. ``False``:
        this process trains alone on its data; ``True``: require a group.
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

    CD/PCD of an RBM (any arithmetic-progression domains) with SGD and the Gibbs sampler
    runs fused epochs (no autograd, no optimiser object; see the module text): its
    divergence check is once per epoch, and a diverging run gets the parameters of the
    last good epoch back.

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
    world = _dist.current_world(distributed, model.device)
    big = torch.finfo(model.dtype).max
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if value > big:
            raise ArgumentError(f"fit: {name}={value!r} overflows the model's {model.dtype} "
                                f"(largest {big:.3g}); use a smaller {name}")
    factory = _OBJECTIVES[method]
    if world is not None and not getattr(factory, "data_parallel", False):
        raise ArgumentError(f"fit(method={method!r}) does not support data-parallel "
                            "training; pass distributed=False to train each process alone")
    train = model.encode_data(data, "data")
    val = None if validation_data is None else model.encode_data(
        validation_data, "validation_data")
    seed = check_seed(seed, where="fit")
    seed = int(torch.seed() % 2**31) if seed is None else seed
    if world is not None:
        world.rows = world.gather_ints(train.shape[0])
        with_val = world.gather_ints(val is not None)
        if len(set(with_val)) > 1:
            raise DataError("fit: validation_data was given on ranks "
                            f"{[r for r, v in enumerate(with_val) if v]} only; give every "
                            "rank its part (pb.distributed.shard) or none")
        seed = world.broadcast_int(seed)  # rank 0's
        rank_seed = seed if world.rank == 0 else _rank_seed(seed, world.rank)
    else:
        rank_seed = seed
    gen = make_generator(rank_seed, model.device)
    cpu_gen = make_generator(rank_seed)

    first = not history if first_fit is None else check_bool("first_fit", first_fit)
    N = train.shape[0]
    batches = _batch_plan(N, batch_size, world)
    _set_initial_biases(model, train, init_bias == "data" and first, world)
    params = [p for p in model.parameters() if p.requires_grad]
    if world is not None:  # one start for all ranks: rank 0's parameters
        world.broadcast_(params)
    extra = {} if world is None else {"world": world}
    objective = factory(model, train=train, generator=gen, seed=seed, batch_size=batch_size,
                        state=state, **extra, **method_options)
    runner = None
    if optimizer in (None, "sgd") and hasattr(objective, "fused"):
        runner = objective.fused(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                 batches=batches)
    opt = None
    if runner is None:
        if optimizer is None:
            optimizer = "adam" if method == "exact" else "sgd"
        opt = make_optimizer(params, optimizer, lr, momentum, weight_decay)
    out: list[dict] = [] if history is None else history
    start_epoch = len(out)
    guard = DivergenceGuard(params, method, limit=_parameter_limit(model))
    # the starting NLL (where monitored) is the baseline growth is measured from
    guard.best_nll = objective.epoch_metrics(train, None).get("nll")
    show = progress and (world is None or world.rank == 0)
    bar = progress_bar(epochs, f"fit[{method}]", show, leave=True, unit="epoch")
    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            perm = torch.randperm(N, generator=cpu_gen)
            if runner is not None:
                if runner(perm) < batches.steps:  # non-finite or overflowing parameters
                    guard.restore()
                    raise DivergenceError(
                        f"{method} training diverged at epoch {epoch}: parameters became "
                        f"non-finite or the energy overflowed {model.dtype}; parameters "
                        "restored to those of the last good epoch: lower lr or add "
                        "weight_decay")
                guard.check_step(epoch)
            else:
                perm = perm.to(model.device)
                for s, (b0, b1) in enumerate(batches.bounds):
                    batch = train[perm[b0:b1]]
                    assert opt is not None
                    opt.zero_grad(set_to_none=True)
                    if world is None:
                        loss = objective.loss(batch, gen)
                        guard.check_loss(loss, epoch)
                        loss.backward()
                    else:  # this rank's share; gradients and loss summed over ranks
                        loss = objective.loss(batch, gen, share=(b1 - b0) / batches.totals[s])
                        guard.check_loss(_reduce_gradients(params, loss, world), epoch)
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


@dataclass
class BatchPlan:
    """This rank's batches of an epoch: ``bounds[s] = (b0, b1)`` positions in its row
    order, ``totals[s]`` the rows of step ``s`` on all ranks (its own rows when alone),
    ``batch_size`` the nominal global batch and ``steps`` their number."""

    bounds: list[tuple[int, int]]
    totals: list[int]
    batch_size: int

    @property
    def steps(self) -> int:
        return len(self.bounds)


def _batch_plan(N: int, batch_size: int | None, world: Any) -> BatchPlan:
    """Alone: batches of ``batch_size`` rows, the last one shorter. Data-parallel (parts
    of ``N_r`` rows, ``N`` in all): ``S = ceil(N / batch_size)`` steps an epoch, step
    ``s`` taking rows ``[s N_r // S, (s + 1) N_r // S)`` of each rank's order, so every
    rank runs the same steps and each global batch is about ``batch_size`` rows."""
    if world is None:
        bs = N if batch_size is None else min(batch_size, N)
        bounds = [(b0, min(b0 + bs, N)) for b0 in range(0, N, bs)]
        return BatchPlan(bounds, [b1 - b0 for b0, b1 in bounds], bs)
    sizes = world.rows
    total = sum(sizes)
    bs = total if batch_size is None else min(batch_size, total)
    S = math.ceil(total / bs)
    small = [r for r, n in enumerate(sizes) if n < S]
    if small:
        raise DataError(f"fit: rank {small[0]} has {sizes[small[0]]} rows, fewer than the "
                        f"{S} steps of an epoch (batch_size={bs} over {total} rows on "
                        f"{len(sizes)} ranks); give every rank at least {S} rows or use a "
                        "larger batch_size")
    cuts = [[s * n // S for s in range(S + 1)] for n in sizes]
    totals = [sum(c[s + 1] - c[s] for c in cuts) for s in range(S)]
    mine = cuts[world.rank]
    return BatchPlan([(mine[s], mine[s + 1]) for s in range(S)], totals, bs)


def _rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for every rank > 0 (different Gibbs noise and row orders)."""
    ss = np.random.SeedSequence([int(seed), int(rank)])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(2))


def _reduce_gradients(params: list[torch.nn.Parameter], loss: torch.Tensor,
                      world: Any) -> torch.Tensor:
    """Back-propagate this rank's share and sum the gradients (and the loss) over ranks
    in one message; returns the summed loss (identical on every rank, so every rank
    takes the same divergence decision)."""
    loss.backward()
    flat = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in params]
    buf = torch.cat([*flat, loss.detach().reshape(1).to(flat[0].dtype)])
    world.sum_(buf)
    off = 0
    for p in params:
        n = p.numel()
        g = buf[off:off + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        off += n
    return buf[-1]


def mean_over_ranks(world: Any, pairs: dict[str, tuple[float, int]]) -> dict[str, float]:
    """Per-rank ``(mean, count)`` pairs to the means over all ranks' items (one message);
    alone, the means themselves.

    >>> mean_over_ranks(None, {"nll": (2.5, 10)})
    {'nll': 2.5}
    """
    if world is None:
        return {k: float(m) for k, (m, _) in pairs.items()}
    keys = list(pairs)
    sums = world.sum_floats([v for k in keys for v in (pairs[k][0] * pairs[k][1],
                                                          pairs[k][1])])
    return {k: sums[2 * i] / sums[2 * i + 1] for i, k in enumerate(keys)}


def _set_initial_biases(model: EnergyModel, train: torch.Tensor, set_biases: bool,
                        world: Any = None) -> None:
    """The data's independent-unit biases become the model's ``visible_init`` (learned
    state: Gibbs chains and AIS base models start from it) and, on a first fit, the
    undeclared visible biases (given the visible units' precisions). Data-parallel: the
    means of all ranks' rows."""
    with torch.no_grad():
        if world is None:
            means = train.double().mean(0).cpu()
        else:
            both = torch.cat([train.double().sum(0).cpu(),
                              torch.tensor([float(train.shape[0])], dtype=torch.float64)])
            world.sum_(both)
            means = both[:-1] / both[-1]
        q_v = model.precisions_at("visible")
        q_v = None if q_v is None else q_v.detach().double().cpu()
        visible_bias = model.visible_domains.bias_for_mean(means, q=q_v)
        visible_bias = visible_bias.to(model.device, model.dtype)
        model.visible_init = visible_bias.detach().clone()
        if set_biases:
            undeclared = np.isnan(model.spec.init_bias[model.visible_index])
            vi = model.index(model.visible_index[undeclared])
            sel = torch.as_tensor(np.flatnonzero(undeclared), device=model.device)
            model.bias[vi] = visible_bias[sel]
