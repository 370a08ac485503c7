"""Hopfield networks: Hebbian storage and deterministic recall on spin units.

A Hopfield network is a fully visible Boltzmann machine on spins ``s_i in {-1, +1}``
with the library's energy

    E(s) = - sum_{i<j} W_ij s_i s_j - sum_i b_i s_i,

run at zero temperature: instead of sampling, each unit moves to the sign of its
local field ``h_i = b_i + sum_j W_ij s_j``, which never raises the energy.

- :func:`hebbian` stores patterns: ``b_i = <x_i>``, ``W_ij = <x_i x_j>`` (means over
  the data rows), returned as an ordinary ``networkx.Graph`` that
  :func:`pgm_boltz.compile` also accepts.
- :func:`recall` runs the dynamics from probe states to fixed points (asynchronous
  sweeps in a numba kernel, or synchronous updates).
- :func:`energy` evaluates ``E(s)``.

The seed example: two spins observed as (-1,-1), (-1,1), (1,-1), (1,1) with counts
3, 1, 2, 4 store ``b1 = 0.2``, ``b2 = 0.0`` and ``W12 = 0.4``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from numba import njit

from .errors import DataError, GraphError, PgmBoltzError

__all__ = ["RecallResult", "energy", "hebbian", "recall"]

MODES = ("async", "sync")

#: A local field with ``|h_i| <= _TIE_RTOL * (|b_i| + sum_j |W_ij|)`` is rounding noise
#: around an exact tie (Hebbian weights such as 0.1 are not exact in binary), so the
#: unit keeps its value. Summation error is below ``n * 1.1e-16`` of that scale.
_TIE_RTOL = 1e-12

#: Sweeps per seeded random-order chunk handed to the async kernel.
_SEEDED_CHUNK = 8


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecallResult:
    """The outcome of :func:`recall`, one entry per probe.

    Attributes
    ----------
    states: the final states, float64 ``±1``, same shape as the probes.
    energies: ``E(s)`` of the final states, shape ``probes.shape[:-1]``.
    steps: sweeps run per probe (a sweep updates every unit once; the sweep that
        changes nothing and confirms a fixed point counts), int64.
    converged: whether the probe reached a fixed point within ``max_steps``, bool.

    >>> from pgm_boltz.hopfield import hebbian, recall
    >>> res = recall(hebbian([[1, 1, -1], [1, 1, -1]]), [[-1, 1, -1]])
    >>> res.states.tolist(), res.converged.tolist()
    ([[1.0, 1.0, -1.0]], [True])
    """

    states: np.ndarray
    energies: np.ndarray
    steps: np.ndarray
    converged: np.ndarray


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------


def _spin_array(values: object, what: str) -> np.ndarray:
    """``values`` as a float64 numpy array (torch tensors and nested lists accepted)."""
    detach = getattr(values, "detach", None)
    if callable(detach):  # a torch tensor, possibly on a GPU or requiring grad
        values = detach().cpu().numpy()
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} could not be read as an array ({err}); pass a "
                        "rectangular array of -1/+1 spins") from None
    if raw.dtype == np.bool_:
        raise DataError(f"{what} are booleans; Hopfield units are spins: encode them as "
                        "-1/+1 (e.g. 2 * x - 1)")
    if raw.dtype.kind not in "iuf":
        raise DataError(f"{what} must be numeric -1/+1 spins, got dtype {raw.dtype}")
    return raw.astype(np.float64)


def _check_spins(arr: np.ndarray, what: str, nodes: Sequence[Hashable] | None) -> None:
    """DataError naming the first NaN or non-spin entry of a (rows, n) or (n,) array."""
    bad_nan = np.isnan(arr)
    bad = bad_nan | ((arr != 1.0) & (arr != -1.0))
    if not bad.any():
        return
    first = tuple(int(k) for k in np.argwhere(bad)[0])
    col = first[-1]
    where = f"row {first[0]}, column {col}" if arr.ndim == 2 else f"column {col}"
    if nodes is not None:
        where += f" (node {nodes[col]!r})"
    value = arr[first]
    if bad_nan[first]:
        raise DataError(f"{what} {where} is NaN; every entry must be a spin, -1 or +1")
    raise DataError(f"{what} {where} has value {value:g}; Hopfield units are spins: use "
                    "-1 or +1 (map 0/1 data with 2 * x - 1)")


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise PgmBoltzError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _finite(value: object, what: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GraphError(f"{what} must be a real number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise GraphError(f"{what} must be a finite real number, got {value!r}")
    return out


def _network(G_or_model: object) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Node order, dense symmetric couplings ``W`` (zero diagonal) and biases ``b``."""
    G = G_or_model
    if not isinstance(G, nx.Graph):
        to_networkx = getattr(G, "to_networkx", None)
        if not callable(to_networkx):
            raise GraphError(
                f"expected a networkx.Graph or a model with to_networkx(), got "
                f"{type(G).__name__}; build one with pgm_boltz.hopfield.hebbian")
        G = to_networkx()
        if not isinstance(G, nx.Graph):
            raise GraphError(f"to_networkx() returned {type(G).__name__}, not a "
                             "networkx.Graph")
    if G.is_directed():
        raise GraphError("the graph is directed; Hopfield networks are undirected: pass "
                         "G.to_undirected()")
    if G.is_multigraph():
        raise GraphError("multigraphs are not supported: merge parallel edges into one "
                         "weighted edge (nx.Graph(G))")
    if G.number_of_nodes() == 0:
        raise GraphError("the graph has no nodes; a Hopfield network needs at least one "
                         "spin unit")
    nodes = list(G.nodes)
    index = {u: i for i, u in enumerate(nodes)}
    n = len(nodes)
    b = np.zeros(n, dtype=np.float64)
    for i, u in enumerate(nodes):
        attrs = G.nodes[u]
        domain = attrs.get("domain")
        if domain != "spin":
            raise GraphError(
                f"node {u!r} has domain {domain or 'binary'!r}; Hopfield recall needs "
                "spin units: set domain='spin' on every node (values -1/+1)")
        if attrs.get("bias") is not None:
            b[i] = _finite(attrs["bias"], f"bias of node {u!r}")
    W = np.zeros((n, n), dtype=np.float64)
    for u, v, w in G.edges(data="weight"):
        if u == v:
            raise GraphError(f"self-loop on node {u!r}: remove it (a unit's self-coupling "
                             "is its bias)")
        if w is None:
            continue
        i, j = index[u], index[v]
        W[i, j] = W[j, i] = _finite(w, f"weight of edge ({u!r}, {v!r})")
    return nodes, W, b


def _probes(probes: object, nodes: Sequence[Hashable], what: str) -> np.ndarray:
    """Probes as a float64 (n_probes, n) or (n,) array of spins (DataError otherwise)."""
    n = len(nodes)
    arr = _spin_array(probes, what)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n:
        raise DataError(
            f"{what} have shape {arr.shape}, but the network has {n} units: expected "
            f"shape (n_probes, {n}) or ({n},), columns in the graph's node order")
    _check_spins(arr, what, nodes)
    return arr


# ---------------------------------------------------------------------------------------
# maths
# ---------------------------------------------------------------------------------------


def _energy(W: np.ndarray, b: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``E(s) = -1/2 s^T W s - b^T s`` (zero-diagonal symmetric W) over the last axis."""
    return -0.5 * np.einsum("...i,...i->...", S @ W, S) - S @ b


def _tie_tolerance(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _TIE_RTOL * (np.abs(b) + np.abs(W).sum(axis=1))


@njit(cache=True)
def _async_kernel(W: np.ndarray, b: np.ndarray, tol: np.ndarray, S: np.ndarray,
                  order: np.ndarray, n_sweeps: int, steps: np.ndarray,
                  done: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """Run up to ``n_sweeps`` asynchronous sweeps on every unfinished probe, in place.

    Sweep ``t`` visits units in the order ``order[t % len(order)]``; unit i takes
    ``sign(h_i)``, ``h_i = b_i + sum_j W_ij s_j``, and keeps its value when
    ``|h_i| <= tol_i``. A probe is done after a sweep that changes nothing.
    """
    n_probes, n = S.shape
    n_orders = order.shape[0]
    for p in range(n_probes):
        if done[p]:
            continue
        s = S[p]
        for t in range(n_sweeps):
            row = order[t % n_orders]
            changed = False
            for k in range(n):
                i = row[k]
                h = b[i]
                for j in range(n):
                    h += W[i, j] * s[j]
                if h > tol[i]:
                    if s[i] < 0.0:
                        s[i] = 1.0
                        changed = True
                elif h < -tol[i] and s[i] > 0.0:
                    s[i] = -1.0
                    changed = True
            steps[p] += 1
            if not changed:
                done[p] = True
                break


def _run_async(W: np.ndarray, b: np.ndarray, S: np.ndarray, max_steps: int,
               seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    n_probes, n = S.shape
    tol = _tie_tolerance(W, b)
    steps = np.zeros(n_probes, dtype=np.int64)
    done = np.zeros(n_probes, dtype=np.bool_)
    if seed is None:
        order = np.arange(n, dtype=np.int64).reshape(1, n)
        _async_kernel(W, b, tol, S, order, max_steps, steps, done)
        return steps, done
    # a fresh random order per sweep; sweep t uses the t-th permutation drawn from the
    # seed, whatever the other probes do, so a probe's result does not depend on its batch
    rng = np.random.default_rng(seed)
    remaining = max_steps
    while remaining > 0 and not done.all():
        chunk = min(remaining, _SEEDED_CHUNK)
        order = np.stack([rng.permutation(n) for _ in range(chunk)]).astype(np.int64)
        _async_kernel(W, b, tol, S, order, chunk, steps, done)
        remaining -= chunk
    return steps, done


def _run_sync(W: np.ndarray, b: np.ndarray, S: np.ndarray,
              max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    n_probes = S.shape[0]
    tol = _tie_tolerance(W, b)
    steps = np.zeros(n_probes, dtype=np.int64)
    done = np.zeros(n_probes, dtype=np.bool_)
    cycling = np.zeros(n_probes, dtype=np.bool_)
    previous = S.copy()
    for _ in range(max_steps):
        active = np.flatnonzero(~(done | cycling))
        if active.size == 0:
            break
        cur = S[active]
        h = cur @ W + b  # W is symmetric
        new = np.where(h > tol, 1.0, np.where(h < -tol, -1.0, cur))
        steps[active] += 1
        unchanged = (new == cur).all(axis=1)
        # symmetric W: synchronous dynamics end in a fixed point or a 2-cycle, and a
        # return to the state of two updates ago means a 2-cycle that never converges
        two_cycle = ~unchanged & (new == previous[active]).all(axis=1)
        previous[active] = cur
        S[active] = new
        done[active[unchanged]] = True
        cycling[active[two_cycle]] = True
    return steps, done


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def hebbian(data: Any, names: Sequence[Hashable] | None = None) -> nx.Graph:
    """Store spin patterns by the Hebbian rule, as a fully connected spin graph.

    With data rows ``x^(m) in {-1, +1}^n``, m = 1..N, the parameters are the data means

        b_i  = <x_i>     = (1/N) sum_m x_i^(m)
        W_ij = <x_i x_j> = (1/N) sum_m x_i^(m) x_j^(m),    i < j

    (no self-couplings). Each node has ``role="visible"``, ``domain="spin"`` and
    ``bias=b_i``; each edge ``weight=W_ij``. Nodes are ``names`` or ``"x0".."x{n-1}"``.

    Parameters
    ----------
    data: array, tensor or nested list of shape (n_samples, n) with entries -1/+1.
    names: optional node names, one per column.

    Raises
    ------
    DataError: data not 2-D, empty, without columns, with NaN or non-spin values
        (the message names the row, column and value), or ``names`` of the wrong length.

    Examples
    --------
    The seed example: patterns (-1,-1), (-1,1), (1,-1), (1,1) seen 3, 1, 2, 4 times.

    >>> import numpy as np
    >>> from pgm_boltz.hopfield import hebbian
    >>> patterns = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
    >>> data = np.repeat(patterns, [3, 1, 2, 4], axis=0)
    >>> G = hebbian(data, names=["x1", "x2"])
    >>> G.nodes["x1"]["bias"], G.nodes["x2"]["bias"], G.edges["x1", "x2"]["weight"]
    (0.2, 0.0, 0.4)
    """
    arr = _spin_array(data, "data")
    if arr.ndim != 2:
        raise DataError(f"data must be 2-D (n_samples, n_units), got {arr.ndim}-D shape "
                        f"{arr.shape}; reshape one pattern x with x.reshape(1, -1)")
    n_samples, n = arr.shape
    if n == 0:
        raise DataError(f"data have shape {arr.shape}: no columns; a Hopfield network "
                        "needs at least 1 unit")
    if n_samples == 0:
        raise DataError(f"data have shape {arr.shape}: no rows; pass at least one pattern")
    if names is None:
        nodes: list[Hashable] = [f"x{i}" for i in range(n)]
    else:
        nodes = list(names)
        if len(nodes) != n:
            raise DataError(f"names has {len(nodes)} entries but data have {n} columns; "
                            "give one name per column")
        if len(set(nodes)) != n:
            dup = next(u for k, u in enumerate(nodes) if u in nodes[:k])
            raise GraphError(f"node name {dup!r} appears twice in names; names must be "
                             "unique")
    _check_spins(arr, "data", nodes)
    b = arr.mean(axis=0)
    W = (arr.T @ arr) / n_samples
    G = nx.Graph()
    for i, u in enumerate(nodes):
        G.add_node(u, role="visible", domain="spin", bias=float(b[i]))
    for i in range(n):
        for j in range(i + 1, n):
            G.add_edge(nodes[i], nodes[j], weight=float(W[i, j]))
    return G


def energy(G: Any, states: Any) -> np.ndarray:
    """The Hopfield energy of spin states.

        E(s) = - sum_{i<j} W_ij s_i s_j - sum_i b_i s_i

    with ``W_ij`` the edges' ``weight`` and ``b_i`` the nodes' ``bias`` (missing = 0).

    Parameters
    ----------
    G: a ``networkx.Graph`` of spin nodes, or a model with ``to_networkx()``.
    states: array of shape (n_states, n) or (n,) with entries -1/+1, columns in the
        graph's node order.

    Returns
    -------
    float64 array of shape ``states.shape[:-1]``.

    >>> from pgm_boltz.hopfield import energy, hebbian
    >>> G = hebbian([[1, 1], [1, 1], [-1, 1]])
    >>> energy(G, [[1, 1], [-1, -1]]).round(6).tolist()  # b = (1/3, 1), W = 1/3
    [-1.666667, 1.0]
    """
    nodes, W, b = _network(G)
    S = _probes(states, nodes, "states")
    return _energy(W, b, S)


def recall(G_or_model: Any, probes: Any, max_steps: int = 100, mode: str = "async",
           seed: int | None = None) -> RecallResult:
    """Run deterministic Hopfield dynamics from each probe to a fixed point.

    Each update sets ``s_i <- sign(h_i)`` with the local field
    ``h_i = b_i + sum_j W_ij s_j``; at a tie (``h_i = 0``, up to rounding noise of
    ``1e-12 (|b_i| + sum_j |W_ij|)``) the unit keeps its value.

    - ``mode="async"``: a sweep updates the units one at a time, in the graph's node
      order (or a fresh seeded random permutation per sweep when ``seed`` is given).
      Flipping unit i changes the energy by ``-2 |h_i| <= 0``, so
      ``E(s) = -sum_{i<j} W_ij s_i s_j - sum_i b_i s_i`` never increases and the
      dynamics reach a fixed point (a local minimum of E under single flips).
    - ``mode="sync"``: a sweep updates all units at once from the same old state.
      With symmetric W this ends in a fixed point or a 2-cycle; a 2-cycle stops
      early with ``converged=False``. ``seed`` is unused.

    A probe stops after a sweep that changes nothing, or after ``max_steps`` sweeps.

    Parameters
    ----------
    G_or_model: a ``networkx.Graph`` whose nodes are all ``domain="spin"`` (``bias``
        and ``weight`` attributes, missing = 0), e.g. from :func:`hebbian`; or any
        object with a ``to_networkx()`` method (a compiled BoltzmannMachine).
    probes: starting states, shape (n_probes, n) or (n,), entries -1/+1, columns in
        the graph's node order.
    max_steps: the most sweeps per probe (a positive integer).
    mode: ``"async"`` or ``"sync"``.
    seed: for ``mode="async"``, an integer seeding a random unit order per sweep.

    Returns
    -------
    :class:`RecallResult` with ``states`` shaped like ``probes`` and ``energies``,
    ``steps``, ``converged`` shaped ``probes.shape[:-1]``.

    Raises
    ------
    GraphError: a node that is not a spin unit, a non-finite bias or weight.
    DataError: probes of the wrong shape or with values other than -1/+1.
    PgmBoltzError: an unknown mode, a bad ``max_steps`` or ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm_boltz.hopfield import hebbian, recall
    >>> data = np.repeat([[-1, -1], [-1, 1], [1, -1], [1, 1]], [3, 1, 2, 4], axis=0)
    >>> res = recall(hebbian(data), [-1, 1])
    >>> res.states.tolist(), round(float(res.energies), 6), bool(res.converged)
    ([1.0, 1.0], -0.6, True)
    """
    if mode not in MODES:
        raise PgmBoltzError(f"unknown mode {mode!r}; use 'async' or 'sync'")
    max_steps = _positive_int(max_steps, "max_steps")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise PgmBoltzError(f"seed must be an integer or None, got {seed!r}")
    nodes, W, b = _network(G_or_model)
    arr = _probes(probes, nodes, "probes")
    single = arr.ndim == 1
    S = np.ascontiguousarray(arr.reshape(-1, len(nodes)))
    if mode == "async":
        steps, converged = _run_async(W, b, S, max_steps, None if seed is None else int(seed))
    else:
        steps, converged = _run_sync(W, b, S, max_steps)
    energies = _energy(W, b, S)
    if single:
        return RecallResult(S[0], energies.reshape(()), steps.reshape(()),
                            converged.reshape(()))
    return RecallResult(S, energies, steps, converged)
