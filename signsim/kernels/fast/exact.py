"""The gradient coefficients of ``step.coefficients`` in exact arithmetic (E20): signs that no
underflow decides, and log-magnitudes (``signsim.logspace``).

The factors that leave the float64 range are the per-sample ones: a_i = |l'_i| / n (l'
underflows once the margin passes about 745) and the attention products s11 s12, s21 s22
(s21 underflows once z22 - z21 passes about 745). The factors along the rows (D^K, q_s,
<w_Q, xi_i>) are float64 numbers of ordinary size. So each coefficient is written as a
float64 part of ordinary size times exp(a per-sample log scale):

    noise token, W_Q:  -y_i g2 D^K_{s,i}           = (-y_i sign(D^V_i) D^K_{s,i}) e^{L2_i}
    noise token, W_K:  -y_i (g1 q_s + g2 y_i <w_Q, xi_i>)
                       = -y_i sign(D^V_i) (w1_i q_s + w2_i y_i <w_Q, xi_i>) e^{T_i}
    value rows:        -+ y_i a_i (s12 + s22) / m_v = -+ y_i e^{LV_i}

with L1 = log|g1|, L2 = log|g2| from log a, log s (the logit gaps) and log|D^V|, T = max(L1,
L2) and w = e^{L - T} in [0, 1]; the sums over samples at coordinate 1 are scaled by their
largest sample the same way. A float64 part can lose a term only where a weight w
underflows, and then by less than 2^-1074 of that term's row factor: ``TINY`` bounds it, and
where a float64 part is not safely larger than what it may have lost (a true zero of q_s,
say, with mu_norm = 0) the step is computed again in full sign and log-magnitude form
(``log_coefficients``), which has no such case. Either way the coefficients carry the
rounding of float64, never its underflow.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...logspace import FLOOR, signed_add, signed_sum, split

__all__ = ["Coefficients", "sign_log", "log_attention", "exact_coefficients", "log_coefficients",
           "scaled_coefficients", "TINY"]

# A float64 part below TINY times the row factors it combines may have lost a term to an
# underflowing weight (a loss below 2^-1074 of a row factor): 2^74 of headroom.
TINY = 2.0 ** -1000


class Coefficients(NamedTuple):
    """The gradient coefficients as float64 parts times exp(log scales): the coefficient is
    ``part * exp(scale)``, exactly, whatever its size (the scale is -inf where it is 0).
    Its sign is sign(part) and its log-magnitude log|part| + scale (``sign_log``)."""

    part: np.ndarray  # (R, n, rows): per unit of xi_i at a coordinate of B_i only i holds
    scale: np.ndarray  # (R, n, rows)
    sig_part: np.ndarray  # (R, rows): at coordinate 1
    sig_scale: np.ndarray  # (R, rows)


def sign_log(part: np.ndarray, scale: np.ndarray):
    """(sign, log) of part * exp(scale)."""
    return np.sign(part), np.log(np.abs(part)) + scale


def log_attention(at) -> np.ndarray:
    """log S11, log S12, log S21, log S22 (4, R, n): -log(1 + e^gap), finite however
    saturated the attention is."""
    return -np.logaddexp(0.0, at.gap)


def exact_coefficients(k, fw) -> Coefficients:
    """The coefficients of one step in exact arithmetic: the scaled form, or the full log
    form where the scaled form cannot vouch for a sign (module docstring). Run under
    ``np.errstate(divide="ignore", over="ignore")`` (the kernel's): log 0 = -inf."""
    out = scaled_coefficients(k, fw)
    return out if out is not None else log_coefficients(k, fw)


class _Sample(NamedTuple):
    """Per-sample factors (R, n) in log form."""

    log_a: np.ndarray  # log a_i
    log_S: np.ndarray  # (4, R, n) log S11, S12, S21, S22
    sign: np.ndarray  # sign(D^V_i): the sign of g1 and g2
    L1: np.ndarray  # log|g1|
    L2: np.ndarray  # log|g2|


def _per_sample(k, fw) -> _Sample:
    log_S = log_attention(fw.at)
    log_a = -np.logaddexp(0.0, fw.margin)
    log_a -= math.log(k.n)  # a_i = |l'_i| / n                                     (E15)
    DV = fw.yvn - fw.vs[:, None]  # D^V_i
    base = log_a + np.log(np.abs(DV))
    return _Sample(log_a, log_S, np.sign(DV), base + log_S[0] + log_S[1],
                   base + log_S[2] + log_S[3])


def _log_mu(k) -> tuple[float, float]:
    """(sign, log) of mu_norm, which may be 0."""
    return (1.0, math.log(k.mu)) if k.mu > 0 else (0.0, -math.inf)


def _scaled_sum(weights_log: np.ndarray, weights_sign, parts: np.ndarray):
    """sum_i sign_i e^{log_i} parts[:, i, :] over samples, as (float part (R, m_k), log
    scale (R, 1)), and whether the part is safely above what underflowing weights may have
    lost (at most 2^-1074 of a part per sample)."""
    top = np.maximum(weights_log.max(axis=1, keepdims=True), FLOOR)
    w = np.exp(weights_log - top)
    if weights_sign is not None:
        w *= weights_sign
    total = (w[:, None, :] @ parts)[:, 0]  # (R, 1, n) @ (R, n, m_k)
    return total, top, np.abs(total).min() >= TINY * np.abs(parts).max()


def scaled_coefficients(k, fw) -> Coefficients | None:
    """The coefficients in the scaled form of the module docstring; None where a float64
    part cannot vouch for its sign."""
    m_k, y = k.m_k, k.y
    x = _per_sample(k, fw)
    T = np.maximum(np.maximum(x.L1, x.L2), FLOOR)  # the larger of g1, g2 (log)
    sw1, w2y = x.sign * np.exp(x.L1 - T), x.sign * np.exp(x.L2 - T) * y
    ME = sw1[..., None] * fw.qs[:, None] + w2y[..., None] * fw.Qn  # a D^V E^Q / e^T
    if np.abs(ME).min() < TINY * max(np.abs(fw.qs).max(), np.abs(fw.Qn).max()):
        return None
    DK = k.y3 * fw.Kn - fw.ks[:, None]  # D^K_{s,i}
    totQ, topQ, safeQ = _scaled_sum(x.L1, x.sign, DK)  # sum_i g1 D^K (coordinate 1)
    totK, topK, safeK = _scaled_sum(T, None, ME)  # sum_i a D^V E^Q
    if not (safeQ and safeK):
        return None
    rows = 2 * m_k + 2
    P, L = np.empty(y.shape + (rows,)), np.empty(y.shape + (rows,))
    np.multiply((x.sign * k.neg_y)[..., None], DK, out=P[..., :m_k])  # W_Q      (E17)
    L[..., :m_k] = x.L2[..., None]
    np.multiply(k.neg_y3, ME, out=P[..., m_k:2 * m_k])  # W_K                      (E18)
    L[..., m_k:2 * m_k] = T[..., None]
    P[..., 2 * m_k], P[..., 2 * m_k + 1] = k.neg_y, y  # (E19): l' y_i < 0 on Delta_+
    L[..., 2 * m_k] = L[..., 2 * m_k + 1] = _log_value_coefficient(x, k)
    s_mu, l_mu = _log_mu(k)
    sP, sL = np.empty((len(y), rows)), np.empty((len(y), rows))
    sP[:, :m_k], sL[:, :m_k] = -s_mu * totQ, topQ + l_mu
    sP[:, m_k:2 * m_k], sL[:, m_k:2 * m_k] = s_mu * totK, topK + l_mu
    sP[:, 2 * m_k], sP[:, 2 * m_k + 1] = -s_mu, s_mu  # -mu sum_i a_i (s11 + s21) / m_v
    sL[:, 2 * m_k] = sL[:, 2 * m_k + 1] = _log_value_sum(x, k) + l_mu
    return Coefficients(P, L, sP, sL)


def _log_value_coefficient(x: _Sample, k) -> np.ndarray:
    """log( a_i (s12 + s22) / m_v ) (R, n): the value rows' coefficient on the noise
    token, l' y_i (s12 + s22) / (n m_v) in size (E19)."""
    return x.log_a - math.log(k.m_v) + np.logaddexp(x.log_S[1], x.log_S[3])


def _log_value_sum(x: _Sample, k) -> np.ndarray:
    """log( sum_i a_i (s11 + s21) / m_v ) (R,): every term positive."""
    terms = x.log_a + np.logaddexp(x.log_S[0], x.log_S[2])
    return np.logaddexp.reduce(terms, axis=1) - math.log(k.m_v)


def log_coefficients(k, fw) -> Coefficients:
    """The coefficients with every factor in (sign, log) form and every sum a
    ``signed_sum`` (parts are the signs, scales the logs): slower than the scaled form,
    and without its one weak case."""
    m_k, y = k.m_k, k.y
    x = _per_sample(k, fw)
    lg1, lg2, sg = x.L1[..., None], x.L2[..., None], x.sign[..., None]
    sDK, lDK = split(k.y3 * fw.Kn - fw.ks[:, None])  # D^K_{s,i}
    s_qs, l_qs = split(fw.qs[:, None])
    s_Qn, l_Qn = split(fw.Qn)
    # a_i D^V_i E^Q_{s,i} = g1 q_s + g2 y_i <w_Q, xi_i>
    sE, lE = signed_add(sg * s_qs, lg1 + l_qs, sg * k.y3 * s_Qn, lg2 + l_Qn)
    rows = 2 * m_k + 2
    Cs, Cl = np.empty(y.shape + (rows,)), np.empty(y.shape + (rows,))
    Cs[..., :m_k], Cl[..., :m_k] = k.neg_y3 * sg * sDK, lg2 + lDK  # W_Q, noise (E17)
    Cs[..., m_k:2 * m_k], Cl[..., m_k:2 * m_k] = k.neg_y3 * sE, lE  # W_K, noise  (E18)
    Cs[..., 2 * m_k], Cs[..., 2 * m_k + 1] = k.neg_y, y  # Delta_+, Delta_-       (E19)
    Cl[..., 2 * m_k] = Cl[..., 2 * m_k + 1] = _log_value_coefficient(x, k)
    s_mu, l_mu = _log_mu(k)
    ss, sl = np.empty((len(y), rows)), np.empty((len(y), rows))
    sQ, lQ = signed_sum(sg * sDK, lg1 + lDK, axis=1)
    ss[:, :m_k], sl[:, :m_k] = -s_mu * sQ, lQ + l_mu
    sK, lK = signed_sum(sE, lE, axis=1)
    ss[:, m_k:2 * m_k], sl[:, m_k:2 * m_k] = s_mu * sK, lK + l_mu
    ss[:, 2 * m_k], ss[:, 2 * m_k + 1] = -s_mu, s_mu
    sl[:, 2 * m_k] = sl[:, 2 * m_k + 1] = _log_value_sum(x, k) + l_mu
    return Coefficients(Cs, Cl, ss, sl)
