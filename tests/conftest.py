"""Shared test fixtures: brute-force oracles and random declared graphs.

``brute_force(model)`` enumerates every joint state of a compiled model in float64 and
returns ``(log_z, mean, second)``; ``brute_force_visible(model)`` returns every visible
state (codes) with its exact ``log P(v)``; ``random_graph(draw_or_rng, ...)`` declares a
random Boltzmann machine with mixed roles and domains (hypothesis ``draw`` or a numpy
``Generator``). Other test modules import these: ``from conftest import brute_force``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import pgm_boltz as pb

__all__ = [
    "all_joint_states",
    "brute_force",
    "brute_force_visible",
    "joint_log_weights",
    "random_graph",
    "random_graphs",
]

_BRUTE_LIMIT = 1 << 20


def _params(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = model.bias.detach().cpu().double().numpy()
    w = model.weight.detach().cpu().double().numpy()
    return b, w, model.edge_array


def all_joint_states(model) -> np.ndarray:
    """Every joint state of the model as values, shape (prod K_i, n), float64."""
    levels = [d.values() for d in model.spec.domains]
    total = int(np.prod([len(v) for v in levels]))
    if total > _BRUTE_LIMIT:
        raise ValueError(f"brute force over {total} states is too large for a test")
    grids = np.meshgrid(*levels, indexing="ij")  # last node varies fastest
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.float64)


def joint_log_weights(model, X: np.ndarray) -> np.ndarray:
    """``-E(x)`` for joint values ``X`` (N, n), from the model's parameters in float64
    (quadratic self-terms ``-q s^2 / 2`` included)."""
    b, w, e = _params(model)
    lw = X @ b
    if getattr(model, "log_precision", None) is not None:
        q = np.zeros(len(b))
        q[model.quadratic_index] = np.exp(model.log_precision.detach().cpu().double().numpy())
        lw = lw - 0.5 * (X * X) @ q
    if len(e):
        J = np.zeros((len(b), len(b)))
        np.add.at(J, (e[:, 0], e[:, 1]), w)  # upper triangle: each edge once
        lw = lw + np.einsum("si,ij,sj->s", X, J, X, optimize=True)
    return lw


def brute_force(model) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Plain enumeration of every joint state (float64).

    Returns ``log Z``, the means ``<s_i>`` (n,) and the second moments ``<s_i s_j>``
    (n, n), diagonal ``<s_i^2>`` included, over all nodes in ``model.nodes`` order.
    """
    X = all_joint_states(model)
    lw = joint_log_weights(model, X)
    mx = lw.max()
    p = np.exp(lw - mx)
    Z = p.sum()
    log_z = float(mx + np.log(Z))
    p = p / Z
    mean = p @ X
    second = (X * p[:, None]).T @ X
    return log_z, torch.as_tensor(mean), torch.as_tensor(second)


def gibbs_moment_z(model, sampler: Any, chains: int = 1000, burn: int = 50, keep: int = 40,
                   thin: int = 1, seed: int = 0, floor: float = 1e-4) -> np.ndarray:
    """z-scores ``|estimate - exact| / (stderr + floor)`` of every mean ``<s_i>`` and pair
    moment ``<s_i s_j>`` (i < j): ``chains`` Gibbs chains from ``sampler`` (a
    ``BlockSampler``), ``burn`` sweeps, then ``keep`` records ``thin`` sweeps apart,
    averaged per chain; the stderr is across chains; exact = ``model.moments()``."""
    g = torch.Generator().manual_seed(seed)
    x = sampler.init(chains, g)
    sampler.sweep(x, burn, generator=g)
    n = model.n_nodes
    acc_mean = torch.zeros(chains, n, dtype=torch.float64)
    acc_pair = torch.zeros(chains, n, n, dtype=torch.float64)
    for _ in range(keep):
        sampler.sweep(x, thin, generator=g)
        xd = x.double()
        acc_mean += xd
        acc_pair += xd[:, :, None] * xd[:, None, :]
    iu = np.triu_indices(n, 1)
    est = torch.cat([acc_mean, acc_pair[:, iu[0], iu[1]]], dim=1) / keep
    exact_mean, exact_second = model.moments()
    exact = torch.cat([exact_mean.double(), exact_second.double()[iu[0], iu[1]]])
    se = est.std(0) / chains ** 0.5
    return ((est.mean(0) - exact).abs() / (se + floor)).numpy()


def brute_force_visible(model) -> tuple[np.ndarray, np.ndarray]:
    """Every visible state (codes, (M, n_visible)) and its exact ``log P(v)`` (M,)."""
    X = all_joint_states(model)
    lw = joint_log_weights(model, X)
    log_z = np.logaddexp.reduce(lw)
    vis = model.visible_index
    codes = np.stack([_codes(model.spec.domains[i], X[:, i]) for i in vis], axis=1)
    uniq, inv = np.unique(codes, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    logp = np.full(len(uniq), -np.inf)
    for k in range(len(uniq)):
        logp[k] = np.logaddexp.reduce(lw[inv == k]) - log_z
    return uniq, logp


def _codes(domain, values: np.ndarray) -> np.ndarray:
    return domain.code_of(values)


# ------------------------------------------------------------------ random graphs

_DOMAIN_CHOICES = ("binary", "spin", "multinary", "finite")
#: the pool finite domains draw their values from (distinct, in random order: some draws
#: are equally spaced, which kernels treat as progressions, most are value tables)
_FINITE_POOL = (-1.0, -0.5, 0.0, 0.25, 0.5, 1.0)


def random_graph(
    draw_or_rng: Any,
    n_min: int = 3,
    n_max: int = 8,
    domains: Sequence[str] = _DOMAIN_CHOICES,
    k_range: tuple[int, int] = (3, 5),
    p_edge: float | None = None,
    scale: float = 1.0,
    hidden: bool = True,
    max_states: int = 1 << 14,
    precision: float = 0.0,
) -> nx.Graph:
    """A random declared Boltzmann machine: mixed roles and domains, random parameters.

    ``draw_or_rng`` is a hypothesis ``draw`` function (inside ``st.composite`` or from
    ``st.data()``) or a ``numpy.random.Generator``. Nodes are ``n_min..n_max`` with random
    roles (at least one visible; all visible when ``hidden=False``), domains from
    ``domains`` (multinary with K in ``k_range``; finite with 2..4 values drawn from
    ``_FINITE_POOL``), an Erdos-Renyi edge set (edge
    probability ``p_edge``, random when None), biases and weights ~ N(0, scale^2).
    The joint state count is kept under ``max_states`` (nodes are dropped otherwise).
    With ``precision > 0`` each multinary or finite node declares, with that
    probability, a quadratic self-term of precision ~ U(0, 4) (no extra draws otherwise,
    so the default graphs are unchanged).
    """
    if isinstance(draw_or_rng, np.random.Generator):
        rng = draw_or_rng
    else:
        draw: Callable = draw_or_rng
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(rng.integers(n_min, n_max + 1))
    kinds = [str(rng.choice(list(domains))) for _ in range(n)]
    levels = [int(rng.integers(k_range[0], k_range[1] + 1)) if k == "multinary" else
              int(rng.integers(2, 5)) if k == "finite" else 2 for k in kinds]
    while n > n_min and np.prod(levels, dtype=np.float64) > max_states:
        n -= 1
        kinds, levels = kinds[:n], levels[:n]
    roles = ["hidden" if hidden and rng.random() < 0.4 else "visible" for _ in range(n)]
    if "visible" not in roles:
        roles[int(rng.integers(n))] = "visible"
    p = float(rng.uniform(0.2, 1.0)) if p_edge is None else p_edge
    G = nx.Graph()
    for i in range(n):
        attrs: dict = {"role": roles[i], "domain": kinds[i],
                       "bias": float(rng.normal(0.0, scale))}
        if kinds[i] == "multinary":
            attrs["levels"] = levels[i]
        if kinds[i] == "finite":
            attrs["values"] = [float(v) for v in
                               rng.choice(_FINITE_POOL, size=levels[i], replace=False)]
        if precision > 0 and kinds[i] in ("multinary", "finite") and \
                rng.random() < precision:
            attrs["precision"] = float(rng.uniform(0.0, 4.0))
        G.add_node(f"n{i}", **attrs)
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < p:
                G.add_edge(f"n{i}", f"n{j}", weight=float(rng.normal(0.0, scale)))
    return G


@st.composite
def random_graphs(draw: Callable, **kwargs: Any) -> nx.Graph:
    """Hypothesis strategy wrapping :func:`random_graph` (same keyword arguments)."""
    return random_graph(draw, **kwargs)


@pytest.fixture
def one_torch_thread():
    """Tiny models: one torch thread avoids thread hand-off costs on shared cores.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def saturated_rbm(domain: str = "binary", dtype=torch.float64, n_v: int = 5, n_h: int = 3):
    """An RBM whose biases (+-60) fix every conditional: draws and means are 0 or 1 (the
    ends of each unit's range), so two training paths can be compared update for update."""
    rng = np.random.default_rng(4)
    G = pb.graphs.rbm(n_v, n_h, domain=domain)
    for i, node in enumerate(n for n, a in G.nodes(data=True) if a["role"] == "visible"):
        G.nodes[node]["bias"] = 60.0 if i % 2 else -60.0
    for j, node in enumerate(n for n, a in G.nodes(data=True) if a["role"] == "hidden"):
        G.nodes[node]["bias"] = -60.0 if j % 2 else 60.0
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.uniform(-1, 1))
    return pb.compile(G, engine="block-gibbs", dtype=dtype)
