"""The interface around the kernels: one Result for both, what is recorded (``record=``), the
labelled axes, pickling, the run() keywords, and that no code decides maths by a name."""

import ast
import pickle
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from numpy.testing import assert_array_equal

import signsim
from signsim import optim
from signsim.tracker import DIMS, SUMMARY, TEST_NAMES, dims_of, shapes

from .test_fast import OVERLAP, assert_bit_identical

PACKAGE = Path(signsim.__file__).parent


def test_both_kernels_return_one_result_type_history_type_and_params_interface():
    dense = signsim.run(**OVERLAP, kernel="dense")
    fast = signsim.run(**OVERLAP)
    assert type(dense) is type(fast) and type(dense.history) is type(fast.history)
    assert not dense.batched and not fast.batched and dense.seeds is None
    for r in (dense, fast):
        for name in ("W_Q", "W_K", "W_V"):
            assert getattr(r.params, name).shape == getattr(r.params.to_dense(), name).shape
        assert r.params.W_V.shape == (2, OVERLAP["m_v"], OVERLAP["d"])


@pytest.mark.parametrize("kernel", ["fast", "dense"])
@pytest.mark.parametrize("record", ["summary", ["margin", "test_loss"], ["query_noise"],
                                    ["value_noise", "train_error"], "attention"])
def test_record_keeps_exactly_the_names_asked_with_the_values_of_a_full_run(kernel, record):
    full = signsim.run(**OVERLAP, kernel=kernel)
    part = signsim.run(**OVERLAP, kernel=kernel, record=record)
    asked = SUMMARY if record == "summary" else [record] if isinstance(record, str) else record
    assert list(part.history) == [n for n in DIMS if n in asked]
    for name in part.history:
        assert_array_equal(part.history[name], full.history[name], err_msg=name)
    for a, b in zip(part.params.to_dense(), full.params.to_dense()):
        assert_array_equal(a, b)  # the final state is always kept


def test_record_skips_the_test_set_when_no_test_metric_is_asked():
    kernel = signsim.kernels.make_kernel([signsim.Config(**OVERLAP)], ("margin",))
    assert kernel.test is None and set(kernel.storage()) == {"margin"}
    summary = signsim.kernels.make_kernel([signsim.Config(**OVERLAP)], SUMMARY)
    assert set(summary.storage()) == {"margin", *SUMMARY}  # margins: for train loss


@pytest.mark.parametrize("record", [[], ["margins"], 5, "everything", [None]])
def test_bad_record_is_refused_naming_the_parameter(record):
    with pytest.raises(ValueError, match="'record'"):
        signsim.run(**OVERLAP, record=record)


def test_summary_batches_replicas_like_full_ones():
    batch = signsim.run(**OVERLAP, seeds=[1, 2, 3], record="summary")
    assert batch.history["test_loss"].shape == (3, len(batch.test_steps))
    assert_bit_identical(batch.replica(2), signsim.run(**OVERLAP, seed=3, record="summary"))


def test_dims_give_every_recorded_shape():
    config = signsim.Config(**OVERLAP)
    r = signsim.run(config, seeds=[0, 1])
    for name, shape in shapes(config).items():
        time = len(r.test_steps if name in TEST_NAMES else r.steps)
        assert r.history[name].shape == (2, time) + shape, name
        assert len(dims_of(name, batched=True)) == r.history[name].ndim


def test_the_docs_history_table_lists_every_name_with_its_dims():
    text = (PACKAGE.parent / "docs" / "usage.md").read_text()
    for name, dims in DIMS.items():
        row = f"| `{name}` | {', '.join(dims) if dims else '-'} |"
        assert row in text, f"docs/usage.md lacks {row!r}"


def test_to_xarray_labels_every_axis_with_real_steps():
    """Row 3 of a run recorded every 5 steps is step 15, and the xarray view says so."""
    r = signsim.run(**{**OVERLAP, "record_every": 5, "steps": 20}, seeds=[4, 5],
                    vary={"lr": [1e-2, 2e-2]})
    ds = r.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert_array_equal(ds["step"], [0, 5, 10, 15, 20])
    assert_array_equal(ds["test_step"], r.test_steps)
    q = ds["query_noise"]
    assert q.dims == ("replica", "step", "neuron", "sample")
    assert_array_equal(q.sel(step=15, replica=1), r.history["query_noise"][1, 3])
    assert_array_equal(ds["seed"], [4, 5]) and np.allclose(ds["lr"], [1e-2, 2e-2])
    assert list(ds["head"].values) == [1, -1]
    assert list(ds["query_role"].values) == ["signal", "noise"]
    assert ds["test_loss"].dims == ("replica", "test_step")
    single = r.replica(0).to_xarray()
    assert single["attention"].dims == ("step", "sample", "query_role", "key_role")


def test_to_frame_puts_scalar_series_on_their_real_steps():
    r = signsim.run(**{**OVERLAP, "record_every": 2, "test_every": 3, "steps": 6})
    frame = r.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [0, 2, 3, 4, 6]
    assert list(frame.columns) == ["mean_value_signal", "train_loss", "train_error",
                                   "test_loss", "test_error", "log_train_loss"]  # every scalar
    assert frame.loc[4, "train_loss"] == r.history["train_loss"][2]
    assert np.isnan(frame.loc[4, "test_loss"]) and np.isnan(frame.loc[3, "train_loss"])
    assert frame.loc[3, "test_loss"] == r.history["test_loss"][1]
    batch = signsim.run(**OVERLAP, seeds=[0, 1]).to_frame()
    assert batch.index.names == ["replica", "step"]
    assert batch.loc[(1, 0), "train_loss"] == signsim.run(**OVERLAP, seed=1).history[
        "train_loss"][0]


@pytest.mark.parametrize("batch", [False, True])
def test_results_pickle_bit_for_bit_with_unbuilt_entries(batch):
    """An executor moves Results between processes; the lazily built entries go along."""
    r = signsim.run(**OVERLAP, seeds=[2, 3]) if batch else signsim.run(**OVERLAP)
    back = pickle.loads(pickle.dumps(r))
    assert "value_noise" in repr(back.history)  # still to be built
    assert_bit_identical(back, r)


def test_a_fresh_history_can_be_read_from_several_threads():
    r = signsim.run(**OVERLAP, seeds=[0, 1, 2])
    errors, got = [], []

    def read():
        try:
            got.append(r.history["value_noise"])
        except Exception as exc:  # noqa: BLE001 -- any error is the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4
    for a in got:
        assert_array_equal(a, got[0])


def test_replica_of_a_single_run_and_out_of_range_are_refused():
    r = signsim.run(**OVERLAP, seeds=[0, 1])
    with pytest.raises(IndexError, match="'r'"):
        r.replica(2)
    with pytest.raises(ValueError, match="single run"):
        r.replica(0).replica(0)
    assert_bit_identical(r.replica(-1), r.replica(1))


@pytest.mark.parametrize("kw,exc,text", [
    ({"lrr": 1e-3}, TypeError, r"Unknown Config field\(s\) \['lrr'\]"),
    ({"seeds": 5}, ValueError, "The 'seeds' parameter must be a non-empty sequence of ints. "
                               "Got 5 instead."),
    ({"seeds": "12"}, ValueError, "'seeds'"),
    ({"seeds": [1, 2], "seed": 3}, ValueError, "either the 'seed' parameter"),
    ({"vary": {"lr": 1e-4}}, ValueError, "'vary'"),
    ({"vary": ["lr"]}, ValueError, "'vary'"),
    ({"workers": "2"}, ValueError, "'workers'"),
])
def test_run_keyword_errors_name_the_parameter(kw, exc, text):
    with pytest.raises(exc, match=text):
        signsim.run("fig1", steps=1, **kw)


def _compares_an_optimizer_name(node) -> bool:
    """A comparison with ``optimizer`` or ``<x>.optimizer`` on one side."""
    if not isinstance(node, ast.Compare):
        return False
    sides = [node.left, *node.comparators]
    return any((isinstance(s, ast.Name) and s.id == "optimizer")
               or (isinstance(s, ast.Attribute) and s.attr == "optimizer") for s in sides)


def test_no_code_outside_optim_tests_an_optimizer_name():
    """Kernels, theory and figures read what an optimizer declares; only the registry in
    signsim/optim.py knows names. (This test fails on the kernel of signsim 0.1, whose
    ``layout_of`` compared ``optimizer == "adam"``.)"""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "optim.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if _compares_an_optimizer_name(node):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, offenders
    old = ast.parse('def layout_of(optimizer):\n    return optimizer == "adam"\n')
    assert any(_compares_an_optimizer_name(n) for n in ast.walk(old))


def test_the_registry_lists_built_ins_and_refuses_bad_registrations():
    assert optim.available()[:3] == ("signgd", "adam", "gd")
    with pytest.raises(ValueError, match="built in"):
        optim.register("adam", lambda c: optim.sign_gd(c.lr))
    with pytest.raises(ValueError, match="'name'"):
        optim.register("Half Sign", lambda c: optim.sign_gd(c.lr))
    with pytest.raises(TypeError, match="'factory'"):
        optim.register("half", 3)
    with pytest.raises(ValueError, match="one of"):
        signsim.Config(optimizer="half")
    optim.register("half", lambda c: optim.sign_gd(c.lr / 2))
    try:
        assert "half" in optim.available() and signsim.Config(optimizer="half")
        with pytest.raises(ValueError, match="replace=True"):
            optim.register("half", lambda c: optim.sign_gd(c.lr))
    finally:
        optim.unregister("half")
    assert "half" not in optim.available()


def test_a_factory_that_returns_no_optimizer_is_refused(monkeypatch):
    optim.register("broken", lambda c: (None, None))
    try:
        with pytest.raises(TypeError, match="must return an Optimizer"):
            signsim.run(**OVERLAP, optimizer="broken")
    finally:
        optim.unregister("broken")
