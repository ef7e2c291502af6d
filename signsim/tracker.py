"""The recorded quantities (spec section 6) and the step schedule they are recorded on.

The names are part of the API. Training quantities are recorded at ``schedule(steps,
record_every)``, test metrics at ``schedule(steps, test_every)``; "step t" means the weights
W^(t) after t updates, step 0 being the initialisation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from .config import Config
from .data import Dataset
from .model import Forward, Params, loss, loss_derivative

__all__ = ["TRAIN_NAMES", "TEST_NAMES", "shapes", "schedule", "Tracker", "History",
           "reference_quantities", "attention_by_role"]

TRAIN_NAMES = ("query_signal", "key_signal", "query_noise", "key_noise", "value_signal",
               "value_noise", "mean_value_signal", "mean_value_noise", "attention", "margin",
               "loss_derivative", "train_loss", "train_error")
TEST_NAMES = ("test_loss", "test_error")


def shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Shape of one record of each quantity (spec section 6)."""
    m_k, m_v, n = config.m_k, config.m_v, config.n
    return {
        "query_signal": (m_k,), "key_signal": (m_k,),
        "query_noise": (m_k, n), "key_noise": (m_k, n),
        "value_signal": (2, m_v), "value_noise": (2, m_v, n),
        "mean_value_signal": (), "mean_value_noise": (n,),
        "attention": (n, 2, 2), "margin": (n,), "loss_derivative": (n,),
        "train_loss": (), "train_error": (), "test_loss": (), "test_error": (),
    }


def schedule(steps: int, every: int) -> np.ndarray:
    """Steps 0, every, 2*every, ... and always the last step."""
    out = np.arange(0, steps + 1, every)
    if out[-1] != steps:
        out = np.append(out, steps)
    return out


def progress_every(steps: int) -> int:
    """A progress callback is called every this many steps (about 100 calls per run)."""
    return max(1, steps // 100)


class History(Mapping):
    """name -> ndarray, like a dict; an entry given as a function is built on first access
    and then kept (``Result.save`` builds every entry)."""

    def __init__(self, arrays: dict, derived: dict | None = None):
        self._arrays = dict(arrays)
        self._derived = dict(derived or {})
        self._names = [n for n in TRAIN_NAMES + TEST_NAMES if n in self._arrays or n in
                       self._derived] + [n for n in self._arrays if n not in TRAIN_NAMES +
                                         TEST_NAMES]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays and name in self._derived:
            self._arrays[name] = self._derived.pop(name)()
        return self._arrays[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        built = {n: self._arrays[n].shape for n in self._names if n in self._arrays}
        return f"History({built}, built on access: {sorted(self._derived)})"


class Tracker:
    """Preallocated history; ``replicas`` adds a leading replica axis to every array.
    ``shape_of`` changes what is stored: a name mapped to a shape is stored with that record
    shape (a kernel's compact form, possibly under a new name), a name mapped to None is not
    stored (the kernel derives it)."""

    def __init__(self, config: Config, replicas: int | None = None,
                 shape_of: dict | None = None, background: bool = False):
        self.steps = schedule(config.steps, config.record_every)
        self.test_steps = schedule(config.steps, config.test_every)
        lead = () if replicas is None else (replicas,)
        shp = {**shapes(config), **(shape_of or {})}
        # stored step-major, (T, [R,] ...), so that each record is one contiguous write.
        # Filled with NaN up front: a row the run failed to write shows as NaN, and touching
        # the memory in one pass is about 10x cheaper than page-faulting it step by step
        # between computations (0.08 s against 0.75-0.97 s for the 700 MB of 100 fig1
        # replicas, scripts/benchmark.py machine). With ``background`` a thread fills the
        # training records in step order while the run goes on; ``row`` waits for it.
        self._store = {}
        for name, shape in shp.items():
            if shape is None:
                continue
            T = len(self.test_steps if name in TEST_NAMES else self.steps)
            full = (T,) + lead + shape
            self._store[name] = (np.empty(full) if background and name not in TEST_NAMES
                                 else np.full(full, np.nan))
        self._batched = bool(lead)
        self._filler = None
        if background:
            self._filler = _Filler([v for name, v in self._store.items()
                                    if name not in TEST_NAMES], len(self.steps))

    @property
    def history(self) -> dict:
        """name -> ndarray of shape ([R,] T, ...)."""
        if not self._batched:
            return dict(self._store)
        return {k: np.swapaxes(v, 0, 1) for k, v in self._store.items()}

    def record(self, row: int, quantities: dict) -> None:
        for name in TRAIN_NAMES:
            self._store[name][row] = quantities[name]

    def row(self, row: int) -> dict:
        """Writable views of one record of everything stored but the test metrics."""
        if self._filler is not None:
            self._filler.wait_for(row)
        return {name: v[row] for name, v in self._store.items() if name not in TEST_NAMES}

    def finish(self) -> None:
        """Wait for the background filling to end (every row is filled then)."""
        if self._filler is not None:
            self._filler.wait_for(len(self.steps) - 1)
            self._filler.thread.join()
            self._filler = None

    def record_test(self, row: int, test_loss, test_error) -> None:
        self._store["test_loss"][row] = test_loss
        self._store["test_error"][row] = test_error


class _Filler:
    """Fills step-major arrays with NaN, ROWS steps at a time, in a thread: the first touch
    of fresh memory is slow on some machines (0.05 s to over 1 s for 430 MB on the
    scripts/benchmark.py machine), and a thread takes it off the run's own path."""

    ROWS = 16

    def __init__(self, arrays: list, T: int):
        self.arrays, self.T, self.done, self.error = arrays, T, 0, None
        self.ready = threading.Condition()
        self.thread = threading.Thread(target=self._fill, name="signsim-history-fill",
                                       daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        try:
            for start in range(0, self.T, self.ROWS):
                for a in self.arrays:
                    a[start:start + self.ROWS].fill(np.nan)
                with self.ready:
                    self.done = min(self.T, start + self.ROWS)
                    self.ready.notify_all()
        except BaseException as e:  # raised in the run's thread by wait_for
            with self.ready:
                self.error, self.done = e, self.T
                self.ready.notify_all()

    def wait_for(self, row: int) -> None:
        if row >= self.done:
            with self.ready:
                self.ready.wait_for(lambda: self.done > row)
        if self.error is not None:
            raise self.error


def attention_by_role(S: np.ndarray, signal_position: np.ndarray) -> np.ndarray:
    """S_{i,la} rearranged by role, [[s11, s12], [s21, s22]] with 1 = signal, 2 = noise."""
    rows = np.arange(len(signal_position))
    roles = np.stack([signal_position, 1 - signal_position], axis=1)  # (n, 2): token of role
    return S[rows[:, None, None], roles[:, :, None], roles[:, None, :]]


def reference_quantities(params: Params, fw: Forward, data: Dataset) -> dict:
    """Every training quantity of spec section 6 from dense weights (the reference)."""
    mu = data.mu
    yxi = data.y[:, None] * data.xi  # (n, d): y_i xi_i
    margin = data.y * fw.f
    return {
        "query_signal": params.W_Q @ mu,
        "key_signal": params.W_K @ mu,
        "query_noise": params.W_Q @ yxi.T,
        "key_noise": params.W_K @ yxi.T,
        "value_signal": params.W_V @ mu,
        "value_noise": params.W_V @ yxi.T,
        "mean_value_signal": fw.v @ mu,
        "mean_value_noise": yxi @ fw.v,
        "attention": attention_by_role(fw.S, data.signal_position),
        "margin": margin,
        "loss_derivative": loss_derivative(margin),
        "train_loss": loss(margin).mean(),
        "train_error": np.mean(margin <= 0),
    }
