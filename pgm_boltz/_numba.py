"""A one-time notice when numba compiles the package's kernels.

The first call of a compiled kernel in a fresh installation compiles it (tens of
seconds for the larger kernels); numba then caches it next to the module, and later runs
load it in milliseconds. :func:`notice_first_compile` prints one line to standard error
the first time, in a process, that a kernel about to run has no cache yet, so a long
first call is not mistaken for a hang. ``PGM_BOLTZ_QUIET=1`` silences it.

>>> notice_first_compile()  # nothing to say about no kernels
False
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["notice_first_compile"]

_SAID: list[bool] = []


def _cold(f: Any) -> bool:
    """Whether the numba dispatcher ``f`` has neither a compiled signature in this process
    nor an on-disk cache index (so its next call compiles)."""
    if getattr(f, "signatures", None):
        return False
    cache = getattr(f, "_cache", None)
    try:
        index = cache._cache_file._index_path  # type: ignore[union-attr]
    except AttributeError:
        return False
    return not os.path.exists(index)


def notice_first_compile(*kernels: Any) -> bool:
    """Say once per process (on stderr) that numba is compiling, when any of ``kernels``
    will compile on its next call; returns whether it spoke."""
    if _SAID or os.environ.get("PGM_BOLTZ_QUIET") == "1":
        return False
    if any(_cold(f) for f in kernels):
        _SAID.append(True)
        print("pgm_boltz: compiling numba kernels for their first use; this takes tens of "
              "seconds once, later runs load them from the cache", file=sys.stderr,
              flush=True)
        return True
    return False
