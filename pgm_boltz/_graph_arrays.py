"""Graph structure as arrays: the one CSR builder every layer uses.

>>> indptr, nbr, eid = csr_neighbours(3, np.array([[0, 1], [1, 2]]))
>>> indptr.tolist(), nbr.tolist(), eid.tolist()
([0, 1, 3, 4], [1, 2, 0, 1], [0, 1, 0, 1])
"""

from __future__ import annotations

import numpy as np

__all__ = ["csr_neighbours"]


def csr_neighbours(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour lists of every node in CSR form, both directions of each edge:
    node ``i``'s neighbours are ``nbr[indptr[i]:indptr[i+1]]`` (the edges where ``i`` is
    the first end, then those where it is the second, each in edge order), and
    ``eid`` gives the edge (row of ``edges``) of each entry. O(n + m) memory."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    eid = np.concatenate([np.arange(len(e)), np.arange(len(e))])
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols[order], eid[order]
