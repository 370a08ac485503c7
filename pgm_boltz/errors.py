"""The package's own exceptions.

Every error raised on purpose by pgm_boltz subclasses :class:`PgmBoltzError`,
itself a :class:`ValueError`, so ``except ValueError`` keeps working for callers
that do not know the package.
"""

from __future__ import annotations

__all__ = ["DataError", "DivergenceError", "GraphError", "IntractableError", "PgmBoltzError"]


class PgmBoltzError(ValueError):
    """Base class of every error pgm_boltz raises on purpose."""


class GraphError(PgmBoltzError):
    """The graph declaring a model is malformed (names the node or edge at fault)."""


class DataError(PgmBoltzError):
    """Data do not fit the model (names the column, row or value at fault)."""


class IntractableError(PgmBoltzError):
    """Exact work was asked of a model too large for it (says how large, and what to use)."""


class DivergenceError(PgmBoltzError):
    """Training produced non-finite values; the model keeps its last good parameters."""
