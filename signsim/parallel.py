"""The one place where signsim uses several cores or machines.

- ``run_in_processes``: the replicas of one batch split into contiguous chunks, each chunk
  run as a smaller batch in a worker process (``concurrent.futures.ProcessPoolExecutor``),
  the chunks joined back in order.
- ``as_completed``: the tasks of a sweep (``signsim.sweep``) on an executor: this process,
  local worker processes, any ``concurrent.futures.Executor``, or a Dask cluster (a
  ``dask.distributed.Client`` or a scheduler address; Dask is imported only then).

A replica does not depend on which other replicas share its batch (``tests/test_fast.py``
checks it bit for bit), so the joined Result equals the batch run in one process.

How workers start: by ``fork`` on Linux when the calling process has a single thread (a
script, the CLI, pytest; ``ProcessPoolExecutor`` starts every worker of a fork context
before its own manager thread, so no thread exists at any fork). Elsewhere, and in a
process with threads (a notebook kernel), where a fork can deadlock, by ``forkserver``
(Linux, macOS), else ``spawn``. Those two import the calling script's ``__main__`` in the
workers, so a script with threads of its own that calls ``run(..., workers=2)`` at its top
level must guard it with ``if __name__ == "__main__":`` (Python's rule for
``multiprocessing``); a notebook needs nothing.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

from .result import Result

__all__ = ["chunks", "run_in_processes", "executor", "start_method", "as_completed",
           "workers_of", "registrations_for"]


def chunks(R: int, parts: int) -> list[range]:
    """``parts`` contiguous ranges covering 0..R-1, as equal as possible (none empty)."""
    parts = min(parts, R)
    bounds = [R * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def start_method() -> str:
    """How ``executor`` starts its workers (module docstring)."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def executor(workers: int, optimizers=()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes (``start_method``; a forkserver preloads signsim).
    Workers that do not inherit this process's memory (forkserver, spawn) register the
    ``optimizers`` named that were registered here (``optim.register``) themselves."""
    method = start_method()
    extra = {}
    if method != "fork":
        extra = _registrations(optimizers)
    if method == "fork":
        context = multiprocessing.get_context("fork")
    elif method == "forkserver":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["signsim"])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_register,
                               initargs=(extra,))


def _registrations(optimizers) -> dict:
    """name -> factory of the optimizers registered in this process, checked to reach a
    worker process (a factory defined in a notebook cell or a lambda cannot be sent)."""
    import pickle

    from .optim import registration

    out = {}
    for name in set(optimizers):
        factory, built_in = registration(name)
        if built_in:
            continue
        try:
            pickle.dumps(factory)
        except Exception:  # noqa: BLE001 -- any pickling failure: the same refusal
            raise ValueError(f"The optimizer {name!r} was registered in this process only: "
                             f"worker processes started by {start_method()} cannot receive "
                             "its factory (define it in an importable module), so use "
                             "workers=1 here.") from None
        out[name] = factory
    return out


def _register(factories: dict) -> None:
    """In a worker: register the optimizers the parent registered."""
    from .optim import available, register

    for name, factory in factories.items():
        if name not in available():
            register(name, factory)


def _run_chunk(configs: list, names: tuple, vary: tuple) -> Result:
    from .simulate import run_batch

    return run_batch(configs, names, vary=vary)


def run_in_processes(configs: list, names: tuple, workers: int, *, progress=None,
                     vary: tuple = ()) -> Result:
    """The batch ``configs`` split across ``workers`` processes; ``progress(done, total)``
    is called as chunks finish (``total`` = the run's steps, ``done`` in proportion)."""
    parts = chunks(len(configs), workers)
    steps = configs[0].steps
    with executor(len(parts), [c.optimizer for c in configs]) as pool:
        futures = [pool.submit(_run_chunk, [configs[r] for r in part], names, vary)
                   for part in parts]
        results = []
        for k, future in enumerate(futures):
            results.append(future.result())  # a NonFiniteError comes back as it is: its
            # Result is that of the chunk of replicas that stopped (Result.configs says which)
            if progress is not None:
                progress(steps * (k + 1) // len(parts), steps)
    return Result.concat(results)


# ------------------------------------------------------------------ sweeps


def _is_dask(target) -> bool:
    """A ``dask.distributed.Client``, recognised without importing Dask."""
    return type(target).__module__.split(".")[0] == "distributed" and hasattr(target, "submit")


def workers_of(target) -> int:
    """How many tasks ``target`` (an executor argument of ``as_completed``) runs at once."""
    if target is None:
        return 1
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if _is_dask(target):
        return max(1, sum(target.nthreads().values()))
    return max(1, int(getattr(target, "_max_workers", 1)))


def registrations_for(target, optimizers) -> dict:
    """The optimizers registered in this process that ``target``'s workers must register
    (none in this process or in forked workers; every one for spawn, forkserver, Dask)."""
    from concurrent.futures import ThreadPoolExecutor

    if target is None or isinstance(target, ThreadPoolExecutor) or (
            isinstance(target, int) and start_method() == "fork"):
        return {}  # the same process (threads) or a copy of it (fork): registered already
    return _registrations(optimizers)


def as_completed(fn, calls: list, target=None):
    """Yield ``(k, fn(*calls[k]))`` as each call finishes, on ``target``.

    Parameters
    ----------
    fn : callable
        A module-level function (it is sent to the workers).
    calls : list of tuple
        The arguments of each call.
    target : None, int, concurrent.futures.Executor, dask.distributed.Client or str
        None runs the calls here, one after the other, in order; an int that many local
        worker processes (``executor``); an Executor or a Client is used as it is (and left
        open); a str is the address of a Dask scheduler (a Client is opened and closed).

    An exception a call raises is raised here, when it arrives; the calls still running
    are cancelled.
    """
    if target is None:
        for k, args in enumerate(calls):
            yield k, fn(*args)
        return
    if isinstance(target, str):
        yield from _on_scheduler(fn, calls, target)
        return
    if _is_dask(target):
        yield from _on_dask(fn, calls, target)
        return
    if isinstance(target, int) and not isinstance(target, bool):
        pool = executor(target)
        try:
            yield from _on_executor(fn, calls, pool)
        except BaseException:  # Ctrl-C, SIGTERM, a failure: do not wait for running tasks
            _stop(pool)
            raise
        pool.shutdown()
        return
    yield from _on_executor(fn, calls, target)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: queued tasks cancelled, running workers terminated (what they
    computed is lost; a sweep's finished tasks are already on disk)."""
    workers = list(getattr(pool, "_processes", {}).values())  # before shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=5)


def _on_executor(fn, calls: list, pool):
    from concurrent.futures import as_completed as done_first

    futures = {pool.submit(fn, *args): k for k, args in enumerate(calls)}
    try:
        for future in done_first(futures):
            yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()


def _on_dask(fn, calls: list, client):
    from distributed import as_completed as done_first

    futures = [client.submit(fn, *args, pure=False) for args in calls]
    index = {f.key: k for k, f in enumerate(futures)}
    try:
        for future in done_first(futures):
            yield index[future.key], future.result()
    finally:
        client.cancel(futures)


def _on_scheduler(fn, calls: list, address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("A scheduler address needs Dask, an optional extra: "
                          "python -m pip install 'signsim[dask]'") from None
    with Client(address) as client:
        yield from _on_dask(fn, calls, client)
