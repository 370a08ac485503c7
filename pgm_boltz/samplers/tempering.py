"""Parallel tempering (replica exchange): Gibbs chains that cross energy barriers.

Every chain carries ``L = R + 1`` replicas at inverse temperatures
``1 = β_0 > β_1 > ... > β_R >= 0`` of the tempered laws of the sampler seam
(:mod:`.base`),

    p_β(x) ∝ exp(-(1 - β) E_0(x) - β E(x)) = exp(-E_0(x)) exp(-β D(x)),
    E_0(x) = -b0 . x,     D(x) = E(x) - E_0(x) = E(x) + b0 . x,

so ``β_0 = 1`` is the model and ``β = 0`` the independent base model (biases ``b0``: by
default the data's visible marginals ``model.visible_init`` where the model was fitted,
else 0, i.e. uniform units), which a Gibbs sweep samples exactly. One tempering sweep
is one Gibbs sweep of every replica of every chain (all replicas of all chains stacked as
the rows of one tensor with a per-row β: one call of the inner block or sequential Gibbs
sampler, :func:`~.sequential.gibbs_sampler`, torch or numba), then a replica-exchange step
between neighbouring levels, the even pairs ``(0, 1), (2, 3), ...`` and the odd pairs
``(1, 2), (3, 4), ...`` on alternate steps. Exchanging the states ``x_i`` at ``β_i`` and
``x_j`` at ``β_j`` is accepted with probability

    min(1, p_βi(x_j) p_βj(x_i) / (p_βi(x_i) p_βj(x_j))) = min(1, exp((β_i - β_j)(D(x_i) - D(x_j)))),

which leaves the product of the tempered laws invariant (detailed balance), so the
``β = 1`` replicas are chains of the model that mix as fast as the hot replicas carry
them across barriers.

The protocol's state ``x`` (chains × nodes) is the ``β = 1`` replicas only, as for plain
Gibbs, so everything that drives a sampler by name (``model.sample(n,
method="tempering")``, ``fit(..., sampler="tempering")``, Pyro, ``pb.diagnostics``,
conditioning) works unchanged. The other replicas are **kept with the chains**: a
:class:`TemperingState` (the stacked replicas, the ladder, swap counters, replica labels)
is attached to the chain tensor ``x`` itself (a weak mapping keyed by the tensor's
identity, dropped with the tensor), so any tempering sampler with the same ladder
options that later sweeps the same tensor — a second sampler, a continued PCD fit on
``model.persistent_chains`` — continues the replicas. A tensor it has not seen (or one
whose shape, device, dtype or ladder options differ) starts with every replica a copy of
its chain's state. Whatever is in ``x`` when a sweep starts is the ``β = 1`` state (an
edit of ``x`` between sweeps is respected); nodes clamped by the sampler are copied
from ``x`` into every replica.

Ladders (``ladder=``):

- ``"linear"``: ``β_r = 1 - r (1 - β_min) / R``;
- ``"geometric"``: ``β_r = β_min^(r/R)`` (geometric temperatures; needs ``β_min > 0``);
- ``"adaptive"`` (the default): starts linear and, during the first ``adapt_sweeps``
  sweeps, re-spaces the ladder every window of sweeps so that every neighbouring pair
  has the same swap rate. For Gaussian energy distributions the swap rate between
  ``β`` and ``β + Δβ`` is ``A = erfc(Δβ σ / 2)`` (``σ`` the std of ``D``), so each pair's
  measured rate ``A_r`` gives its *thermodynamic distance* ``d_r = 2 erfcinv(A_r)``;
  the levels are re-placed at equal steps of the cumulative distance (equal predicted
  swap rates, the "equalise acceptance" feedback of Kofke 2002 / Vousden et al. 2016).
  Without ``n_replicas`` the number of levels is re-chosen each window too, as
  ``R = ceil(sum_r d_r / (2 erfcinv(target_rate)))``, so that every pair swaps at about
  ``target_rate``; with ``n_replicas`` the count stays and the rates are equalised.
  With the count unchanged the replicas stay and only their β move; a new count starts
  each new level from the replicas of the nearest old one. Swap counters restart when
  the ladder moves, round trips when the count changes. After ``adapt_sweeps`` the
  ladder is fixed.
- ``betas=[1, ..., β_R]``: an explicit ladder (decreasing from 1, last >= 0).

The default number of levels is ``clip(ceil(sqrt(n_free)), 4, 32)`` with ``n_free`` the
free nodes: the thermodynamic length ``∫ σ dβ`` of a model of ``n`` weakly dependent
units grows like ``sqrt(n)``, so this keeps swap rates roughly size-independent.

Diagnostics (:meth:`TemperingSampler.statistics`, :class:`~pgm_boltz.results.TemperingStats`):
per-pair swap rates, round trips (a replica travelling ``β_0 → β_R → β_0``, tracked by
replica labels) and the fraction of replicas at each level that last visited ``β_0``
(Katzgraber et al. 2006: a straight line from 1 to 0 when the ladder is well spaced).

>>> import torch, pgm_boltz as pb
>>> m = pb.compile(pb.graphs.fully_connected(6, domain="spin"), seed=0)
>>> s = TemperingSampler(m, n_replicas=4, ladder="linear")
>>> g = torch.Generator().manual_seed(0)
>>> x = s.init(10, g)
>>> s.sweep(x, 20, generator=g).shape
torch.Size([10, 6])
>>> [round(b, 3) for b in s.statistics(x).betas.tolist()]
[1.0, 0.667, 0.333, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.weak import WeakIdKeyDictionary

from .._validation import check_choice, check_int, check_number
from ..errors import ArgumentError
from ..results import TemperingStats
from .base import Beta, Sampler, register_sampler
from .sequential import gibbs_sampler

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["LADDERS", "TemperingSampler", "TemperingState", "default_replicas",
           "tempering_statistics"]

LADDERS = ("adaptive", "linear", "geometric")
#: Most levels the adaptive ladder may choose.
MAX_REPLICAS = 128
#: Default sweeps during which an adaptive ladder adapts.
DEFAULT_ADAPT_SWEEPS = 500
#: Swap attempts per pair an adaptation window aims for (over all chains).
_WINDOW_ATTEMPTS = 1000
_MIN_WINDOW = 10
#: More coupled class pairs than this: swap energies by the dense J (as BlockGibbs).
_MAX_ENERGY_PAIRS = 32

#: chain tensor -> its TemperingState (weak keys: dropped with the tensor)
_STATES: WeakIdKeyDictionary = WeakIdKeyDictionary()


def default_replicas(n_free: int) -> int:
    """The default number of levels (replicas per chain, β = 1 included):
    ``clip(ceil(sqrt(n_free)), 4, 32)``.

    >>> default_replicas(20), default_replicas(1284)
    (5, 32)
    """
    return int(min(32, max(4, math.ceil(math.sqrt(max(1, n_free))))))


def _erfcinv(y: np.ndarray) -> np.ndarray:
    """Inverse complementary error function (float64, by torch's ``erfinv``)."""
    return torch.special.erfinv(torch.as_tensor(1.0 - y, dtype=torch.float64)).numpy()


@dataclass
class TemperingState:
    """The replicas of a batch of chains (attached to the chain tensor; see the module
    text). ``Y`` stacks the levels: row ``r * C + c`` is chain ``c`` at ``betas[r]``.
    Swap counters (attempts and acceptances per pair) restart whenever the adaptive
    ladder moves; round trips, the per-level flow and ``sweeps`` restart when the number
    of levels changes. ``labels[r, c]`` is the replica at level ``r`` of chain ``c``,
    ``last[w, c]`` the end replica ``w`` visited last (0 none, 1 the β = 1 end, 2 the
    hot end) and ``cold[w, c]`` whether it has visited β = 1."""

    key: tuple
    Y: torch.Tensor
    betas: np.ndarray
    row_betas: torch.Tensor
    labels: torch.Tensor
    last: torch.Tensor
    cold: torch.Tensor
    accepted: torch.Tensor
    attempts: torch.Tensor
    round_trips: torch.Tensor
    flow_up: torch.Tensor
    flow_seen: torch.Tensor
    sweeps: int = 0  # sweeps since the number of levels last changed
    total_sweeps: int = 0  # sweeps since the state was created
    parity: int = 0
    adapting: bool = False
    window_start: int = 0
    marks: tuple = ()  # counters at the last metrics() call
    moves: int = 0  # ladder moves so far
    last_window: tuple | None = None  # (accepted, attempts) before the last move

    @property
    def n_levels(self) -> int:
        return len(self.betas)

    @property
    def n_chains(self) -> int:
        return self.Y.shape[0] // len(self.betas)


class TemperingSampler(Sampler):
    """Parallel tempering over the plan's colour classes (see the module text).

    Parameters
    ----------
    model: the compiled model; clamped: node indices held fixed (as for Gibbs).
    backend: the inner Gibbs sampler's backend, ``"auto"``, ``"torch"`` or ``"numba"``.
    base_bias: the base model's biases ``b0`` (n,); overrides ``base``.
    n_replicas: levels per chain, β = 1 included (>= 2; default
        :func:`default_replicas`, or chosen by the adaptive ladder).
    betas: an explicit ladder ``1 = β_0 > ... > β_R >= 0`` (overrides ``ladder``).
    ladder: ``"adaptive"`` (default), ``"linear"`` or ``"geometric"``.
    beta_min: the hottest level's β (default 0: the base model; must be > 0 for
        ``"geometric"``, default 0.01 there).
    target_rate: the swap rate per pair the adaptive ladder aims for when it chooses the
        number of levels (default 0.3).
    adapt_sweeps: sweeps (counted per chain tensor) during which an adaptive ladder
        adapts (default 500; 0 fixes the starting ladder).
    swap_every: Gibbs sweeps between replica-exchange steps (default 1).
    base: ``"auto"`` (``model.visible_init`` on visible units where the model was
        fitted, else 0), ``"uniform"`` (all 0), or a tensor (n,) of base biases.

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(5, 3), seed=0)
    >>> x = m.sample(6, method="tempering", steps=30, seed=0, n_replicas=3)
    >>> x.shape
    torch.Size([6, 5])
    """

    name = "tempering"

    def __init__(self, model: EnergyModel, clamped: np.ndarray | None = None,
                 backend: str = "auto", base_bias: torch.Tensor | None = None, *,
                 n_replicas: int | None = None, betas: Sequence[float] | None = None,
                 ladder: str = "adaptive", beta_min: float | None = None,
                 target_rate: float = 0.3, adapt_sweeps: int | None = None,
                 swap_every: int = 1, base: Any = "auto") -> None:
        where = "tempering sampler"
        b0 = base_bias if base_bias is not None else _base_bias(model, base)
        super().__init__(model, clamped, b0)
        self.inner = gibbs_sampler(model, clamped, backend, self.base_bias)
        self.backend = self.inner.backend
        check_choice("ladder", ladder, LADDERS, where=where)
        n_replicas = check_int("n_replicas", n_replicas, 2, MAX_REPLICAS, allow_none=True,
                               where=where)
        self.target_rate = check_number("target_rate", target_rate, 0.0, strict=True,
                                        maximum=0.99, where=where)
        self.swap_every = check_int("swap_every", swap_every, 1, where=where)
        adapt = check_int("adapt_sweeps", adapt_sweeps, 0, allow_none=True, where=where)
        default_min = 0.01 if ladder == "geometric" else 0.0
        beta_min = check_number("beta_min", default_min if beta_min is None else beta_min,
                                0.0, maximum=1.0, where=where)
        n_free = int((~self.clamped_mask).sum())
        if betas is not None:
            ladder_betas = _check_betas(betas)
            if n_replicas is not None and n_replicas != len(ladder_betas):
                raise ArgumentError(f"{where}: n_replicas={n_replicas} but betas has "
                                    f"{len(ladder_betas)} levels; give one of them")
            self.ladder = "explicit"
            self.adaptive = False
        else:
            self.ladder = ladder
            self.adaptive = ladder == "adaptive"
            L = n_replicas if n_replicas is not None else default_replicas(n_free)
            if ladder == "geometric":
                if beta_min <= 0:
                    raise ArgumentError(f"{where}: the geometric ladder needs beta_min > 0 "
                                        f"(it spaces log β), got {beta_min}; use "
                                        "ladder='linear' to reach β = 0")
                ladder_betas = beta_min ** (np.arange(L) / (L - 1))
            else:
                ladder_betas = 1.0 - np.arange(L) / (L - 1) * (1.0 - beta_min)
            ladder_betas[0] = 1.0
        if beta_min >= 1.0 and betas is None:
            raise ArgumentError(f"{where}: beta_min must be < 1, got {beta_min}")
        self.betas = np.asarray(ladder_betas, dtype=np.float64)
        self.fixed_count = n_replicas is not None or betas is not None
        self.adapt_sweeps = (DEFAULT_ADAPT_SWEEPS if adapt is None else adapt) \
            if self.adaptive else 0
        self._key = ("tempering", self.ladder, tuple(self.betas.tolist()),
                     self.fixed_count, self.target_rate, self.adapt_sweeps,
                     self.swap_every, tuple(np.flatnonzero(self.clamped_mask).tolist()))
        self._clamped_idx = torch.as_tensor(np.flatnonzero(self.clamped_mask),
                                            device=model.device)
        # energies for the swaps: the model's block products, or one product with the
        # dense J where the colouring has many classes (a fully connected graph)
        self._dense_energy = model.plan.storage == "dense" \
            and len(model._block_pairs) > _MAX_ENERGY_PAIRS
        self._J: torch.Tensor | None = None
        self.refresh()

    # ------------------------------------------------------------------ protocol
    def refresh(self) -> None:
        """Re-read the model's parameters (after an optimiser step)."""
        self.inner.refresh()
        if self._dense_energy:
            with torch.no_grad():
                self._J = self.model.coupling_matrix().detach()

    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Fields of the k-th free class (β = 1), from the inner Gibbs sampler."""
        return self.inner.block_field(x, k)

    def memory_bytes(self) -> int:
        """Bytes held by the inner sampler's coupling structures."""
        return self.inner.memory_bytes()

    def sweep(self, x: torch.Tensor, n_sweeps: int = 1, beta: Beta = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``n_sweeps`` tempering sweeps (a Gibbs sweep of every replica, then a swap
        step every ``swap_every`` sweeps), in place on the β = 1 chains ``x`` (C, n).
        A ``beta`` other than 1 tempers the whole ladder: level ``r`` runs at
        ``beta * β_r``."""
        n_sweeps = int(n_sweeps)
        if n_sweeps < 1 or not self.blocks:
            return x
        C = x.shape[0]
        bscale = None
        if torch.is_tensor(beta):
            bscale = beta.detach().to(x.device, torch.float64).reshape(-1)
            if bscale.numel() == 1:
                bscale = bscale.expand(C)
            if bscale.numel() != C:
                raise ArgumentError(f"beta has {bscale.numel()} values for {C} chains")
        elif beta != 1.0:
            bscale = torch.full((C,), float(beta), dtype=torch.float64, device=x.device)
        with torch.no_grad():
            st = self._state(x)
            st.Y[:C] = x
            if len(self._clamped_idx):
                st.Y[:, self._clamped_idx] = x[:, self._clamped_idx].repeat(st.n_levels, 1)
            done = 0
            while done < n_sweeps:
                k = min(n_sweeps - done, self.swap_every - st.total_sweeps % self.swap_every)
                rb = st.row_betas if bscale is None else \
                    st.row_betas * bscale.repeat(st.n_levels).to(st.row_betas.dtype)
                self.inner.sweep(st.Y, k, beta=rb, generator=generator)
                done += k
                st.sweeps += k
                st.total_sweeps += k
                if st.total_sweeps % self.swap_every == 0:
                    self._swap(st, bscale, generator)  # replaces st.Y
                if st.adapting and st.total_sweeps - st.window_start >= self._window(st):
                    self._adapt(st)
            x.copy_(st.Y[:C])
        return x

    # ------------------------------------------------------------------ diagnostics
    def statistics(self, x: torch.Tensor) -> TemperingStats | None:
        """The :class:`~pgm_boltz.results.TemperingStats` of the chains ``x`` (swap rates
        per pair, round trips, flow); None for a tensor no tempering sampler has swept."""
        return tempering_statistics(x)

    def metrics(self, x: torch.Tensor) -> dict[str, float]:
        """Per-epoch numbers for a training history: the smallest and mean swap rate
        since the previous call or the ladder's last move, whichever is later (the last
        adaptation window's when the ladder has just moved), the round trips since the
        previous call or the last change of the number of levels, and that number."""
        st = _STATES.get(x)
        if st is None:
            return {}
        acc = st.accepted.cpu().numpy().copy()  # copies: .numpy() shares CPU memory
        att = st.attempts.cpu().numpy().copy()
        rt = int(st.round_trips.sum())
        marks = (st.moves, acc, att, st.n_levels, rt)
        if st.marks and st.marks[0] == st.moves:  # the ladder has not moved since
            acc, att = acc - st.marks[1], att - st.marks[2]
        if st.marks and st.marks[3] == st.n_levels:  # nor changed its count
            rt -= st.marks[4]
        st.marks = marks
        if not att.any() and st.last_window is not None:  # it has just moved
            acc, att = (t.cpu().numpy() for t in st.last_window)
        rates = np.where(att > 0, acc / np.maximum(att, 1), np.nan)
        ok = rates[np.isfinite(rates)]
        return {"swap_rate_min": float(ok.min()) if len(ok) else math.nan,
                "swap_rate_mean": float(ok.mean()) if len(ok) else math.nan,
                "round_trips": float(rt), "replicas": float(st.n_levels)}

    # ------------------------------------------------------------------ internals
    def _window(self, st: TemperingState) -> int:
        """Sweeps per adaptation window: about ``_WINDOW_ATTEMPTS`` swap attempts per
        pair over all chains, at most a quarter of the adaptation."""
        want = math.ceil(2 * self.swap_every * _WINDOW_ATTEMPTS / max(1, st.n_chains))
        return int(max(_MIN_WINDOW, min(want, max(_MIN_WINDOW, self.adapt_sweeps // 4))))

    def _state(self, x: torch.Tensor) -> TemperingState:
        """The replicas attached to ``x``, or fresh copies of it."""
        st = _STATES.get(x)
        if st is not None and st.key == self._key and st.n_chains == x.shape[0] \
                and st.Y.shape[1] == x.shape[1] and st.Y.device == x.device \
                and st.Y.dtype == x.dtype:
            return st
        if x.ndim != 2 or x.shape[1] != self.model.n_nodes:
            raise ArgumentError(f"the tempering sampler needs chains of shape (C, "
                                f"{self.model.n_nodes}), got {tuple(x.shape)}")
        st = self._new_state(x, self.betas.copy(), x.detach().repeat(len(self.betas), 1))
        st.adapting = self.adapt_sweeps > 0
        _STATES[x] = st
        return st

    def _new_state(self, x: torch.Tensor, betas: np.ndarray, Y: torch.Tensor
                   ) -> TemperingState:
        L, C, dev = len(betas), x.shape[0], x.device
        labels = torch.arange(L, device=dev)[:, None].expand(L, C).contiguous()
        last = torch.zeros(L, C, dtype=torch.int8, device=dev)
        last[0], last[L - 1] = 1, 2
        cold = torch.zeros(L, C, dtype=torch.bool, device=dev)
        cold[0] = True
        z = lambda k: torch.zeros(k, dtype=torch.float64, device=dev)
        return TemperingState(
            key=self._key, Y=Y, betas=betas,
            row_betas=torch.as_tensor(np.repeat(betas, C), dtype=self.model.dtype,
                                      device=dev),
            labels=labels, last=last, cold=cold, accepted=z(L - 1), attempts=z(L - 1),
            round_trips=z(1), flow_up=z(L), flow_seen=z(L))

    def _energies(self, Y: torch.Tensor) -> torch.Tensor:
        """``D(x) = E(x) - Q(x) + b0 . x`` of every row (float64): the tempered part of
        the energy (quadratic self-terms ``Q`` are not tempered, see
        :mod:`pgm_boltz.samplers.base`, so they cancel in every swap ratio)."""
        m = self.model
        b = m.bias.detach()
        if self.base_bias is not None:
            b = b - self.base_bias
        if self._J is not None:
            return (-(Y @ b) - 0.5 * ((Y @ self._J) * Y).sum(1)).double()
        out = m.energy(Y) + Y @ (m.bias.detach() - b)
        if m.log_precision is not None:
            out = out - m.quadratic_energy(Y)
        return out.double()

    def _swap(self, st: TemperingState, bscale: torch.Tensor | None,
              generator: torch.Generator | None) -> None:
        """One exchange step between neighbouring levels (even or odd pairs), and the
        round-trip bookkeeping."""
        L, C = st.n_levels, st.n_chains
        lo = torch.arange(st.parity, L - 1, 2, device=st.Y.device)
        st.parity ^= 1
        if len(lo):
            hi = lo + 1
            D = self._energies(st.Y).view(L, C)
            b = torch.as_tensor(st.betas, device=st.Y.device)[:, None]
            b = b if bscale is None else b * bscale[None, :]
            b = b.expand(L, C)
            log_a = (b[lo] - b[hi]) * (D[lo] - D[hi])
            u = torch.rand(log_a.shape, generator=generator, dtype=torch.float64,
                           device=st.Y.device)
            acc = torch.log(u) < log_a
            st.accepted.index_add_(0, lo, acc.double().sum(1))
            st.attempts.index_add_(0, lo, torch.full((len(lo),), float(C),
                                                     dtype=torch.float64, device=lo.device))
            ids = torch.arange(L * C, device=st.Y.device).view(L, C)
            perm = ids.clone()
            perm[lo] = torch.where(acc, ids[hi], ids[lo])
            perm[hi] = torch.where(acc, ids[lo], ids[hi])
            flat = perm.view(-1)
            st.Y = st.Y.index_select(0, flat)
            st.labels = st.labels.view(-1)[flat].view(L, C)
        cols = torch.arange(C, device=st.Y.device)
        w0, wR = st.labels[0], st.labels[L - 1]
        trip = (st.last[w0, cols] == 2) & st.cold[w0, cols]
        st.round_trips += trip.sum()
        st.last[w0, cols] = 1
        st.cold[w0, cols] = True
        st.last[wR, cols] = 2
        at = st.last.gather(0, st.labels)  # the last extreme of the replica at each level
        st.flow_up += (at == 1).sum(1)
        st.flow_seen += (at != 0).sum(1)

    def _adapt(self, st: TemperingState) -> None:
        """Re-space the ladder from the window's swap rates (see the module text)."""
        st.window_start = st.total_sweeps
        if st.total_sweeps >= self.adapt_sweeps:
            st.adapting = False
        att = st.attempts.cpu().numpy()
        if (att <= 0).any():
            return
        rate = st.accepted.cpu().numpy() / att
        rate = np.clip(rate, 0.5 / att, 1.0 - 0.5 / att)
        d = 2.0 * _erfcinv(rate)
        ell = np.concatenate([[0.0], np.cumsum(d)])
        total = ell[-1]
        if self.fixed_count:
            n_pairs = st.n_levels - 1
        else:
            d_target = 2.0 * float(_erfcinv(np.array([self.target_rate]))[0])
            n_pairs = int(min(MAX_REPLICAS - 1, max(1, math.ceil(total / d_target))))
        new = np.interp(np.linspace(0.0, total, n_pairs + 1), ell, st.betas)
        new[0], new[-1] = 1.0, st.betas[-1]
        new = np.minimum.accumulate(new)  # non-increasing despite rounding
        st.last_window = (st.accepted.clone(), st.attempts.clone())
        st.moves += 1
        C = st.n_chains
        if len(new) == st.n_levels:  # same count: the replicas stay, their β moves
            st.betas = new
            st.row_betas = torch.as_tensor(np.repeat(new, C), dtype=st.row_betas.dtype,
                                           device=st.Y.device)
            st.accepted.zero_()
            st.attempts.zero_()
            return
        # a new count: each new level starts from the replicas of the nearest old level
        near = np.abs(new[:, None] - st.betas[None, :]).argmin(1)
        rows = (torch.as_tensor(near, device=st.Y.device)[:, None] * C
                + torch.arange(C, device=st.Y.device)[None, :]).reshape(-1)
        Y = st.Y.index_select(0, rows)
        fresh = self._new_state(Y[:C], new, Y)
        for f in ("Y", "betas", "row_betas", "labels", "last", "cold", "accepted",
                  "attempts", "round_trips", "flow_up", "flow_seen"):
            setattr(st, f, getattr(fresh, f))
        st.sweeps, st.marks, st.last_window = 0, (), None


def _check_betas(betas: Any) -> np.ndarray:
    try:
        arr = np.asarray(betas.detach().cpu() if torch.is_tensor(betas) else betas,
                         dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ArgumentError(f"betas must be a sequence of numbers, got {betas!r}") from None
    if len(arr) < 2 or not np.all(np.isfinite(arr)) or arr[0] != 1.0 \
            or not np.all(np.diff(arr) < 0) or arr[-1] < 0:
        raise ArgumentError("betas must be a strictly decreasing ladder from 1 to a value "
                            f">= 0 with at least 2 levels, e.g. [1, 0.5, 0]; got "
                            f"{arr.tolist()}")
    return arr


def _base_bias(model: EnergyModel, base: Any) -> torch.Tensor | None:
    """The base model's biases from the ``base`` option."""
    if torch.is_tensor(base):
        return base
    if isinstance(base, np.ndarray):
        return torch.as_tensor(base)
    check_choice("base", base, ("auto", "uniform"), where="tempering sampler")
    if base == "uniform" or model.visible_init is None:
        return None
    b0 = torch.zeros(model.n_nodes, dtype=model.dtype, device=model.device)
    b0[model.index("visible")] = model.visible_init.to(model.device, model.dtype)
    return b0


def tempering_statistics(x: torch.Tensor) -> TemperingStats | None:
    """The :class:`~pgm_boltz.results.TemperingStats` of chains ``x`` swept by a
    tempering sampler (e.g. ``model.persistent_chains`` after a PT-PCD fit); None if no
    tempering sampler has swept them.

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(5, domain="spin"), seed=0)
    >>> s = TemperingSampler(m, betas=[1.0, 0.5, 0.0])
    >>> g = torch.Generator().manual_seed(0)
    >>> x = s.init(50, g)
    >>> _ = s.sweep(x, 100, generator=g)
    >>> st = tempering_statistics(x)
    >>> st.n_levels, len(st.swap_rates), bool((st.swap_rates > 0.5).all())
    (3, 2, True)
    """
    st = _STATES.get(x)
    if st is None:
        return None
    acc, att = st.accepted.cpu(), st.attempts.cpu()
    if not att.any() and st.last_window is not None:  # the ladder has just moved
        acc, att = (t.cpu() for t in st.last_window)
    rates = torch.where(att > 0, acc / att.clamp(min=1), float("nan"))
    seen = st.flow_seen.cpu()
    flow = torch.where(seen > 0, st.flow_up.cpu() / seen.clamp(min=1), float("nan"))
    return TemperingStats(betas=torch.as_tensor(st.betas.copy()), swap_rates=rates,
                          swap_attempts=att.clone(), round_trips=int(st.round_trips.sum()),
                          sweeps=st.sweeps, n_chains=st.n_chains, flow=flow,
                          adapting=st.adapting)


register_sampler("tempering", TemperingSampler)
