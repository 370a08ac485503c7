"""CD-1 speed: a 784 x 500 binary RBM, batch 100, pgm_boltz against scikit-learn.

Both libraries train on the same rows in the same batches (MNIST-sized binary data,
generated: each row a noisy copy of one of 10 random stroke-like prototypes):

- pgm_boltz: ``model.fit(data, method="cd", k=1, batch_size=100, optimizer="sgd")``,
  float32, the whole training loop timed (batching, sampling, surrogate, optimiser step,
  divergence checks).
- scikit-learn: ``BernoulliRBM.partial_fit`` on each batch (PCD-1, float64).

One CD-1 step does five matmuls of 2·B·784·500 FLOPs each (v·W, h·Wᵀ, v'·W and the two
outer products vᵀh, v'ᵀh'); achieved FLOP/s is set against this machine's float32 matmul
peak, measured here on a 2048³ product with the same thread count. With a CUDA device the
pgm_boltz run is repeated on it.

    python benchmarks/cd.py            # full run, writes benchmarks/results/cd.md
    python benchmarks/cd.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

import pgm_boltz as pb

N_VIS, N_HID, BATCH = 784, 500, 100
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cd.md")


def make_data(n: int, seed: int = 0) -> np.ndarray:
    """MNIST-sized binary rows: noisy copies (5% flips) of 10 random sparse prototypes."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, N_VIS)) < 0.15).astype(np.float64)
    rows = protos[rng.integers(0, 10, size=n)]
    flip = rng.random(rows.shape) < 0.05
    return np.where(flip, 1.0 - rows, rows)


def step_flops(batch: int = BATCH) -> float:
    """FLOPs of one CD-1 step's five matmuls."""
    return 5 * 2.0 * batch * N_VIS * N_HID


def matmul_peak(device: str, reps: int, n: int = 2048) -> float:
    """Measured float32 matmul FLOP/s on ``device`` (best of ``reps``)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def time_pgm_boltz(data: np.ndarray, epochs: int, device: str) -> float:
    """Rows per second of CD-1 training: one ``fit`` call of ``epochs`` epochs, timed
    whole (data validation and set-up included), after a short warm-up fit."""
    model = pb.compile(pb.graphs.rbm(N_VIS, N_HID), device=device, seed=0)
    model.fit(data[:10 * BATCH], method="cd", k=1, epochs=1, batch_size=BATCH,
              optimizer="sgd", lr=0.05, progress=False, seed=0, monitor_nll=False)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    model.fit(data, method="cd", k=1, epochs=epochs, batch_size=BATCH, optimizer="sgd",
              lr=0.05, progress=False, seed=1, monitor_nll=False)
    if device == "cuda":
        torch.cuda.synchronize()
    return data.shape[0] * epochs / (time.perf_counter() - t)


def time_sklearn(data: np.ndarray, epochs: int) -> float:
    """Rows per second of BernoulliRBM.partial_fit over the same batches, ``epochs``
    passes, after a warm-up batch."""
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=N_HID, learning_rate=0.05, batch_size=BATCH,
                       random_state=0)
    rbm.partial_fit(data[:BATCH])
    t = time.perf_counter()
    for _ in range(epochs):
        for b0 in range(0, data.shape[0], BATCH):
            rbm.partial_fit(data[b0:b0 + BATCH])
    return data.shape[0] * epochs / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="CPU threads for both libraries (default: all cores)")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs")
    ap.add_argument("--no-write", action="store_true", help="do not write results")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    rows = args.rows or (1000 if args.quick else 10000)
    epochs = args.epochs or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    data = make_data(rows)
    flops = step_flops() * rows / BATCH  # per epoch
    lines = []
    with threadpool_limits(args.threads):
        peak = matmul_peak("cpu", reps=3 if args.quick else 10)
        ours = time_pgm_boltz(data, epochs, "cpu")
        theirs = time_sklearn(data, epochs)
    ours_flops = ours / rows * flops
    theirs_flops = theirs / rows * flops
    lines.append(f"CD-1 on a {N_VIS}x{N_HID} binary RBM, batch {BATCH}, {rows} generated "
                 f"MNIST-sized rows, {epochs} epoch(s) timed, {args.threads} CPU "
                 f"thread(s); {platform.processor() or platform.machine()}, "
                 f"torch {torch.__version__}.")
    lines.append("")
    lines.append("| run | samples/s | ratio to scikit-learn | achieved GFLOP/s | "
                 "% of matmul peak |")
    lines.append("|---|---:|---:|---:|---:|")
    lines.append(f"| pgm_boltz CD-1 (float32, CPU) | {ours:,.0f} | {ours / theirs:.2f}x | "
                 f"{ours_flops / 1e9:.1f} | {100 * ours_flops / peak:.0f}% |")
    lines.append(f"| scikit-learn BernoulliRBM PCD-1 (float64, CPU) | {theirs:,.0f} | 1.00x | "
                 f"{theirs_flops / 1e9:.1f} | {100 * theirs_flops / peak:.0f}% |")
    if torch.cuda.is_available():
        cpeak = matmul_peak("cuda", reps=20)
        gpu_data = make_data(rows * 5)
        cuda = time_pgm_boltz(gpu_data, epochs, "cuda")
        cflops = cuda / rows * flops
        lines.append(f"| pgm_boltz CD-1 (float32, {torch.cuda.get_device_name()}) | "
                     f"{cuda:,.0f} | {cuda / theirs:.2f}x | {cflops / 1e9:.1f} | "
                     f"{100 * cflops / cpeak:.1f}% of {cpeak / 1e12:.1f} TFLOP/s |")
    else:
        lines.append("| pgm_boltz CD-1 (CUDA) | no CUDA device here | | | |")
    lines.append("")
    lines.append(f"Measured float32 matmul peak (2048³, {args.threads} thread(s)): "
                 f"{peak / 1e9:.1f} GFLOP/s. One CD-1 step = 5 matmuls x 2·{BATCH}·"
                 f"{N_VIS}·{N_HID} = {step_flops() / 1e6:.0f} MFLOP.")
    table = "\n".join(lines)
    print(table)
    if not args.no_write and not args.quick:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write("# CD-1 speed (benchmarks/cd.py)\n\n" + table + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
