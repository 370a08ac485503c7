"""Train an RBM on scikit-learn's digits by PCD, from the public API.

The same job as ``pgm-boltz demo``, written out: a binary RBM with 64 visible units
(the 8 x 8 digits, binarised) and 16 hidden units, compiled for block Gibbs, trained by
persistent contrastive divergence, scored by its exact held-out NLL, and sampled by
Gibbs chains. Writes ``digits_samples.png`` and ``training_curves.png`` to ``--out``.

    python examples/digits_rbm.py --epochs 40 --out digits_rbm
"""

from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import pgm_boltz as pb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--out", default="digits_rbm")
    args = ap.parse_args()

    train, test = pb.datasets.load_digits(levels=2)  # (1497, 64), (300, 64) codes 0/1
    model = pb.compile(pb.graphs.rbm(64, args.hidden), engine="block-gibbs", seed=0)
    print(model.plan)

    # PCD: 100 persistent chains, SGD with momentum; the learning rate is lowered for
    # the last quarter of the epochs (a second fit call continues the same chains)
    first = max(1, (3 * args.epochs + 3) // 4)
    for i, (epochs, lr) in enumerate([(first, 0.05), (args.epochs - first, 0.01)]):
        if epochs:
            history = model.fit(train, method="pcd", epochs=epochs, lr=lr, batch_size=20,
                                optimizer="sgd", momentum=0.5, n_chains=100,
                                validation_data=test, seed=i)
    print(f"exact held-out NLL: {history[-1]['val_nll']:.3f} nats per digit "
          f"(train {history[-1]['nll']:.3f})")
    with torch.no_grad():
        print(f"check: -mean log P(test) = {float(-model.log_prob(test).mean()):.3f}")

    # 100 Gibbs chains from the data's marginals, 1000 sweeps each
    x = model.sample(100, method="gibbs", steps=1000, seed=0, return_hidden=True)
    h = x[:, model.n_visible:]  # rbm(): visible nodes first, then hidden
    W = model.weight.detach().view(model.n_visible, model.n_hidden)
    probs = torch.sigmoid(h @ W.t() + model.bias.detach()[:model.n_visible])

    os.makedirs(args.out, exist_ok=True)
    fig, axes = plt.subplots(10, 10, figsize=(8, 8))
    for img, ax in zip(probs, axes.ravel()):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.savefig(os.path.join(args.out, "digits_samples.png"), dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["epoch"] for r in history], [r["nll"] for r in history], label="train")
    ax.plot([r["epoch"] for r in history], [r["val_nll"] for r in history], label="held out")
    ax.set_xlabel("epoch")
    ax.set_ylabel("exact NLL (nats per digit)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "training_curves.png"), dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}/digits_samples.png and {args.out}/training_curves.png")


if __name__ == "__main__":
    main()
