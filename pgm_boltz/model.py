"""The core model: parameters, energy, local fields, free energy and data codes.

Parameters are the declared graph's own: one bias per node (``bias``, shape (n,)), one
weight per edge (``weight``, shape (m,), edges in ``model.edges`` order) and, when some
nodes have a quadratic self-term (Gaussian units, and multinary or finite units declared
with ``precision=``), one log-precision per such node (``log_precision``, shape
(n_quadratic,), nodes ``quadratic_index``). The energy of a joint state ``s`` (values in
each node's domain) is

    E(s) = - sum_{(i,j) in edges} W_ij s_i s_j - sum_i b_i s_i + sum_i q_i s_i^2 / 2,
    P(s) = exp(-E(s)) / Z,

with ``q_i = exp(log_precision_i)`` at the quadratic nodes and 0 elsewhere (a density
over Gaussian units' values). A precision declared as 0 (allowed for discrete units) is
stored as :data:`MIN_PRECISION` (``log_precision = log 1e-6``): the energy then differs
from no term by at most ``5e-7 s^2``, and learning can raise it, though a log-precision's
gradient scales with the precision, so plain SGD moves it slowly from there (Adam's
steps do not depend on the gradient's scale; or declare a positive start such as 1).
Models without quadratic nodes have no ``log_precision`` (it is None) and compute
exactly as before.

Couplings are applied by structure: between two colour classes the weights form a block
matrix ``W_pq`` (a zero-copy view of ``weight`` for complete bipartite pairs such as an
RBM's, a scatter into an ``n_p × n_q`` matrix otherwise), applied as matrix products;
with sparse storage one sparse ``n × n`` matrix is applied instead. Memory is
O(rows × units + edges), never rows × edges, and row batches are chunked.

Exact work goes to the plan's exact engine (:mod:`pgm_boltz.engines`): ``log Z``
(differentiable: its gradient is the exact moments), moments, marginals, exact samples,
and the free energy's hidden part when hidden units are coupled among themselves.

This module imports nothing above the engines: training, inference, sampling and Pyro
live in higher layers, and the user-facing :class:`pgm_boltz.BoltzmannMachine` (in
:mod:`pgm_boltz.machine`) adds them as methods.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import nn

from ._validation import check_bool, make_generator, stack_columns
from .compiler import Plan, Spec, hidden_problem
from .domains import DomainVector
from .engines import Problem, get_engine
from .errors import ArgumentError, DataError
from .results import LogPartition

__all__ = ["MIN_PRECISION", "EnergyModel"]

#: Elements per temporary when row batches are chunked (free energies, fields).
ROW_CHUNK_ELEMENTS = 1 << 24
#: The stored precision of a quadratic term declared with ``precision=0``.
MIN_PRECISION = 1e-6


class EnergyModel(nn.Module):
    """A compiled pairwise energy model (the core of :class:`pgm_boltz.BoltzmannMachine`).

    Attributes
    ----------
    plan: the compiler's :class:`~pgm_boltz.compiler.Plan`; spec: the validated
        declaration (:class:`~pgm_boltz.compiler.Spec`).
    nodes: all node names in graph order; ``visible_nodes``, ``hidden_nodes`` likewise.
    edges: edge name pairs, aligned with ``weight``; ``edge_array``: the same as node
        indices, an (m, 2) int64 array.
    bias: ``nn.Parameter`` (n,); weight: ``nn.Parameter`` (m,).
    log_precision: ``nn.Parameter`` (n_quadratic,) of the nodes ``quadratic_index`` (the
        nodes with a quadratic self-term ``q s^2 / 2``, ``q = exp(log_precision)``), or
        None when no node has one.
    visible_init: learned state set by ``fit``: the biases of the independent-unit model
        of the training data's visible means (None before any fit); Gibbs chains and AIS
        base models start from it.

    Examples
    --------
    >>> import pgm_boltz as pb
    >>> model = pb.compile(pb.graphs.rbm(4, 2), seed=0)
    >>> model.n_visible, model.n_hidden, tuple(model.weight.shape)
    (4, 2, (8,))
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
        self.edge_array = spec.edges.astype(np.int64)
        self.edges = [(self.nodes[i], self.nodes[j]) for i, j in self.edge_array]
        self.domains = DomainVector(spec.domains)
        self.visible_domains = DomainVector([spec.domains[i] for i in self.visible_index])
        self.hidden_domains = DomainVector([spec.domains[i] for i in self.hidden_index])
        gen = make_generator(0 if seed is None else seed)
        w0 = torch.randn(len(self.edge_array), generator=gen, dtype=torch.float64) * init_scale
        declared_w = torch.as_tensor(spec.init_weight)
        w0 = torch.where(torch.isnan(declared_w), w0, declared_w)
        b0 = torch.as_tensor(spec.init_bias)
        b0 = torch.where(torch.isnan(b0), torch.zeros_like(b0), b0)
        self.bias = nn.Parameter(b0.to(device=device, dtype=dtype))
        self.weight = nn.Parameter(w0.to(device=device, dtype=dtype))
        prec = np.asarray(spec.init_precision, dtype=np.float64)
        #: nodes with a quadratic self-term, in node order (``log_precision`` follows it)
        self.quadratic_index = np.flatnonzero(~np.isnan(prec)).astype(np.int64)
        if len(self.quadratic_index):
            lp = np.log(np.maximum(prec[self.quadratic_index], MIN_PRECISION))
            self.log_precision = nn.Parameter(torch.as_tensor(lp).to(device=device,
                                                                      dtype=dtype))
        else:
            self.register_parameter("log_precision", None)
        self.register_buffer("edge_index",
                             torch.as_tensor(self.edge_array.T.copy()).to(device),
                             persistent=False)
        self.register_buffer("visible_init", None)
        self._block_pairs = self._find_block_pairs()
        self._problem = Problem(spec.domains, self.edge_array)
        self._hidden_problem, _ = hidden_problem(spec)
        self._index_cache: dict[tuple, torch.Tensor] = {}

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

    @property
    def has_quadratic(self) -> bool:
        """Whether some node has a quadratic self-term (a ``log_precision``)."""
        return self.log_precision is not None

    def precisions(self, log_precision: torch.Tensor | None = None) -> torch.Tensor | None:
        """``q`` (n,): ``exp(log_precision)`` at the quadratic nodes, 0 elsewhere
        (differentiable), or None when no node has a quadratic term. ``log_precision``
        replaces the model's parameter (e.g. a sample site of a prior).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1, domain="gaussian"), seed=0)
        >>> m.precisions().tolist()
        [1.0, 1.0, 0.0]
        """
        lp = self.log_precision if log_precision is None else log_precision
        if lp is None:
            return None
        q = torch.zeros(self.n_nodes, dtype=lp.dtype, device=lp.device)
        return q.index_put((self._quad_index(lp.device),), torch.exp(lp))

    def _quad_index(self, device: torch.device) -> torch.Tensor:
        key = ("quadratic", device)
        if key not in self._index_cache:
            self._index_cache[key] = torch.as_tensor(self.quadratic_index, device=device)
        return self._index_cache[key]

    def precisions_at(self, index: np.ndarray | torch.Tensor | str,
                      q: torch.Tensor | None = None) -> torch.Tensor | None:
        """``q`` of the nodes ``index`` (``"visible"``, ``"hidden"`` or indices), or None
        when none of them has a quadratic term (so their conditionals use the closed
        forms). ``q``: the full vector of :meth:`precisions` when the caller has it."""
        if self.log_precision is None:
            return None
        if isinstance(index, str):
            idx_np = self.visible_index if index == "visible" else self.hidden_index
        else:
            idx_np = np.asarray(index.cpu() if torch.is_tensor(index) else index,
                                dtype=np.int64).reshape(-1)
        if not np.isin(idx_np, self.quadratic_index).any():
            return None
        q = self.precisions() if q is None else q
        return q[torch.as_tensor(idx_np, device=q.device)]

    def quadratic_energy(self, x: torch.Tensor, q: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """``sum_i q_i s_i^2 / 2`` of joint states ``x`` (..., n) (0 without quadratic
        nodes)."""
        if self.log_precision is None:
            return torch.zeros(x.shape[:-1], dtype=self.dtype, device=x.device)
        qi = self._quad_index(x.device)
        qq = torch.exp(self.log_precision) if q is None else q[qi]
        xq = x.to(self.dtype).index_select(-1, qi)
        return 0.5 * (xq * xq * qq).sum(-1)

    @property
    def problem(self) -> Problem:
        """The model's structure as an engine :class:`~pgm_boltz.engines.Problem`."""
        return self._problem

    def extra_repr(self) -> str:
        return (f"nodes={self.n_nodes} (visible={self.n_visible}), edges={len(self.edges)}, "
                f"engine={self.plan.engine!r}")

    def index(self, which: str | np.ndarray) -> torch.Tensor:
        """Node indices as a tensor on the model's device (cached for ``"visible"`` and
        ``"hidden"``)."""
        if isinstance(which, str):
            key = (which, self.device)
            if key not in self._index_cache:
                arr = self.visible_index if which == "visible" else self.hidden_index
                self._index_cache[key] = torch.as_tensor(arr, device=self.device)
            return self._index_cache[key]
        return torch.as_tensor(np.asarray(which, dtype=np.int64), device=self.device)

    def _find_block_pairs(self) -> list[dict]:
        """Runs of edges between two colour classes (contiguous by the compiler's order)."""
        block_of = np.zeros(self.n_nodes, dtype=np.int64)
        pos = np.zeros(self.n_nodes, dtype=np.int64)
        for b, idx in enumerate(self.plan.block_index):
            block_of[idx] = b
            pos[idx] = np.arange(len(idx))
        pairs: list[dict] = []
        e = self.edge_array
        if len(e) == 0:
            return pairs
        bu, bv = block_of[e[:, 0]], block_of[e[:, 1]]
        change = np.flatnonzero((np.diff(bu) != 0) | (np.diff(bv) != 0)) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [len(e)]])
        for start, stop in zip(starts.tolist(), stops.tolist()):
            p, q = int(bu[start]), int(bv[start])
            ip, iq = self.plan.block_index[p], self.plan.block_index[q]
            rows, cols = pos[e[start:stop, 0]], pos[e[start:stop, 1]]
            complete = (stop - start) == len(ip) * len(iq)  # row-major run: a view
            pairs.append({
                "p": p, "q": q, "start": start, "stop": stop, "complete": complete,
                "rows": torch.as_tensor(rows, device=self.bias.device),
                "cols": torch.as_tensor(cols, device=self.bias.device),
                "shape": (len(ip), len(iq)),
                "ip": _as_index(ip, self.bias.device), "iq": _as_index(iq, self.bias.device)})
        return pairs

    def _apply(self, fn, recurse=True):  # keep the index tensors on the module's device
        out = super()._apply(fn, recurse)
        dev = self.bias.device
        for pr in self._block_pairs:
            for key in ("rows", "cols"):
                pr[key] = pr[key].to(dev)
            for key in ("ip", "iq"):
                if torch.is_tensor(pr[key]):
                    pr[key] = pr[key].to(dev)
        self._index_cache = {}
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
        return self._problem.coupling_matrix(self.weight)

    def _sparse_coupling(self) -> torch.Tensor:
        """``J`` as a sparse (n × n) COO tensor (both directions), differentiable in
        ``weight``."""
        u, v = self.edge_index
        idx = torch.stack([torch.cat([u, v]), torch.cat([v, u])])
        vals = torch.cat([self.weight, self.weight])
        return torch.sparse_coo_tensor(idx, vals, (self.n_nodes, self.n_nodes),
                                       check_invariants=False)  # indices built just above

    # ------------------------------------------------------------------ energies
    def _couple(self, x: torch.Tensor, targets: set[int] | None = None) -> torch.Tensor:
        """``sum_j W_ij s_j`` for every node (rows of ``x``), by structure; only the
        colour classes in ``targets`` are filled when given (others left 0)."""
        if self.plan.storage == "sparse":
            if not len(self.edge_array):
                return torch.zeros_like(x)
            flat = x.reshape(-1, self.n_nodes)
            out = torch.sparse.mm(self._sparse_coupling(), flat.t()).t()
            return out.reshape(x.shape)
        f = torch.zeros_like(x)
        for (p, q, W), pr in zip(self.block_weights(), self._block_pairs):
            xp, xq = _take(x, pr["ip"]), _take(x, pr["iq"])
            if targets is None or q in targets:
                f = _add_at(f, pr["iq"], xp @ W)
            if targets is None or p in targets:
                f = _add_at(f, pr["ip"], xq @ W.t())
        return f

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(s)`` for full joint states ``x`` (values, shape (..., n)), quadratic
        self-terms included.

        >>> import torch, pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.fully_connected(2, domain="spin"), seed=0)
        >>> m.energy(torch.ones(1, 2)).shape
        torch.Size([1])
        """
        x = x.to(self.dtype)
        out = -(x * self.bias).sum(-1)
        if self.log_precision is not None:
            out = out + self.quadratic_energy(x)
        if not len(self.edge_array):
            return out
        if self.plan.storage == "sparse":
            return out - 0.5 * (self._couple(x) * x).sum(-1)
        for (_, _, W), pr in zip(self.block_weights(), self._block_pairs):
            out = out - ((_take(x, pr["ip"]) @ W) * _take(x, pr["iq"])).sum(-1)
        return out

    def fields(self, x: torch.Tensor, index: np.ndarray | torch.Tensor | None = None
               ) -> torch.Tensor:
        """Local fields ``f_i = b_i + sum_j W_ij s_j`` for joint states ``x`` (..., n),
        by block matrix products (or one sparse product); ``index`` selects nodes.

        >>> import torch, pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> m.fields(torch.ones(4, 5), m.hidden_index).shape
        torch.Size([4, 2])
        """
        x = x.to(self.dtype)
        targets = None
        if index is not None and self.plan.storage != "sparse":
            idx_np = np.asarray(index.cpu() if torch.is_tensor(index) else index)
            targets = {b for b, ix in enumerate(self.plan.block_index)
                       if np.isin(ix, idx_np).any()}
        f = self._couple(x, targets) + self.bias
        if index is not None:
            f = f[..., torch.as_tensor(index, device=x.device)]
        return f

    # ------------------------------------------------------------------ data
    def encode_data(self, data: Any, name: str = "data") -> torch.Tensor:
        """Validate visible data (codes) and return their values, shape (N, n_visible).

        Accepts an array/tensor (N, n_visible) or (n_visible,) whose columns follow
        ``model.visible_nodes``; a mapping from visible node name to a 1-D column; or a
        pandas DataFrame, whose columns are matched to the visible nodes by name (in any
        order). Raises DataError naming the column, row or name at fault.
        """
        arr = self._as_array(data, name)
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

    def _as_array(self, data: Any, name: str) -> np.ndarray:
        """Data as a float64 array with columns in visible-node order (named inputs
        matched by name)."""
        if hasattr(data, "columns") and hasattr(data, "to_numpy") and \
                not isinstance(data, Mapping):  # a pandas DataFrame
            cols = list(data.columns)
            return self._by_name(name, cols, lambda k: data[k].to_numpy(), "column")
        if isinstance(data, Mapping):
            return self._by_name(name, list(data), lambda k: data[k], "key")
        if torch.is_tensor(data):
            return data.detach().cpu().to(torch.float64).numpy()
        try:
            return np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name} is not numeric: {err}") from None

    def _by_name(self, name: str, keys: list, column: Any, noun: str) -> np.ndarray:
        visible = set(self.visible_nodes)
        extra = [k for k in keys if k not in visible]
        if extra:
            raise DataError(f"{name} has {noun} {extra[0]!r}, which is not a visible node "
                            f"({len(extra)} unknown {noun}(s); visible nodes are "
                            "model.visible_nodes)")
        missing = [v for v in self.visible_nodes if v not in set(keys)]
        if missing:
            raise DataError(f"{name} lacks visible node {missing[0]!r} "
                            f"({len(missing)} of {self.n_visible} missing)")
        return stack_columns(self.visible_nodes, column, name)

    def decode_visible(self, values: torch.Tensor) -> torch.Tensor:
        """Visible values back to data codes (spin ±1, levels 0..K-1)."""
        return self.visible_domains.decode(values)

    def visible_state(self, values: torch.Tensor) -> torch.Tensor:
        """Joint states (N, n) holding visible ``values`` and zeros for hidden units."""
        x = torch.zeros(values.shape[0], self.n_nodes, dtype=self.dtype, device=self.device)
        return x.index_copy(1, self.index("visible"), values.to(self.dtype))

    # ------------------------------------------------------------------ exact engine
    def _engine(self, what: str, bias: torch.Tensor | None = None,
                weight: torch.Tensor | None = None):
        self.plan.require_exact(what)
        assert self.plan.exact is not None
        self._check_magnitude(what, self.bias if bias is None else bias,
                              self.weight if weight is None else weight)
        return get_engine(self.plan.exact.engine), self.plan.exact

    def _check_magnitude(self, what: str, bias: torch.Tensor, weight: torch.Tensor) -> None:
        """Refuse parameters whose log-weights could overflow float64 (the exact engines
        would return NaN or infinities). A state's log-weight is bounded by
        ``B = sum_i |b_i| max|s_i| + sum_ij |W_ij| max|s_i| max|s_j|`` over the discrete
        units (continuous units count as ``max|s| = 0``: their integrals are closed-form);
        exact work is done in float64 while ``B`` stays under 1e300, and refused
        (DataError) past it."""
        with torch.no_grad():
            if not hasattr(self, "_max_abs_value"):
                # continuous units are integrated in closed form (their Gaussian
                # integrals are finite whenever the precision is positive), so the bound
                # covers the discrete units' terms only.
                self._max_abs_value = torch.as_tensor(
                    [0.0 if not math.isfinite(max(abs(r) for r in d.value_range()))
                     else max(abs(r) for r in d.value_range()) for d in self.spec.domains],
                    dtype=torch.float64)
            s = self._max_abs_value
            b = bias.detach().to("cpu", torch.float64).abs()
            bound = float((b * s).sum())
            if len(self.edge_array):
                e = self.edge_array
                w = weight.detach().to("cpu", torch.float64).abs()
                bound += float((w * s[e[:, 0]] * s[e[:, 1]]).sum())
        if not math.isfinite(bound) or bound > 1e300:
            raise DataError(f"{what}: the parameters are too large for exact work in float64 "
                            f"(a state's log-weight could reach {bound:.3g}; largest |bias| "
                            f"{float(bias.detach().abs().max()):.3g}, largest |weight| "
                            f"{float(weight.detach().abs().max()) if weight.numel() else 0:.3g})"
                            "; non-finite or huge parameters usually come from a diverged "
                            "fit: rescale or retrain them")

    def _quad_kw(self, q: torch.Tensor | None) -> dict:
        """``{"quad": q}`` for models with quadratic terms (engines get ``quad`` only then)."""
        return {} if q is None else {"quad": q}

    def log_partition_of(self, bias: torch.Tensor, weight: torch.Tensor,
                         log_precision: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log Z(b, w[, log_precision])`` for explicit parameter tensors
        (differentiable in all), e.g. when the parameters are sample sites of a Pyro model;
        ``log_precision`` defaults to the model's.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> bool(m.log_partition_of(m.bias, m.weight) == m.log_partition())
        True
        """
        engine, cost = self._engine("exact log Z", bias, weight)
        q = self.precisions(log_precision)
        return engine.log_partition(cost, self._problem, bias, weight, **self._quad_kw(q))

    def exact_log_partition(self) -> torch.Tensor:
        """Exact ``log Z`` of the model's parameters: a differentiable scalar whose
        gradient is the exact moments (``d/d b_i = <s_i>``, ``d/d W_ij = <s_i s_j>``,
        ``d/d log q_i = -q_i <s_i^2> / 2``)."""
        return self.log_partition_of(self.bias, self.weight)

    def _detached_quad(self) -> dict:
        q = self.precisions()
        return self._quad_kw(None if q is None else q.detach())

    def moments(self, all_pairs: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact ``(<s_i>, <s_i s_j>)`` over all nodes (n,), (n, n); ``<s_i^2>`` on the
        diagonal. ``all_pairs=False`` skips pairs that share no edge where the engine
        would need extra work for them (left 0).

        >>> import pgm_boltz as pb
        >>> mean, second = pb.compile(pb.graphs.rbm(3, 2), seed=0).moments()
        >>> tuple(second.shape)
        (5, 5)
        """
        check_bool("all_pairs", all_pairs, where="moments")
        engine, cost = self._engine("exact moments")
        _, mean, second = engine.moments(cost, self._problem, self.bias.detach(),
                                         self.weight.detach(), all_pairs=all_pairs,
                                         **self._detached_quad())
        t = lambda a: torch.as_tensor(a, dtype=self.dtype, device=self.device)
        return t(mean), t(second)

    def marginals(self) -> dict[Hashable, np.ndarray]:
        """Exact single-node marginals ``P(s_i = level k)`` for every discrete node
        (level order); continuous (Gaussian) nodes have none (see :meth:`moments`).

        >>> import pgm_boltz as pb
        >>> marg = pb.compile(pb.graphs.rbm(2, 1), seed=0).marginals()
        >>> round(float(marg["v0"].sum()), 6)
        1.0
        """
        engine, cost = self._engine("exact marginals")
        nodes = [i for i, d in enumerate(self.spec.domains) if d.discrete]
        marg = engine.marginals(cost, self._problem, self.bias.detach(), self.weight.detach(),
                                nodes, **self._detached_quad())
        return {self.nodes[i]: p for i, p in zip(nodes, marg)}

    def exact_sample_values(self, n: int, generator: torch.Generator | None = None
                            ) -> torch.Tensor:
        """``n`` independent exact draws of every node (values, (n, n_nodes))."""
        engine, cost = self._engine("exact sampling")
        x = engine.sample(cost, self._problem, self.bias.detach(), self.weight.detach(), n,
                          generator, **self._detached_quad())
        return x.to(self.device, self.dtype)

    # ------------------------------------------------------------------ free energy
    def free_energy(self, v: Any) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))`` for visible data ``v`` (codes), shape (N,).

        Hidden units whose neighbours are all visible are summed out in closed form,
        ``F(v) = -b_v.v - sum_{visible edges} W v v + sum_v q_v v^2 / 2
        - sum_j A_j(f_j(v); q_j)`` (Gaussian hidden units integrated:
        ``A_j = f_j^2 / (2 q_j) + ½ log(2π / q_j)``); hidden units
        coupled among themselves are summed out by the plan's exact engine per row
        (``log Z`` of the hidden subgraph with biases ``b_h + W_hv v``). Differentiable.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> m.free_energy([[0, 1, 1]]).shape
        torch.Size([1])
        """
        return self.free_energy_values(self.encode_data(v, "v"))

    def free_energy_values(self, sv: torch.Tensor) -> torch.Tensor:
        """:meth:`free_energy` of visible *values* (N, n_visible), chunked over rows so
        temporaries stay within ``ROW_CHUNK_ELEMENTS``."""
        sv = sv.to(self.device, self.dtype)
        rows = sv.shape[0]
        chunk = max(1, ROW_CHUNK_ELEMENTS // max(1, self.n_nodes))
        if rows <= chunk:
            return self._free_energy_rows(sv)
        return torch.cat([self._free_energy_rows(sv[r:r + chunk])
                          for r in range(0, rows, chunk)])

    def _free_energy_rows(self, sv: torch.Tensor) -> torch.Tensor:
        if self.n_hidden and self._hidden_problem is None and self.plan.storage == "dense":
            return self._free_energy_blocks(sv)
        x = self.visible_state(sv)
        if self.n_hidden == 0:
            return self.energy(x)
        f = self.fields(x, self.hidden_index)
        q_h = self.precisions_at("hidden")
        if self._hidden_problem is None:
            return self.energy(x) - self.hidden_domains.log_normalizer(f, q_h).sum(-1)
        hidden_cost = self.plan.hidden
        assert hidden_cost is not None
        hidden_cost.require("the free energy (its hidden units are coupled)")
        engine = get_engine(hidden_cost.engine)
        w_hh = self.weight[self._hidden_edge_ids()]
        return self.energy(x) - engine.log_partition(hidden_cost, self._hidden_problem, f,
                                                     w_hh, **self._quad_kw(q_h))

    def _free_energy_blocks(self, sv: torch.Tensor) -> torch.Tensor:
        """The closed-form free energy from the visible values alone, block by block:
        ``-b_v.v + q_v.v^2/2 - sum_{visible pairs} v W v - sum_j A_j(b_j + sum_{visible i}
        W_ij v_i; q_j)`` (one matmul per block pair that touches a visible node; an RBM:
        one ``v W``; ``q`` the precisions, where units have them)."""
        vis, hid = self._role_positions()
        b = self.bias
        out = -(sv @ _take(b, vis["all"]))
        q_v, q_h = self.precisions_at("visible"), self.precisions_at("hidden")
        if q_v is not None:
            out = out + 0.5 * (sv * sv) @ q_v
        f = _take(b, hid["all"]).expand(sv.shape[0], -1).clone()
        for (_, _, W), roles in zip(self.block_weights(), self._pair_roles()):
            (vp, vpc), (hp, hpc), (vq, vqc), (hq, hqc) = roles
            if vp is not None and vq is not None:  # visible-visible couplings
                Wvv = _take(_take_rows(W, vp), vq)
                out = out - ((_take(sv, vpc) @ Wvv) * _take(sv, vqc)).sum(-1)
            if vp is not None and hq is not None:
                f = _add_at(f, hqc, _take(sv, vpc) @ _take(_take_rows(W, vp), hq))
            if vq is not None and hp is not None:
                f = _add_at(f, hpc, _take(sv, vqc) @ _take(_take_rows(W, hp), vq).t())
        return out - self.hidden_domains.log_normalizer(f, q_h).sum(-1)

    def _role_positions(self) -> tuple[dict, dict]:
        """Column positions of the visible / hidden nodes among all nodes (``"all"``)."""
        key = ("roles", self.device)
        if key not in self._index_cache:
            self._index_cache[key] = (
                {"all": _as_index(self.visible_index, self.device)},
                {"all": _as_index(self.hidden_index, self.device)})
        return self._index_cache[key]

    def _pair_roles(self) -> list[tuple]:
        """Per block pair ``(p, q)``: for each side, (positions in the block, columns among
        the visible or hidden values) of its visible and of its hidden nodes, or Nones."""
        key = ("pair_roles", self.device)
        if key not in self._index_cache:
            col_v = np.full(self.n_nodes, -1)
            col_v[self.visible_index] = np.arange(self.n_visible)
            col_h = np.full(self.n_nodes, -1)
            col_h[self.hidden_index] = np.arange(self.n_hidden)
            out = []
            for pr in self._block_pairs:
                sides = []
                for blk in (self.plan.block_index[pr["p"]], self.plan.block_index[pr["q"]]):
                    for col in (col_v, col_h):
                        pos = np.flatnonzero(col[blk] >= 0)
                        sides.append((None, None) if not len(pos) else (
                            _as_index(pos, self.device), _as_index(col[blk][pos], self.device)))
                out.append(tuple(sides))
            self._index_cache[key] = out
        return self._index_cache[key]

    def _hidden_edge_ids(self) -> torch.Tensor:
        key = ("hidden_edges", self.device)
        if key not in self._index_cache:
            is_h = np.zeros(self.n_nodes, dtype=bool)
            is_h[self.hidden_index] = True
            e = self.edge_array
            ids = np.flatnonzero(is_h[e[:, 0]] & is_h[e[:, 1]])
            self._index_cache[key] = torch.as_tensor(ids, device=self.device)
        return self._index_cache[key]

    def log_prob(self, v: Any, log_partition: Any = None) -> torch.Tensor:
        """``log P(v) = -F(v) - log Z`` for visible data (codes), hidden units summed out.

        For Gaussian visible units this is a log-*density* in their values (with respect
        to Lebesgue measure on those coordinates, counting measure on discrete ones), so
        it may be positive. Exact by default (differentiable; gradient = data moments
        minus model moments). Pass ``log_partition`` (a float, tensor or
        :class:`~pgm_boltz.LogPartition` estimate) for models too large for exact log Z.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> p = m.log_prob([[0, 0], [0, 1], [1, 0], [1, 1]]).exp().sum()
        >>> round(float(p), 6)
        1.0
        """
        if log_partition is None:
            logz = self.exact_log_partition()
        else:
            val = log_partition.value if isinstance(log_partition, LogPartition) \
                else log_partition
            if isinstance(val, bool) or not (isinstance(val, (int, float, np.floating))
                                             or torch.is_tensor(val)):
                raise ArgumentError(f"log_partition must be a number, a scalar tensor or a "
                                    f"LogPartition, got {log_partition!r}")
            logz = torch.as_tensor(val, dtype=self.dtype, device=self.device)
            if logz.numel() != 1 or not bool(torch.isfinite(logz.detach()).all()):
                raise ArgumentError(f"log_partition must be one finite number, got {val!r}")
        return -self.free_energy(v) - logz

    # ------------------------------------------------------------------ interop
    def to_networkx(self) -> nx.Graph:
        """The declared graph with the learned values as ``weight``/``bias`` attributes
        (and ``precision`` on nodes with a quadratic self-term).

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
        if self.log_precision is not None:
            prec = torch.exp(self.log_precision.detach().cpu().double()).tolist()
            for i, val in zip(self.quadratic_index.tolist(), prec):
                G.nodes[self.nodes[i]]["precision"] = val
        return G


def _as_index(idx: np.ndarray, device: torch.device) -> slice | torch.Tensor:
    """A contiguous index range as a slice (views, no gathers), else a tensor."""
    if len(idx) and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return torch.as_tensor(idx, device=device)


def _take(x: torch.Tensor, idx: slice | torch.Tensor) -> torch.Tensor:
    return x[..., idx] if isinstance(idx, slice) else x.index_select(-1, idx)


def _take_rows(W: torch.Tensor, idx: slice | torch.Tensor) -> torch.Tensor:
    return W[idx] if isinstance(idx, slice) else W.index_select(0, idx)


def _add_at(f: torch.Tensor, idx: slice | torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """``f[..., idx] += val`` in place (``f`` is a fresh accumulator, never saved for
    backward, so autograd records the additions)."""
    if isinstance(idx, slice):
        f[..., idx] += val
        return f
    return f.index_add_(-1, idx, val)
