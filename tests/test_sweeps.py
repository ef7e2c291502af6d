"""signsim.sweep: grids, batching, the folder (resume, shards, refusals), executors, CLI.

The central property: a sweep's numbers are those of ``signsim.run`` on each row's Config,
bit for bit, whatever executor, batching, shard split or resume produced them."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import signsim
from signsim.cli import main
from signsim.sweeps import Grid, load
from signsim.sweeps.grid import cell_config
from signsim.sweeps.plan import Job, job_key, plan
from signsim.sweeps.store import read_task

SMALL = dict(n=6, d=200, s=4, m_k=3, m_v=3, n_test=40, steps=12, test_every=4)
GRID = {"snr": [0.5, 2.0], ("optimizer", "lr"): [("signgd", 1e-3), ("gd", 0.5)]}
NUMBERS = ("train_loss", "test_loss", "train_error", "test_error", "T1", "T2", "T3", "T4")


def small(**kw):
    return signsim.Config(**{**SMALL, **kw})


def same_numbers(a, b) -> bool:
    """Two sweeps' tables agree bit for bit in every number and status (not run_time)."""
    ca, cb = a.columns(), b.columns()
    return all(np.array_equal(ca[k], cb[k], equal_nan=ca[k].dtype.kind == "f")
               for k in ca if k != "run_time")


# ------------------------------------------------------------------ the grid


@pytest.mark.parametrize("grid, words", [
    ({"lr": [1e-3], "no_such_field": [1]}, "Unknown grid field 'no_such_field'"),
    ({"lr": []}, "empty"),
    ({"snr": [1.0], "sigma_p": [0.1]}, "both 'snr' and 'sigma_p'"),
    ({"seed": [0, 1]}, "'seeds' parameter"),
    ({"lr": [1e-3], ("optimizer", "lr"): [("gd", 1.0)]}, "more than one axis"),
    ({("optimizer", "lr"): [("gd", 1.0, 3)]}, "tuple of 2 values"),
    ({"lr": 1e-3}, "must be a list"),
    ({}, "non-empty dict"),
])
def test_bad_grids_are_refused_with_the_reason(grid, words):
    """Each malformed grid raises a ValueError that names what is wrong."""
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Grid(grid)


def test_cells_are_the_product_with_the_last_axis_fastest_and_zipped_axes_together():
    """A grid of a 2-value axis and a zipped 3-value axis has 6 cells, in product order,
    and the zipped fields always appear in their given pairs."""
    g = Grid({"n": [4, 8], ("optimizer", "lr"): [("signgd", 1e-3), ("adam", 2e-3), ("gd", 1.0)]})
    cells = g.cells()
    assert len(cells) == len(g) == 6 and g.shape == (2, 3)
    assert [c["n"] for c in cells] == [4, 4, 4, 8, 8, 8]
    assert [(c["optimizer"], c["lr"]) for c in cells[:3]] == [("signgd", 1e-3), ("adam", 2e-3),
                                                              ("gd", 1.0)]
    assert Grid.from_json(json.loads(json.dumps(g.to_json()))).cells() == cells


def test_snr_sets_sigma_p_by_E5_with_the_cells_own_s_and_mu_norm():
    """snr = mu_norm / (sigma_p sqrt(s)) (E5) holds for the Config of every snr cell."""
    for s, mu in ((4, 1.0), (9, 2.0)):
        c = cell_config(small(s=s, mu_norm=mu), {"snr": 0.5}, seed=3)
        assert c.seed == 3 and math.isclose(c.sigma_p, mu / (0.5 * math.sqrt(s)), rel_tol=1e-15)
        assert math.isclose(c.snr, 0.5, rel_tol=1e-15)


def test_a_cell_that_makes_no_valid_config_is_an_error_row_and_the_others_run():
    """s = 500 > d - 1 is invalid: its rows say so (naming 's'), the other cell runs."""
    res = signsim.sweep(small(), {"s": [4, 500]}, seeds=2)
    assert list(res.status) == ["ok", "ok", "error", "error"]
    assert all("'s'" in e for e in res.errors[2:])


def test_a_run_that_fails_is_recorded_and_its_batch_mates_still_finish(tmp_path):
    """A GD replica whose weights overflow fails alone: its batch-mates (one batch: GD
    batches lr) finish with the numbers of their own runs, and the folder keeps the error."""
    res = signsim.sweep(small(optimizer="gd"), {"lr": [0.1, 1e300]}, seeds=1, out=tmp_path)
    assert list(res.status) == ["ok", "error"] and "NonFiniteError" in res.errors[1]
    alone = signsim.run(res.configs[0])
    assert np.array_equal(res.record(0).history["train_loss"], alone.history["train_loss"])
    assert len(list((tmp_path / "errors").glob("*.json"))) == 1
    again = signsim.sweep(small(optimizer="gd"), {"lr": [0.1, 1e300]}, seeds=1, out=tmp_path)
    assert again.computed == 0 and list(again.status) == ["ok", "error"]


# ------------------------------------------------------------------ batching


def _jobs(configs):
    return [Job(r, r, c.seed, c, job_key(c)) for r, c in enumerate(configs)]


def test_runs_that_differ_only_in_what_a_batch_varies_share_one_task():
    """Seeds, sigma_p, sigma_0 and (for an optimizer proportional to lr) lr are batched;
    a different n, optimizer or the dense kernel are not; batch_size cuts a group."""
    base = small()
    same = [base.replace(seed=k, lr=1e-3 * (k + 1), sigma_p=0.5 + k, sigma_0=0.01 * (k + 1))
            for k in range(5)]
    assert [len(t.jobs) for t in plan(_jobs(same), 64)] == [5]
    assert set(plan(_jobs(same), 64)[0].vary) == {"lr", "sigma_p", "sigma_0"}
    cut = plan(_jobs(same), 2)
    assert len(cut) == 3 and max(len(t.jobs) for t in cut) == 2
    assert [j.row for t in cut for j in t.jobs] == list(range(5))  # in grid order
    apart = [base, base.replace(n=8), base.replace(optimizer="adam"), base.replace(kernel="dense"),
             base.replace(kernel="dense", seed=1)]
    assert [len(t.jobs) for t in plan(_jobs(apart), 64)] == [1] * 5
    assert sorted(len(t.jobs) for t in plan(_jobs(same), 64, min_tasks=2)) == [1, 1, 1, 1, 1]
    mixed = same + [base.replace(n=20, seed=k) for k in range(8)]
    tasks = plan(_jobs(mixed), 64, min_tasks=2)  # 2 groups, 4 parts each: 8 tasks
    assert len(tasks) == 8 and [t.jobs[0].config.n for t in tasks[:4]] == [20] * 4
    costs = [len(t.jobs) * t.jobs[0].config.n for t in tasks]
    assert costs == sorted(costs, reverse=True)  # longest first


def test_lr_is_not_batched_for_an_optimizer_that_does_not_declare_it_proportional():
    """A registered optimizer without proportional_to_lr gets one task per lr, and its
    sweep runs (a batch of two lrs would be refused by check_batch)."""
    from signsim import optim

    optim.register("plain_sign_sweep_test", _plain_sign_factory)
    try:
        configs = [small(optimizer="plain_sign_sweep_test", lr=lr) for lr in (1e-3, 2e-3)]
        assert [len(t.jobs) for t in plan(_jobs(configs), 64)] == [1, 1]
        res = signsim.sweep(small(optimizer="plain_sign_sweep_test", arithmetic="float64"),
                            {"lr": [1e-3, 2e-3]}, seeds=1)
        assert list(res.status) == ["ok", "ok"], res.errors
    finally:
        optim.unregister("plain_sign_sweep_test")


def _plain_sign_factory(config):
    from signsim import optim

    return optim.sign_gd(config.lr)._replace(proportional_to_lr=False, log_form=None)


# ------------------------------------------------------------------ the numbers


def test_every_row_is_the_run_of_its_config_bit_for_bit():
    """Each row's history equals signsim.run(row's Config).history exactly (batching with
    other cells, seeds and optimizers changes nothing)."""
    res = signsim.sweep(small(), GRID, seeds=2, record=None)
    assert (res.status == "ok").all()
    for row in (0, 3, 5, 7):
        alone = signsim.run(res.configs[row])
        record = res.record(row)
        assert np.array_equal(record.steps, alone.steps)
        for name in record.history:
            assert np.array_equal(record.history[name], alone.history[name]), (row, name)
    report = signsim.stages.detect(signsim.run(res.configs[0]))
    found = [report.T1, report.T2, report.T3, report.T4]
    table = res.columns()
    assert [None if np.isnan(table[b][0]) else int(table[b][0])
            for b in ("T1", "T2", "T3", "T4")] == found


def test_dense_reference_rows_are_the_runs_of_their_configs():
    """Cells on the dense reference (one run per task, a single-run Result) give the
    histories of signsim.run, with the same shapes as fast-kernel rows."""
    res = signsim.sweep(small(), {"kernel": ["fast", "dense"], "lr": [1e-3, 2e-3]}, seeds=2)
    assert (res.status == "ok").all()
    for row in range(len(res)):
        alone = signsim.run(res.configs[row])
        for name in ("train_loss", "test_loss", "test_error"):
            assert np.array_equal(res.record(row).history[name], alone.history[name])
    fast, dense = res.record(0), res.record(4)  # the same run on both kernels
    assert fast.history["train_loss"].shape == dense.history["train_loss"].shape
    np.testing.assert_allclose(dense.history["train_loss"], fast.history["train_loss"],
                               rtol=1e-9, atol=0)


def test_the_table_has_one_row_per_cell_and_seed_in_grid_order():
    res = signsim.sweep(small(), GRID, seeds=[5, 7])
    t = res.table
    assert list(t.columns[:4]) == ["snr", "optimizer", "lr", "seed"]
    assert list(t["seed"]) == [5, 7] * 4 and list(t["snr"]) == [0.5] * 4 + [2.0] * 4
    assert list(t["optimizer"]) == ["signgd"] * 2 + ["gd"] * 2 + ["signgd"] * 2 + ["gd"] * 2
    x = res.to_xarray()
    assert x["test_loss"].dims == ("snr", "optimizer,lr", "seed")
    assert x["test_loss"].sel(snr=2.0, seed=7).values[1] == t["test_loss"].iloc[7]


def test_without_pandas_the_table_is_a_structured_array(monkeypatch):
    res = signsim.sweep(small(), {"lr": [1e-3, 2e-3]}, seeds=1)
    monkeypatch.setitem(sys.modules, "pandas", None)
    table = res.table
    assert isinstance(table, np.ndarray) and table.dtype.names[:2] == ("lr", "seed")
    assert np.array_equal(table["test_loss"], res.columns()["test_loss"])


@pytest.mark.parametrize("executor", [2, "threads"])
def test_processes_and_any_executor_give_the_same_numbers(executor):
    """Local worker processes, and a ThreadPoolExecutor, give the in-process numbers."""
    here = signsim.sweep(small(), GRID, seeds=2, batch_size=3)
    if executor == "threads":
        with ThreadPoolExecutor(2) as pool:
            there = signsim.sweep(small(), GRID, seeds=2, executor=pool, batch_size=2)
    else:
        there = signsim.sweep(small(), GRID, seeds=2, executor=executor)
    assert same_numbers(here, there)


def test_dask_local_cluster_gives_the_same_numbers():
    """Two Dask worker processes (a LocalCluster) give the in-process numbers."""
    import distributed  # the test extra installs it: CI runs this test
    here = signsim.sweep(small(), GRID, seeds=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        there = signsim.sweep(small(), GRID, seeds=2, executor=client, batch_size=2)
    assert same_numbers(here, there)


# ------------------------------------------------------------------ the folder


def test_shards_written_apart_merge_into_the_whole_sweep(tmp_path):
    """Three shards into three folders (or one), merged by load(), give the whole table;
    each shard alone leaves the others' rows missing."""
    whole = signsim.sweep(small(), GRID, seeds=2)
    parts = [signsim.sweep(small(), GRID, seeds=2, out=tmp_path / f"s{i}", shard=(i, 3))
             for i in range(3)]
    assert sum(p.computed for p in parts) == len(whole)
    assert all((p.status == "missing").any() for p in parts)
    assert same_numbers(load(*(tmp_path / f"s{i}" for i in range(3))), whole)
    for i in range(3):
        signsim.sweep(small(), GRID, seeds=2, out=tmp_path / "one", shard=(i, 3))
    assert same_numbers(load(tmp_path / "one"), whole)


def test_a_folder_holding_another_sweep_is_refused(tmp_path):
    signsim.sweep(small(), {"lr": [1e-3]}, seeds=1, out=tmp_path)
    with pytest.raises(ValueError, match="holds another sweep"):
        signsim.sweep(small(), {"lr": [2e-3]}, seeds=1, out=tmp_path)
    with pytest.raises(ValueError, match="holds another sweep"):
        signsim.sweep(small(), {"lr": [1e-3]}, seeds=2, out=tmp_path)


def test_a_damaged_task_file_is_refused_naming_the_file(tmp_path):
    signsim.sweep(small(), {"lr": [1e-3]}, seeds=1, out=tmp_path)
    (path,) = (tmp_path / "runs").glob("*.npz")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(signsim.SignsimFileError, match=path.name):
        read_task(path)


_KILLED = """
import signsim, sys
signsim.sweep(signsim.Config(**{small}), {grid}, seeds=3, out=sys.argv[1], batch_size=1)
"""


def test_resume_after_a_kill_keeps_what_was_written_and_computes_the_rest_once(tmp_path):
    """A sweep killed (SIGKILL) after some of its batches were written: re-running it reads
    those, computes each missing run once, and gives the uninterrupted numbers."""
    grid = {"lr": [1e-3, 2e-3, 3e-3, 4e-3]}
    big = {**SMALL, "steps": 400, "test_every": 100}
    script = _KILLED.format(small=big, grid=grid)
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)])
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "runs").glob("*.npz"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    kept = len(list((out / "runs").glob("*.npz")))
    assert 2 <= kept < 12
    resumed = signsim.sweep(signsim.Config(**big), grid, seeds=3, out=out, batch_size=1)
    assert resumed.reused == kept and resumed.computed == 12 - kept
    assert same_numbers(resumed, signsim.sweep(signsim.Config(**big), grid, seeds=3))
    assert signsim.sweep(signsim.Config(**big), grid, seeds=3, out=out).computed == 0


# ------------------------------------------------------------------ CLI


def _cli(*args):
    return main(["sweep", "--quiet", *map(str, args)])


def test_cli_sweep_writes_the_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "dq"
    args = ["--preset", "data_quality", "--grid", "snr=0.5,2", "--grid",
            "optimizer,lr=signgd:1e-3,gd:1.0", "--seeds", "2", "--set", "steps=10",
            "--set", "n_test=50", "--out", out]
    assert _cli(*args) == 0
    lines = (out / "table.csv").read_text().splitlines()
    assert lines[0].startswith("snr,optimizer,lr,seed,train_loss") and len(lines) == 9
    res = signsim.sweep("data_quality", {"snr": [0.5, 2], ("optimizer", "lr"):
                                         [("signgd", 1e-3), ("gd", 1.0)]},
                        seeds=2, steps=10, n_test=50)
    assert same_numbers(load(out), res)
    assert main(["sweep", *map(str, args)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["computed"] == 0
    assert main(["table", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == lines


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_cli_grid_file(tmp_path, suffix):
    text = ('preset = "data_quality"\nseeds = 2\n[set]\nsteps = 10\nn_test = 50\n[grid]\n'
            'snr = [0.5, 2]\n"optimizer,lr" = [["signgd", 1e-3], ["gd", 1.0]]\n')
    if suffix == ".json":
        text = json.dumps({"preset": "data_quality", "seeds": 2, "set": {"steps": 10,
                           "n_test": 50}, "grid": {"snr": [0.5, 2], "optimizer,lr":
                                                   [["signgd", 1e-3], ["gd", 1.0]]}})
    spec = tmp_path / f"grid{suffix}"
    spec.write_text(text)
    assert _cli("--grid-file", spec, "--out", tmp_path / "o") == 0
    res = signsim.sweep("data_quality", {"snr": [0.5, 2], ("optimizer", "lr"):
                                         [("signgd", 1e-3), ("gd", 1.0)]},
                        seeds=2, steps=10, n_test=50)
    assert same_numbers(load(tmp_path / "o"), res)


@pytest.mark.parametrize("args, words", [
    (["--grid", "snr"], "--grid expects"),
    (["--grid", "optimizer,lr=gd"], "2 parts"),
    (["--grid", "bogus=1"], "Unknown grid field"),
    (["--grid", "lr=1e-3", "--shard", "3/2"], "i/N"),
    ([], "give the grid"),
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, words):
    assert _cli(*args, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_cli_shards_then_table_merges(tmp_path, capsys):
    for i in range(2):
        assert _cli("--grid", "lr=1e-3,2e-3,3e-3", "--seeds", "2", "--set", "steps=5",
                    "--shard", f"{i}/2", "--out", tmp_path / f"s{i}") == 0
    assert main(["table", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 7 and all(r.endswith(",ok,") for r in rows[1:])


def test_a_path_given_as_out_that_is_a_file_is_a_bad_argument(tmp_path):
    (tmp_path / "f").write_text("mine")
    assert _cli("--grid", "lr=1e-3", "--out", tmp_path / "f") == 2
    assert (tmp_path / "f").read_text() == "mine"



# ------------------------------------------------------------------ phase diagrams


def test_phase_panels_are_the_medians_of_the_table_by_cell():
    """Each panel entry is the median (and max - min) over seeds of the table's test loss
    and error at that (x, y), computed here by a slow loop over rows; horizon = lr x steps."""
    from signsim.sweeps.phase import phase_panels

    grid = {"snr": [0.5, 2.0], "steps": [6, 12], ("optimizer", "lr"): [("signgd", 1e-3),
                                                                       ("gd", 0.5)]}
    res = signsim.sweep(small(), grid, seeds=3)
    t = res.table
    panels = phase_panels(res, "snr", "horizon")
    assert [p.fixed["optimizer"] for p in panels] == ["signgd", "gd"]
    for p in panels:
        lr = 1e-3 if p.fixed["optimizer"] == "signgd" else 0.5
        assert np.allclose(p.ys, [6 * lr, 12 * lr], rtol=1e-15)
        for j, steps in enumerate((6, 12)):
            for i, snr in enumerate((0.5, 2.0)):
                rows = t[(t.optimizer == p.fixed["optimizer"]) & (t.snr == snr)
                         & (t.steps == steps)]
                assert len(rows) == 3 and p.seeds[j, i] == 3
                assert p.test_loss[j, i] == np.median(rows.test_loss)
                assert p.test_error[j, i] == np.median(rows.test_error)
                assert p.loss_spread[j, i] == rows.test_loss.max() - rows.test_loss.min()


def test_phase_figure_shares_one_colour_scale_per_row():
    """Every heat map of one row of the phase figure has the same colour limits, and they
    cover the row's largest value."""
    pytest.importorskip("matplotlib")
    from signsim.sweeps.phase import phase_figure, phase_panels

    res = signsim.sweep(small(), GRID, seeds=2)
    fig = phase_figure(res, "snr", "lr")
    panels = phase_panels(res, "snr", "lr")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    for row, name in enumerate(("test_loss", "test_error", "loss_spread")):
        limits = {im.get_clim() for im in images[row * len(panels):(row + 1) * len(panels)]}
        assert len(limits) == 1
        top = max(np.nanmax(getattr(p, name)) for p in panels)
        assert list(limits)[0][1] >= top
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------ refusals and recoveries


def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path, capsys):
    """A non-empty folder without sweep.json is not taken over (Python and CLI): its
    files are untouched and no table.csv is written."""
    (tmp_path / "table.csv").write_text("my precious results")
    with pytest.raises(ValueError, match="not a sweep"):
        signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path)
    assert _cli("--grid", "lr=1e-3", "--set", "steps=3", "--out", tmp_path) == 2
    assert (tmp_path / "table.csv").read_text() == "my precious results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_run_that_succeeds_on_retry_is_ok_from_then_on(tmp_path):
    """retry_failed runs a recorded failure again; once it finishes, its error file is gone
    and every later resume and load() reports the row as ok."""
    signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path)
    (task,) = (tmp_path / "runs").glob("*.npz")
    _, configs, _ = read_task(task)
    task.unlink()
    (tmp_path / "errors" / f"{job_key(configs[0])}.json").write_text(json.dumps(
        {"config": configs[0].to_dict(), "error": "RuntimeError: pretend"}))
    assert list(signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path).status) == ["error"]
    retried = signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path, retry_failed=True)
    assert list(retried.status) == ["ok"] and retried.computed == 1
    assert list((tmp_path / "errors").iterdir()) == []
    assert list(signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path).status) == ["ok"]
    assert list(load(tmp_path).status) == ["ok"]
    # another shard's failure of a run this folder also holds finished: the result wins
    (tmp_path / "errors" / f"{job_key(configs[0])}.json").write_text(json.dumps(
        {"config": configs[0].to_dict(), "error": "RuntimeError: another shard"}))
    assert list(load(tmp_path).status) == ["ok"] and list(load(tmp_path).errors) == [""]


@pytest.mark.parametrize("values", [[1e-3, 1e-3 + 0j], [None], [object()], [np.array([1.0])]])
def test_grid_values_of_other_types_are_refused_naming_the_axis(values):
    with pytest.raises(ValueError, match="grid axis 'lr' takes str, bool, int or float"):
        Grid({"lr": values})


def test_numpy_scalars_become_python_scalars_and_a_one_field_tuple_key_is_that_field():
    g = Grid({"kernel": [np.str_("fast")], ("n",): [(np.int64(8),)], "lr": [np.float32(0.5)]})
    assert g.cells() == [{"kernel": "fast", "n": 8, "lr": 0.5}]
    assert [type(v) for v in g.cells()[0].values()] == [str, int, float]
    assert Grid({"lr": [np.bool_(True)]}).cells() == [{"lr": True}]  # a bool, refused later


def test_numpy_arrays_are_axes_and_seeds():
    res = signsim.sweep(small(), {"lr": np.array([1e-3, 2e-3])}, seeds=np.arange(2))
    assert list(res.columns()["lr"]) == [1e-3, 1e-3, 2e-3, 2e-3] and res.seeds == (0, 1)


@pytest.mark.parametrize("executor", [0, -1, True, 2.5, object()])
def test_bad_executors_are_refused_before_the_folder_is_claimed(tmp_path, executor):
    with pytest.raises(ValueError, match="The 'executor' parameter must be"):
        signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path / "o", executor=executor)
    assert not (tmp_path / "o").exists()


def test_threads_run_an_optimizer_registered_in_this_process():
    """A ThreadPoolExecutor shares this process's registry: nothing to send."""
    from signsim import optim

    optim.register("sweep_thread_sign", lambda c: optim.sign_gd(c.lr))
    try:
        with ThreadPoolExecutor(2) as pool:
            res = signsim.sweep(small(optimizer="sweep_thread_sign"), {"lr": [1e-3, 2e-3]},
                                executor=pool)
        assert (res.status == "ok").all()
    finally:
        optim.unregister("sweep_thread_sign")


def test_load_reads_without_writing_and_refuses_a_broken_definition(tmp_path):
    signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path)
    (tmp_path / "errors").rmdir()
    assert list(load(tmp_path).status) == ["ok"] and not (tmp_path / "errors").exists()
    d = json.loads((tmp_path / "sweep.json").read_text())
    (tmp_path / "sweep.json").write_text(json.dumps({**d, "seeds": "ab"}))
    with pytest.raises(signsim.SignsimFileError, match="sweep.json"):
        load(tmp_path)
    (tmp_path / "sweep.json").write_text("[]")
    with pytest.raises(signsim.SignsimFileError, match="not a sweep definition"):
        signsim.sweep(small(), {"lr": [1e-3]}, out=tmp_path)


def test_a_damaged_task_file_is_a_run_time_failure_that_says_what_to_do(tmp_path, capsys):
    args = ("--grid", "lr=1e-3", "--set", "steps=3", "--out", tmp_path / "o")
    assert _cli(*args) == 0
    (path,) = (tmp_path / "o" / "runs").glob("*.npz")
    path.write_text("junk")
    assert main(["sweep", "--quiet", *map(str, args)]) == 1
    err = capsys.readouterr().err
    assert path.name in err and "delete it" in err and "allow_pickle" not in err
    assert main(["table", str(tmp_path / "o")]) == 1


def test_cli_refuses_an_axis_given_twice(tmp_path, capsys):
    assert _cli("--grid", "snr=1", "--grid", "snr=2", "--out", tmp_path / "o") == 2
    assert "given twice" in capsys.readouterr().err


def _consume_first(calls):
    from signsim.parallel import as_completed

    for _ in as_completed(time.sleep, calls, 2):
        raise KeyboardInterrupt  # Ctrl-C as the first task ends


def test_an_interrupted_process_pool_does_not_wait_for_its_running_tasks():
    """Ctrl-C while a 60 s task runs in a worker ends the pool at once (the workers are
    terminated), not after the task."""
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _consume_first([(0.01,), (60.0,)])
    assert time.monotonic() - t0 < 30
