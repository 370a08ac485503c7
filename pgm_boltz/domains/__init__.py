"""Unit domains: the values a unit takes and their maths (see :mod:`.base` for the seam).

Built in: ``binary`` {0,1}, ``spin`` {-1,+1}, ``multinary`` (K equally spaced levels
in [0, 1]) in :mod:`.discrete`, ``finite`` (any K distinct real values) in
:mod:`.finite`, and ``gaussian`` (real values with a learned precision) in
:mod:`.gaussian`. Multinary and finite units may declare a quadratic self-term
(``precision=``). :func:`register_domain` adds more.

>>> from pgm_boltz.domains import BINARY, SPIN, multinary
>>> [BINARY.describe(), SPIN.describe(), multinary(4).describe()]
['binary', 'spin', 'multinary(K=4)']
"""

from .base import (
    ARITH,
    GAUSS,
    TABLE,
    Domain,
    DomainVector,
    Family,
    KernelSpec,
    domain_names,
    parse_domain,
    parse_precision,
    register_domain,
)
from .discrete import (
    BINARY,
    SPIN,
    ArithDomain,
    ArithFamily,
    geometric_log_normalizer,
    geometric_mean,
    geometric_sample,
    multinary,
)
from .finite import FiniteDomain, FiniteFamily
from .gaussian import GAUSSIAN, GaussianDomain, GaussianFamily

__all__ = [
    "ARITH",
    "BINARY",
    "GAUSS",
    "GAUSSIAN",
    "SPIN",
    "TABLE",
    "ArithDomain",
    "ArithFamily",
    "Domain",
    "DomainVector",
    "Family",
    "FiniteDomain",
    "FiniteFamily",
    "GaussianDomain",
    "GaussianFamily",
    "KernelSpec",
    "domain_names",
    "geometric_log_normalizer",
    "geometric_mean",
    "geometric_sample",
    "multinary",
    "parse_domain",
    "parse_precision",
    "register_domain",
]
