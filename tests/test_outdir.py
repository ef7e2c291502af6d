"""signsim.outdir: an output folder claimed before any compute (created, checked, locked),
leftovers of killed writers cleaned, results never replaced without force, atomic writes."""

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from signsim import outdir
from signsim.outdir import LOCK_NAME, Busy, NotEmpty, Unusable, claim

HOLD = ("import sys, time\nfrom signsim.outdir import claim\nc = claim(sys.argv[1])\n"
        "print('held', flush=True)\ntime.sleep(120)\n")


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


@pytest.fixture
def holder(tmp_path):
    """Another process holding a claim on tmp_path/'busy' (killed at the end)."""
    target = tmp_path / "busy"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield target, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture(params=["flock", "excl"])
def lock_kind(request, monkeypatch):
    """Both lock implementations: fcntl.flock, and the O_EXCL pid file used without fcntl."""
    if request.param == "excl":
        monkeypatch.setattr(outdir, "_fcntl", None)
    elif outdir._fcntl is None:
        pytest.skip("no fcntl on this platform")
    return request.param


def test_claim_creates_locks_and_releases(tmp_path, lock_kind):
    target = tmp_path / "a" / "b"
    with claim(target) as out:
        assert target.is_dir() and out.held
        assert (target / LOCK_NAME).read_text().strip() == str(os.getpid())
        out.write_text("x.txt", "1")
    assert not out.held
    assert sorted(os.listdir(target)) == ["x.txt"]  # the lock file goes with the claim


def test_a_created_folder_left_empty_is_removed(tmp_path, lock_kind):
    with claim(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with claim(tmp_path / "mine"):
        pass
    assert (tmp_path / "mine").is_dir() and os.listdir(tmp_path / "mine") == []


def test_second_claim_fails_at_once_naming_the_holder(tmp_path, lock_kind):
    with claim(tmp_path / "d") as first:
        first.write_text("result.npz", "first")
        t0 = time.monotonic()
        with pytest.raises(Busy) as err:
            claim(tmp_path / "d", force=True)
        assert time.monotonic() - t0 < 2
        assert str(err.value) == (f"{tmp_path / 'd'} is being written by process "
                                  f"{os.getpid()}; wait for it or choose another --out")
        assert err.value.pid == os.getpid()
        assert first.held  # the failed claim did not take the lock away
    assert (tmp_path / "d" / "result.npz").read_text() == "first"


def test_a_claim_held_by_another_process(holder):
    target, proc = holder
    with pytest.raises(Busy, match=f"being written by process {proc.pid};"):
        claim(target, force=True)
    proc.kill()  # a killed writer leaves its lock file: it is not a holder any more
    proc.wait()
    assert (target / LOCK_NAME).exists()
    with claim(target) as out:  # no --force needed: the folder shows nothing
        assert out.held
    assert not (target / LOCK_NAME).exists()


def test_a_stale_lock_file_is_ignored_and_cleaned(tmp_path, lock_kind):
    target = tmp_path / "d"
    target.mkdir()
    (target / LOCK_NAME).write_text(f"{dead_pid()}\n")
    with claim(target) as out:
        assert (target / LOCK_NAME).read_text().strip() == str(os.getpid())
        out.write_text("a", "1")
    assert os.listdir(target) == ["a"]


def test_without_fcntl_a_live_pid_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(outdir, "_fcntl", None)
    target = tmp_path / "d"
    target.mkdir()
    (target / LOCK_NAME).write_text(f"{os.getppid()}\n")
    with pytest.raises(Busy, match=f"process {os.getppid()};"):
        claim(target)
    (target / LOCK_NAME).write_text("")  # being written this instant: busy, pid unknown
    with pytest.raises(Busy, match="by another process;"):
        claim(target)
    old = time.time() - 3600  # ... but an hour-old empty lock file is garbage
    os.utime(target / LOCK_NAME, (old, old))
    with claim(target):
        pass
    assert os.listdir(target) == []


def test_leftover_temp_files_are_not_results_and_are_removed(tmp_path, lock_kind):
    target = tmp_path / "d"
    target.mkdir()
    leftovers = [".signsim-k2j3.npz", ".signsim-x-summary.json", ".summary.json.tmp",
                 ".checkpoint.npz.tmp", ".result.npz.tmp"]
    for name in leftovers:
        (target / name).write_text("half")
    (target / ".signsim-dir").mkdir()
    (target / ".signsim-dir" / "x").write_text("half")
    (target / LOCK_NAME).write_text(f"{dead_pid()}\n")
    kept = [".DS_Store", ".notes.tmp"]  # hidden files of the user: neither results nor ours
    for name in kept:
        (target / name).write_text("mine")
    assert [n for n in os.listdir(target) if not n.startswith(".")] == []  # `ls` shows nothing
    with claim(target):  # so no --force is needed
        pass
    assert sorted(os.listdir(target)) == sorted(kept)


def test_results_are_never_replaced_without_force(tmp_path, lock_kind):
    target = tmp_path / "d"
    target.mkdir()
    (target / "result.npz").write_text("old")
    with pytest.raises(NotEmpty, match=r"not empty \(result.npz\); pass --force") as err:
        claim(target)
    assert err.value.entries == ("result.npz",)
    assert not (target / LOCK_NAME).exists()  # a refused claim leaves no lock behind
    with claim(target, force=True) as out:
        out.write_text("result.npz", "new")
    assert (target / "result.npz").read_text() == "new"


def test_names_only_those_files_must_be_absent(tmp_path):
    target = tmp_path / "figs"
    target.mkdir()
    (target / "other.png").write_text("x")
    with claim(target, names=["fig1.png", "fig1.pdf"]) as out:
        out.write_text("fig1.png", "png")
    with pytest.raises(NotEmpty, match="fig1.png exist"):
        claim(target, names=["fig1.png", "fig1.pdf"])
    assert (target / "fig1.png").read_text() == "png"


def test_a_file_is_not_a_folder(tmp_path):
    path = tmp_path / "f"
    path.write_text("mine")
    with pytest.raises(Unusable, match="is a file, not a directory"):
        claim(path)
    with pytest.raises(Unusable, match="is a file, not a directory"):
        claim(path, force=True)
    assert path.read_text() == "mine"


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_symbolic_links(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with claim(tmp_path / "link") as out:  # a link to a folder is that folder
        out.write_text("a", "1")
    assert os.listdir(tmp_path / "real") == ["a"]
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(Unusable, match="symbolic link to nothing"):
        claim(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_that_cannot_be_created(tmp_path):  # works as root too
    (tmp_path / "f").write_text("mine")
    with pytest.raises(Unusable, match="cannot be created"):
        claim(tmp_path / "f" / "out")
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_folder_nobody_can_write():  # works as root too: /proc refuses new files
    with pytest.raises(Unusable, match="is not writable"):
        claim("/proc/self", force=True)


def test_write_is_atomic_and_refuses_to_replace(tmp_path):
    with claim(tmp_path / "d") as out:
        out.write_text("a.json", "1")
        with pytest.raises(FileExistsError, match="a.json"):
            out.write_text("a.json", "2")
        assert (tmp_path / "d" / "a.json").read_text() == "1"

        def interrupted(tmp):
            tmp.write_text("half")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            out.write_with("b.json", interrupted)
        with pytest.raises(ValueError):
            out.write_text("../escape", "x")
        assert sorted(os.listdir(tmp_path / "d")) == [LOCK_NAME, "a.json"]
    with claim(tmp_path / "d", force=True) as out:
        out.write_text("a.json", "2")
    assert (tmp_path / "d" / "a.json").read_text() == "2"
    with pytest.raises(RuntimeError, match="released"):
        out.write_text("c.json", "3")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_get_the_mode_of_a_new_file(tmp_path, mask, mode):
    def private(tmp):  # like Result.save: its own mkstemp file (mode 0o600) renamed onto tmp
        fd, other = tempfile.mkstemp(dir=tmp.parent)
        os.write(fd, b"data")
        os.close(fd)
        os.replace(other, tmp)

    with umask(mask):
        with claim(tmp_path / "d") as out:
            out.write_text("a.json", "{}")
            out.write_with("b.npz", private)
    for name in ("a.json", "b.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / "d" / name).st_mode) == mode, name
