"""Closed-form gradients of the training loss L_S (E15) for the dense reference (E16-E19).

Each function mirrors one equation of docs/model.md term by term; the symbols are the spec's.
"""

from __future__ import annotations

import numpy as np

from .model import Forward, Params, forward, loss_derivative

__all__ = ["logit_grad", "grad_W_Q", "grad_W_K", "grad_W_V", "gradients"]


def logit_grad(fw: Forward, y: np.ndarray) -> np.ndarray:
    """G_{i,la} = dL_S/dz_{i,la} = (1/n) l'_i y_i S_{i,la} (V_{i,a} - Vbar_{i,l}) (E16).

    Returns an ndarray of shape (n, L, L).
    """
    n = len(y)
    lprime = loss_derivative(y * fw.f)  # (n,)                    (E15)
    # V_a - Vbar_l written as sum_b S_lb (V_a - V_b) (the S_lb sum to 1): the same number,
    # without the cancellation of V_a - sum_b S_lb V_b when attention saturates (S_ll -> 1),
    # which would leave tiny G entries with few correct digits.
    dV = fw.V[:, :, None] - fw.V[:, None, :]  # (n, L, L): V_a - V_b
    dev = np.einsum("nlb,nab->nla", fw.S, dV)  # (n, L, L): V_a - Vbar_l
    return (lprime * y / n)[:, None, None] * fw.S * dev


def grad_W_Q(fw: Forward, G: np.ndarray, X: np.ndarray) -> np.ndarray:
    """dL_S/dw_{Q,s} = sum_i sum_{l,a} G_{i,la} k_{s,a}(X_i) x_i^(l) (E17); shape (m_k, d)."""
    A = np.einsum("nla,nsa->nsl", G, fw.K)  # (n, m_k, L): coefficient of x_i^(l)
    return np.einsum("nsl,ndl->sd", A, X, optimize=True)


def grad_W_K(fw: Forward, G: np.ndarray, X: np.ndarray) -> np.ndarray:
    """dL_S/dw_{K,s} = sum_i sum_{l,a} G_{i,la} q_{s,l}(X_i) x_i^(a) (E18); shape (m_k, d)."""
    B = np.einsum("nla,nsl->nsa", G, fw.Q)  # (n, m_k, L): coefficient of x_i^(a)
    return np.einsum("nsa,nda->sd", B, X, optimize=True)


def grad_W_V(fw: Forward, y: np.ndarray, X: np.ndarray, m_v: int) -> np.ndarray:
    """dL_S/dw_{V,j,r} = j (1/(n m_v)) sum_i l'_i y_i sum_a (sum_l S_{i,la}) x_i^(a) (E19).

    The same for every r; returns shape (2, m_v, d) with j = +1 first.
    """
    n = len(y)
    lprime = loss_derivative(y * fw.f)  # (n,)
    c = (lprime * y)[:, None] * fw.S.sum(axis=1)  # (n, L): column sums of S over queries l
    g = np.einsum("na,nda->d", c, X) / (n * m_v)  # (d,)
    return np.stack([np.broadcast_to(g, (m_v, g.size)), np.broadcast_to(-g, (m_v, g.size))])


def gradients(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[Params, Forward]:
    """All gradients of L_S at ``params`` (E16-E19), and the forward pass they came from."""
    fw = forward(params, X)
    G = logit_grad(fw, y)
    grads = Params(grad_W_Q(fw, G, X), grad_W_K(fw, G, X),
                   grad_W_V(fw, y, X, params.W_V.shape[1]))
    return grads, fw
