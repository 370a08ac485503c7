"""Compare candidate structures by held-out likelihood.

:func:`compare` trains every candidate graph on the same data with the best method the
package has for it (exact maximum likelihood where the exact engine can evaluate the
model, persistent contrastive divergence otherwise), scores the held-out negative
log-likelihood (exact, or AIS with the reverse-AIS bracket) and returns one row per
candidate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import torch

from ..errors import ArgumentError, DataError, PgmBoltzError
from ..inference.ais import log_partition_bracket
from ..machine import BoltzmannMachine
from ..machine import compile as compile_graph

__all__ = ["COLUMNS", "ComparisonTable", "compare", "plot_comparison"]

#: columns of the table :func:`compare` returns, in order
COLUMNS = ("name", "test_nll", "train_nll", "n_params", "fit_seconds", "method",
           "nll_method", "test_nll_low", "test_nll_high", "n_visible", "n_hidden",
           "n_edges", "engine", "rank")

#: training defaults per method (any ``model.fit`` option overrides them)
DEFAULT_FIT = {
    "exact": {"epochs": 300, "lr": 0.05},
    "pcd": {"epochs": 50, "lr": 0.01, "batch_size": 100, "momentum": 0.5,
            "monitor_nll": False},
}


class ComparisonTable(list):
    """The rows of :func:`compare` (a list of dicts) when pandas is not installed.

    >>> t = ComparisonTable([{"name": "a", "test_nll": 2.0}, {"name": "b", "test_nll": 1.0}])
    >>> t.best["name"], t.column("test_nll")
    ('b', [2.0, 1.0])
    """

    @property
    def best(self) -> dict:
        """The row with the lowest held-out NLL."""
        return min(self, key=lambda r: r["test_nll"])

    def column(self, key: str) -> list:
        """One column as a list."""
        return [r[key] for r in self]

    def to_pandas(self):
        """A pandas DataFrame of the rows (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(list(self))

    def plot(self, ax: Any = None, **kwargs: Any):
        """Draw the table (see :func:`plot_comparison`)."""
        return plot_comparison(self, ax=ax, **kwargs)

    def __str__(self) -> str:
        keys = ["name", "test_nll", "train_nll", "n_params", "fit_seconds", "method",
                "nll_method"]
        width = max([len(str(r["name"])) for r in self] + [4])
        lines = [f"{'name':<{width}s}  " + "  ".join(f"{k:>11s}" for k in keys[1:])
                 + "  AIS bracket"]
        for r in self:
            cells = [f"{r['name']!s:<{width}s}"]
            for k in keys[1:]:
                v = r[k]
                cells.append(f"{v:11.4f}" if isinstance(v, float) else f"{v!s:>11s}")
            if r.get("nll_method") == "ais":
                cells.append(f"[{r['test_nll_low']:.4f}, {r['test_nll_high']:.4f}]")
            lines.append("  ".join(cells))
        return "\n".join(lines)


def _candidates(candidates: Any) -> list[tuple[Hashable, Any]]:
    if isinstance(candidates, Mapping):
        items = list(candidates.items())
    elif isinstance(candidates, Sequence) and not isinstance(candidates, (str, bytes)) and \
            all(isinstance(c, tuple) and len(c) == 2 for c in candidates):
        items = list(candidates)
    else:
        raise ArgumentError("candidates must be a mapping name -> graph or compiled model (or a "
                        "list of (name, graph) pairs)")
    if not items:
        raise ArgumentError("candidates is empty; give at least one graph")
    names = [n for n, _ in items]
    if len(set(map(str, names))) != len(names):
        raise ArgumentError("candidate names must be distinct")
    return items


def _as_model(name: Hashable, obj: Any, seed: int | None, compile_options: dict,
              copy_models: bool):
    if isinstance(obj, BoltzmannMachine):
        return copy.deepcopy(obj) if copy_models else obj
    if isinstance(obj, nx.Graph):
        opts = {"seed": seed, **compile_options}
        try:
            model = compile_graph(obj, **opts)
            if model.plan.exact_feasible and "dtype" not in compile_options:
                model = compile_graph(obj, dtype=torch.float64, **opts)
        except PgmBoltzError as err:
            raise type(err)(f"candidate {name!r}: {err}") from None
        return model
    raise ArgumentError(f"candidate {name!r} is a {type(obj).__name__}; give a networkx.Graph "
                    "or a compiled model (pb.compile(G))")


def _columns(data: Any, names: list[Hashable], what: str) -> dict | Any:
    """Data as a mapping visible node -> column (arrays: columns in ``names`` order)."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas DataFrame
        return {c: np.asarray(data[c].to_numpy(dtype=np.float64)) for c in data.columns}
    if isinstance(data, Mapping):
        return data
    arr = data.detach().cpu().double().numpy() if torch.is_tensor(data) else data
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} is not numeric: {err}") from None
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataError(f"{what} has shape {tuple(arr.shape)}; expected (n_rows, "
                        f"{len(names)}) with columns in the first candidate's visible node "
                        f"order {names[:5]}{'...' if len(names) > 5 else ''}")
    return {nm: arr[:, i] for i, nm in enumerate(names)}


def fit_options_for(method: str, fit_options: Any) -> dict:
    """The training options for ``method``: the defaults, then ``fit_options`` (a dict
    for every method, or a mapping ``{"exact": {...}, "pcd": {...}}``)."""
    opts = dict(DEFAULT_FIT.get(method, {}))
    if fit_options:
        if not isinstance(fit_options, Mapping):
            raise ArgumentError("fit_options must be a dict of model.fit options, or a mapping "
                            "{'exact': {...}, 'pcd': {...}}")
        if set(fit_options) <= {"exact", "pcd", "cd"}:
            opts.update(fit_options.get(method, {}))
        else:
            opts.update(fit_options)
    if method == "exact":
        opts.pop("monitor_nll", None)
    return opts


def train_model(model, data: Any, method: str = "auto", fit_options: Any = None,
          seed: int | None = 0, progress: bool = True) -> tuple[str, float]:
    """Train ``model`` by ``method`` (``"auto"``: exact where ``plan.exact_feasible``,
    else PCD); returns ``(method, seconds)``."""
    if method == "auto":
        method = "exact" if model.plan.exact_feasible else "pcd"
    opts = fit_options_for(method, fit_options)
    t0 = time.perf_counter()
    model.fit(data, method=method, seed=seed, progress=progress, **opts)
    return method, time.perf_counter() - t0


def _mean_free_energy(model, data: Any, chunk: int = 256) -> float:
    """``mean_rows F(v)`` in row chunks (models with enumerated hidden units hold
    rows x hidden states x units at once)."""
    values = model.encode_data(data, "data")  # checks the data once
    codes = model.decode_visible(values)
    total = 0.0
    with torch.no_grad():
        for r0 in range(0, codes.shape[0], chunk):
            total += float(model.free_energy(codes[r0:r0 + chunk]).double().sum())
    return total / codes.shape[0]


def score(model, train_data: Any, test_data: Any, *, seed: int | None = 0,
          reverse: bool = True, evaluate_options: dict | None = None,
          progress: bool = False) -> dict:
    """Held-out and training NLL (nats per row), ``mean F(v) + log Z``: ``log Z`` exact
    where ``model.plan.exact_feasible``, else AIS with the base model fitted to the
    training data and, if ``reverse``, reverse AIS from it: ``test_nll`` uses the AIS
    value (as :func:`pgm_boltz.evaluate` does) and ``(test_nll_low, test_nll_high)`` the
    bracket. ``evaluate_options`` go to the AIS estimators (``n_chains``, ``n_betas``,
    ...). The free energies are summed in row chunks, so models that enumerate hidden
    states per row stay within memory."""
    opts = dict(evaluate_options or {})
    f_test = _mean_free_energy(model, test_data)
    f_train = _mean_free_energy(model, train_data)
    if model.plan.exact_feasible:
        with torch.no_grad():
            lz = float(model.log_partition())
        lo = hi = lz
        used = "exact"
    else:
        if reverse:
            br = log_partition_bracket(model, train_data, seed=seed, progress=progress,
                                       **opts)
            lz, lo, hi = br.lower.value, br.lower.value, br.upper.value
        else:
            lz = lo = hi = model.log_partition(method="ais", data=train_data, seed=seed,
                                               progress=progress, **opts).value
        used = "ais"
    return {"test_nll": f_test + lz, "train_nll": f_train + lz, "nll_method": used,
            "test_nll_low": f_test + min(lo, hi), "test_nll_high": f_test + max(lo, hi)}


def compare(candidates: Any, train: Any, test: Any, *, method: str = "auto",
            fit_options: Any = None, seed: int | None = 0, reverse: bool = True,
            evaluate_options: dict | None = None, compile_options: dict | None = None,
            copy_models: bool = True, as_frame: bool | None = None,
            return_models: bool = False, progress: bool = True) -> Any:
    """Train candidate structures on ``train`` and rank them by held-out NLL on ``test``.

    Each candidate (a ``networkx.Graph`` declaring a model, or a compiled model, which is
    copied unless ``copy_models=False``) is compiled (``seed``, float64 when exact work is
    feasible), trained by ``method`` (``"auto"``: exact maximum likelihood when
    ``model.plan.exact_feasible``, else PCD; defaults in :data:`DEFAULT_FIT`, overridden
    by ``fit_options``, a dict for all or ``{"exact": {...}, "pcd": {...}}``), and scored:
    ``test_nll = mean_test F(v) + log Z`` in nats per row, with ``log Z`` exact or from
    AIS (then ``test_nll_low`` / ``test_nll_high`` bracket it with reverse AIS; AIS
    options such as ``n_chains``, ``n_betas`` in ``evaluate_options``);
    ``train_nll`` uses the same ``log Z``. ``n_params`` counts the free parameters: one
    bias per node (hidden ones included) and one weight per edge.

    ``train`` and ``test`` are codes: arrays whose columns follow the first candidate's
    visible nodes (other candidates are matched by name), or mappings / DataFrames keyed
    by node. Every candidate must have the same visible nodes.

    Returns a pandas DataFrame with columns :data:`COLUMNS` when pandas is installed
    (``as_frame=None``/``True``), else a :class:`ComparisonTable` (list of dicts, with
    ``.plot()``); :func:`plot_comparison` draws either. ``rank`` 1 is the lowest held-out
    NLL. With ``return_models=True`` returns ``(table, {name: trained model})``.

    >>> import pgm_boltz as pb
    >>> truth = pb.graphs.lattice(2, 3, coupling=0.7)
    >>> gen = pb.compile(truth, seed=0)
    >>> train, test = gen.sample(500, seed=1), gen.sample(2000, seed=2)
    >>> empty = nx.Graph(); empty.add_nodes_from(truth.nodes(data=True))
    >>> table = compare({"lattice": truth, "independent": empty}, train, test,
    ...                 as_frame=False, progress=False)
    >>> [row["name"] for row in sorted(table, key=lambda r: r["rank"])]
    ['lattice', 'independent']
    """
    if method not in ("auto", "exact", "pcd", "cd"):
        raise ArgumentError(f"unknown method {method!r}; use 'auto', 'exact', 'pcd' or 'cd'")
    items = _candidates(candidates)
    compile_options = dict(compile_options or {})
    compile_options.pop("seed", None)
    models = [(name, _as_model(name, obj, seed, compile_options, copy_models))
              for name, obj in items]
    ref = list(models[0][1].visible_nodes)
    for name, m in models[1:]:
        if set(m.visible_nodes) != set(ref) or len(m.visible_nodes) != len(ref):
            raise DataError(f"candidate {name!r} has visible nodes that differ from "
                            f"{items[0][0]!r}'s: every candidate must model the same "
                            "visible units")
    tr = _columns(train, ref, "train")
    te = _columns(test, ref, "test")
    rows: list[dict] = []
    trained: dict = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(models), desc="compare")
    try:
        for name, model in models:
            used, seconds = train_model(model, tr, method, fit_options, seed, progress)
            scores = score(model, tr, te, seed=seed, reverse=reverse,
                           evaluate_options=evaluate_options, progress=False)
            rows.append({"name": name, **scores,
                         "n_params": int(model.n_nodes + len(model.edges)),
                         "fit_seconds": float(seconds), "method": used,
                         "n_visible": int(model.n_visible), "n_hidden": int(model.n_hidden),
                         "n_edges": len(model.edges), "engine": model.plan.engine})
            trained[name] = model
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    order = np.argsort([r["test_nll"] for r in rows], kind="stable")
    for rank, i in enumerate(order, start=1):
        rows[i]["rank"] = rank
    rows = [{k: r[k] for k in COLUMNS} for r in rows]
    table: Any = ComparisonTable(rows)
    if as_frame or as_frame is None:
        try:
            import pandas as pd

            table = pd.DataFrame(rows, columns=list(COLUMNS))
        except ImportError:
            if as_frame:
                raise DataError("as_frame=True needs pandas: pip install pandas") from None
    return (table, trained) if return_models else table


def plot_comparison(table: Any, ax: Any = None, metric: str = "test_nll",
                    sort: bool = True):
    """Draw a comparison table: one horizontal bar per candidate at its held-out NLL
    (AIS / reverse-AIS bracket as an error bar where there is one), labelled with the
    parameter count and training method. Accepts a :func:`compare` DataFrame or
    :class:`ComparisonTable`. Returns the matplotlib axes.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError("plot_comparison needs matplotlib: pip install matplotlib") from None
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        rows = table.to_dict("records")
    else:
        rows = list(table)
    if not rows:
        raise DataError("the table is empty")
    if metric not in rows[0]:
        raise ArgumentError(f"unknown metric {metric!r}; use one of {sorted(rows[0])}")
    if sort:
        rows = sorted(rows, key=lambda r: r[metric], reverse=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    y = np.arange(len(rows))
    vals = np.array([r[metric] for r in rows])
    ax.barh(y, vals, color=["tab:green" if r.get("rank") == 1 else "tab:gray" for r in rows],
            alpha=0.8)
    if metric == "test_nll":
        lo = np.array([r.get("test_nll_low", r[metric]) for r in rows])
        hi = np.array([r.get("test_nll_high", r[metric]) for r in rows])
        err = np.vstack([np.clip(vals - np.minimum(lo, hi), 0, None),
                         np.clip(np.maximum(lo, hi) - vals, 0, None)])
        if err.any():
            ax.errorbar(vals, y, xerr=err, fmt="none", ecolor="k", capsize=3)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['name']}\n{r.get('n_params', '?')} params, "
                        f"{r.get('method', '')}/{r.get('nll_method', '')}" for r in rows],
                       fontsize=8)
    span = vals.max() - vals.min()
    ax.set_xlim(vals.min() - max(0.5 * span, 0.5), vals.max() + max(0.25 * span, 0.25))
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("held-out NLL (nats per row)" if metric == "test_nll" else metric)
    return ax
