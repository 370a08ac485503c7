"""The seed example: two spins, Hebbian parameters, then exact maximum likelihood.

Patterns (-1,-1), (-1,1), (1,-1), (1,1) are observed 3, 1, 2, 4 times. The Hebbian rule
gives b1 = <x1> = 0.2, b2 = <x2> = 0.0, W = <x1 x2> = 0.4. Exact training then drives
KL(P0 || P) to zero: a fully visible two-spin machine has three parameters and P0 three
free probabilities, so the fitted model reproduces P0 exactly.

Run: python examples/seed_2d.py, or pgm-boltz seed
"""

from __future__ import annotations

import numpy as np
import torch

import pgm_boltz as pb

PATTERNS = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
COUNTS = [3, 1, 2, 4]


def seed_data() -> np.ndarray:
    """The ten observed rows."""
    return np.array([p for p, c in zip(PATTERNS, COUNTS) for _ in range(c)], dtype=float)


def distribution(model: pb.BoltzmannMachine) -> np.ndarray:
    """P(x) of the four patterns under the model (exact)."""
    with torch.no_grad():
        return model.log_prob(np.array(PATTERNS, dtype=float)).exp().double().numpy()


def kl(p0: np.ndarray, p: np.ndarray) -> float:
    """KL(P0 || P) = sum_x P0(x) log(P0(x) / P(x))."""
    return float(np.sum(p0 * np.log(p0 / p)))


def run(epochs: int = 500, lr: float = 0.05, verbose: bool = True) -> dict:
    """Hebbian parameters, then exact training; returns the table's numbers."""
    data = seed_data()
    p0 = np.array(COUNTS, dtype=float) / sum(COUNTS)
    G = pb.hopfield.hebbian(data, names=["x1", "x2"])
    model = pb.compile(G, dtype=torch.float64)
    hebb = {"b1": model.bias[0].item(), "b2": model.bias[1].item(), "W": model.weight[0].item()}
    p_hebb = distribution(model)
    model.fit(data, method="exact", epochs=epochs, lr=lr, init_bias="keep", progress=False,
              seed=0)
    p_fit = distribution(model)
    fitted = {"b1": model.bias[0].item(), "b2": model.bias[1].item(),
              "W": model.weight[0].item()}
    out = {"p0": p0, "p_hebbian": p_hebb, "p_fit": p_fit, "kl_hebbian": kl(p0, p_hebb),
           "kl_fit": kl(p0, p_fit), "hebbian": hebb, "fitted": fitted}
    if verbose:
        print(format_table(out))
    return out


def format_table(out: dict) -> str:
    """The seed's table: P0, P (Hebbian), P (trained) per pattern, and both KLs."""
    lines = ["pattern    P0      P_hebbian  P_trained",
             "---------  ------  ---------  ---------"]
    for pat, a, b, c in zip(PATTERNS, out["p0"], out["p_hebbian"], out["p_fit"]):
        lines.append(f"{pat!s:9}  {a:.4f}  {b:.4f}     {c:.4f}")
    h, f = out["hebbian"], out["fitted"]
    lines += [
        f"Hebbian parameters: b1={h['b1']:.3f} b2={h['b2']:.3f} W={h['W']:.3f}"
        f"   KL(P0||P) = {out['kl_hebbian']:.5f}",
        f"Trained parameters: b1={f['b1']:.3f} b2={f['b2']:.3f} W={f['W']:.3f}"
        f"   KL(P0||P) = {out['kl_fit']:.2e}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run()
