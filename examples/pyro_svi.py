"""The seed's two-spin machine fitted with Pyro's SVI.

Patterns (-1,-1), (-1,1), (1,-1), (1,1) are observed 3, 1, 2, 4 times. A fully visible
two-spin machine, ``log P(x) = b1 x1 + b2 x2 + W x1 x2 - log Z``, has three parameters for
three free probabilities, so maximum likelihood reproduces the data frequencies P0
exactly. Solving ``log P0(x) = c + b1 x1 + b2 x2 + W x1 x2`` over the four patterns gives

    b1 = 1/4 sum_x x1 log P0(x),   b2 = 1/4 sum_x x2 log P0(x),   W = 1/4 sum_x x1 x2 log P0(x).

Here the machine is a Pyro likelihood, ``pyro.sample("x", model.to_pyro(), obs=data)`` in a
plate over the rows, its parameters registered with ``pyro.module``; SVI with an empty
guide (no latent variables) maximises the exact log-likelihood and lands on those values.

Run: python examples/pyro_svi.py
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

import pgm_boltz as pb
from pgm_boltz.examples_seed import COUNTS, PATTERNS, seed_data


def exact_ml() -> dict[str, float]:
    """The maximum-likelihood parameters in closed form (the model reproduces P0)."""
    total = sum(COUNTS)
    logp = [math.log(c / total) for c in COUNTS]
    return {
        "b1": sum(x1 * lp for (x1, _), lp in zip(PATTERNS, logp)) / 4,
        "b2": sum(x2 * lp for (_, x2), lp in zip(PATTERNS, logp)) / 4,
        "W": sum(x1 * x2 * lp for (x1, x2), lp in zip(PATTERNS, logp)) / 4,
    }


def run(steps: int = 600, lr: float = 0.05, verbose: bool = True) -> dict:
    """Fit the two-spin machine by SVI; return fitted and exact ML parameters."""
    pyro.clear_param_store()
    data = torch.as_tensor(seed_data(), dtype=torch.float64)
    model = pb.compile(pb.graphs.fully_connected(2, domain="spin"), dtype=torch.float64,
                       seed=0)

    def pyro_model(data: torch.Tensor) -> None:
        pyro.module("boltzmann", model)
        with pyro.plate("rows", len(data)):
            pyro.sample("x", model.to_pyro(), obs=data)

    def guide(data: torch.Tensor) -> None:  # nothing latent: the ELBO is log p(data)
        pass

    svi = SVI(pyro_model, guide, Adam({"lr": lr}), loss=Trace_ELBO())
    losses = [svi.step(data) for _ in range(steps)]
    fitted = {"b1": model.bias[0].item(), "b2": model.bias[1].item(),
              "W": model.weight[0].item()}
    ml = exact_ml()
    with torch.no_grad():
        p = model.to_pyro().log_prob(torch.tensor(PATTERNS, dtype=torch.float64)).exp()
    out = {"fitted": fitted, "exact_ml": ml, "losses": losses, "p_fit": p.tolist(),
           "p0": [c / sum(COUNTS) for c in COUNTS],
           "max_error": max(abs(fitted[k] - ml[k]) for k in ml)}
    if verbose:
        print(f"SVI, {steps} steps of Adam(lr={lr}); final loss -log p(data) = "
              f"{losses[-1]:.5f}")
        print("parameter   SVI      exact ML")
        for k in ml:
            print(f"{k:9}  {fitted[k]:7.4f}  {ml[k]:7.4f}")
        print("pattern    P0     P (SVI)")
        for pat, a, b in zip(PATTERNS, out["p0"], out["p_fit"]):
            print(f"{pat!s:9}  {a:.3f}  {b:.4f}")
    return out


if __name__ == "__main__":
    run()
