"""Claiming an output folder before any compute, and writing into it atomically.

``claim(path)`` is what ``signsim run`` and ``signsim figure`` do with ``--out`` before they
simulate anything, so that a bad folder is reported at once and not after a long run:

- the folder is created if needed, must be a directory, and must be writable (a probe file
  is written and removed);
- an exclusive lock is taken, ``DIR/.signsim.lock`` (``fcntl.flock``, non-blocking, held for
  the life of the claim; where there is no ``fcntl``, a lock file created with
  ``O_CREAT | O_EXCL`` holding the pid). While another live process holds it, ``claim``
  fails at once with ``Busy``: two writers never mix their files in one folder;
- leftovers of a killed writer are removed (temp files ``.signsim-*`` and ``.NAME.tmp`` for
  the final names, a lock file whose process is dead); hidden files never make a folder
  "not empty", only visible ones do;
- results are never replaced unless ``force``: without it the folder must hold no visible
  file (or, with ``names``, none of those names).

The ``Claim`` writes files atomically (a temp file in the folder, fsync, then a rename that
never replaces an existing file unless ``force``), readable like any file the user creates
(mode ``0o666 & ~umask``).

>>> with claim("runs/a") as out:          # doctest: +SKIP
...     out.write_text("notes.txt", "hello\\n")
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

try:
    import fcntl as _fcntl
except ImportError:  # Windows: the O_EXCL lock file
    _fcntl = None

__all__ = ["claim", "Claim", "OutDirError", "Unusable", "NotEmpty", "Busy", "LOCK_NAME",
           "TEMP_PREFIX", "RUN_FILES", "CHECKPOINT"]

LOCK_NAME = ".signsim.lock"
TEMP_PREFIX = ".signsim-"
RUN_FILES = ("result.npz", "config.json", "summary.json")  # what `signsim run` writes
CHECKPOINT = "checkpoint.npz"  # `signsim run --checkpoint-every K` / `--resume`


class OutDirError(Exception):
    """An output folder that cannot be claimed."""

    def __init__(self, path, message: str):
        super().__init__(message)
        self.path = Path(path)


class Unusable(OutDirError):
    """Not a directory, not creatable, not writable or not lockable: change the argument."""


class NotEmpty(Unusable):
    """The folder holds results (``entries``) and ``force`` was not given."""

    def __init__(self, path, message: str, entries: Iterable[str] = ()):
        super().__init__(path, message)
        self.entries = tuple(entries)


class Busy(OutDirError):
    """Another live process holds the folder's lock (``pid`` if known)."""

    def __init__(self, path, pid: int | None):
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(path, f"{path} is being written by {who}; wait for it or choose "
                         "another --out")
        self.pid = pid


def _file_mode() -> int:
    """0o666 & ~umask: the mode ``open(..., "w")`` gives a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _parse_pid(data: bytes) -> int | None:
    try:
        return int(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


class _Flock:
    """``fcntl.flock`` on DIR/.signsim.lock; the kernel drops it when the holder dies, so a
    lock file left by a killed writer is simply locked again."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_NAME
        self.fd = None
        for _ in range(100):  # retried only when the file was replaced under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            except OSError as exc:
                held = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
                pid = _parse_pid(os.pread(fd, 32, 0)) if held else None
                os.close(fd)
                if held:
                    raise Busy(directory, pid) from None
                raise
            try:  # the holder before us may have unlinked the file while we opened it
                same = os.path.samestat(os.stat(self.path), os.fstat(fd))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self.fd = fd
                return
            os.close(fd)
        raise Busy(directory, None)

    def release(self) -> None:
        if self.fd is None:
            return
        try:  # unlink while still holding it: a waiter then sees a new file (see above)
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class _ExclLock:
    """Where there is no fcntl: DIR/.signsim.lock created with O_EXCL, holding the pid; a
    lock file whose process is dead is stale and replaced. (Two processes replacing the same
    stale lock at the same instant could both succeed; fcntl has no such window.)"""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_NAME
        self.fd = None
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                try:
                    pid = _parse_pid(self.path.read_bytes()[:32])
                except FileNotFoundError:
                    continue
                if pid is None:  # being written this instant, or garbage: give it a moment
                    try:
                        if time.time() - os.stat(self.path).st_mtime < 10:
                            raise Busy(directory, None)
                    except FileNotFoundError:
                        continue
                elif _pid_alive(pid):
                    raise Busy(directory, pid)
                try:
                    os.unlink(self.path)  # stale: its writer is dead
                except FileNotFoundError:
                    pass
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return
        raise Busy(directory, None)

    def release(self) -> None:
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _leftover(name: str, finals: frozenset) -> bool:
    """A temp file of an earlier (killed) writer: ``.signsim-*`` or ``.NAME.tmp``."""
    return name.startswith(TEMP_PREFIX) or (
        name.startswith(".") and name.endswith(".tmp") and name[1:-4] in finals)


class Claim:
    """An output folder held by this process (made by ``claim``). Use it as a context
    manager, or call ``release()``; files are written with ``write_text``, ``write_bytes``
    or ``write_with``."""

    def __init__(self, path: Path, lock, *, force: bool, created: bool):
        self.path = path
        self.force = force
        self.mode = _file_mode()
        self._lock = lock
        self._created = created

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        """Give the folder up (the lock file goes); a folder this claim created and left
        empty is removed."""
        if self._lock is None:
            return
        lock, self._lock = self._lock, None
        empty = False
        if self._created:
            try:
                empty = all(name == LOCK_NAME for name in os.listdir(self.path))
            except OSError:
                pass
        lock.release()
        if empty:
            try:
                os.rmdir(self.path)
            except OSError:
                pass

    def write_text(self, name: str, text: str) -> Path:
        """Write ``DIR/name`` atomically (UTF-8); see ``write_with``."""
        return self.write_with(name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_bytes(self, name: str, data: bytes) -> Path:
        return self.write_with(name, lambda tmp: tmp.write_bytes(data))

    def write_with(self, name: str, write: Callable[[Path], object]) -> Path:
        """``write(tmp)`` writes a temp file in the folder (its name ends like ``name``,
        e.g. ``.npz``, and it may be replaced by ``write``); it then gets the mode of a new
        file (``0o666 & ~umask``) and becomes ``DIR/name`` in one rename. An existing
        ``DIR/name`` is never replaced unless the claim was made with ``force``: then
        ``FileExistsError``. On any failure (or Ctrl-C) the temp file is removed."""
        if self._lock is None:
            raise RuntimeError(f"the claim on {self.path} was released")
        if not name or name in (".", "..") or os.path.basename(name) != name or "/" in name:
            raise ValueError(f"a file name inside {self.path} expected, got {name!r}")
        dest = self.path / name
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=TEMP_PREFIX, suffix="-" + name)
        os.close(fd)
        try:
            write(Path(tmp))
            os.chmod(tmp, self.mode)
            _fsync(tmp)
            self._install(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(self.path)
        return dest

    def _install(self, tmp: str, dest: Path) -> None:
        if self.force:
            os.replace(tmp, dest)
            return
        try:
            os.link(tmp, dest)  # atomic and never replaces
        except FileExistsError:
            raise FileExistsError(f"{dest} appeared while this process held {self.path}; "
                                  "kept it (pass --force to replace it)") from None
        except OSError:  # no hard links on this file system
            if os.path.lexists(dest):
                raise FileExistsError(f"{dest} exists; pass --force to replace it") from None
            os.replace(tmp, dest)
            return
        os.unlink(tmp)


def _fsync(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    _fsync(path)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def claim(path, *, force: bool = False, names: Iterable[str] | None = None) -> Claim:
    """Claim the output folder ``path`` for this process, before any compute.

    Parameters
    ----------
    path : str or Path
        The folder; created (with its parents) if missing.
    force : bool
        Write into a folder that holds results, replacing files of the same names.
    names : iterable of str, optional
        The files this writer will make. Without it the folder must hold no visible
        entry; with it, none of these names (``signsim figure`` writes beside other files).

    Returns
    -------
    Claim
        Holds the lock until released (a context manager).

    Raises
    ------
    Busy
        Another live process holds the folder (the message names its pid).
    NotEmpty
        Results are there and ``force`` is not given.
    Unusable
        ``path`` is a file, cannot be created, is not writable or cannot be locked.
    """
    path = Path(path)
    names = tuple(names) if names is not None else None
    finals = frozenset(RUN_FILES + (CHECKPOINT,) + (names or ()))
    try:
        existed = path.is_dir()
        if not existed and path.is_symlink() and not path.exists():
            raise Unusable(path, f"--out {path} is a symbolic link to nothing")
        if not existed and path.exists():
            raise Unusable(path, f"--out {path} is a file, not a directory")
        path.mkdir(parents=True, exist_ok=True)
    except OutDirError:
        raise
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileExistsError) or (path.exists() and not path.is_dir()):
            raise Unusable(path, f"--out {path} is a file, not a directory") from None
        raise Unusable(path, f"--out {path} cannot be created: {_reason(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=TEMP_PREFIX + "probe-")
        try:
            os.write(fd, b"signsim")
        finally:
            os.close(fd)
            try:
                os.unlink(probe)
            except FileNotFoundError:  # a holder cleaning its folder took it already
                pass
    except OSError as exc:
        _remove_if_created(path, existed)
        raise Unusable(path, f"--out {path} is not writable: {_reason(exc)}") from None
    try:
        lock = (_Flock if _fcntl is not None else _ExclLock)(path)
    except Busy:
        raise
    except OSError as exc:
        _remove_if_created(path, existed)
        raise Unusable(path, f"--out {path} cannot be locked ({LOCK_NAME}): "
                       f"{_reason(exc)}") from None
    held = Claim(path, lock, force=force, created=not existed)
    try:
        entries = sorted(os.listdir(path))
        for name in entries:  # we hold the lock: these writers are gone
            if _leftover(name, finals):
                _remove(path / name)
        if not force:
            if names is None:
                taken = [n for n in entries if not n.startswith(".")]
                what = f"--out {path} is not empty ({_some(taken)}); pass --force to write into it"
            else:
                taken = [n for n in names if os.path.lexists(path / n)]
                what = (f"{', '.join(str(path / n) for n in taken)} exist(s); pass --force to "
                        "replace")
            if taken:
                raise NotEmpty(path, what, taken)
    except BaseException:
        held.release()
        raise
    return held


def _some(names: list, k: int = 3) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass


def _remove_if_created(path: Path, existed: bool) -> None:
    if not existed:
        try:
            os.rmdir(path)
        except OSError:
            pass
