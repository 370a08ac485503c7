"""A small structure study on the digits: which graph do the data support?

Four candidate Boltzmann machines for scikit-learn's 8x8 digits (binarised; 1497 rows to
train, 300 held out) are trained on the same data and compared by held-out negative
log-likelihood with ``pb.structure.compare``:

* **RBM**: 64 visible x 16 hidden, every pixel wired to every hidden unit;
* **DBM**: 64 - 16 - 4, a second hidden layer on top;
* **local RBM**: 18 hidden units, two per 4x4 image patch (patches at stride 2), each
  seeing only its patch (288 edges instead of 1024);
* **learned graph**: no hidden units; the pixel-pixel edges ``pb.structure.learn`` finds
  in the training data (L1 pseudo-likelihood screen, refit, Wald test), weights from the
  pseudo-likelihood fit as the starting point.

All four are trained by PCD with the same budget (40 epochs of batches of 20, lr 0.05,
momentum 0.5, 100 persistent chains; ``compare``'s default would train
the three exact-feasible ones by exact maximum likelihood, which costs minutes per model
here; pass ``--exact`` for that). They are scored by exact held-out NLL where the exact
engine can (RBM, DBM, local RBM), and by AIS with the reverse-AIS bracket where it cannot
(the learned graph: its vertex cover is too large). Writes a figure: the table as bars,
and the learned edges drawn on the pixel grid.

    python examples/structure_study.py --out structure_study.png          # minutes on 2 cores
    python examples/structure_study.py --quick --out /tmp/structure.png   # smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch

import pgm_boltz as pb


def local_rbm(patch: int = 4, stride: int = 2, per_patch: int = 2, side: int = 8
              ) -> nx.Graph:
    """Visible pixels ``v{8r+c}`` (as in ``pb.graphs.rbm``); hidden units ``h{k}`` each
    wired to one ``patch x patch`` window (windows at ``stride``)."""
    G = nx.Graph()
    G.add_nodes_from((f"v{i}" for i in range(side * side)), role="visible",
                     domain="binary")
    k = 0
    for r0 in range(0, side - patch + 1, stride):
        for c0 in range(0, side - patch + 1, stride):
            for _ in range(per_patch):
                h = f"h{k}"
                G.add_node(h, role="hidden", domain="binary")
                G.add_edges_from((h, f"v{(r0 + r) * side + c0 + c}")
                                 for r in range(patch) for c in range(patch))
                k += 1
    return G


def draw_learned(ax, G: nx.Graph, side: int = 8) -> None:
    """The learned pixel graph on the image grid: red positive, blue negative couplings,
    width by |W|; node colour by bias."""
    pos = {f"v{i}": (i % side, -(i // side)) for i in range(side * side)}
    weights = np.array([G.edges[e]["weight"] for e in G.edges])
    wmax = np.abs(weights).max() if len(weights) else 1.0
    for (u, v), w in zip(G.edges, weights):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        ax.plot([x0, x1], [y0, y1], color="tab:red" if w > 0 else "tab:blue",
                lw=0.4 + 2.6 * abs(w) / wmax, alpha=0.7, zorder=1)
    xs, ys = zip(*(pos[v] for v in G.nodes))
    ax.scatter(xs, ys, c=[G.nodes[v]["bias"] for v in G.nodes], cmap="Greys_r", s=30,
               edgecolors="k", linewidths=0.4, zorder=2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"learned pixel graph: {G.number_of_edges()} edges\n"
                 "(red W > 0, blue W < 0)", fontsize=9)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short training, small AIS")
    ap.add_argument("--out", type=Path, default=Path("structure_study.png"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact", action="store_true",
                    help="train exact-feasible candidates by exact ML (slow)")
    args = ap.parse_args(argv)
    train, test = pb.datasets.load_digits()

    # pb.structure.learn refuses constant columns (their bias is infinite): learn on the
    # pixels that vary, then add the constant ones back as isolated units whose bias is
    # the clipped log-odds the other models start from
    names = [f"v{i}" for i in range(64)]
    varies = train.min(0) != train.max(0)
    t0 = time.perf_counter()
    learned = pb.structure.learn(train[:, varies], "binary",
                                 names=[v for v, k in zip(names, varies) if k],
                                 progress=False)
    info = learned.graph["structure"]
    p = train.mean(0).clip(1e-3, 1 - 1e-3)
    for i in np.flatnonzero(~varies):
        learned.add_node(names[i], role="visible", domain="binary",
                         bias=float(np.log(p[i] / (1 - p[i]))))
    ordered = nx.Graph()  # nodes in pixel order, like the other candidates
    ordered.add_nodes_from((v, learned.nodes[v]) for v in names)
    ordered.add_edges_from(learned.edges(data=True))
    learned = ordered
    print(f"learned graph: {learned.number_of_edges()} edges among {int(varies.sum())} "
          f"varying pixels in {time.perf_counter() - t0:.1f} s (screen lam="
          f"{info['lam']:.3f}, {info['n_dropped']} dropped by the Wald test, "
          f"alpha={info['alpha']:.3f})")

    candidates = {
        "RBM 64x16": pb.graphs.rbm(64, 16),
        "DBM 64-16-4": pb.graphs.dbm([64, 16, 4]),
        "local RBM (4x4 patches)": local_rbm(),
        "learned pixel graph": learned,
    }
    pcd = {"epochs": 2 if args.quick else 40, "lr": 0.05, "batch_size": 20,
           "momentum": 0.5}
    fit = {"exact": {"epochs": 10 if args.quick else 300, "lr": 0.05}, "pcd": pcd}
    ev = {"n_betas": 300, "n_chains": 50} if args.quick else {}
    table = pb.structure.compare(candidates, train, test, seed=args.seed,
                                 method="auto" if args.exact else "pcd", fit_options=fit,
                                 evaluate_options=ev, as_frame=False, progress=True)
    print(table)
    ind = -np.mean(np.log(np.where(test == 1, train.mean(0).clip(1e-3, 1 - 1e-3),
                                   1 - train.mean(0).clip(1e-3, 1 - 1e-3))).sum(1))
    print(f"independent pixels (training marginals): {ind:.2f} nats")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.2),
                                 gridspec_kw={"width_ratios": [1.6, 1]})
    pb.structure.plot_comparison(table, ax=a0)
    a0.axvline(ind, ls=":", color="k", lw=1)
    a0.set_title(f"digits, held-out NLL (300 rows); dotted: independent pixels "
                 f"{ind:.1f}", fontsize=9)
    draw_learned(a1, learned)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
