"""Gibbs speed: single-site updates per second on Ising lattices, against thrml and
dwave-pytorch-plugin, plus the parameter memory of a 256×256 lattice.

    python benchmarks/gibbs.py            # full run (a few minutes)
    python benchmarks/gibbs.py --quick    # smoke run

Models: a 64×64 periodic spin lattice (``networkx.grid_2d_graph(64, 64, periodic=True)``,
coupling 0.4, zero fields), 1 chain and 64 chains; the same in ``thrml`` (JAX,
``IsingEBM`` + two checkerboard blocks, chains by ``jax.vmap``) and in
``dwave-pytorch-plugin`` (``GraphRestrictedBoltzmannMachine`` + ``BlockSampler``, whose
energy has the opposite sign: couplings -0.4). Compile / JIT time (first call) is
reported apart from the steady rate (a second call of the same shape). As a check that
all sample the same law, the table reports the nearest-neighbour correlation
``<s_i s_j>`` of the final states of the 64-chain runs.

Then a 64×64 periodic triangular lattice (its chromatic number is 4 because 64 is not a
multiple of 3; a 66×66 one 3-colours) with pgm_boltz, and the bytes per edge of a
256×256 periodic lattice (parameters + index buffers, and the sampler's CSR).
The table goes to ``benchmarks/results/gibbs.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch

import pgm_boltz as pb
from pgm_boltz.samplers import gibbs_sampler

COUPLING = 0.4
L = 64
REPEATS = 3  # timed runs per measurement; the fastest counts (the machine may be shared)


def spin_lattice(n: int, periodic: bool = True) -> nx.Graph:
    G = nx.grid_2d_graph(n, n, periodic=periodic)
    for u in G.nodes:
        G.nodes[u].update(role="visible", domain="spin")
    for u, v in G.edges:
        G.edges[u, v]["weight"] = COUPLING
    return G


def nn_corr(x: np.ndarray, nodes: list, edges: list) -> float:
    """Mean of s_i s_j over edges and chains, x (chains, n) spins in ``nodes`` order."""
    pos = {u: i for i, u in enumerate(nodes)}
    a = np.array([pos[u] for u, _ in edges])
    b = np.array([pos[v] for _, v in edges])
    return float((x[:, a] * x[:, b]).mean())


# ------------------------------------------------------------------------------ ours
def bench_ours(G: nx.Graph, chains: int, sweeps: int, backend: str = "auto") -> dict:
    t0 = time.perf_counter()
    model = pb.compile(G, seed=0)
    sampler = gibbs_sampler(model, backend=backend)
    gen = torch.Generator().manual_seed(0)
    x = sampler.init(chains, gen)
    sampler.sweep(x, 1, generator=gen)  # JIT (or numba cache load) happens here
    setup = time.perf_counter() - t0
    dt = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        sampler.sweep(x, sweeps, generator=gen)
        dt = min(dt, time.perf_counter() - t0)
    return {"rate": chains * model.n_nodes * sweeps / dt, "setup": setup, "sweeps": sweeps,
            "x": x.numpy(), "nodes": model.nodes, "edges": model.edges,
            "backend": sampler.backend, "blocks": len(model.plan.blocks), "model": model}


def interleaved(graphs: dict, chains: int, sweeps: int) -> dict:
    """Best-of-REPEATS rates of several models, their timed runs interleaved."""
    state = {}
    for key, G in graphs.items():
        t0 = time.perf_counter()
        model = pb.compile(G, seed=0)
        sampler = gibbs_sampler(model)
        gen = torch.Generator().manual_seed(0)
        x = sampler.init(chains, gen)
        sampler.sweep(x, 1, generator=gen)
        state[key] = {"sampler": sampler, "gen": gen, "x": x, "n": model.n_nodes,
                      "setup": time.perf_counter() - t0, "dt": float("inf"),
                      "blocks": len(model.plan.blocks), "backend": sampler.backend}
    for _ in range(REPEATS):
        for st in state.values():
            t0 = time.perf_counter()
            st["sampler"].sweep(st["x"], sweeps, generator=st["gen"])
            st["dt"] = min(st["dt"], time.perf_counter() - t0)
    for st in state.values():
        st["rate"] = chains * st["n"] * sweeps / st["dt"]
    return state


# ------------------------------------------------------------------------------ thrml
def bench_thrml(G: nx.Graph, chains: int, sweeps: int) -> dict:
    import jax
    import jax.numpy as jnp
    from thrml import Block, SamplingSchedule, SpinNode, sample_states
    from thrml.models.ising import IsingEBM, IsingSamplingProgram, hinton_init

    t0 = time.perf_counter()
    names = list(G.nodes)
    node = {u: SpinNode() for u in names}
    nodes = [node[u] for u in names]
    edges = [(node[u], node[v]) for u, v in G.edges]
    colour = nx.bipartite.color(G)
    blocks = [Block([node[u] for u in names if colour[u] == c]) for c in (0, 1)]
    ebm = IsingEBM(nodes, edges, jnp.zeros(len(nodes)), jnp.full(len(edges), COUPLING),
                   jnp.array(1.0))
    program = IsingSamplingProgram(ebm, blocks, clamped_blocks=[])
    schedule = SamplingSchedule(n_warmup=sweeps, n_samples=1, steps_per_sample=1)
    full = [Block(nodes)]

    def run(key):
        k_init, k_run = jax.random.split(key)
        if chains == 1:
            init = hinton_init(k_init, ebm, blocks, ())
            return sample_states(k_run, program, schedule, init, [], full)
        init = hinton_init(k_init, ebm, blocks, (chains,))
        keys = jax.random.split(k_run, chains)
        return jax.vmap(lambda k, i: sample_states(k, program, schedule, i, [], full))(
            keys, init)

    run_jit = jax.jit(run)
    jax.block_until_ready(run_jit(jax.random.key(0)))  # compile + one run
    first = time.perf_counter() - t0
    dt = float("inf")
    for rep in range(REPEATS):
        t0 = time.perf_counter()
        out = jax.block_until_ready(run_jit(jax.random.key(1 + rep)))
        dt = min(dt, time.perf_counter() - t0)
    x = np.asarray(out[0]).reshape(chains, -1).astype(np.float64) * 2 - 1
    return {"rate": chains * len(nodes) * sweeps / dt, "setup": max(first - dt, 0.0),
            "sweeps": sweeps,
            "x": x, "nodes": names, "edges": list(G.edges)}


# ------------------------------------------------------------------------------ dwave
def bench_dwave(G: nx.Graph, chains: int, sweeps: int) -> dict:
    from dwave.plugins.torch.models.boltzmann_machine import (
        GraphRestrictedBoltzmannMachine,
    )
    from dwave.plugins.torch.samplers.block_spin_sampler import BlockSampler as DWBlock

    t0 = time.perf_counter()
    names = list(G.nodes)
    edges = list(G.edges)
    grbm = GraphRestrictedBoltzmannMachine(names, edges, linear={u: 0.0 for u in names},
                quadratic={e: -COUPLING for e in edges})  # their E = +J s s: ferro < 0
    colour = nx.bipartite.color(G)
    sampler = DWBlock(grbm, colour.__getitem__, num_chains=chains,
                      schedule=[1.0] * sweeps, seed=0)
    setup = time.perf_counter() - t0  # no JIT: the set-up is the construction
    sampler.sample()
    t0 = time.perf_counter()
    x = sampler.sample()
    dt = time.perf_counter() - t0
    return {"rate": chains * len(names) * sweeps / dt, "setup": setup,
            "sweeps": sweeps,
            "x": x.numpy().astype(np.float64), "nodes": grbm.nodes, "edges": edges}


def try_peer(fn, *args) -> dict:
    try:
        return fn(*args)
    except Exception as err:  # a peer missing or failing is reported, not fatal
        return {"error": f"{type(err).__name__}: {err}"}


# ------------------------------------------------------------------------------ memory
def lattice_memory(n: int) -> dict:
    G = spin_lattice(n)
    t0 = time.perf_counter()
    model = pb.compile(G, seed=0)
    t_compile = time.perf_counter() - t0
    m = len(model.edges)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    sampler = gibbs_sampler(model)
    gen = torch.Generator().manual_seed(0)
    x = sampler.init(1, gen)
    t0 = time.perf_counter()
    sampler.sweep(x, 10, generator=gen)
    rate = model.n_nodes * 10 / (time.perf_counter() - t0)
    return {"n": model.n_nodes, "m": m, "storage": model.plan.storage,
            "engine": model.plan.engine, "params": params, "buffers": buffers,
            "sampler": sampler.memory_bytes(), "compile": t_compile, "rate": rate,
            "dense_bytes": model.n_nodes ** 2 * 4}


def fmt_rate(r: dict) -> str:
    return f"{r['rate'] / 1e6:.2f}" if "rate" in r else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gibbs.md"))
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch and numba (default: all)")
    args = ap.parse_args()
    if args.threads:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    sweeps1 = 200 if args.quick else 2000  # 1 chain
    sweeps64 = 20 if args.quick else 200  # 64 chains
    torch.manual_seed(0)
    G = spin_lattice(L)
    rows = []
    results: dict = {}
    for chains, sweeps in ((1, sweeps1), (64, sweeps64)):
        ours = bench_ours(G, chains, sweeps)
        ours_t = bench_ours(G, chains, max(1, sweeps // 10), backend="torch")
        th = try_peer(bench_thrml, G, chains, sweeps)
        # dwave's sampler is far slower: fewer sweeps keep the run short (rates per update)
        dw = try_peer(bench_dwave, G, chains, max(1, sweeps // (40 if chains == 1 else 10)))
        results[chains] = (ours, ours_t, th, dw)
        best_peer = max([r["rate"] for r in (th, dw) if "rate" in r], default=float("nan"))
        for name, r in ((f"pgm_boltz ({ours['backend']}, default)", ours),
                        ("pgm_boltz (torch backend)", ours_t),
                        ("thrml (JAX)", th), ("dwave-pytorch-plugin", dw)):
            if "error" in r:
                rows.append(f"| square 64×64 | {chains} | {name} | – | n/a | n/a | n/a | "
                            f"n/a | {r['error'][:80]} |")
                continue
            corr = nn_corr(r["x"], r["nodes"], r["edges"]) if chains > 1 else float("nan")
            rows.append(
                f"| square 64×64 | {chains} | {name} | {r['sweeps']} | {fmt_rate(r)} | "
                f"{r['rate'] / best_peer:.2f} | {r['setup']:.2f} | "
                + (f"{corr:.3f}" if chains > 1 else "–") + " | |")
    # triangular vs square, measured interleaved so that a change of load hits both
    lattices = {"square": G}
    for n_tri in (64, 66):
        lattices[f"tri{n_tri}"] = pb.graphs.triangular_lattice(
            n_tri, n_tri, periodic=True, coupling=COUPLING / 2)
    for chains, sweeps in ((1, sweeps1), (64, sweeps64)):
        rates = interleaved(lattices, chains, sweeps)
        sq = rates["square"]["rate"]
        for key in ("tri64", "tri66"):
            r = rates[key]
            n_tri = int(key[3:])
            rows.append(
                f"| triangular {n_tri}×{n_tri} ({r['blocks']} colours) | {chains} | "
                f"pgm_boltz ({r['backend']}) | {sweeps} | {fmt_rate(r)} | – | "
                f"{r['setup']:.2f} | – | {r['rate'] / sq:.2f} of the square lattice's "
                f"{sq / 1e6:.2f} (interleaved runs) |")
    mem_n = 64 if args.quick else 256
    mem = lattice_memory(mem_n)
    m = mem["m"]
    lines = [
        "# Gibbs sampling speed (CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
        f"threads (torch uses {torch.get_num_threads()}), torch {torch.__version__}; run: "
        "`python benchmarks/gibbs.py" + (" --quick" if args.quick else "")
        + (f" --threads {args.threads}" if args.threads else "") + "`.",
        "",
        "Single-site updates per second (millions; a sweep of a 64×64 lattice is 4096 "
        f"updates per chain), best of {REPEATS} timed runs (dwave: one run) of `sweeps` "
        "sweeps. Ratio: against the faster peer of the same chain count. Setup, seconds: "
        "pgm_boltz compile + sampler + first sweep (numba JIT or cache load); thrml first "
        "call minus a steady call (JAX tracing + XLA compile); dwave construction. "
        "`<s s>`: nearest-neighbour correlation of the final 64-chain states, a check that "
        "all sample the same law (runs with fewer sweeps are less equilibrated).",
        "",
        "| model | chains | library | sweeps | M updates/s | ratio vs best peer | setup s "
        "| <s s> | note |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Memory of a {mem_n}×{mem_n} periodic lattice ({mem['n']} nodes, {m} edges; "
        f"engine {mem['engine']}, {mem['storage']} storage; compile {mem['compile']:.1f} s; "
        f"{mem['rate'] / 1e6:.2f} M updates/s with 1 chain):",
        "",
        "| what | bytes | bytes per edge |",
        "|---|---|---|",
        f"| parameters (bias + weight) | {mem['params']:,} | {mem['params'] / m:.1f} |",
        f"| index buffers (edge_index) | {mem['buffers']:,} | {mem['buffers'] / m:.1f} |",
        f"| parameters + buffers | {mem['params'] + mem['buffers']:,} | "
        f"{(mem['params'] + mem['buffers']) / m:.1f} |",
        f"| sampler couplings (CSR: indptr, indices, weights, edge ids) | "
        f"{mem['sampler']:,} | {mem['sampler'] / m:.1f} |",
        f"| (a dense float32 n×n J, for comparison) | {mem['dense_bytes']:,} | "
        f"{mem['dense_bytes'] / m:.0f} |",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
