"""The recorded quantities (spec section 6): their names and labelled axes, the step schedule
they are recorded on, the storage a run writes them into, and the History it returns.

The names are part of the API. Training quantities are recorded at ``schedule(steps,
record_every)``, test metrics at ``schedule(steps, test_every)``; "step t" means the weights
W^(t) after t updates, step 0 being the initialisation.

``DIMS`` is the one table of every name's axes: a history array has the axes
``("replica",)`` (a batch only), then ``"step"`` (``"test_step"`` for the test metrics),
then ``DIMS[name]``. docs/usage.md, ``Result.to_xarray`` and ``Result.to_frame`` read it.

On real data (``Config.data`` "digits" or "mnist", spec section 10) the names and shapes
stay; mu is the data set's ``mu``, the label-signed mean signal token (1/n) sum_i y_i x_i
of the training images (spec section 6's mu on the synthetic data, where x_i = y_i mu), so
the signal records are the averages over samples of each sample's own signal token's
projection, signed by its label; xi_i is sample i's noise token; the attention roles are
the image token (1) and the noise token (2). docs/real-data.md has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["TRAIN_NAMES", "TEST_NAMES", "SUMMARY", "DIMS", "COORDS", "dim_sizes", "shapes",
           "dims_of", "select", "schedule", "progress_every", "Recorder", "History", "Derived"]

# name: the axes of one record (spec section 6)
DIMS: dict[str, tuple[str, ...]] = {
    "query_signal": ("neuron",),  # <w_{Q,s}, mu>
    "key_signal": ("neuron",),  # <w_{K,s}, mu>
    "query_noise": ("neuron", "sample"),  # <w_{Q,s}, y_i xi_i>
    "key_noise": ("neuron", "sample"),  # <w_{K,s}, y_i xi_i>
    "value_signal": ("head", "value_neuron"),  # <w_{V,j,r}, mu>, j = +1 first
    "value_noise": ("head", "value_neuron", "sample"),  # <w_{V,j,r}, y_i xi_i>
    "mean_value_signal": (),  # <v, mu>
    "mean_value_noise": ("sample",),  # <v, y_i xi_i>
    "attention": ("sample", "query_role", "key_role"),  # [[s11, s12], [s21, s22]]
    "log_attention": ("sample", "query_role", "key_role"),  # log of attention, never -inf
    "margin": ("sample",),  # y_i f(W, X_i)
    "loss_derivative": ("sample",),  # l'_i
    "train_loss": (), "train_error": (), "test_loss": (), "test_error": (),
    "log_train_loss": (),  # log train_loss, from the margins: finite where the loss underflows
}
TEST_NAMES = ("test_loss", "test_error")
TRAIN_NAMES = tuple(name for name in DIMS if name not in TEST_NAMES)
SUMMARY = ("train_loss", "train_error", "test_loss", "test_error")  # record="summary"
# labels of the axes that have them (the others are numbered from 0)
COORDS = {"head": [1, -1], "query_role": ["signal", "noise"], "key_role": ["signal", "noise"]}


def dim_sizes(config) -> dict[str, int]:
    """The length of each record axis under ``config``."""
    return {"neuron": config.m_k, "value_neuron": config.m_v, "sample": config.n, "head": 2,
            "query_role": 2, "key_role": 2}


def shapes(config) -> dict[str, tuple[int, ...]]:
    """Shape of one record of each quantity (spec section 6)."""
    size = dim_sizes(config)
    return {name: tuple(size[d] for d in dims) for name, dims in DIMS.items()}


def dims_of(name: str, batched: bool = False) -> tuple[str, ...]:
    """The axes of a history array: [replica,] step (or test_step), then the record's."""
    time = "test_step" if name in TEST_NAMES else "step"
    return (("replica",) if batched else ()) + (time,) + DIMS[name]


def select(record) -> tuple[str, ...]:
    """The names a ``record=`` argument asks for, in table order: None (everything),
    ``"summary"`` (train and test loss and error), or a sequence of names."""
    if record is None:
        return tuple(DIMS)
    if isinstance(record, str):
        if record == "summary":
            return SUMMARY
        record = [record]
    try:
        asked = list(record)
    except TypeError:
        asked = None
    unknown = None if asked is None else [x for x in asked if x not in DIMS]
    if asked is None or unknown or not asked:
        raise ValueError(f"The 'record' parameter must be None, 'summary' or a non-empty list "
                         f"of names from {list(DIMS)}. Got {record!r} instead.")
    return tuple(name for name in DIMS if name in asked)


def schedule(steps: int, every: int) -> np.ndarray:
    """Steps 0, every, 2*every, ... and always the last step."""
    out = np.arange(0, steps + 1, every)
    if out[-1] != steps:
        out = np.append(out, steps)
    return out


def progress_every(steps: int) -> int:
    """A progress callback is called every this many steps (about 100 calls per run)."""
    return max(1, steps // 100)


class Recorder:
    """Preallocated storage of a batch of R replicas, written one record at a time.

    ``storage`` maps each stored name to the shape of one record of one replica (a kernel
    may store a compact form under a name of its own). Arrays are kept step-major,
    (T, R, ...), so that each record is one contiguous write, and filled with NaN up front:
    a row a run failed to write shows as NaN, and touching the memory in one pass is much
    cheaper than page-faulting it between steps (docs/performance.md)."""

    def __init__(self, steps: np.ndarray, test_steps: np.ndarray, storage: dict, R: int):
        self.steps, self.test_steps = steps, test_steps
        self._store = {}
        for name, shape in storage.items():
            T = len(test_steps if name in TEST_NAMES else steps)
            self._store[name] = np.full((T, R) + tuple(shape), np.nan)
        self._train = [name for name in self._store if name not in TEST_NAMES]

    def row(self, row: int) -> dict:
        """Writable views of record ``row`` of every stored training name, (R, ...) each."""
        return {name: self._store[name][row] for name in self._train}

    def record_test(self, row: int, loss, error) -> None:
        self._store["test_loss"][row] = loss
        self._store["test_error"][row] = error

    def arrays(self) -> dict:
        """name -> ndarray of shape (R, T, ...) (views of the storage)."""
        return {k: np.swapaxes(v, 0, 1) for k, v in self._store.items()}

    def rows_of_steps(self) -> tuple[dict, dict]:
        """step -> record row, and step -> test row, of what is stored."""
        train = {int(t): k for k, t in enumerate(self.steps)} if self._train else {}
        test = ({int(t): k for k, t in enumerate(self.test_steps)}
                if "test_loss" in self._store else {})
        return train, test

    def first_nonfinite(self, after: int, upto: int, skip=()):
        """(step, name) of the first record at a step in (after, upto] (or [0, upto] when
        ``after`` is 0) holding a NaN or inf, else None; names in ``skip`` are not read
        (a kernel fills them after the loop)."""
        found = []
        for name, store in self._store.items():
            if name in skip:
                continue
            steps = self.test_steps if name in TEST_NAMES else self.steps
            lo = 0 if after == 0 else int(np.searchsorted(steps, after, side="right"))
            hi = int(np.searchsorted(steps, upto, side="right"))
            if hi <= lo:
                continue
            ok = np.isfinite(store[lo:hi].reshape(hi - lo, -1)).all(axis=1)
            if not ok.all():
                found.append((int(steps[lo + np.argmin(ok)]), name))
        order = list(self._store)
        return min(found, key=lambda x: (x[0], order.index(x[1]))) if found else None

    def until(self, step: int) -> "Recorder":
        """The records of the steps up to ``step`` (views)."""
        part = Recorder.__new__(Recorder)
        part.steps, part.test_steps = self.steps[self.steps <= step], self.test_steps[
            self.test_steps <= step]
        part._store = {k: v[:len(part.test_steps if k in TEST_NAMES else part.steps)]
                       for k, v in self._store.items()}
        part._train = self._train
        return part

    def before(self, step: int) -> dict:
        """name -> the stored rows of the steps before ``step`` (T', R, ...), for a
        checkpoint."""
        return {k: v[:int(np.searchsorted(self.test_steps if k in TEST_NAMES else self.steps,
                                          step))] for k, v in self._store.items()}

    def restore(self, rows: dict, step: int) -> None:
        """Write rows saved by ``before(step)`` back (a resumed run); refuse rows that do
        not fit (ValueError)."""
        want = self.before(step)
        if set(rows) != set(want):
            raise ValueError(f"records {sorted(rows)} where {sorted(want)} are stored")
        for name, values in rows.items():
            if values.shape != want[name].shape or values.dtype != want[name].dtype:
                raise ValueError(f"records of {name!r} are {values.dtype} {values.shape}, "
                                 f"{want[name].dtype} {want[name].shape} expected")
            self._store[name][:len(values)] = values


class Derived(NamedTuple):
    """A history entry built on first access as ``fn(*args)``; every arg has a leading
    replica axis, and ``fn`` works elementwise over it (so a replica's slice of the result
    is ``fn`` of the args' slices, bit for bit). ``fn`` is a module-level function, so that
    a History can be pickled."""

    fn: Callable
    args: tuple


class History(Mapping):
    """name -> ndarray, like a read-only dict; an entry given as ``Derived`` is built on
    first access and then kept (``Result.save`` builds every entry).

    Every array has a leading replica axis when ``batched``. Safe to read from several
    threads (an entry built twice at once is built to the same bits, and one is kept)."""

    def __init__(self, arrays: dict, derived: dict | None = None, batched: bool = False):
        self._arrays = dict(arrays)
        self._derived = dict(derived or {})
        self.batched = batched
        self._names = [n for n in DIMS if n in self._arrays or n in self._derived]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays and name in self._derived:
            d = self._derived[name]
            self._arrays.setdefault(name, d.fn(*d.args))
        return self._arrays[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        built = {n: self._arrays[n].shape for n in self._names if n in self._arrays}
        unbuilt = sorted(n for n in self._derived if n not in self._arrays)
        return f"History({built}, built on access: {unbuilt})"

    def replica(self, r: int) -> "History":
        """Replica r of a batched history, as the history of a single run."""
        arrays = {k: v[r] for k, v in self._arrays.items()}
        derived = {k: Derived(d.fn, tuple(a[r:r + 1] for a in d.args))
                   for k, d in self._derived.items() if k not in self._arrays}
        single = {k: Derived(_first, (d,)) for k, d in derived.items()}
        return History(arrays, single, batched=False)

    @classmethod
    def concat(cls, parts: list) -> "History":
        """Batched histories of the same run shape, one after the other along the replicas."""
        arrays, derived, joined = {}, {}, {}
        for name in parts[0]:
            lazy = [p._derived.get(name) for p in parts]
            if all(d is not None and name not in p._arrays for d, p in zip(lazy, parts)):
                args = tuple(_joined(a, joined) for a in zip(*(d.args for d in lazy)))
                derived[name] = Derived(lazy[0].fn, args)
            else:
                arrays[name] = np.concatenate([p[name] for p in parts])
        return cls(arrays, derived, batched=True)


def _joined(arrays: tuple, done: dict) -> np.ndarray:
    """np.concatenate(arrays), once for arrays that several Derived entries share (the
    fast kernel's compact records feed three entries each)."""
    key = tuple(id(a) for a in arrays)
    if key not in done:
        done[key] = (arrays, np.concatenate(arrays))  # keep the parts alive: ids stay theirs
    return done[key][1]


def _first(d: Derived) -> np.ndarray:
    """The only replica of a one-replica Derived entry."""
    return d.fn(*d.args)[0]
