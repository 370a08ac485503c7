"""One lazily created thread pool for numba kernels that release the GIL.

The exact engine's table walk and the AIS kernel both split a range of independent work
items (chunk groups, chains) into contiguous pieces, one per thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["run_split"]

_POOL: list = []  # [executor, workers, pid]: shared by all callers


def run_split(fn: Callable[[int, int], object], n: int, threads: int) -> None:
    """Call ``fn(i0, i1)`` on contiguous pieces ``[i0, i1)`` covering ``range(n)``, one
    per thread (at most ``threads``, at most ``n``), and wait for all of them. ``fn``
    should release the GIL (a ``nogil`` numba kernel) for the pieces to run at once.

    >>> seen = []
    >>> run_split(lambda i0, i1: seen.append((i0, i1)), 5, 2)
    >>> sorted(seen)
    [(0, 2), (2, 5)]
    """
    threads = max(1, min(int(threads), n))
    if threads == 1:
        fn(0, n)
        return
    # a new pool when none, too small, or inherited through fork (its threads are gone)
    if not _POOL or _POOL[1] < threads or _POOL[2] != os.getpid():
        _POOL[:] = [ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgm_boltz"),
                    threads, os.getpid()]
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    futures = [_POOL[0].submit(fn, int(bounds[i]), int(bounds[i + 1]))
               for i in range(threads) if bounds[i + 1] > bounds[i]]
    for f in futures:
        f.result()
