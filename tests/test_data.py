"""Synthetic data (E1-E5) and the independence of the random streams."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from signsim.config import Config
from signsim.data import _sample_supports, make_data
from signsim.rng import init_normals

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
