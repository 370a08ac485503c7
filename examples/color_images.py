"""32×32 colour tiles: five RBMs against two baselines, in bits per dimension.

Data: ``pb.datasets.colour_tiles(size=32, levels=K)`` — 32×32 RGB tiles cut from the
photographs that ship with scikit-image (astronaut, chelsea, coffee, rocket; nothing is
downloaded), each channel quantised to K codes (``--levels``, default 16), split into
train and test **by image region** (the right quarter of every photograph is held out,
so no pixel is in both sets). Every tile is ``D = 3·32·32 = 3072`` codes.

Models (all ``pb.graphs.rbm(3072, H, ...)``, trained by PCD-1 with Adam through
``model.fit``, persistent chains started at training tiles, ``chain_init="data"``; the
per-model settings are in ``RECIPES``):

- ``whitened Gaussian``: ``domain="gaussian"`` on the dequantised codes whitened with the
  tile Gaussian's mean and covariance, ``z = Σ^{-1/2} (k + u - μ)``
  (``TileGaussian.whiten``, ZCA): a Gaussian–Bernoulli RBM whose visible layer carries
  the pixels' full covariance, scored as ``-log p(z) + ½ log|Σ|``; at zero couplings it is
  the tile Gaussian. Precisions fixed at 1.
- ``multinary + precision``: multinary visible units with a learned quadratic self-term
  (``precision=q0``, ``q0`` from the training values' variance), so a channel's
  conditional is a discretised Gaussian ``P(k) ∝ exp(f v_k - q v_k²/2)`` that can peak at
  a mid-range level; binary hidden; the centred gradient (``centering=True``).
- ``Gaussian visible``: ``domain="gaussian"`` (a Gaussian–Bernoulli RBM with learned
  precisions) on the dequantised codes ``y = (k + u - m) / s`` (``u ~ U[0, 1)``,
  per-column means ``m``, one global scale ``s``, so every bin has width ``1/s``).
- ``multinary``: plain multinary visible units (conditional ``P(k) ∝ exp(f k/(K-1))``,
  monotone in k), binary hidden; centred.
- ``multinary hidden``: multinary visible and multinary hidden units (``H/2`` hidden
  units with 4 levels; the model family of arXiv 2011.13509); centred.

The log-precisions get their own Adam step size (``lr_precision``); ``--train-tempering``
trains by PT-PCD instead (``--replicas`` levels, centring kept).

Samples: ``model.sample(n, method="tempering", init=model.persistent_chains, ...)`` —
parallel-tempering chains continued from the model's persistent chains; the figure
shows each chain's draw and the conditional mean ``E[v | h]`` of its hidden state.

Scores, on the held-out tiles and on the same discretisation for every model:

- test NLL in **bits per dimension** ``nll / (D ln 2)`` with ``log Z`` bracketed by AIS
  (lower) and reverse AIS (upper), ``pgm_boltz.inference.log_partition_bracket``;
  ``NLL = mean F(v) + log Z``. For Gaussian visible units the number is an **upper
  bound** on the discrete NLL: the expected negative log-density of uniformly
  dequantised test tiles plus ``D log s`` (the bin width, ``baselines.discrete_nll_bound``);
- baselines (``pgm_boltz.baselines.baseline_bits_per_dim``): independent per-column
  categorical (exact) and one full-covariance Gaussian over the tile (the same
  dequantisation bound); uniform = ``log2 K``;
- sample diversity (``baselines.sample_diversity``, in code units): median distance of a
  generated tile to its nearest training tile and to the nearest other generated tile,
  next to the same numbers for real test tiles, and the adversarial accuracy AA_TS
  against the test tiles.

Output: ``--out`` (a PNG: real test tiles next to each model's samples, the learning
curves, the diversity panel) and the markdown table next to it (same name, ``.md``).

Run::

    python examples/color_images.py --out examples/figures/color_images.png   # full
    python examples/color_images.py --quick --out /tmp/colour.png               # smoke run

Measured on 2 CPU cores (quiet machine): ``--quick`` (16×16 tiles, H = 8, 2 epochs)
about 4 s; the full run (defaults) 667 s — the whitened model's 100 epochs 28 s, the
precision model's 200 epochs 164 s and its AIS bracket 45 s, the Gaussian model's 300
epochs 93 s, the plain multinary and multinary-hidden models' 300 epochs 128 s and 85 s.
The total is printed and written into the table file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import pgm_boltz as pb
from pgm_boltz.baselines import (
    IndependentCategorical,
    TileGaussian,
    baseline_bits_per_dim,
    bits_per_dim,
    discrete_nll_bound,
    sample_diversity,
)
from pgm_boltz.inference import log_partition_bracket

MODEL_NAMES = ("whitened Gaussian", "multinary + precision", "Gaussian visible",
               "multinary", "multinary hidden")
#: The models whose visible units are real-valued: scored by the dequantisation bound.
DENSITY_MODELS = ("whitened Gaussian", "Gaussian visible")


# --------------------------------------------------------------------------------------
# data for the Gaussian model
# --------------------------------------------------------------------------------------

class GaussianScaling:
    """Codes ↔ standardised real values for Gaussian visible units.

    ``y = (k + u - m) / s``: ``m`` the per-column mean of the dequantised training codes,
    ``s`` one global standard deviation (so the bin width in ``y`` units is ``1/s`` in
    every column)."""

    def __init__(self, train_codes: np.ndarray) -> None:
        x = train_codes.astype(np.float64) + 0.5
        self.mean = x.mean(axis=0)
        self.scale = float(np.sqrt(((x - self.mean) ** 2).mean() + 1.0 / 12.0))

    @property
    def bin_width(self) -> float:
        return 1.0 / self.scale

    def dequantise(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(codes.shape)
        return (codes.astype(np.float64) + u - self.mean) / self.scale

    def fractional_codes(self, y: np.ndarray) -> np.ndarray:
        """Real values as fractional codes (the bin ``[k, k+1)`` shows as ``k``)."""
        return np.asarray(y, dtype=np.float64) * self.scale + self.mean - 0.5

    def codes(self, y: np.ndarray, levels: int) -> np.ndarray:
        k = np.floor(np.asarray(y, dtype=np.float64) * self.scale + self.mean)
        return np.clip(k, 0, levels - 1).astype(np.int64)

    def discrete_bound(self, density_nll: float, dims: int) -> float:
        """The bound on the discrete NLL from ``E_u[-log p(y)]`` (bins of width ``1/s``)."""
        return discrete_nll_bound(density_nll, dims, self.bin_width)


class WhitenedScaling:
    """Codes ↔ ZCA-whitened real values: ``z = Σ^{-1/2} (k + u - μ)`` with the tile
    Gaussian's ``μ, Σ`` (``TileGaussian.whiten``). The whitened model's density of a tile
    is ``p(z) |Σ|^{-1/2}`` in code units (bin width 1), so its discrete-NLL bound is
    ``E_u[-log p(z)] + ½ log|Σ|``."""

    def __init__(self, train_codes: np.ndarray, levels: int) -> None:
        self.gaussian = TileGaussian(levels).fit(train_codes)

    def dequantise(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.gaussian.whiten(codes + rng.random(codes.shape))

    def fractional_codes(self, z: np.ndarray) -> np.ndarray:
        return self.gaussian.unwhiten(z) - 0.5

    def codes(self, z: np.ndarray, levels: int) -> np.ndarray:
        return np.clip(np.floor(self.gaussian.unwhiten(z)), 0, levels - 1).astype(np.int64)

    def discrete_bound(self, density_nll: float, dims: int) -> float:
        return density_nll + 0.5 * self.gaussian.log_det


Scaling = GaussianScaling | WhitenedScaling


def scaling_for(name: str, train_codes: np.ndarray, levels: int) -> Scaling | None:
    """How a model's visible values are made from codes (None: the codes themselves)."""
    if name == "whitened Gaussian":
        return WhitenedScaling(train_codes, levels)
    if name == "Gaussian visible":
        return GaussianScaling(train_codes)
    return None


# --------------------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------------------

#: How each model is trained by default (``--epochs`` / ``--lr`` override the epochs and
#: the weights' step size of all of them). All by PCD-1 with Adam; the log-precisions get
#: their own, larger step size (``lr_precision``) so they can rise while the couplings
#: move slowly. ``centering``: the centred gradient (``fit(..., centering=True)``) for the
#: models whose visible values are multinary levels in [0, 1] (mean ≈ 0.4): without it
#: they stay at the independent model (3.77 bits/dim after 100 epochs for the precision
#: model); the Gaussian models' data are already centred (standardised or whitened).
#: The whitened model keeps its precisions at 1 (no ``lr_precision``): the tile
#: Gaussian's covariance already sets the noise, and learning them on 2,426 tiles
#: over-fits (one per principal component: 1.75 bits/dim after 60 epochs against 1.62
#: with them fixed).
RECIPES: dict[str, dict] = {
    "whitened Gaussian": dict(lr=1e-4, epochs=100, centering=False),
    "multinary + precision": dict(lr=3e-4, lr_precision=3e-3, epochs=200, centering=True),
    "Gaussian visible": dict(lr=1e-4, lr_precision=3e-3, epochs=300, centering=False),
    "multinary": dict(lr=3e-4, epochs=300, centering=True),
    "multinary hidden": dict(lr=3e-4, epochs=300, centering=True),
}


def data_precision(train_codes: np.ndarray, K: int) -> float:
    """The precision of the independent Gaussian of the training values ``k / (K-1)``:
    ``1 / mean_i var_i``, a multinary+precision model's starting self-term (the visible
    biases are then set from the data means by ``fit``)."""
    v = train_codes.astype(np.float64) / (K - 1)
    return float(1.0 / v.var(axis=0).mean())


def build(name: str, D: int, H: int, K: int, train_codes: np.ndarray
          ) -> tuple[object, int, str]:
    """The graph, its number of hidden units and a short description of the hidden
    layer."""
    if name == "multinary + precision":
        return pb.graphs.rbm(D, H, domain="multinary", levels=K,
                             precision=data_precision(train_codes, K)), H, "binary"
    if name in DENSITY_MODELS:   # standardised / whitened data: precision 1 = unit variance
        return pb.graphs.rbm(D, H, domain="gaussian", precision=1.0), H, "binary"
    if name == "multinary":
        return pb.graphs.rbm(D, H, domain="multinary", levels=K), H, "binary"
    if name == "multinary hidden":
        Hm = max(1, H // 2)
        return pb.graphs.rbm(D, Hm, domain="multinary", levels=K,
                             hidden_domain="multinary", hidden_levels=4), Hm, "4 levels"
    raise ValueError(name)


def recipe(name: str, args: argparse.Namespace) -> dict:
    """The model's training settings after the command line's overrides."""
    r = dict(RECIPES[name])
    if args.epochs:
        r["epochs"] = args.epochs
    if args.lr:
        r["lr"] = args.lr
    return r


def train_model(model: pb.BoltzmannMachine, name: str, data: np.ndarray, args: argparse.Namespace
                ) -> tuple[float, str, str]:
    """Fit by PCD-1 with the model's recipe (PT-PCD with ``--train-tempering``);
    returns (seconds, method, note)."""
    r = recipe(name, args)
    options: dict = dict(method="pcd", epochs=r["epochs"], lr=r["lr"],
                         batch_size=args.batch, weight_decay=args.weight_decay,
                         n_chains=args.chains, chain_init="data", seed=args.seed,
                         progress=args.progress, monitor_nll=False)
    # one Adam, two step sizes: couplings and biases at lr, log-precisions faster
    groups: list[dict] = [{"params": [model.bias, model.weight]}]
    method = f"Adam lr {r['lr']:g}"
    if model.log_precision is not None and r.get("lr_precision"):
        groups.append({"params": [model.log_precision], "lr": r["lr_precision"]})
        method += f" (log-precision {r['lr_precision']:g})"
    options["optimizer"] = torch.optim.Adam(groups, lr=r["lr"])
    options["centering"] = r["centering"]
    if args.train_tempering:
        options.update(sampler="tempering",
                       sampler_options=dict(n_replicas=args.replicas, backend="torch"))
        method = f"PT-PCD ({args.replicas} replicas), {r['epochs']} ep., " + method
    else:
        method = f"PCD-1, {r['epochs']} ep., " + method
    method += ", centred" if r["centering"] else ""
    note = ""
    t0 = time.perf_counter()
    try:
        model.fit(data, **options)
    except pb.DivergenceError as e:   # keeps the last finite parameters
        note = f"diverged ({e}); last finite parameters kept"
    return time.perf_counter() - t0, method, note


def test_bits(model: pb.BoltzmannMachine, name: str, train_in: np.ndarray,
              test_codes: np.ndarray, scaling: Scaling | None,
              args: argparse.Namespace) -> tuple[float, float, float]:
    """(lower, upper) test bits/dim from the AIS / reverse-AIS bracket of log Z, and the
    seconds it took."""
    D = test_codes.shape[1]
    t0 = time.perf_counter()
    br = log_partition_bracket(model, train_in, n_chains=args.ais_chains,
                               n_betas=args.ais_betas, seed=args.seed,
                               progress=args.progress)
    with torch.no_grad():
        if scaling is None:
            free = float(model.free_energy(test_codes).double().mean())
        else:   # E_u[-log p(y)] over a few dequantisation draws
            rng = np.random.default_rng(args.seed + 17)
            free = float(np.mean([
                float(model.free_energy(scaling.dequantise(test_codes, rng)).double().mean())
                for _ in range(args.dequant_draws)]))
    out = []
    for log_z in (br.lower.value, br.upper.value):
        nll = free + log_z
        if scaling is not None:
            nll = scaling.discrete_bound(nll, D)
        out.append(bits_per_dim(nll, D))
    return out[0], out[1], time.perf_counter() - t0


def generate(model: pb.BoltzmannMachine, n: int, scaling: Scaling | None,
             K: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``n`` tiles from parallel-tempering chains continued from the model's persistent
    (PCD) chains: the visible draws (codes) and the conditional means ``E[v | h]`` of
    their final hidden states (fractional codes), the noise-free tile each hidden state
    stands for."""
    chains = model.persistent_chains
    init = None if chains is None else chains[torch.arange(n) % len(chains)].clone()
    x = model.sample(n, method="tempering", steps=args.sample_steps, seed=args.seed + 1,
                     n_replicas=args.replicas, backend="torch", progress=args.progress,
                     return_hidden=True, init=init)
    vi, hi = model.index("visible"), model.index("hidden")
    with torch.no_grad():   # an RBM's visible fields depend on the hidden values only
        hidden = torch.zeros(len(x), model.n_nodes, dtype=model.dtype, device=x.device)
        hidden.index_copy_(1, hi, model.hidden_domains.encode(x[:, hi]).to(model.dtype))
        q = model.precisions_at("visible") if model.log_precision is not None else None
        mean = model.visible_domains.mean(model.fields(hidden, vi), q)
    v = x[:, vi].detach().cpu().double().numpy()
    mean = mean.detach().cpu().double().numpy()
    if scaling is not None:
        return scaling.codes(v, K), scaling.fractional_codes(mean)
    return np.rint(v).astype(np.int64), mean * (K - 1)   # values k/(K-1) → codes


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------

def markdown_table(rows: list[dict], base: dict, real_div: dict, cat_div: dict, K: int,
                   n_train: int, n_test: int, size: int) -> str:
    head = ("| model | K | H (hidden) | training | train s | test bits/dim (AIS … reverse AIS) "
            "| NN gen→train | NN gen→gen | AA_TS test (real / synth) |\n"
            "|---|---|---|---|---:|---|---:|---:|---|")
    lines = [head]
    for r in rows:
        d = r["diversity"]
        bound = " (upper bound: dequantised density)" if r["name"] in DENSITY_MODELS \
            else ""
        if r["bits_lower"] > r["bits_upper"] + 1e-3:
            bound += " **inverted: AIS / reverse AIS not converged, not a bracket**"
        note = f"; {r['note']}" if r["note"] else ""
        lines.append(
            f"| {r['name']} | {K} | {r['H']} ({r['hidden']}) | {r['method']}{note} | "
            f"{r['train_s']:.0f} | {r['bits_lower']:.4f} … {r['bits_upper']:.4f}{bound} | "
            f"{d['nn_gen_train']:.1f} | {d['nn_gen_gen']:.1f} | {d['aats_test']:.2f} "
            f"({d['aa_test_real']:.2f} / {d['aa_test_synthetic']:.2f}) |")
    lines.append(f"| independent categorical (add-1) | {K} | – | counts | 0 | "
                 f"{base['categorical']:.4f} (exact) | {cat_div['nn_gen_train']:.1f} | "
                 f"{cat_div['nn_gen_gen']:.1f} | {cat_div['aats_test']:.2f} "
                 f"({cat_div['aa_test_real']:.2f} / {cat_div['aa_test_synthetic']:.2f}) |")
    lines.append(f"| tile Gaussian (Ledoit-Wolf) | {K} | – | closed form | 0 | "
                 f"{base['gaussian_bound']:.4f} (upper bound: dequantised density) | | | |")
    lines.append(f"| uniform | {K} | – | – | – | {base['uniform']:.4f} | | | |")
    lines.append(f"| *real test tiles (reference)* | {K} | | | | | "
                 f"{real_div['nn_test_train']:.1f} | {real_div['nn_test_test']:.1f} | |")
    return "\n".join(lines) + (
        f"\n\n{n_train} training / {n_test} test tiles ({size}×{size}×3, D = "
        f"{3 * size * size}). Bits/dim: "
        "held-out NLL / (D ln 2), log Z bracketed by AIS (left) and reverse AIS (right). "
        "NN distances: median Euclidean distance in code units to the nearest training "
        "tile / nearest other generated tile (for the reference row: a test tile's "
        "nearest training tile / nearest other test tile). AA_TS: nearest-neighbour "
        "adversarial accuracy against the test tiles (0.5 = indistinguishable; read the "
        "halves).\n")


def figure(path: Path, data: pb.datasets.ColourTiles, real: np.ndarray, rows: list[dict],
           real_div: dict, n_show: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = [("real test tiles", real[:n_show])]
    for r in rows:
        grids.append((f"{r['name']}: PT draws", r["samples"][:n_show]))
        grids.append((f"{r['name']}: E[v | h] of the same chains' hidden states",
                      r["means"][:n_show]))
    n_panels = len(grids)
    fig = plt.figure(figsize=(13, 1.15 * n_panels + 4.5))
    gs = fig.add_gridspec(n_panels + 2, 2, height_ratios=[1] * n_panels + [3.2, 0.05])
    for i, (title, codes) in enumerate(grids):
        ax = fig.add_subplot(gs[i, :])
        ax.imshow(data.grid(codes, cols=n_show))
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    ax = fig.add_subplot(gs[n_panels, 0])
    for r in rows:
        rec = [h["recon_error"] for h in r["history"] if "recon_error" in h]
        if rec:
            ax.plot(np.arange(1, len(rec) + 1), np.asarray(rec) / rec[0], label=r["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction error / first epoch's")
    ax.set_title("learning curves (PCD)", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(gs[n_panels, 1])
    labels = ["real test"] + [r["name"] for r in rows]
    to_train = [real_div["nn_test_train"]] + [r["diversity"]["nn_gen_train"] for r in rows]
    to_self = [real_div["nn_test_test"]] + [r["diversity"]["nn_gen_gen"] for r in rows]
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, to_train, 0.4, label="to nearest training tile")
    ax.bar(pos + 0.2, to_self, 0.4, label="to nearest other tile of the same set")
    ax.set_xticks(pos, labels, rotation=15, fontsize=8)
    ax.set_ylabel("median NN distance (codes)")
    ax.set_title("diversity", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (well under a minute)")
    ap.add_argument("--out", type=Path, default=Path("color_images.png"))
    ap.add_argument("--size", type=int, default=32, help="tile side (pixels)")
    ap.add_argument("--levels", type=int, default=16, help="codes per channel, K")
    ap.add_argument("--hidden", type=int, default=256, help="hidden units H")
    ap.add_argument("--epochs", type=int, default=0,
                    help="epochs for every model (0 = each model's recipe, RECIPES)")
    ap.add_argument("--lr", type=float, default=0.0,
                    help="step size of the weights for every model (0 = the recipes')")
    ap.add_argument("--train-tempering", action="store_true",
                    help="train by PT-PCD (persistent chains moved by parallel tempering; "
                         "--replicas times the sampling work) instead of PCD-1")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--chains", type=int, default=100, help="persistent chains")
    ap.add_argument("--replicas", type=int, default=6, help="tempering levels per chain")
    ap.add_argument("--train-tiles", type=int, default=0, help="0 = all")
    ap.add_argument("--test-tiles", type=int, default=0, help="0 = all")
    ap.add_argument("--samples", type=int, default=100, help="generated tiles per model")
    ap.add_argument("--sample-steps", type=int, default=150)
    ap.add_argument("--ais-chains", type=int, default=50)
    ap.add_argument("--ais-betas", type=int, default=2000)
    ap.add_argument("--dequant-draws", type=int, default=4)
    ap.add_argument("--models", default=",".join(MODEL_NAMES),
                    help="comma-separated subset of: " + ", ".join(MODEL_NAMES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0 = torch's default count, set explicitly)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.hidden, args.epochs = 16, 8, 2
        args.train_tiles, args.test_tiles = 200, 100
        args.chains, args.replicas, args.samples, args.sample_steps = 50, 3, 40, 10
        args.ais_chains, args.ais_betas, args.dequant_draws = 8, 30, 1
        args.progress = False
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    names = [s.strip() for s in args.models.split(",") if s.strip()]
    for n in names:
        if n not in MODEL_NAMES:
            raise SystemExit(f"unknown model {n!r}; choose from {MODEL_NAMES}")
    torch.set_num_threads(args.threads or torch.get_num_threads())
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()
    K = args.levels
    data = pb.datasets.colour_tiles(size=args.size, levels=K, seed=args.seed)
    train = data.train[:args.train_tiles] if args.train_tiles else data.train
    test = data.test[:args.test_tiles] if args.test_tiles else data.test
    D = train.shape[1]
    print(f"{len(train)} training / {len(test)} test tiles of {args.size}×{args.size}×3, "
          f"K = {K}")

    base = baseline_bits_per_dim(train, test, levels=K)
    n_div = min(args.samples, len(train), len(test))
    real_div = sample_diversity(test, train, test, n=n_div)
    cat_samples = IndependentCategorical(K).fit(train).sample(args.samples, seed=args.seed)
    cat_div = sample_diversity(cat_samples, train, test, n=n_div)
    print(f"baselines (bits/dim): categorical {base['categorical']:.4f}, tile Gaussian "
          f"(bound) {base['gaussian_bound']:.4f}, uniform {base['uniform']:.4f}")

    rows: list[dict] = []
    for name in names:
        G, H, hidden = build(name, D, args.hidden, K, train)
        model = pb.compile(G, seed=args.seed)
        scaling = scaling_for(name, train, K)
        train_in = train if scaling is None else \
            scaling.dequantise(train, np.random.default_rng(args.seed + 5))
        print(f"\n== {name}: {model.plan.engine}, H = {H} ({hidden})")
        secs, method, note = train_model(model, name, train_in, args)
        print(f"   trained in {secs:.1f} s ({method}) {note}")
        lo, hi, t_ais = test_bits(model, name, train_in, test, scaling, args)
        print(f"   test bits/dim {lo:.4f} … {hi:.4f}  (AIS bracket, {t_ais:.1f} s)")
        t0 = time.perf_counter()
        samples, means = generate(model, args.samples, scaling, K, args)
        t_sample = time.perf_counter() - t0
        div = sample_diversity(samples, train, test, n=n_div)
        print(f"   {args.samples} PT samples in {t_sample:.1f} s; NN gen→train "
              f"{div['nn_gen_train']:.1f}, gen→gen {div['nn_gen_gen']:.1f}, AA_TS "
              f"{div['aats_test']:.2f}")
        rows.append(dict(name=name, H=H, hidden=hidden, method=method, note=note,
                         train_s=secs, bits_lower=lo, bits_upper=hi, ais_s=t_ais,
                         sample_s=t_sample, samples=samples, means=means, diversity=div,
                         history=list(model.history or [])))

    real = test[np.random.default_rng(args.seed + 2).choice(len(test), min(16, len(test)),
                                                            replace=False)]
    n_show = min(16, len(real), args.samples)
    figure(args.out, data, real, rows, real_div, n_show)
    total = time.perf_counter() - t_start
    table = markdown_table(rows, base, real_div, cat_div, K, len(train), len(test),
                           args.size)
    table += (f"\nSettings: {'--quick' if args.quick else 'full'}; H = {args.hidden}, "
              f"batch {args.batch}, {args.chains} persistent chains, weight decay "
              f"{args.weight_decay:g}, {args.replicas} tempering levels; samples: "
              f"{args.samples} PT chains × "
              f"{args.sample_steps} sweeps; AIS: {args.ais_chains} chains × "
              f"{args.ais_betas} betas each way; torch threads {torch.get_num_threads()}. "
              f"Total time {total:.0f} s.\n")
    table_path = args.out.with_suffix(".md")
    table_path.write_text(table)
    print("\n" + table)
    print(f"wrote {args.out} and {table_path}")
    return dict(figure=args.out, table=table_path, rows=rows, baselines=base,
                real_diversity=real_div, real=real, seconds=total,
                generated=rows[0]["samples"] if rows else None)


if __name__ == "__main__":
    main()
