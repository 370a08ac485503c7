"""Block Gibbs in torch (CPU and CUDA): one vectorised draw per colour class.

Nodes of one colour class are conditionally independent given the others, so a sweep
updates class after class, each in one draw across nodes and chains:

    f_q = b_q + sum_{p != q} s_p W_pq,        s_q ~ P(s_q | f_q(β)).

Bipartite graphs (RBMs, DBMs, square lattices) have two classes ("block-gibbs"), other
graphs as many as the colouring needs ("chromatic-gibbs"). Couplings are, by the plan's
storage and the graph: dense block matrices ``W_pq`` between colour classes (views of the
weight vector for complete bipartite pairs such as an RBM's W), per-class column slices
of the dense ``J`` (dense graphs with many small classes), or per-class neighbour lists
gathered from the edge list (sparse storage: memory O(edges), never n × n).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .._graph_arrays import csr_neighbours
from .base import Beta, Sampler, register_sampler

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["BlockGibbs"]

_MAX_PAIRS = 32  # more coupled class pairs than this: dense J column slices
_PAD_WASTE = 2.0  # padded neighbour gathers while padding at most doubles the entries


class BlockGibbs(Sampler):
    """Block Gibbs over the plan's colour classes, in torch (see the module text).

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> s = BlockGibbs(m)
    >>> x = s.init(5, torch.Generator().manual_seed(0))
    >>> s.sweep(x, 1, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([5, 7])
    """

    name = "block-gibbs"
    backend = "torch"

    def __init__(self, model: EnergyModel, clamped: np.ndarray | None = None,
                 base_bias: torch.Tensor | None = None) -> None:
        super().__init__(model, clamped, base_bias)
        dev = model.device
        self._idx_all = [torch.as_tensor(ix, device=dev) for ix in model.plan.block_index]
        self._sl_all: list[slice | None] = []
        for ix in model.plan.block_index:
            c = len(ix) > 0 and bool(np.all(np.diff(ix) == 1))
            self._sl_all.append(slice(int(ix[0]), int(ix[-1]) + 1) if c else None)
        if model.plan.storage == "sparse":
            self._mode = "sparse"
            self._build_sparse()
        elif len(model._block_pairs) <= _MAX_PAIRS:
            self._mode = "pairs"
        else:
            self._mode = "dense_cols"
        self.refresh()

    def _build_sparse(self) -> None:
        """Per free class: neighbour gathers (padded when degrees are even) or edge lists."""
        m = self.model
        indptr, cols, eid = csr_neighbours(m.n_nodes, m.edge_array)
        dev = m.device
        self._sp: list[dict] = []
        for blk in self.blocks:
            free = blk.nodes
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
        self._read_quad()
        with torch.no_grad():
            self.bias = m.bias.detach()
            self.weight = m.weight.detach()
            self._bias_free = [self.bias[blk.index] for blk in self.blocks]
            if self._mode == "sparse":
                zero = torch.zeros((), dtype=self.weight.dtype, device=self.weight.device)
                for sp in self._sp:
                    if sp["kind"] == "padded":
                        sp["w"] = torch.where(sp["valid"], self.weight[sp["wid"]], zero)
                    elif sp["kind"] == "list":
                        sp["w"] = self.weight[sp["wid"]]
            elif self._mode == "pairs":
                # for every class q: list of (source class, W (n_p x n_q))
                incoming: dict[int, list] = {b: [] for b in range(len(m.plan.block_index))}
                for p, q, W in m.block_weights():
                    W = W.detach()
                    incoming[q].append((p, W))
                    incoming[p].append((q, W.t()))
                self.incoming = incoming
            else:
                J = m.coupling_matrix().detach()
                self._Jcols = [J[:, blk.index].contiguous() for blk in self.blocks]

    def _take(self, x: torch.Tensor, b: int) -> torch.Tensor:
        sl = self._sl_all[b]
        return x[:, sl] if sl is not None else x[:, self._idx_all[b]]

    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Local fields ``f_i = b_i + sum_j W_ij s_j`` of the free nodes of the k-th
        class given joint values ``x`` (B, n); shape (B, n_k)."""
        bias = self._bias_free[k]
        if self._mode == "sparse":
            sp = self._sp[k]
            if sp["kind"] == "padded":
                nb = x.index_select(1, sp["nbr_flat"]).view(x.shape[0], *sp["w"].shape)
                return (nb * sp["w"]).sum(1) + bias
            if sp["kind"] == "list":
                f = bias.expand(x.shape[0], -1).clone()  # never a view of the bias
                return f.index_add_(1, sp["tgt"], x.index_select(1, sp["src"]) * sp["w"])
            return bias.expand(x.shape[0], -1).clone()
        if self._mode == "dense_cols":
            return torch.addmm(bias, x, self._Jcols[k])
        blk = self.blocks[k]
        f = None
        for p, W in self.incoming[blk.block]:
            term = self._take(x, p) @ W
            f = term if f is None else f + term
        if f is None:
            return bias.expand(x.shape[0], -1).clone()
        if blk.pos is not None:
            f = f[:, blk.pos]
        return f + bias

    def sweep(self, x: torch.Tensor, n_sweeps: int = 1, beta: Beta = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Update every free class once per sweep, in place on ``x`` (B, n)."""
        for _ in range(int(n_sweeps)):
            for k in range(len(self.blocks)):
                self.update_block(x, k, beta, generator)
        return x

    def memory_bytes(self) -> int:
        """Bytes held by the sparse gathers (0 for dense storage, which reads views)."""
        total = 0
        for sp in getattr(self, "_sp", []):
            total += sum(t.numel() * t.element_size() for t in sp.values()
                         if torch.is_tensor(t))
        return total


register_sampler("block-gibbs", BlockGibbs)
