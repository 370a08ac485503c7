"""A Boltzmann machine as a discrete latent prior, summed out by Pyro's enumeration.

Every observation ``x_i`` has a latent binary code ``z_i`` in {0,1}^3 whose prior is the
visible distribution of a small RBM (3 visible units, 2 hidden units summed out), so the
codes are correlated a priori:

    z_i ~ BoltzmannDistribution(rbm),        x_i | z_i ~ Normal(z_i . mu, sigma).

With ``config_enumerate`` Pyro's ``TraceEnum_ELBO`` sums ``z_i`` out exactly over the 8
configurations that ``enumerate_support`` lists, so for this model (no continuous
latents, an empty guide) ``-loss`` is the exact marginal log-likelihood

    log p(x) = sum_i log sum_z P(z) Normal(x_i | z . mu, sigma).

The example checks that number against brute force (numpy, every joint state (z, h) of
the RBM enumerated by hand), fits ``mu``, ``sigma`` and the RBM's parameters by SVI on the
enumerated ELBO, and draws fresh data from the fitted model with
``pyro.infer.Predictive``.

Run: python examples/pyro_enumeration.py
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Predictive, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam

import pgm_boltz as pb

TRUE_MU = [1.0, 2.0, -1.5]
TRUE_SIGMA = 0.3


def make_prior(seed: int = 0, scale: float = 1.0) -> pb.BoltzmannMachine:
    """An RBM with 3 binary visible and 2 binary hidden units (float64), weights ~ N(0, scale^2)."""
    return pb.compile(pb.graphs.rbm(3, 2), dtype=torch.float64, seed=seed, init_scale=scale)


def make_model(rbm: pb.BoltzmannMachine, mu: torch.Tensor, sigma: torch.Tensor,
               learn: bool = False):
    """The Pyro model ``model(x=None, n=None)``: z_i ~ rbm, x_i ~ Normal(z_i . mu, sigma).

    With ``learn=True`` the RBM's parameters are registered (``pyro.module``) and ``mu``,
    ``log sigma`` are ``pyro.param`` sites, so SVI trains all of them.
    """

    @config_enumerate
    def model(x: torch.Tensor | None = None, n: int | None = None) -> None:
        if learn:
            pyro.module("prior", rbm)
            loc_w = pyro.param("mu", mu)
            scale = pyro.param("log_sigma", sigma.log()).exp()
        else:
            loc_w, scale = mu, sigma
        n = len(x) if x is not None else n
        with pyro.plate("data", n):
            z = pyro.sample("z", rbm.to_pyro())  # (n, 3), or (8, 1, 3) when enumerated
            pyro.sample("x", dist.Normal((z * loc_w).sum(-1), scale), obs=x)

    return model


def guide(x: torch.Tensor | None = None, n: int | None = None) -> None:
    """Nothing to guide: z is enumerated in the model, mu and sigma are point estimates."""


def brute_force_log_likelihood(rbm: pb.BoltzmannMachine, mu: torch.Tensor,
                               sigma: float, x: torch.Tensor) -> float:
    """``log p(x)`` by listing every joint state (z, h) of the RBM by hand (numpy)."""
    b = rbm.bias.detach().numpy()
    w = rbm.weight.detach().numpy()
    edges = rbm.edge_array
    states = np.array(list(itertools.product([0.0, 1.0], repeat=rbm.n_nodes)))
    logw = states @ b + (states[:, edges[:, 0]] * states[:, edges[:, 1]]) @ w
    log_joint = logw - np.logaddexp.reduce(logw)
    z = states[:, rbm.visible_index]
    xs = x.detach().numpy()[:, None]
    loc = (z @ mu.detach().numpy())[None, :]
    log_lik = -0.5 * ((xs - loc) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
    return float(np.logaddexp.reduce(log_joint[None, :] + log_lik, axis=1).sum())


def run(n_data: int = 400, steps: int = 300, lr: float = 0.05, seed: int = 0,
        verbose: bool = True) -> dict:
    """Check the enumerated marginal likelihood, fit by SVI, draw with Predictive."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    mu = torch.tensor(TRUE_MU, dtype=torch.float64)
    sigma = torch.tensor(TRUE_SIGMA, dtype=torch.float64)
    true_prior = make_prior(seed=1, scale=1.5)
    data = Predictive(make_model(true_prior, mu, sigma), num_samples=1)(n=n_data)["x"][0]

    # 1. the enumerated ELBO is the exact marginal likelihood
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    enum_ll = -elbo.loss(make_model(true_prior, mu, sigma), guide, data)
    brute_ll = brute_force_log_likelihood(true_prior, mu, float(sigma), data)

    # 2. fit mu, sigma and a fresh RBM prior on the enumerated ELBO
    rbm = make_prior(seed=2, scale=0.1)
    fit_model = make_model(rbm, torch.tensor([0.5, 1.0, -0.5], dtype=torch.float64),
                           torch.tensor(1.0, dtype=torch.float64), learn=True)
    svi = SVI(fit_model, guide, Adam({"lr": lr}), loss=TraceEnum_ELBO(max_plate_nesting=1))
    losses = [svi.step(data) for _ in range(steps)]
    mu_fit = pyro.param("mu").detach()
    sigma_fit = float(pyro.param("log_sigma").detach().exp())
    fit_ll = brute_force_log_likelihood(rbm, mu_fit, sigma_fit, data)

    # 3. fresh draws from the fitted model
    draws = Predictive(fit_model, num_samples=50, return_sites=["z", "x"])(n=n_data)
    out = {"enum_log_lik": enum_ll, "brute_log_lik": brute_ll, "losses": losses,
           "fit_log_lik": fit_ll, "mu_fit": mu_fit, "sigma_fit": sigma_fit,
           "data": data, "draws": draws}
    if verbose:
        print(f"{n_data} observations; z ~ RBM(3 visible, 2 hidden), x ~ Normal(z.mu, sigma)")
        print(f"log p(x), TraceEnum_ELBO:  {enum_ll:.6f}")
        print(f"log p(x), brute force:     {brute_ll:.6f}")
        print(f"SVI on the enumerated ELBO, {steps} steps: log p(x) = {fit_ll:.3f} "
              f"(true parameters: {brute_ll:.3f})")
        print(f"  mu = {[round(v, 3) for v in mu_fit.tolist()]} (true {TRUE_MU}), "
              f"sigma = {sigma_fit:.3f} (true {TRUE_SIGMA})")
        print(f"Predictive: z {tuple(draws['z'].shape)}, x {tuple(draws['x'].shape)}; "
              f"mean |x| data {float(data.abs().mean()):.3f}, "
              f"draws {float(draws['x'].abs().mean()):.3f}")
    return out


if __name__ == "__main__":
    run()
