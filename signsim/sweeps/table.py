"""``SweepResult``: a sweep's tidy table (one row per cell and seed), its grid as labelled
axes (``to_xarray``), and every run's recorded history."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..config import Config
from ..stages import _USED as STAGE_NAMES
from ..stages import detect_history
from .grid import Grid

__all__ = ["SweepResult", "RunRecord", "METRICS", "BOUNDARIES"]

METRICS = ("train_loss", "test_loss", "train_error", "test_error")  # final values
BOUNDARIES = ("T1", "T2", "T3", "T4")  # stages.detect; NaN when not reached or not recorded


class RunRecord(NamedTuple):
    """What a sweep kept of one run: ``signsim.run(config)`` gives the rest, bit for bit."""

    config: Config
    steps: np.ndarray
    test_steps: np.ndarray
    history: dict  # name -> array (T, ...) (test_steps for test names)


class SweepResult:
    """What ``signsim.sweep`` returns (and ``signsim.sweep.load`` reads back).

    Attributes
    ----------
    base : Config
    grid : Grid
    seeds : tuple of int
    names : tuple of str
        The recorded names.
    configs : list of Config or None
        The Config of each row (None where the cell's values make no valid Config).
    status : ndarray of str, (rows,)
        ``"ok"``, ``"error"`` (the run failed or the cell is invalid: ``errors`` says why),
        or ``"missing"`` (not computed: another shard's, or a sweep still running).
    errors : ndarray of str, (rows,)
        The error of each failed row, else "".
    computed, reused : int
        Runs this call computed, and runs it read from ``out`` (a resumed sweep).
    """

    def __init__(self, base, grid: Grid, seeds, names, rows: list, records: dict,
                 errors: dict, computed: int = 0, reused: int = 0):
        self.base, self.grid, self.seeds, self.names = base, grid, tuple(seeds), tuple(names)
        self._rows = rows  # (cell dict, seed, Config or None, job key or error text)
        self._records = records  # job key -> (RunRecord, seconds per run)
        self.configs = [r[2] for r in rows]
        self.status = np.array([_status(r, records, errors) for r in rows])
        self.errors = np.array([_error(r, records, errors) for r in rows])
        self.computed, self.reused = computed, reused
        self._columns = None

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        counts = {s: int((self.status == s).sum()) for s in ("ok", "error", "missing")}
        return f"SweepResult({len(self)} rows over axes {[a.label for a in self.grid.axes]}, " \
               f"seeds {list(self.seeds)}: {counts})"

    # ------------------------------------------------------------ per run

    def record(self, row: int) -> RunRecord:
        """The recorded history of row ``row`` of the table."""
        if self.status[row] != "ok":
            raise ValueError(f"Row {row} has no run: its status is {self.status[row]!r} "
                             f"{self.errors[row]!r}.")
        return self._records[self._rows[row][3]][0]

    # ------------------------------------------------------------ the table

    def columns(self) -> dict:
        """column name -> ndarray (rows,): the grid fields, seed, the final METRICS, the
        BOUNDARIES, run_time (seconds per run: its task's time over its runs), status,
        error."""
        if self._columns is None:
            out = {name: _column([r[0][name] for r in self._rows]) for name in self.grid.names}
            out["seed"] = np.array([r[1] for r in self._rows], np.int64)
            finals = np.full((len(self), len(METRICS) + len(BOUNDARIES) + 1), np.nan)
            for i, r in enumerate(self._rows):
                if self.status[i] == "ok":
                    finals[i] = self._finals(*self._records[r[3]])
            names = METRICS + BOUNDARIES + ("run_time",)
            out.update({n: finals[:, k] for k, n in enumerate(names)})
            out["status"], out["error"] = self.status, self.errors
            self._columns = out
        return dict(self._columns)

    def _finals(self, record: RunRecord, seconds: float) -> list:
        h = record.history
        metrics = [float(h[n][-1]) if n in h else np.nan for n in METRICS]
        if all(n in h for n in STAGE_NAMES):
            found = detect_history(record.steps, h).as_dict()
            stages = [np.nan if found[b] is None else float(found[b]) for b in BOUNDARIES]
        else:
            stages = [np.nan] * len(BOUNDARIES)
        return metrics + stages + [seconds]

    @property
    def table(self):
        """The table: a ``pandas.DataFrame`` when pandas is installed, else a NumPy
        structured array with the same columns."""
        columns = self.columns()
        try:
            import pandas as pd
        except ImportError:
            dtype = [(k, v.dtype) for k, v in columns.items()]
            out = np.empty(len(self), dtype=dtype)
            for k, v in columns.items():
                out[k] = v
            return out
        return pd.DataFrame(columns)

    def to_xarray(self):
        """The table as an ``xarray.Dataset`` with one dimension per grid axis (a zipped
        axis is one dimension named by its fields joined by commas, each field a coordinate
        along it) and ``seed``. Needs xarray (``signsim[labels]``)."""
        from ..result import _optional

        xr = _optional("xarray")
        shape = self.grid.shape + (len(self.seeds),)
        dims = tuple(a.label for a in self.grid.axes) + ("seed",)
        coords = {"seed": list(self.seeds)}
        for axis in self.grid.axes:
            for k, name in enumerate(axis.names):
                coords[name] = (axis.label, _column([v[k] for v in axis.values]))
        skip = set(self.grid.names) | {"seed"}
        data = {k: (dims, v.reshape(shape)) for k, v in self.columns().items() if k not in skip}
        return xr.Dataset(data, coords=coords, attrs={"base_config": self.base.to_json()})


def _status(row, records: dict, errors: dict) -> str:
    config, key = row[2], row[3]
    if config is not None and key in records:  # a result wins over an older failure
        return "ok"
    return "error" if config is None or key in errors else "missing"


def _error(row, records: dict, errors: dict) -> str:
    if row[2] is None:
        return row[3]  # the cell's own error: its values make no valid Config
    return "" if row[3] in records else errors.get(row[3], "")


def _column(values: list) -> np.ndarray:
    """One table column: str, bool, int64 or float64, as its values are."""
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=str)
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array([str(v) for v in values], dtype=str)
