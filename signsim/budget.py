"""The memory a run needs, from its Configs alone, and the check that refuses a run that
cannot fit before anything is allocated.

``estimate(configs, names)`` models the arrays a run holds (float64 and int64, 8 bytes a
value) in four parts:

``history``
    The Recorder's storage: for each stored name (``kernels.fast.records.storage``, or the
    dense reference's full records) one record per recorded step (``tracker.schedule``,
    counted without building it) and replica; the step schedules and the loop's
    step -> row dicts (~100 bytes a recorded step); train loss and error from the margins.
``state``
    The weights and what a step makes of them. Fast kernel, per replica: the init on U
    (|U| <= n s + 1 columns of 2 m_k + 2 m_v values), the layout (per (sample, row) sums
    for an optimizer that declares its homogeneity: SignGD, GD; else per-coordinate
    weights, n (2 m_k + 2) s values, ~4 more copies at a step, plus the copies the
    optimizer's state keeps, counted on what its ``init`` makes: Adam 2), and the final and
    initial weights on U the Result keeps. Dense reference: the (2 m_k + 2 m_v, d)
    weights, 5 copies at a step (SignGD, GD), 11 with Adam, 6 while they are drawn.
``test set``
    Fast kernel: per replica n_test (2 m_k + 3) frozen numbers and the few test slots in U;
    while it is built, E13 at one replica's test coordinates (<= n_test s, 3 copies of
    2 m_k + 1 values each) and the replicas' parts stacked. Dense reference: a chunk of 100
    dense test inputs (100 x d x 2). Nothing without test metrics.
``data``
    The training and test sets (n s and n_test s coordinates and values), what drawing
    them takes, and the dense reference's inputs X (n x d x 2) and dense noise patches.

These are what the run holds at its end. A run goes through phases (the kernel built; the
loop; the Result made; for the dense reference the data and the init drawn), each holding
what is kept then plus the largest of its temporaries; ``"temporaries"`` is what the
largest phase (``Estimate.when``) holds beyond the four parts. Then ``"allocator"``: 25%
for the freed blocks glibc keeps resident (below its mmap threshold, which rises to 32 MiB
after the first large free; the dense reference's (m, d) temporaries leave its RSS ~40%
above its live arrays, 1.0x with MALLOC_MMAP_THRESHOLD_=131072), and 2 MiB the interpreter
grows by. ``workers > 1`` adds ``"between processes"``: each worker's
Result pickled, the parent's chunks unpickled and joined (~4.5 copies of the Results).

Calibration: the estimate against the peak RSS of a fresh process running the run, less
its RSS after importing signsim (Linux x86-64, 2 cores, NumPy 2.4, glibc malloc), and
against the peak of the arrays (``tracemalloc``, which NumPy reports its buffers to):

===============================================  =========  ==============  ==============
run                                              estimate   peak RSS        arrays
===============================================  =========  ==============  ==============
fig1, one run, full history                      8.9 MiB    8.8 (1.02x)     5.7 (1.57x)
fig1, 100 replicas, full history                 661 MiB    545 (1.21x)     524 (1.26x)
fig1, 100 replicas, record="summary"             160 MiB    145 (1.10x)     130 (1.23x)
fig2 (Adam), 100 replicas, full history          717 MiB    590 (1.21x)     569 (1.26x)
dense, fig1 at d = 2000, full history            17.6 MiB   16.8 (1.05x)    12.6 (1.39x)
dense, Adam, d = 50000, summary, n_test 100      269 MiB    239 (1.12x)     177 (1.52x)
dense, SignGD, d = 200000, summary, n_test 50    536 MiB    579 (0.93x)     403 (1.33x)
Adam, 10 replicas, d = 1e7, s = 2000 (summary)   1117 MiB   929 (1.20x)     894 (1.25x)
SignGD, 10 replicas, d = 1e7, s = 2000           532 MiB    434 (1.22x)     431 (1.23x)
fig1 at d = 1e6, s = 2000 (test set built)       619 MiB    501 (1.23x)     490 (1.26x)
fig1 at d = 1e8, s = 1e4, n_test = 200           1362 MiB   1156 (1.18x)    1103 (1.23x)
fig1, summary, 50000 steps, n_test = 10          21.8 MiB   17.5 (1.25x)    15.6 (1.40x)
fig1, 100 replicas, workers = 2 (1)              3331 MiB   2964 (1.12x)
===============================================  =========  ==============  ==============

(1) The sum of the parent's and the workers' peaks.

So the estimate is 0.93x-1.25x the peak RSS and 1.23x-1.57x the arrays (the small runs
and the dense reference's Adam the most above them). It is lowest against RSS for the
dense reference at large d, whose heap holes the 25% allocator share does not quite cover.

``check(configs, names)`` raises ``MemoryBudgetError`` (a ValueError) when the estimate
exceeds the limit: ``SIGNSIM_MAX_MEMORY`` (bytes, or with a suffix: ``8G``, ``512M``,
``1.5GiB``) if set, else the memory available now (MemAvailable in /proc/meminfo, else
``sysconf`` pages), else there is no check. Call it first thing in ``simulate.run_batch``
(before ``make_kernel``), and in ``simulate.run`` before a batch is split among worker
processes (with ``workers=``; each worker's ``run_batch`` then checks its own chunk).
"""

from __future__ import annotations

import math
import os
import re
from typing import NamedTuple

import numpy as np

from .config import Config

__all__ = ["Estimate", "MemoryBudgetError", "estimate", "check", "memory_limit", "parse_size",
           "recorded_steps", "ENV"]

ENV = "SIGNSIM_MAX_MEMORY"
GiB = 2**30
_F = 8  # bytes of a float64 or int64
_DICT_ENTRY = 120  # bytes of one entry of the loop's {step: row} dicts (~98, more while
# a dict grows)
_PARTS = ("history", "state", "test set", "data")
# What the model leaves to the allocator: glibc serves blocks below its mmap threshold (which
# rises to 32 MiB after the first large free) from a heap whose freed holes stay resident,
# so a run's peak RSS exceeds its live arrays, by up to ~40% for the dense reference's
# (m, d) temporaries (MALLOC_MMAP_THRESHOLD_=131072 brings it back to ~1.0x).
_SLACK = 1.25
_GROWTH = 2 * 2**20  # what a first run adds to the interpreter itself (caches, lazy imports)
# workers > 1: each worker pickles its Result (~1.5 copies), the parent unpickles the chunks
# and concatenates them (~3): measured for fig1, 100 replicas, workers=2: parent 1.56 GiB,
# each worker 0.70 GiB, against 0.55 GiB for the whole batch in one process
_TRANSFER = 4.5


class Estimate(NamedTuple):
    """What ``estimate`` returns.

    Attributes
    ----------
    total : int
        Bytes at the run's peak: the sum of ``breakdown``.
    breakdown : dict
        -> bytes: ``"history"``, ``"state"``, ``"test set"``, ``"data"`` (what the run
        holds at its end), ``"temporaries"`` (what its peak holds beyond that),
        ``"allocator"`` and, with ``workers > 1``, ``"between processes"``.
    details : dict
        The same keys -> what drives each, in words (for messages).
    when : str
        The phase of the peak: "while the kernel is built", "during the loop", ...
    """

    total: int
    breakdown: dict
    details: dict
    when: str = "during the loop"


class MemoryBudgetError(ValueError):
    """A run whose estimated memory exceeds the limit; refused before anything is allocated.

    A ValueError (the run's arguments ask for too much). ``estimate`` is the ``Estimate``,
    ``limit`` the limit in bytes."""

    def __init__(self, message: str, estimate: Estimate | None = None,
                 limit: int | None = None):
        super().__init__(message)
        self.estimate, self.limit = estimate, limit

    def __reduce__(self):  # pickles (from a worker process) with every argument
        return type(self), (str(self), self.estimate, self.limit)


def recorded_steps(steps: int, every: int) -> int:
    """``len(tracker.schedule(steps, every))`` without building the schedule."""
    return steps // every + 1 + (1 if steps % every else 0)


def _prod(shape) -> int:
    return math.prod(shape)


def _gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.3g} GiB"


def _replicas(R: int) -> str:
    return "1 replica" if R == 1 else f"{R} replicas"


def _names(names) -> tuple:
    from .tracker import select

    if names is None or isinstance(names, str):
        return select(names)
    return tuple(names)


def _history(config: Config, storage: dict, R: int) -> tuple[float, str]:
    """Values (8 bytes) of the Recorder's storage and the schedules, and what drives them."""
    from .tracker import TEST_NAMES

    T = recorded_steps(config.steps, config.record_every)
    T_test = recorded_steps(config.steps, config.test_every)
    train = {k: _prod(v) for k, v in storage.items() if k not in TEST_NAMES}
    test = {k: _prod(v) for k, v in storage.items() if k in TEST_NAMES}
    per_train, per_test = sum(train.values()), sum(test.values())
    values = R * (T * per_train + T_test * per_test)
    values += (1 + _DICT_ENTRY / _F) * ((T if train else 0) + (T_test if test else 0))
    parts = []
    if train:
        what = ", ".join(f"{k} {v}" for k, v in sorted(train.items(), key=lambda x: -x[1]))
        parts.append(f"{_replicas(R)} x {T} recorded steps (steps={config.steps}, "
                     f"record_every={config.record_every}) x {per_train} values ({what})")
    if test:
        parts.append(f"{_replicas(R)} x {T_test} test steps (test_every={config.test_every}) "
                     f"x {per_test} values")
    advice = "lower steps, raise record_every (and test_every), or record='summary'"
    if set(train) <= {"margin", "train_loss", "train_error"}:
        advice = "lower steps or raise record_every (and test_every)"
    return values, ("; ".join(parts) + f"; {advice}") if parts else "nothing recorded"


def _opt_copies(config: Config) -> tuple[bool, int]:
    """(whether the optimizer declares homogeneity, copies of the weights its state keeps):
    the copies counted on the state its ``init`` makes of a small array (no name read)."""
    from .optim import from_config

    opt = from_config(config)
    probe = np.zeros(7)
    return opt.homogeneity is not None, _copies_in(opt.init(probe), probe.size)


def _copies_in(tree, size: int) -> int:
    """How many arrays of ``size`` values a (NamedTuple) state holds."""
    if isinstance(tree, np.ndarray):
        return int(tree.size == size)
    if isinstance(tree, tuple):
        return sum(_copies_in(x, size) for x in tree)
    return 0


def _distinct_count(count: int, s: int, pop: int) -> float:
    """Expected number of coordinates in the union of ``count`` independent uniform
    s-subsets of ``pop`` coordinates: each is in none with probability (1 - s/pop)^count."""
    if s >= pop:
        return float(pop)
    return pop * -math.expm1(count * math.log1p(-s / pop))


def _sampling(count: int, d: int, s: int) -> int:
    """Values held by the temporaries of ``data._sample_supports`` for ``count`` rows."""
    pop = d - 1
    if s * s <= pop:
        return 2 * count * s  # the draws sorted in place, a redraw, the noise values
    if 8 * s <= pop:
        m = int(1.08 * s + 2 * math.sqrt(s) + 7)
        rows = min(count, max(1, 4_000_000 // m))
        return 6 * rows * m + 2 * count * s  # draws, keys, values, positions, flags
    rows = min(count, max(1, 4_000_000 // pop))
    return 2 * rows * pop + 2 * count * s  # keys and their argpartition


class _Model(NamedTuple):
    """A run's memory in values (8 bytes each)."""

    kept: dict  # part -> what the run holds at its end (its Result, its kernel)
    peak: float  # the largest phase: what is kept then plus its largest temporary
    when: str  # that phase
    temporary: str  # the part whose temporary it is
    details: dict  # part -> what drives it
    result: float  # what a worker sends back (history, data, weights): workers > 1


def _model(phases: dict, kept: dict, details: dict, result: float) -> _Model:
    """A phase is ``{part: (kept, temporary)}``; the temporaries of a phase do not
    coincide, so only its largest counts."""
    peak = (-1.0, "", "")
    for when, parts in phases.items():
        temp = max(_PARTS, key=lambda k: parts.get(k, (0, 0))[1])
        total = sum(parts.get(k, (0, 0))[0] for k in _PARTS) + parts.get(temp, (0, 0))[1]
        if total > peak[0]:
            peak = total, when, temp
    return _Model(kept, max(peak[0], sum(kept.values())), peak[1], peak[2], details, result)


def _fast(configs: list, names: tuple) -> _Model:
    from .kernels.fast.records import storage
    from .kernels.fast.support import rows_of
    from .tracker import TEST_NAMES

    c, R = configs[0], len(configs)
    n, d, s, m_k, m_v, n_test = c.n, c.d, c.s, c.m_k, c.m_v, c.n_test
    rows, per = rows_of(m_k), 2 * m_k + 2 * m_v
    u = 1 + _distinct_count(n, s, d - 1)  # |U|: coordinate 1 and the training supports
    u = min(d, n * s + 1, u + (4 * math.sqrt(u) if R > 1 else 0))  # the largest replica's
    homogeneous, copies = _opt_copies(c)
    details = {}

    history, details["history"] = _history(c, storage(names, c, rows), R)

    # data: coordinates and values of both sets (kept by the Result), and drawing them
    data = R * (2 * (n + n_test) * s + 3 * (n + n_test))
    data_temp = _sampling(max(n, n_test), d, s)
    details["data"] = (f"{_replicas(R)} x (n + n_test) s = {(n + n_test) * s} coordinates and "
                       "values; lower n_test, n or s")

    # state: the init on U (coords, counts, first slots, W0, W0V) and the slots' columns;
    # the layout; in the loop its step's arrays and the optimizer's moments; at the end the
    # Result's final and initial weights on U
    p_shared = 1.0 - (1.0 - s / (d - 1)) ** (n - 1)  # a training slot's coordinate is shared
    state = R * (u * (3 + rows + 2 * m_v) + n * s)
    if homogeneous:  # b, P0, B, N, lr B, the shared weights and their sparse maps
        state += R * (n * s + 4 * n * rows + n * s * p_shared * (rows + 4))
        step, step_temp = R * 16 * n * rows, R * 4 * n * rows
        layout = "per-(sample, row) sums"
    else:  # vals and the weights at every slot
        weights = n * rows * s
        state += R * (n * s + weights)
        step = R * (copies * weights + 16 * n * rows)
        step_temp = R * (4 + (4 if copies else 0)) * weights
        layout = f"per-coordinate weights, n (2 m_k + 2) s = {weights} a replica"
    state_temp = 5 * per * u + 5 * n * s  # E13 on U and np.unique, one replica at a time
    result = 2 * R * u * (per + 1)  # final and initial weights on U, their coordinates
    result_temp = 3 * rows * u  # one replica's weights on U at a time
    details["state"] = (f"{_replicas(R)} x |U| ~ {int(u)} coordinates (n s = {n * s}) x "
                        f"(2 m_k + 2 m_v) = {per} weights, {layout} ({c.optimizer}); lower n, "
                        "s, m_k or m_v, or run fewer replicas at a time")

    # test set: frozen parts (y, yoQ, yoK, z22, yv0, the hits' parts) and the test matrix;
    # built one replica at a time from E13 at its test coordinates, then stacked
    test = test_temp = test_loop = 0
    details["test set"] = "no test metrics recorded"
    if set(TEST_NAMES) & set(names):
        p_hit = 1.0 - (1.0 - (u - 1) / (d - 1)) ** s  # a test sample has a slot in U
        slots = n_test * s * min(1.0, (u - 1) / (d - 1))  # test slots in U
        test = R * (n_test * (2 * m_k + 3) + n_test * p_hit * (2 * m_k + 3) + 2 * slots)
        needed = _distinct_count(n_test, s, d - 1)
        test_temp = max(3 * R * n_test * 2 * m_k,  # the replicas' parts, stacked, times y
                        3 * needed * (2 * m_k + 1) + 2 * n_test * s)  # E13 at one's coords
        columns = R * n * (1 if homogeneous else s)  # what the test matrix multiplies
        test_loop = (10 * R * n_test + R * n_test * p_hit * (2 * m_k + 3)
                     + columns * (2 * (2 * m_k + 3) + rows))
        details["test set"] = (f"{_replicas(R)} x n_test = {n_test} samples x (2 m_k + 3) = "
                               f"{2 * m_k + 3} values, and E13 at ~{int(needed)} test "
                               "coordinates while it is built; lower n_test, or leave "
                               "test_loss and test_error out of record")

    history_temp = 2 * R * min(recorded_steps(c.steps, c.record_every), 1024) * n
    phases = {
        "while the kernel is built": {"state": (state, state_temp), "test set": (test, test_temp),
                                      "data": (data, data_temp)},
        "during the loop": {"history": (history, 0), "state": (state + step, step_temp),
                            "test set": (test, test_loop), "data": (data, 0)},
        "when the Result is made": {"history": (history, history_temp),
                                    "state": (state + step, result + result_temp),
                                    "test set": (test, 0), "data": (data, 0)},
    }
    kept = {"history": history, "state": state + step + result, "test set": test, "data": data}
    return _model(phases, kept, details, history + data + result)


def _dense(config: Config, names: tuple) -> _Model:
    from .tracker import TEST_NAMES, shapes

    c = config
    n, d, s, m_k, m_v, n_test = c.n, c.d, c.s, c.m_k, c.m_v, c.n_test
    per = 2 * m_k + 2 * m_v
    asked = set(names)
    if asked & set(TEST_NAMES):
        asked |= set(TEST_NAMES)
    _, copies = _opt_copies(c)
    details = {}
    history, details["history"] = _history(
        c, {k: v for k, v in shapes(c).items() if k in asked}, 1)
    weights = per * d
    # the loop: weights, initial weights, (Adam: moments), and at a step gradients, updates,
    # new weights, temporaries (Adam: new moments and theirs); the init: E13 at all d
    kept = (2 + copies) * weights
    step = (3 + 3 * copies) * weights
    details["state"] = (f"(2 m_k + 2 m_v) x d = {per} x {d} weights, about "
                        f"{(kept + step) // weights} copies at a step ({c.optimizer}); lower d "
                        "(kernel='fast' does not depend on it)")
    test = 0
    details["test set"] = "no test metrics recorded"
    if asked & set(TEST_NAMES):
        chunk = min(100, n_test)
        test = 1.1 * chunk * d * 2 + 4 * d
        details["test set"] = (f"{chunk} dense test inputs x d = {d} x 2 at a time; lower d "
                               "(kernel='fast' does not depend on it)")
    # X (n, d, 2), and at a record the dense noise patches xi and y xi; the sparse data
    data = 2 * n * d + 2 * (n + n_test) * s
    observe = 2 * n * d + d
    details["data"] = f"inputs X of n x d x 2 = {n} x {d} x 2 values; lower d or n"
    phases = {
        "while the data are drawn": {"data": (data, _sampling(max(n, n_test), d, s))},
        "while the weights are drawn": {"state": (weights, 5 * weights), "data": (data, 0)},
        "during the loop": {"history": (history, 0), "state": (kept, step),
                            "test set": (0, test), "data": (data, observe)},
    }
    kept = {"history": history, "state": kept, "test set": 0, "data": data}
    return _model(phases, kept, details, 0)


def estimate(configs, names=None, workers: int = 1) -> Estimate:
    """The memory of a run, from its Configs alone (nothing is allocated).

    Parameters
    ----------
    configs : Config or list of Config
        The replicas of a batch (``simulate.replica_configs``), or one Config.
    names : tuple of str, None or "summary"
        The recorded names (``tracker.select``), or a ``record=`` argument.
    workers : int
        The worker processes the batch is split among (``run(..., workers=)``); above 1
        the breakdown gains ``"between processes"``: the Results pickled in the workers and
        unpickled and joined in the parent.

    Returns
    -------
    Estimate
        ``total`` bytes of the run's arrays at its peak, ``breakdown`` by part (module
        docstring) and ``details``, what drives each part.
    """
    configs = [configs] if isinstance(configs, Config) else list(configs)
    if not configs:
        raise ValueError("The 'configs' parameter must hold at least one Config. Got [].")
    names = _names(names)
    model = _dense(configs[0], names) if configs[0].kernel == "dense" else _fast(configs, names)
    breakdown = {k: int(_F * model.kept[k]) for k in _PARTS}
    details = {k: model.details[k] for k in _PARTS}
    breakdown["temporaries"] = int(_F * model.peak) - sum(breakdown.values())
    details["temporaries"] = (f"the largest, {model.when}, of the {model.temporary} "
                              f"({model.details[model.temporary]})")
    if workers > 1 and model.result:
        breakdown["between processes"] = int(_F * _TRANSFER * model.result)
        details["between processes"] = (
            f"the Results of {workers} worker processes (history, data and weights: "
            f"{_gib(_F * model.result)}) pickled, unpickled and joined, about {_TRANSFER} "
            "copies; use fewer replicas per run, or workers=1")
    breakdown["allocator"] = int((_SLACK - 1.0) * sum(breakdown.values()) + _GROWTH)
    details["allocator"] = (f"freed blocks the allocator keeps resident, "
                            f"{_SLACK - 1.0:.0%} of the arrays, and 2 MiB the interpreter grows by")
    return Estimate(sum(breakdown.values()), breakdown, details, model.when)


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


def parse_size(text) -> int:
    """Bytes from an int or a string such as ``"8000000000"``, ``"8G"``, ``"512MiB"``,
    ``"1.5 GB"`` (K, M, G, T, P are powers of 1024, with or without ``i`` and ``B``)."""
    if isinstance(text, bool):
        raise ValueError(f"A memory size must be a number of bytes or a str like '8G'. "
                         f"Got {text!r} instead.")
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([KMGTP]?)(?:i?B)?\s*",
                             str(text), flags=re.IGNORECASE)
        if match is None:
            raise ValueError(f"A memory size must be a number of bytes or a str like '8G', "
                             f"'512M' or '1.5GiB'. Got {text!r} instead.")
        value, unit = float(match.group(1)), match.group(2).upper()
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"A memory size must be positive and finite. Got {text!r} instead.")
    return int(value * _UNITS[unit])


def _available() -> tuple[int | None, str]:
    """The memory available now, and where it was read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return pages * size, "the available physical pages (os.sysconf)"
    except (AttributeError, ValueError, OSError):
        pass
    return None, "unknown"


def memory_limit(value=None) -> tuple[int | None, str]:
    """The memory limit in bytes (None: no check) and where it comes from: ``value`` if
    given, else the environment variable ``SIGNSIM_MAX_MEMORY``, else the memory available
    now (``/proc/meminfo``'s MemAvailable, else ``os.sysconf``), else None."""
    if value is not None:
        return parse_size(value), "the 'limit' argument"
    env = os.environ.get(ENV)
    if env is not None and env.strip():
        try:
            return parse_size(env), f"{ENV}={env}"
        except ValueError as error:
            raise ValueError(f"The environment variable {ENV} must be a memory size: "
                             f"{error}") from None
    nbytes, where = _available()
    if nbytes is None:
        return None, where
    return nbytes, f"the memory available now ({where}; set {ENV} to change it)"


def check(configs, names=None, limit=None, workers: int = 1) -> Estimate:
    """Refuse a run whose arrays would not fit, before anything is allocated.

    Parameters
    ----------
    configs, names, workers
        As for ``estimate``.
    limit : int or str, optional
        Bytes (or a size such as ``"8G"``); default ``SIGNSIM_MAX_MEMORY``, else the
        memory available now, else no check.

    Returns
    -------
    Estimate

    Raises
    ------
    MemoryBudgetError
        A ValueError whose message gives the estimate and the limit in GiB, the part of
        the estimate each field drives, and what to lower.
    """
    est = estimate(configs, names, workers)
    bound, where = memory_limit(limit)
    if bound is None or est.total <= bound:
        return est
    config = configs if isinstance(configs, Config) else list(configs)[0]
    parts = sorted(est.breakdown, key=lambda k: -est.breakdown[k])
    lines = [f"{k} {_gib(est.breakdown[k])}: {est.details[k]}" for k in parts
             if est.breakdown[k] >= 0.05 * est.total]
    raise MemoryBudgetError(
        f"This run (kernel={config.kernel!r}) needs about {_gib(est.total)} of memory at its "
        f"peak ({est.when}), more than the limit of {_gib(bound)} ({where}). "
        + ". ".join(lines) + ".", est, bound)
