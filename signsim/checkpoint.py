"""Checkpoints: a run's State and its records so far in one .npz file, written atomically,
and ``resume`` to continue from one.

A checkpoint holds the replicas' Configs, what is recorded, the kernel's State at step t
(``step``, ``params`` and ``opt_state``, the NamedTuples flattened to arrays by field path)
and every record of the steps before t. The kernel rebuilds everything else (data, init,
test set) from the Configs, bit for bit, and the forward pass from the params; the loop
records step t again. So a resumed run is bit-identical to an uninterrupted one, wherever
it was stopped: a SIGKILL at any moment leaves the previous checkpoint whole (the new one is
written to a temporary file and renamed over it), and Ctrl-C writes one of the state it had.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
import numpy as np

from . import budget
from .config import Config
from .errors import SignsimFileError
from .result import _write_atomic  # temporary file, fsync, rename; stale temps removed
from .loop import Hooks, NonFiniteError, Start, drive, recorder_for

__all__ = ["Checkpointer", "resume", "every_of", "FORMAT"]

FORMAT = "signsim-checkpoint-1"


class Checkpointer:
    """The loop's checkpoint hook: writes ``path`` every ``every`` steps (None: only when
    Ctrl-C stops the run) and at the last step."""

    def __init__(self, path, every: int | None, configs: list, names: tuple, vary: tuple,
                 single: bool):
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                                  or every < 1):
            raise ValueError("The 'checkpoint_every' parameter must be a positive int or None. "
                             f"Got {every!r} instead.")
        self.path = Path(path)
        if self.path.suffix != ".npz":
            self.path = self.path.with_name(self.path.name + ".npz")
        self.every, self.steps = every, configs[0].steps
        self.meta = {"configs": [c.to_dict() for c in configs], "names": list(names),
                     "vary": list(vary), "single": single, "every": every,
                     "versions": _versions()}

    def check(self, state) -> None:
        """Refuse, before the run, a state that could not be written (TypeError)."""
        _flatten(state.params, "params", {})
        _flatten(state.opt_state, "opt_state", {})

    def __call__(self, state, recorder, interrupted: bool) -> None:
        t = state.step
        due = self.every is not None and (t % self.every == 0 or t == self.steps) and t > 0
        if interrupted or due:
            self.write(state, recorder)

    def write(self, state, recorder) -> Path:
        arrays = {"format": np.array(FORMAT), "meta": np.array(json.dumps(self.meta)),
                  "step": np.array(state.step)}
        _flatten(state.params, "params", arrays)
        _flatten(state.opt_state, "opt_state", arrays)
        arrays.update({f"records.{k}": v for k, v in recorder.before(state.step).items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path, arrays, overwrite=True)
        return self.path


def resume(path, *, progress=None):
    """Continue the run whose checkpoint is ``path`` (written by ``run(...,
    checkpoint=path)``) and return its Result, bit for bit the one the uninterrupted run
    returns. The run goes on writing checkpoints to ``path`` as it did."""
    from .kernels import make_kernel

    path = Path(path)
    arrays, meta = _read(path)
    try:
        names, vary = tuple(meta["names"]), tuple(meta["vary"])
        raw = list(meta["configs"])
    except (KeyError, TypeError) as exc:
        raise SignsimFileError(path, f"not a checkpoint of a signsim run ({exc})") from None
    try:
        configs = [Config.from_dict(c) for c in raw]
    except (TypeError, ValueError) as exc:  # e.g. an optimizer not registered here
        raise SignsimFileError(path, f"its configuration cannot run here: {exc}") from None
    if meta.get("versions", _versions()) != _versions():
        warnings.warn(f"{path} was written with {meta['versions']} and is resumed with "
                      f"{_versions()}: the resumed run is bit-identical to an uninterrupted "
                      "one only with the same versions.", RuntimeWarning, stacklevel=2)
    budget.check(configs, names)
    kernel = make_kernel(configs, names)
    with np.errstate(**kernel.errstate):
        template = kernel.init()
    try:
        step = int(arrays["step"])
        if not 0 <= step <= configs[0].steps:
            raise ValueError(f"its step {step} is outside the run's [0, {configs[0].steps}]")
        with np.errstate(**kernel.errstate):
            state = kernel.restore(step, _unflatten(template.params, "params", arrays),
                                   _unflatten(template.opt_state, "opt_state", arrays))
        recorder = recorder_for(kernel, configs[0])
        recorder.restore({k[len("records."):]: v for k, v in arrays.items()
                          if k.startswith("records.")}, step)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SignsimFileError(path, f"not a checkpoint of a signsim run ({exc})") from None
    hook = Checkpointer(path, meta["every"], configs, names, vary, meta["single"])
    try:
        result = drive(kernel, configs[0], Hooks(progress=progress, checkpoint=hook),
                       Start(state, recorder))
    except NonFiniteError as error:
        error.result = finish(error.result, meta["single"], vary)
        raise
    return finish(result, meta["single"], vary)


def _versions() -> dict:
    """What the bits of a run depend on besides its Configs."""
    from . import __version__

    return {"signsim": __version__, "numpy": np.__version__}


def every_of(path) -> int | None:
    """The checkpoint_every a checkpoint file was written with (None: only on Ctrl-C)."""
    return _read(Path(path))[1]["every"]


def _read(path: Path) -> tuple[dict, dict]:
    """The arrays and the metadata of a checkpoint file (SignsimFileError if it is none)."""
    import zipfile

    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        if str(arrays.get("format")) != FORMAT:
            raise ValueError(f"not a signsim checkpoint (format {FORMAT!r} expected)")
        return arrays, json.loads(str(arrays["meta"]))
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        text = str(exc) if "checkpoint" in str(exc) else f"not a signsim checkpoint ({exc})"
        if "allow_pickle" in text:
            text = "not a signsim checkpoint (it holds a pickled Python object)"
        raise SignsimFileError(path, text) from None


def finish(result, single: bool, vary: tuple):
    """The Result ``run`` returns: one replica of a single run, or the batch with ``vary``."""
    import dataclasses

    if single:
        return result.replica(0) if result.batched else result
    return dataclasses.replace(result, vary=vary)


def _flatten(tree, prefix: str, out: dict) -> None:
    """Leaves of nested NamedTuples as arrays keyed by field path."""
    if isinstance(tree, np.ndarray):
        out[prefix] = tree
    elif isinstance(tree, (bool, int, float, np.number)):
        out[prefix] = np.asarray(tree)
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for field in tree._fields:
            _flatten(getattr(tree, field), f"{prefix}.{field}", out)
    else:
        raise TypeError(f"A checkpoint holds ndarrays, numbers and NamedTuples of them; "
                        f"{prefix} is a {type(tree).__name__}.")


def _unflatten(template, prefix: str, arrays: dict):
    """The structure of ``template`` with the leaves read back from ``arrays``."""
    if isinstance(template, np.ndarray):
        value = arrays[prefix]
        if value.shape != template.shape or value.dtype != template.dtype:
            raise ValueError(f"{prefix} is {value.dtype} {value.shape}, the run's is "
                             f"{template.dtype} {template.shape}")
        return value
    if isinstance(template, (bool, int, float, np.number)):
        return type(template)(arrays[prefix][()])
    return type(template)(*(_unflatten(getattr(template, f), f"{prefix}.{f}", arrays)
                            for f in template._fields))
