"""Data for structure learning: column names, per-column value tables, checks.

Every column ``i`` has a *value table* ``values_i`` (the values its unit takes in the
energy) and *codes* (what the data hold):

==============  =====================  ==========================
domain          codes                  values
==============  =====================  ==========================
``binary``      0, 1                   0, 1
``spin``        -1, +1                 -1, +1
``multinary``   0..K-1 (``levels=K``)  k / (K-1)
``finite``      0..K-1 (``values=``)   ``values[k]``
==============  =====================  ==========================

so the learners only ever see a value table per column, and a new discrete domain is
one more row here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import stack_columns
from ..errors import DataError

__all__ = ["DOMAINS", "MIN_ROWS", "Columns", "prepare"]

DOMAINS = ("binary", "spin", "multinary", "finite")
#: fewest data rows a learner accepts
MIN_ROWS = 10


@dataclass
class Columns:
    """Names and value tables of the data's columns (one unit each)."""

    names: list[Hashable]
    domains: list[str]
    levels: list[int]
    values: list[np.ndarray]  # value table per column (float64), in code order

    @property
    def n(self) -> int:
        return len(self.names)

    def node_attrs(self, i: int) -> dict:
        """The node attributes ``pb.compile`` reads for column ``i`` (no bias)."""
        attrs: dict[str, Any] = {"role": "visible", "domain": self.domains[i]}
        if self.domains[i] == "multinary":
            attrs["levels"] = int(self.levels[i])
        elif self.domains[i] == "finite":
            attrs["values"] = [float(v) for v in self.values[i]]
        return attrs

    def value_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Padded value tables ``(n, K_max)`` and their validity mask."""
        kmax = max(self.levels)
        V = np.zeros((self.n, kmax))
        mask = np.zeros((self.n, kmax), dtype=bool)
        for i, v in enumerate(self.values):
            V[i, :len(v)] = v
            mask[i, :len(v)] = True
        return V, mask


def _per_column(arg: Any, names: list[Hashable], what: str) -> list[Any]:
    """Broadcast a scalar/str, a sequence (one per column) or a mapping name -> value."""
    n = len(names)
    if isinstance(arg, Mapping):
        missing = [c for c in names if c not in arg]
        if missing:
            raise DataError(f"{what} mapping lacks column {missing[0]!r} "
                            f"({len(missing)} of {n} missing)")
        return [arg[c] for c in names]
    if isinstance(arg, (str, bytes)) or arg is None or np.isscalar(arg):
        return [arg] * n
    seq = list(arg)
    if len(seq) != n:
        raise DataError(f"{what} has {len(seq)} entries for {n} columns; give one per "
                        "column, a mapping from column name, or a single value")
    return seq


def _table(arr: Any, names: Sequence[Hashable] | None) -> tuple[np.ndarray, list[Hashable]]:
    """(rows, columns) float64 array and column names from an array, tensor, pandas
    DataFrame or mapping name -> column."""
    if hasattr(arr, "columns") and hasattr(arr, "to_numpy"):  # a pandas DataFrame
        cols = list(arr.columns)
        try:
            X = np.asarray(arr.to_numpy(dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise DataError(f"data is not numeric: {err}") from None
        found = cols
    elif isinstance(arr, Mapping):
        found = list(arr.keys())
        X = stack_columns(found, arr.__getitem__, "data mapping")
    else:
        try:
            X = np.asarray(_to_numpy(arr), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"data is not numeric: {err}") from None
        if X.ndim != 2:
            raise DataError(f"data has shape {tuple(X.shape)}; expected (n_samples, "
                            "n_columns)")
        found = list(range(X.shape[1]))
    if names is not None:
        names = list(names)
        if len(names) != X.shape[1]:
            raise DataError(f"names has {len(names)} entries for {X.shape[1]} columns")
        found = names
    if len(set(found)) != len(found):
        dup = next(c for c in found if found.count(c) > 1)
        raise DataError(f"column name {dup!r} appears more than once")
    return X, found


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        return x.detach().cpu().double().numpy()
    return x


def _value_table(domain: Any, level: Any, vals: Any, name: Hashable) -> tuple[str, np.ndarray]:
    if domain == "binary":
        return "binary", np.array([0.0, 1.0])
    if domain == "spin":
        return "spin", np.array([-1.0, 1.0])
    if domain == "multinary":
        if level is None:
            raise DataError(f"column {name!r} has domain 'multinary' but no levels; pass "
                            "levels=K (an integer >= 2, codes 0..K-1)")
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 2:
            raise DataError(f"levels of column {name!r} must be an integer >= 2, got "
                            f"{level!r}")
        K = int(level)
        return "multinary", np.arange(K, dtype=np.float64) / (K - 1)
    if domain == "finite":
        if vals is None:
            raise DataError(f"column {name!r} has domain 'finite' but no values; pass "
                            "values=[v0, v1, ...] (codes 0..K-1 index them)")
        try:
            v = np.asarray(vals, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"values of column {name!r} must be real numbers, got "
                            f"{vals!r}") from None
        if len(v) < 2 or not np.isfinite(v).all() or len(np.unique(v)) != len(v):
            raise DataError(f"values of column {name!r} must be at least two distinct "
                            f"finite numbers, got {v.tolist()}")
        return "finite", v
    raise DataError(f"unknown domain {domain!r} for column {name!r}; use one of {DOMAINS}")


def prepare(data: Any, domain: Any = "spin", *, levels: Any = None, values: Any = None,
            names: Sequence[Hashable] | None = None, min_rows: int = MIN_ROWS
            ) -> tuple[np.ndarray, np.ndarray, Columns]:
    """Check ``data`` (codes) and return ``(S, codes, columns)``: the values (N, n),
    the integer level index of every entry (N, n) and the column description.

    Raises :class:`~pgm_boltz.DataError` for non-numeric or non-finite data, codes
    outside a column's domain, constant columns, fewer than two columns or fewer than
    ``min_rows`` rows.

    >>> S, idx, cols = prepare([[1, -1], [-1, 1]] * 5, "spin")
    >>> S.shape, cols.names, cols.domains
    ((10, 2), [0, 1], ['spin', 'spin'])
    """
    X, cols = _table(data, names)
    N, n = X.shape
    if n < 2:
        raise DataError(f"data have {n} column(s); structure learning needs at least two")
    if min_rows > N:
        raise DataError(f"data have {N} rows; structure learning needs at least {min_rows} "
                        "(and many more for reliable edges: the rule of thumb is tens of "
                        "rows per unit of the largest neighbourhood)")
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"data row {r}, column {cols[c]!r} is {float(X[r, c])!r}; data must be "
                        f"finite codes ({int(bad.sum())} non-finite entries in all): drop "
                        "or impute those rows")
    doms = _per_column(domain, cols, "domain")
    levs = _per_column(levels, cols, "levels")
    if values is None or isinstance(values, Mapping):
        vals = _per_column(values, cols, "values")
    else:  # one value list shared by every column
        vals = [values] * n
    tables = [_value_table(d, lv, v, c) for d, lv, v, c in zip(doms, levs, vals, cols)]
    S = np.empty_like(X)
    idx = np.empty(X.shape, dtype=np.int64)
    for c, (dom, table) in enumerate(tables):
        x = X[:, c]
        K = len(table)
        if dom == "spin":
            ok = np.abs(x) == 1
            k = (x > 0).astype(np.int64)
            text = "-1 or +1"
        else:
            ok = (x >= 0) & (x <= K - 1) & (np.floor(x) == x)
            k = np.where(ok, x, 0).astype(np.int64)
            text = "0 or 1" if dom == "binary" else f"an integer code in 0..{K - 1}"
        if not ok.all():
            r = int(np.flatnonzero(~ok)[0])
            raise DataError(f"data row {r}, column {cols[c]!r} has value {float(x[r])!r}; the "
                            f"column's domain {dom} takes {text} ({int((~ok).sum())} bad "
                            "values in the column)")
        if (k == k[0]).all():
            raise DataError(f"column {cols[c]!r} is constant (every row is {float(x[0])!r}): its "
                            "bias would be infinite and its couplings unidentifiable; drop "
                            "the column (or collect data where it varies)")
        S[:, c] = table[k]
        idx[:, c] = k
    columns = Columns(names=cols, domains=[d for d, _ in tables],
                      levels=[len(t) for _, t in tables], values=[t for _, t in tables])
    return S, idx, columns


def compress_rows(codes: np.ndarray, levels: Sequence[int], min_saving: float = 0.2
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """Distinct rows of the level codes (N, n): ``(first, counts)`` with ``first`` the
    index of each distinct row's first occurrence, when that saves at least
    ``min_saving`` of the rows, else ``(None, ones)``. Every objective here is a
    weighted sum over rows, so the distinct rows weighted by their counts give the same
    values.

    Rows are keyed by one integer each (mixed radix with the columns' level counts) when
    that fits in 63 bits, else compared as raw bytes.

    >>> first, w = compress_rows(np.array([[1, 0]] * 75 + [[0, 1]] * 25), [2, 2])
    >>> first.tolist(), w.tolist()
    ([75, 0], [25.0, 75.0])
    """
    N, n = codes.shape
    if N < 64:
        return None, np.ones(N)
    if sum(math.log2(k) for k in levels) <= 62:
        key = np.zeros(N, dtype=np.int64)
        for j in range(n):
            key = key * int(levels[j]) + codes[:, j]
        _, first, counts = np.unique(key, return_index=True, return_counts=True)
    else:
        c = np.ascontiguousarray(codes)
        raw = c.view(np.dtype((np.void, c.dtype.itemsize * n)))[:, 0]
        _, first, counts = np.unique(raw, return_index=True, return_counts=True)
    if len(first) <= (1.0 - min_saving) * N:
        return first, counts.astype(np.float64)
    return None, np.ones(N)


def normal_quantile(p: float) -> float:
    """``Phi^{-1}(p)`` by bisection on ``erfc`` (no scipy needed).

    >>> round(normal_quantile(0.975), 4)
    1.96
    """
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
