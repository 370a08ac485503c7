"""Estimation: log Z of large models by (reverse) AIS, evaluation, sampler diagnostics.

**Annealed importance sampling** (Neal 2001; Salakhutdinov & Murray 2008) walks from a
base model ``p_0`` whose ``log Z_0`` is known in closed form to the target ``p_1`` through
the intermediate models that scale the energy,

    p_β(x) ∝ f_β(x) = exp(-(1-β) E_0(x) - β E(x)),     0 = β_0 < β_1 < ... < β_K = 1,

i.e. biases ``(1-β) b_0 + β b`` and couplings ``β W``. The base ``p_0`` has independent
units: visible biases ``b_0`` fitted to the data's means (:func:`pgm_boltz.training.data_bias`)
when data are given, else the model's ``visible_init`` (set by ``fit``), else the model's
own visible biases; hidden base biases 0; ``log Z_0 = sum_i A_i(b0_i)``. Each chain starts
from an exact draw of ``p_0`` and, for k = 1..K, multiplies its weight by
``f_{β_k}(x) / f_{β_{k-1}}(x)`` and moves by one block-Gibbs sweep that leaves ``p_{β_k}``
invariant. Then ``E[w] = Z / Z_0`` and

    log Z ≈ log Z_0 + log mean_c w_c,        stderr ≈ std(w) / (sqrt(C) mean(w)),

a stochastic *lower* bound (Jensen: ``E[log mean w] <= log E[w]``). On bipartite graphs
(RBMs, DBMs, square lattices) one colour class is summed out in closed form, so the
chains carry only the other class (for an RBM, the visible layer) and the weights use
free energies: ``log f_β(v) = (1-β) b0·v + β b·v + sum_j A_j((1-β) c0_j + β(c_j + (vW)_j))``.
Other graphs carry the full state and anneal with the plan's own colour classes. On CPU,
collapsed two-class models with two-level units (binary or spin) and a small summed-out
class run the whole walk in a numba kernel (:mod:`pgm_boltz.engines.ais_kernels`,
``backend="auto"``); everything else steps all chains at once with torch.

**Reverse AIS** runs the same walk from β = 1 down to 0, starting from states of the
target: the data, moved by a few Gibbs sweeps at β = 1 (or exact draws when the plan is
exact-feasible, ``start="exact"``). Its weights estimate ``Z_0 / Z``, so
``log Z ≈ log Z_0 - log mean w`` is biased the other way: an upper bound in expectation
(exactly so when the start is an exact draw of the target). Together they bracket log Z
(:func:`log_partition_bracket`).

:func:`evaluate` reports the NLL (exact where feasible, AIS otherwise, saying which), the
pseudo-log-likelihood and the reconstruction error; :func:`diagnostics` gives effective
sample sizes and split R-hat through ``pyro.ops.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from .domains import BINARY, DomainVector
from .errors import DataError
from .model import LogPartition

__all__ = [
    "DEFAULT_INIT_STEPS",
    "DEFAULT_N_BETAS",
    "DEFAULT_N_CHAINS",
    "Bracket",
    "Diagnostics",
    "Evaluation",
    "diagnostics",
    "evaluate",
    "log_partition",
    "log_partition_bracket",
    "pseudo_log_likelihood",
    "reconstruction_error",
    "schedule",
]

#: Default number of inverse temperatures (points of the schedule, both ends included).
DEFAULT_N_BETAS = 14500
#: Default number of AIS chains.
DEFAULT_N_CHAINS = 100
#: Default Gibbs sweeps at β = 1 from the data before reverse AIS anneals.
DEFAULT_INIT_STEPS = 10

_METHODS = ("ais", "reverse-ais")
#: annealing backends: "numba" runs the whole walk of a collapsed two-level bipartite model
#: (an RBM with binary or spin units) in one compiled kernel on CPU; "torch" steps all
#: chains with tensor operations (any plan, CPU or CUDA)
BACKENDS = ("auto", "torch", "numba")
# "auto" takes the kernel up to this many summed-out units (an RBM's hidden layer): past
# it the kernel's per-chain field updates lose to torch's batched matrix products
# (measured on 784-visible RBMs: 6 vs 10 ms per 100 betas × 100 chains at 12 hidden units,
# even at 32, 16 vs 10 at 64)
_KERNEL_MAX_SUMMED = 32
# unit updates (chains × units × steps) per kernel call between progress-bar updates
_KERNEL_CHUNK = 1 << 27
# the schedule of Salakhutdinov & Murray (2008): intervals per segment of [0, 1]
_SEGMENTS = ((0.0, 0.5, 500), (0.5, 0.9, 4000), (0.9, 1.0, 10000))
_CHUNK_ELEMENTS = 1 << 22


class Bracket(NamedTuple):
    """``log Z`` bracketed by AIS (``lower``, a stochastic lower bound) and reverse AIS
    (``upper``, a stochastic upper bound); both are :class:`LogPartition` estimates."""

    lower: LogPartition
    upper: LogPartition


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(torch.seed() % 2**63) if seed is None else seed)
    return gen


_LINEAR_BELOW = 2000  # intervals: shorter ladders are linear


def schedule(n_betas: int = DEFAULT_N_BETAS) -> torch.Tensor:
    """The default AIS schedule: ``n_betas`` inverse temperatures from 0 to 1 (float64).

    Piecewise linear with the proportions of Salakhutdinov & Murray (2008): 500 intervals
    in [0, 0.5], 4000 in [0.5, 0.9] and 10000 in [0.9, 1] for ``n_betas = 14501``, scaled to
    ``n_betas - 1`` intervals. Short ladders (under 2000 intervals) are plain ``linspace``:
    measured on the issue's RBMs, a linear ladder reaches 0.1 nats with 10x fewer betas
    than the piecewise shape at those counts (``benchmarks/ais.py``).

    >>> b = schedule(30)
    >>> b.shape, float(b[0]), float(b[-1]), bool((b.diff() > 0).all())
    (torch.Size([30]), 0.0, 1.0, True)
    """
    n_betas = _check_int("n_betas", n_betas, 2)
    n_int = n_betas - 1
    if n_int < _LINEAR_BELOW:
        return torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
    total = sum(s[2] for s in _SEGMENTS)
    i1 = max(1, round(n_int * _SEGMENTS[0][2] / total))
    i2 = max(1, round(n_int * _SEGMENTS[1][2] / total))
    i3 = n_int - i1 - i2
    if i3 < 1:
        i2 -= 1 - i3
        i3 = 1
    parts = [torch.linspace(0.0, 0.5, i1 + 1, dtype=torch.float64)[:-1],
             torch.linspace(0.5, 0.9, i2 + 1, dtype=torch.float64)[:-1],
             torch.linspace(0.9, 1.0, i3 + 1, dtype=torch.float64)]
    return torch.cat(parts)


def _check_betas(betas: Any) -> list[float]:
    try:
        b = torch.as_tensor(betas, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"betas must be a 1-D sequence of numbers, got {betas!r}") from None
    if b.ndim != 1 or b.numel() < 2:
        raise DataError(f"betas must be 1-D with at least 2 values, got shape "
                        f"{tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise DataError("betas must be finite")
    if float(b[0]) != 0.0 or float(b[-1]) != 1.0:
        raise DataError(f"betas must start at 0 and end at 1, got {float(b[0])} .. "
                        f"{float(b[-1])}")
    if (b.diff() < 0).any():
        raise DataError("betas must be non-decreasing")
    return b.tolist()


# ---------------------------------------------------------------------------------------
# the annealing engine
# ---------------------------------------------------------------------------------------


@dataclass
class _Pair:
    """Couplings between colour classes p and q: dense ``W`` (n_p, n_q) or an edge list."""

    p: int
    q: int
    W: torch.Tensor | None
    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None
    w: torch.Tensor | None = None


class _Annealer:
    """Intermediate models ``p_β`` of one model and its base, with their block structure.

    The state is a list of per-class tensors ``xs[b]`` (B, n_b). With ``collapse`` the
    second class of a bipartite plan (``self.sum_block``) is summed out in closed form and
    only ``xs[self.keep_block]`` is carried.
    """

    def __init__(self, model, base_bias: torch.Tensor, collapse: bool,
                 backend: str = "auto") -> None:
        self.model = model
        dev, dt = model.device, model.dtype
        with torch.no_grad():
            b = model.bias.detach().to(dev, dt)
            b0 = base_bias.detach().to(dev, dt)
            self.index = [torch.as_tensor(ix, device=dev) for ix in model.plan.block_index]
            self.dvs = [DomainVector([model.spec.domains[i] for i in ix])
                        for ix in model.plan.block_index]
            self.b = [b[ix] for ix in self.index]
            self.b0 = [b0[ix] for ix in self.index]
            self.db = [bb - bb0 for bb, bb0 in zip(self.b, self.b0)]
            self.pairs = self._pairs()
        nb = len(self.index)
        self.collapse = bool(collapse) and nb == 2
        self.W_as: torch.Tensor | None = None
        if self.collapse:
            counts = [int(np.isin(ix, model.visible_index).sum())
                      for ix in model.plan.block_index]
            self.keep_block = 0 if counts[0] >= counts[1] else 1
            self.sum_block = 1 - self.keep_block
            dense = [pr for pr in self.pairs if pr.W is not None]
            if len(dense) == 1 and len(self.pairs) == 1:  # W oriented keep -> summed class
                pr = dense[0]
                self.W_as = pr.W if pr.p == self.keep_block else pr.W.t()
        self.kernel = self._kernel_problem(backend)

    def _kernel_problem(self, backend: str):
        """The numba kernel's arrays when ``backend`` selects it (None: torch steps)."""
        if backend == "torch":
            return None
        ok = (self.collapse and self.W_as is not None and self.model.device.type == "cpu"
              and all(dv.max_levels == 2 for dv in self.dvs))
        if backend == "numba" and not ok:
            raise DataError(
                "backend='numba' anneals collapsed bipartite models with two-level units "
                "(binary or spin) and dense couplings on CPU; this model "
                f"(plan {self.model.plan.engine}, storage {self.model.plan.storage}, "
                f"device {self.model.device}, collapse={self.collapse}) needs "
                "backend='torch' (or 'auto')")
        if not ok or (backend == "auto"
                      and len(self.index[self.sum_block]) > _KERNEL_MAX_SUMMED):
            return None
        from .engines.ais_kernels import TwoLevelProblem

        a, s = self.keep_block, self.sum_block
        lo_a, step_a, _ = self.dvs[a].kinds_array()
        lo_s, step_s, _ = self.dvs[s].kinds_array()
        np64 = lambda v: v.detach().to("cpu", torch.float64).numpy()
        return TwoLevelProblem(np64(self.W_as), np64(self.b[a]), np64(self.b0[a]),
                               np64(self.b[s]), np64(self.b0[s]), lo_a, step_a, lo_s,
                               step_s)

    def _pairs(self) -> list[_Pair]:
        m = self.model
        if m.plan.storage != "sparse":
            return [_Pair(p, q, W.detach()) for p, q, W in m.block_weights()]
        block_of = np.zeros(m.n_nodes, dtype=np.int64)
        pos = np.zeros(m.n_nodes, dtype=np.int64)
        for k, ix in enumerate(m.plan.block_index):
            block_of[ix] = k
            pos[ix] = np.arange(len(ix))
        e = m._edges_np
        if len(e) == 0:
            return []
        bu, bv = block_of[e[:, 0]], block_of[e[:, 1]]
        u, v = e[:, 0].copy(), e[:, 1].copy()
        swap = bu > bv
        u[swap], v[swap] = e[swap, 1], e[swap, 0]
        bu, bv = block_of[u], block_of[v]
        w_all = m.weight.detach()
        out = []
        dev = m.device
        for p, q in sorted(set(zip(bu.tolist(), bv.tolist()))):
            sel = np.flatnonzero((bu == p) & (bv == q))
            out.append(_Pair(p, q, None, rows=torch.as_tensor(pos[u[sel]], device=dev),
                             cols=torch.as_tensor(pos[v[sel]], device=dev),
                             w=w_all[torch.as_tensor(sel, device=dev)]))
        return out

    # -- couplings ---------------------------------------------------------------------
    def coupling(self, xs: list[torch.Tensor | None], q: int) -> torch.Tensor | None:
        """``sum_{p != q} x_p W_pq``: the coupling part of class q's field (None if none)."""
        out = None
        for pr in self.pairs:
            if pr.q == q:
                src, W, sidx, didx, wt = xs[pr.p], pr.W, pr.rows, pr.cols, False
            elif pr.p == q:
                src, W, sidx, didx, wt = xs[pr.q], pr.W, pr.cols, pr.rows, True
            else:
                continue
            if W is not None:
                term = src @ (W.t() if wt else W)
            else:
                term = torch.zeros(src.shape[0], len(self.index[q]), dtype=src.dtype,
                                   device=src.device)
                term.index_add_(1, didx, src[:, sidx] * pr.w)
            out = term if out is None else out + term
        return out

    def _field(self, xs: list[torch.Tensor | None], q: int, beta: float) -> torch.Tensor:
        c = self.coupling(xs, q)
        tgt = self.b[q] if c is None else self.b[q] + c
        return (1.0 - beta) * self.b0[q] + beta * tgt

    def pair_energy(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """``sum_{pairs} x_p W_pq x_q`` per chain (the coupling part of ``-E``)."""
        out = torch.zeros(xs[0].shape[0], dtype=xs[0].dtype, device=xs[0].device)
        for pr in self.pairs:
            if pr.W is not None:
                out = out + ((xs[pr.p] @ pr.W) * xs[pr.q]).sum(-1)
            else:
                out = out + (xs[pr.p][:, pr.rows] * xs[pr.q][:, pr.cols] * pr.w).sum(-1)
        return out

    # -- states --------------------------------------------------------------------------
    def log_z0(self) -> float:
        """``log Z_0 = sum_i A_i(b0_i)`` of the independent base model (float64)."""
        return float(sum(dv.log_normalizer(b0.double()).sum() for dv, b0 in
                         zip(self.dvs, self.b0)))

    def base_sample(self, n: int, gen: torch.Generator) -> list[torch.Tensor | None]:
        """``n`` exact draws of the base model (the carried classes only)."""
        xs: list[torch.Tensor | None] = []
        for k, (dv, b0) in enumerate(zip(self.dvs, self.b0)):
            if self.collapse and k == self.sum_block:
                xs.append(None)
            else:
                xs.append(dv.sample(b0.expand(n, -1).contiguous(), gen))
        return xs

    def from_joint(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """Split full joint values (B, n) into the carried per-class states."""
        xs: list[torch.Tensor | None] = [x[:, ix].contiguous() for ix in self.index]
        if self.collapse:
            xs[self.sum_block] = None
        return xs

    # -- one annealing step ------------------------------------------------------------------
    def step(self, xs: list[torch.Tensor | None], beta_old: float, beta_new: float,
             gen: torch.Generator, move: bool) -> torch.Tensor:
        """``log f_{β_new}(x) - log f_{β_old}(x)`` per chain (float64); then, if ``move``,
        one Gibbs sweep at ``β_new`` in place on ``xs``."""
        dbeta = beta_new - beta_old
        if self.collapse:
            a, s = self.keep_block, self.sum_block
            xa = xs[a]
            if self.W_as is not None:
                u = torch.addmm(self.b[s], xa, self.W_as)
            else:
                u = self.coupling(xs, s)
                u = self.b[s] if u is None else u + self.b[s]
            f_new = torch.add(self.b0[s] * (1.0 - beta_new), u, alpha=beta_new)
            f_old = torch.add(self.b0[s] * (1.0 - beta_old), u, alpha=beta_old)
            dA = _log_normalizer(self.dvs[s], f_new) - _log_normalizer(self.dvs[s], f_old)
            inc = dA.sum(-1, dtype=torch.float64) + dbeta * (xa @ self.db[a]).double()
            if move:
                xh = _sample(self.dvs[s], f_new, gen)
                c = (1.0 - beta_new) * self.b0[a] + beta_new * self.b[a]
                if self.W_as is not None:
                    f_a = torch.addmm(c, xh, self.W_as.t(), alpha=beta_new)
                else:
                    xs[s] = xh
                    f_a = torch.add(c, self.coupling(xs, a), alpha=beta_new)
                    xs[s] = None
                xs[a] = _sample(self.dvs[a], f_a, gen)
            return inc
        g = self.pair_energy(xs).double()
        for x, db in zip(xs, self.db):
            g = g + (x * db).sum(-1, dtype=torch.float64)
        inc = dbeta * g
        if move:
            for q in range(len(xs)):
                xs[q] = _sample(self.dvs[q], self._field(xs, q, beta_new), gen)
        return inc

    def anneal(self, xs: list[torch.Tensor | None], betas: list[float], gen: torch.Generator,
               progress: bool, desc: str) -> torch.Tensor:
        """Accumulate the log importance weights (float64) along ``betas``."""
        if self.kernel is not None:
            return self._anneal_kernel(xs, betas, gen, progress, desc)
        n = next(x for x in xs if x is not None).shape[0]
        lw = torch.zeros(n, dtype=torch.float64, device=self.model.device)
        K = len(betas)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=K - 1, desc=desc, leave=False, mininterval=0.5)
        try:
            with torch.no_grad():
                every = 100
                for k in range(1, K):
                    lw += self.step(xs, betas[k - 1], betas[k], gen, move=k < K - 1)
                    if bar is not None and (k % every == 0 or k == K - 1):
                        bar.update(k - bar.n)
        finally:
            if bar is not None:
                bar.close()
        return lw


    def _anneal_kernel(self, xs: list[torch.Tensor | None], betas: list[float],
                       gen: torch.Generator, progress: bool, desc: str) -> torch.Tensor:
        """:meth:`anneal` by :func:`pgm_boltz.engines.ais_kernels.anneal_two_level`: the
        carried class as levels (uint8), one random stream per chain seeded from ``gen``."""
        from .engines import ais_kernels
        from .engines.threads import run_split

        a = self.keep_block
        prob = self.kernel
        if not prob.finite:  # as the torch steps would: non-finite weights, then an error
            n = next(x for x in xs if x is not None).shape[0]
            return torch.full((n,), math.nan, dtype=torch.float64)
        lo, step, _ = self.dvs[a].kinds_array()
        x = xs[a].detach().to("cpu", torch.float64).numpy()
        t = np.ascontiguousarray(np.rint((x - lo) / step), dtype=np.uint8)
        C = t.shape[0]
        seeds = torch.randint(0, 2**62, (C, 2), generator=gen, device=gen.device)
        rng = ais_kernels.seed_streams(seeds.cpu().numpy())
        lw = np.zeros(C, dtype=np.float64)
        beta_arr = np.ascontiguousarray(betas, dtype=np.float64)
        K = len(beta_arr)
        per_step = C * prob.n_a * (prob.n_s + 4)  # ~ unit updates per step, all chains
        # threads (torch's count) over disjoint ranges of chains, when each thread's
        # share is well above the cost of starting it
        n_thr = max(1, min(torch.get_num_threads(), C, (per_step * (K - 1)) >> 22))
        # stretches of the schedule between progress updates
        chunk = max(1, _KERNEL_CHUNK // per_step) if progress else K
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=K - 1, desc=desc, leave=False, mininterval=0.5)
        try:
            for k0 in range(1, K, chunk):
                k1 = min(K, k0 + chunk)
                run_split(lambda c0, c1, k0=k0, k1=k1: ais_kernels.anneal_two_level(
                    prob, t[c0:c1], lw[c0:c1], rng[c0:c1], beta_arr, k0, k1), C, n_thr)
                if bar is not None:
                    bar.update(k1 - k0)
        finally:
            if bar is not None:
                bar.close()
        return torch.from_numpy(lw).to(self.model.device)


def _is_binary(dv: DomainVector) -> bool:
    return dv.uniform and bool(dv.domains) and dv.domains[0] == BINARY


def _log_normalizer(dv: DomainVector, f: torch.Tensor) -> torch.Tensor:
    """``A(f)`` elementwise (softplus for binary units, one kernel)."""
    return torch.nn.functional.softplus(f) if _is_binary(dv) else dv.log_normalizer(f)


def _sample(dv: DomainVector, f: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A draw from ``P(s) ∝ exp(f s)`` elementwise (Bernoulli for binary units)."""
    if _is_binary(dv):
        u = torch.rand(f.shape, dtype=f.dtype, device=f.device, generator=gen)
        return (u < torch.sigmoid(f)).to(f.dtype)
    return dv.sample(f, gen)


def _log_mean_exp(lw: torch.Tensor) -> tuple[float, float]:
    """``log mean w`` and its delta-method standard error ``std(w)/(sqrt(n) mean(w))``."""
    lw = lw.double()
    n = lw.numel()
    if not torch.isfinite(lw).all():
        raise DataError("AIS produced non-finite importance weights; check the model's "
                        "parameters are finite")
    value = float(torch.logsumexp(lw, 0) - math.log(n))
    w = torch.exp(lw - lw.max())
    stderr = float(w.std(correction=1) / (math.sqrt(n) * w.mean()))
    return value, stderr


def _base_bias(model, data_values: torch.Tensor | None) -> torch.Tensor:
    """The base model's biases: data-fitted visible biases (else ``model.visible_init``,
    else the model's own visible biases), hidden 0.

    Data-fitted: the independent model with the data's means, ``E[s_i | b0_i] = m_i``
    (:func:`pgm_boltz.training.data_bias`)."""
    from .training import data_bias

    b0 = torch.zeros(model.n_nodes, dtype=model.dtype, device=model.device)
    vi = torch.as_tensor(model.visible_index, device=model.device)
    if data_values is not None:
        vb = data_bias(model.visible_domains, data_values.mean(0).double().cpu())
        b0[vi] = vb.to(model.device, model.dtype)
    elif getattr(model, "visible_init", None) is not None:
        b0[vi] = model.visible_init.detach().to(model.device, model.dtype)
    else:
        b0[vi] = model.bias.detach()[vi]
    return b0


def _target_states(model, n: int, data_values: torch.Tensor | None, start: str,
                   init_steps: int, gen: torch.Generator) -> torch.Tensor:
    """Joint states (n, n_nodes) to start reverse AIS from: exact draws, or the data with
    hidden units drawn given them, then ``init_steps`` Gibbs sweeps at β = 1."""
    from .engines.gibbs import BlockSampler

    if start == "exact":
        model.plan.require_exact("reverse AIS with start='exact'")
        cpu_gen = torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item()))
        return model._exact_sample(n, cpu_gen).to(model.device, model.dtype)
    assert data_values is not None
    N = data_values.shape[0]
    if n <= N:
        rows = torch.randperm(N, generator=gen, device=gen.device)[:n]
    else:
        rows = torch.randint(0, N, (n,), generator=gen, device=gen.device)
    rows = rows.to(data_values.device)
    sampler = BlockSampler(model)
    x = sampler.init_state(n, gen, visible_values=data_values[rows].to(model.device,
                                                                        model.dtype))
    if model.n_hidden:
        clamped = BlockSampler(model, clamped=model.visible_index)
        hidden_blocks = sum(1 for ix in model.plan.block_index
                            if np.isin(ix, model.hidden_index).any())
        clamped.sweep(x, gen, 1 if hidden_blocks == 1 else 20)
    if init_steps:
        sampler.sweep(x, gen, init_steps)
    return x


def log_partition(model, method: str = "ais", *, n_chains: int | None = None,
                  n_betas: int | None = None, betas: Any = None, data: Any = None,
                  seed: int | None = None, progress: bool = True, start: str = "data",
                  init_steps: int = DEFAULT_INIT_STEPS, collapse: bool = True,
                  backend: str = "auto") -> LogPartition:
    """Estimate ``log Z`` by annealed importance sampling (``"ais"``) or reverse AIS.

    Usually called as ``model.log_partition(method="ais", ...)``. The intermediate
    models ``p_β ∝ exp(-(1-β) E_0 - β E)`` anneal from an independent base model ``E_0``
    (visible biases fitted to ``data`` if given, else ``model.visible_init``, else the
    model's own visible biases; hidden biases 0) to the model, by block-Gibbs sweeps over
    the plan's colour classes; on bipartite plans one class is summed out analytically
    (``collapse=True``).

    ``"ais"``: chains start from exact base draws; ``log Z ≈ log Z_0 + log mean w``, a
    stochastic lower bound. ``"reverse-ais"``: chains start at the target (``start="data"``:
    rows of ``data``, hidden units drawn given them, then ``init_steps`` Gibbs sweeps;
    ``start="exact"``: exact draws, on exact-feasible plans) and anneal to the base;
    ``log Z ≈ log Z_0 - log mean w``, a stochastic upper bound.

    Parameters
    ----------
    n_chains: parallel chains (default :data:`DEFAULT_N_CHAINS`), vectorised.
    n_betas: points of the default :func:`schedule` (default :data:`DEFAULT_N_BETAS`);
        or ``betas``: an explicit non-decreasing schedule from 0 to 1.
    seed: seeds the chains (reproducible on CPU).
    progress: show a tqdm bar.
    backend: ``"auto"`` (default), ``"numba"`` or ``"torch"``. The numba kernel
        (:mod:`pgm_boltz.engines.ais_kernels`) runs the whole walk of a collapsed
        bipartite model with two-level units (binary or spin) and dense couplings on
        CPU, chain by chain in compiled code (threads over chains, float64 throughout);
        ``"auto"`` takes it when at most 32 units are summed out (an RBM's hidden
        layer), where it beats stepping tensors (per step and thread: ~6× on a 64×16
        RBM, ~1.3× on a 784×12 one; more with threads, which it spreads over chains),
        and torch otherwise (larger hidden layers, where batched matrix products win;
        CUDA; other graphs and domains). Both are exact AIS; seeded runs reproduce on
        CPU, each backend its own numbers.

    Returns
    -------
    :class:`~pgm_boltz.model.LogPartition` ``(value, stderr)``, ``stderr`` the delta-method
    standard error ``std(w) / (sqrt(n_chains) mean(w))`` of ``log mean w``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(6, 3), seed=0)
    >>> est = m.log_partition(method="ais", n_chains=50, n_betas=200, seed=0, progress=False)
    >>> abs(est.value - m.log_partition().item()) < 0.05
    True
    """
    if method not in _METHODS:
        raise DataError(f"unknown log-partition method {method!r}; use 'exact', 'ais' or "
                        "'reverse-ais'")
    n_chains = _check_int("n_chains", DEFAULT_N_CHAINS if n_chains is None else n_chains, 2)
    if betas is not None:
        if n_betas is not None:
            raise DataError("give n_betas or betas, not both")
        beta_list = _check_betas(betas)
    else:
        beta_list = schedule(DEFAULT_N_BETAS if n_betas is None else n_betas).tolist()
    seed = _check_seed(seed)
    init_steps = _check_int("init_steps", init_steps, 0)
    if start not in ("data", "exact"):
        raise DataError(f"start must be 'data' or 'exact', got {start!r}")
    if backend not in BACKENDS:
        raise DataError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    data_values = None if data is None else model.encode_data(data, "data")
    if method == "reverse-ais" and start == "data" and data_values is None:
        raise DataError("reverse AIS starts from the data: pass data=..., or "
                        "start='exact' on an exact-feasible model")
    gen = _generator(model.device, seed)
    ann = _Annealer(model, _base_bias(model, data_values), collapse, backend)
    log_z0 = ann.log_z0()
    if method == "ais":
        xs = ann.base_sample(n_chains, gen)
        lw = ann.anneal(xs, beta_list, gen, progress, "ais")
        value, stderr = _log_mean_exp(lw)
        return LogPartition(log_z0 + value, stderr)
    x = _target_states(model, n_chains, data_values, start, init_steps, gen)
    xs = ann.from_joint(x)
    lw = ann.anneal(xs, beta_list[::-1], gen, progress, "reverse-ais")
    value, stderr = _log_mean_exp(lw)
    return LogPartition(log_z0 - value, stderr)


def log_partition_bracket(model, data: Any, *, n_chains: int | None = None,
                          n_betas: int | None = None, betas: Any = None,
                          seed: int | None = None, progress: bool = True,
                          init_steps: int = DEFAULT_INIT_STEPS, collapse: bool = True,
                          backend: str = "auto") -> Bracket:
    """AIS and reverse AIS on the same schedule and base model: ``(lower, upper)``.

    Both share the base model fitted to ``data``; reverse AIS starts from ``data``. The
    true ``log Z`` lies between them in expectation (the lower one is AIS's Jensen bias,
    the upper reverse AIS's, exact only as far as the data-started chains are samples of
    the model).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(6, 3), seed=0)
    >>> data = m.sample(100, seed=1)
    >>> br = log_partition_bracket(m, data, n_chains=50, n_betas=200, seed=0, progress=False)
    >>> br.lower.value < br.upper.value + 0.05
    True
    """
    seed = _check_seed(seed)
    kw = dict(n_chains=n_chains, n_betas=n_betas, betas=betas, data=data,
              progress=progress, collapse=collapse, backend=backend)
    lower = log_partition(model, "ais", seed=seed, **kw)
    upper = log_partition(model, "reverse-ais", seed=None if seed is None else seed + 1,
                          init_steps=init_steps, **kw)
    return Bracket(lower, upper)


# ---------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------


def pseudo_log_likelihood(model, data: Any) -> torch.Tensor:
    """``log P(v_i | v_-i)`` for every row and visible unit, hidden units summed out,
    shape (N, n_visible); the pseudo-log-likelihood of a row is the sum over units.

    Exact and vectorised: with ``L_i(s) = -F(v with v_i = s) + F(v)`` over the levels s of
    unit i, ``log P(v_i | v_-i) = -logsumexp_s L_i(s)``. When every hidden unit has only
    visible neighbours, ``L_i(s) = δ f_i + sum_{j ~ i} [A_j(f_j + δ W_ij) - A_j(f_j)]`` with
    ``δ = s - v_i``, ``f`` the fields given ``v`` (hidden at 0), costing one pass over the
    visible-hidden edges per level; otherwise the free energies are enumerated per flip.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> pseudo_log_likelihood(m, [[0, 1, 1, 0]]).shape
    torch.Size([1, 4])
    """
    values = model.encode_data(data, "data")
    with torch.no_grad():
        if len(model.plan.hidden_enum_index):
            return _pll_enumerated(model, values)
        return _pll_closed_form(model, values)


def _pll_closed_form(model, values: torch.Tensor) -> torch.Tensor:
    dev, dt = model.device, model.dtype
    N, nv = values.shape
    n = model.n_nodes
    vis_pos = np.full(n, -1, dtype=np.int64)
    vis_pos[model.visible_index] = np.arange(nv)
    e = model._edges_np
    w = model.weight.detach()
    if len(e):
        is_v = vis_pos[e] >= 0
        mixed = is_v[:, 0] != is_v[:, 1]
        sel = np.flatnonzero(mixed)
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
    lo, step, K = (torch.as_tensor(a, dtype=dt, device=dev) for a in
                   model.visible_domains.kinds_array())
    maxK = int(K.max())
    vi = torch.as_tensor(model.visible_index, device=dev)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, len(eh), nv))
    out = []
    for r0 in range(0, N, chunk):
        v = values[r0:r0 + chunk].to(dev, dt)
        x = torch.zeros(v.shape[0], n, dtype=dt, device=dev).index_copy(1, vi, v)
        f = model.fields(x)
        f_vis = f[:, vi]
        f_e = f[:, ej]
        A0 = dv_e.log_normalizer(f_e) if len(eh) else None
        levels = []
        for k in range(maxK):
            delta = lo + step * k - v
            L = delta * f_vis
            if len(eh):
                arg = f_e + delta[:, ei] * we
                L = L.index_add(1, ei, dv_e.log_normalizer(arg) - A0)
            levels.append(torch.where(k < K, L, torch.full_like(L, -math.inf)))
        out.append(-torch.logsumexp(torch.stack(levels), 0))
    return torch.cat(out)


def _pll_enumerated(model, values: torch.Tensor) -> torch.Tensor:
    dev, dt = model.device, model.dtype
    values = values.to(dev, dt)
    N, nv = values.shape
    F = model._free_energy_values(values)
    out = torch.empty(N, nv, dtype=dt, device=dev)
    for i, d in enumerate(model.visible_domains.domains):
        lv = torch.as_tensor(d.values(), dtype=dt, device=dev)
        rows = values.unsqueeze(0).repeat(len(lv), 1, 1)
        rows[:, :, i] = lv[:, None]
        Fk = model._free_energy_values(rows.reshape(-1, nv)).reshape(len(lv), N)
        out[:, i] = -F - torch.logsumexp(-Fk, 0)
    return out


def reconstruction_error(model, data: Any) -> float:
    """Mean squared error (in values) of one up-down mean-field pass.

    Up: the hidden units' conditional means given the data, class by class in the
    plan's colour order (for an RBM ``E[h | v]``). Down: each visible unit's conditional
    mean given the data's other visible units and the hidden means (for an RBM
    ``E[v | h = E[h | v]]``). Returns ``mean_{rows, units} (v_rec - v)^2``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> 0.0 <= reconstruction_error(m, [[0, 1, 1, 0]]) <= 1.0
    True
    """
    from .engines.gibbs import BlockSampler

    values = model.encode_data(data, "data").to(model.device, model.dtype)
    with torch.no_grad():
        vi = torch.as_tensor(model.visible_index, device=model.device)
        x = torch.zeros(values.shape[0], model.n_nodes, dtype=model.dtype,
                        device=model.device).index_copy(1, vi, values)
        if model.n_hidden:
            up = BlockSampler(model, clamped=model.visible_index)
            for k, blk in enumerate(up.blocks):
                x[:, blk.index] = up.mean_field(x, k)
        rec = model.visible_domains.mean(model.fields(x, model.visible_index))
        return float(((rec - values) ** 2).mean())


@dataclass
class Evaluation:
    """What :func:`evaluate` measures (means over the data rows).

    Attributes
    ----------
    nll: mean ``-log P(v)`` per row (nats), ``= mean F(v) + log Z``.
    nll_method: how log Z was obtained: ``"exact"``, ``"ais"`` or ``"given"``.
    nll_stderr: the standard error of ``nll`` from the log Z estimate (0 when exact).
    nll_bracket: ``(low, high)`` NLL from AIS and reverse AIS (None unless ``"ais"``
        with ``reverse=True``).
    log_partition: the log Z used; log_partition_bracket: the :class:`Bracket` or None.
    pseudo_log_likelihood: mean over rows of ``sum_i log P(v_i | v_-i)``.
    reconstruction_error: mean squared error of one up-down mean-field pass.
    n_rows: number of data rows.
    """

    nll: float
    nll_method: str
    nll_stderr: float
    log_partition: LogPartition
    pseudo_log_likelihood: float
    reconstruction_error: float
    n_rows: int
    nll_bracket: tuple[float, float] | None = None
    log_partition_bracket: Bracket | None = None

    def as_dict(self) -> dict:
        """A plain dict of the fields (tuples kept as tuples)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        lines = [f"NLL {self.nll:.4f} nats/row ({self.nll_method}"
                 + (f", ± {self.nll_stderr:.4f}" if self.nll_stderr else "") + ")"]
        if self.nll_bracket is not None:
            lines.append(f"  bracket [{self.nll_bracket[0]:.4f}, {self.nll_bracket[1]:.4f}] "
                         "(AIS, reverse AIS)")
        lines.append(f"log Z {self.log_partition.value:.4f}")
        lines.append(f"pseudo-log-likelihood {self.pseudo_log_likelihood:.4f} nats/row")
        lines.append(f"reconstruction error {self.reconstruction_error:.5f} (MSE)")
        return "\n".join(lines)


def evaluate(model, data: Any, *, method: str = "auto", log_partition: Any = None,
             reverse: bool = True, n_chains: int | None = None, n_betas: int | None = None,
             seed: int | None = None, progress: bool = True,
             base_data: Any = None) -> Evaluation:
    """Score a model on visible ``data``: NLL, pseudo-log-likelihood, reconstruction.

    ``NLL = mean_rows F(v) + log Z``. ``method="auto"`` uses the exact ``log Z`` when the
    plan is exact-feasible and AIS otherwise (``"exact"`` / ``"ais"`` force one); with AIS
    and ``reverse=True`` reverse AIS from ``data`` is run too and ``nll_bracket`` holds the
    NLL from both. ``log_partition`` (a float or :class:`LogPartition`) skips estimation.
    AIS's base model is fitted to ``base_data`` (default: ``data``).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(6, 3), seed=0)
    >>> ev = evaluate(m, m.sample(20, seed=0), progress=False)
    >>> ev.nll_method, ev.nll > 0
    ('exact', True)
    """
    if method not in ("auto", "exact", "ais"):
        raise DataError(f"unknown evaluation method {method!r}; use 'auto', 'exact' or "
                        "'ais'")
    values = model.encode_data(data, "data")
    with torch.no_grad():
        mean_f = float(model._free_energy_values(values.to(model.device, model.dtype))
                       .double().mean())
    bracket = None
    nll_bracket = None
    if log_partition is not None:
        lz = log_partition if isinstance(log_partition, LogPartition) else LogPartition(
            float(log_partition), 0.0)
        used = "given"
    else:
        if method == "auto":
            method = "exact" if model.plan.exact_feasible else "ais"
        if method == "exact":
            model.plan.require_exact("evaluate(method='exact')")
            with torch.no_grad():
                lz = LogPartition(float(model.log_partition()), 0.0)
        else:
            base = data if base_data is None else base_data
            if reverse:
                bracket = log_partition_bracket(model, base, n_chains=n_chains,
                                                n_betas=n_betas, seed=seed,
                                                progress=progress)
                lz = bracket.lower
                nll_bracket = (mean_f + bracket.lower.value, mean_f + bracket.upper.value)
            else:
                lz = _log_partition(model, "ais", n_chains=n_chains, n_betas=n_betas,
                                    data=base, seed=seed, progress=progress)
        used = method
    pll = float(pseudo_log_likelihood(model, data).double().sum(-1).mean())
    rec = reconstruction_error(model, data)
    return Evaluation(nll=mean_f + lz.value, nll_method=used, nll_stderr=lz.stderr,
                      log_partition=lz, pseudo_log_likelihood=pll,
                      reconstruction_error=rec, n_rows=int(values.shape[0]),
                      nll_bracket=nll_bracket, log_partition_bracket=bracket)


_log_partition = log_partition


# ---------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------


@dataclass
class Diagnostics:
    """Effective sample sizes and split R-hat of per-step statistics of many chains.

    ``ess[name]`` and ``r_hat[name]`` have the statistic's own shape (a scalar for the
    energy, (n_visible,) for the visible units). ESS is NaN for a statistic constant
    within some chain (no variance, nothing to measure); R-hat is NaN for one constant
    everywhere and infinite for one constant within each chain but not across chains.
    """

    ess: dict[str, torch.Tensor]
    r_hat: dict[str, torch.Tensor]
    n_chains: int
    n_steps: int
    statistics: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def min_ess(self) -> float:
        """The smallest ESS over all statistics (NaNs ignored)."""
        vals = [t[torch.isfinite(t)] for t in self.ess.values()]
        vals = [v for v in vals if v.numel()]
        return float(torch.cat([v.flatten() for v in vals]).min()) if vals else math.nan

    @property
    def max_r_hat(self) -> float:
        """The largest split R-hat over all statistics (NaNs ignored; inf kept)."""
        vals = [t[~torch.isnan(t)] for t in self.r_hat.values()]
        vals = [v for v in vals if v.numel()]
        return float(torch.cat([v.flatten() for v in vals]).max()) if vals else math.nan

    @property
    def converged(self) -> bool:
        """``max_r_hat < 1.1`` (the conventional threshold)."""
        return bool(self.max_r_hat < 1.1)

    def __str__(self) -> str:
        lines = [f"{self.n_chains} chains × {self.n_steps} steps"]
        for name in self.ess:
            e, r = self.ess[name], self.r_hat[name]
            if e.numel() == 1:
                lines.append(f"  {name}: ESS {float(e):.1f}, R-hat {float(r):.3f}")
            else:
                lines.append(f"  {name}: ESS min {float(e.nan_to_num(math.inf).min()):.1f} "
                             f"/ median {float(e.nanmedian()):.1f}, "
                             f"R-hat max {float(r.nan_to_num(0, posinf=math.inf).max()):.3f}")
        lines.append(f"  converged (max R-hat < 1.1): {self.converged}")
        return "\n".join(lines)


def _stats_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from pyro.ops.stats import effective_sample_size, split_gelman_rubin

    x = x.double().cpu()
    shape = x.shape[2:]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    # a statistic constant within a chain has no ESS (0/0); pyro's batched ESS would turn
    # every column NaN, so such columns are left out and reported as NaN. R-hat is
    # infinite for columns constant within every chain but different between chains
    # (chains frozen in different modes), NaN for columns constant everywhere.
    var = flat.var(dim=1)
    ok_ess = (var > 0).all(0)
    ok_rhat = (var > 0).any(0)
    ess = torch.full((flat.shape[2],), math.nan, dtype=torch.float64)
    rhat = torch.full((flat.shape[2],), math.nan, dtype=torch.float64)
    if ok_ess.any():
        ess[ok_ess] = effective_sample_size(flat[:, :, ok_ess], chain_dim=0, sample_dim=1)
    if ok_rhat.any():
        rhat[ok_rhat] = split_gelman_rubin(flat[:, :, ok_rhat], chain_dim=0, sample_dim=1)
    frozen = ~ok_rhat & (flat.mean(1).var(0, correction=0) > 0)
    rhat[frozen] = math.inf
    return ess.reshape(shape), rhat.reshape(shape)


def diagnostics(samples_or_model: Any, *, n_chains: int = 8, steps: int = 1000,
                burn_in: int = 100, seed: int | None = None,
                progress: bool = False) -> Diagnostics:
    """ESS and split R-hat (``pyro.ops.stats``) of chain statistics, or of a model's chains.

    - Given a tensor/array of shape ``(n_chains, n_steps, ...)`` (one statistic recorded
      per chain and step): ESS and R-hat of each trailing element, under the name ``"x"``.
    - Given a dict of such tensors: the same, per name.
    - Given a :class:`~pgm_boltz.model.BoltzmannMachine`: runs ``n_chains`` block-Gibbs
      chains from uniform (over-dispersed) starts for ``burn_in + steps`` sweeps and records,
      after the burn-in, the joint energy ``E(x)`` (``"energy"``) and every visible unit's
      value (``"visible"``, shape (n_visible,)) at each sweep.

    ESS counts the draws worth of independent samples over all chains (≈ n_chains ×
    n_steps for independent draws); split R-hat ≈ 1 for mixed chains and > 1.1 when chains
    disagree, e.g. stuck in different modes.

    >>> import torch
    >>> d = diagnostics(torch.randn(4, 200, generator=torch.Generator().manual_seed(0)))
    >>> 600 < float(d.ess["x"]) < 1000, abs(float(d.r_hat["x"]) - 1) < 0.05
    (True, True)
    """
    from .model import BoltzmannMachine

    if isinstance(samples_or_model, BoltzmannMachine):
        return _model_diagnostics(samples_or_model, n_chains=n_chains, steps=steps,
                                  burn_in=burn_in, seed=seed, progress=progress)
    stats = samples_or_model if isinstance(samples_or_model, dict) else {
        "x": samples_or_model}
    tensors = {}
    for name, val in stats.items():
        try:
            t = torch.as_tensor(np.asarray(val.detach().cpu() if torch.is_tensor(val)
                                           else val, dtype=np.float64))
        except (TypeError, ValueError):
            raise DataError(f"statistic {name!r} is not a numeric array") from None
        if t.ndim < 2:
            raise DataError(f"statistic {name!r} must have shape (n_chains, n_steps, ...), "
                            f"got {tuple(t.shape)}")
        if t.shape[1] < 4:
            raise DataError(f"statistic {name!r} has {t.shape[1]} steps; split R-hat needs "
                            "at least 4")
        if not torch.isfinite(t).all():
            raise DataError(f"statistic {name!r} contains non-finite values")
        tensors[name] = t
    if not tensors:
        raise DataError("diagnostics needs at least one statistic")
    shapes = {tuple(t.shape[:2]) for t in tensors.values()}
    if len(shapes) != 1:
        raise DataError(f"statistics disagree on (n_chains, n_steps): {sorted(shapes)}")
    ess, rhat = {}, {}
    for name, t in tensors.items():
        ess[name], rhat[name] = _stats_of(t)
    nc, ns = shapes.pop()
    return Diagnostics(ess, rhat, nc, ns, tensors)


def _model_diagnostics(model, n_chains: int, steps: int, burn_in: int, seed: int | None,
                       progress: bool) -> Diagnostics:
    from .engines.gibbs import BlockSampler

    n_chains = _check_int("n_chains", n_chains, 1)
    steps = _check_int("steps", steps, 4)
    burn_in = _check_int("burn_in", burn_in, 0)
    seed = _check_seed(seed)
    gen = _generator(model.device, seed)
    sampler = BlockSampler(model)
    x = sampler.init_state(n_chains, gen)
    vi = torch.as_tensor(model.visible_index, device=model.device)
    energy = torch.empty(n_chains, steps, dtype=torch.float64)
    visible = torch.empty(n_chains, steps, model.n_visible, dtype=torch.float64)
    it = range(burn_in + steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="diagnostics", leave=False)
    with torch.no_grad():
        for t in it:
            sampler.sweep(x, gen)
            if t >= burn_in:
                energy[:, t - burn_in] = model.energy(x).double().cpu()
                visible[:, t - burn_in] = x[:, vi].double().cpu()
    stats = {"energy": energy, "visible": visible}
    ess, rhat = {}, {}
    for name, t in stats.items():
        ess[name], rhat[name] = _stats_of(t)
    return Diagnostics(ess, rhat, n_chains, steps, stats)
