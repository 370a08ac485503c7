"""Scores of a model on data: NLL (exact or AIS), pseudo-likelihood, reconstruction.

:func:`evaluate` reports the NLL (exact where feasible, AIS with its reverse-AIS bracket
otherwise, saying which), the pseudo-log-likelihood and the reconstruction error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_bool, check_choice, check_int, check_seed
from ..domains import DomainVector
from ..errors import ArgumentError
from ..results import Evaluation, LogPartition
from ..samplers import make_sampler
from .ais import log_partition as _ais_log_partition
from .ais import log_partition_bracket

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["evaluate", "pseudo_log_likelihood", "reconstruction_error",
           "reconstruction_error_values"]

_CHUNK_ELEMENTS = 1 << 22
_RECON_CHUNK = 4096


def pseudo_log_likelihood(model: EnergyModel, data: Any) -> torch.Tensor:
    """``log P(v_i | v_-i)`` for every row and visible unit, hidden units summed out,
    shape (N, n_visible); the pseudo-log-likelihood of a row is the sum over units.

    Exact and vectorised: with ``L_i(s) = -F(v with v_i = s) + F(v)`` over the levels s of
    unit i, ``log P(v_i | v_-i) = -logsumexp_s L_i(s)``. When every hidden unit has only
    visible neighbours, ``L_i(s) = δ f_i - q_i (s^2 - v_i^2) / 2 + sum_{j ~ i}
    [A_j(f_j + δ W_ij) - A_j(f_j)]`` with ``δ = s - v_i``, ``f`` the fields given ``v``
    (hidden at 0) and ``q_i`` the unit's precision (0 without a quadratic term), costing
    one pass over the visible-hidden edges per level (rows chunked so memory stays
    bounded); otherwise the free energies are computed per flip. Continuous (Gaussian)
    visible units have no level sum here: ArgumentError.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> pseudo_log_likelihood(m, [[0, 1, 1, 0]]).shape
    torch.Size([1, 4])
    """
    values = model.encode_data(data, "data")
    if not model.visible_domains.discrete:
        node = next(model.visible_nodes[i] for i, d in
                    enumerate(model.visible_domains.domains) if not d.discrete)
        raise ArgumentError(f"the pseudo-log-likelihood sums over each visible unit's "
                            f"levels; visible node {node!r} is continuous (gaussian), so it "
                            "is not available for this model (use log_prob or AIS)")
    with torch.no_grad():
        if model._hidden_problem is not None:
            return _pll_by_free_energy(model, values)
        return _pll_closed_form(model, values)


def _pll_closed_form(model: EnergyModel, values: torch.Tensor) -> torch.Tensor:
    dev, dt = model.device, model.dtype
    N, nv = values.shape
    n = model.n_nodes
    vis_pos = np.full(n, -1, dtype=np.int64)
    vis_pos[model.visible_index] = np.arange(nv)
    e = model.edge_array
    w = model.weight.detach()
    if len(e):
        is_v = vis_pos[e] >= 0
        sel = np.flatnonzero(is_v[:, 0] != is_v[:, 1])
        ev = np.where(is_v[sel, 0], e[sel, 0], e[sel, 1])
        eh = np.where(is_v[sel, 0], e[sel, 1], e[sel, 0])
    else:
        sel = ev = eh = np.zeros(0, dtype=np.int64)
    ei = torch.as_tensor(vis_pos[ev], device=dev)
    ej = torch.as_tensor(eh, device=dev)
    we = w[torch.as_tensor(sel, device=dev)]
    hd = model.hidden_domains
    if hd.uniform or len(eh) == 0:
        dv_e = DomainVector(hd.domains[:1] or model.visible_domains.domains[:1])
    else:
        dv_e = DomainVector([model.spec.domains[j] for j in eh])
    _, _, _, K_np, V_np, _ = model.visible_domains.kernel_arrays(rows=np.arange(nv))
    K = torch.as_tensor(K_np, device=dev)
    V = torch.as_tensor(V_np, dtype=dt, device=dev)
    q_v = model.precisions_at("visible")
    q_h = None
    if model.log_precision is not None and len(eh):
        q_full = model.precisions().detach()
        if np.isin(eh, model.quadratic_index).any():
            q_h = q_full[torch.as_tensor(eh, device=dev)]
    maxK = int(K_np.max())
    vi = model.index("visible")
    chunk = max(1, _CHUNK_ELEMENTS // max(1, len(eh), nv))
    out = []
    for r0 in range(0, N, chunk):
        v = values[r0:r0 + chunk].to(dev, dt)
        x = model.visible_state(v)
        f = model.fields(x)
        f_vis = f[:, vi]
        f_e = f[:, ej]
        A0 = dv_e.log_normalizer(f_e, q_h) if len(eh) else None
        levels = []
        for k in range(maxK):
            delta = V[:, k] - v
            L = delta * f_vis
            if q_v is not None:
                L = L - 0.5 * q_v.detach() * (V[:, k] ** 2 - v * v)
            if len(eh):
                arg = f_e + delta[:, ei] * we
                L = L.index_add(1, ei, dv_e.log_normalizer(arg, q_h) - A0)
            levels.append(torch.where(k < K, L, torch.full_like(L, -math.inf)))
        out.append(-torch.logsumexp(torch.stack(levels), 0))
    return torch.cat(out)


def _pll_by_free_energy(model: EnergyModel, values: torch.Tensor) -> torch.Tensor:
    dev, dt = model.device, model.dtype
    values = values.to(dev, dt)
    N, nv = values.shape
    F = model.free_energy_values(values)
    out = torch.empty(N, nv, dtype=dt, device=dev)
    for i, d in enumerate(model.visible_domains.domains):
        lv = torch.as_tensor(d.values(), dtype=dt, device=dev)
        rows = values.unsqueeze(0).repeat(len(lv), 1, 1)
        rows[:, :, i] = lv[:, None]
        Fk = model.free_energy_values(rows.reshape(-1, nv)).reshape(len(lv), N)
        out[:, i] = -F - torch.logsumexp(-Fk, 0)
    return out


def reconstruction_error_values(model: EnergyModel, values: torch.Tensor) -> float:
    """:func:`reconstruction_error` of visible *values* (N, n_visible), rows chunked."""
    total = 0.0
    with torch.no_grad():
        up = make_sampler(model, "block-gibbs", clamped=model.visible_index) \
            if model.n_hidden else None
        vi = model.index("visible")
        q = model.precisions()
        q = None if q is None else q.detach()
        q_v = model.precisions_at("visible", q) if q is not None else None
        for c0 in range(0, values.shape[0], _RECON_CHUNK):
            v = values[c0:c0 + _RECON_CHUNK].to(model.device, model.dtype)
            x = model.domains.mean(torch.zeros(v.shape[0], model.n_nodes, dtype=model.dtype,
                                               device=model.device), q)
            x[:, vi] = v
            if up is not None:
                for k, blk in enumerate(up.blocks):
                    x[:, blk.index] = up.mean_field(x, k)
            rec = model.visible_domains.mean(model.fields(x, model.visible_index), q_v)
            total += float(((v - rec) ** 2).sum())
    return total / (values.shape[0] * values.shape[1])


def reconstruction_error(model: EnergyModel, data: Any) -> float:
    """Mean squared error (in values) of one up-down mean-field pass.

    Up: the hidden units' conditional means given the data, class by class in the plan's
    colour order, starting from their zero-field means (for an RBM ``E[h | v]``). Down:
    each visible unit's conditional mean given the data's other visible units and the
    hidden means (for an RBM ``E[v | h = E[h | v]]``). Returns
    ``mean_{rows, units} (v_rec - v)^2``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> 0.0 <= reconstruction_error(m, [[0, 1, 1, 0]]) <= 1.0
    True
    """
    return reconstruction_error_values(model, model.encode_data(data, "data"))


def evaluate(model: EnergyModel, data: Any, *, method: str = "auto",
             log_partition: Any = None, reverse: bool = True, n_chains: int | None = None,
             n_betas: int | None = None, seed: int | None = None, progress: bool = True,
             base_data: Any = None) -> Evaluation:
    """Score a model on visible ``data``: NLL, pseudo-log-likelihood, reconstruction.

    ``NLL = mean_rows F(v) + log Z`` (per row, in nats; a negative log-*density* for
    Gaussian visible units, whose pseudo-log-likelihood is reported as NaN: it is defined
    here for discrete visible units only). ``method="auto"`` uses the exact ``log Z`` when
    the plan is exact-feasible and AIS otherwise (``"exact"`` / ``"ais"`` force one); with AIS
    and ``reverse=True`` reverse AIS from ``data`` is run too and ``nll_bracket`` holds the
    NLL from both. ``log_partition`` (a float or :class:`~pgm_boltz.LogPartition`) skips
    estimation. AIS's base model is fitted to ``base_data`` (default: ``data``).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(6, 3), seed=0)
    >>> ev = evaluate(m, m.sample(20, seed=0), progress=False)
    >>> ev.nll_method, ev.nll > 0
    ('exact', True)
    """
    check_choice("evaluation method", method, ("auto", "exact", "ais"))
    check_bool("reverse", reverse)
    check_bool("progress", progress)
    check_int("n_chains", n_chains, 2, allow_none=True)
    check_int("n_betas", n_betas, 2, allow_none=True)
    seed = check_seed(seed)
    values = model.encode_data(data, "data")
    with torch.no_grad():
        mean_f = float(model.free_energy_values(values).double().mean())
    bracket = None
    nll_bracket = None
    if log_partition is not None:
        if isinstance(log_partition, LogPartition):
            lz = log_partition
        else:
            try:
                lz = LogPartition(float(log_partition), 0.0)
            except (TypeError, ValueError):
                raise ArgumentError(f"log_partition must be a number or a LogPartition, "
                                    f"got {log_partition!r}") from None
            if not math.isfinite(lz.value):
                raise ArgumentError(f"log_partition must be finite, got {log_partition!r}")
        used = "given"
    else:
        if method == "auto":
            method = "exact" if model.plan.exact_feasible else "ais"
        if method == "exact":
            model.plan.require_exact("evaluate(method='exact')")
            with torch.no_grad():
                lz = LogPartition(float(model.exact_log_partition()), 0.0)
        else:
            base = data if base_data is None else base_data
            if reverse:
                bracket = log_partition_bracket(model, base, n_chains=n_chains,
                                                    n_betas=n_betas, seed=seed,
                                                    progress=progress)
                lz = bracket.lower
                nll_bracket = (mean_f + bracket.lower.value, mean_f + bracket.upper.value)
            else:
                lz = _ais_log_partition(model, "ais", n_chains=n_chains, n_betas=n_betas,
                                       data=base, seed=seed, progress=progress)
        used = method
    pll = float(pseudo_log_likelihood(model, data).double().sum(-1).mean()) \
        if model.visible_domains.discrete else math.nan
    rec = reconstruction_error_values(model, values)
    return Evaluation(nll=mean_f + lz.value, nll_method=used, nll_stderr=lz.stderr,
                      log_partition=lz, pseudo_log_likelihood=pll,
                      reconstruction_error=rec, n_rows=int(values.shape[0]),
                      nll_bracket=nll_bracket, log_partition_bracket=bracket)
