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


class Coefficients:
    """The gradient coefficients as float64 parts times exp(log scales): the coefficient is
    ``part * exp(scale)``, exactly, whatever its size (the scale is -inf where it is 0).
    Its sign is sign(part) and its log-magnitude log|part| + scale (``sign_log``).

    A scale may be given as a function of no arguments, called on first access: a sign
    step reads the scales only where it sums coefficients (coordinates several supports
    hold, in the per-sample layout) or needs magnitudes, and skips them otherwise."""

    __slots__ = ("part", "sig_part", "_scale", "_sig_scale")

    def __init__(self, part, scale, sig_part, sig_scale):
        self.part = part  # (R, n, rows): per unit of xi_i at a coordinate of B_i only i holds
        self.sig_part = sig_part  # (R, rows): at coordinate 1
        self._scale, self._sig_scale = scale, sig_scale  # (R, n, rows), (R, rows)

    @property
    def scale(self) -> np.ndarray:
        if callable(self._scale):
            self._scale = self._scale()
        return self._scale

    @property
    def sig_scale(self) -> np.ndarray:
        if callable(self._sig_scale):
            self._sig_scale = self._sig_scale()
        return self._sig_scale


def sign_log(part: np.ndarray, scale: np.ndarray):
    """(sign, log) of part * exp(scale)."""
    return np.sign(part), np.log(np.abs(part)) + scale


def log_attention(at) -> np.ndarray:
    """log S11, log S12, log S21, log S22 (4, R, n): -log(1 + e^gap), finite however
    saturated the attention is."""
    return -np.logaddexp(0.0, at.gap)


def exact_coefficients(k, fw, log_S=None) -> Coefficients:
    """The coefficients of one step in exact arithmetic: the scaled form, or the full log
    form where the scaled form cannot vouch for a sign (module docstring); ``log_S`` is
    ``log_attention(fw.at)`` if the caller has it. Run under
    ``np.errstate(divide="ignore", over="ignore")`` (the kernel's): log 0 = -inf."""
    x = _per_sample(k, fw, log_S)
    out = scaled_coefficients(k, fw, x)
    return out if out is not None else log_coefficients(k, fw, x)


class _Sample(NamedTuple):
    """Per-sample factors (R, n) in log form."""

    log_a: np.ndarray  # log a_i
    log_S: np.ndarray  # (4, R, n) log S11, S12, S21, S22
    sign: np.ndarray  # sign(D^V_i): the sign of g1 and g2
    L: np.ndarray  # (2, R, n) log|g1|, log|g2|

    @property
    def L1(self) -> np.ndarray:
        return self.L[0]

    @property
    def L2(self) -> np.ndarray:
        return self.L[1]


def _per_sample(k, fw, log_S=None) -> _Sample:
    if log_S is None:
        log_S = log_attention(fw.at)
    log_a = -np.logaddexp(0.0, fw.margin)
    log_a -= math.log(k.n)  # a_i = |l'_i| / n                                     (E15)
    DV = fw.yvn - fw.vs[:, None]  # D^V_i
    base = log_a + np.log(np.abs(DV))
    L = base + log_S[0::2]  # (2, R, n): log a |D^V| + log S11, + log S21
    L += log_S[1::2]  # + log S12, + log S22: log|g1|, log|g2|                     (E16)
    return _Sample(log_a, log_S, np.sign(DV), L)


def _log_mu(k) -> tuple[float, float]:
    """(sign, log) of mu_norm, which may be 0."""
    return (1.0, math.log(k.mu)) if k.mu > 0 else (0.0, -math.inf)


class _Sums(NamedTuple):
    """The scaled form's float64 parts that sum or combine samples, in one buffer (so that
    one reduction checks them all, ``_vouched``), and the log scales of the sums."""

    buffer: np.ndarray  # (R n m_k + 2 R m_k,): ME, then totQ, then totK
    ME: np.ndarray  # (R, n, m_k) a D^V E^Q / e^T = w1 q_s + w2 y_i <w_Q, xi_i>
    totQ: np.ndarray  # (R, m_k) sum_i g1 D^K / e^topQ (coordinate 1, W_Q)
    totK: np.ndarray  # (R, m_k) sum_i a D^V E^Q / e^topK (coordinate 1, W_K)
    topQ: np.ndarray  # (R, 1)
    topK: np.ndarray  # (R, 1)


def _scaled_sums(k, fw, x: _Sample, T: np.ndarray, DK: np.ndarray) -> _Sums:
    """ME and the sums over samples at coordinate 1, each weight e^{log - top} scaled by
    the largest (top) of its sum, written into one buffer."""
    R, n, m_k = DK.shape
    buffer = np.empty(R * n * m_k + 2 * R * m_k)
    ME = buffer[:R * n * m_k].reshape(R, n, m_k)
    totQ, totK = buffer[R * n * m_k:].reshape(2, R, 1, m_k)
    w = np.exp(x.L - T)  # (2, R, n): e^{L1 - T}, e^{L2 - T} in [0, 1]
    w *= x.sign
    w[1] *= k.y  # sign(D^V) w1 and sign(D^V) w2 y_i
    np.add(w[0][..., None] * fw.qs[:, None], w[1][..., None] * fw.Qn, out=ME)
    tops = x.L.max(axis=2)[..., None]  # (2, R, 1): the largest L1, L2 of each replica
    topQ = np.maximum(tops[0], FLOOR)
    topK = np.maximum(topQ, tops[1])  # the largest T
    np.matmul((np.exp(x.L[0] - topQ) * x.sign)[:, None, :], DK, out=totQ)  # (R, 1, n) @
    np.matmul(np.exp(T - topK)[:, None, :], ME, out=totK)  # (R, n, m_k)
    return _Sums(buffer, ME, totQ[:, 0], totK[:, 0], topQ, topK)


def _vouched(fw, sums: _Sums) -> bool:
    """Whether every float64 part is safely above what underflowing weights may have lost:
    less than 2^-1074 of a row factor per sample term. Every row factor (|q_s|,
    |<w_Q, xi_i>| in ME; |D^K|; |ME| <= |q_s| + |<w_Q, xi_i>|) is at most
    max|<w, xi_i>| + max|<w, mu>| (to rounding), so one reduction over the parts checks
    them all against TINY times that (a bound at least as strict as one per part)."""
    factors = np.abs(fw.P).max() + np.abs(fw.sig).max()
    return np.abs(sums.buffer).min() >= TINY * factors


def scaled_coefficients(k, fw, x: _Sample | None = None) -> Coefficients | None:
    """The coefficients in the scaled form of the module docstring; None where a float64
    part cannot vouch for its sign. ``x``: the ``_per_sample`` factors, if computed. The
    scales are computed when first read (``Coefficients``)."""
    m_k, y = k.m_k, k.y
    x = _per_sample(k, fw) if x is None else x
    T = np.maximum(x.L[0], x.L[1])
    np.maximum(T, FLOOR, out=T)  # the larger of g1, g2 (log)
    DK = k.y3 * fw.Kn - fw.ks[:, None]  # D^K_{s,i}
    sums = _scaled_sums(k, fw, x, T, DK)
    if not _vouched(fw, sums):
        return None
    P = np.empty(y.shape + (2 * m_k + 2,))
    np.multiply((x.sign * k.neg_y)[..., None], DK, out=P[..., :m_k])  # W_Q      (E17)
    np.multiply(k.neg_y3, sums.ME, out=P[..., m_k:2 * m_k])  # W_K                 (E18)
    P[..., 2 * m_k], P[..., 2 * m_k + 1] = k.neg_y, y  # (E19): l' y_i < 0 on Delta_+
    s_mu, l_mu = _log_mu(k)
    sP = np.empty((len(y), P.shape[-1]))
    np.multiply(sums.totQ, -s_mu, out=sP[:, :m_k])
    np.multiply(sums.totK, s_mu, out=sP[:, m_k:2 * m_k])
    sP[:, 2 * m_k], sP[:, 2 * m_k + 1] = -s_mu, s_mu  # -mu sum_i a_i (s11 + s21) / m_v
    return Coefficients(P, lambda: _noise_scale(k, x, T), sP,
                        lambda: _signal_scale(k, x, sums, l_mu))


def _noise_scale(k, x: _Sample, T: np.ndarray) -> np.ndarray:
    """The scaled form's scale (R, n, rows): L2 on W_Q, T on W_K, the value rows' own."""
    m_k = k.m_k
    L = np.empty(T.shape + (2 * m_k + 2,))
    L[..., :m_k] = x.L[1][..., None]
    L[..., m_k:2 * m_k] = T[..., None]
    L[..., 2 * m_k] = L[..., 2 * m_k + 1] = _log_value_coefficient(x, k)
    return L


def _signal_scale(k, x: _Sample, sums: _Sums, l_mu: float) -> np.ndarray:
    """The scaled form's sig_scale (R, rows): the sums' tops and the value rows' sum, plus
    log mu_norm."""
    m_k = k.m_k
    sL = np.empty((len(k.y), 2 * m_k + 2))
    sL[:, :m_k] = sums.topQ + l_mu
    sL[:, m_k:2 * m_k] = sums.topK + l_mu
    sL[:, 2 * m_k] = sL[:, 2 * m_k + 1] = _log_value_sum(x, k) + l_mu
    return sL


def _log_value_coefficient(x: _Sample, k) -> np.ndarray:
    """log( a_i (s12 + s22) / m_v ) (R, n): the value rows' coefficient on the noise
    token, l' y_i (s12 + s22) / (n m_v) in size (E19)."""
    return x.log_a - math.log(k.m_v) + np.logaddexp(x.log_S[1], x.log_S[3])


def _log_value_sum(x: _Sample, k) -> np.ndarray:
    """log( sum_i a_i (s11 + s21) / m_v ) (R,): every term positive."""
    terms = x.log_a + np.logaddexp(x.log_S[0], x.log_S[2])
    return np.logaddexp.reduce(terms, axis=1) - math.log(k.m_v)


def log_coefficients(k, fw, x: _Sample | None = None) -> Coefficients:
    """The coefficients with every factor in (sign, log) form and every sum a
    ``signed_sum`` (parts are the signs, scales the logs): slower than the scaled form,
    and without its one weak case. ``x``: the ``_per_sample`` factors, if computed."""
    m_k, y = k.m_k, k.y
    x = _per_sample(k, fw) if x is None else x
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
