"""Colour image patches from a multinary RBM.

Small RGB patches (8×8×3 by default) are cut from the two photographs that ship with
scikit-learn (``load_sample_images``: china.jpg, flower.jpg) and quantised to K levels
per channel (``k = floor(pixel * K / 256)``, K = 16 by default). Every channel of every
pixel is one multinary visible unit with K levels (value ``k/(K-1)``), coupled to binary
hidden units:

    E(v, h) = -v^T W h - b^T v - c^T h,     v_i in {0, 1/(K-1), ..., 1},  h_j in {0, 1}.

Given the hidden units each channel's conditional is ``P(k) ∝ exp(f_i k/(K-1))`` with
``f = b + W h`` (a truncated geometric law, sampled by its closed-form inverse CDF), so
colours and smooth gradients are carried by the hidden units. The model has far too many
states for exact work, so it is trained by PCD. The figure shows real patches next to
generated ones: 1000 sweeps of chains started at random training patches
(``--start marginals``: at the data-fitted independent marginals), which draw
``h ~ P(h | v)`` and set ``v = E[v | h]`` (``--chain gibbs``: draw ``v ~ P(v | h)``, exact
block Gibbs), displayed as the conditional means ``E[v | h]`` of the final hidden state,
as is usual for RBM samples, and as a draw of v given that state. The draw is grainy by
construction: a channel whose mean given h is mid-range has a nearly flat
truncated-geometric conditional, so its level is almost uniform; fed back into exact
Gibbs chains, that noise pulls every chain into the model's largest mode (a teal of
china.jpg) within a few sweeps, which is why the figure uses the mean-field visible step.

Run:  python examples/color_images.py [--quick] [--out color_images.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import pgm_boltz as pb


def load_patches(n: int, size: int, levels: int, seed: int) -> np.ndarray:
    """``n`` random ``size × size × 3`` patches of the scikit-learn sample photographs,
    quantised to ``levels`` codes per channel, as rows of length ``3 size²``
    (pixel-major, RGB innermost)."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, w in enumerate(which):
        img = images[w]
        r = rng.integers(0, img.shape[0] - size + 1)
        c = rng.integers(0, img.shape[1] - size + 1)
        out[i] = img[r:r + size, c:c + size]
    codes = (out.astype(np.int64) * levels) // 256
    return codes.reshape(n, -1).astype(np.float64)


def generate(model: pb.BoltzmannMachine, n: int, steps: int, seed: int,
             start: np.ndarray | None = None, chain: str = "mean-field"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``n`` chains for ``steps`` sweeps on an RBM; returns (the conditional means
    ``E[v | h]`` of the final hidden state, a raw visible sample given it), in [0, 1].

    Chains start at ``start`` (codes (n, n_visible)) or at the data-fitted independent
    marginals (``model.visible_init``). ``chain="gibbs"`` is exact block Gibbs
    (``h ~ P(h | v)``, ``v ~ P(v | h)``); ``chain="mean-field"`` draws ``h ~ P(h | v)`` but
    sets ``v = E[v | h]``, the usual way to display RBM samples: the multinary
    conditional's per-channel noise is not fed back into the hidden units.
    """
    gen = torch.Generator().manual_seed(seed)
    (_, _, W), = model.block_weights()  # (n_visible, n_hidden) for an RBM
    with torch.no_grad():
        W = W.detach()
        b = model.bias.detach()[torch.as_tensor(model.visible_index)]
        c = model.bias.detach()[torch.as_tensor(model.hidden_index)]
        vd, hd = model.visible_domains, model.hidden_domains
        if start is not None:
            v = model.encode_data(start)
        else:
            v = vd.sample(model.visible_init.expand(n, -1).to(model.dtype), gen)
        for _ in range(steps):
            h = hd.sample(c + v @ W, gen)
            f = b + h @ W.T
            v = vd.mean(f) if chain == "mean-field" else vd.sample(f, gen)
        h = hd.sample(c + v @ W, gen)
        f = b + h @ W.T
        return vd.mean(f), vd.sample(f, gen)


def save_grid(real: np.ndarray, means: np.ndarray, raw: np.ndarray, size: int, path: Path,
              cols: int = 8) -> None:
    """Three panels of patches (values in [0, 1]): real, generated means, raw samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def tile(x: np.ndarray) -> np.ndarray:
        return np.clip(pb.datasets.tile(x, (size, size, 3), cols=cols, fill=1.0), 0, 1)

    panels = [("real patches", real), ("generated: E[v | h]", means),
              ("generated: a draw of v given the same h", raw)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.8))
    for ax, (title, x) in zip(axes, panels):
        ax.imshow(tile(x), interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Train, sample and write the figure; returns the arrays and timings.

    >>> # python examples/color_images.py --quick
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds: tiny run")
    ap.add_argument("--size", type=int, default=8, help="patch side in pixels")
    ap.add_argument("--levels", type=int, default=16, help="levels per colour channel")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--patches", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=1000, help="Gibbs sweeps when sampling")
    ap.add_argument("--start", choices=["data", "marginals"], default="data",
                    help="chains start at random training patches (default) or at the "
                         "data-fitted independent marginals")
    ap.add_argument("--chain", choices=["mean-field", "gibbs"], default="mean-field",
                    help="visible update of the sampling chains: E[v | h] or a draw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (these small models run fastest on one)")
    ap.add_argument("--out", type=Path, default=Path("color_images.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.patches, args.epochs, args.hidden, args.steps = 1000, 2, 16, 20
    K, size = args.levels, args.size
    data = load_patches(args.patches, size, K, args.seed)
    n_vis = data.shape[1]
    G = pb.graphs.rbm(n_vis, args.hidden, domain="multinary", levels=K)
    model = pb.compile(G, seed=args.seed)
    print(model.plan)
    t0 = time.time()
    model.fit(data, method="pcd", epochs=args.epochs, lr=args.lr, batch_size=100,
              weight_decay=args.weight_decay,
              n_chains=200, seed=args.seed, progress=not args.quick, monitor_nll=False)
    t_fit = time.time() - t0
    t0 = time.time()
    n_show = 32
    rng = np.random.default_rng(args.seed + 3)
    start = data[rng.choice(len(data), n_show, replace=False)] if args.start == "data" \
        else None
    means, raw = generate(model, n_show, args.steps, args.seed + 1, start, args.chain)
    t_sample = time.time() - t0
    real = data[np.random.default_rng(args.seed + 2).choice(len(data), n_show, replace=False)]
    real_v = real / (K - 1)
    save_grid(real_v, means.double().numpy(), raw.double().numpy(), size, args.out)
    # colour statistics: channel means and the mean absolute neighbour difference
    def stats(x: np.ndarray) -> tuple[np.ndarray, float]:
        p = x.reshape(-1, size, size, 3)
        return p.mean(axis=(0, 1, 2)), float(np.abs(np.diff(p, axis=2)).mean())
    m_real, d_real = stats(data[:2000] / (K - 1))
    m_gen, d_gen = stats(means.double().numpy())
    print(f"fit {t_fit:.1f}s, sampling {t_sample:.1f}s; wrote {args.out}")
    print(f"RGB means real {np.round(m_real, 3)}, generated {np.round(m_gen, 3)}; "
          f"neighbour |diff| real {d_real:.3f}, generated {d_gen:.3f}")
    return {"real": real_v, "generated": means.double().numpy(),
            "raw": raw.double().numpy(), "fit_seconds": t_fit, "sample_seconds": t_sample}


if __name__ == "__main__":
    main()
