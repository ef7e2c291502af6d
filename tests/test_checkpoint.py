"""Checkpoints and resume (signsim.checkpoint), Ctrl-C and SIGKILL at any moment, and the
loop's stop on NaN or inf (signsim.loop.NonFiniteError)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import signsim

from .test_fast import OVERLAP, assert_bit_identical

SHORT = {**OVERLAP, "steps": 40, "record_every": 3, "test_every": 7}


def interrupted_at(stop: int):
    """A progress hook that presses Ctrl-C when the loop reaches step ``stop``."""
    def progress(t, steps):
        if t >= stop:
            raise KeyboardInterrupt

    return progress


CASES = {
    "single": dict(kw={}),
    "adam": dict(kw={"optimizer": "adam"}),
    "batch": dict(kw={"seeds": [3, 4, 5], "vary": {"lr": [1e-2, 2e-2, 5e-3]}}),
    "summary": dict(kw={"record": "summary", "seeds": [1, 2]}),
    "dense": dict(kw={"kernel": "dense"}),
    "gd": dict(kw={"optimizer": "gd", "lr": 0.2}),  # the per-sample layout with p = 1
    "vary-noise-and-init": dict(kw={"seeds": [0, 1], "vary": {"sigma_p": [1.0, 3.0],
                                                             "sigma_0": [0.01, 0.1]}}),
    "record-list": dict(kw={"record": ["query_noise", "test_error"]}),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stop", [0, 1, 17, 39, 40])
def test_a_run_stopped_by_ctrl_c_and_resumed_is_bit_identical(tmp_path, case, stop):
    """Property: Ctrl-C at step ``stop`` writes a checkpoint of the state it had, and
    resume() then gives the Result of the uninterrupted run to the last bit (history,
    weights, data), for every layout, an optimizer with state, a batch and the dense
    reference."""
    kw = CASES[case]["kw"]
    base = {k: v for k, v in SHORT.items() if k not in kw.get("vary", {})}
    path = tmp_path / "run.npz"
    whole = signsim.run(**base, **kw)
    with pytest.raises(KeyboardInterrupt):
        signsim.run(**base, **kw, checkpoint=path, progress=interrupted_at(stop))
    assert int(np.load(path)["step"]) == stop
    assert_bit_identical(signsim.resume(path), whole)


def test_periodic_checkpoints_resume_from_each(tmp_path):
    """Every checkpoint_every steps the file holds a resumable state; resuming a finished
    run's last checkpoint returns its Result at once."""
    path = tmp_path / "run.npz"
    whole = signsim.run(**SHORT)
    seen = []

    def progress(t, steps):  # copy each checkpoint as the run goes
        if path.exists():
            seen.append(path.read_bytes())

    again = signsim.run(**SHORT, checkpoint=path, checkpoint_every=10, progress=progress)
    assert_bit_identical(again, whole)
    steps = sorted({int(np.load(_write(tmp_path, b))["step"]) for b in seen})
    assert steps == [10, 20, 30]
    for k, data in enumerate(dict.fromkeys(seen)):
        assert_bit_identical(signsim.resume(_write(tmp_path, data, f"c{k}.npz")), whole)
    assert int(np.load(path)["step"]) == SHORT["steps"]
    assert_bit_identical(signsim.resume(path), whole)


def _write(folder, data: bytes, name="copy.npz"):
    out = folder / name
    out.write_bytes(data)
    return out


KILLED = textwrap.dedent("""
    import sys, signsim
    signsim.run(**{config}, checkpoint=sys.argv[1], checkpoint_every=2)
""")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """Property: a run killed with SIGKILL at an arbitrary moment (here 10 moments spread
    over the run, writes every 2 steps, so that kills land inside checkpoint writes too)
    resumes from its last whole checkpoint to the uninterrupted Result, bit for bit; a
    temporary file of the killed writer is ignored, and removed by the next write."""
    config = {**OVERLAP, "steps": 400, "test_every": 5}
    whole = signsim.run(**config)
    script = KILLED.format(config=config)
    rng = np.random.default_rng(0)
    during_write = resumed = 0
    for trial in range(10):
        path = tmp_path / f"k{trial}.npz"
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:  # the run has started
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.6)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        temps = list(tmp_path.glob(f".signsim-{path.name}.*.tmp"))
        during_write += bool(temps)
        assert path.exists()
        assert_bit_identical(signsim.resume(path), whole)
        assert not list(tmp_path.glob(f".signsim-{path.name}.*.tmp"))  # the killed one's gone
        resumed += 1
    assert resumed == 10
    assert during_write >= 1, "no kill landed inside a checkpoint write; widen the trials"


def test_a_nan_stops_the_run_naming_step_and_quantity_and_keeps_the_history():
    with pytest.raises(signsim.NonFiniteError) as info:
        signsim.run(**SHORT, lr=1e300)
    error = info.value
    assert error.step == 3 and "not finite at step 3" in str(error)  # first record after 0
    assert error.name in str(error)
    part = error.result
    assert not part.batched and list(part.steps) == [0, 3]
    assert np.isfinite(part.history["margin"][0]).all()
    assert not np.isfinite(part.history["margin"][1]).all()
    with pytest.raises(signsim.NonFiniteError) as info:
        signsim.run(**SHORT, seeds=[0, 1], vary={"lr": [1e-2, 1e300]})
    assert info.value.result.batched and info.value.result.replicas == 2


def test_a_nan_in_a_test_metric_alone_is_caught():
    with pytest.raises(signsim.NonFiniteError, match="test_loss|test_error"):
        signsim.run(**SHORT, lr=1e300, record=["test_loss"])


@pytest.mark.parametrize("kw,text", [
    ({"checkpoint_every": 5}, "needs a 'checkpoint'"),
    ({"checkpoint": "x.npz", "checkpoint_every": 0}, "'checkpoint_every'"),
    ({"checkpoint": "x.npz", "checkpoint_every": 2.5}, "'checkpoint_every'"),
    ({"checkpoint": "x.npz", "seeds": [1, 2], "workers": 2}, "workers=1"),
])
def test_bad_checkpoint_arguments_are_refused(tmp_path, monkeypatch, kw, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=text):
        signsim.run(**SHORT, **kw)


def test_resume_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    result = signsim.run(**SHORT).save(tmp_path / "result.npz")
    with pytest.raises(ValueError, match="not a signsim checkpoint"):
        signsim.resume(result)


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    """Checkpoints are written like results (result._write_atomic): a temporary file of a
    writer that is gone is removed, one of a live writer kept."""
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"  # as result.py
    path = tmp_path / "c.npz"
    live = tmp_path / f".signsim-c.npz.{host}.{os.getppid()}.abcd.tmp"  # our parent: alive
    dead = tmp_path / f".signsim-c.npz.{host}.999999999.abcd.tmp"
    live.write_bytes(b"x")
    dead.write_bytes(b"x")
    with pytest.raises(KeyboardInterrupt):
        signsim.run(**SHORT, checkpoint=path, progress=interrupted_at(3))
    assert live.exists() and not dead.exists()
    assert int(np.load(path)["step"]) == 3


@pytest.mark.parametrize("damage", ["truncated", "random", "other-run", "missing-member",
                                    "wrong-shape", "step-past-end"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        signsim.run(**SHORT, checkpoint=path, progress=interrupted_at(12))
    arrays = dict(np.load(path))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        if damage == "other-run":
            other = tmp_path / "o.npz"
            with pytest.raises(KeyboardInterrupt):
                signsim.run(**{**SHORT, "n": 3}, checkpoint=other, progress=interrupted_at(12))
            arrays["meta"] = np.load(other)["meta"]
        elif damage == "missing-member":
            del arrays[next(k for k in arrays if k.startswith("opt_state") or
                            k.startswith("params."))]
        elif damage == "wrong-shape":
            key = next(k for k in arrays if k.startswith("params."))
            arrays[key] = arrays[key][..., :1]
        elif damage == "step-past-end":
            arrays["step"] = np.array(10**6)
        np.savez(path, **arrays)
    with pytest.raises(signsim.SignsimFileError, match=str(path)):
        signsim.resume(path)


def test_resuming_under_other_versions_warns(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        signsim.run(**SHORT, checkpoint=path, progress=interrupted_at(5))
    arrays = dict(np.load(path))
    meta = __import__("json").loads(str(arrays["meta"]))
    meta["versions"]["numpy"] = "0.0"
    arrays["meta"] = np.array(__import__("json").dumps(meta))
    np.savez(path, **arrays)
    with pytest.warns(RuntimeWarning, match="same versions"):
        signsim.resume(path)
