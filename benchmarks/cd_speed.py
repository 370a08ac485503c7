"""CD/PCD training speed of the closed-form kernels against scikit-learn and ``rbms``.

(a) The digits row: a 64 x 16 binary RBM on ``pb.datasets.load_digits(levels=2)`` (1497
    training rows), batch 10, lr 0.05, 20 epochs (3,000 updates). scikit-learn's
    ``BernoulliRBM(n_components=16, batch_size=10, n_iter=20, learning_rate=0.05).fit``
    (PCD-1 with 10 persistent chains, float64) against the numba kernel
    (:func:`pgm_boltz.engines.cd_kernels.cd_epochs`, float32) with the same work (PCD-1,
    10 chains), with pgm_boltz's default 100 chains, and CD-1; the torch path
    (:class:`pgm_boltz.engines.cd_torch.TorchCD`); and today's ``model.fit(method="pcd")``.
    Training time only on every side (best of ``--repeats``), then the held-out exact NLL
    of each trained model on the 300 test rows (``model.log_prob``), so speed is not
    bought with worse models.
(b) The scaling table: CD-1 samples/s for 64x16, 196x100, 784x500 and 3072x1000 binary
    RBMs at batch 10 and 100, on MNIST-like generated rows (noisy copies of sparse
    prototypes): the numba kernel and the torch path (float32), scikit-learn float64 and
    float32, and ``rbms`` (its ``fit_batch_pcd`` update in CD mode with its SGD step).
    Achieved FLOP/s counts one CD-1 update as five matmuls of ``2 B n_v n_h`` FLOPs and is
    set against the float32 matmul peak measured in the same run: a 2048³ product, and the
    same-shape products (``v W``, ``h W^T``, ``v W``, ``V^T H`` over the 2B stacked rows).

(c) The crossover (``--crossover``): seconds per CD-1 update of the numba kernel and the
    torch path on a grid of sizes, batches and data densities (0.2 and 0.5 ones), with the
    work ``(B + C) n_v n_h`` that :func:`pgm_boltz.engines.cd_torch.choose_cd_backend`
    compares (times the thread count) against ``NUMBA_MAX_WORK``.

The machine may be shared: the load average before and after is printed with the table.

    python benchmarks/cd_speed.py            # full run, writes benchmarks/results/cd_speed.md
    python benchmarks/cd_speed.py --quick    # smoke run (nothing written)
    python benchmarks/cd_speed.py --threads 1 --crossover   # one thread, plus table (c)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

import pgm_boltz as pb
from pgm_boltz.domains import BINARY, DomainVector
from pgm_boltz.engines.cd_kernels import cd_epochs, streams_from_generator
from pgm_boltz.engines.cd_torch import NUMBA_MAX_WORK, TorchCD, choose_cd_backend, init_pcd_chains
from pgm_boltz.training import data_bias

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cd_speed.md")
SIZES = [(64, 16), (196, 100), (784, 500), (3072, 1000)]
BATCHES = [10, 100]
LR = 0.05


# ---------------------------------------------------------------------------- helpers
def make_data(n: int, n_v: int, seed: int = 0) -> np.ndarray:
    """MNIST-like binary rows: noisy copies (5% flips) of 10 random sparse prototypes."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, n_v)) < 0.15).astype(np.float64)
    rows = protos[rng.integers(0, 10, size=n)]
    flip = rng.random(rows.shape) < 0.05
    return np.where(flip, 1.0 - rows, rows)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The best wall-clock time of ``repeats`` calls (each after the set-up inside fn)."""
    best = math.inf
    for _ in range(repeats):
        t = fn()
        best = min(best, float(t))
    return best


def peak_2048(reps: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * 2048 ** 3 / best


def peak_same_shape(n_v: int, n_h: int, B: int, reps: int) -> float:
    """FLOP/s of one CD-1 update's matmuls alone, float32, at these shapes (best of)."""
    v, W, h = torch.rand(B, n_v), torch.randn(n_v, n_h), torch.rand(B, n_h)
    Vs, Hs = torch.rand(2 * B, n_v), torch.rand(2 * B, n_h)
    o1, o2, o3 = torch.empty(B, n_h), torch.empty(B, n_v), torch.empty(n_v, n_h)
    ops = [lambda: torch.mm(v, W, out=o1), lambda: torch.mm(h, W.t(), out=o2),
           lambda: torch.mm(v, W, out=o1), lambda: torch.mm(Vs.t(), Hs, out=o3)]
    inner = max(1, int(2e8 / (10 * B * n_v * n_h)))
    for f in ops:
        f()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            for f in ops:
                f()
        best = min(best, (time.perf_counter() - t) / inner)
    return 10.0 * B * n_v * n_h / best


def _positions(m) -> tuple[dict, dict, dict]:
    return ({n: i for i, n in enumerate(m.visible_nodes)},
            {n: j for j, n in enumerate(m.hidden_nodes)},
            {n: i for i, n in enumerate(m.nodes)})


def from_model(m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, bv, bh) of a compiled RBM, W (n_v, n_h) read through ``model.edges``."""
    vpos, hpos, node = _positions(m)
    w = m.weight.detach().double().numpy()
    b = m.bias.detach().double().numpy()
    W = np.empty((len(vpos), len(hpos)))
    for e, (a, c) in enumerate(m.edges):
        if a in hpos:
            a, c = c, a
        W[vpos[a], hpos[c]] = w[e]
    return (W, np.array([b[node[n]] for n in m.visible_nodes]),
            np.array([b[node[n]] for n in m.hidden_nodes]))


def to_model(W: np.ndarray, bv: np.ndarray, bh: np.ndarray):
    """A compiled 64 x 16 RBM with these parameters (the edge order read off
    ``model.edges``), for its exact log-likelihood."""
    n_v, n_h = W.shape
    m = pb.compile(pb.graphs.rbm(n_v, n_h), dtype=torch.float64)
    vpos, hpos, node = _positions(m)
    w = np.empty(len(m.edges))
    for e, (a, b) in enumerate(m.edges):
        if a in hpos:
            a, b = b, a
        w[e] = W[vpos[a], hpos[b]]
    bias = np.empty(len(m.nodes))
    for n, i in vpos.items():
        bias[node[n]] = bv[i]
    for n, j in hpos.items():
        bias[node[n]] = bh[j]
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(w))
        m.bias.copy_(torch.as_tensor(bias))
    return m


def test_nll(params: tuple[np.ndarray, np.ndarray, np.ndarray], test: np.ndarray) -> float:
    m = to_model(*(np.asarray(p, dtype=np.float64) for p in params))
    with torch.no_grad():
        return -float(m.log_prob(torch.as_tensor(test)).mean())


# ---------------------------------------------------------------------------- runners
def init_params(n_v: int, n_h: int, train: np.ndarray, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pgm_boltz's start: W ~ N(0, 0.01²), visible biases the data's log-odds, h 0."""
    g = torch.Generator().manual_seed(seed)
    W = (0.01 * torch.randn(n_v, n_h, generator=g, dtype=torch.float64)).numpy()
    bv = data_bias(DomainVector([BINARY] * n_v), torch.as_tensor(train.mean(0))).numpy()
    return W, bv, np.zeros(n_h)


def run_numba(train: np.ndarray, n_h: int, B: int, epochs: int, mode: str, n_chains: int,
              seed: int = 0, dtype=np.float32) -> tuple[float, tuple]:
    """(seconds, (W, bv, bh)): CD-1 or PCD-1 by the numba kernel, timed from the row
    orders and streams to the end of training."""
    N, n_v = train.shape
    W0, bv0, bh0 = init_params(n_v, n_h, train, seed)
    W, bv, bh = W0.astype(dtype), bv0.astype(dtype), bh0.astype(dtype)
    data = np.ascontiguousarray(train, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    chains = None
    if mode == "pcd":
        v, h = init_pcd_chains(torch.as_tensor(W), torch.as_tensor(bh), torch.as_tensor(bv),
                               n_chains, generator=g)
        chains = (v.numpy().copy(), h.numpy().copy())
    t = time.perf_counter()
    perm = torch.stack([torch.randperm(N, generator=g) for _ in range(epochs)]).numpy()
    rng = streams_from_generator(max(B, n_chains if mode == "pcd" else 0), g)
    cd_epochs(W, bv, bh, data, perm, rng, batch_size=B, lr=LR, chains=chains)
    return time.perf_counter() - t, (W, bv, bh)


def run_torch(train: np.ndarray, n_h: int, B: int, epochs: int, mode: str, n_chains: int,
              seed: int = 0) -> tuple[float, tuple]:
    N, n_v = train.shape
    W0, bv0, bh0 = init_params(n_v, n_h, train, seed)
    W, bv, bh = (torch.as_tensor(a, dtype=torch.float32).clone() for a in (W0, bv0, bh0))
    data = torch.as_tensor(train, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    chains = init_pcd_chains(W, bh, bv, n_chains, generator=g) if mode == "pcd" else None
    t = time.perf_counter()
    perm = torch.stack([torch.randperm(N, generator=g) for _ in range(epochs)])
    TorchCD(W, bv, bh, batch_size=B, lr=LR, chains=chains, generator=g).run(data, perm)
    return time.perf_counter() - t, (W.numpy(), bv.numpy(), bh.numpy())


def run_sklearn(train: np.ndarray, n_h: int, B: int, epochs: int, dtype=np.float64
                ) -> tuple[float, tuple]:
    from sklearn.neural_network import BernoulliRBM

    X = np.ascontiguousarray(train, dtype=dtype)
    rbm = BernoulliRBM(n_components=n_h, batch_size=B, n_iter=epochs, learning_rate=LR,
                       random_state=0)
    t = time.perf_counter()
    rbm.fit(X)
    el = time.perf_counter() - t
    return el, (rbm.components_.T, rbm.intercept_visible_, rbm.intercept_hidden_)


def run_rbms(train: np.ndarray, n_h: int, B: int, updates: int) -> float:
    """``rbms``' own update (fit_batch_pcd, CD mode: chains restarted at the batch, its
    default centred gradient and normalisation) with torch's SGD, float32."""
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.training.pcd import fit_batch_pcd

    N, n_v = train.shape
    data = torch.as_tensor(train, dtype=torch.float32)
    wts = torch.ones(N)
    g = torch.Generator().manual_seed(0)
    params = BBRBM(0.01 * torch.randn(n_v, n_h, generator=g), torch.zeros(n_v),
                   torch.zeros(n_h))
    params.init_grad()
    opt = torch.optim.SGD(params.parameters(), lr=LR, maximize=True)
    t = time.perf_counter()
    with torch.no_grad():
        for u in range(updates):
            b0 = (u * B) % (N - B + 1)
            batch = (data[b0:b0 + B], wts[b0:b0 + B])
            chains = params.init_chains(B, weights=batch[1], start_v=batch[0])
            opt.zero_grad(set_to_none=False)
            fit_batch_pcd(batch, chains, params, gibbs_steps=1, beta=1.0)
            opt.step()
    return time.perf_counter() - t


def run_fit(train: np.ndarray, n_h: int, B: int, epochs: int) -> tuple[float, tuple]:
    """Today's path: ``model.fit(method="pcd")`` (default 100 chains, monitor_nll=False)."""
    n_v = train.shape[1]
    m = pb.compile(pb.graphs.rbm(n_v, n_h), engine="block-gibbs", seed=0)
    t = time.perf_counter()
    m.fit(train, method="pcd", epochs=epochs, batch_size=B, lr=LR, progress=False, seed=0,
          monitor_nll=False)
    return time.perf_counter() - t, from_model(m)


# ---------------------------------------------------------------------------- tables
def digits_table(repeats: int, epochs: int) -> list[str]:
    train, test = pb.datasets.load_digits(levels=2)
    B, n_h = 10, 16
    rows = []
    sk_t = best_time(lambda: run_sklearn(train, n_h, B, epochs)[0], repeats)
    _, sk_p = run_sklearn(train, n_h, B, epochs)
    rows.append(("scikit-learn BernoulliRBM (PCD-1, 10 chains, float64)", sk_t, sk_p))
    run_numba(train[:50], n_h, B, 1, "pcd", 10)  # compile
    for label, mode, C in (("numba kernel PCD-1, 10 chains (float32)", "pcd", 10),
                           ("numba kernel PCD-1, 100 chains (float32)", "pcd", 100),
                           ("numba kernel CD-1 (float32)", "cd", 0)):
        t = best_time(lambda mode=mode, C=C: run_numba(train, n_h, B, epochs, mode, C)[0],
                      repeats)
        rows.append((label, t, run_numba(train, n_h, B, epochs, mode, C)[1]))
    t = best_time(lambda: run_torch(train, n_h, B, epochs, "pcd", 10)[0], repeats)
    rows.append(("torch path PCD-1, 10 chains (float32)", t,
                 run_torch(train, n_h, B, epochs, "pcd", 10)[1]))
    t, p = run_fit(train, n_h, B, epochs)
    rows.append(("today's model.fit(method='pcd'), 100 chains (float32)", t, p))
    init_nll = test_nll(init_params(64, n_h, train), test)
    out = [f"### (a) 64 x 16 binary RBM on the digits ({train.shape[0]} rows), batch {B}, "
           f"lr {LR}, {epochs} epochs ({epochs * math.ceil(train.shape[0] / B):,} updates)",
           "", "| run | training time (s) | speed-up vs scikit-learn | held-out NLL (nats) |",
           "|---|---:|---:|---:|"]
    for label, t, p in rows:
        out.append(f"| {label} | {t:.3f} | {sk_t / t:.2f}x | {test_nll(p, test):.2f} |")
    out.append(f"| (the initial model: W ~ N(0, 0.01²), data log-odds biases) | | | "
               f"{init_nll:.2f} |")
    out.append("")
    out.append("Training time only (best of "
               f"{repeats}; numba compiled before; row orders, streams and the timed "
               "updates included; today's model.fit timed once). Held-out NLL: exact, "
               "mean over the 300 test rows.")
    return out


def scaling_table(repeats: int, target_flops: float, max_updates: int, quick: bool
                  ) -> tuple[list[str], list[tuple]]:
    peak = peak_2048(3 if quick else 10)
    out = ["### (b) CD-1 samples/s (training rows per second), MNIST-like binary rows", "",
           "| RBM | batch | numba kernel | torch path | scikit-learn float64 | "
           "scikit-learn float32 | rbms (float32) | torch: GFLOP/s, % of 2048³ peak, % of "
           "same-shape peak | numba: % of peak | faster ours | rule picks |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    points = []
    for n_v, n_h in SIZES:
        for B in BATCHES:
            flops = 10.0 * B * n_v * n_h
            updates = int(min(max_updates, max(20, target_flops / flops)))
            if quick:
                updates = max(5, updates // 20)
            N = min(updates * B, 20000)
            epochs = max(1, round(updates * B / N))
            rows = epochs * N
            train = make_data(N, n_v, seed=1)
            same = peak_same_shape(n_v, n_h, B, 3)
            args = (train, n_h, B, epochs)
            run_numba(train[:2 * B], n_h, B, 1, "cd", 0)  # compile
            tn = best_time(partial(lambda a: run_numba(*a, "cd", 0)[0], args), repeats)
            tt = best_time(partial(lambda a: run_torch(*a, "cd", 0)[0], args), repeats)
            t64 = best_time(partial(lambda a: run_sklearn(*a)[0], args), repeats)
            t32 = best_time(partial(lambda a: run_sklearn(*a, np.float32)[0], args), repeats)
            try:
                run_rbms(train, n_h, B, 3)  # warm-up (torch.jit.script functions)
                tr = best_time(partial(run_rbms, train, n_h, B, rows // B), repeats)
                rbms_s = f"{rows / tr:,.0f}"
            except Exception as exc:  # pragma: no cover - depends on the environment
                rbms_s = f"failed: {type(exc).__name__}"
            n_up = rows / B
            gf_t, gf_n = flops * n_up / tt, flops * n_up / tn
            win = "numba" if tn < tt else "torch"
            rule = choose_cd_backend(n_v, n_h, B, threads=torch.get_num_threads())
            points.append((n_v, n_h, B, tn, tt))
            out.append(
                f"| {n_v}x{n_h} | {B} | {rows / tn:,.0f} | {rows / tt:,.0f} | "
                f"{rows / t64:,.0f} | {rows / t32:,.0f} | {rbms_s} | {gf_t / 1e9:.1f}, "
                f"{100 * gf_t / peak:.0f}%, {100 * gf_t / same:.0f}% | "
                f"{100 * gf_n / peak:.0f}% | {win} ({max(tn, tt) / min(tn, tt):.2f}x) | "
                f"{rule} |")
    out.append("")
    out.append(f"float32 matmul peak, 2048³: {peak / 1e9:.1f} GFLOP/s. One CD-1 update = "
               "5 matmuls x 2·B·n_v·n_h FLOPs. Best of "
               f"{repeats} runs each; the numba kernel runs one thread, torch, scikit-learn "
               "and rbms use all threads. scikit-learn and rbms: their own updates (PCD-1 "
               "and CD-1 with centring); every row: the same generated rows and batches. "
               f"Rule: numba while (B + C)·n_v·n_h·threads < {NUMBA_MAX_WORK:.1e}.")
    return out, points


def crossover_table(repeats: int, quick: bool) -> list[str]:
    T = torch.get_num_threads()
    out = [f"### (c) Crossover: ms per CD-1 update, numba kernel vs torch path ({T} torch "
           "thread(s))", "",
           "| RBM | batch | density | work (B+C)·n_v·n_h | numba ms | torch ms | torch / numba "
           "| rule picks |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    grid = [(64, 16), (64, 64), (196, 100), (400, 200), (784, 500)]
    for dens in (0.2, 0.5):
        for n_v, n_h in grid[:3] if quick else grid:
            for B in BATCHES:
                N = 20 * B
                rng = np.random.default_rng(0)
                train = (rng.random((N, n_v)) < dens).astype(np.float64)
                work = 2 * B * n_v * n_h
                epochs = int(min(100, max(1, 1.5e7 / (20 * work))))
                args = (train, n_h, B, epochs)
                run_numba(train[:2 * B], n_h, B, 1, "cd", 0)
                tn = best_time(partial(lambda a: run_numba(*a, "cd", 0)[0], args), repeats)
                tt = best_time(partial(lambda a: run_torch(*a, "cd", 0)[0], args), repeats)
                n_up = 20 * epochs
                out.append(f"| {n_v}x{n_h} | {B} | {dens} | {work:.1e} | {1e3 * tn / n_up:.3f} "
                           f"| {1e3 * tt / n_up:.3f} | {tt / tn:.2f} | "
                           f"{choose_cd_backend(n_v, n_h, B, threads=T)} |")
    out.append("")
    out.append("torch / numba > 1: the numba kernel is faster. 20 to 2,000 updates a run "
               f"(about 1.5e7 multiply-adds), best of {repeats}.")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run, nothing written")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--crossover", action="store_true", help="also table (c)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    lines = [f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{args.threads} thread(s), torch {torch.__version__}; load average before: "
             f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", ""]
    with threadpool_limits(args.threads):
        if not args.skip_digits:
            lines += digits_table(repeats, 2 if args.quick else 20)
            lines.append("")
        if not args.skip_scaling:
            table, _ = scaling_table(repeats, 2e10, 3000, args.quick)
            lines += table
        if args.crossover:
            lines.append("")
            lines += crossover_table(repeats, args.quick)
    load1 = os.getloadavg()
    lines += ["", f"Load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} "
              "(timings on a loaded machine are provisional)."]
    text = "\n".join(lines)
    print(text)
    if not (args.no_write or args.quick):
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write("# CD/PCD kernel speed (benchmarks/cd_speed.py)\n\n" + text + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
