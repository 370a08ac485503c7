"""Saving and loading models: one ``.pt`` file, written atomically, loaded safely.

The file holds plain data only (tensors, strings, numbers, lists, dicts): the node list,
roles, domains, edges, the compile options and the parameters. Loading uses
``torch.load(weights_only=True)``, so no arbitrary object is unpickled; node names must
be strings, ints, floats, bools or (nested) tuples of those.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from .errors import DataError, PgmBoltzError

__all__ = ["load", "save"]

_FORMAT = "pgm_boltz/1"


def _encode_name(name: Hashable) -> Any:
    if isinstance(name, tuple):
        return {"tuple": [_encode_name(x) for x in name]}
    if isinstance(name, (str, int, float, bool)) or name is None:
        return name
    raise DataError(f"cannot save node name {name!r} of type {type(name).__name__}: "
                    "use str, int, float, bool or tuples of those")


def _decode_name(obj: Any) -> Hashable:
    if isinstance(obj, dict):
        return tuple(_decode_name(x) for x in obj["tuple"])
    return obj


def _plain_attrs(attrs: dict, what: str) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (bool, np.bool_)):
            out[str(k)] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[str(k)] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[str(k)] = float(v)  # numpy scalars are not loadable with weights_only
        elif isinstance(v, str) or v is None:
            out[str(k)] = v
    return out


def save(model: Any, path: str | os.PathLike) -> None:
    """Save a model to ``path`` atomically (a failed save leaves an old file intact).

    >>> import pgm_boltz as pb, tempfile, os
    >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> pb.save(m, p); m2 = pb.load(p)
    >>> bool((m2.weight == m.weight).all())
    True
    """
    from .model import BoltzmannMachine

    if not isinstance(model, BoltzmannMachine):
        raise DataError(f"save expects a BoltzmannMachine, got {type(model).__name__}")
    G = model.spec.graph
    state = {
        "format": _FORMAT,
        "nodes": [_encode_name(n) for n in model.nodes],
        "node_attrs": [_plain_attrs(G.nodes[n], f"node {n!r}") for n in model.nodes],
        "edges": torch.as_tensor(model._edges_np),
        "edge_attrs": [_plain_attrs(G.edges[u, v], f"edge {(u, v)!r}")
                       for u, v in model.edges],
        "bias": model.bias.detach().cpu(),
        "weight": model.weight.detach().cpu(),
        "engine": model.plan.engine,
        "requested_engine": getattr(model, "_requested_engine", "auto"),
        "storage": model.plan.storage,
        "max_exact_states": int(model.plan.max_exact_states),
        "dtype": str(model.dtype).replace("torch.", ""),
        "history": [_plain_attrs(r, "history") for r in (model.history or [])] or None,
        "visible_init": (None if getattr(model, "visible_init", None) is None
                         else model.visible_init.detach().cpu()),
    }
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DataError(f"cannot save to {str(path)!r}: directory {str(directory)!r} "
                        "does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """Load a model saved by :func:`save` (no arbitrary unpickling), on ``device``.

    The graph, parameters and plan inputs round-trip exactly.
    """
    from . import compile as _compile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no model file at {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise DataError(f"{str(path)!r} is not a readable pgm_boltz model file: {err}") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise DataError(f"{str(path)!r} is not a pgm_boltz model file "
                        f"(format {state.get('format') if isinstance(state, dict) else None!r})")
    nodes = [_decode_name(n) for n in state["nodes"]]
    G = nx.Graph()
    for n, attrs in zip(nodes, state["node_attrs"]):
        G.add_node(n, **attrs)
    for (i, j), attrs in zip(state["edges"].tolist(), state["edge_attrs"]):
        G.add_edge(nodes[i], nodes[j], **attrs)
    dtype = getattr(torch, state["dtype"])
    engine = state["requested_engine"]
    try:
        model = _compile(G, engine=engine, device=device, dtype=dtype,
                         storage=state["storage"],
                         max_exact_states=state["max_exact_states"])
    except PgmBoltzError as err:
        raise DataError(f"{str(path)!r} holds a model that no longer compiles: {err}") from None
    index = {n: i for i, n in enumerate(model.nodes)}
    saved_pos = {(nodes[i], nodes[j]): k for k, (i, j) in enumerate(state["edges"].tolist())}
    order = []
    for u, v in model.edges:
        k = saved_pos.get((u, v), saved_pos.get((v, u)))
        order.append(k)
    with torch.no_grad():
        perm = torch.as_tensor([index[n] for n in nodes])
        bias = torch.empty_like(state["bias"])
        bias[perm] = state["bias"]
        model.bias.copy_(bias.to(model.bias))
        model.weight.copy_(state["weight"][torch.as_tensor(order, dtype=torch.long)]
                           .to(model.weight))
    model.history = state.get("history")  # a trained model keeps its learned biases on fit
    if state.get("visible_init") is not None:  # Gibbs chains start from the data marginals
        model.visible_init = state["visible_init"].to(model.device, model.dtype)
    return model
