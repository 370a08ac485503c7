"""Exact inference by variable elimination over a tree decomposition (array level).

The model is a pairwise log-linear model on ``n`` discrete nodes; node ``i`` takes one of
``K_i`` levels ``x_i`` with value ``v_i(x_i)`` and level log-weight ``c_i(x_i)``:

    log p~(x) = sum_i [b_i v_i(x_i) + c_i(x_i)] + sum_{(i,j) in edges} W_ij v_i(x_i) v_j(x_j)
    Z = sum_x p~(x)

:func:`plan_elimination` picks an elimination order (the cheapest of networkx's treewidth
heuristics, an opt_einsum contraction path, reverse Cuthill-McKee and the given node
order) and precomputes its schedule: step ``t`` eliminates node ``v = order[t]``, meeting
the later nodes ``S_t`` of its edges and of the messages that reach it; it sums ``x_v``
out of the sum of these log-tables and sends a message over ``S_t`` to the step of the
first node of ``S_t``. The largest table has ``prod_{j in {v} ∪ S_t} K_j`` entries; the
treewidth of the order is ``max_t |S_t|``.

:func:`log_partition` runs the schedule: on CPU by numba kernels
(:mod:`pgm_boltz.engines.elimination_kernels`) in rescaled exp space, redoing a row in
log space where a rescaled table would lose precision (strong couplings); reverse mode
gives every node marginal and edge moment in one more pass. On other devices, and for
second derivatives, a log-space torch pass (broadcast-add, ``logsumexp``) runs the same
schedule. Batch rows are split over threads. Planning time is a one-off per graph (tens
to hundreds of ms for hundreds of nodes); the per-call cost is the plan's ``flops``.
Either way ``log Z`` is exact, finite for any finite parameters in float32
and float64, and differentiable: ``d log Z / d b_i = <v_i>``,
``d log Z / d W_ij = <v_i v_j>``, ``d log Z / d c_i(k) = P(x_i = k)``. The bias may
carry batch dimensions (one row of biases per data row: the free energy of data with the
hidden units summed out is ``log Z`` of the hidden subgraph with per-row biases).

:func:`sample` draws exact samples by backward sampling through the kept log-tables and
:func:`marginals` gives ``P(x_i = k)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import numba as nb
import numpy as np
import opt_einsum as oe
import torch
from networkx.algorithms.approximation import treewidth as nx_tw

import pgm_boltz.engines.elimination_kernels as ek

from .._numba import notice_first_compile
from ..errors import DataError, GraphError, IntractableError
from .base import Cost, ExactEngine, Limits, Problem, check_quad, fmt_count, register_engine
from .threads import run_split

__all__ = [
    "Elimination",
    "EliminationPlan",
    "check_feasible",
    "log_partition",
    "marginals",
    "plan_elimination",
    "sample",
]

_METHODS = ("min_fill_in", "min_degree", "opt_einsum", "rcm", "natural")
_METHODS_FIRST = ("natural", "rcm", "min_degree", "min_fill_in", "opt_einsum")  # try order
_ABORT_MARGIN = 8.0  # stop costing an order once a table is 2^8 times over the limit
_OPT_EINSUM_MAX_EDGES = 3000  # its greedy path is slow on hubs and big graphs
_OPT_EINSUM_MAX_DEGREE = 16
_MIN_FILL_MAX_NODES = 1500  # networkx's min-fill scans every node per step: O(n^2 d^2)
_OPT_EINSUM_MAX_NODES = 3000
_FLOPS_SLACK = 1.1  # orders this close to the fewest flops compete on table size
_BLOCK = 256  # entries of the inner block walked by plain gathers in the kernels
_SAVE_FLOATS = 1 << 24  # keep the forward pass per row for backward up to this many floats
_CHUNK_ELEMENTS = 1 << 27  # torch path: batch rows x largest table per chunk at most
_STORED_LOG2 = 28.0  # default limit on log2(entries kept per row for the gradient)
_FORCE_LOG_SPACE = False  # tests: run every row of the numba kernels in log space


@dataclass
class EliminationPlan:
    """An elimination order for one graph and its precomputed schedule.

    ``treewidth`` is the largest rest scope along the order (``|clique| - 1``),
    ``log2_max_table`` the log2 of the entries of the largest intermediate table (the
    product of the levels in a clique, per batch row), ``flops`` the estimated operations
    of one ``log Z`` evaluation per batch row, ``log2_stored`` the log2 of the message
    entries kept per row for the backward pass, ``method`` the heuristic that gave the
    order and ``candidates`` the cost ``(treewidth, log2_max_table, flops)`` of every
    order tried.

    Orders are costed only up to ``2^8`` times the table limit: past it ``flops`` is
    infinite and the other two are lower bounds (None in ``candidates`` when a heuristic
    stopped before completing its order); when the kept order is such, ``exact_cost`` is
    False and the plan is never run.

    The schedule: per step the eliminated node ``step_node[t]``, its rest scope
    ``step_rest[t]`` (later nodes, in elimination order), its edges ``step_edges[t]``
    (edge indices to later nodes) and the earlier steps whose messages it consumes,
    ``step_msgs[t]``.
    """

    n: int
    order: list[int]
    treewidth: int
    log2_max_table: float
    flops: float
    method: str
    edges: np.ndarray
    levels: np.ndarray
    max_log2_table: float = 26.0
    log2_stored: float = 0.0
    exact_cost: bool = True
    candidates: dict = field(default_factory=dict)
    plan_seconds: float = 0.0
    step_node: list = field(default_factory=list, repr=False)
    step_rest: list = field(default_factory=list, repr=False)
    step_edges: list = field(default_factory=list, repr=False)
    step_msgs: list = field(default_factory=list, repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        return (f"elimination over {self.n} nodes, order by {self.method}: treewidth "
                f"{self.treewidth}, largest table 2^{self.log2_max_table:.1f} entries, "
                f"~{self.flops:.3g} operations per log Z")


# ---------------------------------------------------------------- validation


def _check_structure(n: int, edges: np.ndarray, levels: np.ndarray
                     ) -> tuple[int, np.ndarray, np.ndarray]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise GraphError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    e = np.asarray(edges)
    if e.size == 0:
        e = np.zeros((0, 2), np.int64)
    if e.ndim != 2 or e.shape[1] != 2:
        raise GraphError(f"edges must have shape (m, 2), got {e.shape}")
    if not np.issubdtype(e.dtype, np.integer) and (
            not np.all(np.isfinite(e)) or not np.all(e == np.round(e))):
        raise GraphError("edges must hold integer node indices")
    e = e.astype(np.int64)
    if e.size and (e.min() < 0 or e.max() >= n):
        bad = e[(e < 0).any(1) | (e >= n).any(1)][0]
        raise GraphError(f"edge {tuple(bad.tolist())} names a node outside 0..{n - 1}")
    loops = e[:, 0] == e[:, 1]
    if loops.any():
        raise GraphError(f"edge {tuple(e[loops][0].tolist())} is a self-loop; drop it "
                         "(a node's own term belongs in its bias)")
    key = np.sort(e, 1)
    if len(key):
        _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = key[first[counts > 1][0]]
            raise GraphError(f"edge {tuple(dup.tolist())} appears more than once; merge "
                             "duplicate edges (add their weights)")
    lv = np.asarray(levels)
    if lv.shape != (n,):
        raise GraphError(f"levels must have shape ({n},), got {lv.shape}")
    if lv.size and (not np.all(lv == np.round(lv)) or lv.min() < 1):
        raise GraphError("levels must be integers >= 1 (the number of values of each node)")
    return n, e, lv.astype(np.int64)


# ---------------------------------------------------------------- orders


def _adjacency(n: int, edges: np.ndarray) -> list[set]:
    adj: list[set] = [set() for _ in range(n)]
    for a, b in edges.tolist():
        adj[a].add(b)
        adj[b].add(a)
    return adj


def _nx_heuristic_order(adj: list[set], heuristic: str, log2k: np.ndarray,
                        abort: float) -> list[int] | None:
    """Eliminate with networkx's treewidth heuristic, recording the order (networkx's
    ``treewidth_decomp`` runs the same loop but returns only the decomposition). None when
    a clique of the order would be over ``2^abort`` entries."""
    g = {v: set(nb_) for v, nb_ in enumerate(adj)}
    if heuristic == "min_degree":
        pick = nx_tw.MinDegreeHeuristic(g).best_node
    else:
        pick = nx_tw.min_fill_in_heuristic
    order = []
    v = pick(g)
    while v is not None:
        nbrs = g[v]
        if log2k[v] + sum(log2k[a] for a in nbrs) > abort:
            return None
        for a in nbrs:
            g[a] |= nbrs
            g[a].discard(a)
            g[a].discard(v)
        del g[v]
        order.append(v)
        v = pick(g)
    # networkx stops when the rest is a clique: any order of it does
    if sum(log2k[u] for u in g) > abort:
        return None
    order += sorted(g, key=lambda u: (len(adj[u]), u))
    return order


def _opt_einsum_order(n: int, edges: np.ndarray, levels: np.ndarray) -> list[int]:
    """The order in which opt_einsum's greedy contraction path sums the indices out."""
    inputs = [(i,) for i in range(n)] + [tuple(e) for e in edges.tolist()]
    size = {i: int(levels[i]) for i in range(n)}
    path, _ = oe.contract_path(
        ",".join("".join(oe.get_symbol(i) for i in t) for t in inputs) + "->",
        *[tuple(size[i] for i in t) for t in inputs], shapes=True, optimize="greedy")
    live = [set(t) for t in inputs]
    order: list[int] = []
    for con in path:
        parts = [live.pop(i) for i in sorted(con, reverse=True)]
        joined = set().union(*parts)
        others = set().union(*live) if live else set()
        order += sorted(joined - others)
        live.append(joined & others)
    seen = set(order)
    return order + [v for v in range(n) if v not in seen]


def _rcm_order(n: int, edges: np.ndarray) -> list[int]:
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(edges.tolist())
    return [int(v) for v in nx.utils.reverse_cuthill_mckee_ordering(G)]


def _schedule(order: list[int], adj: list[set], log2k: np.ndarray, want_steps: bool,
              abort: float = math.inf) -> tuple:
    """Simulate the elimination: (treewidth, log2 max table, flops, log2 stored, steps,
    complete). It stops at the first table over ``2^abort`` entries (complete False: the
    numbers are lower bounds for this order, flops infinite)."""
    n = len(order)
    pos = np.empty(n, np.int64)
    pos[np.asarray(order, np.int64)] = np.arange(n)
    pending: list[list[int]] = [[] for _ in range(n)]
    scopes: list = [None] * n
    tw, mx, flops, stored = 0, 0.0, 0.0, 0.0
    rests, msgs = [], []
    for t, v in enumerate(order):
        later = [u for u in adj[v] if pos[u] > pos[v]]
        scope = set(later)
        for s in pending[v]:
            scope |= scopes[s]
        scope.discard(v)
        lt = float(log2k[v] + sum(log2k[u] for u in scope))
        mx = max(mx, lt)
        tw = max(tw, len(scope))
        if lt > abort:
            return tw, mx, math.inf, math.inf, None, False
        n_in = 1 + len(later) + len(pending[v])
        flops += 2.0 ** lt * (n_in + 1)
        stored += 2.0 ** (lt - log2k[v])
        scopes[t] = scope
        if want_steps:
            rests.append(sorted(scope, key=lambda u: pos[u]))
            msgs.append(list(pending[v]))
        if scope:
            pending[min(scope, key=lambda u: pos[u])].append(t)
    return tw, mx, flops, math.log2(max(stored, 1.0)), (rests, msgs), True


def plan_elimination(n: int, edges: np.ndarray, levels: np.ndarray,
                     max_log2_table: float = 26.0,
                     methods: tuple[str, ...] | None = None) -> EliminationPlan:
    """Choose an elimination order for the graph and precompute its schedule.

    ``edges``: (m, 2) node-index pairs (``i != j``, no duplicates); ``levels``: (n,)
    the number of levels ``K_i`` of each node. Orders are tried from ``methods`` (default
    all of ``"min_fill_in"`` and ``"min_degree"`` (networkx's treewidth heuristics),
    ``"opt_einsum"`` (the greedy contraction path), ``"rcm"`` (reverse Cuthill-McKee,
    good on lattices) and ``"natural"`` (0..n-1)); each is costed by simulating the
    elimination, and the plan keeps the cheapest by flops (then, among orders within 10%
    of the fewest flops, the one with the smallest largest table) among the orders whose
    largest table fits ``2^max_log2_table`` entries (among all when none fits). It never
    raises for size: compare the plan's cost, or call :func:`check_feasible`.

    Examples
    --------
    >>> import numpy as np
    >>> plan = plan_elimination(3, np.array([[0, 1], [1, 2]]), np.array([2, 2, 3]))
    >>> plan.treewidth, plan.n
    (1, 3)
    """
    t0 = time.perf_counter()
    n, e, lv = _check_structure(n, edges, levels)
    methods = _METHODS if methods is None else tuple(methods)
    unknown = set(methods) - set(_METHODS)
    if unknown or not methods:
        raise GraphError(f"unknown elimination order method(s) {sorted(unknown)}; use some "
                         f"of {_METHODS}")
    log2k = np.log2(np.maximum(lv, 1)).astype(float)
    abort = float(max_log2_table) + _ABORT_MARGIN
    # quick bound: any order's first table holds a node and all its neighbours
    deg = np.bincount(e.reshape(-1), minlength=n)
    first = log2k + np.bincount(e[:, 0], log2k[e[:, 1]], n) + np.bincount(e[:, 1],
                                                                         log2k[e[:, 0]], n)
    if n and float(first.min()) > abort:
        return EliminationPlan(
            n=n, order=list(range(n)), treewidth=int(deg.min()),
            log2_max_table=float(first.min()),
            flops=math.inf, method="min_degree_bound", edges=e, levels=lv,
            max_log2_table=float(max_log2_table), log2_stored=math.inf, exact_cost=False,
            candidates={}, plan_seconds=time.perf_counter() - t0)
    adj = _adjacency(n, e)
    makers = {
        "natural": lambda: list(range(n)),
        "rcm": lambda: _rcm_order(n, e),
        "min_degree": lambda: _nx_heuristic_order(adj, "min_degree", log2k, abort),
        "min_fill_in": lambda: _nx_heuristic_order(adj, "min_fill_in", log2k, abort),
        "opt_einsum": lambda: _opt_einsum_order(n, e, lv),
    }
    candidates: dict[str, tuple] = {}
    tried = []
    hopeless = False  # min-degree went over the limit: skip the slow heuristics
    for m in sorted(methods, key=_METHODS_FIRST.index):
        if len(methods) > 1 and m == "min_fill_in" and (n > _MIN_FILL_MAX_NODES or hopeless):
            continue
        if len(methods) > 1 and m == "opt_einsum" and (
                n > _OPT_EINSUM_MAX_NODES or len(e) > _OPT_EINSUM_MAX_EDGES or hopeless
                or n == 0 or deg.max() > _OPT_EINSUM_MAX_DEGREE):
            continue
        order = makers[m]() if n else []
        if order is None:  # the heuristic went over the limit
            hopeless = hopeless or m == "min_degree"
            candidates[m] = (None, None, math.inf)
            continue
        tw, mx, flops, stored, _, complete = _schedule(order, adj, log2k, False, abort)
        candidates[m] = (tw, mx, flops)
        tried.append((mx > max_log2_table, flops, mx, m, order, tw, stored, complete))
    if not tried:  # every heuristic went over the limit: the natural order as a bound
        order = list(range(n))
        tw, mx, flops, stored, _, complete = _schedule(order, adj, log2k, False, abort)
        tried.append((True, flops, mx, "natural", order, tw, stored, complete))
    # the cheapest by flops; within _FLOPS_SLACK of it, the smallest largest table
    fits = min(t[0] for t in tried)
    pool = [t for t in tried if t[0] == fits]
    cheapest = min(t[1] for t in pool)
    _, flops, mx, method, order, tw, stored, complete = min(
        (t for t in pool if t[1] <= cheapest * _FLOPS_SLACK), key=lambda t: (t[2], t[1]))
    if not complete:
        return EliminationPlan(
            n=n, order=list(order), treewidth=int(tw), log2_max_table=float(mx),
            flops=math.inf, method=method, edges=e, levels=lv,
            max_log2_table=float(max_log2_table), log2_stored=math.inf, exact_cost=False,
            candidates=candidates, plan_seconds=time.perf_counter() - t0)
    _, _, _, _, (rests, msgs), _ = _schedule(order, adj, log2k, True)
    pos = {v: t for t, v in enumerate(order)}
    step_edges: list[list[int]] = [[] for _ in range(n)]
    for k, (a, b) in enumerate(e.tolist()):
        step_edges[min(pos[a], pos[b])].append(k)
    return EliminationPlan(
        n=n, order=list(order), treewidth=int(tw), log2_max_table=float(mx),
        flops=float(flops), method=method, edges=e, levels=lv,
        max_log2_table=float(max_log2_table), log2_stored=float(stored),
        candidates=candidates, plan_seconds=time.perf_counter() - t0,
        step_node=list(order), step_rest=rests, step_edges=step_edges, step_msgs=msgs)


def check_feasible(plan: EliminationPlan, max_log2_table: float | None = None,
                   max_log2_stored: float | None = None) -> None:
    """Raise :class:`~pgm_boltz.errors.IntractableError` when the plan's largest table
    (per batch row) is over ``2^max_log2_table`` entries (default: the plan's limit), or,
    when ``max_log2_stored`` is given, when the messages kept for a gradient are over
    ``2^max_log2_stored`` entries.

    >>> import numpy as np
    >>> plan = plan_elimination(2, np.array([[0, 1]]), np.array([2, 2]))
    >>> check_feasible(plan)  # fine: a table of 4 entries
    """
    limit = plan.max_log2_table if max_log2_table is None else float(max_log2_table)
    if plan.log2_max_table > limit:
        least = "" if plan.exact_cost else "at least "
        raise IntractableError(
            f"exact elimination needs a table of {least}2^{plan.log2_max_table:.1f} entries "
            f"(treewidth {least}{plan.treewidth} with the {plan.method} order, "
            f"~{plan.flops:.3g} operations) over the limit of 2^{limit:g}; use Gibbs "
            "sampling or AIS (method='ais') for this graph, or raise max_log2_table if the "
            "memory is there")
    if max_log2_stored is not None and plan.log2_stored > max_log2_stored:
        raise IntractableError(
            f"the gradient of exact elimination keeps 2^{plan.log2_stored:.1f} message "
            f"entries per row (treewidth {plan.treewidth}, {plan.n} nodes) over the limit "
            f"of 2^{max_log2_stored:g}; compute log Z without gradient (torch.no_grad()), "
            "or use Gibbs sampling / AIS for this graph")


# ---------------------------------------------------------------- kernel arrays


class _Alloc:
    """First-fit allocation of message slots with coalescing free blocks."""

    def __init__(self) -> None:
        self.free: list[list[int]] = []  # [offset, size], sorted by offset
        self.top = 0
        self.peak = 0  # high-water mark: the length to allocate

    def alloc(self, size: int) -> int:
        for k, (o, s) in enumerate(self.free):
            if s >= size:
                if s == size:
                    self.free.pop(k)
                else:
                    self.free[k] = [o + size, s - size]
                return o
        o = self.top
        self.top += size
        self.peak = max(self.peak, self.top)
        return o

    def release(self, o: int, size: int) -> None:
        self.free.append([o, size])
        self.free.sort()
        merged: list[list[int]] = []
        for b in self.free:
            if merged and merged[-1][0] + merged[-1][1] == b[0]:
                merged[-1][1] += b[1]
            else:
                merged.append(b)
        if merged and merged[-1][0] + merged[-1][1] == self.top:
            self.top = merged.pop()[0]
        self.free = merged


def _kernel_arrays(plan: EliminationPlan) -> dict:
    """Flat int arrays describing the schedule to the numba kernels (built once)."""
    if "kernel" in plan._cache:
        return plan._cache["kernel"]
    n, e, lv = plan.n, plan.edges, plan.levels
    m = len(e)
    kmax = int(lv.max()) if n else 1
    T = n
    uoff = m * kmax * kmax
    moff = uoff + n * kmax
    R = [int(np.prod([lv[u] for u in rest], dtype=np.int64)) for rest in plan.step_rest]
    consumer = [-1] * T
    for t in range(T):
        for s in plan.step_msgs[t]:
            consumer[s] = t
    # full layout (forward kept for backward) and compact layouts (slots reused)
    full = np.zeros(T, np.int64)
    acc = moff
    for t in range(T):
        full[t] = acc
        acc += R[t]
    full_len = acc
    fa = _Alloc()
    compact = np.zeros(T, np.int64)
    for t in range(T):
        compact[t] = moff + fa.alloc(R[t])
        for s in plan.step_msgs[t]:
            fa.release(int(compact[s]) - moff, R[s])
    compact_len = moff + max(fa.peak, 1)
    ga = _Alloc()
    gcompact = np.zeros(T, np.int64)
    for t in range(T - 1, -1, -1):
        if consumer[t] < 0:
            gcompact[t] = moff + ga.alloc(R[t])
        for s in plan.step_msgs[t]:
            gcompact[s] = moff + ga.alloc(R[s])
        ga.release(int(gcompact[t]) - moff, R[t])
    gcompact_len = moff + max(ga.peak, 1)

    st = np.zeros((T, 13), np.int64)
    rest_nodes: list[int] = []
    in_src: list[int] = []
    in_base: list[int] = []
    in_sv: list[int] = []
    in_kind: list[int] = []
    dim_k: list[int] = []
    dim_stride: list[int] = []
    tab: list[int] = []
    max_in = max_dims = max_kv = max_bq = 1
    for t in range(T):
        v = plan.step_node[t]
        rest = plan.step_rest[t]
        kv = int(lv[v])
        where = {u: p for p, u in enumerate(rest)}
        # inputs: (src, base, stride of v, strides over rest)
        ins: list[tuple[int, int, int, list[int]]] = []
        ins.append((-1, uoff + v * kmax, 1, [0] * len(rest)))
        for k in plan.step_edges[t]:
            a, b = int(e[k, 0]), int(e[k, 1])
            u = b if a == v else a
            sv, su = (kmax, 1) if a == v else (1, kmax)
            strides = [0] * len(rest)
            strides[where[u]] = su
            ins.append((-1, k * kmax * kmax, sv, strides))
        for s in plan.step_msgs[t]:
            scope = plan.step_rest[s]  # starts with v: a message goes to its first node
            mstr = [1] * len(scope)
            for q in range(len(scope) - 2, -1, -1):
                mstr[q] = mstr[q + 1] * int(lv[scope[q + 1]])
            strides = [0] * len(rest)
            for q, u in enumerate(scope[1:], start=1):
                strides[where[u]] = mstr[q]
            ins.append((s, 0, mstr[0], strides))
        nin = len(ins)
        # inner block: trailing rest dims while the block stays small
        nd = len(rest)
        bq = 1
        while nd > 0 and bq * int(lv[rest[nd - 1]]) <= _BLOCK:
            nd -= 1
            bq *= int(lv[rest[nd]])
        st[t] = (kv, R[t], nin, len(in_src), nd, len(dim_k), bq, len(tab), len(dim_stride),
                 int(consumer[t] < 0), len(rest_nodes), len(rest), v)
        rest_nodes.extend(rest)
        for src, base, sv, _ in ins:
            in_src.append(src)
            in_base.append(base)
            in_sv.append(sv)
        for d in range(nd):
            dim_k.append(int(lv[rest[d]]))
            for _, _, _, strides in ins:
                dim_stride.append(strides[d])
        inner = list(range(nd, len(rest)))
        for _, _, _, strides in ins:
            offs = np.zeros(1, np.int64)
            for d in inner:
                offs = (offs[:, None] + np.arange(int(lv[rest[d]])) * strides[d]).reshape(-1)
            tab.extend(offs.tolist())
            in_kind.append(0 if not offs.any() else
                           1 if np.array_equal(offs, np.arange(bq)) else 2)
        max_in, max_dims = max(max_in, nin), max(max_dims, nd)
        max_kv, max_bq = max(max_kv, kv), max(max_bq, bq)
    out = {
        "kmax": kmax, "uoff": uoff, "st": st, "R": np.asarray(R, np.int64),
        "in_src": np.asarray(in_src, np.int64), "in_base": np.asarray(in_base, np.int64),
        "in_sv": np.asarray(in_sv, np.int64),
        "in_kind": np.asarray(in_kind, np.int64), "dim_k": np.asarray(dim_k, np.int64),
        "dim_stride": np.asarray(dim_stride, np.int64), "tab": np.asarray(tab, np.int64),
        "full": full, "full_len": int(full_len), "compact": compact,
        "compact_len": int(compact_len), "gcompact": gcompact,
        "gcompact_len": int(gcompact_len),
        "dims": (max_in, max_dims, max_kv, max_bq),
        "zeros_lw": np.zeros((n, kmax)),
        "rest_nodes": np.asarray(rest_nodes, np.int64),
    }
    out["sched"] = (out["st"], out["in_src"], out["in_base"], out["in_sv"], out["in_kind"],
                    out["dim_k"], out["dim_stride"], out["tab"], *out["dims"])
    plan._cache["kernel"] = out
    return out


def _torch_schedule(plan: EliminationPlan) -> list:
    """Per step the reshape targets of the log-space torch path (dims merged where every
    input agrees, so few broadcast dims)."""
    if "torch" in plan._cache:
        return plan._cache["torch"]
    lv, e = plan.levels, plan.edges
    steps = []
    for t in range(plan.n):
        v = plan.step_node[t]
        rest = plan.step_rest[t]
        kv = int(lv[v])
        members: list[set] = []  # per input: the rest nodes it holds
        edge_in = []
        for k in plan.step_edges[t]:
            a, b = int(e[k, 0]), int(e[k, 1])
            u = b if a == v else a
            members.append({u})
            edge_in.append((k, a != v))
        for s in plan.step_msgs[t]:
            members.append(set(plan.step_rest[s]))
        # merge consecutive rest nodes held by the same inputs
        groups: list[list[int]] = []
        sig_prev = None
        for u in rest:
            sig = tuple(u in mset for mset in members)
            if groups and sig == sig_prev:
                groups[-1].append(u)
            else:
                groups.append([u])
            sig_prev = sig
        gsize = [int(np.prod([lv[u] for u in g], dtype=np.int64)) for g in groups]

        def shape_for(mset: set, gsize: list = gsize, groups: list = groups) -> tuple:
            return tuple(gs if g[0] in mset else 1 for g, gs in zip(groups, gsize))

        nx_ = len(plan.step_edges[t])
        edges_shapes = [(k, tr, (1, kv, *shape_for(members[q])))
                        for q, (k, tr) in enumerate(edge_in)]
        msg_shapes = [(s, (-1, kv, *shape_for(members[nx_ + q])))
                      for q, s in enumerate(plan.step_msgs[t])]
        R = int(np.prod([lv[u] for u in rest], dtype=np.int64))
        steps.append((v, kv, (-1, kv, *([1] * len(groups))), edges_shapes, msg_shapes, R,
                      len(rest) == 0))
    plan._cache["torch"] = steps
    return steps


# ---------------------------------------------------------------- inputs


def _check_inputs(plan: EliminationPlan, levels, edges, bias, weight, log_weights
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check levels/edges against the plan and the shapes of the parameters; return the
    weight and log-weights as tensors of bias's dtype and device (log-weights cut to
    Kmax columns, None when not given)."""
    if not isinstance(bias, torch.Tensor):
        raise DataError(f"bias must be a torch tensor, got {type(bias).__name__}")
    if not bias.is_floating_point():
        raise DataError(f"bias must be a floating tensor (float32 or float64), got "
                        f"{bias.dtype}")
    n = plan.n
    _check_same(plan, levels, edges)
    if bias.ndim < 1 or bias.shape[-1] != n:
        raise DataError(f"bias must have shape (*batch, {n}), got {tuple(bias.shape)}")
    dt, dev = bias.dtype, bias.device
    w = weight if isinstance(weight, torch.Tensor) else torch.as_tensor(weight)
    if w.shape != (len(plan.edges),):
        raise DataError(f"weight must have shape ({len(plan.edges)},) (one per edge), got "
                        f"{tuple(w.shape)}")
    w = w.to(dtype=dt, device=dev)
    if log_weights is None:
        return w, None
    kmax = int(plan.levels.max()) if n else 1
    lw = log_weights if isinstance(log_weights, torch.Tensor) else torch.as_tensor(
        log_weights)
    if lw.ndim != 2 or lw.shape[0] != n or lw.shape[1] < kmax:
        raise DataError(f"log_weights must have shape ({n}, >= {kmax}), got "
                        f"{tuple(lw.shape)}")
    return w, lw[:, :kmax].to(dtype=dt, device=dev)


def _torch_inputs(plan: EliminationPlan, vn: np.ndarray, lw: torch.Tensor | None,
                  like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and log-weights as tensors like ``like``, padding zeroed."""
    dt, dev = like.dtype, like.device
    vals = torch.as_tensor(vn, dtype=dt, device=dev)
    if lw is None:
        return vals, torch.zeros_like(vals)
    mask = torch.as_tensor(np.arange(vn.shape[1])[None, :] < plan.levels[:, None],
                           device=dev)
    return vals, torch.where(mask, lw, torch.zeros((), dtype=dt, device=dev))


# ---------------------------------------------------------------- torch (log space)


def _torch_forward(plan: EliminationPlan, vals: torch.Tensor, lw: torch.Tensor,
                   bias2d: torch.Tensor, w: torch.Tensor, keep: bool = False):
    """log Z per row by log-space elimination; with ``keep`` also each step's log-table
    (rows, K_v, R) for backward sampling."""
    steps = _torch_schedule(plan)
    B = bias2d.shape[0]
    e = plan.edges
    unary = bias2d[:, :, None] * vals[None] + lw[None]  # (B, n, Kmax)
    if len(e):
        ei = torch.as_tensor(e, device=vals.device)
        etab = w[:, None, None] * vals[ei[:, 0]][:, :, None] * vals[ei[:, 1]][:, None, :]
    msgs: dict[int, torch.Tensor] = {}
    total = torch.zeros(B, dtype=bias2d.dtype, device=bias2d.device)
    kept = []
    lvl = plan.levels
    for t, (v, kv, ushape, edge_shapes, msg_shapes, R, root) in enumerate(steps):
        acc = unary[:, v, :kv].reshape(ushape)
        for k, tr, shape in edge_shapes:
            a, b = int(e[k, 0]), int(e[k, 1])
            tb = etab[k, :lvl[a], :lvl[b]]
            acc = acc + (tb.T if tr else tb).reshape(shape)
        for s, shape in msg_shapes:
            acc = acc + msgs.pop(s).reshape(shape)
        if acc.shape[0] != B:
            acc = acc.expand(B, *acc.shape[1:])
        if keep:
            kept.append(acc.reshape(B, kv, R))
        m = torch.logsumexp(acc, 1).reshape(B, R)
        if root:
            total = total + m[:, 0]
        else:
            msgs[t] = m
    return (total, kept) if keep else total


def _torch_log_partition(plan: EliminationPlan, vals, lw, bias2d, w) -> torch.Tensor:
    rows = bias2d.shape[0]
    per_row = 2.0 ** plan.log2_max_table
    chunk = max(1, int(_CHUNK_ELEMENTS // max(per_row, 1.0)))
    if rows <= chunk:
        return _torch_forward(plan, vals, lw, bias2d, w)
    return torch.cat([_torch_forward(plan, vals, lw, bias2d[i:i + chunk], w)
                      for i in range(0, rows, chunk)])


# ---------------------------------------------------------------- numba (rescaled)


def _values_np(plan: EliminationPlan, values) -> np.ndarray:
    """The value table as float64 numpy (n, Kmax), padding zeroed, checked finite; cached
    on the plan for a torch tensor until it changes (its in-place version counter)."""
    key = (id(values), getattr(values, "_version", None))
    hit = plan._cache.get("values")
    if isinstance(values, torch.Tensor) and hit is not None and hit[0] == key \
            and hit[1] is values:
        return hit[2]
    n = plan.n
    kmax = int(plan.levels.max()) if n else 1
    v = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) \
        else np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != n or v.shape[1] < kmax:
        raise DataError(f"values must have shape ({n}, >= {kmax}) (the value of each level),"
                        f" got {tuple(v.shape)}")
    v = np.where(_level_mask(plan), v[:, :kmax], 0.0)
    if not np.all(np.isfinite(v)):
        raise DataError("values must be finite for every level")
    v = np.ascontiguousarray(v)
    if isinstance(values, torch.Tensor):
        plan._cache["values"] = (key, values, v)
    return v


def _check_same(plan: EliminationPlan, levels, edges) -> None:
    """levels and edges must be the plan's (skipped for the tensors last checked while
    they stay unchanged)."""
    key = tuple((id(x), x._version) if isinstance(x, torch.Tensor) else None
                for x in (levels, edges))
    hit = plan._cache.get("same")
    if None not in key and hit is not None and hit[0] == key and hit[1] is levels \
            and hit[2] is edges:
        return
    lv = np.asarray(levels.detach().cpu() if isinstance(levels, torch.Tensor) else levels)
    if lv.shape != (plan.n,) or not np.array_equal(lv, plan.levels):
        raise DataError("levels do not match the plan's levels; make a new plan for them")
    e = np.asarray(edges.detach().cpu() if isinstance(edges, torch.Tensor) else edges)
    if e.size == 0:
        e = np.zeros((0, 2), np.int64)
    if e.shape != plan.edges.shape or not np.array_equal(e, plan.edges):
        raise DataError("edges do not match the plan's edges; make a new plan for them")
    if None not in key:
        plan._cache["same"] = (key, levels, edges)


def _np64(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float64).numpy())


def _threads(rows: int) -> int:
    return max(1, min(int(nb.config.NUMBA_NUM_THREADS), torch.get_num_threads(), rows))


def _numba_forward(plan: EliminationPlan, vn: np.ndarray, b: np.ndarray, wn: np.ndarray,
                   lwn: np.ndarray, keep: bool, force_keep: bool = False) -> tuple:
    """log Z per row of ``b`` by the numba kernels: (log Z, mode per row (0 rescaled exp
    space, 1 log space), kept forward passes (when ``keep`` and small, or ``force_keep``)
    or None, exp edge tables, log edge tables)."""
    ka = _kernel_arrays(plan)
    kmax = vn.shape[1]
    m = len(wn)
    etab = np.empty((m, kmax, kmax))
    ltab = np.zeros((m, kmax, kmax))
    notice_first_compile(ek.edge_tables, ek.forward_rows)
    escale, exp_ok = ek.edge_tables(plan.edges, plan.levels, vn, wn, etab, ltab)
    etab = etab.reshape(-1) if exp_ok and not _FORCE_LOG_SPACE else np.empty(0)
    ltab = ltab.reshape(-1)
    B = b.shape[0]
    logz = np.empty(B)
    mode = np.empty(B, np.int64)
    head = (b, vn, lwn, plan.levels, etab, escale, ltab)
    sched = (*ka["sched"], logz, mode)
    if force_keep or (keep and B * ka["full_len"] <= _SAVE_FLOATS):
        ws = np.empty((B, ka["full_len"]))
        run_split(lambda r0, r1: ek.forward_rows(r0, r1, *head, ws, True, ka["uoff"],
                                                 ka["full"], *sched), B, _threads(B))
        return logz, mode, ws, etab, ltab

    def piece(r0: int, r1: int) -> None:
        scratch = np.empty((1, ka["compact_len"]))
        ek.forward_rows(r0, r1, *head, scratch, False, ka["uoff"], ka["compact"], *sched)
    run_split(piece, B, _threads(B))
    return logz, mode, None, etab, ltab


class _NumbaLogZ(torch.autograd.Function):
    """log Z per row by the numba kernels; backward by the reverse pass (first order),
    through the torch path when a second derivative is asked for."""

    @staticmethod
    def forward(ctx, bias2d, w, lw, plan, vn, needs):
        b = _np64(bias2d)
        lwn = _np64(lw) if lw is not None else _kernel_arrays(plan)["zeros_lw"]
        logz, mode, ws, etab, ltab = _numba_forward(plan, vn, b, _np64(w), lwn, needs)
        ctx.plan, ctx.ws, ctx.arrays = plan, ws, (b, vn, lwn, etab, ltab, mode)
        ctx.save_for_backward(bias2d, w, lw)
        return torch.from_numpy(logz).to(bias2d.device, bias2d.dtype)

    @staticmethod
    def backward(ctx, g):
        bias2d, w, lw = ctx.saved_tensors
        plan = ctx.plan
        b, vn, lwn, etab, ltab, mode = ctx.arrays
        need = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # double backward: differentiate the torch path
            vals = torch.as_tensor(vn, dtype=bias2d.dtype, device=bias2d.device)
            lw_t = torch.zeros_like(vals) if lw is None else lw
            with torch.enable_grad():
                out = _torch_log_partition(plan, vals, lw_t, bias2d, w)
                ins = [x for x, nd in zip((bias2d, w, lw_t), need) if nd]
                gr = iter(torch.autograd.grad(out, ins, g, create_graph=True))
            return (*[next(gr) if nd else None for nd in need], None, None, None)
        ka = _kernel_arrays(plan)
        gn = _np64(g)
        B = b.shape[0]
        n, kmax = vn.shape
        gunary = np.zeros((B, n, kmax))
        ne = len(ltab)
        saved = ctx.ws is not None
        parts: dict[int, np.ndarray] = {}  # edge adjoints per piece, summed in row order
        head = (gn, b, vn, lwn, plan.levels, etab, ltab, mode)
        tail = (ka["uoff"], ka["full"], ka["gcompact"], *ka["sched"], gunary)

        def piece(r0: int, r1: int) -> None:
            ws = ctx.ws if saved else np.empty((1, ka["full_len"]))
            gws = np.zeros(ka["gcompact_len"])
            ek.backward_rows(r0, r1, *head, ws, saved, gws, *tail)
            parts[r0] = gws[:ne]
        run_split(piece, B, _threads(B))
        gedges = np.stack([parts[k] for k in sorted(parts)])
        dev = bias2d.device
        grads: list = [None, None, None]
        if need[0]:
            gb = np.einsum("bik,ik->bi", gunary, vn)
            grads[0] = torch.from_numpy(gb).to(dev, bias2d.dtype)
        if need[1]:
            ge = gedges.sum(0).reshape(-1, kmax, kmax)
            gw = ek.edge_moments(plan.edges, plan.levels, vn, ge)
            grads[1] = torch.from_numpy(gw).to(dev, w.dtype)
        if need[2]:
            grads[2] = torch.from_numpy(gunary.sum(0)).to(dev, lw.dtype)
        return (*grads, None, None, None)


# ---------------------------------------------------------------- public


def log_partition(plan: EliminationPlan, values, levels, edges, bias: torch.Tensor,
                  weight: torch.Tensor, log_weights: torch.Tensor | None = None,
                  max_log2_stored: float | None = _STORED_LOG2,
                  backend: str = "auto") -> torch.Tensor:
    """Exact ``log Z`` by elimination along ``plan``, batched over the leading dims of bias.

    ``log Z = log sum_x exp( sum_i [b_i v_i(x_i) + c_i(x_i)]
    + sum_{(i,j)} W_ij v_i(x_i) v_j(x_j) )`` with ``values[i, k] = v_i(k)`` for
    ``k < K_i`` (padding ignored), ``c = log_weights`` (n, Kmax) (zeros when None),
    ``bias`` (*batch, n), ``weight`` (m,) aligned with ``edges``. Returns (*batch,), of
    bias's dtype and device, differentiable w.r.t. bias, weight and log_weights
    (``d/db_i = <v_i>``, ``d/dW_ij = <v_i v_j>``, ``d/dc_i(k) = P(x_i = k)``; values are
    constants). Raises :class:`~pgm_boltz.errors.IntractableError` before allocating
    when the plan's largest table is over its limit, or when a gradient would keep more
    than ``2^max_log2_stored`` message entries per row (None: no limit). ``backend``:
    ``"auto"`` (numba kernels on CPU, log-space torch elsewhere), ``"numba"`` or
    ``"torch"``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> edges = np.array([[0, 1]])
    >>> plan = plan_elimination(2, edges, np.array([2, 2]))
    >>> spins = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    >>> lz = log_partition(plan, spins, [2, 2], edges, torch.zeros(2, dtype=torch.float64),
    ...                    torch.tensor([0.5], dtype=torch.float64))
    >>> round(float(lz), 6) == round(float(np.log(2 * np.exp(0.5) + 2 * np.exp(-0.5))), 6)
    True
    """
    if backend not in ("auto", "numba", "torch"):
        raise DataError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    check_feasible(plan)
    w, lw = _check_inputs(plan, levels, edges, bias, weight, log_weights)
    vn = _values_np(plan, values)
    batch = bias.shape[:-1]
    if batch.numel() == 0 or plan.n == 0:  # no rows, or no nodes (Z = 1)
        return bias.sum(-1) * 0.0 + w.sum() * 0.0
    bias2d = bias.reshape(-1, plan.n)
    needs = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (bias, w, lw))
    if needs and max_log2_stored is not None:
        check_feasible(plan, max_log2_stored=max_log2_stored)
    if backend == "numba" or (backend == "auto" and bias.device.type == "cpu"):
        if lw is not None:  # padding levels carry no gradient
            lw = torch.where(torch.as_tensor(_level_mask(plan), device=lw.device), lw,
                             torch.zeros((), dtype=lw.dtype, device=lw.device))
        return _NumbaLogZ.apply(bias2d, w, lw, plan, vn, needs).reshape(batch)
    vals, lw_t = _torch_inputs(plan, vn, lw, bias)
    return _torch_log_partition(plan, vals, lw_t, bias2d, w).reshape(batch)


def _level_mask(plan: EliminationPlan) -> np.ndarray:
    kmax = int(plan.levels.max()) if plan.n else 1
    return np.arange(kmax)[None, :] < plan.levels[:, None]


def marginals(plan: EliminationPlan, values, levels, edges, bias: torch.Tensor,
              weight: torch.Tensor, log_weights: torch.Tensor | None = None
              ) -> list[torch.Tensor]:
    """``P(x_i = k)`` for every node ``i`` (a tensor of length ``K_i`` each), exactly:
    the gradient of ``log Z`` w.r.t. the level log-weights.

    >>> import numpy as np, torch
    >>> plan = plan_elimination(1, np.zeros((0, 2)), np.array([2]))
    >>> p = marginals(plan, torch.tensor([[0.0, 1.0]]), [2], np.zeros((0, 2)),
    ...               torch.tensor([0.0]), torch.zeros(0))
    >>> [round(float(x), 3) for x in p[0]]
    [0.5, 0.5]
    """
    if bias.ndim != 1:
        raise DataError(f"bias must have shape ({plan.n},) for marginals, got "
                        f"{tuple(bias.shape)}")
    kmax = int(plan.levels.max()) if plan.n else 1
    base = (torch.zeros((plan.n, kmax), dtype=bias.dtype, device=bias.device)
            if log_weights is None else torch.as_tensor(log_weights)[:, :kmax])
    with torch.enable_grad():
        lw = base.detach().to(dtype=bias.dtype, device=bias.device).requires_grad_(True)
        lz = log_partition(plan, values, levels, edges, bias.detach(),
                           torch.as_tensor(weight).detach(), lw, max_log2_stored=None)
        (g,) = torch.autograd.grad(lz, lw)
    return [g[i, :int(plan.levels[i])].detach() for i in range(plan.n)]


def sample(plan: EliminationPlan, values, levels, edges, bias: torch.Tensor,
           weight: torch.Tensor, n_samples: int, generator: torch.Generator | None = None,
           log_weights: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """``n_samples`` exact independent draws from ``p(x) ∝ exp(log p~(x))`` as level
    indices (long, shape (n_samples, n)).

    Forward elimination keeps every message; then, along the reversed order, ``x_v`` is
    drawn from ``p(x_v | x_S) ∝ exp(U_t(x_v, x_S))`` (``U_t`` the sum of the step's
    log-tables) given the later nodes ``x_S`` already drawn, by the inverse CDF of one
    uniform per sample and node (drawn up front from ``generator``, so the draws do not
    depend on the thread count). ``backend`` as in :func:`log_partition`.

    >>> import numpy as np, torch
    >>> plan = plan_elimination(2, np.array([[0, 1]]), np.array([2, 2]))
    >>> x = sample(plan, torch.tensor([[-1.0, 1.0]] * 2), [2, 2], np.array([[0, 1]]),
    ...            torch.zeros(2), torch.tensor([5.0]), 100,
    ...            generator=torch.Generator().manual_seed(0))
    >>> x.shape, bool((x[:, 0] == x[:, 1]).float().mean() > 0.9)
    (torch.Size([100, 2]), True)
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 0:
        raise DataError(f"n_samples must be a non-negative integer, got {n_samples!r}")
    if backend not in ("auto", "numba", "torch"):
        raise DataError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if not isinstance(bias, torch.Tensor) or bias.ndim != 1:
        raise DataError(f"bias must be a tensor of shape ({plan.n},) for sampling, got "
                        f"{tuple(getattr(bias, 'shape', ()))}")
    check_feasible(plan)
    n_samples = int(n_samples)
    with torch.no_grad():
        w, lw = _check_inputs(plan, levels, edges, bias, weight, log_weights)
        vn = _values_np(plan, values)
        dev = bias.device
        if plan.n == 0 or n_samples == 0:
            return torch.zeros((n_samples, plan.n), dtype=torch.long, device=dev)
        gdev = generator.device if generator is not None else dev
        u = torch.rand((n_samples, plan.n), generator=generator, dtype=torch.float64,
                       device=gdev)
        if backend == "numba" or (backend == "auto" and dev.type == "cpu"):
            ka = _kernel_arrays(plan)
            lwn = _np64(torch.where(torch.as_tensor(_level_mask(plan)), lw.cpu(), 0.0)) \
                if lw is not None else ka["zeros_lw"]
            _, mode, ws, _, _ = _numba_forward(plan, vn, _np64(bias)[None], _np64(w), lwn,
                                               True, force_keep=True)
            un = np.ascontiguousarray(u.cpu().numpy())
            x = np.zeros((n_samples, plan.n), np.int64)
            args = (ws[0], bool(mode[0] == 1), un, x, plan.levels, ka["full"], ka["st"],
                    ka["in_src"], ka["in_base"], ka["in_sv"], ka["dim_stride"], ka["tab"],
                    ka["rest_nodes"], ka["dims"][2])
            run_split(lambda s0, s1: ek.sample_rows(s0, s1, *args), n_samples,
                      _threads(n_samples))
            return torch.from_numpy(x).to(dev)
        u = u.to(dev)
        vals, lw_t = _torch_inputs(plan, vn, lw, bias)
        _, kept = _torch_forward(plan, vals, lw_t, bias.reshape(1, -1), w, keep=True)
        x = torch.zeros((n_samples, plan.n), dtype=torch.long, device=dev)
        lv = plan.levels
        for t in range(plan.n - 1, -1, -1):
            v = plan.step_node[t]
            rest = plan.step_rest[t]
            table = kept[t][0]  # (K_v, R), R row-major over the rest scope
            if rest:
                strides = np.cumprod([1, *lv[rest[::-1]][:-1]])[::-1].copy()
                idx = x.index_select(1, torch.as_tensor(rest, device=dev)) @ \
                    torch.as_tensor(strides, device=dev)
                logits = table.index_select(1, idx)  # (K_v, n_samples)
            else:
                logits = table[:, :1].expand(-1, n_samples)
            cdf = torch.softmax(logits.double(), 0).cumsum(0)
            x[:, v] = (u[:, v][None, :] > cdf[:-1]).sum(0)
    return x


# ---------------------------------------------------------------- the engine (the seam)


class Elimination(ExactEngine):
    """Exact inference by variable elimination, through the engine seam: the compiler
    asks :meth:`cost` (the cheapest order's operations and largest table) next to the
    other engines' and keeps the cheapest feasible one.

    Feasible when the largest table fits ``limits.max_table`` entries and the work fits
    the budget the enumeration threshold gives, ``max_exact_states × n`` operations (an
    enumeration of ``max_exact_states`` states costs about that many). Domains must be
    discrete (value tables); moments come from the gradient of ``log Z``, marginals and
    exact samples from the kept messages.

    >>> from pgm_boltz.domains import SPIN
    >>> p = Problem([SPIN] * 4, np.array([[0, 1], [1, 2], [2, 3], [3, 0]]))
    >>> c = Elimination().cost(p, Limits())
    >>> c.feasible, c.plan.treewidth
    (True, 2)
    """

    name = "elimination"

    def cost(self, problem: Problem, limits: Limits) -> Cost | None:
        """The cheapest order's cost (:func:`plan_elimination`)."""
        if not problem.dv.discrete or problem.n == 0:
            return None
        max_log2 = math.log2(limits.max_table)
        plan = plan_elimination(problem.n, problem.edges, problem.levels,
                                max_log2_table=max_log2)
        budget = float(limits.max_exact_states) * max(1, problem.n)
        reasons = []
        if not plan.exact_cost or plan.log2_max_table > max_log2 + 1e-9:
            reasons.append(f"its largest table (2^{plan.log2_max_table:.1f} entries) is over "
                           f"the limit of {limits.max_table:,}")
        if plan.flops > budget:
            reasons.append(f"its ~{plan.flops:.3g} operations are over the budget of "
                           f"{budget:.3g} (max_exact_states × nodes)")
        summary = (f"eliminate in {plan.method} order: treewidth {plan.treewidth}, largest "
                   f"table {fmt_count(plan.log2_max_table)} entries, ~{plan.flops:.3g} "
                   "operations")
        return Cost(self.name, not reasons, plan.flops, plan.log2_max_table, summary,
                    "; ".join(reasons), plan)

    @staticmethod
    def _tables(problem: Problem, quad: torch.Tensor | None = None
                ) -> tuple[np.ndarray, torch.Tensor | None]:
        """The value table and the per-level log-weights (a torch tensor, differentiable
        in ``quad``: ``c_ik - q_i v_ik^2 / 2``; None when all are zero)."""
        check_quad(problem, quad)
        _, _, _, _, V, LW = problem.dv.kernel_arrays(rows=np.arange(problem.n))
        lw = torch.as_tensor(np.where(np.isfinite(LW), LW, 0.0))
        if quad is not None:
            Vt = torch.as_tensor(V)
            lw = lw.to(quad.dtype) - 0.5 * quad.unsqueeze(-1) * Vt.to(quad.dtype) ** 2
            return V, lw
        return V, (lw if bool((lw != 0).any()) else None)

    def log_partition(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                      weight: torch.Tensor, quad: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``log Z`` by elimination (batched over bias rows, differentiable in the bias,
        the weights and the precisions)."""
        V, lw = self._tables(problem, quad)
        return log_partition(cost.plan, V, problem.levels, problem.edges, bias, weight, lw)

    def sample(self, cost: Cost, problem: Problem, bias: torch.Tensor, weight: torch.Tensor,
               n: int, generator: torch.Generator | None,
               quad: torch.Tensor | None = None) -> torch.Tensor:
        """Exact draws by backward sampling, as joint values (n, n_nodes), float64."""
        V, lw = self._tables(problem, None if quad is None else quad.detach().cpu().double())
        levels = sample(cost.plan, V, problem.levels, problem.edges, bias.detach().cpu(),
                        weight.detach().cpu(), n, generator, lw)
        Vt = torch.as_tensor(V, dtype=torch.float64)
        return Vt.gather(1, levels.t().cpu()).t().contiguous()

    def marginals(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                  weight: torch.Tensor, nodes: Sequence[int] | None = None,
                  quad: torch.Tensor | None = None) -> list[np.ndarray]:
        """``P(s_i = level k)`` from one forward and reverse pass."""
        V, lw = self._tables(problem, None if quad is None else quad.detach().cpu().double())
        out = marginals(cost.plan, V, problem.levels, problem.edges,
                        bias.detach().double().cpu(), weight.detach().double().cpu(), lw)
        out = [o.double().numpy() for o in out]
        return out if nodes is None else [out[i] for i in nodes]


register_engine(Elimination())
