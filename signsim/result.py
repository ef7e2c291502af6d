"""The Result of a run or of a batch of replicas, its labelled views, and its exact round
trip through one .npz file (no pickle): ``Result.save`` writes it atomically, ``load``
reads it back after ``signsim.files`` has checked every member."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .files import arrays_of, read
from .tracker import COORDS, DIMS, TEST_NAMES, History, dims_of

__all__ = ["Result", "load"]


@dataclass(frozen=True, eq=False)
class Result:
    """What ``run`` returns: one run, or a batch of replicas (``batched``).

    Attributes
    ----------
    configs : tuple of Config
        The Config each replica ran (one for a single run).
    steps : ndarray of shape (T,)
        Recorded steps; step 0 is the initialisation.
    test_steps : ndarray of shape (T_test,)
        Steps at which test_loss and test_error were recorded.
    history : History
        name -> ndarray, read like a dict; the axes of each name are
        ``tracker.dims_of(name, batched)``: the replica axis first in a batch, then the
        steps (``test_steps`` for test_loss, test_error), then ``tracker.DIMS[name]``.
    params, init_params : Params or SparseParams
        Final and initial weights; both expose ``W_Q`` (m_k, d), ``W_K`` (m_k, d),
        ``W_V`` (2, m_v, d) (index 0 is j = +1) and ``to_dense()``.
    dataset, test_dataset : Dataset (a list of them, one per replica, in a batch)
    batched : bool
    vary : tuple of str
        The Config fields a batch varied per replica (``run(..., vary=...)``).
    """

    configs: tuple
    steps: np.ndarray
    test_steps: np.ndarray
    history: History
    params: object
    init_params: object
    dataset: object
    test_dataset: object
    batched: bool = True
    vary: tuple = ()

    @property
    def config(self) -> Config:
        """The Config of a single run; of a batch, replica 0's (``configs`` has each)."""
        return self.configs[0]

    @property
    def replicas(self) -> int | None:
        return len(self.configs) if self.batched else None

    @property
    def seeds(self) -> tuple | None:
        """The replica seeds of a batch, None for a single run."""
        return tuple(c.seed for c in self.configs) if self.batched else None

    @property
    def varied(self) -> dict:
        """Per-replica values of the fields a batch varied, else empty."""
        return {k: np.array([getattr(c, k) for c in self.configs]) for k in self.vary}

    def replica(self, r: int) -> "Result":
        """Replica r of a batch as a single-run Result: bit for bit the Result of
        ``run(result.configs[r])``."""
        if not self.batched:
            raise ValueError("Result.replica needs a batch (run with 'seeds' or 'vary'); "
                             "this is a single run.")
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not (
                -len(self.configs) <= r < len(self.configs)):
            raise IndexError(f"The 'r' parameter must be an int in [0, {len(self.configs)}). "
                             f"Got {r!r} instead.")
        r = int(r) % len(self.configs)
        return Result(configs=(self.configs[r],), steps=self.steps, test_steps=self.test_steps,
                      history=self.history.replica(r), params=self.params.replica(r),
                      init_params=self.init_params.replica(r), dataset=self.dataset[r],
                      test_dataset=self.test_dataset[r], batched=False)

    @classmethod
    def concat(cls, parts: list) -> "Result":
        """Batches of the same run shape (same steps and names), one after the other."""
        from .sparse import SparseParams

        first = parts[0]
        return cls(configs=tuple(c for p in parts for c in p.configs), steps=first.steps,
                   test_steps=first.test_steps, history=History.concat([p.history for p in parts]),
                   params=SparseParams.concat([p.params for p in parts]),
                   init_params=SparseParams.concat([p.init_params for p in parts]),
                   dataset=[x for p in parts for x in p.dataset],
                   test_dataset=[x for p in parts for x in p.test_dataset], vary=first.vary)

    # ------------------------------------------------------------ labelled views

    def to_xarray(self):
        """The history as an ``xarray.Dataset``: one variable per recorded name with its
        named axes (``tracker.DIMS``), the real step numbers as the ``step`` coordinate and
        the test steps as ``test_step``; in a batch a ``replica`` axis with the seeds (and
        the varied fields) as coordinates along it. Needs xarray (``signsim[labels]``)."""
        xr = _optional("xarray")
        data = {name: (dims_of(name, self.batched), np.asarray(self.history[name]))
                for name in self.history}
        used = {d for dims, _ in data.values() for d in dims}
        coords = {"step": self.steps, "test_step": self.test_steps}
        coords.update({k: v for k, v in COORDS.items() if k in used})
        if self.batched:
            coords["replica"] = np.arange(len(self.configs))
            coords["seed"] = ("replica", np.array(self.seeds))
            coords.update({k: ("replica", v) for k, v in self.varied.items()})
        coords = {k: v for k, v in coords.items() if k in used or k in ("seed",) + self.vary}
        return xr.Dataset(data, coords=coords, attrs={"config": self.config.to_json()})

    def to_frame(self):
        """The scalar series (train and test loss and error) as a ``pandas.DataFrame``
        indexed by step (by replica and step in a batch); a test metric is NaN at a step
        where it was not recorded, a training one likewise. Needs pandas
        (``signsim[labels]``)."""
        pd = _optional("pandas")
        names = [n for n in self.history if DIMS[n] == ()]
        steps = np.union1d(self.steps, self.test_steps)
        R = len(self.configs) if self.batched else 1
        columns = {}
        for name in names:
            own = self.test_steps if name in TEST_NAMES else self.steps
            values = np.full((R, len(steps)), np.nan)
            values[:, np.searchsorted(steps, own)] = np.asarray(self.history[name]).reshape(R, -1)
            columns[name] = values.ravel()
        if self.batched:
            index = pd.MultiIndex.from_product([range(R), steps], names=["replica", "step"])
        else:
            index = pd.Index(steps, name="step")
        return pd.DataFrame(columns, index=index)

    # ------------------------------------------------------------ files

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the whole result to one .npz file, atomically (``signsim.files`` lists
        its members; no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            The file; ``.npz`` is added if missing. Its folder is created if needed.
        overwrite : bool
            Replace an existing file; without it an existing file is never touched.

        Returns
        -------
        Path
            The path written.

        Raises
        ------
        FileExistsError
            If the file exists and ``overwrite`` is False.

        Notes
        -----
        The arrays go to a temporary file beside the target,
        ``.signsim-NAME.HOST.PID.TOKEN.tmp``, which is flushed to disk and then given the
        final name in one step: the file under the final name is always complete. Without
        ``overwrite`` that step is a hard link, which fails if a file of that name appeared
        meanwhile (where the file system has no hard links: a check, then a rename). The
        file gets the permissions of an ordinary new file (0666 less the umask). On any
        exception, Ctrl-C included, the temporary file is removed; one left by a killed
        writer (SIGKILL, power loss) never has the final name, so it is harmless, and the
        next save of the same target on the same host removes it once process PID is no
        longer alive.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, arrays_of(self), overwrite)
        return path


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"This needs {module}, an optional extra: "
                          "python -m pip install 'signsim[labels]'") from None


def load(path) -> Result:
    """Read a Result written by ``Result.save``, every member checked before it is trusted.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``Result.save`` (files of the first format,
        ``"signsim-result-1"``, are read too).

    Returns
    -------
    Result

    Raises
    ------
    SignsimFileError
        A ValueError naming the file and its problem, whatever is wrong with its content:
        not a zip archive, truncated or damaged, not a signsim result, a member missing or
        unknown, of the wrong dtype or of a shape the stored configs do not imply (a
        header's claimed size is checked before any array is read), a config that lacks
        fields, is invalid or contradicts the arrays, or a pickled object.
    FileNotFoundError
        If there is no file at ``path``; other errors of opening it (a folder, no
        permission) are likewise the OSError ``open`` raises.
    """
    return Result(**read(path))


def _write_atomic(path: Path, arrays: dict, overwrite: bool) -> None:
    """Write ``arrays`` to a temporary file beside ``path``, then give it the final name."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    _remove_stale_temps(path, host)
    tmp = path.with_name(f".signsim-{path.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # the new name itself to disk, too
        with contextlib.suppress(OSError):
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _link_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless ``path`` exists, atomically where the file
    system has hard links (a file created meanwhile by another writer is never replaced)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.") from None
    except OSError:  # no hard links on this file system: check, then rename
        if path.exists():
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.") from None
        os.replace(tmp, path)
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _remove_stale_temps(path: Path, host: str) -> None:
    """Remove the temporary files of ``path`` left on this host by writers no longer alive
    (not on Windows, where there is no harmless way to probe a pid)."""
    if os.name == "nt":
        return
    prefix = f".signsim-{path.name}.{host}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        parts = name[len(prefix):].split(".") if name.startswith(prefix) else []
        if (len(parts) == 3 and parts[2] == "tmp" and parts[0].isascii() and parts[0].isdigit()
                and not _alive(int(parts[0]))):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may be alive (True when unsure)."""
    if pid <= 0 or pid == os.getpid():
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True
