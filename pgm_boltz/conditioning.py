"""Conditioning: clamp evidence on some nodes and work with the law of the rest.

Clamping node ``i`` at value ``s_i`` turns every coupling ``W_ij s_i s_j`` into a bias
term ``(W_ij s_i) s_j`` of its neighbour, so with evidence ``x_E`` the free nodes ``F``
follow a Boltzmann machine on the induced subgraph with

    b'_j = b_j + sum_{i in E} W_ij s_i,        W'_jk = W_jk  (j, k in F),
    -E(x_F, x_E) = -E'(x_F) + c(x_E),
    c(x_E) = sum_{i in E} (b_i s_i - q_i s_i^2 / 2) + sum_{E-E edges} W s s,

free nodes keeping their quadratic self-terms ``q_j s_j^2 / 2`` (their learned
precisions, copied exactly into the sub-model). Evidence on a Gaussian node is its real
value; conditioning on a Gaussian node's neighbours leaves it a free Gaussian.

:func:`condition` compiles that sub-model with the same planning rules (exact
enumeration under the threshold, block or chromatic Gibbs otherwise), so the
conditional is exact by construction and every engine serves it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import torch

from ._validation import check_bool, check_choice, check_int, check_kwargs
from .compiler import analyse
from .domains import DomainVector
from .errors import DataError
from .inference.sampling import sample as _sample

if TYPE_CHECKING:
    from .model import EnergyModel

__all__ = ["ConditionedModel", "condition"]


class ConditionedModel:
    """The law of a model's free nodes given evidence; build it with ``model.condition``.

    Attributes
    ----------
    model: the parent :class:`~pgm_boltz.model.BoltzmannMachine`.
    evidence: ``{node: code}`` as given (validated).
    free_nodes: the other nodes, in the parent's node order.
    sub: the compiled sub-model over ``free_nodes`` (every free node is a visible unit
        of it, whatever its role in the parent), or ``None`` when nothing is free.
    plan: ``sub.plan`` (exact or Gibbs, by the usual rules).

    Samples are visible codes like ``model.sample``'s, (n, n_visible) with the evidence
    in place; ``return_hidden=True`` gives every node, ``free_only=True`` the free nodes
    (``free_nodes`` order). ``log_prob(v)`` is ``log P(v | evidence)``, free hidden units
    summed out. The sub-model holds a copy of the parameters at conditioning time.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.fully_connected(4, domain="spin"), seed=0)
    >>> c = m.condition({"v0": 1})
    >>> c.sample(3, seed=0).shape, c.free_nodes
    (torch.Size([3, 4]), ['v1', 'v2', 'v3'])
    """

    def __init__(self, model: EnergyModel, evidence: Mapping[Hashable, Any],
                 engine: str = "auto", max_exact_states: int | None = None) -> None:
        check_choice("engine", engine, ("auto", "exact", "block-gibbs", "chromatic-gibbs"),
                     where="condition")
        self.model = model
        index = {u: i for i, u in enumerate(model.nodes)}
        if not isinstance(evidence, Mapping):
            raise DataError(f"evidence must be a mapping {{node: value}}, got "
                            f"{type(evidence).__name__}")
        ev_idx, ev_codes = [], []
        for node, code in evidence.items():
            if node not in index:
                raise DataError(f"evidence names node {node!r}, which is not in the model "
                                f"(nodes are model.nodes)")
            i = index[node]
            dom = model.spec.domains[i]
            if torch.is_tensor(code) or isinstance(code, np.ndarray):
                if np.asarray(code.detach().cpu() if torch.is_tensor(code) else code).size != 1:
                    raise DataError(f"evidence for node {node!r} must be one value, got "
                                    f"shape {tuple(code.shape)}")
                code = float(np.asarray(code.detach().cpu() if torch.is_tensor(code)
                                        else code).reshape(()))
            if isinstance(code, bool) or not isinstance(code, numbers.Real) or \
                    not math.isfinite(float(code)):
                raise DataError(f"evidence for node {node!r} must be a number (a code of "
                                f"its domain {dom.describe()}), got {code!r}")
            code = float(code)
            if DomainVector([dom]).invalid_codes(np.array([code]))[0]:
                raise DataError(f"evidence for node {node!r} is {code!r}, outside its domain "
                                f"{dom.describe()}, which takes {dom.codes_text()}")
            ev_idx.append(i)
            ev_codes.append(code)
        self.evidence = dict(evidence)
        order = np.argsort(ev_idx, kind="stable")
        self.evidence_index = np.asarray(ev_idx, dtype=np.int64)[order]
        self.evidence_codes = np.asarray(ev_codes, dtype=np.float64)[order]
        ev_doms = DomainVector([model.spec.domains[i] for i in self.evidence_index])
        s_E = ev_doms.encode(torch.as_tensor(self.evidence_codes)).numpy() \
            if len(self.evidence_index) else np.zeros(0)
        self.evidence_values = s_E
        n = model.n_nodes
        is_ev = np.zeros(n, dtype=bool)
        is_ev[self.evidence_index] = True
        self.free_index = np.flatnonzero(~is_ev)
        self.free_nodes = [model.nodes[i] for i in self.free_index]
        with torch.no_grad():
            b = model.bias.detach().cpu().double().numpy()
            w = model.weight.detach().cpu().double().numpy()
        e = model.edge_array
        s_full = np.zeros(n)
        s_full[self.evidence_index] = s_E
        # adjusted biases b'_j = b_j + sum_{i in E} W_ij s_i (both edge directions)
        b_adj = b.copy()
        if len(e):
            np.add.at(b_adj, e[:, 1], np.where(is_ev[e[:, 0]], w * s_full[e[:, 0]], 0.0))
            np.add.at(b_adj, e[:, 0], np.where(is_ev[e[:, 1]], w * s_full[e[:, 1]], 0.0))
            both = is_ev[e[:, 0]] & is_ev[e[:, 1]]
            ee = float((w[both] * s_full[e[both, 0]] * s_full[e[both, 1]]).sum())
        else:
            ee = 0.0
        q_full = model.precisions()
        q = np.zeros(n) if q_full is None else q_full.detach().cpu().double().numpy()
        #: ``c(x_E)``: the evidence's own terms of -E (its biases, quadratic terms and E–E
        #: couplings)
        self.offset = float((b[self.evidence_index] * s_E).sum()) + ee - float(
            (0.5 * q[self.evidence_index] * s_E * s_E).sum())
        if len(self.free_index) == 0:
            self.sub = None
            self.plan = None
            return
        G = nx.Graph()
        quadratic = set(model.quadratic_index.tolist())
        for i in self.free_index:
            dom = model.spec.domains[i]
            attrs: dict = {"role": "visible", "bias": float(b_adj[i]), **dom.attrs()}
            if i in quadratic:
                attrs["precision"] = float(q[i])
            G.add_node(model.nodes[i], **attrs)
        if len(e):
            keep = ~is_ev[e[:, 0]] & ~is_ev[e[:, 1]]
            for (i, j), wij in zip(e[keep], w[keep]):
                G.add_edge(model.nodes[i], model.nodes[j], weight=float(wij))
        self._compile_kw = dict(engine=engine, storage=model.plan.storage,
                                max_exact_states=max_exact_states or
                                model.plan.max_exact_states)
        self._graph = G
        spec, plan = analyse(G, **self._compile_kw)
        #: the sub-model, of the parent's own class (so it has the parent's methods)
        self.sub = type(model)(spec, plan, device=model.device, dtype=model.dtype)
        self.plan = self.sub.plan
        self._copy_precisions(self.sub)
        self._visible_sub: Any = None

    def _copy_precisions(self, sub: Any) -> None:
        """Give a sub-model the parent's learned log-precisions exactly (its compiled
        values come from the rounded ``precision`` attributes)."""
        model = self.model
        if sub.log_precision is not None:
            assert model.log_precision is not None
            pos = np.searchsorted(model.quadratic_index,
                                  self.free_index[sub.quadratic_index])
            with torch.no_grad():
                sub.log_precision.copy_(model.log_precision.detach()[
                    torch.as_tensor(pos, device=model.device)])

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, method: str | None = None,
               return_hidden: bool = False, free_only: bool = False,
               **kwargs: Any) -> torch.Tensor:
        """``n`` draws from ``P(x_F | x_E)`` as codes, like ``model.sample``: the visible
        units (n, n_visible) in ``model.visible_nodes`` order, evidence in place;
        ``return_hidden=True`` gives every node (n, n_nodes) in ``model.nodes`` order;
        ``free_only=True`` the free nodes only, (n, len(free_nodes)).

        ``method=None`` follows the sub-model's plan (``"exact"``: independent exact
        draws, a ``steps`` keyword is then not needed; ``"gibbs"`` or another registered
        sampler: ``n`` chains with the evidence clamped, keyword ``steps``, see
        :func:`pgm_boltz.inference.sampling.sample`).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
        >>> c = m.condition({"v0": 1, "h1": 0})
        >>> c.sample(2, seed=1).shape, c.sample(2, seed=1, free_only=True).shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
        """
        n = check_int("n", n, 1, where="ConditionedModel.sample")
        check_bool("return_hidden", return_hidden, where="ConditionedModel.sample")
        check_bool("free_only", free_only, where="ConditionedModel.sample")
        m = self.model
        if self.sub is None:
            free = torch.zeros(n, 0, dtype=m.dtype, device=m.device)
            check_kwargs("ConditionedModel.sample", kwargs, ("steps", "progress"))
        else:
            free = _sample(self.sub, n, seed=seed, method=method, return_hidden=True,
                           **kwargs)
        if free_only:
            return free
        out = torch.empty(n, m.n_nodes, dtype=m.dtype, device=m.device)
        out[:, torch.as_tensor(self.free_index, device=m.device)] = free.to(m.dtype)
        if len(self.evidence_index):
            out[:, torch.as_tensor(self.evidence_index, device=m.device)] = torch.as_tensor(
                self.evidence_codes, dtype=m.dtype, device=m.device)
        if return_hidden:
            return out
        return out[:, m.index("visible")]

    def log_prob(self, v: Any, log_partition: Any = None) -> torch.Tensor:
        """``log P(v | x_E)`` of visible data ``v`` (codes, (N, n_visible) in
        ``model.visible_nodes`` order, or a mapping / DataFrame by name), the free hidden
        units summed out: the log-likelihood of the free visible units given the
        evidence. Rows whose evidence columns disagree with the evidence score ``-inf``.
        Exact by the sub-model's engines (``log_partition``: an estimate of the free
        part's log Z for large sub-models).

        >>> import pgm_boltz as pb, torch
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> c = m.condition({"v0": 1})
        >>> float(c.log_prob([[1, 0], [1, 1]]).detach().exp().sum())  # doctest: +ELLIPSIS
        1.0...
        """
        m = self.model
        values = m.encode_data(v, "v")
        codes = m.decode_visible(values)
        vis_pos = {int(i): k for k, i in enumerate(m.visible_index)}
        ok = torch.ones(codes.shape[0], dtype=torch.bool, device=codes.device)
        for i, c in zip(self.evidence_index, self.evidence_codes):
            if int(i) in vis_pos:
                ok &= codes[:, vis_pos[int(i)]] == float(c)
        free_vis = [k for k, i in enumerate(m.visible_index) if int(i) not in
                    set(self.evidence_index.tolist())]
        if not free_vis:
            lp = torch.zeros(codes.shape[0], dtype=m.dtype, device=m.device)
        else:
            sub = self._visible_model()
            lp = sub.log_prob(codes[:, free_vis], log_partition=log_partition)
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def _visible_model(self) -> Any:
        """The free nodes with their roles kept (free hidden units are summed out)."""
        if self._visible_sub is None:
            G = self._graph.copy()
            for node in G.nodes:
                G.nodes[node]["role"] = self.model.spec.roles[self.model.nodes.index(node)]
            spec, plan = analyse(G, **self._compile_kw)
            m = self.model
            self._visible_sub = type(m)(spec, plan, device=m.device, dtype=m.dtype)
            self._copy_precisions(self._visible_sub)
        return self._visible_sub

    # ------------------------------------------------------------------ exact work
    def log_partition(self) -> float:
        """``log Z(x_E) = log sum_{x_F} exp(-E(x_F, x_E))`` (exact; IntractableError over
        the threshold), so ``log P(x_E) = log Z(x_E) - model.log_partition()``.

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> import math
        >>> lz = [m.condition({"v0": a}).log_partition() for a in (0, 1)]
        >>> abs(math.log(sum(math.exp(z) for z in lz)) - float(m.log_partition().detach())) < 1e-5
        True
        """
        if self.sub is None:
            return self.offset
        with torch.no_grad():
            return float(self.sub.exact_log_partition()) + self.offset

    def marginals(self) -> dict[Hashable, np.ndarray]:
        """Exact ``P(s_j = level k | x_E)`` for every free node (level order).

        >>> import pgm_boltz as pb
        >>> m = pb.compile(pb.graphs.rbm(2, 1), seed=0)
        >>> sorted(m.condition({"v0": 1}).marginals())
        ['h0', 'v1']
        """
        if self.sub is None:
            return {}
        return self.sub.marginals()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact ``(E[s_j | x_E], E[s_j s_k | x_E])`` over the free nodes (values,
        ``free_nodes`` order), shapes (n_F,), (n_F, n_F)."""
        if self.sub is None:
            m = self.model
            return (torch.zeros(0, dtype=m.dtype), torch.zeros(0, 0, dtype=m.dtype))
        return self.sub.moments()

    def __repr__(self) -> str:
        eng = self.plan.engine if self.plan is not None else "none (all nodes clamped)"
        return (f"ConditionedModel({len(self.evidence_index)} clamped, "
                f"{len(self.free_index)} free, engine={eng!r})")


def condition(model, evidence: Mapping[Hashable, Any], engine: str = "auto",
              max_exact_states: int | None = None) -> ConditionedModel:
    """``P(x_F | x_E = evidence)`` as a :class:`ConditionedModel` (see the module text).

    ``evidence`` maps node names to codes (binary 0/1, spin ±1, multinary 0..K-1, real
    values for Gaussian nodes); an unknown node or a value outside the node's domain
    raises DataError. ``engine`` and
    ``max_exact_states`` (default: the parent's threshold) go to the sub-model's
    compilation.

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    >>> condition(m, {"v0": 1}).plan.engine
    'exact'
    """
    return ConditionedModel(model, evidence, engine=engine,
                            max_exact_states=max_exact_states)
