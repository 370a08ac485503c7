"""Gaussian units: a real value with a learned precision.

Declared with ``domain="gaussian"`` and an optional ``precision`` λ > 0 (default 1; the
model learns it as a log-precision). The unit's energy is ``λ s^2 / 2 - b s`` plus the
usual ``-W s_i s_j`` on its edges, so given its local field ``f = b + sum_j W_ij s_j`` it
is normal with mean ``f / λ`` and variance ``1 / λ``:

    A(f; λ) = log ∫ exp(f s - λ s^2 / 2) ds = f^2 / (2 λ) + ½ log(2π / λ),
    E[s | f] = f / λ,      E[s^2 | f] = 1 / λ + (f / λ)^2,      s = f / λ + ε / √λ.

Data are the real values themselves (codes = values; NaN and infinities are invalid). A
graph may not join two Gaussian units (the compiler refuses the edge): the joint law of
coupled Gaussians need not be normalisable, and every engine relies on a Gaussian unit's
neighbours being discrete. With discrete neighbours (a Gaussian–Bernoulli RBM) the exact
engines integrate Gaussian units out in closed form, so ``log_prob`` of Gaussian visible
units is a log-density.

>>> import torch
>>> from pgm_boltz.domains import DomainVector, GAUSSIAN
>>> dv = DomainVector([GAUSSIAN])
>>> f, q = torch.tensor([2.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64)
>>> dv.mean(f, q).tolist(), round(float(dv.log_normalizer(f, q)[0]), 6)  # 1/2 + log(pi/2)/2
([0.5], 0.725791)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ArgumentError, GraphError
from .base import GAUSS, Domain, Family, KernelSpec, register_domain

__all__ = ["GAUSSIAN", "GaussianDomain", "GaussianFamily"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianDomain(Domain):
    """A real-valued unit with a quadratic self-term (see the module text).

    >>> GAUSSIAN.describe(), GAUSSIAN.discrete, GAUSSIAN.default_precision
    ('gaussian', False, 1.0)
    """

    name: ClassVar[str] = "gaussian"  # type: ignore[misc]
    family: ClassVar[type[Family]]
    discrete: ClassVar[bool] = False
    default_precision: ClassVar[float | None] = 1.0
    #: no finite level set: 1 by convention, so counts of discrete states ignore it
    levels = 1

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return "GaussianDomain()"

    def values(self) -> np.ndarray:
        """No finite value set: an empty array."""
        return np.zeros(0)

    def codes(self) -> np.ndarray:
        """No finite code set: an empty array (codes are the real values)."""
        return np.zeros(0)

    def code_of(self, values: np.ndarray) -> np.ndarray:
        """Codes are the values themselves."""
        return np.asarray(values, dtype=np.float64)

    def describe(self) -> str:
        """``gaussian``."""
        return "gaussian"

    def codes_text(self) -> str:
        """``a finite real number``."""
        return "a finite real number"

    def attrs(self) -> dict:
        """``{"domain": "gaussian"}`` (the precision is a parameter of the model)."""
        return {"domain": "gaussian"}

    def kernel_spec(self) -> KernelSpec:
        """GAUSS; kernels read the precision from ``step`` (NaN until one is given)."""
        return KernelSpec(GAUSS, 0.0, math.nan, (0.0,), (0.0,))

    def log_size(self) -> float:
        """Continuous: no finite number of values (``inf``)."""
        return math.inf


#: The Gaussian domain (one instance serves every Gaussian unit).
GAUSSIAN = GaussianDomain()


def _gaussian(attrs: Mapping, node: Any) -> GaussianDomain:
    for key in ("levels", "values"):
        if attrs.get(key) is not None:
            raise GraphError(f"node {node!r} has {key}={attrs[key]!r} but domain 'gaussian' "
                             f"(real-valued); drop {key}, or declare precision=λ > 0")
    return GAUSSIAN


class GaussianFamily(Family):
    """Closed forms of Gaussian units (precisions ``q`` are required)."""

    @staticmethod
    def _q(f: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        if q is None:
            raise ArgumentError("Gaussian units need their precisions q (the model passes "
                                "them); got q=None")
        return torch.as_tensor(q, dtype=f.dtype, device=f.device)

    def log_normalizer(self, f: torch.Tensor, q: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """``f^2 / (2 q) + ½ log(2π / q)``."""
        q = self._q(f, q)
        return 0.5 * f * f / q + 0.5 * (_LOG_2PI - torch.log(q))

    def mean(self, f: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """``f / q``."""
        return f / self._q(f, q)

    def second_moment(self, f: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``1 / q + (f / q)^2``."""
        q = self._q(f, q)
        m = f / q
        return 1.0 / q + m * m

    def sample(self, f: torch.Tensor, generator: torch.Generator | None = None,
               q: torch.Tensor | None = None) -> torch.Tensor:
        """``f / q + ε / √q`` with ``ε ~ N(0, 1)``."""
        q = self._q(f, q)
        eps = torch.randn(f.shape, dtype=f.dtype, device=f.device, generator=generator)
        return f / q + eps / torch.sqrt(q)

    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes are values."""
        return codes

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Values are codes."""
        return values

    def invalid_codes(self, codes: Any) -> Any:
        """NaN and infinities."""
        if torch.is_tensor(codes):
            v = codes if codes.is_floating_point() else codes.to(torch.float64)
            return ~torch.isfinite(v)
        return ~np.isfinite(np.asarray(codes, dtype=np.float64))

    def bias_for_mean(self, means: torch.Tensor, q: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``f = m q``."""
        return means * self._q(means, q)


GaussianDomain.family = GaussianFamily
register_domain("gaussian", _gaussian)
