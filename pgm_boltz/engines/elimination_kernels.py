"""Numba kernels of the elimination engine: rescaled sum-product over a fixed schedule.

The schedule (built by :mod:`pgm_boltz.engines.elimination`) eliminates one node per
step. Step ``t`` eliminates ``v`` with the *rest* scope ``S`` (the later nodes it meets);
its inputs are tables over subsets of ``{v} ∪ S``: the node's unary table, the tables of
its edges to later nodes and the messages of earlier steps that contain ``v``. The step
writes the message

    m_t(x_S) = sum_{x_v} prod_inputs phi(x_v, x_S)

Every table is kept in exp space divided by its largest entry (a rescaled message); the
logs of the divisors add up to ``log Z``. A raw message entry below ``TINY`` (2^-960)
means the rescaled form would lose precision (products and sums of positive numbers only:
no cancellation, so above it the relative error is ~ steps × eps); that row is then
redone in log space (inputs added, ``x_v`` summed out by log-sum-exp), which is exact for
any finite parameters at the price of one ``exp`` per table entry.

Each input is addressed by a base offset and strides: ``x_v`` has stride ``sv``; the rest
scope splits into *outer* dims (walked by an odometer with per-input strides) and an
inner block of trailing dims (per-input offset tables ``tab``), so the innermost loops are
plain gathers over the block.

The backward pass is reverse-mode through the same schedule: the adjoint of the message
of step ``t`` (w.r.t. its log) is ``gm_t``; each union entry gets
``gm_t(x_S) * phi(x_v, x_S) / m_t(x_S)`` (a clique marginal times the output gradient),
scattered back to every input. The adjoints of the unary and edge tables are the node and
pair marginals, from which the gradients of biases, couplings and level log-weights follow.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "TINY",
    "backward_rows",
    "edge_moments",
    "edge_tables",
    "forward_rows",
    "sample_rows",
]

TINY = 2.0 ** -960  # smallest raw message entry accepted (2^-62 of slack above denormals)


@nb.njit(cache=True, nogil=True)
def _unary_tables(row_bias: np.ndarray, vals: np.ndarray, lw: np.ndarray, kk: np.ndarray,
                  ws: np.ndarray, uoff: int, logspace: bool) -> tuple:
    """Write ``exp(b_i v_i(k) + c_i(k) - max_k)`` (log space: ``b_i v_i(k) + c_i(k)``)
    into ``ws[uoff + i*Kmax + k]``.

    Returns (sum of the maxima, ok) where ok is False when an exp-space entry is below
    TINY or a value is not finite.
    """
    n, kmax = vals.shape
    scale = 0.0
    for i in range(n):
        mx = -math.inf
        for k in range(kk[i]):
            a = row_bias[i] * vals[i, k] + lw[i, k]
            ws[uoff + i * kmax + k] = a
            if a > mx:
                mx = a
        if logspace:
            continue
        if not math.isfinite(mx):
            return scale, False
        scale += mx
        for k in range(kk[i]):
            e = math.exp(ws[uoff + i * kmax + k] - mx)
            if not e >= TINY:  # also catches NaN
                return scale, False
            ws[uoff + i * kmax + k] = e
    return scale, True


@nb.njit(cache=True, nogil=True)
def _walk(t: int, ws: np.ndarray, gws: np.ndarray, msg_off: np.ndarray,
          gmsg_off: np.ndarray, st: np.ndarray, in_src: np.ndarray, in_base: np.ndarray,
          in_sv: np.ndarray, in_kind: np.ndarray, dim_k: np.ndarray,
          dim_stride: np.ndarray, tab: np.ndarray, off: np.ndarray, cnt: np.ndarray,
          tmp: np.ndarray, acc: np.ndarray, rs: np.ndarray, backward: bool,
          logspace: bool) -> tuple:
    """One step, forward (write the raw message, return its max and min) or backward
    (scatter the message's adjoint to the inputs' adjoints; gws holds the adjoints).
    In log space the inputs are added and ``x_v`` is summed out by log-sum-exp.

    Inputs of kind 0 are constant over the inner block (a scalar per ``x_v``), kind 1
    contiguous over it (plain loads), kind 2 anything else (gathers through ``tab``).
    """
    kv = st[t, 0]
    R = st[t, 1]
    nin = st[t, 2]
    i0 = st[t, 3]
    nd = st[t, 4]
    d0 = st[t, 5]
    bq = st[t, 6]
    tab0 = st[t, 7]
    ds0 = st[t, 8]
    for i in range(nin):
        s = in_src[i0 + i]
        off[i] = msg_off[s] if s >= 0 else in_base[i0 + i]
    for d in range(nd):
        cnt[d] = 0
    out = msg_off[t]
    gout = gmsg_off[t]
    mx = -math.inf if logspace else 0.0
    mn = math.inf
    n_outer = R // bq
    for o in range(n_outer):
        for x in range(kv):
            c = 0.0 if logspace else 1.0
            have = False
            for i in range(nin):
                kind = in_kind[i0 + i]
                oi = off[i] + x * in_sv[i0 + i]
                if kind == 0:
                    if logspace:
                        c += ws[oi]
                    else:
                        c *= ws[oi]
                elif kind == 1:
                    if not have:
                        for j in range(bq):
                            tmp[x, j] = ws[oi + j]
                    elif logspace:
                        for j in range(bq):
                            tmp[x, j] += ws[oi + j]
                    else:
                        for j in range(bq):
                            tmp[x, j] *= ws[oi + j]
                    have = True
                else:
                    tb = tab0 + i * bq
                    if not have:
                        for j in range(bq):
                            tmp[x, j] = ws[oi + tab[tb + j]]
                    elif logspace:
                        for j in range(bq):
                            tmp[x, j] += ws[oi + tab[tb + j]]
                    else:
                        for j in range(bq):
                            tmp[x, j] *= ws[oi + tab[tb + j]]
                    have = True
            if not have:
                for j in range(bq):
                    tmp[x, j] = c
            elif logspace:
                for j in range(bq):
                    tmp[x, j] += c
            else:
                for j in range(bq):
                    tmp[x, j] *= c
        # acc = sum over x_v (log space: log-sum-exp)
        if logspace:
            for j in range(bq):
                m = tmp[0, j]
                for x in range(1, kv):
                    m = max(m, tmp[x, j])
                a = 0.0
                for x in range(kv):
                    a += math.exp(tmp[x, j] - m)
                acc[j] = m + math.log(a)
        else:
            for j in range(bq):
                acc[j] = tmp[0, j]
            for x in range(1, kv):
                for j in range(bq):
                    acc[j] += tmp[x, j]
        base = o * bq
        if not backward:
            for j in range(bq):
                a = acc[j]
                ws[out + base + j] = a
                mx = max(mx, a)
                mn = min(mn, a)
        else:
            # each union entry's share: gm(x_S) * phi(x_v, x_S) / m(x_S)
            if logspace:
                for x in range(kv):
                    r = 0.0
                    for j in range(bq):
                        a = math.exp(tmp[x, j] - acc[j]) * gws[gout + base + j]
                        tmp[x, j] = a
                        r += a
                    rs[x] = r
            else:
                for j in range(bq):
                    acc[j] = gws[gout + base + j] / acc[j]
                for x in range(kv):
                    r = 0.0
                    for j in range(bq):
                        a = tmp[x, j] * acc[j]
                        tmp[x, j] = a
                        r += a
                    rs[x] = r
            for i in range(nin):
                s = in_src[i0 + i]
                kind = in_kind[i0 + i]
                # adjoints of messages live in their own (compact) slots
                oi = off[i] - msg_off[s] + gmsg_off[s] if s >= 0 else off[i]
                for x in range(kv):
                    ox = oi + x * in_sv[i0 + i]
                    if kind == 0:
                        gws[ox] += rs[x]
                    elif kind == 1:
                        for j in range(bq):
                            gws[ox + j] += tmp[x, j]
                    else:
                        tb = tab0 + i * bq
                        for j in range(bq):
                            gws[ox + tab[tb + j]] += tmp[x, j]
        # odometer over the outer dims, last one fastest
        d = nd - 1
        while d >= 0:
            cnt[d] += 1
            sb = ds0 + d * nin
            for i in range(nin):
                off[i] += dim_stride[sb + i]
            if cnt[d] < dim_k[d0 + d]:
                break
            for i in range(nin):
                off[i] -= dim_k[d0 + d] * dim_stride[sb + i]
            cnt[d] = 0
            d -= 1
    return mx, mn


@nb.njit(cache=True, nogil=True)
def _row_forward(row_bias: np.ndarray, vals: np.ndarray, lw: np.ndarray, kk: np.ndarray,
                 ws: np.ndarray, uoff: int, msg_off: np.ndarray, st: np.ndarray,
                 in_src: np.ndarray, in_base: np.ndarray, in_sv: np.ndarray,
                 in_kind: np.ndarray, dim_k: np.ndarray, dim_stride: np.ndarray,
                 tab: np.ndarray, off: np.ndarray, cnt: np.ndarray, tmp: np.ndarray,
                 acc: np.ndarray, rs: np.ndarray, logspace: bool) -> tuple:
    """Forward pass of one row (edge tables already in ws): (log Z less the edge tables'
    scale, ok); ok is False when an exp-space table lost precision."""
    scale, ok = _unary_tables(row_bias, vals, lw, kk, ws, uoff, logspace)
    if not ok:
        return scale, False
    T = st.shape[0]
    for t in range(T):
        mx, mn = _walk(t, ws, ws, msg_off, msg_off, st, in_src, in_base, in_sv, in_kind,
                       dim_k, dim_stride, tab, off, cnt, tmp, acc, rs, False, logspace)
        if logspace:
            if st[t, 9] == 1:  # a root: the log Z of its component
                scale += ws[msg_off[t]]
            continue
        if not mn >= TINY:
            return scale, False
        scale += math.log(mx)
        inv = 1.0 / mx
        out = msg_off[t]
        for r in range(st[t, 1]):
            ws[out + r] *= inv
    return scale, True


@nb.njit(cache=True, nogil=True)
def forward_rows(r0: int, r1: int, bias: np.ndarray, vals: np.ndarray, lw: np.ndarray,
                 kk: np.ndarray, etab: np.ndarray, edge_scale: float, ltab: np.ndarray,
                 ws: np.ndarray, per_row: bool, uoff: int, msg_off: np.ndarray,
                 st: np.ndarray, in_src: np.ndarray, in_base: np.ndarray, in_sv: np.ndarray,
                 in_kind: np.ndarray, dim_k: np.ndarray, dim_stride: np.ndarray,
                 tab: np.ndarray, max_in: int, max_dims: int, max_kv: int, max_bq: int,
                 logz: np.ndarray, mode: np.ndarray) -> None:
    """log Z of rows ``r0..r1-1`` of ``bias`` into ``logz``; ``mode[r]`` is 0 where the
    rescaled exp-space pass held, 1 where the row was done in log space (always when
    ``etab``, the exp-space edge tables, is empty while ``ltab``, the log ones, is not).
    ``ws`` has one row per data row when ``per_row`` (kept for the backward pass), else
    one scratch row reused."""
    off = np.empty(max_in, np.int64)
    cnt = np.empty(max(max_dims, 1), np.int64)
    tmp = np.empty((max_kv, max_bq))
    acc = np.empty(max_bq)
    rs = np.empty(max_kv)
    ne = ltab.shape[0]
    exp_ok = etab.shape[0] == ne
    filled = -1  # which edge tables the scratch row holds (0 exp, 1 log)
    for r in range(r0, r1):
        w = ws[r] if per_row else ws[0]
        good = False
        if exp_ok:
            if per_row or filled != 0:
                w[:ne] = etab
                filled = 0
            s, good = _row_forward(bias[r], vals, lw, kk, w, uoff, msg_off, st, in_src,
                                   in_base, in_sv, in_kind, dim_k, dim_stride, tab, off,
                                   cnt, tmp, acc, rs, False)
            logz[r] = s + edge_scale
            mode[r] = 0
        if not good:
            if per_row or filled != 1:
                w[:ne] = ltab
                filled = 1
            s, _ = _row_forward(bias[r], vals, lw, kk, w, uoff, msg_off, st, in_src,
                                in_base, in_sv, in_kind, dim_k, dim_stride, tab, off, cnt,
                                tmp, acc, rs, True)
            logz[r] = s
            mode[r] = 1


@nb.njit(cache=True, nogil=True)
def backward_rows(r0: int, r1: int, g: np.ndarray, bias: np.ndarray, vals: np.ndarray,
                  lw: np.ndarray, kk: np.ndarray, etab: np.ndarray, ltab: np.ndarray,
                  mode: np.ndarray, ws: np.ndarray, saved: bool, gws: np.ndarray, uoff: int,
                  msg_off: np.ndarray, gmsg_off: np.ndarray, st: np.ndarray,
                  in_src: np.ndarray, in_base: np.ndarray, in_sv: np.ndarray,
                  in_kind: np.ndarray, dim_k: np.ndarray, dim_stride: np.ndarray,
                  tab: np.ndarray, max_in: int, max_dims: int, max_kv: int, max_bq: int,
                  gunary: np.ndarray) -> None:
    """Adjoints of rows ``r0..r1-1``: ``gunary[r, i, k] = g[r] P_r(x_i = k)`` and, added
    into ``gws[:len(ltab)]``, ``sum_r g[r] P_r(x_i = a, x_j = b)`` per edge table entry.

    ``ws`` holds the forward pass of each row when ``saved``; otherwise it is one scratch
    row and each row's forward pass is recomputed, in the row's ``mode`` of the forward.
    """
    off = np.empty(max_in, np.int64)
    cnt = np.empty(max(max_dims, 1), np.int64)
    tmp = np.empty((max_kv, max_bq))
    acc = np.empty(max_bq)
    rs = np.empty(max_kv)
    ne = ltab.shape[0]
    n, kmax = vals.shape
    T = st.shape[0]
    filled = -1
    for r in range(r0, r1):
        logspace = mode[r] == 1
        if saved:
            w = ws[r]
        else:
            w = ws[0]
            if filled != mode[r]:
                w[:ne] = ltab if logspace else etab
                filled = mode[r]
            _row_forward(bias[r], vals, lw, kk, w, uoff, msg_off, st, in_src, in_base,
                         in_sv, in_kind, dim_k, dim_stride, tab, off, cnt, tmp, acc, rs,
                         logspace)
        gws[ne:] = 0.0
        for t in range(T - 1, -1, -1):
            go = gmsg_off[t]
            if st[t, 9] == 1:  # a root (no later node): d log Z / d log m_t = g
                gws[go] = g[r]
            _walk(t, w, gws, msg_off, gmsg_off, st, in_src, in_base, in_sv, in_kind, dim_k,
                  dim_stride, tab, off, cnt, tmp, acc, rs, True, logspace)
            for q in range(st[t, 1]):  # the slot is reused by other messages' adjoints
                gws[go + q] = 0.0
        for i in range(n):
            for k in range(kk[i]):
                gunary[r, i, k] = gws[uoff + i * kmax + k]


@nb.njit(cache=True, nogil=True)
def edge_tables(edges: np.ndarray, kk: np.ndarray, vals: np.ndarray, w: np.ndarray,
                out: np.ndarray, log_out: np.ndarray) -> tuple:
    """``log_out[e, a, b] = W_e v_i(a) v_j(b)`` and ``out[e, a, b] = exp(log_out - max)``
    over the valid levels of edge ``e = (i, j)``; returns (sum of the maxima, ok), ok
    False when an exp-space entry is below TINY or not finite."""
    m = edges.shape[0]
    scale = 0.0
    ok = True
    for e in range(m):
        i = edges[e, 0]
        j = edges[e, 1]
        mx = -math.inf
        for a in range(kk[i]):
            for b in range(kk[j]):
                x = w[e] * vals[i, a] * vals[j, b]
                log_out[e, a, b] = x
                if x > mx:
                    mx = x
        if not math.isfinite(mx):
            ok = False
        scale += mx
        for a in range(kk[i]):
            for b in range(kk[j]):
                y = math.exp(log_out[e, a, b] - mx)
                if not y >= TINY:
                    ok = False
                out[e, a, b] = y
    return scale, ok


@nb.njit(cache=True, nogil=True)
def edge_moments(edges: np.ndarray, kk: np.ndarray, vals: np.ndarray, ge: np.ndarray
                 ) -> np.ndarray:
    """``sum_{a,b} ge[e, a, b] v_i(a) v_j(b)`` per edge ``e = (i, j)`` (pair marginals to
    the moment ``<v_i v_j>``, weighted as ge is)."""
    m = edges.shape[0]
    out = np.zeros(m)
    for e in range(m):
        i = edges[e, 0]
        j = edges[e, 1]
        s = 0.0
        for a in range(kk[i]):
            for b in range(kk[j]):
                s += ge[e, a, b] * vals[i, a] * vals[j, b]
        out[e] = s
    return out


@nb.njit(cache=True, nogil=True)
def sample_rows(s0: int, s1: int, ws: np.ndarray, logspace: bool, u: np.ndarray,
                x: np.ndarray, kk: np.ndarray, msg_off: np.ndarray, st: np.ndarray,
                in_src: np.ndarray, in_base: np.ndarray, in_sv: np.ndarray,
                dim_stride: np.ndarray, tab: np.ndarray, rest_nodes: np.ndarray,
                max_kv: int) -> None:
    """Backward sampling of samples ``s0..s1-1`` through one row's forward pass ``ws``:
    along the reversed order, ``x_v`` is drawn (inverse CDF of ``u[s, v]``) from
    ``p(x_v | x_S) ∝ prod_inputs phi(x_v, x_S)`` (log space: ``exp(sum_inputs)``), the
    later nodes ``x_S`` being drawn already. ``x`` receives level indices."""
    T = st.shape[0]
    w = np.empty(max_kv)
    for s in range(s0, s1):
        for t in range(T - 1, -1, -1):
            kv = st[t, 0]
            nin = st[t, 2]
            i0 = st[t, 3]
            nd = st[t, 4]
            bq = st[t, 6]
            tab0 = st[t, 7]
            ds0 = st[t, 8]
            r0 = st[t, 10]
            nr = st[t, 11]
            v = st[t, 12]
            j = 0  # the inner block index of the drawn rest levels (row-major)
            for d in range(nd, nr):
                node = rest_nodes[r0 + d]
                j = j * kk[node] + x[s, node]
            for q in range(kv):
                w[q] = 0.0 if logspace else 1.0
            for i in range(nin):
                src = in_src[i0 + i]
                o = msg_off[src] if src >= 0 else in_base[i0 + i]
                for d in range(nd):
                    o += x[s, rest_nodes[r0 + d]] * dim_stride[ds0 + d * nin + i]
                o += tab[tab0 + i * bq + j]
                for q in range(kv):
                    if logspace:
                        w[q] += ws[o + q * in_sv[i0 + i]]
                    else:
                        w[q] *= ws[o + q * in_sv[i0 + i]]
            if logspace:
                m = w[0]
                for q in range(1, kv):
                    m = max(m, w[q])
                for q in range(kv):
                    w[q] = math.exp(w[q] - m)
            total = 0.0
            for q in range(kv):
                total += w[q]
            target = u[s, v] * total
            pick = kv - 1
            run = 0.0
            for q in range(kv - 1):
                run += w[q]
                if target < run:
                    pick = q
                    break
            x[s, v] = pick
