"""Saving and loading models: one ``.pt`` file, written atomically, loaded safely.

The file holds plain data only (tensors, strings, numbers, lists, dicts): the node list,
roles, domains, edges, the compile options and the parameters (``log_precision`` too,
for models with quadratic self-terms; files written before it existed load with the
precisions their node attributes declare). Loading uses
``torch.load(weights_only=True)``, so no arbitrary object is unpickled; node names must
be strings, ints, floats, bools or (nested) tuples of those. Node and edge attributes
other than strings, numbers, bools and ``None`` are not saved.

Files and paths
---------------
- Paths are ``str`` or ``os.PathLike``; a leading ``~`` is expanded. Anything else is a
  :class:`~pgm_boltz.errors.ArgumentError`.
- Every problem with the file (a directory, a device or pipe, a missing or unwritable
  directory, a text file, a file of another program, a field missing or of the wrong
  type or shape) is a :class:`~pgm_boltz.errors.FileError` naming the path and the
  problem (and the field).
- ``save`` writes a temporary file in the target's directory and renames it over the
  target, so a failed save leaves an old file intact. A failure of the operating system
  in the middle of writing (a full disk) is re-raised as the ``OSError`` it is, after the
  temporary file is removed.
- File mode: the saved file gets the mode a plain ``open(path, "wb")`` would give it: a
  new file ``0o666`` less the process umask, an existing file keeps its mode.
- Symbolic links: saving to a path that is a symbolic link writes the file the link
  points to (as ``open(path, "wb")`` and ``torch.save`` do) and leaves the link in place;
  the link is never replaced by a regular file. A link that points nowhere (or into a
  loop) is refused with a ``FileError``, as is any path that exists but is not a regular
  file: ``save`` never replaces a directory, device, pipe or socket. Nor does it replace
  a file the caller may not write (a read-only file), which ``open(path, "wb")`` would
  refuse as well.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
import warnings
from collections.abc import Hashable
from typing import Any

import networkx as nx
import numpy as np
import torch

from ._validation import check_device
from .errors import ArgumentError, DataError, FileError, PgmBoltzError
from .machine import BoltzmannMachine
from .machine import compile as _compile

__all__ = ["load", "save"]

_FORMAT = "pgm_boltz/1"
_REQUIRED = ("nodes", "node_attrs", "edges", "edge_attrs", "bias", "weight",
             "requested_engine", "storage", "max_exact_states", "dtype")
_PLAIN = (str, int, float, bool, type(None))
_UMASK_LOCK = threading.Lock()


# ------------------------------------------------------------------ node names, attributes


def _encode_name(name: Hashable) -> Any:
    if isinstance(name, tuple):
        return {"tuple": [_encode_name(x) for x in name]}
    if isinstance(name, _PLAIN):
        return name
    raise DataError(f"cannot save node name {name!r} of type {type(name).__name__}: "
                    "use str, int, float, bool or tuples of those")


def _decode_name(obj: Any) -> Hashable:
    """The node name ``obj`` encodes; ``ValueError`` when it encodes none."""
    if isinstance(obj, dict):
        if set(obj) != {"tuple"} or not isinstance(obj["tuple"], list):
            raise ValueError(f"{_short(obj)} is not an encoded node name")
        return tuple(_decode_name(x) for x in obj["tuple"])
    if isinstance(obj, _PLAIN):
        return obj
    raise ValueError(f"{_short(obj)} of type {type(obj).__name__} is not a node name")


def _number_list(v: Any) -> bool:
    """Whether ``v`` is a list of real numbers (a finite domain's ``values``)."""
    return isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _plain_attrs(attrs: dict) -> dict:
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
        elif isinstance(v, (list, tuple, np.ndarray)) and _number_list(
                [x.item() if isinstance(x, np.generic) else x for x in list(v)]):
            out[str(k)] = [float(x) for x in v]
    return out


# ------------------------------------------------------------------ paths


def _short(obj: Any, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _what(obj: Any) -> str:
    """A short description of a value found in a file: its type, and its value if small."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of dtype {obj.dtype} and shape {tuple(obj.shape)}"
    return f"{type(obj).__name__} {_short(obj)}"


def _reason(err: OSError) -> str:
    return (err.strerror or str(err) or type(err).__name__).lower()


def _path_text(path: object, func: str) -> str:
    """``path`` as a string with a leading ``~`` expanded; ArgumentError for other types."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ArgumentError(f"{func}: path must be a str or os.PathLike (such as "
                            f"pathlib.Path), got {type(path).__name__} {_short(path)}")
    try:
        text = os.fspath(path)
    except TypeError as err:  # a PathLike whose __fspath__ returns something else
        raise ArgumentError(f"{func}: path {_short(path)} is not a usable path: {err}") \
            from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text:
        raise ArgumentError(f"{func}: path is empty; give a file name such as 'model.pt'")
    if "\0" in text:
        raise ArgumentError(f"{func}: path {text!r} contains a NUL character")
    return os.path.expanduser(text)


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere the only way is to set it and put it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _save_target(text: str) -> tuple[str, int]:
    """The regular file ``save`` replaces for the path ``text``, and the mode to give it."""
    if text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise FileError(f"cannot save to {text!r}: the path ends with a separator, so it "
                        f"names a folder; give a file name such as "
                        f"{os.path.join(text, 'model.pt')!r}")
    real = text
    if os.path.islink(text):  # write the link's target, keep the link (see the module doc)
        try:
            os.stat(text)
        except FileNotFoundError:
            raise FileError(f"cannot save to {text!r}: it is a symbolic link to "
                            f"{os.readlink(text)!r}, which does not exist; save to the "
                            "target path itself or remove the link") from None
        except OSError as err:
            raise FileError(f"cannot save to {text!r}: the symbolic link cannot be "
                            f"followed ({_reason(err)})") from None
        real = os.path.realpath(text)
    try:
        st: os.stat_result | None = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as err:
        raise FileError(f"cannot save to {text!r}: {_reason(err)}") from None
    shown = repr(text) if real == text else f"{text!r} (a link to {real!r})"
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise FileError(f"cannot save to {shown}: it is a directory; give a file name "
                        f"such as {os.path.join(text, 'model.pt')!r}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FileError(f"cannot save to {shown}: it is {_kind(st.st_mode)}, not a regular "
                        "file; save refuses to replace it")
    if st is not None and not os.access(real, os.W_OK):  # open(path, "wb") would refuse too
        raise FileError(f"cannot save to {shown}: the file is read-only (mode "
                        f"{stat.S_IMODE(st.st_mode):o}); make it writable or save elsewhere")
    directory = os.path.dirname(real) or "."
    if not os.path.exists(directory):
        raise FileError(f"cannot save to {text!r}: directory {directory!r} does not exist; "
                        "create it first")
    if not os.path.isdir(directory):
        raise FileError(f"cannot save to {text!r}: {directory!r} is not a directory")
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    return real, mode


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the system allows (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------ save


def save(model: Any, path: str | os.PathLike) -> None:
    """Save a model to ``path`` atomically (a failed save leaves an old file intact).

    ``path`` may start with ``~``. The new file gets the mode ``open(path, "wb")`` would
    give it (``0o666`` less the umask; an existing file keeps its mode). A path that is a
    symbolic link has the link's target written and the link kept. Raises
    :class:`~pgm_boltz.errors.FileError` for a path that is a directory, device, pipe,
    dangling link, read-only file, or in a missing or unwritable directory;
    :class:`~pgm_boltz.errors.ArgumentError` for a path that is not a str or PathLike.

    >>> import pgm_boltz as pb, tempfile, os
    >>> m = pb.compile(pb.graphs.rbm(3, 2), seed=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> pb.save(m, p); m2 = pb.load(p)
    >>> bool((m2.weight == m.weight).all())
    True
    """

    text = _path_text(path, "save")
    if not isinstance(model, BoltzmannMachine):
        raise DataError(f"save expects a BoltzmannMachine, got {type(model).__name__}")
    G = model.spec.graph
    state = {
        "format": _FORMAT,
        "nodes": [_encode_name(n) for n in model.nodes],
        "node_attrs": [_plain_attrs(G.nodes[n]) for n in model.nodes],
        "edges": torch.as_tensor(model.edge_array),
        "edge_attrs": [_plain_attrs(G.edges[u, v]) for u, v in model.edges],
        "bias": model.bias.detach().cpu(),
        "weight": model.weight.detach().cpu(),
        "log_precision": (None if model.log_precision is None
                          else model.log_precision.detach().cpu()),
        "engine": model.plan.engine,
        "requested_engine": model.plan.requested_engine,
        "storage": model.plan.storage,
        "max_exact_states": int(model.plan.max_exact_states),
        "dtype": str(model.dtype).replace("torch.", ""),
        "history": [_plain_attrs(r) for r in (model.history or [])] or None,
        "visible_init": (None if getattr(model, "visible_init", None) is None
                         else model.visible_init.detach().cpu()),
    }
    real, mode = _save_target(text)
    directory = os.path.dirname(real) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp",
                                   dir=directory)
    except OSError as err:
        raise FileError(f"cannot save to {text!r}: cannot create a file in directory "
                        f"{directory!r} ({_reason(err)})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, mode)  # mkstemp makes 0o600; give what open(path, "wb") gives
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, real)
        except OSError as err:
            raise FileError(f"cannot save to {text!r}: cannot replace {real!r} "
                            f"({_reason(err)})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


# ------------------------------------------------------------------ load


def _looks_like_text(head: bytes) -> str | None:
    """The start of ``head`` as text if it reads as UTF-8 text, else None."""
    for cut in range(4):  # a multi-byte character may be cut at the end
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text and all(c.isprintable() or c in "\t\n\r\f" for c in text):
            return text
        return None
    return None


def _torch_refusal(err: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in one line."""
    msg = str(err)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
    if found:
        return (f"it holds Python objects ({found.group(1)}) other than plain data, which "
                "load refuses to unpickle (only files written by pb.save load)")
    if "WeightsUnpickler error:" in msg:  # skip torch's advice to drop weights_only
        msg = msg.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    detail = lines[0] if lines else type(err).__name__
    detail = detail if len(detail) <= 100 else detail[:97] + "..."
    return f"torch.load cannot read it as plain data ({detail})"


def _read_state(text: str) -> Any:
    """Open ``text`` (a model file) and unpickle its plain data; FileError otherwise."""
    try:
        st = os.stat(text)
    except FileNotFoundError:
        if os.path.islink(text):
            raise FileError(f"cannot load {text!r}: it is a symbolic link to "
                            f"{os.readlink(text)!r}, which does not exist") from None
        raise FileError(f"no model file at {text!r}") from None
    except OSError as err:
        raise FileError(f"cannot load {text!r}: {_reason(err)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(f"cannot load {text!r}: it is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):  # never open a pipe or device: it could block
        raise FileError(f"cannot load {text!r}: it is {_kind(st.st_mode)}, not a model file")
    if st.st_size == 0:
        raise FileError(f"{text!r} is not a readable pgm_boltz model file: it is empty")
    try:
        with open(text, "rb") as fh:
            head = fh.read(64)
            fh.seek(0)
            with warnings.catch_warnings():  # torch's advice on a foreign file's protocol
                warnings.filterwarnings("ignore", message="Detected pickle protocol",
                                        category=UserWarning)
                return torch.load(fh, map_location="cpu", weights_only=True)
    except OSError as err:
        raise FileError(f"cannot load {text!r}: {_reason(err)}") from None
    except Exception as err:  # a foreign or corrupt file: torch's errors vary
        as_text = _looks_like_text(head)
        if as_text is not None:
            why = f"it is a text file (it starts {as_text[:24]!r}), not one written by pb.save"
        else:
            why = _torch_refusal(err)
        raise FileError(f"{text!r} is not a readable pgm_boltz model file: {why}") from None


def _check_state(state: Any, text: str) -> dict:
    """The fields of a loaded file, each checked for type and shape; FileError naming the
    field otherwise."""

    def bad(field: str, problem: str) -> FileError:
        return FileError(f"{text!r} is not a valid pgm_boltz model file: field {field!r} "
                         f"{problem}")

    if not isinstance(state, dict):
        raise FileError(f"{text!r} is not a pgm_boltz model file: it holds "
                        f"{type(state).__name__}, not the dict pb.save writes")
    fmt = state.get("format")
    if fmt != _FORMAT:
        if isinstance(fmt, str) and fmt.startswith("pgm_boltz/"):
            raise FileError(f"{text!r} is a pgm_boltz model file of format {fmt!r}, which "
                            f"this version cannot read (it reads {_FORMAT!r}); load it with "
                            "the pgm_boltz version that wrote it")
        raise FileError(f"{text!r} is not a pgm_boltz model file (format {_short(fmt)})")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise FileError(f"{text!r} is not a valid pgm_boltz model file: it lacks field"
                        f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")

    raw = state["nodes"]
    if not isinstance(raw, list) or not raw:
        raise bad("nodes", f"must be a non-empty list of node names, got {_what(raw)}")
    nodes = []
    for k, obj in enumerate(raw):
        try:
            nodes.append(_decode_name(obj))
        except ValueError as err:
            raise bad("nodes", f"entry {k}: {err}") from None
    first: dict = {}
    for k, n in enumerate(nodes):
        if n in first:
            raise bad("nodes", f"names node {n!r} twice (entries {first[n]} and {k})")
        first[n] = k
    n_nodes = len(nodes)

    def attr_list(field: str, value: Any, length: int | None, of: str,
                  lists: bool = False) -> list[dict]:
        if not isinstance(value, list):
            raise bad(field, f"must be a list of dicts, got {_what(value)}")
        if length is not None and len(value) != length:
            raise bad(field, f"has {len(value)} entries for the file's {length} {of}")
        for k, d in enumerate(value):
            if not isinstance(d, dict):
                raise bad(field, f"entry {k} is {_what(d)}, not a dict")
            for key, v in d.items():
                if not isinstance(key, str):
                    raise bad(field, f"entry {k} has a key {_short(key)} that is not a str")
                if not (isinstance(v, _PLAIN) or (lists and _number_list(v))):
                    raise bad(field, f"entry {k}: {key!r} is {_what(v)}; only str, int, "
                                     "float, bool or None are saved"
                                     + (" (and lists of numbers)" if lists else ""))
        return value

    node_attrs = attr_list("node_attrs", state["node_attrs"], n_nodes, "nodes", lists=True)

    e = state["edges"]
    if not isinstance(e, torch.Tensor):
        raise bad("edges", f"must be an integer tensor of shape (n_edges, 2), got {_what(e)}")
    if e.dtype.is_floating_point or e.dtype.is_complex or e.dtype == torch.bool:
        raise bad("edges", f"must be an integer tensor, got dtype {e.dtype}")
    if e.dim() != 2 or e.shape[1] != 2:
        raise bad("edges", f"must have shape (n_edges, 2), got {tuple(e.shape)}")
    pairs = e.tolist()
    rows: dict = {}
    for k, (i, j) in enumerate(pairs):
        if not (0 <= i < n_nodes and 0 <= j < n_nodes):
            raise bad("edges", f"row {k} is ({i}, {j}), outside the file's {n_nodes} nodes")
        if i == j:
            raise bad("edges", f"row {k} joins node {nodes[i]!r} to itself")
        key = (min(i, j), max(i, j))
        if key in rows:
            raise bad("edges", f"rows {rows[key]} and {k} both join {nodes[i]!r} and "
                               f"{nodes[j]!r}")
        rows[key] = k
    edge_attrs = attr_list("edge_attrs", state["edge_attrs"], len(pairs), "edges")

    def float_vector(field: str, value: Any, length: int | None, of: str) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise bad(field, f"must be a floating-point tensor, got {_what(value)}")
        if not value.dtype.is_floating_point:
            raise bad(field, f"must be a floating-point tensor, got dtype {value.dtype}")
        if value.dim() != 1 or (length is not None and value.shape[0] != length):
            want = "(n,)" if length is None else f"({length},)"
            raise bad(field, f"has shape {tuple(value.shape)}; the file's {of} need shape "
                             f"{want}")
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            where = torch.nonzero(~finite).flatten()[:5].tolist()
            raise bad(field, f"holds non-finite values (nan or inf) at entries {where}")
        return value

    bias = float_vector("bias", state["bias"], n_nodes, f"{n_nodes} nodes")
    weight = float_vector("weight", state["weight"], len(pairs), f"{len(pairs)} edges")
    init = state.get("visible_init")
    if init is not None:
        init = float_vector("visible_init", init, None, "visible nodes")
    log_precision = state.get("log_precision")
    if log_precision is not None:
        log_precision = float_vector("log_precision", log_precision, None,
                                     "quadratic nodes")

    name = state["dtype"]
    if not isinstance(name, str):
        raise bad("dtype", f"must be a string such as 'float32', got {_what(name)}")
    dtype = getattr(torch, name, None) if name.isidentifier() else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise bad("dtype", f"is {name!r}, not a torch floating-point dtype such as "
                           "'float32' or 'float64'")
    for field in ("requested_engine", "storage"):
        if not isinstance(state[field], str):
            raise bad(field, f"must be a str, got {_what(state[field])}")
    if state.get("engine") is not None and not isinstance(state["engine"], str):
        raise bad("engine", f"must be a str, got {_what(state['engine'])}")
    limit = state["max_exact_states"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise bad("max_exact_states", f"must be a positive int, got {_what(limit)}")
    history = state.get("history")
    if history is not None:
        history = attr_list("history", history, None, "epochs")
    return {"nodes": nodes, "node_attrs": node_attrs, "pairs": pairs,
            "edge_attrs": edge_attrs, "bias": bias, "weight": weight, "visible_init": init,
            "log_precision": log_precision,
            "dtype": dtype, "requested_engine": state["requested_engine"],
            "storage": state["storage"], "max_exact_states": limit, "history": history}


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """Load a model saved by :func:`save` (no arbitrary unpickling), on ``device``.

    The graph, parameters and plan inputs round-trip exactly. ``path`` may start with
    ``~``; a symbolic link is followed. Raises :class:`~pgm_boltz.errors.FileError`
    naming the file (and the field) for a missing file, a directory, device or pipe, a
    file that is not a pgm_boltz model file, or one whose fields are missing or mistyped;
    :class:`~pgm_boltz.errors.ArgumentError` for a path that is not a str or PathLike,
    or a ``device`` this machine does not have.

    >>> import pgm_boltz as pb, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> pb.save(pb.compile(pb.graphs.rbm(3, 2), seed=0), p)
    >>> pb.load(p, device="cpu").nodes
    ['v0', 'v1', 'v2', 'h0', 'h1']
    """

    text = _path_text(path, "load")
    dev = None if device is None else check_device(device, where="load")
    f = _check_state(_read_state(text), text)
    nodes, pairs = f["nodes"], f["pairs"]
    G = nx.Graph()
    for n, attrs in zip(nodes, f["node_attrs"]):
        G.add_node(n, **attrs)
    for (i, j), attrs in zip(pairs, f["edge_attrs"]):
        G.add_edge(nodes[i], nodes[j], **attrs)
    try:
        model = _compile(G, engine=f["requested_engine"], device=dev, dtype=f["dtype"],
                         storage=f["storage"], max_exact_states=f["max_exact_states"])
    except PgmBoltzError as err:
        raise FileError(f"{text!r} holds a model that no longer compiles: {err} (the file "
                        f"has requested_engine={f['requested_engine']!r}, storage="
                        f"{f['storage']!r}, max_exact_states={f['max_exact_states']})") \
            from None
    index = {n: i for i, n in enumerate(model.nodes)}
    saved_pos = {(nodes[i], nodes[j]): k for k, (i, j) in enumerate(pairs)}
    order = [saved_pos.get((u, v), saved_pos.get((v, u))) for u, v in model.edges]
    if len(index) != len(nodes) or len(order) != len(pairs) or None in order:
        raise FileError(f"{text!r}: the compiled graph's nodes or edges differ from the "
                        "file's 'nodes' and 'edges'")
    init = f["visible_init"]
    if init is not None and init.shape[0] != len(model.visible_nodes):
        raise FileError(f"{text!r} is not a valid pgm_boltz model file: field "
                        f"'visible_init' has shape {tuple(init.shape)}; the model's "
                        f"{len(model.visible_nodes)} visible nodes need shape "
                        f"({len(model.visible_nodes)},)")
    lp = f["log_precision"]
    n_quad = len(model.quadratic_index)
    if lp is not None and lp.shape[0] != n_quad:
        raise FileError(f"{text!r} is not a valid pgm_boltz model file: field "
                        f"'log_precision' has shape {tuple(lp.shape)}; the model's {n_quad} "
                        f"nodes with a quadratic term need shape ({n_quad},)")
    with torch.no_grad():
        perm = torch.as_tensor([index[n] for n in nodes])
        bias = torch.empty_like(f["bias"])
        bias[perm] = f["bias"]
        model.bias.copy_(bias.to(model.bias))
        model.weight.copy_(f["weight"][torch.as_tensor(order, dtype=torch.long)]
                           .to(model.weight))
        if lp is not None and n_quad:  # saved in the file's order of those nodes
            quad = set(model.quadratic_index.tolist())
            src = {index[n]: k for k, n in enumerate(n for n in nodes if index[n] in quad)}
            model.log_precision.copy_(lp[torch.as_tensor(
                [src[i] for i in model.quadratic_index.tolist()])].to(model.log_precision))
    model.history = f["history"]  # a trained model keeps its learned biases on fit
    if init is not None:  # Gibbs chains start from the data marginals
        model.visible_init = init.to(model.bias)
    return model
