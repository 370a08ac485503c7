"""BoltzmannMachine: the compiled model (a ``torch.nn.Module``).

Parameters are the declared graph's own: one bias per node (``bias``, shape (n,)) and one
weight per edge (``weight``, shape (m,), edges in ``model.edges`` order). The energy of a
joint state ``s`` (values in each node's domain) is

    E(s) = - sum_{(i,j) in edges} W_ij s_i s_j - sum_i b_i s_i,     P(s) = exp(-E(s)) / Z.

Engines derive what they need from those vectors: dense n × n couplings for the exact
engine, block matrices between colour classes (a zero-copy view for complete bipartite
pairs such as an RBM's) or edge lists (sparse storage) for the Gibbs engines.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import torch
from torch import nn

from .compiler import Plan, Spec
from .domains import DomainVector
from .engines import exact as _exact
from .errors import DataError, IntractableError

__all__ = ["BoltzmannMachine", "LogPartition"]

_FREE_ENERGY_CHUNK = 1 << 22  # elements per chunk when enumerating hidden states per row


class LogPartition(NamedTuple):
    """A log-partition value with its standard error (0 when exact)."""

    value: float
    stderr: float


class _ExactLogZ(torch.autograd.Function):
    """``log Z(b, w)`` by the numba kernel; backward gives the exact moments:
    ``d log Z / d b_i = <s_i>``, ``d log Z / d W_ij = <s_i s_j>``."""

    @staticmethod
    def forward(ctx, bias, weight, model):  # type: ignore[override]
        need_grad = bias.requires_grad or weight.requires_grad
        problem = model._exact_problem(bias, weight)
        if need_grad:
            mom = _exact.exact_moments(problem, model.n_nodes)
            eu, ev = model._edges_np[:, 0], model._edges_np[:, 1]
            ctx.save_for_backward(
                torch.as_tensor(mom.mean, dtype=bias.dtype, device=bias.device),
                torch.as_tensor(mom.second[eu, ev], dtype=weight.dtype, device=weight.device))
            value = mom.log_z
        else:
            value = _exact.exact_log_partition(problem)
        return torch.tensor(value, dtype=bias.dtype, device=bias.device)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        mean, pair = ctx.saved_tensors
        return grad * mean, grad * pair, None


class BoltzmannMachine(nn.Module):
    """A compiled Boltzmann machine. Build it with :func:`pgm_boltz.compile`.

    Attributes
    ----------
    plan: the compiler's :class:`~pgm_boltz.compiler.Plan`.
    nodes: all node names in graph order; ``visible_nodes``, ``hidden_nodes`` likewise.
    edges: edge name pairs, aligned with ``weight``.
    bias: ``nn.Parameter`` (n,); weight: ``nn.Parameter`` (m,).

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> model.plan.engine
    'exact'
    >>> round(float(model.log_partition()), 3) > 0
    True
    """

    def __init__(self, spec: Spec, plan: Plan, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, seed: int | None = None,
                 init_scale: float = 0.01) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.spec = spec
        self.plan = plan
        self.nodes: list[Hashable] = list(spec.nodes)
        self.n_nodes = len(self.nodes)
        self.visible_index = np.asarray(spec.visible, dtype=np.int64)
        self.hidden_index = np.asarray(spec.hidden, dtype=np.int64)
        self.visible_nodes = [self.nodes[i] for i in self.visible_index]
        self.hidden_nodes = [self.nodes[i] for i in self.hidden_index]
        self._edges_np = spec.edges.astype(np.int64)
        self.edges = [(self.nodes[i], self.nodes[j]) for i, j in self._edges_np]
        self.domains = DomainVector(spec.domains)
        self.visible_domains = DomainVector([spec.domains[i] for i in self.visible_index])
        self.hidden_domains = DomainVector([spec.domains[i] for i in self.hidden_index])
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        w0 = torch.randn(len(self._edges_np), generator=gen, dtype=torch.float64) * init_scale
        declared_w = torch.as_tensor(spec.init_weight)
        w0 = torch.where(torch.isnan(declared_w), w0, declared_w)
        b0 = torch.as_tensor(spec.init_bias)
        b0 = torch.where(torch.isnan(b0), torch.zeros_like(b0), b0)
        self.bias = nn.Parameter(b0.to(device=device, dtype=dtype))
        self.weight = nn.Parameter(w0.to(device=device, dtype=dtype))
        self.register_buffer("edge_index", torch.as_tensor(self._edges_np.T.copy()).to(device),
                             persistent=False)
        self._block_pairs = self._find_block_pairs()
        self.history: list[dict] | None = None
        # data-based visible biases from the last fit: Gibbs chains start from them
        self.visible_init: torch.Tensor | None = None

    # ------------------------------------------------------------------ structure
    @property
    def n_visible(self) -> int:
        return len(self.visible_index)

    @property
    def n_hidden(self) -> int:
        return len(self.hidden_index)

    @property
    def device(self) -> torch.device:
        return self.bias.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bias.dtype

    def extra_repr(self) -> str:
        return (f"nodes={self.n_nodes} (visible={self.n_visible}), edges={len(self.edges)}, "
                f"engine={self.plan.engine!r}")

    def _find_block_pairs(self) -> list[dict]:
        """Runs of edges between two colour classes (contiguous by the compiler's order)."""
        block_of = np.zeros(self.n_nodes, dtype=np.int64)
        pos = np.zeros(self.n_nodes, dtype=np.int64)
        for b, idx in enumerate(self.plan.block_index):
            block_of[idx] = b
            pos[idx] = np.arange(len(idx))
        pairs = []
        e = self._edges_np
        if len(e) == 0:
            return pairs
        bu, bv = block_of[e[:, 0]], block_of[e[:, 1]]
        start = 0
        m = len(e)
        while start < m:
            stop = start
            while stop < m and bu[stop] == bu[start] and bv[stop] == bv[start]:
                stop += 1
            p, q = int(bu[start]), int(bv[start])
            n_p = len(self.plan.block_index[p])
            n_q = len(self.plan.block_index[q])
            rows, cols = pos[e[start:stop, 0]], pos[e[start:stop, 1]]
            complete = (stop - start) == n_p * n_q  # row-major run: a view suffices
            pairs.append({
                "p": p, "q": q, "start": start, "stop": stop, "complete": complete,
                "rows": torch.as_tensor(rows, device=self.bias.device),
                "cols": torch.as_tensor(cols, device=self.bias.device),
                "shape": (n_p, n_q)})
            start = stop
        return pairs

    def _apply(self, fn, recurse=True):  # keep index tensors on the module's device
        out = super()._apply(fn, recurse)
        for pr in self._block_pairs:
            pr["rows"] = fn(pr["rows"]) if pr["rows"].is_floating_point() else pr["rows"].to(
                self.bias.device)
            pr["cols"] = fn(pr["cols"]) if pr["cols"].is_floating_point() else pr["cols"].to(
                self.bias.device)
        return out

    def block_weights(self) -> list[tuple[int, int, torch.Tensor]]:
        """``(p, q, W_pq)`` for every pair of colour classes joined by edges.

        ``W_pq[a, c]`` couples node ``blocks[p][a]`` with ``blocks[q][c]``; it is a view of
        ``weight`` for complete bipartite pairs (an RBM's W), a scatter otherwise.
        Differentiable with respect to ``weight``.
        """
        out = []
        for pr in self._block_pairs:
            w = self.weight[pr["start"]:pr["stop"]]
            if pr["complete"]:
                W = w.view(pr["shape"])
            else:
                W = torch.zeros(pr["shape"], dtype=w.dtype, device=w.device).index_put(
                    (pr["rows"], pr["cols"]), w)
            out.append((pr["p"], pr["q"], W))
        return out

    def coupling_matrix(self) -> torch.Tensor:
        """The dense symmetric coupling matrix ``J`` (n × n, zero diagonal), differentiable.

        >>> import pgm_boltz as pb
        >>> pb.compile(pb.graphs.rbm(2, 1), seed=0).coupling_matrix().shape
        torch.Size([3, 3])
        """
        n = self.n_nodes
        J = torch.zeros(n, n, dtype=self.dtype, device=self.device)
        if len(self._edges_np):
            u, v = self.edge_index
            J = J.index_put((u, v), self.weight).index_put((v, u), self.weight)
        return J

    # ------------------------------------------------------------------ energies
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(s)`` for full joint states ``x`` (values, shape (..., n)).

        >>> import torch, pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.fully_connected(2, domain="spin"), seed=0)
        >>> m.energy(torch.ones(1, 2)).shape
        torch.Size([1])
        """
        x = x.to(self.dtype)
        out = -(x * self.bias).sum(-1)
        if len(self._edges_np):
            u, v = self.edge_index
            out = out - (x[..., u] * x[..., v] * self.weight).sum(-1)
        return out

    def fields(self, x: torch.Tensor, index: np.ndarray | torch.Tensor | None = None
               ) -> torch.Tensor:
        """Local fields ``f_i = b_i + sum_j W_ij s_j`` for joint states ``x`` (..., n).

        ``index`` selects the nodes (all by default).
        """
        x = x.to(self.dtype)
        if len(self._edges_np):
            u, v = self.edge_index
            f = torch.zeros_like(x)
            f = f.index_add(-1, u, x[..., v] * self.weight).index_add(
                -1, v, x[..., u] * self.weight)
            f = f + self.bias
        else:
            f = self.bias.expand_as(x)
        if index is not None:
            f = f[..., torch.as_tensor(index, device=x.device)]
        return f

    # ------------------------------------------------------------------ data
    def encode_data(self, data: Any, name: str = "data") -> torch.Tensor:
        """Validate visible data (codes) and return their values, shape (N, n_visible).

        Accepts an array/tensor (N, n_visible) or (n_visible,), or a mapping from visible
        node name to a 1-D column. Raises DataError naming the column and row at fault.
        """
        if isinstance(data, Mapping):
            missing = [v for v in self.visible_nodes if v not in data]
            if missing:
                raise DataError(f"{name} mapping lacks visible node {missing[0]!r} "
                                f"({len(missing)} of {self.n_visible} missing)")
            extra = [k for k in data if k not in set(self.visible_nodes)]
            if extra:
                raise DataError(f"{name} mapping has key {extra[0]!r}, which is not a "
                                "visible node")
            cols = [np.asarray(torch.as_tensor(data[v]).cpu() if torch.is_tensor(data[v])
                               else data[v], dtype=np.float64) for v in self.visible_nodes]
            lengths = {c.shape for c in cols}
            if any(c.ndim != 1 for c in cols) or len(lengths) != 1:
                raise DataError(f"{name} mapping columns must be 1-D and of equal length, "
                                f"got shapes {sorted(lengths)}")
            arr = np.stack(cols, axis=1)
        else:
            if torch.is_tensor(data):
                arr = data.detach().cpu().to(torch.float64).numpy()
            else:
                try:
                    arr = np.asarray(data, dtype=np.float64)
                except (TypeError, ValueError) as err:
                    raise DataError(f"{name} is not numeric: {err}") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_visible:
            raise DataError(
                f"{name} has shape {tuple(arr.shape)}; expected (n_samples, {self.n_visible})"
                f" with columns in model.visible_nodes order")
        if arr.shape[0] == 0:
            raise DataError(f"{name} has no rows")
        bad = self.visible_domains.invalid_codes(arr)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            dom = self.visible_domains.domains[c]
            raise DataError(
                f"{name} row {r}, column {c} (node {self.visible_nodes[c]!r}) has value "
                f"{float(arr[r, c])!r}; the node's domain {dom.describe()} takes "
                f"{dom.codes_text()} ({int(bad.sum())} bad values in all)")
        t = torch.as_tensor(arr, dtype=self.dtype, device=self.device)
        return self.visible_domains.encode(t)

    def decode_visible(self, values: torch.Tensor) -> torch.Tensor:
        """Visible values back to data codes (spin ±1, levels 0..K-1)."""
        return self.visible_domains.decode(values)

    # ------------------------------------------------------------------ exact engine
    def _exact_problem(self, bias: torch.Tensor | None = None,
                       weight: torch.Tensor | None = None) -> _exact.ExactProblem:
        """The exact engine's arrays for the given parameters (the model's by default)."""
        self.plan.require_exact("exact log Z")
        with torch.no_grad():
            b = (self.bias if bias is None else bias).detach().to("cpu", torch.float64)
            w = (self.weight if weight is None else weight).detach().to("cpu", torch.float64)
            J = torch.zeros(self.n_nodes, self.n_nodes, dtype=torch.float64)
            if len(self._edges_np):
                u, v = torch.as_tensor(self._edges_np[:, 0]), torch.as_tensor(
                    self._edges_np[:, 1])
                J[u, v] = w
                J[v, u] = w
        return _exact.build_problem(self.domains, b.numpy(), J.numpy(), self.plan.enum_index)

    def log_partition_of(self, bias: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Exact ``log Z(b, w)`` for explicit parameter tensors (differentiable in both),
        e.g. when the parameters are sample sites of a Pyro model.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> bool(m.log_partition_of(m.bias, m.weight) == m.log_partition())
        True
        """
        return _ExactLogZ.apply(bias, weight, self)

    def log_partition(self, method: str = "exact", **kwargs: Any) -> torch.Tensor | LogPartition:
        """``log Z = log sum_x exp(-E(x))``.

        ``method="exact"`` (default) enumerates the plan's vertex cover and sums the rest
        out; it returns a differentiable scalar tensor whose gradient is the exact
        moments (``d log Z/d b_i = <s_i>``, ``d log Z/d W_ij = <s_i s_j>``), and raises
        IntractableError over the size threshold. ``method="ais"`` / ``"reverse-ais"``
        return a :class:`LogPartition` ``(value, stderr)`` estimate (see
        :mod:`pgm_boltz.estimate`).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> z = m.log_partition()
        >>> abs(float(z) - 5 * 0.6931) < 0.1
        True
        """
        if method == "exact":
            if kwargs:
                raise TypeError(f"unexpected arguments for method='exact': {sorted(kwargs)}")
            return _ExactLogZ.apply(self.bias, self.weight, self)
        from . import estimate

        return estimate.log_partition(self, method=method, **kwargs)

    def moments(self, all_pairs: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact ``(<s_i>, <s_i s_j>)`` over all nodes (n,), (n, n); ``<s_i^2>`` on the
        diagonal. ``all_pairs=False`` skips pairs of two summed-out nodes (left 0).

        >>> import pgm_boltz as pb
        >>> mean, second = pb.compile(pb.graphs.rbm(3, 2), seed=0).moments()
        >>> tuple(second.shape)
        (5, 5)
        """
        mom = _exact.exact_moments(self._exact_problem(), self.n_nodes, all_pairs=all_pairs)
        second = mom.second.copy()
        lo, step, K = self.domains.kinds_array()
        # <s_i^2>: spins 1, binary <s_i>; multinary from the enumeration is not tracked,
        # so compute the diagonal from the exact marginals when needed
        diag = np.where(lo == -1.0, 1.0, mom.mean)
        if (K > 2).any():
            marg = self.marginals()
            for i in np.flatnonzero(K > 2):
                vals = self.spec.domains[i].values()
                diag[i] = float((marg[self.nodes[i]] * vals ** 2).sum())
        second[np.arange(self.n_nodes), np.arange(self.n_nodes)] = diag
        t = lambda a: torch.as_tensor(a, dtype=self.dtype, device=self.device)
        return t(mom.mean), t(second)

    def marginals(self) -> dict[Hashable, np.ndarray]:
        """Exact single-node marginals ``P(s_i = level k)`` for every node (level order).

        For two-level domains this is ``[1 - p, p]``; multinary marginals come from the
        exact log Z of the model with the node's value clamped at each level.

        >>> import pgm_boltz as pb
        >>> marg = pb.compile(pb.graphs.rbm(2, 1), seed=0).marginals()
        >>> round(float(marg["v0"].sum()), 6)
        1.0
        """
        mom = _exact.exact_moments(self._exact_problem(), self.n_nodes)
        out: dict[Hashable, np.ndarray] = {}
        for i, node in enumerate(self.nodes):
            d = self.spec.domains[i]
            if d.levels == 2:
                p = (mom.mean[i] - d.lo) / d.step
                out[node] = np.array([1.0 - p, p])
            else:
                out[node] = self._clamped_marginal(i)
        return out

    def _clamped_marginal(self, i: int) -> np.ndarray:
        """``P(s_i = level k)`` from ``log Z`` with node i clamped at each level k:
        ``log Z_k = b_i s_k + log Z_rest(b_rest + J[rest, i] s_k)``."""
        problem = self._exact_problem()
        with torch.no_grad():
            b = self.bias.detach().cpu().double().numpy()
            J = self.coupling_matrix().detach().cpu().double().numpy()
        rest = np.setdiff1d(np.arange(self.n_nodes), [i])
        enum_rest = np.searchsorted(rest, np.setdiff1d(problem.enum, [i]))
        dv = DomainVector([self.spec.domains[j] for j in rest])
        logz = []
        for s_k in self.spec.domains[i].values():
            sub = _exact.build_problem(dv, b[rest] + J[rest, i] * s_k,
                                       J[np.ix_(rest, rest)], enum_rest)
            logz.append(b[i] * s_k + _exact.exact_log_partition(sub))
        logz = np.array(logz)
        return np.exp(logz - np.logaddexp.reduce(logz))

    # ------------------------------------------------------------------ free energy
    def free_energy(self, v: Any) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))`` for visible data ``v`` (codes), shape (N,).

        Hidden units that are conditionally independent given the visible ones are summed
        out in closed form, ``F(v) = -b_v.v - sum_{visible edges} W v v - sum_j A_j(f_j(v))``;
        the plan's ``hidden_enumerated`` nodes are enumerated per row. Differentiable.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> m.free_energy([[0, 1, 1]]).shape
        torch.Size([1])
        """
        return self._free_energy_values(self.encode_data(v, "v"))

    def _free_energy_values(self, sv: torch.Tensor) -> torch.Tensor:
        n = self.n_nodes
        N = sv.shape[0]
        x = torch.zeros(N, n, dtype=self.dtype, device=self.device)
        vi = torch.as_tensor(self.visible_index, device=self.device)
        x = x.index_copy(1, vi, sv)
        if self.n_hidden == 0:
            return self.energy(x)
        h_enum = self.plan.hidden_enum_index
        hidden = self.hidden_index
        summed = np.setdiff1d(hidden, h_enum)
        si = torch.as_tensor(summed, device=self.device)
        dv_s = DomainVector([self.spec.domains[i] for i in summed])
        if len(h_enum) == 0:
            f = self.fields(x, si)
            return self.energy(x) - dv_s.log_normalizer(f).sum(-1)
        # enumerate the states of the hidden vertex cover for every row, in chunks
        states = self._enumerate_values(h_enum)
        ns = states.shape[0]
        if ns > self.plan.max_exact_states:
            raise IntractableError(
                f"free energy enumerates {ns:,} hidden states per row, over the threshold "
                f"({self.plan.max_exact_states:,}); use a Gibbs-based estimate")
        hi = torch.as_tensor(h_enum, device=self.device)
        chunk = max(1, _FREE_ENERGY_CHUNK // max(1, N * n))
        parts = []
        for c0 in range(0, ns, chunk):
            st = states[c0:c0 + chunk]
            xs = x.unsqueeze(1).expand(N, st.shape[0], n).index_copy(
                2, hi, st.unsqueeze(0).expand(N, -1, -1))
            lw = -self.energy(xs)
            if len(summed):
                lw = lw + dv_s.log_normalizer(self.fields(xs, si)).sum(-1)
            parts.append(lw)
        return -torch.logsumexp(torch.cat(parts, dim=1), dim=1)

    def _enumerate_values(self, index: np.ndarray) -> torch.Tensor:
        vals = [torch.as_tensor(self.spec.domains[i].values(), dtype=self.dtype,
                                device=self.device) for i in index]
        total = math.prod(len(v) for v in vals)
        if total > self.plan.max_exact_states:
            raise IntractableError(f"enumerating {total:,} states is over the threshold "
                                   f"({self.plan.max_exact_states:,})")
        return torch.cartesian_prod(*vals).reshape(total, len(vals))

    def log_prob(self, v: Any, log_partition: Any = None) -> torch.Tensor:
        """``log P(v) = -F(v) - log Z`` for visible data (codes), hidden units summed out.

        Exact by default (differentiable; gradient = data moments minus model moments).
        Pass ``log_partition`` (a float, tensor or :class:`LogPartition` estimate) for
        models too large for exact log Z.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> import torch
        >>> p = m.log_prob([[0, 0], [0, 1], [1, 0], [1, 1]]).exp().sum()
        >>> round(float(p), 6)
        1.0
        """
        if log_partition is None:
            logz = self.log_partition()
        else:
            val = log_partition.value if isinstance(log_partition, LogPartition) \
                else log_partition
            logz = torch.as_tensor(val, dtype=self.dtype, device=self.device)
        return -self.free_energy(v) - logz

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, method: str | None = None,
               return_hidden: bool = False, **kwargs: Any) -> torch.Tensor:
        """``n`` draws of the visible units (codes), shape (n, n_visible).

        ``method=None`` follows the plan: ``"exact"`` draws independent exact samples
        (categorical over the enumerated states, then the summed-out nodes from their
        conditionals); ``"gibbs"`` runs ``n`` independent block-Gibbs chains (keyword
        ``steps``, see :func:`pgm_boltz.engines.gibbs.sample`). ``return_hidden=True``
        returns full joint states (all n nodes, codes) instead.

        >>> import pgm_boltz as pb
        >>> pb.compile(pb.graphs.rbm(3, 2), seed=0).sample(4, seed=1).shape
        torch.Size([4, 3])
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"n must be a positive integer, got {n!r}")
        method = method or ("exact" if self.plan.engine == "exact" else "gibbs")
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        if method == "exact":
            if kwargs:
                raise TypeError(f"unexpected arguments for method='exact': {sorted(kwargs)}")
            x = self._exact_sample(n, gen)
        elif method == "gibbs":
            from .engines import gibbs

            x = gibbs.sample(self, n, seed=seed, **kwargs)
        else:
            raise DataError(f"unknown sampling method {method!r}; use 'exact' or 'gibbs'")
        if return_hidden:
            return self.domains.decode(x)
        return self.decode_visible(x[:, torch.as_tensor(self.visible_index,
                                                         device=x.device)])

    def _exact_sample(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        problem = self._exact_problem()
        logz = _exact.exact_log_partition(problem)
        xe = _exact.exact_sample_enumerated(problem, logz, n, gen)
        x = torch.zeros(n, self.n_nodes, dtype=torch.float64)
        x[:, torch.as_tensor(problem.enum)] = torch.as_tensor(xe)
        with torch.no_grad():
            S = problem.summed
            if len(S):
                b = self.bias.detach().cpu().double()
                J = self.coupling_matrix().detach().cpu().double()
                f = b[S] + x @ J[:, S]
                dv = DomainVector([self.spec.domains[i] for i in S])
                x[:, torch.as_tensor(S)] = dv.sample(f, gen)
        return x.to(self.device, self.dtype)

    def condition(self, evidence: Mapping[Hashable, Any], **kwargs: Any):
        """The law of the other nodes given ``evidence`` ``{node: code}``: a
        :class:`~pgm_boltz.conditioning.ConditionedModel` with ``sample``, ``marginals``,
        ``log_partition`` (exact or Gibbs by the usual planning rules).

        >>> import pgm_boltz as pb
        >>> pb.compile(pb.graphs.rbm(3, 2), seed=0).condition({"v0": 1}).free_nodes
        ['v1', 'v2', 'h0', 'h1']
        """
        from .conditioning import condition

        return condition(self, evidence, **kwargs)

    # ------------------------------------------------------------------ training
    def fit(self, data: Any, method: str = "auto", **kwargs: Any) -> list[dict]:
        """Train on visible data; see :func:`pgm_boltz.training.fit` for the options.

        Returns the history (a list of per-epoch dicts, also kept as ``model.history``).
        """
        from .training import fit

        return fit(self, data, method=method, **kwargs)

    # ------------------------------------------------------------------ interop
    def to_networkx(self) -> nx.Graph:
        """The declared graph with the learned values as ``weight``/``bias`` attributes.

        >>> import pgm_boltz as pb
        >>> G = pb.compile(pb.graphs.rbm(2, 1), seed=0).to_networkx()
        >>> sorted(G.nodes["v0"])
        ['bias', 'domain', 'role']
        """
        G = self.spec.graph.copy()
        b = self.bias.detach().cpu().double().tolist()
        w = self.weight.detach().cpu().double().tolist()
        for node, val in zip(self.nodes, b):
            G.nodes[node]["bias"] = val
        for (u, v), val in zip(self.edges, w):
            G.edges[u, v]["weight"] = val
        return G

    def to_pyro(self, **kwargs: Any):
        """The distribution of the visible units as a Pyro ``TorchDistribution``."""
        from .pyro import BoltzmannDistribution

        return BoltzmannDistribution(self, **kwargs)
