"""The law of the data (E2-E4) and the independence of the test stream, checked as laws:
what a seed-lucky comparison would miss."""

import numpy as np
from scipy import stats

import signsim
from signsim.data import make_data


def test_noise_values_are_centred_gaussians_of_scale_sigma_p():
    """E3: xi[k] ~ N(0, sigma_p^2) on the support. Kolmogorov-Smirnov over 60,000 values
    (fixed seed) against the standard normal, and the sign balance: |N(0, sigma_p^2)| or a
    wrong scale fails both by orders of magnitude (p < 1e-100)."""
    config = signsim.Config(n=3000, s=20, sigma_p=2.5, n_test=1, d=10**6)
    train, _ = make_data(config)
    z = train.noise_value.ravel() / config.sigma_p
    assert stats.kstest(z, "norm").pvalue > 1e-4
    negative = np.mean(z < 0)
    assert abs(negative - 0.5) < 5 * 0.5 / np.sqrt(z.size)  # 5 standard errors


def test_labels_and_signal_positions_are_fair_coins():
    train, _ = make_data(signsim.Config(n=20000, n_test=1, s=2, d=100))
    for values in (train.y > 0, train.signal_position == 1):
        assert abs(values.mean() - 0.5) < 5 * 0.5 / np.sqrt(values.size)


def test_the_test_set_is_drawn_from_its_own_stream():
    """With n_test = n the test set is a different sample of the same law, not the
    training set again (the test loss at init would then equal the train loss), and the
    test set does not depend on n."""
    config = signsim.Config(n=50, n_test=50, steps=0)
    train, test = make_data(config)
    assert not np.array_equal(train.noise_index, test.noise_index)
    assert not np.array_equal(train.noise_value, test.noise_value)
    r = signsim.run(config)
    assert r.history["train_loss"][0] != r.history["test_loss"][0]
    _, other = make_data(config.replace(n=7))
    assert np.array_equal(other.noise_value, test.noise_value)
