"""The fast kernel against the dense reference, its two layouts against each other, replica
batching and worker processes, and sparse weights.

Tolerance: both kernels compute the same quantities with sums in different orders (over s
slots instead of d coordinates, v from a shared value update instead of a mean of rows), so
they differ by rounding, about 1e-16 relative per operation (measured worst over these tests:
~3e-15 of the largest entry). We require rtol = 1e-9, atol = 1e-12. Under SignGD rounding can
only matter if a gradient entry is within rounding of 0; with continuous random data and
runs this short that is never met here (a flipped sign would show as a difference of lr).
Runs deep into saturation agree as well in exact arithmetic (tests/test_exact.py); in
float64 they agree only before factors of the gradient underflow.

Optimizers are taken from the registry (``signsim.optim.available()``), so one registered
later is tested too.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import signsim
from signsim import optim
from signsim.data import make_data
from signsim.kernels.fast import records, step
from signsim.kernels.fast.support import unique_inverse
from signsim.simulate import run_batch
from signsim.tracker import select

from .strategies import small_configs

RTOL, ATOL = 1e-9, 1e-12
OVERLAP = dict(n=6, d=40, s=5, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, steps=25, n_test=30,
               test_every=4)
DISJOINT = dict(n=4, d=5000, s=6, sigma_p=2.0, m_k=3, m_v=3, sigma_0=0.05, steps=25,
                n_test=30, test_every=4)
def lr_for(optimizer: str) -> float:
    """A learning rate that moves these small runs visibly (GD needs a larger one)."""
    return {"gd": 0.2}.get(optimizer, 1e-2)


def _entrywise(config) -> bool:
    return optim.from_config(config).entrywise


# every registered optimizer the fast kernel runs (an entrywise one), at collection time
OPTIMIZERS = tuple(o for o in optim.available() if _entrywise(signsim.Config(optimizer=o)))


def assert_same_run(a, b):
    assert_array_equal(a.steps, b.steps)
    assert_array_equal(a.test_steps, b.test_steps)
    assert list(a.history) == list(b.history)
    for name in a.history:
        assert_allclose(a.history[name], b.history[name], rtol=RTOL, atol=ATOL, err_msg=name)
    for x, y in zip(a.params.to_dense(), b.params.to_dense()):
        assert_allclose(x, y, rtol=RTOL, atol=ATOL)
    for x, y in zip(a.init_params.to_dense(), b.init_params.to_dense()):
        assert_array_equal(x, y)  # the same counter-based init, not just the same law


def assert_same_bits(x, y, what=""):
    """Same dtype, shape and bytes (so -0.0 differs from 0.0, and NaN equals itself)."""
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape, (what, x.dtype, y.dtype, x.shape, y.shape)
    assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), what


def assert_bit_identical(a, b):
    """Two Results of the same kind, equal to the last bit (history, weights, data)."""
    assert a.batched == b.batched and a.configs == b.configs
    assert_same_bits(a.steps, b.steps, "steps")
    assert_same_bits(a.test_steps, b.test_steps, "test_steps")
    assert list(a.history) == list(b.history)
    for name in a.history:
        assert_same_bits(a.history[name], b.history[name], name)
    for x, y in ((a.params, b.params), (a.init_params, b.init_params)):
        if hasattr(x, "coords"):  # SparseParams (fast kernel); Params are dense already
            assert_array_equal(x.coords, y.coords)
        for u, v in zip(x.to_dense(), y.to_dense()):
            assert_same_bits(u, v, "weights")
    for x, y in ((a.dataset, b.dataset), (a.test_dataset, b.test_dataset)):
        for u, v in zip(x if a.batched else [x], y if b.batched else [y]):
            for field in ("y", "signal_position", "noise_index", "noise_value"):
                assert_same_bits(getattr(u, field), getattr(v, field), field)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_fast_equals_dense(optimizer, shape):
    config = signsim.Config(optimizer=optimizer, lr=lr_for(optimizer), **shape)
    train, _ = make_data(config)
    overlapping = len(np.unique(train.noise_index)) < train.noise_index.size
    assert overlapping == (shape is OVERLAP)
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


@settings(max_examples=15)
@given(small_configs().filter(_entrywise))
def test_fast_equals_dense_on_drawn_configs(config):
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


def test_adam_with_zero_eps_runs_in_both_kernels():
    config = signsim.Config(optimizer="adam", lr=1e-2, eps=0.0, beta1=0.5, beta2=0.9, **OVERLAP)
    assert_same_run(signsim.run(config, kernel="dense"), signsim.run(config, kernel="fast"))


def _half_sign(config, **declared):
    """A sign step scaled by 1/2, registered from outside the package. A sign rule reads
    only the signs of the gradients, so its exact form (log_form) is the rule on the signs;
    ``log_form=None`` declares none."""

    def init(params):
        return optim.SignGDState(0)

    def update(grads, state):
        return optim._map(lambda g: -0.5 * config.lr * np.sign(g), grads), \
            optim.SignGDState(state.count + 1)

    declared.setdefault("log_form", optim.LogForm(init, lambda s, _, state: update(s, state),
                                                  magnitudes=False))
    return optim.Optimizer(init, update, **declared)


@pytest.fixture
def registered():
    """Register optimizers for one test and remove them after it."""
    names = []

    def register(name, factory):
        optim.register(name, factory)
        names.append(name)

    yield register
    for name in names:
        optim.unregister(name)


@pytest.mark.parametrize("declared", [{}, {"homogeneity": 0.0}],
                         ids=["declaring-nothing", "declaring-homogeneity-0"])
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_an_optimizer_registered_from_outside_runs_exactly_on_the_fast_kernel(
        registered, declared, shape):
    """Property: an entrywise rule that declares nothing runs on the general per-coordinate
    layout and agrees with the dense reference; one that declares its homogeneity runs on
    the per-sample layout and agrees too."""
    registered("half_sign", lambda c: _half_sign(c, **declared))
    config = signsim.Config(optimizer="half_sign", lr=1e-2, **shape)
    kernel = signsim.kernels.make_kernel([config], select(None))
    assert type(kernel.layout).__name__ == ("SampleLayout" if declared else "CoordinateLayout")
    fast = signsim.run(config)
    assert_same_run(signsim.run(config, kernel="dense"), fast)
    moved = (fast.params.W_Q_active - fast.init_params.W_Q_active) / (0.5 * config.lr)
    assert_allclose(moved, np.round(moved), atol=1e-6)  # whole half-steps


def test_exact_arithmetic_refuses_a_rule_without_an_exact_form(registered):
    """Property: a rule that declares neither a log_form nor float64_exact could have its
    steps decided by an underflow, so exact arithmetic (the default) refuses it, naming the
    parameter; arithmetic='float64' runs it, in both kernels."""
    registered("half_sign", lambda c: _half_sign(c, log_form=None))
    config = signsim.Config(optimizer="half_sign", **OVERLAP)
    for kernel in ("fast", "dense"):
        with pytest.raises(ValueError, match="'arithmetic'.*'exact', 'float64'"):
            signsim.run(config, kernel=kernel)
    plain = config.replace(arithmetic="float64")
    assert_same_run(signsim.run(plain, kernel="dense"), signsim.run(plain))


def test_an_optimizer_not_proportional_to_lr_cannot_vary_lr_in_a_batch(registered):
    registered("half_sign", _half_sign)
    config = signsim.Config(optimizer="half_sign", **OVERLAP)
    with pytest.raises(ValueError, match="proportional_to_lr"):
        signsim.run(config, vary={"lr": [1e-2, 2e-2]})
    batch = signsim.run(config, vary={"sigma_p": [1.0, 2.0]})  # any other field may vary
    assert_bit_identical(batch.replica(1), signsim.run(config, sigma_p=2.0))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_a_replica_is_bit_identical_to_its_run_alone(optimizer, shape):
    """Property: Result.replica(r) of a batch equals run(config, seed=seeds[r]) to the last
    bit, also when the replicas have different numbers of test samples touching U
    (DISJOINT: a few each), so that a batch pads the shorter ones."""
    config = signsim.Config(optimizer=optimizer, lr=lr_for(optimizer), **shape)
    seeds = [11, 0, 5]
    batch = signsim.run(config, seeds=seeds)
    assert batch.seeds == tuple(seeds)
    for r, seed in enumerate(seeds):
        alone = signsim.run(config, seed=seed)
        assert_bit_identical(batch.replica(r), alone)
        for name in alone.history:
            assert batch.history[name].shape == (3,) + alone.history[name].shape
            assert_array_equal(batch.history[name][r], alone.history[name], err_msg=name)
    # n = 1 and m_k = 1 change which axes numpy reduces over: still identical
    tiny = config.replace(n=1, m_k=1, m_v=1)
    assert_bit_identical(signsim.run(tiny, seeds=[1, 2]).replica(1), signsim.run(tiny, seed=2))


def test_same_seed_is_bit_identical_and_seeds_differ():
    a = signsim.run("fig1", steps=30)
    b = signsim.run("fig1", steps=30)
    c = signsim.run("fig1", steps=30, seed=1)
    assert_bit_identical(a, b)
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
    assert back.seeds == (3, 4) and back.configs == r.configs
    assert_bit_identical(back, r)
    assert_bit_identical(back.replica(1), r.replica(1))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_replicas_varying_lr_sigma_p_and_sigma_0_are_bit_identical_to_their_runs_alone(optimizer):
    config = signsim.Config(optimizer=optimizer, lr=lr_for(optimizer), **OVERLAP)
    lrs = [lr_for(optimizer) * k for k in (1, 1 / 3, 2)]
    sigmas, inits = [2.0, 0.7, 5.0], [0.05, 0.01, 0.2]
    batch = signsim.run(config, seeds=[4, 4, 9], vary={"lr": lrs, "sigma_p": sigmas,
                                                       "sigma_0": inits})
    assert_array_equal(batch.varied["lr"], lrs)
    for r, (seed, lr, sp, s0) in enumerate(zip([4, 4, 9], lrs, sigmas, inits)):
        alone = signsim.run(config, seed=seed, lr=lr, sigma_p=sp, sigma_0=s0)
        assert batch.configs[r] == alone.config  # each replica reports what it ran
        assert_bit_identical(batch.replica(r), alone)
    # a batch over sigma_p alone keeps config.seed for every replica
    only = signsim.run(config, vary={"sigma_p": sigmas})
    assert only.seeds == (config.seed,) * 3
    assert_bit_identical(only.replica(1), signsim.run(config, sigma_p=0.7))


def test_varied_batches_save_and_load(tmp_path):
    r = signsim.run(vary={"lr": [1e-3, 2e-3]}, **OVERLAP)
    back = signsim.load(r.save(tmp_path / "v"))
    assert_array_equal(back.varied["lr"], [1e-3, 2e-3])
    assert back.seeds == r.seeds and [c.lr for c in back.configs] == [1e-3, 2e-3]


@pytest.mark.parametrize("kw,text", [
    ({"vary": {"beta1": [0.5]}}, "'vary'"),
    ({"vary": {"lr": [1e-3, 2e-3]}, "seeds": [1, 2, 3]}, "one length"),
    ({"vary": {"lr": [1e-3, -1.0]}}, "'lr'"),
    ({"vary": {"lr": []}}, "non-empty"),
    ({"vary": {"lr": [1e-3]}, "kernel": "dense"}, "kernel='fast'"),
    ({"vary": {"lr": 1e-4}}, "sequence of per-replica values. Got 0.0001"),
    ({"vary": ["lr"]}, "must be a dict"),
    ({"vary": {"lr": [1e-4]}, "lr": 5e-4}, "conflicts with vary"),
])
def test_bad_vary_is_rejected(kw, text):
    with pytest.raises(ValueError, match=text):
        signsim.run(**{**OVERLAP, **kw})


def test_a_conflicting_override_is_refused_and_the_config_reported_is_the_one_that_ran():
    """``run("fig1", vary={"lr": [1e-4]}, lr=5e-4)`` used to run at 1e-4 and report 5e-4."""
    with pytest.raises(ValueError, match="'lr' override"):
        signsim.run("fig1", vary={"lr": [1e-4]}, lr=5e-4, steps=2)
    r = signsim.run("fig1", vary={"lr": [2e-4, 3e-4]}, steps=2)
    assert [c.lr for c in r.configs] == [2e-4, 3e-4] and r.config.lr == 2e-4
    assert r.replica(1).config.lr == 3e-4


@pytest.mark.parametrize("optimizer", [o for o in OPTIMIZERS
                                       if optim.from_config(signsim.Config(optimizer=o))
                                       .homogeneity is not None])
@pytest.mark.parametrize("shape", [OVERLAP, DISJOINT], ids=["overlapping", "disjoint"])
def test_per_sample_layout_equals_per_coordinate_layout(optimizer, shape):
    """An optimizer that declares its homogeneity runs on per-(sample, row) running sums;
    the per-coordinate layout computes the same run coordinate by coordinate."""
    config = signsim.Config(optimizer=optimizer, lr=lr_for(optimizer), **shape)
    a = run_batch([config], select(None), single=True, layout="sample")
    b = run_batch([config], select(None), single=True, layout="coordinate")
    assert_same_run(a, b)


def test_a_layout_the_optimizer_does_not_declare_is_refused():
    with pytest.raises(ValueError, match="'layout'"):
        run_batch([signsim.Config(optimizer="adam", **OVERLAP)], select(None), layout="sample")
    with pytest.raises(ValueError, match="'layout'"):
        run_batch([signsim.Config(**OVERLAP)], select(None), layout="diagonal")


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_worker_processes_do_not_change_a_single_bit(method, monkeypatch):
    """The replicas split across 2 processes (``signsim.parallel``), started by fork or by a
    forkserver, give the Result of the batch in one process, bit for bit (a sign layout and
    the per-coordinate layout)."""
    from signsim import parallel

    monkeypatch.setattr(parallel, "start_method", lambda: method)
    for optimizer in ("signgd", "adam"):
        config = signsim.Config(optimizer=optimizer, lr=lr_for(optimizer), **OVERLAP)
        seeds = [3, 1, 4, 1, 5]
        vary = {"lr": [lr_for(optimizer) * k for k in (1, 0.5, 2, 1, 0.25)]}
        one = signsim.run(config, seeds=seeds, vary=vary)
        many = signsim.run(config, seeds=seeds, vary=vary, workers=2)
        assert_bit_identical(one, many)
        assert many.vary == ("lr",)


def test_every_recorded_row_is_written():
    """The history starts as NaN; a finished run has written every row of every name."""
    r = signsim.run(seeds=[0, 1], **OVERLAP)
    for name, value in r.history.items():
        assert np.isfinite(value).all(), name


@pytest.mark.parametrize("kw,text", [
    ({"workers": 0}, "'workers'"),
    ({"workers": 1.5}, "'workers'"),
    ({"workers": True}, "'workers'"),
    ({"workers": 2}, "single run"),
    ({"seeds": [1, 2], "workers": 2, "kernel": "dense"}, "kernel='fast'"),
])
def test_bad_workers_are_rejected(kw, text):
    with pytest.raises(ValueError, match=text):
        signsim.run(**OVERLAP, **kw)


def test_numpy_ints_are_accepted_for_workers():
    r = signsim.run(**OVERLAP, seeds=[1, 2], workers=np.int64(1))
    assert r.replicas == 2


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_unique_inverse_matches_numpy_unique(d, entries, seed):
    """Property: the test set's coordinate table (by marking when d is small, by sorting
    otherwise) gives exactly np.unique(index, return_inverse=True) on both branches: the
    sorted distinct coordinates, and the position of each entry among them."""
    index = np.random.default_rng(seed).integers(0, d, size=entries)
    values, inverse = unique_inverse(index, d)
    expected, expected_inverse = np.unique(index, return_inverse=True)
    assert_array_equal(values, expected)
    assert_array_equal(inverse, expected_inverse)
    assert_array_equal(values[inverse], index)


def test_sigmoid_floor_changes_no_result():
    """Property: 1 / (1 + e^x) is exactly 1.0 at and below step.SIGMOID_FLOOR, so raising the
    arguments of the kernel's sigmoid to it (to spare exp its slow underflow path) gives the
    same bits as the plain formula everywhere, saturated and infinite arguments included."""
    x = np.concatenate([-np.logspace(-3, 4, 30001), np.logspace(-3, 4, 30001),
                        np.linspace(-80.0, 80.0, 32001),
                        [0.0, -0.0, -np.inf, np.inf, np.nan, -745.2, -709.8, 709.8, 745.2]])
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(x))
    got = x.copy()
    with np.errstate(over="ignore"):
        step.sigmoid_of_negative(got)
    assert_array_equal(got, expected)
    assert np.all(expected[x <= step.SIGMOID_FLOOR] == 1.0)


def test_train_metrics_follow_from_the_recorded_margins_in_blocks():
    """Property: train_loss and train_error, computed after the loop from the recorded
    margins a block of records at a time, are the mean of l(margin) (E14-E15, here through
    logaddexp) and the fraction of margins <= 0 at every record, and the block size changes
    no bit (blocks of 4 against one block)."""
    config = signsim.Config(lr=lr_for("signgd"), **OVERLAP)
    result = signsim.run(config, seeds=[0, 1])
    margin = result.history["margin"]  # (R, T, n)
    assert_allclose(result.history["train_loss"], np.logaddexp(0.0, -margin).mean(-1),
                    rtol=1e-13, atol=0)
    assert_array_equal(result.history["train_error"], (margin <= 0).mean(-1))
    assert_allclose(result.history["log_train_loss"], np.log(result.history["train_loss"]),
                    rtol=1e-13, atol=1e-13)  # the loss is far from underflow here
    blocks = {name: np.full(margin.shape[:2], np.nan)
              for name in ("train_loss", "train_error", "log_train_loss")}
    blocks["margin"] = margin
    records.train_metrics(blocks, rows=4)
    for name in ("train_loss", "train_error", "log_train_loss"):
        assert_array_equal(blocks[name], result.history[name])


def test_a_nan_in_a_worker_process_comes_back_as_the_same_error():
    with pytest.raises(signsim.NonFiniteError) as info:
        signsim.run(**OVERLAP, seeds=[0, 1, 2], vary={"lr": [1e-2, 1e-2, 1e300]}, workers=2)
    part = info.value.result  # the Result of the chunk that stopped: replicas 1 and 2
    assert [c.lr for c in part.configs] == [1e-2, 1e300] and info.value.step == 1


def test_lr_refusal_does_not_depend_on_the_worker_count(registered):
    registered("half_sign", _half_sign)
    config = signsim.Config(optimizer="half_sign", **OVERLAP)
    for workers in (1, 2):
        with pytest.raises(ValueError, match="proportional_to_lr"):
            signsim.run(config, vary={"lr": [1e-2, 1e-2, 2e-2, 2e-2]}, workers=workers)


def test_an_optimizer_that_is_not_entrywise_is_refused_by_the_fast_kernel(registered):
    """A rule that declares entrywise=False (here: sign steps scaled by the norm of the
    whole block) runs on the dense reference only."""
    def normalised(config):
        def update(grads, state):
            def step(g):
                return -config.lr * g / max(np.linalg.norm(g), 1e-300)
            return optim._map(step, grads), optim.SignGDState(state.count + 1)
        return optim.Optimizer(lambda p: optim.SignGDState(0), update, entrywise=False)
    registered("normalised", normalised)
    config = signsim.Config(optimizer="normalised", arithmetic="float64", **OVERLAP)
    with pytest.raises(ValueError, match="entrywise=False"):
        signsim.run(config)
    assert signsim.run(config, kernel="dense").history["margin"].shape[1] == OVERLAP["n"]


def test_a_registered_optimizer_reaches_forkserver_workers_or_is_refused(registered,
                                                                          monkeypatch):
    """Workers that do not fork from this process register the parent's optimizers when
    their factory can be sent (a module-level function), and a lambda is refused clearly."""
    from signsim import parallel

    monkeypatch.setattr(parallel, "start_method", lambda: "forkserver")
    registered("half_sign", _half_sign_factory)
    config = signsim.Config(optimizer="half_sign", **OVERLAP)
    one = signsim.run(config, seeds=[1, 2])
    assert_bit_identical(signsim.run(config, seeds=[1, 2], workers=2), one)
    registered("half_sign_lambda", lambda c: _half_sign(c))
    with pytest.raises(ValueError, match="registered in this process only"):
        signsim.run(config.replace(optimizer="half_sign_lambda"), seeds=[1, 2], workers=2)


def _half_sign_factory(config):
    """A module-level factory (picklable): the half sign step, declaring nothing."""
    return _half_sign(config)


@pytest.mark.parametrize("config", [
    dict(n=1, d=8, s=5, sigma_p=1.0, mu_norm=3.0, n_test=10, signal_position="first", m_k=3,
         m_v=2, sigma_0=0.1, optimizer="adam", lr=0.3, steps=4, seed=7178744243120331325,
         record_every=2, test_every=1),
    dict(n=1, d=40, s=7, sigma_p=1.0, mu_norm=1.0, n_test=35, m_k=3, m_v=2, sigma_0=1.0,
         optimizer="adam", lr=0.01, steps=35, seed=8576349409503065883, test_every=4),
], ids=["soak-1", "soak-2"])
def test_replicas_found_by_the_soak_are_bit_identical(config):
    """Two configurations where scripts/soak.py found a replica's test loss one rounding
    away from its run alone (the per-coordinate layout's test state went through an
    einsum whose summation depended on the number of rows)."""
    config = signsim.Config(**config)
    batch = signsim.run(config, seeds=[config.seed, config.seed ^ 1])
    assert_bit_identical(batch.replica(0), signsim.run(config))
