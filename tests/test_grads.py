"""Closed-form gradients (E16-E19) against central finite differences of L_S (E15), float64.

Bound: central differences with step h have truncation error O(h^2 |L'''|) and rounding
error O(eps |L| / h); at h = 1e-5 with weights of order 1 both stay below 1e-8 (measured
worst: ~3e-9), so we require |fd - closed form| <= 1e-8 + 1e-5 |closed form|. A wrong
factor or a missing term gives an error of the order of the gradient itself.
"""

import numpy as np
import pytest
from hypothesis import given

from signsim.config import Config
from signsim.data import make_data
from signsim.gradcheck import check_gradients
from signsim.grads import gradients
from signsim.model import Params, init_params

from .strategies import dense_problems

ATOL, RTOL = 1e-8, 1e-5


def assert_gradients_ok(params, X, y, **kw):
    grads, _ = gradients(params, X, y)
    for b, err in enumerate(check_gradients(params, X, y, **kw)):
        scale = np.abs(grads[b]).max()
        assert err.worst_abs <= ATOL + RTOL * max(scale, 1.0), err


@given(dense_problems())
def test_random_directions_on_drawn_shapes(problem):
    """Every block, random unit directions, any L in 1..4, dense (fully overlapping) patches."""
    params, X, y = problem
    assert_gradients_ok(params, X, y, directions=4)


@pytest.mark.parametrize("L", [2, 3])
def test_every_entry_on_tiny_shapes(L):
    rng = np.random.default_rng(L)
    n, d, m_k, m_v = 3, 5, 2, 2
    X = rng.standard_normal((n, d, L))
    y = np.array([1.0, -1.0, 1.0])
    params = Params(rng.standard_normal((m_k, d)), rng.standard_normal((m_k, d)),
                    rng.standard_normal((2, m_v, d)))
    assert_gradients_ok(params, X, y, directions=0, coordinatewise=True)


def test_synthetic_data_with_overlapping_supports():
    """d = 12, s = 5, n = 6: supports must overlap (30 slots in 11 coordinates)."""
    config = Config(n=6, d=12, s=5, sigma_p=1.0, m_k=3, m_v=2, n_test=1)
    train, _ = make_data(config)
    assert len(np.unique(train.noise_index)) < train.noise_index.size
    params = init_params(3, 12, 3, 2, 0.7)
    assert_gradients_ok(params, train.X, train.y, directions=3, coordinatewise=True)


def test_untouched_coordinates_have_exactly_zero_gradient():
    """Spec section 4: a coordinate that is zero in every training patch gets gradient 0."""
    config = Config(n=3, d=200, s=4, sigma_p=1.0, m_k=2, m_v=2, n_test=1)
    train, _ = make_data(config)
    params = init_params(1, 200, 2, 2, 0.3)
    grads, _ = gradients(params, train.X, train.y)
    used = np.zeros(200, bool)
    used[0] = True
    used[train.noise_index.ravel()] = True
    for g in grads:
        assert (g[..., ~used] == 0).all()
        assert (g[..., used] != 0).any()


@given(dense_problems())
def test_value_gradient_is_the_same_for_every_neuron_and_opposite_across_heads(problem):
    """E19: dL/dw_{V,j,r} = j * (one vector), identical for every r."""
    params, X, y = problem
    grads, _ = gradients(params, X, y)
    assert (grads.W_V[0] == grads.W_V[0, :1]).all()
    assert (grads.W_V[1] == -grads.W_V[0]).all()
