"""Synthetic data (E1-E5) and the independence of the random streams."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from signsim.config import Config
from signsim.data import _sample_supports, make_data
from signsim.rng import (
    init_mean_value,
    init_normals,
    init_query_key_mean_value,
    value_rotation,
)

from .strategies import small_configs


@given(small_configs())
def test_samples_have_the_stated_structure(config):
    """E1-E4: y in {+-1}; the support has s distinct coordinates, never coordinate 1 (index 0);
    one token is y mu, the other xi; X agrees with the sparse storage."""
    train, test = make_data(config)
    for data, count in ((train, config.n), (test, config.n_test)):
        assert data.noise_index.shape == (count, config.s)
        assert set(np.unique(data.y)) <= {-1.0, 1.0}
        assert data.noise_index.min() >= 1 and data.noise_index.max() <= config.d - 1
        assert (np.diff(data.noise_index, axis=1) > 0).all()  # sorted, hence distinct
        X = data.X
        rows = np.arange(count)
        assert_array_equal(X[rows, :, data.signal_position], data.y[:, None] * data.mu)
        assert_array_equal(X[rows, :, 1 - data.signal_position], data.xi)
        assert_array_equal(np.count_nonzero(data.xi, axis=1), config.s)
        if config.signal_position == "first":
            assert (data.signal_position == 0).all()


def test_streams_are_independent():
    """Changing n_test changes neither the training set nor the init; changing the seed does."""
    a_train, a_test = make_data(Config(d=500, n_test=5))
    b_train, b_test = make_data(Config(d=500, n_test=50))
    for field in ("y", "signal_position", "noise_index", "noise_value"):
        assert_array_equal(getattr(a_train, field), getattr(b_train, field))
    c_train, _ = make_data(Config(d=500, seed=1))
    assert not np.array_equal(a_train.noise_value, c_train.noise_value)


def test_signal_position_does_not_change_labels_or_noise():
    a, _ = make_data(Config(d=300, signal_position="random"))
    b, _ = make_data(Config(d=300, signal_position="first"))
    assert_array_equal(a.y, b.y)
    assert_array_equal(a.noise_index, b.noise_index)
    assert (a.signal_position == 1).any() and (b.signal_position == 0).all()


@pytest.mark.parametrize("d,s", [(10_000, 20), (30, 20), (6, 5), (50, 7)])
def test_supports_are_uniform(d, s):
    """E3 (statistical, seeded): every coordinate of {2..d} is in a support with probability
    s/(d-1). With 4000 draws the count of each is binomial; we require every count within
    6 standard deviations (a false alarm has probability < 1e-5 per test)."""
    count = 4000 if d < 1000 else 40_000
    idx = _sample_supports(np.random.default_rng(12345), count, d, s)
    hits = np.bincount(idx.ravel(), minlength=d)
    assert hits[0] == 0
    p = s / (d - 1)
    sd = np.sqrt(count * p * (1 - p))
    assert np.abs(hits[1:] - count * p).max() <= 6 * sd + 1e-9


def test_init_is_addressable_by_coordinate_and_gaussian():
    """E13: drawing a subset of columns gives exactly those columns of the full draw, and the
    values are N(0, sigma_0^2): mean and variance within 5 standard errors (seeded)."""
    full = init_normals(np.uint64(7), np.arange(2000), 3, 2, 0.5)
    cols = np.array([5, 1999, 0, 42])
    part = init_normals(np.uint64(7), cols, 3, 2, 0.5)
    for f, p in zip(full, part):
        assert_array_equal(f[..., cols], p)
    w = np.concatenate([b.ravel() for b in full])
    se = 0.5 / np.sqrt(w.size)
    assert abs(w.mean()) < 5 * se
    assert abs(w.var() / 0.25 - 1) < 5 * np.sqrt(2 / w.size)
    # blocks and rows are distinct streams, not copies
    assert not np.allclose(full[0][0], full[0][1]) and not np.allclose(full[0], full[1])
    assert not np.allclose(full[2][0], full[2][1])


@given(st.integers(1, 3), st.integers(2, 60))
def test_noise_l1_matches_dense(n, d):
    train, _ = make_data(Config(n=n, d=d, s=1, n_test=1))
    assert_array_equal(train.noise_l1, np.abs(train.xi).sum(axis=1))


@pytest.mark.parametrize("m_v", [1, 2, 10])
def test_value_block_is_an_orthogonal_map_whose_mean_value_is_one_normal(m_v):
    """E13 for the value block: W_V[:, k] = H z_k with H orthogonal, so the entries stay
    i.i.d. N(0, sigma_0^2) (sample covariance of the 2 m_v rows within 5 standard errors of
    sigma_0^2 I, seeded); and E11 on it is sqrt(2 / m_v) z_k[0], the value
    init_query_key_mean_value draws alone (equal up to rounding)."""
    H = value_rotation(m_v)
    c = np.r_[np.ones(m_v), -np.ones(m_v)] / m_v
    assert_allclose(H @ H.T, np.eye(2 * m_v), atol=1e-15)
    assert_allclose(H[:, 0], c / np.linalg.norm(c), atol=1e-15)
    W_Q, W_K, W_V = init_normals(np.uint64(11), np.arange(40_000), 2, m_v, 0.5)
    QK, v = init_query_key_mean_value(np.uint64(11), np.arange(40_000), 2, m_v, 0.5)
    assert_array_equal(QK, np.concatenate([W_Q, W_K]).T)
    assert_allclose(W_V[0].mean(axis=0) - W_V[1].mean(axis=0), v, rtol=0, atol=1e-15)
    assert_array_equal(init_mean_value(np.uint64(11), np.arange(40_000), 2, m_v, 0.5), v)
    rows = W_V.reshape(2 * m_v, -1)
    cov = rows @ rows.T / rows.shape[1]
    se = 0.25 * np.sqrt(2 / rows.shape[1])  # of a variance; covariances have 0.25/sqrt(N)
    assert np.abs(np.diag(cov) - 0.25).max() < 5 * se
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 5 * 0.25 / np.sqrt(rows.shape[1])
