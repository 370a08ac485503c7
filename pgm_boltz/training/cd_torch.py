"""Closed-form CD-k / PCD-k with SGD for an RBM in torch: no autograd, no optimiser object.

The maths is :mod:`pgm_boltz.training.cd_kernels`' (the same estimate, the same update as
``torch.optim.SGD(lr, momentum, weight_decay)``, the same batches); this path does it in
a few large matmuls for models where BLAS speed matters (784 x 500 and up).

The parameters live in one augmented matrix ``Wa`` (n_v + 1, n_h + 1; stored with zero
padding to multiples of 16 columns and rows)

    Wa = [[W,   b_v],
          [b_h^T, 0]],

and every state row carries a trailing 1, so one matmul gives fields with their biases
(``[v, 1] Wa[:, :n_h] = v W + b_h``, ``[h, 1] Wa[:n_v, :]^T = W h + b_v``) and one
``addmm_`` does the whole update: with the C negative rows stacked above the B positive
ones, ``Vs = [v-; v+]`` (with their 1s) and ``Hs = [-H-/C, w; H+/B, w]`` (the means
scaled by the row weights ``w = -1/C`` or ``1/B``, and ``w`` itself as the last column),

    Vs^T Hs = [[S_W, S_bv], [S_bh^T, 0]],

the statistics of every parameter at once. Without momentum the SGD step is
``Wa.addmm_(Vs^T, Hs, beta=1 - lr wd, alpha=lr)``; with it ``M = momentum M - Vs^T Hs
+ wd Wa``, ``Wa -= lr M``. One CD-1 update of a binary RBM is three matmuls of the
fields, one of the statistics (the two outer products fused) and the update, all into
preallocated buffers, float throughout in the parameters' dtype.

Between the matmuls, on CPU with two-level units, each layer is one numba pass
(:func:`~pgm_boltz.training.cd_kernels._mean_draw_rows`: exponentials, draws, means
times the row weights, rows split over torch's threads when large) instead of a
sigmoid, a uniform fill, a comparison and a scaling in torch: four passes over the
layer and four OpenMP regions fewer, which matters most on a busy machine, where every
region waits for its slowest thread. Other devices and K-level units take torch calls.

Randomness: on CPU, per-row xoroshiro128+ streams (slot ``r`` for row ``r`` of every
layer, eight interleaved states a slot, :func:`~pgm_boltz.training.cd_kernels.
streams_from_generator`) seeded from the caller's ``torch.Generator``, so the split over
threads changes no result; on other devices ``uniform_`` with the generator. Non-finite
parameters are checked once per epoch (``aminmax`` of ``Wa``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engines.threads import run_split
from ..errors import DataError
from .cd_kernels import (
    UnitArrays,
    _mean_draw_rows,
    streams_from_generator,
    uniform_rows,
    unit_arrays,
)

#: elements of a layer from which its fused pass is split over torch's threads
SPLIT_ELEMENTS = 1 << 15

__all__ = ["TorchCD", "choose_cd_backend", "init_pcd_chains"]

#: measured crossover (``python benchmarks/cd.py --threads 1 --crossover``, 2-core AMD
#: EPYC, float32, 20-50% dense binary rows, one thread each): the chain-major numba kernel
#: wins while ``(batch + chains) * n_v * n_h * threads`` stays below this (64x64 at batch
#: 100: numba 1.4-2.9x faster; 196x100 at batch 10: 0.9-1.8x; 400x200 at batch 10, 2-4x
#: slower); torch's matmuls scale with threads, the kernel runs on one
NUMBA_MAX_WORK = 1.0e6


def choose_cd_backend(n_v: int, n_h: int, batch: int, device: str | torch.device = "cpu",
                      n_chains: int | None = None, threads: int | None = None) -> str:
    """``"numba"`` (:func:`~pgm_boltz.training.cd_kernels.cd_epochs`) or ``"torch"``
    (:class:`TorchCD`) for CD/PCD on an ``n_v x n_h`` RBM at this batch size.

    The rule: a non-CPU device takes torch; on CPU the numba kernel while
    ``(batch + C) n_v n_h threads < NUMBA_MAX_WORK`` — ``(batch + C) n_v n_h`` is one
    update's multiply-adds of the statistics (C = ``n_chains`` for PCD, else ``batch``),
    ``threads`` torch's intra-op threads (default ``torch.get_num_threads()``). Below it
    torch's per-call overhead (about 5 µs a call, 13+ calls an update) outweighs its
    faster matmuls; the numba kernel runs on one thread.

    >>> choose_cd_backend(64, 16, 10, threads=2), choose_cd_backend(784, 500, 100, threads=1)
    ('numba', 'torch')
    >>> choose_cd_backend(64, 16, 10, device="cuda")
    'torch'
    """
    if torch.device(device).type != "cpu":
        return "torch"
    C = batch if n_chains is None else n_chains
    T = torch.get_num_threads() if threads is None else max(1, int(threads))
    return "numba" if (batch + C) * n_v * n_h * T < NUMBA_MAX_WORK else "torch"


def _units(u: UnitArrays | None, n: int, like: torch.Tensor) -> tuple:
    u = u or unit_arrays(0.0, [1.0] * n, 2)
    if u.lo.shape != (n,):
        raise DataError(f"unit arrays of length {u.lo.shape} for a layer of {n} units")
    lo = torch.as_tensor(u.lo, dtype=like.dtype, device=like.device)
    step = torch.as_tensor(u.step, dtype=like.dtype, device=like.device)
    K = torch.as_tensor(u.levels, dtype=like.dtype, device=like.device)
    return u.kind, lo, step, K


def _mean_(f: torch.Tensor, units: tuple) -> torch.Tensor:
    """In place: fields ``f`` -> conditional means (two-level: ``lo + step sigmoid(f
    step)``)."""
    kind, lo, step, K = units
    if kind == 0:
        return f.sigmoid_()
    if kind == 1:
        return f.mul_(step).sigmoid_().mul_(step).add_(lo)
    from ..domains import geometric_mean

    f.copy_(lo + step * geometric_mean(f * step, K))
    return f


def _draw_(out: torch.Tensor, f: torch.Tensor, units: tuple,
           fill: Callable[[torch.Tensor], object], is_prob: bool = False) -> torch.Tensor:
    """In place into ``out``: a draw given fields ``f`` (or, for two-level units when
    ``is_prob``, given ``P(k = 1)`` already in ``f``); ``f`` may be overwritten.
    ``fill(t)`` fills ``t`` with uniforms in [0, 1)."""
    kind, lo, step, K = units
    if kind == 2:
        from ..domains import geometric_sample

        u = torch.empty_like(f)
        fill(u)
        out.copy_(lo + step * geometric_sample(f * step, K, u))
        return out
    if not is_prob:
        f = f.sigmoid_() if kind == 0 else f.mul_(step).sigmoid_()
    fill(out)
    out.lt_(f)
    if kind == 1:
        out.mul_(step).add_(lo)
    return out


def _torch_fill(gen: torch.Generator | None) -> Callable[[torch.Tensor], object]:
    return lambda t: t.uniform_(generator=gen)


def init_pcd_chains(W: torch.Tensor, bh: torch.Tensor, visible_bias: torch.Tensor,
                    n_chains: int, visible: UnitArrays | None = None,
                    hidden: UnitArrays | None = None,
                    generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """PCD chains ``(v, h)`` as :mod:`pgm_boltz.training.contrastive` starts them: ``v``
    drawn from the independent units with fields ``visible_bias`` (the data's log-odds), ``h`` from
    ``P(h | v)``. Values, in ``W``'s dtype and device.

    >>> import torch
    >>> v, h = init_pcd_chains(torch.zeros(3, 2), torch.zeros(2), torch.full((3,), -50.0),
    ...                        4, generator=torch.Generator().manual_seed(0))
    >>> v.sum().item(), tuple(h.shape)
    (0.0, (4, 2))
    """
    n_v, n_h = W.shape
    vu, hu = _units(visible, n_v, W), _units(hidden, n_h, W)
    f = visible_bias.to(W).expand(n_chains, n_v).clone()
    fill = _torch_fill(generator)
    v = _draw_(torch.empty_like(f), f, vu, fill)
    h = torch.empty(n_chains, n_h, dtype=W.dtype, device=W.device)
    _draw_(h, torch.addmm(bh, v, W), hu, fill)
    return v, h


class TorchCD:
    """CD-k (``n_chains=None``) or PCD-k (``chains=(v, h)``, C rows) with SGD, in place
    on ``W`` (n_v, n_h), ``bv``, ``bh`` (written back at the end of every :meth:`run`).

    Call :meth:`run` with the data (N, n_v values) and the epochs' row orders ``perm``
    (E, N); ``momentum_buffers`` (the shapes of W, bv, bh) continue a previous SGD run's
    momentum (zeros start like a fresh ``torch.optim.SGD``; they are written back too).

    Data-parallel (:meth:`run_steps`): ``reduce(S)`` sums the statistics ``S`` (the
    augmented matrix above) over ranks in place before each update; the positive rows
    are weighted by one over the step's rows on all ranks and the chains by one over
    ``neg_total``, the chains on all ranks (PCD), so the sum is the global estimate.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> data = (torch.rand(20, 6, generator=g) < 0.3).float()
    >>> W, bv, bh = torch.zeros(6, 3), torch.zeros(6), torch.zeros(3)
    >>> cd = TorchCD(W, bv, bh, batch_size=10, lr=0.1, generator=g)
    >>> cd.run(data, torch.stack([torch.randperm(20, generator=g) for _ in range(5)]))
    10
    >>> bool((torch.sign(bv) == torch.sign(data.mean(0) - 0.5)).all())
    True
    """

    def __init__(self, W: torch.Tensor, bv: torch.Tensor, bh: torch.Tensor, *,
                 batch_size: int, lr: float, k: int = 1, momentum: float = 0.0,
                 weight_decay: float = 0.0,
                 chains: tuple[torch.Tensor, torch.Tensor] | None = None,
                 momentum_buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
                 = None, visible: UnitArrays | None = None, hidden: UnitArrays | None = None,
                 generator: torch.Generator | None = None,
                 reduce: Callable[[torch.Tensor], object] | None = None,
                 neg_total: int | None = None) -> None:
        n_v, n_h = W.shape
        if int(batch_size) < 1 or int(k) < 1:
            raise DataError("TorchCD: batch_size and k must be positive")
        self.W, self.bv, self.bh = W, bv, bh
        self.n_v, self.n_h = n_v, n_h
        self.bs, self.k = int(batch_size), int(k)
        self.lr, self.mom, self.wd = float(lr), float(momentum), float(weight_decay)
        self.gen = generator
        self.reduce = reduce
        self.neg_total = neg_total
        self.vu, self.hu = _units(visible, n_v, W), _units(hidden, n_h, W)
        dt, dev = W.dtype, W.device
        self.persistent = chains is not None
        self.chains = chains
        C = chains[0].shape[0] if self.persistent else self.bs
        self.C = C
        R = C + self.bs  # stacked rows: C negative, then up to bs positive
        # rows padded with zeros to multiples of 16 entries (64 bytes): aligned leading
        # dimensions make the statistics' addmm_ 7-25% faster; the padding stays zero
        pv, ph = -(-(n_v + 1) // 16) * 16, -(-(n_h + 1) // 16) * 16
        self.Wa = torch.zeros(pv, ph, dtype=dt, device=dev)
        self.Vs = torch.zeros(R, pv, dtype=dt, device=dev)
        self.Vs[:, n_v] = 1
        self.Hs = torch.zeros(R, ph, dtype=dt, device=dev)
        self.Hd = torch.zeros(C, ph, dtype=dt, device=dev)  # drawn h, with 1s
        self.Hd[:, n_h] = 1
        self.Fv = torch.empty(C, n_v, dtype=dt, device=dev)
        self.wcol = torch.empty(R, 1, dtype=dt, device=dev)
        self._wkey: tuple | None = None
        self.S = torch.empty(pv, ph, dtype=dt, device=dev) if reduce is not None else None
        self.Ma = None
        if self.mom != 0:
            self.Ma = torch.zeros_like(self.Wa)
        self.mbufs = momentum_buffers
        #: CPU, two-level units: each layer's means, draws and row weights in one numba
        #: pass (no torch elementwise calls, so no thread hand-offs between them). Off by
        #: default: re-measured on the quiet 2-core machine it was not faster than the
        #: torch calls (784x500 batch 100: 23.5-27.3k against 27.1-28.3k samples/s;
        #: 3072x1000: 3.4-4.1k against 4.3k); set True to use it.
        self.cpu_fused = False
        if dev.type == "cpu":  # uniforms from per-row xoroshiro streams (numba, ~3x faster)
            self.rng = streams_from_generator(max(C, self.bs), generator)
            self.fill = lambda t: uniform_rows(self.rng, t.numpy())
            self._flat = {"Vs": self.Vs.view(-1).numpy(), "Hs": self.Hs.view(-1).numpy(),
                          "Hd": self.Hd.view(-1).numpy(), "Fv": self.Fv.view(-1).numpy(),
                          "w": self.wcol.view(-1).numpy()}
            self._units_np = {"v": (visible or unit_arrays(0.0, [1.0] * n_v, 2)),
                              "h": (hidden or unit_arrays(0.0, [1.0] * n_h, 2))}
        else:
            self.fill = _torch_fill(generator)
        self._load()

    # ------------------------------------------------------------------ state I/O
    def _load(self) -> None:
        n_v, n_h = self.n_v, self.n_h
        with torch.no_grad():
            self.Wa[:n_v, :n_h] = self.W
            self.Wa[:n_v, n_h] = self.bv
            self.Wa[n_v, :n_h] = self.bh
            if self.Ma is not None and self.mbufs is not None:
                mW, mbv, mbh = self.mbufs
                self.Ma[:n_v, :n_h] = mW
                self.Ma[:n_v, n_h] = mbv
                self.Ma[n_v, :n_h] = mbh
            if self.persistent:
                self.Vs[:self.C, :n_v] = self.chains[0]
                self.Hd[:, :n_h] = self.chains[1]

    def _store(self) -> None:
        n_v, n_h = self.n_v, self.n_h
        with torch.no_grad():
            self.W.copy_(self.Wa[:n_v, :n_h])
            self.bv.copy_(self.Wa[:n_v, n_h])
            self.bh.copy_(self.Wa[n_v, :n_h])
            if self.Ma is not None and self.mbufs is not None:
                mW, mbv, mbh = self.mbufs
                mW.copy_(self.Ma[:n_v, :n_h])
                mbv.copy_(self.Ma[:n_v, n_h])
                mbh.copy_(self.Ma[n_v, :n_h])
            if self.persistent:
                self.chains[0].copy_(self.Vs[:self.C, :n_v])
                self.chains[1].copy_(self.Hd[:, :n_h])

    # ------------------------------------------------------------------ one update
    def _weights(self, B: int, C: int, pos_total: int, neg_total: int) -> None:
        key = (B, C, pos_total, neg_total)
        if self._wkey != key:
            self.wcol[:C] = -1.0 / neg_total
            self.wcol[C:C + B] = 1.0 / pos_total
            self.Hs[:C + B, self.n_h] = self.wcol[:C + B, 0]
            self._wkey = key

    def _layer(self, F: str, fld: int, foff: int, D: str, dld: int, doff: int, rows: int,
               layer: str, draw: bool, mean: bool) -> None:
        """The fused CPU pass of one layer (:func:`cd_kernels._mean_draw_rows`) over
        ``rows`` rows, split over torch's threads when large (rows are independent and
        each draws from its own stream, so the split changes no result)."""
        u = self._units_np[layer]
        n = self.n_v if layer == "v" else self.n_h
        f = self._flat

        def run(k0: int, k1: int) -> None:
            _mean_draw_rows(f[F], fld, foff, f[D], dld, doff, self.rng, k0, k1, n, u.lo,
                            u.step, u.kind, f["w"], draw, mean)

        threads = torch.get_num_threads() if rows * n >= SPLIT_ELEMENTS else 1
        run_split(run, rows, threads)

    def _step_cpu(self, rows: torch.Tensor, data: torch.Tensor, B: int, C: int) -> None:
        """The fields of :meth:`step` by matmuls, each layer's means (times the row
        weights), draws and uniforms in one fused pass."""
        n_v, n_h, Wa, R = self.n_v, self.n_h, self.Wa, C + B
        Vs, Hs, Hd = self.Vs, self.Hs, self.Hd
        pv, ph = Vs.shape[1], Hs.shape[1]
        vpos = Vs[C:R]
        torch.index_select(data, 0, rows, out=vpos[:, :n_v])
        torch.mm(vpos, Wa[:, :n_h], out=Hs[C:R, :n_h])
        # positive rows: means (weighted) and, for CD, the chains' h drawn (slots 0..B-1)
        self._layer("Hs", ph, C, "Hd", ph, 0, B, "h", not self.persistent, True)
        for s in range(self.k):
            last = s == self.k - 1
            torch.mm(Hd[:C], Wa[:n_v].t(), out=self.Fv[:C])
            self._layer("Fv", n_v, 0, "Vs", pv, 0, C, "v", True, False)
            torch.mm(Vs[:C], Wa[:, :n_h], out=Hs[:C, :n_h])
            self._layer("Hs", ph, 0, "Hd", ph, 0, C, "h", not last or self.persistent, last)

    def step(self, rows: torch.Tensor, data: torch.Tensor, pos_total: int | None = None
             ) -> None:
        """One update on the batch ``data[rows]`` (``pos_total``: the step's rows on all
        ranks, when data-parallel)."""
        B = rows.shape[0]
        C = self.C if self.persistent else B
        R = C + B
        pt = B if pos_total is None else pos_total
        nt = (self.neg_total or C) if self.persistent else pt
        self._weights(B, C, pt, nt)
        if self.cpu_fused:
            self._step_cpu(rows, data, B, C)
        else:
            self._step_torch(rows, data, B, C)
            self.Hs[:R, :self.n_h].mul_(self.wcol[:R])
        self._update(R)

    def _step_torch(self, rows: torch.Tensor, data: torch.Tensor, B: int, C: int) -> None:
        """The fields, means and draws of :meth:`step` in torch calls (any device, any
        units); the means are left unweighted."""
        n_v, n_h, Wa, R = self.n_v, self.n_h, self.Wa, C + B
        Vs, Hs, Hd = self.Vs, self.Hs, self.Hd
        vpos = Vs[C:R]
        torch.index_select(data, 0, rows, out=vpos[:, :n_v])
        hpos = Hs[C:R, :n_h]
        torch.mm(vpos, Wa[:, :n_h], out=hpos)
        Wv = Wa[:n_v]  # [W | b_v]
        if not self.persistent:  # h drawn from the data's conditional
            if self.hu[0] == 2:
                _draw_(Hd[:B, :n_h], hpos.clone(), self.hu, self.fill)
            else:
                f = hpos.sigmoid_() if self.hu[0] == 0 else hpos.mul_(self.hu[2]).sigmoid_()
                _draw_(Hd[:B, :n_h], f, self.hu, self.fill, is_prob=True)
                if self.hu[0] == 1:
                    hpos.mul_(self.hu[2]).add_(self.hu[1])
            if self.hu[0] == 2:
                _mean_(hpos, self.hu)
        else:
            _mean_(hpos, self.hu)
        hneg = Hs[:C, :n_h]
        for s in range(self.k):
            fv = self.Fv[:C]
            torch.mm(Hd[:C], Wv.t(), out=fv)
            _draw_(Vs[:C, :n_v], fv, self.vu, self.fill)
            torch.mm(Vs[:C], Wa[:, :n_h], out=hneg)
            if s < self.k - 1 or self.persistent:
                if self.hu[0] == 2:
                    _draw_(Hd[:C, :n_h], hneg.clone(), self.hu, self.fill)
                    _mean_(hneg, self.hu)
                else:
                    f = hneg.sigmoid_() if self.hu[0] == 0 else hneg.mul_(self.hu[2]).sigmoid_()
                    _draw_(Hd[:C, :n_h], f, self.hu, self.fill, is_prob=True)
                    if self.hu[0] == 1:
                        hneg.mul_(self.hu[2]).add_(self.hu[1])
            else:
                _mean_(hneg, self.hu)

    def _update(self, R: int) -> None:
        """The statistics ``Vs^T Hs`` of the ``R`` stacked rows (means already weighted)
        and the SGD step (summed over ranks first when data-parallel)."""
        Wa, Vs, Hs = self.Wa, self.Vs, self.Hs
        if self.reduce is not None:  # the statistics summed over ranks, then the step
            S = self.S
            torch.mm(Vs[:R].t(), Hs[:R], out=S)
            self.reduce(S)
            if self.Ma is None:
                if self.wd:
                    Wa.mul_(1.0 - self.lr * self.wd)
                Wa.add_(S, alpha=self.lr)
            else:
                self.Ma.mul_(self.mom).sub_(S)
                if self.wd:
                    self.Ma.add_(Wa, alpha=self.wd)
                Wa.add_(self.Ma, alpha=-self.lr)
        elif self.Ma is None:
            Wa.addmm_(Vs[:R].t(), Hs[:R], beta=1.0 - self.lr * self.wd, alpha=self.lr)
        else:
            self.Ma.addmm_(Vs[:R].t(), Hs[:R], beta=self.mom, alpha=-1.0)
            if self.wd:
                self.Ma.add_(Wa, alpha=self.wd)
            Wa.add_(self.Ma, alpha=-self.lr)

    def run(self, data: torch.Tensor, perm: torch.Tensor) -> int:
        """Every batch of the epochs ``perm`` (E, N) over ``data`` (N, n_v); returns the
        updates done up to the last epoch whose parameters are all finite (all of them,
        or fewer: then the parameters are not finite and the caller restores its copy).
        """
        if data.dtype != self.Wa.dtype or data.shape[1] != self.n_v:
            raise DataError(f"TorchCD.run: data must be (N, {self.n_v}) {self.Wa.dtype}")
        perm = perm.to(device=data.device, dtype=torch.long)
        if perm.ndim == 1:
            perm = perm[None]
        N = perm.shape[1]
        done = 0
        with torch.no_grad():
            self._load()
            for e in range(perm.shape[0]):
                for b0 in range(0, N, self.bs):
                    self.step(perm[e, b0:b0 + self.bs], data)
                ends = torch.aminmax(self.Wa)
                if not bool(torch.isfinite(torch.stack(ends)).all()):
                    break
                done += -(-N // self.bs)
            self._store()
        return done

    def run_steps(self, data: torch.Tensor, perm: torch.Tensor,
                  bounds: list[tuple[int, int]], totals: list[int]) -> int:
        """One epoch of given batches: step ``s`` on the rows ``perm[b0:b1]`` for
        ``(b0, b1) = bounds[s]``, weighted by ``totals[s]`` rows on all ranks (the
        data-parallel plan of :func:`pgm_boltz.training.fit`); returns the updates done
        (all of them, or 0 when the parameters ended non-finite)."""
        if data.dtype != self.Wa.dtype or data.shape[1] != self.n_v:
            raise DataError(f"TorchCD.run_steps: data must be (N, {self.n_v}) "
                            f"{self.Wa.dtype}")
        if max((b1 - b0 for b0, b1 in bounds), default=0) > self.bs:
            raise DataError(f"TorchCD.run_steps: a batch is larger than batch_size={self.bs}")
        perm = perm.to(device=data.device, dtype=torch.long)
        with torch.no_grad():
            self._load()
            for (b0, b1), total in zip(bounds, totals):
                self.step(perm[b0:b1], data, pos_total=total)
            ends = torch.aminmax(self.Wa)
            ok = bool(torch.isfinite(torch.stack(ends)).all())
            self._store()
        return len(bounds) if ok else 0
