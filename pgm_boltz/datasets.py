"""Small data sets from installed packages (no downloads).

:func:`load_digits` gives scikit-learn's bundled 8×8 digits with the project's standard
split: rows shuffled with ``numpy.random.default_rng(0)``, the first 1497 for training,
the last 300 for testing.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["load_digits"]


def load_digits(levels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(train, test)`` arrays of codes, shapes (1497, 64) and (300, 64).

    ``levels=17`` keeps the 17 intensity levels 0..16; ``levels=2`` binarises them
    (``pixel >= 8`` → 1); other ``K`` rescale ``round(pixel * (K-1) / 16)``.
    Needs scikit-learn (``pip install pgm-boltz[examples]``).

    >>> train, test = load_digits()
    >>> train.shape, test.shape, sorted(set(train.ravel().tolist()))
    ((1497, 64), (300, 64), [0.0, 1.0])
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError("load_digits needs scikit-learn: pip install 'pgm-boltz[examples]'"
                        ) from None
    X = _sk_digits().data.astype(np.float64)
    rows = np.random.default_rng(0).permutation(len(X))
    X = X[rows]
    if levels == 2:
        X = (X >= 8).astype(np.float64)
    elif levels != 17:
        X = np.round(X * (levels - 1) / 16.0)
    return X[:1497].copy(), X[-300:].copy()
