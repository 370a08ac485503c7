"""Bayesian Boltzmann machine: Normal priors on the parameters, posterior by NUTS.

A fully connected machine on three spins has 3 biases and 3 weights,
``log P(x | b, W) = sum_i b_i x_i + sum_{i<j} W_ij x_i x_j - log Z(b, W)``. Data are exact
draws from a "true" machine. The Pyro model puts ``Normal(0, 1)`` priors on every
parameter and scores the rows with the *exact* likelihood through
``pb.pyro.boltzmann_with_params`` (differentiable in the sampled ``b`` and ``W``: the
gradient of ``log Z`` is the model's exact moments), so NUTS samples the posterior.

The report gives each parameter's posterior mean and standard deviation, next to the
maximum-likelihood estimate and the Laplace (large-sample) standard deviation
``sqrt(diag(I^-1) / N)``, where the Fisher information ``I`` is the covariance of the
sufficient statistics ``(x_i, x_i x_j)`` under the fitted machine (exact, by enumerating the
8 states). With enough data the posterior mean sits on the ML estimate and its spread on
the Laplace value.

Run: python examples/pyro_bayesian.py
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS
from pyro.ops.stats import effective_sample_size

import pgm_boltz as pb

TRUE_BIAS = [0.5, -0.3, 0.2]
TRUE_WEIGHT = [0.8, -0.4, 0.3]


def make_machine() -> pb.BoltzmannMachine:
    """The three-spin, fully connected machine (float64), parameters at the true values."""
    model = pb.compile(pb.graphs.fully_connected(3, domain="spin"), dtype=torch.float64,
                       seed=0)
    with torch.no_grad():
        model.bias.copy_(torch.tensor(TRUE_BIAS, dtype=torch.float64))
        model.weight.copy_(torch.tensor(TRUE_WEIGHT, dtype=torch.float64))
    return model


def names(model: pb.BoltzmannMachine) -> list[str]:
    """Parameter labels in (bias..., weight...) order, e.g. ``b[v0]``, ``W[v0,v1]``."""
    return [f"b[{v}]" for v in model.nodes] + [f"W[{u},{v}]" for u, v in model.edges]


def maximum_likelihood(model: pb.BoltzmannMachine, data: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ML estimate ``(b, W)`` by L-BFGS on the exact mean log-likelihood (concave)."""
    b = torch.zeros(model.n_nodes, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(len(model.edges), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([b, w], max_iter=200, tolerance_grad=1e-10,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -pb.pyro.boltzmann_with_params(model, b, w).log_prob(data).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return b.detach(), w.detach()


def laplace_sd(model: pb.BoltzmannMachine, b: torch.Tensor, w: torch.Tensor,
               n: int) -> torch.Tensor:
    """``sqrt(diag(Cov[T]^-1) / n)`` with ``T = (x_i, x_i x_j)`` under the machine (b, w)."""
    d = pb.pyro.boltzmann_with_params(model, b, w)
    states = d.enumerate_support()
    with torch.no_grad():
        p = d.log_prob(states).exp()
    u, v = model.edge_index
    T = torch.cat([states, states[:, u] * states[:, v]], dim=1)
    mean = p @ T
    cov = (T - mean).T @ ((T - mean) * p[:, None])
    return (torch.linalg.inv(cov).diagonal() / n).sqrt()


def run(n_data: int = 2000, warmup: int = 300, samples: int = 500, seed: int = 0,
        verbose: bool = True, progress: bool = False) -> dict:
    """Draw data, run NUTS, and report posterior mean/sd next to ML and Laplace values.

    ``progress`` shows Pyro's progress bar during sampling.
    """
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = make_machine()
    data = model.sample(n_data, seed=seed).to(torch.float64)
    m_nodes, m_edges = model.n_nodes, len(model.edges)

    def bayesian_model(data: torch.Tensor) -> None:
        b = pyro.sample("bias", dist.Normal(torch.zeros(m_nodes, dtype=torch.float64), 1.0)
                        .to_event(1))
        w = pyro.sample("weight", dist.Normal(torch.zeros(m_edges, dtype=torch.float64), 1.0)
                        .to_event(1))
        with pyro.plate("rows", len(data)):
            pyro.sample("x", pb.pyro.boltzmann_with_params(model, b, w), obs=data)

    mcmc = MCMC(NUTS(bayesian_model), num_samples=samples, warmup_steps=warmup,
                disable_progbar=not progress)
    mcmc.run(data)
    post = mcmc.get_samples()
    draws = torch.cat([post["bias"], post["weight"]], dim=1)  # (samples, n_params)
    ess = effective_sample_size(draws.unsqueeze(0), chain_dim=0, sample_dim=1)
    b_ml, w_ml = maximum_likelihood(model, data)
    ml = torch.cat([b_ml, w_ml])
    out = {"names": names(model), "true": torch.tensor(TRUE_BIAS + TRUE_WEIGHT),
           "mean": draws.mean(0), "sd": draws.std(0), "ml": ml,
           "laplace_sd": laplace_sd(model, b_ml, w_ml, n_data), "ess": ess,
           "n_data": n_data}
    if verbose:
        print(f"NUTS posterior of a 3-spin machine, {n_data} rows, {warmup} warm-up + "
              f"{samples} draws")
        print("parameter    true    post. mean  post. sd   ML       Laplace sd  ESS")
        for i, name in enumerate(out["names"]):
            print(f"{name:11} {float(out['true'][i]):6.3f}  {float(out['mean'][i]):9.4f}  "
                  f"{float(out['sd'][i]):8.4f}  {float(ml[i]):7.4f}  "
                  f"{float(out['laplace_sd'][i]):9.4f}  {float(ess[i]):5.0f}")
    return out


if __name__ == "__main__":
    run()
