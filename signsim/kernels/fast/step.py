"""One step of the fast kernel by token role: the forward pass (E8-E15) from the inner
products P = <w_row, xi_i> and the weights at coordinate 1, and the gradient coefficients
(E16-E19) written with the spec's factors (spec section 6):

    D^V_i     = <v, y_i xi_i> - <v, mu>
    D^K_{s,i} = <w_{K,s}, y_i xi_i> - <w_{K,s}, mu>
    E^Q_{s,i} = s11 s12 <w_{Q,s}, mu> + s21 s22 <w_{Q,s}, y_i xi_i>

With L = 2 tokens (1 = signal y_i mu, 2 = noise xi_i) E16 gives G_11 = -G_12 = g1 and
G_21 = -G_22 = g2 with g1 = (|l'_i|/n) s11 s12 D^V_i, g2 = (|l'_i|/n) s21 s22 D^V_i, and
E17-E19 become (docs/model.md, section 4):

    noise token:  dL/dw_{Q,s} = -y_i g2 D^K_{s,i}        dL/dw_{K,s} = -y_i a_i D^V_i E^Q_{s,i}
    coordinate 1: dL/dw_{Q,s} = -mu sum_i g1 D^K_{s,i}   dL/dw_{K,s} = mu sum_i a_i D^V_i E^Q_{s,i}

per unit of xi_i[k] on the noise token, with a_i = |l'_i| / n: the drivers of R2-R5.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...tracker import Derived, History

__all__ = ["Constants", "Forward", "forward", "coefficients", "sigmoid_of_negative",
           "SIGMOID_FLOOR", "decayed_values"]


class Constants(NamedTuple):
    """What every step of a batch of R replicas reads and no step changes."""

    y: np.ndarray  # (R, n) labels
    neg_y: np.ndarray  # (R, n) -y
    y3: np.ndarray  # (R, n, 1)
    neg_y3: np.ndarray  # (R, n, 1) -y
    y_rows: np.ndarray  # (R, n, rows) y repeated along the rows: NumPy runs same-shape
    # products in one long loop, but a product broadcast along the short last axis in n R
    # short ones (several times slower at R = 100)
    v0n: np.ndarray  # (R, n) <v(0), xi_i>
    v0s: np.ndarray  # (R,) <v(0), mu>
    m_k: int
    n: int
    m_v: int
    mu: float


class Attention(NamedTuple):
    gap: np.ndarray  # (4, R, n): z12 - z11, z11 - z12, z22 - z21, z21 - z22: S = 1/(1 + e^gap)
    S: np.ndarray  # (4, R, n): S11, S12, S21, S22 (the fields below are its rows)
    S11: np.ndarray  # (R, n) signal query on signal key
    S12: np.ndarray
    S21: np.ndarray  # noise query on signal key
    S22: np.ndarray


class Forward(NamedTuple):
    """The forward pass at the current weights, by role (what gradients and records need)."""

    P: np.ndarray  # (R, n, rows) <w_row, xi_i>
    sig: np.ndarray  # (R, rows)   <w_row, mu>
    Qn: np.ndarray  # (R, n, m_k)  <w_{Q,s}, xi_i>                              (E8)
    Kn: np.ndarray  # (R, n, m_k)  <w_{K,s}, xi_i>
    qs: np.ndarray  # (R, m_k)     <w_{Q,s}, mu>
    ks: np.ndarray  # (R, m_k)     <w_{K,s}, mu>
    yvn: np.ndarray  # (R, n)      <v, y_i xi_i>                                (E11)
    vs: np.ndarray  # (R,)         <v, mu>
    at: Attention
    margin: np.ndarray  # (R, n)   y_i f_i
    lp: np.ndarray  # (R, n)       l'_i                                         (E14)


SIGMOID_FLOOR = -40.0  # 1 / (1 + e^x) is exactly 1.0 for every x below this (and at it)


def sigmoid_of_negative(x: np.ndarray) -> None:
    """x <- 1 / (1 + e^x) in place (= expit(-x)); e^x = inf gives 0.

    Arguments below SIGMOID_FLOOR are raised to it first. That changes no result: for
    x <= -37, e^x < 2^-53, so 1 + e^x rounds to 1 and the sigmoid is exactly 1. It spares
    exp its slow path for results that underflow (several times slower per element here),
    which the saturated attention of Stage IV hits at every step."""
    np.maximum(x, SIGMOID_FLOOR, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)


def _attend(k: Constants, qs, ks, Qn, Kn) -> Attention:
    """E9-E10 for two tokens by role; qs, ks (R, m_k); Qn, Kn (R, n, m_k)."""
    y = k.y
    # einsum fuses each product with its sum over s (no (R, n, m_k) temporary)
    z11 = np.einsum("rs,rs->r", qs, ks)[:, None]  # (R, 1): y_i^2 = 1         (E9)
    z12 = y * np.einsum("rns,rs->rn", Kn, qs)  # (R, n)
    z21 = y * np.einsum("rns,rs->rn", Qn, ks)
    z22 = np.einsum("rns,rns->rn", Qn, Kn)
    # two-way softmax (E10): S11 = 1 / (1 + e^(z12 - z11)), S12 = 1 / (1 + e^(z11 - z12)),
    # likewise S21, S22; the four in one pass (fl(b - a) = -fl(a - b) exactly); an overflow
    # to inf gives S = 0, the right limit (the caller ignores overflow warnings)
    gap = np.empty((4,) + z12.shape)
    np.subtract(z12, z11, out=gap[0])
    np.negative(gap[0], out=gap[1])
    np.subtract(z22, z21, out=gap[2])
    np.negative(gap[2], out=gap[3])
    S = gap.copy()
    sigmoid_of_negative(S)
    return Attention(gap, S, *S)


def forward(k: Constants, P: np.ndarray, sig: np.ndarray, init_scale=None) -> Forward:
    """E8-E15 from P[r, i, row] = <w_row, xi_i> and the weights at coordinate 1;
    ``init_scale`` (R,) is c_t, the factor of the init under weight decay (E22b): then
    v(t) = c_t v(0) + Delta_+ - Delta_-. None: no decay."""
    m_k = k.m_k
    Qn, Kn = P[..., :m_k], P[..., m_k:2 * m_k]
    sig = sig * k.mu
    qs, ks = sig[:, :m_k], sig[:, m_k:2 * m_k]
    v0n, v0s = k.v0n, k.v0s
    if init_scale is not None:
        v0n, v0s = init_scale[:, None] * v0n, init_scale * v0s
    vn = v0n + (P[..., 2 * m_k] - P[..., 2 * m_k + 1])  # v = v(0) + Delta_+ - Delta_-
    vs = v0s + (sig[:, 2 * m_k] - sig[:, 2 * m_k + 1])
    at = _attend(k, qs, ks, Qn, Kn)
    V1 = k.y * vs[:, None]  # values of the tokens (E12): y_i <v, mu>, <v, xi_i>
    f = (at.S11 + at.S21) * V1 + (at.S12 + at.S22) * vn
    margin = k.y * f
    lp = np.exp(margin)  # l' = -1 / (1 + e^margin)                              (E14)
    lp += 1.0
    np.divide(-1.0, lp, out=lp)
    return Forward(P, sig, Qn, Kn, qs, ks, k.y * vn, vs, at, margin, lp)


def coefficients(k: Constants, fw: Forward, C: np.ndarray, grad_sig: np.ndarray,
                 DK: np.ndarray, aEQ: np.ndarray) -> None:
    """E16-E19 by role (module docstring), in place: ``C`` (R, n, rows) the gradient of each
    row at a coordinate of B_i that no other support holds, per unit of xi_i there;
    ``grad_sig`` (R, rows) the gradient at coordinate 1. ``DK`` and ``aEQ`` (R, n, m_k)
    are scratch space, left holding D^K and a D^V E^Q."""
    m_k, at, y = k.m_k, fw.at, k.y
    a = np.divide(fw.lp, -k.n)  # a_i = |l'_i| / n                             (E15)
    DV = fw.yvn - fw.vs[:, None]  # D^V_i
    g1 = a * at.S11 * at.S12 * DV  # (R, n)                                     (E16)
    g2 = a * at.S21 * at.S22 * DV
    np.multiply(k.y3, fw.Kn, out=DK)
    DK -= fw.ks[:, None]  # D^K_{s,i}
    CQ, CK = C[..., :m_k], C[..., m_k:2 * m_k]
    np.multiply(g1[..., None], fw.qs[:, None], out=aEQ)
    np.multiply((g2 * y)[..., None], fw.Qn, out=CK)
    aEQ += CK  # a_i D^V_i E^Q_{s,i} = g1 q_s + g2 <w_Q, y_i xi_i>
    np.multiply((g2 * k.neg_y)[..., None], DK, out=CQ)  # W_Q, noise token       (E17)
    np.multiply(k.neg_y3, aEQ, out=CK)  # W_K, noise token                        (E18)
    cv = (y * a) / -k.m_v  # l'_i y_i / (n m_v)
    np.multiply(cv, at.S12 + at.S22, out=C[..., 2 * m_k])  # Delta_+, noise     (E19)
    np.negative(C[..., 2 * m_k], out=C[..., 2 * m_k + 1])  # Delta_-: j = -1
    # coordinate 1: the signal token y_i mu of every sample
    grad_sig[:, :m_k] = np.einsum("rn,rns->rs", g1, DK) * -k.mu
    grad_sig[:, m_k:2 * m_k] = np.einsum("rns->rs", aEQ) * k.mu
    grad_sig[:, 2 * m_k] = (cv * (at.S11 + at.S21) * y).sum(-1) * k.mu
    np.negative(grad_sig[:, 2 * m_k], out=grad_sig[:, 2 * m_k + 1])


def decayed_values(history: History, yP0V: np.ndarray, S0V: np.ndarray, noise, signal,
                   scale: np.ndarray) -> History:
    """``history`` with value_signal and value_noise from w_{V,j,r}(t) = c_t w_{V,j,r}(0) +
    Delta_j(t) (decoupled weight decay, E22b), ``scale`` (R, T) being c_t at each record;
    ``noise``, ``signal`` the compact records (``records``), ``yP0V``, ``S0V`` the value
    rows' init products. The other entries are kept as they are."""
    names = list(history)  # iterating builds nothing
    derived = {}
    if "value_signal" in names:
        derived["value_signal"] = Derived(_decayed_value_signal, (S0V, signal, scale))
    if "value_noise" in names:
        derived["value_noise"] = Derived(_decayed_value_noise, (yP0V, noise, scale))
    kept = {name: history[name] for name in names if name not in derived}
    return History(kept, derived, batched=True)


def _decayed_value_signal(S0V, signal, scale) -> np.ndarray:
    """c_t <w_{V,j,r}(0), mu> + <Delta_j(t), mu>: (R, T, 2, m_v)."""
    rows = signal.shape[-1]
    return S0V[:, None] * scale[:, :, None, None] + signal[:, :, rows - 2:, None]


def _decayed_value_noise(yP0V, noise, scale) -> np.ndarray:
    """c_t y_i <w_{V,j,r}(0), xi_i> + y_i <Delta_j(t), xi_i>: (R, T, 2, m_v, n)."""
    rows = noise.shape[-1]
    return (yP0V[:, None] * scale[:, :, None, None, None]
            + np.moveaxis(noise[..., rows - 2:], -1, -2)[:, :, :, None, :])
