"""Forward pass (E6-E12) and loss (E14-E15) against slow explicit loops."""

import numpy as np
from hypothesis import given
from numpy.testing import assert_allclose

from signsim.model import forward, loss, loss_derivative

from .strategies import dense_problems


def slow_output(params, X_i):
    """f(W, X) written as E6-E7 literally: (1/m_v) sum_l 1^T W_{V,j} X softmax(X^T W_K^T W_Q x^(l))."""
    d, L = X_i.shape
    m_v = params.W_V.shape[1]
    F = []
    for j in range(2):
        total = 0.0
        for l in range(L):
            logits = X_i.T @ params.W_K.T @ params.W_Q @ X_i[:, l]  # (L,)
            e = np.exp(logits - logits.max())
            total += np.ones(m_v) @ params.W_V[j] @ X_i @ (e / e.sum())
        F.append(total / m_v)
    return F[0] - F[1]


@given(dense_problems())
def test_forward_matches_the_definition(problem):
    params, X, y = problem
    fw = forward(params, X)
    slow = np.array([slow_output(params, X[i]) for i in range(len(X))])
    assert_allclose(fw.f, slow, rtol=1e-12, atol=1e-12)
    # attention rows are distributions over keys (softmax over the last axis, E10)
    assert_allclose(fw.S.sum(axis=-1), 1.0, rtol=0, atol=1e-14)


@given(dense_problems(max_L=2))
def test_output_is_invariant_to_token_order(problem):
    """No positional information: permuting the tokens of every X_i leaves f unchanged."""
    params, X, y = problem
    assert_allclose(forward(params, X[:, :, ::-1]).f, forward(params, X).f, rtol=1e-12,
                    atol=1e-13)


def test_loss_is_stable_and_matches_definition():
    z = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        lz, dz = loss(z), loss_derivative(z)
    assert np.isfinite(lz).all() and np.isfinite(dz).all()
    mid = np.abs(z) <= 30
    assert_allclose(lz[mid], np.log1p(np.exp(-z[mid])), rtol=1e-14)
    assert_allclose(dz[mid], -1.0 / (1.0 + np.exp(z[mid])), rtol=1e-14)
    assert lz[0] == 800.0 and dz[0] == -1.0  # l(z) ~ -z, l'(z) ~ -1 for z << 0
    # l'(z) in (-1, 0) where representable: -exp(-800) underflows to -0.0
    assert ((dz >= -1) & (dz <= 0)).all() and (dz[mid] > -1).all() and (dz[mid] < 0).all()
