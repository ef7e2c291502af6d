"""The Result of a run or of a batch of replicas, its labelled views, and its exact round
trip through one .npz file (no pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .data import Dataset
from .model import Params
from .tracker import COORDS, DIMS, TEST_NAMES, History, dims_of

__all__ = ["Result", "load"]

_FORMAT = "signsim-result-2"
_FORMAT_1 = "signsim-result-1"  # before the per-replica configs: still read
_DATA_FIELDS = ("y", "signal_position", "noise_index", "noise_value")


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
        """Write the whole result to ``path`` (.npz added if missing); never overwrites an
        existing file unless ``overwrite=True``. Returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        arrays = {"format": np.array(_FORMAT), "steps": self.steps, "test_steps": self.test_steps,
                  "configs": np.array(json.dumps([c.to_dict() for c in self.configs])),
                  "batched": np.array(self.batched), "vary": np.array(json.dumps(self.vary))}
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


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"This needs {module}, an optional extra: "
                          "python -m pip install 'signsim[labels]'") from None


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
    kind = str(arrays.get("format"))
    if kind not in (_FORMAT, _FORMAT_1):
        raise ValueError(f"{path} is not a signsim result (format {_FORMAT!r} expected).")
    configs, batched, vary = _configs_1(arrays) if kind == _FORMAT_1 else (
        tuple(Config.from_dict(c) for c in json.loads(str(arrays["configs"]))),
        bool(arrays["batched"]), tuple(json.loads(str(arrays["vary"]))))
    return Result(
        configs=configs,
        steps=arrays["steps"], test_steps=arrays["test_steps"],
        history=History(_group(arrays, "history"), batched=batched),
        params=_params_from_arrays(_group(arrays, "params")),
        init_params=_params_from_arrays(_group(arrays, "init_params")),
        dataset=_data_from_arrays(_group(arrays, "dataset")),
        test_dataset=_data_from_arrays(_group(arrays, "test_dataset")),
        batched=batched, vary=vary,
    )


def _configs_1(arrays: dict) -> tuple:
    """(configs, batched, vary) of a file of the first format (one config, the seeds and
    the varied values apart)."""
    config = Config.from_json(str(arrays["config"]))
    if "seeds" not in arrays:
        return (config,), False, ()
    varied = _group(arrays, "varied")
    configs = tuple(config.replace(seed=int(seed), **{k: v[r].item() for k, v in varied.items()})
                    for r, seed in enumerate(arrays["seeds"]))
    return configs, True, tuple(varied)
