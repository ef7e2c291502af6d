"""The training-loss gradient (E16-E19) evaluated in mpmath, independently of the package:
every product and sum at 60 significant digits with an exponent range that never
underflows, from the float64 weights and inputs (exact numbers). Test-only; slow (loops)."""

from __future__ import annotations

import mpmath as mp
import numpy as np

mp.mp.dps = 60


def _dot(w, x):
    return mp.fsum(mp.mpf(float(a)) * mp.mpf(float(b)) for a, b in zip(w, x) if b != 0)


def gradients(W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, X: np.ndarray,
              y: np.ndarray) -> tuple[list, list, list]:
    """dL/dW_Q, dL/dW_K (m_k x d) and dL/dw_{V,+1,r} (d) as nested lists of mpf, from the
    definitions: softmax attention, the mean value vector, l(z) = log(1 + e^-z)."""
    n, d, L = X.shape
    m_k, m_v = W_Q.shape[0], W_V.shape[1]
    v = [mp.fsum(mp.mpf(float(W_V[0, r, k])) for r in range(m_v)) / m_v
         - mp.fsum(mp.mpf(float(W_V[1, r, k])) for r in range(m_v)) / m_v for k in range(d)]
    gQ = [[mp.mpf(0)] * d for _ in range(m_k)]
    gK = [[mp.mpf(0)] * d for _ in range(m_k)]
    gV = [mp.mpf(0)] * d
    for i in range(n):
        x = [X[i, :, l] for l in range(L)]
        q = [[_dot(W_Q[s], x[l]) for l in range(L)] for s in range(m_k)]
        kk = [[_dot(W_K[s], x[a]) for a in range(L)] for s in range(m_k)]
        z = [[mp.fsum(q[s][l] * kk[s][a] for s in range(m_k)) for a in range(L)]
             for l in range(L)]
        S = []
        for l in range(L):
            e = [mp.exp(z[l][a]) for a in range(L)]
            S.append([t / mp.fsum(e) for t in e])
        V = [mp.fsum(v[k] * mp.mpf(float(x[a][k])) for k in range(d) if x[a][k] != 0)
             for a in range(L)]
        f = mp.fsum(S[l][a] * V[a] for l in range(L) for a in range(L))
        lp = -1 / (1 + mp.exp(int(y[i]) * f))  # l'(y f)
        c = lp * int(y[i]) / n
        for l in range(L):
            for a in range(L):
                # V_a - Vbar_l as sum_b S_lb (V_a - V_b): V_a - Vbar_l itself would cancel to 0
                # at any fixed precision once S_ll is within 10^-60 of 1
                dev = mp.fsum(S[l][b] * (V[a] - V[b]) for b in range(L))
                G = c * S[l][a] * dev  # E16
                for s in range(m_k):
                    for k in range(d):
                        if x[l][k] != 0:
                            gQ[s][k] += G * kk[s][a] * mp.mpf(float(x[l][k]))  # E17
                        if x[a][k] != 0:
                            gK[s][k] += G * q[s][l] * mp.mpf(float(x[a][k]))  # E18
        for a in range(L):
            col = mp.fsum(S[l][a] for l in range(L))
            for k in range(d):
                if x[a][k] != 0:
                    gV[k] += c * col * mp.mpf(float(x[a][k])) / m_v  # E19, j = +1
    return gQ, gK, gV


def sign(x) -> int:
    return int(mp.sign(x))
