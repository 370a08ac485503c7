"""Unit domains: the values a unit takes and their maths (see :mod:`.base` for the seam).

Built in: ``binary`` {0,1}, ``spin`` {-1,+1}, ``multinary`` (K equally spaced levels
in [0, 1]) in :mod:`.discrete`, and ``finite`` (any K distinct real values) in
:mod:`.finite`. :func:`register_domain` adds more.

>>> from pgm_boltz.domains import BINARY, SPIN, multinary
>>> [BINARY.describe(), SPIN.describe(), multinary(4).describe()]
['binary', 'spin', 'multinary(K=4)']
"""

from .base import (
    ARITH,
    TABLE,
    Domain,
    DomainVector,
    Family,
    KernelSpec,
    domain_names,
    parse_domain,
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

__all__ = [
    "ARITH",
    "BINARY",
    "SPIN",
    "TABLE",
    "ArithDomain",
    "ArithFamily",
    "Domain",
    "DomainVector",
    "Family",
    "FiniteDomain",
    "FiniteFamily",
    "KernelSpec",
    "domain_names",
    "geometric_log_normalizer",
    "geometric_mean",
    "geometric_sample",
    "multinary",
    "parse_domain",
    "register_domain",
]
