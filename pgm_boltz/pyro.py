"""Boltzmann machines as Pyro distributions.

:class:`BoltzmannDistribution` is the distribution of a compiled model's *visible* units,
hidden units summed out,

    P(v) = sum_h exp(-E(v, h)) / Z = exp(-F(v) - log Z),

as one Pyro sample site with ``event_shape = (n_visible,)``. Values are the data *codes*
(binary 0/1, spin -1/+1, multinary levels 0..K-1, real values for Gaussian units),
columns in ``model.visible_nodes`` order; with Gaussian visible units ``log_prob`` is a
log-density and the support is real (per column for mixed models). Use it

- as a likelihood: ``pyro.sample("x", model.to_pyro(), obs=data)`` inside a plate, with
  ``pyro.module("bm", model)`` so that SVI trains the model's parameters;
- as a prior over discrete latent structure: ``TraceEnum_ELBO`` enumerates its support
  (every visible configuration) when the model is small;
- with priors on the parameters: :func:`boltzmann_with_params` scores data under bias and
  weight tensors that are themselves sample sites (NUTS, HMC, SVI with guides).

The module also declares the supports: :data:`spin_vector` ({-1, +1} per unit),
:class:`VisibleCodes` (a per-column mix of domains) and :func:`visible_support`, which
picks the right one for a model.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from ._validation import make_generator
from .domains import DomainVector
from .errors import ArgumentError, DataError, IntractableError, PgmBoltzWarning
from .inference.sampling import DEFAULT_STEPS, run_chains
from .inference.sampling import sample as _sample
from .model import EnergyModel
from .results import LogPartition
from .samplers import make_sampler, sampler_names

__all__ = [
    "DEFAULT_BURN_IN",
    "DEFAULT_THIN",
    "BoltzmannDistribution",
    "VisibleCodes",
    "boltzmann_with_params",
    "spin_vector",
    "visible_support",
]

#: Gibbs sweeps every chain runs before its first draw (when sampling is not exact).
DEFAULT_BURN_IN = DEFAULT_STEPS
#: Gibbs sweeps between two successive draws kept from one chain.
DEFAULT_THIN = 10
_NO_SHAPE = torch.Size()


# ----------------------------------------------------------------------------------------
# supports
# ----------------------------------------------------------------------------------------


class _SpinVector(constraints.Constraint):
    """Vectors of spins: every entry of the last dimension is -1 or +1 (``event_dim = 1``).

    >>> import torch
    >>> spin_vector.check(torch.tensor([[1.0, -1.0], [1.0, 0.0]])).tolist()
    [True, False]
    """

    is_discrete = True
    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        """``all_i (v_i == -1 or v_i == +1)`` over the last dimension."""
        return ((value == -1) | (value == 1)).all(-1)

    def __repr__(self) -> str:
        return "SpinVector()"


#: The support of a vector of spins, {-1, +1}^n (a discrete constraint, ``event_dim = 1``).
spin_vector = _SpinVector()


class VisibleCodes(constraints.Constraint):
    """Per-column codes of mixed domains (``event_dim = 1``; discrete unless some column
    is continuous).

    Column ``i`` takes -1/+1 for a spin unit, 0/1 for a binary unit, the integers
    ``0..K_i-1`` for a multinary unit with ``K_i`` levels and any finite real number for a
    Gaussian unit; ``check`` is true where every column of the last dimension holds one
    of its codes.

    >>> import torch
    >>> from pgm_boltz.domains import BINARY, SPIN, multinary
    >>> c = VisibleCodes([BINARY, SPIN, multinary(3)])
    >>> c.check(torch.tensor([[1.0, -1.0, 2.0], [1.0, 0.0, 2.0]])).tolist()
    [True, False]
    """

    is_discrete = True
    event_dim = 1

    def __init__(self, domains: Any) -> None:
        self._dv = domains if isinstance(domains, DomainVector) else DomainVector(domains)
        self.domains = self._dv.domains
        self.is_discrete = self._dv.discrete
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        """True where every column holds a code of its unit's domain."""
        if value.dim() == 0 or value.shape[-1] != len(self.domains):
            return torch.zeros(value.shape[:-1] if value.dim() else (), dtype=torch.bool,
                               device=value.device)
        return ~self._dv.invalid_codes(value).any(-1)

    def __repr__(self) -> str:
        return f"VisibleCodes({', '.join(d.describe() for d in self.domains)})"


def visible_support(domains: DomainVector) -> constraints.Constraint:
    """The support of a visible vector whose units have the given domains.

    All binary: ``independent(boolean, 1)`` ({0, 1}^n); all spin: :data:`spin_vector`
    ({-1, +1}^n); all multinary with the same K: ``independent(integer_interval(0, K-1),
    1)``; all Gaussian: ``real_vector``; otherwise a per-column :class:`VisibleCodes`
    (continuous when some column is Gaussian). Every one has ``event_dim = 1``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(3, 2, domain="spin"), seed=0)
    >>> visible_support(m.visible_domains)
    SpinVector()
    """
    doms = domains.domains
    kinds = {(d.name, d.levels) for d in doms}
    if len(kinds) == 1:
        name, levels = next(iter(kinds))
        if name == "spin":
            return spin_vector
        if name == "binary":
            return constraints.independent(constraints.boolean, 1)
        if name == "multinary":
            return constraints.independent(constraints.integer_interval(0, levels - 1), 1)
        if not domains.discrete and name == "gaussian":
            return constraints.real_vector
    return VisibleCodes(doms)


# ----------------------------------------------------------------------------------------
# the distribution
# ----------------------------------------------------------------------------------------


class _Call(nn.Module):
    """Runs ``fn(model)``; lets ``torch.func.functional_call`` substitute parameters."""

    def __init__(self, model: EnergyModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[EnergyModel], Any]) -> Any:
        return fn(self.model)


def _as_log_partition(value: Any, model: EnergyModel) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, LogPartition):
        value = value.value
    if isinstance(value, bool) or not (isinstance(value, numbers.Real)
                                       or torch.is_tensor(value)):
        raise ArgumentError(f"log_partition must be a float, a scalar tensor or a LogPartition "
                        f"estimate (e.g. model.log_partition(method='ais')), got {value!r}")
    t = torch.as_tensor(value)
    if t.numel() != 1:
        raise ArgumentError(f"log_partition must be a scalar, got shape {tuple(t.shape)}")
    t = t.reshape(()).to(device=model.device, dtype=model.dtype)
    if not bool(torch.isfinite(t.detach())):
        raise ArgumentError(f"log_partition must be finite, got {float(t.detach())}")
    return t


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


class BoltzmannDistribution(TorchDistribution):
    """The distribution of a Boltzmann machine's visible units, hidden units summed out.

    ``log P(v) = -F(v) - log Z`` with ``F(v) = -log sum_h exp(-E(v, h))`` the free energy
    (:meth:`EnergyModel.free_energy`). ``event_shape = (n_visible,)``; values are the
    data codes (binary 0/1, spin -1/+1, multinary 0..K-1) in ``model.visible_nodes``
    order; ``batch_shape`` is ``()`` unless expanded (``expand``, ``pyro.plate``), and all
    batch elements share the model's parameters.

    Parameters
    ----------
    model: a compiled :class:`~pgm_boltz.EnergyModel`. Its parameters are read at
        every call, so training the model (``pyro.module("bm", model)`` + SVI, or
        ``model.fit``) changes the distribution.
    log_partition: ``log Z`` to use instead of the exact one: a float, a scalar tensor or
        a :class:`~pgm_boltz.LogPartition` estimate (``model.log_partition(method="ais")``).
        Needed by ``log_prob`` when the model is too large for exact ``log Z``; a float or
        estimate is a constant, so gradients then flow through ``F(v)`` only.
    validate_args: check values against :attr:`support` (``None``: Pyro's default).
    burn_in: Gibbs sweeps every chain runs before its first draw (non-exact sampling).
    thin: Gibbs sweeps between successive draws kept from one chain.
    num_chains: Gibbs chains run side by side; ``None`` runs one chain per draw, so every
        draw is independent and ``thin`` is unused. With fewer chains than draws each
        chain gives ``ceil(n / num_chains)`` draws, ``thin`` sweeps apart.
    sampler: ``"auto"`` (exact when ``model.plan.exact_feasible``, else Gibbs),
        ``"exact"``, or a registered MCMC sampler (``"gibbs"``, ``"tempering"``, ...) with
        its ``sampler_options``.
    max_enumerate_states: the largest number of visible configurations
        :meth:`enumerate_support` lists (default ``model.plan.max_exact_states``).
    bias, weight: tensors used in place of ``model.bias`` / ``model.weight`` (shapes
        (n_nodes,), (n_edges,)), e.g. sample sites of a prior; see
        :func:`boltzmann_with_params`. ``log_precision`` likewise replaces
        ``model.log_precision`` (shape (n_quadratic,)) for models with quadratic terms.

    ``arg_constraints`` is empty: the parameters live in the model (an ``nn.Module``),
    not in the distribution, and are unconstrained reals.

    Examples
    --------
    >>> import torch, pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    >>> d = model.to_pyro()
    >>> d.event_shape, d.expand([5]).batch_shape
    (torch.Size([3]), torch.Size([5]))
    >>> round(float(d.log_prob(d.enumerate_support()).detach().exp().sum()), 5)
    1.0
    """

    # the parameters live in the model (an nn.Module), not in the distribution
    arg_constraints: ClassVar[dict] = {}
    has_rsample = False

    def __init__(self, model: EnergyModel, log_partition: Any = None,
                 validate_args: bool | None = None, *, burn_in: int = DEFAULT_BURN_IN,
                 thin: int = DEFAULT_THIN, num_chains: int | None = None,
                 sampler: str = "auto", max_enumerate_states: int | None = None,
                 bias: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None,
                 sampler_options: dict | None = None,
                 log_precision: torch.Tensor | None = None) -> None:
        if not isinstance(model, EnergyModel):
            raise DataError(f"model must be a pgm_boltz.BoltzmannMachine (from pb.compile), "
                            f"got {type(model).__name__}")
        choices = ("auto", "exact", *sampler_names())
        if sampler not in choices:
            raise ArgumentError(f"sampler must be one of {choices}, got {sampler!r}")
        if sampler_options is not None and not isinstance(sampler_options, dict):
            raise ArgumentError(f"sampler_options must be a dict, got {sampler_options!r}")
        self.model = model
        self.log_partition = _as_log_partition(log_partition, model)
        self._warned_constant = False
        self.burn_in = _positive_int("burn_in", burn_in)
        self.thin = _positive_int("thin", thin)
        self.num_chains = None if num_chains is None else _positive_int("num_chains",
                                                                        num_chains)
        self.sampler = sampler
        self.method = "gibbs" if sampler in ("auto", "exact") else sampler
        self.sampler_options = dict(sampler_options or {})
        self.max_enumerate_states = model.plan.max_exact_states \
            if max_enumerate_states is None else _positive_int("max_enumerate_states",
                                                               max_enumerate_states)
        self._params = self._check_params(bias, weight, log_precision)
        self._caller = _Call(model) if self._params is not None else None
        super().__init__(torch.Size(), torch.Size([model.n_visible]),
                         validate_args=validate_args)

    # ------------------------------------------------------------------ plumbing
    def _check_params(self, bias: torch.Tensor | None, weight: torch.Tensor | None,
                      log_precision: torch.Tensor | None = None
                      ) -> dict[str, torch.Tensor] | None:
        if bias is None and weight is None and log_precision is None:
            return None
        m = self.model
        if log_precision is not None and m.log_precision is None:
            raise DataError("log_precision was given, but the model has no quadratic terms "
                            "(no Gaussian units, no precision= declared)")
        out = {}
        specs = [("bias", bias, m.n_nodes), ("weight", weight, len(m.edges))]
        if m.log_precision is not None:
            specs.append(("log_precision", log_precision, len(m.quadratic_index)))
        for name, t, size in specs:
            if t is None:
                t = getattr(m, name)
            if not torch.is_tensor(t):
                raise DataError(f"{name} must be a tensor, got {type(t).__name__}")
            if tuple(t.shape) != (size,):
                per = {"bias": "node", "weight": "edge"}.get(name, "quadratic node")
                raise DataError(
                    f"{name} has shape {tuple(t.shape)}; expected ({size},) — one value per "
                    f"{per} (batched parameters are not supported: score each parameter "
                    "draw separately)")
            out[f"model.{name}"] = t.to(device=m.device, dtype=m.dtype)
        return out

    def _run(self, fn: Callable[[EnergyModel], Any]) -> Any:
        """``fn(model)``, with the substituted bias/weight when given."""
        if self._params is None:
            return fn(self.model)
        return torch.func.functional_call(self._caller, self._params, (fn,))

    @property
    def bias(self) -> torch.Tensor:
        """The biases in use (the model's, or the substituted tensor)."""
        return self.model.bias if self._params is None else self._params["model.bias"]

    @property
    def weight(self) -> torch.Tensor:
        """The weights in use (the model's, or the substituted tensor)."""
        return self.model.weight if self._params is None else self._params["model.weight"]

    def expand(self, batch_shape: Any, _instance: Any = None) -> BoltzmannDistribution:
        """The same distribution with ``batch_shape`` (every element shares the model).

        >>> import pgm_boltz as pb
        >>> d = pb.compile(pb.graphs.rbm(3, 1), seed=0).to_pyro().expand([2, 4])
        >>> d.sample().shape
        torch.Size([2, 4, 3])
        """
        batch_shape = torch.Size(batch_shape)
        try:
            ok = torch.broadcast_shapes(self.batch_shape, batch_shape) == batch_shape
        except RuntimeError:
            ok = False
        if not ok:
            raise DataError(f"cannot expand a distribution of batch_shape "
                            f"{tuple(self.batch_shape)} to {tuple(batch_shape)}")
        new = self._get_checked_instance(BoltzmannDistribution, _instance)
        for key in ("model", "log_partition", "burn_in", "thin", "num_chains", "sampler",
                    "_warned_constant",
                    "method", "sampler_options",
                    "max_enumerate_states", "_params", "_caller"):
            setattr(new, key, getattr(self, key))
        super(BoltzmannDistribution, new).__init__(batch_shape, self.event_shape,
                                                   validate_args=False)
        new._validate_args = self._validate_args
        return new

    def __repr__(self) -> str:
        m = self.model
        return (f"BoltzmannDistribution(n_visible={m.n_visible}, n_hidden={m.n_hidden}, "
                f"engine={m.plan.engine!r}, batch_shape={tuple(self.batch_shape)}, "
                f"event_shape={tuple(self.event_shape)})")

    # ------------------------------------------------------------------ support
    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        """The visible codes: see :func:`visible_support`."""
        return visible_support(self.model.visible_domains)

    def _validate_sample(self, value: torch.Tensor) -> None:
        """Shape and support checks (DataError, a ValueError, naming the bad entry)."""
        m = self.model
        shape = tuple(value.shape)
        try:
            torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        except RuntimeError:
            raise DataError(f"value of shape {shape} does not broadcast with batch_shape "
                            f"{tuple(self.batch_shape)} + event_shape "
                            f"{tuple(self.event_shape)}") from None
        if value.numel() == 0:
            return
        ok = self.support.check(value)
        if not bool(ok.all()):
            row = tuple(int(i) for i in (~ok).nonzero()[0]) if ok.dim() else ()
            entry = value[row]
            col = int(m.visible_domains.invalid_codes(entry).nonzero()[0, 0])
            dom = m.visible_domains.domains[col]
            raise DataError(
                f"value{list(row) if row else ''}[{col}] (node {m.visible_nodes[col]!r}) is "
                f"{float(entry[col])!r}, outside the support: the node's domain "
                f"{dom.describe()} takes {dom.codes_text()} ({int((~ok).sum())} bad rows "
                "in all)")

    def _codes(self, value: Any) -> torch.Tensor:
        m = self.model
        if not torch.is_tensor(value):
            raise DataError(f"value must be a tensor of shape (..., {m.n_visible}), got "
                            f"{type(value).__name__}")
        if value.dim() == 0 or value.shape[-1] != m.n_visible:
            raise DataError(f"value has shape {tuple(value.shape)}; its last dimension must "
                            f"be the {m.n_visible} visible units (event_shape "
                            f"{tuple(self.event_shape)}) in model.visible_nodes order")
        if self._validate_args:
            self._validate_sample(value)
        return value.to(device=m.device, dtype=m.dtype)

    # ------------------------------------------------------------------ scoring
    def _log_z(self) -> torch.Tensor:
        if self.log_partition is not None:
            return self.log_partition
        plan = self.model.plan
        if not plan.exact_feasible:
            raise IntractableError(
                f"log_prob needs log Z, and exact log Z would enumerate "
                f"{plan.exact_states:.3g} states (over the threshold "
                f"{plan.max_exact_states:,}); pass an estimate: "
                "BoltzmannDistribution(model, log_partition=model.log_partition("
                "method='ais')) or model.to_pyro(log_partition=...)")
        if self._params is None:
            return self.model.exact_log_partition()
        return self.model.log_partition_of(self._params["model.bias"],
                                           self._params["model.weight"],
                                           self._params.get("model.log_precision"))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log P(v) = -F(v) - log Z`` for codes ``v`` of shape ``(..., n_visible)``.

        Only the last (event) dimension is reduced; the result has shape
        ``broadcast(value.shape[:-1], batch_shape)``, so values from
        :meth:`enumerate_support` (extra leading dimensions) score as Pyro's enumeration
        needs. Differentiable with respect to the model's parameters (or the substituted
        ``bias``/``weight``): exact ``log Z`` where ``model.plan.exact_feasible``, else the
        supplied ``log_partition`` (IntractableError without one).

        >>> import torch, pgm_boltz as pb
        >>> d = pb.compile(pb.graphs.rbm(2, 1), seed=0).to_pyro()
        >>> d.log_prob(torch.zeros(4, 1, 2)).shape
        torch.Size([4, 1])
        """
        codes = self._codes(value)
        m = self.model
        lead = codes.shape[:-1]
        flat = codes.reshape(-1, m.n_visible)
        log_z = self._log_z()
        self._warn_constant_log_z()
        if flat.shape[0] == 0:
            lp = flat.sum(-1) - log_z
        else:
            vals = m.visible_domains.encode(flat)
            lp = -self._run(lambda mod: mod.free_energy_values(vals)) - log_z
        lp = lp.reshape(lead)
        return lp.expand(torch.broadcast_shapes(lead, self.batch_shape))

    def _warn_constant_log_z(self) -> None:
        """A fixed log Z (a number or an AIS estimate) while gradients flow into the
        parameters makes ``log_prob``'s gradient ignore ``d log Z``: SVI or any optimiser
        on it then follows ``-F(v)`` alone, the wrong objective. Warn once."""
        lz = self.log_partition
        if lz is None or lz.requires_grad or not torch.is_grad_enabled() or \
                self._warned_constant:
            return
        params = (self._params.values() if self._params is not None
                  else self.model.parameters())
        if any(p.requires_grad for p in params):
            self._warned_constant = True
            warnings.warn(
                "log_prob uses a fixed log Z (a number or an AIS estimate) while the "
                "parameters can change: its gradient ignores d log Z / d θ, so optimising "
                "it (SVI, pyro.module) follows the wrong objective. Re-estimate log Z as the "
                "parameters change, pass a differentiable log Z tensor, or train with "
                "model.fit; wrap scoring in torch.no_grad() to silence this",
                PgmBoltzWarning, stacklevel=3)

    # ------------------------------------------------------------------ sampling
    def _use_exact(self) -> bool:
        if self.sampler == "auto":
            return self.model.plan.exact_feasible
        if self.sampler == "exact":
            self.model.plan.require_exact("exact sampling (sampler='exact')")
        return self.sampler == "exact"

    def sample(self, sample_shape: Any = _NO_SHAPE) -> torch.Tensor:
        """Draws of shape ``sample_shape + batch_shape + (n_visible,)`` (codes, no grad).

        Exact independent draws where ``model.plan.exact_feasible`` (or
        ``sampler="exact"``); otherwise block/chromatic Gibbs over the model's colour
        classes: ``num_chains`` chains (one per draw by default) each run ``burn_in``
        sweeps, then give a draw every ``thin`` sweeps. The seed is drawn from torch's
        global RNG, so ``pyro.set_rng_seed`` makes runs reproducible.

        >>> import pyro, pgm_boltz as pb
        >>> d = pb.compile(pb.graphs.rbm(3, 2, domain="spin"), seed=0).to_pyro()
        >>> pyro.set_rng_seed(0)
        >>> d.sample((10,)).shape
        torch.Size([10, 3])
        """
        shape = self._extended_shape(torch.Size(sample_shape))
        m = self.model
        n = math.prod(shape[:-1])
        if n == 0:
            return torch.empty(shape, dtype=m.dtype, device=m.device)
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        with torch.no_grad():
            if self._use_exact():
                draws = self._run(lambda mod: _sample(mod, n, seed=seed, method="exact"))
            else:
                draws = self._run(lambda mod: self._gibbs(mod, n, seed))
        return draws.reshape(shape)

    def _gibbs(self, model: EnergyModel, n: int, seed: int) -> torch.Tensor:
        chains = n if self.num_chains is None else min(self.num_chains, n)
        per_chain = -(-n // chains)
        vi = model.index("visible")
        x = run_chains(model, chains, steps=self.burn_in, seed=seed, sampler=self.method,
                       **self.sampler_options)
        draws = [x[:, vi].clone()]
        if per_chain > 1:
            sampler = make_sampler(model, self.method, **self.sampler_options)
            gen = make_generator(seed + 1, model.device)
            for _ in range(per_chain - 1):
                sampler.sweep(x, self.thin, generator=gen)
                draws.append(x[:, vi].clone())
        vals = torch.stack(draws).reshape(-1, model.n_visible)[:n]
        return model.decode_visible(vals)

    # ------------------------------------------------------------------ enumeration
    @property
    def n_visible_states(self) -> int:
        """The number of visible configurations, ``prod_i K_i``."""
        return math.prod(d.levels for d in self.model.visible_domains.domains)

    @property
    def has_enumerate_support(self) -> bool:  # type: ignore[override]
        """Whether :meth:`enumerate_support` works: every visible unit is discrete, exact
        ``log Z`` is feasible and the visible configurations number at most
        ``max_enumerate_states``."""
        return (self.model.visible_domains.discrete and self.model.plan.exact_feasible
                and self.n_visible_states <= self.max_enumerate_states)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """Every visible configuration (the cartesian product of each unit's codes).

        Shape ``(n_states,) + (1,) * len(batch_shape) + (n_visible,)`` with
        ``expand=False`` and ``(n_states,) + batch_shape + (n_visible,)`` with
        ``expand=True``, as Pyro's enumeration expects. The first unit varies slowest.

        >>> import pgm_boltz as pb
        >>> d = pb.compile(pb.graphs.rbm(3, 1), seed=0).to_pyro().expand([4])
        >>> d.enumerate_support(expand=False).shape, d.enumerate_support().shape
        (torch.Size([8, 1, 3]), torch.Size([8, 4, 3]))
        """
        m = self.model
        if not m.visible_domains.discrete:
            node = next(m.visible_nodes[i] for i, d in enumerate(m.visible_domains.domains)
                        if not d.discrete)
            raise IntractableError(
                f"enumerate_support lists every visible configuration, and visible node "
                f"{node!r} is continuous (gaussian): its support cannot be enumerated; "
                "sample it instead")
        if not self.has_enumerate_support:
            if not m.plan.exact_feasible:
                raise IntractableError(
                    "enumerate_support needs exact log Z, which this model is too large "
                    f"for ({m.plan.exact_states:.3g} states); sample it instead")
            raise IntractableError(
                f"enumerate_support would list {self.n_visible_states:,} visible "
                f"configurations, over max_enumerate_states={self.max_enumerate_states:,}")
        codes = [torch.as_tensor(d.codes(), dtype=m.dtype, device=m.device)
                 for d in m.visible_domains.domains]
        states = torch.cartesian_prod(*codes).reshape(-1, m.n_visible)
        states = states.reshape((states.shape[0],) + (1,) * len(self.batch_shape)
                                + (m.n_visible,))
        if expand:
            states = states.expand((states.shape[0], *self.batch_shape, m.n_visible))
        return states

    # ------------------------------------------------------------------ moments
    def _code_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of every visible *code* from the exact marginals:
        ``E[c] = sum_k c_k P(level k)``, ``Var[c] = sum_k c_k^2 P(level k) - E[c]^2``
        (Gaussian units: ``<s>`` and ``<s^2> - <s>^2`` from the exact moments)."""
        m = self.model
        m.plan.require_exact("the mean and variance")
        marg = self._run(lambda mod: mod.marginals())
        cont = not m.visible_domains.discrete
        if cont:
            mean, second = self._run(lambda mod: mod.moments(all_pairs=False))
        mu, var = [], []
        for i, (node, d) in enumerate(zip(m.visible_nodes, m.visible_domains.domains)):
            if not d.discrete:
                j = int(m.visible_index[i])
                e, e2 = float(mean[j]), float(second[j, j])
                mu.append(e)
                var.append(max(0.0, e2 - e * e))
                continue
            p, c = marg[node], d.codes()
            e = float((p * c).sum())
            mu.append(e)
            var.append(max(0.0, float((p * c * c).sum()) - e * e))
        t = lambda a: torch.tensor(a, dtype=m.dtype, device=m.device)
        return t(mu), t(var)

    @property
    def mean(self) -> torch.Tensor:
        """Exact ``E[v_i]`` of every visible code, shape ``batch_shape + (n_visible,)``."""
        return self._code_moments()[0].expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        """Exact ``Var[v_i]`` of every visible code, shape ``batch_shape + (n_visible,)``."""
        return self._code_moments()[1].expand(self.batch_shape + self.event_shape)


def boltzmann_with_params(model: EnergyModel, bias: torch.Tensor,
                          weight: torch.Tensor, **kwargs: Any) -> BoltzmannDistribution:
    """The model's visible distribution with the parameters ``bias`` (n_nodes,) and
    ``weight`` (n_edges,) in place of ``model.bias`` / ``model.weight``.

    ``log_prob`` is ``-F(v; b, w) - log Z(b, w)`` and is differentiable with respect to
    ``bias`` and ``weight`` (``d log Z/d b = <s>``, ``d log Z/d w_ij = <s_i s_j>``), so the
    parameters can be sample sites of a prior, e.g. for NUTS::

        b = pyro.sample("bias", dist.Normal(0., 1.).expand([model.n_nodes]).to_event(1))
        w = pyro.sample("weight", dist.Normal(0., 1.).expand([len(model.edges)]).to_event(1))
        with pyro.plate("data", len(data)):
            pyro.sample("x", pb.pyro.boltzmann_with_params(model, b, w), obs=data)

    Sampling uses the given values too. ``kwargs`` are those of
    :class:`BoltzmannDistribution` (``log_precision=`` for models with quadratic terms).

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(2, domain="spin"), seed=0)
    >>> b = torch.zeros(2, requires_grad=True)
    >>> w = torch.ones(1, requires_grad=True)
    >>> d = boltzmann_with_params(m, b, w)
    >>> d.log_prob(torch.tensor([1.0, 1.0])).backward()
    >>> [round(float(g), 4) for g in w.grad]  # 1 - <s1 s2> = 1 - tanh(1)
    [0.2384]
    """
    return BoltzmannDistribution(model, bias=bias, weight=weight, **kwargs)
