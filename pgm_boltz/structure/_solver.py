"""Node-wise objectives and their L1-penalised solver, vectorised over all nodes.

Every learner here fits, for each node ``i`` at once, a local field

    h_ti = b_i + sum_{j != i} w_ij F_tj          (t = data row)

on shared features ``F`` (the data's values, centred and scaled per column), by
minimising a per-node loss ``l_i(h_.i)`` plus ``sum_j P_ij |w_ij|``:

* ``"pl"``: the conditional negative log-likelihood (pseudo-likelihood), with
  ``l_ti = A_i(h_ti) - s_ti h_ti`` and ``A_i(h) = log sum_{v in values_i} exp(v h)``;
* ``"rise"``: the interaction screening objective ``sum_t r_t exp(-x_ti h_ti)`` with
  ``x_ti = s_ti - mean(values_i)`` (Vuffray et al. 2016; centred as in GRISE, Vuffray
  et al. 2019, which makes it consistent for any value set);
* ``"logrise"``: its logarithm (Lokhov et al. 2018).

``r_t`` are row weights summing to 1 (counts of unique rows / N). All nodes are solved
together by FISTA with per-node backtracking step sizes and function-value restarts;
one iteration costs two ``(N, n) x (n, n_active)`` products, and nodes drop out of the
active set as they converge. Memory is a few ``(N, n)`` arrays (rows x units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ArgumentError, DivergenceError

__all__ = ["NodeObjective", "fista", "pl_standard_errors", "refit_symmetric"]

_CHUNK = 1 << 22  # entries of an (N, n, K) logit block processed at once


class NodeObjective:
    """The per-node losses of one method on one data set.

    Parameters
    ----------
    S: (N, n) values of the data (value tables applied), torch.
    rw: (N,) row weights summing to 1.
    V, Vmask: (n, K) padded value tables and mask (float / bool tensors).
    kind: ``"pl"``, ``"rise"`` or ``"logrise"``.
    like: another objective whose centring and scaling to reuse (held-out data), so that
        coefficients mean the same in both.
    """

    def __init__(self, S: torch.Tensor, rw: torch.Tensor, V: torch.Tensor,
                 Vmask: torch.Tensor, kind: str, like: NodeObjective | None = None) -> None:
        self.kind = kind
        self.S = S
        self.rw = rw
        self.N, self.n = S.shape
        w = rw[:, None]
        if like is None:
            self.mean = (w * S).sum(0)
            self.sd = ((w * (S - self.mean) ** 2).sum(0)).sqrt()
        else:
            self.mean, self.sd = like.mean, like.sd
        sd = self.sd
        self.F = (S - self.mean) / sd  # standardised features
        self.Fr = self.F * rw[:, None]  # row-weighted, for gradients g^T Fr
        self.V, self.Vmask = V, Vmask
        K = Vmask.sum(1)
        self.two_level = bool((K == 2).all())
        self.lo = V[:, 0]
        self.d = V[:, 1] - V[:, 0]  # two-level: values lo, lo + d
        if self.two_level:
            # l_t = A(h) - s h = softplus(sgn d h) with sgn = 1 - 2 [s is the upper value]
            self.ds = (1.0 - 2.0 * (S - self.lo) / self.d) * self.d
        self.vbar = (V * Vmask).sum(1) / K  # mean of each value table
        self.X = S - self.vbar  # RISE's centred node variable
        # largest conditional variance of each node's value: (range)^2 / 4
        vmin = torch.where(Vmask, V, torch.full_like(V, math.inf)).amin(1)
        vmax = torch.where(Vmask, V, torch.full_like(V, -math.inf)).amax(1)
        self.var_max = (vmax - vmin) ** 2 / 4

    # -- per-sample gradients g_ti = d l_ti / d h_ti (and per-node losses) ------------
    def _cols(self, X: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return X if idx.numel() == self.n else X[:, idx]

    def _pl(self, H: torch.Tensor, idx: torch.Tensor, grad: bool):
        rw = self.rw
        if self.two_level:
            ds = self._cols(self.ds, idx)
            u = H * ds
            loss = rw @ torch.nn.functional.softplus(u)
            if not grad:
                return loss, None
            return loss, torch.sigmoid(u).mul_(ds)
        V = self.V[idx]
        neg = torch.tensor(-math.inf, dtype=H.dtype, device=H.device)
        mask = self.Vmask[idx]
        S = self.S[:, idx]
        N, na = H.shape
        rows = max(1, _CHUNK // max(1, na * V.shape[1]))
        loss = torch.zeros(na, dtype=H.dtype, device=H.device)
        G = torch.empty_like(H) if grad else None
        for r0 in range(0, N, rows):
            h = H[r0:r0 + rows]
            logits = torch.where(mask, h[:, :, None] * V, neg)
            A = torch.logsumexp(logits, -1)
            loss += (rw[r0:r0 + rows, None] * (A - S[r0:r0 + rows] * h)).sum(0)
            if grad:
                p = torch.softmax(logits, -1)
                G[r0:r0 + rows] = (p * torch.where(mask, V, 0.0)).sum(-1) - S[r0:r0 + rows]
        return loss, G

    def _rise(self, H: torch.Tensor, idx: torch.Tensor, grad: bool):
        X = self.X[:, idx]
        e = torch.exp(-X * H)
        iso = self.rw @ e
        g = -X * e if grad else None
        if self.kind == "rise":
            return iso, g
        return torch.log(iso), (g / iso if grad else None)

    def variance(self, H: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``Var(s_i | h_ti)`` (N, n_a): the curvature ``A_i''(h)`` of the PL loss."""
        if self.two_level:
            d = self.d[idx]
            p = torch.sigmoid(H * d)
            return d * d * p * (1.0 - p)
        V = self.V[idx]
        mask = self.Vmask[idx]
        neg = torch.tensor(-math.inf, dtype=H.dtype, device=H.device)
        out = torch.empty_like(H)
        rows = max(1, _CHUNK // max(1, H.shape[1] * V.shape[1]))
        Vz = torch.where(mask, V, 0.0)
        for r0 in range(0, H.shape[0], rows):
            h = H[r0:r0 + rows]
            p = torch.softmax(torch.where(mask, h[:, :, None] * V, neg), -1)
            m1 = (p * Vz).sum(-1)
            out[r0:r0 + rows] = (p * Vz * Vz).sum(-1) - m1 * m1
        return out

    def per_sample(self, H: torch.Tensor, idx: torch.Tensor, grad: bool = True):
        """``(loss (n_a,), g (N, n_a))``: per-node losses and ``d l_ti / d h_ti``."""
        if self.kind == "pl":
            return self._pl(H, idx, grad)
        return self._rise(H, idx, grad)

    def fields(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``H = b + F W^T`` for rows ``W`` (n_a, n) of node weights."""
        return torch.addmm(b, self.F, W.T)

    def loadings(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Score standard deviations ``omega_ij = sqrt(sum_t r_t (g_ti F_tj)^2)`` at the
        parameters ``(W, b)``: the per-coefficient noise scale of the gradient (times
        sqrt(N)), used as L1 penalty loadings (Belloni et al. 2012)."""
        idx = torch.arange(self.n, device=W.device)
        _, g = self.per_sample(self.fields(W, b), idx)
        return ((g * g * self.rw[:, None]).T @ (self.F * self.F)).clamp_min(1e-300).sqrt()

    def score(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The gradient ``d L_i / d w_ij`` at ``(W, b)`` (n, n)."""
        idx = torch.arange(self.n, device=W.device)
        _, g = self.per_sample(self.fields(W, b), idx)
        return (g * self.rw[:, None]).T @ self.F

    def loss_rows(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-node losses at ``(W, b)`` (n,)."""
        idx = torch.arange(self.n, device=W.device)
        return self.per_sample(self.fields(W, b), idx, grad=False)[0]

    def to_raw(self, W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node-wise parameters in the units of the values: ``h_i = b_i + sum_j W_ij s_j``."""
        Wr = W / self.sd
        return Wr, b - Wr @ self.mean

    def from_raw(self, W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`to_raw`."""
        return W * self.sd, b + W @ self.mean


@dataclass
class FistaResult:
    W: torch.Tensor  # (n, n) node-wise weights (standardised features), zero diagonal
    b: torch.Tensor  # (n,)
    iterations: int
    converged: torch.Tensor  # (n,) bool


def _penalty(W: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    return torch.where(W != 0, P * W.abs(), torch.zeros_like(W)).sum(1)


def null_bias(obj: NodeObjective, iters: int = 50) -> torch.Tensor:
    """Each node's best bias with every coupling at 0, from its value frequencies alone
    (damped Newton on ``K`` values per node, no pass over the rows).

    PL: ``A_i'(b) = mean_t s_ti``; RISE / logRISE: ``min_b sum_k p_ik exp(-x_k b)``.
    """
    V, mask = obj.V, obj.Vmask
    n, K = V.shape
    dt = obj.S.dtype
    # frequencies of each level: p_ik = sum_t r_t [s_ti == V_ik]
    p = torch.zeros(n, K, dtype=dt, device=V.device)
    for k in range(K):
        p[:, k] = (obj.rw[:, None] * (V[:, k] == obj.S).to(dt)).sum(0)
    p = torch.where(mask, p, torch.zeros_like(p))
    Vz = torch.where(mask, V, torch.zeros_like(V))
    neg = torch.tensor(-math.inf, dtype=dt, device=V.device)
    b = torch.zeros(n, dtype=dt, device=V.device)
    x = Vz - obj.vbar[:, None]
    for _ in range(iters):
        if obj.kind == "pl":
            q = torch.softmax(torch.where(mask, b[:, None] * V, neg), -1)
            m1 = (q * Vz).sum(1)
            grad = m1 - (p * Vz).sum(1)
            hess = (q * Vz * Vz).sum(1) - m1 * m1
        else:
            e = p * torch.exp(-x * b[:, None])
            z = e.sum(1)
            grad = -(e * x).sum(1) / z
            hess = (e * x * x).sum(1) / z - grad * grad
        step = grad / hess.clamp_min(1e-12)
        step = step.clamp(-2.0, 2.0)
        b = b - step
        if float(step.abs().max()) < 1e-13:
            break
    return b


def fista(obj: NodeObjective, P: torch.Tensor, W0: torch.Tensor, b0: torch.Tensor, *,
          max_iter: int = 5000, tol: float = 1e-6, bar=None) -> FistaResult:
    """Minimise ``l_i(b_i, w_i) + sum_j P_ij |w_ij|`` for every node ``i`` at once.

    ``P`` (n, n) holds the penalties (``inf`` pins a coefficient at 0; the diagonal is
    pinned). Accelerated proximal gradient (FISTA, Beck & Teboulle 2009) with adaptive
    restarts (O'Donoghue & Candès 2015). Pseudo-likelihood has a global step bound, the
    Lipschitz constant ``L_i = max Var(s_i) * ||sum_t r_t [1, F_t][1, F_t]^T||``, so an
    iteration costs one gradient (two ``(N, n) x (n, n_active)`` products) and restarts
    are gradient-based; interaction screening has none (``exp`` is unbounded), so it
    uses per-node backtracking and function-value restarts. Node ``i`` stops when
    ``L_i |x_new - y|_inf`` (its prox-gradient step, a bound on its KKT violation) is
    below ``tol``; converged nodes leave the active set. Raises
    :class:`DivergenceError` if the objective becomes non-finite.
    """
    n = obj.n
    dev, dt = obj.F.device, obj.F.dtype
    P = P.clone()
    P.fill_diagonal_(math.inf)
    pinned = torch.isinf(P)
    W = torch.where(pinned, torch.zeros_like(W0), W0)
    b = b0.clone()
    converged = torch.zeros(n, dtype=torch.bool, device=dev)
    A = torch.arange(n, device=dev)
    search = True
    eps = torch.finfo(dt).eps
    tol = max(float(tol), 100.0 * eps)  # float32 cannot resolve finer KKT violations
    Lq = _gram_norm(obj)
    if search:
        L = torch.full((n,), Lq, dtype=dt, device=dev) * (obj.X ** 2).amax(0)
    else:
        L = (obj.var_max * Lq).clamp_min(1e-12)
    PA, pinA = P, pinned
    Wx, bx = W.clone(), b.clone()
    Hx = obj.fields(Wx, bx)
    Fx = None
    if search:
        fx, _ = obj.per_sample(Hx, A, grad=False)
        Fx = fx + _penalty(Wx, PA)
        if not bool(torch.isfinite(Fx).all()):
            raise DivergenceError("the structure objective is not finite at the start; "
                                  "the data or the starting point are extreme")
    Wy, by, Hy = Wx, bx, Hx
    t = torch.ones(n, dtype=dt, device=dev)
    it = 0
    for _ in range(max_iter):
        it += 1
        fy, g = obj.per_sample(Hy, A)
        gW = g.T @ obj.Fr
        gb = obj.rw @ g
        Lt = L * 0.9 if search else L
        for _ in range(60):
            Wn = Wy - gW / Lt[:, None]
            Wn = torch.sign(Wn) * (Wn.abs() - PA / Lt[:, None]).clamp_min(0.0)
            Wn = torch.where(pinA, torch.zeros_like(Wn), Wn)
            bn = by - gb / Lt
            Hn = obj.fields(Wn, bn)
            if not search:
                break
            fn, _ = obj.per_sample(Hn, A, grad=False)
            D = Wn - Wy
            db = bn - by
            Q = fy + (gW * D).sum(1) + gb * db + 0.5 * Lt * ((D * D).sum(1) + db * db)
            bad = ~(fn <= Q + 8.0 * eps * fy.abs().clamp_min(1.0))
            if not bool(bad.any()):
                break
            Lt = torch.where(bad, Lt * 2.0, Lt)
        else:
            raise DivergenceError("the structure solver's line search failed; the data may "
                                  "be degenerate (e.g. a column determined by the others)")
        L = Lt
        dW, db_ = Wn - Wy, bn - by
        kkt = L * torch.maximum(dW.abs().amax(1), db_.abs())
        if search:
            Fn = fn + _penalty(Wn, PA)
            if not bool(torch.isfinite(Fn).all()):
                raise DivergenceError("the structure objective became non-finite; the data "
                                      "may be separable (a column determined by the "
                                      "others): use a larger lam")
            restart = Fn > Fx
            Fx = Fn
        else:  # gradient restart: the step and the momentum disagree
            restart = ((dW * (Wn - Wx)).sum(1) + db_ * (bn - bx)) > 0
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        beta = torch.where(restart, torch.zeros_like(t), (t - 1.0) / t_new)
        t = torch.where(restart, torch.ones_like(t), t_new)
        Wy = Wn + beta[:, None] * (Wn - Wx)
        by = bn + beta * (bn - bx)
        Hy = torch.addcmul(Hn, beta, Hn - Hx)
        Wx, bx, Hx = Wn, bn, Hn
        done = kkt < tol
        if bool(done.any()):
            if not bool(torch.isfinite(Wx[done]).all()):
                raise DivergenceError("the structure objective became non-finite; use a "
                                      "larger lam")
            W[A[done]] = Wx[done]
            b[A[done]] = bx[done]
            converged[A[done]] = True
            if bar is not None:
                bar.update(int(done.sum()))
            keep = ~done
            if not bool(keep.any()):
                break
            A, PA, pinA, L, t = A[keep], PA[keep], pinA[keep], L[keep], t[keep]
            Wx, bx, Hx = Wx[keep], bx[keep], Hx[:, keep]
            Wy, by, Hy = Wy[keep], by[keep], Hy[:, keep]
            if search:
                Fx = Fx[keep]
    if not bool(converged.all()):
        W[A] = Wx
        b[A] = bx
        if bar is not None:
            bar.update(int((~converged).sum()))
    if not (bool(torch.isfinite(W).all()) and bool(torch.isfinite(b).all())):
        raise DivergenceError("the structure solver diverged (non-finite coefficients); the "
                              "data may be separable: use a larger lam")
    return FistaResult(W=W, b=b, iterations=it, converged=converged)


def _gram_norm(obj: NodeObjective) -> float:
    """Largest eigenvalue of ``sum_t r_t [1, F_t][1, F_t]^T``: ``F`` is centred, so the
    intercept decouples (eigenvalue 1) from ``C = sum_t r_t F_t F_t^T``."""
    F = obj.F
    C = (F * obj.rw[:, None]).T @ F
    if obj.n <= 4096:
        return max(1.0, float(torch.linalg.eigvalsh(C)[-1]))
    v = torch.ones(obj.n, dtype=F.dtype, device=F.device) / math.sqrt(obj.n)
    lam = 1.0
    for _ in range(100):  # power iteration approaches from below: keep a margin
        u = C @ v
        lam = float(u.norm())
        if lam == 0.0:
            break
        v = u / lam
    return max(1.0, 1.1 * lam)


def _hessian_blocks(obj: NodeObjective, edges: np.ndarray) -> tuple:
    """Index tables for the joint pseudo-likelihood Hessian: for node ``i``, the other
    ends of its edges ``nbr[i]`` (padded with ``n``, a zero column) and the parameter
    indices ``pix[i] = [c_i, w_e for e touching i]`` (padded with ``n + m``, a dummy)."""
    n, m = obj.n, len(edges)
    edges_of: list[list[int]] = [[] for _ in range(n)]
    for e, (i, j) in enumerate(edges.tolist()):
        edges_of[i].append(e)
        edges_of[j].append(e)
    D = max([len(es) for es in edges_of] + [0])
    nbr = np.full((n, D), n, dtype=np.int64)
    pix = np.full((n, D + 1), n + m, dtype=np.int64)
    for i, es in enumerate(edges_of):
        pix[i, 0] = i
        for k, e in enumerate(es):
            nbr[i, k] = edges[e, 1] if edges[e, 0] == i else edges[e, 0]
            pix[i, k + 1] = n + e
    dev = obj.S.device
    return torch.as_tensor(nbr, device=dev), torch.as_tensor(pix, device=dev)


def _joint(obj: NodeObjective, Sc: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
           c: torch.Tensor, w: torch.Tensor, l2: float, grad: bool = True):
    """Joint PL loss, gradient and the (N, n) pieces at ``(c, w)``."""
    n = obj.n
    Wm = _sym(w, u, v, n)
    H = torch.addmm(c, Sc, Wm)  # W symmetric: (Sc W)_ti = sum_j s_tj W_ji
    A = torch.arange(n, device=Sc.device)
    loss, g = obj.per_sample(H, A, grad=grad)
    value = loss.sum() + 0.5 * l2 * (w * w).sum()
    if not grad:
        return value, None, H, None
    gr = g * obj.rw[:, None]
    gW = Sc.T @ gr  # gW[j, i] = sum_t r_t s_tj g_ti
    full = torch.cat([gr.sum(0), gW[u, v] + gW[v, u] + l2 * w])
    return value, full, H, g


def _hessian(obj: NodeObjective, Sc: torch.Tensor, H: torch.Tensor, blocks: tuple,
             p: int) -> torch.Tensor:
    """``sum_t r_t sum_i v_ti a_ti a_ti^T`` (``v = Var(s_i | h_ti)``): node ``i``'s
    block is the weighted Gram of ``[1, s_nbr(i)]``, all nodes at once (rows chunked so
    memory stays rows x units x max degree)."""
    n = obj.n
    nbr, pix = blocks
    dt, dev = Sc.dtype, Sc.device
    var = obj.variance(H, torch.arange(n, device=dev)) * obj.rw[:, None]
    pad = torch.cat([Sc, torch.zeros(Sc.shape[0], 1, dtype=dt, device=dev)], dim=1)
    D1 = pix.shape[1]
    rows = max(1, (1 << 22) // max(1, n * D1))
    G = torch.zeros(n, D1, D1, dtype=dt, device=dev)
    G[:, 0, 0] = var.sum(0)
    for r0 in range(0, Sc.shape[0], rows):
        X = pad[r0:r0 + rows][:, nbr]  # (rows, n, D): the neighbours' values
        Xv = X * var[r0:r0 + rows, :, None]
        G[:, 0, 1:] += Xv.sum(0)
        G[:, 1:, 1:] += torch.einsum("tia,tib->iab", Xv, X)
    G[:, 1:, 0] = G[:, 0, 1:]
    Hm = torch.zeros(p + 1, p + 1, dtype=dt, device=dev)
    Hm.index_put_((pix[:, :, None].expand(n, D1, D1), pix[:, None, :].expand(n, D1, D1)),
                  G, accumulate=True)
    return Hm[:p, :p].contiguous()


def refit_symmetric(obj: NodeObjective, edges: np.ndarray, b0: torch.Tensor,
                    w0: torch.Tensor, *, l2: float = 1e-8, max_iter: int = 100,
                    tol: float = 1e-10, n_samples: int | None = None,
                    hessian: torch.Tensor | None = None, dense_limit: int = 4096
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                               torch.Tensor | None]:
    """Unpenalised joint pseudo-likelihood on a fixed symmetric support.

    Minimises ``sum_i sum_t r_t [A_i(h_ti) - s_ti h_ti] + l2/2 |w|^2`` over biases ``b``
    (n,) and one weight per edge ``w`` (m,), with ``h_ti = b_i + sum_j W_ij s_j`` and
    ``W`` symmetric on ``edges`` (``obj`` must be a ``"pl"`` objective). When
    ``n + m <= dense_limit``: damped Newton with the exact Hessian, reusing a factorised
    Hessian while it keeps the Newton decrement falling tenfold per step (so a warm start
    with ``hessian`` from a nearby problem costs a few gradients); else L-BFGS.

    Returns ``(b, w, se, H)`` in the units of the values: ``se`` the weights' sandwich
    standard errors (see :func:`pl_standard_errors`) and ``H`` the Hessian at the
    solution when ``n_samples`` is given and the Hessian is dense, else None.
    """
    n, m = obj.n, len(edges)
    dev = obj.S.device
    u = torch.as_tensor(edges[:, 0], device=dev, dtype=torch.long)
    v = torch.as_tensor(edges[:, 1], device=dev, dtype=torch.long)
    Sc = obj.S - obj.mean  # centred values: h_i = c_i + sum_j W_ij (s_j - m_j)
    c = b0 + _sym(w0, u, v, n) @ obj.mean
    w = w0.clone()
    p = n + m
    se = Hm = None
    if p > dense_limit:
        c, w = _refit_lbfgs(obj, Sc, u, v, c, w, l2, max_iter * 5, tol)
    else:
        blocks = _hessian_blocks(obj, edges)
        value, grad, H, g = _joint(obj, Sc, u, v, c, w, l2)

        def factor(Hmat: torch.Tensor) -> torch.Tensor:
            Hmat = Hmat.clone()
            Hmat[n:, n:].diagonal().add_(l2)
            jitter = 1e-12 * float(Hmat.diagonal().abs().max())
            for _ in range(20):
                L, info = torch.linalg.cholesky_ex(
                    Hmat + jitter * torch.eye(p, dtype=Hmat.dtype, device=dev))
                if int(info) == 0:
                    return L
                jitter = max(jitter * 100, 1e-10)
            raise DivergenceError("the refit's Hessian is not positive definite; the data "
                                  "may be degenerate on the selected edges")

        stale = hessian is not None and hessian.shape == (p, p)
        chol = factor(hessian if stale else _hessian(obj, Sc, H, blocks, p))
        prev = math.inf
        for _ in range(max_iter):
            step = torch.cholesky_solve(grad[:, None], chol)[:, 0]
            decrement = float(grad @ step)
            if decrement < 2 * tol:
                break
            if stale and decrement > 0.1 * prev:  # the old Hessian no longer pays
                chol = factor(_hessian(obj, Sc, H, blocks, p))
                stale, prev = False, math.inf
                continue
            eta = 1.0
            for _ls in range(50):
                c1, w1 = c - eta * step[:n], w - eta * step[n:]
                v1 = _joint(obj, Sc, u, v, c1, w1, l2, grad=False)[0]
                if bool(torch.isfinite(v1)) and float(v1) <= float(value) - \
                        0.25 * eta * decrement:
                    break
                eta *= 0.5
            else:
                break
            c, w = c1, w1
            value, grad, H, g = _joint(obj, Sc, u, v, c, w, l2)
            prev, stale = decrement, True
        if n_samples is not None:
            Hm = _hessian(obj, Sc, H, blocks, p)
            Hl = Hm.clone()
            Hl[n:, n:].diagonal().add_(l2)
            se = _sandwich(obj, Sc, u, v, g, Hl, n_samples)[n:]
    if not (bool(torch.isfinite(c).all()) and bool(torch.isfinite(w).all())):
        raise DivergenceError("the unpenalised refit diverged (the data may be separable "
                              "on the selected edges); use refit=False or more data")
    b = c - _sym(w, u, v, n) @ obj.mean
    return b, w, se, Hm


def _refit_lbfgs(obj, Sc, u, v, c, w, l2, max_iter, tol):
    n = obj.n
    theta = torch.cat([c, w]).detach().clone().requires_grad_(True)

    def closure():
        value, grad, _, _ = _joint(obj, Sc, u, v, theta[:n].detach(), theta[n:].detach(),
                                   l2)
        theta.grad = grad
        return value

    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=tol, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")
    opt.step(closure)
    return theta[:n].detach(), theta[n:].detach()


def _sandwich(obj, Sc, u, v, g, Hm, n_samples):
    """``sqrt(diag(H^{-1} J H^{-1}) / N)`` with ``J = sum_t r_t psi_t psi_t^T``."""
    p = Hm.shape[0]
    r = obj.rw[:, None]
    Jm = torch.zeros_like(Hm)
    rows = max(1, (1 << 22) // p)
    for r0 in range(0, Sc.shape[0], rows):
        gc, sc = g[r0:r0 + rows], Sc[r0:r0 + rows]
        psi = torch.cat([gc, gc[:, u] * sc[:, v] + gc[:, v] * sc[:, u]], dim=1)
        Jm += (psi * r[r0:r0 + rows]).T @ psi
    Hinv_J = torch.linalg.solve(Hm, Jm)
    cov = torch.linalg.solve(Hm, Hinv_J.T).T / n_samples
    return cov.diagonal().clamp_min(0.0).sqrt()


def pl_standard_errors(obj: NodeObjective, edges: np.ndarray, b: torch.Tensor,
                       w: torch.Tensor, n_samples: int, dense_limit: int = 4096
                       ) -> torch.Tensor:
    """Sandwich standard errors of the joint pseudo-likelihood weights ``w`` (m,).

    With ``theta = (c, w)`` (biases of the centred values, one weight per edge),
    ``H = sum_t r_t sum_i v_ti a_ti a_ti^T`` (``v_ti = Var(s_i | h_ti)``,
    ``a_ti = d h_ti / d theta``) and ``J = sum_t r_t psi_t psi_t^T`` (``psi_t`` row t's
    score), ``Cov(theta) = H^{-1} J H^{-1} / N`` (pseudo-likelihood is not a likelihood,
    so the inverse Hessian alone would be wrong). Memory: ``(n + m)^2`` for ``H`` and
    ``J`` and rows x units for the data; above ``dense_limit`` parameters only the
    diagonals are used (``se_e = sqrt(J_ee / N) / H_ee``).
    """
    n, m = obj.n, len(edges)
    dev, dt = obj.S.device, obj.S.dtype
    if m == 0:
        return torch.zeros(0, dtype=dt, device=dev)
    u = torch.as_tensor(edges[:, 0], device=dev, dtype=torch.long)
    v = torch.as_tensor(edges[:, 1], device=dev, dtype=torch.long)
    Sc = obj.S - obj.mean
    c = b + _sym(w, u, v, n) @ obj.mean
    _, _, H, g = _joint(obj, Sc, u, v, c, w, 0.0)
    if n + m > dense_limit:
        r = obj.rw[:, None]
        var = obj.variance(H, torch.arange(n, device=dev))
        h_ee = (r * (var[:, u] * Sc[:, v] ** 2 + var[:, v] * Sc[:, u] ** 2)).sum(0)
        j_ee = (r * (g[:, u] * Sc[:, v] + g[:, v] * Sc[:, u]) ** 2).sum(0)
        return (j_ee / n_samples).sqrt() / h_ee
    Hm = _hessian(obj, Sc, H, _hessian_blocks(obj, edges), n + m)
    return _sandwich(obj, Sc, u, v, g, Hm, n_samples)[n:]


def _sym(w: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    W = torch.zeros(n, n, dtype=w.dtype, device=w.device)
    if len(u):
        W = W.index_put((u, v), w).index_put((v, u), w)
    return W


def check_positive(name: str, value: object, integer: bool = False) -> None:
    """ArgumentError unless ``value`` is a positive (integer) number."""
    ok_type = (isinstance(value, (int, np.integer)) if integer
               else isinstance(value, (int, float, np.integer, np.floating)))
    if isinstance(value, bool) or not ok_type or not value > 0 or \
            not math.isfinite(float(value)):
        kind = "a positive integer" if integer else "a positive finite number"
        raise ArgumentError(f"{name} must be {kind}, got {value!r}")
