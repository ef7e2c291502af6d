"""The one place where signsim uses several cores: the replicas of a batch split into
contiguous chunks, each chunk run as a smaller batch in a worker process
(``concurrent.futures.ProcessPoolExecutor``), the chunks joined back in order.

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

__all__ = ["chunks", "run_in_processes", "executor", "start_method"]


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
