"""Gaussian-Bernoulli RBM features for digit classification, next to the Bernoulli RBM.

The data of scikit-learn's RBM example (the 8x8 digits and their one-pixel shifts,
5 x 1797 rows, 80/20 split with random_state=0, float32). Each RBM gets the input it is
made for:

- ``BernoulliRBM`` (``pgm_boltz.sklearn``, same algorithm as scikit-learn's) on pixels
  scaled to [0, 1], with the example's settings (100 hidden units, learning_rate=0.06,
  10 passes, batch 10);
- ``GaussianBernoulliRBM`` on standardised pixels (``StandardScaler`` fitted on the
  training rows), 100 hidden units, 10 passes, batch 10, its defaults otherwise (PCD-1
  with 100 chains, Adam at learning_rate=0.01, learned precisions), and once with
  ``learn_precision=False``.

Then ``LogisticRegression(C=6000, newton-cg)`` on the hidden probabilities (the
example's classifier, as in ``benchmarks/sklearn_rbm.py``), and on the pixels for
reference. Reported per learner: RBM fit time (median over seeds), microseconds per
minibatch step, test accuracy (mean and per seed) and, for the Gaussian RBMs, the
held-out mean log-density of the standardised test pixels (AIS log Z, 100 chains x
1000 temperatures; a density in standardised units, not comparable with the Bernoulli
RBM's log-probabilities). scikit-learn has no Gaussian-Bernoulli RBM to compare with
(its maintainers declined to add one).

    python benchmarks/sklearn_gaussian.py          # writes benchmarks/results/sklearn_gaussian.md
    python benchmarks/sklearn_gaussian.py --quick  # smoke run (1 seed, 2 passes, no AIS)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_rbm import classifier, nudged_digits

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "sklearn_gaussian.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 passes, no AIS")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    from sklearn import __version__ as sk_version
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from pgm_boltz.sklearn import BernoulliRBM, GaussianBernoulliRBM

    seeds = [0] if args.quick else list(range(args.seeds))
    n_iter = 2 if args.quick else 10
    X, y = nudged_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    Ztr, Zte = scaler.transform(Xtr), scaler.transform(Xte)
    steps = n_iter * int(np.ceil(len(Xtr) / 10))
    common = dict(n_components=100, n_iter=n_iter, batch_size=10)
    learners = [
        ("BernoulliRBM on [0, 1] pixels (learning_rate=0.06)", Xtr, Xte,
         lambda s: BernoulliRBM(learning_rate=0.06, random_state=s, **common)),
        ("GaussianBernoulliRBM on standardised pixels (defaults)", Ztr, Zte,
         lambda s: GaussianBernoulliRBM(random_state=s, **common)),
        ("GaussianBernoulliRBM, learn_precision=False", Ztr, Zte,
         lambda s: GaussianBernoulliRBM(learn_precision=False, random_state=s, **common)),
    ]
    for _, tr, _, make in learners:   # warm-up: numba kernels compiled or loaded
        make(0).set_params(n_iter=1).fit(tr[:20])
    load0 = os.getloadavg()
    rows = []
    for name, tr, te, make in learners:
        fits, accs, lls = [], [], []
        for s in seeds:
            rbm = make(s)
            t0 = time.perf_counter()
            rbm.fit(tr)
            fits.append(time.perf_counter() - t0)
            clf = classifier().fit(rbm.transform(tr), ytr)
            accs.append(float(clf.score(rbm.transform(te), yte)))
            if isinstance(rbm, GaussianBernoulliRBM) and not args.quick:
                rbm.set_params(score_method="ais")
                lls.append(rbm.score(te))
            print(f"{name}, seed {s}: fit {fits[-1]:.2f} s, accuracy {accs[-1]:.4f}"
                  + (f", held-out log-density {lls[-1]:.2f}" if lls else ""), flush=True)
        sem = float(np.std(accs, ddof=1) / np.sqrt(len(accs))) if len(accs) > 1 else None
        rows.append((name, statistics.median(fits), 1e6 * statistics.median(fits) / steps,
                     float(np.mean(accs)), sem, accs, lls))
    raw01 = classifier().set_params(C=100.0).fit(Xtr, ytr).score(Xte, yte)
    rawz = classifier().set_params(C=100.0).fit(Ztr, ytr).score(Zte, yte)
    load1 = os.getloadavg()

    lines = [
        "Digits of scikit-learn's RBM example (nudged digits, 7188 train / 1797 test rows, "
        f"64 features, float32): RBM(n_components=100, n_iter={n_iter}, batch_size=10) + "
        f"LogisticRegression(C=6000, newton-cg); {steps} minibatch steps per fit; torch "
        f"{torch.__version__} with {torch.get_num_threads()} thread(s), scikit-learn "
        f"{sk_version}, {platform.machine()}.",
        "",
        "| RBM | fit s (median) | us / step | test accuracy (mean ± s.e.) | per seed | "
        "held-out log-density, standardised units (AIS; mean) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, fit_s, us, acc, sem, accs, lls in rows:
        acc_s = f"{acc:.4f} ± {sem:.4f}" if sem is not None else f"{acc:.4f}"
        ll_s = f"{np.mean(lls):.2f}" if lls else "n/a"
        lines.append(f"| {name} | {fit_s:.2f} | {us:.1f} | {acc_s} | "
                     f"{', '.join(f'{a:.4f}' for a in accs)} | {ll_s} |")
    lines += [
        "",
        f"Logistic regression (C=100) on the pixels: {raw01:.4f} ([0, 1]), {rawz:.4f} "
        "(standardised). No scikit-learn Gaussian-Bernoulli RBM exists to compare with.",
        f"Load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in load0)}, at end "
        f"{tuple(round(x, 2) for x in load1)}; {os.cpu_count()} CPUs.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write and not args.quick:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
