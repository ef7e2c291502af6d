"""The two-layer transformer (E6-E13) and the logistic loss (E14-E15): the dense reference.

Everything here works on dense inputs X of shape (n, d, L) for any number of tokens L; it is
written to be read next to docs/model.md, not to be fast (see ``signsim.fast`` for that).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit, logsumexp

from .rng import init_key, init_normals

__all__ = ["Params", "Forward", "init_params", "forward", "loss", "loss_derivative",
           "mean_value", "log_loss", "log_mean_loss"]


class Params(NamedTuple):
    """Trainable weights. W_V[0] is the j = +1 head, W_V[1] the j = -1 head."""

    W_Q: np.ndarray  # (m_k, d)
    W_K: np.ndarray  # (m_k, d)
    W_V: np.ndarray  # (2, m_v, d)

    def to_dense(self) -> "Params":
        """The weights as dense arrays: these (the interface of ``SparseParams``)."""
        return self


class Forward(NamedTuple):
    """What the forward pass keeps for the backward pass and the tracker."""

    Q: np.ndarray  # (n, m_k, L)  q_{s,l} = <w_{Q,s}, x^(l)>        (E8)
    K: np.ndarray  # (n, m_k, L)  k_{s,a} = <w_{K,s}, x^(a)>        (E8)
    z: np.ndarray  # (n, L, L)    z_{la} = sum_s q_{s,l} k_{s,a}   (E9)
    S: np.ndarray  # (n, L, L)    softmax of z over a              (E10)
    v: np.ndarray  # (d,)         mean value vector                (E11)
    V: np.ndarray  # (n, L)       V_a = <v, x^(a)>                 (E12)
    f: np.ndarray  # (n,)         network output F_{+1} - F_{-1}   (E7, E12)


def init_params(seed: int, d: int, m_k: int, m_v: int, sigma_0: float) -> Params:
    """Dense initial weights, every entry N(0, sigma_0^2) (E13); see ``signsim.rng``."""
    W_Q, W_K, W_V = init_normals(init_key(seed), np.arange(d), m_k, m_v, sigma_0)
    return Params(W_Q, W_K, W_V)


def mean_value(W_V: np.ndarray) -> np.ndarray:
    """v = mean_r w_{V,+1,r} - mean_r w_{V,-1,r} (E11)."""
    return W_V[0].mean(axis=0) - W_V[1].mean(axis=0)


def _softmax_last(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def forward(params: Params, X: np.ndarray) -> Forward:
    """The network on inputs X of shape (n, d, L) (E6-E12)."""
    Q = params.W_Q @ X  # (n, m_k, L)                                    (E8)
    K = params.W_K @ X  # (n, m_k, L)                                    (E8)
    z = np.einsum("nsl,nsa->nla", Q, K)  # (n, L, L)                    (E9)
    S = _softmax_last(z)  # attention of query l on key a               (E10)
    v = mean_value(params.W_V)  # (d,)                                   (E11)
    V = v @ X  # (n, L)                                                  (E12)
    f = np.einsum("nla,na->n", S, V)  # sum_l sum_a S_la V_a            (E12)
    return Forward(Q, K, z, S, v, V, f)


def loss(margin: np.ndarray) -> np.ndarray:
    """l(z) = log(1 + exp(-z)), stable for large |z| (E14)."""
    return np.logaddexp(0.0, -margin)


def loss_derivative(margin: np.ndarray) -> np.ndarray:
    """l'(z) = -1 / (1 + exp(z)), in (-1, 0) (E14)."""
    return -expit(-margin)


LOG_LOSS_SWITCH = 30.0  # above it, log l(z) = -z - e^-z / 2 to rounding (next term e^-2z / 3)


def log_loss(margin: np.ndarray) -> np.ndarray:
    """log l(z) = log log(1 + e^-z), finite for every finite z: where l(z) underflows
    (z > 745) log l(z) is still about -z. For z > 30, log(1 + u) = u - u^2/2 + ... with
    u = e^-z < 1e-13 gives log l = -z + log(1 - u/2 + ...) = -z - u/2 to rounding."""
    z = np.asarray(margin, dtype=np.float64)
    big = z > LOG_LOSS_SWITCH
    safe = np.where(big, 0.0, z)  # l(0) = log 2: no log of 0 on the branch not taken
    return np.where(big, -z - 0.5 * np.exp(-np.where(big, z, 0.0)),
                    np.log(np.logaddexp(0.0, -safe)))


def log_mean_loss(margin: np.ndarray) -> np.ndarray:
    """log of the mean loss (E15) over the last axis, from ``log_loss``: the train loss on
    a log scale, readable when the loss itself underflows."""
    n = np.shape(margin)[-1]
    return logsumexp(log_loss(margin), axis=-1) - np.log(n)
