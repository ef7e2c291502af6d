"""Sweeps: a grid of runs, batched into vectorised replicas, run here, in local processes or
on a Dask cluster, kept in a folder as each batch finishes, and resumed from it.

>>> import signsim
>>> res = signsim.sweep("data_quality", {"snr": [0.5, 2.0], ("optimizer", "lr"):
...                     [("signgd", 1e-3), ("gd", 1.0)]}, seeds=2, steps=20)
>>> res.table[["snr", "optimizer", "lr", "seed", "status"]].shape
(8, 5)

``grid`` (``grid.Grid``) gives the cells; each cell runs once per seed. ``plan`` groups the
runs that one batch can hold; ``work.run_task`` runs a batch wherever the executor puts it
(``signsim.parallel.as_completed``); ``store.Store`` writes each finished batch to ``out``
at once; ``table.SweepResult`` is the table. Numbers never depend on the executor, the
batching, the shard or a resume (plan's docstring says why); only ``run_time`` does.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

from ..config import Config
from ..parallel import as_completed, registrations_for, workers_of
from ..simulate import resolve_config
from ..tracker import select
from .grid import DERIVED, Grid, cell_config
from .plan import Job, job_key, plan, shard_of
from .store import FORMAT, Store
from .table import BOUNDARIES, METRICS, RunRecord, SweepResult
from .work import describe_error, run_task

__all__ = ["sweep", "load", "Grid", "SweepResult", "RunRecord", "METRICS", "BOUNDARIES",
           "DERIVED"]

BATCH_SIZE = 64  # runs per task at most: a kill loses at most this many per task in flight


def sweep(base=None, grid=None, *, seeds=1, out=None, executor=None, record="summary",
          shard=None, batch_size: int = BATCH_SIZE, progress=None, retry_failed=False,
          **overrides) -> SweepResult:
    """Run every cell of ``grid`` once per seed and gather the results in one table.

    Parameters
    ----------
    base : Config, str or None
        The Config every cell starts from (a preset name, a Config, or None for the
        defaults), with ``overrides`` applied.
    grid : dict
        Config field (or derived field: ``snr``) -> list of values, or a tuple of fields ->
        list of tuples (a zipped axis). ``grid.Grid`` documents the rules.
    seeds : int or sequence of int
        The seeds of every cell: ``n`` means ``range(n)``.
    out : str or Path, optional
        A folder that keeps every finished batch as it completes; re-running the same sweep
        with the same ``out`` reads what is there and computes only the rest. None keeps
        everything in memory.
    executor : None, int, concurrent.futures.Executor, dask.distributed.Client or str
        Where batches run: here (None), in that many local processes (int), on the given
        executor or Dask client, or on the Dask scheduler at that address (str).
    record : None, "summary" or sequence of str
        What each run records (``signsim.run``); stage boundaries need the stage names
        (``record=None`` records all).
    shard : tuple (i, N), optional
        Run only slice i of N of the runs (a SLURM array task, say); ``load(out)`` reads
        every shard's files into one table once all have run.
    batch_size : int
        The most runs one batch (one task, one file) holds.
    progress : callable, optional
        ``progress(done, total)`` after each finished batch, counting runs.
    retry_failed : bool
        Run again the runs ``out`` records as failed (by default they are kept as failed).

    Returns
    -------
    SweepResult
    """
    base = resolve_config(base, **overrides)
    grid, seeds, names = Grid(grid), _seeds(seeds), select(record)
    _check_executor(executor)
    shard, batch_size = _shard(shard), _positive("batch_size", batch_size)
    rows, jobs = expand(base, grid, seeds)
    store = None if out is None else Store(out, _definition(base, grid, seeds, names))
    records, errors = ({}, {}) if store is None else _stored(store, retry_failed)
    mine = _unique(jobs) if shard is None else shard_of(_unique(jobs), shard)
    todo = [j for j in mine if j.key not in records and j.key not in errors]
    reused = sum(1 for j in _unique(jobs) if j.key in records)
    computed = _run(todo, names, executor, batch_size, store, records, errors, progress)
    return SweepResult(base, grid, seeds, names, rows, records, errors, computed, reused)


def expand(base: Config, grid: Grid, seeds: tuple):
    """The rows of a sweep (cell, seed, Config or None, job key or the cell's error) and
    its jobs (``plan.Job``, one per valid row)."""
    rows, jobs = [], []
    for c, cell in enumerate(grid.cells()):
        for seed in seeds:
            try:
                config = cell_config(base, cell, seed)
            except (ValueError, TypeError) as exc:
                rows.append((cell, seed, None, describe_error(exc)))
                continue
            key = job_key(config)
            rows.append((cell, seed, config, key))
            jobs.append(Job(len(rows) - 1, c, seed, config, key))
    return rows, jobs


def load(*folders) -> SweepResult:
    """The sweep kept in ``folders`` (one, or the folders of its shards), as far as it has
    run: rows no folder holds are ``"missing"``.

    Raises
    ------
    ValueError
        If a folder holds no sweep, or the folders hold different sweeps.
    """
    if not folders:
        raise ValueError("load() needs at least one sweep folder.")
    from pathlib import Path

    definitions = [_read_definition(Path(f)) for f in folders]
    if any(d != definitions[0] for d in definitions):
        raise ValueError(f"The folders {[str(f) for f in folders]} hold different sweeps.")
    d = definitions[0]
    base, grid, seeds, names = _parts(Path(folders[0]) / "sweep.json", d)
    rows, _ = expand(base, grid, seeds)
    records, errors = {}, {}
    for folder in folders:
        store = Store(folder, {k: v for k, v in d.items() if k != "format"}, create=False)
        found, failed = _stored(store, False)
        records.update(found)
        errors.update(failed)
    return SweepResult(base, grid, seeds, names, rows, records, errors, 0, len(records))


# ------------------------------------------------------------------ running


def _run(todo: list, names: tuple, executor, batch_size: int, store, records: dict,
         errors: dict, progress) -> int:
    """Run the jobs ``todo``; every finished task goes to ``store`` at once. The count run."""
    tasks = plan(todo, batch_size, workers_of(executor))
    extra = registrations_for(executor, {j.config.optimizer for j in todo})
    calls = [(t.configs, tuple(j.key for j in t.jobs), t.vary, names, extra) for t in tasks]
    configs = {j.key: j.config for j in todo}
    done = 0
    if progress is not None:
        progress(0, len(todo))  # the clock of a progress bar starts now
    for k, outcome in as_completed(run_task, calls, executor):
        if store is not None:
            store.write(outcome, configs)
        seconds = outcome.seconds / max(len(tasks[k].jobs), 1)
        _keep(outcome, configs, seconds, records)
        errors.update(outcome.errors)
        done += len(tasks[k].jobs)
        if progress is not None:
            progress(done, len(todo))
    return done


def _keep(outcome, configs: dict, seconds: float, records: dict) -> None:
    """The RunRecord of every finished job of ``outcome``."""
    for r, key in enumerate(outcome.keys):
        history = {n: a[r] for n, a in outcome.history.items()}
        records[key] = (RunRecord(configs[key], outcome.steps, outcome.test_steps, history),
                        seconds)


def _stored(store: Store, retry_failed: bool):
    """The runs and failures a folder holds."""
    records = {}
    for _, configs, outcome in store.finished():
        _keep(outcome, dict(zip(outcome.keys, configs)), outcome.seconds / len(configs),
              records)
    errors = {} if retry_failed else {k: e for k, (_, e) in store.failed().items()}
    return records, errors


def _unique(jobs: list) -> list:
    """One job per key (two cells that make the same Config run once)."""
    seen, out = set(), []
    for j in jobs:
        if j.key not in seen:
            seen.add(j.key)
            out.append(j)
    return out


def _definition(base: Config, grid: Grid, seeds: tuple, names: tuple) -> dict:
    """What makes a sweep itself: resuming it with any of these changed is refused (a new
    signsim version included: its numbers may differ)."""
    from .. import __version__

    return {"base": base.to_dict(), "grid": grid.to_json(), "seeds": list(seeds),
            "record": list(names), "signsim": __version__}


def _parts(path, d: dict):
    """(base, grid, seeds, record names) of the definition ``d`` read from ``path``, each
    checked as ``sweep`` checks its arguments."""
    from ..errors import SignsimFileError

    try:
        return (Config.from_dict(d["base"]), Grid.from_json(d["grid"]), _seeds(d["seeds"]),
                select(d["record"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise SignsimFileError(path, f"not a valid sweep definition ({exc})") from None


def _read_definition(folder) -> dict:
    import json

    from ..errors import SignsimFileError

    path = folder / "sweep.json"
    if not path.is_file():
        raise ValueError(f"{folder} holds no sweep (no sweep.json).")
    try:
        d = json.loads(path.read_text())
        missing = {"format", "base", "grid", "seeds", "record"} - set(d)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise SignsimFileError(path, f"not a readable sweep definition ({exc})") from None
    if missing or d.get("format") != FORMAT:
        raise SignsimFileError(path, f"not a sweep definition (format {d.get('format')!r}, "
                                     f"expected {FORMAT!r}; missing {sorted(missing)})")
    return d


# ------------------------------------------------------------------ arguments


def _seeds(seeds) -> tuple:
    if hasattr(seeds, "tolist") and getattr(seeds, "ndim", 0) == 1:  # a NumPy array
        seeds = seeds.tolist()
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"The 'seeds' parameter must be an int >= 1 or a non-empty list "
                             f"of ints. Got {seeds!r} instead.")
        return tuple(range(int(seeds)))
    if (isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Sequence)
            or not seeds or not all(isinstance(s, numbers.Integral)
                                    and not isinstance(s, bool) for s in seeds)):
        raise ValueError(f"The 'seeds' parameter must be an int >= 1 or a non-empty list of "
                         f"ints. Got {seeds!r} instead.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"The 'seeds' parameter has repeated seeds: {list(seeds)}.")
    return tuple(int(s) for s in seeds)


def _shard(shard):
    if shard is None:
        return None
    ok = (isinstance(shard, Sequence) and len(shard) == 2
          and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in shard)
          and shard[1] >= 1 and 0 <= shard[0] < shard[1])
    if not ok:
        raise ValueError("The 'shard' parameter must be a pair (i, N) of ints with "
                         f"0 <= i < N. Got {shard!r} instead.")
    return (int(shard[0]), int(shard[1]))


def _check_executor(executor) -> None:
    ok = (executor is None or isinstance(executor, str) or hasattr(executor, "submit")
          or (isinstance(executor, numbers.Integral) and not isinstance(executor, bool)
              and executor >= 1))
    if not ok:
        raise ValueError("The 'executor' parameter must be None, an int >= 1 (local "
                         "processes), a concurrent.futures.Executor, a dask.distributed "
                         f"Client or a scheduler address (str). Got {executor!r} instead.")


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"The {name!r} parameter must be an int >= 1. Got {value!r} instead.")
    return int(value)

