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


def _chi_square_p(counts: np.ndarray) -> float:
    """p-value of equal cell probabilities for these counts (Pearson's chi-square)."""
    from scipy.stats import chi2

    expected = counts.sum() / counts.size
    return float(chi2.sf(((counts - expected) ** 2 / expected).sum(), counts.size - 1))


def _subset_counts(idx: np.ndarray, pop: int, k: int, offset: int) -> np.ndarray:
    """How often each k-subset of {offset, ..., offset + pop - 1} is a row of ``idx``."""
    from itertools import combinations

    cells = {c: j for j, c in enumerate(combinations(range(offset, offset + pop), k))}
    rows = np.sort(idx, axis=1)
    assert set(map(tuple, rows.tolist())) <= set(cells)
    return np.bincount([cells[tuple(r)] for r in rows.tolist()], minlength=len(cells))


@pytest.mark.parametrize("pop,k,m", [(6, 3, None), (6, 2, None), (6, 1, None), (6, 4, None),
                                     (6, 3, 4), (7, 3, 3)])
def test_first_distinct_draws_are_uniform_subsets(pop, k, m):
    """E3 for the dense regime's sampler: every k-subset of {0..pop-1} equally likely (exact
    enumeration of the C(pop, k) cells, chi-square, seeded: p > 1e-3), also when a short
    block ``m`` makes most rows be drawn again (the conditioning keeps the law uniform)."""
    from signsim.data import _distinct

    idx = _distinct(np.random.default_rng(2024), 20_000, pop, k, m=m)
    assert idx.shape == (20_000, k) and idx.min() >= 0 and idx.max() < pop
    assert (np.diff(np.sort(idx, axis=1), axis=1) > 0).all()  # distinct
    assert _chi_square_p(_subset_counts(idx, pop, k, 0)) > 1e-3


@pytest.mark.parametrize("d,s", [(7, 3), (7, 4), (7, 2), (5, 4), (6, 5)])
def test_every_support_subset_is_equally_likely(d, s):
    """E3 on tiny d, whatever branch draws it: all C(d-1, s) supports equally likely
    (exact enumeration, chi-square, seeded: p > 1e-3); sorted, distinct, in [1, d)."""
    idx = _sample_supports(np.random.default_rng(7), 20_000, d, s)
    assert idx.min() >= 1 and idx.max() <= d - 1 and (np.diff(idx, axis=1) > 0).all()
    counts = _subset_counts(idx, d - 1, s, 1)
    if counts.size > 1:
        assert _chi_square_p(counts) > 1e-3


@pytest.mark.parametrize("d,s", [(81, 9), (161, 20), (2_001, 100), (10**8, 10_000),
                                 (10**8 + 1, 10_000)])
def test_dense_regime_supports_are_sorted_distinct_and_uniform(d, s):
    """sqrt(d-1) < s <= (d-1)/8 (the first-distinct sampler; (10^8 + 1, 10^4) is the first
    s^2 <= d-1 case, the sparse sampler): sorted, distinct, in [1, d); on the small d every
    coordinate and every pair of coordinates is as frequent as uniform subsets make it
    (chi-square, seeded: p > 1e-3)."""
    count = 30 if d > 10**6 else 20_000
    idx = _sample_supports(np.random.default_rng(99), count, d, s)
    assert idx.shape == (count, s) and idx.dtype == np.int64
    assert idx.min() >= 1 and idx.max() <= d - 1 and (np.diff(idx, axis=1) > 0).all()
    if d > 10**6:
        return
    assert _chi_square_p(np.bincount(idx.ravel(), minlength=d)[1:]) > 1e-3
    if d < 200:  # pairs: C(s, 2) per row over C(d-1, 2) cells
        i, j = np.triu_indices(s, 1)
        pair = (idx[:, i] - 1) * (d - 1) + (idx[:, j] - 1)
        a, b = np.triu_indices(d - 1, 1)
        counts = np.bincount(pair.ravel(), minlength=(d - 1) ** 2)[a * (d - 1) + b]
        assert _chi_square_p(counts) > 1e-3


def test_sparse_regime_draws_are_unchanged():
    """s^2 <= d - 1 keeps the draws every documented number was computed with (pinned)."""
    train, test = make_data(Config())
    assert train.noise_index[0].tolist() == [8, 2002, 2017, 2086, 2220, 3623, 3873, 4706, 4749,
                                             6274, 6446, 6447, 6520, 7474, 7631, 8721, 8759,
                                             9576, 9641, 9830]
    assert (int(train.noise_index.sum()), int(test.noise_index.sum())) == (2045150, 99289034)
    for d, s, total, first in [(50, 7, 6839, [9, 10, 17, 20, 28]),
                               (10**8, 9999, 19983041665122, [17442, 32028, 39624, 77911, 78067]),
                               (2, 1, 40, [1]), (5, 2, 198, [1, 4])]:
        idx = _sample_supports(np.random.default_rng(3), 40, d, s)
        assert (int(idx.sum()), idx[0, :len(first)].tolist()) == (total, first)
