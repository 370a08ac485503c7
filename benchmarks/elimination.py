"""Benchmark: exact inference by variable elimination (pgm_boltz.engines.elimination).

Open L x L spin lattices, couplings ~ N(0, 0.5^2), biases ~ N(0, 0.1^2), float64:

(a) 8 x 8: pgm_boltz's ``log Z`` plus all moments (``log_partition(...).backward()``:
    every ``<s_i>`` and every edge's ``<s_i s_j>``) against pgmpy's ``VariableElimination``
    computing ``log Z`` alone on the same parameters: a ``DiscreteMarkovNetwork`` with one
    factor per node and per edge, ``query`` of one variable with ``joint=True``, whose
    unnormalised result sums to Z. pgmpy runs with its default ``elimination_order=
    "greedy"`` (one opt_einsum contraction in exp space) and with classic variable
    elimination in ``"MinFill"`` order, each in a subprocess under ``--pgmpy-timeout``
    seconds; network construction is not timed. Ratios = pgmpy's time / ours.
(b) 12 x 12: planning, ``log Z`` alone, ``log Z`` + moments (checked against the
    log-space torch path) and 10000 exact samples.
(c) the largest L x L whose planning + ``log Z`` + all moments (first call, one row)
    finishes within ``--budget`` seconds (10 s), growing L from 12.

Timings are the median of ``--repeats`` calls after the first (the first includes numba's
cache load and the schedule build; reported separately). The markdown table goes to
``benchmarks/results/elimination.md``.

Run: ``python benchmarks/elimination.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch

from pgm_boltz.engines import elimination as el

RESULTS = Path(__file__).resolve().parent / "results" / "elimination.md"
SPINS = [-1.0, 1.0]


def lattice(L: int, seed: int = 0) -> dict:
    """An open L x L spin lattice with random couplings and biases (float64 arrays)."""
    G = nx.grid_2d_graph(L, L)
    index = {v: i for i, v in enumerate(G.nodes)}
    edges = np.array([(index[a], index[b]) for a, b in G.edges], dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = L * L
    return {"L": L, "n": n, "edges": edges, "levels": np.full(n, 2, np.int64),
            "values": torch.tensor([SPINS] * n, dtype=torch.float64),
            "b": rng.normal(0, 0.1, n), "w": rng.normal(0, 0.5, len(edges))}


def ours(prob: dict, plan: el.EliminationPlan, grad: bool = True,
         max_log2_stored: float | None = 28.0) -> tuple[float, float]:
    """(seconds, log Z) of one log Z (+ backward for all moments when grad)."""
    b = torch.tensor(prob["b"], requires_grad=grad)
    w = torch.tensor(prob["w"], requires_grad=grad)
    t0 = time.perf_counter()
    if grad:
        lz = el.log_partition(plan, prob["values"], prob["levels"], prob["edges"], b, w,
                              max_log2_stored=max_log2_stored)
        lz.backward()
    else:
        with torch.no_grad():
            lz = el.log_partition(plan, prob["values"], prob["levels"], prob["edges"], b, w)
    return time.perf_counter() - t0, float(lz.detach())


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(first call s, median of the next ``repeats`` calls s, last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times) if times else first, out


# ------------------------------------------------------------------ pgmpy


def _pgmpy_worker(order: str, b: np.ndarray, edges: np.ndarray, w: np.ndarray,
                  repeats: int, mem_gb: float, queue: mp.Queue) -> None:
    import resource
    import warnings

    limit = int(mem_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.filterwarnings("ignore")
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.inference import VariableElimination
    from pgmpy.models import DiscreteMarkovNetwork

    s = np.array(SPINS)
    names = [f"x{i}" for i in range(len(b))]
    net = DiscreteMarkovNetwork()
    net.add_nodes_from(names)
    net.add_edges_from([(names[i], names[j]) for i, j in edges])
    factors = [DiscreteFactor([names[i]], [2], np.exp(b[i] * s)) for i in range(len(b))]
    factors += [DiscreteFactor([names[i], names[j]], [2, 2], np.exp(wk * np.outer(s, s)))
                for (i, j), wk in zip(edges, w)]
    net.add_factors(*factors)
    times, log_z = [], None
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            # a Markov network's query result is left unnormalised: it sums to Z
            phi = VariableElimination(net).query([names[-1]], joint=True, show_progress=False,
                                                 elimination_order=order)
            log_z = float(np.log(np.sum(phi.values)))
            times.append(time.perf_counter() - t0)
    except MemoryError:
        queue.put(f"ran out of its {mem_gb:g} GiB memory limit")
        return
    except Exception as err:  # report, do not hang the parent
        queue.put(f"failed: {type(err).__name__}: {str(err)[:200]}")
        return
    queue.put((log_z, times))


def pgmpy_log_z(prob: dict, order: str, timeout: float, repeats: int, mem_gb: float
                ) -> tuple[float, list[float]] | str:
    """pgmpy's log Z in a subprocess: (log Z, seconds per query) or why not."""
    try:
        import pgmpy  # noqa: F401
    except ImportError:
        return "pgmpy not installed (pip install pgmpy)"
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pgmpy_worker, args=(order, prob["b"], prob["edges"], prob["w"],
                                                   repeats, mem_gb, queue))
    proc.start()
    out: tuple | str = f"did not finish within the {timeout:.0f} s limit"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = queue.get(timeout=0.5)
            break
        except Exception:  # queue.Empty: still running?
            if not proc.is_alive():
                out = f"died (exit code {proc.exitcode})"
                break
    proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return out


def fmt(t: float) -> str:
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


# ------------------------------------------------------------------ main


def learning(L: int, quick: bool) -> tuple[list[str], list[str]]:
    """Exact ML (the plan's elimination engine) on exact samples of a random L x L spin
    lattice, against PCD with the same epochs, scored by exact held-out NLL and by the
    AIS / reverse-AIS bracket (what a user without an exact engine would have)."""
    import pgm_boltz as pb

    G = pb.graphs.lattice(L, L)
    teacher = pb.compile(G, dtype=torch.float64, seed=0)
    rng = np.random.default_rng(3)
    with torch.no_grad():
        teacher.weight.copy_(torch.as_tensor(rng.uniform(-0.5, 0.5, len(teacher.edges))))
        teacher.bias.copy_(torch.as_tensor(rng.normal(0, 0.2, teacher.n_nodes)))
    n_train, n_test = (300, 200) if quick else (2000, 1000)
    train = teacher.sample(n_train, seed=1)
    test = teacher.sample(n_test, seed=2)
    epochs = 5 if quick else 40
    rows, checks = [], [f"(d) {L} x {L}: teacher plan {teacher.plan.exact.summary}"]
    for method in ("exact", "pcd"):
        student = pb.compile(G, dtype=torch.float64, seed=1)
        t0 = time.perf_counter()
        if method == "exact":
            student.fit(train, method="exact", epochs=epochs, lr=0.05, progress=False, seed=0)
        else:
            student.fit(train, method="pcd", epochs=epochs, lr=0.05, batch_size=100,
                        progress=False, seed=0, monitor_nll=False)
        t_fit = time.perf_counter() - t0
        with torch.no_grad():
            exact_nll = float(-student.log_prob(test).mean())
        t0 = time.perf_counter()
        ev = pb.evaluate(student, test, method="ais", base_data=train, seed=0,
                         n_betas=1000 if quick else 5000, progress=False)
        t_ais = time.perf_counter() - t0
        lo, hi = ev.nll_bracket
        rows.append(f"| (d) {L} x {L}, {method} training, {epochs} epochs | {n_train} rows | "
                    f"{fmt(t_fit / epochs)} per epoch | held-out NLL {exact_nll:.3f} (exact); "
                    f"AIS bracket [{lo:.3f}, {hi:.3f}] in {fmt(t_ais)} | |")
    with torch.no_grad():
        checks.append(f"(d) teacher's own held-out NLL {float(-teacher.log_prob(test).mean()):.3f}")
    return rows, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pgmpy-timeout", type=float, default=300.0)
    parser.add_argument("--pgmpy-memory-gb", type=float, default=6.0)
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds for the largest-lattice search (c)")
    parser.add_argument("--max-stored-log2", type=float, default=31.0,
                        help="limit on kept message entries (log2) for (c)'s gradients")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    repeats = 1 if args.quick else args.repeats
    rows: list[str] = []
    checks: list[str] = []

    # (a) 8 x 8 against pgmpy
    L = 4 if args.quick else 8
    prob = lattice(L)
    plan = el.plan_elimination(prob["n"], prob["edges"], prob["levels"])
    first, t_ours, (_, lz) = timed(lambda: ours(prob, plan), repeats)
    _, t_nograd, _ = timed(lambda: ours(prob, plan, grad=False), repeats)
    rows.append(f"| (a) {L} x {L} open, log Z + all moments | {plan.method}, treewidth "
                f"{plan.treewidth} | {fmt(first)} | {fmt(t_ours)} (log Z alone "
                f"{fmt(t_nograd)}) | see below |")
    best = None
    for order in ("greedy", "MinFill"):
        res = pgmpy_log_z(prob, order, 60.0 if args.quick else args.pgmpy_timeout,
                          3 if order == "greedy" else 1, args.pgmpy_memory_gb)
        if isinstance(res, str):
            checks.append(f"pgmpy {order} on {L} x {L}: {res}")
            rows.append(f"| pgmpy VariableElimination ({order}), log Z only | | | {res} | |")
            continue
        z_pg, times = res
        t_pg = statistics.median(times)
        checks.append(f"pgmpy {order} on {L} x {L}: log Z differs from ours by "
                      f"{z_pg - lz:+.2e}; query times {', '.join(fmt(t) for t in times)}")
        rows.append(f"| pgmpy VariableElimination ({order}), log Z only | | | {fmt(t_pg)} | "
                    f"**{t_pg / t_ours:.1f}x** |")
        if best is None or t_pg < best:
            best = t_pg

    # (b) 12 x 12
    L = 6 if args.quick else 12
    prob = lattice(L, seed=1)
    t0 = time.perf_counter()
    plan = el.plan_elimination(prob["n"], prob["edges"], prob["levels"])
    t_plan = time.perf_counter() - t0
    first, t_grad, (_, lz) = timed(lambda: ours(prob, plan), repeats)
    _, t_nograd, _ = timed(lambda: ours(prob, plan, grad=False), repeats)
    lz_torch = float(el.log_partition(plan, prob["values"], prob["levels"], prob["edges"],
                                      torch.tensor(prob["b"]), torch.tensor(prob["w"]),
                                      backend="torch"))
    checks.append(f"{L} x {L}: log Z = {lz:.12f}; the log-space torch path differs by "
                  f"{lz_torch - lz:+.2e}")
    n_draws = 10000
    _, t_sample, _ = timed(lambda: el.sample(
        plan, prob["values"], prob["levels"], prob["edges"], torch.tensor(prob["b"]),
        torch.tensor(prob["w"]), n_draws, torch.Generator().manual_seed(0)), 3)
    rows.append(f"| (b) {L} x {L} open, log Z + all moments | {plan.method}, treewidth "
                f"{plan.treewidth}, 2^{plan.log2_max_table:.0f} table, plan "
                f"{fmt(t_plan)} | {fmt(first)} | {fmt(t_grad)} (log Z alone "
                f"{fmt(t_nograd)}) | |")
    rows.append(f"| (b) {L} x {L}: {n_draws} exact samples | | | {fmt(t_sample)} | |")

    # (c) the largest L x L within the budget (plan + first log Z + moments)
    L = 6 if args.quick else 12
    budget = 2.0 if args.quick else args.budget
    largest = None
    lines = []
    while True:
        prob = lattice(L, seed=2)
        t0 = time.perf_counter()
        plan = el.plan_elimination(prob["n"], prob["edges"], prob["levels"])
        t_plan = time.perf_counter() - t0
        try:
            t_run, lz = ours(prob, plan, max_log2_stored=args.max_stored_log2)
        except el.IntractableError as err:
            lines.append(f"{L} x {L}: refused: {err}")
            break
        total = t_plan + t_run
        lines.append(f"{L} x {L}: {plan.method} order, treewidth {plan.treewidth}, "
                     f"~{plan.flops:.3g} operations, 2^{plan.log2_stored:.1f} kept entries; "
                     f"plan {fmt(t_plan)} + log Z and moments {fmt(t_run)} = {fmt(total)} "
                     f"(log Z {lz:.6f})")
        print(lines[-1], flush=True)
        if total > budget:
            break
        largest = (L, total)
        L += 1
    if largest:
        rows.append(f"| (c) largest L x L in {budget:g} s (plan + log Z + moments) | "
                    f"L = {largest[0]} | {fmt(largest[1])} | | |")
    checks += lines

    # (d) learning: exact ML through elimination on a 16 x 16 lattice vs PCD + AIS
    d_rows, d_checks = learning(6 if args.quick else 16, quick=args.quick)
    rows += d_rows
    checks += d_checks
    load_after = os.getloadavg()

    header = [
        f"# Elimination engine benchmark{' (quick)' if args.quick else ''}",
        "",
        "Open spin lattices, couplings ~ N(0, 0.5^2), biases ~ N(0, 0.1^2), float64, one row.",
        f"Ours: median of {repeats} call(s) after the first; pgmpy: median of its queries "
        "(greedy: 3, MinFill: 1). Ratio = pgmpy's time / ours (higher is better for us).",
        "",
        "| case | order | first call | time | pgmpy / ours |",
        "|---|---|---|---|---|",
    ]
    notes = [
        "",
        "Checks and details:",
        "",
        *[f"- {c}" for c in checks],
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), python "
        f"{platform.python_version()}; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}.",
    ]
    table = "\n".join(header + rows + notes) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
