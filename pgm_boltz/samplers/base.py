"""The sampler seam: MCMC over a model's colour classes, at any inverse temperature.

A sampler moves joint states ``x`` (chains × nodes, values) by sweeps that leave the
tempered law

    p_β(x) ∝ exp(-(1 - β) E_0(x) - β E(x)),      E_0(x) = -b0 . x,

invariant, where ``E`` is the model's energy and ``E_0`` an independent base model
(biases ``b0``; zero by default, so ``p_β ∝ exp(-β E)``). ``β = 1`` is the model, ``β = 0``
the base. ``beta`` is a float or a tensor with one value per chain (parallel tempering
sweeps all replicas at once). Given the other classes, the units of one colour class are
independent with fields ``f_β = (1 - β) b0 + β (b + sum_p s_p W_pq)``.

Quadratic self-terms ``q_i s_i^2 / 2`` (Gaussian units; multinary or finite units with a
precision) are part of the base model too and are *not* annealed: with
``E = E_lin + Q`` and ``E_0 = -b0 . x + Q``, ``p_β ∝ exp(-(1-β)(-b0 . x) - β E_lin - Q)``,
so every unit keeps its precision ``q_i`` at every β (a Gaussian unit stays normalisable
at β = 0) and only its field is tempered: ``s_i ~ P(s_i | f_β, q_i)``.

The protocol (:class:`Sampler`): ``init(n, generator)`` starting states, ``sweep(x, n,
beta, generator)`` in place, ``update_block(x, k, beta, generator)`` one class,
``mean_field(x, k, beta)`` conditional means, ``refresh()`` after a parameter update.
Samplers register under a name (:func:`register_sampler`); :func:`make_sampler` builds
one by name. Block Gibbs (torch, CPU/CUDA: :mod:`.block_gibbs`) and sequential Gibbs
(numba single-site sweeps, CPU: :mod:`.sequential`) run the same chain; ``"gibbs"``
picks the faster for the model.

>>> import torch, pgm_boltz as pb
>>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
>>> s = make_sampler(m, "gibbs")
>>> x = s.init(5, torch.Generator().manual_seed(0))
>>> s.sweep(x, 2, generator=torch.Generator().manual_seed(1)).shape
torch.Size([5, 7])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_call, check_choice
from ..domains import DomainVector
from ..errors import ArgumentError

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["Beta", "Block", "Sampler", "make_sampler", "register_sampler", "sampler_names",
           "sampler_options"]

#: An inverse temperature: one float for all chains, or a tensor (chains,).
Beta = float | torch.Tensor


@dataclass
class Block:
    """The free nodes of one colour class: ``index`` (tensor), ``sl`` (the same as a
    slice when contiguous), their ``domains``, the class id ``block`` in the plan and
    ``pos`` (positions of the free nodes within the class; None when all are free)."""

    index: torch.Tensor
    sl: slice | None
    domains: DomainVector
    block: int
    nodes: np.ndarray
    pos: torch.Tensor | None


class Sampler(ABC):
    """MCMC over a model's colour classes (see the module text).

    Parameters
    ----------
    model: the compiled model.
    clamped: node indices held fixed (e.g. the visible units in a positive phase); sweeps
        leave their values in ``x`` untouched.
    base_bias: biases ``b0`` (n,) of the base model of the tempered laws (default 0).
    """

    name = "sampler"

    def __init__(self, model: EnergyModel, clamped: np.ndarray | None = None,
                 base_bias: torch.Tensor | None = None) -> None:
        self.model = model
        self._block_q: list[torch.Tensor | None] = []
        n = model.n_nodes
        mask = np.zeros(n, dtype=bool)
        if clamped is not None:
            ci = np.asarray(clamped, dtype=np.int64).reshape(-1)
            if len(ci) and (ci.min() < 0 or ci.max() >= n):
                raise ArgumentError(f"clamped node indices must lie in 0..{n - 1}")
            mask[ci] = True
        self.clamped_mask = mask
        dev = model.device
        self.blocks: list[Block] = []
        for b, idx in enumerate(model.plan.block_index):
            keep = ~mask[idx]
            free = np.asarray(idx[keep], dtype=np.int64)
            if len(free) == 0:
                continue
            contiguous = len(free) == 1 or bool(np.all(np.diff(free) == 1))
            self.blocks.append(Block(
                index=torch.as_tensor(free, device=dev),
                sl=slice(int(free[0]), int(free[-1]) + 1) if contiguous else None,
                domains=DomainVector([model.spec.domains[i] for i in free]), block=b,
                nodes=free,
                pos=None if keep.all() else torch.as_tensor(np.flatnonzero(keep), device=dev)))
        if base_bias is not None:
            base_bias = base_bias.detach().to(dev, model.dtype)
            if tuple(base_bias.shape) != (n,):
                raise ArgumentError(f"base_bias must have shape ({n},), got "
                                    f"{tuple(base_bias.shape)}")
        self.base_bias = base_bias
        self._read_quad()

    def _read_quad(self) -> None:
        """Re-read the precisions of the free classes (None for classes without quadratic
        terms); subclasses call it from :meth:`refresh`."""
        m = self.model
        q = m.precisions()
        self._q_all = None if q is None else q.detach()
        self._block_q = [None if q is None else m.precisions_at(blk.nodes, self._q_all)
                         for blk in self.blocks]

    def block_quad(self, k: int) -> torch.Tensor | None:
        """Precisions ``q`` of the k-th free class (None: no quadratic terms there)."""
        return self._block_q[k] if self._block_q else None

    # ------------------------------------------------------------------ protocol
    def init(self, n: int, generator: torch.Generator | None = None,
             visible_values: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` starting states: each unit from the β = 0 law of a zero base (uniform over
        its levels; ``P(s) ∝ exp(-q s^2 / 2)`` with a quadratic term, normal for Gaussian
        units), or the given visible values with such hidden units."""
        m = self.model
        x = m.domains.sample(torch.zeros(n, m.n_nodes, dtype=m.dtype, device=m.device),
                             generator, getattr(self, "_q_all", None))
        if visible_values is not None:
            x[:, m.index("visible")] = visible_values.to(m.dtype)
        return x

    @abstractmethod
    def refresh(self) -> None:
        """Re-read the model's parameters (after an optimiser step)."""

    @abstractmethod
    def sweep(self, x: torch.Tensor, n_sweeps: int = 1, beta: Beta = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``n_sweeps`` sweeps at inverse temperature ``beta``, each updating every free
        class once in the plan's order, in place on ``x`` (B, n); returns ``x``."""

    @abstractmethod
    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Fields ``b + sum_p s_p W_pq`` (β = 1) of the k-th free class, (B, n_k)."""

    def tempered_field(self, x: torch.Tensor, k: int, beta: Beta,
                       field: torch.Tensor | None = None) -> torch.Tensor:
        """``f_β = (1 - β) b0 + β f`` of the k-th free class (``field``: ``f`` when the
        caller has it already)."""
        f = self.block_field(x, k) if field is None else field
        if isinstance(beta, float | int) and beta == 1.0:
            return f
        b = beta if not torch.is_tensor(beta) else beta.to(f.dtype).reshape(-1, 1)
        if self.base_bias is None:
            return f * b
        b0 = self.base_bias[self.blocks[k].index]
        return b0 + b * (f - b0)

    def update_block(self, x: torch.Tensor, k: int, beta: Beta = 1.0,
                     generator: torch.Generator | None = None,
                     field: torch.Tensor | None = None) -> torch.Tensor:
        """Draw the k-th free class given the rest, at ``beta``, in place on ``x``
        (``field``: its β = 1 field :meth:`block_field`, when the caller has it)."""
        blk = self.blocks[k]
        with torch.no_grad():
            new = blk.domains.sample(self.tempered_field(x, k, beta, field), generator,
                                     self.block_quad(k))
            if blk.sl is not None:
                x[:, blk.sl] = new
            else:
                x[:, blk.index] = new
        return x

    def mean_field(self, x: torch.Tensor, k: int, beta: Beta = 1.0) -> torch.Tensor:
        """Conditional means ``E[s | rest]`` of the k-th free class given ``x``."""
        return self.blocks[k].domains.mean(self.tempered_field(x, k, beta),
                                           self.block_quad(k))

    def second_moment_field(self, x: torch.Tensor, k: int, beta: Beta = 1.0
                            ) -> torch.Tensor:
        """Conditional second moments ``E[s^2 | rest]`` of the k-th free class."""
        return self.blocks[k].domains.second_moment(self.tempered_field(x, k, beta),
                                                    self.block_quad(k))

    def memory_bytes(self) -> int:
        """Bytes held by the sampler's coupling structures."""
        return 0

    def statistics(self, x: torch.Tensor) -> Any:
        """What the sampler records about the chains ``x`` (parallel tempering: a
        :class:`~pgm_boltz.results.TemperingStats`); None for samplers that keep
        nothing beyond ``x``."""
        return None

    def metrics(self, x: torch.Tensor) -> dict[str, float]:
        """Numbers about the chains ``x`` worth a training history's epoch record (e.g.
        swap rates); empty for samplers that keep nothing beyond ``x``."""
        return {}


_SAMPLERS: dict[str, Callable[..., Sampler]] = {}


def register_sampler(name: str, factory: Callable[..., Sampler], *,
                     replace: bool = False) -> None:
    """Make ``make_sampler(model, name, ...)`` build samplers with ``factory(model,
    **options)``."""
    if name in _SAMPLERS and not replace:
        raise ArgumentError(f"sampler {name!r} is registered already")
    _SAMPLERS[name] = factory


def sampler_names() -> list[str]:
    """The registered sampler names."""
    return list(_SAMPLERS)


def sampler_options(name: str) -> tuple[str, ...]:
    """The keyword options the sampler ``name`` takes beyond the common ones (``clamped``,
    ``base_bias``, ``backend``), read off its factory's signature.

    >>> sampler_options("block-gibbs")
    ()
    """
    import inspect

    check_choice("sampler", name, sampler_names())
    params = inspect.signature(_SAMPLERS[name]).parameters
    return tuple(p for p, v in params.items()
                 if p not in ("model", "clamped", "base_bias", "backend")
                 and v.kind is not inspect.Parameter.VAR_KEYWORD)


def make_sampler(model: EnergyModel, name: str = "gibbs", **options: Any) -> Sampler:
    """A sampler of ``model`` by its registered name (``"gibbs"``: block or sequential
    Gibbs, whichever is faster here; ``"block-gibbs"``, ``"sequential"``, ...).

    >>> import pgm_boltz as pb
    >>> type(make_sampler(pb.compile(pb.graphs.rbm(4, 3)), "block-gibbs")).__name__
    'BlockGibbs'
    """
    check_choice("sampler", name, sampler_names())
    check_call(_SAMPLERS[name], options, f"sampler {name!r}", skip=("model",))
    return _SAMPLERS[name](model, **options)
