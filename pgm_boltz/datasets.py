"""Small data sets from installed packages (no downloads).

:func:`load_digits` gives scikit-learn's bundled 8×8 digits with the project's standard
split: rows shuffled with ``numpy.random.default_rng(0)``, the first 1497 for training,
the last 300 for testing.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["load_digits", "tile"]


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


def tile(images: np.ndarray, shape: tuple[int, ...], cols: int = 10, pad: int = 1,
         fill: float = np.nan) -> np.ndarray:
    """Lay images out on a grid for ``imshow``: image ``i`` (reshaped to ``shape``, e.g.
    ``(8, 8)`` or ``(8, 8, 3)``) goes to row ``i // cols``, column ``i % cols``, with
    ``pad`` pixels of ``fill`` around and between them.

    The canvas is ``(rows (h + pad) + pad, cols (w + pad) + pad, *shape[2:])`` with
    ``rows = ceil(n / cols)``.

    >>> t = tile(np.arange(8.0), (2, 2), cols=2, fill=0)
    >>> t.shape, t[1:3, 4:6].tolist()
    ((4, 7), [[4.0, 5.0], [6.0, 7.0]])
    """
    x = np.asarray(images, dtype=np.float64).reshape(-1, *shape)
    h, w = shape[:2]
    rows = -(-len(x) // cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *shape[2:]), fill,
                     dtype=np.float64)
    for i, im in enumerate(x):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
               pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return canvas
