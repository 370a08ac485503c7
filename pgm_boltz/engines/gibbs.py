"""Gibbs engine: block Gibbs sweeps over the compiler's colour classes, in torch.

Nodes of one colour class are conditionally independent given the others, so a sweep
updates class after class, each class in one vectorised draw across nodes and chains:

    f_q = b_q + sum_{p != q} s_p W_pq,        s_q ~ P(s_q | f_q) ∝ exp(f_q s_q).

Bipartite graphs (RBMs, DBMs, square lattices) have two classes ("block-gibbs");
other graphs have as many as the greedy colouring needs ("chromatic-gibbs"). The same
code runs on CPU and CUDA. Couplings are the dense block matrices ``W_pq`` (views of
the weight vector for complete bipartite pairs) or, with sparse storage, edge lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..domains import DomainVector
from ..errors import DataError

__all__ = ["DEFAULT_STEPS", "BlockSampler", "sample"]

#: Sweeps ``model.sample`` runs by default (enough to mix the small models of the tests).
DEFAULT_STEPS = 1000


@dataclass
class _Block:
    index: torch.Tensor  # node indices of this class
    sl: slice | None  # the same as a slice when contiguous (a view, no gather)
    domains: DomainVector


class BlockSampler:
    """Block Gibbs over a model's colour classes, with some nodes optionally clamped.

    Parameters
    ----------
    model: the :class:`~pgm_boltz.model.BoltzmannMachine`.
    clamped: node indices held fixed (e.g. the visible units in a positive phase).

    The couplings are read from the model when the sampler is built (``refresh()``
    re-reads them after a parameter update).

    >>> import torch, pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> s = BlockSampler(m)
    >>> x = s.init_state(5, torch.Generator().manual_seed(0))
    >>> s.sweep(x, torch.Generator().manual_seed(1)).shape
    torch.Size([5, 7])
    """

    def __init__(self, model, clamped: np.ndarray | None = None) -> None:
        self.model = model
        device = model.device
        clamped_set = set() if clamped is None else {int(i) for i in np.asarray(clamped)}
        self.blocks: list[_Block] = []
        self._block_ids: list[int] = []
        for b, idx in enumerate(model.plan.block_index):
            free = np.array([i for i in idx if int(i) not in clamped_set], dtype=np.int64)
            if len(free) == 0:
                continue
            contiguous = len(free) == len(idx) and np.all(np.diff(idx) == 1)
            self.blocks.append(_Block(
                index=torch.as_tensor(free, device=device),
                sl=slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else None,
                domains=DomainVector([model.spec.domains[i] for i in free])))
            self._block_ids.append(b)
        self._free_mask = np.ones(len(model.plan.block_index), dtype=bool)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the model's parameters (after an optimiser step)."""
        m = self.model
        with torch.no_grad():
            self.bias = m.bias.detach()
            if m.plan.storage == "sparse":
                self._sparse = True
                self.weight = m.weight.detach()
                self.eu, self.ev = m.edge_index
            else:
                self._sparse = False
                # for every block q: list of (source block index tensor, W (n_p x n_q))
                incoming: dict[int, list] = {b: [] for b in range(len(m.plan.block_index))}
                for p, q, W in m.block_weights():
                    W = W.detach()
                    incoming[q].append((p, W))
                    incoming[p].append((q, W.t()))
                self.incoming = incoming
        self._idx_all = [torch.as_tensor(ix, device=m.device) for ix in m.plan.block_index]
        self._sl_all = []
        for ix in m.plan.block_index:
            c = len(ix) > 0 and np.all(np.diff(ix) == 1)
            self._sl_all.append(slice(int(ix[0]), int(ix[-1]) + 1) if c else None)

    def _take(self, x: torch.Tensor, b: int) -> torch.Tensor:
        sl = self._sl_all[b]
        return x[:, sl] if sl is not None else x[:, self._idx_all[b]]

    def block_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Local fields of the free nodes of the k-th updated block, shape (B, n_k)."""
        blk = self.blocks[k]
        if self._sparse:
            f = torch.zeros_like(x)
            f.index_add_(1, self.eu, x[:, self.ev] * self.weight)
            f.index_add_(1, self.ev, x[:, self.eu] * self.weight)
            return f[:, blk.index] + self.bias[blk.index]
        b = self._block_ids[k]
        f = None
        for p, W in self.incoming[b]:
            term = self._take(x, p) @ W
            f = term if f is None else f + term
        full = self.bias[self._idx_all[b]] if f is None else f + self.bias[self._idx_all[b]]
        if blk.sl is None and len(blk.index) != len(self._idx_all[b]):
            pos = torch.as_tensor(
                np.searchsorted(self.model.plan.block_index[b], blk.index.cpu().numpy()),
                device=x.device)
            full = full[:, pos]
        return full

    def sweep(self, x: torch.Tensor, generator: torch.Generator | None = None,
              n_sweeps: int = 1) -> torch.Tensor:
        """Update every free block once per sweep, in place on ``x`` (B, n); returns x."""
        with torch.no_grad():
            for _ in range(n_sweeps):
                for k, blk in enumerate(self.blocks):
                    f = self.block_field(x, k)
                    new = blk.domains.sample(f, generator)
                    if blk.sl is not None:
                        x[:, blk.sl] = new
                    else:
                        x[:, blk.index] = new
        return x

    def mean_field(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Conditional means ``E[s | rest]`` of the k-th free block given ``x``."""
        return self.blocks[k].domains.mean(self.block_field(x, k))

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


def _generator(model, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    gen = torch.Generator(device=model.device)
    gen.manual_seed(int(seed))
    return gen


def sample(model, n: int, steps: int = DEFAULT_STEPS, seed: int | None = None,
           init: torch.Tensor | None = None, progress: bool = False) -> torch.Tensor:
    """Run ``n`` independent Gibbs chains for ``steps`` sweeps; return final joint values.

    Chains start uniform over each node's levels, or from ``init`` (joint values (n, n)),
    or from the visible marginals learned by the last fit when the model has them
    (``model.visible_init``). Returns values (not codes), shape (n, n_nodes).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> sample(m, 8, steps=10, seed=0).shape
    torch.Size([8, 7])
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DataError(f"steps must be a positive integer, got {steps!r}")
    gen = _generator(model, seed)
    sampler = BlockSampler(model)
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
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="gibbs", leave=False)
    for _ in iterator:
        sampler.sweep(x, gen)
    return x
