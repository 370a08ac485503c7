"""Benchmark: the cost of quadratic self-terms and Gaussian units, and their overhead on
models without them.

Two tables, from one run (float64 unless said, one torch thread, median of repeats after
a warm-up call):

- **overhead**: models *without* the new terms (binary / multinary / spin; exact log Z and
  its gradient, exact moments, free energies, block and sequential Gibbs sweeps, a CD
  epoch). Run this script on two checkouts (``PYTHONPATH=<checkout> python
  benchmarks/quadratic.py --overhead-only``) to compare them; models without
  quadratic terms should cost the same.
- **cost**: the same kinds of work with the new terms: a 64 × 16 multinary RBM (K = 17)
  with precisions on every visible unit (the exact engine's table walk: its product form
  with coefficients against the plain closed form and against the log form it falls back
  to for huge fields, forced here), a Gaussian–Bernoulli
  RBM (784 Gaussian visible units integrated out in closed form, 16 binary hidden units
  enumerated), and Gibbs sweeps of both (torch and numba).

Run: ``python benchmarks/quadratic.py`` (``--quick`` for a smoke run; ``PYTHONPATH=.``
from a checkout that is not the installed one); writes ``benchmarks/results/quadratic.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import pgm_boltz as pb
from pgm_boltz.engines import enum_kernels as ex
from pgm_boltz.engines.enumeration import kernel_problem
from pgm_boltz.samplers import make_sampler

RESULTS = Path(__file__).resolve().parent / "results" / "quadratic.md"
F64 = torch.float64


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def randomise(model: pb.BoltzmannMachine, scale: float, seed: int = 0) -> pb.BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g, dtype=F64)
                           .to(model.weight) * scale)
        model.bias.copy_(torch.randn(model.bias.shape, generator=g, dtype=F64)
                         .to(model.bias) * scale)
    return model


def log_z_and_grad(model: pb.BoltzmannMachine):
    def run() -> None:
        model.zero_grad()
        model.log_partition().backward()
    return run


def overhead(repeats: int, quick: bool) -> list[tuple[str, float]]:
    """Work on models without quadratic terms."""
    out = []
    rbm = randomise(pb.compile(pb.graphs.rbm(64, 16), dtype=F64), 0.1)
    out.append(("exact log Z + gradient, 64 × 16 binary RBM", timed(log_z_and_grad(rbm),
                                                                      repeats)))
    mrbm = randomise(pb.compile(pb.graphs.rbm(64, 16, domain="multinary", levels=17),
                                dtype=F64), 0.1)
    out.append(("exact log Z + gradient, 64 × 16 multinary RBM (K = 17)",
                timed(log_z_and_grad(mrbm), repeats)))
    fc = randomise(pb.compile(pb.graphs.fully_connected(20, domain="spin"), dtype=F64),
                   0.07)
    out.append(("exact log Z + gradient, fully connected 20 spins",
                timed(log_z_and_grad(fc), repeats)))
    out.append(("exact moments (all pairs off), 64 × 16 multinary RBM",
                timed(lambda: mrbm.moments(all_pairs=False), max(1, repeats // 2))))
    data = torch.randint(0, 17, (2000, 64), generator=torch.Generator().manual_seed(0))
    out.append(("free energy of 2000 rows, 64 × 16 multinary RBM",
                timed(lambda: mrbm.free_energy(data), repeats)))
    big = randomise(pb.compile(pb.graphs.rbm(200, 50), engine="block-gibbs"), 0.05)
    s = make_sampler(big, "block-gibbs")
    gen = torch.Generator().manual_seed(0)
    x = s.init(500, gen)
    out.append(("block Gibbs, 50 sweeps × 500 chains, 200 × 50 RBM (float32)",
                timed(lambda: s.sweep(x, 50, generator=gen), max(1, repeats // 2))))
    lat = randomise(pb.compile(pb.graphs.lattice(32, 32), storage="sparse",
                               engine="chromatic-gibbs"), 0.3)
    s2 = make_sampler(lat, "sequential")
    x2 = s2.init(64, gen)
    out.append(("sequential Gibbs, 50 sweeps × 64 chains, 32 × 32 spin lattice",
                timed(lambda: s2.sweep(x2, 50, generator=gen), max(1, repeats // 2))))
    if not quick:
        cd = pb.compile(pb.graphs.rbm(784, 100), engine="block-gibbs", seed=0)
        rows = (torch.rand(2000, 784, generator=gen) < 0.3).float()
        out.append(("CD-1 epoch, 784 × 100 binary RBM, 2000 rows, batch 100",
                    timed(lambda: cd.fit(rows, method="cd", epochs=1, batch_size=100,
                                         progress=False, monitor_nll=False, seed=0),
                          max(1, repeats // 2))))
    return out


def cost(repeats: int, quick: bool) -> list[tuple[str, float]]:
    """Work with quadratic terms and Gaussian units."""
    out = []
    m = randomise(pb.compile(pb.graphs.rbm(64, 16, domain="multinary", levels=17,
                                           precision=20.0), dtype=F64), 0.1)
    out.append(("exact log Z + gradient (log-precisions included), 64 × 16 multinary RBM "
                "with precisions (K = 17)", timed(log_z_and_grad(m), repeats)))
    # the table walk itself: plain, with coefficients (product form), forced log form
    plain = randomise(pb.compile(pb.graphs.rbm(64, 16, domain="multinary", levels=17),
                                 dtype=F64), 0.1)
    kp0 = kernel_problem(plain.problem, plain.plan.exact.plan, plain.bias, plain.weight)
    kp = kernel_problem(m.problem, m.plan.exact.plan, m.bias, m.weight, m.precisions())
    kp_log = dataclasses.replace(kp, polyS=False)
    for label, prob in (("no precisions (closed-form Horner)", kp0),
                        ("precisions (Horner with coefficients)", kp),
                        ("precisions, log form forced (K exps per row and unit)", kp_log)):
        out.append((f"table walk, log Z only, 64 × 16 multinary, {label}",
                    timed(lambda prob=prob: ex.exact_log_partition(prob), repeats)))
        out.append((f"table walk, log Z + moments + <s^2>, 64 × 16 multinary, {label}",
                    timed(lambda prob=prob: ex.exact_moments(prob, 80, squares=True),
                          max(1, repeats // 2))))
    n_v = 64 if quick else 784
    gb = randomise(pb.compile(pb.graphs.rbm(n_v, 16, domain="gaussian"), dtype=F64), 0.05)
    out.append((f"exact log Z + gradient, Gaussian–Bernoulli RBM {n_v} × 16",
                timed(log_z_and_grad(gb), repeats)))
    rows = torch.randn(2000, n_v, generator=torch.Generator().manual_seed(0), dtype=F64)
    out.append((f"free energy of 2000 rows, Gaussian–Bernoulli RBM {n_v} × 16",
                timed(lambda: gb.free_energy(rows), repeats)))
    gen = torch.Generator().manual_seed(0)
    for label, model in (
            ("multinary K = 17 with precisions, 64 × 16",
             randomise(pb.compile(pb.graphs.rbm(64, 16, domain="multinary", levels=17,
                                                precision=20.0), engine="block-gibbs"),
                       0.1)),
            ("multinary K = 17 without, 64 × 16",
             randomise(pb.compile(pb.graphs.rbm(64, 16, domain="multinary", levels=17),
                                  engine="block-gibbs"), 0.1)),
            (f"Gaussian–Bernoulli {n_v} × 16",
             randomise(pb.compile(pb.graphs.rbm(n_v, 16, domain="gaussian"),
                                  engine="block-gibbs"), 0.05))):
        for backend, name in (("torch", "block-gibbs"), ("numba", "sequential")):
            s = make_sampler(model, name)
            x = s.init(200, gen)
            out.append((f"Gibbs ({backend}), 20 sweeps × 200 chains, {label} (float32)",
                        timed(lambda s=s, x=x: s.sweep(x, 20, generator=gen),
                              max(1, repeats // 2))))
    return out


def table(rows: list[tuple[str, float]]) -> list[str]:
    lines = ["| work | time |", "|---|---|"]
    lines += [f"| {name} | {sec * 1e3:.1f} ms |" for name, sec in rows]
    return lines


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--overhead-only", action="store_true",
                    help="only the models without quadratic terms (to compare checkouts)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 3 if args.quick else 7
    t0 = time.perf_counter()
    lines = ["# Quadratic self-terms and Gaussian units: cost and overhead", "",
             f"`python benchmarks/quadratic.py{' --quick' if args.quick else ''}` from "
             f"`{pb.__file__}`; median of {repeats} calls after a warm-up "
             "(halved for the sampler rows), one torch thread.", "",
             "## Models without quadratic terms", ""]
    lines += table(overhead(repeats, args.quick))
    if not args.overhead_only:
        lines += ["", "## With quadratic terms and Gaussian units", ""]
        lines += table(cost(repeats, args.quick))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, load average {load:.1f} at the end, torch "
              f"{torch.__version__}; total {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines) + "\n"
    if not args.overhead_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
