"""The network on real digits (spec section 10): exact gradients on real-data batches, the
records' meaning, the kernel choice, every optimizer, the file round trip, the experiment.

Independent references: central finite differences of L_S (E15) and mpmath
(``tests/highprec.py``) for the gradients; slow per-sample loops for the records; the
synthetic data written as a general two-token data set for the reduction to spec section 6.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import data as data_module
from signsim import optim, realdata
from signsim.data import Dataset, Source, TokenDataset, make_data
from signsim.errors import SignsimFileError
from signsim.files import DENSE_DATA_FIELDS
from signsim.gradcheck import training_loss
from signsim.grads import gradients
from signsim.kernels import FAST_NEEDS, check_data
from signsim.kernels.dense import reference_quantities
from signsim.loggrads import log_gradients, patches
from signsim.model import Params, forward, init_params

from . import highprec

REAL = {"data": "digits", "kernel": "dense", "d": 80, "s": 5, "n": 6, "n_test": 20,
        "sigma_p": 0.4, "steps": 3}
ATOL, RTOL = 1e-8, 1e-5  # as tests/test_grads.py: central differences at h = 1e-5


def real_batch(noise: str, scale: float, seed: int = 0, **changes):
    """Weights N(0, scale^2) and a real-data training batch (its dense X and labels)."""
    config = signsim.Config(**{**REAL, "noise": noise, "seed": seed, **changes})
    train, _ = make_data(config)
    rng = np.random.default_rng(seed + 10)
    m_k, m_v = 3, 2
    params = Params(*(scale * rng.standard_normal(shape) for shape in
                      ((m_k, config.d), (m_k, config.d), (2, m_v, config.d))))
    return params, train.X, train.y


def exact_gradients(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[Params, Params]:
    """The sign/log-form gradients of ``loggrads`` (what exact arithmetic steps on) as
    (signs, values)."""
    signs, logs = log_gradients(params, forward(params, X), y, patches(X))
    return signs, Params(*(s * np.exp(lg) for s, lg in zip(signs, logs)))


# ------------------------------------------------------------------ exact gradients


@pytest.mark.parametrize("noise", ["sparse", "dense"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_gradients_match_central_finite_differences_on_real_batches(noise, seed):
    """<grad, D> of the sign/log-form gradients against (L(W + hD) - L(W - hD)) / 2h along
    four random unit directions per block, on digits with sparse and dense noise."""
    params, X, y = real_batch(noise, 0.5, seed)
    _, grads = exact_gradients(params, X, y)
    rng = np.random.default_rng(seed)
    h = 1e-5
    for b, name in enumerate(Params._fields):
        scale = max(np.abs(grads[b]).max(), 1.0)
        for _ in range(4):
            D = rng.standard_normal(params[b].shape)
            D /= np.linalg.norm(D)
            plus = params._replace(**{name: params[b] + h * D})
            minus = params._replace(**{name: params[b] - h * D})
            fd = (training_loss(plus, X, y) - training_loss(minus, X, y)) / (2 * h)
            assert abs(fd - np.sum(grads[b] * D)) <= ATOL + RTOL * scale, name


@pytest.mark.parametrize("noise", ["sparse", "dense"])
def test_exact_gradients_are_the_float64_gradients_where_nothing_underflows(noise):
    """Away from saturation the two forms are one number to rounding, so their signs agree
    wherever the float64 gradient is not within rounding of 0; coordinates no token
    touches have gradient exactly 0 in both."""
    params, X, y = real_batch(noise, 0.5, 2, d=300)
    signs, exact = exact_gradients(params, X, y)
    plain, _ = gradients(params, X, y)
    untouched = ~(X != 0).any(axis=(0, 2))  # (d,): zero in every training token
    assert untouched.any() == (noise == "sparse")
    for b in range(3):
        top = np.abs(plain[b]).max()
        assert_allclose(exact[b], plain[b], rtol=0, atol=1e-12 * top)
        clear = np.abs(plain[b]) > 1e-9 * top
        assert_array_equal(signs[b][clear], np.sign(plain[b][clear]))
        assert (signs[b][..., untouched] == 0).all() and (plain[b][..., untouched] == 0).all()


def test_deep_in_saturation_exact_signs_are_the_real_signs_on_real_data():
    """Weights so large that attention saturates (float64 S_la = 0 for some pairs): the
    sign/log form gives the sign of the gradient evaluated in mpmath at every entry, where
    float64 gives 0 at some entries whose real gradient is not 0."""
    params, X, y = real_batch("sparse", 30.0, 1, n=3, d=200)
    fw = forward(params, X)
    assert (fw.S == 0).any()  # saturated in float64
    signs, _ = exact_gradients(params, X, y)
    plain, _ = gradients(params, X, y)
    gQ, gK, gV = highprec.gradients(*params, X, y)
    real = [np.array([[highprec.sign(g) for g in row] for row in gQ]),
            np.array([[highprec.sign(g) for g in row] for row in gK]),
            np.array([highprec.sign(g) for g in gV])]
    assert_array_equal(signs.W_Q, real[0])
    assert_array_equal(signs.W_K, real[1])
    assert_array_equal(signs.W_V[0], np.broadcast_to(real[2], signs.W_V[0].shape))
    lost = [(plain[b] == 0) & (real_b != 0) for b, real_b in enumerate(real[:2])]
    assert any(x.any() for x in lost)  # float64 would have stopped these coordinates


# ------------------------------------------------------------------ what is recorded


def test_the_records_on_real_data_project_on_each_samples_own_tokens():
    """Against per-sample loops: the signal records are <w, (1/n) sum_i y_i x_i> (each
    sample's signal token, label-signed, averaged), the noise records <w, y_i xi_i>, the
    attention by role [[s11, s12], [s21, s22]] with 1 = signal token."""
    config = signsim.Config(**{**REAL, "noise": "dense"})
    result = signsim.run(config, optimizer="adam", lr=0.05, steps=4)
    W, train, h = result.params, result.dataset, result.history
    X, pos = train.X, train.signal_position
    n = train.n
    tokens = [X[i, :, pos[i]] for i in range(n)]
    noises = [X[i, :, 1 - pos[i]] for i in range(n)]
    v = W.W_V[0].mean(axis=0) - W.W_V[1].mean(axis=0)
    for s in range(config.m_k):
        qs = sum(train.y[i] * W.W_Q[s] @ tokens[i] for i in range(n)) / n
        ks = sum(train.y[i] * W.W_K[s] @ tokens[i] for i in range(n)) / n
        assert h["query_signal"][-1, s] == pytest.approx(qs, rel=1e-12, abs=1e-15)
        assert h["key_signal"][-1, s] == pytest.approx(ks, rel=1e-12, abs=1e-15)
        for i in range(n):
            assert h["query_noise"][-1, s, i] == pytest.approx(
                train.y[i] * W.W_Q[s] @ noises[i], rel=1e-12, abs=1e-15)
    mvs = sum(train.y[i] * v @ tokens[i] for i in range(n)) / n
    assert h["mean_value_signal"][-1] == pytest.approx(mvs, rel=1e-12, abs=1e-15)
    S = forward(W, X).S
    for i in range(n):
        roles = (pos[i], 1 - pos[i])
        expect = [[S[i, roles[a], roles[b]] for b in range(2)] for a in range(2)]
        assert_allclose(h["attention"][-1, i], expect, rtol=1e-14, atol=0)
    assert h["value_signal"].shape[1:] == (2, config.m_v)


def test_on_synthetic_tokens_the_general_data_set_is_the_synthetic_one():
    """The synthetic data written as a general two-token data set (signal token y_i mu,
    noise token xi_i) has the same X, mu and records: its mu, the label-signed mean signal
    token, is spec section 6's mu."""
    config = signsim.Config(n=8, d=60, s=4, sigma_p=1.3, m_k=3, m_v=2, n_test=5)
    train, _ = make_data(config)
    general = TokenDataset(y=train.y, signal_position=train.signal_position,
                           signal=train.y[:, None] * train.mu[None, :], noise=train.xi,
                           image=np.arange(train.n), mu_norm=train.mu_norm)
    assert_array_equal(general.X, train.X)
    assert_array_equal(general.mu, train.mu)
    assert_allclose(general.noise_l1, train.noise_l1, rtol=1e-15, atol=0)  # summed over d
    params = init_params(4, 60, 3, 2, 0.3)
    fw = forward(params, train.X)
    ours, theirs = reference_quantities(params, fw, general), reference_quantities(params, fw,
                                                                                    train)
    for name in theirs:
        assert_array_equal(ours[name], theirs[name], err_msg=name)


# ------------------------------------------------------------------ which kernel


@pytest.mark.parametrize("extra", [{}, {"seeds": [0, 1]}])
def test_the_fast_kernel_is_refused_on_real_data_saying_kernel_dense(extra):
    with pytest.raises(ValueError, match="The 'kernel' parameter must be 'dense' for "
                                         "data='digits'.*Got kernel='fast'"):
        signsim.run(**{**REAL, "kernel": "fast"}, **extra)


class _Spiked(TokenDataset):
    declares = FAST_NEEDS  # a class that declares what the fast kernel needs


def test_the_kernel_reads_the_data_declaration_not_its_name(monkeypatch):
    """Swap the classes behind two names: the check follows the declarations."""
    digits = signsim.Config(**{**REAL, "kernel": "fast"})
    synthetic = signsim.Config(kernel="fast")
    check_data(synthetic)
    monkeypatch.setitem(data_module.SOURCES, "digits", Source(_Spiked, lambda c: None))
    monkeypatch.setitem(data_module.SOURCES, "synthetic", Source(TokenDataset, lambda c: None))
    check_data(digits)
    with pytest.raises(ValueError, match="'kernel' parameter must be 'dense'"):
        check_data(synthetic)


# ------------------------------------------------------------------ every optimizer


def _arithmetic_for(name: str) -> str:
    """exact where the optimizer declares a way to be exact, else its float64 formulas."""
    opt = optim.from_config(signsim.Config(optimizer=name))
    return "exact" if (opt.log_form is not None or opt.float64_exact) else "float64"


@pytest.mark.parametrize("name", optim.available())
def test_a_short_real_data_run_on_every_optimizer(name):
    """Every registered optimizer trains on digits: finite records of the documented
    shapes, weights that moved, test metrics in range."""
    config = signsim.Config(**{**REAL, "noise": "dense", "steps": 5, "optimizer": name,
                               "lr": 1e-3, "arithmetic": _arithmetic_for(name)})
    result = signsim.run(config)
    shapes = signsim.tracker.shapes(config)
    for key, values in result.history.items():
        assert np.isfinite(values).all(), key
        assert values.shape[1:] == shapes[key], key
    moved = [not np.array_equal(a, b) for a, b in zip(result.params, result.init_params)]
    assert all(moved)
    assert 0 <= result.history["test_error"][-1] <= 1 and result.history["test_loss"][-1] > 0


# ------------------------------------------------------------------ files


def test_a_real_data_result_round_trips_exactly(tmp_path):
    result = signsim.run(**{**REAL, "noise": "sparse", "steps": 6}, optimizer="gd", lr=1.0)
    back = signsim.load(result.save(tmp_path / "real"))
    assert back.config == result.config and back.config.data == "digits"
    assert list(back.history) == list(result.history)
    for name in result.history:
        assert_array_equal(back.history[name], result.history[name], err_msg=name)
    for a, b in zip((*back.params, *back.init_params), (*result.params, *result.init_params)):
        assert_array_equal(a, b)
    for x, y in ((back.dataset, result.dataset), (back.test_dataset, result.test_dataset)):
        assert type(x) is TokenDataset
        for field in DENSE_DATA_FIELDS:
            assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
    again = signsim.run(back.config)  # the saved config is enough to reproduce it
    assert_array_equal(again.history["margin"], result.history["margin"])


def _rewrite(path, out, change):
    members = dict(np.load(path, allow_pickle=False))
    change(members)
    np.savez(out, allow_pickle=False, **members)
    return out


def test_a_damaged_real_data_file_is_refused(tmp_path):
    """A signal token off its norm, and a config naming the synthetic data over real
    arrays, are refused naming the member."""
    path = signsim.run(**REAL).save(tmp_path / "real")

    def stretch(m):
        m["dataset.signal"] = m["dataset.signal"] * 1.5

    with pytest.raises(SignsimFileError, match="'dataset.signal'.*norm mu_norm"):
        signsim.load(_rewrite(path, tmp_path / "stretched.npz", stretch))

    def relabel(m):
        configs = json.loads(str(m["configs"]))
        configs[0]["data"] = "synthetic"
        m["configs"] = np.array(json.dumps(configs))

    with pytest.raises(SignsimFileError, match="noise_index"):
        signsim.load(_rewrite(path, tmp_path / "relabelled.npz", relabel))


def test_a_config_saved_before_real_data_loads_as_the_synthetic_data(tmp_path):
    """Configs without the data fields (files of earlier versions) mean the synthetic data."""
    path = signsim.run(n=4, d=30, s=3, steps=2, n_test=3).save(tmp_path / "old")

    def strip(m):
        configs = json.loads(str(m["configs"]))
        for c in configs:
            for field in signsim.config.DATA_FIELDS:
                del c[field]
        m["configs"] = np.array(json.dumps(configs))

    back = signsim.load(_rewrite(path, tmp_path / "stripped.npz", strip))
    assert back.config.data == "synthetic" and type(back.dataset) is Dataset
    old = {k: v for k, v in back.config.to_dict().items() if k not in signsim.config.DATA_FIELDS}
    assert signsim.Config.from_dict(old) == back.config


# ------------------------------------------------------------------ the experiment


def _fake(loss: float):
    return SimpleNamespace(history={"train_loss": np.array([1.0, loss])})


def test_choose_lr_takes_the_smallest_rate_that_reaches_the_target():
    pilots = realdata.pilot_configs(realdata.base_config(), "gd", (10.0, 1.0, 3.0, 30.0), 0.05)
    assert [c.lr for c in pilots] == [1.0, 3.0, 10.0, 30.0]  # in increasing lr
    assert {c.sigma_p for c in pilots} == {0.05} and {c.seed for c in pilots} == {0}
    results = [_fake(0.5), _fake(0.02), _fake(0.009), _fake(1e-4)]
    assert realdata.choose_lr(pilots, results) == 10.0
    assert realdata.choose_lr(pilots, [_fake(1.0)] * 3 + [None]) == 30.0  # none: the largest
    assert realdata.choose_lr(pilots, [None, _fake(1e-3), _fake(1.0), _fake(1.0)]) == 3.0


def test_the_plan_covers_every_optimizer_noise_level_and_seed_once():
    base = realdata.base_config()
    configs = realdata.experiment_configs(base, {"signgd": 0.01, "gd": 10.0}, (0.1, 0.8), (0, 1, 2))
    keys = [(c.optimizer, c.lr, c.sigma_p, c.seed) for c in configs]
    assert len(set(keys)) == len(keys) == 2 * 2 * 3
    assert {c.kernel for c in configs} == {"dense"} and {c.data for c in configs} == {"digits"}


def test_run_configs_does_not_run_what_is_done():
    config = realdata.base_config(steps=1)
    marker = object()
    assert realdata.run_configs([config, config], done={config: marker}) == [marker, marker]


@pytest.fixture(scope="module")
def small_experiment():
    base = realdata.base_config(n=20, n_test=40, d=100, steps=30)
    return realdata.experiment((0, 1), base=base, sigma_ps=(0.1, 0.8),
                               grids={"signgd": (1e-3, 1e-2), "adam": (1e-2,), "gd": (10.0,)})


def test_the_experiment_follows_its_learning_rate_rule(small_experiment):
    """The lr chosen is the smallest pilot under the target, every smaller one above it;
    the experiment's run of the pilot's Config (a sweep row) has the pilot's history, bit
    for bit, and its rows come in plan order."""
    plan, results = small_experiment
    for opt, (pilots, runs) in plan.pilots.items():
        losses = [float(r.history["train_loss"][-1]) for r in runs]
        chosen = [c.lr for c in pilots].index(plan.lrs[opt])
        assert all(x >= realdata.TARGET_LOSS for x in losses[:chosen])
        if losses[chosen] < realdata.TARGET_LOSS:
            assert chosen == len(pilots) - 1  # the pilots stop at the first that trains
        first = plan.configs.index(pilots[chosen])
        for name in ("train_loss", "test_loss", "test_error"):
            assert np.array_equal(results[first].history[name], runs[chosen].history[name])
    assert len(results) == len(plan.configs) == 3 * 2 * 2
    assert [r.config for r in results] == plan.configs


def test_curves_and_table_give_mean_and_spread_over_seeds(small_experiment):
    plan, results = small_experiment
    found = realdata.curves(results)
    assert [c.config.optimizer for c in found] == list(plan.lrs)
    for curve in found:
        assert_array_equal(curve.sigma_ps, [0.1, 0.8])
        runs = [r for r in results if r.config.optimizer == curve.config.optimizer]
        for k, sigma in enumerate((0.1, 0.8)):
            acc = [1 - r.history["test_error"][-1] for r in runs if r.config.sigma_p == sigma]
            assert_array_equal(np.sort(curve.test_accuracy[k]), np.sort(acc))
    table = realdata.markdown_table(found)
    acc = found[0].test_accuracy[0]
    spread = np.sqrt(((acc - acc.mean()) ** 2).sum() / (len(acc) - 1))  # ddof 1
    assert f"{acc.mean():.3f} ± {spread:.3f}" in table.splitlines()[2]
    assert len(table.splitlines()) == 2 + 2
