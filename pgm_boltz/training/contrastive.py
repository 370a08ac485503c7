"""Contrastive divergence (CD-k) and persistent CD (PCD) by MCMC sampling.

Both methods estimate the log-likelihood gradient of a Boltzmann machine,

    -d/dθ mean log P(v) = <φ>_model - <φ>_data,

with the data side from a *positive phase* (the visible units clamped to a batch, the
hidden units summed out analytically where they are conditionally independent given the
visible ones, sampled with the visible units clamped otherwise) and the model side from a
*negative phase* of chains moved by a sampler (:mod:`pgm_boltz.samplers`): ``k`` sweeps
started from the data (CD-k) or continued from the previous step's chains (PCD,
``n_chains`` chains).

The estimate reaches the parameters through torch autograd as the gradient of the
surrogate

    loss = mean_pos E(x) - mean_neg E(x),

where ``x`` are full joint states (values) with the last-updated block replaced by its
conditional means (Rao-Blackwellisation), all detached. The energy is linear in the
parameters, so ``d loss / d W_ij = <x_i x_j>_neg - <x_i x_j>_pos`` and
``d loss / d b_i = <x_i>_neg - <x_i>_pos``: the CD/PCD estimate. Models with quadratic
self-terms ``q_i s_i^2 / 2`` (Gaussian units, multinary or finite units with a
precision) add ``sum_i q_i (<s_i^2>_pos - <s_i^2>_neg) / 2`` to the surrogate, with the
squares of the Rao-Blackwellised class replaced by their conditional second moments
``E[s_i^2 | rest]``, so ``d loss / d log q_i = q_i (<s_i^2>_pos - <s_i^2>_neg) / 2``.
The surrogate is evaluated through the block statistics ``X_p^T X_q`` (one matmul per
colour-class pair) rather than per-edge gathers, so a 784 x 500 RBM step costs five
matmuls.

For an RBM trained with SGD and the Gibbs sampler, ``fit`` skips the surrogate: the
objective hands it a fused runner (:mod:`.fused`) that does whole epochs of the same
estimate and the ``torch.optim.SGD`` step in closed form (a numba kernel for small and
medium models on CPU, a few preallocated matmuls per update otherwise).

Data-parallel (a ``world``, :mod:`pgm_boltz.distributed`): ``n_chains`` counts the chains
of all ranks, split near-evenly; a rank's surrogate weights its batch rows by one over
the step's rows on all ranks and its chains by one over all chains, so the gradients
summed over ranks are the estimate of one process holding every row and chain.

The objectives register as ``"cd"`` and ``"pcd"``; use them through
``model.fit(data, method="pcd", ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_bool, check_choice, check_int, check_kwargs
from ..distributed import split_counts
from ..errors import ArgumentError
from ..inference.sampling import start_states
from ..inference.scores import reconstruction_error_values
from ..samplers import make_sampler, sampler_names
from .fit import FIT_ARGS, mean_over_ranks, register_objective
from .fused import FusedRBM, fusable

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["CDObjective", "ContrastiveObjective", "PCDObjective"]

#: Clamped sweeps per positive phase when hidden units interact (DBMs).
DEFAULT_POSITIVE_SWEEPS = 5
#: PCD's default number of persistent chains is ``max(batch_size, DEFAULT_MIN_CHAINS)``:
#: with small batches, 100 chains estimate the model side with far less noise (on the
#: digits, 1.6 nats of held-out NLL better than 10 chains at the same epochs and lr).
DEFAULT_MIN_CHAINS = 100
#: Rows (an evenly spaced subset) on which the epoch's reconstruction error is measured.
MONITOR_ROWS = 1000
OPTIONS = ("k", "n_chains", "positive_sweeps", "monitor_nll", "sampler", "sampler_options",
           "centering", "chain_init")
CHAIN_INITS = ("marginals", "data")
#: Sliding factor of the hidden offsets' running average (``centering=True``).
CENTERING_RATE = 0.01


class _RBMLayout:
    """Index facts for the fast path: classes exactly visible / hidden, contiguous, with
    one complete coupling block (an RBM, in any domains): ``W = weight.view(n_v, n_h)``."""

    def __init__(self, model: EnergyModel) -> None:
        plan = model.plan
        self.ok = False
        if plan.storage != "dense" or len(plan.block_index) != 2 or model.n_hidden == 0:
            return
        b0, b1 = plan.block_index
        if not (np.array_equal(b0, model.visible_index)
                and np.array_equal(b1, model.hidden_index)):
            return
        if not (np.all(np.diff(b0) == 1) and np.all(np.diff(b1) == 1)):
            return
        pairs = model._block_pairs
        if len(pairs) != 1 or not pairs[0]["complete"] or (pairs[0]["p"], pairs[0]["q"]) \
                != (0, 1):
            return
        self.ok = True
        self.vs = slice(int(b0[0]), int(b0[-1]) + 1)
        self.hs = slice(int(b1[0]), int(b1[-1]) + 1)
        self.shape = (len(b0), len(b1))


def _is_binary(dv) -> bool:
    return dv.uniform and bool(dv.domains) and dv.domains[0].name == "binary"


def _mean_and_field(dv, f: torch.Tensor, q: torch.Tensor | None = None,
                    need_mean: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Conditional means of fields ``f`` (precisions ``q``); binary units reuse ``f``'s
    memory (sigmoid in place) and return no field, other domains return the field for
    sampling (and no mean when ``need_mean`` is false: a draw needs only the field)."""
    if q is None and _is_binary(dv):
        return f.sigmoid_(), None
    return (dv.mean(f, q) if need_mean else None), f


def _draw(dv, mean: torch.Tensor | None, f: torch.Tensor | None,
          gen: torch.Generator | None, q: torch.Tensor | None = None) -> torch.Tensor:
    """A draw given the means (binary: ``u < p``) or the fields (other domains)."""
    if f is None:  # u < p: cheaper than torch.bernoulli on CPU
        assert mean is not None
        u = torch.rand(mean.shape, dtype=mean.dtype, device=mean.device, generator=gen)
        return u.lt_(mean)
    return dv.sample(f, gen, q)


class ContrastiveObjective:
    """Shared machinery of CD-k and PCD (see the module text for the maths).

    Options (passed through ``fit(..., **options)``):

    - ``k`` (int, default 1): sweeps of the negative phase per step.
    - ``n_chains`` (int, PCD only; default ``max(batch_size, 100)``): persistent chains
      (of all ranks together when data-parallel). A continued fit (the state of the
      previous one passed back, as ``model.fit`` does) with the same number of chains
      continues them.
    - ``positive_sweeps`` (int, default 5): clamped sweeps of the positive phase when
      hidden units interact (DBMs); each data row's hidden state persists between visits.
    - ``monitor_nll`` (bool, default True): exact ``nll`` / ``val_nll`` in the history
      when exact work is feasible.
    - ``sampler`` (default ``"gibbs"``) and ``sampler_options``: the sampler of the
      negative phase (a registered name, :mod:`pgm_boltz.samplers`).
    - ``chain_init`` (PCD): where new persistent chains start. ``"marginals"`` (default):
      visible units drawn from the data's independent marginals, hidden units from their
      conditionals. ``"data"``: visible units at training rows drawn at random (every
      row once before any repeats), hidden units from their conditionals — chains that
      start spread over the data's modes instead of all near the marginal mean, which
      helps when the model's modes are far apart and Gibbs rarely crosses between them.
    - ``centering`` (bool, default False; RBMs, any sampler): the centred
      gradient of Montavon & Müller (2012) / Melchior et al. (2016). With offsets ``μ``
      (the data mean of the visible values) and ``λ`` (a running average, rate
      ``CENTERING_RATE``, of the positive phase's hidden means), the step follows

          ΔW = <(v-μ)(h-λ)^T>_data - <(v-μ)(h-λ)^T>_model,
          Δb = <v>_data - <v>_model - ΔW λ,   Δc = <h>_data - <h>_model - ΔW^T μ

      the likelihood gradient of the same model written in centred coordinates
      ``-(v-μ)^T W (h-λ) - b'^T (v-μ) - c'^T (h-λ)`` (visible precisions as
      ``q (v-μ)^2 / 2``). The optimiser steps those coordinates and the model's biases
      follow the step actually taken (:meth:`after_step`), so it holds for any optimiser
      (Adam included). The model and its fixed points are unchanged; the steps no longer
      couple the hidden units' activity to the visible units' common mode, which matters
      for data far from zero mean (multinary values in [0, 1]). Runs on the autograd
      path (not fused).

    Each epoch's metrics: ``recon_error`` (on at most ``MONITOR_ROWS`` evenly spaced
    training rows) and, when exact work is feasible, ``nll`` (train, all rows) and
    ``val_nll`` (validation data); without exact work, ``val_recon_error``; and for PCD
    the sampler's own :meth:`~pgm_boltz.samplers.Sampler.metrics` (parallel tempering:
    ``swap_rate_min``, ``swap_rate_mean``, ``round_trips``, ``replicas``).
    """

    name = "contrastive"
    persistent = False
    data_parallel = True

    def __init__(self, model: EnergyModel, train: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 batch_size: int | None = None, state: Any = None, k: int = 1,
                 n_chains: int | None = None,
                 positive_sweeps: int = DEFAULT_POSITIVE_SWEEPS, monitor_nll: bool = True,
                 sampler: str = "gibbs", sampler_options: dict | None = None,
                 centering: bool = False, chain_init: str = "marginals", world: Any = None,
                 **unknown: Any) -> None:
        where = f"fit(method={self.name!r})"
        if unknown:
            check_kwargs(where, unknown, (*OPTIONS, *FIT_ARGS))
        self.k = check_int("k", k, 1, where=where)
        self.positive_sweeps = check_int("positive_sweeps", positive_sweeps, 1, where=where)
        check_int("n_chains", n_chains, 1, allow_none=True, where=where)
        if n_chains is not None and not self.persistent:
            raise ArgumentError("fit(method='cd'): n_chains applies to method='pcd' only (CD "
                                "runs one chain per data row); drop it or use method='pcd'")
        self.monitor_nll = check_bool("monitor_nll", monitor_nll, where=where)
        if sampler not in sampler_names():
            raise ArgumentError(f"{where}: unknown sampler {sampler!r}; use one of "
                                f"{sampler_names()}")
        if sampler_options is not None and not isinstance(sampler_options, dict):
            raise ArgumentError(f"{where}: sampler_options must be a dict, got "
                                f"{sampler_options!r}")
        self.model = model
        self.layout = _RBMLayout(model)
        self.sampler_name = sampler
        self.sampler = make_sampler(model, sampler, **(sampler_options or {}))
        self.fast = bool(self.layout.ok)
        self.centering = check_bool("centering", centering, where=where)
        if self.centering and not self.fast:
            raise ArgumentError(f"{where}: centering=True applies to RBMs (one complete "
                                "visible-hidden block, dense storage); this model is not "
                                "one: drop centering")
        self._offsets: tuple[torch.Tensor, torch.Tensor] | None = None
        check_choice("chain_init", chain_init, CHAIN_INITS, where=where)
        if chain_init != "marginals" and not self.persistent:
            raise ArgumentError(f"{where}: chain_init applies to method='pcd' only (CD "
                                "starts every chain at its batch row); drop it")
        self.chain_init = chain_init
        self._before: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._next_lam: torch.Tensor | None = None
        self._vq: tuple[torch.Tensor, torch.Tensor] | None = None
        self.analytic = model._hidden_problem is None
        self.clamped = None if self.analytic else make_sampler(
            model, "block-gibbs", clamped=model.visible_index)
        self._vi = model.index("visible")
        self._hi = model.index("hidden")
        self._row_ids: dict[bytes, int] | None = None
        self._pos_state: torch.Tensor | None = None
        if not self.analytic and train is not None:
            rows = train.detach().cpu().numpy()
            self._row_ids = {}
            for i, r in enumerate(rows):
                self._row_ids.setdefault(r.tobytes(), i)
            self._pos_state = self.sampler.init(len(rows), generator, visible_values=train)
        self.world = world
        self.generator = generator
        self.train = train
        n_rows = 1 if train is None else train.shape[0]
        if world is not None and world.rows:
            n_rows = sum(world.rows)
        bs = n_rows if batch_size is None else min(int(batch_size), n_rows)
        #: chains of all ranks; ``local_chains`` of them on this rank
        self.n_chains = int(n_chains) if n_chains is not None else max(bs, DEFAULT_MIN_CHAINS)
        self.local_chains = self.n_chains
        if world is not None and self.persistent:
            if self.n_chains < world.size:
                raise ArgumentError(f"{where}: n_chains={self.n_chains} is fewer than the "
                                    f"{world.size} ranks; use at least one chain a rank")
            self.local_chains = split_counts(self.n_chains, world.size)[world.rank]
        self.chains: torch.Tensor | None = None
        if self.persistent and torch.is_tensor(state) \
                and tuple(state.shape) == (self.local_chains, model.n_nodes) \
                and state.device == model.device and state.dtype == model.dtype:
            self.chains = state  # continue the previous fit's chains

    def state(self) -> torch.Tensor | None:
        """The persistent chains (PCD), for a continued fit."""
        return self.chains

    # ------------------------------------------------------------------ statistics
    def _stats(self, x: torch.Tensor, sq: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Sufficient statistics of joint states ``x`` (B, n): node means (n,), the
        per-colour-pair means ``X_p^T X_q / B`` (or per-edge means with sparse storage)
        and the quadratic nodes' mean squares (from ``sq`` (B, n_quadratic), the squares
        with Rao-Blackwellised entries, when given)."""
        B = x.shape[0]
        mean = x.mean(0)
        m = self.model
        msq = None if sq is None else sq.mean(0)
        if m.plan.storage == "sparse":
            u, v = m.edge_index
            return mean, [(x[:, u] * x[:, v]).mean(0)], msq
        out = []
        for pr in m._block_pairs:
            xp, xq = _take(x, pr["ip"]), _take(x, pr["iq"])
            out.append(xp.t() @ xq / B)
        return mean, out, msq

    def _surrogate(self, pos: tuple, neg: tuple) -> torch.Tensor:
        """``mean_pos E - mean_neg E`` as a function of the parameters (linear in the
        biases, weights and precisions)."""
        m = self.model
        (mp, sp, qp), (mn, sn, qn) = pos, neg
        loss = -(m.bias * (mp - mn)).sum()
        if qp is not None and qn is not None:
            loss = loss + 0.5 * (torch.exp(m.log_precision) * (qp - qn)).sum()
        if m.plan.storage == "sparse":
            return loss - (m.weight * (sp[0] - sn[0])).sum()
        for (_, _, W), a, b in zip(m.block_weights(), sp, sn):
            loss = loss - (W * (a - b)).sum()
        return loss

    def _squares(self, x: torch.Tensor, block_index: torch.Tensor | None,
                 block_sq: torch.Tensor | None) -> torch.Tensor | None:
        """Squares of the quadratic nodes (B, n_quadratic) of states ``x`` whose class
        ``block_index`` holds conditional means: their entries become the conditional
        second moments ``block_sq`` (None without quadratic nodes)."""
        m = self.model
        if m.log_precision is None:
            return None
        qi = m._quad_index(x.device)
        sq = x.index_select(1, qi) ** 2
        if block_index is None or block_sq is None:
            return sq
        pos = np.searchsorted(m.quadratic_index, np.asarray(block_index.cpu()))
        hit = pos < len(m.quadratic_index)
        hit[hit] = m.quadratic_index[pos[hit]] == np.asarray(block_index.cpu())[hit]
        if hit.any():
            cols = torch.as_tensor(pos[hit], device=x.device)
            sq[:, cols] = block_sq[:, torch.as_tensor(np.flatnonzero(hit), device=x.device)]
        return sq

    # ------------------------------------------------------------------ phases
    def _positive(self, batch: torch.Tensor, gen: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Positive-phase joint states: (Rao-Blackwellised x for the statistics, a
        sampled x to start CD chains from, the quadratic nodes' Rao-Blackwellised squares
        or None)."""
        m = self.model
        B = batch.shape[0]
        if self.analytic:
            x = m.visible_state(batch)
            if m.n_hidden == 0:
                return x, x, self._squares(x, None, None)
            f = m.fields(x, m.hidden_index)
            q_h = m.precisions_at("hidden")
            xs = x.clone()
            x[:, self._hi] = m.hidden_domains.mean(f, q_h)
            xs[:, self._hi] = m.hidden_domains.sample(f, gen, q_h)
            sq = self._squares(x, self._hi, None if q_h is None else
                               m.hidden_domains.second_moment(f, q_h))
            return x, xs, sq
        s = self.clamped
        assert s is not None
        s.refresh()
        rows = None
        if self._row_ids is not None:
            keys = batch.detach().cpu().numpy()
            rows = [self._row_ids.get(r.tobytes()) for r in keys]
        if rows is not None and all(r is not None for r in rows):
            assert self._pos_state is not None
            ridx = torch.as_tensor(rows, device=m.device)
            x = self._pos_state[ridx].clone()
        else:
            ridx = None
            x = s.init(B, gen, visible_values=batch)
        s.sweep(x, self.positive_sweeps, generator=gen)
        if ridx is not None:
            self._pos_state[ridx] = x
        xs = x.clone()
        k_last = len(s.blocks) - 1
        last = s.blocks[k_last]
        sq_last = None if s.block_quad(k_last) is None else s.second_moment_field(x, k_last)
        x[:, last.index] = s.mean_field(x, k_last)
        return x, xs, self._squares(x, last.index, sq_last)

    def _negative(self, start: torch.Tensor, gen: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``k`` sweeps from ``start`` (in place); returns (Rao-Blackwellised, sampled, the
        quadratic nodes' Rao-Blackwellised squares or None)."""
        s = self.sampler
        s.refresh()
        s.sweep(start, self.k, generator=gen)
        x = start.clone()
        k_last = len(s.blocks) - 1
        last = s.blocks[k_last]
        mf = s.mean_field(start, k_last)
        sq_last = None if s.block_quad(k_last) is None else \
            s.second_moment_field(start, k_last)
        if last.sl is not None:
            x[:, last.sl] = mf
        else:
            x[:, last.index] = mf
        return x, start, self._squares(x, last.index, sq_last)

    # ------------------------------------------------------------------ fast RBM path
    def _rbm_loss(self, v: torch.Tensor, gen: torch.Generator | None, pos_w: float = 1.0,
                  neg_w: float = 1.0) -> torch.Tensor:
        """CD-k / PCD-k for an RBM in five matmuls per step (k = 1): hidden means of the
        data, k alternating draws, hidden means of the last visible draw, and the two
        statistics ``v^T E[h|v] / B``; the surrogate is linear in (W, b_v, b_h)."""
        m, lay = self.model, self.layout
        W, bv, bh = m.weight.view(lay.shape), m.bias[lay.vs], m.bias[lay.hs]
        hd = m.hidden_domains
        q_all = None if m.log_precision is None else m.precisions().detach()
        qv = None if q_all is None else m.precisions_at("visible", q_all)
        qh = None if q_all is None else m.precisions_at("hidden", q_all)
        with torch.no_grad():
            hp, fp = _mean_and_field(hd, torch.addmm(bh.detach(), v, W.detach()), qh)
            if self.persistent and self.chains is None:
                self.chains = self._init_chains(gen)
            if self.sampler_name == "gibbs":
                vn, hn, fn = self._gibbs_negative(hp, fp, qv, qh, gen)
            else:   # any other sampler sweeps joint states
                vn, hn, fn = self._sampler_negative(v, hp, fp, qh, gen)
            # with row weights w = (1/B, ..., -1/C, ...) over the stacked rows:
            # S = v^T hp / B - vn^T hn / C = Vs^T (w * Hs), dv = w Vs, dh = w Hs
            w = self._row_weights(v.shape[0], vn.shape[0], pos_w, neg_w)
            Vs, Hs = torch.cat([v, vn]), torch.cat([hp, hn])
            S = torch.mm(Vs.t(), Hs * w[:, None])
            dv, dh = w @ Vs, w @ Hs
            if self.centering:   # the step is taken in centred coordinates
                S = self._centred(S, dv, dh, hp)
                self._before = (W.detach().clone(), None if m.log_precision is None
                                else torch.exp(m.log_precision.detach()[
                                    self._visible_quadratic()[0]]))
            if q_all is not None:  # <s^2>_pos - <s^2>_neg (E[h^2 | v] for hidden units)
                d2 = torch.zeros(m.n_nodes, dtype=m.dtype, device=v.device)
                if qv is not None:
                    d2[lay.vs] = w @ (Vs * Vs)
                if qh is not None:
                    d2[lay.hs] = w @ torch.cat([hd.second_moment(fp, qh),
                                                hd.second_moment(fn, qh)])
                d2 = d2[m._quad_index(v.device)]
        # dot products: one pass forward, one backward (W is a view of model.weight)
        loss = -(torch.dot(m.weight, S.view(-1)) + torch.dot(bv, dv) + torch.dot(bh, dh))
        if q_all is not None:
            loss = loss + 0.5 * torch.dot(torch.exp(m.log_precision), d2)
            if self.centering:
                loss = loss + self._centred_precision_term(dv)
        return loss

    def _gibbs_negative(self, hp: torch.Tensor, fp: torch.Tensor | None,
                        qv: torch.Tensor | None, qh: torch.Tensor | None,
                        gen: torch.Generator | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The negative phase by inline block Gibbs: ``k`` alternating draws from the
        persistent chains' hidden states (PCD, which then hold the last draws) or from
        hidden units drawn given the batch (CD, hidden means ``hp``, fields ``fp``);
        returns ``(vn, E[h | vn], f_h or None)``. A visible draw needs only the field,
        not the means."""
        m, lay = self.model, self.layout
        vd, hd = m.visible_domains, m.hidden_domains
        Wd = m.weight.detach().view(lay.shape)
        bvd, bhd = m.bias.detach()[lay.vs], m.bias.detach()[lay.hs]
        h = self.chains[:, lay.hs] if self.persistent else _draw(hd, hp, fp, gen, qh)
        for step in range(self.k):
            vn = _draw(vd, *_mean_and_field(vd, torch.addmm(bvd, h, Wd.t()), qv,
                                            need_mean=False), gen, qv)
            hn, fn = _mean_and_field(hd, torch.addmm(bhd, vn, Wd), qh)
            if step < self.k - 1 or self.persistent:
                h = _draw(hd, hn, fn, gen, qh)
        if self.persistent:
            self.chains[:, lay.vs] = vn
            self.chains[:, lay.hs] = h
        return vn, hn, fn

    def _sampler_negative(self, v: torch.Tensor, hp: torch.Tensor, fp: torch.Tensor | None,
                          qh: torch.Tensor | None, gen: torch.Generator | None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The negative phase by the objective's sampler (tempering, sequential, ...):
        ``k`` sweeps of the persistent chains (PCD) or of the batch with hidden units
        drawn given it (CD); returns the visible draws and the hidden means given them
        (Rao-Blackwellised) and their fields: ``(vn, E[h | vn], f_h or None)``."""
        m, lay = self.model, self.layout
        if self.persistent:
            x = self.chains
        else:
            x = torch.empty(v.shape[0], m.n_nodes, dtype=m.dtype, device=v.device)
            x[:, lay.vs] = v
            x[:, lay.hs] = _draw(m.hidden_domains, hp, fp, gen, qh)
        self.sampler.sweep(x, self.k, generator=gen)
        vn = x[:, lay.vs]
        hn, fn = _mean_and_field(m.hidden_domains, torch.addmm(
            m.bias.detach()[lay.hs], vn, m.weight.detach().view(lay.shape)), qh)
        return vn, hn, fn

    def _centred_precision_term(self, dv: torch.Tensor) -> torch.Tensor:
        """Centring of the visible units' quadratic terms: ``q (v-μ)^2/2 - b' (v-μ)`` is
        ``q v^2/2 - (b' + q μ) v``, so the precisions learn with ``b'`` held:
        ``d/d log q`` gains ``(dL/db) q μ`` (this term, ``-q μ dv`` with ``dv`` the bias
        statistic); :meth:`after_step` then moves ``b`` by ``Δq μ``."""
        m = self.model
        sel, loc = self._visible_quadratic()
        assert self._offsets is not None
        coef = torch.zeros_like(m.log_precision.detach())
        coef[sel] = self._offsets[0][loc] * dv[loc]
        return -torch.dot(torch.exp(m.log_precision), coef)

    def _visible_quadratic(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The visible units with a quadratic term: their entries of ``log_precision``
        and their positions among the visible units (built once)."""
        if self._vq is None:
            m, lay = self.model, self.layout
            qi = m._quad_index(m.bias.device)
            sel = torch.nonzero((qi >= lay.vs.start) & (qi < lay.vs.stop)).squeeze(1)
            self._vq = (sel, qi[sel] - lay.vs.start)
        return self._vq

    def _centred(self, S: torch.Tensor, dv: torch.Tensor, dh: torch.Tensor,
                 hp: torch.Tensor) -> torch.Tensor:
        """The centred coupling statistic ``(V-μ)^T (w (H-λ))`` (see ``centering``); the
        row weights sum to zero, so it is ``S - μ dh^T - dv λ^T``. The hidden offsets
        move towards this batch's hidden means after the step (:meth:`after_step`)."""
        hm = self._mean_over_ranks(hp)
        if self._offsets is None:
            train = self.train if self.train is not None else \
                torch.zeros(1, S.shape[0], dtype=S.dtype, device=S.device)
            self._offsets = (self._mean_over_ranks(train.to(S.device, S.dtype)), hm.clone())
        mu, lam = self._offsets
        self._next_lam = hm
        return S - torch.outer(mu, dh) - torch.outer(dv, lam)

    def _mean_over_ranks(self, rows: torch.Tensor) -> torch.Tensor:
        """The column means of ``rows``, over every rank's rows when data-parallel."""
        if self.world is None:
            return rows.mean(0)
        n = torch.tensor(float(rows.shape[0]), dtype=rows.dtype, device=rows.device)
        return self.world.sum_(rows.sum(0)) / self.world.sum_(n)

    def _row_weights(self, B: int, C: int, pos_w: float = 1.0, neg_w: float = 1.0
                     ) -> torch.Tensor:
        key = (B, C, pos_w, neg_w)
        if getattr(self, "_w_key", None) != key:
            m = self.model
            self._w = torch.cat([
                torch.full((B,), pos_w / B, dtype=m.dtype, device=m.device),
                torch.full((C,), -neg_w / C, dtype=m.dtype, device=m.device)])
            self._w_key = key
        return self._w

    def _init_chains(self, gen: torch.Generator | None) -> torch.Tensor:
        """PCD chains: visible units from the data marginals (``model.visible_init``, set
        by fit) or, with ``chain_init="data"``, at training rows; hidden units from their
        conditionals given them."""
        rows = None
        if self.chain_init == "data" and self.train is not None and len(self.train):
            n, C = self.train.shape[0], self.local_chains
            order = torch.cat([torch.randperm(n, generator=gen)
                               for _ in range(-(-C // n))])[:C]
            rows = self.train[order.to(self.train.device)]
        return start_states(self.model, self.sampler, self.local_chains, gen, rows)

    # ------------------------------------------------------------------ the protocol
    def loss(self, batch: torch.Tensor, generator: torch.Generator | None,
             share: float | None = None) -> torch.Tensor:
        """The surrogate for one batch of visible values; its gradient is the estimate.
        Data-parallel, ``share`` is this batch's rows over the step's rows on all ranks:
        the batch's statistics are weighted by it and the chains' by this rank's chains
        over all chains (CD: ``share`` too)."""
        pos_w = 1.0 if share is None else float(share)
        neg_w = pos_w if not self.persistent else self.local_chains / self.n_chains
        if self.fast:
            return self._rbm_loss(batch, generator, pos_w, neg_w)
        with torch.no_grad():
            pos_rb, pos_s, pos_sq = self._positive(batch, generator)
            if self.persistent:
                if self.chains is None:
                    self.chains = self._init_chains(generator)
                neg_rb, _, neg_sq = self._negative(self.chains, generator)
            else:
                neg_rb, _, neg_sq = self._negative(pos_s.clone(), generator)
            pos, neg = self._stats(pos_rb, pos_sq), self._stats(neg_rb, neg_sq)
            if share is not None:
                pos, neg = _scaled(pos, pos_w), _scaled(neg, neg_w)
        return self._surrogate(pos, neg)

    def fused(self, lr: float, momentum: float, weight_decay: float, batches: Any
              ) -> FusedRBM | None:
        """A fused epoch runner (:class:`~pgm_boltz.training.fused.FusedRBM`) when the
        model is an RBM in arithmetic-progression domains sampled by Gibbs; None
        otherwise (fit then steps a torch SGD optimiser on the surrogate)."""
        if not fusable(self.model, self.layout, self.sampler_name) or self.train is None \
                or self.centering:
            return None
        if self.persistent and self.chains is None:
            self.chains = self._init_chains(self.generator)
        self._runner = FusedRBM(
            self.model, self.layout, self.train, k=self.k, lr=lr, momentum=momentum,
            weight_decay=weight_decay, batches=batches, generator=self.generator,
            chains=self.chains if self.persistent else None, world=self.world,
            neg_total=self.n_chains if self.persistent else None)
        return self._runner

    def after_step(self) -> None:
        """With ``centering``: the optimiser stepped the centred coordinates ``(W, b', c',
        log q)`` (``b = b' - W λ + q μ`` at the visible units, ``c = c' - W^T μ``), so
        the model's biases follow the actual step: ``b += -ΔW λ + Δq μ``,
        ``c += -ΔW^T μ``; then the hidden offsets slide. Otherwise nothing (samplers
        re-read the parameters)."""
        if self._before is None:
            return
        W0, q0 = self._before
        self._before = None
        m, lay = self.model, self.layout
        assert self._offsets is not None and self._next_lam is not None
        mu, lam = self._offsets
        with torch.no_grad():
            dW = m.weight.view(lay.shape) - W0
            m.bias[lay.vs] -= dW @ lam
            m.bias[lay.hs] -= dW.t() @ mu
            if q0 is not None:
                sel, loc = self._visible_quadratic()
                dq = torch.exp(m.log_precision[sel]) - q0
                m.bias[lay.vs.start + loc] += dq * mu[loc]
        lam.lerp_(self._next_lam, CENTERING_RATE)   # b, c hold the model: nothing moves

    def _monitor_rows(self, values: torch.Tensor) -> torch.Tensor:
        """At most ``MONITOR_ROWS`` rows (a fixed, evenly spaced subset) for the
        reconstruction error, so monitoring stays a small part of an epoch (kept
        between epochs)."""
        cache = self.__dict__.setdefault("_monitor_cache", {})
        hit = cache.get(id(values))
        if hit is not None and hit[0] is values:
            return hit[1]
        rows = values
        if values.shape[0] > MONITOR_ROWS:
            idx = torch.linspace(0, values.shape[0] - 1, MONITOR_ROWS,
                                 device=values.device).long()
            rows = values[idx]
        cache[id(values)] = (values, rows)
        return rows

    def _recon(self, values: torch.Tensor) -> float:
        """:func:`~pgm_boltz.inference.scores.reconstruction_error_values` (one up-down
        mean-field pass); for an RBM in two matmuls."""
        if not self.layout.ok:
            return reconstruction_error_values(self.model, values)
        runner = getattr(self, "_runner", None)
        fast = None if runner is None else runner.recon(values)
        if fast is not None:
            return fast
        m, lay = self.model, self.layout
        with torch.no_grad():
            W = m.weight.detach().view(lay.shape)
            b = m.bias.detach()
            v = values.to(m.device, m.dtype)
            h = m.hidden_domains.mean(torch.addmm(b[lay.hs], v, W), m.precisions_at("hidden"))
            rec = m.visible_domains.mean(torch.addmm(b[lay.vs], h, W.t()),
                                         m.precisions_at("visible"))
            return float((v - rec).square_().mean())

    def epoch_metrics(self, train: torch.Tensor, val: torch.Tensor | None) -> dict:
        """``recon_error`` and, when exact work is feasible, ``nll`` / ``val_nll``."""
        m = self.model
        rows = self._monitor_rows(train)
        pairs = {"recon_error": (self._recon(rows), rows.shape[0])}
        exact = m.plan.exact_feasible and (m.plan.hidden is None or m.plan.hidden.feasible)
        log_z = None
        if self.monitor_nll and exact:
            with torch.no_grad():
                log_z = float(m.exact_log_partition())
                pairs["nll"] = (float(m.free_energy_values(train).mean()), train.shape[0])
                if val is not None:
                    pairs["val_nll"] = (float(m.free_energy_values(val).mean()),
                                        val.shape[0])
        elif val is not None:
            vrows = self._monitor_rows(val)
            pairs["val_recon_error"] = (self._recon(vrows), vrows.shape[0])
        out = mean_over_ranks(self.world, pairs)
        for key in ("nll", "val_nll"):
            if key in out:
                out[key] += log_z
        if self.persistent and self.chains is not None:
            out.update(self.sampler.metrics(self.chains))  # e.g. tempering's swap rates
        return out


def _scaled(stats: tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None], w: float
            ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Statistics ``(node means, pair means, mean squares or None)`` times ``w``."""
    mean, pairs, sq = stats
    return mean * w, [p * w for p in pairs], None if sq is None else sq * w


def _take(x: torch.Tensor, idx: slice | torch.Tensor) -> torch.Tensor:
    return x[:, idx] if isinstance(idx, slice) else x.index_select(1, idx)


class CDObjective(ContrastiveObjective):
    """CD-k: negative chains start at the batch (hidden units sampled given it) and run
    ``k`` sweeps. ``model.fit(data, method="cd", k=1)``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), engine="block-gibbs", seed=0)
    >>> h = m.fit([[0, 1, 1, 0], [1, 0, 0, 1]], method="cd", epochs=3, progress=False, seed=0)
    >>> sorted(k for k in h[-1] if k != "method")
    ['epoch', 'nll', 'recon_error']
    """

    name = "cd"
    persistent = False


class PCDObjective(ContrastiveObjective):
    """PCD-k (stochastic maximum likelihood): ``n_chains`` persistent chains, each step
    continued by ``k`` sweeps. ``model.fit(data, method="pcd", n_chains=100)``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), engine="block-gibbs", seed=0)
    >>> h = m.fit([[0, 1, 1, 0], [1, 0, 0, 1]], method="pcd", epochs=3, progress=False,
    ...           seed=0, n_chains=8)
    >>> h[-1]["epoch"]
    3
    """

    name = "pcd"
    persistent = True


register_objective("cd", CDObjective)
register_objective("pcd", PCDObjective)
