"""Drawing samples: exact draws from the plan's exact engine, or MCMC chains driven
through the sampler seam (:mod:`pgm_boltz.samplers`).

``sample(model, n, method=...)``: ``"exact"`` draws ``n`` independent exact samples;
``"gibbs"`` (or any registered sampler name, e.g. ``"tempering"``) runs ``n`` independent
chains for ``steps`` sweeps and returns their final states. Chains start from the
visible marginals the model learned from its training data (``model.visible_init``)
with hidden units drawn given them, else uniformly over each unit's levels.

>>> import pgm_boltz as pb
>>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
>>> sample(m, 8, method="gibbs", steps=10, seed=0).shape
torch.Size([8, 4])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._validation import (
    check_bool,
    check_int,
    check_kwargs,
    check_seed,
    make_generator,
    progress_bar,
)
from ..errors import ArgumentError
from ..samplers import Sampler, make_sampler, sampler_names, sampler_options

if TYPE_CHECKING:
    from ..model import EnergyModel

__all__ = ["DEFAULT_STEPS", "run_chains", "sample", "start_states"]

#: Sweeps ``model.sample`` runs by default (enough to mix the small models of the tests).
DEFAULT_STEPS = 1000


def start_states(model: EnergyModel, sampler: Sampler, n: int,
                 generator: torch.Generator | None,
                 visible_values: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` chain starts: visible units at ``visible_values`` (n, n_visible) when given,
    else from the learned data marginals (``model.visible_init``), and hidden units from
    their conditionals given them; uniform over each unit's levels before any fit."""
    x = sampler.init(n, generator, visible_values=visible_values)
    if visible_values is None:
        if model.visible_init is None:
            return x
        f = model.visible_init.to(model.device, model.dtype).expand(n, -1)
        x[:, model.index("visible")] = model.visible_domains.sample(
            f, generator, model.precisions_at("visible"))
    if model.n_hidden:
        make_sampler(model, "block-gibbs", clamped=model.visible_index).sweep(
            x, 1, generator=generator)
    return x


def run_chains(model: EnergyModel, n: int, steps: int = DEFAULT_STEPS,
               seed: int | None = None, init: torch.Tensor | None = None,
               progress: bool = False, sampler: str = "gibbs",
               **sampler_options: Any) -> torch.Tensor:
    """Run ``n`` independent chains for ``steps`` sweeps; return the final joint values
    (n, n_nodes). ``init`` gives the starting joint values (n, n_nodes); ``sampler`` is
    a registered sampler name, ``sampler_options`` its options (e.g. ``backend``).

    >>> import pgm_boltz as pb
    >>> m = pb.compile(pb.graphs.rbm(4, 3), seed=0)
    >>> run_chains(m, 8, steps=10, seed=0).shape
    torch.Size([8, 7])
    """
    n = check_int("n", n, 1)
    steps = check_int("steps", steps, 1)
    check_bool("progress", progress)
    gen = make_generator(check_seed(seed), model.device)
    s = make_sampler(model, sampler, **sampler_options)
    if init is not None:
        if not torch.is_tensor(init) or tuple(init.shape) != (n, model.n_nodes):
            raise ArgumentError(f"init must be a tensor of shape ({n}, {model.n_nodes}), "
                                f"got {getattr(init, 'shape', type(init).__name__)}")
        x = init.to(model.device, model.dtype).clone()
    else:
        x = start_states(model, s, n, gen)
    chunk = max(1, min(steps, 50))
    bar = progress_bar(steps, sampler, progress)
    done = 0
    try:
        while done < steps:
            k = min(chunk, steps - done)
            s.sweep(x, k, generator=gen)
            done += k
            bar.update(k)
    finally:
        bar.close()
    return x


def sample(model: EnergyModel, n: int, seed: int | None = None, method: str | None = None,
           return_hidden: bool = False, **kwargs: Any) -> torch.Tensor:
    """``n`` draws of the visible units (codes), shape (n, n_visible); all units with
    ``return_hidden=True`` (n, n_nodes).

    ``method=None`` follows the plan: exact draws when its engine is ``"exact"``
    (``steps``, if given, is not needed then), else Gibbs chains. ``"exact"`` forces exact draws;
    ``"gibbs"`` or another registered sampler runs ``n`` independent chains with the
    keywords of :func:`run_chains` (``steps``, ``init``, ``progress``, ``backend``, ...).
    """
    n = check_int("n", n, 1)
    seed = check_seed(seed)
    check_bool("return_hidden", return_hidden)
    if method is None:
        method = "exact" if model.plan.engine == "exact" else "gibbs"
        if method == "exact":
            check_kwargs("sample", kwargs, ("steps", "progress"))
            kwargs = {}
    if method == "exact":
        check_kwargs("sample(method='exact')", kwargs)
        gen = make_generator(seed) if seed is not None else None
        x = model.exact_sample_values(n, gen)
    elif method in sampler_names():
        check_kwargs(f"sample(method={method!r})", kwargs,
                     ("steps", "init", "progress", "backend", *sampler_options(method)))
        x = run_chains(model, n, seed=seed, sampler=method, **kwargs)
    else:
        raise ArgumentError(f"unknown sampling method {method!r}; use 'exact' or one of "
                            f"{sampler_names()}")
    if return_hidden:
        return model.domains.decode(x)
    return model.decode_visible(x[:, model.index("visible")])
