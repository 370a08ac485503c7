"""The facade users hold: :class:`BoltzmannMachine` and :func:`compile`.

:class:`BoltzmannMachine` is the core :class:`~pgm_boltz.model.EnergyModel` (parameters,
energy, fields, free energy, exact work through the plan's engine) plus the calls that
live in higher layers — training (:mod:`pgm_boltz.training`), sampling and estimation
(:mod:`pgm_boltz.inference`), conditioning and Pyro — so that ``model.fit``,
``model.sample``, ``model.log_partition(method="ais")``, ``model.condition`` and
``model.to_pyro`` are one object's methods while the core imports none of them.

Learned state is set by :meth:`BoltzmannMachine.fit` only: the parameters,
``visible_init`` (the data's independent-unit biases), ``history`` (one record per epoch)
and ``persistent_chains`` (PCD's negative-phase chains, continued by the next fit).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch

from ._validation import (
    check_call,
    check_device,
    check_dtype,
    check_kwargs,
    check_number,
    check_seed,
)
from .compiler import DEFAULT_MAX_EXACT_STATES, analyse
from .conditioning import ConditionedModel, condition
from .errors import ArgumentError, GraphError
from .inference import ais
from .inference.sampling import sample as _sample
from .model import EnergyModel
from .results import LogPartition
from .training import fit as _fit

__all__ = ["BoltzmannMachine", "compile"]


class BoltzmannMachine(EnergyModel):
    """A compiled Boltzmann machine. Build it with :func:`pgm_boltz.compile`.

    Attributes
    ----------
    plan: the compiler's :class:`~pgm_boltz.compiler.Plan`.
    nodes: all node names in graph order; ``visible_nodes``, ``hidden_nodes`` likewise.
    edges: edge name pairs, aligned with ``weight``.
    bias: ``nn.Parameter`` (n,); weight: ``nn.Parameter`` (m,).
    history: the training history (list of per-epoch dicts), None before any fit.
    visible_init: the data's independent-unit visible biases (set by fit), None before.
    persistent_chains: PCD's chains (joint values), continued by the next PCD fit.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> model.plan.engine
    'exact'
    >>> round(float(model.log_partition().detach()), 3) > 0
    True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[dict] | None = None
        self.persistent_chains: torch.Tensor | None = None

    # ------------------------------------------------------------------ estimation
    def log_partition(self, method: str = "exact", **kwargs: Any) -> torch.Tensor | LogPartition:
        """``log Z = log sum_x exp(-E(x))``.

        ``method="exact"`` (default) asks the plan's exact engine; it returns a
        differentiable scalar tensor whose gradient is the exact moments
        (``d log Z/d b_i = <s_i>``, ``d log Z/d W_ij = <s_i s_j>``), and raises
        IntractableError over the thresholds. ``method="ais"`` / ``"reverse-ais"`` return
        a :class:`~pgm_boltz.LogPartition` ``(value, stderr)`` estimate (keywords of
        :func:`pgm_boltz.inference.ais.log_partition`).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> z = m.log_partition()
        >>> abs(float(z) - 5 * 0.6931) < 0.1
        True
        """
        if method == "exact":
            check_kwargs("log_partition(method='exact')", kwargs)
            return self.exact_log_partition()
        check_call(ais.log_partition, kwargs, f"log_partition(method={method!r})",
                   skip=("model", "method"))
        return ais.log_partition(self, method=method, **kwargs)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, method: str | None = None,
               return_hidden: bool = False, **kwargs: Any) -> torch.Tensor:
        """``n`` draws of the visible units (codes), shape (n, n_visible).

        ``method=None`` follows the plan: independent exact draws when exact work is
        feasible (a ``steps`` keyword is then not needed), else ``n`` independent Gibbs
        chains (keyword ``steps``, default 1000 sweeps). ``"exact"``, ``"gibbs"`` or any
        registered sampler (``"tempering"``, ...) force one; see
        :func:`pgm_boltz.inference.sampling.sample`. ``return_hidden=True`` returns full
        joint states (all n nodes, codes) instead.

        >>> import pgm_boltz as pb
        >>> pb.compile(pb.graphs.rbm(3, 2), seed=0).sample(4, seed=1).shape
        torch.Size([4, 3])
        """
        return _sample(self, n, seed=seed, method=method, return_hidden=return_hidden,
                       **kwargs)

    def condition(self, evidence: Mapping[Hashable, Any], **kwargs: Any) -> ConditionedModel:
        """The law of the other nodes given ``evidence`` ``{node: code}``: a
        :class:`~pgm_boltz.conditioning.ConditionedModel` with ``sample``, ``marginals``,
        ``log_partition`` (exact or Gibbs by the usual planning rules).

        >>> import pgm_boltz as pb
        >>> pb.compile(pb.graphs.rbm(3, 2), seed=0).condition({"v0": 1}).free_nodes
        ['v1', 'v2', 'h0', 'h1']
        """
        check_call(condition, kwargs, "condition", skip=("model", "evidence"))
        return condition(self, evidence, **kwargs)

    # ------------------------------------------------------------------ training
    def fit(self, data: Any, method: str = "auto", **kwargs: Any) -> list[dict]:
        """Train on visible data; see :func:`pgm_boltz.training.fit` for the options.

        A second call continues the first: epoch numbers continue, undeclared visible
        biases are set from the data on the first call only, and PCD continues its
        chains when their number is unchanged. Returns the history (a list of per-epoch
        dicts, also kept as ``model.history``; kept too when training stops with an
        error).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.fully_connected(3), seed=0)
        >>> h = m.fit([[0, 1, 1], [1, 1, 0]], epochs=5, progress=False)
        >>> h[-1]["nll"] < h[0]["nll"]
        True
        """
        for key in ("history", "state"):
            if key in kwargs:
                raise ArgumentError(f"fit got {key}=: the model keeps its own training "
                                    "state; call fit again to continue")
        first = self.history is None
        hist: list[dict] = [] if first else self.history  # type: ignore[assignment]
        try:
            result = _fit(self, data, method=method, history=hist,
                                  first_fit=first, state=self.persistent_chains, **kwargs)
        finally:
            if hist or not first:
                self.history = hist
        if result.state is not None:
            self.persistent_chains = result.state
        return result.history

    # ------------------------------------------------------------------ interop
    def to_pyro(self, **kwargs: Any):
        """The distribution of the visible units as a Pyro ``TorchDistribution``
        (:class:`pgm_boltz.pyro.BoltzmannDistribution`; keywords pass through)."""
        from .pyro import BoltzmannDistribution

        check_call(BoltzmannDistribution.__init__, kwargs, "to_pyro", skip=("self", "model"))
        return BoltzmannDistribution(self, **kwargs)


def compile(G: Any, engine: str = "auto", device: str | torch.device | None = None,
            dtype: torch.dtype | None = None, *, storage: str = "auto",
            max_exact_states: int = DEFAULT_MAX_EXACT_STATES, seed: int | None = None,
            init_scale: float = 0.01) -> BoltzmannMachine:
    """Compile a declared graph into a :class:`BoltzmannMachine`.

    The compiler validates the graph, colours it (2 classes when bipartite, greedy
    otherwise), asks every exact engine what the exact work costs and picks the engine:
    ``exact`` when some exact engine fits the thresholds, else ``block-gibbs``
    (bipartite) or ``chromatic-gibbs``. Weights not declared on edges start as
    ``N(0, init_scale^2)`` draws (seeded); biases not declared start at 0.

    Parameters
    ----------
    G: ``networkx.Graph`` with node attributes ``role`` and optional ``domain`` (with
        its own attributes, e.g. ``levels``, ``values``), ``bias``, and edge ``weight``.
    engine: ``"auto"``, ``"exact"``, ``"block-gibbs"`` or ``"chromatic-gibbs"``.
    device, dtype: where the parameters live (float32 on CPU by default).
    storage: couplings ``"dense"``, ``"sparse"`` or ``"auto"``.
    max_exact_states: the threshold of exact work (enumerated states).
    seed: seed of the initial weights; init_scale: their standard deviation.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.lattice(3, 3), seed=0)
    >>> print(model.plan)  # doctest: +ELLIPSIS
    Plan: engine=exact (enumeration)
    ...
    """
    dev = check_device(device, where="compile")
    dt = check_dtype(dtype, where="compile")
    seed = check_seed(seed, where="compile")
    init_scale = check_number("init_scale", init_scale, 0.0, where="compile")
    spec, plan = analyse(G, engine=engine, storage=storage,
                         max_exact_states=max_exact_states)
    model = BoltzmannMachine(spec, plan, device=dev, dtype=dt, seed=seed,
                             init_scale=init_scale)
    _check_parameters_fit(model)
    return model


def _check_parameters_fit(model: EnergyModel) -> None:
    """Declared values finite in float64 may overflow the parameter dtype: refuse them,
    naming the node or edge."""
    big = torch.finfo(model.dtype).max
    for name, values, labels in (("bias of node", model.spec.init_bias, model.nodes),
                                 ("weight of edge", model.spec.init_weight, model.edges)):
        with np.errstate(invalid="ignore"):
            over = np.flatnonzero(np.abs(values) > big)
        if len(over):
            i = int(over[0])
            raise GraphError(f"{name} {labels[i]!r} is {float(values[i])!r}, which overflows "
                             f"the parameters' {model.dtype} (largest {big:.3g}); use "
                             "dtype=torch.float64 or a smaller value")
