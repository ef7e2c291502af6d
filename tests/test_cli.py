"""The command line: run -> stages -> figure from saved runs, refusals and bad arguments."""

import contextlib
import dataclasses
import io
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import signsim
from signsim import cli, figures, outdir
from signsim.cli import main


def test_run_stages_figure_round_trip(tmp_path, capsys):
    run_dir = tmp_path / "sign"
    assert main(["run", "--preset", "fig1", "--set", "steps=400", "--set", "n_test=30",
                 "--out", str(run_dir), "--quiet"]) == 0
    assert {p.name for p in run_dir.iterdir()} == {"result.npz", "config.json", "summary.json"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"]["T1"] is not None and 0 <= summary["test_error"] <= 1
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 400

    assert main(["stages", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "T1" in out and "T4" in out and "predicted" in out

    adam_dir = tmp_path / "adam"
    assert main(["run", "--set", "optimizer=adam", "--set", "steps=400", "--set", "n_test=30",
                 "--out", str(adam_dir), "--quiet"]) == 0
    figs = tmp_path / "figs"
    assert main(["figure", "fig1", "--from", str(run_dir), "--out", str(figs), "--quiet"]) == 0
    assert main(["figure", "fig2", "--from", str(run_dir), "--from", str(adam_dir / "result.npz"),
                 "--out", str(figs), "--quiet"]) == 0
    assert {p.name for p in figs.iterdir()} == {"fig1.png", "fig1.pdf", "fig2.png", "fig2.pdf"}


def test_nothing_saved_is_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["run", "--set", "steps=2", "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "fig1.png").write_bytes(b"old")
    assert main(["figure", "fig1", "--out", str(figs), "--quiet"]) == 2
    assert (figs / "fig1.png").read_bytes() == b"old"


@pytest.mark.parametrize("argv,text", [
    (["run", "--set", "lr=-1", "--out", "x"], "'lr'"),
    (["run", "--set", "nope=1", "--out", "x"], "unknown field 'nope'"),
    (["run", "--set", "lr", "--out", "x"], "KEY=VALUE"),
    (["run", "--preset", "fig7", "--out", "x"], "invalid choice"),
    (["figure", "fig9", "--out", "x"], "invalid choice"),
    (["figure", "fig1", "--out", "x", "--seeds", "0"], "--seeds"),
    (["stages", "does/not/exist"], "no saved run"),
    (["run"], "--out"),
    ([], "command"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "signsim", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["figure", "--help"],
                                  ["stages", "--help"]])
def test_help_everywhere(argv):
    proc = subprocess.run([sys.executable, "-m", "signsim", *argv], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_progress_bar_is_silent_when_not_a_terminal(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "signsim", "run", "--set", "steps=5",
                           "--set", "n_test=5", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""


def test_progress_bar_draws_on_a_terminal_only(monkeypatch):
    import io

    from signsim.cli import _Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    bar = _Progress(quiet=False)
    bar(45, 100, "run fig1")
    bar.close()
    assert "45.0%" in tty.getvalue() and "#" * 13 in tty.getvalue()
    quiet = Tty()
    monkeypatch.setattr(sys, "stderr", quiet)
    _Progress(quiet=True)(45, 100)
    assert quiet.getvalue() == ""


# ---------------------------------------------------------------- nothing lost, nothing silent

TINY_FIELDS = {"steps": 1, "n": 2, "d": 10, "s": 2, "n_test": 2, "m_k": 1, "m_v": 1}
TINY = [a for k, v in TINY_FIELDS.items() for a in ("--set", f"{k}={v}")]
RUN_FILES = {"result.npz", "config.json", "summary.json"}


def strict_json(text):
    """json.loads that refuses NaN and Infinity (which json.loads accepts by default)."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def one_error_line(err, prog="signsim run"):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def tiny():
    return signsim.run("fig1", **TINY_FIELDS)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "run"
    assert main(["run", *TINY, "--out", str(path), "--quiet"]) == 0
    return path


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a simulation starts."""
    def fail(*args, **kwargs):
        raise AssertionError("simulated although the command should have stopped before")
    monkeypatch.setattr(signsim, "run", fail)
    monkeypatch.setattr(figures, "runs_for", fail)
    monkeypatch.setattr(signsim, "resume", fail, raising=False)


def test_a_second_writer_fails_at_once_and_overwrites_nothing(tmp_path, capsys, no_compute):
    out = tmp_path / "run"
    with outdir.claim(out) as holder:
        holder.write_text("result.npz", "the holder's")
        for argv in (["run", *TINY, "--out", str(out), "--force"],
                     ["figure", "fig1", "--out", str(out), "--force"]):
            t0 = time.monotonic()
            assert main(argv) == 1
            assert time.monotonic() - t0 < 5
            line = one_error_line(capsys.readouterr().err, f"signsim {argv[0]}")
            assert line == (f"signsim {argv[0]}: error: {out} is being written by process "
                            f"{os.getpid()}; wait for it or choose another --out")
        assert holder.held
    assert (out / "result.npz").read_text() == "the holder's"


def test_two_signsim_run_processes_on_one_out(tmp_path, capsys):
    out = tmp_path / "run"
    slow = ["--set", "steps=1000000", "--set", "record_every=1000000",
            "--set", "test_every=1000000"]
    proc = subprocess.Popen([sys.executable, "-m", "signsim", "run", *TINY, *slow,
                             "--out", str(out), "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        lock, deadline = out / outdir.LOCK_NAME, time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip() == str(proc.pid)):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the first run never claimed --out"
            time.sleep(0.05)
        t0 = time.monotonic()
        assert main(["run", *TINY, "--out", str(out), "--quiet"]) == 1
        assert time.monotonic() - t0 < 5  # at once, not after the other run
        line = one_error_line(capsys.readouterr().err)
        assert f"{out} is being written by process {proc.pid}; wait for it" in line
        assert not (out / "result.npz").exists()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    # the killed writer left its lock file (and maybe temp files): not results, no --force
    assert main(["run", *TINY, "--out", str(out), "--quiet"]) == 0
    assert set(os.listdir(out)) == RUN_FILES


def test_a_file_as_out_is_refused_before_compute(tmp_path, capsys, no_compute):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    for argv in (["run", *TINY, "--out", str(path)], ["run", "--out", str(path), "--force"],
                 ["figure", "fig1", "--out", str(path)]):
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err, f"signsim {argv[0]}")
        assert f"{path} is a file, not a directory" in line
    assert path.read_text() == "mine"


@pytest.mark.parametrize("where", ["under a file", "/proc/self"])
def test_an_unwritable_out_is_refused_before_compute(where, tmp_path, capsys, no_compute):
    """Two folders nobody can write into, root included (a mode 0o500 folder would not do:
    root, which CI runs as, writes into it anyway)."""
    if where == "under a file":  # nobody can make a folder inside a file
        (tmp_path / "f").write_text("mine")
        out, text = tmp_path / "f" / "run", "cannot be created"
    else:  # /proc takes no new files (Linux, where CI runs)
        out, text = Path("/proc/self"), "is not writable"
    assert main(["run", *TINY, "--out", str(out), "--force"]) == 2
    assert text in one_error_line(capsys.readouterr().err)


def test_leftovers_of_a_killed_writer_are_not_results(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (out / outdir.LOCK_NAME).write_text(dead + "\n")
    (out / ".signsim-3kq1.npz").write_bytes(b"half a result")
    (out / ".summary.json.tmp").write_text("{")
    assert main(["run", *TINY, "--out", str(out), "--quiet"]) == 0  # no --force needed
    assert set(os.listdir(out)) == RUN_FILES


def test_force_is_needed_to_replace_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--set", "seed=1", "--out", str(out), "--quiet"]) == 0
    before = {name: (out / name).read_bytes() for name in RUN_FILES}
    assert main(["run", *TINY, "--set", "seed=2", "--out", str(out), "--quiet"]) == 2
    assert "--force" in one_error_line(capsys.readouterr().err)
    assert {name: (out / name).read_bytes() for name in RUN_FILES} == before
    assert main(["run", *TINY, "--set", "seed=2", "--out", str(out), "--quiet", "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    assert signsim.load(out / "result.npz").config.seed == 2
    assert set(os.listdir(out)) == RUN_FILES


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_files_are_group_readable_like_the_json(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["run", *TINY, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode) for name in RUN_FILES}
    assert modes == dict.fromkeys(RUN_FILES, 0o644)


def test_json_is_strict_non_finite_is_null(tmp_path, capsys, monkeypatch, tiny):
    history = {k: np.array(v, dtype=float) for k, v in tiny.history.items()}
    history["test_loss"][-1] = np.nan
    history["train_loss"][-1] = np.inf
    broken = dataclasses.replace(tiny, history=history)
    monkeypatch.setattr(signsim, "run", lambda *a, **k: broken)
    assert main(["run", *TINY, "--out", str(tmp_path / "run")]) == 0
    printed = strict_json(capsys.readouterr().out)
    saved = strict_json((tmp_path / "run" / "summary.json").read_text())
    assert printed == saved
    assert saved["test_loss"] is None and saved["train_loss"] is None
    assert saved["test_error"] == float(tiny.history["test_error"][-1])
    strict_json((tmp_path / "run" / "config.json").read_text())
    assert strict_json(cli._dumps({"a": math.nan, "b": [np.float64(-np.inf), np.float32(1.5)],
                                   "c": np.int64(3), "d": np.bool_(True)})) == {
        "a": None, "b": [None, 1.5], "c": 3, "d": True}


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "1e999", "9" * 30, str(2**63),
                                   "-" + "9" * 25, "9" * 5000])
def test_set_values_that_are_not_usable_numbers(value, tmp_path, capsys, no_compute):
    assert main(["run", "--set", f"n={value}", "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--set n" in line and len(line) < 400
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("exc", [OverflowError("int too large to convert"), MemoryError(),
                                 FloatingPointError("overflow encountered in exp"),
                                 zipfile.BadZipFile("File is not a zip file"),
                                 EOFError("No data left in file"), KeyError("configs"),
                                 IndexError("index 3 is out of bounds"), ValueError("bad\nvalue"),
                                 OSError(28, "No space left on device"), RuntimeError()])
def test_runtime_failures_are_one_line_and_exit_1(exc, tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise exc
    monkeypatch.setattr(signsim, "run", fail)
    assert main(["run", *TINY, "--out", str(tmp_path / "r")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("signsim run: error: ")
    assert not (tmp_path / "r").exists()  # a folder made for the run and left empty goes


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, saved_run):
    """Files that are not signsim results, each in its own way."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("hello")
    with zipfile.ZipFile(d / "zip.npz", "w") as z:
        z.writestr("a.txt", "not an array")
    np.savez(d / "other.npz", a=np.zeros(3))
    np.savez(d / "format_only.npz", format=np.array("signsim-result-2"))
    whole = (saved_run / "result.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    arrays = dict(np.load(saved_run / "result.npz"))
    arrays["steps"] = arrays["steps"][:0]
    np.savez(d / "no_steps.npz", **arrays)
    return d


@pytest.mark.parametrize("name", ["empty.npz", "text.npz", "zip.npz", "other.npz",
                                  "format_only.npz", "truncated.npz", "no_steps.npz"])
def test_unreadable_saved_runs_are_one_line(name, bad_files, tmp_path, capsys):
    path = bad_files / name
    assert main(["stages", str(path)]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err, "signsim stages")
    assert main(["figure", "fig1", "--from", str(path), "--out", str(tmp_path / "f")]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err, "signsim figure")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(signsim, "run", interrupted)
    assert main(["run", *TINY, "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err  # stopped before its first step: nothing was saved
    assert err == "signsim run: interrupted before the first step: nothing to resume\n"
    assert not (tmp_path / "r").exists()  # no lock file, no empty folder left behind
    monkeypatch.setattr(figures, "runs_for", interrupted)
    assert main(["figure", "fig1", "--out", str(tmp_path / "f")]) == 130
    assert capsys.readouterr().err == "signsim figure: interrupted\n"


@pytest.mark.parametrize("argv", [["stages", "RUN"], ["run", *TINY, "--out", "NEW"]])
def test_a_closed_stdout_pipe_ends_quietly(argv, saved_run, tmp_path):
    argv = [{"RUN": str(saved_run), "NEW": str(tmp_path / "new")}.get(a, a) for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "signsim", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head -c 1` that has already exited
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 1 and err == "", err  # status 1 as the Python docs do, no message
    if argv[0] == "run":  # the results were written before the summary line was lost
        assert set(os.listdir(tmp_path / "new")) == RUN_FILES


def test_a_broken_pipe_in_process(saved_run, capsys, monkeypatch):
    class Closed(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["stages", str(saved_run)]) == 1
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_elsewhere_is_not_silent(tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe (a worker)")
    monkeypatch.setattr(signsim, "run", fail)
    assert main(["run", *TINY, "--out", str(tmp_path / "r")]) == 1
    assert "Broken pipe (a worker)" in one_error_line(capsys.readouterr().err)


def test_figure_without_matplotlib_fails_before_simulating(tmp_path, capsys, monkeypatch,
                                                            no_compute, saved_run):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for extra in ([], ["--from", str(saved_run)]):
        assert main(["figure", "fig1", "--out", str(tmp_path / "f"), *extra]) == 1
        line = one_error_line(capsys.readouterr().err, "signsim figure")
        assert 'python -m pip install "signsim[plot]"' in line
    assert not (tmp_path / "f").exists()


def test_figure_from_runs_checks_their_number_first(tmp_path, capsys, saved_run, no_compute,
                                                    monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the runs before counting them")
    monkeypatch.setattr(signsim.result, "load", no_loading)
    assert main(["figure", "fig2", "--from", str(saved_run), "--out", str(tmp_path)]) == 2
    assert "two runs" in one_error_line(capsys.readouterr().err, "signsim figure")
    assert main(["figure", "fig1", "--from", str(saved_run), "--from", str(saved_run),
                 "--out", str(tmp_path)]) == 2
    assert "one run" in one_error_line(capsys.readouterr().err, "signsim figure")


@pytest.mark.parametrize("argv,text", [
    (["stages", "RUN", "--dominance", "nan"], "finite"),
    (["stages", "RUN", "--s21-threshold", "inf"], "finite"),
    (["stages", "RUN", "--s21-threshold", "2"], "(0, 1)"),
    (["stages", "RUN", "--dominance", "-1"], ">= 0"),
    (["figure", "data-quality", "--out", "x", "--seeds", "99999999999999999999"], "--seeds"),
    (["figure", "data-quality", "--out", "x", "--seeds", "9" * 5000], "--seeds"),
    (["run", "--out", "x", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["run", "--out", "x", "--checkpoint-every", "1e3"], "--checkpoint-every"),
])
def test_more_bad_arguments_exit_2(argv, text, saved_run, tmp_path, capsys, monkeypatch,
                                   no_compute):
    monkeypatch.chdir(tmp_path)
    argv = [str(saved_run) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    assert text in one_error_line(capsys.readouterr().err, f"signsim {argv[0]}")
    assert not (tmp_path / "x").exists()


# ---- fuzz: random invocations end in 0, 1 or 2 and one line, never a traceback

_FIELDS = [f for f in signsim.Config.__dataclass_fields__ if f != "steps"] + ["nope"]
_GARBAGE = ["", "x", "-1", "0", "1", "2", "1.5", "NaN", "nan", "inf", "-Infinity", "1e999",
            "1e300", "1e-320", str(2**63 - 1), str(2**63), str(-2**63), "9" * 30, "9" * 5000,
            "null", "true", "[1]", "{}", '"adam"', "adam", "gd", "dense", "first", "fig1",
            "fig2", "data_quality", "data-quality", "=", "lr", "lr=", "=1", "é€", "-", "--"]
# steps: never a long run (a huge steps with a huge record_every and test_every would run)
_STEPS = ["-1", "0", "1", "2", "NaN", "1e999", "1.0", "x", str(2**63), "9" * 30]
_OPTIONS = {  # per command; _WRONG are wrong everywhere or for most commands
    "run": ["--preset", "--set", "--force", "--quiet", "--resume", "--checkpoint-every", "--out"],
    "figure": ["--from", "--seeds", "--force", "--quiet", "--out"],
    "stages": ["--dominance", "--s21-threshold"],
}
_WRONG = ["--bogus", "-x", "--help", "--from", "--set", "--dominance", "--seeds"]
# paths as tokens, made real in the test: a saved run, files that are not runs, and more
_PATHS = ["@run", "@run/result.npz", "@file", "@file/sub", "@missing", "@checkpointed",
          "/proc/self", "@fresh", "@bad/empty.npz", "@bad/text.npz", "@bad/zip.npz",
          "@bad/other.npz", "@bad/format_only.npz", "@bad/truncated.npz", "@bad/no_steps.npz"]


@st.composite
def _argv(draw):
    value = st.sampled_from(_GARBAGE + _PATHS)
    path = st.sampled_from(["@fresh"] * 3 + _PATHS + _GARBAGE[:6])
    setting = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_FIELDS), st.sampled_from(_GARBAGE)),
        st.builds(lambda v: f"steps={v}", st.sampled_from(_STEPS)), value)
    command = draw(st.sampled_from(["run"] * 5 + ["figure"] * 4 + ["stages"] * 3
                                   + ["bogus", "", "--help"]))
    options = _OPTIONS.get(command, [])
    chunks = [st.builds(lambda v: [v], value), st.builds(lambda o: [o], st.sampled_from(_WRONG))]
    if options:
        chunks += [st.builds(lambda o, v: [o, v], st.sampled_from(options), value),
                   st.builds(lambda o: [o], st.sampled_from(options))]
    if command == "run":
        chunks.append(st.builds(lambda v: ["--set", v], setting))
    head = {"": [], "run": ["run", *TINY, "--out", draw(path)],
            "figure": ["figure", draw(st.sampled_from(["fig1", "fig2", "data-quality", "fig9"])),
                       "--out", draw(path)],
            "stages": ["stages", draw(path)]}.get(command, [command])
    return head + [a for c in draw(st.lists(st.one_of(chunks), max_size=4)) for a in c]


@pytest.fixture(scope="module")
def fuzz_paths(tmp_path_factory, saved_run, bad_files):
    d = tmp_path_factory.mktemp("fuzz")
    (d / "file").write_text("a file")
    (d / "checkpointed").mkdir()
    (d / "checkpointed" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    return {"@run": saved_run, "@file": d / "file", "@missing": d / "missing",
            "@checkpointed": d / "checkpointed", "@bad": bad_files}


@contextlib.contextmanager
def _inside(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=_argv())
@example(argv=["run", *TINY, "--out", "@fresh"])  # 0
@example(argv=["run", *TINY, "--out", "@fresh", "--set", f"n={2**63 - 1}"])  # too big: 1
@example(argv=["run", *TINY, "--out", "@fresh", "--set", "lr=1e300"])  # overflows: 1
@example(argv=["stages", "@bad/truncated.npz"])  # 1
@example(argv=["figure", "fig1", "--from", "@bad/empty.npz", "--out", "@fresh"])  # 1
@example(argv=["figure", "fig2", "--out", "@fresh", "--quiet"])  # 0
@example(argv=["run", "--resume", "@checkpointed"])  # not a checkpoint: 1
def test_random_invocations_never_print_a_traceback(argv, fuzz_paths, tiny, tmp_path_factory):
    fresh = tmp_path_factory.mktemp("out") / "new"

    def real(arg):
        head, _, tail = arg.partition("/")
        if head == "@fresh":
            return str(fresh)
        if head in fuzz_paths:
            return str(fuzz_paths[head] / tail) if tail else str(fuzz_paths[head])
        return arg

    argv = [real(a) for a in argv]

    def fake_runs(name, **kwargs):  # the figures' own runs are not what this tests
        return [tiny] * (2 if name == "fig2" else 1)

    def fake_savefig(self, path, **kwargs):  # nor is drawing them (seconds each)
        Path(path).write_bytes(b"figure")

    out, err = io.StringIO(), io.StringIO()
    with _inside(tmp_path_factory.mktemp("cwd")), mock.patch.object(figures, "runs_for",
                                                                     fake_runs), \
            mock.patch("matplotlib.figure.Figure.savefig", fake_savefig):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    err = err.getvalue()
    event(f"{argv[0] if argv else 'none'} exit {code}")
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("signsim"), (argv, err)


# ---- signsim run --checkpoint-every K and --resume DIR (signsim.run(checkpoint=...),
# signsim.resume: another module). The CLI's side, with stand-ins:

def test_checkpoint_every_is_passed_to_run(tmp_path, monkeypatch, tiny):
    calls = []

    def fake_run(config, **kwargs):
        calls.append(kwargs)
        return tiny
    monkeypatch.setattr(signsim, "run", fake_run)
    assert main(["run", *TINY, "--checkpoint-every", "3", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    assert calls[-1]["checkpoint"] == tmp_path / "a" / "checkpoint.npz"
    assert calls[-1]["checkpoint_every"] == 3
    assert main(["run", *TINY, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    # without --checkpoint-every, a checkpoint only if Ctrl-C stops the run
    assert calls[-1]["checkpoint"] == tmp_path / "b" / "checkpoint.npz"
    assert calls[-1]["checkpoint_every"] is None


def test_resume_writes_the_results_like_a_run(tmp_path, monkeypatch, capsys, tiny):
    monkeypatch.setattr(signsim, "run", lambda *a, **k: tiny)
    assert main(["run", *TINY, "--out", str(tmp_path / "plain")]) == 0
    plain = capsys.readouterr().out
    calls = []

    def fake_resume(path):
        calls.append(path)
        return tiny
    monkeypatch.setattr(signsim, "resume", fake_resume, raising=False)
    monkeypatch.setattr(signsim.checkpoint, "every_of", lambda path: 5)  # periodic: kept
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "checkpoint.npz").write_bytes(b"stand-in")
    assert main(["run", "--resume", str(d)]) == 0
    assert calls == [d / "checkpoint.npz"]
    assert capsys.readouterr().out == plain
    assert set(os.listdir(d)) == RUN_FILES | {"checkpoint.npz"}
    for name in ("config.json", "summary.json"):
        assert (d / name).read_text() == (tmp_path / "plain" / name).read_text()
    assert main(["run", "--resume", str(d), "--quiet"]) == 2  # results there: --force
    assert "--force" in one_error_line(capsys.readouterr().err)
    assert main(["run", "--resume", str(d), "--quiet", "--force"]) == 0
    assert len(calls) == 2


def test_resume_refusals(tmp_path, capsys, no_compute):
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, text in [
        (["run", "--resume", str(empty)], "no checkpoint at"),
        (["run", "--resume", str(tmp_path / "missing")], "no checkpoint at"),
        (["run", "--resume", str(empty), "--set", "lr=1"], "drop --set"),
        (["run", "--resume", str(empty), "--preset", "fig2"], "drop --preset"),
        (["run", "--resume", str(empty), "--checkpoint-every", "2"], "drop --checkpoint-every"),
        (["run", "--resume", str(empty), "--out", str(empty)], "not allowed with"),
    ]:
        assert main(argv) == 2, argv
        assert text in one_error_line(capsys.readouterr().err)
    assert os.listdir(empty) == [] and not (tmp_path / "missing").exists()
    (empty / "checkpoint.npz").write_bytes(b"stand-in")
    with outdir.claim(empty, names=outdir.RUN_FILES):  # another writer: resume waits for none
        assert main(["run", "--resume", str(empty)]) == 1
        assert "is being written by process" in one_error_line(capsys.readouterr().err)
    assert main(["run", *TINY, "--out", str(empty)]) == 2  # a fresh run: say --resume
    assert f"signsim run --resume {empty}" in one_error_line(capsys.readouterr().err)


# ... and with the real checkpointing (signsim.run(checkpoint=...), signsim.resume):

def _stopped_at_step_12(tmp_path, monkeypatch, extra: list):
    """A 30-step CLI run into tmp_path/run stopped by Ctrl-C at step 12; its arguments."""
    fields = {**TINY_FIELDS, "steps": 30}
    argv = [a for k, v in fields.items() for a in ("--set", f"{k}={v}")]

    def ctrl_c_at_step_12(self, done, total, label=""):
        if done >= 12:
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(cli._Progress, "__call__", ctrl_c_at_step_12)
        code = main(["run", *argv, *extra, "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 130
    return tmp_path / "run", argv


def _assert_resumed_like_straight(tmp_path, argv):
    d = tmp_path / "run"
    assert main(["run", *argv, "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    for name in ("config.json", "summary.json"):
        assert (d / name).read_text() == (tmp_path / "straight" / name).read_text()
    resumed, straight = (signsim.load(p / "result.npz") for p in (d, tmp_path / "straight"))
    assert set(resumed.history) == set(straight.history)
    for name in straight.history:
        np.testing.assert_array_equal(resumed.history[name], straight.history[name])


def test_ctrl_c_then_resume_gives_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    d, argv = _stopped_at_step_12(tmp_path, monkeypatch, ["--checkpoint-every", "5"])
    assert capsys.readouterr().err.startswith("signsim run: interrupted; the run so far is in")
    assert (d / "checkpoint.npz").is_file() and not RUN_FILES & set(os.listdir(d))
    assert main(["run", *argv, "--out", str(d), "--quiet"]) == 2
    assert "--resume" in one_error_line(capsys.readouterr().err)
    assert main(["run", "--resume", str(d), "--quiet"]) == 0
    _assert_resumed_like_straight(tmp_path, argv)


def test_checkpoint_every_writes_a_checkpoint_that_resumes(tmp_path, capsys):
    d = tmp_path / "run"
    argv = ["run", *TINY, "--set", "steps=6", "--checkpoint-every", "2", "--out", str(d),
            "--quiet"]
    assert main(argv) == 0
    assert (d / "checkpoint.npz").is_file() and RUN_FILES <= set(os.listdir(d))
    summary = (d / "summary.json").read_text()
    assert main(["run", "--resume", str(d), "--quiet"]) == 2  # the results are there
    assert main(["run", "--resume", str(d), "--quiet", "--force"]) == 0
    assert (d / "summary.json").read_text() == summary


def test_ctrl_c_without_checkpoint_every_still_saves_and_resumes(tmp_path, capsys, monkeypatch):
    """Ctrl-C saves what the run has even without --checkpoint-every; --resume finishes it
    as if it had never stopped, and the checkpoint written for the interruption goes."""
    d, argv = _stopped_at_step_12(tmp_path, monkeypatch, [])
    capsys.readouterr()
    assert set(os.listdir(d)) == {"checkpoint.npz"}
    assert main(["run", "--resume", str(d), "--quiet"]) == 0
    assert set(os.listdir(d)) == RUN_FILES
    _assert_resumed_like_straight(tmp_path, argv)


def test_sigterm_stops_a_run_like_ctrl_c_and_saves_it(tmp_path):
    """A batch system's SIGTERM: one line, exit 130, and a checkpoint to resume from."""
    out = tmp_path / "run"
    fields = {**TINY_FIELDS, "steps": 10**6, "record_every": 1000, "test_every": 1000}
    argv = [a for k, v in fields.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "signsim", "run", *argv, "--out", str(out),
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (out / outdir.LOCK_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into the loop
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert err.startswith("signsim run: interrupted; the run so far is in")
    assert "Traceback" not in err
    step = int(np.load(out / "checkpoint.npz")["step"])
    assert 0 < step < 10**6
