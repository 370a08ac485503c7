"""Sequential Gibbs on CPU: numba single-site sweeps over the free nodes in class order.

Within a colour class the order does not matter (the nodes are conditionally
independent), so this is the same Markov chain as block Gibbs. It wins where torch pays
its per-operation cost for little work: many small classes (a fully connected graph
colours into single nodes) and sparse graphs (lattices). The kernels are in
:mod:`.sweep_kernels`; couplings are CSR (sparse) or a dense ``J``.

``make_sampler(model, "gibbs")`` picks this sampler on CPU for sparse storage, mean
class sizes under 4, and sparse pairs of classes, and :class:`~.block_gibbs.BlockGibbs`
otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import pgm_boltz.samplers.sweep_kernels as sweep_kernels

from .._graph_arrays import csr_neighbours
from .._numba import notice_first_compile
from .._validation import check_choice
from ..errors import ArgumentError
from .base import Beta, Sampler, register_sampler
from .block_gibbs import BlockGibbs

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["BACKENDS", "SequentialGibbs", "gibbs_sampler"]

BACKENDS = ("auto", "torch", "numba")
_SMALL_BLOCKS = 4.0  # mean free class size under which single-site sweeps win
_SPARSE_PAIRS = 0.25  # edge density between coupled classes under which they win
_UNIFORMS_PER_CALL = 1 << 22  # pre-drawn uniforms per kernel call (16 MiB in float32)
_NODE_MAJOR_CHAINS = 8  # from this many chains all chains are swept node by node (SIMD)


class SequentialGibbs(Sampler):
    """Single-site Gibbs sweeps in numba (see the module text); CPU only.

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(5, domain="spin"), seed=0)
    >>> s = SequentialGibbs(m)
    >>> x = s.init(3, torch.Generator().manual_seed(0))
    >>> s.sweep(x, 4, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([3, 5])
    """

    name = "sequential"
    backend = "numba"

    def __init__(self, model: EnergyModel, clamped: np.ndarray | None = None,
                 base_bias: torch.Tensor | None = None) -> None:
        if model.device.type != "cpu":
            raise ArgumentError("the sequential (numba) sampler runs on CPU only; use "
                                f"backend='torch' for device {model.device}")
        super().__init__(model, clamped, base_bias)
        n, m = model.n_nodes, len(model.edge_array)
        sparse = model.plan.storage == "sparse"
        self._kernel = "dense" if (not sparse and m > n * n / 8) else "csr"
        self._order = np.concatenate([b.nodes for b in self.blocks]) if self.blocks else \
            np.zeros(0, np.int64)
        if self._kernel == "csr":
            self._csr_indptr, self._csr_indices, eid = csr_neighbours(n, model.edge_array)
            if n < 2**31:
                self._csr_indices = self._csr_indices.astype(np.int32)
            self._csr_eid = torch.as_tensor(eid)
        self._fallback: BlockGibbs | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the parameters into the kernels' numpy arrays."""
        m = self.model
        self._read_quad()
        dt = np.float64 if m.dtype == torch.float64 else np.float32
        with torch.no_grad():
            q = None if self._q_all is None else self._q_all.cpu().double().numpy()
            kind, lo, step, K, V, LW = m.domains.kernel_arrays(q, rows=[])
            self._dom = (kind, lo.astype(dt), step.astype(dt), K, V.astype(dt),
                         LW.astype(dt))
            self._bias_np = m.bias.detach().cpu().numpy().astype(dt)
            b0 = self.base_bias
            self._b0_np = (np.zeros(m.n_nodes, dt) if b0 is None else
                           b0.cpu().numpy().astype(dt))
            if self._kernel == "csr":
                self._csr_data = m.weight.detach().cpu()[self._csr_eid].numpy().astype(dt)
            else:
                self._J_np = m.coupling_matrix().detach().cpu().numpy().astype(dt)
        self._fallback = None

    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Fields of the k-th free class (computed by torch: used for mean fields)."""
        if self._fallback is None:
            self._fallback = BlockGibbs(self.model, np.flatnonzero(self.clamped_mask),
                                        self.base_bias)
        return self._fallback.block_field(x, k)

    def update_block(self, x: torch.Tensor, k: int, beta: Beta = 1.0,
                     generator: torch.Generator | None = None,
                     field: torch.Tensor | None = None) -> torch.Tensor:
        """One class at ``beta`` (by torch; whole sweeps run in numba)."""
        if self._fallback is None:
            self.block_field(x, k)
        assert self._fallback is not None
        return self._fallback.update_block(x, k, beta, generator, field)

    def sweep(self, x: torch.Tensor, n_sweeps: int = 1, beta: Beta = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """``n_sweeps`` sequential sweeps in numba, in place on ``x`` (B, n)."""
        n_sweeps = int(n_sweeps)
        if n_sweeps < 1 or not self.blocks:
            return x
        if x.device.type != "cpu":
            raise ArgumentError("the sequential sampler needs CPU tensors; use "
                                f"backend='torch' for device {x.device}")
        dt = self._bias_np.dtype
        tdt = torch.float64 if dt == np.float64 else torch.float32
        base = x.detach()
        work = base if (base.dtype == tdt and base.is_contiguous()) else \
            base.contiguous().to(tdt)
        B, nf = x.shape[0], len(self._order)
        tempered = not (isinstance(beta, float | int) and beta == 1.0)
        beta_np = (beta.detach().cpu().numpy().astype(dt).reshape(-1) if torch.is_tensor(beta)
                   else np.full(B, beta, dtype=dt))
        if beta_np.shape[0] != B:
            raise ArgumentError(f"beta has {beta_np.shape[0]} values for {B} chains")
        temp = (beta_np, self._b0_np)
        node_major = B >= _NODE_MAJOR_CHAINS
        xn = work.t().contiguous().numpy() if node_major else work.numpy()
        chunk = max(1, min(n_sweeps, _UNIFORMS_PER_CALL // max(1, B * nf)))
        args = (self._csr_indptr, self._csr_indices, self._csr_data) \
            if self._kernel == "csr" else (self._J_np,)
        fn = {("csr", False): sweep_kernels.csr_sweeps,
              ("csr", True): sweep_kernels.csr_sweeps_node_major,
              ("dense", False): sweep_kernels.dense_sweeps,
              ("dense", True): sweep_kernels.dense_sweeps_node_major}[
            (self._kernel, node_major)]
        done = 0
        notice_first_compile(sweep_kernels._csr_serial, sweep_kernels._csr_nm_serial,
                             sweep_kernels._dense_serial)
        with torch.no_grad():
            while done < n_sweeps:
                s = min(chunk, n_sweeps - done)
                shape = (s, nf, B) if node_major else (s, B, nf)
                # float32 noise for every dtype: its resolution 2^-24 is far below any
                # sampling error, and drawing it costs half of float64's
                g = torch.rand(shape, generator=generator, dtype=torch.float32).logit_()
                fn(xn, self._order, *args, self._bias_np, self._dom, g.numpy(), temp,
                   tempered)
                done += s
            if node_major:
                work.copy_(torch.from_numpy(xn).t())
            if work is not base:
                x.copy_(work)
        return x

    def memory_bytes(self) -> int:
        """Bytes held by the CSR arrays (or the dense J)."""
        total = 0
        for name in ("_csr_indptr", "_csr_indices", "_csr_data", "_J_np"):
            a = getattr(self, name, None)
            if a is not None:
                total += a.nbytes
        eid = getattr(self, "_csr_eid", None)
        if eid is not None:
            total += eid.numel() * eid.element_size()
        return total


def gibbs_sampler(model: EnergyModel, clamped: np.ndarray | None = None,
                  backend: str = "auto", base_bias: torch.Tensor | None = None,
                  **options: Any) -> Sampler:
    """Gibbs sampling of ``model`` with the faster backend: ``"numba"``
    (:class:`SequentialGibbs`) or ``"torch"`` (:class:`BlockGibbs`), or as asked.

    ``"auto"`` takes numba on CPU for sparse storage, for mean free class sizes under 4
    (many small classes), and for sparse pairs of classes; torch otherwise and on CUDA.

    >>> import pgm_boltz as pb
    >>> gibbs_sampler(pb.compile(pb.graphs.lattice(4, 4), storage="sparse")).backend
    'numba'
    """
    check_choice("backend", backend, BACKENDS, where="Gibbs sampler")
    if options:
        raise ArgumentError(f"the Gibbs sampler got unexpected option(s) {sorted(options)}")
    if backend == "numba":
        return SequentialGibbs(model, clamped, base_bias)
    if backend == "torch" or model.device.type != "cpu":
        return BlockGibbs(model, clamped, base_bias)
    mask = np.zeros(model.n_nodes, dtype=bool)
    if clamped is not None:
        mask[np.asarray(clamped, dtype=np.int64).reshape(-1)] = True
    sizes = [int((~mask[ix]).sum()) for ix in model.plan.block_index]
    sizes = [s for s in sizes if s]
    sparse = model.plan.storage == "sparse"
    if sparse or sum(sizes) / max(1, len(sizes)) < _SMALL_BLOCKS:
        return SequentialGibbs(model, clamped, base_bias)
    cells = sum(pr["shape"][0] * pr["shape"][1] for pr in model._block_pairs)
    if cells and len(model.edge_array) / cells < _SPARSE_PAIRS:
        return SequentialGibbs(model, clamped, base_bias)
    return BlockGibbs(model, clamped, base_bias)


register_sampler("sequential", SequentialGibbs)
register_sampler("gibbs", gibbs_sampler)
