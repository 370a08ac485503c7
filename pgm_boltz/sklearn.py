"""scikit-learn estimators: a drop-in :class:`BernoulliRBM` backed by a pgm_boltz model.

``pgm_boltz.sklearn.BernoulliRBM`` takes scikit-learn's ``BernoulliRBM`` parameters and
exposes its attributes, so swapping the import is the whole migration::

    from pgm_boltz.sklearn import BernoulliRBM          # was: sklearn.neural_network
    rbm = BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)
    Pipeline([("rbm", rbm), ("logistic", LogisticRegression())]).fit(X, y)

The model is a binary RBM with energy ``E(v, h) = -v^T W h - b^T v - c^T h`` (``W`` is
``components_.T``, ``b`` ``intercept_visible_``, ``c`` ``intercept_hidden_``), held as a
compiled :class:`~pgm_boltz.model.BoltzmannMachine` in ``model_`` (``model_.to_pyro()``,
``model_.log_partition(method="ais")``, ``pgm_boltz.save(model_, path)``, ...).

**Data in [0, 1].** As in scikit-learn, each feature is read as the probability that a
binary visible unit is on, and real values are used as they are: the positive phase of
training uses ``v`` itself (mean-field visible states), ``transform`` returns
``P(h = 1 | v) = sigmoid(v W + c)``, and the scores use the free energy
``F(v) = -b^T v - sum_j softplus(c_j + (v W)_j)`` evaluated at ``v`` (see
:meth:`BernoulliRBM.score_samples`). On binary data every quantity is the exact one of the
binary model. Values outside [0, 1] are accepted as scikit-learn accepts them, with a
``UserWarning``: they have no meaning as probabilities (scale first, e.g. with
``MinMaxScaler``).

**Training.** Each minibatch step estimates the log-likelihood gradient
``<v h^T>_data - <v h^T>_model`` (and the bias terms) with the data side from the batch
(``v`` and ``P(h | v)``) and the model side from

- ``method="pcd"`` (default, scikit-learn's): ``n_chains`` persistent chains (default
  ``batch_size``, scikit-learn's ``h_samples_``) advanced by ``k`` Gibbs sweeps per step;
- ``method="cd"``: ``k`` sweeps from the batch itself (CD-k);
- ``method="exact"``: the exact model moments, as the gradient of the exact
  ``log Z`` (enumeration; models with at most ~22 units in the smaller layer);
  ``"auto"`` picks it when the compiled plan is exact and PCD otherwise.

The negative statistics use the hidden means ``P(h | v_neg)``, as scikit-learn does. The
update is plain SGD (``optimizer="sgd"``, scikit-learn's) or any torch optimiser.
Batches follow the row order (no shuffling), as in scikit-learn.

``partial_fit(X)`` runs one pass over ``X`` in minibatches of ``batch_size``, continuing
the persistent chains, the random stream and the optimiser state (e.g. momentum), so
``fit`` with ``n_iter=E`` equals ``E`` calls of ``partial_fit(X)`` on a fresh estimator,
and one pass of ``fit`` equals ``partial_fit`` over consecutive pieces of ``X`` cut at
multiples of ``batch_size`` (scikit-learn's ``partial_fit`` takes all of ``X`` as one
batch; scikit-learn issue #4211).

Uniform variates for all Gibbs draws come from one numpy ``Generator`` seeded from
``random_state``, in a fixed layout per step, and both training backends (``sampler``:
a fused numba kernel for plain SGD on CPU, and torch for everything else, CUDA included)
consume the same variates, so they walk the same chains.

**Real-valued data.** :class:`GaussianBernoulliRBM` is the counterpart for real-valued
features (scikit-learn has none): Gaussian visible units with learned precisions
(``precision_``, ``lambda = 1 / sigma^2``) under binary hidden units, the model of
``pb.graphs.rbm(V, H, domain="gaussian")``, trained by the package's CD / PCD / exact
objectives in standardised coordinates, scored by exact or AIS log-densities.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
import torch

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pgm_boltz.sklearn needs scikit-learn >= 1.6: pip install 'pgm-boltz[sklearn]'"
    ) from err

from . import graphs
from .errors import DataError, DivergenceError

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM"]

METHODS = ("pcd", "cd", "exact", "auto")
SAMPLERS = ("auto", "numba", "torch")
SCORE_METHODS = ("auto", "exact", "ais", "pseudo-likelihood")
#: AIS settings used by ``score_samples`` unless ``ais_options`` overrides them.
AIS_DEFAULTS: dict[str, Any] = {"n_chains": 100, "n_betas": 1000}
#: Elements per chunk (rows x units) when a computation is split over rows.
_CHUNK_ELEMENTS = 1 << 22
#: Uniform variates drawn at once for a run of training steps.
_NOISE_ELEMENTS = 1 << 21
#: Torch steps with at most this many multiply-adds per product (rows x V x H) run on one
#: CPU thread: for small matrices thread hand-offs cost more than they save (on a
#: loaded 2-core machine, 8x slower per step with 2 threads for a 64 x 100 RBM).
_SMALL_STEP = 1 << 20


# ---------------------------------------------------------------------------------------
# the fused CPU kernel: a run of CD-k / PCD-k minibatch steps with plain SGD
# ---------------------------------------------------------------------------------------


def _noise_per_step(persistent: bool, B: int, C: int, V: int, H: int, k: int) -> int:
    """Uniform variates one step consumes, in this order: (CD only) ``B x H`` for the
    hidden draw from the batch; then per sweep ``C x V`` for the visible draw and
    ``C x H`` for the hidden draw (CD runs ``C = B`` chains)."""
    if persistent:
        return k * C * (V + H)
    return B * H + k * B * (V + H)


@numba.njit(cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
def _contrastive_steps(X, starts, stops, W, b, c, chains, noise, lr, k, persistent,
                       one, zero):  # pragma: no cover - compiled
    """Run minibatch steps in place on ``W`` (V, H), ``b`` (V,), ``c`` (H,) and the
    hidden ``chains`` (C, H: the persistent chains for PCD; for CD at least the largest
    batch's rows, left holding the last step's hidden draws); batch s is rows
    ``starts[s]:stops[s]`` of ``X``.

    Per step: ``hp = sigmoid(v W + c)``; chains (PCD) or ``h ~ hp`` (CD); ``k`` sweeps
    ``v' ~ sigmoid(h W^T + b)``, ``hn = sigmoid(v' W + c)``, ``h ~ hn``; then
    ``W += lr (v^T hp / B - v'^T hn / C)``, ``b += lr (mean v - mean v')``,
    ``c += lr (mean hp - mean hn)``. A draw is ``u < p`` with ``u`` taken from ``noise``
    in the layout of :func:`_noise_per_step`. Returns the variates used.
    """
    V, H = W.shape
    C = chains.shape[0]
    maxB = 1
    for s in range(len(starts)):
        maxB = max(maxB, stops[s] - starts[s])
    Cm = max(C, maxB)
    hp = np.empty((maxB, H), dtype=W.dtype)
    h = np.empty((Cm, H), dtype=W.dtype)
    vn = np.empty((Cm, V), dtype=W.dtype)
    hn = np.empty((Cm, H), dtype=W.dtype)
    pos = 0
    for s in range(len(starts)):
        r0 = starts[s]
        B = stops[s] - r0
        for r in range(B):  # positive phase: hidden means given the batch
            for j in range(H):
                hp[r, j] = c[j]
            for i in range(V):
                x = X[r0 + r, i]
                if x != zero:
                    for j in range(H):
                        hp[r, j] += x * W[i, j]
            for j in range(H):
                hp[r, j] = one / (one + np.exp(-hp[r, j]))
        if persistent:
            nc = C
            for ch in range(C):
                for j in range(H):
                    h[ch, j] = chains[ch, j]
        else:
            nc = B
            for r in range(B):
                for j in range(H):
                    h[r, j] = one if noise[pos + r * H + j] < hp[r, j] else zero
            pos += B * H
        for _ in range(k):
            for ch in range(nc):  # visible draw given h
                for i in range(V):
                    acc = b[i]
                    for j in range(H):
                        acc += h[ch, j] * W[i, j]
                    p = one / (one + np.exp(-acc))
                    vn[ch, i] = one if noise[pos + ch * V + i] < p else zero
            pos += nc * V
            for ch in range(nc):  # hidden means given the binary draw: sum of active rows
                for j in range(H):
                    hn[ch, j] = c[j]
                for i in range(V):
                    if vn[ch, i] != zero:
                        for j in range(H):
                            hn[ch, j] += W[i, j]
                for j in range(H):
                    hn[ch, j] = one / (one + np.exp(-hn[ch, j]))
            for ch in range(nc):
                for j in range(H):
                    h[ch, j] = one if noise[pos + ch * H + j] < hn[ch, j] else zero
            pos += nc * H
        a = lr / B
        an = lr / nc
        for i in range(V):
            sb = zero
            for r in range(B):
                x = X[r0 + r, i]
                if x != zero:
                    sb += x
                    ax = a * x
                    for j in range(H):
                        W[i, j] += ax * hp[r, j]
            sn = zero
            for ch in range(nc):
                if vn[ch, i] != zero:
                    sn += one
                    for j in range(H):
                        W[i, j] -= an * hn[ch, j]
            b[i] += a * sb - an * sn
        for j in range(H):
            sp_ = zero
            for r in range(B):
                sp_ += hp[r, j]
            sn = zero
            for ch in range(nc):
                sn += hn[ch, j]
            c[j] += a * sp_ - an * sn
        for ch in range(nc):  # PCD: the chains; CD: the last hidden draws
            for j in range(H):
                chains[ch, j] = h[ch, j]
    return pos


# ---------------------------------------------------------------------------------------
# parameters of the compiled model as RBM blocks
# ---------------------------------------------------------------------------------------


class _Layout:
    """Where ``W`` (V, H), ``b`` and ``c`` live in the model's ``weight`` and ``bias``.

    Columns of ``X`` follow ``model.visible_nodes``, components ``model.hidden_nodes``.
    When the compiler stores the edges row-major (visible-major) and the nodes visible
    first, the blocks are zero-copy views; otherwise they are gathered and scattered.
    """

    def __init__(self, model) -> None:
        V, H = model.n_visible, model.n_hidden
        pos = {n: i for i, n in enumerate(model.nodes)}
        vrank = {n: i for i, n in enumerate(model.visible_nodes)}
        hrank = {n: j for j, n in enumerate(model.hidden_nodes)}
        self.V, self.H = V, H
        self.vis = np.array([pos[n] for n in model.visible_nodes], dtype=np.int64)
        self.hid = np.array([pos[n] for n in model.hidden_nodes], dtype=np.int64)
        flat = np.array([vrank[u] * H + hrank[w] if u in vrank else vrank[w] * H + hrank[u]
                         for u, w in model.edges], dtype=np.int64)
        if len(flat) != V * H or len(np.unique(flat)) != V * H:
            raise DataError("BernoulliRBM's model_ must be a complete bipartite RBM "
                            f"({V} x {H} edges); got {len(flat)} edges")
        self.edge_of = np.empty(V * H, dtype=np.int64)
        self.edge_of[flat] = np.arange(V * H)
        self.weight_view = bool(np.array_equal(flat, np.arange(V * H)))
        self.bias_view = bool(np.array_equal(self.vis, np.arange(V))
                              and np.array_equal(self.hid, np.arange(V, V + H)))

    def tensors(self, model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W, b, c)`` as tensors (differentiable views or gathers of the parameters)."""
        if self.weight_view:
            W = model.weight.view(self.V, self.H)
        else:
            W = model.weight[torch.as_tensor(self.edge_of, device=model.device)].view(
                self.V, self.H)
        if self.bias_view:
            return W, model.bias[:self.V], model.bias[self.V:]
        dev = model.device
        return (W, model.bias[torch.as_tensor(self.vis, device=dev)],
                model.bias[torch.as_tensor(self.hid, device=dev)])

    def set_grads(self, model, gW: torch.Tensor, gb: torch.Tensor, gc: torch.Tensor) -> None:
        """Store the gradient blocks as the parameters' ``.grad``."""
        if self.weight_view and self.bias_view:
            model.weight.grad = gW.reshape(-1)
            model.bias.grad = torch.cat([gb, gc])
            return
        dev = model.device
        if self.weight_view:
            model.weight.grad = gW.reshape(-1).clone()
        else:
            g = torch.empty_like(model.weight)
            g[torch.as_tensor(self.edge_of, device=dev)] = gW.reshape(-1)
            model.weight.grad = g
        gbias = torch.empty_like(model.bias)
        gbias[torch.as_tensor(self.vis, device=dev)] = gb
        gbias[torch.as_tensor(self.hid, device=dev)] = gc
        model.bias.grad = gbias

    def write(self, model, W: Any = None, b: Any = None, c: Any = None) -> None:
        """Overwrite blocks of the parameters (arrays or tensors; None keeps a block)."""
        dev, dt = model.device, model.dtype
        with torch.no_grad():
            if W is not None:
                w = torch.as_tensor(np.asarray(W), dtype=dt, device=dev).reshape(-1)
                model.weight[torch.as_tensor(self.edge_of, device=dev)] = w
            if b is not None:
                model.bias[torch.as_tensor(self.vis, device=dev)] = torch.as_tensor(
                    np.asarray(b), dtype=dt, device=dev)
            if c is not None:
                model.bias[torch.as_tensor(self.hid, device=dev)] = torch.as_tensor(
                    np.asarray(c), dtype=dt, device=dev)


@contextlib.contextmanager
def _threads_for(device: torch.device, work: int) -> Iterator[None]:
    """One torch thread for small CPU work (see :data:`_SMALL_STEP`), restored after."""
    n = torch.get_num_threads()
    if device.type != "cpu" or work > _SMALL_STEP or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _free_energy(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, v: torch.Tensor
                 ) -> torch.Tensor:
    """``F(v) = -b^T v - sum_j softplus(c_j + (v W)_j)`` per row (differentiable)."""
    return -(v @ b) - torch.nn.functional.softplus(torch.addmm(c, v, W)).sum(1)


def _pseudo_log_likelihood(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                           v: torch.Tensor) -> torch.Tensor:
    """``sum_i [v_i log p_i + (1 - v_i) log(1 - p_i)]`` per row, with
    ``p_i = P(v_i = 1 | v_-i)``: ``logit p_i = b_i + sum_j [softplus(g_j + (1 - v_i) W_ij)
    - softplus(g_j - v_i W_ij)]``, ``g = c + v W``. On binary rows this is the exact
    pseudo-log-likelihood ``sum_i log P(v_i | v_-i)``."""
    g = torch.addmm(c, v, W)  # (N, H)
    sp = torch.nn.functional.softplus
    on = sp(g[:, None, :] + (1 - v)[:, :, None] * W[None])   # v_i set to 1
    off = sp(g[:, None, :] - v[:, :, None] * W[None])        # v_i set to 0
    logit = b + (on - off).sum(-1)
    return (v * torch.nn.functional.logsigmoid(logit)
            + (1 - v) * torch.nn.functional.logsigmoid(-logit)).sum(1)


# ---------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------


class _RBMParameters:
    """The parameter attributes both estimators share, read from and written to
    ``model_`` (``components_``, ``intercept_visible_``, ``intercept_hidden_``), and their
    tags. A subclass gives ``_name``, ``_layout``, ``_cache`` and ``_param_tensors()``
    (``W (V, H), b, c, ...`` as detached tensors)."""

    _name = "RBM"

    def _param_tensors(self) -> tuple[torch.Tensor, ...]:
        raise AttributeError(f"{self._name} does not expose its parameters")

    def _block(self, which: int) -> np.ndarray:
        if "model_" not in self.__dict__:
            raise AttributeError(f"{self._name} is not fitted yet: call fit or partial_fit")
        with torch.no_grad():
            t = self._param_tensors()[which].detach()
        return t.cpu().numpy().copy()

    def _write(self, **blocks: Any) -> None:
        if "model_" not in self.__dict__:
            raise AttributeError(f"{self._name} is not fitted yet: call fit or partial_fit "
                                 "before setting parameters")
        self._layout.write(self.model_, **blocks)
        self._cache.clear()

    @staticmethod
    def _checked(value: Any, shape: tuple, attr: str) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != shape:
            raise DataError(f"{attr} must have shape {shape}, got {value.shape}")
        return value

    @property
    def components_(self) -> np.ndarray:
        """``W^T``, shape (n_components, n_features)."""
        return np.ascontiguousarray(self._block(0).T)

    @components_.setter
    def components_(self, value: Any) -> None:
        lay = self._layout
        self._write(W=self._checked(value, (lay.H, lay.V), "components_").T)

    @property
    def intercept_visible_(self) -> np.ndarray:
        """Visible biases ``b``, shape (n_features,)."""
        return self._block(1)

    @intercept_visible_.setter
    def intercept_visible_(self, value: Any) -> None:
        self._write(b=self._checked(value, (self._layout.V,), "intercept_visible_"))

    @property
    def intercept_hidden_(self) -> np.ndarray:
        """Hidden biases ``c``, shape (n_components,)."""
        return self._block(2)

    @intercept_hidden_.setter
    def intercept_hidden_(self, value: Any) -> None:
        self._write(c=self._checked(value, (self._layout.H,), "intercept_hidden_"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class BernoulliRBM(_RBMParameters, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                   BaseEstimator):
    """Bernoulli restricted Boltzmann machine, a drop-in for scikit-learn's.

    Binary visible units ``v`` (one per feature, values in [0, 1] read as probabilities)
    and ``n_components`` binary hidden units ``h``, with
    ``E(v, h) = -v^T W h - b^T v - c^T h`` and ``P(v, h) = exp(-E(v, h)) / Z``. Trained by
    PCD-k (default), CD-k or exact maximum likelihood; scored by the exact log-likelihood
    when the model is small enough, AIS otherwise, or the exact pseudo-log-likelihood.
    See the module documentation for the maths of each method.

    Parameters
    ----------
    n_components : int, default=256
        Number of binary hidden units.
    learning_rate : float, default=0.1
        SGD step: a step adds ``learning_rate`` times the batch-mean gradient (for other
        optimisers, their ``lr``). Read at every call, so it can be lowered between
        ``partial_fit`` calls.
    batch_size : int, default=10
        Rows per minibatch (the last one of a pass may be smaller).
    n_iter : int, default=10
        Passes over the data in ``fit``.
    verbose : int, default=0
        Print one line per pass: the mean exact log-likelihood when the model is small
        enough for it, the mean exact pseudo-log-likelihood otherwise, and the time.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (``N(0, 0.01^2)``), every Gibbs draw and the AIS
        chains of ``score_samples``. An int gives identical results on every run.
    method : {"pcd", "cd", "exact", "auto"}, default="pcd"
        The model side of the gradient: persistent chains (scikit-learn's), chains
        restarted at the batch, or exact moments (``"auto"``: exact when the compiled
        plan is exact, else PCD). ``"exact"`` raises ``pb.IntractableError`` when the
        smaller layer is too large to enumerate.
    k : int, default=1
        Gibbs sweeps per step for ``"pcd"`` / ``"cd"``.
    n_chains : int or None, default=None
        Persistent chains for ``"pcd"`` (``None``: ``batch_size``, as scikit-learn),
        and the exact hidden samples kept in ``h_samples_`` after ``"exact"`` training.
    sampler : {"auto", "numba", "torch"}, default="auto"
        Backend of ``"pcd"`` / ``"cd"`` training: a fused numba kernel on CPU (plain SGD
        only) or torch (any optimiser, any device). ``"auto"`` takes numba when it can.
        Both consume the same random variates, so they agree to rounding.
    optimizer : "sgd", "adam" or callable, default="sgd"
        ``"sgd"`` is plain SGD (scikit-learn's update); ``"adam"`` is ``torch.optim.Adam``;
        a callable is called as ``optimizer(params, lr=learning_rate)`` and must return a
        ``torch.optim.Optimizer`` (e.g. ``functools.partial(torch.optim.SGD,
        momentum=0.9)``). Its state carries over ``partial_fit`` calls.
    device : str or None, default=None
        Where the parameters live (``"cpu"`` when None, ``"cuda"`` for a GPU).
    score_method : {"auto", "exact", "ais", "pseudo-likelihood"}, default="auto"
        What ``score_samples`` returns (``"auto"``: exact when feasible, else AIS).
    ais_options : dict or None, default=None
        Keyword arguments of ``model_.log_partition(method="ais", ...)`` for scoring,
        over :data:`AIS_DEFAULTS` (e.g. ``{"n_betas": 10000}``).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The weights ``W^T`` (a copy; assigning writes into ``model_``).
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases ``c``.
    intercept_visible_ : ndarray of shape (n_features,)
        Visible biases ``b``.
    h_samples_ : ndarray of shape (n_chains, n_components)
        Hidden states of the persistent chains (PCD), the last negative hidden draws
        (CD), or exact hidden samples of the model (exact training).
    model_ : pgm_boltz.BoltzmannMachine
        The compiled model holding the parameters (``model_.to_pyro()``, ...).
    optimizer_ : torch.optim.Optimizer or None
        The optimiser of the torch backend (None while the numba kernel runs plain SGD).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from pgm_boltz.sklearn import BernoulliRBM
    >>> X = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
    >>> rbm = BernoulliRBM(n_components=2, random_state=0).fit(X)
    >>> rbm.transform(X).shape
    (4, 2)
    >>> bool(np.exp(rbm.score_samples(X)).sum() < 1)   # exact P(v) of four of 8 states
    True
    """

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1,
                 batch_size: int = 10, n_iter: int = 10, verbose: int = 0,
                 random_state: Any = None, method: str = "pcd", k: int = 1,
                 n_chains: int | None = None, sampler: str = "auto", optimizer: Any = "sgd",
                 device: str | None = None, score_method: str = "auto",
                 ais_options: dict | None = None) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.n_chains = n_chains
        self.sampler = sampler
        self.optimizer = optimizer
        self.device = device
        self.score_method = score_method
        self.ais_options = ais_options

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        def positive_int(name: str, minimum: int = 1, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, Integral) or v < minimum:
                raise DataError(f"BernoulliRBM: {name} must be an integer >= {minimum}, "
                                f"got {v!r}")

        positive_int("n_components")
        positive_int("batch_size")
        positive_int("n_iter", 0)
        positive_int("k")
        positive_int("n_chains", allow_none=True)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, Real) or not math.isfinite(lr) \
                or lr <= 0:
            raise DataError(f"BernoulliRBM: learning_rate must be a finite number > 0, "
                            f"got {lr!r}")
        if not isinstance(self.verbose, Integral) or self.verbose < 0:   # bools are fine
            raise DataError(f"BernoulliRBM: verbose must be an integer >= 0, got "
                            f"{self.verbose!r}")
        for name, options in (("method", METHODS), ("sampler", SAMPLERS),
                              ("score_method", SCORE_METHODS)):
            if getattr(self, name) not in options:
                raise DataError(f"BernoulliRBM: unknown {name} {getattr(self, name)!r}; "
                                f"use one of {options}")
        if not (self.optimizer in ("sgd", "adam") or callable(self.optimizer)):
            raise DataError(f"BernoulliRBM: optimizer must be 'sgd', 'adam' or a callable "
                            f"returning a torch optimiser, got {self.optimizer!r}")
        if self.ais_options is not None and not isinstance(self.ais_options, dict):
            raise DataError(f"BernoulliRBM: ais_options must be a dict or None, got "
                            f"{self.ais_options!r}")

    def _validate(self, X: Any, reset: bool, dtype: Any = (np.float64, np.float32)) -> Any:
        X = validate_data(self, X, accept_sparse="csr", reset=reset, dtype=dtype)
        values = X.data if sp.issparse(X) else X
        if values.size and (values.min() < 0 or values.max() > 1):
            warnings.warn(
                f"BernoulliRBM reads features as probabilities in [0, 1], but X has values "
                f"in [{float(values.min()):.4g}, {float(values.max()):.4g}]; they are used "
                "as they are (as scikit-learn does) but have no meaning as probabilities: "
                "scale X to [0, 1] first (e.g. sklearn.preprocessing.MinMaxScaler)",
                UserWarning, stacklevel=3)
        return X

    # ------------------------------------------------------------------ helpers
    def _rows(self, X: Any, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of X as a dense C-contiguous array of the model's dtype."""
        part = X[r0:r1]
        if sp.issparse(part):
            part = part.toarray()
        return np.array(part, dtype=self._np_dtype, order="C", copy=True)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=self.model_.device)

    def _chunks(self, X: Any, width: int):
        n = X.shape[0]
        step = max(1, _CHUNK_ELEMENTS // max(1, width))
        for r0 in range(0, n, step):
            yield self._tensor(self._rows(X, r0, min(n, r0 + step)))

    @property
    def _np_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.model_.dtype == torch.float32 \
            else np.dtype(np.float64)

    def _resolved_method(self) -> str:
        if self.method == "auto":
            return "exact" if self.model_.plan.engine == "exact" else "pcd"
        return self.method

    def _use_numba(self, method: str) -> bool:
        numba_ok = (method in ("pcd", "cd") and self.optimizer == "sgd"
                    and self.model_.device.type == "cpu")
        if self.sampler == "numba" and not numba_ok:
            raise DataError("BernoulliRBM: sampler='numba' runs method 'pcd' or 'cd' with "
                            "optimizer='sgd' on the CPU; use sampler='torch' (or 'auto')")
        return numba_ok and self.sampler != "torch"

    # ------------------------------------------------------------------ initialisation
    def _initialize(self, n_features: int, dtype: np.dtype) -> None:
        """Fresh model and state: weights ``N(0, 0.01^2)``, biases 0 (scikit-learn's),
        hidden chains at 0, a numpy Generator for every later draw."""
        from .machine import compile as _compile

        rs = check_random_state(self.random_state)
        self._rng = np.random.default_rng(int(rs.randint(np.iinfo(np.int32).max)))
        device = "cpu" if self.device is None else self.device
        self.model_ = _compile(graphs.rbm(n_features, self.n_components), device=device,
                               dtype=torch.float32 if dtype == np.float32 else torch.float64,
                               seed=int(self._rng.integers(2**31)), init_scale=0.01)
        self._layout = _Layout(self.model_)
        C = self.batch_size if self.n_chains is None else self.n_chains
        self.h_samples_ = np.zeros((C, self.n_components), dtype=self._np_dtype)
        self.optimizer_ = None
        self._n_features_out = self.n_components
        self._cache: dict = {}

    @classmethod
    def from_sklearn(cls, rbm: Any, **params: Any) -> BernoulliRBM:
        """A fitted estimator holding a trained scikit-learn ``BernoulliRBM``'s weights,
        biases, ``h_samples_`` (as the persistent chains) and feature names, with its
        parameters (``params`` override them, e.g. ``method="exact"``): score it exactly,
        or continue training it with ``partial_fit``.

        >>> import numpy as np
        >>> from sklearn.neural_network import BernoulliRBM as SkRBM
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.random.default_rng(0).random((30, 4))
        >>> sk = SkRBM(n_components=3, n_iter=2, random_state=0).fit(X)
        >>> ours = BernoulliRBM.from_sklearn(sk)
        >>> bool(np.allclose(ours.transform(X), sk.transform(X)))
        True
        """
        check_is_fitted(rbm)
        mine = {k: v for k, v in rbm.get_params().items() if k in cls().get_params()}
        est = cls(**{**mine, **params})
        est._check_params()
        comp = np.asarray(rbm.components_)
        est.n_components = comp.shape[0]
        est.n_features_in_ = comp.shape[1]
        if hasattr(rbm, "feature_names_in_"):
            est.feature_names_in_ = np.asarray(rbm.feature_names_in_)
        est._initialize(comp.shape[1], comp.dtype)
        est.components_ = comp
        est.intercept_visible_ = rbm.intercept_visible_
        est.intercept_hidden_ = rbm.intercept_hidden_
        if hasattr(rbm, "h_samples_") and est.n_chains in (None, len(rbm.h_samples_)):
            est.h_samples_ = np.asarray(rbm.h_samples_, dtype=est._np_dtype).copy()
        return est

    def _optimizer(self) -> torch.optim.Optimizer:
        """The torch optimiser (built once, its lr refreshed from ``learning_rate``)."""
        params = [self.model_.bias, self.model_.weight]
        if self.optimizer_ is None:
            lr = float(self.learning_rate)
            if self.optimizer == "sgd":
                opt = torch.optim.SGD(params, lr=lr)
            elif self.optimizer == "adam":
                opt = torch.optim.Adam(params, lr=lr)
            else:
                opt = self.optimizer(params, lr=lr)
                if not isinstance(opt, torch.optim.Optimizer):
                    raise DataError(f"BernoulliRBM: optimizer(params, lr=...) returned "
                                    f"{type(opt).__name__}, not a torch.optim.Optimizer")
            self.optimizer_ = opt
        for group in self.optimizer_.param_groups:
            group["lr"] = float(self.learning_rate)
        return self.optimizer_

    # ------------------------------------------------------------------ training
    def _chains(self) -> np.ndarray:
        """The persistent chains' hidden states (C, H), kept as ``h_samples_`` (the one
        place they live; checked here, since users may assign it, as in scikit-learn)."""
        h = self.h_samples_
        H = self._layout.H
        if not isinstance(h, np.ndarray) or h.ndim != 2 or h.shape[1] != H \
                or h.shape[0] < 1:
            raise DataError(f"BernoulliRBM: h_samples_ must be an array of shape (n_chains, "
                            f"{H}), got {getattr(h, 'shape', type(h).__name__)}")
        if h.dtype != self._np_dtype or not h.flags.c_contiguous or not h.flags.writeable:
            h = np.array(h, dtype=self._np_dtype, order="C", copy=True)
            self.h_samples_ = h
        return h

    def _one_pass(self, X: Any, epoch: int) -> None:
        """One pass over X in minibatches of ``batch_size`` (rows in order)."""
        N = X.shape[0]
        bs = int(self.batch_size)
        starts = np.arange(0, N, bs, dtype=np.int64)
        stops = np.minimum(starts + bs, N)
        method = self._resolved_method()
        big = torch.finfo(self.model_.dtype).max
        if float(self.learning_rate) > big:
            raise DataError(f"BernoulliRBM: learning_rate={self.learning_rate!r} overflows the "
                            f"model's {self.model_.dtype} (largest {big:.3g}); use a smaller "
                            "learning_rate")
        self._cache.clear()
        if method == "exact":
            self._exact_pass(X, starts, stops)
            return
        persistent = method == "pcd"
        V, H = self._layout.V, self._layout.H
        C = self._chains().shape[0]
        k = int(self.k)
        sizes = np.array([_noise_per_step(persistent, int(b1 - b0), C, V, H, k)
                          for b0, b1 in zip(starts, stops)], dtype=np.int64)
        use_numba = self._use_numba(method)
        s = 0
        while s < len(starts):
            # a run of steps: bounded variates and rows
            e = s + 1
            total = int(sizes[s])
            while e < len(starts) and total + sizes[e] <= _NOISE_ELEMENTS \
                    and (stops[e] - starts[s]) * V <= _CHUNK_ELEMENTS:
                total += int(sizes[e])
                e += 1
            rows = self._rows(X, int(starts[s]), int(stops[e - 1]))
            noise = self._rng.random(total, dtype=self._np_dtype)
            saved = [p.detach().clone() for p in (self.model_.bias, self.model_.weight)]
            chains_before = self._chains().copy()
            lo, hi = starts[s:e] - starts[s], stops[s:e] - starts[s]
            if use_numba:
                self._numba_steps(rows, lo, hi, noise, persistent, k)
            else:
                self._torch_steps(rows, lo, hi, noise, persistent, k)
            if not self._finite():
                with torch.no_grad():
                    self.model_.bias.copy_(saved[0])
                    self.model_.weight.copy_(saved[1])
                self.h_samples_ = chains_before
                raise DivergenceError(
                    f"BernoulliRBM training diverged in pass {epoch} (batches {s}..{e - 1}): "
                    "the parameters became non-finite and were restored to their values "
                    "before these batches; lower learning_rate")
            s = e

    def _finite(self) -> bool:
        with torch.no_grad():
            return bool(torch.isfinite(self.model_.weight).all()
                        and torch.isfinite(self.model_.bias).all())

    def _numba_steps(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     noise: np.ndarray, persistent: bool, k: int) -> None:
        lay, m = self._layout, self.model_
        dt = self._np_dtype.type
        with torch.no_grad():
            W_t, b_t, c_t = lay.tensors(m)
            views = lay.weight_view and lay.bias_view
            W = W_t.detach().numpy() if views else W_t.detach().numpy().copy()
            b = b_t.detach().numpy() if views else b_t.detach().numpy().copy()
            c = c_t.detach().numpy() if views else c_t.detach().numpy().copy()
        chains = self._chains() if persistent else np.zeros(
            (int((hi - lo).max()), lay.H), dtype=self._np_dtype)
        _contrastive_steps(rows, lo, hi, W, b, c, chains, noise, dt(self.learning_rate),
                           k, persistent, dt(1), dt(0))
        if not views:
            lay.write(m, W, b, c)
        self.h_samples_ = chains if persistent else chains[:int(hi[-1] - lo[-1])].copy()

    def _torch_steps(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     noise_np: np.ndarray, persistent: bool, k: int) -> None:
        m, lay = self.model_, self._layout
        opt = self._optimizer()
        X = self._tensor(rows)
        noise = self._tensor(noise_np)
        V, H = lay.V, lay.H
        h_chain = self._tensor(self._chains()) if persistent else None
        work = int(max((hi - lo).max(), self._chains().shape[0])) * V * H
        with _threads_for(m.device, work):
            self._torch_loop(X, lo, hi, noise, persistent, k, h_chain, opt)

    def _torch_loop(self, X: torch.Tensor, lo: np.ndarray, hi: np.ndarray,
                    noise: torch.Tensor, persistent: bool, k: int,
                    h_chain: torch.Tensor | None, opt: torch.optim.Optimizer) -> None:
        m, lay = self.model_, self._layout
        V, H = lay.V, lay.H
        pos = 0
        for r0, r1 in zip(lo, hi):
            v = X[r0:r1]
            B = int(r1 - r0)
            with torch.no_grad():
                W, b, c = (t.detach() for t in lay.tensors(m))
                hp = torch.sigmoid(torch.addmm(c, v, W))
                if persistent:
                    h = h_chain
                else:
                    h = (noise[pos:pos + B * H].view(B, H) < hp).to(m.dtype)
                    pos += B * H
                C = h.shape[0]
                for _ in range(k):
                    pv = torch.sigmoid(torch.addmm(b, h, W.t()))
                    vn = (noise[pos:pos + C * V].view(C, V) < pv).to(m.dtype)
                    pos += C * V
                    hn = torch.sigmoid(torch.addmm(c, vn, W))
                    h = (noise[pos:pos + C * H].view(C, H) < hn).to(m.dtype)
                    pos += C * H
                h_chain = h
                gW = torch.mm(vn.t(), hn).div_(C).sub_(torch.mm(v.t(), hp).div_(B))
                gb = vn.mean(0) - v.mean(0)
                gc = hn.mean(0) - hp.mean(0)
            opt.zero_grad(set_to_none=True)
            lay.set_grads(m, gW, gb, gc)
            opt.step()
        self.h_samples_ = h_chain.cpu().numpy().astype(self._np_dtype, copy=True)

    def _exact_pass(self, X: Any, starts: np.ndarray, stops: np.ndarray) -> None:
        """Exact ML steps: ``loss = mean F(v) + log Z``, whose gradient is the exact
        model moments minus the batch's."""
        m, lay = self.model_, self._layout
        m.plan.require_exact("BernoulliRBM(method='exact')")
        opt = self._optimizer()
        with _threads_for(m.device, int(self.batch_size) * lay.V * lay.H):
            for b0, b1 in zip(starts, stops):
                self._exact_step(self._tensor(self._rows(X, int(b0), int(b1))), opt)
        C = self._chains().shape[0]
        x = m.sample(C, seed=int(self._rng.integers(2**31)), method="exact",
                     return_hidden=True)
        self.h_samples_ = x[:, torch.as_tensor(lay.hid)].cpu().numpy().astype(
            self._np_dtype)

    def _exact_step(self, v: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """One exact step on batch ``v``; restores the parameters if it diverges."""
        m, lay = self.model_, self._layout
        saved = [p.detach().clone() for p in (m.bias, m.weight)]
        opt.zero_grad(set_to_none=True)
        W, b, c = lay.tensors(m)
        loss = _free_energy(W, b, c, v).mean() + m.log_partition()
        loss.backward()
        opt.step()
        if not (torch.isfinite(loss) and self._finite()):
            with torch.no_grad():
                m.bias.copy_(saved[0])
                m.weight.copy_(saved[1])
            raise DivergenceError(
                "BernoulliRBM exact training diverged (non-finite loss or parameters); "
                "parameters restored to their last finite values: lower learning_rate")

    def fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """Fit the model to ``X`` (n_samples, n_features) with values in [0, 1]: a fresh
        start, then ``n_iter`` passes in minibatches of ``batch_size``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.random.default_rng(0).random((50, 6))
        >>> BernoulliRBM(n_components=3, n_iter=2, random_state=0).fit(X).components_.shape
        (3, 6)
        """
        self._check_params()
        X = self._validate(X, reset=True)
        self._initialize(X.shape[1], X.dtype)
        begin = time.perf_counter()
        for epoch in range(1, int(self.n_iter) + 1):
            self._one_pass(X, epoch)
            if self.verbose:
                end = time.perf_counter()
                name, value = self._progress_score(X)
                print(f"[{type(self).__name__}] Iteration {epoch}, {name} = {value:.2f}, "
                      f"time = {end - begin:.2f}s", file=sys.stdout)
                begin = time.perf_counter()
        return self

    def partial_fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """One pass over ``X`` in minibatches of ``batch_size``, continuing the persistent
        chains, the random stream and the optimiser state of earlier calls (the first call
        starts fresh, as ``fit`` does).

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.random.default_rng(0).random((40, 5))
        >>> a = BernoulliRBM(n_components=3, n_iter=1, batch_size=10, random_state=0).fit(X)
        >>> b = BernoulliRBM(n_components=3, batch_size=10, random_state=0)
        >>> b = b.partial_fit(X[:20]).partial_fit(X[20:])
        >>> bool(np.allclose(a.components_, b.components_))
        True
        """
        self._check_params()
        first = not hasattr(self, "model_")
        X = self._validate(X, reset=first)
        if first:
            self._initialize(X.shape[1], X.dtype)
        self._one_pass(X, 1)
        return self

    def _progress_score(self, X: Any) -> tuple[str, float]:
        if self.model_.plan.exact_feasible:
            return "log-likelihood", float(np.mean(self._exact_scores(X)))
        return "pseudo-log-likelihood", float(np.mean(self._pll_scores(X)))

    # ------------------------------------------------------------------ inference
    def transform(self, X: Any) -> np.ndarray:
        """Hidden activation probabilities ``P(h = 1 | v = X) = sigmoid(X W + c)``.

        Returns an array of shape (n_samples, n_components) in X's float dtype.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.eye(4)
        >>> BernoulliRBM(n_components=2, random_state=0).fit(X).transform(X).shape
        (4, 2)
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        out = []
        with torch.no_grad():
            W, b, c = self._layout.tensors(self.model_)
            for v in self._chunks(X, max(self.n_features_in_, self.n_components)):
                out.append(torch.sigmoid(torch.addmm(c, v, W)).cpu().numpy())
        return np.concatenate(out).astype(X.dtype, copy=False)

    def gibbs(self, v: Any) -> np.ndarray:
        """One Gibbs step from visible states ``v``: ``h ~ P(h | v)``, then
        ``v' ~ P(v | h)``; returns ``v'`` as a boolean array (as scikit-learn does).
        Draws continue the estimator's random stream.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.eye(4)
        >>> BernoulliRBM(n_components=2, random_state=0).fit(X).gibbs(X).dtype
        dtype('bool')
        """
        check_is_fitted(self)
        v = self._validate(v, reset=False)
        out = []
        with torch.no_grad():
            W, b, c = self._layout.tensors(self.model_)
            for x in self._chunks(v, max(self.n_features_in_, self.n_components)):
                p = torch.sigmoid(torch.addmm(c, x, W))
                u = self._tensor(self._rng.random(tuple(p.shape), dtype=self._np_dtype))
                h = (u < p).to(self.model_.dtype)
                q = torch.sigmoid(torch.addmm(b, h, W.t()))
                u = self._tensor(self._rng.random(tuple(q.shape), dtype=self._np_dtype))
                out.append((u < q).cpu().numpy())
        return np.concatenate(out)

    def _free_energies(self, X: Any) -> np.ndarray:
        out = []
        with torch.no_grad():
            W, b, c = self._layout.tensors(self.model_)
            for v in self._chunks(X, max(self.n_features_in_, self.n_components)):
                out.append(_free_energy(W, b, c, v).double().cpu().numpy())
        return np.concatenate(out)

    def _log_partition(self, method: str) -> float:
        """log Z of the current parameters (exact or AIS), cached until they change."""
        key = method
        if key not in self._cache:
            m = self.model_
            if method == "exact":
                with torch.no_grad():
                    self._cache[key] = float(m.log_partition())
            else:
                opts = dict(AIS_DEFAULTS)
                opts.update(self.ais_options or {})
                opts.setdefault("seed", int(check_random_state(self.random_state).randint(
                    np.iinfo(np.int32).max)))
                opts.setdefault("progress", False)
                self._cache[key] = float(m.log_partition(method="ais", **opts).value)
        return self._cache[key]

    def _exact_scores(self, X: Any) -> np.ndarray:
        return -self._free_energies(X) - self._log_partition("exact")

    def _pll_scores(self, X: Any) -> np.ndarray:
        out = []
        V, H = self._layout.V, self._layout.H
        with torch.no_grad():
            W, b, c = self._layout.tensors(self.model_)
            for v in self._chunks(X, V * H):
                out.append(_pseudo_log_likelihood(W, b, c, v).double().cpu().numpy())
        return np.concatenate(out)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each row, by ``score_method``:

        - ``"exact"``: ``log P(v) = -F(v) - log Z`` with the exact ``log Z`` (enumeration
          of the smaller layer; raises ``pb.IntractableError`` when it is too large);
        - ``"ais"``: the same with ``log Z`` estimated by annealed importance sampling
          (:data:`AIS_DEFAULTS`, ``ais_options``; seeded by ``random_state``; a stochastic
          lower bound on ``log Z``, so the scores lean high);
        - ``"auto"`` (default): exact when feasible, else AIS;
        - ``"pseudo-likelihood"``: the exact pseudo-log-likelihood
          ``sum_i log P(v_i | v_-i)`` (every unit, no random corruption).

        ``log Z`` is computed once per fitted state and reused. For rows with values
        strictly inside (0, 1) the free energy is evaluated at the real values: by
        convexity of ``-F``, ``-F(v) - log Z`` is then a lower bound on
        ``E_{x ~ Bernoulli(v)} log P(x)``; the pseudo-likelihood term of unit i becomes
        the cross-entropy ``v_i log p_i + (1 - v_i) log(1 - p_i)``.

        Returns a float64 array of shape (n_samples,).

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> states = np.array([[a, b] for a in (0, 1) for b in (0, 1)])
        >>> rbm = BernoulliRBM(n_components=3, random_state=0).fit(states)
        >>> round(float(np.exp(rbm.score_samples(states)).sum()), 6)
        1.0
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        method = self.score_method
        if method == "pseudo-likelihood":
            return self._pll_scores(X)
        if method == "auto":
            method = "exact" if self.model_.plan.exact_feasible else "ais"
        if method == "exact":
            self.model_.plan.require_exact("BernoulliRBM.score_samples(score_method='exact')")
        return -self._free_energies(X) - self._log_partition(method)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples` over the rows of X (higher is better), for
        model selection, e.g. ``GridSearchCV(BernoulliRBM(), ...)`` without ``scoring``.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import BernoulliRBM
        >>> X = np.eye(3)
        >>> BernoulliRBM(n_components=2, random_state=0).fit(X).score(X) < 0
        True
        """
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------------ attributes
    _name = "BernoulliRBM"

    def _param_tensors(self) -> tuple[torch.Tensor, ...]:
        return self._layout.tensors(self.model_)


# ---------------------------------------------------------------------------------------
# Gaussian-Bernoulli RBM
# ---------------------------------------------------------------------------------------

#: ``method`` values of :class:`GaussianBernoulliRBM`.
GB_METHODS = ("pcd", "cd", "exact", "auto")
#: ``score_method`` values of :class:`GaussianBernoulliRBM` (no pseudo-likelihood: a
#: Gaussian unit has no finite set of levels to sum over).
GB_SCORE_METHODS = ("auto", "exact", "ais")
#: Persistent chains of :class:`GaussianBernoulliRBM` when ``n_chains`` is None (at least).
GB_MIN_CHAINS = 100
#: Largest precision of a visible unit in the training coordinates (standardised units
#: when ``standardize=True``): a variance floor, ``sigma_u >= 0.01``.
GB_MAX_PRECISION = 1e4


class GaussianBernoulliRBM(_RBMParameters, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                           BaseEstimator):
    r"""Gaussian-Bernoulli restricted Boltzmann machine for real-valued features.

    Real visible units ``v`` (one per feature) and ``n_components`` binary hidden units
    ``h``, with the energy of the package's Gaussian domain

        ``E(v, h) = sum_i lambda_i v_i^2 / 2 - b^T v - v^T W h - c^T h``,

    ``p(v, h) = exp(-E(v, h)) / Z`` (a density in ``v``), and learned precisions
    ``lambda_i = exp(log_precision_i) = 1 / sigma_i^2`` (``model_.log_precision``).
    Its conditionals are

    - ``P(h_j = 1 | v) = sigmoid(c_j + (v W)_j)`` (:meth:`transform`): the coupling
      ``v^T W h`` carries no ``lambda``, so the precisions do not enter it;
    - ``v_i | h ~ N((b_i + (W h)_i) / lambda_i, 1 / lambda_i)``: given ``h`` the visible
      units are independent normals with standard deviation ``sigma_i``.

    (In the ``(v - b)^2 / (2 sigma^2) - v^T W h / sigma^2`` form of Cho, Ilin & Raiko
    (2011), their ``b`` is ``b / lambda`` here and their ``W`` is ``W / lambda``.)

    Integrating ``v`` out gives the free energy
    ``F(v) = lambda.v^2 / 2 - b^T v - sum_j softplus(c_j + (v W)_j)`` and
    ``log p(v) = -F(v) - log Z`` (:meth:`score_samples`, a log-*density*: it may be
    positive). ``log Z`` sums the ``2^H`` hidden states with the Gaussians integrated in
    closed form, so it is exact for up to about 22 hidden units, and estimated by AIS
    above that.

    **Feature scaling.** Gaussian-Bernoulli RBMs train well only on standardised
    features. With ``standardize=True`` (default) the estimator does this itself: it
    takes the column means ``mu`` and standard deviations ``s`` of the X of ``fit`` (or
    of the first ``partial_fit`` call), starts from standard normal units in
    ``u = (x - mu) / s`` and takes its optimiser steps on the parameters of the model
    of ``u`` (the chain rule maps the gradient), while ``model_`` and every attribute
    and score stay in X's own units. So a fit on X and a fit on
    ``StandardScaler().fit_transform(X)`` give the same model up to that change of
    units (tested). ``StandardScaler`` in a ``Pipeline`` (as in the example) is still
    good practice: the downstream steps and the attributes are then in standard units.
    With ``standardize=False`` the units start as standard normals in X's units
    (``b = 0``, ``lambda = 1``).

    **Training.** Each minibatch step follows the log-likelihood gradient through the
    package's training objectives (``pgm_boltz.training``): the data side from the
    batch (``v``, ``P(h | v)``, ``v^2``), the model side from ``n_chains`` persistent
    chains advanced by ``k`` sweeps (``"pcd"``), ``k`` sweeps from the batch (``"cd"``),
    or the exact moments as the gradient of the exact ``log Z`` (``"exact"``; ``"auto"``
    picks it when the compiled plan is exact, PCD otherwise). The log-precisions follow
    ``d log p(v) / d log lambda_i = lambda_i (<v_i^2>_model - v_i^2) / 2`` unless
    ``learn_precision=False``, with a variance floor: the precisions of the
    standardised units are capped at :data:`GB_MAX_PRECISION` (``sigma_u >= 0.01``), so a
    constant feature (whose maximum-likelihood precision is infinite) stays finite.
    Batches follow the row order (no shuffling).
    ``partial_fit(X)`` is one pass over ``X`` that continues the chains, the random
    stream and the optimiser state, so ``fit`` equals ``partial_fit`` over the same
    batches.

    Parameters
    ----------
    n_components : int, default=256
        Number of binary hidden units.
    learning_rate : float, default=0.01
        Step size of the optimiser (Adam's ``lr``; plain SGD: ``learning_rate`` times the
        batch-mean gradient). Read at every call, so it can be changed between
        ``partial_fit`` calls.
    batch_size : int, default=10
        Rows per minibatch (the last one of a pass may be smaller).
    n_iter : int, default=10
        Passes over the data in ``fit``.
    verbose : int, default=0
        Print one line per pass: the mean exact log-density when the model is small
        enough, else the mean squared error of one mean-field reconstruction; and the time.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, every draw of training and :meth:`gibbs`, and the AIS
        chains of ``score_samples``. An int gives identical results on every run (CPU).
    method : {"pcd", "cd", "exact", "auto"}, default="pcd"
        The model side of the gradient (see above). ``"exact"`` raises
        ``pb.IntractableError`` when there are too many hidden units to enumerate.
    k : int, default=1
        Gibbs sweeps per step for ``"pcd"`` / ``"cd"``.
    n_chains : int or None, default=None
        Persistent chains for ``"pcd"`` (None: ``max(batch_size, 100)``, the package's
        PCD default: more chains, a less noisy model side; with 10 chains and SGD the
        log-likelihood on standardised iris swung by about a nat from pass to pass) and
        the number of exact hidden samples kept in ``h_samples_`` after ``"exact"``
        training.
    sampler : str, default="gibbs"
        The package sampler of the negative phase (``pgm_boltz.samplers``: ``"gibbs"``,
        ``"block-gibbs"``, ``"tempering"``, ...); ``"gibbs"`` takes the fused RBM path.
    optimizer : "sgd", "adam" or callable, default="adam"
        ``"adam"`` is ``torch.optim.Adam``, ``"sgd"`` plain SGD. Adam is the default
        because the gradient of a log-precision, ``lambda (<u^2>_model - u^2) / 2``,
        grows with ``lambda`` and with how far the chains stray, so plain SGD can blow
        up (on scikit-learn's small test data sets with 256 hidden units, SGD at
        ``learning_rate=0.05`` diverged within four passes), while Adam moves each
        parameter by about ``learning_rate`` per step. A callable is called as
        ``optimizer(params, lr=learning_rate)`` and must return a
        ``torch.optim.Optimizer``. Its state carries over ``partial_fit`` calls.
    device : str or None, default=None
        Where the parameters live (``"cpu"`` when None, ``"cuda"`` for a GPU).
    learn_precision : bool, default=True
        Learn the visible precisions ``lambda`` (otherwise they stay as they are:
        ``1 / s^2`` on a fresh fit, or what was assigned to ``precision_``).
    standardize : bool, default=True
        Train in the standardised coordinates of the first data seen (see above);
        ``False``: in X's units, from standard normal units (for data already scaled,
        and for ``partial_fit`` over pieces to equal ``fit`` exactly: with ``True`` the
        first piece fixes ``mu`` and ``s``).
    score_method : {"auto", "exact", "ais"}, default="auto"
        How ``score_samples`` gets ``log Z`` (``"auto"``: exact when feasible, else AIS).
    ais_options : dict or None, default=None
        Keyword arguments of ``model_.log_partition(method="ais", ...)`` for scoring,
        over :data:`AIS_DEFAULTS`.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The weights ``W^T`` (a copy; assigning writes into ``model_``).
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases ``c``.
    intercept_visible_ : ndarray of shape (n_features,)
        Visible biases ``b`` (the linear coefficients; the visible means given ``h`` are
        ``(b + W h) / lambda``).
    precision_ : ndarray of shape (n_features,)
        Visible precisions ``lambda = 1 / sigma^2`` (assignable, > 0).
    sigma_ : ndarray of shape (n_features,)
        Visible standard deviations given ``h``, ``1 / sqrt(precision_)`` (read-only).
    h_samples_ : ndarray of shape (n_chains, n_components)
        Hidden states of the persistent chains (``"pcd"``), or exact hidden samples of
        the model (``"exact"``); ``"cd"`` keeps no chains and leaves it as it was
        (zeros after a fresh start).
    model_ : pgm_boltz.BoltzmannMachine
        The compiled model holding the parameters (``model_.log_precision``,
        ``model_.to_pyro()``, ``model_.sample(n)``, ``pgm_boltz.save``, ...).
    optimizer_ : torch.optim.Optimizer or None
        The optimiser, over the parameters of the model of the standardised features
        ``(W_u, b_u, c_u, log lambda_u)`` (None before the first training step).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
    >>> X, y = load_iris(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(),
    ...                      GaussianBernoulliRBM(n_components=8, n_iter=100, random_state=0),
    ...                      LogisticRegression(max_iter=1000)).fit(X, y)
    >>> bool(pipe.score(X, y) > 0.85)
    True
    >>> rbm = pipe[1]
    >>> rbm.precision_.shape, rbm.components_.shape
    ((4,), (8, 4))
    >>> Z = StandardScaler().fit_transform(X)          # log-density: better than at the start
    >>> bool(rbm.score(Z) > GaussianBernoulliRBM(n_components=8, n_iter=0).fit(Z).score(Z))
    True
    """

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.01,
                 batch_size: int = 10, n_iter: int = 10, verbose: int = 0,
                 random_state: Any = None, method: str = "pcd", k: int = 1,
                 n_chains: int | None = None, sampler: str = "gibbs",
                 optimizer: Any = "adam", device: str | None = None,
                 learn_precision: bool = True, standardize: bool = True,
                 score_method: str = "auto", ais_options: dict | None = None) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.n_chains = n_chains
        self.sampler = sampler
        self.optimizer = optimizer
        self.device = device
        self.learn_precision = learn_precision
        self.standardize = standardize
        self.score_method = score_method
        self.ais_options = ais_options

    _name = "GaussianBernoulliRBM"

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        from .samplers import sampler_names

        name = self._name

        def positive_int(attr: str, minimum: int = 1, allow_none: bool = False) -> None:
            v = getattr(self, attr)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, Integral) or v < minimum:
                raise DataError(f"{name}: {attr} must be an integer >= {minimum}, got {v!r}")

        positive_int("n_components")
        positive_int("batch_size")
        positive_int("n_iter", 0)
        positive_int("k")
        positive_int("n_chains", allow_none=True)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, Real) or not math.isfinite(lr) \
                or lr <= 0:
            raise DataError(f"{name}: learning_rate must be a finite number > 0, got {lr!r}")
        if not isinstance(self.verbose, Integral) or self.verbose < 0:
            raise DataError(f"{name}: verbose must be an integer >= 0, got {self.verbose!r}")
        for attr, options in (("method", GB_METHODS), ("score_method", GB_SCORE_METHODS),
                              ("sampler", tuple(sampler_names()))):
            if getattr(self, attr) not in options:
                raise DataError(f"{name}: unknown {attr} {getattr(self, attr)!r}; use one of "
                                f"{options}")
        if not (self.optimizer in ("sgd", "adam") or callable(self.optimizer)):
            raise DataError(f"{name}: optimizer must be 'sgd', 'adam' or a callable "
                            f"returning a torch optimiser, got {self.optimizer!r}")
        for attr in ("learn_precision", "standardize"):
            if not isinstance(getattr(self, attr), (bool, np.bool_)):
                raise DataError(f"{name}: {attr} must be True or False, got "
                                f"{getattr(self, attr)!r}")
        if self.ais_options is not None and not isinstance(self.ais_options, dict):
            raise DataError(f"{name}: ais_options must be a dict or None, got "
                            f"{self.ais_options!r}")

    def _validate(self, X: Any, reset: bool) -> Any:
        return validate_data(self, X, accept_sparse="csr", reset=reset,
                             dtype=(np.float64, np.float32))

    # ------------------------------------------------------------------ helpers
    @property
    def _np_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.model_.dtype == torch.float32 \
            else np.dtype(np.float64)

    def _rows(self, X: Any, r0: int, r1: int) -> np.ndarray:
        part = X[r0:r1]
        if sp.issparse(part):
            part = part.toarray()
        return np.array(part, dtype=self._np_dtype, order="C", copy=True)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=self.model_.device)

    def _chunks(self, X: Any, width: int) -> Iterator[torch.Tensor]:
        n = X.shape[0]
        step = max(1, _CHUNK_ELEMENTS // max(1, width))
        for r0 in range(0, n, step):
            yield self._tensor(self._rows(X, r0, min(n, r0 + step)))

    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W (V, H), b, c, lambda)`` as detached tensors."""
        W, b, c = (t.detach() for t in self._layout.tensors(self.model_))
        lam = torch.exp(self.model_.log_precision.detach())[
            torch.as_tensor(self._qpos, device=self.model_.device)]
        return W, b, c, lam

    def _resolved_method(self) -> str:
        if self.method == "auto":
            return "exact" if self.model_.plan.engine == "exact" else "pcd"
        return self.method

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_objective", None)   # rebuilt on demand (holds samplers)
        return state

    # ------------------------------------------------------------------ initialisation
    def _initialize(self, X: Any) -> None:
        """Fresh model and state: weights ``N(0, 0.01^2)`` and hidden biases 0 in the
        training coordinates, standard normal visible units there (see
        :meth:`_init_visible`), chains at 0, a numpy Generator and a torch Generator for
        every later draw."""
        from .machine import compile as _compile

        n_features, dtype = X.shape[1], X.dtype

        rs = check_random_state(self.random_state)
        self._rng = np.random.default_rng(int(rs.randint(np.iinfo(np.int32).max)))
        device = "cpu" if self.device is None else self.device
        G = graphs.rbm(n_features, self.n_components, domain="gaussian")
        self.model_ = _compile(G, device=device,
                               dtype=torch.float32 if dtype == np.float32 else torch.float64,
                               seed=int(self._rng.integers(2**31)), init_scale=0.01)
        m = self.model_
        self._layout = _Layout(m)
        self._qpos = np.searchsorted(m.quadratic_index, self._layout.vis)
        if not np.array_equal(m.quadratic_index[self._qpos], self._layout.vis):
            raise DataError(f"{self._name}: every visible unit of model_ must be Gaussian")
        self._init_visible(X)
        gen = torch.Generator(device=m.device)
        gen.manual_seed(int(self._rng.integers(2**62)))
        self._gen_state = gen.get_state()
        C = max(self.batch_size, GB_MIN_CHAINS) if self.n_chains is None else self.n_chains
        self._chain_state = np.zeros((C, m.n_nodes), dtype=self._np_dtype)
        self.optimizer_ = None
        self._objective = None
        self._chains_live = False
        self._n_features_out = self.n_components
        self._cache: dict = {}

    def _init_visible(self, X: Any) -> None:
        """The training coordinates ``u = (x - mu) / s`` (``standardize``: X's column
        means and standard deviations, ``s = 1`` for constant columns, as
        ``StandardScaler`` does; else ``mu = 0, s = 1``) and the start of the visible
        units: standard normals in ``u``, i.e. ``lambda = 1 / s^2``, ``b = mu / s^2``.
        ``model_.visible_init`` (where AIS's base model starts) becomes that ``b``."""
        V = self._layout.V
        if self.standardize:
            if sp.issparse(X):
                mean = np.asarray(X.mean(0), dtype=np.float64).ravel()
                var = np.asarray(X.multiply(X).mean(0), dtype=np.float64).ravel() - mean**2
            else:
                Xd = np.asarray(X, dtype=np.float64)
                mean, var = Xd.mean(0), Xd.var(0)
            std = np.sqrt(np.maximum(var, 0.0))
            scale = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        else:
            mean, scale = np.zeros(V), np.ones(V)
        self._mu, self._s = mean, scale
        with torch.no_grad():
            W, _, c = (t.detach() for t in self._layout.tensors(self.model_))
            s = self._tensor_t(scale)
            # the compiled N(0, 0.01^2) weights and zero hidden biases are those of u
            u = [W.clone(), torch.zeros_like(s), c.clone(), torch.zeros_like(s)]
        self._uparams = [t.requires_grad_(True) for t in u]
        self._write_model()
        self.model_.visible_init = self._params()[1].clone()

    def _tensor_t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self.model_.dtype, device=self.model_.device)

    def _to_model(self, Wu: torch.Tensor, bu: torch.Tensor, cu: torch.Tensor,
                  lu: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Parameters in X's units from those in the training coordinates ``u``:
        ``W = W_u / s``, ``log lambda = log lambda_u - 2 log s``,
        ``b = b_u / s + lambda mu``, ``c = c_u - mu^T W``."""
        s, mu = self._tensor_t(self._s), self._tensor_t(self._mu)
        W = Wu / s[:, None]
        log_lam = lu - 2.0 * torch.log(s)
        b = bu / s + torch.exp(log_lam) * mu
        c = cu - mu @ W
        return W, b, c, log_lam

    def _from_model(self) -> None:
        """The training coordinates' parameters from ``model_`` (in place, so the
        optimiser's state stays): the inverse of :meth:`_to_model`."""
        s, mu = self._tensor_t(self._s), self._tensor_t(self._mu)
        with torch.no_grad():
            W, b, c, lam = self._params()
            for t, val in zip(self._uparams, (W * s[:, None], s * (b - lam * mu),
                                              c + mu @ W, torch.log(lam * s * s))):
                t.copy_(val)

    def _write_model(self) -> None:
        """``model_``'s parameters from the training coordinates' (torch, any device)."""
        m, lay = self.model_, self._layout
        dev = m.device
        with torch.no_grad():
            W, b, c, log_lam = self._to_model(*self._uparams)
            m.weight[torch.as_tensor(lay.edge_of, device=dev)] = W.reshape(-1).to(m.dtype)
            m.bias[torch.as_tensor(lay.vis, device=dev)] = b.to(m.dtype)
            m.bias[torch.as_tensor(lay.hid, device=dev)] = c.to(m.dtype)
            m.log_precision[torch.as_tensor(self._qpos, device=dev)] = log_lam.to(m.dtype)

    def _model_grads(self) -> tuple[torch.Tensor, ...]:
        """``.grad`` of ``model_``'s parameters as ``(W, b, c, log lambda)`` blocks."""
        m, lay = self.model_, self._layout
        dev = m.device
        gw = torch.zeros_like(m.weight) if m.weight.grad is None else m.weight.grad
        gbias = torch.zeros_like(m.bias) if m.bias.grad is None else m.bias.grad
        glp = m.log_precision.grad
        glp = torch.zeros_like(m.log_precision) if glp is None else glp
        gW = gw[torch.as_tensor(lay.edge_of, device=dev)].view(lay.V, lay.H)
        return (gW, gbias[torch.as_tensor(lay.vis, device=dev)],
                gbias[torch.as_tensor(lay.hid, device=dev)],
                glp[torch.as_tensor(self._qpos, device=dev)])

    def _optimizer(self) -> torch.optim.Optimizer:
        """The torch optimiser over the parameters in the training coordinates
        ``(W_u, b_u, c_u, log lambda_u)``, built once, its lr refreshed from
        ``learning_rate`` (a frozen precision gets no gradient)."""
        if self.optimizer_ is None:
            params = list(self._uparams)
            lr = float(self.learning_rate)
            if self.optimizer == "sgd":
                opt = torch.optim.SGD(params, lr=lr)
            elif self.optimizer == "adam":
                opt = torch.optim.Adam(params, lr=lr)
            else:
                opt = self.optimizer(params, lr=lr)
                if not isinstance(opt, torch.optim.Optimizer):
                    raise DataError(f"{self._name}: optimizer(params, lr=...) returned "
                                    f"{type(opt).__name__}, not a torch.optim.Optimizer")
            self.optimizer_ = opt
        for group in self.optimizer_.param_groups:
            group["lr"] = float(self.learning_rate)
        return self.optimizer_

    def _get_objective(self, method: str) -> Any:
        """The package's training objective for ``method``, kept between passes (its
        sampler's state carries over, as the chains do)."""
        from .training.contrastive import CDObjective, PCDObjective
        from .training.exact import ExactObjective

        C = self._chain_state.shape[0]
        key = (method, self.sampler, int(self.k), C)
        obj = getattr(self, "_objective", None)
        if obj is not None and obj[0] == key:
            return obj[1]
        m = self.model_
        if method == "exact":
            m.plan.require_exact(f"{self._name}(method='exact')")
            new = ExactObjective(m)
        elif method == "pcd":
            new = PCDObjective(m, k=int(self.k), n_chains=C, monitor_nll=False,
                               sampler=self.sampler)
        else:
            new = CDObjective(m, k=int(self.k), monitor_nll=False, sampler=self.sampler)
        self._objective = (key, new)
        return new

    # ------------------------------------------------------------------ training
    def _finite(self) -> bool:
        m = self.model_
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all())
                       for p in (m.bias, m.weight, m.log_precision))

    def _one_pass(self, X: Any, epoch: int) -> None:
        """One pass over X in minibatches of ``batch_size`` (rows in order). Per batch:
        the objective's loss gives the gradient in ``model_``'s parameters; the chain
        rule through :meth:`_to_model` turns it into the gradient in the training
        coordinates, where the optimiser steps; ``model_`` is rewritten from them."""
        m = self.model_
        N = X.shape[0]
        bs = int(self.batch_size)
        starts = np.arange(0, N, bs, dtype=np.int64)
        stops = np.minimum(starts + bs, N)
        big = torch.finfo(m.dtype).max
        if float(self.learning_rate) > big:
            raise DataError(f"{self._name}: learning_rate={self.learning_rate!r} overflows "
                            f"the model's {m.dtype} (largest {big:.3g}); use a smaller "
                            "learning_rate")
        if self.n_chains is not None and self.n_chains != self._chain_state.shape[0]:
            self._chain_state = np.zeros((int(self.n_chains), m.n_nodes),
                                         dtype=self._np_dtype)
            self._chains_live = False
        method = self._resolved_method()
        self._cache.clear()
        learn = bool(self.learn_precision)
        obj = self._get_objective(method)
        opt = self._optimizer()
        self._from_model()   # parameters assigned since the last pass are taken up
        gen = torch.Generator(device=m.device)
        gen.set_state(self._gen_state)
        if method == "pcd" and not (self.__dict__.get("_chains_live") and obj.chains is not None
                                    and tuple(obj.chains.shape) == self._chain_state.shape):
            # a chain tensor the objective has not seen: its sampler's own state (e.g.
            # tempering's replicas) starts afresh; the live one continues it
            obj.chains = self._tensor(self._chain_state.astype(self._np_dtype, copy=True))
        uparams = self._uparams
        work = int(max(bs, self._chain_state.shape[0])) * self._layout.V * self._layout.H
        with _threads_for(m.device, work):
            for step, (b0, b1) in enumerate(zip(starts, stops)):
                v = self._tensor(self._rows(X, int(b0), int(b1)))
                saved = [p.detach().clone() for p in uparams]
                for p in (m.bias, m.weight, m.log_precision):
                    p.grad = None
                loss = obj.loss(v, gen)
                loss.backward()
                opt.zero_grad(set_to_none=True)
                torch.autograd.backward(self._to_model(*uparams), self._model_grads())
                if not learn:
                    uparams[3].grad = None
                opt.step()
                with torch.no_grad():   # the variance floor
                    uparams[3].clamp_(max=math.log(GB_MAX_PRECISION))
                obj.after_step()
                self._write_model()
                if not (bool(torch.isfinite(loss.detach())) and self._finite()):
                    with torch.no_grad():
                        for p, sv in zip(uparams, saved):
                            p.copy_(sv)
                    self._write_model()
                    self._objective = None
                    raise DivergenceError(
                        f"{self._name} training diverged in pass {epoch} (batch {step}): "
                        "the parameters became non-finite and were restored to their "
                        "values before that batch; lower learning_rate")
        for p in (m.bias, m.weight, m.log_precision):
            p.grad = None
        self._gen_state = gen.get_state()
        self._chains_live = method == "pcd"
        if method == "pcd":
            self._chain_state = obj.chains.detach().cpu().numpy().astype(self._np_dtype,
                                                                         copy=True)
        elif method == "exact":
            C = self._chain_state.shape[0]
            x = m.sample(C, seed=int(self._rng.integers(2**31)), method="exact",
                         return_hidden=True)
            self._chain_state = x.cpu().numpy().astype(self._np_dtype, copy=True)

    @property
    def h_samples_(self) -> np.ndarray:
        """Hidden states of the persistent chains (see the class attributes)."""
        if "_chain_state" not in self.__dict__:
            raise AttributeError(f"{self._name} is not fitted yet: call fit or partial_fit")
        return self._chain_state[:, self._layout.hid].copy()

    def fit(self, X: Any, y: Any = None) -> GaussianBernoulliRBM:
        """Fit the model to real-valued ``X`` (n_samples, n_features; standardise it
        first): a fresh start, then ``n_iter`` passes in minibatches of ``batch_size``.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(50, 6))
        >>> GaussianBernoulliRBM(n_components=3, n_iter=2, random_state=0).fit(X).precision_.shape
        (6,)
        """
        self._check_params()
        X = self._validate(X, reset=True)
        self._initialize(X)
        begin = time.perf_counter()
        for epoch in range(1, int(self.n_iter) + 1):
            self._one_pass(X, epoch)
            if self.verbose:
                end = time.perf_counter()
                name, value = self._progress_score(X)
                print(f"[{self._name}] Iteration {epoch}, {name} = {value:.4f}, "
                      f"time = {end - begin:.2f}s", file=sys.stdout)
                begin = time.perf_counter()
        return self

    def partial_fit(self, X: Any, y: Any = None) -> GaussianBernoulliRBM:
        """One pass over ``X`` in minibatches of ``batch_size``, continuing the chains,
        the random streams and the optimiser state of earlier calls (the first call
        starts fresh, as ``fit`` does).

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(40, 5))
        >>> kw = dict(n_components=3, standardize=False, random_state=0)
        >>> a = GaussianBernoulliRBM(n_iter=1, **kw).fit(X)
        >>> b = GaussianBernoulliRBM(**kw)
        >>> b = b.partial_fit(X[:20]).partial_fit(X[20:])
        >>> bool(np.allclose(a.components_, b.components_))
        True
        """
        self._check_params()
        first = "model_" not in self.__dict__
        X = self._validate(X, reset=first)
        if first:
            self._initialize(X)
        self._one_pass(X, 1)
        return self

    def _progress_score(self, X: Any) -> tuple[str, float]:
        if self.model_.plan.exact_feasible:
            return "log-density", float(np.mean(self._scores(X, "exact")))
        return "reconstruction MSE", float(np.mean(self._reconstruction_error(X)))

    # ------------------------------------------------------------------ inference
    def transform(self, X: Any) -> np.ndarray:
        """Hidden activation probabilities ``P(h = 1 | v = X) = sigmoid(X W + c)``.

        Returns an array of shape (n_samples, n_components) in X's float dtype.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(6, 3))
        >>> GaussianBernoulliRBM(n_components=2, random_state=0).fit(X).transform(X).shape
        (6, 2)
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        out = []
        with torch.no_grad():
            W, _, c, _ = self._params()
            for v in self._chunks(X, max(self.n_features_in_, self.n_components)):
                out.append(torch.sigmoid(torch.addmm(c, v, W)).cpu().numpy())
        return np.concatenate(out).astype(X.dtype, copy=False)

    def _visible_means(self, h: torch.Tensor) -> torch.Tensor:
        W, b, _, lam = self._params()
        return torch.addmm(b, h, W.t()) / lam

    def _reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row mean squared error of the mean-field reconstruction
        ``E[v | h = P(h | X)]``."""
        out = []
        with torch.no_grad():
            W, _, c, _ = self._params()
            for v in self._chunks(X, max(self.n_features_in_, self.n_components)):
                r = self._visible_means(torch.sigmoid(torch.addmm(c, v, W)))
                out.append(((r - v) ** 2).mean(1).double().cpu().numpy())
        return np.concatenate(out)

    def gibbs(self, v: Any) -> np.ndarray:
        """One block Gibbs step from visible rows ``v``: ``h ~ P(h | v)``, then
        ``v'_i ~ N((b_i + (W h)_i) / lambda_i, 1 / lambda_i)``; returns ``v'`` (real
        values, v's float dtype). Draws continue the estimator's random stream.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(6, 3))
        >>> GaussianBernoulliRBM(n_components=2, random_state=0).fit(X).gibbs(X).shape
        (6, 3)
        """
        check_is_fitted(self)
        v = self._validate(v, reset=False)
        out = []
        with torch.no_grad():
            W, _, c, lam = self._params()
            for x in self._chunks(v, max(self.n_features_in_, self.n_components)):
                p = torch.sigmoid(torch.addmm(c, x, W))
                u = self._tensor(self._rng.random(tuple(p.shape), dtype=self._np_dtype))
                h = (u < p).to(self.model_.dtype)
                mean = self._visible_means(h)
                z = self._tensor(self._rng.standard_normal(tuple(mean.shape),
                                                           dtype=self._np_dtype))
                out.append((mean + z / torch.sqrt(lam)).cpu().numpy())
        return np.concatenate(out).astype(v.dtype, copy=False)

    def _free_energies(self, X: Any) -> np.ndarray:
        out = []
        with torch.no_grad():
            for v in self._chunks(X, self.n_features_in_ + self.n_components):
                out.append(self.model_.free_energy(v).double().cpu().numpy())
        return np.concatenate(out)

    def _log_partition(self, method: str) -> float:
        """log Z of the current parameters (exact or AIS), cached until they change."""
        if method not in self._cache:
            m = self.model_
            if method == "exact":
                with torch.no_grad():
                    self._cache[method] = float(m.log_partition())
            else:
                opts = dict(AIS_DEFAULTS)
                opts.update(self.ais_options or {})
                opts.setdefault("seed", int(check_random_state(self.random_state).randint(
                    np.iinfo(np.int32).max)))
                opts.setdefault("progress", False)
                self._cache[method] = float(m.log_partition(method="ais", **opts).value)
        return self._cache[method]

    def _scores(self, X: Any, method: str) -> np.ndarray:
        return -self._free_energies(X) - self._log_partition(method)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density of each row, ``log p(v) = -F(v) - log Z`` with
        ``F(v) = sum_i lambda_i v_i^2 / 2 - b^T v - sum_j softplus(c_j + (v W)_j)``
        and ``log Z`` by ``score_method``:

        - ``"exact"``: the sum over the ``2^H`` hidden states with the Gaussian visible
          units integrated in closed form (raises ``pb.IntractableError`` when ``H`` is
          too large);
        - ``"ais"``: annealed importance sampling (:data:`AIS_DEFAULTS`, ``ais_options``;
          seeded by ``random_state``; a stochastic lower bound on ``log Z``, so the scores
          lean high);
        - ``"auto"`` (default): exact when feasible, else AIS.

        A density, not a probability: it may be positive, and it depends on the units
        of ``X`` (standardising X adds ``sum_i log scale_i`` to every row's score).
        ``log Z`` is computed once per fitted state and reused. Returns a float64 array
        of shape (n_samples,).

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(100, 1))
        >>> rbm = GaussianBernoulliRBM(n_components=2, n_iter=1, random_state=0).fit(X)
        >>> grid = np.linspace(-12, 12, 4001)[:, None]          # integrates to 1
        >>> round(float(np.exp(rbm.score_samples(grid)).sum() * (grid[1, 0] - grid[0, 0])), 6)
        1.0
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        method = self.score_method
        if method == "auto":
            method = "exact" if self.model_.plan.exact_feasible else "ais"
        if method == "exact":
            self.model_.plan.require_exact(
                f"{self._name}.score_samples(score_method='exact')")
        return self._scores(X, method)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples` over the rows of X (higher is better), for
        model selection, e.g. ``GridSearchCV`` on the RBM without ``scoring``.

        >>> import numpy as np
        >>> from pgm_boltz.sklearn import GaussianBernoulliRBM
        >>> X = np.random.default_rng(0).normal(size=(20, 2))
        >>> isinstance(GaussianBernoulliRBM(n_components=2, random_state=0).fit(X).score(X),
        ...            float)
        True
        """
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------------ attributes
    def _param_tensors(self) -> tuple[torch.Tensor, ...]:
        return self._params()

    @property
    def precision_(self) -> np.ndarray:
        """Visible precisions ``lambda = exp(model_.log_precision) = 1 / sigma^2``."""
        return self._block(3)

    @precision_.setter
    def precision_(self, value: Any) -> None:
        value = self._checked(value, (self._layout.V,), "precision_")
        if not (np.isfinite(value).all() and (value > 0).all()):
            raise DataError("precision_ must be finite and > 0 (lambda = 1 / sigma^2)")
        if "model_" not in self.__dict__:
            raise AttributeError(f"{self._name} is not fitted yet")
        m = self.model_
        with torch.no_grad():
            m.log_precision[torch.as_tensor(self._qpos, device=m.device)] = torch.as_tensor(
                np.log(value), dtype=m.dtype, device=m.device)
        self._cache.clear()

    @property
    def sigma_(self) -> np.ndarray:
        """Visible standard deviations given ``h``: ``1 / sqrt(precision_)``."""
        return 1.0 / np.sqrt(self.precision_)
