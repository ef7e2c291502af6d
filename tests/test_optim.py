"""Optimizers (E20-E22) against hand-written formulas."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from signsim.model import Params
from signsim.optim import adam, apply_updates, gd, sign_gd

floats = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
grad_arrays = st.lists(st.one_of(st.just(0.0), floats), min_size=1, max_size=12).map(np.array)


def run_optimizer(opt, params, grad_seq):
    state = opt.init(params)
    for g in grad_seq:
        upd, state = opt.update(g, state)
        params = apply_updates(params, upd)
    return params, state


@given(grad_arrays, st.sampled_from([1e-4, 1e-3, 0.5]))
def test_signgd_moves_each_coordinate_by_exactly_zero_or_lr(g, lr):
    """E20 with sign(0) = 0: the update is exactly -lr, 0 or +lr, and 0 where g = 0."""
    upd, state = sign_gd(lr).update(g, sign_gd(lr).init(g))
    assert set(np.unique(upd)) <= {-lr, 0.0, lr}
    assert_array_equal(upd == 0, g == 0)
    assert_array_equal(np.sign(upd), -np.sign(g))
    assert state.count == 1


def test_signgd_works_on_every_block_at_once():
    p = Params(np.zeros((2, 3)), np.ones((2, 3)), np.zeros((2, 1, 3)))
    g = Params(np.array([[1.0, -2.0, 0.0]] * 2), np.zeros((2, 3)), np.full((2, 1, 3), -1e-300))
    new, _ = run_optimizer(sign_gd(0.1), p, [g])
    assert_array_equal(new.W_Q, [[-0.1, 0.1, 0.0]] * 2)
    assert_array_equal(new.W_K, np.ones((2, 3)))
    assert_array_equal(new.W_V, np.full((2, 1, 3), 0.1))


def adam_by_hand(w, grads, lr, b1, b2, eps):
    """Scalar PyTorch Adam, one coordinate, written from the docs' pseudo-code."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (math.sqrt(v_hat) + eps)
    return w


@given(st.lists(st.lists(floats, min_size=3, max_size=3), min_size=1, max_size=6),
       st.sampled_from([(0.9, 0.999, 1e-8), (0.5, 0.9, 1e-3), (0.0, 0.5, 1e-8), (0.9, 0.0, 1.0)]))
def test_adam_matches_the_pytorch_rule(grad_rows, hyper):
    """E21: bias correction with the step index t = 1, 2, ...; eps added after the sqrt."""
    b1, b2, eps = hyper
    grads = [np.array(r) for r in grad_rows]
    w0 = np.array([0.3, -1.0, 2.0])
    got, state = run_optimizer(adam(0.01, b1, b2, eps), w0, grads)
    want = [adam_by_hand(w0[k], [g[k] for g in grads], 0.01, b1, b2, eps) for k in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert state.count == len(grads)


def test_adam_first_step_is_lr_times_sign_for_small_eps():
    """At t = 1 bias correction makes m_hat = g and v_hat = g^2, so the step is ~lr sign(g);
    a rule with t counted from 0, or eps inside the sqrt, fails this."""
    g = np.array([1e-3, -5.0])
    upd, _ = adam(0.1, 0.9, 0.999, 1e-12).update(g, adam(0.1).init(g))
    np.testing.assert_allclose(upd, [-0.1 / (1 + 1e-9), 0.1 / (1 + 2e-13)], rtol=1e-12)
    upd_eps, _ = adam(0.1, 0.9, 0.999, 1e-3).update(g, adam(0.1).init(g))
    np.testing.assert_allclose(upd_eps[0], -0.1 * 1e-3 / (1e-3 + 1e-3), rtol=1e-12)


@given(st.lists(grad_arrays.filter(lambda a: (np.abs(a[a != 0]) > 1e-150).all()),
                min_size=1, max_size=5).filter(lambda gs: len({g.size for g in gs}) == 1))
def test_adam_with_zero_betas_and_eps_is_signgd_exactly(grads):
    """E21: beta1 = beta2 = 0, eps = 0 gives m_hat/sqrt(v_hat) = g/|g| = sign(g) bit for bit
    (sqrt(g*g) == |g| exactly in IEEE arithmetic while g*g neither overflows nor underflows)."""
    w0 = np.linspace(-1, 1, grads[0].size)
    a, _ = run_optimizer(adam(0.01, 0.0, 0.0, 0.0), w0, grads)
    s, _ = run_optimizer(sign_gd(0.01), w0, grads)
    assert_array_equal(a, s)


def test_adam_eps_zero_counts_zero_over_zero_as_zero_and_rejects_x_over_zero():
    w = np.array([1.0, 2.0])
    new, _ = run_optimizer(adam(0.1, 0.9, 0.999, 0.0), w, [np.array([0.0, 1.0])] * 3)
    assert new[0] == 1.0 and new[1] < 2.0
    # beta2 = 0 < beta1: after a nonzero then a zero gradient, m != 0 but v = 0
    with pytest.raises(FloatingPointError, match="eps"):
        run_optimizer(adam(0.1, 0.9, 0.0, 0.0), w, [np.array([1.0, 1.0]), np.array([0.0, 1.0])])


@given(grad_arrays)
def test_gd_is_minus_lr_times_gradient(g):
    upd, _ = gd(0.25).update(g, gd(0.25).init(g))
    assert_array_equal(upd, -0.25 * g)


def test_states_are_not_mutated():
    g = np.array([1.0, -1.0])
    opt = adam(0.1)
    s0 = opt.init(g)
    s1 = opt.update(g, s0)[1]
    assert s0.count == 0 and (s0.mu == 0).all() and (s0.nu == 0).all() and s1.count == 1
