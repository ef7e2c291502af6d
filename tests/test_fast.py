"""The fast kernel against the dense reference, its two layouts against each other, replica
batching and worker threads, and sparse weights.

Tolerance: both kernels compute the same quantities with sums in different orders (over s
slots instead of d coordinates, v from a shared value update instead of a mean of rows), so
they differ by rounding, about 1e-16 relative per operation (measured worst over these tests:
~3e-15 of the largest entry). We require rtol = 1e-9, atol = 1e-12. Under SignGD rounding can
only matter if a gradient entry is within rounding of 0; with continuous random data that has
probability 0 and is never met in these runs (a flipped sign would show as a difference of lr).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import fast
from signsim.data import make_data
from signsim.fast import _unique_inverse, run_fast
from signsim.forked import ForkedEvaluations, can_fork

from .strategies import small_configs

RTOL, ATOL = 1e-9, 1e-12
OVERLAP = dict(n=6, d=40, s=5, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, steps=25, n_test=30,
               test_every=4)
DISJOINT = dict(n=4, d=5000, s=6, sigma_p=2.0, m_k=3, m_v=3, sigma_0=0.05, steps=25,
                n_test=30, test_every=4)
LR = {"signgd": 1e-2, "adam": 1e-2, "gd": 0.2}


def assert_same_run(a, b):
    assert_array_equal(a.steps, b.steps)
    assert_array_equal(a.test_steps, b.test_steps)
    for name in a.history:
        assert_allclose(a.history[name], b.history[name], rtol=RTOL, atol=ATOL, err_msg=name)
    for x, y in zip(a.params, b.params.to_dense()):
        assert_allclose(x, y, rtol=RTOL, atol=ATOL)
    for x, y in zip(a.init_params, b.init_params.to_dense()):
        assert_array_equal(x, y)  # the same counter-based init, not just the same law


@pytest.mark.parametrize("optimizer", ["signgd", "adam", "gd"])
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_fast_equals_dense(optimizer, shape):
    config = signsim.Config(optimizer=optimizer, lr=LR[optimizer], **shape)
    train, _ = make_data(config)
    overlapping = len(np.unique(train.noise_index)) < train.noise_index.size
    assert overlapping == (shape is OVERLAP)
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


@settings(max_examples=15)
@given(small_configs())
def test_fast_equals_dense_on_drawn_configs(config):
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


def test_adam_with_zero_eps_runs_in_both_kernels():
    config = signsim.Config(optimizer="adam", lr=1e-2, eps=0.0, beta1=0.5, beta2=0.9, **OVERLAP)
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


@pytest.mark.parametrize("optimizer", ["signgd", "adam"])
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_a_replica_is_bit_identical_to_its_seed_alone(optimizer, shape):
    """Also when the replicas have different numbers of test samples touching U (DISJOINT:
    a few each), so that a batch pads the shorter ones."""
    config = signsim.Config(optimizer=optimizer, lr=LR[optimizer], **shape)
    seeds = [11, 0, 5]
    batch = signsim.run(config, seeds=seeds)
    assert batch.seeds == tuple(seeds)
    for r, seed in enumerate(seeds):
        alone = signsim.run(config, seed=seed)
        for name in alone.history:
            assert batch.history[name].shape == (3,) + alone.history[name].shape
            assert_array_equal(batch.history[name][r], alone.history[name], err_msg=name)
        assert_array_equal(batch.params.to_dense().W_Q[r], alone.params.W_Q)
        assert_array_equal(batch.dataset[r].noise_index, alone.dataset.noise_index)
    # n = 1 and m_k = 1 change which axes numpy reduces over: still identical
    tiny = config.replace(n=1, m_k=1, m_v=1)
    batch = signsim.run(tiny, seeds=[1, 2])
    assert_array_equal(batch.history["margin"][1], signsim.run(tiny, seed=2).history["margin"])


def test_same_seed_is_bit_identical_and_seeds_differ():
    a = signsim.run("fig1", steps=30)
    b = signsim.run("fig1", steps=30)
    c = signsim.run("fig1", steps=30, seed=1)
    for name in a.history:
        assert_array_equal(a.history[name], b.history[name])
    assert not np.array_equal(a.history["query_noise"], c.history["query_noise"])


def test_cost_is_independent_of_d_in_memory():
    """d = 10^9 would need 80 GB per dense (m, d) block; the fast kernel never builds one."""
    r = signsim.run("fig1", d=10**9, steps=3, n_test=20)
    assert r.params.coords.size <= 20 * 20 + 1
    assert r.history["train_loss"].shape == (4,)


def test_sparse_params_densify_to_init_off_the_active_coordinates():
    r = signsim.run(**OVERLAP)
    dense, init = r.params.to_dense(), r.init_params.to_dense()
    off = np.setdiff1d(np.arange(OVERLAP["d"]), r.params.coords)
    for now, then in zip(dense, init):
        assert_array_equal(now[..., off], then[..., off])
    assert r.params.W_Q.shape == (3, 40) and r.params.W_V.shape == (2, 2, 40)


def test_batched_result_saves_and_loads(tmp_path):
    r = signsim.run(seeds=[3, 4], **OVERLAP)
    back = signsim.load(r.save(tmp_path / "batch"))
    assert back.seeds == (3, 4)
    for name in r.history:
        assert_array_equal(back.history[name], r.history[name])
    assert_array_equal(back.params.to_dense().W_K, r.params.to_dense().W_K)
    assert_array_equal(back.dataset[1].noise_value, r.dataset[1].noise_value)


def test_bad_seeds_are_rejected():
    with pytest.raises(ValueError, match="'seeds'"):
        signsim.run(seeds=[])
    with pytest.raises(ValueError, match="'seed'"):
        signsim.run(seeds=[1, -2])
    with pytest.raises(ValueError, match="kernel='fast'"):
        signsim.run(seeds=[1, 2], kernel="dense")


@pytest.mark.parametrize("optimizer", ["signgd", "adam", "gd"])
def test_replicas_varying_lr_and_sigma_p_are_bit_identical_to_their_runs_alone(optimizer):
    config = signsim.Config(optimizer=optimizer, lr=LR[optimizer], **OVERLAP)
    lrs = [LR[optimizer], LR[optimizer] / 3, LR[optimizer] * 2]
    sigmas = [2.0, 0.7, 5.0]
    batch = signsim.run(config, seeds=[4, 4, 9], vary={"lr": lrs, "sigma_p": sigmas})
    assert_array_equal(batch.varied["lr"], lrs)
    for r, (seed, lr, sp) in enumerate(zip([4, 4, 9], lrs, sigmas)):
        alone = signsim.run(config, seed=seed, lr=lr, sigma_p=sp)
        for name in alone.history:
            assert_array_equal(batch.history[name][r], alone.history[name], err_msg=name)
    # a batch over sigma_p alone keeps config.seed for every replica
    only = signsim.run(config, vary={"sigma_p": sigmas})
    assert only.seeds == (config.seed,) * 3
    assert_array_equal(only.history["margin"][1],
                       signsim.run(config, sigma_p=0.7).history["margin"])


def test_varied_batches_save_and_load(tmp_path):
    r = signsim.run(vary={"lr": [1e-3, 2e-3]}, **OVERLAP)
    back = signsim.load(r.save(tmp_path / "v"))
    assert_array_equal(back.varied["lr"], [1e-3, 2e-3])
    assert back.seeds == r.seeds


@pytest.mark.parametrize("kw,text", [
    ({"vary": {"beta1": [0.5]}}, "'vary'"),
    ({"vary": {"lr": [1e-3, 2e-3]}, "seeds": [1, 2, 3]}, "one length"),
    ({"vary": {"lr": [1e-3, -1.0]}}, "'lr'"),
    ({"vary": {"lr": []}}, "non-empty"),
    ({"vary": {"lr": [1e-3]}, "kernel": "dense"}, "kernel='fast'"),
])
def test_bad_vary_is_rejected(kw, text):
    with pytest.raises(ValueError, match=text):
        signsim.run(**OVERLAP, **kw)


@pytest.mark.parametrize("optimizer", ["signgd", "gd"])
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_per_sample_layout_equals_per_coordinate_layout(optimizer, shape):
    """SignGD and GD run on per-(sample, row) running sums; the per-coordinate layout (the
    one Adam needs) computes the same run coordinate by coordinate."""
    config = signsim.Config(optimizer=optimizer, lr=LR[optimizer], **shape)
    a, b = run_fast(config, layout="sample"), run_fast(config, layout="coordinate")
    for name in a.history:
        assert_allclose(a.history[name], b.history[name], rtol=RTOL, atol=ATOL, err_msg=name)
    for x, y in zip(a.params.to_dense(), b.params.to_dense()):
        assert_allclose(x, y, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("helper", ["process", "thread"])
@pytest.mark.parametrize("optimizer", ["signgd", "adam", "gd"])
def test_workers_do_not_change_a_single_bit(optimizer, helper, monkeypatch):
    """Threads share the setup; the test set and its evaluations run beside training in a
    forked process (where one can be forked) or in a helper thread. Every number is computed
    by the same operations, so the result is bit for bit the same in every case."""
    if helper == "process" and not can_fork():
        pytest.skip("no fork() here, or the test process has several threads")
    if helper == "thread":
        monkeypatch.setattr(fast, "can_fork", lambda: False)
    forks = []
    monkeypatch.setattr(fast, "ForkedEvaluations",
                        lambda *a, **k: forks.append(1) or ForkedEvaluations(*a, **k))
    config = signsim.Config(optimizer=optimizer, lr=LR[optimizer], **OVERLAP)
    seeds = [3, 1, 4, 1, 5]
    vary = {"lr": [LR[optimizer] * k for k in (1, 0.5, 2, 1, 0.25)]}
    one = signsim.run(config, seeds=seeds, vary=vary, workers=1)
    for workers in (2, 3):
        many = signsim.run(config, seeds=seeds, vary=vary, workers=workers)
        for name in one.history:
            assert_array_equal(one.history[name], many.history[name], err_msg=name)
        for x, y in zip(one.params.to_dense(), many.params.to_dense()):
            assert_array_equal(x, y)
        assert many.seeds == tuple(seeds)
        assert_array_equal(many.dataset[4].noise_value, one.dataset[4].noise_value)
    assert len(forks) == (2 if helper == "process" else 0)  # the helper asked for was used


def test_every_recorded_row_is_written():
    """The history starts as NaN; a finished run has written every row of every name."""
    r = signsim.run(seeds=[0, 1], workers=2, **OVERLAP)
    for name, value in r.history.items():
        assert np.isfinite(value).all(), name


@pytest.mark.parametrize("kw,text", [
    ({"workers": 0}, "'workers'"),
    ({"workers": 1.5}, "'workers'"),
    ({"workers": True}, "'workers'"),
    ({"workers": 2, "kernel": "dense"}, "kernel='fast'"),
])
def test_bad_workers_are_rejected(kw, text):
    with pytest.raises(ValueError, match=text):
        signsim.run(**OVERLAP, **kw)


def test_adam_cannot_use_the_per_sample_layout():
    with pytest.raises(ValueError, match="'layout'"):
        run_fast(signsim.Config(optimizer="adam", **OVERLAP), layout="sample")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_unique_inverse_matches_numpy_unique(d, entries, seed):
    """Property: the test set's coordinate table (by marking when d is small, by sorting
    otherwise) gives exactly np.unique(index, return_inverse=True) on both branches: the
    sorted distinct coordinates, and the position of each entry among them."""
    index = np.random.default_rng(seed).integers(0, d, size=entries)
    values, inverse = _unique_inverse(index, d)
    expected, expected_inverse = np.unique(index, return_inverse=True)
    assert_array_equal(values, expected)
    assert_array_equal(inverse, expected_inverse)
    assert_array_equal(values[inverse], index)


def test_a_run_that_cannot_fork_after_its_setup_evaluates_in_place(monkeypatch):
    """If a thread appears between the choice of a helper process and the fork (the pool's
    threads are stopped, but can_fork() now says no), the test set is built and evaluated
    in the calling thread: still the same bits."""
    answers = iter([True, False])
    monkeypatch.setattr(fast, "can_fork", lambda: next(answers))
    forks = []
    monkeypatch.setattr(fast, "ForkedEvaluations", lambda *a, **k: forks.append(1))
    config = signsim.Config(lr=LR["signgd"], **OVERLAP)
    late = fast.run_fast(config, seeds=[2, 7], workers=2)
    one = fast.run_fast(config, seeds=[2, 7], workers=1)
    assert not forks
    for name in one.history:
        assert_array_equal(one.history[name], late.history[name], err_msg=name)


def test_sigmoid_floor_changes_no_result():
    """Property: 1 / (1 + e^x) is exactly 1.0 at and below fast.SIGMOID_FLOOR, so raising the
    arguments of the kernel's sigmoid to it (to spare exp its slow underflow path) gives the
    same bits as the plain formula everywhere, saturated and infinite arguments included."""
    x = np.concatenate([-np.logspace(-3, 4, 30001), np.logspace(-3, 4, 30001),
                        np.linspace(-80.0, 80.0, 32001),
                        [0.0, -0.0, -np.inf, np.inf, np.nan, -745.2, -709.8, 709.8, 745.2]])
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(x))
    got = x.copy()
    with np.errstate(over="ignore"):
        fast._sigmoid_of_negative(got)
    assert_array_equal(got, expected)
    assert np.all(expected[x <= fast.SIGMOID_FLOOR] == 1.0)


def test_train_metrics_follow_from_the_recorded_margins_in_blocks():
    """Property: train_loss and train_error, computed after the loop from the recorded
    margins a block of records at a time, are the mean of l(margin) (E14-E15, here through
    logaddexp) and the fraction of margins <= 0 at every record, and the block size changes
    no bit (blocks of 4 against one block)."""
    config = signsim.Config(lr=LR["signgd"], **OVERLAP)
    result = signsim.run(config, seeds=[0, 1])
    margin = result.history["margin"]  # (R, T, n)
    assert_allclose(result.history["train_loss"], np.logaddexp(0.0, -margin).mean(-1),
                    rtol=1e-13, atol=0)
    assert_array_equal(result.history["train_error"], (margin <= 0).mean(-1))
    blocks = {"margin": margin, "train_loss": np.full(margin.shape[:2], np.nan),
              "train_error": np.full(margin.shape[:2], np.nan)}
    fast._train_metrics(blocks, rows=4)
    assert_array_equal(blocks["train_loss"], result.history["train_loss"])
    assert_array_equal(blocks["train_error"], result.history["train_error"])
