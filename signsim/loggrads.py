"""The gradients of ``grads`` (E16-E19) in sign and log-magnitude form, for exact arithmetic.

The same sums as ``grads``, term by term, but every factor is carried as (sign, log|.|)
(``signsim.logspace``): S_la as the log-softmax of z, |l'_i| as log sigmoid(-y_i f_i), and
each sum over tokens, samples and coordinates a ``signed_sum``. No factor is ever rounded to
0, so a gradient coordinate has sign 0 only where it is exactly 0: where no training patch
is nonzero (spec section 4) or a factor is truly 0.

The sums over a patch run over its nonzero entries only (``Patches``): a zero entry adds an
exact 0 to a sum, in any arithmetic, so skipping it changes nothing and spares the log of d
zeros per row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import log_softmax, logsumexp

from .logspace import grouped_sum, log_sigmoid, signed_sum, split
from .model import Forward, Params

__all__ = ["Patches", "patches", "log_gradients"]


class Patches(NamedTuple):
    """The nonzero entries X_{i,k,l} of the training inputs, ordered by coordinate k."""

    i: np.ndarray  # (T,) sample
    l: np.ndarray  # (T,) token
    sign: np.ndarray  # (T,) sign of the entry
    log: np.ndarray  # (T,) log|X_{i,k,l}|
    coords: np.ndarray  # (K,) the coordinates with a nonzero entry, ascending
    starts: np.ndarray  # (K,) first entry of each coordinate
    d: int


def patches(X: np.ndarray) -> Patches:
    """The nonzero entries of X (n, d, L), grouped by coordinate (then sample, token)."""
    i, k, l = np.nonzero(X)
    order = np.lexsort((l, i, k))
    i, k, l = i[order], k[order], l[order]
    sign, log = split(X[i, k, l])
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    return Patches(i, l, sign, log, k[starts], starts, X.shape[1])


def _by_coordinate(sign: np.ndarray, log: np.ndarray, x: Patches):
    """sum_{i,l} c_{i,l,.} X_{i,k,l} for every coordinate k, from c (n, L, rows) in
    (sign, log) form: (rows, d) signs and logs, sign 0 and log -inf off the patches."""
    rows = sign.shape[-1]
    term_sign = sign[x.i, x.l] * x.sign[:, None]  # (T, rows)
    term_log = log[x.i, x.l] + x.log[:, None]
    total_sign, total_log = grouped_sum(term_sign, term_log, x.starts)  # (K, rows)
    out_sign, out_log = np.zeros((rows, x.d)), np.full((rows, x.d), -np.inf)
    out_sign[:, x.coords], out_log[:, x.coords] = total_sign.T, total_log.T
    return out_sign, out_log


def _logit_grad(fw: Forward, y: np.ndarray, log_lprime: np.ndarray, log_S: np.ndarray):
    """G_{i,la} (E16) as (sign, log), (n, L, L) each, with V_a - Vbar_l = sum_b S_lb
    (V_a - V_b) (as in ``grads.logit_grad``); ``log_S`` (n, l, b) is log S."""
    n = len(y)
    dV_sign, dV_log = split(fw.V[:, :, None] - fw.V[:, None, :])  # (n, a, b): V_a - V_b
    term_log = log_S[:, :, None, :] + dV_log[:, None]  # (n, l, a, b): S_lb (V_a - V_b)
    dev_sign, dev_log = signed_sum(np.broadcast_to(dV_sign[:, None], term_log.shape),
                                   term_log)  # sum over b
    sign = (-y)[:, None, None] * dev_sign  # l' < 0 and S > 0
    log = (log_lprime - np.log(n))[:, None, None] + log_S + dev_log
    return sign, log


def log_gradients(params: Params, fw: Forward, y: np.ndarray, x: Patches):
    """All gradients of L_S (E16-E19) as two Params, signs and log-magnitudes."""
    margin = y * fw.f
    log_lprime = log_sigmoid(-margin)  # log|l'_i| = log(1 / (1 + e^margin))     (E14)
    log_S = log_softmax(fw.z, axis=-1)  # log S_{i,la} (n, l, a), never -inf      (E10)
    G_sign, G_log = _logit_grad(fw, y, log_lprime, log_S)
    K_sign, K_log = split(fw.K)  # (n, m_k, L)
    Q_sign, Q_log = split(fw.Q)
    # A_{i,s,l} = sum_a G_{i,la} k_{s,a}: the coefficient of x_i^(l) in dL/dw_{Q,s}   (E17)
    A = signed_sum(G_sign[:, None] * K_sign[:, :, None], G_log[:, None] + K_log[:, :, None])
    # B_{i,s,a} = sum_l G_{i,la} q_{s,l}: the coefficient of x_i^(a) in dL/dw_{K,s}   (E18)
    B = signed_sum(np.swapaxes(G_sign, 1, 2)[:, None] * Q_sign[:, :, None],
                   np.swapaxes(G_log, 1, 2)[:, None] + Q_log[:, :, None])
    gQ = _by_coordinate(*(np.swapaxes(a, 1, 2) for a in A), x)  # (n, L, m_k) in
    gK = _by_coordinate(*(np.swapaxes(b, 1, 2) for b in B), x)
    # E19: l'_i y_i sum_l S_{i,la} / (n m_v), the same for every r; j = -1 negated
    n, m_v = len(y), params.W_V.shape[1]
    col_log = logsumexp(log_S, axis=1)  # (n, a): log sum_l S_la
    c_sign = np.broadcast_to((-y)[:, None, None], col_log.shape + (1,))
    c_log = (log_lprime[:, None] + col_log - np.log(n * m_v))[..., None]
    v_sign, v_log = _by_coordinate(c_sign, c_log, x)  # (1, d)
    shape = params.W_V.shape
    V_sign = np.broadcast_to(np.stack([v_sign, -v_sign]), shape)
    V_log = np.broadcast_to(np.stack([v_log, v_log]), shape)
    return Params(gQ[0], gK[0], V_sign), Params(gQ[1], gK[1], V_log)

