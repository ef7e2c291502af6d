"""A sweep's folder: its definition, one file per finished task, one per failed job.

::

    DIR/sweep.json             what the sweep is: format, base Config, grid, seeds, record,
                               signsim version
    DIR/runs/TASK.npz          a finished task (numpy.savez, no pickle), written atomically:
                               format "signsim-sweep-task-1"; configs (str: a JSON list of
                               its jobs' Configs); seconds (float64 ()); steps, test_steps
                               (int64); history.NAME (float64 (jobs, T, ...))
    DIR/errors/JOB.json        a job that failed: its Config and the error

Every file appears under its final name complete or not at all (``result._write_atomic``),
so a sweep killed at any moment leaves only whole files: re-running it reads them and
computes only the jobs no file holds. Shards of one sweep may write into one folder at once
(each task has its own file; the same task written twice is the same bits, and the second
writer keeps the first file). A folder that holds another sweep is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import SignsimFileError
from ..result import _write_atomic
from ..tracker import DIMS, TEST_NAMES
from .work import Outcome

__all__ = ["Store", "FORMAT", "TASK_FORMAT"]

FORMAT = "signsim-sweep-1"
TASK_FORMAT = "signsim-sweep-task-1"


class Store:
    """The folder ``root`` of the sweep ``definition`` (a JSON-ready dict)."""

    def __init__(self, root, definition: dict, *, create: bool = True):
        self.root = Path(root)
        self.definition = {"format": FORMAT, **definition}
        if not create:  # reading a sweep that is there (``load``): touch nothing
            return
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"The 'out' parameter must be a folder. {self.root} is a file.")
        _refuse_foreign(self.root)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        (self.root / "errors").mkdir(exist_ok=True)
        self._claim()

    def _claim(self) -> None:
        """Write sweep.json, or check that the one there describes this sweep."""
        path = self.root / "sweep.json"
        text = json.dumps(self.definition, indent=1, sort_keys=True) + "\n"
        if not path.exists():
            try:
                write_atomic_text(path, text)
                return
            except FileExistsError:  # another shard wrote it first: compare below
                pass
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SignsimFileError(path, f"not a readable sweep definition ({exc})") from None
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise SignsimFileError(path, f"not a sweep definition (expected format {FORMAT!r})")
        if found != json.loads(text):
            raise ValueError(f"{self.root} holds another sweep (its sweep.json differs from "
                             "this one's base config, grid, seeds, record or signsim "
                             "version): give a new 'out' folder, or the same arguments to "
                             "resume that sweep.")

    # ------------------------------------------------------------ writing

    def write(self, outcome: Outcome, configs: dict) -> None:
        """Keep a task's outcome: its finished jobs in one file, each error in its own (and
        the error file of a job that now finished, after ``retry_failed``, removed)."""
        for key, error in outcome.errors.items():
            text = json.dumps({"config": configs[key].to_dict(), "error": error},
                              indent=1, sort_keys=True) + "\n"
            _write_new(lambda: write_atomic_text(self.root / "errors" / f"{key}.json", text))
        if not outcome.keys:
            return
        arrays = {"format": np.array(TASK_FORMAT),
                  "configs": np.array(json.dumps([configs[k].to_dict() for k in outcome.keys])),
                  "seconds": np.array(float(outcome.seconds)),
                  "steps": np.asarray(outcome.steps, np.int64),
                  "test_steps": np.asarray(outcome.test_steps, np.int64)}
        arrays.update({f"history.{n}": np.asarray(a, np.float64)
                       for n, a in outcome.history.items()})
        name = hashlib.sha256("".join(outcome.keys).encode()).hexdigest()[:24]
        _write_new(lambda: _write_atomic(self.root / "runs" / f"{name}.npz", arrays, False))
        for key in outcome.keys:  # a run that failed before and finished now
            (self.root / "errors" / f"{key}.json").unlink(missing_ok=True)

    # ------------------------------------------------------------ reading

    def finished(self) -> list:
        """Every task file, read and checked: (path, configs, Outcome) each."""
        out = []
        for path in sorted((self.root / "runs").glob("*.npz")):
            out.append(read_task(path))
        return out

    def failed(self) -> dict:
        """job key -> (Config, error) of every error file."""
        out = {}
        for path in sorted((self.root / "errors").glob("*.json")):
            try:
                data = json.loads(path.read_text())
                out[path.stem] = (Config.from_dict(data["config"]), str(data["error"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise SignsimFileError(path, f"not a readable sweep error record ({exc})") \
                    from None
        return out


def _refuse_foreign(root: Path) -> None:
    """A folder with visible entries and no sweep.json holds something else: refuse it, so
    that nothing a user saved there is mixed with or replaced by a sweep."""
    if not root.is_dir() or (root / "sweep.json").exists():
        return
    entries = sorted(e.name for e in root.iterdir() if not e.name.startswith("."))
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"The 'out' folder {root} holds files that are not a sweep "
                         f"({shown}): give an empty or new folder, or one a sweep wrote.")


def read_task(path: Path):
    """One task file: (path, configs, Outcome), every member checked (no pickle)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        why = str(exc).split(". ")[0]  # not numpy's advice to load it unsafely
        raise SignsimFileError(path, f"not a readable sweep task file ({why}); delete it and "
                                     "run the sweep again to recompute its runs") from None
    if str(arrays.get("format", "")) != TASK_FORMAT:
        raise SignsimFileError(path, f"not a signsim sweep task file (format "
                                     f"{arrays.get('format')!r}, expected {TASK_FORMAT!r})")
    try:
        configs = [Config.from_dict(c) for c in json.loads(str(arrays["configs"]))]
    except (KeyError, ValueError, TypeError) as exc:
        raise SignsimFileError(path, f"its configs are not valid ({exc})") from None
    history = _checked_history(path, arrays, len(configs))
    keys = tuple(_key(c) for c in configs)
    outcome = Outcome(keys, arrays["steps"], arrays["test_steps"], history, {},
                      float(arrays["seconds"]))
    return path, configs, outcome


def _checked_history(path: Path, arrays: dict, jobs: int) -> dict:
    expected = {"format", "configs", "seconds", "steps", "test_steps"}
    missing = sorted(expected - set(arrays))
    if missing:
        raise SignsimFileError(path, f"members {missing} are missing")
    history = {}
    for member, a in arrays.items():
        if member in expected:
            continue
        name = member.removeprefix("history.")
        if not member.startswith("history.") or name not in DIMS:
            raise SignsimFileError(path, f"unknown member {member!r}")
        T = len(arrays["test_steps"] if name in TEST_NAMES else arrays["steps"])
        if a.dtype != np.float64 or a.ndim != 2 + len(DIMS[name]) or a.shape[:2] != (jobs, T):
            raise SignsimFileError(path, f"{member} has dtype {a.dtype} and shape {a.shape}; "
                                         f"expected float64 ({jobs}, {T}, ...)")
        history[name] = a
    return history


def _key(config: Config) -> str:
    from .plan import job_key

    return job_key(config)


def _write_new(write) -> None:
    """Run ``write``; a file of that name already there (another shard, a resume) holds
    the same bits, so it is kept."""
    try:
        write()
    except FileExistsError:
        pass


def write_atomic_text(path: Path, text: str, *, replace: bool = False) -> None:
    """``text`` to ``path`` atomically: flushed to a temporary file beside it, then given
    the name in one step; an existing file is replaced only with ``replace`` (else
    FileExistsError, and the file is left as it was)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
