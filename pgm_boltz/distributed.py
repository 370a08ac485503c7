"""Data-parallel training over ``torch.distributed``: rank facts, data shards, reductions.

When a default process group is initialised (the script runs under ``torchrun``, or
calls :func:`init_process_group`), :meth:`pgm_boltz.BoltzmannMachine.fit` trains
data-parallel: every process passes its own part of the data (:func:`shard` gives a
rank its part of a full array) and the processes together do what one process would do
with all the data.

The maths. With parts of sizes ``N_r`` (``N = sum_r N_r``) every quantity ``fit``
derives from the data is a sum over rows, so it is the sum over ranks of the parts'
sums: the data means (initial visible biases and base rates), the mean training and
validation NLL, the reconstruction error. A step's gradient is the mean over the step's
global batch (the union of the ranks' batches, ``B = sum_r B_r`` rows): each rank's
mean gradient weighted by ``B_r / B``, summed over ranks by one ``all_reduce``; a PCD
estimate's model side is the mean over all ranks' chains (``C_r`` of ``C``), weighted
``C_r / C`` likewise. Every rank then applies the same update to the same parameters
(broadcast from rank 0 at the start), so they stay identical.

Transport is ``torch.distributed`` only: gloo on CPU, NCCL for CUDA parameters.

>>> is_distributed(), rank(), world_size(), is_main()
(False, 0, 1, True)
>>> shard([[0, 1], [1, 1], [1, 0]], rank=1, world_size=2)
[[1, 1]]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .errors import ArgumentError

__all__ = ["World", "current_world", "init_process_group", "is_distributed", "is_main",
           "rank", "shard", "split_counts", "world_size"]


def is_distributed() -> bool:
    """Whether a default ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the default group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that shows progress and writes files)."""
    return rank() == 0


def init_process_group(device: str | torch.device | None = None, **kwargs: Any) -> None:
    """Initialise the default group from ``torchrun``'s environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) with the backend for ``device``:
    NCCL for CUDA (and the current CUDA device set to ``LOCAL_RANK``), gloo otherwise.
    Keywords go to :func:`torch.distributed.init_process_group`; nothing happens when a
    group exists already.

    >>> init_process_group() if "RANK" in os.environ else None
    """
    if is_distributed():
        return
    if not dist.is_available():
        raise ArgumentError("init_process_group: this torch build has no torch.distributed")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    backend = kwargs.pop("backend", "nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend, **kwargs)


def split_counts(n: int, parts: int) -> list[int]:
    """``n`` items in ``parts`` near-equal counts, the larger ones first.

    >>> split_counts(10, 3)
    [4, 3, 3]
    """
    return [n // parts + (r < n % parts) for r in range(parts)]


def shard(data: Any, rank: int | None = None, world_size: int | None = None) -> Any:
    """Rank ``rank``'s part of a full data set: rows ``rank, rank + W, rank + 2W, ...``
    (``W`` = ``world_size``), the rows ``torch.utils.data.DistributedSampler(shuffle=False)``
    gives a rank, without its padding (parts may differ by one row: ``fit`` weights
    every part by its size, so no row counts twice). Takes an array, tensor or list of
    rows, a pandas DataFrame, or a mapping from column name to column; returns the same
    kind. ``rank`` and ``world_size`` default to the default group's.

    >>> import numpy as np
    >>> shard(np.arange(10).reshape(5, 2), rank=0, world_size=2).tolist()
    [[0, 1], [4, 5], [8, 9]]
    >>> shard({"a": [1, 2, 3]}, rank=1, world_size=2)
    {'a': [2]}
    """
    on = is_distributed()
    W = (dist.get_world_size() if on else 1) if world_size is None else world_size
    r = (dist.get_rank() if on else 0) if rank is None else rank
    if isinstance(W, bool) or not isinstance(W, (int, np.integer)) or W < 1:
        raise ArgumentError(f"shard: world_size must be a positive integer, got {W!r}")
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < W:
        raise ArgumentError(f"shard: rank must be an integer in [0, {W}), got {r!r}")
    r, W = int(r), int(W)
    if hasattr(data, "iloc") and hasattr(data, "columns"):  # pandas DataFrame
        return data.iloc[r::W]
    if isinstance(data, Mapping):
        return {k: shard(v, r, W) for k, v in data.items()}
    if torch.is_tensor(data) or isinstance(data, np.ndarray):
        return data[r::W]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return list(data[r::W])
    raise ArgumentError(f"shard: cannot split a {type(data).__name__}; pass an array, "
                        "tensor, list of rows, DataFrame or mapping of columns")


class World:
    """The default group as :func:`pgm_boltz.training.fit` uses it: ``rank``, ``size``,
    and sums over ranks on ``device`` (CUDA tensors for NCCL, CPU otherwise).

    Every method is a collective: every rank must call it, in the same order.
    """

    def __init__(self, device: torch.device) -> None:
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        self.backend = str(dist.get_backend()).lower()
        self.device = device if self.backend == "nccl" else torch.device("cpu")
        #: every rank's number of training rows (set by fit)
        self.rows: list[int] = []

    def _on(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.device == self.device else t.to(self.device)

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In place: ``t`` becomes its sum over ranks (returned)."""
        c = self._on(t)
        dist.all_reduce(c, op=dist.ReduceOp.SUM)
        if c is not t:
            t.copy_(c)
        return t

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Sums over ranks of a few numbers (float64)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        return self.sum_(t).tolist()

    def gather_ints(self, value: int) -> list[int]:
        """Every rank's ``value``, in rank order."""
        t = torch.zeros(self.size, dtype=torch.float64)
        t[self.rank] = float(value)
        return [int(x) for x in self.sum_(t).tolist()]

    def broadcast_int(self, value: int, src: int = 0) -> int:
        """Rank ``src``'s integer ``value`` on every rank."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=src)
        return int(t.item())

    def broadcast_(self, tensors: Sequence[torch.Tensor], src: int = 0) -> None:
        """In place: rank ``src``'s values on every rank (one message)."""
        ts = [t.detach() for t in tensors]
        if not ts:
            return
        flat = torch.cat([t.reshape(-1).to(self.device) for t in ts])
        dist.broadcast(flat, src=src)
        off = 0
        with torch.no_grad():
            for t in ts:
                n = t.numel()
                t.copy_(flat[off:off + n].view_as(t))
                off += n

    def barrier(self) -> None:
        dist.barrier()


def current_world(distributed: bool | None, device: torch.device, where: str = "fit"
                  ) -> World | None:
    """The :class:`World` to train in, or None for single-process training:
    ``distributed=None`` (default) uses the default group when one is initialised with
    more than one process, ``False`` never does, ``True`` requires one."""
    if distributed is not None and not isinstance(distributed, bool):
        raise ArgumentError(f"{where}: distributed must be True, False or None, got "
                            f"{distributed!r}")
    if distributed is False:
        return None
    if not is_distributed():
        if distributed:
            raise ArgumentError(f"{where}(distributed=True) needs a torch.distributed "
                                "default process group: run under torchrun and call "
                                "pb.distributed.init_process_group() first")
        return None
    if dist.get_world_size() == 1:
        return None
    return World(device)
