"""log Z of large models by annealed importance sampling (AIS) and reverse AIS.

**AIS** (Neal 2001; Salakhutdinov & Murray 2008) walks from a base model ``p_0`` whose
``log Z_0`` is known in closed form to the target ``p_1`` through the models that scale
the energy,

    p_β(x) ∝ f_β(x) = exp(-(1-β) E_0(x) - β E(x)),     0 = β_0 < β_1 < ... < β_K = 1,

i.e. biases ``(1-β) b_0 + β b`` and couplings ``β W``. Quadratic self-terms
``q_i s_i^2 / 2`` (Gaussian units, multinary or finite units with a precision) belong to
``E_0`` too and are not annealed (every ``p_β`` keeps them at full strength, so Gaussian
units stay normalisable at β = 0; see :mod:`pgm_boltz.samplers.base`). The base ``p_0``
has independent units: visible biases ``b_0`` fitted to the data's means when data are
given, else the model's learned ``visible_init`` (set by ``fit``), else its own visible
biases; hidden base biases 0; ``log Z_0 = sum_i A_i(b0_i; q_i)``. Each chain starts
from an exact draw of ``p_0`` and, for k = 1..K, multiplies its weight by
``f_{β_k}(x) / f_{β_{k-1}}(x)`` and moves by one sweep of the model's sampler at
``β_k`` (the sampler seam, :mod:`pgm_boltz.samplers`, with the base biases). Then
``E[w] = Z / Z_0`` and

    log Z ≈ log Z_0 + log mean_c w_c,        stderr ≈ std(w) / (sqrt(C) mean(w)),

a stochastic *lower* bound (Jensen). On bipartite graphs one colour class is summed out
in closed form (``collapse``): the weights use free energies,
``log f_β(v) = (1-β) b0·v + β b·v - Q(v) + sum_j A_j((1-β) c0_j + β(c_j + (vW)_j); q_j)``
(``Q(v) = sum q v^2 / 2`` of the carried class, the same at every β), and each move
draws the summed class given the carried one, then the carried one. On CPU,
collapsed models with two-level units (binary or spin, no quadratic terms), one dense
coupling block and a small summed-out class run the whole walk in the fused numba kernel
(:mod:`pgm_boltz.inference.ais_kernels`, the same chain and weights without per-step
dispatch); everything else steps all chains at once with torch.

**Reverse AIS** runs the same walk from β = 1 down to 0, starting from states of the
target: the data, moved by a few Gibbs sweeps at β = 1 (or exact draws when exact work
is feasible, ``start="exact"``). Its weights estimate ``Z_0 / Z``, so
``log Z ≈ log Z_0 - log mean w`` is biased the other way: an upper bound in expectation.
Together they bracket log Z (:func:`log_partition_bracket`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import pgm_boltz.inference.ais_kernels as ais_kernels

from .._numba import notice_first_compile
from .._validation import (
    check_bool,
    check_choice,
    check_int,
    check_seed,
    make_generator,
    progress_bar,
)
from ..engines.threads import run_split
from ..errors import ArgumentError, DataError
from ..results import Bracket, LogPartition
from ..samplers import BlockGibbs, make_sampler

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = [
    "BACKENDS",
    "DEFAULT_INIT_STEPS",
    "DEFAULT_N_BETAS",
    "DEFAULT_N_CHAINS",
    "base_bias",
    "log_partition",
    "log_partition_bracket",
    "schedule",
]

#: Default number of inverse temperatures (points of the schedule, both ends included).
DEFAULT_N_BETAS = 14500
#: Default number of AIS chains.
DEFAULT_N_CHAINS = 100
#: Default Gibbs sweeps at β = 1 from the data before reverse AIS anneals.
DEFAULT_INIT_STEPS = 10

METHODS = ("ais", "reverse-ais")
#: "numba" runs the whole walk of a collapsed two-level bipartite model in one compiled
#: kernel on CPU; "torch" steps all chains with tensor operations (any plan, CPU or CUDA)
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
    n_betas = check_int("n_betas", n_betas, 2)
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
        raise ArgumentError(f"betas must be a 1-D sequence of numbers, got {betas!r}") from None
    if b.ndim != 1 or b.numel() < 2:
        raise ArgumentError(f"betas must be 1-D with at least 2 values, got shape "
                            f"{tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise ArgumentError("betas must be finite")
    if float(b[0]) != 0.0 or float(b[-1]) != 1.0:
        raise ArgumentError(f"betas must start at 0 and end at 1, got {float(b[0])} .. "
                            f"{float(b[-1])}")
    if (b.diff() < 0).any():
        raise ArgumentError("betas must be non-decreasing")
    return b.tolist()


# ---------------------------------------------------------------------------------------
# the annealing walk
# ---------------------------------------------------------------------------------------


class _Annealer:
    """The intermediate models ``p_β`` of one model and its base.

    The chains' state is a full joint tensor ``x`` (C, n). With ``collapse`` (bipartite
    plans) the class ``sum_block`` is summed out in the weights, and the carried class
    ``keep_block`` (the one holding more visible units) is what the weights depend on.
    """

    def __init__(self, model: EnergyModel, b0: torch.Tensor, collapse: bool,
                 backend: str) -> None:
        self.model = model
        dev, dt = model.device, model.dtype
        self.b0 = b0.detach().to(dev, dt)
        self.sampler = BlockGibbs(model, base_bias=self.b0)
        blocks = model.plan.block_index
        self.collapse = bool(collapse) and len(blocks) == 2
        if self.collapse:
            counts = [int(np.isin(ix, model.visible_index).sum()) for ix in blocks]
            self.keep_block = 0 if counts[0] >= counts[1] else 1
            self.sum_block = 1 - self.keep_block
        self.kernel = self._kernel_problem(backend)

    def _kernel_problem(self, backend: str):
        """The fused kernel's arrays when ``backend`` selects it (None: torch steps)."""
        if backend == "torch":
            return None
        m = self.model
        pairs = m._block_pairs
        ok = (self.collapse and len(pairs) == 1 and pairs[0]["complete"]
              and m.plan.storage == "dense" and m.device.type == "cpu"
              and m.log_precision is None
              and all(b.domains.all_arith() and b.domains.max_levels == 2
                      for b in self.sampler.blocks))
        if backend == "numba" and not ok:
            raise ArgumentError(
                "backend='numba' anneals collapsed bipartite models with two-level units "
                "(binary or spin, no precisions) and one dense coupling block on CPU; this "
                "model "
                f"(plan {m.plan.engine}, storage {m.plan.storage}, device {m.device}, "
                f"collapse={self.collapse}) needs backend='torch' (or 'auto')")
        if not ok or (backend == "auto"
                      and len(blocks_of(m)[self.sum_block]) > _KERNEL_MAX_SUMMED):
            return None
        a, s = self.keep_block, self.sum_block
        (p, q, W), = m.block_weights()
        W_as = W if p == a else W.t()
        ia, is_ = (torch.as_tensor(ix) for ix in (blocks_of(m)[a], blocks_of(m)[s]))
        lo_a, step_a, _ = self.sampler.blocks[a].domains.kinds_array()
        lo_s, step_s, _ = self.sampler.blocks[s].domains.kinds_array()
        np64 = lambda v: v.detach().to("cpu", torch.float64).numpy()
        b, b0 = m.bias.detach(), self.b0
        return ais_kernels.TwoLevelProblem(np64(W_as), np64(b[ia]), np64(b0[ia]),
                                           np64(b[is_]), np64(b0[is_]), lo_a, step_a, lo_s,
                                           step_s)

    def log_z0(self) -> float:
        """``log Z_0 = sum_i A_i(b0_i; q_i)`` of the independent base model (float64)."""
        q = self.sampler._q_all
        return float(self.model.domains.log_normalizer(
            self.b0.double(), None if q is None else q.double()).sum())

    def base_sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` exact draws of the base model (joint states)."""
        return self.model.domains.sample(self.b0.expand(n, -1).contiguous(), gen,
                                         self.sampler._q_all)

    def _log_f_increment(self, x: torch.Tensor, beta_old: float, beta_new: float,
                         field_s: torch.Tensor | None) -> torch.Tensor:
        """``log f_{β_new}(x) - log f_{β_old}(x)`` per chain (float64)."""
        dbeta = beta_new - beta_old
        m = self.model
        if not self.collapse:  # the quadratic terms are not annealed: leave them out
            e_lin = m.energy(x)
            if m.log_precision is not None:
                e_lin = e_lin - m.quadratic_energy(x, self.sampler._q_all)
            g = -e_lin.double() - (x * self.b0).sum(-1, dtype=torch.float64)
            return dbeta * g
        a, s = self.sampler.blocks[self.keep_block], self.sampler.blocks[self.sum_block]
        b0_s = self.b0[s.index]
        f_new = b0_s + beta_new * (field_s - b0_s)
        f_old = b0_s + beta_old * (field_s - b0_s)
        q_s = self.sampler.block_quad(self.sum_block)
        dA = s.domains.log_normalizer(f_new, q_s) - s.domains.log_normalizer(f_old, q_s)
        xa = x[:, a.index]
        db_a = m.bias.detach()[a.index] - self.b0[a.index]
        return dA.sum(-1, dtype=torch.float64) + dbeta * (xa @ db_a).double()

    def step(self, x: torch.Tensor, beta_old: float, beta_new: float,
             gen: torch.Generator, move: bool) -> torch.Tensor:
        """The weight increment, then (if ``move``) one sweep at ``β_new`` in place."""
        sp = self.sampler
        field_s = sp.block_field(x, self.sum_block) if self.collapse else None
        inc = self._log_f_increment(x, beta_old, beta_new, field_s)
        if move:
            if self.collapse:  # p_β(carried) invariant: summed class first, then carried
                sp.update_block(x, self.sum_block, beta_new, gen, field=field_s)
                sp.update_block(x, self.keep_block, beta_new, gen)
            else:
                sp.sweep(x, 1, beta_new, gen)
        return inc

    def anneal(self, x: torch.Tensor, betas: list[float], gen: torch.Generator,
               progress: bool, desc: str) -> torch.Tensor:
        """Accumulate the log importance weights (float64) along ``betas``."""
        if self.kernel is not None:
            return self._anneal_kernel(x, betas, gen, progress, desc)
        lw = torch.zeros(x.shape[0], dtype=torch.float64, device=self.model.device)
        K = len(betas)
        bar = progress_bar(K - 1, desc, progress)
        try:
            with torch.no_grad():
                for k in range(1, K):
                    lw += self.step(x, betas[k - 1], betas[k], gen, move=k < K - 1)
                    if k % 100 == 0 or k == K - 1:
                        bar.update(k - bar.n)
        finally:
            bar.close()
        return lw

    def _anneal_kernel(self, x: torch.Tensor, betas: list[float], gen: torch.Generator,
                       progress: bool, desc: str) -> torch.Tensor:
        """:meth:`anneal` by :func:`ais_kernels.anneal_two_level`: the carried class as
        levels (uint8), one random stream per chain seeded from ``gen``."""
        a = self.sampler.blocks[self.keep_block]
        prob = self.kernel
        C = x.shape[0]
        if not prob.finite:  # as the torch steps would: non-finite weights, then an error
            return torch.full((C,), math.nan, dtype=torch.float64)
        lo, step, _ = a.domains.kinds_array()
        xa = x[:, a.index].detach().to("cpu", torch.float64).numpy()
        t = np.ascontiguousarray(np.rint((xa - lo) / step), dtype=np.uint8)
        seeds = torch.randint(0, 2**62, (C, 2), generator=gen, device=gen.device)
        rng = ais_kernels.seed_streams(seeds.cpu().numpy())
        lw = np.zeros(C, dtype=np.float64)
        beta_arr = np.ascontiguousarray(betas, dtype=np.float64)
        K = len(beta_arr)
        per_step = C * prob.n_a * (prob.n_s + 4)  # ~ unit updates per step, all chains
        # threads (torch's count) over disjoint ranges of chains, when each thread's
        # share is well above the cost of starting it
        n_thr = max(1, min(torch.get_num_threads(), C, (per_step * (K - 1)) >> 22))
        chunk = max(1, _KERNEL_CHUNK // per_step) if progress else K
        notice_first_compile(ais_kernels._serial)
        bar = progress_bar(K - 1, desc, progress)
        try:
            for k0 in range(1, K, chunk):
                k1 = min(K, k0 + chunk)
                run_split(lambda c0, c1, k0=k0, k1=k1: ais_kernels.anneal_two_level(
                    prob, t[c0:c1], lw[c0:c1], rng[c0:c1], beta_arr, k0, k1), C, n_thr)
                bar.update(k1 - k0)
        finally:
            bar.close()
        return torch.from_numpy(lw).to(self.model.device)


def blocks_of(model: EnergyModel) -> list[np.ndarray]:
    """The plan's colour classes (node indices)."""
    return model.plan.block_index


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


def base_bias(model: EnergyModel, data_values: torch.Tensor | None) -> torch.Tensor:
    """The base model's biases: data-fitted visible biases (else the model's learned
    ``visible_init``, else its own visible biases), hidden 0.

    Data-fitted: the independent model with the data's means, ``E[s_i | b0_i, q_i] = m_i``
    (``q_i`` the unit's precision, kept by the base model).

    >>> import pgm_boltz as pb, torch
    >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
    >>> base_bias(m, torch.tensor([[1.0, 0.0], [1.0, 1.0]])).shape
    torch.Size([3])
    """
    b0 = torch.zeros(model.n_nodes, dtype=model.dtype, device=model.device)
    vi = model.index("visible")
    if data_values is not None:
        q_v = model.precisions_at("visible")
        vb = model.visible_domains.bias_for_mean(
            data_values.mean(0).double().cpu(),
            q=None if q_v is None else q_v.detach().double().cpu())
        b0[vi] = vb.to(model.device, model.dtype)
    elif model.visible_init is not None:
        b0[vi] = model.visible_init.detach().to(model.device, model.dtype)
    else:
        b0[vi] = model.bias.detach()[vi]
    return b0


def _target_states(model: EnergyModel, n: int, data_values: torch.Tensor | None,
                   start: str, init_steps: int, gen: torch.Generator) -> torch.Tensor:
    """Joint states (n, n_nodes) to start reverse AIS from: exact draws, or the data with
    hidden units drawn given them, then ``init_steps`` Gibbs sweeps at β = 1."""
    if start == "exact":
        model.plan.require_exact("reverse AIS with start='exact'")
        cpu_gen = make_generator(
            int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item()))
        return model.exact_sample_values(n, cpu_gen)
    assert data_values is not None
    N = data_values.shape[0]
    if n <= N:
        rows = torch.randperm(N, generator=gen, device=gen.device)[:n]
    else:
        rows = torch.randint(0, N, (n,), generator=gen, device=gen.device)
    rows = rows.to(data_values.device)
    sampler = make_sampler(model, "gibbs")
    x = sampler.init(n, gen, visible_values=data_values[rows].to(model.device, model.dtype))
    if model.n_hidden:
        clamped = make_sampler(model, "gibbs", clamped=model.visible_index)
        hidden_blocks = sum(1 for ix in model.plan.block_index
                            if np.isin(ix, model.hidden_index).any())
        clamped.sweep(x, 1 if hidden_blocks == 1 else 20, generator=gen)
    if init_steps:
        sampler.sweep(x, init_steps, generator=gen)
    return x


def log_partition(model: EnergyModel, method: str = "ais", *, n_chains: int | None = None,
                  n_betas: int | None = None, betas: Any = None, data: Any = None,
                  seed: int | None = None, progress: bool = True, start: str = "data",
                  init_steps: int = DEFAULT_INIT_STEPS, collapse: bool = True,
                  backend: str = "auto") -> LogPartition:
    """Estimate ``log Z`` by annealed importance sampling (``"ais"``) or reverse AIS.

    Usually called as ``model.log_partition(method="ais", ...)``. The intermediate
    models ``p_β ∝ exp(-(1-β) E_0 - β E)`` anneal from an independent base model ``E_0``
    (visible biases fitted to ``data`` if given, else the model's ``visible_init``, else
    its own visible biases; hidden biases 0) to the model, by Gibbs sweeps over the
    plan's colour classes; on bipartite plans one class is summed out analytically
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
    progress: show a progress bar.
    backend: ``"auto"`` (default), ``"numba"`` or ``"torch"``. The numba kernel
        (:mod:`pgm_boltz.inference.ais_kernels`) runs the whole walk of a collapsed
        bipartite model with two-level units (binary or spin) and one dense coupling block
        on CPU, chain by chain in compiled code (threads over chains, float64);
        ``"auto"`` takes it when at most 32 units are summed out (an RBM's hidden layer),
        where it beats stepping tensors, and torch otherwise (larger hidden layers, CUDA,
        other graphs and domains). Both are exact AIS; seeded runs reproduce on CPU, each
        backend its own numbers.

    Returns
    -------
    :class:`~pgm_boltz.LogPartition` ``(value, stderr)``, ``stderr`` the delta-method
    standard error ``std(w) / (sqrt(n_chains) mean(w))`` of ``log mean w``.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(6, 3), seed=0)
    >>> est = log_partition(m, n_chains=50, n_betas=200, seed=0, progress=False)
    >>> abs(est.value - m.log_partition().item()) < 0.05
    True
    """
    check_choice("log-partition method", method, ("exact", *METHODS))
    if method == "exact":
        raise ArgumentError("inference.ais.log_partition estimates; use "
                            "model.log_partition() for the exact value")
    n_chains = check_int("n_chains", DEFAULT_N_CHAINS if n_chains is None else n_chains, 2)
    if betas is not None:
        if n_betas is not None:
            raise ArgumentError("give n_betas or betas, not both")
        beta_list = _check_betas(betas)
    else:
        beta_list = schedule(DEFAULT_N_BETAS if n_betas is None else n_betas).tolist()
    seed = check_seed(seed)
    init_steps = check_int("init_steps", init_steps, 0)
    check_choice("start", start, ("data", "exact"))
    check_choice("backend", backend, BACKENDS)
    check_bool("progress", progress)
    check_bool("collapse", collapse)
    data_values = None if data is None else model.encode_data(data, "data")
    if method == "reverse-ais" and start == "data" and data_values is None:
        raise ArgumentError("reverse AIS starts from the data: pass data=..., or "
                            "start='exact' on an exact-feasible model")
    gen = make_generator(seed, model.device)
    ann = _Annealer(model, base_bias(model, data_values), collapse, backend)
    log_z0 = ann.log_z0()
    if method == "ais":
        x = ann.base_sample(n_chains, gen)
        lw = ann.anneal(x, beta_list, gen, progress, "ais")
        value, stderr = _log_mean_exp(lw)
        return LogPartition(log_z0 + value, stderr)
    x = _target_states(model, n_chains, data_values, start, init_steps, gen)
    lw = ann.anneal(x, beta_list[::-1], gen, progress, "reverse-ais")
    value, stderr = _log_mean_exp(lw)
    return LogPartition(log_z0 - value, stderr)


def log_partition_bracket(model: EnergyModel, data: Any, *, n_chains: int | None = None,
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
    seed = check_seed(seed)
    kw = dict(n_chains=n_chains, n_betas=n_betas, betas=betas, data=data,
              progress=progress, collapse=collapse, backend=backend)
    lower = log_partition(model, "ais", seed=seed, **kw)
    upper = log_partition(model, "reverse-ais", seed=None if seed is None else seed + 1,
                          init_steps=init_steps, **kw)
    return Bracket(lower, upper)
