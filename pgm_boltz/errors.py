"""The package's own exceptions.

Every error raised on purpose by pgm_boltz subclasses :class:`PgmBoltzError`,
itself a :class:`ValueError`, so ``except ValueError`` keeps working for callers
that do not know the package.

- :class:`GraphError`: the declared graph is malformed (names the node or edge).
- :class:`DataError`: data do not fit the model (names the column, row or value);
  :class:`FileError`, a model file that cannot be saved or loaded, is one.
- :class:`ArgumentError`: a call's argument is invalid (names the argument and what it
  takes); not a data problem.
- :class:`IntractableError`: exact work was asked of a model too large for it.
- :class:`DivergenceError`: training diverged; the model keeps its last good parameters.
"""

from __future__ import annotations

__all__ = ["ArgumentError", "DataError", "DivergenceError", "FileError", "GraphError",
           "IntractableError", "PgmBoltzError", "PgmBoltzWarning"]


class PgmBoltzError(ValueError):
    """Base class of every error pgm_boltz raises on purpose."""


class GraphError(PgmBoltzError):
    """The graph declaring a model is malformed (names the node or edge at fault)."""


class DataError(PgmBoltzError):
    """Data do not fit the model (names the column, row or value at fault)."""


class FileError(DataError):
    """A model file cannot be saved or loaded (names the file and the problem).

    Raised by :func:`pgm_boltz.save` and :func:`pgm_boltz.load` for a path that is a
    directory, a device, a pipe, a dangling symbolic link, in a missing or unwritable
    directory, and for a file that is not a pgm_boltz model file or whose fields are
    missing or mistyped (the message names the field). It subclasses :class:`DataError`
    because a model file is data the package reads: code that caught ``DataError`` from
    ``save``/``load`` keeps working. An operating-system failure in the middle of writing
    (a full disk) stays the :class:`OSError` it is.
    """


class ArgumentError(PgmBoltzError):
    """An argument of a call is invalid (names the argument, the value and what it takes)."""


class IntractableError(PgmBoltzError):
    """Exact work was asked of a model too large for it (says how large, and what to use)."""


class PgmBoltzWarning(UserWarning):
    """A call that works but probably not as intended (says why and what to do)."""


class DivergenceError(PgmBoltzError):
    """Training diverged; the model keeps its last good parameters."""
