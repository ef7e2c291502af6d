"""Which runs of a sweep share one vectorised batch.

Every (cell, seed) is a *job*: one Config. Jobs whose Configs differ only in what one batch
of the fast kernel can vary per replica are grouped (``batch_key``): the seed, sigma_p and
sigma_0 always (``simulate.VARIABLE``), lr when the optimizer declares
``proportional_to_lr``; the dense reference runs one Config at a time. A group is cut into
*tasks* of at most ``batch_size`` replicas, in the grid's order (for several workers, the
longest tasks first).

A replica's result does not depend on the other replicas of its batch (tests/test_fast.py
checks it bit for bit), so neither the grouping, nor the cut, nor a shard split changes
any number a sweep returns.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import NamedTuple

from ..config import Config
from ..optim import from_config
from ..parallel import chunks
from ..simulate import VARIABLE

__all__ = ["Job", "Task", "job_key", "batch_key", "plan", "cost", "shard_of"]


class Job(NamedTuple):
    """One run of a sweep: row ``row`` of its table (cell ``cell``, seed ``seed``)."""

    row: int
    cell: int
    seed: int
    config: Config
    key: str  # job_key(config)


class Task(NamedTuple):
    """Jobs run as one batch (``vary``: the VARIABLE fields that differ among them)."""

    jobs: tuple
    vary: tuple

    @property
    def configs(self) -> list:
        return [j.config for j in self.jobs]


def job_key(config: Config) -> str:
    """A name for the run ``config`` describes: a hash of its JSON (every field)."""
    return hashlib.sha256(config.to_json().encode()).hexdigest()[:24]


def batch_key(config: Config) -> str:
    """Jobs with one batch_key may share a batch: every field but those a batch varies."""
    if config.kernel == "dense":
        return "dense:" + job_key(config)  # one Config at a time
    free = set(VARIABLE) | {"seed"}
    if not from_config(config).proportional_to_lr:
        free.discard("lr")
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in free},
                      sort_keys=True)


def plan(jobs: list, batch_size: int, min_tasks: int = 1) -> list[Task]:
    """The tasks that run ``jobs``: grouped by ``batch_key`` (groups in the order of their
    first job), each group cut into contiguous tasks of at most ``batch_size`` jobs, and,
    for ``min_tasks`` > 1 workers, into enough parts that there are about four tasks per
    worker in all, longest first."""
    groups: dict[str, list] = {}
    for job in jobs:
        groups.setdefault(batch_key(job.config), []).append(job)
    # with several workers, about 4 tasks each: the longest-first order then evens them out
    wanted = 4 * min_tasks if min_tasks > 1 else 1
    parts_wanted = math.ceil(wanted / max(len(groups), 1))
    tasks = []
    for group in groups.values():
        parts = max(math.ceil(len(group) / batch_size), min(parts_wanted, len(group)))
        for part in chunks(len(group), parts):
            members = tuple(group[i] for i in part)
            tasks.append(Task(members, _varied(members)))
    if min_tasks > 1:  # several workers: the longest tasks first, so that they end together
        tasks.sort(key=cost, reverse=True)
    return tasks


def cost(task: Task) -> int:
    """A task's work, roughly: replicas x samples x steps."""
    c = task.jobs[0].config
    return len(task.jobs) * c.n * c.steps


def _varied(jobs: tuple) -> tuple:
    """The VARIABLE fields whose values differ among ``jobs``."""
    return tuple(k for k in VARIABLE if len({getattr(j.config, k) for j in jobs}) > 1)


def shard_of(jobs: list, shard: tuple) -> list:
    """Shard ``i`` of ``N`` (``shard = (i, N)``, i in [0, N)): the jobs sorted by batch_key
    (so that the runs one batch can hold stay together, but where a slice boundary cuts
    a group), cut into N contiguous slices, slice i."""
    i, N = shard
    order = sorted(jobs, key=lambda j: (batch_key(j.config), j.row))
    part = chunks(len(order), N)
    if i >= len(part):
        return []
    return sorted((order[r] for r in part[i]), key=lambda j: j.row)
