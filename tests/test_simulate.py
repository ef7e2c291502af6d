"""run(): determinism, recorded quantities vs explicit loops, frozen coordinates, save/load."""

import numpy as np
import pytest
from hypothesis import given, settings
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim.model import loss
from signsim.tracker import TEST_NAMES, TRAIN_NAMES, schedule, shapes

from .strategies import small_configs

SMALL = dict(n=5, d=60, s=4, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, lr=1e-2, steps=12,
             n_test=7, test_every=5, record_every=1)


def slow_quantities(W_Q, W_K, W_V, data):
    """Spec section 6 by explicit loops over neurons, samples and tokens."""
    m_k, m_v, n = W_Q.shape[0], W_V.shape[1], data.n
    mu, xi, X = data.mu, data.xi, data.X
    out = {k: np.zeros(v) for k, v in {"query_noise": (m_k, n), "key_noise": (m_k, n),
                                        "value_noise": (2, m_v, n), "attention": (n, 2, 2),
                                        "margin": (n,)}.items()}
    v = sum(W_V[0, r] for r in range(m_v)) / m_v - sum(W_V[1, r] for r in range(m_v)) / m_v
    for i in range(n):
        yxi = data.y[i] * xi[i]
        for s in range(m_k):
            out["query_noise"][s, i] = np.dot(W_Q[s], yxi)
            out["key_noise"][s, i] = np.dot(W_K[s], yxi)
        for j in range(2):
            for r in range(m_v):
                out["value_noise"][j, r, i] = np.dot(W_V[j, r], yxi)
        sig = data.signal_position[i]
        role = [sig, 1 - sig]  # token index of role 1 (signal) and role 2 (noise)
        f = 0.0
        for a_role in range(2):
            for b_role in range(2):
                l, a = role[a_role], role[b_role]
                logits = np.array([sum(np.dot(W_Q[s], X[i, :, l]) * np.dot(W_K[s], X[i, :, b])
                                       for s in range(m_k)) for b in range(2)])
                e = np.exp(logits - logits.max())
                out["attention"][i, a_role, b_role] = e[a] / e.sum()
                f += e[a] / e.sum() * np.dot(v, X[i, :, a])
        out["margin"][i] = data.y[i] * f
    out.update(query_signal=W_Q @ mu, key_signal=W_K @ mu, value_signal=W_V @ mu,
               mean_value_signal=np.dot(v, mu),
               mean_value_noise=np.array([np.dot(v, data.y[i] * xi[i]) for i in range(n)]),
               train_loss=np.mean([np.log1p(np.exp(-m)) for m in out["margin"]]))
    return out


@pytest.mark.parametrize("optimizer", signsim.optim.available())
def test_recorded_quantities_match_explicit_loops(optimizer):
    r = signsim.run(kernel="dense", optimizer=optimizer, **SMALL)
    for row, params in ((0, r.init_params), (-1, r.params)):
        want = slow_quantities(params.W_Q, params.W_K, params.W_V, r.dataset)
        for name, value in want.items():
            assert_allclose(r.history[name][row], value, rtol=1e-11, atol=1e-13, err_msg=name)


def test_history_has_every_name_with_its_shape_and_schedule():
    config = signsim.Config(kernel="dense", **{**SMALL, "record_every": 5, "test_every": 4})
    r = signsim.run(config)
    assert_array_equal(r.steps, [0, 5, 10, 12])
    assert_array_equal(r.test_steps, [0, 4, 8, 12])
    assert set(r.history) == set(TRAIN_NAMES + TEST_NAMES)
    for name, shape in shapes(config).items():
        axis = len(r.test_steps if name in TEST_NAMES else r.steps)
        assert r.history[name].shape == (axis,) + shape, name
        assert r.history[name].dtype == np.float64 and np.isfinite(r.history[name]).all()
    assert r.params.W_Q.shape == (3, 60) and r.params.W_V.shape == (2, 2, 60)
    assert r.dataset.X.shape == (5, 60, 2) and r.dataset.mu.shape == (60,)


def test_schedule_always_includes_first_and_last_step():
    assert_array_equal(schedule(10, 3), [0, 3, 6, 9, 10])
    assert_array_equal(schedule(0, 3), [0])


def test_test_metrics_match_a_direct_evaluation():
    r = signsim.run(kernel="dense", **SMALL)
    test = r.test_dataset
    fw = signsim.model.forward(r.params, test.X)
    margin = test.y * fw.f
    assert_allclose(r.history["test_loss"][-1], loss(margin).mean(), rtol=1e-13)
    assert r.history["test_error"][-1] == np.mean(margin <= 0)


@pytest.mark.parametrize("optimizer", signsim.optim.available())
def test_same_config_and_seed_are_bit_identical_and_seeds_differ(optimizer):
    a = signsim.run(kernel="dense", optimizer=optimizer, **SMALL)
    b = signsim.run(kernel="dense", optimizer=optimizer, **SMALL)
    c = signsim.run(kernel="dense", optimizer=optimizer, seed=1, **SMALL)
    for name in a.history:
        assert_array_equal(a.history[name], b.history[name])
    assert_array_equal(a.params.W_Q, b.params.W_Q)
    assert not np.array_equal(a.history["margin"], c.history["margin"])


@settings(max_examples=10)
@given(small_configs())
def test_coordinates_outside_the_training_supports_never_move(config):
    """Spec section 5: for SignGD, Adam and GD the weights off U stay at their init exactly."""
    r = signsim.run(config.replace(kernel="dense"))
    used = np.zeros(config.d, bool)
    used[0] = True
    used[r.dataset.noise_index.ravel()] = True
    for now, then in zip(r.params, r.init_params):
        assert_array_equal(now[..., ~used], then[..., ~used])


def test_signgd_moves_every_weight_by_an_integer_number_of_lr_steps():
    """E20 on a whole run: after T steps each coordinate has moved by k * lr with integer
    |k| <= T (up to rounding of the running sums: 1e-9 in units of lr)."""
    r = signsim.run(kernel="dense", **{**SMALL, "steps": 7})
    moved = np.concatenate([(p - q).ravel() for p, q in zip(r.params, r.init_params)]) / SMALL["lr"]
    k = np.round(moved)
    assert np.abs(moved - k).max() < 1e-9
    assert np.abs(k).max() <= 7 and (np.abs(k) == 7).any()


def test_save_and_load_round_trip_exactly(tmp_path):
    r = signsim.run(kernel="dense", **SMALL)
    path = r.save(tmp_path / "run")
    assert path.name == "run.npz"
    back = signsim.load(path)
    assert back.config == r.config
    assert_array_equal(back.steps, r.steps)
    assert_array_equal(back.test_steps, r.test_steps)
    for name in r.history:
        assert_array_equal(back.history[name], r.history[name])
    for p, q in ((back.params, r.params), (back.init_params, r.init_params)):
        for a, b in zip(p, q):
            assert_array_equal(a, b)
    for field in ("y", "signal_position", "noise_index", "noise_value"):
        assert_array_equal(getattr(back.dataset, field), getattr(r.dataset, field))
        assert_array_equal(getattr(back.test_dataset, field), getattr(r.test_dataset, field))
    # a rerun from the saved config reproduces the saved history bit for bit
    again = signsim.run(back.config)
    for name in r.history:
        assert_array_equal(again.history[name], back.history[name])


def test_save_never_overwrites_unless_asked(tmp_path):
    r = signsim.run(kernel="dense", **{**SMALL, "steps": 1})
    path = r.save(tmp_path / "run.npz")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        r.save(path)
    assert path.read_bytes() == before
    r.save(path, overwrite=True)


def test_load_rejects_other_files_and_pickles(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="not a signsim result"):
        signsim.load(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", format=np.array(["signsim-result-1", None], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        signsim.load(tmp_path / "obj.npz")
