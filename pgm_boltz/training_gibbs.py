"""Contrastive divergence (CD-k) and persistent CD (PCD) by block Gibbs sampling.

Both methods estimate the log-likelihood gradient of a Boltzmann machine,

    -d/dθ mean log P(v) = <φ>_model - <φ>_data,

with the data side from a *positive phase* (the visible units clamped to a batch, the
hidden units summed out analytically where they are conditionally independent given the
visible ones, sampled with the visible units clamped otherwise) and the model side from a
*negative phase* of Gibbs chains: ``k`` block sweeps started from the data (CD-k) or
continued from the previous step's chains (PCD, ``n_chains`` chains).

The estimate reaches the parameters through torch autograd as the gradient of the
surrogate

    loss = mean_pos E(x) - mean_neg E(x),

where ``x`` are full joint states (values) with the last-updated block replaced by its
conditional means (Rao-Blackwellisation), all detached. The energy is linear in the
parameters, so ``d loss / d W_ij = <x_i x_j>_neg - <x_i x_j>_pos`` and
``d loss / d b_i = <x_i>_neg - <x_i>_pos``: the CD/PCD estimate. The surrogate is evaluated
through the block statistics ``X_p^T X_q`` (one matmul per colour-class pair) rather than
per-edge gathers, so a 784 x 500 RBM step costs five matmuls.

The objectives register themselves with :func:`pgm_boltz.training.register_objective`
as ``"cd"`` and ``"pcd"``; use them through ``model.fit(data, method="pcd", ...)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .engines.gibbs import BlockSampler
from .errors import DataError
from .training import exact_nll, register_objective

__all__ = ["CDObjective", "GibbsObjective", "PCDObjective", "reconstruction_error"]

#: Clamped sweeps per positive phase when hidden units interact (DBMs).
DEFAULT_POSITIVE_SWEEPS = 5
#: PCD's default number of persistent chains is ``max(batch_size, DEFAULT_MIN_CHAINS)``:
#: with small batches, 100 chains estimate the model side with far less noise (on the
#: digits, 1.6 nats of held-out NLL better than 10 chains at the same epochs and lr).
DEFAULT_MIN_CHAINS = 100
#: Rows (an evenly spaced subset) on which the epoch's reconstruction error is measured.
MONITOR_ROWS = 1000
_OPTIONS = ("k", "n_chains", "positive_sweeps", "monitor_nll")
_RECON_CHUNK = 4096


def _positive_int(name: str, value: Any, method: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"fit(method={method!r}): {name} must be a positive integer, "
                        f"got {value!r}")


class _RBMLayout:
    """Index facts for the fast path: classes exactly visible / hidden, contiguous, with
    one complete coupling block (an RBM, in any domains): ``W = weight.view(n_v, n_h)``."""

    def __init__(self, model) -> None:
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
    return dv.uniform and dv.domains and dv.domains[0].name == "binary"


def _mean_and_field(dv, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Conditional means of fields ``f``; binary units reuse ``f``'s memory (sigmoid in
    place) and return no field, other domains return the field for sampling."""
    if _is_binary(dv):
        return f.sigmoid_(), None
    return dv.mean(f), f


def _draw(dv, mean: torch.Tensor, f: torch.Tensor | None,
          gen: torch.Generator | None) -> torch.Tensor:
    """A draw given the means (binary: ``u < p``) or the fields (other domains)."""
    if f is None:  # u < p: cheaper than torch.bernoulli on CPU
        u = torch.rand(mean.shape, dtype=mean.dtype, device=mean.device, generator=gen)
        return u.lt_(mean)
    return dv.sample(f, gen)


def _rbm_params(model, lay: _RBMLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return model.weight.view(lay.shape), model.bias[lay.vs], model.bias[lay.hs]


def reconstruction_error(model, values: torch.Tensor) -> float:
    """Mean squared error between visible values and their one-step mean-field
    reconstruction: ``mean (v - E[v | h = E[h | v]])^2``.

    The hidden means are one mean-field pass over the hidden colour classes with the
    visible units clamped (exact conditional means for an RBM); the reconstruction is the
    visible units' conditional mean given those hidden means (and the data's other
    visible units, where visible units are coupled). Values, not codes.

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> 0.0 <= reconstruction_error(m, torch.ones(3, 4)) <= 1.0
    True
    """
    lay = _RBMLayout(model)
    total = 0.0
    with torch.no_grad():
        for c0 in range(0, values.shape[0], _RECON_CHUNK):
            v = values[c0:c0 + _RECON_CHUNK]
            if lay.ok:
                W, bv, bh = _rbm_params(model, lay)
                h = model.hidden_domains.mean(v @ W + bh)
                rec = model.visible_domains.mean(h @ W.t() + bv)
            else:
                x = _mean_field_hidden(model, v)
                vi = torch.as_tensor(model.visible_index, device=model.device)
                rec = model.visible_domains.mean(model.fields(x, vi))
            total += float(((v - rec) ** 2).sum())
    return total / (values.shape[0] * values.shape[1])


def _mean_field_hidden(model, v: torch.Tensor) -> torch.Tensor:
    """Joint values with ``v`` clamped and each hidden class set, in turn, to its
    conditional mean given the rest (starting from the zero-field means)."""
    n = v.shape[0]
    x = model.domains.mean(torch.zeros(n, model.n_nodes, dtype=model.dtype,
                                       device=model.device))
    x[:, torch.as_tensor(model.visible_index, device=model.device)] = v
    if model.n_hidden:
        s = BlockSampler(model, clamped=model.visible_index)
        for k, blk in enumerate(s.blocks):
            x[:, blk.index] = s.mean_field(x, k)
    return x


class GibbsObjective:
    """Shared machinery of CD-k and PCD (see the module docstring for the maths).

    Options (passed through ``fit(..., **options)``):

    - ``k`` (int, default 1): block-Gibbs sweeps of the negative phase per step.
    - ``n_chains`` (int, PCD only; default ``max(batch_size, 100)``): persistent chains.
      They are kept on the model (``model._pcd_chains``), so a second ``fit`` call with
      the same number of chains continues them (e.g. after lowering ``lr``).
    - ``positive_sweeps`` (int, default 5): clamped sweeps of the positive phase when
      hidden units interact (DBMs); each data row's hidden state persists between visits.
    - ``monitor_nll`` (bool, default True): exact ``nll`` / ``val_nll`` in the history
      when ``model.plan.exact_feasible``.

    Each epoch's metrics: ``recon_error`` (see :func:`reconstruction_error`, on at most
    ``MONITOR_ROWS`` evenly spaced training rows) and, when exact work is feasible,
    ``nll`` (train, all rows) and ``val_nll`` (validation data); without exact work,
    ``val_recon_error`` on the validation data.
    """

    name = "gibbs"
    persistent = False

    def __init__(self, model, train: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 batch_size: int | None = None, k: int = 1, n_chains: int | None = None,
                 positive_sweeps: int = DEFAULT_POSITIVE_SWEEPS, monitor_nll: bool = True,
                 **unknown: Any) -> None:
        method = self.name
        if unknown:
            raise DataError(
                f"fit(method={method!r}) got unknown option(s) {sorted(unknown)}; the "
                f"options of {method!r} are {list(_OPTIONS)} plus fit's own (epochs, lr, "
                "batch_size, optimizer, momentum, weight_decay, seed, progress, "
                "validation_data, init_bias)")
        _positive_int("k", k, method)
        _positive_int("positive_sweeps", positive_sweeps, method)
        _positive_int("n_chains", n_chains, method, allow_none=True)
        if n_chains is not None and not self.persistent:
            raise DataError("fit(method='cd'): n_chains applies to method='pcd' only (CD "
                            "runs one chain per data row); drop it or use method='pcd'")
        if not isinstance(monitor_nll, bool):
            raise DataError(f"fit(method={method!r}): monitor_nll must be True or False, "
                            f"got {monitor_nll!r}")
        self.model = model
        self.k = int(k)
        self.positive_sweeps = int(positive_sweeps)
        self.monitor_nll = monitor_nll
        self.layout = _RBMLayout(model)
        is_hidden = np.zeros(model.n_nodes, dtype=bool)
        is_hidden[model.hidden_index] = True
        e = model._edges_np
        self.analytic = not bool((is_hidden[e[:, 0]] & is_hidden[e[:, 1]]).any()) \
            if len(e) else True
        self.sampler = BlockSampler(model)
        self.clamped = None if self.analytic else BlockSampler(
            model, clamped=model.visible_index)
        self._vi = torch.as_tensor(model.visible_index, device=model.device)
        self._hi = torch.as_tensor(model.hidden_index, device=model.device)
        self._row_ids: dict[bytes, int] | None = None
        self._pos_state: torch.Tensor | None = None
        if not self.analytic and train is not None:
            rows = train.detach().cpu().numpy()
            self._row_ids = {}
            for i, r in enumerate(rows):
                self._row_ids.setdefault(r.tobytes(), i)
            self._pos_state = self.sampler.init_state(len(rows), generator, visible_values=train)
        n_rows = 1 if train is None else train.shape[0]
        bs = n_rows if batch_size is None else min(int(batch_size), n_rows)
        self.n_chains = int(n_chains) if n_chains is not None else max(bs, DEFAULT_MIN_CHAINS)
        self.chains: torch.Tensor | None = None
        if self.persistent:  # a continued fit continues the chains of the last PCD fit
            prev = getattr(model, "_pcd_chains", None)
            if prev is not None and tuple(prev.shape) == (self.n_chains, model.n_nodes) \
                    and prev.device == model.device and prev.dtype == model.dtype:
                self.chains = prev

    # ------------------------------------------------------------------ statistics
    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Sufficient statistics of joint states ``x`` (B, n): node means (n,) and the
        per-colour-pair means ``X_p^T X_q / B`` (or per-edge means with sparse storage)."""
        B = x.shape[0]
        mean = x.mean(0)
        m = self.model
        if m.plan.storage == "sparse":
            u, v = m.edge_index
            return mean, [(x[:, u] * x[:, v]).mean(0)]
        out = []
        for pr in m._block_pairs:
            xp = x[:, self.sampler._sl_all[pr["p"]]] if self.sampler._sl_all[pr["p"]] \
                is not None else x[:, self.sampler._idx_all[pr["p"]]]
            xq = x[:, self.sampler._sl_all[pr["q"]]] if self.sampler._sl_all[pr["q"]] \
                is not None else x[:, self.sampler._idx_all[pr["q"]]]
            out.append(xp.t() @ xq / B)
        return mean, out

    def _surrogate(self, pos: tuple, neg: tuple) -> torch.Tensor:
        """``mean_pos E - mean_neg E`` as a linear function of the parameters."""
        m = self.model
        (mp, sp), (mn, sn) = pos, neg
        loss = -(m.bias * (mp - mn)).sum()
        if m.plan.storage == "sparse":
            return loss - (m.weight * (sp[0] - sn[0])).sum()
        for (_, _, W), a, b in zip(m.block_weights(), sp, sn):
            loss = loss - (W * (a - b)).sum()
        return loss

    # ------------------------------------------------------------------ phases
    def _positive(self, batch: torch.Tensor, gen: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive-phase joint states: (Rao-Blackwellised x for the statistics, a
        sampled x to start CD chains from)."""
        m = self.model
        B = batch.shape[0]
        if self.analytic:
            x = torch.zeros(B, m.n_nodes, dtype=m.dtype, device=m.device)
            x[:, self._vi] = batch
            if m.n_hidden == 0:
                return x, x
            f = m.fields(x, self._hi)
            xs = x.clone()
            x[:, self._hi] = m.hidden_domains.mean(f)
            xs[:, self._hi] = m.hidden_domains.sample(f, gen)
            return x, xs
        s = self.clamped
        s.refresh()
        rows = None
        if self._row_ids is not None:
            keys = batch.detach().cpu().numpy()
            rows = [self._row_ids.get(r.tobytes()) for r in keys]
        if rows is not None and all(r is not None for r in rows):
            ridx = torch.as_tensor(rows, device=m.device)
            x = self._pos_state[ridx].clone()
        else:
            ridx = None
            x = s.init_state(B, gen, visible_values=batch)
        s.sweep(x, gen, self.positive_sweeps)
        if ridx is not None:
            self._pos_state[ridx] = x
        xs = x.clone()
        last = s.blocks[-1]
        x[:, last.index] = s.mean_field(x, len(s.blocks) - 1)
        return x, xs

    def _negative(self, start: torch.Tensor, gen: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` sweeps from ``start`` (in place); returns (Rao-Blackwellised, sampled)."""
        s = self.sampler
        s.refresh()
        s.sweep(start, gen, self.k)
        x = start.clone()
        last = s.blocks[-1]
        if last.sl is not None:
            x[:, last.sl] = s.mean_field(start, len(s.blocks) - 1)
        else:
            x[:, last.index] = s.mean_field(start, len(s.blocks) - 1)
        return x, start

    # ------------------------------------------------------------------ fast RBM path
    def _rbm_loss(self, v: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """CD-k / PCD-k for an RBM in five matmuls per step (k = 1): hidden means of the
        data, k alternating draws, hidden means of the last visible draw, and the two
        statistics ``v^T E[h|v] / B``; the surrogate is linear in (W, b_v, b_h)."""
        m, lay = self.model, self.layout
        W, bv, bh = _rbm_params(m, lay)
        vd, hd = m.visible_domains, m.hidden_domains
        with torch.no_grad():
            Wd, bvd, bhd = W.detach(), bv.detach(), bh.detach()
            hp, fp = _mean_and_field(hd, torch.addmm(bhd, v, Wd))
            if self.persistent:
                if self.chains is None:
                    self._new_chains(gen)
                h = self.chains[:, lay.hs]
            else:
                h = _draw(hd, hp, fp, gen)
            for step in range(self.k):
                vm, fv = _mean_and_field(vd, torch.addmm(bvd, h, Wd.t()))
                vn = _draw(vd, vm, fv, gen)
                hn, fn = _mean_and_field(hd, torch.addmm(bhd, vn, Wd))
                if step < self.k - 1 or self.persistent:
                    h = _draw(hd, hn, fn, gen)
            if self.persistent:
                self.chains[:, lay.vs] = vn
                self.chains[:, lay.hs] = h
            # with row weights w = (1/B, ..., -1/C, ...) over the stacked rows:
            # S = v^T hp / B - vn^T hn / C = Vs^T (w * Hs), dv = w Vs, dh = w Hs
            w = self._row_weights(v.shape[0], vn.shape[0])
            Vs, Hs = torch.cat([v, vn]), torch.cat([hp, hn])
            S = torch.mm(Vs.t(), Hs * w[:, None])
            dv, dh = w @ Vs, w @ Hs
        # dot products: one pass forward, one backward (W is a view of model.weight)
        return -(torch.dot(m.weight, S.view(-1)) + torch.dot(bv, dv) + torch.dot(bh, dh))

    def _row_weights(self, B: int, C: int) -> torch.Tensor:
        key = (B, C)
        if getattr(self, "_w_key", None) != key:
            m = self.model
            self._w = torch.cat([torch.full((B,), 1.0 / B, dtype=m.dtype, device=m.device),
                                 torch.full((C,), -1.0 / C, dtype=m.dtype, device=m.device)])
            self._w_key = key
        return self._w

    def _new_chains(self, gen: torch.Generator | None) -> torch.Tensor:
        self.chains = self._init_chains(gen)
        self.model._pcd_chains = self.chains
        return self.chains

    def _init_chains(self, gen: torch.Generator | None) -> torch.Tensor:
        """PCD chains: visible units drawn from the data marginals (``model.visible_init``,
        set by fit) or uniform, hidden units from their conditionals given them."""
        m = self.model
        x = self.sampler.init_state(self.n_chains, gen)
        vis_init = getattr(m, "visible_init", None)
        if vis_init is not None:
            f = vis_init.to(m.device, m.dtype).expand(self.n_chains, -1)
            x[:, self._vi] = m.visible_domains.sample(f, gen)
        if m.n_hidden:
            BlockSampler(m, clamped=m.visible_index).sweep(x, gen, 1)
        return x

    # ------------------------------------------------------------------ the protocol
    def loss(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The surrogate for one batch of visible values; its gradient is the estimate."""
        if self.layout.ok:
            return self._rbm_loss(batch, generator)
        with torch.no_grad():
            pos_rb, pos_s = self._positive(batch, generator)
            if self.persistent:
                if self.chains is None:
                    self._new_chains(generator)
                neg_rb, _ = self._negative(self.chains, generator)
            else:
                neg_rb, _ = self._negative(pos_s.clone(), generator)
            pos, neg = self._stats(pos_rb), self._stats(neg_rb)
        return self._surrogate(pos, neg)

    def after_step(self) -> None:
        """Nothing to do: samplers re-read the parameters at every step."""

    def _monitor_rows(self, values: torch.Tensor) -> torch.Tensor:
        """At most ``MONITOR_ROWS`` rows (a fixed, evenly spaced subset) for the
        reconstruction error, so monitoring stays a small part of an epoch."""
        n = values.shape[0]
        if n <= MONITOR_ROWS:
            return values
        idx = torch.linspace(0, n - 1, MONITOR_ROWS, device=values.device).long()
        return values[idx]

    def epoch_metrics(self, train: torch.Tensor, val: torch.Tensor | None) -> dict:
        """``recon_error`` and, when exact work is feasible, ``nll`` / ``val_nll``."""
        m = self.model
        out: dict = {"recon_error": reconstruction_error(m, self._monitor_rows(train))}
        if self.monitor_nll and m.plan.exact_feasible:
            with torch.no_grad():
                log_z = m.log_partition()
                out["nll"] = float(exact_nll(m, train, log_z))
                if val is not None:
                    out["val_nll"] = float(exact_nll(m, val, log_z))
        elif val is not None:
            out["val_recon_error"] = reconstruction_error(m, self._monitor_rows(val))
        return out


class CDObjective(GibbsObjective):
    """CD-k: negative chains start at the batch (hidden units sampled given it) and run
    ``k`` block sweeps. ``model.fit(data, method="cd", k=1)``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), engine="block-gibbs", seed=0)
    >>> h = m.fit([[0, 1, 1, 0], [1, 0, 0, 1]], method="cd", epochs=3, progress=False, seed=0)
    >>> sorted(k for k in h[-1] if k != "method")
    ['epoch', 'nll', 'recon_error']
    """

    name = "cd"
    persistent = False


class PCDObjective(GibbsObjective):
    """PCD-k (stochastic maximum likelihood): ``n_chains`` persistent chains, each step
    continued by ``k`` block sweeps. ``model.fit(data, method="pcd", n_chains=100)``.

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
