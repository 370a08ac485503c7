"""Gibbs engine: block Gibbs sweeps over the compiler's colour classes.

Nodes of one colour class are conditionally independent given the others, so a sweep
updates class after class, each class in one vectorised draw across nodes and chains:

    f_q = b_q + sum_{p != q} s_p W_pq,        s_q ~ P(s_q | f_q) ∝ exp(f_q s_q).

Bipartite graphs (RBMs, DBMs, square lattices) have two classes ("block-gibbs");
other graphs have as many as the colouring needs ("chromatic-gibbs").

Two backends run the same chain:

- ``"torch"`` (CPU and CUDA): per block one field computation and one vectorised draw.
  Couplings are, by the plan's storage and the graph: dense block matrices ``W_pq``
  between colour classes (views of the weight vector for complete bipartite pairs such as
  an RBM's W), per-block column slices of the dense ``J`` (dense graphs with many small
  blocks), or per-block neighbour lists gathered from the edge list (sparse storage:
  memory O(edges), never n × n).
- ``"numba"`` (CPU): sequential single-site sweeps in :mod:`pgm_boltz.engines.sweeps`
  over the free nodes in block order (the same chain: within a block the order does not
  matter), with CSR or dense couplings. It wins where torch pays its per-operation cost
  for little work: many small blocks (a fully connected graph colours into single nodes)
  and sparse graphs (lattices). ``backend="auto"`` picks it on CPU for sparse storage,
  for mean block sizes under 4, and for sparse pairs of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..domains import DomainVector
from ..errors import DataError

__all__ = ["BACKENDS", "DEFAULT_STEPS", "BlockSampler", "sample"]

#: Sweeps ``model.sample`` runs by default (enough to mix the small models of the tests).
DEFAULT_STEPS = 1000
BACKENDS = ("auto", "torch", "numba")
_SMALL_BLOCKS = 4.0  # mean free block size under which numba's single-site sweeps win
_SPARSE_PAIRS = 0.25  # edge density between coupled blocks under which numba wins
_MAX_PAIRS = 32  # more coupled block pairs than this: dense J column slices in torch
_UNIFORMS_PER_CALL = 1 << 22  # pre-drawn uniforms per numba call (32 MiB in float64)
_PAD_WASTE = 2.0  # padded neighbour gathers while padding at most doubles the entries
_NODE_MAJOR_CHAINS = 8  # from this many chains numba sweeps all chains node by node (SIMD)


@dataclass
class _Block:
    index: torch.Tensor  # node indices of this class that are free
    sl: slice | None  # the same as a slice when contiguous (a view, no gather)
    domains: DomainVector


class BlockSampler:
    """Block Gibbs over a model's colour classes, with some nodes optionally clamped.

    Parameters
    ----------
    model: the :class:`~pgm_boltz.model.BoltzmannMachine`.
    clamped: node indices held fixed (e.g. the visible units in a positive phase); a
        sweep leaves their values in ``x`` untouched.
    backend: ``"auto"``, ``"torch"`` or ``"numba"`` (CPU only); see the module text.

    A sweep updates every free block once, in the plan's block order:
    ``s_q ~ P(s_q | b_q + sum_p s_p W_pq)``. The couplings are read from the model when
    the sampler is built; ``refresh()`` re-reads them after a parameter update.

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> s = BlockSampler(m)
    >>> x = s.init_state(5, torch.Generator().manual_seed(0))
    >>> s.sweep(x, torch.Generator().manual_seed(1)).shape
    torch.Size([5, 7])
    """

    def __init__(self, model, clamped: np.ndarray | None = None,
                 backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise DataError(f"unknown Gibbs backend {backend!r}; use one of {BACKENDS}")
        self.model = model
        device = model.device
        n = model.n_nodes
        clamped_mask = np.zeros(n, dtype=bool)
        if clamped is not None:
            ci = np.asarray(clamped, dtype=np.int64).reshape(-1)
            if len(ci) and (ci.min() < 0 or ci.max() >= n):
                raise DataError(f"clamped node indices must lie in 0..{n - 1}")
            clamped_mask[ci] = True
        self.clamped_mask = clamped_mask
        self.blocks: list[_Block] = []
        self._block_ids: list[int] = []
        self._free_np: list[np.ndarray] = []
        self._pos: list[torch.Tensor | None] = []  # free positions within the full block
        for b, idx in enumerate(model.plan.block_index):
            keep = ~clamped_mask[idx]
            free = np.asarray(idx[keep], dtype=np.int64)
            if len(free) == 0:
                continue
            contiguous = len(free) == 1 or bool(np.all(np.diff(free) == 1))
            self.blocks.append(_Block(
                index=torch.as_tensor(free, device=device),
                sl=slice(int(free[0]), int(free[-1]) + 1) if contiguous else None,
                domains=DomainVector([model.spec.domains[i] for i in free])))
            self._block_ids.append(b)
            self._free_np.append(free)
            self._pos.append(None if keep.all() else
                             torch.as_tensor(np.flatnonzero(keep), device=device))
        self._idx_all = [torch.as_tensor(ix, device=device) for ix in model.plan.block_index]
        self._sl_all = []
        for ix in model.plan.block_index:
            c = len(ix) > 0 and bool(np.all(np.diff(ix) == 1))
            self._sl_all.append(slice(int(ix[0]), int(ix[-1]) + 1) if c else None)
        self._sparse = model.plan.storage == "sparse"
        self.backend = self._choose_backend(backend)
        if self._sparse:
            self._torch_mode = "sparse"
        elif len(model._block_pairs) <= _MAX_PAIRS:
            self._torch_mode = "pairs"
        else:
            self._torch_mode = "dense_cols"
        if self.backend == "numba":
            m = len(model._edges_np)
            self._kernel = "dense" if (not self._sparse and m > n * n / 8) else "csr"
            self._order = np.concatenate(self._free_np) if self._free_np else \
                np.zeros(0, np.int64)
            if self._kernel == "csr":
                self._build_csr()
        self.refresh()

    # ------------------------------------------------------------------ set-up
    def _choose_backend(self, backend: str) -> str:
        m = self.model
        if backend == "numba":
            if m.device.type != "cpu":
                raise DataError("backend='numba' runs on CPU only; use backend='torch' "
                                f"for device {m.device}")
            return "numba"
        if backend == "torch" or m.device.type != "cpu":
            return "torch"
        n_free = sum(len(f) for f in self._free_np)
        if self._sparse or n_free / max(1, len(self.blocks)) < _SMALL_BLOCKS:
            return "numba"
        cells = sum(pr["shape"][0] * pr["shape"][1] for pr in m._block_pairs)
        if cells and len(m._edges_np) / cells < _SPARSE_PAIRS:
            return "numba"
        return "torch"

    def _build_csr(self) -> None:
        """Neighbour lists of every node (both directions of each edge), O(m) memory."""
        e = self.model._edges_np
        n = self.model.n_nodes
        rows = np.concatenate([e[:, 0], e[:, 1]])
        cols = np.concatenate([e[:, 1], e[:, 0]])
        eid = np.concatenate([np.arange(len(e)), np.arange(len(e))])
        order = np.argsort(rows, kind="stable")
        self._csr_indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=self._csr_indptr[1:])
        itype = np.int32 if n < 2**31 else np.int64
        self._csr_indices = cols[order].astype(itype)
        self._csr_eid = torch.as_tensor(eid[order])

    def _build_sparse_torch(self) -> None:
        """Per free block: neighbour gathers (padded when degrees are even) or edge lists."""
        m = self.model
        e = m._edges_np
        n = m.n_nodes
        rows = np.concatenate([e[:, 0], e[:, 1]])
        cols = np.concatenate([e[:, 1], e[:, 0]])
        eid = np.concatenate([np.arange(len(e)), np.arange(len(e))])
        order = np.argsort(rows, kind="stable")
        rows, cols, eid = rows[order], cols[order], eid[order]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        dev = m.device
        self._sp: list[dict] = []
        for free in self._free_np:
            deg = indptr[free + 1] - indptr[free]
            nnz = int(deg.sum())
            d = int(deg.max()) if len(deg) else 0
            if d == 0:
                self._sp.append({"kind": "none"})
                continue
            if len(free) * d <= _PAD_WASTE * nnz:  # even degrees: padded gather
                slot = np.arange(d)[:, None]  # (d, n_k): reduce over a leading axis
                valid = slot < deg[None, :]
                ptr = np.where(valid, indptr[free][None, :] + slot, 0)
                nbr = np.where(valid, cols[ptr], 0)
                wid = np.where(valid, eid[ptr], 0)
                self._sp.append({
                    "kind": "padded", "nbr_flat": torch.as_tensor(nbr.reshape(-1), device=dev),
                    "wid": torch.as_tensor(wid, device=dev),
                    "valid": torch.as_tensor(valid, device=dev)})
            else:
                seg = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in free])
                tgt = np.repeat(np.arange(len(free)), deg)
                self._sp.append({
                    "kind": "list", "src": torch.as_tensor(cols[seg], device=dev),
                    "tgt": torch.as_tensor(tgt, device=dev),
                    "wid": torch.as_tensor(eid[seg], device=dev)})

    def refresh(self) -> None:
        """Re-read the model's parameters (after an optimiser step)."""
        m = self.model
        with torch.no_grad():
            self.bias = m.bias.detach()
            self.weight = m.weight.detach()
            self._bias_free = [self.bias[blk.index] for blk in self.blocks]
            if self._sparse:
                self.eu, self.ev = m.edge_index
            if self.backend == "numba":
                dt = np.float64 if m.dtype == torch.float64 else np.float32
                lo, step, K = m.domains.kinds_array()
                self._lo, self._step, self._K = lo.astype(dt), step.astype(dt), K
                self._bias_np = self.bias.cpu().numpy().astype(dt)
                if self._kernel == "csr":
                    self._csr_data = self.weight.cpu()[self._csr_eid].numpy().astype(dt)
                else:
                    self._J_np = m.coupling_matrix().detach().cpu().numpy().astype(dt)
        self._torch_ready = False
        if self.backend == "torch":
            self._prepare_torch()

    def _prepare_torch(self) -> None:
        m = self.model
        with torch.no_grad():
            if self._torch_mode == "sparse":
                if not hasattr(self, "_sp"):
                    self._build_sparse_torch()
                for sp in self._sp:
                    if sp["kind"] == "padded":
                        sp["w"] = torch.where(sp["valid"], self.weight[sp["wid"]],
                                              torch.zeros((), dtype=self.weight.dtype,
                                                          device=self.weight.device))
                    elif sp["kind"] == "list":
                        sp["w"] = self.weight[sp["wid"]]
            elif self._torch_mode == "pairs":
                # for every block q: list of (source block, W (n_p x n_q))
                incoming: dict[int, list] = {b: [] for b in range(len(m.plan.block_index))}
                for p, q, W in m.block_weights():
                    W = W.detach()
                    incoming[q].append((p, W))
                    incoming[p].append((q, W.t()))
                self.incoming = incoming
            else:
                J = m.coupling_matrix().detach()
                self._Jcols = [J[:, blk.index].contiguous() for blk in self.blocks]
        self._torch_ready = True

    # ------------------------------------------------------------------ fields
    def _take(self, x: torch.Tensor, b: int) -> torch.Tensor:
        sl = self._sl_all[b]
        return x[:, sl] if sl is not None else x[:, self._idx_all[b]]

    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Local fields ``f_i = b_i + sum_j W_ij s_j`` of the free nodes of the k-th
        updated block given joint values ``x`` (B, n); shape (B, n_k)."""
        if not self._torch_ready:
            self._prepare_torch()
        bias = self._bias_free[k]
        if self._torch_mode == "sparse":
            sp = self._sp[k]
            if sp["kind"] == "padded":
                nb = x.index_select(1, sp["nbr_flat"]).view(x.shape[0], *sp["w"].shape)
                return (nb * sp["w"]).sum(1) + bias
            if sp["kind"] == "list":
                f = bias.expand(x.shape[0], -1).clone()  # never a view of the bias
                return f.index_add_(1, sp["tgt"], x.index_select(1, sp["src"]) * sp["w"])
            return bias.expand(x.shape[0], -1).clone()
        if self._torch_mode == "dense_cols":
            return torch.addmm(bias, x, self._Jcols[k])
        b = self._block_ids[k]
        f = None
        for p, W in self.incoming[b]:
            term = self._take(x, p) @ W
            f = term if f is None else f + term
        if f is None:
            return bias.expand(x.shape[0], -1).clone()
        if self._pos[k] is not None:
            f = f[:, self._pos[k]]
        return f + bias

    def mean_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Conditional means ``E[s | rest]`` of the k-th free block given ``x``."""
        return self.blocks[k].domains.mean(self.block_field(x, k))

    # ------------------------------------------------------------------ sweeps
    def sweep(self, x: torch.Tensor, generator: torch.Generator | None = None,
              n_sweeps: int = 1) -> torch.Tensor:
        """Update every free block once per sweep, in place on ``x`` (B, n); returns x."""
        if n_sweeps < 1 or not self.blocks:
            return x
        with torch.no_grad():
            if self.backend == "numba":
                self._sweep_numba(x, generator, n_sweeps)
                return x
            for _ in range(n_sweeps):
                for k, blk in enumerate(self.blocks):
                    f = self.block_field(x, k)
                    new = blk.domains.sample(f, generator)
                    if blk.sl is not None:
                        x[:, blk.sl] = new
                    else:
                        x[:, blk.index] = new
        return x

    def _sweep_numba(self, x: torch.Tensor, generator: torch.Generator | None,
                     n_sweeps: int) -> None:
        from . import sweeps

        if x.device.type != "cpu":
            raise DataError("the numba backend needs CPU tensors; build the sampler with "
                            "backend='torch' for device " + str(x.device))
        dt = np.float64 if self._bias_np.dtype == np.float64 else np.float32
        tdt = torch.float64 if dt == np.float64 else torch.float32
        base = x.detach()
        work = base if (base.dtype == tdt and base.is_contiguous()) else \
            base.contiguous().to(tdt)
        B, nf = x.shape[0], len(self._order)
        node_major = B >= _NODE_MAJOR_CHAINS
        xn = work.t().contiguous().numpy() if node_major else work.numpy()
        chunk = max(1, min(n_sweeps, _UNIFORMS_PER_CALL // max(1, B * nf)))
        done = 0
        while done < n_sweeps:
            s = min(chunk, n_sweeps - done)
            shape = (s, nf, B) if node_major else (s, B, nf)
            # float32 noise for every dtype: the resolution 2^-24 of u is far below any
            # sampling error, and drawing it costs half of float64's
            g = torch.rand(shape, generator=generator, dtype=torch.float32).logit_().numpy()
            args = (self._csr_indptr, self._csr_indices, self._csr_data) \
                if self._kernel == "csr" else (self._J_np,)
            fn = {("csr", False): sweeps.csr_sweeps,
                  ("csr", True): sweeps.csr_sweeps_node_major,
                  ("dense", False): sweeps.dense_sweeps,
                  ("dense", True): sweeps.dense_sweeps_node_major}[
                (self._kernel, node_major)]
            fn(xn, self._order, *args, self._bias_np, self._lo, self._step, self._K, g)
            done += s
        if node_major:
            work.copy_(torch.from_numpy(xn).t())
        if work is not base:
            x.copy_(work)

    def init_state(self, n: int, generator: torch.Generator | None = None,
                   visible_values: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` initial joint states: uniform over each domain's levels, or the given
        visible values with uniform hidden units."""
        m = self.model
        x = torch.empty(n, m.n_nodes, dtype=m.dtype, device=m.device)
        x.copy_(m.domains.sample(torch.zeros(n, m.n_nodes, dtype=m.dtype, device=m.device),
                                 generator))
        if visible_values is not None:
            x[:, torch.as_tensor(m.visible_index, device=m.device)] = visible_values
        return x

    def memory_bytes(self) -> int:
        """Bytes held by the sampler's coupling structures (CSR, gathers, matrices)."""
        total = 0
        for name in ("_csr_indptr", "_csr_indices", "_csr_data", "_J_np"):
            a = getattr(self, name, None)
            if a is not None:
                total += a.nbytes
        eid = getattr(self, "_csr_eid", None)
        if eid is not None:
            total += eid.numel() * eid.element_size()
        for sp in getattr(self, "_sp", []) if self._torch_ready else []:
            total += sum(t.numel() * t.element_size() for t in sp.values()
                         if torch.is_tensor(t))
        return total


def _generator(model, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    gen = torch.Generator(device=model.device)
    gen.manual_seed(int(seed))
    return gen


def sample(model, n: int, steps: int = DEFAULT_STEPS, seed: int | None = None,
           init: torch.Tensor | None = None, progress: bool = False,
           backend: str = "auto") -> torch.Tensor:
    """Run ``n`` independent Gibbs chains for ``steps`` sweeps; return final joint values.

    Chains start uniform over each node's levels, or from ``init`` (joint values (n, n)),
    or from the visible marginals learned by the last fit when the model has them
    (``model.visible_init``). Returns values (not codes), shape (n, n_nodes).
    ``backend`` chooses the sweep implementation (see :class:`BlockSampler`).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> sample(m, 8, steps=10, seed=0).shape
    torch.Size([8, 7])
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DataError(f"steps must be a positive integer, got {steps!r}")
    gen = _generator(model, seed)
    sampler = BlockSampler(model, backend=backend)
    if init is not None:
        if tuple(init.shape) != (n, model.n_nodes):
            raise DataError(f"init has shape {tuple(init.shape)}, expected ({n}, "
                            f"{model.n_nodes})")
        x = init.to(model.device, model.dtype).clone()
    else:
        x = sampler.init_state(n, gen)
        vis_init = getattr(model, "visible_init", None)
        if vis_init is not None:
            vi = torch.as_tensor(model.visible_index, device=model.device)
            f = vis_init.to(model.device, model.dtype).expand(n, -1)
            x[:, vi] = model.visible_domains.sample(f, gen)
            if model.n_hidden:  # hidden units from their conditionals given that start
                BlockSampler(model, clamped=model.visible_index, backend=backend).sweep(
                    x, gen, 1)
    chunk = max(1, min(steps, 50))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="gibbs", leave=False)
    done = 0
    while done < steps:
        s = min(chunk, steps - done)
        sampler.sweep(x, gen, s)
        done += s
        if bar is not None:
            bar.update(s)
    if bar is not None:
        bar.close()
    return x
