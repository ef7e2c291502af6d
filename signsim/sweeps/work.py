"""What one task of a sweep computes, wherever it runs (this process, a worker process, a
Dask worker): its batch through ``simulate.run_batch``, and what the sweep keeps of it.

A task that fails as a batch (one replica's weights overflowed, say) is run again one job
at a time, so that the failure is recorded against the jobs that cause it and the others
still finish; a replica's result does not depend on its batch, so the numbers are the same.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

__all__ = ["Outcome", "run_task", "describe_error"]


class Outcome(NamedTuple):
    """What a task returns: the histories of the jobs that finished (``keys``, in task
    order; every array (len(keys), ...)), the errors of those that did not, its seconds."""

    keys: tuple
    steps: np.ndarray
    test_steps: np.ndarray
    history: dict
    errors: dict  # job key -> "ExceptionType: message"
    seconds: float


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def run_task(configs: list, keys: tuple, vary: tuple, names: tuple,
             registrations: dict | None = None) -> Outcome:
    """Run the jobs ``configs`` (named ``keys``) as one batch, recording ``names``;
    ``registrations`` are optimizers (name -> factory) a fresh worker must register first."""
    _register(registrations or {})
    t0 = time.perf_counter()
    try:
        parts = [(keys, _batch(configs, vary, names))]
        errors = {}
    except Exception as exc:  # noqa: BLE001 -- any failure: find the jobs that cause it
        if len(configs) == 1:
            parts, errors = [], {keys[0]: describe_error(exc)}
        else:
            parts, errors = _one_by_one(configs, keys, names)
    seconds = time.perf_counter() - t0
    if not parts:
        return Outcome((), np.zeros(0, np.int64), np.zeros(0, np.int64), {}, errors, seconds)
    done = tuple(k for ks, _ in parts for k in ks)
    steps, test_steps = parts[0][1].steps, parts[0][1].test_steps
    history = {n: np.concatenate([_per_replica(r, n) for _, r in parts]) for n in names}
    return Outcome(done, steps, test_steps, history, errors, seconds)


def _per_replica(result, name: str) -> np.ndarray:
    """``result.history[name]`` with its replica axis (the dense reference returns a single
    run, without one)."""
    a = np.asarray(result.history[name])
    return a if result.batched else a[None]


def _batch(configs: list, vary: tuple, names: tuple):
    from ..simulate import run_batch

    return run_batch(list(configs), names, vary=vary)


def _one_by_one(configs: list, keys: tuple, names: tuple):
    parts, errors = [], {}
    for config, key in zip(configs, keys):
        try:
            parts.append(((key,), _batch([config], (), names)))
        except Exception as exc:  # noqa: BLE001 -- recorded against this job
            errors[key] = describe_error(exc)
    return parts, errors


def _register(factories: dict) -> None:
    from ..optim import available, register

    for name, factory in factories.items():
        if name not in available():
            register(name, factory)
