"""Data-parallel training on CPU: one process against two on the same work.

The same training job — an RBM fit on MNIST-like generated rows, the same global batch,
epochs and chains — run by one process with all the machine's threads, and by two
processes (``torch.distributed``, gloo, a FileStore rendezvous) with half the threads
each, every process passing its part of the rows (:func:`pgm_boltz.distributed.shard`).
Reported: wall time of the ``fit`` call (the slowest rank), the speed-up, and the share
of the two-process time spent in communication (``all_reduce`` / ``broadcast`` calls of
:class:`pgm_boltz.distributed.World`, timed on every rank, the largest share shown).

Jobs: PCD-1 with SGD (the fused closed-form path: one ``all_reduce`` of the statistics an
update) and PCD-1 with Adam (autograd and the optimiser: one ``all_reduce`` of the
gradients an update), and exact ML on a 20x12 RBM (full batch).

    python benchmarks/distributed.py           # writes benchmarks/results/distributed.md
    python benchmarks/distributed.py --quick   # smoke run (nothing written)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import pgm_boltz as pb

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "distributed.md")


def make_data(n: int, n_v: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, n_v)) < 0.15).astype(np.float64)
    rows = protos[rng.integers(0, 10, size=n)]
    return np.where(rng.random(rows.shape) < 0.05, 1.0 - rows, rows)


def jobs(quick: bool) -> list[dict]:
    n_v, n_h, rows = (196, 100, 4000) if quick else (784, 500, 20000)
    return [
        {"label": f"{n_v}x{n_h} PCD-1, SGD (fused), batch 100, 100 chains", "n_v": n_v,
         "n_h": n_h, "rows": rows, "fit": {"method": "pcd", "batch_size": 100,
                                           "epochs": 1 if quick else 2, "lr": 0.05}},
        {"label": f"{n_v}x{n_h} PCD-1, Adam (autograd), batch 100, 100 chains", "n_v": n_v,
         "n_h": n_h, "rows": rows // 2, "fit": {"method": "pcd", "batch_size": 100,
                                                "epochs": 1, "lr": 0.001,
                                                "optimizer": "adam"}},
        {"label": "20x12 exact ML, full batch (Adam)", "n_v": 20, "n_h": 12,
         "rows": 2000, "fit": {"method": "exact", "epochs": 5 if quick else 20,
                               "lr": 0.05}},
    ]


class _Timer:
    """Wraps World's collectives to add up the time spent in them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
        return timed


def run_job(job: dict, part: np.ndarray, distributed: bool) -> tuple[float, float]:
    """(seconds of the fit call, seconds in collectives) for one process."""
    model = pb.compile(pb.graphs.rbm(job["n_v"], job["n_h"]), seed=0,
                       engine="exact" if job["fit"]["method"] == "exact" else "block-gibbs")
    timer = _Timer()
    World = pb.distributed.World
    saved = {name: getattr(World, name) for name in ("sum_", "broadcast_", "broadcast_int")}
    for name, fn in saved.items():
        setattr(World, name, timer.wrap(fn))
    try:
        if job["fit"]["method"] != "exact":  # warm-up: compile and fill caches
            model.fit(part[:400], progress=False, seed=0, monitor_nll=False,
                      distributed=distributed, **{**job["fit"], "epochs": 1})
        if distributed:
            dist.barrier()
        timer.seconds = 0.0
        model = pb.compile(pb.graphs.rbm(job["n_v"], job["n_h"]), seed=0,
                           engine="exact" if job["fit"]["method"] == "exact"
                           else "block-gibbs")
        extra = {} if job["fit"]["method"] == "exact" else {"monitor_nll": False}
        t = time.perf_counter()
        model.fit(part, progress=False, seed=0, distributed=distributed, **job["fit"],
                  **extra)
        return time.perf_counter() - t, timer.seconds
    finally:
        for name, fn in saved.items():
            setattr(World, name, fn)


def _worker(rank: int, world: int, tmp: str, quick: bool, threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["PGM_BOLTZ_PROGRESS"] = "0"
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank,
                            world_size=world)
    try:
        out = []
        for job in jobs(quick):
            data = make_data(job["rows"], job["n_v"])
            out.append(run_job(job, pb.distributed.shard(data), True))
        torch.save(out, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run, nothing written")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="threads of the one-process run (each of two gets half)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    os.environ["PGM_BOLTZ_PROGRESS"] = "0"
    load0 = os.getloadavg()
    torch.set_num_threads(args.threads)
    single = []
    for job in jobs(args.quick):
        data = make_data(job["rows"], job["n_v"])
        single.append(run_job(job, data, False))
    half = max(1, args.threads // 2)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, tmp, args.quick, half), nprocs=2, join=True)
        ranks = [torch.load(f"{tmp}/rank{r}.pt") for r in range(2)]
    load1 = os.getloadavg()
    lines = [f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
             f"{torch.__version__}, gloo; one process with {args.threads} thread(s) against "
             f"two with {half} each; load average before {load0[0]:.2f}, after "
             f"{load1[0]:.2f}.", "",
             "| job | 1 process (s) | 2 processes (s) | speed-up | communication share |",
             "|---|---:|---:|---:|---:|"]
    for i, job in enumerate(jobs(args.quick)):
        t1 = single[i][0]
        t2 = max(r[i][0] for r in ranks)
        comm = max(r[i][1] / r[i][0] for r in ranks)
        lines.append(f"| {job['label']}, {job['rows']:,} rows | {t1:.2f} | {t2:.2f} | "
                     f"{t1 / t2:.2f}x | {100 * comm:.1f}% |")
    lines += ["", "Wall time of the `fit` call after a warm-up fit (kernels compiled), the "
              "slowest rank; communication = time inside the collectives (which includes "
              "waiting for the other rank)."]
    text = "\n".join(lines)
    print(text)
    if not (args.no_write or args.quick):
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write("# Data-parallel training (benchmarks/distributed.py)\n\n" + text + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
