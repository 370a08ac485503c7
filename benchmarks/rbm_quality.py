"""RBM quality: exact held-out NLL of a 64 x 16 binary RBM on the binarised digits.

The standard split (``pgm_boltz.datasets.load_digits``: rows shuffled with
``numpy.random.default_rng(0)``, first 1497 train, last 300 test). Same budget for both
stochastic learners: 20 epochs, batch 10, learning rate 0.05.

- scikit-learn ``BernoulliRBM`` (PCD-1 with batch-size chains, plain SGD, zero initial
  biases); its weights are loaded into a pgm_boltz model (``components_``,
  ``intercept_hidden_``, ``intercept_visible_``) to score its exact held-out NLL.
- pgm_boltz ``fit(method="pcd", optimizer="sgd")`` with its defaults: visible biases
  initialised at the data's log-odds, 100 persistent chains (``max(batch, 100)``), the
  Rao-Blackwellised estimate.
- pgm_boltz ``fit(method="exact")`` for 300 full-batch epochs (Adam, lr 0.05).

The exact NLL sums the 64 visible units out analytically and enumerates the 2^16 hidden
states, so every number is exact (no AIS).

    python benchmarks/rbm_quality.py          # full run, writes benchmarks/results/rbm_quality.md
    python benchmarks/rbm_quality.py --quick  # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

import pgm_boltz as pb

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "rbm_quality.md")
N_HID = 16


def exact_test_nll(model, test: np.ndarray) -> float:
    """Mean exact NLL (nats per digit) of the test rows."""
    with torch.no_grad():
        return float(-model.log_prob(test).mean())


def sklearn_nll(train: np.ndarray, test: np.ndarray, epochs: int, seed: int) -> float:
    """Train scikit-learn's BernoulliRBM and score it exactly through a pgm_boltz model."""
    from sklearn.neural_network import BernoulliRBM

    sk = BernoulliRBM(n_components=N_HID, learning_rate=0.05, batch_size=10,
                      n_iter=epochs, random_state=seed).fit(train)
    model = pb.compile(pb.graphs.rbm(64, N_HID), dtype=torch.float64)
    with torch.no_grad():
        # components_ is (n_hidden, n_visible); the model's W is (n_visible, n_hidden)
        model.weight.copy_(torch.as_tensor(sk.components_.T.reshape(-1)))
        model.bias[:64] = torch.as_tensor(sk.intercept_visible_)
        model.bias[64:] = torch.as_tensor(sk.intercept_hidden_)
    return exact_test_nll(model, test)


def pcd_nll(train: np.ndarray, test: np.ndarray, epochs: int, seed: int) -> float:
    """pgm_boltz PCD with the same epochs, batch and learning rate."""
    model = pb.compile(pb.graphs.rbm(64, N_HID), engine="block-gibbs", seed=seed)
    model.fit(train, method="pcd", epochs=epochs, batch_size=10, lr=0.05,
              optimizer="sgd", seed=seed, progress=False, monitor_nll=False)
    return exact_test_nll(model, test)


def exact_nll(train: np.ndarray, test: np.ndarray, epochs: int) -> float:
    """pgm_boltz exact maximum likelihood (full batch, fit's defaults)."""
    model = pb.compile(pb.graphs.rbm(64, N_HID), seed=0)
    model.fit(train, method="exact", epochs=epochs, lr=0.05, seed=0, progress=False)
    return exact_test_nll(model, test)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the stochastic runs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test = pb.datasets.load_digits(levels=2)
    epochs = 2 if args.quick else 20
    exact_epochs = 10 if args.quick else 300
    seeds = list(range(1 if args.quick else args.seeds))
    rows = []
    t = time.perf_counter()
    sk = [sklearn_nll(train, test, epochs, s) for s in seeds]
    t_sk = (time.perf_counter() - t) / len(seeds)
    t = time.perf_counter()
    ours = [pcd_nll(train, test, epochs, s) for s in seeds]
    t_ours = (time.perf_counter() - t) / len(seeds)
    t = time.perf_counter()
    ex = exact_nll(train, test, exact_epochs)
    t_ex = time.perf_counter() - t
    fmt = lambda v: ", ".join(f"{x:.2f}" for x in v)
    rows.append(f"| scikit-learn BernoulliRBM (PCD-1, {epochs} epochs, batch 10, lr 0.05) | "
                f"{np.mean(sk):.2f} | {fmt(sk)} | {t_sk:.1f} |")
    rows.append(f"| pgm_boltz PCD (same epochs, batch, lr; default chains and biases) | "
                f"{np.mean(ours):.2f} | {fmt(ours)} | {t_ours:.1f} |")
    rows.append(f"| pgm_boltz exact ML ({exact_epochs} full-batch epochs) | {ex:.2f} | "
                f"{ex:.2f} | {t_ex:.1f} |")
    indep = independent_nll(train, test)
    lines = [
        f"64x{N_HID} binary RBM on the binarised digits (1497 train / 300 test); exact "
        f"held-out NLL in nats per digit (lower is better); seeds {seeds}; "
        f"{args.threads} torch thread(s).",
        "",
        "| learner | held-out NLL (mean) | per seed | seconds per run |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"PCD gain over scikit-learn at the same budget: {np.mean(sk) - np.mean(ours):.2f} "
        f"nats (target >= 0.3). Exact ML: {ex:.2f} nats (target <= 18.3). Independent "
        f"pixels at the training marginals: {indep:.2f} nats.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.quick:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write("# RBM quality (benchmarks/rbm_quality.py)\n\n" + table + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


def independent_nll(train: np.ndarray, test: np.ndarray) -> float:
    """Held-out NLL of independent pixels at the (clipped) training marginals."""
    p = np.clip(train.mean(0), 1e-3, 1 - 1e-3)
    return float(-(test * np.log(p) + (1 - test) * np.log1p(-p)).sum(1).mean())


if __name__ == "__main__":
    sys.exit(main())
