"""The enumeration engine: enumerate a vertex cover, sum the rest out in closed form.

A unit whose neighbours are all enumerated is conditionally independent of the other
summed units, so it is summed out analytically through its domain's log-normaliser:

    log Z = logsumexp_{x_E} [ -E_E(x_E) + sum_{i in S} A_i(b_i + sum_{j in E} W_ij s_j) ],

with E a vertex cover (the enumerated set) and S = V \\ E independent. Continuous
(Gaussian) units cannot be enumerated: they are always summed out (in closed form) and
their neighbours always enumerated; the rest of the cover is chosen to make
``prod_{i in E} K_i`` small: a minimum-weight vertex cover (weights
``log2 K_i``) by a minimum cut on bipartite graphs (König), else a greedy heap-based
independent set; a cheap matching lower bound rejects hopeless models without search.
The walk itself is the numba table kernel of :mod:`pgm_boltz.engines.enum_kernels`
(unbatched, float64, exact moments in the same walk); batched biases (free energies of
data rows) enumerate in torch, chunked so memory stays O(rows × chunk × units).

>>> import numpy as np, torch
>>> from pgm_boltz.domains import SPIN
>>> p = Problem([SPIN, SPIN], np.array([[0, 1]]))
>>> eng = Enumeration()
>>> c = eng.cost(p, Limits())
>>> z = eng.log_partition(c, p, torch.zeros(2, dtype=torch.float64),
...                       torch.ones(1, dtype=torch.float64))
>>> round(float(z), 6) == round(float(np.log(2 * np.e + 2 / np.e)), 6)
True
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch

import pgm_boltz.engines.enum_kernels as _k

from ..domains import DomainVector
from .base import (
    Cost,
    ExactEngine,
    Limits,
    Problem,
    _discrete_nodes,
    check_quad,
    fmt_count,
    register_engine,
)

__all__ = ["EnumPlan", "Enumeration", "greedy_matching_bound", "kernel_problem", "vertex_cover"]

#: Bipartite graphs up to this many edges get an exact minimum-weight cover (min cut).
_MIN_CUT_EDGES = 200_000
#: A matching bound this far (in log2 states) over the limit skips the cover search.
_HOPELESS = 20.0
#: Elements per torch chunk of the batched enumeration (rows × states × units).
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class EnumPlan:
    """The enumeration engine's plan: the enumerated nodes (local indices, in walk
    order), log2 of the enumerated states, and whether that number is only a lower bound
    (the model was too large to search for a cover)."""

    enum: np.ndarray
    log2_states: float
    bound_only: bool = False


def greedy_matching_bound(edges: np.ndarray, weight: np.ndarray) -> float:
    """A lower bound on the minimum-weight vertex cover: a greedy maximal matching, each
    matched edge adding ``min(weight)`` of its ends (every cover holds one end of each).

    >>> greedy_matching_bound(np.array([[0, 1], [1, 2], [2, 3]]), np.ones(4))
    2.0
    """
    used = np.zeros(len(weight), dtype=bool)
    total = 0.0
    for u, v in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        if not used[u] and not used[v]:
            used[u] = used[v] = True
            total += min(weight[u], weight[v])
    return float(total)


def _min_cut_independent(n: int, edges: np.ndarray, weight: np.ndarray,
                         colour: dict) -> set:
    """Max-weight independent set of a bipartite graph = complement of a min-weight
    vertex cover (König), by one minimum s-t cut (source → class 0 → class 1 → sink)."""
    F = nx.DiGraph()
    touched = np.unique(edges)
    for u in touched.tolist():
        if colour[u] == 0:
            F.add_edge("_s", u, capacity=float(weight[u]))
        else:
            F.add_edge(u, "_t", capacity=float(weight[u]))
    for u, v in edges.tolist():
        a, b = (u, v) if colour[u] == 0 else (v, u)
        F.add_edge(a, b)  # infinite capacity
    _, (reach, _) = nx.minimum_cut(F, "_s", "_t")
    cover = {u for u in touched.tolist()
             if (colour[u] == 0 and u not in reach) or (colour[u] == 1 and u in reach)}
    return set(range(n)) - cover


def _greedy_independent(n: int, edges: np.ndarray, weight: np.ndarray) -> set:
    """A heavy independent set, greedily: repeatedly take the node with the largest
    ``weight / (degree + 1)`` (ties: smaller degree) and drop its neighbours. A heap with
    lazy entries makes it O((n + m) log n)."""
    adj: list[set] = [set() for _ in range(n)]
    for u, v in edges.tolist():
        adj[u].add(v)
        adj[v].add(u)
    alive = np.ones(n, dtype=bool)
    deg = np.array([len(a) for a in adj])
    # ties: the later node first (an RBM's hidden layer, declared after the visible one,
    # is summed out when both layers are as large)
    heap = [(-weight[i] / (deg[i] + 1), deg[i], -i) for i in range(n)]
    heapq.heapify(heap)
    chosen = set()
    while heap:
        key, d, neg_u = heapq.heappop(heap)
        u = -neg_u
        if not alive[u] or d != deg[u]:
            continue  # removed, or a stale entry
        chosen.add(u)
        gone = [u, *adj[u]]
        for x in gone:
            alive[x] = False
        for x in gone:
            for y in adj[x]:
                if alive[y]:
                    adj[y].discard(x)
                    deg[y] -= 1
                    heapq.heappush(heap, (-weight[y] / (deg[y] + 1), deg[y], -y))
    return chosen


def vertex_cover(problem: Problem, max_log2_states: float) -> EnumPlan:
    """The nodes to enumerate: the complement of a heavy independent set (weights
    ``log2 K_i``), exact by min cut on bipartite graphs up to 200,000 edges, greedy
    otherwise (the min cut only runs when the greedy cover does not reach the matching
    lower bound, which proves it optimal). When the matching lower bound is more
    than 20 (log2) over ``max_log2_states`` the search is skipped and the bound reported.
    Continuous nodes are never enumerated and their neighbours always are (two
    continuous nodes must not be adjacent).

    >>> from pgm_boltz.domains import BINARY
    >>> p = Problem([BINARY] * 5, np.array([[0, 3], [0, 4], [1, 3], [1, 4], [2, 3], [2, 4]]))
    >>> vertex_cover(p, 22).enum.tolist()
    [3, 4]
    """
    cont = np.array([not d.discrete for d in problem.domains], dtype=bool)
    if cont.any():
        return _cover_with_continuous(problem, cont, max_log2_states)
    n, e = problem.n, problem.edges
    weight = np.log2(problem.levels.astype(np.float64))
    if len(e) == 0:
        return EnumPlan(np.zeros(0, np.int64), 0.0)
    bound = greedy_matching_bound(e, weight)
    if bound > max_log2_states + _HOPELESS:
        return EnumPlan(np.arange(n), bound, bound_only=True)
    best = _greedy_independent(n, e, weight)
    cover_weight = weight.sum() - weight[list(best)].sum()
    if cover_weight > bound + 1e-9 and len(e) <= _MIN_CUT_EDGES:
        # not provably optimal: on bipartite graphs a minimum cut gives the optimum
        G = nx.Graph()
        G.add_nodes_from(range(n))
        G.add_edges_from(e.tolist())
        try:
            colour = nx.bipartite.color(G)
        except nx.NetworkXError:
            colour = None
        if colour is not None:
            cut = _min_cut_independent(n, e, weight, colour)
            if weight[list(cut)].sum() > weight[list(best)].sum():
                best = cut
    enum = np.array([i for i in range(n) if i not in best], dtype=np.int64)
    return EnumPlan(enum, float(weight[enum].sum()))


def _cover_with_continuous(problem: Problem, cont: np.ndarray, max_log2_states: float
                           ) -> EnumPlan:
    """:func:`vertex_cover` with continuous nodes: they are summed, their neighbours
    enumerated, and the discrete nodes left over get a cover of their own edges."""
    n, e = problem.n, problem.edges
    forced = np.zeros(n, dtype=bool)
    if len(e):
        forced[e[cont[e[:, 0]], 1]] = True
        forced[e[cont[e[:, 1]], 0]] = True
    rest = np.flatnonzero(~cont & ~forced)
    pos = np.full(n, -1)
    pos[rest] = np.arange(len(rest))
    keep = (pos[e[:, 0]] >= 0) & (pos[e[:, 1]] >= 0) if len(e) else np.zeros(0, bool)
    weight = np.log2(problem.levels.astype(np.float64))
    base = float(weight[forced].sum())
    sub = vertex_cover(Problem([problem.domains[i] for i in rest], pos[e[keep]]),
                       max_log2_states - base)
    enum_mask = forced.copy()
    enum_mask[rest[sub.enum]] = True
    enum = np.flatnonzero(enum_mask)
    return EnumPlan(enum, base + sub.log2_states, sub.bound_only)


class _EnumLogZ(torch.autograd.Function):
    """``log Z(b, w, q)`` by the table kernel; backward gives the exact moments
    ``d log Z / d b_i = <s_i>``, ``d log Z / d w_ij = <s_i s_j>`` and
    ``d log Z / d q_i = -<s_i^2> / 2``."""

    @staticmethod
    def forward(ctx, bias, weight, quad, problem, plan):  # type: ignore[override]
        kp = kernel_problem(problem, plan, bias, weight, quad)
        squares = quad is not None and quad.requires_grad
        if bias.requires_grad or weight.requires_grad or squares:
            mom = _k.exact_moments(kp, problem.n, squares=squares)
            e = problem.edges
            pair = mom.pairs(e[:, 0], e[:, 1]) if len(e) else np.zeros(0)
            dq = -0.5 * mom.diag if squares else np.zeros(0)
            ctx.save_for_backward(
                torch.as_tensor(mom.mean, dtype=bias.dtype, device=bias.device),
                torch.as_tensor(pair, dtype=weight.dtype, device=weight.device),
                torch.as_tensor(dq, dtype=bias.dtype, device=bias.device))
            value = mom.log_z
        else:
            value = _k.exact_log_partition(kp)
        return torch.tensor(value, dtype=bias.dtype, device=bias.device)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        mean, pair, dq = ctx.saved_tensors
        gq = grad * dq if ctx.needs_input_grad[2] else None
        return grad * mean, grad * pair, gq, None, None


def kernel_problem(problem: Problem, plan: EnumPlan, bias: torch.Tensor,
                   weight: torch.Tensor, quad: torch.Tensor | None = None
                   ) -> _k.ExactProblem:
    """The table kernel's arrays (:class:`~.enum_kernels.ExactProblem`, float64, CPU)
    for the parameters ``bias`` (n,), ``weight`` (m,) and precisions ``quad`` (n,) or
    None (Gaussian units integrated out)."""
    check_quad(problem, quad)
    E = plan.enum
    others = np.setdiff1d(np.arange(problem.n), E)
    _check_gaussian_neighbours(problem, E)
    with torch.no_grad():
        b = bias.detach().to("cpu", torch.float64).numpy()
        w = weight.detach().to("cpu", torch.float64)
        WEE = problem.coupling_block(w, E, E).numpy()
        WEO = problem.coupling_block(w, E, others).numpy()
        q = None if quad is None else quad.detach().to("cpu", torch.float64).numpy()
    return _k.build_problem(problem.dv, b, WEE, WEO, E, q)


def _check_gaussian_neighbours(problem: Problem, enum: np.ndarray) -> None:
    """Every neighbour of a Gaussian (continuous) unit must be enumerated, so that the
    unit integrates out in closed form given them."""
    cont = np.array([not d.discrete for d in problem.domains], dtype=bool)
    if not cont.any() or not len(problem.edges):
        return
    in_e = np.zeros(problem.n, dtype=bool)
    in_e[enum] = True
    e = problem.edges
    bad = (cont[e[:, 0]] & ~in_e[e[:, 1]]) | (cont[e[:, 1]] & ~in_e[e[:, 0]])
    if bad.any():
        raise ValueError("every neighbour of a Gaussian unit must be enumerated")


class Enumeration(ExactEngine):
    """Exact inference by enumerating a vertex cover (see the module text)."""

    name = "enumeration"

    def cost(self, problem: Problem, limits: Limits) -> Cost | None:
        """States of the cover walk; feasible under ``limits.max_exact_states``. None
        (cannot) when two continuous units are adjacent."""
        if not problem.dv.discrete and len(problem.edges):
            cont = np.array([not d.discrete for d in problem.domains])
            if (cont[problem.edges[:, 0]] & cont[problem.edges[:, 1]]).any():
                return None
        limit = math.log2(limits.max_exact_states)
        plan = vertex_cover(problem, limit)
        n_e = len(plan.enum)
        n_s = problem.n - n_e
        feasible = not plan.bound_only and plan.log2_states <= limit + 1e-9
        states = fmt_count(plan.log2_states)
        if plan.bound_only:
            summary = (f"enumeration of at least {states} states (a matching bound; no "
                       "cover was searched)")
        else:
            summary = (f"enumerate {n_e} nodes = {states} states; {n_s} nodes summed out "
                       "in closed form")
        reason = "" if feasible else (f"over the threshold of {limits.max_exact_states:,} "
                                      "states")
        flops = 2.0 ** min(plan.log2_states, 1000.0) * max(1, n_e + n_s)
        log2_table = min(plan.log2_states, 10.0) + math.log2(max(1, n_s + n_e))
        return Cost(self.name, feasible, flops, log2_table, summary, reason, plan)

    def log_partition(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                      weight: torch.Tensor, quad: torch.Tensor | None = None) -> torch.Tensor:
        """Unbatched: the numba table walk (custom autograd, exact moments as the
        gradient). Batched (*batch, n): torch enumeration of the cover, chunked."""
        plan: EnumPlan = cost.plan
        if bias.dim() == 1:
            return _EnumLogZ.apply(bias, weight, quad, problem, plan)
        check_quad(problem, quad)
        return self._batched(plan, problem, bias, weight, quad)

    def _batched(self, plan: EnumPlan, problem: Problem, bias: torch.Tensor,
                 weight: torch.Tensor, quad: torch.Tensor | None = None) -> torch.Tensor:
        lead = bias.shape[:-1]
        b = bias.reshape(-1, problem.n)
        N, n = b.shape
        E = plan.enum
        S = np.setdiff1d(np.arange(n), E)
        dev, dt = bias.device, bias.dtype
        Ei = torch.as_tensor(E, device=dev)
        Si = torch.as_tensor(S, device=dev)
        qS = None if quad is None else quad.to(dev, dt)[Si]
        if len(E) == 0:
            out = DomainVector([problem.domains[i] for i in S]).log_normalizer(b, qS).sum(-1)
            return out.reshape(lead)
        vals = [torch.as_tensor(problem.domains[i].values(), dtype=dt, device=dev)
                for i in E]
        states = torch.cartesian_prod(*vals).reshape(-1, len(E))  # (M, |E|)
        J_EE = problem.coupling_block(weight.to(dt), E, E)
        J_ES = problem.coupling_block(weight.to(dt), E, S)
        pair = 0.5 * ((states @ J_EE) * states).sum(-1)  # (M,)
        if quad is not None:
            pair = pair - 0.5 * (states * states) @ quad.to(dev, dt)[Ei]
        dv_s = DomainVector([problem.domains[i] for i in S])
        bE, bS = b[:, Ei], b[:, Si]
        M = states.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, N * max(1, len(S))))
        parts = []
        for c0 in range(0, M, chunk):
            st = states[c0:c0 + chunk]
            lw = bE @ st.t() + pair[c0:c0 + chunk]  # (N, c)
            if len(S):
                f = bS.unsqueeze(1) + (st @ J_ES).unsqueeze(0)  # (N, c, |S|)
                lw = lw + dv_s.log_normalizer(f, qS).sum(-1)
            parts.append(torch.logsumexp(lw, dim=1))
        out = torch.logsumexp(torch.stack(parts, 1), dim=1)
        return out.reshape(lead)

    def sample(self, cost: Cost, problem: Problem, bias: torch.Tensor, weight: torch.Tensor,
               n: int, generator: torch.Generator | None,
               quad: torch.Tensor | None = None) -> torch.Tensor:
        """Exact draws: the cover by one ordered walk against sorted uniforms, then each
        summed node (Gaussian ones included) from its conditional given the cover."""
        kp = kernel_problem(problem, cost.plan, bias, weight, quad)
        logz = _k.exact_log_partition(kp)
        xe = _k.exact_sample_enumerated(kp, logz, n, generator)
        x = torch.zeros(n, problem.n, dtype=torch.float64)
        x[:, torch.as_tensor(kp.enum)] = torch.as_tensor(xe)
        S = np.setdiff1d(np.arange(problem.n), kp.enum)
        if len(S):
            with torch.no_grad():
                b = bias.detach().cpu().double()
                f = b[S] + x[:, kp.enum] @ problem.coupling_block(
                    weight.detach().cpu().double(), kp.enum, S)
                dv = DomainVector([problem.domains[i] for i in S])
                qS = None if quad is None else quad.detach().cpu().double()[S]
                x[:, torch.as_tensor(S)] = dv.sample(f, generator, qS)
        return x

    def moments(self, cost: Cost, problem: Problem, bias: torch.Tensor, weight: torch.Tensor,
                all_pairs: bool = False, quad: torch.Tensor | None = None
                ) -> tuple[float, np.ndarray, np.ndarray]:
        """All in one walk of the table kernel (pairs of two summed nodes with
        ``all_pairs``; ``<s_i^2>`` on the diagonal)."""
        kp = kernel_problem(problem, cost.plan, bias, weight, quad)
        mom = _k.exact_moments(kp, problem.n, all_pairs=all_pairs, squares=True)
        return mom.log_z, mom.mean, mom.dense()

    def clamped_cost(self, cost: Cost, problem: Problem, sub: Problem, i: int) -> Cost:
        """The same cover without node i (still a cover of the rest)."""
        plan: EnumPlan = cost.plan
        rest = np.setdiff1d(np.arange(problem.n), [i])
        enum = np.searchsorted(rest, np.setdiff1d(plan.enum, [i]))
        log2 = float(np.log2(sub.levels[enum].astype(np.float64)).sum())
        return Cost(self.name, True, 0.0, 0.0, "", "", EnumPlan(enum, log2))

    def marginals(self, cost: Cost, problem: Problem, bias: torch.Tensor,
                  weight: torch.Tensor, nodes: Sequence[int] | None = None,
                  quad: torch.Tensor | None = None) -> list[np.ndarray]:
        """``P(s_i = level k)`` of discrete nodes: two-level nodes from their exact means;
        others by one pass over the cover's states (torch, chunked), each state weighted
        by ``p(x_E) = exp(log p~(x_E) - log Z)``: an enumerated node adds ``p`` to its
        level, a summed node ``p`` times its conditional law given the cover,
        ``softmax_k(f_i(x_E) v_k + c_k)`` (Gaussian nodes integrated out first)."""
        nodes = _discrete_nodes(problem, nodes)
        kp = kernel_problem(problem, cost.plan, bias, weight, quad)
        mom = _k.exact_moments(kp, problem.n)
        multi = [i for i in nodes if problem.domains[i].levels > 2]
        if multi:  # every level is listed: refuse units with too many (IntractableError)
            problem.dv.kernel_arrays(rows=multi)
        table = self._level_marginals(kp, mom.log_z - kp.const) if multi else {}
        out = []
        for i in nodes:
            if i in table:
                out.append(table[i])
            else:
                v0, v1 = problem.domains[i].values()
                p = (mom.mean[i] - v0) / (v1 - v0)
                out.append(np.array([1.0 - p, p]))
        return out

    def _level_marginals(self, kp: _k.ExactProblem, logz: float) -> dict[int, np.ndarray]:
        """Level marginals of every discrete node of the kernel problem ``kp`` (its
        ``log Z`` without the Gaussian constant)."""
        dt = torch.float64
        E, S = kp.enum, kp.summed
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dt)
        VE, LWE, bE, WEE = t(kp.VE), t(kp.LWE), t(kp.bE), t(kp.WEE)
        VS, bS, WES = t(kp.VS), t(kp.bS), t(kp.WES)
        kmax = max(kp.VE.shape[1] if len(E) else 1, kp.VS.shape[1] if len(S) else 1)
        padS = torch.as_tensor(np.arange(kp.VS.shape[1])[None, :] >= kp.KS[:, None])
        LWS = t(np.where(np.isfinite(kp.LWS), kp.LWS, 0.0))
        out = {int(i): np.zeros(int(k)) for i, k in zip(E, kp.KE)}
        out.update({int(i): np.zeros(int(k)) for i, k in zip(S, kp.KS)})
        if len(E):
            levels = [torch.arange(int(k)) for k in kp.KE]
            idx = torch.cartesian_prod(*levels).reshape(-1, len(E))  # level indices
        else:
            idx = torch.zeros(1, 0, dtype=torch.long)
        M = idx.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, len(S) * kmax, len(E)))
        acc_s = torch.zeros(len(S), kp.VS.shape[1] if len(S) else 1, dtype=dt)
        for c0 in range(0, M, chunk):
            lev = idx[c0:c0 + chunk]
            if len(E):
                x = VE.gather(1, lev.t()).t()
                lw = x @ bE + 0.5 * ((x @ WEE) * x).sum(-1) + LWE.gather(1, lev.t()).t().sum(-1)
            else:
                x = torch.zeros(len(lev), 0, dtype=dt)
                lw = torch.zeros(len(lev), dtype=dt)
            if len(S):
                f = bS + x @ WES  # (c, |S|)
                logits = (f.unsqueeze(-1) * VS + LWS).masked_fill(padS, -math.inf)
                A = torch.logsumexp(logits, -1)
                lw = lw + A.sum(-1)
                cond = torch.exp(logits - A.unsqueeze(-1))  # (c, |S|, Kmax)
            p = torch.exp(lw - logz)
            if len(S):
                acc_s += torch.einsum("c,csk->sk", p, cond)
            for a, i in enumerate(E.tolist()):
                out[i] += torch.bincount(lev[:, a], weights=p,
                                         minlength=int(kp.KE[a])).numpy()
        for a, i in enumerate(S.tolist()):
            out[i] = acc_s[a, :int(kp.KS[a])].numpy()
        return out


register_engine(Enumeration())
