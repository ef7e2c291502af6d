"""The command line: run -> stages -> figure from saved runs, refusals and bad arguments."""

import json
import subprocess
import sys

import pytest

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
