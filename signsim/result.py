"""The Result of a run, and its exact round trip through one .npz file (no pickle)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config
from .data import Dataset
from .model import Params

__all__ = ["Result", "load"]

_FORMAT = "signsim-result-1"
_DATA_FIELDS = ("y", "signal_position", "noise_index", "noise_value")


@dataclass(frozen=True, eq=False)
class Result:
    """What ``run`` returns.

    Attributes
    ----------
    config : Config
    steps : ndarray of shape (T,)
        Recorded steps; step 0 is the initialisation.
    test_steps : ndarray of shape (T_test,)
        Steps at which test_loss and test_error were recorded.
    history : mapping of str to ndarray (a dict, or a ``tracker.History``)
        Every name of spec section 6; the first axis runs over ``steps`` (over
        ``test_steps`` for test_loss, test_error), after the replica axis of a batched run.
    params, init_params : Params or SparseParams
        Final and initial weights; both expose ``W_Q`` (m_k, d), ``W_K`` (m_k, d) and
        ``W_V`` (2, m_v, d) (index 0 is j = +1).
    dataset, test_dataset : Dataset (or a list of them, one per replica)
    seeds : tuple of int or None
        The replica seeds of a batched run, None for a single run.
    varied : dict of str to ndarray
        Per-replica values of the fields a batch varied (``run(..., vary=...)``), else empty.
    """

    config: Config
    steps: np.ndarray
    test_steps: np.ndarray
    history: dict
    params: object
    init_params: object
    dataset: object
    test_dataset: object
    seeds: tuple | None = None
    varied: dict = field(default_factory=dict)

    @property
    def replicas(self) -> int | None:
        return None if self.seeds is None else len(self.seeds)

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the whole result to ``path`` (.npz added if missing); never overwrites an
        existing file unless ``overwrite=True``. Returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        arrays = {"format": np.array(_FORMAT), "config": np.array(self.config.to_json()),
                  "steps": self.steps, "test_steps": self.test_steps}
        if self.seeds is not None:
            arrays["seeds"] = np.array(self.seeds, dtype=np.int64)
        for name, values in self.varied.items():
            arrays[f"varied.{name}"] = np.asarray(values)
        for name, value in self.history.items():
            arrays[f"history.{name}"] = value
        for prefix, params in (("params", self.params), ("init_params", self.init_params)):
            arrays.update({f"{prefix}.{k}": v for k, v in _params_to_arrays(params).items()})
        for prefix, data in (("dataset", self.dataset), ("test_dataset", self.test_dataset)):
            arrays.update({f"{prefix}.{k}": v for k, v in _data_to_arrays(data).items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signsim-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path


def _params_to_arrays(params) -> dict:
    if isinstance(params, Params):
        return {"kind": np.array("dense"), **params._asdict()}
    return {"kind": np.array("sparse"), **params.to_arrays()}


def _params_from_arrays(a: dict):
    if str(a.pop("kind")) == "dense":
        return Params(**a)
    from .sparse import SparseParams

    return SparseParams.from_arrays(a)


def _data_to_arrays(data) -> dict:
    items = data if isinstance(data, list) else [data]
    out = {"replicas": np.array(len(items) if isinstance(data, list) else -1),
           "d": np.array(items[0].d), "mu_norm": np.array(items[0].mu_norm)}
    for k in _DATA_FIELDS:
        out[k] = np.stack([getattr(x, k) for x in items])
    return out


def _data_from_arrays(a: dict):
    replicas = int(a["replicas"])
    items = [Dataset(**{k: a[k][r] for k in _DATA_FIELDS}, d=int(a["d"]),
                     mu_norm=float(a["mu_norm"])) for r in range(max(replicas, 1))]
    return items if replicas >= 0 else items[0]


def _group(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}


def load(path) -> Result:
    """Read a Result written by ``Result.save`` (arrays only; pickle is never allowed)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if str(arrays.get("format")) != _FORMAT:
        raise ValueError(f"{path} is not a signsim result (format {_FORMAT!r} expected).")
    seeds = tuple(int(s) for s in arrays["seeds"]) if "seeds" in arrays else None
    return Result(
        config=Config.from_json(str(arrays["config"])),
        steps=arrays["steps"], test_steps=arrays["test_steps"],
        history=_group(arrays, "history"),
        params=_params_from_arrays(_group(arrays, "params")),
        init_params=_params_from_arrays(_group(arrays, "init_params")),
        dataset=_data_from_arrays(_group(arrays, "dataset")),
        test_dataset=_data_from_arrays(_group(arrays, "test_dataset")),
        seeds=seeds, varied=_group(arrays, "varied"),
    )
