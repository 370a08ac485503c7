"""Structure learning: probability of exact recovery against sample count, and time.

Two Ising models with known sparse graphs, sampled exactly by pgm_boltz's exact engine:

* **grid**: a 6x6 open square lattice, ferromagnetic couplings J = 0.4, no field (36
  spins, 60 edges; correlated enough that L1 neighbourhood selection picks up
  next-nearest neighbours);
* **rrg**: a random 3-regular graph on 20 spins, couplings of random sign with
  |J| in [0.4, 0.8], fields in [-0.3, 0.3] (30 edges).

For each sample count N and each of ``--reps`` data sets, every method estimates the edge
set; the tables give the fraction of exact recoveries (no edge missing, none extra) and
the time per estimate. Methods:

* ``pgm_boltz plm`` / ``logrise`` / ``rise``: ``pb.structure.learn`` with its defaults
  (penalty from the data, AND rule, refit, Wald elimination); no knowledge of the truth;
* ``sklearn L1, rule``: scikit-learn's ``LogisticRegression(penalty="l1",
  solver="liblinear")`` per spin (neighbourhood selection, Ravikumar et al. 2010) at the
  Bonferroni level ``Phi^{-1}(1 - 0.05 / (2 n (n-1))) / sqrt(N)`` (``C = 1 / (lam N)``),
  AND rule;
* ``sklearn L1, CV``: ``LogisticRegressionCV`` (L1, liblinear, 5 folds, 10 values of C)
  per spin, AND rule (the data-driven textbook choice; run at the smaller N only);
* ``ConIII PL + oracle threshold``: ConIII's ``Pseudo`` solver (unregularised
  pseudo-likelihood, Aurell & Ekeberg 2012) with edges where ``|J_ij| > kappa / 2``,
  ``kappa`` the true smallest coupling (the threshold of Lokhov et al. 2018; it uses the
  truth);
* ``pgm_boltz plm + oracle threshold``: the same threshold on pgm_boltz's refitted
  weights (screen, refit, drop ``|W| < kappa/2``), for a like-for-like comparison.

Run: ``python benchmarks/structure.py`` (``--quick`` for a smoke run). Writes
``benchmarks/results/structure.md`` and ``benchmarks/results/structure_recovery.png``.
ConIII 3.0.1 needs ``numpy<2`` and old scipy names; the script shims ``scipy.exp`` and
friends before importing it (install with ``pip install coniii --no-build-isolation``
after ``pip install multiprocess``; without ConIII its rows are skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import torch

import pgm_boltz as pb
from pgm_boltz.structure._data import normal_quantile

RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- models


def grid_model() -> nx.Graph:
    G = pb.graphs.lattice(6, 6, coupling=0.4)
    for v in G.nodes:
        G.nodes[v]["bias"] = 0.0
    return G


def rrg_model(n: int = 20, seed: int = 0) -> nx.Graph:
    rng = np.random.default_rng(seed)
    H = nx.random_regular_graph(3, n, seed=seed)
    G = nx.Graph()
    G.add_nodes_from(sorted(H.nodes), role="visible", domain="spin")
    for v in G.nodes:
        G.nodes[v]["bias"] = float(rng.uniform(-0.3, 0.3))
    for u, v in H.edges:
        G.add_edge(u, v, weight=float(rng.choice([-1, 1]) * rng.uniform(0.4, 0.8)))
    return G


# --------------------------------------------------------------------------- methods


def _and_edges(W: np.ndarray) -> set:
    sel = W != 0
    sym = np.triu(sel & sel.T, 1)
    return {frozenset(e) for e in np.argwhere(sym).tolist()}


def ours(method: str, threshold=None):
    def run(X, kappa):
        kw = {} if threshold is None else {"threshold": threshold(kappa)}
        G = pb.structure.learn(X, "spin", method=method, progress=False, **kw)
        return {frozenset(e) for e in G.edges}
    return run


def _l1_logistic(**kw):
    """scikit-learn's L1 logistic regression (``l1_ratio=1`` from 1.8 on, where
    ``penalty`` is deprecated)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    new = tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 8)
    if "Cs" in kw:
        extra = {"l1_ratios": [1.0], "use_legacy_attributes": False} if new \
            else {"penalty": "l1"}
        return LogisticRegressionCV(**kw, **extra)
    return LogisticRegression(**kw, **({"l1_ratio": 1.0} if new else {"penalty": "l1"}))


def sklearn_rule(X, kappa):
    """L1 logistic neighbourhood selection at the Bonferroni level. In scikit-learn's
    parameterisation (0/1 targets, coefficient 2 J for +-1 features) a null
    coefficient's score has standard deviation about sqrt(Var(y)) / sqrt(N) <= 0.5 /
    sqrt(N), so the level is ``lam = 0.5 Phi^{-1}(1 - 0.05 / (2 n (n-1))) / sqrt(N)``,
    ``C = 1 / (lam N)``: the same z-score threshold as pgm_boltz's rule with c = 1."""
    N, n = X.shape
    lam = 0.5 * normal_quantile(1.0 - 0.05 / (2 * n * (n - 1))) / math.sqrt(N)
    W = np.zeros((n, n))
    for i in range(n):
        Z = np.delete(X, i, axis=1)
        clf = _l1_logistic(solver="liblinear", C=1.0 / (lam * N), tol=1e-6,
                           max_iter=1000, intercept_scaling=100.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(Z, X[:, i] > 0)
        W[i, np.arange(n) != i] = clf.coef_[0]
    return _and_edges(W)


def sklearn_cv(X, kappa):
    N, n = X.shape
    W = np.zeros((n, n))
    for i in range(n):
        Z = np.delete(X, i, axis=1)
        clf = _l1_logistic(Cs=10, cv=5, solver="liblinear", tol=1e-5, max_iter=1000,
                           intercept_scaling=100.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(Z, X[:, i] > 0)
        W[i, np.arange(n) != i] = np.ravel(clf.coef_)[:n - 1]
    return _and_edges(W)


def _import_coniii():
    import scipy

    for name in ("exp", "cosh", "sinh", "tanh", "log", "sqrt", "zeros", "ones", "array",
                 "dot", "sum", "prod", "mean", "outer", "arange", "linspace", "pi", "inf",
                 "isnan", "diag", "eye", "log2", "abs"):
        if not hasattr(scipy, name) and hasattr(np, name):
            setattr(scipy, name, getattr(np, name))
    from coniii.solvers import Pseudo

    return Pseudo


def coniii_oracle(X, kappa):
    Pseudo = _import_coniii()
    n = X.shape[1]
    solver = Pseudo(X.astype(np.int64), iprint=False)
    with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
        warnings.simplefilter("ignore")
        stdout, sys.stdout = sys.stdout, devnull
        try:
            mult = solver.solve()
        finally:
            sys.stdout = stdout
    J = np.zeros((n, n))
    J[np.triu_indices(n, 1)] = mult[n:]
    return {frozenset(e) for e in np.argwhere(np.abs(J) > kappa / 2).tolist()}


# --------------------------------------------------------------------------- runner


def run_model(name, G, sizes, reps, methods, cv_max_n, progress):
    model = pb.compile(G, seed=0, dtype=torch.float64)
    assert model.plan.engine == "exact", model.plan
    index = {v: i for i, v in enumerate(model.visible_nodes)}
    truth = {frozenset((index[u], index[v])) for u, v in G.edges}
    kappa = min(abs(G.edges[e]["weight"]) for e in G.edges)
    res = {m: {} for m in methods}
    for N in sizes:
        datasets = [model.sample(N, seed=10_000 * N + r).numpy() for r in range(reps)]
        for m, fn in methods.items():
            if m.startswith("sklearn L1, CV") and cv_max_n < N:
                continue
            ok, times, miss, extra = [], [], [], []
            for X in datasets:
                t0 = time.perf_counter()
                try:
                    est = fn(X, kappa)
                except ImportError:
                    break
                times.append(time.perf_counter() - t0)
                ok.append(est == truth)
                miss.append(len(truth - est))
                extra.append(len(est - truth))
            if ok:
                res[m][N] = {"success": float(np.mean(ok)), "time": float(np.median(times)),
                             "miss": float(np.mean(miss)), "extra": float(np.mean(extra))}
            if progress:
                r = res[m].get(N)
                print(f"  {name} N={N:6d} {m:34s} "
                      + (f"P(exact)={r['success']:.2f} t={r['time']:.3f}s "
                         f"miss={r['miss']:.2f} extra={r['extra']:.2f}" if r else "skipped"),
                      flush=True)
    return res, len(truth), G.number_of_nodes()


def run_scale(methods, side: int = 10, N: int = 5000, repeats: int = 3):
    """A larger graph: a side x side grid (J = 0.4, exact log Z out of reach), N rows
    from long Gibbs runs; best-of-``repeats`` time and whether the edge set is exact."""
    G = pb.graphs.lattice(side, side, coupling=0.4)
    model = pb.compile(G, seed=0)
    X = model.sample(N, seed=1, steps=3000).numpy()
    index = {v: i for i, v in enumerate(model.visible_nodes)}
    truth = {frozenset((index[u], index[v])) for u, v in G.edges}
    out = {}
    for m, fn in methods.items():
        if m.startswith("sklearn L1, CV"):
            continue
        times = []
        for _ in range(repeats if not m.startswith("ConIII") else 1):
            t0 = time.perf_counter()
            est = fn(X, 0.4)
            times.append(time.perf_counter() - t0)
        out[m] = {"time": min(times), "exact": est == truth, "miss": len(truth - est),
                  "extra": len(est - truth)}
        print(f"  scale {side}x{side} N={N} {m:34s} t={min(times):.2f}s "
              f"exact={est == truth} miss={len(truth - est)} extra={len(est - truth)}",
              flush=True)
    return {"side": side, "N": N, "edges": len(truth), "rows": out}


def needed(res_m: dict, level: float = 0.9):
    """Smallest N from which P(exact) stays >= level."""
    ns = sorted(res_m)
    for k, N in enumerate(ns):
        if all(res_m[M]["success"] >= level for M in ns[k:]):
            return N
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 20)
    sizes = {"grid": [400, 1600] if args.quick else [200, 400, 800, 1600, 3200, 6400],
             "rrg": [200, 800] if args.quick else [100, 200, 400, 800, 1600, 3200]}
    cv_max = 800 if args.quick else 1600
    methods = {
        "pgm_boltz plm": ours("plm"),
        "pgm_boltz logrise": ours("logrise"),
        "pgm_boltz rise": ours("rise"),
        "sklearn L1, rule": sklearn_rule,
        "sklearn L1, CV": sklearn_cv,
        "ConIII PL + oracle threshold": coniii_oracle,
        "pgm_boltz plm + oracle threshold": ours("plm", threshold=lambda k: k / 2),
    }
    try:
        _import_coniii()
        coniii_note = "ConIII 3.0.1 (scipy names shimmed)"
    except Exception as err:  # pragma: no cover - depends on the environment
        methods.pop("ConIII PL + oracle threshold")
        coniii_note = f"ConIII not available ({type(err).__name__}: {err})"
    # warm-up (imports, first calls)
    warm = pb.compile(rrg_model(), seed=0).sample(300, seed=0).numpy()
    for fn in methods.values():
        fn(warm, 0.4)
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    results = {}
    for name, G in (("grid", grid_model()), ("rrg", rrg_model())):
        results[name] = run_model(name, G, sizes[name], reps, methods, cv_max, True)
    scale = None if args.quick else run_scale(methods)
    wall = time.perf_counter() - t_start
    load1 = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    write_plot(results, args.out / "structure_recovery.png")
    (args.out / "structure.json").write_text(json.dumps(
        {name: {"methods": {m: {str(N): v for N, v in r.items()} for m, r in res.items()},
                "edges": ne, "nodes": nn}
         for name, (res, ne, nn) in results.items()} | {"scale": scale}, indent=1))
    write_md(results, args, reps, wall, load0, load1, coniii_note,
             args.out / "structure.md", scale)
    print((args.out / "structure.md").read_text())


def write_plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    titles = {"grid": "6x6 grid, J = 0.4 (60 edges)",
              "rrg": "random 3-regular, 20 spins, mixed signs (30 edges)"}
    styles = {"pgm_boltz plm": ("tab:blue", "-", "o"),
              "pgm_boltz logrise": ("tab:cyan", "-", "s"),
              "pgm_boltz rise": ("tab:purple", "-", "^"),
              "sklearn L1, rule": ("tab:orange", "--", "o"),
              "sklearn L1, CV": ("tab:red", "--", "s"),
              "ConIII PL + oracle threshold": ("tab:green", ":", "o"),
              "pgm_boltz plm + oracle threshold": ("tab:gray", ":", "x")}
    for ax, (name, (res, _, _)) in zip(axes, results.items()):
        for m, r in res.items():
            if not r:
                continue
            ns = sorted(r)
            c, ls, mk = styles.get(m, (None, "-", "o"))
            ax.plot(ns, [r[N]["success"] for N in ns], ls=ls, marker=mk, color=c, label=m)
        ax.set_xscale("log")
        ns_all = sorted({N for r in res.values() for N in r})
        ax.set_xticks(ns_all)
        ax.set_xticklabels([str(N) for N in ns_all])
        ax.minorticks_off()
        ax.set_xlabel("samples N")
        ax.set_title(titles[name], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("P(exact recovery)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)


def write_md(results, args, reps, wall, load0, load1, coniii_note, path, scale=None):
    lines = ["# Structure learning: exact recovery and time", "",
             f"`python benchmarks/structure.py{' --quick' if args.quick else ''}`; "
             f"{reps} data sets per N (exact samples), torch {torch.__version__}, "
             f"{args.threads} torch thread(s), {platform.machine()}, "
             f"{os.cpu_count()} CPUs; load average {load0[0]:.1f} before, "
             f"{load1[0]:.1f} after; {wall:.0f} s in all. {coniii_note}.", "",
             "P(exact) is the fraction of data sets whose estimated edge set equals the "
             "true one; time is the median seconds per estimate (one thread). Methods "
             "marked *oracle* threshold the couplings at half the true smallest |J|.", ""]
    for name, (res, n_edges, n_nodes) in results.items():
        ns = sorted({N for r in res.values() for N in r})
        lines += [f"## {name}: {n_nodes} spins, {n_edges} edges", "",
                  "| method | " + " | ".join(f"N={N}" for N in ns)
                  + " | N for P>=0.9 | time at largest N (s) |",
                  "|---|" + "---:|" * (len(ns) + 2)]
        for m, r in res.items():
            if not r:
                continue
            cells = [f"{r[N]['success']:.2f}" if N in r else "–" for N in ns]
            need = needed(r)
            big = max(r)
            lines.append(f"| {m} | " + " | ".join(cells)
                         + f" | {need if need else '>' + str(max(r))} | "
                           f"{r[big]['time']:.3f} (N={big}) |")
        lines += ["", "Time per estimate (median seconds):", "",
                  "| method | " + " | ".join(f"N={N}" for N in ns) + " |",
                  "|---|" + "---:|" * len(ns)]
        for m, r in res.items():
            if r:
                lines.append(f"| {m} | " + " | ".join(
                    f"{r[N]['time']:.3f}" if N in r else "–" for N in ns) + " |")
        lines += ["", "Mean missing / extra edges:", "",
                  "| method | " + " | ".join(f"N={N}" for N in ns) + " |",
                  "|---|" + "---:|" * len(ns)]
        for m, r in res.items():
            if r:
                lines.append(f"| {m} | " + " | ".join(
                    f"{r[N]['miss']:.1f} / {r[N]['extra']:.1f}" if N in r else "–"
                    for N in ns) + " |")
        lines.append("")
    if scale is not None:
        lines += [f"## scale: {scale['side']}x{scale['side']} grid, J = 0.4 "
                  f"({scale['edges']} edges), N = {scale['N']} rows from Gibbs runs "
                  "(3000 sweeps)", "",
                  "| method | seconds (best of 3; ConIII once) | exact | missing / extra |",
                  "|---|---:|---|---:|"]
        for m, r in scale["rows"].items():
            lines.append(f"| {m} | {r['time']:.2f} | {'yes' if r['exact'] else 'no'} | "
                         f"{r['miss']} / {r['extra']} |")
        lines.append("")
    lines += ["![recovery](structure_recovery.png)", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
