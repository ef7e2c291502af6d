"""Nothing lost, nothing silent: the memory a run needs is estimated from its Configs and a
run that cannot fit is refused up front (``signsim.budget``); a NaN margin counts as an
error, never as a correct prediction."""

import pickle
import re
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import signsim
from signsim import budget
from signsim.budget import MemoryBudgetError, check, estimate, parse_size, recorded_steps
from signsim.config import Config, preset
from signsim.kernels import make_kernel
from signsim.kernels.fast.records import train_metrics
from signsim.simulate import replica_configs
from signsim.tracker import SUMMARY, TEST_NAMES, schedule, select

GiB = 2**30
PARTS = ("history", "state", "test set", "data")


def batch(R: int, **overrides) -> list:
    return replica_configs(preset("fig1", **overrides), range(R), None)


@given(st.integers(0, 5000), st.integers(1, 6000))
def test_recorded_steps_is_the_length_of_the_schedule(steps, every):
    assert recorded_steps(steps, every) == len(schedule(steps, every))


def test_estimate_has_every_part_and_sums_to_its_total():
    est = estimate(batch(3), select(None))
    assert set(est.breakdown) == set(PARTS) | {"temporaries", "allocator"}
    assert est.total == sum(est.breakdown.values())
    assert all(isinstance(v, int) and v >= 0 for v in est.breakdown.values())
    assert set(est.details) == set(est.breakdown)
    assert estimate(preset("fig1", kernel="dense", d=500), None).breakdown["state"] > 0


def test_estimate_follows_the_fields_that_drive_it():
    full, summary = estimate(batch(10), select(None)), estimate(batch(10), select("summary"))
    assert summary.breakdown["history"] < full.breakdown["history"] / 10
    longer = estimate(batch(10, steps=9000), select(None))
    assert 9 < longer.breakdown["history"] / full.breakdown["history"] < 11
    sparse = estimate(batch(10, steps=9000, record_every=10, test_every=100), select(None))
    assert sparse.breakdown["history"] < longer.breakdown["history"] / 9
    assert estimate(batch(10), ("margin",)).breakdown["test set"] == 0  # no test metrics
    wide = estimate(preset("fig1", kernel="dense", d=20_000), None).breakdown["state"]
    narrow = estimate(preset("fig1", kernel="dense", d=2_000), None).breakdown["state"]
    assert 9 < wide / narrow < 11
    assert estimate(preset("fig2", kernel="dense", d=2_000), None).breakdown["state"] > (
        estimate(preset("fig1", kernel="dense", d=2_000), None).breakdown["state"])  # Adam
    # the fast kernel's cost does not grow with d
    assert estimate(preset("fig1", d=10**12), None).total < 2 * estimate(preset("fig1"), None).total


def test_estimate_needs_no_memory_for_an_impossible_run():
    """steps = 10^9 recorded at every step: the estimate is arithmetic (no schedule built)."""
    start = time.perf_counter()
    est = estimate(batch(100, steps=10**9), select(None))
    assert time.perf_counter() - start < 1.0
    assert est.breakdown["history"] > 100 * 10**9 * 686 * 8  # 686 values a step
    with pytest.raises(MemoryBudgetError):
        check(batch(100, steps=10**9), select(None), limit="1T")


def test_check_refuses_with_a_message_that_names_the_drivers():
    configs = batch(100, steps=20_000)
    with pytest.raises(ValueError) as info:
        check(configs, select(None), limit="8G")
    error, message = info.value, str(info.value)
    assert isinstance(error, MemoryBudgetError) and error.limit == 8 * GiB
    assert error.estimate.total > 8 * GiB
    assert re.match(r"This run \(kernel='fast'\) needs about [\d.]+ GiB of memory at its "
                    r"peak \((during the loop|when the Result is made)\), more than the limit "
                    r"of 8 GiB \(the 'limit' argument\)\. history 10\.2", message), message
    # history: 100 x 20001 records x 686 values (n rows = 440 noise products, 2 x 80
    # attention and log-attention, 22 signal products, 3 x 20 per sample, 1 + 3 scalars)
    # x 8 B = 10.2 GiB (and the test steps, the schedules)
    assert ("100 replicas x 20001 recorded steps (steps=20000, record_every=1) x 686 values"
            in message)
    assert "lower steps, raise record_every (and test_every), or record='summary'" in message


def test_check_names_the_dense_weights_and_the_test_chunk():
    with pytest.raises(MemoryBudgetError, match=r"needs about \d.*state [\d.]+ GiB: "
                                                r"\(2 m_k \+ 2 m_v\) x d = 40 x 100000000 "
                                                r"weights.*lower d \(kernel='fast'"):
        check(preset("fig1", kernel="dense", d=10**8), None, limit="16G")


def test_check_passes_what_fits_and_returns_the_estimate(monkeypatch):
    monkeypatch.delenv("SIGNSIM_MAX_MEMORY", raising=False)
    est = check(batch(2), select(None), limit=10 * GiB)
    assert est == estimate(batch(2), select(None))
    assert check(preset("fig1"), None).total < 100 * 2**20  # against the memory available


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIGNSIM_MAX_MEMORY", "1M")
    with pytest.raises(MemoryBudgetError, match=r"limit of 0\.000977 GiB "
                                                r"\(SIGNSIM_MAX_MEMORY=1M\)"):
        check(preset("fig1"), None)
    assert check(preset("fig1"), None, limit="1G")  # the argument first
    monkeypatch.setenv("SIGNSIM_MAX_MEMORY", "a lot")
    with pytest.raises(ValueError, match="SIGNSIM_MAX_MEMORY must be a memory size"):
        check(preset("fig1"), None)
    monkeypatch.setenv("SIGNSIM_MAX_MEMORY", "64G")
    assert budget.memory_limit() == (64 * GiB, "SIGNSIM_MAX_MEMORY=64G")


def test_the_default_limit_is_the_memory_available(monkeypatch):
    monkeypatch.delenv("SIGNSIM_MAX_MEMORY", raising=False)
    nbytes, where = budget.memory_limit()
    assert nbytes is None or nbytes > 0
    try:
        with open("/proc/meminfo") as f:
            has_meminfo = "MemAvailable:" in f.read()
    except OSError:
        has_meminfo = False
    if has_meminfo:
        assert "MemAvailable" in where

    def no_file(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(budget, "open", no_file, raising=False)
    monkeypatch.setattr(budget.os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 1000,
                                                            "SC_PAGE_SIZE": 4096}[name])
    assert budget.memory_limit() == (4096 * 1000, "the memory available now (the available "
                                     "physical pages (os.sysconf); set SIGNSIM_MAX_MEMORY to "
                                     "change it)")
    with pytest.raises(MemoryBudgetError, match="os.sysconf"):
        check(preset("fig1"), None)

    def no_sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr(budget.os, "sysconf", no_sysconf)
    assert budget.memory_limit() == (None, "unknown")
    assert check(batch(100, steps=10**9), select(None)).total > 10**14  # no check possible


@pytest.mark.parametrize("text,nbytes", [("1000", 1000), (1000, 1000), ("8G", 8 * GiB),
                                         ("8g", 8 * GiB), ("512MiB", 512 * 2**20),
                                         ("1.5 GB", int(1.5 * GiB)), ("2T", 2 * 2**40),
                                         (" 4k ", 4096), ("1e9", 10**9)])
def test_parse_size(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "G", "8X", "-1", "0", "eight", True, float("nan"), "1 2"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def test_the_error_pickles_with_its_estimate():
    with pytest.raises(MemoryBudgetError) as info:
        check(preset("fig1"), None, limit=1000)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is MemoryBudgetError and str(again) == str(info.value)
    assert again.estimate == info.value.estimate and again.limit == 1000


def test_workers_add_the_results_that_cross_processes():
    one, split = (estimate(batch(20), select(None), workers=w) for w in (1, 4))
    assert "between processes" not in one.breakdown
    assert split.breakdown["between processes"] > 3 * one.breakdown["history"]
    with pytest.raises(MemoryBudgetError, match="between processes .* workers=1"):
        check(batch(20), select(None), limit=split.total - 1, workers=4)


@pytest.mark.parametrize("record", [None, "summary", ("margin",), ("test_error",)])
@pytest.mark.parametrize("kernel", ["fast", "dense"])
def test_history_estimate_is_never_below_the_stored_arrays(record, kernel):
    """The Recorder's storage for the kernel's records: the estimate's history is at least
    its bytes, and above them by at most the schedules and the step -> row dicts."""
    from signsim.tracker import Recorder

    configs = batch(4, steps=300, test_every=7) if kernel == "fast" else [
        preset("fig1", steps=300, test_every=7, kernel="dense", d=300)]
    names = select(record)
    storage = make_kernel(configs, names).storage()
    steps, test_steps = schedule(300, 1), schedule(300, 7)
    stored = Recorder(steps, test_steps, storage, len(configs))._store
    nbytes = sum(a.nbytes for a in stored.values())
    est = estimate(configs, names).breakdown["history"]
    assert nbytes <= est <= nbytes + 4 * 2 * 20 * 1024 * 8 + 200 * (len(steps) + len(test_steps))


def test_estimate_is_above_the_peak_of_the_arrays_and_not_far_above():
    """tracemalloc (NumPy reports its buffers to it) over building the kernel and running
    it: the estimate is above the traced peak, and below 1.6 times it."""
    from signsim.loop import drive

    configs = batch(20, steps=200)
    names = select(None)
    est = estimate(configs, names)
    tracemalloc.start()
    try:
        kernel = make_kernel(configs, names)
        drive(kernel, configs[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < est.total < 1.6 * peak, (peak, est)


# ---------------------------------------------------------------- NaN margins are errors


def _blown_up(**overrides):
    """A run whose weights overflow at step 1 (lr = 1e300): the Result up to there."""
    import signsim.loop

    stopped = getattr(signsim.loop, "NonFiniteError", ())  # the loop may stop the run there
    with np.errstate(all="ignore"):
        try:
            return signsim.run("fig1", lr=1e300, steps=3, test_every=1, n_test=50, **overrides)
        except stopped as error:  # with the history up to the first non-finite record
            return error.result


@pytest.mark.parametrize("overrides", [{}, {"optimizer": "adam"}, {"optimizer": "gd"},
                                       {"kernel": "dense", "d": 200}],
                         ids=["signgd", "adam", "gd", "dense"])
def test_nan_margins_count_as_errors(overrides):
    r = _blown_up(**overrides)
    h = r.history
    assert np.isnan(h["margin"][1]).all()
    assert np.isfinite(h["margin"][0]).all()
    assert h["train_error"][1] == 1.0 and h["test_error"][1] == 1.0  # not 0.0
    assert 0.0 < h["train_error"][0] < 1.0 and 0.0 < h["test_error"][0] < 1.0


def test_nan_margins_are_errors_in_the_kernels_directly():
    """The fast kernel's test metrics and train metrics, and the dense reference's, at a
    state with NaN margins (one step at lr = 1e300), without the loop."""
    for config in (preset("fig1", lr=1e300, n_test=50),
                   preset("fig1", lr=1e300, n_test=50, kernel="dense", d=200)):
        kernel = make_kernel([config], ("margin",) + SUMMARY)
        with np.errstate(all="ignore"):
            state = kernel.step(kernel.init())
            loss, error = kernel.test_metrics(state)
            out = {name: np.full((1,) + shape, 0.0) for name, shape in kernel.storage().items()
                   if name not in TEST_NAMES}
            kernel.observe(state, out)
        assert np.isnan(out["margin"]).all()
        assert error.tolist() == [1.0]
        if config.kernel == "fast":  # train loss and error from the margins, after the loop
            arrays = {"margin": out["margin"][:, None], "train_loss": np.zeros((1, 1)),
                      "train_error": np.zeros((1, 1))}
            train_metrics(arrays)
            assert arrays["train_error"].tolist() == [[1.0]]
        else:
            assert out["train_error"].tolist() == [1.0]


def test_finite_margins_keep_their_errors():
    """~(margin > 0) is margin <= 0 for every finite margin, +-0 included."""
    m = np.array([-1.0, -0.0, 0.0, 5e-324, -5e-324, 1.0, np.inf, -np.inf])
    assert ((~(m > 0)) == (m <= 0)).all()
    r = signsim.run("fig1", steps=50, seeds=range(2))
    margin = r.history["margin"]
    assert np.array_equal(r.history["train_error"], (margin <= 0).mean(-1))


@st.composite
def extreme_configs(draw):
    """Valid Configs up to the table's bounds (never run: only estimated)."""
    d = draw(st.integers(2, 2**62))
    m_k = draw(st.integers(1, min(10**6, 2**63 // d - 1)))
    m_v = draw(st.integers(1, min(10**6, 2**63 // d - m_k)))
    every = st.integers(1, 10**9)
    return Config(n=draw(st.integers(1, 10**7)), d=d, s=draw(st.integers(1, min(d - 1, 10**9))),
                  n_test=draw(st.integers(1, 10**7)), m_k=m_k, m_v=m_v,
                  steps=draw(st.integers(0, 10**9)), record_every=draw(every),
                  test_every=draw(every), optimizer=draw(st.sampled_from(["signgd", "adam", "gd"])),
                  kernel=draw(st.sampled_from(["fast", "dense"])))


@given(extreme_configs(), st.sampled_from([None, "summary", ("margin",)]),
       st.integers(1, 1000))
def test_estimate_is_finite_and_positive_for_every_valid_config(config, record, R):
    configs = [config] * (R if config.kernel == "fast" else 1)
    est = estimate(configs, select(record))
    assert 0 < est.total < float("inf") and all(v >= 0 for v in est.breakdown.values())
