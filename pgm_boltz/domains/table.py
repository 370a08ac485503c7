"""The value-table route of discrete units with a quadratic self-term (precision).

A multinary or other progression unit with precision ``q`` has the conditional
``P(s = v_k | f) ∝ exp(f v_k - q v_k^2 / 2)`` (a discretised Gaussian), whose normaliser
has no closed form; :class:`TableMaths` computes its log-normaliser, moments and draws
from the units' value table. On CPU, outside autograd, moments and draws run the compiled
:func:`~pgm_boltz.domains.kernels.table_rows` (one pass per unit, no (rows, n, K)
temporaries); elsewhere tensor code over the padded table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .base import Domain, table_sample
from .kernels import table_rows

__all__ = ["TableMaths"]

_FAST_DTYPES = (torch.float32, torch.float64)


class TableMaths:
    """The value-table route of a family's units with a quadratic term: conditionals
    ``softmax_k(f_i v_ik - q_i v_ik^2 / 2)`` over each unit's levels (at most a few
    hundred), with the table built once per dtype and device.

    The logits are one fused ``f v - (q/2) v^2`` over the padded (n, Kmax) table; the
    padding mask is applied only when the units' level counts differ.

    >>> import torch
    >>> from pgm_boltz.domains import multinary
    >>> tm = TableMaths([multinary(3)] * 2)
    >>> f, q = torch.zeros(2, dtype=torch.float64), torch.full((2,), 8.0, dtype=torch.float64)
    >>> [round(x, 4) for x in tm.moment(f, q, 1).tolist()]  # P(k) ∝ exp(-4 v_k^2) at v = 0, ½, 1
    [0.1459, 0.1459]
    """

    def __init__(self, domains: Sequence[Domain]) -> None:
        self.domains = list(domains)
        kmax = max((d.levels for d in self.domains), default=1)
        tab = np.full((len(self.domains), kmax), np.nan)
        for i, d in enumerate(self.domains):
            tab[i, :d.levels] = d.values()
        self._tab = tab
        self._K = np.array([d.levels for d in self.domains], dtype=np.int64)
        self._padded = bool(np.isnan(tab).any())
        # the compiled route needs every unit's values in arithmetic progression
        self._lo = tab[:, 0].copy()
        self._st = np.where(self._K > 1, tab[:, min(1, kmax - 1)] - tab[:, 0], 1.0)
        steps = np.diff(tab, axis=1)
        real = ~np.isnan(steps)
        self._arith = bool(len(self.domains)) and np.allclose(
            steps[real], np.broadcast_to(self._st[:, None], steps.shape)[real])
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def _arrays(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(values with NaN padding, level counts, values with 0 padding, their squares,
        padding mask or None) in ``like``'s dtype and device, built once."""
        dt = like.dtype if like.is_floating_point() else torch.float64
        key = (dt, like.device)
        if key not in self._cache:
            vals = torch.as_tensor(self._tab, dtype=dt, device=like.device)
            clean = torch.nan_to_num(vals)
            self._cache[key] = (vals, torch.as_tensor(self._K, device=like.device), clean,
                                clean * clean,
                                torch.isnan(vals) if self._padded else None)
        return self._cache[key]

    def table(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values with NaN padding, level counts) in ``like``'s dtype and device."""
        return self._arrays(like)[:2]

    def logits(self, f: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f_i v_ik - q_i v_ik^2 / 2`` (..., n, Kmax), -inf on padding, and the values
        with 0 padding."""
        _, _, clean, sq, pad = self._arrays(f)
        q = torch.as_tensor(q, dtype=clean.dtype, device=clean.device)
        lg = f.unsqueeze(-1) * clean - (0.5 * q).unsqueeze(-1) * sq
        if pad is not None:
            lg = lg.masked_fill(pad, -math.inf)
        return lg, clean

    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.logits(f, q)[0], -1)

    def moment(self, f: torch.Tensor, q: torch.Tensor, power: int) -> torch.Tensor:
        if power in (1, 2) and self._fast(f, q):
            return self._rows(f, q, power, None)
        lg, clean = self.logits(f, q)
        w = clean if power == 1 else self._arrays(f)[3] if power == 2 else clean ** power
        return (torch.softmax(lg, -1) * w).sum(-1)

    def sample(self, f: torch.Tensor, q: torch.Tensor, generator: torch.Generator | None
               ) -> torch.Tensor:
        if self._fast(f, q):
            u = torch.rand(f.shape, dtype=f.dtype, device=f.device, generator=generator)
            return self._rows(f, q, 0, u)
        lg, _ = self.logits(f, q)
        vals, levels = self.table(f)
        return table_sample(lg, vals, levels, generator)

    def _fast(self, f: torch.Tensor, q: Any) -> bool:
        """Whether the compiled route applies: CPU float tensors, nothing to
        differentiate, precisions per unit (broadcasting like ``f``)."""
        if not (self._arith and isinstance(q, torch.Tensor) and f.device.type == "cpu"
                and q.device.type == "cpu" and f.dtype in _FAST_DTYPES):
            return False
        if torch.is_grad_enabled() and (f.requires_grad or q.requires_grad):
            return False
        return f.dim() >= 1 and q.dim() >= 1 and q.shape[-1] == f.shape[-1] \
            and torch.broadcast_shapes(q.shape, f.shape) == f.shape \
            and bool((q >= 0).all())

    def _rows(self, f: torch.Tensor, q: torch.Tensor, power: int,
              u: torch.Tensor | None) -> torch.Tensor:
        """:func:`~pgm_boltz.domains.kernels.table_rows` over ``f`` reshaped to rows."""
        n = f.shape[-1]
        F = f.detach().reshape(-1, n).contiguous()
        qd = q.detach().to(F.dtype)
        Q = qd.reshape(1, n).contiguous() if qd.dim() == 1 else \
            qd.expand(f.shape).reshape(-1, n).contiguous()
        U = F if u is None else u.reshape(-1, n).contiguous()
        out = torch.empty_like(F)
        table_rows(F.numpy(), Q.numpy(), self._lo, self._st, self._K, U.numpy(), power,
                   out.numpy())
        return out.reshape(f.shape)
